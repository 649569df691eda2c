/* Unit tests for the conntrack source: the parser on crafted ctnetlink
 * messages (good and malformed), the filter, the dump request, and the flow
 * table's event and resync rules. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include "nlgate/conntrack.h"

static char buf[16384]; /* room for labels of 8 KiB */

/* A conntrack message as the kernel sends it: nfgenmsg, tuples, id, status. */
static struct nlmsghdr *msg(int type, int flags, int family, int proto, const char *src,
			    const char *dst, uint16_t sport, uint16_t dport, uint32_t id)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	struct nlattr *t, *ip, *pr;
	uint8_t a[16], b[16];

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = (uint16_t)flags;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	inet_pton(family, src, a);
	inet_pton(family, dst, b);
	for (int dir = 0; dir < 2; dir++) {
		t = mnl_attr_nest_start(nlh, dir ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG);
		ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
		if (family == AF_INET) {
			mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, dir ? b : a);
			mnl_attr_put(nlh, CTA_IP_V4_DST, 4, dir ? a : b);
		} else {
			mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, dir ? b : a);
			mnl_attr_put(nlh, CTA_IP_V6_DST, 16, dir ? a : b);
		}
		mnl_attr_nest_end(nlh, ip);
		pr = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
		mnl_attr_put_u8(nlh, CTA_PROTO_NUM, (uint8_t)proto);
		if (proto == IPPROTO_ICMP) {
			mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_TYPE, dir ? 0 : 8);
			mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_CODE, 0);
			mnl_attr_put_u16(nlh, CTA_PROTO_ICMP_ID, htons(sport));
		} else if (proto == IPPROTO_ICMPV6) {
			mnl_attr_put_u8(nlh, CTA_PROTO_ICMPV6_TYPE, dir ? 129 : 128);
			mnl_attr_put_u8(nlh, CTA_PROTO_ICMPV6_CODE, 0);
			mnl_attr_put_u16(nlh, CTA_PROTO_ICMPV6_ID, htons(sport));
		} else {
			mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(dir ? dport : sport));
			mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dir ? sport : dport));
		}
		mnl_attr_nest_end(nlh, pr);
		mnl_attr_nest_end(nlh, t);
	}
	mnl_attr_put_u32(nlh, CTA_STATUS, htonl(IPS_CONFIRMED | IPS_ASSURED | IPS_SEEN_REPLY));
	mnl_attr_put_u32(nlh, CTA_ID, htonl(id));
	return nlh;
}

static unsigned fast_hits, fast_misses, fast_bad, ref_unsafe_bad;

/* The reference decoder in a child: libnetfilter_conntrack exits the process
 * on attributes of lengths it refuses. Returns 1 if it exited, else 0 with its
 * result in *rr and *ref. */
static int ref_in_child(struct nlg_ct_parser *p, const struct nlmsghdr *nlh, int *rr,
			struct nlg_ct *ref)
{
	int fds[2], status;
	char got[sizeof(int) + sizeof(*ref)];
	size_t have = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char out[sizeof(got)];
		int r;
		close(fds[0]);
		if (!freopen("/dev/null", "w", stderr))
			_exit(3);
		memset(ref, 0, sizeof(*ref));
		r = nlg_ct_parse_nfct(p, nlh, ref, NULL);
		memcpy(out, &r, sizeof(r));
		memcpy(out + sizeof(r), ref, sizeof(*ref));
		_exit(write(fds[1], out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 3);
	}
	close(fds[1]);
	for (ssize_t n;
	     have < sizeof(got) && (n = read(fds[0], got + have, sizeof(got) - have)) > 0;)
		have += (size_t)n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (have < sizeof(got))
		return 1;
	memcpy(rr, got, sizeof(*rr));
	memcpy(ref, got + sizeof(*rr), sizeof(*ref));
	return 0;
}

/* Where libnetfilter_conntrack 1.0.9 checks nothing and does not fail, but
 * reads or writes out of bounds: the last protoinfo holding a type past its
 * table, or the last helper or security context whose last name has no NUL.
 * The fast decoder refuses these too; the reference's result on them means
 * nothing (it may also crash). */
static int ref_unsafe(const struct nlmsghdr *nlh)
{
	const struct nlattr *a, *last[CTA_MAX + 1] = {0};

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) <= CTA_MAX)
			last[mnl_attr_get_type(a)] = a;
	}
	if (last[CTA_PROTOINFO]) {
		mnl_attr_for_each_nested(a, last[CTA_PROTOINFO])
		{
			if (mnl_attr_get_type(a) > CTA_PROTOINFO_MAX &&
			    mnl_attr_get_type(a) <= CTA_PROTOINFO_TCP_MAX)
				return 1;
		}
	}
	for (int i = 0; i < 2; i++) {
		const struct nlattr *nest = last[i ? CTA_SECCTX : CTA_HELP], *name = NULL;
		if (!nest)
			continue;
		mnl_attr_for_each_nested(a, nest)
		{
			if (mnl_attr_get_type(a) == (i ? CTA_SECCTX_NAME : CTA_HELP_NAME))
				name = a;
		}
		if (name && !memchr(mnl_attr_get_payload(name), 0, mnl_attr_get_payload_len(name)))
			return 1;
	}
	return 0;
}

/* Every message a test parses goes through here and is decoded three ways:
 * nlg_ct_parse must agree with the reference decoder (libnetfilter_conntrack)
 * on the result and on every byte of the record, and so must the fast decoder
 * whenever it takes a message on. Where the fast decoder declines, the
 * reference runs in a child: it must not exit on anything handed to it, and
 * what the fast decoder refuses the reference must refuse too (or exit on, or
 * be unsafe with). */
static int parse(struct nlg_ct_parser *p, const struct nlmsghdr *nlh, struct nlg_ct *out,
		 struct nlg_err *err)
{
	struct nlg_ct ref, fast;
	int rr = 0, rf, r;

