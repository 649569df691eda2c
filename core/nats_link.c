/* The NATS output's link to the server (include/nlgate/nats_link.h):
 * libnats's connection, the JetStream window, resends with the same
 * Nats-Msg-Id, and the hand-off from libnats's threads to the loop. */
#ifdef NLGATE_HAVE_NATS

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "nlgate/nats_link.h"
#include "nlgate/nats_name.h"
#include "nlgate/net.h"

#define HDR_ID	    "Nats-Msg-Id"
#define HDR_RECORDS "Nlgate-Records" /* only where a message holds other than one record */
/* libnats's own window (PublishAsync.MaxPending) is ours plus this: our count
 * drops inside the ack handler, libnats's just after it returns, and the one
 * reply subscription runs one handler at a time. With the slack libnats never
 * reaches its limit, so it never stalls the loop (StallWait is 1 ms anyway). */
#define WINDOW_SLACK	16
#define PAYLOAD_DEFAULT (1 << 20) /* the server's max_payload until its INFO says */
#define HEADER_ROOM	512	  /* of max_payload, left for the headers */
#define SETTLE_MS	1000	  /* close waits this long for ack handlers already running */
#define ERRLOG_MS	10000	  /* failed publishes are logged at most this often */
#define RETRY_MAX_MS	5000	  /* resends of failures in a row back off up to this */
#define RESTART_MAX_MS	30000	  /* so do new connections after libnats closed one */
#define RESEND_MIN	64	  /* first size of the resend ring, in entries */
#define LOW_MARK_DIV	16	  /* the loop refills the window once 1/16 of it is free */

/* ---- what libnats's threads share with the loop ----
 *
 * The ack handler runs on the JetStream reply subscription's thread, the
 * connection callbacks on libnats's callback thread; the loop (one thread,
 * core/loop.c) is never called from them. They count with atomics, put
 * failed messages on the resend list under mu, and wake the loop through
 * its eventfd, also under mu (the loop closes it). The link holds one
 * reference and every connection natsConnection_Connect handed out another,
 * dropped by its closed callback: libnats posts that one after joining the
 * connection's threads and runs callbacks in order on one thread, so it is
 * the last call for that connection. The ack handler is done before the
 * link lets go (conn_drop). */
struct shared {
	pthread_mutex_t mu;
	int refs;
	int efd;      /* the loop's eventfd; -1 once the link let go */
	natsMsg **rv; /* failed messages to send again, oldest first */
	size_t rn, rcap;
	uint64_t rrecs;		      /* records in rv */
	uint64_t lost;		      /* records of failed messages that found no room in rv */
	char err[128];		      /* the last error */
	uint64_t nerr;		      /* bumped with err */
	int64_t low_mark;	      /* wake a waiting loop when this few remain in flight */
	atomic_int_fast64_t inflight; /* messages published, handler not yet run */
	atomic_uint_fast64_t inflight_recs;
	atomic_uint_fast64_t acked, dups, ack_errors, reconnects, disconnects;
	atomic_int state; /* enum nlg_link_state */
	atomic_int wake;  /* the loop waits for room or for the last acks */
	atomic_int connected_once;
	atomic_int counted; /* a message with an Nlgate-Records header was made */
};

static void shared_unref(struct shared *sh)
{
	int last;

	pthread_mutex_lock(&sh->mu);
	last = --sh->refs == 0;
	pthread_mutex_unlock(&sh->mu);
	if (!last)
		return;
	for (size_t i = 0; i < sh->rn; i++)
		natsMsg_Destroy(sh->rv[i]);
	free(sh->rv);
	pthread_mutex_destroy(&sh->mu);
	free(sh);
}

