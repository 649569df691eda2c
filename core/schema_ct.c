/* The `ct` record: one conntrack flow or event. Field names follow conntrack
 * users' vocabulary (orig_src, reply_dport, mark, zone, ...); counters and
 * timestamps are present only when the kernel has acct / timestamps on. */
#include <stddef.h>

#include "nlgate/conntrack.h"

#define F(n, t, member, grp, d)                                                                    \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_ct, member),                   \
		.size = sizeof(((struct nlg_ct *)0)->member), .group = grp, .desc = d              \
	}
#define E(n, t, member, nm, grp, d)                                                                \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_ct, member),                   \
		.size = sizeof(((struct nlg_ct *)0)->member), .group = grp, .names = nm, .desc = d \
	}

static const char *const event_names[] = {"new", "update", "destroy", NULL};
/* TCP_CONNTRACK_*, as conntrack -L prints them. */
static const char *const tcp_state_names[] = {
    "NONE",	"SYN_SENT",  "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
    "LAST_ACK", "TIME_WAIT", "CLOSE",	 "SYN_SENT2",	NULL,
};
/* IPS_* status bits, by bit number. */
static const char *const status_names[] = {
    "EXPECTED",	     "SEEN_REPLY", "ASSURED",	   "CONFIRMED",	   "SRC_NAT",
    "DST_NAT",	     "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING",
    "FIXED_TIMEOUT", "TEMPLATE",   "NAT_CLASH",	   "HELPER",	   "OFFLOAD",
    "HW_OFFLOAD",    NULL,
};

static const struct nlg_field ct_fields[] = {
    E("event", NLG_T_ENUM, event, event_names, 0, "event type: new, update or destroy"),
    F("id", NLG_T_U32, id, 0, "conntrack id (unique among live flows)"),
    E("family", NLG_T_ENUM, family, nlg_family_names, 0, "address family: inet or inet6"),
    E("proto", NLG_T_ENUM, proto, nlg_ipproto_names, 0, "layer-4 protocol (tcp, udp, icmp, ...)"),
    F("orig_src", NLG_T_ADDR, orig_src, 0, "original direction: source address"),
    F("orig_dst", NLG_T_ADDR, orig_dst, 0, "original direction: destination address"),
    F("orig_sport", NLG_T_U16, orig_sport, NLG_CT_HAS_PORTS, "original direction: source port"),
    F("orig_dport", NLG_T_U16, orig_dport, NLG_CT_HAS_PORTS,
      "original direction: destination port"),
    F("reply_src", NLG_T_ADDR, reply_src, NLG_CT_HAS_REPLY, "reply direction: source address"),
    F("reply_dst", NLG_T_ADDR, reply_dst, NLG_CT_HAS_REPLY, "reply direction: destination address"),
    F("reply_sport", NLG_T_U16, reply_sport, NLG_CT_HAS_PORTS | NLG_CT_HAS_REPLY,
      "reply direction: source port"),
    F("reply_dport", NLG_T_U16, reply_dport, NLG_CT_HAS_PORTS | NLG_CT_HAS_REPLY,
      "reply direction: destination port"),
    F("icmp_type", NLG_T_U8, icmp_type, NLG_CT_HAS_ICMP, "ICMP / ICMPv6 type"),
    F("icmp_code", NLG_T_U8, icmp_code, NLG_CT_HAS_ICMP, "ICMP / ICMPv6 code"),
    F("icmp_id", NLG_T_U16, icmp_id, NLG_CT_HAS_ICMP, "ICMP / ICMPv6 echo id"),
    E("tcp_state", NLG_T_ENUM, tcp_state, tcp_state_names, NLG_CT_HAS_TCP,
      "TCP tracking state (ESTABLISHED, TIME_WAIT, ...)"),
    E("status", NLG_T_FLAGS, status, status_names, 0,
      "status flags (ASSURED, SEEN_REPLY, CONFIRMED, SRC_NAT, ...)"),
    F("mark", NLG_T_U32, mark, NLG_CT_HAS_MARK, "connection mark (ct mark)"),
    F("zone", NLG_T_U16, zone, 0, "conntrack zone, 0 by default"),
    F("labels", NLG_T_HEX, labels, NLG_CT_HAS_LABELS,
      "connection labels, 128 bits as hex (bit n: byte n/8, bit n%8)"),
    F("timeout", NLG_T_U32, timeout, NLG_CT_HAS_TIMEOUT, "time until the flow expires, s"),
    F("use", NLG_T_U32, use, NLG_CT_HAS_USE, "kernel reference count"),
    F("helper", NLG_T_STR, helper, NLG_CT_HAS_HELPER, "conntrack helper (ftp, sip, ...)"),
    F("secmark", NLG_T_U32, secmark, NLG_CT_HAS_SECMARK, "security mark"),
    F("orig_packets", NLG_T_U64, orig_packets, NLG_CT_HAS_ACCT,
      "packets in the original direction (needs nf_conntrack_acct=1)"),
    F("orig_bytes", NLG_T_U64, orig_bytes, NLG_CT_HAS_ACCT,
      "bytes in the original direction (needs nf_conntrack_acct=1)"),
    F("reply_packets", NLG_T_U64, reply_packets, NLG_CT_HAS_ACCT,
      "packets in the reply direction (needs nf_conntrack_acct=1)"),
    F("reply_bytes", NLG_T_U64, reply_bytes, NLG_CT_HAS_ACCT,
      "bytes in the reply direction (needs nf_conntrack_acct=1)"),
    F("start_ns", NLG_T_U64, start_ns, NLG_CT_HAS_TSTART,
      "flow start, ns since the epoch (needs nf_conntrack_timestamp=1)"),
    F("stop_ns", NLG_T_U64, stop_ns, NLG_CT_HAS_TSTOP,
      "flow end, ns since the epoch; destroy events (needs nf_conntrack_timestamp=1)"),
    F("synthetic", NLG_T_BOOL, synthetic, 0,
      "a destroy nlgate made up: resync found the flow gone without its event"),
    F("dump", NLG_T_BOOL, dump, 0, "read from a table dump (start-up or resync), not an event"),
};

struct nlg_schema nlg_ct_schema = {
    .kind = "ct",
    .desc = "a conntrack flow or event (ctnetlink)",
    .fields = ct_fields,
    .nfields = NLG_ARRAY_SIZE(ct_fields),
    .rec_size = sizeof(struct nlg_ct),
    .present_off = offsetof(struct nlg_ct, present),
};
