/* The NATS output (include/nlgate/out_nats.h): items framed [tag, time, body]
 * as on the unix feed, batched per subject and held in a bounded queue
 * (drops announced by an nlgate.gap message) until the link to the server
 * (core/nats_link.c: libnats, the JetStream window, resends) takes them. */
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
#include <sys/uio.h>

#include "nlgate/encode.h"
#include "nlgate/nats_link.h"
#include "nlgate/nats_name.h"
#include "nlgate/outq.h"

#define MAX_BATCHES  16	 /* subjects with a partial batch at once; past it the oldest goes */
#define QUEUE_MIN    256 /* first size of the queue's ring, in entries */
/* What a queued message costs beyond its body: the natsMsg and its
 * Nats-Msg-Id header took 420 bytes (libnats 3.4.1, glibc, measured with
 * mallinfo2 over 10,000 of them). Counted against `queue`, which so bounds
 * memory, not only bodies. */
#define MSG_OVERHEAD 448

struct qmsg {
	natsMsg *m;
	uint32_t recs; /* 0: a gap announcement */
	uint32_t len;  /* body bytes */
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
	struct nlg_nats_link *link;
	/* built messages waiting for a connection or the window: a FIFO ring
	 * that grows (the bounds are checked before a record is taken) */
	struct qmsg *q;
	size_t qhead, qn, qcap;
	uint64_t bl_recs, bl_bytes, bl_gaps; /* the queue and the batches */
	uint64_t missed;		     /* dropped since the last gap message */
	struct batch *bt;
	int nbt;
	uint64_t nopened;
	int64_t linger_timer;
	struct nlg_buf scratch;
	uint64_t queued, dropped, gaps;
	int big_logged;
};

/* ---- the queue ---- */

static int q_push(struct nlg_out_nats *o, natsMsg *m, uint32_t recs, uint32_t len)
{
	if (o->qn == o->qcap) {
		size_t cap = o->qcap ? o->qcap * 2 : QUEUE_MIN;
		struct qmsg *v = malloc(cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < o->qn; i++)
			v[i] = o->q[(o->qhead + i) % o->qcap];
		free(o->q);
		o->q = v;
		o->qcap = cap;
		o->qhead = 0;
	}
	o->q[(o->qhead + o->qn++) % o->qcap] = (struct qmsg){.m = m, .recs = recs, .len = len};
	return 0;
}

/* The front left: it was published, or is dropped. */
static void q_pop(struct nlg_out_nats *o)
{
	const struct qmsg *e = &o->q[o->qhead];

	o->bl_recs -= e->recs;
	o->bl_bytes -= e->len + MSG_OVERHEAD;
	o->bl_gaps -= !e->recs;
	o->qhead = (o->qhead + 1) % o->qcap;
	if (!--o->qn) {
		o->qhead = 0;
		if (o->qcap > 64 * QUEUE_MIN) { /* a burst is over: give it back */
			free(o->q);
			o->q = NULL;
			o->qcap = 0;
		}
	}
}

/* A message of recs records onto the queue; their bytes are counted by
 * the caller. */
static int enqueue(struct nlg_out_nats *o, const char *subj, const void *data, size_t len,
		   uint32_t recs)
{
	natsMsg *m = nlg_nats_link_msg(o->link, subj, data, len, recs);

	if (!m || q_push(o, m, recs, (uint32_t)len) < 0) {
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

/* Give the link what it takes: its resends first, then the queue; once the
 * queue has room, the announcement of what it dropped. With messages left
 * and the window full, the link calls back (ready) when it has room. */
static void pump(struct nlg_out_nats *o)
{
	if (!nlg_nats_link_up(o->link))
		return;
again:
	if (nlg_nats_link_resend(o->link) < 0)
		return;
	while (o->qn && nlg_nats_link_room(o->link)) {
		const struct qmsg *e = &o->q[o->qhead];
		if (nlg_nats_link_publish(o->link, e->m, e->recs, e->len) < 0)
			return;
		q_pop(o);
	}
	if (o->missed && announce(o))
		goto again;
	if (o->qn && nlg_nats_link_want_room(o->link))
		goto again;
}

static void ready(void *data)
{
	pump(data);
}

/* ---- batches ---- */

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
	if (b && b->buf.len + flen > nlg_nats_link_max_data(o->link)) {
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

/* ---- the output's operations ---- */

static void nats_free(struct nlg_out_nats *o)
{
	if (o->linger_timer > 0)
		nlg_loop_del_timer(o->loop, o->linger_timer);
	for (int i = 0; i < o->nbt; i++)
		nlg_buf_free(&o->bt[i].buf);
	free(o->bt);
	free(o->q);
	nlg_buf_free(&o->scratch);
	free(o);
}

static int nats_open(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err)
{
	const struct nlg_nats_conf *cf = conf;
	struct nlg_out_nats *o;
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
	if (!o || (cf->batch > 1 && !(o->bt = calloc(MAX_BATCHES, sizeof(*o->bt))))) {
		free(o);
		return nlg_err_set(err, ENOMEM, "nats: out of memory");
	}
	o->loop = loop;
	o->cf = cf;
	nlg_buf_init(&o->scratch);
	if ((rc = nlg_nats_link_open(&o->link, loop, cf, ready, o, err)) < 0) {
		nats_free(o);
		return rc;
	}
	*st = o;
	return 0;
}

static int nats_send(void *st, const struct nlg_item *it)
{
	struct nlg_out_nats *o = st;
	uint8_t head[NLG_OUTQ_HEAD_MAX];
	char subj[NLG_NATS_SUBJ_MAX];
	size_t flen, cost, max = nlg_nats_link_max_data(o->link);
	struct iovec iov[2];
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
	if (flen > max || o->bl_recs >= o->cf->queue_records || o->bl_bytes + cost > o->cf->queue) {
		if (flen > max && !o->big_logged++)
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

static uint64_t nats_pending(void *st)
{
	struct nlg_out_nats *o = st;

	return o->bl_recs + o->bl_gaps + nlg_nats_link_pending(o->link);
}

/* Wait for what is pending to leave, for up to timeout_ms, away from the
 * loop: close's last chance, and flush with a time. */
static void wait_pending(struct nlg_out_nats *o, int timeout_ms)
{
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), now;

	for (;;) {
		pump(o);
		now = nlg_now_ms();
		if (!nats_pending(o) || now >= deadline)
			break;
		nlg_nats_link_poll(o->link, (int)(deadline - now < 20 ? deadline - now : 20));
	}
	now = nlg_now_ms();
	nlg_nats_link_flush(o->link, (int)(deadline > now ? deadline - now : 1));
}

static void nats_flush(void *st, int timeout_ms)
{
	struct nlg_out_nats *o = st;

	batches_close(o);
	if (timeout_ms > 0)
		wait_pending(o, timeout_ms);
	else
		pump(o);
	/* The exit drain runs the loop while anything is pending: an ack
	 * then wakes it, not only its 50 ms slices. */
	if (nlg_nats_link_pending(o->link))
		nlg_nats_link_want_room(o->link);
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
	lost = nlg_nats_link_close(o->link);
	for (; o->qn; q_pop(o)) {
		lost += o->q[o->qhead].recs;
		natsMsg_Destroy(o->q[o->qhead].m);
	}
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

	s->link.queued = o->queued;
	s->link.dropped = o->dropped;
	s->backlog = o->bl_recs;
	s->gaps = o->gaps;
	nlg_nats_link_stats(o->link, s);
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