	memset(&ref, 0xa5, sizeof(ref));
	memset(&fast, 0x5a, sizeof(fast));
	rf = nlg_ct_decode(nlh, &fast);
	if (rf == 0) {
		/* it checked every attribute as the reference does: safe here */
		fast_hits++;
		assert_int_equal(nlg_ct_parse_nfct(p, nlh, &ref, NULL), 0);
		assert_memory_equal(&fast, &ref, sizeof(ref));
		r = nlg_ct_parse(p, nlh, out, err);
		assert_int_equal(r, 0);
		assert_memory_equal(out, &ref, sizeof(ref));
		return r;
	}
	int exited = ref_in_child(p, nlh, &rr, &ref);
	if (rf < 0) {
		/* a length the reference refuses: it fails or exits, we fail */
		fast_bad++;
		if (!exited && rr == 0) {
			assert_true(ref_unsafe(nlh));
			ref_unsafe_bad++;
		}
		r = nlg_ct_parse(p, nlh, out, err);
		assert_int_equal(r, -EPROTO);
		return r;
	}
	assert_int_equal(rf, 1);
	fast_misses++;
	if (exited)
		fail_msg("handed to the reference, which exited");
	r = nlg_ct_parse(p, nlh, out, err);
	assert_int_equal(r, rr);
	if (r == 0)
		assert_memory_equal(out, &ref, sizeof(ref));
	return r;
}

static struct nlmsghdr *udp4(int type, int flags, uint32_t id)
{
	return msg(type, flags, AF_INET, IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 1234, 53, id);
}

/* A TCP flow carrying an attribute of every kind the reference parses,
 * of the right lengths (the fast decoder hands it over). */
static struct nlmsghdr *every_kind(void)
{
	struct nlmsghdr *nlh =
	    msg(IPCTNL_MSG_CT_NEW, 0, AF_INET, IPPROTO_TCP, "10.0.0.1", "10.0.0.2", 40000, 21, 12);
	struct nlattr *n, *m;
	uint32_t labels[4] = {0x4u, 0, 0, 0};

	n = mnl_attr_nest_start(nlh, CTA_TUPLE_MASTER);
	m = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(0x0a000001));
	mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(0x0a000002));
	mnl_attr_nest_end(nlh, m);
	m = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(39999));
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(21));
	mnl_attr_nest_end(nlh, m);
	mnl_attr_put_u16(nlh, CTA_TUPLE_ZONE, htons(1));
	mnl_attr_nest_end(nlh, n);
	for (int dir = 0; dir < 2; dir++) {
		n = mnl_attr_nest_start(nlh, dir ? CTA_NAT_SEQ_ADJ_REPLY : CTA_NAT_SEQ_ADJ_ORIG);
		mnl_attr_put_u32(nlh, CTA_NAT_SEQ_CORRECTION_POS, htonl(1000));
		mnl_attr_put_u32(nlh, CTA_NAT_SEQ_OFFSET_BEFORE, htonl(0));
		mnl_attr_put_u32(nlh, CTA_NAT_SEQ_OFFSET_AFTER, htonl(4));
		mnl_attr_nest_end(nlh, n);
	}
	n = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
	m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 3); /* ESTABLISHED */
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, 7);
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_REPLY, 7);
	mnl_attr_put_u16(nlh, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, 0x2323);
	mnl_attr_put_u16(nlh, CTA_PROTOINFO_TCP_FLAGS_REPLY, 0x2323);
	mnl_attr_nest_end(nlh, m);
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_HELP);
	mnl_attr_put_strz(nlh, CTA_HELP_NAME, "ftp");
	mnl_attr_put_u32(nlh, CTA_HELP_INFO, 0);
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_SECCTX);
	mnl_attr_put_strz(nlh, CTA_SECCTX_NAME, "system_u:object_r:unlabeled_t:s0");
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_SYNPROXY);
	mnl_attr_put_u32(nlh, CTA_SYNPROXY_ISN, htonl(1));
	mnl_attr_put_u32(nlh, CTA_SYNPROXY_ITS, htonl(2));
	mnl_attr_put_u32(nlh, CTA_SYNPROXY_TSOFF, htonl(3));
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_COUNTERS_ORIG);
	mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(2));
	mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES, htobe64(120));
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TIMESTAMP);
	mnl_attr_put_u64(nlh, CTA_TIMESTAMP_START, htobe64(5));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_put(nlh, CTA_LABELS, sizeof(labels), labels);
	mnl_attr_put_u16(nlh, CTA_ZONE, htons(1));
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(1));
	return nlh;
}

static void test_parse_udp4_new(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlmsghdr *nlh = udp4(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, 77);
	struct nlg_ct ct;
	struct nlg_err err;
	char text[64];

	(void)state;
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(0x42));
	mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(30));
	assert_int_equal(parse(p, nlh, &ct, &err), 0);
	assert_int_equal(ct.event, NLG_CT_NEW);
	assert_int_equal(ct.id, 77);
	assert_int_equal(ct.family, AF_INET);
	assert_int_equal(ct.proto, IPPROTO_UDP);
	assert_int_equal(ct.orig_sport, 1234);
	assert_int_equal(ct.orig_dport, 53);
	assert_int_equal(ct.reply_sport, 53);
	assert_int_equal(ct.reply_dport, 1234);
	assert_int_equal(ct.mark, 0x42);
	assert_int_equal(ct.timeout, 30);
	assert_true(ct.present & NLG_CT_HAS_MARK);
	assert_false(ct.present & NLG_CT_HAS_ACCT);
	assert_int_equal(ct.status, IPS_CONFIRMED | IPS_ASSURED | IPS_SEEN_REPLY);
	nlg_schema_init();
	int fi = nlg_schema_field(&nlg_ct_schema, "orig_src");
	nlg_field_text(&nlg_ct_schema.fields[fi], &ct, text, sizeof(text));
	assert_string_equal(text, "10.0.0.1");
	fi = nlg_schema_field(&nlg_ct_schema, "reply_src");
	nlg_field_text(&nlg_ct_schema.fields[fi], &ct, text, sizeof(text));
	assert_string_equal(text, "10.0.0.2");
	fi = nlg_schema_field(&nlg_ct_schema, "status");
	nlg_field_text(&nlg_ct_schema.fields[fi], &ct, text, sizeof(text));
	assert_string_equal(text, "SEEN_REPLY|ASSURED|CONFIRMED");
	fi = nlg_schema_field(&nlg_ct_schema, "event");
	nlg_field_text(&nlg_ct_schema.fields[fi], &ct, text, sizeof(text));
	assert_string_equal(text, "new");

	/* The same parser object reused: nothing of the last message leaks in. */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 78);
	assert_int_equal(parse(p, nlh, &ct, &err), 0);
	assert_int_equal(ct.event, NLG_CT_UPDATE);
	assert_false(ct.present & NLG_CT_HAS_MARK);
	assert_int_equal(ct.mark, 0);
	nlg_ct_parser_free(p);
}