/* Under mu. */
static void poke_locked(struct shared *sh)
{
	uint64_t one = 1;

	if (sh->efd >= 0 && write(sh->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the loop will wake anyway */
	}
}

static void poke(struct shared *sh)
{
	pthread_mutex_lock(&sh->mu);
	poke_locked(sh);
	pthread_mutex_unlock(&sh->mu);
}

static void note_err_locked(struct shared *sh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note_err_locked(struct shared *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sh->err, sizeof(sh->err), fmt, ap);
	va_end(ap);
	sh->nerr++;
}

/* Records a message holds: one, unless its header says otherwise (a batch,
 * or 0 for a gap announcement). Until such a message was made, no header
 * is looked up: it was 3% of the CPU in the benchmark. */
static uint32_t msg_records(struct shared *sh, natsMsg *m)
{
	const char *v = NULL;

	if (!atomic_load_explicit(&sh->counted, memory_order_acquire) ||
	    natsMsgHeader_Get(m, HDR_RECORDS, &v) != NATS_OK || !v)
		return 1;
	return (uint32_t)strtoul(v, NULL, 10);
}

/* libnats's reply thread: an acknowledgement, a refusal (no stream, a
 * JetStream error), or a timeout after ack_wait. A failed message goes to
 * the resend list with its Nats-Msg-Id, so the server drops it if the first
 * copy got in after all. */
static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct shared *sh = closure;
	uint32_t k = msg_records(sh, m);
	int64_t left;
	int wake = 0;

	(void)js;
	if (!pae) {
		if (pa && pa->Duplicate)
			atomic_fetch_add(&sh->dups, 1);
		atomic_fetch_add(&sh->acked, k);
		atomic_fetch_sub(&sh->inflight_recs, k);
		natsMsg_Destroy(m);
	} else {
		atomic_fetch_add(&sh->ack_errors, 1);
		pthread_mutex_lock(&sh->mu);
		if (sh->rn == sh->rcap) {
			size_t cap = sh->rcap ? sh->rcap * 2 : 64;
			natsMsg **rv = realloc(sh->rv, cap * sizeof(*rv));
			if (rv) {
				sh->rv = rv;
				sh->rcap = cap;
			}
		}
		if (sh->rn < sh->rcap) {
			sh->rv[sh->rn++] = m;
			sh->rrecs += k;
		} else {
			sh->lost += k;
			natsMsg_Destroy(m);
		}
		atomic_fetch_sub(&sh->inflight_recs, k);
		if (pae->ErrCode)
			note_err_locked(sh, "publish refused: %s (JetStream error %d)",
					pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
					(int)pae->ErrCode);
		else
			note_err_locked(sh, "publish not acknowledged: %s",
					natsStatus_GetText(pae->Err));
		/* The first failure of a run wakes the loop, which arms the
		 * resend; the rest ride on that. */
		if (sh->rn == 1)
			poke_locked(sh);
		pthread_mutex_unlock(&sh->mu);
	}
	left = atomic_fetch_sub(&sh->inflight, 1) - 1;
	if (left <= sh->low_mark)
		wake = atomic_load(&sh->wake) && atomic_exchange(&sh->wake, 0);
	if (wake)
		poke(sh);
}

/* A connection made (after a first attempt that failed): the first one, or
 * one after the loop started over (see start_over). */
static void on_connected(natsConnection *nc, void *closure)
{
	struct shared *sh = closure;

	(void)nc;
	if (atomic_exchange(&sh->connected_once, 1))
		atomic_fetch_add(&sh->reconnects, 1);
	atomic_store(&sh->state, NLG_LINK_CONNECTED);
	poke(sh);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct shared *sh = closure;
	int was = NLG_LINK_CONNECTED;

	(void)nc;
	atomic_fetch_add(&sh->disconnects, 1);
	atomic_compare_exchange_strong(&sh->state, &was, NLG_LINK_BACKOFF);
	poke(sh);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct shared *sh = closure;

	(void)nc;
	atomic_fetch_add(&sh->reconnects, 1);
	atomic_store(&sh->state, NLG_LINK_CONNECTED);
	poke(sh);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus s, void *closure)
{
	struct shared *sh = closure;
	const char *text = NULL;

	(void)sub;
	pthread_mutex_lock(&sh->mu);
	if (natsConnection_GetLastError(nc, &text) != NATS_OK || !text || !*text)
		text = natsStatus_GetText(s);
	note_err_locked(sh, "%s", text);
	poke_locked(sh);
	pthread_mutex_unlock(&sh->mu);
}

