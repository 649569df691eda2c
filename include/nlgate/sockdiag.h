/* inet_diag socket dumps over NETLINK_SOCK_DIAG → struct nlg_sock records.
 * One poll is a sequence of dump requests (each family × protocol asked for;
 * TCP on both families as one legacy TCPDIAG_GETSOCK dump where the kernel
 * takes it), run by the nl.c dump runner, non-blocking and driven by readiness. */
#ifndef NLGATE_SOCKDIAG_H
#define NLGATE_SOCKDIAG_H

#include <stdint.h>
#include <linux/netlink.h>
#include "common.h"
#include "record.h"
#include "nl.h"

enum {
	NLG_SD_INET = 1u << 0,
	NLG_SD_INET6 = 1u << 1,
};
enum {
	NLG_SD_TCP = 1u << 0,
	NLG_SD_UDP = 1u << 1,
	NLG_SD_MPTCP = 1u << 2,
};

struct nlg_sockdiag_req {
	uint32_t families;     /* NLG_SD_INET | NLG_SD_INET6; 0 means both */
	uint32_t protos;       /* NLG_SD_TCP | NLG_SD_UDP | NLG_SD_MPTCP; 0 means all three */
	uint32_t states;       /* bitmask of 1 << TCP_* state; 0 means all */
	uint8_t ext;	       /* idiag_ext bits: 1 << (INET_DIAG_INFO - 1), ... */
	uint16_t sport, dport; /* kernel-side port filter (bytecode), 0 = any */
};

/* Parse a state list ("established,listen", "all", "connected", "synrecv" ...)
 * into a state mask; names as ss takes them. -EINVAL with err on a bad name. */
int nlg_sockdiag_parse_states(const char *list, uint32_t *mask, struct nlg_err *err);
/* Parse an info list ("tcp_info,meminfo,skmem,cong,tos,bbr,vegas", "all", "none")
 * into idiag_ext bits. */
int nlg_sockdiag_parse_ext(const char *list, uint8_t *ext, struct nlg_err *err);
/* "tcp,udp,mptcp" or "all" → NLG_SD_* protocol bits; "inet,inet6" (ipv4,
 * ipv6, 4, 6, all) → NLG_SD_INET/INET6 bits. */
int nlg_sockdiag_parse_protos(const char *list, uint32_t *protos, struct nlg_err *err);
int nlg_sockdiag_parse_families(const char *list, uint32_t *families, struct nlg_err *err);
/* The ss name of a kernel state ("ESTAB", "LISTEN", "UNCONN", ...). */
const char *nlg_sockdiag_state_name(unsigned int state);

/* Decode one SOCK_DIAG_BY_FAMILY (or TCPDIAG_GETSOCK: the same payload) reply
 * into out (fully overwritten on success).
 * ipproto is the IPPROTO_* the request asked for (the reply does not say).
 * Returns 0, or -EPROTO if the message or an attribute is malformed: shorter
 * than struct inet_diag_msg, an attribute running past the message, or a
 * known attribute whose payload is shorter than its type (the whole record is
 * rejected, not half-filled). tcp_info of any length is accepted (copy the
 * minimum, zero the rest); it is decoded for TCP only (MPTCP's INET_DIAG_INFO
 * carries struct mptcp_info). -EINVAL for an ipproto other than TCP/UDP/MPTCP. */
int nlg_sock_decode(const struct nlmsghdr *nlh, int ipproto, struct nlg_sock *out);

struct nlg_sockdiag_stats {
	uint64_t polls;	    /* completed polls */
	uint64_t records;   /* records decoded */
	uint64_t malformed; /* replies that failed to decode, skipped */
	uint64_t failed;    /* polls that ended in an error */
	uint64_t skipped;   /* requests skipped because the kernel lacks the protocol */
	uint64_t fallbacks; /* the kernel refused the TCPDIAG_GETSOCK dump (TCP, both
			       families): two v2 requests from then on; 0 or 1 */
};

struct nlg_sockdiag; /* opaque source */

typedef int nlg_sock_fn(const struct nlg_sock *rec, void *data); /* NLG_CB_* */

/* Decode recorded replies (`dump sockets --raw FILE`, tests/fixtures/
 * sock_*.bin: recv buffers back to back) and call fn per socket. A reply's
 * protocol is its INET_DIAG_PROTOCOL where present, TCP for the legacy
 * dump, else ipproto (IPPROTO_TCP/UDP/MPTCP: the recording does not keep
 * the request). Returns the records, or -EPROTO with err at a malformed
 * reply. */
int nlg_sockdiag_replay(const void *buf, size_t len, int ipproto, nlg_sock_fn *fn, void *data,
			struct nlg_err *err);
/* Called before a request interrupted by NLM_F_DUMP_INTR is sent again: the
 * records it already delivered in this poll (those of this family and proto,
 * NLG_SOCK_TCP/UDP/MPTCP) will come again. A request that covered both
 * families (TCP) calls it once for AF_INET and once for AF_INET6; so does
 * the switch to v2 requests when the kernel refused that request after it
 * delivered records. A consumer that keeps records drops them here; a
 * per-record consumer without it may see them twice. */
typedef void nlg_sock_restart_fn(uint8_t family, uint8_t proto, void *data);

/* netns: NULL or a name under /run/netns. */
struct nlg_sockdiag *nlg_sockdiag_open(const char *netns, struct nlg_err *err);
void nlg_sockdiag_close(struct nlg_sockdiag *sd); /* accepts NULL */
int nlg_sockdiag_fd(const struct nlg_sockdiag *sd);
struct nlg_nl *nlg_sockdiag_nl(struct nlg_sockdiag *sd);
const struct nlg_sockdiag_stats *nlg_sockdiag_stats(const struct nlg_sockdiag *sd);
/* Set (or clear with NULL) the restart callback; it gets the data given to step/poll. */
void nlg_sockdiag_set_restart(struct nlg_sockdiag *sd, nlg_sock_restart_fn *restart);

/* Begin a poll: the first request is sent. Non-blocking from here on. */
int nlg_sockdiag_start(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req,
		       struct nlg_err *err);
/* Read what is ready, decode, call fn per record. Returns 1 if the poll is
 * still running (wait for readability), 0 when all requests are done, or a
 * negative errno (err filled). A protocol the kernel lacks (MPTCP, UDP diag
 * module absent) is skipped and counted, not fatal — unless it is the only
 * protocol asked for. fn returning NLG_CB_STOP ends the poll cleanly (the
 * rest of the current dump is read and dropped); NLG_CB_ERROR fails it.
 * An interrupted request (NLM_F_DUMP_INTR) is sent again, up to
 * NLG_NL_INTR_RETRIES times, after the restart callback. */
int nlg_sockdiag_step(struct nlg_sockdiag *sd, nlg_sock_fn *fn, void *data, struct nlg_err *err);
/* Whole poll, blocking (for the command line), one nlg_nl_dump_run per
 * request; same rules as step. -EBUSY while a start/step poll is running. */
int nlg_sockdiag_poll(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req, nlg_sock_fn *fn,
		      void *data, struct nlg_err *err);

#endif