static void test_parse_destroy_acct_tcp6(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlmsghdr *nlh = msg(IPCTNL_MSG_CT_DELETE, 0, AF_INET6, IPPROTO_TCP, "2001:db8::1",
				   "2001:db8::2", 40000, 443, 9);
	struct nlattr *n, *m;
	struct nlg_ct ct;
	struct nlg_err err;
	char text[64];

	(void)state;
	n = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
	m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 7); /* TIME_WAIT */
	mnl_attr_nest_end(nlh, m);
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_COUNTERS_ORIG);
	mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(10));
	mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES, htobe64(1000));
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_COUNTERS_REPLY);
	mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(5));
	mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES, htobe64(500));
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TIMESTAMP);
	mnl_attr_put_u64(nlh, CTA_TIMESTAMP_START, htobe64(1000000000ull));
	mnl_attr_put_u64(nlh, CTA_TIMESTAMP_STOP, htobe64(3000000000ull));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_put_u16(nlh, CTA_ZONE, htons(3));
	assert_int_equal(parse(p, nlh, &ct, &err), 0);
	assert_int_equal(ct.event, NLG_CT_DESTROY);
	assert_int_equal(ct.family, AF_INET6);
	assert_int_equal(ct.tcp_state, 7);
	assert_true(ct.present & NLG_CT_HAS_TCP);
	assert_int_equal(ct.orig_packets, 10);
	assert_int_equal(ct.orig_bytes, 1000);
	assert_int_equal(ct.reply_packets, 5);
	assert_int_equal(ct.reply_bytes, 500);
	assert_int_equal(ct.start_ns, 1000000000ull);
	assert_int_equal(ct.stop_ns, 3000000000ull);
	assert_int_equal(ct.zone, 3);
	nlg_schema_init();
	int fi = nlg_schema_field(&nlg_ct_schema, "orig_dst");
	nlg_field_text(&nlg_ct_schema.fields[fi], &ct, text, sizeof(text));
	assert_string_equal(text, "2001:db8::2");
	fi = nlg_schema_field(&nlg_ct_schema, "tcp_state");
	nlg_field_text(&nlg_ct_schema.fields[fi], &ct, text, sizeof(text));
	assert_string_equal(text, "TIME_WAIT");
	nlg_ct_parser_free(p);
}

static void test_parse_icmp(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlmsghdr *nlh = msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, AF_INET, IPPROTO_ICMP,
				   "192.0.2.1", "192.0.2.2", 4242, 0, 5);
	struct nlg_ct ct;

	(void)state;
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_true(ct.present & NLG_CT_HAS_ICMP);
	assert_false(ct.present & NLG_CT_HAS_PORTS);
	assert_int_equal(ct.icmp_type, 8);
	assert_int_equal(ct.icmp_id, 4242);
	nlg_ct_parser_free(p);
}

static void test_parse_malformed(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlmsghdr *nlh;
	struct nlg_ct ct;
	struct nlg_err err;
	struct nlattr *a;

	(void)state;
	/* shorter than nlmsghdr + nfgenmsg */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	nlh->nlmsg_len = NLMSG_HDRLEN + 2;
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "too short"));
	/* another subsystem */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_CT_NEW;
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	/* an unexpected ctnetlink type */
	nlh = udp4(IPCTNL_MSG_CT_GET_STATS, 0, 1);
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	/* the last attribute claims more bytes than the message holds */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	a = (struct nlattr *)((char *)nlh + nlh->nlmsg_len - 8);
	a->nla_len = 64;
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "attribute"));
	/* the message cut in the middle of an attribute */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	nlh->nlmsg_len -= 6;
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	/* an attribute of length < 4 */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	a = (struct nlattr *)((char *)nlh + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
	a->nla_len = 2;
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	/* no tuple at all */
	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
	((struct nfgenmsg *)mnl_nlmsg_put_extra_header(nlh, sizeof(struct nfgenmsg)))
	    ->nfgen_family = AF_INET;
	mnl_attr_put_u32(nlh, CTA_ID, htonl(5));
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "tuple"));
	/* a family we do not decode */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	((struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family = AF_BRIDGE;
	assert_int_equal(parse(p, nlh, &ct, &err), -EPROTO);
	/* after all that, a good message still parses with the same object */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 99);
	assert_int_equal(parse(p, nlh, &ct, &err), 0);
	assert_int_equal(ct.id, 99);
	nlg_ct_parser_free(p);
}

static void test_filter_and_request(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlg_ct_filter f = {0};
	struct nlg_ct ct;
	char req[256];
	struct nlmsghdr *nlh;

	(void)state;
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 1);
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(0x1f));
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_true(nlg_ct_filter_match(&f, &ct));
	f.family = AF_INET6;
	assert_false(nlg_ct_filter_match(&f, &ct));
	f.family = 0;
	f.proto = IPPROTO_TCP;
	assert_false(nlg_ct_filter_match(&f, &ct));
	f.proto = IPPROTO_UDP;
	f.has_mark = 1;
	f.mark = 0x0f;
	f.mark_mask = 0x0f;
	assert_true(nlg_ct_filter_match(&f, &ct));
	f.mark_mask = 0xff;
	assert_false(nlg_ct_filter_match(&f, &ct));

	f.family = AF_INET;
	nlh = nlg_ct_dump_request(req, sizeof(req), &f);
	assert_int_equal(nlh->nlmsg_type, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET);
	assert_true(nlh->nlmsg_flags & NLM_F_DUMP);
	assert_int_equal(((struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family, AF_INET);
	int seen = 0;
	struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) == CTA_MARK)
			seen |= ntohl(mnl_attr_get_u32(a)) == 0x0f ? 1 : 0;
		if (mnl_attr_get_type(a) == CTA_MARK_MASK)
			seen |= ntohl(mnl_attr_get_u32(a)) == 0xff ? 2 : 0;
	}
	assert_int_equal(seen, 3);

	unsigned ev = 0;
	assert_int_equal(nlg_ct_parse_events("new,destroy", &ev), 0);
	assert_int_equal(ev, NLG_CT_EV_NEW | NLG_CT_EV_DESTROY);
	assert_int_equal(nlg_ct_parse_events("new,bogus", &ev), -EINVAL);
	assert_int_equal(nlg_ct_parse_events("", &ev), -EINVAL);
	nlg_ct_parser_free(p);
}

static struct nlg_ct rec(int event, uint32_t id, uint16_t sport)
{
	struct nlg_ct ct;

