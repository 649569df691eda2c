/* The `pkt` and `flow` records of packet capture (include/nlgate/packet.h).
 * Names follow the headers they come from (ttl, frag_offset, tcp_flags) and
 * the flow exporters' vocabulary (fwd_/rev_ as seen from the first sender). */
#include <stddef.h>

#include "nlgate/packet.h"

#define P(n, t, member, grp, d)                                                                    \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_pkt, member),                  \
		.size = sizeof(((struct nlg_pkt *)0)->member), .group = grp, .desc = d             \
	}
#define PN(n, t, member, nm, grp, d)                                                               \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_pkt, member),                  \
		.size = sizeof(((struct nlg_pkt *)0)->member), .group = grp, .names = nm,          \
		.desc = d                                                                          \
	}
#define F(n, t, member, grp, d)                                                                    \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_flow, member),                 \
		.size = sizeof(((struct nlg_flow *)0)->member), .group = grp, .desc = d            \
	}
#define FN(n, t, member, nm, grp, d)                                                               \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_flow, member),                 \
		.size = sizeof(((struct nlg_flow *)0)->member), .group = grp, .names = nm,         \
		.desc = d                                                                          \
	}

/* PACKET_HOST .. PACKET_OUTGOING, the kernel's packet types. */
static const char *const direction_names[] = {
    "host", "broadcast", "multicast", "otherhost", "outgoing", NULL,
};
/* By bit, as in the TCP header's flags byte. */
static const char *const tcp_flag_names[] = {
    "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", NULL,
};
static const char *const end_reason_names[] = {
    "idle", "active", "fin", "rst", "evicted", "shutdown", NULL,
};

static const struct nlg_field pkt_fields[] = {
    P("time_ns", NLG_T_U64, time_ns, 0, "capture time, ns since the epoch"),
    P("ifindex", NLG_T_U32, ifindex, 0, "interface index it was captured on, 0 from a file"),
    PN("direction", NLG_T_ENUM, direction, direction_names, 0,
       "packet type: host, broadcast, multicast, otherhost or outgoing"),
    P("wire_len", NLG_T_U32, wire_len, 0, "length on the wire, bytes"),
    P("cap_len", NLG_T_U32, cap_len, 0, "bytes captured (at most the snap length)"),
    P("truncated", NLG_T_BOOL, truncated, 0, "the capture ended inside the headers"),
    P("malformed", NLG_T_BOOL, malformed, 0,
      "a header length was impossible: decoding stopped there"),
    P("worker", NLG_T_U8, worker, 0, "capture worker (fanout member) that saw it"),
    P("rxhash", NLG_T_U32, rxhash, NLG_PKT_HAS_RXHASH, "the NIC's or kernel's flow hash"),
    P("vlan", NLG_T_U16, vlan, NLG_PKT_HAS_VLAN, "outer VLAN id (12 bits)"),
    P("vlan_inner", NLG_T_U16, vlan_inner, NLG_PKT_HAS_VLAN2, "inner VLAN id of QinQ (12 bits)"),
    P("ethertype", NLG_T_U16, ethertype, 0, "EtherType after any VLAN tags, 0 if unknown"),
    PN("family", NLG_T_ENUM, family, nlg_family_names, NLG_PKT_HAS_IP,
       "address family: inet or inet6"),
    P("src", NLG_T_ADDR, src, NLG_PKT_HAS_IP, "IP source address"),
    P("dst", NLG_T_ADDR, dst, NLG_PKT_HAS_IP, "IP destination address"),
    PN("proto", NLG_T_ENUM, proto, nlg_ipproto_names, NLG_PKT_HAS_IP,
       "IP protocol (tcp, udp, icmp, ...), after IPv6 extension headers"),
    P("ttl", NLG_T_U8, ttl, NLG_PKT_HAS_IP, "IPv4 TTL or IPv6 hop limit, hops"),
    P("frag_id", NLG_T_U32, frag_id, NLG_PKT_HAS_FRAG,
      "fragment identification (IPv4 16 bits, IPv6 32 bits)"),
    P("frag_offset", NLG_T_U16, frag_offset, NLG_PKT_HAS_FRAG,
      "fragment offset in the datagram, bytes"),
    P("frag_more", NLG_T_BOOL, frag_more, NLG_PKT_HAS_FRAG, "more fragments follow (MF)"),
    P("sport", NLG_T_U16, sport, NLG_PKT_HAS_PORTS, "source port (tcp, udp, udplite, sctp, dccp)"),
    P("dport", NLG_T_U16, dport, NLG_PKT_HAS_PORTS,
      "destination port (tcp, udp, udplite, sctp, dccp)"),
    PN("tcp_flags", NLG_T_FLAGS, tcp_flags, tcp_flag_names, NLG_PKT_HAS_TCP,
       "TCP flags (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)"),
    P("seq", NLG_T_U32, seq, NLG_PKT_HAS_TCP, "TCP sequence number"),
    P("ack", NLG_T_U32, ack, NLG_PKT_HAS_TCP, "TCP acknowledgment number"),
    P("window", NLG_T_U16, window, NLG_PKT_HAS_TCP, "TCP window field, unscaled, bytes"),
    P("icmp_type", NLG_T_U8, icmp_type, NLG_PKT_HAS_ICMP, "ICMP / ICMPv6 type"),
    P("icmp_code", NLG_T_U8, icmp_code, NLG_PKT_HAS_ICMP, "ICMP / ICMPv6 code"),
};