/* The last callback of a connection: its reference goes. */
static void on_closed(natsConnection *nc, void *closure)
{
	struct shared *sh = closure;

	(void)nc;
	atomic_store(&sh->state, NLG_LINK_CLOSED);
	poke(sh);
	shared_unref(sh);
}

/* ---- the loop's side ---- */

/* Failed messages waiting to go again, oldest first: a ring that grows. */
struct resend {
	natsMsg *m;
	uint32_t recs, len;
};

struct nlg_nats_link {
	struct nlg_loop *loop;
	const struct nlg_nats_conf *cf;
	nlg_nats_ready_fn *ready;
	void *ready_data;
	struct shared *sh;
	natsConnection *nc;
	jsCtx *js;
	int js_used; /* js made an async publish (libnats's map exists) */
	jsPubOptions po;
	int efd;
	int64_t start_timer, retry_timer;
	struct nlg_backoff retry_bo; /* resends of failures in a row slow down */
	struct nlg_backoff start_bo; /* so do new connections after libnats gave up */
	uint64_t retry_acked;	     /* acked when the last resend round began */
	struct resend *rs;
	size_t rs_head, rs_n, rs_cap;
	uint64_t rs_recs;
	char idp[224]; /* Nats-Msg-Id up to the sequence */
	size_t idlen;
	uint64_t seq;
	size_t max_data;
	/* counters the loop alone writes */
	uint64_t sent, resent, messages, bytes, lost;
	/* what was last said in the log */
	int logged_state;
	uint64_t logged_nerr, logged_ms;
	int said_waiting; /* "not connected yet", once until connected */
	uint64_t restarts, said_restart_ms;
};

static int rs_push(struct nlg_nats_link *l, natsMsg *m, uint32_t recs, uint32_t len)
{
	if (l->rs_n == l->rs_cap) {
		size_t cap = l->rs_cap ? l->rs_cap * 2 : RESEND_MIN;
		struct resend *v = malloc(cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < l->rs_n; i++)
			v[i] = l->rs[(l->rs_head + i) % l->rs_cap];
		free(l->rs);
		l->rs = v;
		l->rs_cap = cap;
		l->rs_head = 0;
	}
	l->rs[(l->rs_head + l->rs_n++) % l->rs_cap] =
	    (struct resend){.m = m, .recs = recs, .len = len};
	l->rs_recs += recs;
	return 0;
}

static void rs_pop(struct nlg_nats_link *l)
{
	l->rs_recs -= l->rs[l->rs_head].recs;
	l->rs_head = (l->rs_head + 1) % l->rs_cap;
	if (!--l->rs_n)
		l->rs_head = 0;
}

natsMsg *nlg_nats_link_msg(struct nlg_nats_link *l, const char *subj, const void *data, size_t len,
			   uint32_t recs)
{
	char id[sizeof(l->idp) + 24], nrec[16];
	natsMsg *m = NULL;

	if (natsMsg_Create(&m, subj, NULL, data, (int)len) != NATS_OK)
		return NULL;
	memcpy(id, l->idp, l->idlen);
	snprintf(id + l->idlen, sizeof(id) - l->idlen, "%" PRIu64, ++l->seq);
	if (natsMsgHeader_Set(m, HDR_ID, id) != NATS_OK)
		goto fail;
	if (recs != 1) {
		atomic_store_explicit(&l->sh->counted, 1, memory_order_release);
		snprintf(nrec, sizeof(nrec), "%u", recs);
		if (natsMsgHeader_Set(m, HDR_RECORDS, nrec) != NATS_OK)
			goto fail;
	}
	return m;
fail:
	natsMsg_Destroy(m);
	return NULL;
}

static void note_status(struct nlg_nats_link *l, natsStatus s, const char *what)
{
	pthread_mutex_lock(&l->sh->mu);
	note_err_locked(l->sh, "%s: %s", what, natsStatus_GetText(s));
	pthread_mutex_unlock(&l->sh->mu);
}

/* ---- publishing ---- */

int nlg_nats_link_up(const struct nlg_nats_link *l)
{
	return l->nc && atomic_load(&l->sh->state) == NLG_LINK_CONNECTED;
}