	memset(&ct, 0, sizeof(ct));
	ct.event = (uint8_t)event;
	ct.id = id;
	ct.family = AF_INET;
	ct.proto = IPPROTO_UDP;
	ct.present = NLG_CT_HAS_PORTS;
	ct.orig_src.family = ct.orig_dst.family = AF_INET;
	ct.orig_src.bytes[0] = 10;
	ct.orig_dst.bytes[0] = 11;
	ct.orig_sport = sport;
	ct.orig_dport = 53;
	return ct;
}

static void test_table_events(void **state)
{
	struct nlg_ct_table *t = nlg_ct_table_new();
	struct nlg_ct a = rec(NLG_CT_NEW, 1, 1000);
	int orphan;

	(void)state;
	assert_int_equal(nlg_ct_table_event(t, &a, &orphan), 1);
	assert_int_equal(nlg_ct_table_count(t), 1);
	/* a duplicate NEW is suppressed; an UPDATE is not */
	assert_int_equal(nlg_ct_table_event(t, &a, &orphan), 0);
	a.event = NLG_CT_UPDATE;
	assert_int_equal(nlg_ct_table_event(t, &a, &orphan), 1);
	/* same id, other tuple: another flow */
	struct nlg_ct b = rec(NLG_CT_NEW, 1, 1001);
	assert_int_equal(nlg_ct_table_event(t, &b, &orphan), 1);
	assert_int_equal(nlg_ct_table_count(t), 2);
	a.event = NLG_CT_DESTROY;
	assert_int_equal(nlg_ct_table_event(t, &a, &orphan), 1);
	assert_int_equal(orphan, 0);
	assert_int_equal(nlg_ct_table_count(t), 1);
	assert_true(nlg_ct_table_has(t, &b));
	assert_false(nlg_ct_table_has(t, &a));
	/* DESTROY without NEW: emitted, flagged as an orphan */
	struct nlg_ct c = rec(NLG_CT_DESTROY, 7, 7);
	assert_int_equal(nlg_ct_table_event(t, &c, &orphan), 1);
	assert_int_equal(orphan, 1);
	assert_int_equal(nlg_ct_table_count(t), 1);
	nlg_ct_table_free(t);
}

static void test_table_many(void **state)
{
	struct nlg_ct_table *t = nlg_ct_table_new();
	int orphan;
	const uint32_t n = 200000;

	(void)state;
	/* enough to grow several times and exercise backward-shift deletion */
	for (uint32_t i = 0; i < n; i++) {
		struct nlg_ct ct = rec(NLG_CT_NEW, i * 2654435761u, (uint16_t)i);
		assert_int_equal(nlg_ct_table_event(t, &ct, &orphan), 1);
	}
	assert_int_equal(nlg_ct_table_count(t), n);
	for (uint32_t i = 0; i < n; i += 2) {
		struct nlg_ct ct = rec(NLG_CT_DESTROY, i * 2654435761u, (uint16_t)i);
		assert_int_equal(nlg_ct_table_event(t, &ct, &orphan), 1);
		assert_int_equal(orphan, 0);
	}
	assert_int_equal(nlg_ct_table_count(t), n / 2);
	for (uint32_t i = 0; i < n; i++) {
		struct nlg_ct ct = rec(NLG_CT_NEW, i * 2654435761u, (uint16_t)i);
		assert_int_equal(nlg_ct_table_has(t, &ct), i % 2);
	}
	nlg_ct_table_free(t);
}

struct gone {
	uint32_t ids[16];
	int n;
};

static int on_gone(const struct nlg_ct *ct, void *data)
{
	struct gone *g = data;

	assert_int_equal(ct->event, NLG_CT_DESTROY);
	assert_true(ct->synthetic);
	assert_int_equal(ct->orig_dport, 53);
	g->ids[g->n++] = ct->id;
	return NLG_CB_OK;
}

static void test_table_resync(void **state)
{
	struct nlg_ct_table *t = nlg_ct_table_new();
	struct gone g = {.n = 0};
	int orphan;

	(void)state;
	for (uint32_t i = 1; i <= 4; i++) {
		struct nlg_ct ct = rec(NLG_CT_NEW, i, (uint16_t)i);
		nlg_ct_table_event(t, &ct, &orphan);
	}
	/* the kernel now has 1, 2 (3 and 4 vanished unseen), 5 (NEW lost) and
	 * 6 (created during the dump, NEW event and dump both show it) */
	nlg_ct_table_sync_begin(t);
	struct nlg_ct d1 = rec(NLG_CT_NEW, 1, 1), d2 = rec(NLG_CT_NEW, 2, 2),
		      d5 = rec(NLG_CT_NEW, 5, 5), e6 = rec(NLG_CT_NEW, 6, 6);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d1), 0);
	assert_int_equal(nlg_ct_table_event(t, &e6, &orphan), 1);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d2), 0);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d5), 1); /* missed: emit */
	assert_int_equal(nlg_ct_table_sync_flow(t, &e6), 0);
	/* 2 is destroyed while the dump runs; a dump message for it that was
	 * already on its way must not bring it back */
	struct nlg_ct x2 = rec(NLG_CT_DESTROY, 2, 2);
	assert_int_equal(nlg_ct_table_event(t, &x2, &orphan), 1);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d2), 0);
	assert_int_equal(nlg_ct_table_sync_end(t, on_gone, &g), 2);
	assert_int_equal(g.n, 2);
	assert_true((g.ids[0] == 3 && g.ids[1] == 4) || (g.ids[0] == 4 && g.ids[1] == 3));
	assert_int_equal(nlg_ct_table_count(t), 3); /* 1, 5, 6 */
	assert_true(nlg_ct_table_has(t, &d1));
	assert_true(nlg_ct_table_has(t, &d5));
	assert_true(nlg_ct_table_has(t, &e6));
	assert_false(nlg_ct_table_has(t, &d2));
	assert_int_equal(nlg_ct_table_unconfirmed(t), 1); /* 5: from the dump only */
	/* the NEW event for 5 arrives late: it was already emitted by resync */
	assert_int_equal(nlg_ct_table_event(t, &d5, &orphan), 1);
	assert_int_equal(nlg_ct_table_unconfirmed(t), 0);
	assert_int_equal(nlg_ct_table_event(t, &d5, &orphan), 0);
	nlg_ct_table_free(t);
}

/* The decoders agree on messages with the attributes kernels send (the fast
 * one takes them), and on those it leaves to the reference. */
