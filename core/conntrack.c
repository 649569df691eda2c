/* The conntrack source: ctnetlink event sockets (reliable DESTROY, best-effort
 * NEW/UPDATE with loss detection), table dumps, parsing with
 * libnetfilter_conntrack into `ct` records, and the flow table that lets a
 * resync dump repair what the kernel could not deliver. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "nlgate/conntrack.h"
#include "nlgate/nl.h"

/* ---- options ------------------------------------------------------------- */

void nlg_ct_opts_default(struct nlg_ct_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->events = NLG_CT_EV_ALL;
	o->reliable = NLG_CT_RELIABLE_DESTROY;
	o->initial_dump = 1;
	o->resync = 1;
}

int nlg_ct_parse_events(const char *s, unsigned *events)
{
	unsigned ev = 0;

	while (*s) {
		size_t n = strcspn(s, ", ");
		if (n == 3 && !strncmp(s, "new", 3))
			ev |= NLG_CT_EV_NEW;
		else if (n == 6 && !strncmp(s, "update", 6))
			ev |= NLG_CT_EV_UPDATE;
		else if (n == 7 && !strncmp(s, "destroy", 7))
			ev |= NLG_CT_EV_DESTROY;
		else if (n == 3 && !strncmp(s, "all", 3))
			ev |= NLG_CT_EV_ALL;
		else if (n)
			return -EINVAL;
		s += n;
		s += strspn(s, ", ");
	}
	if (!ev)
		return -EINVAL;
	*events = ev;
	return 0;
}

/* ---- parsing ------------------------------------------------------------- */

struct nlg_ct_parser {
	struct nf_conntrack *ct;
	size_t size; /* sizeof(struct nf_conntrack), to reset it without reallocating */
};

struct nlg_ct_parser *nlg_ct_parser_new(void)
{
	struct nlg_ct_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ct = nfct_new();
	if (!p->ct) {
		free(p);
		return NULL;
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	p->size = nfct_maxsize();
#pragma GCC diagnostic pop
	return p;
}

void nlg_ct_parser_free(struct nlg_ct_parser *p)
{
	if (!p)
		return;
	if (p->ct)
		nfct_destroy(p->ct);
	free(p);
}

/* Clear the reused object. Labels, helper info and the security context are
 * heap objects it owns: only then (rare) is it rebuilt; otherwise zeroing it
 * is what nfct_new() would have given us. */
static int parser_reset(struct nlg_ct_parser *p)
{
	if (nfct_attr_is_set(p->ct, ATTR_CONNLABELS) > 0 ||
	    nfct_attr_is_set(p->ct, ATTR_CONNLABELS_MASK) > 0 ||
	    nfct_attr_is_set(p->ct, ATTR_HELPER_INFO) > 0 ||
	    nfct_attr_is_set(p->ct, ATTR_SECCTX) > 0) {
		nfct_destroy(p->ct);
		p->ct = nfct_new();
		return p->ct ? 0 : -ENOMEM;
	}
	memset(p->ct, 0, p->size);
	return 0;
}

static void get_addr(const struct nf_conntrack *ct, int family, int a4, int a6,
		     struct nlg_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET && nfct_attr_is_set(ct, a4) > 0) {
		uint32_t v = nfct_get_attr_u32(ct, a4);
		out->family = AF_INET;
		memcpy(out->bytes, &v, 4);
	} else if (family == AF_INET6 && nfct_attr_is_set(ct, a6) > 0) {
		out->family = AF_INET6;
		memcpy(out->bytes, nfct_get_attr(ct, a6), 16);
	}
}

/* Top-level attributes must tile the payload exactly: libmnl's walk stops
 * quietly at a broken one, and we would rather say so. */
static int check_attrs(const struct nlmsghdr *nlh)
{
	const struct nlattr *a;
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
	size_t end = nlh->nlmsg_len;

	while (off + sizeof(struct nlattr) <= end) {
		a = (const struct nlattr *)((const char *)nlh + off);
		if (a->nla_len < sizeof(struct nlattr) || off + a->nla_len > end)
			return -1;
		off += NLMSG_ALIGN(a->nla_len);
	}
	return off < end ? -1 : 0; /* bytes left that are no attribute */
}

int nlg_ct_parse_nfct(struct nlg_ct_parser *p, const struct nlmsghdr *nlh, struct nlg_ct *out,
		      struct nlg_err *err)
{
	const struct nfgenmsg *nfg;
	const struct nf_conntrack *ct;
	unsigned type;
	int family;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg))
		return nlg_err_set(err, EPROTO, "ctnetlink: message of %u bytes is too short",
				   nlh->nlmsg_len);
	if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK)
		return nlg_err_set(err, EPROTO, "ctnetlink: not a conntrack message (type 0x%x)",
				   nlh->nlmsg_type);
	type = NFNL_MSG_TYPE(nlh->nlmsg_type);
	if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE)
		return nlg_err_set(err, EPROTO, "ctnetlink: unexpected message type %u", type);
	nfg = (const struct nfgenmsg *)NLMSG_DATA(nlh);
	if (nfg->nfgen_family != AF_INET && nfg->nfgen_family != AF_INET6)
		return nlg_err_set(err, EPROTO, "ctnetlink: unsupported family %u",
				   nfg->nfgen_family);
	if (check_attrs(nlh) < 0)
		return nlg_err_set(err, EPROTO, "ctnetlink: truncated or garbled attribute");
	if (parser_reset(p) < 0)
		return nlg_err_set(err, ENOMEM, "ctnetlink: out of memory");
	if (nfct_nlmsg_parse(nlh, p->ct) < 0)
		return nlg_err_set(err, EPROTO, "ctnetlink: malformed conntrack attributes");
	ct = p->ct;
	if (nfct_attr_is_set(ct, ATTR_ORIG_L3PROTO) <= 0 ||
	    nfct_attr_is_set(ct, ATTR_ORIG_L4PROTO) <= 0)
		return nlg_err_set(err, EPROTO, "ctnetlink: message without an original tuple");
	family = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO);
	if (family != AF_INET && family != AF_INET6)
		return nlg_err_set(err, EPROTO, "ctnetlink: tuple of unsupported family %d",
				   family);

	memset(out, 0, sizeof(*out));
	if (type == IPCTNL_MSG_CT_DELETE)
		out->event = NLG_CT_DESTROY;
	else if (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL))
		out->event = NLG_CT_NEW;
	else
		out->event = NLG_CT_UPDATE;
	out->family = (uint8_t)family;
	out->proto = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
	get_addr(ct, family, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, &out->orig_src);
	get_addr(ct, family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, &out->orig_dst);
	if (!out->orig_src.family || !out->orig_dst.family)
		return nlg_err_set(err, EPROTO, "ctnetlink: original tuple without addresses");
	if (nfct_attr_is_set(ct, ATTR_REPL_L3PROTO) > 0) {
		get_addr(ct, family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, &out->reply_src);
		get_addr(ct, family, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, &out->reply_dst);
		out->present |= NLG_CT_HAS_REPLY;
	}
	switch (out->proto) {
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		out->icmp_type = nfct_get_attr_u8(ct, ATTR_ICMP_TYPE);
		out->icmp_code = nfct_get_attr_u8(ct, ATTR_ICMP_CODE);
		out->icmp_id = ntohs(nfct_get_attr_u16(ct, ATTR_ICMP_ID));
		out->present |= NLG_CT_HAS_ICMP;
		break;
	default:
		if (nfct_attr_is_set(ct, ATTR_ORIG_PORT_SRC) > 0) {
			out->orig_sport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC));
			out->orig_dport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
			out->reply_sport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
			out->reply_dport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
			out->present |= NLG_CT_HAS_PORTS;
		}
		break;
	}
	if (out->proto == IPPROTO_TCP && nfct_attr_is_set(ct, ATTR_TCP_STATE) > 0) {
		out->tcp_state = nfct_get_attr_u8(ct, ATTR_TCP_STATE);
		out->present |= NLG_CT_HAS_TCP;
	}
	out->id = nfct_get_attr_u32(ct, ATTR_ID);
	out->status = nfct_get_attr_u32(ct, ATTR_STATUS);
	if (nfct_attr_is_set(ct, ATTR_MARK) > 0) {
		out->mark = nfct_get_attr_u32(ct, ATTR_MARK);
		out->present |= NLG_CT_HAS_MARK;
	}
	if (nfct_attr_is_set(ct, ATTR_ZONE) > 0) {
		out->zone = nfct_get_attr_u16(ct, ATTR_ZONE);
		out->present |= NLG_CT_HAS_ZONE;
	}
	if (nfct_attr_is_set(ct, ATTR_TIMEOUT) > 0) {
		out->timeout = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
		out->present |= NLG_CT_HAS_TIMEOUT;
	}
	if (nfct_attr_is_set(ct, ATTR_USE) > 0) {
		out->use = nfct_get_attr_u32(ct, ATTR_USE);
		out->present |= NLG_CT_HAS_USE;
	}
	if (nfct_attr_is_set(ct, ATTR_SECMARK) > 0) {
		out->secmark = nfct_get_attr_u32(ct, ATTR_SECMARK);
		out->present |= NLG_CT_HAS_SECMARK;
	}
	if (nfct_attr_is_set(ct, ATTR_ORIG_COUNTER_PACKETS) > 0) {
		out->orig_packets = nfct_get_attr_u64(ct, ATTR_ORIG_COUNTER_PACKETS);
		out->orig_bytes = nfct_get_attr_u64(ct, ATTR_ORIG_COUNTER_BYTES);
		out->reply_packets = nfct_get_attr_u64(ct, ATTR_REPL_COUNTER_PACKETS);
		out->reply_bytes = nfct_get_attr_u64(ct, ATTR_REPL_COUNTER_BYTES);
		out->present |= NLG_CT_HAS_ACCT;
	}
	if (nfct_attr_is_set(ct, ATTR_TIMESTAMP_START) > 0) {
		out->start_ns = nfct_get_attr_u64(ct, ATTR_TIMESTAMP_START);
		out->present |= NLG_CT_HAS_TSTART;
	}
	if (nfct_attr_is_set(ct, ATTR_TIMESTAMP_STOP) > 0) {
		out->stop_ns = nfct_get_attr_u64(ct, ATTR_TIMESTAMP_STOP);
		out->present |= NLG_CT_HAS_TSTOP;
	}
	if (nfct_attr_is_set(ct, ATTR_HELPER_NAME) > 0) {
		const char *h = nfct_get_attr(ct, ATTR_HELPER_NAME);
		snprintf(out->helper, sizeof(out->helper), "%s", h ? h : "");
		out->present |= NLG_CT_HAS_HELPER;
	}
	if (nfct_attr_is_set(ct, ATTR_CONNLABELS) > 0) {
		const struct nfct_bitmask *b = nfct_get_attr(ct, ATTR_CONNLABELS);
		unsigned max = b ? nfct_bitmask_maxbit(b) : 0;
		for (unsigned bit = 0; b && bit <= max && bit < 8 * NLG_CT_LABEL_BYTES; bit++)
			if (nfct_bitmask_test_bit(b, bit))
				out->labels[bit / 8] |= (uint8_t)(1u << (bit % 8));
		out->present |= NLG_CT_HAS_LABELS;
	}
	return 0;
}

