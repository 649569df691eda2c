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
#include <sys/types.h>
#include <linux/netlink.h>
#include "common.h"

/* per recv. Kernel 6.18 caps dump skbs at ~32 KiB whatever the buffer: a
 * 15,000-socket inet_diag dump took 233 recvs with 32 KiB, 64 KiB, 256 KiB
 * and 1 MiB alike; 64 KiB leaves headroom for one oversized message. */
#define NLG_NL_BUFSIZE	    (64 * 1024)
#define NLG_NL_INTR_RETRIES 3

struct nlg_nl_stats {
	uint64_t msgs;	/* data messages handed to callbacks */
	uint64_t bytes; /* bytes received */
	uint64_t recvs;
	uint64_t skipped;  /* NOOP and unknown control types skipped by length */
	uint64_t bad_seq;  /* messages with a foreign sequence or port id, dropped */
	uint64_t overruns; /* NLMSG_OVERRUN seen */
	uint64_t intr;	   /* dumps interrupted (NLM_F_DUMP_INTR), retried */
	uint64_t enobufs;  /* ENOBUFS from recv (event sockets) */
	uint64_t errors;
};

/* State of one dump in flight; the parser advances it. A zeroed struct with
 * seq/portid set is a fresh dump; seq 0 or portid 0 means "don't check". */
struct nlg_nl_dump {
	uint32_t seq;	  /* expected sequence number, 0: any */
	uint32_t portid;  /* expected port id (ours), 0: any */
	const char *what; /* for messages: "inet_diag (tcp)", "ctnetlink", ... */
	int done;	  /* NLMSG_DONE or a final NLMSG_ERROR seen */
	int intr;	  /* some message carried NLM_F_DUMP_INTR */
	int error;	  /* negative errno once failed */
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
 * foreign is counted in stats->bad_seq and skipped. NLG_CB_STOP returns 0
 * with d->done still 0 (the kernel is still dumping). On NLG_CB_ERROR a
 * message the callback left in err (e.g. through data) is kept. fn may be
 * NULL to discard data messages. stats may be NULL. */
int nlg_nl_parse(struct nlg_nl_dump *d, const void *buf, size_t len, nlg_nl_msg_fn *fn, void *data,
		 struct nlg_nl_stats *stats, struct nlg_err *err);

struct nlg_nl; /* opaque: a libmnl socket plus its receive buffer */

/* Open a netlink socket on bus, joined to the given multicast groups (bits,
 * 0 for none). netns: NULL or a name under /run/netns to open it in.
 * On failure: NULL, err filled, errno set (EPERM: a missing capability). */
struct nlg_nl *nlg_nl_open(int bus, unsigned int groups, const char *netns, struct nlg_err *err);
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
 * req, sends it, and resets the dump state (what must outlive the dump; a
 * dump left unfinished by STOP or an error is first drained, since the kernel
 * answers EBUSY while one runs). step: receives and parses until the socket
 * would block (non-blocking), a small budget of recvs is spent (the fd stays
 * readable), or the dump ends; returns 1 (more to come), 0 (done) or a
 * negative errno (err filled). run: start + step until
 * done, retrying NLG_NL_INTR_RETRIES times on -EINTR; `restart` (may be NULL)
 * is called before each retry so a consumer can drop a partial result. */
int nlg_nl_dump_start(struct nlg_nl *nl, struct nlmsghdr *req, const char *what,
		      struct nlg_err *err);
int nlg_nl_dump_step(struct nlg_nl *nl, nlg_nl_msg_fn *fn, void *data, struct nlg_err *err);
int nlg_nl_dump_run(struct nlg_nl *nl, struct nlmsghdr *req, const char *what, nlg_nl_msg_fn *fn,
		    void *data, void (*restart)(void *data), struct nlg_err *err);

/* For event sockets: receive one buffer and hand every message to fn (no
 * sequence checks). Returns bytes received, 0 if it would block, -ENOBUFS
 * (counted) when the kernel dropped events, other negative errno on error.
 * Use a separate socket for dumps: the dump runner drops messages whose
 * sequence number is not the dump's, and events carry 0. */
int nlg_nl_recv_events(struct nlg_nl *nl, nlg_nl_msg_fn *fn, void *data, struct nlg_err *err);

/* The same under load: up to max (<= NLG_NL_BATCH_MAX) datagrams with one
 * recvmmsg, never blocking, every message to fn in order (stats count them as
 * nlg_nl_recv_events does). Returns the datagrams received (fewer than max:
 * the socket ran dry), 0 if none was waiting, -ENOBUFS (counted) when the
 * kernel dropped events, or another negative errno once the whole batch was
 * delivered (-EMSGSIZE for a datagram over NLG_NL_BATCH_SLOT bytes, which is
 * skipped; -ECANCELED at once when fn failed). Through the replay seam, one
 * io->recv buffer counts as one datagram. */
#define NLG_NL_BATCH_MAX  64
#define NLG_NL_BATCH_SLOT 8192 /* a ctnetlink event is a few hundred bytes */
int nlg_nl_recv_events_batch(struct nlg_nl *nl, int max, nlg_nl_msg_fn *fn, void *data,
			     struct nlg_err *err);

/* Replay seam, for tests and recorded fixtures: while set (io != NULL), the
 * runner and nlg_nl_recv_events send requests to io->send and read buffers
 * from io->recv instead of the socket (stats and raw recording still apply).
 * send returns 0 or a negative errno; recv returns a byte count, 0 for "would
 * block" (in nlg_nl_dump_run: no more data, -ETIMEDOUT), or a negative errno.
 * The struct is copied; NULL restores the socket. */
struct nlg_nl_io {
	int (*send)(void *ctx, const struct nlmsghdr *req);
	ssize_t (*recv)(void *ctx, void *buf, size_t len);
	void *ctx;
};
void nlg_nl_set_io(struct nlg_nl *nl, const struct nlg_nl_io *io);

#endif