static void test_parse_decoders_agree(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlmsghdr *nlh;
	struct nlattr *n;
	struct nlg_ct ct;
	unsigned hits;

	(void)state;
	/* fast: plain UDP, ICMPv6, labels, 32-bit counters, secmark, use */
	hits = fast_hits;
	nlh = udp4(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, 1);
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	nlh = msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, AF_INET6, IPPROTO_ICMPV6, "2001:db8::1",
		  "2001:db8::2", 7, 0, 2);
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_int_equal(ct.icmp_type, 128);
	assert_int_equal(ct.icmp_id, 7);
	nlh = udp4(IPCTNL_MSG_CT_DELETE, 0, 3);
	uint32_t labels[4] = {0x80000001u, 0, 0x10u, 0};
	mnl_attr_put(nlh, CTA_LABELS, sizeof(labels), labels);
	n = mnl_attr_nest_start(nlh, CTA_COUNTERS_ORIG);
	mnl_attr_put_u32(nlh, CTA_COUNTERS32_PACKETS, htonl(4));
	mnl_attr_put_u32(nlh, CTA_COUNTERS32_BYTES, htonl(400));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_put_u32(nlh, CTA_SECMARK, htonl(9));
	mnl_attr_put_u32(nlh, CTA_USE, htonl(1));
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_true(ct.present & NLG_CT_HAS_LABELS);
	assert_int_equal(ct.labels[0], 1);
	assert_int_equal(ct.labels[3], 0x80);
	assert_int_equal(ct.labels[8], 0x10);
	assert_int_equal(ct.orig_bytes, 400);
	assert_int_equal(fast_hits, hits + 3);
	/* left to the reference: a helper, an attribute it does not model, a
	 * tuple with ports and ICMP at once */
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 4);
	n = mnl_attr_nest_start(nlh, CTA_HELP);
	mnl_attr_put_strz(nlh, CTA_HELP_NAME, "ftp");
	mnl_attr_nest_end(nlh, n);
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_string_equal(ct.helper, "ftp");
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 5);
	mnl_attr_put_u32(nlh, CTA_MAX + 5, 0);
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 6);
	assert_int_equal(nlg_ct_decode(nlh, &ct), 0);
	n = mnl_attr_nest_start(nlh, CTA_TUPLE_MASTER);
	mnl_attr_nest_end(nlh, n);
	assert_int_equal(nlg_ct_decode(nlh, &ct), 1);
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_int_equal(fast_hits, hits + 3);
	nlg_ct_parser_free(p);
}

/* Mutated messages: random bytes flipped, lengths cut, attribute types
 * changed. Whatever the result, the decoders must agree (parse() checks). A
 * fixed seed keeps the run repeatable. */
static void test_parse_mutations(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	static char orig[4096];
	uint64_t x = 0x2545f4914f6cdd1dull;
	unsigned hits = fast_hits, misses = fast_misses, bad = fast_bad, ok = 0;
	struct nlg_ct ct;

	(void)state;
	for (int i = 0; i < 8000; i++) {
		struct nlmsghdr *nlh;
		struct nlattr *n;
		switch (i % 5) {
		case 4:
			nlh = every_kind();
			break;
		case 0:
			nlh = udp4(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, (uint32_t)i);
			break;
		case 1:
			nlh = msg(IPCTNL_MSG_CT_DELETE, 0, AF_INET6, IPPROTO_UDP, "2001:db8::1",
				  "2001:db8::2", 1000, 2000, (uint32_t)i);
			n = mnl_attr_nest_start(nlh, CTA_COUNTERS_ORIG);
			mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(3));
			mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES, htobe64(300));
			mnl_attr_nest_end(nlh, n);
			n = mnl_attr_nest_start(nlh, CTA_TIMESTAMP);
			mnl_attr_put_u64(nlh, CTA_TIMESTAMP_START, htobe64(1));
			mnl_attr_nest_end(nlh, n);
			break;
		case 2:
			nlh = msg(IPCTNL_MSG_CT_NEW, 0, AF_INET, IPPROTO_ICMP, "192.0.2.1",
				  "192.0.2.2", 9, 0, (uint32_t)i);
			mnl_attr_put_u16(nlh, CTA_ZONE, htons(2));
			break;
		default:
			nlh = udp4(IPCTNL_MSG_CT_NEW, 0, (uint32_t)i);
			mnl_attr_put_u32(nlh, CTA_MARK, htonl(7));
			break;
		}
		memcpy(orig, buf, nlh->nlmsg_len);
		unsigned len = nlh->nlmsg_len, edits = 1 + (unsigned)(x % 3);
		for (unsigned e = 0; e < edits; e++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			unsigned at = NLMSG_HDRLEN + (unsigned)((x >> 8) % (len - NLMSG_HDRLEN));
			switch ((x >> 40) % 4) {
			case 0: /* a random byte */
				((uint8_t *)nlh)[at] = (uint8_t)(x >> 32);
				break;
			case 1: /* a small type: nla_type is the 3rd/4th byte of an attribute */
				((uint8_t *)nlh)[at] = (uint8_t)((x >> 32) % 20);
				break;
			case 2: /* cut the message */
				nlh->nlmsg_len = at;
				break;
			default: /* a bit flipped */
				((uint8_t *)nlh)[at] ^= (uint8_t)(1u << ((x >> 32) % 8));
				break;
			}
		}
		if (parse(p, nlh, &ct, NULL) == 0)
			ok++;
	}
	/* the run reached every path, and good as well as bad messages */
	print_message("mutations: fast %u, reference %u, rejected for a length %u (unsafe for "
		      "the reference %u), decoded %u\n",
		      fast_hits - hits, fast_misses - misses, fast_bad - bad, ref_unsafe_bad, ok);
	assert_true(fast_hits - hits > 500);
	assert_true(fast_misses - misses > 500);
	assert_true(fast_bad - bad > 100);
	assert_true(ok > 1000 && ok < 7000);
	nlg_ct_parser_free(p);
}

/* nlg_ct_parse in a child: returns its wait status, exit 0 for -EPROTO, 2
 * for anything else; libnetfilter_conntrack's exit() would be 1. */
