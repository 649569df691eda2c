/* ctnetlink messages into `ct` records: a fast decoder for the attributes
 * events carry (libmnl, read in place) that checks all a message holds before
 * it falls back to the reference, libnetfilter_conntrack; and the filter. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "nlgate/conntrack.h"

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
 *
 * The rule that keeps the process alive: nothing reaches the reference that
 * the fast decoder has not walked first, level by level, as the reference
 * will. libnetfilter_conntrack 1.0.9 (src/conntrack/parse_mnl.c) checks the
 * length of most attributes it knows, and on a wrong one prints "ctnetlink
 * kernel ABI is broken" and exits the process; where it does not check, a
 * few attributes would make it read or write out of bounds. The tables below
 * are its rules, level by level; a message that breaks one is FAST_BAD and
 * never handed over. tests/unit/test_conntrack.c crafts a wrong length of
 * every kind and compares both decoders on crafted and mutated messages;
 * tests/fuzz/fuzz_ct_parse.c does the same on arbitrary bytes. A newer
 * libnetfilter_conntrack may parse more: re-read its parse_mnl.c. */

/* libmnl's attribute getters, inlined: through the shared library they were
 * five calls per attribute, a fifth of the decoder's time. The walk itself
 * stays mnl_attr_for_each*. */
static inline uint16_t attr_type(const struct nlattr *a)
{
	return a->nla_type & NLA_TYPE_MASK;
}

static inline uint16_t attr_len(const struct nlattr *a)
{
	return (uint16_t)(a->nla_len - MNL_ATTR_HDRLEN);
}

static inline const void *attr_data(const struct nlattr *a)
{
	return (const char *)a + MNL_ATTR_HDRLEN;
}

static inline uint8_t attr_u8(const struct nlattr *a)
{
	return *(const uint8_t *)attr_data(a);
}

static inline uint16_t attr_u16(const struct nlattr *a)
{
	uint16_t v;
	memcpy(&v, attr_data(a), sizeof(v));
	return v;
}

static inline uint32_t attr_u32(const struct nlattr *a)
{
	uint32_t v;
	memcpy(&v, attr_data(a), sizeof(v));
	return v;
}

static inline uint64_t attr_u64(const struct nlattr *a)
{
	uint64_t v;
	memcpy(&v, attr_data(a), sizeof(v));
	return v;
}

struct fast_tuple {
	const struct nlattr *src, *dst, *num, *sport, *dport, *itype, *icode, *iid;
};

enum { FAST_BAD = -1, FAST_OK = 0, FAST_NO = 1 };

/* The reference's length rule for one attribute type of a level: a size > 0
 * is exact (mnl_attr_validate's U8..U64, or validate2's size), else one of
 * these. */
enum {
	LEN_ANY = 0,	/* not checked (or a type the reference ignores) */
	LEN_NEST = -1,	/* MNL_TYPE_NESTED: empty, or one header at least */
	LEN_STR = -2,	/* MNL_TYPE_STRING: not empty (its NUL: fast_named) */
	LEN_NEVER = -3, /* stored past the reference's table: refused whatever its length */
};

/* Per attribute type of one level: the reference's length rule and whether
 * the fast decoder models the type. */
struct fast_rule {
	int8_t len;
	uint8_t known;
};

/* One member of a level into tb[type], the last one winning as in libmnl's
 * parsers. Returns FAST_BAD for a length the reference refuses, FAST_NO for
 * a type not modelled here. Types past max the reference skips unread. */
static int fast_one(const struct nlattr *a, const struct fast_rule *rule, unsigned max,
		    const struct nlattr **tb)
{
	unsigned type = attr_type(a);
	uint16_t len = attr_len(a);

	if (type > max)
		return FAST_NO;
	if (rule[type].len > 0) { /* most are */
		if (len != rule[type].len)
			return FAST_BAD;
	} else if (rule[type].len == LEN_NEST) {
		if (len && len < MNL_ATTR_HDRLEN)
			return FAST_BAD;
	} else if (rule[type].len == LEN_STR) {
		if (!len)
			return FAST_BAD;
	} else if (rule[type].len == LEN_NEVER) {
		return FAST_BAD;
	}
	tb[type] = a;
	return rule[type].known ? FAST_OK : FAST_NO;
}