struct nlg_schema nlg_pkt_schema = {
    .kind = "pkt",
    .desc = "a captured packet's headers (link, IP, transport)",
    .fields = pkt_fields,
    .nfields = NLG_ARRAY_SIZE(pkt_fields),
    .rec_size = sizeof(struct nlg_pkt),
    .present_off = offsetof(struct nlg_pkt, present),
};

static const struct nlg_field flow_fields[] = {
    FN("proto", NLG_T_ENUM, proto, nlg_ipproto_names, 0, "IP protocol (tcp, udp, icmp, ...)"),
    FN("family", NLG_T_ENUM, family, nlg_family_names, 0, "address family: inet or inet6"),
    F("src", NLG_T_ADDR, src, 0, "address of the side that sent the first packet seen"),
    F("sport", NLG_T_U16, sport, NLG_FLOW_HAS_PORTS, "port of the first sender"),
    F("dst", NLG_T_ADDR, dst, 0, "address of the other side"),
    F("dport", NLG_T_U16, dport, NLG_FLOW_HAS_PORTS, "port of the other side"),
    F("vlan", NLG_T_U16, vlan, NLG_FLOW_HAS_VLAN, "outer VLAN id (12 bits)"),
    F("packets", NLG_T_U64, packets, 0, "packets, both directions"),
    F("bytes", NLG_T_U64, bytes, 0, "bytes on the wire, both directions"),
    F("fwd_packets", NLG_T_U64, fwd_packets, 0, "packets src sent"),
    F("fwd_bytes", NLG_T_U64, fwd_bytes, 0, "bytes on the wire src sent"),
    F("rev_packets", NLG_T_U64, rev_packets, 0, "packets dst sent"),
    F("rev_bytes", NLG_T_U64, rev_bytes, 0, "bytes on the wire dst sent"),
    F("first_ns", NLG_T_U64, first_ns, 0, "first packet's time, ns since the epoch"),
    F("last_ns", NLG_T_U64, last_ns, 0, "last packet's time, ns since the epoch"),
    FN("tcp_flags", NLG_T_FLAGS, tcp_flags, tcp_flag_names, 0,
       "TCP flags seen in either direction (union)"),
    FN("fwd_tcp_flags", NLG_T_FLAGS, fwd_tcp_flags, tcp_flag_names, 0,
       "TCP flags src sent (union)"),
    FN("rev_tcp_flags", NLG_T_FLAGS, rev_tcp_flags, tcp_flag_names, 0,
       "TCP flags dst sent (union)"),
    FN("end_reason", NLG_T_ENUM, end_reason, end_reason_names, 0,
       "why the record ended: idle, active, fin, rst, evicted or shutdown"),
    F("ifindex", NLG_T_U32, ifindex, 0, "interface index of the first packet, 0 from a file"),
    F("worker", NLG_T_U8, worker, 0, "capture worker whose table held the flow"),
};

struct nlg_schema nlg_flow_schema = {
    .kind = "flow",
    .desc = "a bidirectional flow folded from captured packets",
    .fields = flow_fields,
    .nfields = NLG_ARRAY_SIZE(flow_fields),
    .rec_size = sizeof(struct nlg_flow),
    .present_off = offsetof(struct nlg_flow, present),
};
