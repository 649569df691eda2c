/* Writes the seed corpus of fuzz_ct_parse (tests/fuzz/corpus/ct_parse/): the
 * well-formed ctnetlink messages tests/unit/test_conntrack.c builds, one per
 * file, each checked to parse first.
 *   fuzz_gen_ct OUTDIR */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include "nlgate/conntrack.h"

static char buf[4096];

/* A conntrack message as the kernel sends it: nfgenmsg, tuples, id, status
 * (the unit tests' msg()). */
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

static void put_u64_nest(struct nlmsghdr *nlh, int type, int a, uint64_t va, int b, uint64_t vb)
{
	struct nlattr *n = mnl_attr_nest_start(nlh, type);

	mnl_attr_put_u64(nlh, a, htobe64(va));
	mnl_attr_put_u64(nlh, b, htobe64(vb));
	mnl_attr_nest_end(nlh, n);
}

static void put_tcp_state(struct nlmsghdr *nlh, uint8_t state)
{
	struct nlattr *n = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
	struct nlattr *m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);

	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, state);
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, 7);
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_REPLY, 7);
	mnl_attr_put_u16(nlh, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, 0x2323);
	mnl_attr_put_u16(nlh, CTA_PROTOINFO_TCP_FLAGS_REPLY, 0x2323);
	mnl_attr_nest_end(nlh, m);
	mnl_attr_nest_end(nlh, n);
}

/* A TCP flow carrying an attribute of every kind the reference parses
 * (the unit tests' every_kind()). */
static struct nlmsghdr *every_kind(void)
{
	struct nlmsghdr *nlh =
	    msg(IPCTNL_MSG_CT_NEW, 0, AF_INET, IPPROTO_TCP, "10.0.0.1", "10.0.0.2", 40000, 21, 12);
	uint32_t labels[4] = {0x4u, 0, 0, 0};
	struct nlattr *n, *m;

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
	put_tcp_state(nlh, 3);
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
	put_u64_nest(nlh, CTA_COUNTERS_ORIG, CTA_COUNTERS_PACKETS, 2, CTA_COUNTERS_BYTES, 120);
	n = mnl_attr_nest_start(nlh, CTA_TIMESTAMP);
	mnl_attr_put_u64(nlh, CTA_TIMESTAMP_START, htobe64(5));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_put(nlh, CTA_LABELS, sizeof(labels), labels);
	mnl_attr_put_u16(nlh, CTA_ZONE, htons(1));
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(1));
	return nlh;
}

static struct nlmsghdr *build(int i)
{
	uint32_t labels[4] = {0x80000001u, 0, 0x10u, 0};
	struct nlmsghdr *nlh;
	struct nlattr *n, *m;

	switch (i) {
	case 0: /* udp4-new */
		nlh = msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, AF_INET, IPPROTO_UDP,
			  "10.0.0.1", "10.0.0.2", 1234, 53, 77);
		mnl_attr_put_u32(nlh, CTA_MARK, htonl(0x42));
		mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(30));
		return nlh;
	case 1: /* tcp6-destroy */
		nlh = msg(IPCTNL_MSG_CT_DELETE, 0, AF_INET6, IPPROTO_TCP, "2001:db8::1",
			  "2001:db8::2", 40000, 443, 9);
		put_tcp_state(nlh, 7);
		put_u64_nest(nlh, CTA_COUNTERS_ORIG, CTA_COUNTERS_PACKETS, 10, CTA_COUNTERS_BYTES,
			     1000);
		put_u64_nest(nlh, CTA_COUNTERS_REPLY, CTA_COUNTERS_PACKETS, 5, CTA_COUNTERS_BYTES,
			     500);
		put_u64_nest(nlh, CTA_TIMESTAMP, CTA_TIMESTAMP_START, 1000000000ull,
			     CTA_TIMESTAMP_STOP, 3000000000ull);
		mnl_attr_put_u16(nlh, CTA_ZONE, htons(3));
		return nlh;
	case 2: /* icmp4 */
		return msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, AF_INET, IPPROTO_ICMP, "192.0.2.1",
			   "192.0.2.2", 4242, 0, 5);
	case 3: /* icmp6 */
		return msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, AF_INET6, IPPROTO_ICMPV6, "2001:db8::1",
			   "2001:db8::2", 7, 0, 2);
	case 4: /* udp4-labels: labels, 32-bit counters, secmark, use */
		nlh = msg(IPCTNL_MSG_CT_DELETE, 0, AF_INET, IPPROTO_UDP, "10.0.0.1", "10.0.0.2",
			  1234, 53, 3);
		mnl_attr_put(nlh, CTA_LABELS, sizeof(labels), labels);
		n = mnl_attr_nest_start(nlh, CTA_COUNTERS_ORIG);
		mnl_attr_put_u32(nlh, CTA_COUNTERS32_PACKETS, htonl(4));
		mnl_attr_put_u32(nlh, CTA_COUNTERS32_BYTES, htonl(400));
		mnl_attr_nest_end(nlh, n);
		mnl_attr_put_u32(nlh, CTA_SECMARK, htonl(9));
		mnl_attr_put_u32(nlh, CTA_USE, htonl(1));
		return nlh;
	case 5: /* every-kind */
		return every_kind();
	default: /* sctp6, dccp6 */
		nlh = msg(IPCTNL_MSG_CT_NEW, 0, AF_INET6, i == 6 ? IPPROTO_SCTP : IPPROTO_DCCP,
			  "2001:db8::1", "2001:db8::2", 5000, 5001, 13);
		n = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
		if (i == 6) {
			m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_SCTP);
			mnl_attr_put_u8(nlh, CTA_PROTOINFO_SCTP_STATE, 3);
			mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, htonl(7));
			mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_REPLY, htonl(8));
		} else {
			m = mnl_attr_nest_start(nlh, CTA_PROTOINFO_DCCP);
			mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_STATE, 1);
			mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_ROLE, 0);
			mnl_attr_put_u64(nlh, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, htobe64(9));
		}
		mnl_attr_nest_end(nlh, m);
		mnl_attr_nest_end(nlh, n);
		return nlh;
	}
}

static const char *const names[] = {"udp4-new",	   "tcp6-destroy", "icmp4", "icmp6",
				    "udp4-labels", "every-kind",   "sctp6", "dccp6"};

int main(int argc, char **argv)
{
	struct nlg_ct_parser *p;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	p = nlg_ct_parser_new();
	if (!p)
		return 1;
	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
		struct nlmsghdr *nlh = build(i);
		struct nlg_err err = {{0}};
		struct nlg_ct ct;
		char path[4096];
		FILE *f;
		int ok;

		if (nlg_ct_parse(p, nlh, &ct, &err) < 0) {
			fprintf(stderr, "%s: %s does not parse: %s\n", argv[0], names[i], err.msg);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/%s.bin", argv[1], names[i]);
		f = fopen(path, "wb");
		if (!f) {
			fprintf(stderr, "%s: %s: %s\n", argv[0], path, strerror(errno));
			return 1;
		}
		ok = fwrite(nlh, 1, nlh->nlmsg_len, f) == nlh->nlmsg_len;
		if (fclose(f) != 0 || !ok) {
			fprintf(stderr, "%s: %s: write failed\n", argv[0], path);
			return 1;
		}
	}
	nlg_ct_parser_free(p);
	return 0;
}