/* BAD anywhere wins over NO anywhere, which wins over OK */
static int fast_join(int a, int b)
{
	if (a == FAST_BAD || b == FAST_BAD)
		return FAST_BAD;
	return a == FAST_NO || b == FAST_NO ? FAST_NO : FAST_OK;
}

/* The members of a nested attribute, or of the message when nest is NULL,
 * into tb (max + 1 slots). */
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

/* A level of leaves the fast decoder only checks (NULL: absent) */
#define FAST_CHECK_MAX 4
static int fast_check(const struct nlattr *nest, const struct fast_rule *rule, unsigned max)
{
	const struct nlattr *tb[FAST_CHECK_MAX + 1];

	return nest ? fast_walk(NULL, nest, rule, max, tb) : FAST_OK;
}

/* The top level. CTA_SYNPROXY and CTA_LABELS the reference reads without a
 * length check: synproxy's members are checked (fast_check), labels bounded
 * (FAST_LABELS_MAX). */
static const struct fast_rule top_rule[CTA_MAX + 1] = {
    [CTA_TUPLE_ORIG] = {LEN_NEST, 1},
    [CTA_TUPLE_REPLY] = {LEN_NEST, 1},
    [CTA_STATUS] = {4, 1},
    [CTA_PROTOINFO] = {LEN_NEST, 1},
    [CTA_TIMEOUT] = {4, 1},
    [CTA_MARK] = {4, 1},
    [CTA_COUNTERS_ORIG] = {LEN_NEST, 1},
    [CTA_COUNTERS_REPLY] = {LEN_NEST, 1},
    [CTA_USE] = {4, 1},
    [CTA_ID] = {4, 1},
    [CTA_ZONE] = {2, 1},
    [CTA_SECMARK] = {4, 1},
    [CTA_TIMESTAMP] = {LEN_NEST, 1},
    [CTA_LABELS] = {LEN_ANY, 1},
    [CTA_TUPLE_MASTER] = {LEN_NEST, 0},
    [CTA_NAT_SEQ_ADJ_ORIG] = {LEN_NEST, 0},
    [CTA_NAT_SEQ_ADJ_REPLY] = {LEN_NEST, 0},
    [CTA_HELP] = {LEN_NEST, 0},
    [CTA_SECCTX] = {LEN_NEST, 0},
    [CTA_SYNPROXY] = {LEN_ANY, 0},
};
/* orig, reply and master alike; the tuple's own zone is not in the record */
static const struct fast_rule tuple_rule[CTA_TUPLE_MAX + 1] = {
    [CTA_TUPLE_IP] = {LEN_NEST, 1}, [CTA_TUPLE_PROTO] = {LEN_NEST, 1}, [CTA_TUPLE_ZONE] = {2, 0}};
/* both families' lengths are checked whatever the message's family */
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
/* The reference bounds this level by CTA_PROTOINFO_TCP_MAX but keeps it in a
 * table of CTA_PROTOINFO_MAX + 1: the types between land past its end, on
 * the stack. */
_Static_assert(CTA_PROTOINFO_TCP_MAX == CTA_PROTOINFO_MAX + 2,
	       "protoinfo: the types the reference stores out of bounds moved");
static const struct fast_rule pinfo_rule[CTA_PROTOINFO_TCP_MAX + 1] = {
    [CTA_PROTOINFO_TCP] = {LEN_NEST, 1},
    [CTA_PROTOINFO_DCCP] = {LEN_NEST, 0},
    [CTA_PROTOINFO_SCTP] = {LEN_NEST, 0},
    [CTA_PROTOINFO_MAX + 1] = {LEN_NEVER, 0},
    [CTA_PROTOINFO_MAX + 2] = {LEN_NEVER, 0}};
