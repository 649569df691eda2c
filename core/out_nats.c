/* The NATS output (include/nlgate/out_nats.h): items framed [tag, time, body]
 * as on the unix feed, published through libnats to a subject made from a
 * template, with JetStream acknowledgements awaited in a bounded window. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/out_nats.h"

/* ---- options and counters (the same with or without libnats) ---- */

#define CONF(m) offsetof(struct nlg_nats_conf, m), sizeof(((struct nlg_nats_conf *)0)->m)

static const struct nlg_opt nats_opts[] = {
    {.name = "url",
     .type = NLG_OPT_STR,
     CONF(url),
     .def = "nats://127.0.0.1:4222",
     .arg = "URL",
     .desc = "the server, nats://[user:pass@]host:port (several: comma-separated; default "
	     "nats://127.0.0.1:4222)"},
    {.name = "subject",
     .type = NLG_OPT_STR,
     CONF(subject),
     .def = "nlgate.{tag}",
     .arg = "SUBJECT",
     .desc = "the subject; {tag} is replaced by the record's tag (default nlgate.{tag})"},
    {.name = "jetstream",
     .type = NLG_OPT_BOOL,
     CONF(jetstream),
     .def = "true",
     .desc = "publish to JetStream and await acknowledgements; false: core NATS, no acks "
	     "(default true)"},
    {.name = "batch",
     .type = NLG_OPT_UINT,
     CONF(batch),
     .def = "1",
     .min = 1,
     .max = 10000,
     .arg = "N",
     .desc = "records per message, grouped by subject: concatenated [tag, time, record] "
	     "frames (default 1)"},
    {.name = "linger",
     .type = NLG_OPT_DURATION,
     CONF(linger),
     .def = "5ms",
     .max = 60000,
     .unit = "ms",
     .arg = "DURATION",
     .desc = "how long a partial batch waits for more records (default 5ms)"},
    {.name = "creds",
     .type = NLG_OPT_STR,
     CONF(creds),
     .def = "",
     .arg = "FILE",
     .desc = "a NATS credentials file (user JWT and nkey seed), read at every connect"},
    {.name = "name",
     .type = NLG_OPT_STR,
     CONF(name),
     .def = "nlgate",
     .arg = "NAME",
     .desc = "the connection's name, as the server's monitoring shows it (default nlgate)"},
    {.name = "queue",
     .type = NLG_OPT_SIZE,
     CONF(queue),
     .def = "4M",
     .min = 4096,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "bound on the memory of nlgate's own queue (records waiting for the window or "
	     "a connection: their bytes and about 450 a message); past it records are dropped, "
	     "counted and announced by nlgate.gap (default 4M)"},
    {.name = "queue_records",
     .type = NLG_OPT_UINT,
     CONF(queue_records),
     .def = "100000",
     .min = 1,
     .max = 100000000,
     .arg = "N",
     .desc = "bound on nlgate's own queue, in records (default 100000)"},
    {.name = "max_pending",
     .type = NLG_OPT_UINT,
     CONF(max_pending),
     .def = "4096",
     .min = 1,
     .max = 1000000,
     .arg = "N",
     .desc = "JetStream: messages awaiting acknowledgement at once (default 4096)"},
    {.name = "ack_wait",
     .type = NLG_OPT_DURATION,
     CONF(ack_wait),
     .def = "5s",
     .min = 10,
     .max = 3600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "JetStream: a message not acknowledged within this is sent again, same id "
	     "(default 5s)"},
    {.name = "retry_wait",
     .type = NLG_OPT_DURATION,
     CONF(retry_wait),
     .def = "250ms",
     .min = 1,
     .max = 600000,
     .unit = "ms",
     .arg = "DURATION",
     .desc = "JetStream: pause before a refused or timed-out message is sent again "
	     "(default 250ms)"},
    {.name = "reconnect_wait",
     .type = NLG_OPT_DURATION,
     CONF(reconnect_wait),
     .def = "1s",
     .min = 10,
     .max = 600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "between reconnect attempts; they never stop (default 1s)"},
    {.name = "reconnect_buf",
     .type = NLG_OPT_SIZE,
     CONF(reconnect_buf),
     .def = "8M",
     .min = 0,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "what libnats buffers while a connection is re-established (default 8M)"},
    {.name = "connect_timeout",
     .type = NLG_OPT_DURATION,
     CONF(connect_timeout),
     .def = "1s",
     .min = 10,
     .max = 60000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "one connection attempt; the first runs on the loop, so keep it short "
	     "(default 1s)"},
    {.name = NULL},
};

#define STAT(n, t, d) NLG_FIELD(struct nlg_nats_stats, #n, t, n, 0, d)

static const struct nlg_field nats_stats_fields[] = {
    NLG_LINK_FIELDS(struct nlg_nats_stats, link),
    STAT(messages, NLG_T_U64, "messages published (a batch is one), resends included"),
    STAT(bytes, NLG_T_U64, "message bodies published, bytes, resends included"),
    STAT(backlog, NLG_T_U64, "records in nlgate's queue now, not yet given to libnats"),
    STAT(inflight, NLG_T_U64, "records published and awaiting acknowledgement or a resend"),
    STAT(duplicates, NLG_T_U64,
	 "acknowledgements saying the server had the message id already (a resend)"),
    STAT(ack_errors, NLG_T_U64, "publishes refused or not acknowledged in time (then resent)"),
    STAT(gaps, NLG_T_U64, "nlgate.gap messages queued"),
    STAT(disconnects, NLG_T_U64, "connections lost"),
    STAT(last_error, NLG_T_STR, "the last error libnats or the server reported"),
};