/* ---- the fast decoder ---------------------------------------------------- */

/* The events a flood brings carry a dozen attributes; walking them with libmnl
 * and reading them in place costs a fraction of nfct_nlmsg_parse() (which
 * fills and then reads back a 400-byte object through one call per field).
 * The rule that keeps the two decoders equal: the fast one decodes only what
 * it models exactly (these attributes, one address family, ports or ICMP but
 * not both) and hands anything else to the reference, nfct_nlmsg_parse().
 * It rejects itself what the reference's length checks reject: on those,
 * libnetfilter_conntrack 1.0.9 prints "ctnetlink kernel ABI is broken" and
 * exits the process. tests/unit/test_conntrack.c compares both decoders on
 * every crafted and mutated message. */
struct fast_tuple {
	const struct nlattr *src, *dst, *num, *sport, *dport, *itype, *icode, *iid;
};

enum { FAST_BAD = -1, FAST_OK = 0, FAST_NO = 1 };

/* Per attribute type of one level: the reference's length rule (len > 0: at
 * least that many bytes; -1: nested, so empty or a header at least; 0: none)
 * and whether the fast decoder models the type. */
struct fast_rule {
	int8_t len;
	uint8_t known;
};
/* One member of a level into tb[type], the last one winning as in libmnl's
 * parsers. Returns FAST_BAD for a length the reference refuses, FAST_NO for
 * a type not modelled here. */
static int fast_one(const struct nlattr *a, const struct fast_rule *rule, unsigned max,
		    const struct nlattr **tb)
{
	unsigned type = mnl_attr_get_type(a);
	uint16_t len = mnl_attr_get_payload_len(a);

	if (type > max)
		return FAST_NO;
	if (rule[type].len > 0 ? len != rule[type].len
			       : rule[type].len < 0 && len && len < MNL_ATTR_HDRLEN)
		return FAST_BAD;
	if (!rule[type].known)
		return FAST_NO;
	tb[type] = a;
	return FAST_OK;
}

/* BAD anywhere wins over NO anywhere, which wins over OK */
static int fast_join(int a, int b)
{
	if (a == FAST_BAD || b == FAST_BAD)
		return FAST_BAD;
	return a == FAST_NO || b == FAST_NO ? FAST_NO : FAST_OK;
}

/* The members of a nested attribute, or of the message when nest is NULL. */
static int fast_walk(const struct nlmsghdr *nlh, const struct nlattr *nest,
		     const struct fast_rule *rule, unsigned max, const struct nlattr **tb)
{
	const struct nlattr *a;
	int r = FAST_OK;

	if (nest) {
		mnl_attr_for_each_nested(a, nest) r = fast_join(r, fast_one(a, rule, max, tb));
	} else {
		mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) r =
		    fast_join(r, fast_one(a, rule, max, tb));
	}
	return r;
}

static const struct fast_rule top_rule[CTA_MAX + 1] = {
    [CTA_TUPLE_ORIG] = {-1, 1},
    [CTA_TUPLE_REPLY] = {-1, 1},
    [CTA_STATUS] = {4, 1},
    [CTA_PROTOINFO] = {-1, 1},
    [CTA_TIMEOUT] = {4, 1},
    [CTA_MARK] = {4, 1},
    [CTA_COUNTERS_ORIG] = {-1, 1},
    [CTA_COUNTERS_REPLY] = {-1, 1},
    [CTA_USE] = {4, 1},
    [CTA_ID] = {4, 1},
    [CTA_ZONE] = {2, 1},
    [CTA_SECMARK] = {4, 1},
    [CTA_TIMESTAMP] = {-1, 1},
    [CTA_LABELS] = {0, 1},
    [CTA_TUPLE_MASTER] = {-1, 0},
    [CTA_NAT_SEQ_ADJ_ORIG] = {-1, 0},
    [CTA_NAT_SEQ_ADJ_REPLY] = {-1, 0},
    [CTA_HELP] = {-1, 0},
    [CTA_SECCTX] = {-1, 0},
};
static const struct fast_rule tuple_rule[CTA_TUPLE_MAX + 1] = {
    [CTA_TUPLE_IP] = {-1, 1}, [CTA_TUPLE_PROTO] = {-1, 1}};
static const struct fast_rule ip4_rule[CTA_IP_MAX + 1] = {[CTA_IP_V4_SRC] = {4, 1},
							  [CTA_IP_V4_DST] = {4, 1},
							  [CTA_IP_V6_SRC] = {16, 0},
							  [CTA_IP_V6_DST] = {16, 0}};
static const struct fast_rule ip6_rule[CTA_IP_MAX + 1] = {[CTA_IP_V4_SRC] = {4, 0},
							  [CTA_IP_V4_DST] = {4, 0},
							  [CTA_IP_V6_SRC] = {16, 1},
							  [CTA_IP_V6_DST] = {16, 1}};
static const struct fast_rule proto_rule[CTA_PROTO_MAX + 1] = {
    [CTA_PROTO_NUM] = {1, 1},	     [CTA_PROTO_SRC_PORT] = {2, 1},
    [CTA_PROTO_DST_PORT] = {2, 1},   [CTA_PROTO_ICMP_ID] = {2, 1},
    [CTA_PROTO_ICMP_TYPE] = {1, 1},  [CTA_PROTO_ICMP_CODE] = {1, 1},
    [CTA_PROTO_ICMPV6_ID] = {2, 1},  [CTA_PROTO_ICMPV6_TYPE] = {1, 1},
    [CTA_PROTO_ICMPV6_CODE] = {1, 1}};
static const struct fast_rule counters_rule[CTA_COUNTERS_MAX + 1] = {
    [CTA_COUNTERS_PACKETS] = {8, 1},
    [CTA_COUNTERS_BYTES] = {8, 1},
    [CTA_COUNTERS32_PACKETS] = {4, 1},
    [CTA_COUNTERS32_BYTES] = {4, 1}};