static int parse_in_child(struct nlg_ct_parser *p, const struct nlmsghdr *nlh)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct nlg_ct ct;
		if (!freopen("/dev/null", "w", stderr))
			_exit(3);
		_exit(nlg_ct_parse(p, nlh, &ct, NULL) == -EPROTO ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

enum { REF_EXIT, REF_FAIL, REF_UNSAFE };

/* One attribute of a kind, at the end of path (types from the top level
 * down), appended to a UDP message. good and bad are payload lengths (good -1:
 * the type has none); ref is what libnetfilter_conntrack 1.0.9 does with the
 * bad one. An appended tuple is the last one, the one the reference reads. */
struct len_case {
	const char *what;
	int depth;
	uint16_t path[3];
	int good, bad;
	int ref;
	int str; /* a name: the good one ends in its NUL */
};

static const struct len_case len_cases[] = {
    {"status", 1, {CTA_STATUS}, 4, 3, REF_EXIT, 0},
    {"timeout", 1, {CTA_TIMEOUT}, 4, 5, REF_EXIT, 0},
    {"mark", 1, {CTA_MARK}, 4, 2, REF_EXIT, 0},
    {"secmark", 1, {CTA_SECMARK}, 4, 8, REF_EXIT, 0},
    {"use", 1, {CTA_USE}, 4, 1, REF_EXIT, 0},
    {"id", 1, {CTA_ID}, 4, 0, REF_EXIT, 0},
    {"zone", 1, {CTA_ZONE}, 2, 4, REF_EXIT, 0},
    {"orig tuple", 1, {CTA_TUPLE_ORIG}, 0, 2, REF_EXIT, 0},
    {"reply tuple", 1, {CTA_TUPLE_REPLY}, 0, 1, REF_EXIT, 0},
    {"master tuple", 1, {CTA_TUPLE_MASTER}, 0, 3, REF_EXIT, 0},
    {"nat seq orig", 1, {CTA_NAT_SEQ_ADJ_ORIG}, 0, 2, REF_EXIT, 0},
    {"nat seq reply", 1, {CTA_NAT_SEQ_ADJ_REPLY}, 0, 1, REF_EXIT, 0},
    {"protoinfo", 1, {CTA_PROTOINFO}, 0, 3, REF_EXIT, 0},
    {"counters orig", 1, {CTA_COUNTERS_ORIG}, 0, 2, REF_EXIT, 0},
    {"counters reply", 1, {CTA_COUNTERS_REPLY}, 0, 2, REF_EXIT, 0},
    {"help", 1, {CTA_HELP}, 0, 1, REF_EXIT, 0},
    {"secctx", 1, {CTA_SECCTX}, 0, 2, REF_EXIT, 0},
    {"timestamp", 1, {CTA_TIMESTAMP}, 0, 3, REF_EXIT, 0},
    {"labels", 1, {CTA_LABELS}, 16, 8193, REF_FAIL, 0},
    {"orig ip", 2, {CTA_TUPLE_ORIG, CTA_TUPLE_IP}, 0, 3, REF_EXIT, 0},
    {"reply proto", 2, {CTA_TUPLE_REPLY, CTA_TUPLE_PROTO}, 0, 2, REF_EXIT, 0},
    {"orig zone", 2, {CTA_TUPLE_ORIG, CTA_TUPLE_ZONE}, 2, 3, REF_EXIT, 0},
    {"reply zone", 2, {CTA_TUPLE_REPLY, CTA_TUPLE_ZONE}, 2, 1, REF_EXIT, 0},
    {"master zone", 2, {CTA_TUPLE_MASTER, CTA_TUPLE_ZONE}, 2, 4, REF_EXIT, 0},
    {"master ip", 2, {CTA_TUPLE_MASTER, CTA_TUPLE_IP}, 0, 1, REF_EXIT, 0},
    {"master proto", 2, {CTA_TUPLE_MASTER, CTA_TUPLE_PROTO}, 0, 3, REF_EXIT, 0},
    {"orig v4 src", 3, {CTA_TUPLE_ORIG, CTA_TUPLE_IP, CTA_IP_V4_SRC}, 4, 5, REF_EXIT, 0},
    {"orig v6 src", 3, {CTA_TUPLE_ORIG, CTA_TUPLE_IP, CTA_IP_V6_SRC}, 16, 15, REF_EXIT, 0},
    {"reply v4 dst", 3, {CTA_TUPLE_REPLY, CTA_TUPLE_IP, CTA_IP_V4_DST}, 4, 2, REF_EXIT, 0},
    {"master v4 src", 3, {CTA_TUPLE_MASTER, CTA_TUPLE_IP, CTA_IP_V4_SRC}, 4, 5, REF_EXIT, 0},
    {"master v6 dst", 3, {CTA_TUPLE_MASTER, CTA_TUPLE_IP, CTA_IP_V6_DST}, 16, 4, REF_EXIT, 0},
    {"master l4 proto", 3, {CTA_TUPLE_MASTER, CTA_TUPLE_PROTO, CTA_PROTO_NUM}, 1, 2, REF_EXIT, 0},
    {"master sport", 3, {CTA_TUPLE_MASTER, CTA_TUPLE_PROTO, CTA_PROTO_SRC_PORT}, 2, 4, REF_EXIT, 0},
    {"orig dport", 3, {CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_DST_PORT}, 2, 1, REF_EXIT, 0},
    {"orig icmp id", 3, {CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_ICMP_ID}, 2, 3, REF_EXIT, 0},
    {"reply icmp code",
     3,
     {CTA_TUPLE_REPLY, CTA_TUPLE_PROTO, CTA_PROTO_ICMP_CODE},
     1,
     0,
     REF_EXIT,
     0},
    {"orig icmpv6 id",
     3,
     {CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_ICMPV6_ID},
     2,
     1,
     REF_EXIT,
     0},
    {"orig icmpv6 type",
     3,
     {CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_ICMPV6_TYPE},
     1,
     2,
     REF_EXIT,
     0},
    {"nat seq orig pos", 2, {CTA_NAT_SEQ_ADJ_ORIG, CTA_NAT_SEQ_CORRECTION_POS}, 4, 3, REF_EXIT, 0},
    {"nat seq orig before",
     2,
     {CTA_NAT_SEQ_ADJ_ORIG, CTA_NAT_SEQ_OFFSET_BEFORE},
     4,
     8,
     REF_EXIT,
     0},
    {"nat seq reply after",
     2,
     {CTA_NAT_SEQ_ADJ_REPLY, CTA_NAT_SEQ_OFFSET_AFTER},
     4,
     2,
     REF_EXIT,
     0},
    {"nat seq reply pos",
     2,
     {CTA_NAT_SEQ_ADJ_REPLY, CTA_NAT_SEQ_CORRECTION_POS},
     4,
     0,
     REF_EXIT,
     0},
    {"tcp", 2, {CTA_PROTOINFO, CTA_PROTOINFO_TCP}, 0, 2, REF_EXIT, 0},
    {"sctp", 2, {CTA_PROTOINFO, CTA_PROTOINFO_SCTP}, 0, 1, REF_EXIT, 0},
    {"dccp", 2, {CTA_PROTOINFO, CTA_PROTOINFO_DCCP}, 0, 3, REF_EXIT, 0},
    {"protoinfo past the table", 2, {CTA_PROTOINFO, CTA_PROTOINFO_MAX + 1}, -1, 4, REF_UNSAFE, 0},
    {"protoinfo past the table, last",
     2,
     {CTA_PROTOINFO, CTA_PROTOINFO_TCP_MAX},
     -1,
     0,
     REF_UNSAFE,
     0},
    {"tcp state",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE},
     1,
     2,
     REF_EXIT,
     0},
    {"tcp wscale",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_WSCALE_REPLY},
     1,
     0,
     REF_EXIT,
     0},
    {"tcp flags",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL},
     2,
     4,
     REF_EXIT,
     0},
    {"sctp state",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_SCTP, CTA_PROTOINFO_SCTP_STATE},
     1,
     4,
     REF_EXIT,
     0},
    {"sctp vtag",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_SCTP, CTA_PROTOINFO_SCTP_VTAG_REPLY},
     4,
     2,
     REF_EXIT,
     0},
    {"dccp role",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_DCCP_ROLE},
     1,
     2,
     REF_EXIT,
     0},
    {"dccp handshake seq",
     3,
     {CTA_PROTOINFO, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ},
     8,
     4,
     REF_EXIT,
     0},
    {"packets", 2, {CTA_COUNTERS_ORIG, CTA_COUNTERS_PACKETS}, 8, 4, REF_EXIT, 0},
    {"bytes", 2, {CTA_COUNTERS_REPLY, CTA_COUNTERS_BYTES}, 8, 7, REF_EXIT, 0},
    {"packets32", 2, {CTA_COUNTERS_ORIG, CTA_COUNTERS32_PACKETS}, 4, 8, REF_EXIT, 0},
    {"bytes32", 2, {CTA_COUNTERS_REPLY, CTA_COUNTERS32_BYTES}, 4, 2, REF_EXIT, 0},
    {"helper name", 2, {CTA_HELP, CTA_HELP_NAME}, 4, 0, REF_EXIT, 1},
    {"helper name without NUL", 2, {CTA_HELP, CTA_HELP_NAME}, 4, 4, REF_UNSAFE, 1},
    {"secctx name", 2, {CTA_SECCTX, CTA_SECCTX_NAME}, 8, 0, REF_EXIT, 1},
    {"secctx name without NUL", 2, {CTA_SECCTX, CTA_SECCTX_NAME}, 8, 6, REF_UNSAFE, 1},
    {"timestamp start", 2, {CTA_TIMESTAMP, CTA_TIMESTAMP_START}, 8, 4, REF_EXIT, 0},
    {"timestamp stop", 2, {CTA_TIMESTAMP, CTA_TIMESTAMP_STOP}, 8, 9, REF_EXIT, 0},
    {"synproxy isn", 2, {CTA_SYNPROXY, CTA_SYNPROXY_ISN}, 4, 2, REF_EXIT, 0},
    {"synproxy its", 2, {CTA_SYNPROXY, CTA_SYNPROXY_ITS}, 4, 8, REF_EXIT, 0},
    {"synproxy tsoff", 2, {CTA_SYNPROXY, CTA_SYNPROXY_TSOFF}, 4, 0, REF_EXIT, 0},
};