struct nlg_schema nlg_nats_stats_schema = {
    .kind = "nats.stats",
    .desc = "counters of a NATS output",
    .fields = nats_stats_fields,
    .nfields = NLG_ARRAY_SIZE(nats_stats_fields),
    .rec_size = sizeof(struct nlg_nats_stats),
    .present_off = offsetof(struct nlg_nats_stats, present),
};

#define NATS_DESC                                                                                  \
	"NATS and JetStream: [tag, time, record] frames published to a subject per tag, "          \
	"acknowledged, de-duplicated by Nats-Msg-Id"

#ifndef NLGATE_HAVE_NATS

/* Built without libnats: the same options, so a script is checked the same
 * way, and an open that says what to do. */
static int nats_open_missing(struct nlg_loop *loop, const void *conf, void **st,
			     struct nlg_err *err)
{
	(void)loop;
	(void)conf;
	*st = NULL;
	return nlg_err_set(err, ENOTSUP,
			   "built without NATS support: install libnats-dev and rebuild");
}

static void nats_close_missing(void *st, int timeout_ms)
{
	(void)st;
	(void)timeout_ms;
}

static int nats_send_missing(void *st, const struct nlg_item *it)
{
	(void)st;
	(void)it;
	return -ENOTSUP;
}

static void nats_stats_missing(void *st, void *out)
{
	(void)st;
	(void)out;
}

const struct nlg_output_ops nlg_nats_output = {
    .name = "nats",
    .desc = NATS_DESC " (not built: install libnats-dev and rebuild)",
    .opts = nats_opts,
    .conf_size = sizeof(struct nlg_nats_conf),
    .stats_schema = &nlg_nats_stats_schema,
    .open = nats_open_missing,
    .close = nats_close_missing,
    .send = nats_send_missing,
    .stats = nats_stats_missing,
};

#else /* NLGATE_HAVE_NATS */

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <nats/nats.h>

#include "nlgate/encode.h"
#include "nlgate/nats_name.h"
#include "nlgate/net.h"
#include "nlgate/outq.h"

#define HDR_ID		"Nats-Msg-Id"
#define HDR_RECORDS	"Nlgate-Records" /* only where a message holds other than one record */
#define MAX_BATCHES	16 /* subjects with a partial batch at once; past it the oldest goes */
/* libnats's own window (PublishAsync.MaxPending) is ours plus this: our count
 * drops inside the ack handler, libnats's just after it returns, and the one
 * reply subscription runs one handler at a time. With the slack libnats never
 * reaches its limit, so it never stalls the loop (StallWait is 1 ms anyway). */
#define WINDOW_SLACK	16
#define PAYLOAD_DEFAULT (1 << 20) /* the server's max_payload until its INFO says */
#define HEADER_ROOM	512	  /* of max_payload, left for the headers */
#define SETTLE_MS	1000	  /* close waits this long for ack handlers already running */
#define ERRLOG_MS	10000	  /* failed publishes are logged at most this often */
#define QUEUE_MIN	256	  /* first size of a message ring, in entries */
#define RETRY_MAX_MS	5000	  /* resends of failures in a row back off up to this */
#define RESTART_MAX_MS	30000	  /* so do new connections after libnats closed one */
/* What a queued message costs beyond its body: the natsMsg and its
 * Nats-Msg-Id header took 420 bytes (libnats 3.4.1, glibc, measured with
 * mallinfo2 over 10,000 of them). Counted against `queue`, which so bounds
 * memory, not only bodies. */
#define MSG_OVERHEAD	448

/* ---- what libnats's threads share with the loop ----
 *
 * The ack handler runs on the JetStream reply subscription's thread, the
 * connection callbacks on libnats's callback thread; the loop (one thread,
 * core/loop.c) is never called from them. They count with atomics, put
 * failed messages on the resend list under mu, and wake the loop through
 * its eventfd, also under mu (the loop closes it). The output holds one
 * reference and every connection natsConnection_Connect handed out another,
 * dropped by its closed callback: libnats posts that one after joining the
 * connection's threads and runs callbacks in order on one thread, so it is
 * the last call for that connection. The ack handler is done before the
 * output lets go (nats_teardown). */