static const struct fast_rule ts_rule[CTA_TIMESTAMP_MAX + 1] = {
    [CTA_TIMESTAMP_START] = {8, 1}, [CTA_TIMESTAMP_STOP] = {8, 1}};
/* the reference bounds this level by CTA_PROTOINFO_TCP_MAX, past its own
 * table: anything but TCP is left to it */
static const struct fast_rule pinfo_rule[CTA_PROTOINFO_MAX + 1] = {
    [CTA_PROTOINFO_TCP] = {-1, 1}, [CTA_PROTOINFO_DCCP] = {-1, 0}, [CTA_PROTOINFO_SCTP] = {-1, 0}};
static const struct fast_rule tcp_rule[CTA_PROTOINFO_TCP_MAX + 1] = {
    [CTA_PROTOINFO_TCP_STATE] = {1, 1},
    [CTA_PROTOINFO_TCP_WSCALE_ORIGINAL] = {1, 1},
    [CTA_PROTOINFO_TCP_WSCALE_REPLY] = {1, 1},
    [CTA_PROTOINFO_TCP_FLAGS_ORIGINAL] = {2, 1},
    [CTA_PROTOINFO_TCP_FLAGS_REPLY] = {2, 1}};

static int fast_tuple(const struct nlattr *attr, int family, struct fast_tuple *t)
{
	const struct nlattr *tb[CTA_TUPLE_MAX + 1] = {0}, *ip[CTA_IP_MAX + 1] = {0},
						*pr[CTA_PROTO_MAX + 1] = {0};
	int v6 = family == AF_INET6, r;

	memset(t, 0, sizeof(*t));
	r = fast_walk(NULL, attr, tuple_rule, CTA_TUPLE_MAX, tb);
	if (tb[CTA_TUPLE_IP]) {
		r = fast_join(
		    r, fast_walk(NULL, tb[CTA_TUPLE_IP], v6 ? ip6_rule : ip4_rule, CTA_IP_MAX, ip));
		t->src = ip[v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC];
		t->dst = ip[v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST];
	}
	if (tb[CTA_TUPLE_PROTO]) {
		r = fast_join(r,
			      fast_walk(NULL, tb[CTA_TUPLE_PROTO], proto_rule, CTA_PROTO_MAX, pr));
		int ports = pr[CTA_PROTO_SRC_PORT] || pr[CTA_PROTO_DST_PORT];
		int icmp4 =
		    pr[CTA_PROTO_ICMP_ID] || pr[CTA_PROTO_ICMP_TYPE] || pr[CTA_PROTO_ICMP_CODE];
		int icmp6 = pr[CTA_PROTO_ICMPV6_ID] || pr[CTA_PROTO_ICMPV6_TYPE] ||
			    pr[CTA_PROTO_ICMPV6_CODE];
		/* these share storage in libnetfilter_conntrack's tuple */
		if (ports + icmp4 + icmp6 > 1)
			r = fast_join(r, FAST_NO);
		t->num = pr[CTA_PROTO_NUM];
		t->sport = pr[CTA_PROTO_SRC_PORT];
		t->dport = pr[CTA_PROTO_DST_PORT];
		t->itype = pr[icmp6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE];
		t->icode = pr[icmp6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE];
		t->iid = pr[icmp6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID];
	}
	return r;
}

static void fast_addr(const struct nlattr *a, int family, struct nlg_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!a)
		return;
	out->family = (uint8_t)family;
	memcpy(out->bytes, mnl_attr_get_payload(a), family == AF_INET6 ? 16 : 4);
}

static uint16_t fast_u16(const struct nlattr *a)
{
	return a ? ntohs(mnl_attr_get_u16(a)) : 0;
}

static uint32_t fast_u32(const struct nlattr *a)
{
	return a ? ntohl(mnl_attr_get_u32(a)) : 0;
}

/* CTA_COUNTERS_*: 64-bit counters win over the old 32-bit ones */
static void fast_counter(const struct nlattr **tb, int a64, int a32, uint64_t *out)
{
	if (tb[a64])
		*out = be64toh(mnl_attr_get_u64(tb[a64]));
	else if (tb[a32])
		*out = ntohl(mnl_attr_get_u32(tb[a32]));
}

int nlg_ct_decode(const struct nlmsghdr *nlh, struct nlg_ct *out)
{
	const struct nlattr *tb[CTA_MAX + 1] = {0}, *co[CTA_COUNTERS_MAX + 1] = {0},
					  *cr[CTA_COUNTERS_MAX + 1] = {0},
					  *ts[CTA_TIMESTAMP_MAX + 1] = {0},
					  *pi[CTA_PROTOINFO_MAX + 1] = {0},
					  *tcp[CTA_PROTOINFO_TCP_MAX + 1] = {0};
	const struct nfgenmsg *nfg;
	struct fast_tuple o, r;
	struct nlg_ct ct;
	unsigned type;
	int family, res;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg) ||
	    NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK)
		return FAST_NO;
	type = NFNL_MSG_TYPE(nlh->nlmsg_type);
	nfg = mnl_nlmsg_get_payload(nlh);
	family = nfg->nfgen_family;
	if ((type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) ||
	    (family != AF_INET && family != AF_INET6) || check_attrs(nlh) < 0)
		return FAST_NO; /* the reference says what is wrong */
	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	/* every level is walked before anything is decided: a member of a bad length
	 * anywhere is FAST_BAD, whatever else the message holds */
	res = fast_walk(nlh, NULL, top_rule, CTA_MAX, tb);
	if (tb[CTA_TUPLE_ORIG])
		res = fast_join(res, fast_tuple(tb[CTA_TUPLE_ORIG], family, &o));
	if (tb[CTA_TUPLE_REPLY])
		res = fast_join(res, fast_tuple(tb[CTA_TUPLE_REPLY], family, &r));
	if (tb[CTA_COUNTERS_ORIG])
		res = fast_join(res, fast_walk(NULL, tb[CTA_COUNTERS_ORIG], counters_rule,
					       CTA_COUNTERS_MAX, co));
	if (tb[CTA_COUNTERS_REPLY])
		res = fast_join(res, fast_walk(NULL, tb[CTA_COUNTERS_REPLY], counters_rule,
					       CTA_COUNTERS_MAX, cr));
	if (tb[CTA_TIMESTAMP])
		res = fast_join(res,
				fast_walk(NULL, tb[CTA_TIMESTAMP], ts_rule, CTA_TIMESTAMP_MAX, ts));
	if (tb[CTA_PROTOINFO])
		res = fast_join(
		    res, fast_walk(NULL, tb[CTA_PROTOINFO], pinfo_rule, CTA_PROTOINFO_MAX, pi));
	if (pi[CTA_PROTOINFO_TCP])
		res = fast_join(res, fast_walk(NULL, pi[CTA_PROTOINFO_TCP], tcp_rule,
					       CTA_PROTOINFO_TCP_MAX, tcp));
	if (res != FAST_OK)
		return res;
	if (!tb[CTA_TUPLE_ORIG] || !o.num || !o.src || !o.dst)
		return FAST_NO; /* the reference says what is missing */

	memset(&ct, 0, sizeof(ct));
	if (type == IPCTNL_MSG_CT_DELETE)
		ct.event = NLG_CT_DESTROY;
	else if (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL))
		ct.event = NLG_CT_NEW;
	else
		ct.event = NLG_CT_UPDATE;
	ct.family = (uint8_t)family;
	ct.proto = mnl_attr_get_u8(o.num);
	fast_addr(o.src, family, &ct.orig_src);
	fast_addr(o.dst, family, &ct.orig_dst);
	if (tb[CTA_TUPLE_REPLY]) {
		fast_addr(r.src, family, &ct.reply_src);
		fast_addr(r.dst, family, &ct.reply_dst);
		ct.present |= NLG_CT_HAS_REPLY;
	}
	switch (ct.proto) {
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		/* the reference reads these from the original tuple, whose
		 * storage they share with ports */
		if (o.sport || o.dport)
			return FAST_NO;
		ct.icmp_type = o.itype ? mnl_attr_get_u8(o.itype) : 0;
		ct.icmp_code = o.icode ? mnl_attr_get_u8(o.icode) : 0;
		ct.icmp_id = fast_u16(o.iid);
		ct.present |= NLG_CT_HAS_ICMP;
		break;
	default:
		if (o.sport) {
			ct.orig_sport = fast_u16(o.sport);
			ct.orig_dport = fast_u16(o.dport);
			ct.reply_sport = fast_u16(r.sport);
			ct.reply_dport = fast_u16(r.dport);
			ct.present |= NLG_CT_HAS_PORTS;
		}
		break;
	}
	if (ct.proto == IPPROTO_TCP && tcp[CTA_PROTOINFO_TCP_STATE]) {
		ct.tcp_state = mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_STATE]);
		ct.present |= NLG_CT_HAS_TCP;
	}
	ct.id = fast_u32(tb[CTA_ID]);
	ct.status = fast_u32(tb[CTA_STATUS]);
	if (tb[CTA_MARK]) {
		ct.mark = fast_u32(tb[CTA_MARK]);
		ct.present |= NLG_CT_HAS_MARK;
	}
	if (tb[CTA_ZONE]) {
		ct.zone = fast_u16(tb[CTA_ZONE]);
		ct.present |= NLG_CT_HAS_ZONE;
	}
	if (tb[CTA_TIMEOUT]) {
		ct.timeout = fast_u32(tb[CTA_TIMEOUT]);
		ct.present |= NLG_CT_HAS_TIMEOUT;
	}
	if (tb[CTA_USE]) {
		ct.use = fast_u32(tb[CTA_USE]);
		ct.present |= NLG_CT_HAS_USE;
	}
	if (tb[CTA_SECMARK]) {
		ct.secmark = fast_u32(tb[CTA_SECMARK]);
		ct.present |= NLG_CT_HAS_SECMARK;
	}
	if (co[CTA_COUNTERS_PACKETS] || co[CTA_COUNTERS32_PACKETS]) {
		fast_counter(co, CTA_COUNTERS_PACKETS, CTA_COUNTERS32_PACKETS, &ct.orig_packets);
		fast_counter(co, CTA_COUNTERS_BYTES, CTA_COUNTERS32_BYTES, &ct.orig_bytes);
		fast_counter(cr, CTA_COUNTERS_PACKETS, CTA_COUNTERS32_PACKETS, &ct.reply_packets);
		fast_counter(cr, CTA_COUNTERS_BYTES, CTA_COUNTERS32_BYTES, &ct.reply_bytes);
		ct.present |= NLG_CT_HAS_ACCT;
	}
	if (ts[CTA_TIMESTAMP_START]) {
		ct.start_ns = be64toh(mnl_attr_get_u64(ts[CTA_TIMESTAMP_START]));
		ct.present |= NLG_CT_HAS_TSTART;
	}
	if (ts[CTA_TIMESTAMP_STOP]) {
		ct.stop_ns = be64toh(mnl_attr_get_u64(ts[CTA_TIMESTAMP_STOP]));
		ct.present |= NLG_CT_HAS_TSTOP;
	}
	if (tb[CTA_LABELS] && mnl_attr_get_payload_len(tb[CTA_LABELS])) {
		/* a bitmask of 32-bit host-order words, as nfct_bitmask holds it */
		uint32_t w[NLG_CT_LABEL_BYTES / 4] = {0};
		uint16_t len = mnl_attr_get_payload_len(tb[CTA_LABELS]);
		memcpy(w, mnl_attr_get_payload(tb[CTA_LABELS]), len < sizeof(w) ? len : sizeof(w));
		for (unsigned bit = 0; bit < 8u * len && bit < 8 * NLG_CT_LABEL_BYTES; bit++)
			if (w[bit / 32] & (1u << (bit % 32)))
				ct.labels[bit / 8] |= (uint8_t)(1u << (bit % 8));
		ct.present |= NLG_CT_HAS_LABELS;
	}
	*out = ct;
	return FAST_OK;
}

