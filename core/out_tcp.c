/* The TCP output: the unix feed's [tag, time, record] stream over TCP. Listen
 * mode serves many clients as the unix feed does (core/feed.c); client mode
 * keeps one connection to a collector, reconnecting with backoff and jitter,
 * with a bounded queue (records and bytes) whose drops are announced in-band
 * by an nlgate.gap frame. Keepalive and TCP_USER_TIMEOUT notice a dead peer.
 *
 *   connecting ──ok──▶ connected ──error, EOF, timeout──▶ backing off ──timer──▶ connecting
 *        └──refused, timeout──────────────────────────────────▲ */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nlgate/feed.h"
#include "nlgate/net.h"
#include "nlgate/out_tcp.h"
#include "nlgate/outq.h"

#define WRITE_BATCH (64 * 1024) /* as the feed: below this, the loop writes */

struct nlg_out_tcp {
	struct nlg_loop *loop;
	struct nlg_tcp_conf cf;
	struct nlg_netaddr addr;
	struct nlg_feed *feed; /* listen mode */
	/* client mode */
	int fd, want_out, connected_once;
	int blocked;   /* the socket took less than we had: wait for EPOLLOUT */
	size_t retry;  /* while blocked, try again once the queue is this long */
	uint8_t state; /* enum nlg_link_state */
	struct nlg_outq *q;
	struct nlg_outq_stats qt;
	struct nlg_backoff bo;
	int64_t timer; /* connect timeout, or the backoff wait */
	uint64_t reconnects;
	int last_err; /* the failure last logged, so a retry streak logs once */
};

/* ---- options and counters ---- */

#define CONF(m) offsetof(struct nlg_tcp_conf, m), sizeof(((struct nlg_tcp_conf *)0)->m)