int nlg_nats_link_room(const struct nlg_nats_link *l)
{
	return nlg_nats_link_up(l) &&
	       (!l->js || atomic_load(&l->sh->inflight) < (int64_t)l->cf->max_pending);
}

static int64_t retry_fire(struct nlg_loop *loop, int64_t id, void *data);

/* Resends go after retry_wait; while whole rounds fail (no stream for the
 * subject, a server that refuses), the pause grows with jitter up to
 * RETRY_MAX_MS, and an acknowledgement brings it back. */
static void retry_arm(struct nlg_nats_link *l)
{
	if (l->retry_timer <= 0) {
		int64_t t =
		    nlg_loop_add_timer(l->loop, nlg_backoff_next(&l->retry_bo), retry_fire, l);
		l->retry_timer = t > 0 ? t : 0;
	}
}

static int publish(struct nlg_nats_link *l, natsMsg *m, uint32_t recs, uint32_t len, int again)
{
	natsStatus s;

	if (l->js) {
		/* Counted first: the ack may come before the call returns. */
		atomic_fetch_add(&l->sh->inflight, 1);
		atomic_fetch_add(&l->sh->inflight_recs, recs);
		s = js_PublishMsgAsync(l->js, &m, &l->po);
		l->js_used |= s == NATS_OK;
		if (s != NATS_OK) {
			atomic_fetch_sub(&l->sh->inflight, 1);
			atomic_fetch_sub(&l->sh->inflight_recs, recs);
		}
	} else {
		s = natsConnection_PublishMsg(l->nc, m);
		if (s == NATS_OK)
			natsMsg_Destroy(m);
	}
	if (s != NATS_OK) {
		note_status(l, s, "publish");
		retry_arm(l);
		return -1;
	}
	l->messages++;
	l->bytes += len;
	if (again)
		l->resent += recs;
	else
		l->sent += recs;
	return 0;
}

int nlg_nats_link_publish(struct nlg_nats_link *l, natsMsg *m, uint32_t recs, uint32_t len)
{
	return publish(l, m, recs, len, 0);
}

int nlg_nats_link_want_room(struct nlg_nats_link *l)
{
	if (!l->js)
		return nlg_nats_link_room(l);
	/* Tested first: under a flood every send lands here. */
	if (!atomic_load_explicit(&l->sh->wake, memory_order_relaxed))
		atomic_store(&l->sh->wake, 1);
	return nlg_nats_link_room(l); /* an ack came between the test and the flag */
}

int nlg_nats_link_resend(struct nlg_nats_link *l)
{
	while (l->rs_n && nlg_nats_link_room(l)) {
		struct resend *r = &l->rs[l->rs_head];
		if (publish(l, r->m, r->recs, r->len, 1) < 0)
			return -1;
		rs_pop(l);
	}
	if (!l->rs_n)
		return 0;
	if (nlg_nats_link_up(l))
		nlg_nats_link_want_room(l);
	return 1;
}

/* Failed messages come back from the handler's list to be sent again. */
static void take_failed(struct nlg_nats_link *l)
{
	struct shared *sh = l->sh;

	pthread_mutex_lock(&sh->mu);
	for (size_t i = 0; i < sh->rn; i++) {
		natsMsg *m = sh->rv[i];
		uint32_t k = msg_records(sh, m);
		if (rs_push(l, m, k, (uint32_t)natsMsg_GetDataLength(m)) < 0) {
			natsMsg_Destroy(m);
			l->lost += k;
		}
	}
	sh->rn = 0;
	sh->rrecs = 0;
	pthread_mutex_unlock(&sh->mu);
}

static int64_t retry_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_nats_link *l = data;
	uint64_t acked = atomic_load(&l->sh->acked);

	(void)loop;
	(void)id;
	l->retry_timer = 0;
	if (acked != l->retry_acked)
		nlg_backoff_reset(&l->retry_bo);
	l->retry_acked = acked;
	take_failed(l);
	l->ready(l->ready_data);
	return -1;
}

/* ---- the connection ---- */