int nlg_ct_parse(struct nlg_ct_parser *p, const struct nlmsghdr *nlh, struct nlg_ct *out,
		 struct nlg_err *err)
{
	int r = nlg_ct_decode(nlh, out);

	if (r == FAST_OK)
		return 0;
	if (r == FAST_BAD) /* not for the reference: it would exit() */
		return nlg_err_set(err, EPROTO, "ctnetlink: malformed conntrack attributes");
	return nlg_ct_parse_nfct(p, nlh, out, err);
}

int nlg_ct_filter_match(const struct nlg_ct_filter *f, const struct nlg_ct *ct)
{
	if (f->family && ct->family != f->family)
		return 0;
	if (f->proto && ct->proto != f->proto)
		return 0;
	if (f->has_mark && (ct->mark & f->mark_mask) != (f->mark & f->mark_mask))
		return 0;
	if (f->has_zone && ct->zone != f->zone)
		return 0;
	return 1;
}

/* ---- the flow table ------------------------------------------------------ */

/* The hot path is one lookup per event in a table that can hold a million
 * flows, so the index is compact: 16-byte slots {64-bit fingerprint of the
 * key, id, flow number} under open addressing with linear probing and
 * backward-shift deletion (no tombstones: a flood deletes as much as it
 * inserts). A lookup touches one cache line; the full key (for synthetic
 * DESTROYs) and the resync bookkeeping live in a side array of flows that is
 * written on insert and read only by resync.
 *
 *   index: [fp|id|flow][fp|id|flow][ 0 ... ][fp|id|flow] ...
 *                   │
 *   flows:          └─▶ { key (zone, orig tuple, id), gen, state }      */
struct ct_key {
	uint32_t id;
	uint16_t zone;
	uint16_t sport, dport; /* ports; for ICMP: id and type<<8|code */
	uint8_t family, proto;
	uint8_t src[16], dst[16];
	uint8_t kind; /* NLG_CT_HAS_PORTS / HAS_ICMP bits of the record */
	uint8_t pad[3];
};

enum { ENT_LIVE = 1, ENT_DEAD = 2 };

struct ct_slot {
	uint64_t fp; /* 0: empty */
	uint32_t id;
	uint32_t flow; /* index into flows */
};

struct ct_flow {
	struct ct_key k;
	uint32_t gen;
	uint8_t state;
	uint8_t unconfirmed; /* known from a dump only: no event has named it yet */
	uint8_t pad[2];
};

struct nlg_ct_table {
	struct ct_slot *ix;
	size_t cap, n, dead, unconfirmed;
	struct ct_flow *flows;
	uint32_t *free_flows; /* stack of released flow numbers */
	size_t nflows, flows_cap, nfree;
	uint32_t gen;
	int syncing;
};

#define CT_TABLE_MIN (1u << 14)

static void key_from(struct ct_key *k, const struct nlg_ct *ct)
{
	memset(k, 0, sizeof(*k));
	k->id = ct->id;
	k->zone = ct->zone;
	k->family = ct->family;
	k->proto = ct->proto;
	memcpy(k->src, ct->orig_src.bytes, 16);
	memcpy(k->dst, ct->orig_dst.bytes, 16);
	k->kind = (uint8_t)(ct->present & (NLG_CT_HAS_PORTS | NLG_CT_HAS_ICMP));
	if (ct->present & NLG_CT_HAS_ICMP) {
		k->sport = ct->icmp_id;
		k->dport = (uint16_t)(ct->icmp_type << 8 | ct->icmp_code);
	} else {
		k->sport = ct->orig_sport;
		k->dport = ct->orig_dport;
	}
}

/* 64-bit fingerprint of the whole key; with the id beside it, two live flows
 * colliding is a 2^-96 event. Never 0 (the empty mark). */
static uint64_t key_fp(const struct ct_key *k)
{
	uint64_t w[sizeof(*k) / 8], h = 0x9e3779b97f4a7c15ull;

	memcpy(w, k, sizeof(w));
	for (size_t i = 0; i < NLG_ARRAY_SIZE(w); i++) {
		h ^= w[i];
		h *= 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	return h ? h : 1;
}

/* The index is probed at random, one cache miss per event; past a few MiB
 * the TLB misses too, so big indexes ask for transparent huge pages (the
 * kernel grants them under THP "madvise" mode; a hint, nothing fails
 * without it). */
#define CT_HUGE (2u << 20)
static struct ct_slot *index_alloc(size_t cap)
{
	size_t bytes = cap * sizeof(struct ct_slot);
	struct ct_slot *ix;

	if (bytes < CT_HUGE)
		return calloc(cap, sizeof(*ix));
	ix = aligned_alloc(CT_HUGE, bytes); /* bytes: a power of two >= CT_HUGE */
	if (!ix)
		return NULL;
	(void)madvise(ix, bytes, MADV_HUGEPAGE);
	memset(ix, 0, bytes);
	return ix;
}

struct nlg_ct_table *nlg_ct_table_new(void)
{
	struct nlg_ct_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = CT_TABLE_MIN;
	t->ix = index_alloc(t->cap);
	if (!t->ix) {
		free(t);
		return NULL;
	}
	return t;
}

void nlg_ct_table_free(struct nlg_ct_table *t)
{
	if (!t)
		return;
	free(t->ix);
	free(t->flows);
	free(t->free_flows);
	free(t);
}

size_t nlg_ct_table_count(const struct nlg_ct_table *t)
{
	return t->n - t->dead;
}

static struct ct_slot *table_find(const struct nlg_ct_table *t, uint64_t fp, uint32_t id)
{
	size_t mask = t->cap - 1, i = fp & mask;

	for (; t->ix[i].fp; i = (i + 1) & mask)
		if (t->ix[i].fp == fp && t->ix[i].id == id)
			return &t->ix[i];
	return NULL;
}

static void slot_put(struct ct_slot *ix, size_t cap, const struct ct_slot *v)
{
	size_t mask = cap - 1, i = v->fp & mask;

	while (ix[i].fp)
		i = (i + 1) & mask;
	ix[i] = *v;
}

static int table_grow(struct nlg_ct_table *t)
{
	size_t cap = t->cap * 2;
	struct ct_slot *ix = index_alloc(cap);

	if (!ix)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->ix[i].fp)
			slot_put(ix, cap, &t->ix[i]);
	free(t->ix);
	t->ix = ix;
	t->cap = cap;
	return 0;
}