struct shared {
	pthread_mutex_t mu;
	int refs;
	int efd;      /* the loop's eventfd; -1 once the output let go */
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
 * one after the loop started over (see wake_io). */
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

struct qmsg {
	natsMsg *m;
	uint32_t recs;
	uint32_t len; /* body bytes */
};

/* A FIFO of built messages, growing as needed (the bounds are checked before
 * a record is taken). */
struct mq {
	struct qmsg *v;
	size_t head, n, cap;
};

struct batch {
	char subj[NLG_NATS_SUBJ_MAX];
	struct nlg_buf buf;
	uint32_t recs;
	uint64_t opened; /* order, to pick the oldest */
};

struct nlg_out_nats {
	struct nlg_loop *loop;
	const struct nlg_nats_conf *cf;
	struct shared *sh;
	natsConnection *nc;
	jsCtx *js;
	int js_used; /* js made an async publish (libnats's map exists) */
	jsPubOptions po;
	struct nlg_backoff retry_bo; /* resends of failures in a row slow down */
	struct nlg_backoff start_bo; /* so do new connections after libnats gave up */
	uint64_t retry_acked;	     /* acked when the last resend round began */
	int efd;
	int64_t start_timer, retry_timer, linger_timer;
	char idp[224]; /* Nats-Msg-Id up to the sequence */
	size_t idlen;
	uint64_t seq;
	size_t max_data; /* largest body a message may have */
	struct mq q;	 /* built, waiting for a connection or the window */
	struct mq rs;	 /* failed, to send again */
	uint64_t rs_recs;
	uint64_t bl_recs, bl_bytes, bl_gaps; /* q and the batches */
	uint64_t missed;		     /* dropped since the last gap message */
	struct batch *bt;
	int nbt;
	uint64_t nopened;
	struct nlg_buf scratch;
	/* counters the loop alone writes */
	uint64_t queued, sent, resent, dropped, messages, bytes, gaps;
	/* what was last said in the log */
	int logged_state;
	uint64_t logged_nerr, logged_ms;
	int said_waiting; /* "not connected yet", once until connected */
	uint64_t restarts, said_restart_ms;
	int big_logged;
};

static int mq_push(struct mq *q, natsMsg *m, uint32_t recs, uint32_t len)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : QUEUE_MIN;
		struct qmsg *v = malloc(cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < q->n; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	q->v[(q->head + q->n++) % q->cap] = (struct qmsg){.m = m, .recs = recs, .len = len};
	return 0;
}

static struct qmsg *mq_front(struct mq *q)
{
	return &q->v[q->head];
}

static void mq_pop(struct mq *q)
{
	q->head = (q->head + 1) % q->cap;
	if (!--q->n) {
		q->head = 0;
		if (q->cap > 64 * QUEUE_MIN) { /* a burst is over: give it back */
			free(q->v);
			q->v = NULL;
			q->cap = 0;
		}
	}
}

/* ---- building and queueing messages ---- */

static natsMsg *msg_build(struct nlg_out_nats *o, const char *subj, const void *data, size_t len,
			  uint32_t recs)
{
	char id[sizeof(o->idp) + 24], nrec[16];
	natsMsg *m = NULL;

	if (natsMsg_Create(&m, subj, NULL, data, (int)len) != NATS_OK)
		return NULL;
	memcpy(id, o->idp, o->idlen);
	snprintf(id + o->idlen, sizeof(id) - o->idlen, "%" PRIu64, ++o->seq);
	if (natsMsgHeader_Set(m, HDR_ID, id) != NATS_OK)
		goto fail;
	if (recs != 1) {
		atomic_store_explicit(&o->sh->counted, 1, memory_order_release);
		snprintf(nrec, sizeof(nrec), "%u", recs);
		if (natsMsgHeader_Set(m, HDR_RECORDS, nrec) != NATS_OK)
			goto fail;
	}
	return m;
fail:
	natsMsg_Destroy(m);
	return NULL;
}

/* Queue a message of recs records taken into the backlog already. */
static int enqueue(struct nlg_out_nats *o, const char *subj, const void *data, size_t len,
		   uint32_t recs)
{
	natsMsg *m = msg_build(o, subj, data, len, recs);

	if (!m || mq_push(&o->q, m, recs, (uint32_t)len) < 0) {
		natsMsg_Destroy(m);
		return -ENOMEM;
	}
	return 0;
}

/* The nlgate.gap message for what was missed, if it fits under the bound:
 * on the subject for the tag nlgate.gap, the feed's [tag, time, {missed}]
 * frame, holding no record. 1 queued, 0 not (the count waits and grows). */
static int announce(struct nlg_out_nats *o)
{
	uint8_t gap[NLG_OUTQ_GAP_MAX];
	char subj[NLG_NATS_SUBJ_MAX];
	int g;

	if (!o->missed || o->bl_recs >= o->cf->queue_records)
		return 0;
	g = nlg_outq_gap_mp(NULL, o->missed, gap, sizeof(gap));
	if (g <= 0 || o->bl_bytes + (uint64_t)g + MSG_OVERHEAD > o->cf->queue)
		return 0;
	if (nlg_nats_subject(o->cf->subject, "nlgate.gap", 10, subj) < 0 ||
	    enqueue(o, subj, gap, (size_t)g, 0) < 0)
		return 0;
	o->bl_bytes += (uint64_t)g + MSG_OVERHEAD;
	o->bl_gaps++;
	o->gaps++;
	o->missed = 0;
	return 1;
}

/* A partial or full batch becomes a message on the queue. */
static void batch_close(struct nlg_out_nats *o, int i)
{
	struct batch *b = &o->bt[i];

	if (b->recs && enqueue(o, b->subj, b->buf.data, b->buf.len, b->recs) < 0) {
		o->bl_recs -= b->recs;
		o->bl_bytes -= b->buf.len;
		o->dropped += b->recs;
		o->missed += b->recs;
	} else if (b->recs) {
		o->bl_bytes += MSG_OVERHEAD;
	}
	nlg_buf_free(&b->buf);
	o->bt[i] = o->bt[--o->nbt];
}

static void batches_close(struct nlg_out_nats *o)
{
	while (o->nbt)
		batch_close(o, o->nbt - 1);
}

/* ---- publishing ---- */

static int room(struct nlg_out_nats *o)
{
	return !o->js || atomic_load(&o->sh->inflight) < (int64_t)o->cf->max_pending;
}

static void note_status(struct nlg_out_nats *o, natsStatus s, const char *what)
{
	pthread_mutex_lock(&o->sh->mu);
	note_err_locked(o->sh, "%s: %s", what, natsStatus_GetText(s));
	pthread_mutex_unlock(&o->sh->mu);
}

/* Hand one message to libnats: 0, or -1 with the message still ours (its
 * buffer full while it reconnects, or the connection gone). */
static int publish(struct nlg_out_nats *o, struct qmsg *e, int again)
{
	natsMsg *m = e->m;
	natsStatus s;

	if (o->js) {
		/* Counted first: the ack may come before the call returns. */
		atomic_fetch_add(&o->sh->inflight, 1);
		atomic_fetch_add(&o->sh->inflight_recs, e->recs);
		s = js_PublishMsgAsync(o->js, &m, &o->po);
		o->js_used |= s == NATS_OK;
		if (s != NATS_OK) {
			atomic_fetch_sub(&o->sh->inflight, 1);
			atomic_fetch_sub(&o->sh->inflight_recs, e->recs);
		}
	} else {
		s = natsConnection_PublishMsg(o->nc, m);
		if (s == NATS_OK)
			natsMsg_Destroy(m);
	}
	if (s != NATS_OK) {
		note_status(o, s, "publish");
		return -1;
	}
	o->messages++;
	o->bytes += e->len;
	if (again)
		o->resent += e->recs;
	else
		o->sent += e->recs;
	return 0;
}

static int64_t retry_fire(struct nlg_loop *loop, int64_t id, void *data);

/* Resends go after retry_wait; while whole rounds fail (no stream for the
 * subject, a server that refuses), the pause grows with jitter up to
 * RETRY_MAX_MS, and an acknowledgement brings it back. */
static void retry_arm(struct nlg_out_nats *o)
{
	if (o->retry_timer <= 0 && o->loop) {
		int64_t t =
		    nlg_loop_add_timer(o->loop, nlg_backoff_next(&o->retry_bo), retry_fire, o);
		o->retry_timer = t > 0 ? t : 0;
	}
}

/* Give libnats what the window takes: resends first, then the queue; once
 * the queue has room, the announcement of what it dropped. With messages
 * left and the window full, ask the ack handler for a wake-up when it has
 * room again. */
static void pump(struct nlg_out_nats *o)
{
	if (!o->nc || atomic_load(&o->sh->state) != NLG_LINK_CONNECTED)
		return;
again:
	while (o->rs.n && room(o)) {
		struct qmsg *e = mq_front(&o->rs);
		if (publish(o, e, 1) < 0)
			goto stuck;
		o->rs_recs -= e->recs;
		mq_pop(&o->rs);
	}
	while (o->q.n && room(o)) {
		struct qmsg *e = mq_front(&o->q);
		if (publish(o, e, 0) < 0)
			goto stuck;
		o->bl_recs -= e->recs;
		o->bl_bytes -= e->len + MSG_OVERHEAD;
		o->bl_gaps -= !e->recs;
		mq_pop(&o->q);
	}
	if (o->missed && announce(o))
		goto again;
	if ((o->q.n || o->rs.n) && o->js) {
		/* Tested first: under a flood every send lands here. */
		if (!atomic_load_explicit(&o->sh->wake, memory_order_relaxed))
			atomic_store(&o->sh->wake, 1);
		if (room(o)) /* an ack came between the test and the flag */
			goto again;
	}
	return;
stuck:
	retry_arm(o);
}

/* Failed messages come back from the handler's list to be sent again. */
static void take_failed(struct nlg_out_nats *o)
{
	struct shared *sh = o->sh;

	pthread_mutex_lock(&sh->mu);
	for (size_t i = 0; i < sh->rn; i++) {
		natsMsg *m = sh->rv[i];
		uint32_t k = msg_records(sh, m);
		if (mq_push(&o->rs, m, k, (uint32_t)natsMsg_GetDataLength(m)) < 0) {
			natsMsg_Destroy(m);
			o->dropped += k;
			continue;
		}
		o->rs_recs += k;
	}
	sh->rn = 0;
	sh->rrecs = 0;
	pthread_mutex_unlock(&sh->mu);
}

static int64_t retry_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_out_nats *o = data;