static void log_state(struct nlg_nats_link *l)
{
	int st = atomic_load(&l->sh->state);
	char url[256] = "";

	if (st == l->logged_state)
		return;
	if (st == NLG_LINK_CONNECTED) {
		int64_t mp = natsConnection_GetMaxPayload(l->nc);
		if (mp > HEADER_ROOM * 2)
			l->max_data = (size_t)mp - HEADER_ROOM;
		natsConnection_GetConnectedUrl(l->nc, url, sizeof(url));
		nlg_backoff_reset(&l->start_bo);
		l->said_waiting = 0;
		nlg_log("nats %s: %s%s", l->cf->url,
			l->logged_state == NLG_LINK_BACKOFF ? "reconnected to " : "connected to ",
			url[0] ? url : "the server");
	} else if (st == NLG_LINK_BACKOFF) {
		nlg_log("nats %s: disconnected; reconnecting every %" PRIu64 " ms, records held "
			"(queue %" PRIu64 " bytes)",
			l->cf->url, l->cf->reconnect_wait, l->cf->queue);
	}
	l->logged_state = st;
}

/* Failed publishes: the first at once, then at most one line per ERRLOG_MS. */
static void log_errors(struct nlg_nats_link *l)
{
	char err[sizeof(l->sh->err)];
	uint64_t n, now = nlg_now_ms();

	pthread_mutex_lock(&l->sh->mu);
	n = l->sh->nerr;
	memcpy(err, l->sh->err, sizeof(err));
	pthread_mutex_unlock(&l->sh->mu);
	if (n == l->logged_nerr || (l->logged_ms && now - l->logged_ms < ERRLOG_MS))
		return;
	if (n - l->logged_nerr > 1)
		nlg_log("nats %s: %s (%" PRIu64 " errors since the last said)", l->cf->url, err,
			n - l->logged_nerr);
	else
		nlg_log("nats %s: %s", l->cf->url, err);
	l->logged_nerr = n;
	l->logged_ms = now;
}

/* Let go of the connection. The order makes the ack handler finish before:
 * the pending list takes every message still awaiting an ack out of
 * libnats's map, so no later ack or timeout finds one to call the handler
 * for, and js_PublishAsyncComplete returns once the handlers already running
 * are done. Those messages go to the resend ring (resend: a new connection
 * follows) or count as lost. */
static void conn_drop(struct nlg_nats_link *l, int resend)
{
	if (l->js) {
		natsMsgList ml = {0};
		jsPubOptions po;

		/* libnats 3.4 crashes here before the context's first async
		 * publish (its map is made then). */
		if (l->js_used && js_PublishAsyncGetPendingList(&ml, l->js) == NATS_OK) {
			for (int i = 0; i < ml.Count; i++) {
				natsMsg *m = ml.Msgs[i];
				uint32_t k = msg_records(l->sh, m);
				atomic_fetch_sub(&l->sh->inflight, 1);
				atomic_fetch_sub(&l->sh->inflight_recs, k);
				if (resend &&
				    rs_push(l, m, k, (uint32_t)natsMsg_GetDataLength(m)) == 0)
					ml.Msgs[i] = NULL;
				else
					l->lost += k;
			}
			natsMsgList_Destroy(&ml);
		}
		jsPubOptions_Init(&po);
		po.MaxWait = SETTLE_MS;
		js_PublishAsyncComplete(l->js, &po);
		jsCtx_Destroy(l->js);
		l->js = NULL;
		l->js_used = 0;
	}
	if (l->nc) {
		natsConnection_Destroy(l->nc);
		l->nc = NULL;
	}
}

static int64_t start_fire(struct nlg_loop *loop, int64_t id, void *data);

/* libnats closed the connection itself (a server that is no NATS server,
 * an authorization refused twice): it will not reconnect, so a new one is
 * made after reconnect_wait, backing off. What awaited an ack is sent again
 * on it. */
