/* The Fluentd Forward output: one TCP link driven on the loop through
 * connect, the shared-key handshake, writes, acks, timeouts and reconnects,
 * never blocking it. The messages and their queue are core/fwdq.c's, the
 * bytes core/forward.c's. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nlgate/forward.h"
#include "nlgate/fwdq.h"
#include "nlgate/net.h"
#include "nlgate/out_forward.h"

#define WRITE_IOV      64 /* messages per sendmsg */
#define READS_PER_WAKE 16 /* bounded, so a chatty server cannot hold the loop */

enum phase { P_IDLE, P_CONNECTING, P_HELO, P_PONG, P_UP, P_CLOSED };

/* What went wrong, for the counters and the state shown. */
enum fail { F_CONNECT, F_HANDSHAKE, F_PROTOCOL, F_ACK_TIMEOUT, F_LINK };

struct fwd {
	struct nlg_loop *loop;
	const struct nlg_forward_conf *cf;
	struct nlg_netaddr addr;
	char self_host[256];
	struct nlg_fwdq *q;
	int64_t t_flush; /* closes a batch flush_ms after it opened */

	/* the link */
	enum phase phase;
	int fd, want_out, closing;
	int64_t t_link;
	uint64_t t_link_at; /* when t_link fires (P_UP: the earliest deadline) */
	struct nlg_backoff bo;
	uint64_t blocked_ms; /* writes wait on EPOLLOUT since then; 0: not waiting */
	struct nlg_buf hs;   /* the PING, while it is written */
	size_t hs_off;
	char salt[33];
	uint8_t nonce[256];
	size_t nonce_len;
	int hs_failed; /* the last failure was the handshake: the state says so */
	uint64_t dropped_at_close;
	uint64_t ups;
	uint64_t quiet; /* failed attempts since the last line logged */
	char logged[200];
	size_t rlen;
	struct nlg_forward_stats st;
	uint8_t rbuf[NLG_FWD_REPLY_MAX];
};

/* ---- options and counters ---- */

#define CONF(m) offsetof(struct nlg_forward_conf, m), sizeof(((struct nlg_forward_conf *)0)->m)

