/* The `sock` record: one socket from an inet_diag dump. Names follow ss and
 * tcp_info (tcpi_ dropped); times carry their unit in the name. */
#include <stddef.h>
#include <netinet/in.h>

#include "nlgate/record.h"

#define F(n, t, member, grp, d)                                                                    \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct nlg_sock, member),                 \
		.size = sizeof(((struct nlg_sock *)0)->member), .group = grp, .desc = d            \
	}
#define E(n, member, nm, grp, d)                                                                   \
	{                                                                                          \
		.name = n, .type = NLG_T_ENUM, .offset = offsetof(struct nlg_sock, member),        \
		.size = 1, .group = grp, .names = nm, .desc = d                                    \
	}
#define TI(n, t, member, d) F(n, t, info.member, NLG_SOCK_HAS_INFO, d)

/* Kernel TCP_* states, named as ss prints them. UNCONN is TCP_CLOSE (UDP). */
static const char *const state_names[] = {
    "UNKNOWN",	  "ESTAB",     "SYN-SENT", "SYN-RECV",	     "FIN-WAIT-1",
    "FIN-WAIT-2", "TIME-WAIT", "UNCONN",   "CLOSE-WAIT",     "LAST-ACK",
    "LISTEN",	  "CLOSING",   "SYN-RECV", "BOUND-INACTIVE", NULL,
};
static const char *const proto_names[] = {"0", "tcp", "udp", "mptcp", NULL};
static const char *const ca_state_names[] = {
    "open", "disorder", "cwr", "recovery", "loss", NULL,
};
static const char *const timer_names[] = {
    "off", "on", "keepalive", "timewait", "persist", NULL,
};