static void start_over(struct nlg_nats_link *l)
{
	const char *why = NULL;
	char text[160] = "";
	uint32_t wait = nlg_backoff_next(&l->start_bo);
	uint64_t now = nlg_now_ms();

	if (natsConnection_GetLastError(l->nc, &why) != NATS_OK && why)
		snprintf(text, sizeof(text), "%s", why);
	conn_drop(l, 1);
	atomic_store(&l->sh->state, NLG_LINK_BACKOFF);
	l->logged_state = NLG_LINK_BACKOFF;
	l->restarts++;
	if (!l->said_restart_ms || now - l->said_restart_ms >= ERRLOG_MS) {
		nlg_log(
		    "nats %s: the connection closed%s%s; starting over in %u ms (attempt %" PRIu64
		    ")",
		    l->cf->url, text[0] ? ": " : "", text, wait, l->restarts);
		l->said_restart_ms = now;
	}
	if (l->start_timer <= 0) {
		int64_t t = nlg_loop_add_timer(l->loop, wait, start_fire, l);
		l->start_timer = t > 0 ? t : 0;
	}
}

/* News from libnats's threads, taken on the loop. */
static void take_news(struct nlg_nats_link *l)
{
	int failed;

	if (atomic_load(&l->sh->state) == NLG_LINK_CLOSED && l->nc)
		start_over(l);
	log_state(l);
	log_errors(l);
	pthread_mutex_lock(&l->sh->mu);
	failed = l->sh->rn > 0;
	pthread_mutex_unlock(&l->sh->mu);
	if (failed)
		retry_arm(l);
}

/* The eventfd: room in the window, failed messages, the connection's
 * state. */
static void wake_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct nlg_nats_link *l = data;
	uint64_t v;

	(void)loop;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	take_news(l);
	l->ready(l->ready_data);
}

/* libnats starts threads from its first call, so nothing of it runs before
 * the loop's first turn: `run --user` drops privileges before that, with
 * one thread (capabilities are per thread). The first attempt runs here and
 * may hold the loop for up to connect_timeout (DNS included); every later
 * one runs in libnats's reconnect thread (RetryOnFailedConnect with a
 * connected callback: the connect is asynchronous), so an unreachable
 * server is no error but a counted retry. */
static int conn_make(struct nlg_nats_link *l)
{
	const struct nlg_nats_conf *cf = l->cf;
	struct shared *sh = l->sh;
	natsOptions *opts = NULL;
	natsStatus s;
	jsOptions jo;

	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, cf->url);
	if (s == NATS_OK && cf->name[0])
		s = natsOptions_SetName(opts, cf->name);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(opts, (int64_t)cf->connect_timeout);
	/* libnats writes on the caller's thread once its buffer is full; with
	 * no deadline it makes the socket blocking, and a server that stops
	 * reading would hold the loop for good. With one, the loop waits at
	 * most this long, then the connection counts as broken. */
	if (s == NATS_OK)
		s = natsOptions_SetWriteDeadline(opts, (int64_t)cf->connect_timeout);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1); /* never give up */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, (int64_t)cf->reconnect_wait);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(opts, (int)cf->reconnect_buf);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, sh);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(opts, on_disconnected, sh);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(opts, on_reconnected, sh);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(opts, on_closed, sh);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(opts, on_error, sh);
	if (s == NATS_OK && cf->creds[0])
		s = natsOptions_SetUserCredentialsFromFiles(opts, cf->creds, NULL);
	if (s != NATS_OK)
		goto fail;
	/* The closed callback releases this one. */
	pthread_mutex_lock(&sh->mu);
	sh->refs++;
	pthread_mutex_unlock(&sh->mu);
	atomic_store(&sh->state, NLG_LINK_CONNECTING);
	s = natsConnection_Connect(&l->nc, opts);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
		l->nc = NULL;
		shared_unref(sh);
		goto fail;
	}
	if (s == NATS_OK) {
		int was = NLG_LINK_CONNECTING; /* unless a callback said otherwise */
		if (atomic_exchange(&sh->connected_once, 1))
			atomic_fetch_add(&sh->reconnects, 1);
		atomic_compare_exchange_strong(&sh->state, &was, NLG_LINK_CONNECTED);
	} else {
		/* libnats keeps no reason for a first attempt it retries. */
		pthread_mutex_lock(&sh->mu);
		note_err_locked(sh, "not connected yet: no server answered");
		l->logged_nerr = sh->nerr; /* said here */
		pthread_mutex_unlock(&sh->mu);
		if (!l->said_waiting++)
			nlg_log("nats %s: not connected yet (no server answered); retrying every "
				"%" PRIu64 " ms",
				cf->url, cf->reconnect_wait);
	}
	natsOptions_Destroy(opts);
	opts = NULL;
	if (cf->jetstream) {
		jsOptions_Init(&jo);
		jo.PublishAsync.MaxPending = (int64_t)cf->max_pending + WINDOW_SLACK;
		jo.PublishAsync.AckHandler = on_ack;
		jo.PublishAsync.AckHandlerClosure = sh;
		jo.PublishAsync.StallWait = 1;
		s = natsConnection_JetStream(&l->js, l->nc, &jo);
		if (s != NATS_OK) {
			conn_drop(l, 1);
			goto fail;
		}
		jsPubOptions_Init(&l->po);
		l->po.MaxWait = (int64_t)cf->ack_wait;
	}
	log_state(l);
	l->ready(l->ready_data);
	return 0;