static struct nlmsghdr *with_path(const struct len_case *c, int len, int nul)
{
	static char fill[8200];
	struct nlmsghdr *nlh = udp4(IPCTNL_MSG_CT_NEW, 0, 11);
	struct nlattr *nest[3];

	memset(fill, 'x', sizeof(fill));
	if (nul && len > 0)
		fill[len - 1] = '\0';
	for (int d = 0; d < c->depth - 1; d++)
		nest[d] = mnl_attr_nest_start(nlh, c->path[d]);
	mnl_attr_put(nlh, c->path[c->depth - 1], (size_t)len, fill);
	for (int d = c->depth - 2; d >= 0; d--)
		mnl_attr_nest_end(nlh, nest[d]);
	return nlh;
}

/* A wrong length of every kind libnetfilter_conntrack parses: nlg_ct_parse
 * refuses it without the process exiting (it runs in a child, so the bug, if
 * back, shows as that child's exit), and where the library would exit, it
 * does (the message does reach its check). The right length of each kind is
 * not refused, and both decoders agree on it. */
static void test_parse_wrong_lengths(void **state)
{
	struct nlg_ct_parser *p = nlg_ct_parser_new();
	struct nlg_ct ct, ref;
	unsigned exits = 0;
	int rr;

	(void)state;
	for (size_t i = 0; i < sizeof(len_cases) / sizeof(len_cases[0]); i++) {
		const struct len_case *c = &len_cases[i];
		struct nlmsghdr *nlh;
		int status;

		if (c->good >= 0) {
			nlh = with_path(c, c->good, c->str);
			if (nlg_ct_decode(nlh, &ct) == -1)
				fail_msg("%s: %d bytes refused", c->what, c->good);
			(void)parse(p, nlh, &ct, NULL);
		}
		nlh = with_path(c, c->bad, 0);
		status = parse_in_child(p, nlh);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("%s: %d bytes: nlg_ct_parse %s (status 0x%x)", c->what, c->bad,
				 WIFEXITED(status) && WEXITSTATUS(status) == 1 ? "exited"
									       : "failed",
				 status);
		if (nlg_ct_decode(nlh, &ct) != -1)
			fail_msg("%s: %d bytes not refused by the fast decoder", c->what, c->bad);
		assert_int_equal(nlg_ct_parse(p, nlh, &ct, NULL), -EPROTO);
		switch (c->ref) {
		case REF_EXIT:
			if (!ref_in_child(p, nlh, &rr, &ref))
				fail_msg("%s: %d bytes: the reference did not exit", c->what,
					 c->bad);
			exits++;
			break;
		case REF_FAIL:
			assert_false(ref_in_child(p, nlh, &rr, &ref));
			assert_int_equal(rr, -EPROTO);
			break;
		default: /* out of bounds: not worth running */
			assert_true(ref_unsafe(nlh));
			break;
		}
	}
	print_message("%u kinds the reference exits on, all refused\n", exits);
	/* one message with an attribute of every kind, of the right lengths: handed
	 * over, and decoded by the reference as the kernel meant it */
	struct nlmsghdr *nlh = every_kind();
	struct nlattr *n, *m;
	assert_int_equal(nlg_ct_decode(nlh, &ct), 1);
	assert_int_equal(parse(p, nlh, &ct, NULL), 0);
	assert_string_equal(ct.helper, "ftp");
	assert_int_equal(ct.tcp_state, 3);
	assert_int_equal(ct.orig_dport, 21);
	assert_int_equal(ct.labels[0], 4);
	assert_int_equal(ct.start_ns, 5);
	/* SCTP and DCCP state, which only the reference reads (not recorded) */
	for (int proto = 0; proto < 2; proto++) {
		nlh = msg(IPCTNL_MSG_CT_NEW, 0, AF_INET6, proto ? IPPROTO_DCCP : IPPROTO_SCTP,
			  "2001:db8::1", "2001:db8::2", 5000, 5001, 13);
		n = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
		if (proto) {
			m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_DCCP);
			mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_STATE, 1);
			mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_ROLE, 0);
			mnl_attr_put_u64(nlh, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, htobe64(9));
		} else {
			m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_SCTP);
			mnl_attr_put_u8(nlh, CTA_PROTOINFO_SCTP_STATE, 3);
			mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, htonl(7));
			mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_REPLY, htonl(8));
		}
		mnl_attr_nest_end(nlh, m);
		mnl_attr_nest_end(nlh, n);
		assert_int_equal(nlg_ct_decode(nlh, &ct), 1);
		assert_int_equal(parse(p, nlh, &ct, NULL), 0);
		assert_int_equal(ct.orig_sport, 5000);
	}
	nlg_ct_parser_free(p);
}

