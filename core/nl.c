/* Netlink over libmnl: sockets (optionally in another network namespace),
 * buffer sizing, the dump runner and the message-type rules every netlink
 * source relies on (seq/portid checks, NOOP, DONE, ERROR, OVERRUN, DUMP_INTR). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>

#include "nlgate/netns.h"
#include "nlgate/nl.h"

#define NLG_NL_STEP_BUDGET     16    /* recvs per non-blocking step: keep the loop fair */
#define NLG_NL_DUMP_TIMEOUT_MS 10000 /* silence from the kernel mid-dump */
#define NLG_NL_DRAIN_MS	       1000  /* bound on draining an abandoned dump */

struct nlg_nl {
	struct mnl_socket *sock;
	int fd;
	int nonblock;
	uint32_t portid;
	uint32_t seq; /* last sequence number used */
	const char *bus_name;
	struct nlg_nl_dump dump;
	int pending; /* a dump was requested and the kernel may still be sending it */
	struct nlg_nl_stats stats;
	int raw_fd;
	int has_io;
	struct nlg_nl_io io;
	unsigned char *buf;	/* NLG_NL_BUFSIZE bytes */
	struct nl_batch *batch; /* nlg_nl_recv_events_batch's buffers, on first use */
};

/* NLG_NL_BATCH_MAX datagrams of NLG_NL_BATCH_SLOT bytes for one recvmmsg */
struct nl_batch {
	struct mmsghdr mm[NLG_NL_BATCH_MAX];
	struct iovec iov[NLG_NL_BATCH_MAX];
	struct sockaddr_nl from[NLG_NL_BATCH_MAX];
	unsigned char buf[];
};

/* ---- the parser ---------------------------------------------------------- */

static const char *dump_what(const struct nlg_nl_dump *d)
{
	return d->what ? d->what : "netlink dump";
}

static int parse_fail(struct nlg_nl_dump *d, struct nlg_nl_stats *st, int code)
{
	d->error = code;
	if (st)
		st->errors++;
	return code;
}

struct ext_ack {
	char msg[160];
};

static int ext_ack_attr(const struct nlattr *attr, void *data)
{
	struct ext_ack *ack = data;

	if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
		snprintf(ack->msg, sizeof(ack->msg), "%s", mnl_attr_get_str(attr));
	return MNL_CB_OK;
}

/* The kernel's own explanation (NETLINK_EXT_ACK), found in the TLVs that
 * start off bytes into the payload of an NLMSG_ERROR or NLMSG_DONE. */
static void ext_ack_read(const struct nlmsghdr *nlh, size_t off, struct ext_ack *ack)
{
	size_t plen = nlh->nlmsg_len - NLMSG_HDRLEN;

	ack->msg[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	off = NLMSG_ALIGN(off);
	if (off >= plen)
		return;
	/* malformed TLVs only cost us the extra text */
	(void)mnl_attr_parse_payload((const char *)mnl_nlmsg_get_payload(nlh) + off, plen - off,
				     ext_ack_attr, ack);
}

/* A kernel errno (positive) for this dump, turned into a message. */
static int kernel_error(struct nlg_nl_dump *d, struct nlg_nl_stats *st, int code,
			const struct ext_ack *ack, struct nlg_err *err)
{
	const char *sep = ack->msg[0] ? ": " : "";

	d->done = 1;
	if (code == EOPNOTSUPP || code == ENOENT)
		nlg_err_set(err, code, "the kernel lacks %s (%s%s%s)", dump_what(d),
			    code == ENOENT ? "ENOENT" : "EOPNOTSUPP", sep, ack->msg);
	else
		nlg_err_set(err, code, "%s: %s%s%s", dump_what(d), strerror(code), sep, ack->msg);
	return parse_fail(d, st, -code);
}

static int parse_done(struct nlg_nl_dump *d, const struct nlmsghdr *nlh, struct nlg_nl_stats *st,
		      struct nlg_err *err)
{
	int code = 0;

	if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(int))
		memcpy(&code, mnl_nlmsg_get_payload(nlh), sizeof(code));
	if (code < 0) {
		struct ext_ack ack;

		if (code == INT_MIN || -code > 4095)
			return parse_fail(d, st,
					  nlg_err_set(err, EPROTO,
						      "%s: garbled NLMSG_DONE error code %d",
						      dump_what(d), code));
		ext_ack_read(nlh, sizeof(int), &ack);
		return kernel_error(d, st, -code, &ack, err);
	}
	d->done = 1;
	if (d->intr) {
		if (st)
			st->intr++;
		return parse_fail(
		    d, st,
		    nlg_err_set(err, EINTR,
				"%s: dump interrupted (NLM_F_DUMP_INTR): the kernel's "
				"table changed while it was dumped",
				dump_what(d)));
	}
	return 0;
}