fail:
	natsOptions_Destroy(opts);
	note_status(l, s, "connect");
	if (!l->said_restart_ms || nlg_now_ms() - l->said_restart_ms >= ERRLOG_MS) {
		const char *text = nats_GetLastError(NULL);
		nlg_log("nats %s: cannot connect: %s%s%s; retrying", cf->url, natsStatus_GetText(s),
			text && *text ? ": " : "", text ? text : "");
		l->said_restart_ms = nlg_now_ms();
	}
	return -1;
}

static int64_t start_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_nats_link *l = data;

	(void)loop;
	(void)id;
	if (l->js || l->nc || conn_make(l) == 0) {
		l->start_timer = 0;
		return -1;
	}
	return nlg_backoff_next(&l->start_bo);
}

/* ---- the link ---- */

static void link_free(struct nlg_nats_link *l)
{
	if (l->start_timer > 0)
		nlg_loop_del_timer(l->loop, l->start_timer);
	if (l->retry_timer > 0)
		nlg_loop_del_timer(l->loop, l->retry_timer);
	if (l->efd >= 0)
		nlg_loop_del_fd(l->loop, l->efd);
	if (l->sh) {
		pthread_mutex_lock(&l->sh->mu);
		l->sh->efd = -1;
		pthread_mutex_unlock(&l->sh->mu);
		shared_unref(l->sh);
	}
	if (l->efd >= 0)
		close(l->efd);
	free(l->rs);
	free(l);
}

int nlg_nats_link_open(struct nlg_nats_link **lp, struct nlg_loop *loop,
		       const struct nlg_nats_conf *cf, nlg_nats_ready_fn *ready, void *data,
		       struct nlg_err *err)
{
	struct nlg_nats_link *l = calloc(1, sizeof(*l));
	struct shared *sh = calloc(1, sizeof(*sh));
	int rc;

	*lp = NULL;
	if (!l || !sh) {
		free(l);
		free(sh);
		return nlg_err_set(err, ENOMEM, "nats: out of memory");
	}
	l->loop = loop;
	l->cf = cf;
	l->ready = ready;
	l->ready_data = data;
	l->efd = -1;
	l->max_data = PAYLOAD_DEFAULT - HEADER_ROOM;
	l->logged_state = NLG_LINK_CONNECTING;
	nlg_backoff_init(&l->retry_bo, (uint32_t)cf->retry_wait,
			 cf->retry_wait > RETRY_MAX_MS ? (uint32_t)cf->retry_wait : RETRY_MAX_MS);
	nlg_backoff_init(&l->start_bo, (uint32_t)cf->reconnect_wait,
			 cf->reconnect_wait > RESTART_MAX_MS ? (uint32_t)cf->reconnect_wait
							     : RESTART_MAX_MS);
	l->idlen = nlg_nats_id_prefix(l->idp, sizeof(l->idp));
	pthread_mutex_init(&sh->mu, NULL);
	sh->refs = 1;
	sh->efd = -1;
	/* A waiting loop wakes once a sixteenth of the window is free, not
	 * half: with the acks paced by the server's round trip, throughput
	 * follows the messages kept in flight, and refilling at half kept
	 * about 83% of the window in flight (the benchmark's median 0.79 of
	 * the floor, whose StallWait resumes at the first free slot); now
	 * about 99%. A wake every window/16 acks costs one eventfd write and
	 * one run of publishes. */
	sh->low_mark = (int64_t)cf->max_pending - (int64_t)cf->max_pending / LOW_MARK_DIV;
	atomic_init(&sh->state, NLG_LINK_CONNECTING);
	l->sh = sh;
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		rc = nlg_err_set(err, errno, "nats: eventfd: %s", strerror(errno));
		goto fail;
	}
	sh->efd = l->efd;
	if (nlg_loop_add_fd(loop, l->efd, EPOLLIN, wake_io, l) < 0) {
		rc = nlg_err_set(err, ENOMEM, "nats: cannot watch the eventfd");
		goto fail;
	}
	l->start_timer = nlg_loop_add_timer(loop, 0, start_fire, l);
	if (l->start_timer < 0) {
		l->start_timer = 0;
		rc = nlg_err_set(err, ENOMEM, "nats: cannot add a timer");
		goto fail;
	}
	*lp = l;
	return 0;