/* Reliable DESTROY: flows out of the table whose DESTROY the kernel still
 * holds (the dying list) are not gone unseen: no synthetic DESTROY for them,
 * and the real one, when it comes, is an ordinary DESTROY of a known flow. */
static void test_table_resync_dying(void **state)
{
	struct nlg_ct_table *t = nlg_ct_table_new();
	struct gone g = {.n = 0};
	int orphan;

	(void)state;
	for (uint32_t i = 1; i <= 4; i++) {
		struct nlg_ct ct = rec(NLG_CT_NEW, i, (uint16_t)i);
		assert_int_equal(nlg_ct_table_event(t, &ct, &orphan), 1);
	}
	/* the table dump shows 1; 2 is on the dying list; 3 was also dying but
	 * its DESTROY arrived while the dumps ran; 4 vanished unseen; 9 is on
	 * the dying list but was never known */
	struct nlg_ct d1 = rec(NLG_CT_NEW, 1, 1), y2 = rec(NLG_CT_NEW, 2, 2),
		      y3 = rec(NLG_CT_NEW, 3, 3), y9 = rec(NLG_CT_NEW, 9, 9);
	nlg_ct_table_sync_begin(t);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d1), 0);
	struct nlg_ct x3 = rec(NLG_CT_DESTROY, 3, 3);
	assert_int_equal(nlg_ct_table_event(t, &x3, &orphan), 1);
	assert_int_equal(orphan, 0);
	assert_int_equal(nlg_ct_table_sync_dying(t, &y2), 1);
	assert_int_equal(nlg_ct_table_sync_dying(t, &y3), 0);
	assert_int_equal(nlg_ct_table_sync_dying(t, &y9), 0);
	assert_int_equal(nlg_ct_table_sync_end(t, on_gone, &g), 1);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.ids[0], 4);
	assert_int_equal(nlg_ct_table_count(t), 2); /* 1, and 2 until its DESTROY */
	assert_true(nlg_ct_table_has(t, &y2));
	assert_false(nlg_ct_table_has(t, &y9)); /* dying-only flows are not added */
	/* the kernel re-delivers 2's DESTROY: a known flow, not an orphan */
	struct nlg_ct x2 = rec(NLG_CT_DESTROY, 2, 2);
	assert_int_equal(nlg_ct_table_event(t, &x2, &orphan), 1);
	assert_int_equal(orphan, 0);
	assert_int_equal(nlg_ct_table_count(t), 1);
	/* a later resync that shows only 1 makes up nothing more */
	nlg_ct_table_sync_begin(t);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d1), 0);
	assert_int_equal(nlg_ct_table_sync_end(t, on_gone, &g), 0);
	assert_int_equal(g.n, 1);
	/* dying for a flow seen in the table dump too changes nothing */
	nlg_ct_table_sync_begin(t);
	assert_int_equal(nlg_ct_table_sync_flow(t, &d1), 0);
	assert_int_equal(nlg_ct_table_sync_dying(t, &d1), 1);
	assert_int_equal(nlg_ct_table_sync_end(t, on_gone, &g), 0);
	assert_int_equal(nlg_ct_table_count(t), 1);
	nlg_ct_table_free(t);
}

static void test_dying_request(void **state)
{
	char rq[256];
	struct nlg_ct_filter f = {.family = AF_INET6};
	struct nlmsghdr *nlh = nlg_ct_dying_request(rq, sizeof(rq), &f);
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);

	(void)state;
	assert_int_equal(NFNL_SUBSYS_ID(nlh->nlmsg_type), NFNL_SUBSYS_CTNETLINK);
	assert_int_equal(NFNL_MSG_TYPE(nlh->nlmsg_type), IPCTNL_MSG_CT_GET_DYING);
	assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
	assert_int_equal(nfg->nfgen_family, AF_INET6);
	assert_int_equal(nlh->nlmsg_len, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*nfg)));
	nlh = nlg_ct_dying_request(rq, sizeof(rq), NULL);
	nfg = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(nfg->nfgen_family, AF_UNSPEC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_udp4_new),
	    cmocka_unit_test(test_parse_destroy_acct_tcp6),
	    cmocka_unit_test(test_parse_icmp),
	    cmocka_unit_test(test_parse_malformed),
	    cmocka_unit_test(test_parse_decoders_agree),
	    cmocka_unit_test(test_parse_mutations),
	    cmocka_unit_test(test_parse_wrong_lengths),
	    cmocka_unit_test(test_filter_and_request),
	    cmocka_unit_test(test_table_events),
	    cmocka_unit_test(test_table_many),
	    cmocka_unit_test(test_table_resync),
	    cmocka_unit_test(test_table_resync_dying),
	    cmocka_unit_test(test_dying_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