static struct ct_flow *flow_alloc(struct nlg_ct_table *t, uint32_t *num)
{
	if (t->nfree) {
		*num = t->free_flows[--t->nfree];
		return &t->flows[*num];
	}
	if (t->nflows == t->flows_cap) {
		size_t cap = t->flows_cap ? t->flows_cap * 2 : CT_TABLE_MIN;
		struct ct_flow *f = realloc(t->flows, cap * sizeof(*f));
		uint32_t *fr;
		if (!f)
			return NULL;
		t->flows = f;
		fr = realloc(t->free_flows, cap * sizeof(*fr));
		if (!fr)
			return NULL;
		t->free_flows = fr;
		t->flows_cap = cap;
	}
	*num = (uint32_t)t->nflows++;
	return &t->flows[*num];
}

static struct ct_flow *table_insert(struct nlg_ct_table *t, const struct ct_key *k, uint64_t fp,
				    int state)
{
	struct ct_slot v = {.fp = fp, .id = k->id};
	struct ct_flow *f;

	if ((t->n + 1) * 10 > t->cap * 7 && table_grow(t) < 0)
		return NULL;
	f = flow_alloc(t, &v.flow);
	if (!f)
		return NULL;
	f->k = *k;
	f->gen = t->gen;
	f->state = (uint8_t)state;
	f->unconfirmed = 0;
	slot_put(t->ix, t->cap, &v);
	t->n++;
	if (state == ENT_DEAD)
		t->dead++;
	return f;
}

static void table_remove(struct nlg_ct_table *t, struct ct_slot *victim)
{
	size_t mask = t->cap - 1, i = (size_t)(victim - t->ix), j = i;
	struct ct_flow *f = &t->flows[victim->flow];

	if (f->unconfirmed)
		t->unconfirmed--;
	if (f->state == ENT_DEAD)
		t->dead--;
	f->state = 0;
	t->free_flows[t->nfree++] = victim->flow;
	t->n--;
	/* backward shift: pull later members of the probe run into the hole */
	for (;;) {
		j = (j + 1) & mask;
		if (!t->ix[j].fp)
			break;
		size_t home = t->ix[j].fp & mask;
		/* ix[j] may move to i only if its home is not in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->ix[i] = t->ix[j];
			i = j;
		}
	}
	memset(&t->ix[i], 0, sizeof(t->ix[i]));
}

static void flow_confirm(struct nlg_ct_table *t, struct ct_flow *f)
{
	if (f->unconfirmed) {
		f->unconfirmed = 0;
		t->unconfirmed--;
	}
}

void nlg_ct_table_prefetch(const struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;

	key_from(&k, ct);
	__builtin_prefetch(&t->ix[key_fp(&k) & (t->cap - 1)]);
}

int nlg_ct_table_has(const struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;
	const struct ct_slot *e;

	key_from(&k, ct);
	e = table_find(t, key_fp(&k), k.id);
	return e && t->flows[e->flow].state == ENT_LIVE;
}

int nlg_ct_table_event(struct nlg_ct_table *t, const struct nlg_ct *ct, int *orphan)
{
	struct ct_key k;
	struct ct_slot *e;
	struct ct_flow *f;
	uint64_t fp;

	key_from(&k, ct);
	fp = key_fp(&k);
	e = table_find(t, fp, k.id);
	f = e ? &t->flows[e->flow] : NULL;
	*orphan = 0;
	if (ct->event == NLG_CT_DESTROY) {
		*orphan = !e;
		if (t->syncing) {
			/* keep a tombstone so the dump in flight cannot resurrect it */
			if (!e && !table_insert(t, &k, fp, ENT_DEAD))
				return -ENOMEM;
			if (f && f->state == ENT_LIVE) {
				flow_confirm(t, f);
				f->state = ENT_DEAD;
				t->dead++;
			}
		} else if (e) {
			table_remove(t, e);
		}
		return 1;
	}
	if (f && f->state == ENT_LIVE) {
		int confirmed = !f->unconfirmed;
		flow_confirm(t, f);
		f->gen = t->gen;
		/* the second NEW for a flow (or the NEW of one a dump already
		 * showed) adds nothing */
		return ct->event == NLG_CT_NEW && confirmed ? 0 : 1;
	}
	if (f) /* a NEW/UPDATE after its DESTROY within one resync: keep the DESTROY */
		return 1;
	if (!table_insert(t, &k, fp, ENT_LIVE))
		return -ENOMEM;
	return 1;
}

void nlg_ct_table_sync_begin(struct nlg_ct_table *t)
{
	t->gen++;
	t->syncing = 1;
}

int nlg_ct_table_sync_flow(struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;
	struct ct_slot *e;
	struct ct_flow *f;
	uint64_t fp;

	key_from(&k, ct);
	fp = key_fp(&k);
	e = table_find(t, fp, k.id);
	if (e) {
		f = &t->flows[e->flow];
		if (f->state == ENT_LIVE)
			f->gen = t->gen;
		return 0;
	}
	f = table_insert(t, &k, fp, ENT_LIVE);
	if (!f)
		return -ENOMEM;
	f->unconfirmed = 1;
	t->unconfirmed++;
	return 1;
}

int nlg_ct_table_sync_dying(struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;
	struct ct_slot *e;
	struct ct_flow *f;

	key_from(&k, ct);
	e = table_find(t, key_fp(&k), k.id);
	if (!e)
		return 0; /* never seen: its DESTROY will be an orphan, as it is */
	f = &t->flows[e->flow];
	if (f->state != ENT_LIVE)
		return 0; /* its DESTROY already came */
	f->gen = t->gen;
	return 1;
}

static void ct_from_key(struct nlg_ct *ct, const struct ct_key *k)
{
	memset(ct, 0, sizeof(*ct));
	ct->event = NLG_CT_DESTROY;
	ct->synthetic = 1;
	ct->id = k->id;
	ct->zone = k->zone;
	ct->family = k->family;
	ct->proto = k->proto;
	ct->orig_src.family = ct->orig_dst.family = k->family;
	memcpy(ct->orig_src.bytes, k->src, 16);
	memcpy(ct->orig_dst.bytes, k->dst, 16);
	ct->present = k->kind;
	if (k->kind & NLG_CT_HAS_ICMP) {
		ct->icmp_id = k->sport;
		ct->icmp_type = (uint8_t)(k->dport >> 8);
		ct->icmp_code = (uint8_t)k->dport;
	} else {
		ct->orig_sport = k->sport;
		ct->orig_dport = k->dport;
	}
}

int nlg_ct_table_sync_end(struct nlg_ct_table *t, int (*fn)(const struct nlg_ct *, void *),
			  void *data)
{
	int gone = 0;

	/* Walk the index and drop what the dump did not confirm: tombstones,
	 * and live flows of an older generation (gone unseen). Removal shifts
	 * later slots back, so a slot is examined again after a removal; a
	 * removal at the wrapped start is re-checked by the final pass. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < t->cap;) {
			struct ct_slot *e = &t->ix[i];
			struct ct_flow *f;
			if (!e->fp) {
				i++;
				continue;
			}
			f = &t->flows[e->flow];
			if (f->state == ENT_LIVE && f->gen == t->gen) {
				i++;
				continue;
			}
			if (f->state == ENT_LIVE) {
				struct nlg_ct ct;
				ct_from_key(&ct, &f->k);
				gone++;
				if (fn)
					fn(&ct, data);
			}
			table_remove(t, e);
		}
	}
	t->syncing = 0;
	return gone;
}

/* ---- dump requests ------------------------------------------------------- */

struct nlmsghdr *nlg_ct_dump_request(void *buf, size_t len, const struct nlg_ct_filter *f)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	memset(buf, 0, len);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	/* the kernel filters on family when it is set (and otherwise dumps all) */
	nfg->nfgen_family = f ? f->family : AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	if (f && f->has_mark) {
		mnl_attr_put_u32(nlh, CTA_MARK, htonl(f->mark));
		mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(f->mark_mask));
	}
	if (f && f->has_zone)
		mnl_attr_put_u16(nlh, CTA_ZONE, htons(f->zone));
	return nlh;
}