	uint64_t acked = atomic_load(&o->sh->acked);

	(void)loop;
	(void)id;
	o->retry_timer = 0;
	if (acked != o->retry_acked)
		nlg_backoff_reset(&o->retry_bo);
	o->retry_acked = acked;
	take_failed(o);
	pump(o);
	return -1;
}

/* ---- the connection ---- */

static void log_state(struct nlg_out_nats *o)
{
	int st = atomic_load(&o->sh->state);
	char url[256] = "";

	if (st == o->logged_state)
		return;
	if (st == NLG_LINK_CONNECTED) {
		int64_t mp = natsConnection_GetMaxPayload(o->nc);
		if (mp > HEADER_ROOM * 2)
			o->max_data = (size_t)mp - HEADER_ROOM;
		natsConnection_GetConnectedUrl(o->nc, url, sizeof(url));
		nlg_backoff_reset(&o->start_bo);
		o->said_waiting = 0;
		nlg_log("nats %s: %s%s", o->cf->url,
			o->logged_state == NLG_LINK_BACKOFF ? "reconnected to " : "connected to ",
			url[0] ? url : "the server");
	} else if (st == NLG_LINK_BACKOFF) {
		nlg_log("nats %s: disconnected; reconnecting every %" PRIu64 " ms, records held "
			"(queue %" PRIu64 " bytes)",
			o->cf->url, o->cf->reconnect_wait, o->cf->queue);
	}
	o->logged_state = st;
}

