/* The plain C records that sources produce. Each kind has its schema table
 * in core/schema_<kind>.c; nothing else names the fields. */
#ifndef NLGATE_RECORD_H
#define NLGATE_RECORD_H

#include <stdint.h>
#include <linux/tcp.h>
#include <linux/inet_diag.h>
#include "common.h"
#include "schema.h"

struct nlg_addr {
	uint8_t family; /* AF_INET, AF_INET6, or 0 when absent */
	uint8_t pad[3];
	uint8_t bytes[16];
};

/* An address as text ("10.0.0.1", RFC 5952 for IPv6, "" when absent)
 * without inet_ntop's sprintf; out holds INET6_ADDRSTRLEN bytes. Returns
 * the length. */
size_t nlg_addr_text(const struct nlg_addr *a, char *out);

/* sock: one inet_diag socket. `present` bits say which extension groups came. */
enum {
	NLG_SOCK_HAS_INFO = 1u << 0,	/* INET_DIAG_INFO (tcp_info) */
	NLG_SOCK_HAS_MEMINFO = 1u << 1, /* INET_DIAG_MEMINFO */
	NLG_SOCK_HAS_SKMEM = 1u << 2,	/* INET_DIAG_SKMEMINFO */
	NLG_SOCK_HAS_CONG = 1u << 3,	/* INET_DIAG_CONG */
	NLG_SOCK_HAS_TOS = 1u << 4,	/* INET_DIAG_TOS */
	NLG_SOCK_HAS_TCLASS = 1u << 5,	/* INET_DIAG_TCLASS */
	NLG_SOCK_HAS_BBR = 1u << 6,	/* INET_DIAG_BBRINFO */
	NLG_SOCK_HAS_VEGAS = 1u << 7,	/* INET_DIAG_VEGASINFO */
	NLG_SOCK_HAS_SHUTDOWN = 1u << 8,
	NLG_SOCK_HAS_MARK = 1u << 9,
	NLG_SOCK_HAS_CGROUP = 1u << 10,
};

/* SK_MEMINFO_* slots we keep (rmem_alloc .. drops); longer arrays are cut. */
#define NLG_SKMEM_VARS 9

/* sock.proto: a small index (IPPROTO_MPTCP does not fit a byte). */
enum { NLG_SOCK_TCP = 1, NLG_SOCK_UDP = 2, NLG_SOCK_MPTCP = 3 };

struct nlg_sock {
	NLG_RECORD_HEAD;
	uint8_t family; /* AF_INET / AF_INET6 */
	uint8_t proto;	/* NLG_SOCK_TCP / UDP / MPTCP */
	uint8_t state;	/* kernel TCP_* state number */
	uint8_t timer;
	uint8_t retrans;
	uint8_t shutdown;
	uint8_t tos;
	uint8_t tclass;
	uint16_t sport, dport;
	uint32_t ifindex;
	struct nlg_addr src, dst;
	uint32_t uid, inode;
	uint32_t rqueue, wqueue;
	uint32_t expires_ms;
	uint32_t mark;
	uint64_t cookie;
	uint64_t cgroup_id;
	uint8_t snd_wscale, rcv_wscale, app_limited, pad0; /* tcp_info bitfields */
	struct tcp_info info;				 /* zero-filled past what the kernel sent */
	uint32_t mem_rmem, mem_wmem, mem_fmem, mem_tmem; /* MEMINFO */
	uint32_t skmem[NLG_SKMEM_VARS];			 /* SKMEMINFO */
	char cong[16];					 /* CONG */
	uint64_t bbr_bw;				 /* bytes/s, from bbr_bw_lo/hi */
	uint32_t bbr_min_rtt, bbr_pacing_gain, bbr_cwnd_gain;
	uint32_t vegas_enabled, vegas_rttcnt, vegas_rtt, vegas_minrtt;
};

extern struct nlg_schema nlg_sock_schema;

#endif