struct nlmsghdr *nlg_ct_dying_request(void *buf, size_t len, const struct nlg_ct_filter *f)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	memset(buf, 0, len);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_DYING;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = f ? f->family : AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	return nlh;
}

/* ---- the source ---------------------------------------------------------- */

#define CT_VLEN		   64	   /* datagrams per recvmmsg */
#define CT_SLOT		   8192	   /* one event is a few hundred bytes; NLMSG_GOODSIZE at most */
#define CT_BUDGET	   256	   /* recvmmsg calls per readable step before yielding */
#define CT_BATCH	   CT_VLEN /* events decoded before the table sees them */
#define CT_EARLY_RESYNC_MS 30000

struct ct_sock {
	struct nlg_nl *nl;
	int fd;
	uint32_t portid;
	int reliable;
	unsigned groups;
	uint64_t drops; /* last Drops value read from /proc/net/netlink */
};

enum { SOCK_EV, SOCK_DEL, NSOCKS };
enum { PH_TABLE, PH_DYING, PH_DRAIN };

struct nlg_ct_src {
	struct nlg_ct_opts o;
	struct nlg_ct_sink sink;
	struct nlg_ct_parser *parser;
	struct nlg_ct_table *table; /* NULL when resync is off */
	struct ct_sock s[NSOCKS];
	struct nlg_nl *dump;
	int dumping, initial, pending;
	/* A resync is three steps: the table dump; the dying-list dump (flows
	 * out of the table whose DESTROY the kernel still holds for a reliable
	 * listener: they are not gone unseen); and draining the DESTROY socket,
	 * since a flow the dumps missed may have its DESTROY queued there. Only
	 * then is whatever the dumps did not show gone unseen. */
	int phase;
	int no_dying;	 /* the kernel refused the dying-list dump */
	int events_mode; /* net.netfilter.nf_conntrack_events, -1 unknown */
	uint64_t last_sync_ms;
	struct nlg_ct_stats st;
	char *rbuf;
	struct mmsghdr msgs[CT_VLEN];
	struct iovec iov[CT_VLEN];
	struct sockaddr_nl from[CT_VLEN];
	struct nlg_ct batch[CT_BATCH]; /* decoded, waiting for the table */
	char notes[1024];
	struct nlg_err derr; /* last dump error, for tick() to report */
};

static int read_sysctl(const char *name)
{
	char path[128], buf[32];
	int fd, v = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/sys/net/netfilter/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		v = atoi(buf);
	}
	close(fd);
	return v;
}

static void note(struct nlg_ct_src *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct nlg_ct_src *s, const char *fmt, ...)
{
	size_t off = strlen(s->notes);
	va_list ap;

	if (off + 2 >= sizeof(s->notes))
		return;
	va_start(ap, fmt);
	vsnprintf(s->notes + off, sizeof(s->notes) - off - 1, fmt, ap);
	va_end(ap);
	off = strlen(s->notes);
	s->notes[off] = '\n';
	s->notes[off + 1] = 0;
}

static void check_kernel(struct nlg_ct_src *s)
{
	int acct, ts;

	if (s->o.netns) /* /proc/sys is our namespace's, not the target's */
		return;
	s->events_mode = read_sysctl("nf_conntrack_events");
	acct = read_sysctl("nf_conntrack_acct");
	ts = read_sysctl("nf_conntrack_timestamp");
	if (s->events_mode == 0)
		note(s, "net.netfilter.nf_conntrack_events=0: the kernel sends no conntrack "
			"events; only dumps will show flows (set it to 1)");
	else if (s->events_mode == 2)
		note(s,
		     "net.netfilter.nf_conntrack_events=2: the kernel gives events only to "
		     "flows created while a listener exists, so flows that predate nlgate "
		     "never report their end; nlgate lists them from its start-up dump and "
		     "notices their end at a resync dump (every %d s while any remain). Set it "
		     "to 1 for destroy events from every flow",
		     CT_EARLY_RESYNC_MS / 1000);
	if (acct == 0)
		note(s, "net.netfilter.nf_conntrack_acct=0: no packet/byte counters (set it to 1; "
			"applies to flows created afterwards)");
	if (ts == 0)
		note(s, "net.netfilter.nf_conntrack_timestamp=0: no start/stop timestamps (set "
			"it to 1; applies to flows created afterwards)");
}

static int cap_msg(struct nlg_err *err, int r, const char *what)
{
	if (r == -EPERM || r == -EACCES)
		return nlg_err_set(err, EPERM,
				   "conntrack %s needs CAP_NET_ADMIN (run as root, or grant "
				   "cap_net_admin)",
				   what);
	return r;
}

static int sock_open(struct nlg_ct_src *s, struct ct_sock *cs, unsigned groups, int reliable,
		     struct nlg_err *err)
{
	int want = s->o.rcvbuf ? s->o.rcvbuf : NLG_CT_RCVBUF, got = 0, r;

	cs->groups = groups;
	cs->reliable = reliable;
	cs->fd = -1;
	if (!groups)
		return 0;
	cs->nl = nlg_nl_open(NETLINK_NETFILTER, groups, s->o.netns, err);
	if (!cs->nl) /* err names CAP_NET_ADMIN when that is what is missing */
		return -EIO;
	cs->fd = nlg_nl_fd(cs->nl);
	cs->portid = nlg_nl_portid(cs->nl);
	r = nlg_nl_set_nonblock(cs->nl, 1);
	if (r < 0)
		return nlg_err_set(err, -r, "conntrack: non-blocking socket: %s", strerror(-r));
	r = nlg_nl_set_rcvbuf(cs->nl, want, &got, err);
	if (r < 0)
		return r;
	if (!s->st.rcvbuf || got < s->st.rcvbuf)
		s->st.rcvbuf = got;
	if (reliable) {
		r = nlg_nl_setsockopt_int(cs->nl, NETLINK_BROADCAST_ERROR, 1);
		if (r == 0)
			r = nlg_nl_setsockopt_int(cs->nl, NETLINK_NO_ENOBUFS, 1);
		if (r < 0)
			return nlg_err_set(err, -r, "conntrack: reliable delivery options: %s",
					   strerror(-r));
	}
	return 0;
}

static int emit(struct nlg_ct_src *s, const struct nlg_ct *ct)
{
	if (!(s->o.events & (1u << ct->event)))
		return NLG_CB_OK;
	s->st.emitted++;
	return s->sink.record(ct, s->sink.data) == NLG_CB_ERROR ? NLG_CB_ERROR : NLG_CB_OK;
}

static int emit_synthetic(const struct nlg_ct *ct, void *data)
{
	struct nlg_ct_src *s = data;

	if (!nlg_ct_filter_match(&s->o.filter, ct))
		return NLG_CB_OK;
	s->st.synthetic++;
	return emit(s, ct);
}

static int on_dump_msg(const struct nlmsghdr *nlh, void *data)
{
	struct nlg_ct_src *s = data;
	struct nlg_ct ct;

	if (nlg_ct_parse(s->parser, nlh, &ct, NULL) < 0) {
		s->st.bad++;
		return NLG_CB_OK;
	}
	if (!nlg_ct_filter_match(&s->o.filter, &ct)) {
		s->st.filtered++;
		return NLG_CB_OK;
	}
	if (s->phase == PH_DYING) {
		if (s->table)
			(void)nlg_ct_table_sync_dying(s->table, &ct);
		return NLG_CB_OK;
	}
	s->st.dumped++;
	ct.dump = 1;
	ct.event = NLG_CT_NEW;
	if (s->table) {
		int r = nlg_ct_table_sync_flow(s->table, &ct);
		if (r < 0)
			return NLG_CB_ERROR;
		if (r == 0)
			return NLG_CB_OK;
		if (!s->initial)
			s->st.resynced++;
	}
	return emit(s, &ct);
}

static int dump_start(struct nlg_ct_src *s, struct nlg_err *err)
{
	char buf[256];
	struct nlmsghdr *req = nlg_ct_dump_request(buf, sizeof(buf), &s->o.filter);
	int r;

	if (s->table)
		nlg_ct_table_sync_begin(s->table);
	r = nlg_nl_dump_start(s->dump, req, "ctnetlink", err);
	if (r < 0)
		return cap_msg(err, r, "dumps");
	s->dumping = 1;
	s->pending = 0;
	s->phase = PH_TABLE;
	return 0;
}