/* Failed publishes: the first at once, then at most one line per ERRLOG_MS. */
static void log_errors(struct nlg_out_nats *o)
{
	char err[sizeof(o->sh->err)];
	uint64_t n, now = nlg_now_ms();

	pthread_mutex_lock(&o->sh->mu);
	n = o->sh->nerr;
	memcpy(err, o->sh->err, sizeof(err));
	pthread_mutex_unlock(&o->sh->mu);
	if (n == o->logged_nerr || (o->logged_ms && now - o->logged_ms < ERRLOG_MS))
		return;
	if (n - o->logged_nerr > 1)
		nlg_log("nats %s: %s (%" PRIu64 " errors since the last said)", o->cf->url, err,
			n - o->logged_nerr);
	else
		nlg_log("nats %s: %s", o->cf->url, err);
	o->logged_nerr = n;
	o->logged_ms = now;
}

/* Let go of the connection. The order makes the ack handler finish before:
 * the pending list takes every message still awaiting an ack out of
 * libnats's map, so no later ack or timeout finds one to call the handler
 * for, and js_PublishAsyncComplete returns once the handlers already running
 * are done. Those messages go to the resend list (resend: a new connection
 * follows) or count as lost, returned. */
static uint64_t conn_drop(struct nlg_out_nats *o, int resend)
{
	uint64_t lost = 0;

	if (o->js) {
		natsMsgList l = {0};
		jsPubOptions po;

		/* libnats 3.4 crashes here before the context's first async
		 * publish (its map is made then). */
		if (o->js_used && js_PublishAsyncGetPendingList(&l, o->js) == NATS_OK) {
			for (int i = 0; i < l.Count; i++) {
				natsMsg *m = l.Msgs[i];
				uint32_t k = msg_records(o->sh, m);
				atomic_fetch_sub(&o->sh->inflight, 1);
				atomic_fetch_sub(&o->sh->inflight_recs, k);
				if (resend && mq_push(&o->rs, m, k,
						      (uint32_t)natsMsg_GetDataLength(m)) == 0) {
					o->rs_recs += k;
					l.Msgs[i] = NULL;
				} else {
					lost += k;
				}
			}
			natsMsgList_Destroy(&l);
		}
		jsPubOptions_Init(&po);
		po.MaxWait = SETTLE_MS;
		js_PublishAsyncComplete(o->js, &po);
		jsCtx_Destroy(o->js);
		o->js = NULL;
		o->js_used = 0;
	}
	if (o->nc) {
		natsConnection_Destroy(o->nc);
		o->nc = NULL;
	}
	return lost;
}

static int64_t start_fire(struct nlg_loop *loop, int64_t id, void *data);

/* libnats closed the connection itself (a server that is no NATS server,
 * an authorization refused twice): it will not reconnect, so a new one is
 * made after reconnect_wait. What awaited an ack is sent again on it. */
static void start_over(struct nlg_out_nats *o)
{
	const char *why = NULL;
	char text[160] = "";
	uint32_t wait = nlg_backoff_next(&o->start_bo);
	uint64_t now = nlg_now_ms();

	if (natsConnection_GetLastError(o->nc, &why) != NATS_OK && why)
		snprintf(text, sizeof(text), "%s", why);
	conn_drop(o, 1);
	atomic_store(&o->sh->state, NLG_LINK_BACKOFF);
	o->logged_state = NLG_LINK_BACKOFF;
	o->restarts++;
	if (!o->said_restart_ms || now - o->said_restart_ms >= ERRLOG_MS) {
		nlg_log(
		    "nats %s: the connection closed%s%s; starting over in %u ms (attempt %" PRIu64
		    ")",
		    o->cf->url, text[0] ? ": " : "", text, wait, o->restarts);
		o->said_restart_ms = now;
	}
	if (o->start_timer <= 0) {
		int64_t t = nlg_loop_add_timer(o->loop, wait, start_fire, o);
		o->start_timer = t > 0 ? t : 0;
	}
}

/* The eventfd: a libnats thread has news (room in the window, failed
 * messages, the connection's state). */
static void wake_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct nlg_out_nats *o = data;
	uint64_t v;
	int failed;

	(void)loop;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	if (atomic_load(&o->sh->state) == NLG_LINK_CLOSED && o->nc)
		start_over(o);
	log_state(o);
	log_errors(o);
	pthread_mutex_lock(&o->sh->mu);
	failed = o->sh->rn > 0;
	pthread_mutex_unlock(&o->sh->mu);
	if (failed)
		retry_arm(o);
	pump(o);
}