static const struct fast_rule tcp_rule[CTA_PROTOINFO_TCP_MAX + 1] = {
    [CTA_PROTOINFO_TCP_STATE] = {1, 1},
    [CTA_PROTOINFO_TCP_WSCALE_ORIGINAL] = {1, 1},
    [CTA_PROTOINFO_TCP_WSCALE_REPLY] = {1, 1},
    [CTA_PROTOINFO_TCP_FLAGS_ORIGINAL] = {2, 1},
    [CTA_PROTOINFO_TCP_FLAGS_REPLY] = {2, 1}};
/* Levels only checked: the record has nothing of them, so their presence
 * hands the message to the reference. */
_Static_assert(CTA_PROTOINFO_SCTP_MAX <= FAST_CHECK_MAX &&
		   CTA_PROTOINFO_DCCP_MAX <= FAST_CHECK_MAX && CTA_NAT_SEQ_MAX <= FAST_CHECK_MAX &&
		   CTA_SYNPROXY_MAX <= FAST_CHECK_MAX,
	       "fast_check: tb too small");
static const struct fast_rule sctp_rule[CTA_PROTOINFO_SCTP_MAX + 1] = {
    [CTA_PROTOINFO_SCTP_STATE] = {1, 0},
    [CTA_PROTOINFO_SCTP_VTAG_ORIGINAL] = {4, 0},
    [CTA_PROTOINFO_SCTP_VTAG_REPLY] = {4, 0}};
static const struct fast_rule dccp_rule[CTA_PROTOINFO_DCCP_MAX + 1] = {
    [CTA_PROTOINFO_DCCP_STATE] = {1, 0},
    [CTA_PROTOINFO_DCCP_ROLE] = {1, 0},
    [CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ] = {8, 0}};
static const struct fast_rule natseq_rule[CTA_NAT_SEQ_MAX + 1] = {
    [CTA_NAT_SEQ_CORRECTION_POS] = {4, 0},
    [CTA_NAT_SEQ_OFFSET_BEFORE] = {4, 0},
    [CTA_NAT_SEQ_OFFSET_AFTER] = {4, 0}};
static const struct fast_rule synproxy_rule[CTA_SYNPROXY_MAX + 1] = {
    [CTA_SYNPROXY_ISN] = {4, 0}, [CTA_SYNPROXY_ITS] = {4, 0}, [CTA_SYNPROXY_TSOFF] = {4, 0}};
/* CTA_HELP_INFO: copied whatever its length */
static const struct fast_rule help_rule[CTA_HELP_MAX + 1] = {[CTA_HELP_NAME] = {LEN_STR, 0}};
static const struct fast_rule secctx_rule[CTA_SECCTX_MAX + 1] = {[CTA_SECCTX_NAME] = {LEN_STR, 0}};

/* nfct_bitmask_new() refuses more than 65536 bits: the reference fails */
#define FAST_LABELS_MAX (65536 / 8)

/* CTA_HELP and CTA_SECCTX: the reference reads the last name of the level as
 * a C string (snprintf "%s", strdup), having checked only that it is not
 * empty. Without its NUL it would be read past the attribute's end. */
static int fast_named(const struct nlattr *nest, const struct fast_rule *rule, unsigned max,
		      unsigned name)
{
	const struct nlattr *tb[CTA_HELP_MAX + 1] = {0};
	int r;

	_Static_assert(CTA_SECCTX_MAX <= CTA_HELP_MAX, "fast_named: tb too small");
	if (!nest)
		return FAST_OK;
	r = fast_walk(NULL, nest, rule, max, tb);
	if (tb[name] && !memchr(attr_data(tb[name]), 0, attr_len(tb[name])))
		return FAST_BAD;
	return r;
}

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
	memcpy(out->bytes, attr_data(a), family == AF_INET6 ? 16 : 4);
}

static uint16_t fast_u16(const struct nlattr *a)
{
	return a ? ntohs(attr_u16(a)) : 0;
}

static uint32_t fast_u32(const struct nlattr *a)
{
	return a ? ntohl(attr_u32(a)) : 0;
}