static int dump_finish(struct nlg_ct_src *s)
{
	int r = 0;

	if (s->table) {
		r = nlg_ct_table_sync_end(s->table, emit_synthetic, s);
		s->st.live = nlg_ct_table_count(s->table);
	}
	if (!s->initial)
		s->st.resyncs++;
	s->initial = 0;
	s->dumping = 0;
	s->last_sync_ms = nlg_now_ms();
	return r < 0 ? r : 0;
}

int nlg_ct_resync(struct nlg_ct_src *s, struct nlg_err *err)
{
	if (!s->table)
		return 0;
	if (s->dumping) {
		s->pending = 1; /* what this dump has passed may be stale: redo it after */
		return 0;
	}
	return dump_start(s, err);
}

int nlg_ct_syncing(const struct nlg_ct_src *s)
{
	return s->dumping || s->pending;
}

/* Drops per socket from /proc/net/netlink (this namespace):
 *   sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode */
static int read_drops(struct nlg_ct_src *s, uint64_t drops[NSOCKS])
{
	char buf[8192];
	int fd = open("/proc/net/netlink", O_RDONLY | O_CLOEXEC), found = 0;
	size_t have = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			unsigned long long sk, dr, inode;
			int eth;
			unsigned pid;
			*nl = 0;
			if (sscanf(line, "%llx %d %u %*x %*d %*d %*d %*d %llu %llu", &sk, &eth,
				   &pid, &dr, &inode) == 5 &&
			    eth == NETLINK_NETFILTER) {
				for (int i = 0; i < NSOCKS; i++)
					if (s->s[i].nl && s->s[i].portid == pid) {
						drops[i] = dr;
						found++;
					}
			}
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
	close(fd);
	return found;
}

/* Compare the kernel's drop counters with what we saw last; a drop on a
 * best-effort socket is a lost event (resync), on a reliable DESTROY socket
 * an event the kernel will deliver again. */
static int check_drops(struct nlg_ct_src *s, struct nlg_err *err)
{
	uint64_t d[NSOCKS] = {0};
	int need = 0;

	if (s->o.netns || read_drops(s, d) <= 0)
		return 0;
	for (int i = 0; i < NSOCKS; i++) {
		struct ct_sock *cs = &s->s[i];
		if (!cs->nl || d[i] <= cs->drops)
			continue;
		uint64_t delta = d[i] - cs->drops;
		cs->drops = d[i];
		if (cs->reliable)
			s->st.deferred += delta;
		else
			s->st.lost += delta;
		/* NEW/UPDATE are not re-sent as such even on a reliable socket */
		if (!cs->reliable || !(cs->groups & NF_NETLINK_CONNTRACK_DESTROY))
			need = 1;
	}
	return need ? nlg_ct_resync(s, err) : 0;
}

static int sync_done(struct nlg_ct_src *s, struct nlg_err *err);

/* An event message: decoded, counted, filtered. Returns 1 to go on with it. */
static int ev_decode(struct nlg_ct_src *s, const struct nlmsghdr *nlh, struct nlg_ct *ct)
{
	if (nlg_ct_parse(s->parser, nlh, ct, NULL) < 0) {
		s->st.bad++;
		return 0;
	}
	s->st.received++;
	if (ct->event == NLG_CT_NEW)
		s->st.new ++;
	else if (ct->event == NLG_CT_UPDATE)
		s->st.update++;
	else
		s->st.destroy++;
	if (!nlg_ct_filter_match(&s->o.filter, ct)) {
		s->st.filtered++;
		return 0;
	}
	if (s->table) /* its slot is loading while the rest of the batch decodes */
		nlg_ct_table_prefetch(s->table, ct);
	return 1;
}

/* The decoded events of one receive, in order: the table, then the sink. */
static int ev_apply(struct nlg_ct_src *s, int n)
{
	for (int i = 0; i < n; i++) {
		const struct nlg_ct *ct = &s->batch[i];
		int orphan = 0;
		if (s->table) {
			int r = nlg_ct_table_event(s->table, ct, &orphan);
			if (r < 0)
				return NLG_CB_ERROR;
			if (r == 0) {
				s->st.duplicates++;
				continue;
			}
			s->st.orphans += (uint64_t)orphan;
		}
		if (emit(s, ct) == NLG_CB_ERROR)
			return NLG_CB_ERROR;
	}
	return NLG_CB_OK;
}

static int read_events(struct nlg_ct_src *s, struct ct_sock *cs, struct nlg_err *err)
{
	uint64_t before = s->st.emitted;
	int loss = 0, drained = 0;

	for (int round = 0; round < CT_BUDGET; round++) {
		for (int i = 0; i < CT_VLEN; i++) {
			s->msgs[i].msg_hdr.msg_namelen = sizeof(s->from[i]);
			s->msgs[i].msg_hdr.msg_flags = 0;
		}
		int n = recvmmsg(cs->fd, s->msgs, CT_VLEN, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				drained = 1;
				break;
			}
			if (errno == ENOBUFS) {
				s->st.enobufs++;
				loss = 1;
				continue;
			}
			return nlg_err_set(err, errno, "conntrack events: receiving: %s",
					   strerror(errno));
		}
		int nb = 0;
		for (int i = 0; i < n; i++) {
			const struct msghdr *mh = &s->msgs[i].msg_hdr;
			int len = (int)s->msgs[i].msg_len;
			const struct nlmsghdr *nlh = s->iov[i].iov_base;
			/* only the kernel may speak here: a unicast from another
			 * process could forge events */
			if (s->from[i].nl_pid != 0 || (mh->msg_flags & MSG_TRUNC)) {
				s->st.bad++;
				continue;
			}
			for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
				if (nlh->nlmsg_type < NLMSG_MIN_TYPE)
					continue;
				nb += ev_decode(s, nlh, &s->batch[nb]);
				if (nb == CT_BATCH) {
					if (ev_apply(s, nb) == NLG_CB_ERROR)
						return nlg_err_set(
						    err, ECANCELED,
						    "conntrack: the consumer stopped");
					nb = 0;
				}
			}
		}
		if (ev_apply(s, nb) == NLG_CB_ERROR)
			return nlg_err_set(err, ECANCELED, "conntrack: the consumer stopped");
		if (n < CT_VLEN) { /* the queue ran dry */
			drained = 1;
			break;
		}
	}
	if (loss) {
		int r;
		uint64_t lost = s->st.lost;
		r = check_drops(s, err);
		if (r < 0)
			return r;
		if (s->st.lost == lost) /* no /proc view: at least one was lost */
			s->st.lost++;
		r = nlg_ct_resync(s, err);
		if (r < 0)
			return r;
	}
	if (drained && s->dumping && s->phase == PH_DRAIN && cs == &s->s[SOCK_DEL]) {
		int r = sync_done(s, err);
		if (r < 0)
			return r;
	}
	if (s->st.emitted != before && s->sink.batch)
		s->sink.batch(s->sink.data);
	if (s->table)
		s->st.live = nlg_ct_table_count(s->table);
	return (int)(s->st.emitted - before);
}

/* The dump has ended and, if pending, a new one starts. */
static int sync_done(struct nlg_ct_src *s, struct nlg_err *err)
{
	int r = dump_finish(s);

	if (r < 0)
		return nlg_err_set(err, -r, "conntrack: resync: out of memory");
	return s->pending ? dump_start(s, err) : 0;
}

/* The table dump is over: ask for the dying list, then drain DESTROYs. */
static int next_phase(struct nlg_ct_src *s, struct nlg_err *err)
{
	struct ct_sock *del = &s->s[SOCK_DEL];
	int r;

	if (s->phase == PH_TABLE && s->table && del->nl && !s->no_dying) {
		char buf[64];
		struct nlmsghdr *req = nlg_ct_dying_request(buf, sizeof(buf), &s->o.filter);
		if (nlg_nl_dump_start(s->dump, req, "ctnetlink (dying list)", NULL) == 0) {
			s->phase = PH_DYING;
			return 0;
		}
		s->no_dying = 1;
	}
	s->phase = PH_DRAIN;
	if (!del->nl)
		return sync_done(s, err);
	r = read_events(s, del, err); /* finishes the resync once drained */
	return r < 0 ? r : 0;
}