fail:
	link_free(l);
	return rc;
}

uint64_t nlg_nats_link_close(struct nlg_nats_link *l)
{
	uint64_t lost;

	conn_drop(l, 0);
	take_failed(l);
	while (l->rs_n) {
		l->lost += l->rs[l->rs_head].recs;
		natsMsg_Destroy(l->rs[l->rs_head].m);
		rs_pop(l);
	}
	pthread_mutex_lock(&l->sh->mu);
	lost = l->lost + l->sh->lost;
	pthread_mutex_unlock(&l->sh->mu);
	link_free(l);
	return lost;
}

void nlg_nats_link_poll(struct nlg_nats_link *l, int timeout_ms)
{
	struct pollfd p = {.fd = l->efd, .events = POLLIN};
	uint64_t v;

	if (l->js)
		atomic_store(&l->sh->wake, 1);
	if (poll(&p, 1, timeout_ms > 0 ? timeout_ms : 0) > 0 && read(l->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN */
	}
	take_news(l);
	take_failed(l);
}

void nlg_nats_link_flush(struct nlg_nats_link *l, int timeout_ms)
{
	if (!l->js && nlg_nats_link_up(l))
		natsConnection_FlushTimeout(l->nc, timeout_ms > 0 ? timeout_ms : 1);
}

uint64_t nlg_nats_link_pending(const struct nlg_nats_link *l)
{
	uint64_t n = l->rs_recs;

	if (!l->js)
		return n;
	pthread_mutex_lock(&l->sh->mu);
	n += l->sh->rrecs + atomic_load(&l->sh->inflight_recs);
	pthread_mutex_unlock(&l->sh->mu);
	/* Nothing but a gap message in flight: it counts too. */
	if (!n && atomic_load(&l->sh->inflight) > 0)
		n = 1;
	return n;
}

size_t nlg_nats_link_max_data(const struct nlg_nats_link *l)
{
	return l->max_data;
}

void nlg_nats_link_stats(const struct nlg_nats_link *l, struct nlg_nats_stats *s)
{
	struct shared *sh = l->sh;

	s->link.sent = l->sent;
	s->link.acked = atomic_load(&sh->acked);
	s->link.resent = l->resent;
	s->link.reconnects = atomic_load(&sh->reconnects);
	s->link.state = (uint8_t)atomic_load(&sh->state);
	s->messages = l->messages;
	s->bytes = l->bytes;
	s->duplicates = atomic_load(&sh->dups);
	s->ack_errors = atomic_load(&sh->ack_errors);
	s->disconnects = atomic_load(&sh->disconnects);
	pthread_mutex_lock(&sh->mu);
	s->link.dropped += l->lost + sh->lost;
	s->inflight = atomic_load(&sh->inflight_recs) + sh->rrecs + l->rs_recs;
	memcpy(s->last_error, sh->err, sizeof(s->last_error));
	pthread_mutex_unlock(&sh->mu);
}

#else
typedef int nlg_nats_link_unused; /* built without libnats: nothing here */
#endif /* NLGATE_HAVE_NATS */