static int parse_error(struct nlg_nl_dump *d, const struct nlmsghdr *nlh, struct nlg_nl_stats *st,
		       struct nlg_err *err)
{
	struct nlmsgerr e;
	struct ext_ack ack;
	size_t tlv_off;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(e))
		return parse_fail(
		    d, st,
		    nlg_err_set(err, EPROTO, "%s: truncated NLMSG_ERROR: %u bytes, needs %zu",
				dump_what(d), nlh->nlmsg_len, (size_t)NLMSG_HDRLEN + sizeof(e)));
	memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
	if (e.error == 0) {
		d->done = 1; /* an ack: the request is complete */
		return 0;
	}
	if (e.error > 0 || e.error == INT_MIN || -e.error > 4095)
		return parse_fail(d, st,
				  nlg_err_set(err, EPROTO, "%s: garbled NLMSG_ERROR code %d",
					      dump_what(d), e.error));
	/* TLVs follow our request echoed back: whole, or just its header if capped */
	if (nlh->nlmsg_flags & NLM_F_CAPPED)
		tlv_off = sizeof(e);
	else
		tlv_off = sizeof(e.error) + (size_t)e.msg.nlmsg_len;
	ext_ack_read(nlh, tlv_off, &ack);
	return kernel_error(d, st, -e.error, &ack, err);
}

/* One message of the dump: 1 to go on, 0 finished, negative errno failed. */
static int parse_one(struct nlg_nl_dump *d, const struct nlmsghdr *nlh, nlg_nl_msg_fn *fn,
		     void *data, struct nlg_nl_stats *st, struct nlg_err *err)
{
	int r;

	if ((d->seq && nlh->nlmsg_seq != d->seq) || (d->portid && nlh->nlmsg_pid != d->portid)) {
		if (st)
			st->bad_seq++;
		return 1;
	}
	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		d->intr = 1;

	switch (nlh->nlmsg_type) {
	case NLMSG_NOOP:
		if (st)
			st->skipped++;
		return 1;
	case NLMSG_DONE:
		return parse_done(d, nlh, st, err);
	case NLMSG_ERROR:
		return parse_error(d, nlh, st, err);
	case NLMSG_OVERRUN:
		if (st)
			st->overruns++;
		return parse_fail(
		    d, st,
		    nlg_err_set(err, EOVERFLOW, "netlink overrun: %s data lost", dump_what(d)));
	}
	if (nlh->nlmsg_type < NLMSG_MIN_TYPE) {
		if (st)
			st->skipped++;
		return 1;
	}
	if (!fn)
		return 1;
	if (st)
		st->msgs++;
	r = fn(nlh, data);
	if (r == NLG_CB_OK)
		return 1;
	if (r == NLG_CB_STOP)
		return 0; /* we stop listening; the kernel may still be dumping */
	/* keep a message the callback may have left through its data */
	if (err && err->msg[0] == '\0')
		nlg_err_set(err, ECANCELED, "%s: a message handler failed", dump_what(d));
	return parse_fail(d, st, -ECANCELED);
}

int nlg_nl_parse(struct nlg_nl_dump *d, const void *buf, size_t len, nlg_nl_msg_fn *fn, void *data,
		 struct nlg_nl_stats *stats, struct nlg_err *err)
{
	const unsigned char *p = buf;
	size_t off = 0;