/* libnats starts threads from its first call, so nothing of it runs before
 * the loop's first turn: `run --user` drops privileges before that, with
 * one thread (capabilities are per thread). The first attempt runs here and
 * may hold the loop for up to connect_timeout (DNS included); every later
 * one runs in libnats's reconnect thread (RetryOnFailedConnect with a
 * connected callback: the connect is asynchronous), so open never fails for
 * an unreachable server: it is a counted retry. */
static int nats_connect(struct nlg_out_nats *o)
{
	const struct nlg_nats_conf *cf = o->cf;
	struct shared *sh = o->sh;
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
	s = natsConnection_Connect(&o->nc, opts);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
		o->nc = NULL;
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
		o->logged_nerr = sh->nerr; /* said here */
		pthread_mutex_unlock(&sh->mu);
		if (!o->said_waiting++)
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
		s = natsConnection_JetStream(&o->js, o->nc, &jo);
		if (s != NATS_OK) {
			conn_drop(o, 1);
			goto fail;
		}
		jsPubOptions_Init(&o->po);
		o->po.MaxWait = (int64_t)cf->ack_wait;
	}
	log_state(o);
	pump(o);
	return 0;
fail:
	natsOptions_Destroy(opts);
	note_status(o, s, "connect");
	if (!o->said_restart_ms || nlg_now_ms() - o->said_restart_ms >= ERRLOG_MS) {
		const char *text = nats_GetLastError(NULL);
		nlg_log("nats %s: cannot connect: %s%s%s; retrying", cf->url, natsStatus_GetText(s),
			text && *text ? ": " : "", text ? text : "");
		o->said_restart_ms = nlg_now_ms();
	}
	return -1;
}

static int64_t start_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_out_nats *o = data;

	(void)loop;
	(void)id;
	if (o->js || o->nc || nats_connect(o) == 0) {
		o->start_timer = 0;
		return -1;
	}
	return nlg_backoff_next(&o->start_bo);
}

/* ---- the output's operations ---- */

static uint64_t nats_pending(void *st)
{
	struct nlg_out_nats *o = st;
	uint64_t n = o->bl_recs + o->bl_gaps + o->rs_recs;

	if (o->js) {
		pthread_mutex_lock(&o->sh->mu);
		n += o->sh->rrecs + atomic_load(&o->sh->inflight_recs);
		pthread_mutex_unlock(&o->sh->mu);
		/* Nothing but a gap message in flight: it counts too. */
		if (!n && atomic_load(&o->sh->inflight) > 0)
			n = 1;
	}
	return n;
}

static void nats_free(struct nlg_out_nats *o)
{
	if (o->loop) {
		if (o->start_timer > 0)
			nlg_loop_del_timer(o->loop, o->start_timer);
		if (o->retry_timer > 0)
			nlg_loop_del_timer(o->loop, o->retry_timer);
		if (o->linger_timer > 0)
			nlg_loop_del_timer(o->loop, o->linger_timer);
		if (o->efd >= 0)
			nlg_loop_del_fd(o->loop, o->efd);
	}
	if (o->sh) {
		pthread_mutex_lock(&o->sh->mu);
		o->sh->efd = -1;
		pthread_mutex_unlock(&o->sh->mu);
		shared_unref(o->sh);
	}
	if (o->efd >= 0)
		close(o->efd);
	for (int i = 0; i < o->nbt; i++)
		nlg_buf_free(&o->bt[i].buf);
	free(o->bt);
	free(o->q.v);
	free(o->rs.v);
	nlg_buf_free(&o->scratch);
	free(o);
}

