/* Netlink over libmnl: sockets, buffer sizing, and the dump runner every
 * netlink source uses. The parser (nlg_nl_parse) is a pure function over a
 * receive buffer so each message-type path is unit-tested on crafted bytes.
 *
 *   one recv buffer (>= 32 KiB):
 *   +----------+---------+----------+---------+-----+-----------+
 *   | nlmsghdr | payload | nlmsghdr | payload | ... | NLMSG_DONE|
 *   +----------+---------+----------+---------+-----+-----------+
 *   each header is checked for length, sequence and port id before use. */
#ifndef NLGATE_NL_H
#define NLGATE_NL_H

#include <stdint.h>
#include <stddef.h>
#include <linux/netlink.h>
#include "common.h"

#define NLG_NL_BUFSIZE (64 * 1024) /* per recv; the kernel fills up to 32 KiB+ per skb */
#define NLG_NL_INTR_RETRIES 3

struct nlg_nl_stats {
	uint64_t msgs;     /* data messages handed to callbacks */
	uint64_t bytes;    /* bytes received */
	uint64_t recvs;
	uint64_t skipped;  /* NOOP and unknown control types skipped by length */
	uint64_t bad_seq;  /* messages with a foreign sequence or port id, dropped */
	uint64_t overruns; /* NLMSG_OVERRUN seen */
	uint64_t intr;     /* dumps interrupted (NLM_F_DUMP_INTR), retried */
	uint64_t enobufs;  /* ENOBUFS from recv (event sockets) */
	uint64_t errors;
};

/* State of one dump in flight; the parser advances it. */
struct nlg_nl_dump {
	uint32_t seq;     /* expected sequence number */
	uint32_t portid;  /* expected port id (ours) */
	const char *what; /* for messages: "inet_diag (tcp)", "ctnetlink", ... */
	int done;         /* NLMSG_DONE or a final NLMSG_ERROR seen */
	int intr;         /* some message carried NLM_F_DUMP_INTR */
	int error;        /* negative errno once failed */
};

typedef int nlg_nl_msg_fn(const struct nlmsghdr *nlh, void *data);

/* Walk one receive buffer. Data messages matching the dump go to fn (which
 * returns NLG_CB_OK / STOP / ERROR). Returns 1 if the dump needs more data,
 * 0 when it finished (NLMSG_DONE, or an ack), or a negative errno with err
 * filled: -EPROTO for truncated/garbled messages, -EOVERFLOW for
 * NLMSG_OVERRUN, the kernel's errno for NLMSG_ERROR / a negative NLMSG_DONE
 * payload (EOPNOTSUPP/ENOENT → "the kernel lacks <what>"), -ECANCELED when fn
 * returned NLG_CB_ERROR. NLMSG_DONE with NLM_F_DUMP_INTR set anywhere in the
 * dump returns -EINTR so the caller retries. A message whose seq/portid is
 * foreign is counted in stats->bad_seq and skipped. */
int nlg_nl_parse(struct nlg_nl_dump *d, const void *buf, size_t len, nlg_nl_msg_fn *fn,
		 void *data, struct nlg_nl_stats *stats, struct nlg_err *err);

struct nlg_nl; /* opaque: a libmnl socket plus its receive buffer */

/* Open a netlink socket on bus, joined to the given multicast groups (bits,
 * 0 for none). netns: NULL or a name under /run/netns to open it in. */
struct nlg_nl *nlg_nl_open(int bus, unsigned int groups, const char *netns,
			   struct nlg_err *err);
void nlg_nl_close(struct nlg_nl *nl); /* accepts NULL */
int nlg_nl_fd(const struct nlg_nl *nl);
uint32_t nlg_nl_portid(const struct nlg_nl *nl);
int nlg_nl_set_nonblock(struct nlg_nl *nl, int on);
/* SO_RCVBUFFORCE (privileged) else SO_RCVBUF; *actual gets what the kernel set. */
int nlg_nl_set_rcvbuf(struct nlg_nl *nl, int bytes, int *actual, struct nlg_err *err);
int nlg_nl_setsockopt_int(struct nlg_nl *nl, int opt, int val); /* SOL_NETLINK options */
const struct nlg_nl_stats *nlg_nl_stats(const struct nlg_nl *nl);
/* Every received buffer is also appended to fd (for recording fixtures); -1 off. */
void nlg_nl_set_raw(struct nlg_nl *nl, int fd);

/* Dump runner. start: stamps a fresh sequence number and our port id into
 * req, sends it, and resets the dump state. step: receives and parses until
 * the socket would block (non-blocking) or the dump ends; returns 1 (more to
 * come), 0 (done) or a negative errno (err filled). run: start + step until
 * done, retrying NLG_NL_INTR_RETRIES times on -EINTR; `restart` (may be NULL)
 * is called before each retry so a consumer can drop a partial result. */
int nlg_nl_dump_start(struct nlg_nl *nl, struct nlmsghdr *req, const char *what,
		      struct nlg_err *err);
int nlg_nl_dump_step(struct nlg_nl *nl, nlg_nl_msg_fn *fn, void *data, struct nlg_err *err);
int nlg_nl_dump_run(struct nlg_nl *nl, struct nlmsghdr *req, const char *what,
		    nlg_nl_msg_fn *fn, void *data, void (*restart)(void *data),
		    struct nlg_err *err);

/* For event sockets: receive one buffer and hand every message to fn (no
 * sequence checks). Returns bytes received, 0 if it would block, -ENOBUFS
 * (counted) when the kernel dropped events, other negative errno on error. */
int nlg_nl_recv_events(struct nlg_nl *nl, nlg_nl_msg_fn *fn, void *data, struct nlg_err *err);

#endif