	if (d->error)
		return d->error;
	if (d->done)
		return 0; /* whatever follows DONE is not ours to read */
	if (len == 0 || !buf)
		return parse_fail(d, stats,
				  nlg_err_set(err, EPROTO,
					      "truncated netlink message: empty reply (%s)",
					      dump_what(d)));
	while (off < len) {
		const struct nlmsghdr *nlh = (const void *)(p + off);
		size_t rem = len - off;
		int r;

		if (rem < sizeof(*nlh))
			return parse_fail(d, stats,
					  nlg_err_set(err, EPROTO,
						      "truncated netlink message: %zu bytes at "
						      "offset %zu, a header needs %zu (%s)",
						      rem, off, sizeof(*nlh), dump_what(d)));
		if (nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > rem)
			return parse_fail(d, stats,
					  nlg_err_set(err, EPROTO,
						      "truncated netlink message: nlmsg_len %u at "
						      "offset %zu with %zu bytes left (%s)",
						      nlh->nlmsg_len, off, rem, dump_what(d)));
		off += NLMSG_ALIGN((size_t)nlh->nlmsg_len);
		r = parse_one(d, nlh, fn, data, stats, err);
		if (r != 1)
			return r;
	}
	return 1;
}

/* ---- sockets ------------------------------------------------------------- */

static const char *bus_name(int bus)
{
	switch (bus) {
	case NETLINK_ROUTE:
		return "rtnetlink";
	case NETLINK_SOCK_DIAG:
		return "sock_diag";
	case NETLINK_NETFILTER:
		return "nfnetlink";
	case NETLINK_GENERIC:
		return "genetlink";
	}
	return "netlink";
}

/* Open and bind in the current network namespace. */
static int nl_open_here(struct nlg_nl *nl, int bus, struct nlg_err *err)
{
	nl->sock = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (!nl->sock) {
		int e = errno;
		if (e == EPROTONOSUPPORT)
			return nlg_err_set(err, e, "the kernel lacks netlink bus %d (%s)", bus,
					   nl->bus_name);
		return nlg_err_set(err, e, "opening a %s socket: %s", nl->bus_name, strerror(e));
	}
	return 0;
}

static int nl_open_netns(struct nlg_nl *nl, int bus, const char *name, struct nlg_err *err)
{
	int back, rb, r = nlg_netns_enter(name, &back, err);

	if (r < 0)
		return r;

	r = nl_open_here(nl, bus, err);
	rb = nlg_netns_return(back, name, err);
	return rb < 0 ? rb : r;
}

struct nlg_nl *nlg_nl_open(int bus, unsigned int groups, const char *netns, struct nlg_err *err)
{
	struct nlg_nl *nl;
	int one = 1, r = -ENOMEM;

	nl = calloc(1, sizeof(*nl));
	if (!nl) {
		nlg_err_set(err, ENOMEM, "netlink: out of memory");
		return NULL;
	}
	nl->raw_fd = -1;
	nl->fd = -1;
	nl->bus_name = bus_name(bus);
	nl->buf = malloc(NLG_NL_BUFSIZE);
	if (!nl->buf) {
		nlg_err_set(err, ENOMEM, "netlink: out of memory");
		goto err;
	}
	r = netns ? nl_open_netns(nl, bus, netns, err) : nl_open_here(nl, bus, err);
	if (r < 0)
		goto err;
	if (mnl_socket_bind(nl->sock, groups, MNL_SOCKET_AUTOPID) < 0) {
		r = errno;
		if (r == EPERM && groups)
			nlg_err_set(err, r, "joining %s multicast groups 0x%x needs CAP_NET_ADMIN",
				    nl->bus_name, groups);
		else
			nlg_err_set(err, r, "binding a %s socket: %s", nl->bus_name, strerror(r));
		goto err;
	}
	nl->fd = mnl_socket_get_fd(nl->sock);
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)(nlg_realtime_ns() / 1000);
	/* best effort: older kernels lack them, and messages only get poorer */
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
err:
	nlg_nl_close(nl);
	errno = r < 0 ? -r : (r ? r : ENOMEM); /* so a caller can word its own message */
	return NULL;
}

void nlg_nl_close(struct nlg_nl *nl)
{
	if (!nl)
		return;
	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl->buf);
	free(nl->batch);
	free(nl);
}

int nlg_nl_fd(const struct nlg_nl *nl)
{
	return nl->fd;
}

uint32_t nlg_nl_portid(const struct nlg_nl *nl)
{
	return nl->portid;
}