static const struct nlg_opt forward_opts[] = {
    {.name = "host",
     .type = NLG_OPT_STR,
     CONF(host),
     .def = "127.0.0.1",
     .arg = "HOST",
     .desc = "the server: a name (resolved once, at open) or an address (default 127.0.0.1)"},
    {.name = "port",
     .type = NLG_OPT_UINT,
     CONF(port),
     .def = "24224",
     .min = 1,
     .max = 65535,
     .arg = "PORT",
     .desc = "the server's Forward port (default 24224)"},
    {.name = "tag_prefix",
     .type = NLG_OPT_STR,
     CONF(tag_prefix),
     .arg = "PREFIX",
     .desc = "tags are PREFIX.tag (default none: the tag as sent)"},
    {.name = "shared_key",
     .type = NLG_OPT_STR,
     CONF(shared_key),
     .arg = "KEY",
     .desc = "answer the server's HELO with this key and check its PONG "
	     "(default none: no handshake)"},
    {.name = "self_hostname",
     .type = NLG_OPT_STR,
     CONF(self_hostname),
     .arg = "NAME",
     .desc = "our name in the handshake (default the host name)"},
    {.name = "username",
     .type = NLG_OPT_STR,
     CONF(username),
     .arg = "USER",
     .desc = "for a server that asks for a user in its HELO"},
    {.name = "password",
     .type = NLG_OPT_STR,
     CONF(password),
     .arg = "PASSWORD",
     .desc = "the user's password (sent only as a salted digest)"},
    {.name = "ack",
     .type = NLG_OPT_BOOL,
     CONF(ack),
     .def = "true",
     .desc = "ask for an ack of every message and keep it until then: at least once "
	     "(default true)"},
    {.name = "size",
     .type = NLG_OPT_UINT,
     CONF(size),
     .def = "1000",
     .min = 1,
     .max = 1000000,
     .arg = "N",
     .desc = "records per message at most (default 1000)"},
    {.name = "chunk",
     .type = NLG_OPT_SIZE,
     CONF(chunk),
     .def = "1M",
     .min = 1024,
     .max = 256ull << 20,
     .arg = "BYTES",
     .desc = "bytes of records per message at most, and at most half the queue; a larger "
	     "record goes alone (default 1M)"},
    {.name = "flush",
     .type = NLG_OPT_DURATION,
     CONF(flush_ms),
     .def = "100ms",
     .min = 1,
     .max = 60000,
     .arg = "DURATION",
     .desc = "a message waits at most this long for more records (default 100ms)"},
    {.name = "queue",
     .type = NLG_OPT_SIZE,
     CONF(queue),
     .def = "8M",
     .min = 64 << 10,
     .max = 4ull << 30,
     .arg = "BYTES",
     .desc = "bound on bytes held, unsent and unacknowledged; past it records are dropped "
	     "whole and announced by an nlgate.gap record (default 8M)"},
    {.name = "queue_records",
     .type = NLG_OPT_UINT,
     CONF(queue_records),
     .def = "100000",
     .max = 100000000,
     .arg = "N",
     .desc = "bound on records held; 0: bytes only (default 100000)"},
    {.name = "keepalive",
     .type = NLG_OPT_DURATION,
     CONF(keepalive_ms),
     .def = "10s",
     .max = 7200000,
     .arg = "DURATION",
     .desc = "TCP keepalive after this long idle, 3 probes a third of it apart: an idle "
	     "dead peer is noticed in twice this; 0 off (default 10s)"},
    {.name = "write_timeout",
     .type = NLG_OPT_DURATION,
     CONF(write_timeout_ms),
     .def = "10s",
     .max = 3600000,
     .arg = "DURATION",
     .desc = "data the peer has not taken for this long breaks the link (TCP_USER_TIMEOUT, "
	     "and a write that waits as long); 0 off (default 10s)"},
    {.name = "connect_timeout",
     .type = NLG_OPT_DURATION,
     CONF(connect_timeout_ms),
     .def = "10s",
     .min = 100,
     .max = 600000,
     .arg = "DURATION",
     .desc = "connect and handshake within this (default 10s)"},
    {.name = "ack_timeout",
     .type = NLG_OPT_DURATION,
     CONF(ack_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .arg = "DURATION",
     .desc = "a message unacknowledged this long after it was written breaks the link; "
	     "everything unacknowledged is sent again (default 30s)"},
    {.name = "retry_min",
     .type = NLG_OPT_DURATION,
     CONF(retry_min_ms),
     .def = "100ms",
     .min = 1,
     .max = 3600000,
     .arg = "DURATION",
     .desc = "first wait before a reconnect (default 100ms)"},
    {.name = "retry_max",
     .type = NLG_OPT_DURATION,
     CONF(retry_max_ms),
     .def = "30s",
     .min = 1,
     .max = 3600000,
     .arg = "DURATION",
     .desc = "longest wait before a reconnect: waits double up to it, with jitter "
	     "(default 30s)"},
    {.name = NULL},
};

#define STAT(n, t, d)                                                                              \
	{                                                                                          \
		.name = #n, .type = t, .offset = offsetof(struct nlg_forward_stats, n),            \
		.size = sizeof(((struct nlg_forward_stats *)0)->n), .desc = d                      \
	}

static const struct nlg_field forward_stats_fields[] = {
    NLG_LINK_FIELDS(struct nlg_forward_stats, link),
    STAT(chunks, NLG_T_U64, "messages framed"),
    STAT(chunks_acked, NLG_T_U64, "messages acknowledged"),
    STAT(gaps, NLG_T_U64, "nlgate.gap records queued (not counted in queued, sent, ...)"),
    STAT(unacked, NLG_T_U64, "messages written and awaiting their ack now"),
    STAT(queue_records, NLG_T_U64, "records held now: unsent, or sent and unacknowledged"),
    STAT(queue_bytes, NLG_T_U64, "bytes held now"),
    STAT(connect_failures, NLG_T_U64,
	 "connection attempts that failed or broke before the link was up"),
    STAT(handshake_failures, NLG_T_U64,
	 "handshakes failed: key refused, wrong PONG digest, no HELO"),
    STAT(link_failures, NLG_T_U64, "links that broke once up, ack timeouts included"),
    STAT(ack_timeouts, NLG_T_U64, "links given up because an ack was late"),
    STAT(protocol_errors, NLG_T_U64, "the server sent something that is not Forward"),
    STAT(peer, NLG_T_STR, "the server, host:port"),
    STAT(error, NLG_T_STR, "the last failure; empty while the link is up"),
};

struct nlg_schema nlg_forward_stats_schema = {
    .kind = "forward.stats",
    .desc = "counters of a Fluentd Forward output",
    .fields = forward_stats_fields,
    .nfields = NLG_ARRAY_SIZE(forward_stats_fields),
    .rec_size = sizeof(struct nlg_forward_stats),
    .present_off = offsetof(struct nlg_forward_stats, present),
};

/* ---- the link ---- */

static void link_start(struct fwd *f);
static void fwd_stats(void *st, void *out);
static int do_write(struct fwd *f);
static void after_push(struct fwd *f, int rc);
static int64_t link_timer(struct nlg_loop *loop, int64_t id, void *data);

static void link_disarm(struct fwd *f)
{
	if (f->t_link > 0)
		nlg_loop_del_timer(f->loop, f->t_link);
	f->t_link = 0;
}

static void link_arm(struct fwd *f, uint64_t ms)
{
	link_disarm(f);
	f->t_link = nlg_loop_add_timer(f->loop, ms, link_timer, f);
	if (f->t_link < 0)
		f->t_link = 0; /* out of memory: the next write or read arms it again */
	f->t_link_at = nlg_now_ms() + ms;
}

static void set_out(struct fwd *f, int on)
{
	if (f->fd < 0 || f->want_out == on)
		return;
	if (nlg_loop_mod_fd(f->loop, f->fd, EPOLLIN | (on ? EPOLLOUT : 0)) == 0)
		f->want_out = on;
}

/* While up: the next deadline, an ack due (the oldest written message's) or
 * a write waiting too long; 0 if none. */
static uint64_t up_deadline(const struct fwd *f)
{
	uint64_t d = 0;

	if (nlg_fwdq_oldest(f->q))
		d = nlg_fwdq_oldest(f->q) + f->cf->ack_timeout_ms;
	if (f->blocked_ms && f->cf->write_timeout_ms) {
		uint64_t w = f->blocked_ms + f->cf->write_timeout_ms;
		if (!d || w < d)
			d = w;
	}
	return d;
}

/* One timer watches both deadlines; armed anew only when a deadline comes
 * earlier than the one it waits for (acks only move them later). */
static void up_arm(struct fwd *f)
{
	uint64_t d = up_deadline(f), now = nlg_now_ms();

	if (!d || (f->t_link > 0 && f->t_link_at <= d))
		return;
	link_arm(f, d > now ? d - now : 0);
}

/* The link is lost: close it, and start over from the oldest message not
 * acknowledged after a backoff. A failure is logged when it differs from the
 * last one logged, so a server down for an hour is one line, not thousands. */
static void link_fail(struct fwd *f, enum fail kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void link_fail(struct fwd *f, enum fail kind, const char *fmt, ...)
{
	char msg[sizeof(f->st.error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (f->fd >= 0) {
		nlg_loop_del_fd(f->loop, f->fd);
		close(f->fd);
		f->fd = -1;
	}
	link_disarm(f);
	f->want_out = 0;
	f->blocked_ms = 0;
	f->rlen = 0;
	nlg_buf_reset(&f->hs);
	f->hs_off = 0;
	nlg_fwdq_rewind(f->q); /* all of it again, oldest first, on the next link */
	if (f->phase == P_UP)
		f->st.link_failures++;
	else
		f->st.connect_failures++;
	if (kind == F_HANDSHAKE)
		f->st.handshake_failures++;
	else if (kind == F_PROTOCOL)
		f->st.protocol_errors++;
	else if (kind == F_ACK_TIMEOUT)
		f->st.ack_timeouts++;
	f->hs_failed = kind == F_HANDSHAKE;
	memcpy(f->st.error, msg, sizeof(msg));
	f->phase = P_IDLE;
	if (f->closing)
		return;
	f->quiet++;
	if (strcmp(msg, f->logged)) {
		nlg_log("forward %s: %s; retrying (backoff %" PRIu64 " ms to %" PRIu64 " ms)",
			f->addr.text, msg, f->cf->retry_min_ms, f->cf->retry_max_ms);
		memcpy(f->logged, msg, sizeof(msg));
	}
	link_arm(f, nlg_backoff_next(&f->bo));
}

static void link_up(struct fwd *f)
{
	f->phase = P_UP;
	link_disarm(f);
	nlg_backoff_reset(&f->bo);
	if (f->ups++)
		f->st.link.reconnects++;
	if (f->logged[0])
		nlg_log("forward %s: connected after %" PRIu64 " failed attempt%s", f->addr.text,
			f->quiet, f->quiet == 1 ? "" : "s");
	f->logged[0] = 0;
	f->quiet = 0;
	f->st.error[0] = 0;
	f->hs_failed = 0;
	set_out(f, 0);
	do_write(f);
}

/* ---- writing ---- */

/* Write the handshake's PING, or, once up, the messages from wr on, until
 * all is written or the socket is full. 0, or -1 when the link failed. */
static int do_write(struct fwd *f)
{
	int progress = 0;

	while (f->hs_off < f->hs.len) {
		ssize_t w = send(f->fd, f->hs.data + f->hs_off, f->hs.len - f->hs_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_out(f, 1);
			return 0;
		}
		if (w < 0) {
			link_fail(f, F_CONNECT, "write: %s", strerror(errno));
			return -1;
		}
		f->hs_off += (size_t)w;
	}
	if (f->phase != P_UP) {
		set_out(f, 0);
		return 0;
	}
	while (nlg_fwdq_unwritten(f->q)) {
		struct iovec iov[WRITE_IOV];
		struct msghdr m = {.msg_iov = iov};
		ssize_t w;

		m.msg_iovlen = (size_t)nlg_fwdq_iov(f->q, iov, WRITE_IOV);
		w = sendmsg(f->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0) {
			link_fail(f, F_LINK, "write: %s", strerror(errno));
			return -1;
		}
		progress = 1;
		f->blocked_ms = 0;
		nlg_fwdq_consume(f->q, (size_t)w);
	}
	if (nlg_fwdq_unwritten(f->q) && !f->blocked_ms)
		f->blocked_ms = nlg_now_ms();
	set_out(f, nlg_fwdq_unwritten(f->q));
	up_arm(f);
	/* Without acks a write frees room: a pending gap can go now. */
	if (progress && !f->cf->ack && nlg_fwdq_missed(f->q))
		after_push(f, nlg_fwdq_announce(f->q));
	return f->fd >= 0 ? 0 : -1;
}

/* ---- batches ---- */

static int64_t flush_timer(struct nlg_loop *loop, int64_t id, void *data)
{
	struct fwd *f = data;
	uint64_t opened = nlg_fwdq_opened(f->q), now = nlg_now_ms();

	(void)loop;
	(void)id;
	/* The batch it was armed for may have closed already: wait out the
	 * open one's time instead. */
	if (opened && now - opened < f->cf->flush_ms)
		return (int64_t)(f->cf->flush_ms - (now - opened));
	f->t_flush = 0;
	if (nlg_fwdq_close(f->q) && f->phase == P_UP)
		do_write(f);
	return -1;
}

/* After a push or an announcement: write what closed, and have the flush
 * timer watch a batch left open. */
static void after_push(struct fwd *f, int rc)
{
	if ((rc & NLG_FWDQ_CLOSED) && f->phase == P_UP)
		do_write(f);
	if (nlg_fwdq_opened(f->q) && !f->t_flush) {
		int64_t t = nlg_loop_add_timer(f->loop, f->cf->flush_ms, flush_timer, f);
		f->t_flush = t > 0 ? t : 0;
	}
}

/* ---- reading ---- */

/* One message from the server. 0, or -1 when the link failed. */
static int on_reply(struct fwd *f, const struct nlg_fwd_reply *r)
{
	const struct nlg_forward_conf *cf = f->cf;
	int ok;

	switch (f->phase) {
	case P_HELO:
		if (r->kind != NLG_FWD_HELO)
			break;
		if (r->nonce_len > sizeof(f->nonce)) {
			link_fail(f, F_PROTOCOL, "protocol error: a HELO nonce of %zu bytes",
				  r->nonce_len);
			return -1;
		}
		if (r->auth_len && !cf->username[0]) {
			link_fail(f, F_HANDSHAKE,
				  "handshake failed: the server asks for a username and password "
				  "(options username, password)");
			return -1;
		}
		memcpy(f->nonce, r->nonce, r->nonce_len);
		f->nonce_len = r->nonce_len;
		nlg_buf_reset(&f->hs);
		f->hs_off = 0;
		if (nlg_fwd_ping(&f->hs, r, f->self_host, f->salt, cf->shared_key, cf->username,
				 cf->password) < 0) {
			link_fail(f, F_HANDSHAKE, "handshake failed: cannot build the PING");
			return -1;
		}
		f->phase = P_PONG;
		return do_write(f);
	case P_PONG:
		if (r->kind != NLG_FWD_PONG)
			break;
		if (!r->ok) {
			link_fail(f, F_HANDSHAKE, "handshake failed: the server refused us: %.*s",
				  (int)(r->reason_len > 100 ? 100 : r->reason_len), r->reason);
			return -1;
		}
		/* With our own name the server's digest would be our PING's:
		 * a server echoing it back would pass without knowing the key. */
		if (r->host_len == strlen(f->self_host) &&
		    !memcmp(r->host, f->self_host, r->host_len)) {
			link_fail(f, F_HANDSHAKE,
				  "handshake failed: the server's hostname is ours ('%s'); set "
				  "self_hostname or the server's to tell them apart",
				  f->self_host);
			return -1;
		}
		ok = nlg_fwd_pong_ok(r, f->salt, f->nonce, f->nonce_len, cf->shared_key);
		if (ok <= 0) {
			link_fail(f, F_HANDSHAKE, "%s",
				  ok < 0 ? "handshake failed: sha512 unavailable (libcrypto)"
					 : "handshake failed: the server's PONG digest is wrong: "
					   "it does not know our shared_key");
			return -1;
		}
		nlg_buf_reset(&f->hs);
		f->hs_off = 0;
		link_up(f);
		return f->phase == P_UP ? 0 : -1;
	case P_UP:
		if (r->kind == NLG_FWD_ACK) {
			/* An unknown id is a late ack of a message freed already. */
			nlg_fwdq_ack(f->q, r->ack, r->ack_len);
			return 0;
		}
		if (r->kind == NLG_FWD_HELO && !cf->shared_key[0]) {
			link_fail(f, F_HANDSHAKE,
				  "handshake failed: the server wants a shared key (it sent HELO); "
				  "set shared_key");
			return -1;
		}
		break;
	default:
		break;
	}
	link_fail(f, F_PROTOCOL, "protocol error: an unexpected %s from the server",
		  r->kind == NLG_FWD_HELO   ? "HELO"
		  : r->kind == NLG_FWD_PONG ? "PONG"
					    : "ack");
	return -1;
}

static int parse_replies(struct fwd *f)
{
	size_t off = 0;
	uint64_t acked = nlg_fwdq_stats(f->q)->chunks_acked;

	while (off < f->rlen) {
		struct nlg_fwd_reply r;
		int n = nlg_fwd_parse_reply(f->rbuf + off, f->rlen - off, &r);

		if (n == 0)
			break;
		if (n < 0) {
			link_fail(f, F_PROTOCOL,
				  "protocol error: the server sent something that is not Forward "
				  "(HELO, PONG or ack)");
			return -1;
		}
		if (on_reply(f, &r) < 0)
			return -1; /* link_fail emptied the buffer */
		off += (size_t)n;
	}
	memmove(f->rbuf, f->rbuf + off, f->rlen - off);
	f->rlen -= off;
	/* Acks freed room: a pending gap can go now. */
	if (nlg_fwdq_stats(f->q)->chunks_acked != acked)
		after_push(f, nlg_fwdq_announce(f->q));
	return f->fd >= 0 ? 0 : -1; /* a write it made may have failed */
}

static const char *eof_what(enum phase p)
{
	return p == P_HELO   ? "the server closed the connection before its HELO"
	       : p == P_PONG ? "the server closed the connection after our PING, with no PONG"
			     : "the server closed the connection";
}

/* 0, or -1 when the link failed. */
static int do_read(struct fwd *f)
{
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t r;

		if (f->rlen == sizeof(f->rbuf)) {
			link_fail(f, F_PROTOCOL, "protocol error: a message over %zu bytes",
				  sizeof(f->rbuf));
			return -1;
		}
		r = read(f->fd, f->rbuf + f->rlen, sizeof(f->rbuf) - f->rlen);
		if (r > 0) {
			f->rlen += (size_t)r;
			if (parse_replies(f) < 0)
				return -1;
			continue;
		}
		if (r == 0) {
			link_fail(f, F_CONNECT + (f->phase == P_UP) * (F_LINK - F_CONNECT), "%s",
				  eof_what(f->phase));
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		link_fail(f, f->phase == P_UP ? F_LINK : F_CONNECT, "read: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the loop's callbacks ---- */

static void link_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct fwd *f = data;
	int rc;

	(void)loop;
	if (fd != f->fd) /* a stale event for a closed link */
		return;
	if (f->phase == P_CONNECTING) {
		rc = nlg_net_connected(fd);
		if (rc == -EINPROGRESS)
			return;
		if (rc < 0) {
			link_fail(f, F_CONNECT, "connect: %s", strerror(-rc));
			return;
		}
		f->want_out = 1;
		set_out(f, 0);
		if (!f->cf->shared_key[0]) {
			link_up(f);
			return;
		}
		f->phase = P_HELO; /* the server speaks first */
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && do_read(f) < 0)
		return;
	if ((events & EPOLLOUT) && f->fd == fd)
		do_write(f);
}

static int64_t link_timer(struct nlg_loop *loop, int64_t id, void *data)
{
	struct fwd *f = data;
	uint64_t d, now = nlg_now_ms();

	(void)loop;
	f->t_link = 0;
	switch (f->phase) {
	case P_IDLE:
		link_start(f);
		break;
	case P_CONNECTING:
		link_fail(f, F_CONNECT, "connect: no answer within %" PRIu64 " ms",
			  f->cf->connect_timeout_ms);
		break;
	case P_HELO:
		link_fail(f, F_HANDSHAKE,
			  "handshake failed: no HELO within %" PRIu64
			  " ms (does the server have a shared key?)",
			  f->cf->connect_timeout_ms);
		break;
	case P_PONG:
		link_fail(f, F_HANDSHAKE, "handshake failed: no PONG within %" PRIu64 " ms",
			  f->cf->connect_timeout_ms);
		break;
	case P_UP:
		d = up_deadline(f);
		if (d > now) { /* acks came meanwhile: the next deadline */
			f->t_link = id;
			f->t_link_at = d;
			return (int64_t)(d - now);
		}
		if (!d)
			break;
		if (f->blocked_ms && f->blocked_ms + f->cf->write_timeout_ms <= now)
			link_fail(f, F_LINK,
				  "write timeout: the server took nothing for %" PRIu64 " ms",
				  f->cf->write_timeout_ms);
		else
			link_fail(f, F_ACK_TIMEOUT,
				  "ack timeout: a message unacknowledged after %" PRIu64
				  " ms; resending everything unacknowledged",
				  f->cf->ack_timeout_ms);
		break;
	default:
		break;
	}
	return -1;
}

static void link_start(struct fwd *f)
{
	const struct nlg_forward_conf *cf = f->cf;
	int fd = nlg_net_connect(&f->addr);
	uint8_t raw[16];

	if (fd < 0) {
		link_fail(f, F_CONNECT, "connect: %s", strerror(-fd));
		return;
	}
	if (nlg_loop_add_fd(f->loop, fd, EPOLLOUT, link_io, f) < 0) {
		close(fd);
		link_fail(f, F_CONNECT, "cannot watch the socket");
		return;
	}
	f->fd = fd;
	f->want_out = 1;
	f->phase = P_CONNECTING;
	/* Keepalive notices an idle dead peer, TCP_USER_TIMEOUT one that
	 * stopped acknowledging data. Best effort: a failure leaves the
	 * ack and write timeouts. */
	nlg_net_tune(fd,
		     cf->keepalive_ms
			 ? (unsigned)(cf->keepalive_ms < 1000 ? 1 : cf->keepalive_ms / 1000)
			 : 0,
		     (unsigned)cf->write_timeout_ms);
	nlg_fwd_random(raw, sizeof(raw));
	for (int i = 0; i < 16; i++)
		snprintf(f->salt + 2 * i, 3, "%02x", raw[i]);
	link_arm(f, cf->connect_timeout_ms);
}

/* ---- the output's operations ---- */

static void fwd_free(struct fwd *f)
{
	if (f->fd >= 0) {
		nlg_loop_del_fd(f->loop, f->fd);
		close(f->fd);
	}
	link_disarm(f);
	if (f->t_flush > 0)
		nlg_loop_del_timer(f->loop, f->t_flush);
	nlg_fwdq_destroy(f->q);
	nlg_buf_free(&f->hs);
	free(f);
}

static int fwd_open(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err)
{
	const struct nlg_forward_conf *cf = conf;
	/* chunk at most half the queue: one message fills while one is out */
	struct nlg_fwdq_conf qc = {
	    .tag_prefix = cf->tag_prefix,
	    .size = cf->size,
	    .chunk = cf->chunk < cf->queue / 2 ? cf->chunk : cf->queue / 2,
	    .max_bytes = cf->queue,
	    .max_records = cf->queue_records,
	    .ack = cf->ack,
	};
	char hp[300];
	struct fwd *f;
	int rc;

	*st = NULL;
	if (cf->retry_min_ms > cf->retry_max_ms)
		return nlg_err_set(err, EINVAL,
				   "retry_min (%" PRIu64 " ms) is over retry_max (%" PRIu64 " ms)",
				   cf->retry_min_ms, cf->retry_max_ms);
	if ((cf->username[0] != 0) != (cf->password[0] != 0))
		return nlg_err_set(err, EINVAL, "username and password go together");
	if (!cf->host[0])
		return nlg_err_set(err, EINVAL, "no host");
	f = calloc(1, sizeof(*f));
	if (!f || !(f->q = nlg_fwdq_create(&qc))) {
		free(f);
		return nlg_err_set(err, ENOMEM, "out of memory");
	}
	f->loop = loop;
	f->cf = cf;
	f->fd = -1;
	nlg_buf_init(&f->hs);
	/* A literal IPv6 address takes brackets before the port. */
	snprintf(hp, sizeof(hp), strchr(cf->host, ':') ? "[%s]:%u" : "%s:%u", cf->host,
		 (unsigned)cf->port);
	if ((rc = nlg_net_resolve(&f->addr, hp, NULL, 0, err)) < 0) {
		fwd_free(f);
		return rc;
	}
	if (cf->self_hostname[0])
		snprintf(f->self_host, sizeof(f->self_host), "%s", cf->self_hostname);
	else if (gethostname(f->self_host, sizeof(f->self_host) - 1) < 0 || !f->self_host[0])
		snprintf(f->self_host, sizeof(f->self_host), "nlgate");
	snprintf(f->st.peer, sizeof(f->st.peer), "%s", f->addr.text);
	nlg_backoff_init(&f->bo, (uint32_t)cf->retry_min_ms, (uint32_t)cf->retry_max_ms);
	link_start(f); /* a server that is down is retried, not an error */
	*st = f;
	return 0;
}

/* Entries held: unsent, or (with acks) unacknowledged; gap records too, so
 * the exit drain delivers the last announcement. */
static uint64_t fwd_pending(void *st)
{
	return nlg_fwdq_entries(((struct fwd *)st)->q);
}

/* Close the open batch and write; with timeout_ms, keep writing and
 * reading acks over a link that is up until nothing is pending. */
static void fwd_flush(void *st, int timeout_ms)
{
	struct fwd *f = st;
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	nlg_fwdq_close(f->q);
	if (f->phase == P_UP)
		do_write(f);
	while (nlg_fwdq_entries(f->q) && f->phase == P_UP) {
		struct pollfd p = {.fd = f->fd,
				   .events = POLLIN | (nlg_fwdq_unwritten(f->q) ? POLLOUT : 0)};
		uint64_t now = nlg_now_ms();

		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			break;
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && do_read(f) < 0)
			break;
		if (p.revents & POLLOUT)
			do_write(f);
	}
}

static void fwd_close(void *st, int timeout_ms)
{
	struct fwd *f = st;
	struct nlg_forward_stats s;
	uint64_t unacked, unsent, missed;

	if (!f)
		return;
	nlg_fwdq_announce(f->q); /* the misses since the last record, if the gap fits */
	f->closing = 1;		 /* a link lost now is not retried, nor logged */
	fwd_flush(f, timeout_ms);
	nlg_fwdq_held(f->q, &unacked, &unsent);
	missed = nlg_fwdq_missed(f->q);
	f->dropped_at_close = unacked + unsent;
	fwd_stats(f, &s);
	if (s.link.queued || s.link.dropped) {
		char more[160] = "";
		int at = 0;

		if (unacked + unsent)
			at = snprintf(more, sizeof(more),
				      "; %" PRIu64 " undelivered at close (%" PRIu64
				      " unacknowledged, %" PRIu64 " unsent)",
				      unacked + unsent, unacked, unsent);
		if (missed)
			snprintf(more + at, sizeof(more) - (size_t)at,
				 "; %" PRIu64 " dropped never announced", missed);
		nlg_log("forward %s: closed: %" PRIu64 " records queued, %" PRIu64 " %s, %" PRIu64
			" resent, %" PRIu64 " dropped, %" PRIu64 " reconnects%s",
			f->addr.text, s.link.queued, f->cf->ack ? s.link.acked : s.link.sent,
			f->cf->ack ? "acknowledged" : "sent", s.link.resent, s.link.dropped,
			s.link.reconnects, more);
	}
	fwd_free(f);
}

static int fwd_send(void *st, const struct nlg_item *it)
{
	struct fwd *f = st;
	int rc = nlg_fwdq_push(f->q, it->tag, it->taglen, it->time_ns, it->body, it->len);

	if (rc < 0)
		return rc;
	after_push(f, rc);
	return rc & NLG_FWDQ_TAKEN;
}

static void fwd_stats(void *st, void *out)
{
	struct fwd *f = st;
	struct nlg_forward_stats *s = out;
	const struct nlg_fwdq_stats *q = nlg_fwdq_stats(f->q);
	static const uint8_t state[] = {
	    [P_IDLE] = NLG_LINK_BACKOFF,    [P_CONNECTING] = NLG_LINK_CONNECTING,
	    [P_HELO] = NLG_LINK_CONNECTING, [P_PONG] = NLG_LINK_CONNECTING,
	    [P_UP] = NLG_LINK_CONNECTED,    [P_CLOSED] = NLG_LINK_CLOSED,
	};

	*s = f->st;
	s->link.queued = q->queued;
	s->link.sent = q->sent;
	s->link.acked = q->acked;
	s->link.resent = q->resent;
	s->link.dropped = q->dropped + f->dropped_at_close;
	s->link.state =
	    f->hs_failed && f->phase != P_UP ? NLG_LINK_HANDSHAKE_FAILED : state[f->phase];
	s->chunks = q->chunks;
	s->chunks_acked = q->chunks_acked;
	s->gaps = q->gaps;
	s->unacked = f->phase == P_UP ? nlg_fwdq_unacked(f->q) : 0;
	s->queue_records = nlg_fwdq_entries(f->q);
	s->queue_bytes = nlg_fwdq_bytes(f->q);
}

const struct nlg_output_ops nlg_forward_output = {
    .name = "forward",
    .desc = "Fluentd Forward protocol v1: PackedForward messages to Fluentd, Fluent Bit or "
	    "Vector, at least once with acks, shared-key handshake",
    .opts = forward_opts,
    .conf_size = sizeof(struct nlg_forward_conf),
    .stats_schema = &nlg_forward_stats_schema,
    .open = fwd_open,
    .close = fwd_close,
    .send = fwd_send,
    .flush = fwd_flush,
    .stats = fwd_stats,
    .pending = fwd_pending,
};