/* CTA_COUNTERS_*: 64-bit counters win over the old 32-bit ones */
static void fast_counter(const struct nlattr **tb, int a64, int a32, uint64_t *out)
{
	if (tb[a64])
		*out = be64toh(attr_u64(tb[a64]));
	else if (tb[a32])
		*out = ntohl(attr_u32(tb[a32]));
}

/* The levels only checked: any of them makes the message FAST_NO already,
 * so only then are they looked for. */
static int fast_rest(const struct nlattr *const *tb, const struct nlattr *const *pi, int family)
{
	struct fast_tuple m;
	int r = FAST_OK;

	if (tb[CTA_TUPLE_MASTER])
		r = fast_join(r, fast_tuple(tb[CTA_TUPLE_MASTER], family, &m));
	r = fast_join(r, fast_check(tb[CTA_NAT_SEQ_ADJ_ORIG], natseq_rule, CTA_NAT_SEQ_MAX));
	r = fast_join(r, fast_check(tb[CTA_NAT_SEQ_ADJ_REPLY], natseq_rule, CTA_NAT_SEQ_MAX));
	r = fast_join(r, fast_check(tb[CTA_SYNPROXY], synproxy_rule, CTA_SYNPROXY_MAX));
	r = fast_join(r, fast_check(pi[CTA_PROTOINFO_SCTP], sctp_rule, CTA_PROTOINFO_SCTP_MAX));
	r = fast_join(r, fast_check(pi[CTA_PROTOINFO_DCCP], dccp_rule, CTA_PROTOINFO_DCCP_MAX));
	r = fast_join(r, fast_named(tb[CTA_HELP], help_rule, CTA_HELP_MAX, CTA_HELP_NAME));
	r = fast_join(r, fast_named(tb[CTA_SECCTX], secctx_rule, CTA_SECCTX_MAX, CTA_SECCTX_NAME));
	return r;
}

int nlg_ct_decode(const struct nlmsghdr *nlh, struct nlg_ct *out)
{
	const struct nlattr *tb[CTA_MAX + 1] = {0}, *co[CTA_COUNTERS_MAX + 1] = {0},
					  *cr[CTA_COUNTERS_MAX + 1] = {0},
					  *ts[CTA_TIMESTAMP_MAX + 1] = {0},
					  *pi[CTA_PROTOINFO_TCP_MAX + 1] = {0},
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
		    res, fast_walk(NULL, tb[CTA_PROTOINFO], pinfo_rule, CTA_PROTOINFO_TCP_MAX, pi));
	if (pi[CTA_PROTOINFO_TCP])
		res = fast_join(res, fast_walk(NULL, pi[CTA_PROTOINFO_TCP], tcp_rule,
					       CTA_PROTOINFO_TCP_MAX, tcp));
	if (tb[CTA_LABELS] && attr_len(tb[CTA_LABELS]) > FAST_LABELS_MAX)
		res = FAST_BAD;
	if (res == FAST_NO)
		res = fast_join(res, fast_rest(tb, pi, family));
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
	ct.proto = attr_u8(o.num);
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
		ct.icmp_type = o.itype ? attr_u8(o.itype) : 0;
		ct.icmp_code = o.icode ? attr_u8(o.icode) : 0;
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
		ct.tcp_state = attr_u8(tcp[CTA_PROTOINFO_TCP_STATE]);
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
		ct.start_ns = be64toh(attr_u64(ts[CTA_TIMESTAMP_START]));
		ct.present |= NLG_CT_HAS_TSTART;
	}
	if (ts[CTA_TIMESTAMP_STOP]) {
		ct.stop_ns = be64toh(attr_u64(ts[CTA_TIMESTAMP_STOP]));
		ct.present |= NLG_CT_HAS_TSTOP;
	}
	if (tb[CTA_LABELS] && attr_len(tb[CTA_LABELS])) {
		/* a bitmask of 32-bit host-order words, as nfct_bitmask holds it */
		uint32_t w[NLG_CT_LABEL_BYTES / 4] = {0};
		uint16_t len = attr_len(tb[CTA_LABELS]);
		memcpy(w, attr_data(tb[CTA_LABELS]), len < sizeof(w) ? len : sizeof(w));
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