static const struct nlg_opt tcp_opts[] = {
    {.name = "connect",
     .type = NLG_OPT_STR,
     CONF(connect),
     .arg = "HOST:PORT",
     .desc = "client mode: the collector to connect to"},
    {.name = "listen",
     .type = NLG_OPT_STR,
     CONF(listen),
     .arg = "[ADDR]:PORT",
     .desc = "listen mode: serve every client that connects (address 127.0.0.1 unless given)"},
    {.name = "queue",
     .type = NLG_OPT_SIZE,
     CONF(queue),
     .def = "4M",
     .min = 4096,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "queue bound per connection; past it whole records are dropped, announced by "
	     "an nlgate.gap frame (default 4M)"},
    {.name = "queue_records",
     .type = NLG_OPT_UINT,
     CONF(queue_records),
     .def = "100000",
     .min = 1,
     .max = 1u << 30,
     .arg = "N",
     .desc = "client mode: queue bound in records (default 100000)"},
    {.name = "max_clients",
     .type = NLG_OPT_UINT,
     CONF(max_clients),
     .def = "64",
     .min = 1,
     .max = 4096,
     .arg = "N",
     .desc = "listen mode: connections past this many are closed at once (default 64)"},
    {.name = "keepalive",
     .type = NLG_OPT_DURATION,
     CONF(keepalive_ms),
     .def = "30s",
     .min = 1000,
     .max = 7200000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "idle time before keepalive probes (3 probes, a third of it apart; default 30s)"},
    {.name = "write_timeout",
     .type = NLG_OPT_DURATION,
     CONF(write_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "a peer that acknowledges nothing written for this long is gone (TCP_USER_TIMEOUT; "
	     "default 30s)"},
    {.name = "connect_timeout",
     .type = NLG_OPT_DURATION,
     CONF(connect_timeout_ms),
     .def = "10s",
     .min = 100,
     .max = 600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "client mode: give up a connection attempt after this (default 10s)"},
    {.name = "retry_min",
     .type = NLG_OPT_DURATION,
     CONF(retry_min_ms),
     .def = "100ms",
     .min = 1,
     .max = 3600000,
     .unit = "ms",
     .arg = "DURATION",
     .desc = "client mode: first reconnect wait; doubles, with jitter (default 100ms)"},
    {.name = "retry_max",
     .type = NLG_OPT_DURATION,
     CONF(retry_max_ms),
     .def = "30s",
     .min = 1,
     .max = 3600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "client mode: longest reconnect wait (default 30s)"},
    {.name = NULL},
};

#define STAT(n, t, d) NLG_FIELD(struct nlg_tcp_stats, #n, t, n, 0, d)

static const struct nlg_field tcp_stats_fields[] = {
    NLG_LINK_FIELDS(struct nlg_tcp_stats, link),
    STAT(bytes, NLG_T_U64, "bytes queued, gap frames included"),
    STAT(gaps, NLG_T_U64, "nlgate.gap frames queued"),
    STAT(clients, NLG_T_U64, "listen mode: clients connected now"),
    STAT(accepted, NLG_T_U64, "listen mode: clients accepted in total"),
    STAT(rejected, NLG_T_U64, "listen mode: connections closed at once (over max_clients)"),
    STAT(peer, NLG_T_STR, "the address connected to or listened on"),
};

struct nlg_schema nlg_tcp_stats_schema = {
    .kind = "tcp.stats",
    .desc = "counters of a TCP output",
    .fields = tcp_stats_fields,
    .nfields = NLG_ARRAY_SIZE(tcp_stats_fields),
    .rec_size = sizeof(struct nlg_tcp_stats),
    .present_off = offsetof(struct nlg_tcp_stats, present),
};

/* ---- client mode ---- */

static void client_connect(struct nlg_out_tcp *t);

static int64_t on_timer(struct nlg_loop *loop, int64_t id, void *data);

static void set_timer(struct nlg_out_tcp *t, uint64_t ms)
{
	if (t->timer > 0)
		nlg_loop_del_timer(t->loop, t->timer);
	t->timer = nlg_loop_add_timer(t->loop, ms, on_timer, t);
}

static void drop_conn(struct nlg_out_tcp *t)
{
	if (t->fd < 0)
		return;
	nlg_loop_del_fd(t->loop, t->fd);
	close(t->fd);
	t->fd = -1;
	t->want_out = 0;
	t->blocked = 0;
}

/* The connection failed or broke: close it, keep the queue (minus the rest
 * of a frame half written, so the next connection starts on a boundary),
 * and wait before the next try. */
static void client_fail(struct nlg_out_tcp *t, int err)
{
	uint32_t wait = nlg_backoff_next(&t->bo);

	if (err != t->last_err)
		nlg_log("tcp: %s: %s; reconnecting with backoff (first wait %u ms)", t->addr.text,
			err == ECONNRESET && t->state == NLG_LINK_CONNECTED ? "connection lost"
									    : strerror(err),
			wait);
	t->last_err = err;
	drop_conn(t);
	nlg_outq_cut(t->q); /* counted dropped */
	t->state = NLG_LINK_BACKOFF;
	set_timer(t, wait);
}

static void set_out(struct nlg_out_tcp *t, int on)
{
	if (t->want_out == on || t->fd < 0)
		return;
	if (nlg_loop_mod_fd(t->loop, t->fd, EPOLLIN | (on ? EPOLLOUT : 0)) == 0)
		t->want_out = on;
}

/* Write what the socket takes; a write that freed room lets a pending gap
 * frame in. 0, or -errno when the connection is gone. */
static int client_write(struct nlg_out_tcp *t)
{
	uint64_t before = nlg_outq_stats(t->q)->written;
	int rc = nlg_outq_write(t->q, t->fd);

	if (rc >= 0 && nlg_outq_missed(t->q) && nlg_outq_stats(t->q)->written != before &&
	    nlg_outq_announce(t->q) > 0)
		rc = nlg_outq_write(t->q, t->fd);
	if (rc < 0)
		return rc;
	t->blocked = rc;
	t->retry = nlg_outq_len(t->q) + WRITE_BATCH;
	set_out(t, rc);
	return 0;
}

static void client_connected(struct nlg_out_tcp *t)
{
	int rc;

	if (t->timer > 0)
		nlg_loop_del_timer(t->loop, t->timer);
	t->timer = 0;
	nlg_net_tune(t->fd, (unsigned)(t->cf.keepalive_ms / 1000),
		     (unsigned)t->cf.write_timeout_ms);
	if (t->connected_once)
		t->reconnects++;
	if (t->last_err)
		nlg_log("tcp: %s: connected", t->addr.text);
	t->connected_once = 1;
	t->last_err = 0;
	t->state = NLG_LINK_CONNECTED;
	nlg_backoff_reset(&t->bo);
	t->want_out = 1;	 /* registered with EPOLLOUT while connecting */
	nlg_outq_announce(t->q); /* drops while down are told first */
	if ((rc = client_write(t)) < 0)
		client_fail(t, -rc);
}

/* The peer is not expected to talk: discard, and learn of EOF or errors. */
static int client_read(struct nlg_out_tcp *t)
{
	char junk[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t r = recv(t->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	}
	return 0;
}

static void client_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct nlg_out_tcp *t = data;
	int rc = 0;

	(void)loop;
	if (fd != t->fd)
		return;
	if (t->state == NLG_LINK_CONNECTING) {
		rc = nlg_net_connected(fd);
		if (rc == -EINPROGRESS)
			return;
		if (rc < 0)
			client_fail(t, -rc);
		else
			client_connected(t);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		rc = client_read(t);
	if (rc == 0 && (events & (EPOLLOUT | EPOLLERR)))
		rc = client_write(t);
	if (rc < 0)
		client_fail(t, -rc);
}

static void client_connect(struct nlg_out_tcp *t)
{
	int fd = nlg_net_connect(&t->addr);

	if (fd < 0) {
		client_fail(t, -fd);
		return;
	}
	if (nlg_loop_add_fd(t->loop, fd, EPOLLIN | EPOLLOUT, client_io, t) < 0) {
		close(fd);
		client_fail(t, ENOMEM);
		return;
	}
	t->fd = fd;
	t->state = NLG_LINK_CONNECTING;
	set_timer(t, t->cf.connect_timeout_ms);
}

static int64_t on_timer(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_out_tcp *t = data;

	(void)loop;
	(void)id;
	t->timer = 0;
	if (t->state == NLG_LINK_CONNECTING)
		client_fail(t, ETIMEDOUT); /* sets the next timer */
	else if (t->state == NLG_LINK_BACKOFF)
		client_connect(t);
	return -1;
}

/* ---- open, send, close ---- */

static void tcp_free(struct nlg_out_tcp *t, int timeout_ms)
{
	nlg_feed_free(t->feed, timeout_ms);
	if (t->timer > 0)
		nlg_loop_del_timer(t->loop, t->timer);
	drop_conn(t);
	nlg_outq_destroy(t->q);
	free(t);
}

static int tcp_open(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err)
{
	const struct nlg_tcp_conf *cf = conf;
	struct nlg_out_tcp *t;
	int rc;

	*st = NULL;
	if (!cf->connect[0] == !cf->listen[0])
		return nlg_err_set(err, EINVAL,
				   "tcp: give one of connect = \"host:port\" (send to a collector) "
				   "or listen = \"[addr]:port\" (serve clients)");
	t = calloc(1, sizeof(*t));
	if (!t)
		return nlg_err_set(err, ENOMEM, "tcp: out of memory");
	t->loop = loop;
	t->cf = *cf;
	t->fd = -1;
	if (cf->listen[0]) {
		struct nlg_feed_conf fc = {
		    .queue = (size_t)cf->queue,
		    .max_clients = (int)cf->max_clients,
		    .keepalive = (unsigned)(cf->keepalive_ms / 1000),
		    .timeout_ms = (unsigned)cf->write_timeout_ms,
		    .name = t->addr.text,
		};
		int lfd;

		if ((rc = nlg_net_resolve(&t->addr, cf->listen, "127.0.0.1", 0, err)) < 0)
			goto err;
		if ((lfd = nlg_net_listen(&t->addr, err)) < 0) {
			rc = lfd;
			goto err;
		}
		t->state = NLG_LINK_LISTENING;
		t->feed = nlg_feed_new(loop, lfd, &fc);
		if (!t->feed) {
			rc = nlg_err_set(err, ENOMEM, "tcp: %s: cannot serve it", cf->listen);
			goto err;
		}
	} else {
		struct nlg_outq_conf qc = {.max_bytes = (size_t)cf->queue,
					   .max_frames = cf->queue_records,
					   .total = &t->qt};
		if ((rc = nlg_net_resolve(&t->addr, cf->connect, NULL, 0, err)) < 0)
			goto err;
		if (!(t->q = nlg_outq_create(&qc))) {
			rc = nlg_err_set(err, ENOMEM, "tcp: out of memory");
			goto err;
		}
		nlg_backoff_init(&t->bo, (uint32_t)cf->retry_min_ms, (uint32_t)cf->retry_max_ms);
		/* Refused or unreachable is a counted retry, not an error:
		 * collectors restart, and records queue meanwhile. */
		client_connect(t);
	}
	*st = t;
	return 0;
err:
	tcp_free(t, 0);
	return rc;
}

static int tcp_send(void *st, const struct nlg_item *it)
{
	struct nlg_out_tcp *t = st;
	uint8_t head[NLG_OUTQ_HEAD_MAX];
	struct iovec iov[2];
	int hl, rc;

	if (it->taglen > 255 || !it->len)
		return -EINVAL;
	hl = nlg_outq_mp_head(head, sizeof(head), it->tag, it->taglen, it->time_ns);
	if (hl < 0)
		return hl;
	iov[0] = (struct iovec){.iov_base = head, .iov_len = (size_t)hl};
	iov[1] = (struct iovec){.iov_base = (void *)it->body, .iov_len = it->len};
	if (t->feed)
		return nlg_feed_push(t->feed, iov, 2);
	rc = nlg_outq_push(t->q, iov, 2);
	if (rc < 0)
		return 0; /* -ENOMEM: counted by nobody else; the record is lost */
	if (t->state != NLG_LINK_CONNECTED)
		return rc;
	if (rc > 0 && nlg_outq_len(t->q) >= (t->blocked ? t->retry : WRITE_BATCH)) {
		int w = client_write(t);
		if (w < 0)
			client_fail(t, -w);
	} else if (rc > 0) {
		set_out(t, 1);
	}
	return rc;
}

static void tcp_flush(void *st, int timeout_ms)
{
	struct nlg_out_tcp *t = st;
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	if (t->feed) {
		nlg_feed_flush(t->feed, timeout_ms);
		return;
	}
	while (t->state == NLG_LINK_CONNECTED && nlg_outq_len(t->q)) {
		struct pollfd p = {.fd = t->fd, .events = POLLOUT};
		uint64_t now;
		int rc = client_write(t);

		if (rc < 0) {
			client_fail(t, -rc);
			break;
		}
		now = nlg_now_ms();
		if (!nlg_outq_len(t->q) || now >= deadline)
			break;
		poll(&p, 1, (int)(deadline - now));
	}
}

static uint64_t tcp_pending(void *st)
{
	struct nlg_out_tcp *t = st;

	return t->feed ? nlg_feed_pending(t->feed) : nlg_outq_frames(t->q);
}

static void tcp_close(void *st, int timeout_ms)
{
	struct nlg_out_tcp *t = st;
	uint64_t left;

	if (!t)
		return;
	tcp_flush(t, timeout_ms);
	if (!t->feed && (left = nlg_outq_frames(t->q)))
		nlg_log("tcp: %s: closing with %" PRIu64 " records not sent (%s)", t->addr.text,
			left, nlg_link_state_names[t->state]);
	tcp_free(t, timeout_ms);
}

static void tcp_stats(void *st, void *out)
{
	struct nlg_out_tcp *t = st;
	struct nlg_tcp_stats *s = out;
	struct nlg_outq_stats q;

	if (t->feed) {
		struct nlg_feed_counts c;
		nlg_feed_counts(t->feed, &c);
		q = c.q;
		s->clients = c.clients;
		s->accepted = c.accepted;
		s->rejected = c.rejected;
	} else {
		q = t->qt;
		s->link.reconnects = t->reconnects;
	}
	s->link.queued = q.frames;
	s->link.sent = q.sent;
	s->link.dropped = q.dropped;
	s->link.state = t->state;
	s->bytes = q.bytes;
	s->gaps = q.gaps;
	snprintf(s->peer, sizeof(s->peer), "%.255s", t->addr.text);
}

const struct nlg_output_ops nlg_tcp_output = {
    .name = "tcp",
    .desc = "msgpack [tag, time, record] frames over TCP: to a collector (connect) or to every "
	    "client (listen)",
    .opts = tcp_opts,
    .conf_size = sizeof(struct nlg_tcp_conf),
    .stats_schema = &nlg_tcp_stats_schema,
    .open = tcp_open,
    .close = tcp_close,
    .send = tcp_send,
    .flush = tcp_flush,
    .stats = tcp_stats,
    .pending = tcp_pending,
};