static int nats_open(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err)
{
	const struct nlg_nats_conf *cf = conf;
	struct nlg_out_nats *o;
	struct shared *sh;
	int rc;

	*st = NULL;
	if ((rc = nlg_nats_url_check(cf->url, err)) < 0 ||
	    (rc = nlg_nats_subject_check(cf->subject, err)) < 0)
		return rc;
	if (cf->creds[0] && (rc = nlg_nats_creds_check(cf->creds, err)) < 0)
		return rc;
	if (!cf->batch || !cf->queue || !cf->queue_records || !cf->max_pending)
		return nlg_err_set(err, EINVAL,
				   "nats: batch, queue, queue_records and max_pending must be "
				   "positive");
	if (cf->reconnect_buf > INT32_MAX)
		return nlg_err_set(err, EINVAL, "nats: reconnect_buf over 2G");
	o = calloc(1, sizeof(*o));
	sh = calloc(1, sizeof(*sh));
	if (!o || !sh) {
		free(o);
		free(sh);
		return nlg_err_set(err, ENOMEM, "nats: out of memory");
	}
	o->loop = loop;
	o->cf = cf;
	o->efd = -1;
	o->max_data = PAYLOAD_DEFAULT - HEADER_ROOM;
	o->logged_state = NLG_LINK_CONNECTING;
	nlg_backoff_init(&o->retry_bo, (uint32_t)cf->retry_wait,
			 cf->retry_wait > RETRY_MAX_MS ? (uint32_t)cf->retry_wait : RETRY_MAX_MS);
	nlg_backoff_init(&o->start_bo, (uint32_t)cf->reconnect_wait,
			 cf->reconnect_wait > RESTART_MAX_MS ? (uint32_t)cf->reconnect_wait
							     : RESTART_MAX_MS);
	nlg_buf_init(&o->scratch);
	pthread_mutex_init(&sh->mu, NULL);
	sh->refs = 1;
	sh->efd = -1;
	sh->low_mark = (int64_t)cf->max_pending / 2;
	atomic_init(&sh->state, NLG_LINK_CONNECTING);
	o->sh = sh;
	o->idlen = nlg_nats_id_prefix(o->idp, sizeof(o->idp));
	if (cf->batch > 1 && !(o->bt = calloc(MAX_BATCHES, sizeof(*o->bt)))) {
		rc = nlg_err_set(err, ENOMEM, "nats: out of memory");
		goto fail;
	}
	o->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (o->efd < 0) {
		rc = nlg_err_set(err, errno, "nats: eventfd: %s", strerror(errno));
		goto fail;
	}
	sh->efd = o->efd;
	if (nlg_loop_add_fd(loop, o->efd, EPOLLIN, wake_io, o) < 0) {
		rc = nlg_err_set(err, ENOMEM, "nats: cannot watch the eventfd");
		goto fail;
	}
	o->start_timer = nlg_loop_add_timer(loop, 0, start_fire, o);
	if (o->start_timer < 0) {
		rc = nlg_err_set(err, ENOMEM, "nats: cannot add a timer");
		o->start_timer = 0;
		goto fail;
	}
	*st = o;
	return 0;
fail:
	nats_free(o);
	return rc;
}

static int64_t linger_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_out_nats *o = data;

	(void)loop;
	(void)id;
	o->linger_timer = 0;
	batches_close(o);
	pump(o);
	return -1;
}

/* Into the open batch of subj (a new one if none, the oldest closed if
 * MAX_BATCHES are open); a batch that is full, or would pass the message
 * size, goes to the queue. */
static int batch_add(struct nlg_out_nats *o, const char *subj, const struct iovec *iov, size_t flen)
{
	struct batch *b = NULL;
	int i;

	for (i = 0; i < o->nbt; i++)
		if (!strcmp(o->bt[i].subj, subj)) {
			b = &o->bt[i];
			break;
		}
	if (b && b->buf.len + flen > o->max_data) {
		batch_close(o, i);
		b = NULL;
	}
	if (!b) {
		if (o->nbt == MAX_BATCHES) {
			int old = 0;
			for (int j = 1; j < o->nbt; j++)
				if (o->bt[j].opened < o->bt[old].opened)
					old = j;
			batch_close(o, old);
		}
		i = o->nbt++;
		b = &o->bt[i];
		memset(b, 0, sizeof(*b));
		strcpy(b->subj, subj);
		nlg_buf_init(&b->buf);
		b->opened = ++o->nopened;
	}
	if (nlg_buf_reserve(&b->buf, flen) < 0) {
		if (!b->recs) {
			nlg_buf_free(&b->buf);
			o->bt[i] = o->bt[--o->nbt];
		}
		return -ENOMEM;
	}
	nlg_buf_append(&b->buf, iov[0].iov_base, iov[0].iov_len);
	nlg_buf_append(&b->buf, iov[1].iov_base, iov[1].iov_len);
	if (++b->recs >= o->cf->batch)
		batch_close(o, i);
	else if (o->linger_timer <= 0) {
		int64_t t = nlg_loop_add_timer(o->loop, o->cf->linger, linger_fire, o);
		o->linger_timer = t > 0 ? t : 0;
	}
	return 0;
}

static int nats_send(void *st, const struct nlg_item *it)
{
	struct nlg_out_nats *o = st;
	uint8_t head[NLG_OUTQ_HEAD_MAX];
	char subj[NLG_NATS_SUBJ_MAX];
	struct iovec iov[2];
	size_t flen, cost;
	int hl;

	if (it->taglen > 255 || !it->len)
		return -EINVAL;
	hl = nlg_outq_mp_head(head, sizeof(head), it->tag, it->taglen, it->time_ns);
	if (hl < 0)
		return hl;
	if (nlg_nats_subject(o->cf->subject, it->tag, it->taglen, subj) < 0)
		return -ENAMETOOLONG;
	flen = (size_t)hl + it->len;
	cost = flen + (o->cf->batch > 1 ? 0 : MSG_OVERHEAD);
	/* Bounded: what the window and the connection cannot take yet waits
	 * here, up to queue bytes and queue_records records; past that, and
	 * for a record no message can hold, whole records are dropped and
	 * announced. */
	if (flen > o->max_data || o->bl_recs >= o->cf->queue_records ||
	    o->bl_bytes + cost > o->cf->queue) {
		if (flen > o->max_data && !o->big_logged++)
			nlg_log("nats %s: a %zu-byte record is over the server's message size; "
				"dropped (and every such record)",
				o->cf->url, flen);
		goto drop;
	}
	if (o->missed && !announce(o))
		goto drop;
	iov[0] = (struct iovec){.iov_base = head, .iov_len = (size_t)hl};
	iov[1] = (struct iovec){.iov_base = (void *)it->body, .iov_len = it->len};
	if (o->cf->batch > 1) {
		if (batch_add(o, subj, iov, flen) < 0)
			goto drop;
	} else {
		nlg_buf_reset(&o->scratch);
		if (nlg_buf_append(&o->scratch, head, (size_t)hl) < 0 ||
		    nlg_buf_append(&o->scratch, it->body, it->len) < 0 ||
		    enqueue(o, subj, o->scratch.data, flen, 1) < 0)
			goto drop;
	}
	o->bl_recs++;
	o->bl_bytes += cost;
	o->queued++;
	pump(o);
	return 1;
drop:
	o->missed++;
	o->dropped++;
	return 0;
}