static int step_dump(struct nlg_ct_src *s, struct nlg_err *err)
{
	uint64_t before = s->st.emitted;
	int r = nlg_nl_dump_step(s->dump, on_dump_msg, s, err);

	if (r < 0 && s->phase == PH_DYING) {
		/* an interrupted dying dump is asked again; a kernel without it
		 * leaves only the drain to tell the DESTROYs in flight */
		if (r != -EINTR)
			s->no_dying = 1;
		s->phase = PH_TABLE;
		r = next_phase(s, err);
		if (r < 0)
			return r;
	} else if (r == -EINTR) { /* interrupted dump: start it again */
		s->dumping = 0;
		r = dump_start(s, err);
		if (r < 0)
			return r;
	} else if (r < 0) {
		s->dumping = 0;
		if (s->table)
			(void)nlg_ct_table_sync_end(s->table, NULL, NULL);
		return cap_msg(err, r, "dumps");
	} else if (r == 0) {
		r = next_phase(s, err);
		if (r < 0)
			return r;
	}
	if (s->st.emitted != before && s->sink.batch)
		s->sink.batch(s->sink.data);
	return (int)(s->st.emitted - before);
}

int nlg_ct_readable(struct nlg_ct_src *s, int fd, struct nlg_err *err)
{
	if (s->dump && fd == nlg_nl_fd(s->dump)) {
		if (!s->dumping)
			return 0;
		return step_dump(s, err);
	}
	for (int i = 0; i < NSOCKS; i++)
		if (s->s[i].nl && fd == s->s[i].fd)
			return read_events(s, &s->s[i], err);
	return nlg_err_set(err, EBADF, "conntrack: fd %d is not ours", fd);
}

int nlg_ct_tick(struct nlg_ct_src *s, struct nlg_err *err)
{
	int r = check_drops(s, err);

	if (r < 0)
		return r;
	if (s->pending && !s->dumping)
		return dump_start(s, err);
	if (s->dumping && s->phase == PH_DRAIN && s->s[SOCK_DEL].nl) {
		r = read_events(s, &s->s[SOCK_DEL], err);
		return r < 0 ? r : 0;
	}
	/* events=2: flows from before our start never report their end */
	if (s->table && s->events_mode == 2 && s->table->unconfirmed && !s->dumping &&
	    nlg_now_ms() - s->last_sync_ms >= CT_EARLY_RESYNC_MS)
		return dump_start(s, err);
	return 0;
}

int nlg_ct_fds(const struct nlg_ct_src *s, int *fds, int max)
{
	int n = 0;

	for (int i = 0; i < NSOCKS && n < max; i++)
		if (s->s[i].nl)
			fds[n++] = s->s[i].fd;
	if (s->dump && n < max)
		fds[n++] = nlg_nl_fd(s->dump);
	return n;
}

const struct nlg_ct_stats *nlg_ct_stats(const struct nlg_ct_src *s)
{
	return &s->st;
}

const char *nlg_ct_notes(const struct nlg_ct_src *s)
{
	return s->notes;
}

struct nlg_ct_src *nlg_ct_open(const struct nlg_ct_opts *o, const struct nlg_ct_sink *sink,
			       struct nlg_err *err)
{
	struct nlg_ct_src *s = calloc(1, sizeof(*s));
	unsigned ev, del;
	int r, want;

	if (!s) {
		nlg_err_set(err, ENOMEM, "conntrack: out of memory");
		return NULL;
	}
	s->o = *o;
	if (!s->o.events)
		s->o.events = NLG_CT_EV_ALL;
	s->sink = *sink;
	s->events_mode = -1;
	s->s[SOCK_EV].fd = s->s[SOCK_DEL].fd = -1;
	s->parser = nlg_ct_parser_new();
	s->rbuf = malloc((size_t)CT_VLEN * CT_SLOT);
	if (!s->parser || !s->rbuf) {
		nlg_err_set(err, ENOMEM, "conntrack: out of memory");
		goto err;
	}
	for (int i = 0; i < CT_VLEN; i++) {
		s->iov[i].iov_base = s->rbuf + (size_t)i * CT_SLOT;
		s->iov[i].iov_len = CT_SLOT;
		s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
		s->msgs[i].msg_hdr.msg_iovlen = 1;
		s->msgs[i].msg_hdr.msg_name = &s->from[i];
	}
	if (s->o.resync) {
		s->table = nlg_ct_table_new();
		if (!s->table) {
			nlg_err_set(err, ENOMEM, "conntrack: out of memory");
			goto err;
		}
	}
	check_kernel(s);

	/* The table needs NEW and DESTROY to know what lives, whatever the
	 * script asked for; what is emitted is filtered later. */
	want = (int)s->o.events | (s->table ? NLG_CT_EV_NEW | NLG_CT_EV_DESTROY : 0);
	ev = (want & NLG_CT_EV_NEW ? NF_NETLINK_CONNTRACK_NEW : 0) |
	     (want & NLG_CT_EV_UPDATE ? NF_NETLINK_CONNTRACK_UPDATE : 0);
	del = want & NLG_CT_EV_DESTROY ? NF_NETLINK_CONNTRACK_DESTROY : 0;
	/* subscribe first, then dump: nothing falls between the two */
	r = sock_open(s, &s->s[SOCK_DEL], del, s->o.reliable != NLG_CT_RELIABLE_OFF, err);
	if (r < 0)
		goto err;
	r = sock_open(s, &s->s[SOCK_EV], ev, s->o.reliable == NLG_CT_RELIABLE_ALL, err);
	if (r < 0)
		goto err;
	if (s->o.rcvbuf != 0 || s->st.rcvbuf < NLG_CT_RCVBUF) {
		int asked = s->o.rcvbuf ? s->o.rcvbuf : NLG_CT_RCVBUF;
		if (s->st.rcvbuf < asked)
			note(s, "conntrack receive buffer: asked %d bytes, the kernel granted %d",
			     asked, s->st.rcvbuf);
	}
	if (s->table || s->o.initial_dump) {
		s->dump = nlg_nl_open(NETLINK_NETFILTER, 0, s->o.netns, err);
		if (!s->dump)
			goto err;
		r = nlg_nl_set_nonblock(s->dump, 1);
		if (r == 0)
			r = nlg_nl_set_rcvbuf(s->dump, 4 << 20, NULL, err);
		if (r < 0) {
			nlg_err_set(err, -r, "conntrack: dump socket: %s", strerror(-r));
			goto err;
		}
	}
	(void)check_drops(s, NULL); /* baseline */
	s->last_sync_ms = nlg_now_ms();
	if (s->o.initial_dump) {
		s->initial = 1;
		if (dump_start(s, err) < 0)
			goto err;
	}
	return s;
err:
	nlg_ct_close(s);
	return NULL;
}

void nlg_ct_close(struct nlg_ct_src *s)
{
	if (!s)
		return;
	for (int i = 0; i < NSOCKS; i++)
		nlg_nl_close(s->s[i].nl);
	nlg_nl_close(s->dump);
	nlg_ct_table_free(s->table);
	nlg_ct_parser_free(s->parser);
	free(s->rbuf);
	free(s);
}

/* ---- one-shot dump ------------------------------------------------------- */

struct dump_ctx {
	struct nlg_ct_parser *p;
	const struct nlg_ct_opts *o;
	const struct nlg_ct_sink *sink;
	int n;
};

static int on_oneshot(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *c = data;
	struct nlg_ct ct;

	if (nlg_ct_parse(c->p, nlh, &ct, NULL) < 0)
		return NLG_CB_OK;
	if (!nlg_ct_filter_match(&c->o->filter, &ct))
		return NLG_CB_OK;
	ct.dump = 1;
	ct.event = NLG_CT_NEW;
	c->n++;
	return c->sink->record(&ct, c->sink->data) == NLG_CB_ERROR ? NLG_CB_ERROR : NLG_CB_OK;
}

int nlg_ct_dump(const struct nlg_ct_opts *o, const struct nlg_ct_sink *sink, struct nlg_err *err)
{
	struct dump_ctx c = {.o = o, .sink = sink};
	struct nlg_nl *nl;
	char buf[256];
	int r;

	c.p = nlg_ct_parser_new();
	if (!c.p)
		return nlg_err_set(err, ENOMEM, "conntrack: out of memory");
	nl = nlg_nl_open(NETLINK_NETFILTER, 0, o->netns, err);
	if (!nl) {
		nlg_ct_parser_free(c.p);
		return -EIO;
	}
	(void)nlg_nl_set_rcvbuf(nl, 4 << 20, NULL, NULL);
	r = nlg_nl_dump_run(nl, nlg_ct_dump_request(buf, sizeof(buf), &o->filter), "ctnetlink",
			    on_oneshot, &c, NULL, err);
	nlg_nl_close(nl);
	nlg_ct_parser_free(c.p);
	if (r < 0)
		return cap_msg(err, r, "dumps");
	return c.n;
}