static const struct nlg_field sock_fields[] = {
    E("family", family, nlg_family_names, 0, "address family: inet or inet6"),
    E("proto", proto, proto_names, 0, "transport protocol: tcp, udp or mptcp"),
    E("state", state, state_names, 0, "socket state as ss names it (ESTAB, LISTEN, UNCONN, ...)"),
    F("src", NLG_T_ADDR, src, 0, "local address"),
    F("sport", NLG_T_U16, sport, 0, "local port"),
    F("dst", NLG_T_ADDR, dst, 0, "peer address"),
    F("dport", NLG_T_U16, dport, 0, "peer port"),
    F("ifindex", NLG_T_U32, ifindex, 0, "bound interface index, 0 if none"),
    F("uid", NLG_T_U32, uid, 0, "owner user id"),
    F("inode", NLG_T_U32, inode, 0, "socket inode number"),
    F("cookie", NLG_T_U64, cookie, 0, "kernel socket cookie"),
    F("rqueue", NLG_T_U32, rqueue, 0, "receive queue, bytes (listeners: accept backlog)"),
    F("wqueue", NLG_T_U32, wqueue, 0, "send queue, bytes (listeners: backlog limit)"),
    E("timer", timer, timer_names, 0, "pending timer: off, on, keepalive, timewait, persist"),
    F("expires_ms", NLG_T_U32, expires_ms, 0, "time until the timer fires, ms"),
    F("retrans", NLG_T_U8, retrans, 0, "retransmit timer backoff count (idiag_retrans)"),
    F("shutdown", NLG_T_U8, shutdown, NLG_SOCK_HAS_SHUTDOWN, "shutdown state: bit 0 rd, bit 1 wr"),
    F("mark", NLG_T_U32, mark, NLG_SOCK_HAS_MARK, "socket mark (SO_MARK)"),
    F("cgroup_id", NLG_T_U64, cgroup_id, NLG_SOCK_HAS_CGROUP, "cgroup v2 id"),
    F("tos", NLG_T_U8, tos, NLG_SOCK_HAS_TOS, "IPv4 TOS byte"),
    F("tclass", NLG_T_U8, tclass, NLG_SOCK_HAS_TCLASS, "IPv6 traffic class"),
    /* tcp_info */
    E("ca_state", info.tcpi_ca_state, ca_state_names, NLG_SOCK_HAS_INFO,
      "congestion-avoidance state"),
    TI("retransmits", NLG_T_U8, tcpi_retransmits, "retransmits of the current segment"),
    TI("probes", NLG_T_U8, tcpi_probes, "zero-window or keepalive probes unanswered"),
    TI("backoff", NLG_T_U8, tcpi_backoff, "RTO backoff exponent"),
    TI("options", NLG_T_U8, tcpi_options, "TCPI_OPT_* bits (ts, sack, wscale, ecn, ...)"),
    F("snd_wscale", NLG_T_U8, snd_wscale, NLG_SOCK_HAS_INFO, "send window scale"),
    F("rcv_wscale", NLG_T_U8, rcv_wscale, NLG_SOCK_HAS_INFO, "receive window scale"),
    F("app_limited", NLG_T_BOOL, app_limited, NLG_SOCK_HAS_INFO,
      "delivery rate sample was application limited"),
    TI("rto_us", NLG_T_U32, tcpi_rto, "retransmission timeout, us"),
    TI("ato_us", NLG_T_U32, tcpi_ato, "delayed-ack timeout, us"),
    TI("snd_mss", NLG_T_U32, tcpi_snd_mss, "send MSS, bytes"),
    TI("rcv_mss", NLG_T_U32, tcpi_rcv_mss, "receive MSS estimate, bytes"),
    TI("unacked", NLG_T_U32, tcpi_unacked, "segments sent, not yet acked"),
    TI("sacked", NLG_T_U32, tcpi_sacked, "segments SACKed"),
    TI("lost", NLG_T_U32, tcpi_lost, "segments presumed lost"),
    TI("retrans_out", NLG_T_U32, tcpi_retrans, "retransmitted segments in flight"),
    TI("last_data_sent_ms", NLG_T_U32, tcpi_last_data_sent, "time since data last sent, ms"),
    TI("last_data_recv_ms", NLG_T_U32, tcpi_last_data_recv, "time since data last received, ms"),
    TI("last_ack_recv_ms", NLG_T_U32, tcpi_last_ack_recv, "time since an ack last received, ms"),
    TI("pmtu", NLG_T_U32, tcpi_pmtu, "path MTU, bytes"),
    TI("rcv_ssthresh", NLG_T_U32, tcpi_rcv_ssthresh, "receive slow-start threshold, bytes"),
    TI("rtt_us", NLG_T_U32, tcpi_rtt, "smoothed round-trip time, us"),
    TI("rttvar_us", NLG_T_U32, tcpi_rttvar, "round-trip time variation, us"),
    TI("snd_ssthresh", NLG_T_U32, tcpi_snd_ssthresh, "send slow-start threshold, segments"),
    TI("snd_cwnd", NLG_T_U32, tcpi_snd_cwnd, "congestion window, segments"),
    TI("advmss", NLG_T_U32, tcpi_advmss, "advertised MSS, bytes"),
    TI("reordering", NLG_T_U32, tcpi_reordering, "reordering metric, segments"),
    TI("rcv_rtt_us", NLG_T_U32, tcpi_rcv_rtt, "receiver-side RTT estimate, us"),
    TI("rcv_space", NLG_T_U32, tcpi_rcv_space, "receive buffer space estimate, bytes"),
    TI("total_retrans", NLG_T_U32, tcpi_total_retrans, "segments retransmitted, total"),
    TI("pacing_rate", NLG_T_U64, tcpi_pacing_rate, "pacing rate, bytes/s"),
    TI("max_pacing_rate", NLG_T_U64, tcpi_max_pacing_rate, "pacing rate cap, bytes/s"),
    TI("bytes_acked", NLG_T_U64, tcpi_bytes_acked, "bytes acknowledged by the peer"),
    TI("bytes_received", NLG_T_U64, tcpi_bytes_received, "bytes received"),
    TI("segs_out", NLG_T_U32, tcpi_segs_out, "segments sent"),
    TI("segs_in", NLG_T_U32, tcpi_segs_in, "segments received"),
    TI("notsent_bytes", NLG_T_U32, tcpi_notsent_bytes, "bytes queued, not yet sent"),
    TI("min_rtt_us", NLG_T_U32, tcpi_min_rtt, "minimum RTT seen, us"),
    TI("data_segs_in", NLG_T_U32, tcpi_data_segs_in, "data segments received"),
    TI("data_segs_out", NLG_T_U32, tcpi_data_segs_out, "data segments sent"),
    TI("delivery_rate", NLG_T_U64, tcpi_delivery_rate, "delivery rate, bytes/s"),
    TI("busy_us", NLG_T_U64, tcpi_busy_time, "time busy sending data, us"),
    TI("rwnd_limited_us", NLG_T_U64, tcpi_rwnd_limited, "time limited by receive window, us"),
    TI("sndbuf_limited_us", NLG_T_U64, tcpi_sndbuf_limited, "time limited by send buffer, us"),
    TI("delivered", NLG_T_U32, tcpi_delivered, "segments delivered"),
    TI("delivered_ce", NLG_T_U32, tcpi_delivered_ce, "segments delivered with ECN CE"),
    TI("bytes_sent", NLG_T_U64, tcpi_bytes_sent, "bytes sent, retransmits included"),
    TI("bytes_retrans", NLG_T_U64, tcpi_bytes_retrans, "bytes retransmitted"),
    TI("dsack_dups", NLG_T_U32, tcpi_dsack_dups, "duplicate segments reported by DSACK"),
    TI("reord_seen", NLG_T_U32, tcpi_reord_seen, "reordering events seen"),
    TI("rcv_ooopack", NLG_T_U32, tcpi_rcv_ooopack, "out-of-order packets received"),
    TI("snd_wnd", NLG_T_U32, tcpi_snd_wnd, "peer's advertised window, bytes"),
    /* INET_DIAG_MEMINFO */
    F("rmem", NLG_T_U32, mem_rmem, NLG_SOCK_HAS_MEMINFO, "receive memory allocated, bytes"),
    F("wmem", NLG_T_U32, mem_wmem, NLG_SOCK_HAS_MEMINFO, "send memory queued, bytes"),
    F("fmem", NLG_T_U32, mem_fmem, NLG_SOCK_HAS_MEMINFO, "forward-allocated memory, bytes"),
    F("tmem", NLG_T_U32, mem_tmem, NLG_SOCK_HAS_MEMINFO, "send memory in flight, bytes"),
    /* INET_DIAG_SKMEMINFO, as ss -m prints skmem:(r,rb,t,tb,f,w,o,bl,d) */
    F("skmem_r", NLG_T_U32, skmem[0], NLG_SOCK_HAS_SKMEM, "rmem_alloc, bytes"),
    F("skmem_rb", NLG_T_U32, skmem[1], NLG_SOCK_HAS_SKMEM, "receive buffer size, bytes"),
    F("skmem_t", NLG_T_U32, skmem[2], NLG_SOCK_HAS_SKMEM, "wmem_alloc, bytes"),
    F("skmem_tb", NLG_T_U32, skmem[3], NLG_SOCK_HAS_SKMEM, "send buffer size, bytes"),
    F("skmem_f", NLG_T_U32, skmem[4], NLG_SOCK_HAS_SKMEM, "forward alloc, bytes"),
    F("skmem_w", NLG_T_U32, skmem[5], NLG_SOCK_HAS_SKMEM, "wmem_queued, bytes"),
    F("skmem_o", NLG_T_U32, skmem[6], NLG_SOCK_HAS_SKMEM, "option memory, bytes"),
    F("skmem_bl", NLG_T_U32, skmem[7], NLG_SOCK_HAS_SKMEM, "backlog, bytes"),
    F("skmem_d", NLG_T_U32, skmem[8], NLG_SOCK_HAS_SKMEM, "packets dropped before the socket"),
    /* INET_DIAG_CONG, BBRINFO, VEGASINFO */
    F("cong", NLG_T_STR, cong, NLG_SOCK_HAS_CONG, "congestion control algorithm"),
    F("bbr_bw", NLG_T_U64, bbr_bw, NLG_SOCK_HAS_BBR, "BBR bottleneck bandwidth, bytes/s"),
    F("bbr_min_rtt_us", NLG_T_U32, bbr_min_rtt, NLG_SOCK_HAS_BBR, "BBR min RTT, us"),
    F("bbr_pacing_gain", NLG_T_U32, bbr_pacing_gain, NLG_SOCK_HAS_BBR, "BBR pacing gain << 8"),
    F("bbr_cwnd_gain", NLG_T_U32, bbr_cwnd_gain, NLG_SOCK_HAS_BBR, "BBR cwnd gain << 8"),
    F("vegas_enabled", NLG_T_U32, vegas_enabled, NLG_SOCK_HAS_VEGAS, "Vegas enabled"),
    F("vegas_rttcnt", NLG_T_U32, vegas_rttcnt, NLG_SOCK_HAS_VEGAS, "Vegas RTT samples"),
    F("vegas_rtt_us", NLG_T_U32, vegas_rtt, NLG_SOCK_HAS_VEGAS, "Vegas RTT, us"),
    F("vegas_minrtt_us", NLG_T_U32, vegas_minrtt, NLG_SOCK_HAS_VEGAS, "Vegas min RTT, us"),
};

struct nlg_schema nlg_sock_schema = {
    .kind = "sock",
    .desc = "one socket from an inet_diag dump (TCP, UDP, MPTCP; IPv4 and IPv6)",
    .fields = sock_fields,
    .nfields = NLG_ARRAY_SIZE(sock_fields),
    .rec_size = sizeof(struct nlg_sock),
    .present_off = offsetof(struct nlg_sock, present),
};