int nlg_nl_set_nonblock(struct nlg_nl *nl, int on)
{
	int fl = fcntl(nl->fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (fcntl(nl->fd, F_SETFL, fl) < 0)
		return -errno;
	nl->nonblock = !!on;
	return 0;
}

int nlg_nl_set_rcvbuf(struct nlg_nl *nl, int bytes, int *actual, struct nlg_err *err)
{
	socklen_t len = sizeof(*actual);
	int e;

	if (setsockopt(nl->fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0) {
		e = errno;
		/* unprivileged: the kernel clamps SO_RCVBUF to net.core.rmem_max */
		if (e != EPERM ||
		    setsockopt(nl->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) < 0) {
			e = errno;
			return nlg_err_set(err, e, "setting the %s receive buffer to %d: %s",
					   nl->bus_name, bytes, strerror(e));
		}
	}
	if (actual && getsockopt(nl->fd, SOL_SOCKET, SO_RCVBUF, actual, &len) < 0) {
		e = errno;
		return nlg_err_set(err, e, "reading the %s receive buffer size: %s", nl->bus_name,
				   strerror(e));
	}
	return 0;
}

int nlg_nl_setsockopt_int(struct nlg_nl *nl, int opt, int val)
{
	if (mnl_socket_setsockopt(nl->sock, opt, &val, sizeof(val)) < 0)
		return -errno;
	return 0;
}

const struct nlg_nl_stats *nlg_nl_stats(const struct nlg_nl *nl)
{
	return &nl->stats;
}

void nlg_nl_set_raw(struct nlg_nl *nl, int fd)
{
	nl->raw_fd = fd;
}

void nlg_nl_set_io(struct nlg_nl *nl, const struct nlg_nl_io *io)
{
	nl->has_io = io != NULL;
	if (io)
		nl->io = *io;
}

/* ---- receiving ----------------------------------------------------------- */

static int raw_append_buf(struct nlg_nl *nl, const unsigned char *buf, size_t len,
			  struct nlg_err *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = write(nl->raw_fd, buf + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			return nlg_err_set(err, e, "recording raw %s replies: %s", nl->bus_name,
					   strerror(e));
		}
		done += (size_t)w;
	}
	return 0;
}

static int raw_append(struct nlg_nl *nl, size_t len, struct nlg_err *err)
{
	return raw_append_buf(nl, nl->buf, len, err);
}

/* One datagram into nl->buf: its length, -EAGAIN if none is waiting (only
 * when non-blocking or dontwait), -ESRCH if it did not come from the kernel,
 * or another negative errno (err filled, except for ENOBUFS: callers know
 * their context better). */
static ssize_t nl_recv(struct nlg_nl *nl, int dontwait, const char *what, struct nlg_err *err)
{
	ssize_t n;

	if (nl->has_io) {
		n = nl->io.recv(nl->io.ctx, nl->buf, NLG_NL_BUFSIZE);
		if (n == 0)
			return -EAGAIN;
		if (n < 0 && n != -EAGAIN && n != -ENOBUFS)
			return nlg_err_set(err, (int)-n, "%s: receiving: %s", what,
					   strerror((int)-n));
		if (n > NLG_NL_BUFSIZE)
			return nlg_err_set(err, EMSGSIZE, "%s: replay buffer too large", what);
	} else {
		struct sockaddr_nl sa;
		struct iovec iov = {.iov_base = nl->buf, .iov_len = NLG_NL_BUFSIZE};
		struct msghdr msg = {
		    .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1};

		do
			n = recvmsg(nl->fd, &msg, dontwait || nl->nonblock ? MSG_DONTWAIT : 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			int e = errno;
			if (e == EAGAIN || e == EWOULDBLOCK)
				return -EAGAIN;
			if (e == ENOBUFS)
				return -ENOBUFS;
			return nlg_err_set(err, e, "%s: receiving: %s", what, strerror(e));
		}
		if (msg.msg_flags & MSG_TRUNC)
			return nlg_err_set(
			    err, EMSGSIZE,
			    "%s: a netlink reply exceeded the %d-byte receive buffer", what,
			    NLG_NL_BUFSIZE);
		/* another process may unicast to our port id; only the kernel speaks here */
		if (msg.msg_namelen >= sizeof(sa) && sa.nl_pid != 0) {
			nl->stats.bad_seq++;
			return -ESRCH;
		}
	}
	if (n < 0)
		return n;
	nl->stats.recvs++;
	nl->stats.bytes += (uint64_t)n;
	if (nl->raw_fd >= 0) {
		int r = raw_append(nl, (size_t)n, err);
		if (r < 0)
			return r;
	}
	return n;
}

/* ---- the dump runner ----------------------------------------------------- */

/* The kernel runs one dump per socket and answers a new request with EBUSY
 * while one is unfinished, so a dump we stopped listening to (callback STOP
 * or failure) is read to its end first, bounded in time. */
static void nl_drain(struct nlg_nl *nl)
{
	uint64_t deadline = nlg_now_ms() + NLG_NL_DRAIN_MS;
	int raw_fd = nl->raw_fd;

	if (!nl->pending)
		return;
	nl->raw_fd = -1; /* a recording holds whole dumps, not an abandoned tail */
	nl->dump.done = 0;
	nl->dump.error = 0;
	while (!nl->dump.done) {
		uint64_t now = nlg_now_ms();
		ssize_t n;

		if (now >= deadline)
			break;
		n = nl_recv(nl, 1, "draining", NULL);
		if (n == -EAGAIN) {
			struct pollfd pfd = {.fd = nl->fd, .events = POLLIN};
			if (nl->has_io || poll(&pfd, 1, (int)(deadline - now)) <= 0)
				break;
			continue;
		}
		if (n == -ESRCH || n == -ENOBUFS)
			continue;
		if (n < 0 ||
		    nlg_nl_parse(&nl->dump, nl->buf, (size_t)n, NULL, NULL, NULL, NULL) != 1)
			break;
	}
	nl->raw_fd = raw_fd;
	nl->pending = 0;
}

int nlg_nl_dump_start(struct nlg_nl *nl, struct nlmsghdr *req, const char *what,
		      struct nlg_err *err)
{
	const char *w = what ? what : "netlink dump";
	int r;

	if (err)
		err->msg[0] = '\0';
	if (req->nlmsg_len < NLMSG_HDRLEN)
		return nlg_err_set(err, EINVAL, "%s: request shorter than a netlink header", w);
	nl_drain(nl);
	if (++nl->seq == 0) /* 0 would mean "any" to the parser */
		nl->seq = 1;
	req->nlmsg_seq = nl->seq;
	req->nlmsg_pid = nl->portid;
	req->nlmsg_flags |= NLM_F_REQUEST;
	memset(&nl->dump, 0, sizeof(nl->dump));
	nl->dump.seq = nl->seq;
	nl->dump.portid = nl->portid;
	nl->dump.what = what;

	if (nl->has_io) {
		r = nl->io.send(nl->io.ctx, req);
	} else {
		r = mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0 ? -errno : 0;
	}
	if (r < 0) {
		nl->dump.error = r;
		nl->stats.errors++;
		return nlg_err_set(err, r, "%s: sending the request: %s", w, strerror(-r));
	}
	nl->pending = 1;
	return 0;
}

int nlg_nl_dump_step(struct nlg_nl *nl, nlg_nl_msg_fn *fn, void *data, struct nlg_err *err)
{
	struct nlg_nl_dump *d = &nl->dump;
	const char *w = dump_what(d);
	int budget = NLG_NL_STEP_BUDGET;

	if (d->error)
		return d->error;
	if (d->done)
		return 0;
	if (!nl->pending)
		return nlg_err_set(err, EINVAL, "%s: no dump in progress", w);
	while (!nl->nonblock || budget-- > 0) {
		ssize_t n = nl_recv(nl, 0, w, err);
		int r;

		if (n == -EAGAIN)
			return 1;
		if (n == -ESRCH)
			continue;
		if (n == -ENOBUFS) {
			nl->stats.enobufs++;
			n = nlg_err_set(err, ENOBUFS,
					"%s: the socket receive buffer overflowed (ENOBUFS) and "
					"replies were lost; raise the receive buffer",
					w);
		}
		if (n < 0) {
			nl->stats.errors++;
			d->error = (int)n;
			return (int)n;
		}
		r = nlg_nl_parse(d, nl->buf, (size_t)n, fn, data, &nl->stats, err);
		if (r == 0 && !d->done) {
			/* the callback stopped: did the kernel finish in this buffer? */
			(void)nlg_nl_parse(d, nl->buf, (size_t)n, NULL, NULL, NULL, NULL);
			nl->pending = !d->done;
			d->done = 1; /* the caller is finished with this dump */
			d->error = 0;
			return 0;
		}
		if (d->done)
			nl->pending = 0;
		if (r != 1)
			return r;
	}
	return 1; /* budget spent; the socket is still readable */
}

int nlg_nl_dump_run(struct nlg_nl *nl, struct nlmsghdr *req, const char *what, nlg_nl_msg_fn *fn,
		    void *data, void (*restart)(void *data), struct nlg_err *err)
{
	const char *w = what ? what : "netlink dump";
	int attempt, r;

	for (attempt = 0;; attempt++) {
		r = nlg_nl_dump_start(nl, req, what, err);
		if (r < 0)
			return r;
		while ((r = nlg_nl_dump_step(nl, fn, data, err)) == 1) {
			struct pollfd pfd = {.fd = nl->fd, .events = POLLIN};
			int p = 0;

			if (!nl->has_io) {
				p = poll(&pfd, 1, NLG_NL_DUMP_TIMEOUT_MS);
				if (p < 0 && errno == EINTR)
					continue;
				if (p < 0) {
					int e = errno;
					return nlg_err_set(err, e, "%s: poll: %s", w, strerror(e));
				}
			}
			if (p == 0) {
				nl->stats.errors++;
				return nlg_err_set(err, ETIMEDOUT,
						   "%s: no reply from the kernel for %d s", w,
						   NLG_NL_DUMP_TIMEOUT_MS / 1000);
			}
		}
		if (r != -EINTR)
			return r;
		if (attempt == NLG_NL_INTR_RETRIES)
			return nlg_err_set(err, EINTR,
					   "%s: dump kept being interrupted (%d attempts)", w,
					   attempt + 1);
		if (restart)
			restart(data);
	}
}

/* ---- event sockets ------------------------------------------------------- */

/* The messages of one event datagram to fn: no sequence numbers, and a
 * control message does not end anything. Returns 0, or the first error
 * (reported after the rest of the datagram; a handler failure at once). */
static int events_walk(struct nlg_nl *nl, const unsigned char *buf, size_t n, nlg_nl_msg_fn *fn,
		       void *data, struct nlg_err *err)
{
	struct nlg_nl_dump ev = {.what = nl->bus_name};
	struct nlg_nl_stats *st = &nl->stats;
	int first = 0;
	size_t off = 0;

	while (off < n) {
		const struct nlmsghdr *nlh = (const void *)(buf + off);
		size_t rem = n - off;
		int r;

		if (rem < sizeof(*nlh) || nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > rem) {
			st->errors++;
			return nlg_err_set(err, EPROTO,
					   "truncated netlink message: %zu bytes left at offset "
					   "%zu (%s events)",
					   rem, off, nl->bus_name);
		}
		off += NLMSG_ALIGN((size_t)nlh->nlmsg_len);
		switch (nlh->nlmsg_type) {
		case NLMSG_ERROR:
		case NLMSG_OVERRUN:
			ev.done = ev.error = 0;
			r = parse_one(&ev, nlh, NULL, NULL, st, first ? NULL : err);
			if (r < 0 && !first)
				first = r; /* reported after the rest of the buffer */
			continue;
		}
		if (nlh->nlmsg_type < NLMSG_MIN_TYPE) {
			st->skipped++; /* NOOP, DONE and unknown control types */
			continue;
		}
		st->msgs++;
		r = fn(nlh, data);
		if (r == NLG_CB_STOP)
			break;
		if (r != NLG_CB_OK) {
			st->errors++;
			if (err && err->msg[0] == '\0')
				nlg_err_set(err, ECANCELED, "%s: an event handler failed",
					    nl->bus_name);
			return -ECANCELED;
		}
	}
	return first;
}

static int enobufs(struct nlg_nl *nl, struct nlg_err *err)
{
	nl->stats.enobufs++;
	return nlg_err_set(err, ENOBUFS,
			   "%s: the kernel dropped events (ENOBUFS): the socket receive "
			   "buffer was full",
			   nl->bus_name);
}

int nlg_nl_recv_events(struct nlg_nl *nl, nlg_nl_msg_fn *fn, void *data, struct nlg_err *err)
{
	ssize_t n;
	int r;

	if (err)
		err->msg[0] = '\0'; /* so a handler's own message survives */
	n = nl_recv(nl, 0, nl->bus_name, err);
	if (n == -EAGAIN || n == -ESRCH)
		return 0;
	if (n == -ENOBUFS)
		return enobufs(nl, err);
	if (n < 0) {
		nl->stats.errors++;
		return (int)n;
	}
	r = events_walk(nl, nl->buf, (size_t)n, fn, data, err);
	return r < 0 ? r : (int)n;
}

int nlg_nl_recv_events_batch(struct nlg_nl *nl, int max, nlg_nl_msg_fn *fn, void *data,
			     struct nlg_err *err)
{
	struct nl_batch *b = nl->batch;
	int n, first = 0, got = 0;

	if (err)
		err->msg[0] = '\0';
	if (max < 1)
		max = 1;
	if (max > NLG_NL_BATCH_MAX)
		max = NLG_NL_BATCH_MAX;
	if (nl->has_io) { /* the replay seam hands out one buffer at a time */
		for (; got < max; got++) {
			ssize_t len = nl_recv(nl, 1, nl->bus_name, err);
			int r;
			if (len == -EAGAIN)
				break;
			if (len == -ENOBUFS)
				return enobufs(nl, err);
			if (len < 0) {
				nl->stats.errors++;
				return (int)len;
			}
			r = events_walk(nl, nl->buf, (size_t)len, fn, data, first ? NULL : err);
			if (r == -ECANCELED)
				return r;
			if (r < 0 && !first)
				first = r;
		}
		return first ? first : got;
	}
	if (!b) {
		b = malloc(sizeof(*b) + (size_t)NLG_NL_BATCH_MAX * NLG_NL_BATCH_SLOT);
		if (!b)
			return nlg_err_set(err, ENOMEM, "%s events: out of memory", nl->bus_name);
		for (int i = 0; i < NLG_NL_BATCH_MAX; i++) {
			b->iov[i].iov_base = b->buf + (size_t)i * NLG_NL_BATCH_SLOT;
			b->iov[i].iov_len = NLG_NL_BATCH_SLOT;
			b->mm[i].msg_hdr = (struct msghdr){
			    .msg_name = &b->from[i], .msg_iov = &b->iov[i], .msg_iovlen = 1};
		}
		nl->batch = b;
	}
	for (int i = 0; i < max; i++) {
		b->mm[i].msg_hdr.msg_namelen = sizeof(b->from[i]);
		b->mm[i].msg_hdr.msg_flags = 0;
	}
	do
		n = recvmmsg(nl->fd, b->mm, (unsigned)max, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return 0;
		if (e == ENOBUFS)
			return enobufs(nl, err);
		nl->stats.errors++;
		return nlg_err_set(err, e, "%s events: receiving: %s", nl->bus_name, strerror(e));
	}
	for (int i = 0; i < n; i++) {
		const struct msghdr *mh = &b->mm[i].msg_hdr;
		size_t len = b->mm[i].msg_len;
		int r;
		/* only the kernel may speak here: a unicast from another process
		 * could forge events */
		if (mh->msg_namelen >= sizeof(b->from[i]) && b->from[i].nl_pid != 0) {
			nl->stats.bad_seq++;
			continue;
		}
		nl->stats.recvs++;
		nl->stats.bytes += len;
		if (mh->msg_flags & MSG_TRUNC) {
			nl->stats.errors++;
			if (!first)
				first = nlg_err_set(err, EMSGSIZE,
						    "%s: an event exceeded the %d-byte batch slot",
						    nl->bus_name, NLG_NL_BATCH_SLOT);
			continue;
		}
		if (nl->raw_fd >= 0) {
			r = raw_append_buf(nl, b->iov[i].iov_base, len, err);
			if (r < 0)
				return r;
		}
		r = events_walk(nl, b->iov[i].iov_base, len, fn, data, first ? NULL : err);
		if (r == -ECANCELED)
			return r;
		if (r < 0 && !first)
			first = r;
	}
	return first ? first : n;
}