/* Wait for what is pending to leave, pumping, for up to timeout_ms, away
 * from the loop: close's last chance, and flush with a timeout. Resends go
 * at once here. */
static void wait_pending(struct nlg_out_nats *o, int timeout_ms)
{
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		struct pollfd p = {.fd = o->efd, .events = POLLIN};
		uint64_t now, v;

		take_failed(o);
		pump(o);
		now = nlg_now_ms();
		if (!nats_pending(o) || now >= deadline)
			break;
		if (o->js)
			atomic_store(&o->sh->wake, 1);
		if (poll(&p, 1, (int)(deadline - now < 20 ? deadline - now : 20)) > 0 &&
		    read(o->efd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
		log_state(o);
	}
	if (!o->js && o->nc && atomic_load(&o->sh->state) == NLG_LINK_CONNECTED) {
		uint64_t now = nlg_now_ms();
		/* Core NATS: what libnats buffered reaches the server (a PING
		 * answered after it). */
		natsConnection_FlushTimeout(o->nc, (int64_t)(deadline > now ? deadline - now : 1));
	}
}

static void nats_flush(void *st, int timeout_ms)
{
	struct nlg_out_nats *o = st;

	batches_close(o);
	if (timeout_ms > 0) {
		wait_pending(o, timeout_ms);
		return;
	}
	pump(o);
	/* The exit drain runs the loop while anything is pending: an ack
	 * then wakes it, not only its 50 ms slices. */
	if (o->js && atomic_load(&o->sh->inflight) > 0)
		atomic_store(&o->sh->wake, 1);
}

/* Stop libnats, and count what it still held as lost. */
static uint64_t nats_teardown(struct nlg_out_nats *o)
{
	uint64_t lost = conn_drop(o, 0);

	take_failed(o);
	for (; o->rs.n; mq_pop(&o->rs)) {
		lost += mq_front(&o->rs)->recs;
		natsMsg_Destroy(mq_front(&o->rs)->m);
	}
	for (; o->q.n; mq_pop(&o->q)) {
		lost += mq_front(&o->q)->recs;
		natsMsg_Destroy(mq_front(&o->q)->m);
	}
	o->rs_recs = o->bl_recs = o->bl_bytes = o->bl_gaps = 0;
	return lost;
}

static void nats_close(void *st, int timeout_ms)
{
	struct nlg_out_nats *o = st;
	uint64_t lost;

	if (!o)
		return;
	batches_close(o);
	announce(o);
	if (timeout_ms > 0)
		wait_pending(o, timeout_ms);
	else
		pump(o);
	lost = nats_teardown(o);
	pthread_mutex_lock(&o->sh->mu);
	lost += o->sh->lost;
	o->sh->lost = 0;
	pthread_mutex_unlock(&o->sh->mu);
	o->dropped += lost;
	if (lost)
		nlg_log("nats %s: closed with %" PRIu64 " records not acknowledged or not sent "
			"(counted dropped)",
			o->cf->url, lost);
	nats_free(o);
}

static void nats_stats(void *st, void *out)
{
	struct nlg_out_nats *o = st;
	struct nlg_nats_stats *s = out;
	struct shared *sh = o->sh;

	s->link.queued = o->queued;
	s->link.sent = o->sent;
	s->link.acked = atomic_load(&sh->acked);
	s->link.resent = o->resent;
	s->link.reconnects = atomic_load(&sh->reconnects);
	s->link.state = (uint8_t)atomic_load(&sh->state);
	s->messages = o->messages;
	s->bytes = o->bytes;
	s->backlog = o->bl_recs;
	s->duplicates = atomic_load(&sh->dups);
	s->ack_errors = atomic_load(&sh->ack_errors);
	s->gaps = o->gaps;
	s->disconnects = atomic_load(&sh->disconnects);
	pthread_mutex_lock(&sh->mu);
	s->link.dropped = o->dropped + sh->lost;
	s->inflight = atomic_load(&sh->inflight_recs) + sh->rrecs + o->rs_recs;
	memcpy(s->last_error, sh->err, sizeof(s->last_error));
	pthread_mutex_unlock(&sh->mu);
}

const struct nlg_output_ops nlg_nats_output = {
    .name = "nats",
    .desc = NATS_DESC,
    .opts = nats_opts,
    .conf_size = sizeof(struct nlg_nats_conf),
    .stats_schema = &nlg_nats_stats_schema,
    .open = nats_open,
    .close = nats_close,
    .send = nats_send,
    .flush = nats_flush,
    .stats = nats_stats,
    .pending = nats_pending,
};

#endif /* NLGATE_HAVE_NATS */
