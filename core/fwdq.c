/* The Forward output's message queue: batching records into messages in
 * place, the bound and the gap record, ids, and the list of messages from
 * unwritten to acknowledged. See fwdq.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/common.h"
#include "nlgate/forward.h"
#include "nlgate/fwdq.h"

/* What closing a batch adds around its entries, reserved when it opens so
 * the bound holds before the head's size is known. */
#define BATCH_OVH     (NLG_FWD_HEAD_MAX + NLG_FWD_OPT_MAX)
#define BATCH_MIN_CAP (16u << 10)
#define GAP_TAG	      "nlgate.gap"
#define GAP_BODY_MAX  17 /* {"missed": uint64} */
/* Message buffers kept for the next batches once freed: without them every
 * message of ~1 MB was a fresh mmap, page faults and all (13% of the CPU at
 * a million records a second with acks, perf). Not counted in the bound. */
#define SPARES 2

/* One message, whole, in one allocation: this struct, then room for the
 * longest head, the entries and the option map. data points at the head,
 * written right before the entries when the batch closes, so the entries
 * are never copied. */
struct msg {
	struct msg *next;
	uint8_t *data;
	size_t len;
	size_t cap;	     /* bytes allocated, this struct included */
	uint32_t nent, nrec; /* entries; of them records (not gaps) */
	int written;	     /* written whole at least once: again is a resend */
	uint64_t sent_ms;    /* when last written whole */
	char id[NLG_FWD_ID_LEN + 1];
};

#define ENTRIES(m) ((uint8_t *)((m) + 1) + NLG_FWD_HEAD_MAX)

struct nlg_fwdq {
	struct nlg_fwdq_conf c;
	char prefix[128];
	size_t plen;

	struct msg *b; /* the open batch, not yet in the list */
	size_t bcap;   /* bytes allocated for b */
	size_t blen;   /* bytes of entries in b */
	char btag[NLG_FWD_TAG_MAX];
	size_t btaglen;
	uint64_t bopened_ms;

	struct msg *head, *tail, *wr; /* wr: the next to write, NULL when all are */
	size_t wr_off;		      /* bytes of wr written */
	uint64_t bytes, ents, recs;   /* held, the open batch included */
	uint64_t missed;
	uint8_t idbase[16];
	uint64_t idseq;
	struct msg *spare;
	int nspare;
	struct nlg_fwdq_stats st;
};

struct nlg_fwdq *nlg_fwdq_create(const struct nlg_fwdq_conf *conf)
{
	const char *p = conf->tag_prefix ? conf->tag_prefix : "";
	struct nlg_fwdq *q;

	if (!conf->max_bytes || !conf->size || strlen(p) >= sizeof(q->prefix))
		return NULL;
	if (!(q = calloc(1, sizeof(*q))))
		return NULL;
	q->c = *conf;
	q->plen = strlen(p);
	memcpy(q->prefix, p, q->plen);
	q->c.tag_prefix = q->prefix;
	nlg_fwd_random(q->idbase, sizeof(q->idbase));
	return q;
}

static void free_list(struct msg *m)
{
	while (m) {
		struct msg *n = m->next;
		free(m);
		m = n;
	}
}

void nlg_fwdq_destroy(struct nlg_fwdq *q)
{
	if (!q)
		return;
	free_list(q->head);
	free_list(q->spare);
	free(q->b);
	free(q);
}

static void release(struct nlg_fwdq *q, struct msg *m)
{
	q->bytes -= m->len;
	q->ents -= m->nent;
	q->recs -= m->nrec;
	if (q->nspare < SPARES) {
		m->next = q->spare;
		q->spare = m;
		q->nspare++;
	} else {
		free(m);
	}
}

static int fits(const struct nlg_fwdq *q, uint64_t bytes, uint64_t ents)
{
	return q->bytes + bytes <= q->c.max_bytes &&
	       (!q->c.max_records || q->ents + ents <= q->c.max_records);
}

/* ---- the open batch ---- */

int nlg_fwdq_close(struct nlg_fwdq *q)
{
	struct msg *m = q->b;
	uint8_t head[NLG_FWD_HEAD_MAX], *ents;
	size_t opt;
	int hl;

	if (!m)
		return 0;
	ents = ENTRIES(m);
	hl = nlg_fwd_msg_head(head, q->btag, q->btaglen, q->blen); /* the tag was checked */
	m->data = ents - hl;
	memcpy(m->data, head, (size_t)hl);
	if (q->c.ack) {
		/* 8 random bytes per queue, then a counter: unique without a
		 * system call per message. */
		uint8_t raw[16];
		uint64_t seq = ++q->idseq;

		memcpy(raw, q->idbase, sizeof(raw));
		for (int i = 0; i < 8; i++)
			raw[8 + i] ^= (uint8_t)(seq >> (8 * i));
		nlg_fwd_chunk_id(m->id, raw);
	}
	opt = nlg_fwd_msg_option(ents + q->blen, m->nent, q->c.ack ? m->id : NULL);
	m->len = (size_t)hl + q->blen + opt;
	m->cap = q->bcap;
	q->bytes = q->bytes - BATCH_OVH + (uint64_t)hl + opt;
	/* A batch closed early (the flush timer) gives back the room it grew. */
	if (m->cap > BATCH_MIN_CAP && m->cap / 2 > sizeof(*m) + NLG_FWD_HEAD_MAX + m->len) {
		size_t at = (size_t)(m->data - (uint8_t *)m);
		struct msg *s = realloc(m, at + m->len);
		if (s) {
			m = s;
			m->data = (uint8_t *)m + at;
			m->cap = at + m->len;
		}
	}
	m->next = NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	if (!q->wr) {
		q->wr = m;
		q->wr_off = 0;
	}
	q->st.chunks++;
	q->b = NULL;
	q->bcap = q->blen = 0;
	return 1;
}

uint64_t nlg_fwdq_opened(const struct nlg_fwdq *q)
{
	return q->b ? q->bopened_ms : 0;
}

/* Append one entry [time, body] under tag; the caller checked the bound.
 * Closes the open batch first when the tag differs or chunk would be
 * passed, and after, at size entries. NLG_FWDQ_TAKEN, | NLG_FWDQ_CLOSED, or
 * -ENOMEM (nothing taken). */
static int add_entry(struct nlg_fwdq *q, const char *tag, size_t tl, uint64_t time_ns,
		     const uint8_t *body, size_t blen, int is_rec)
{
	size_t elen = NLG_FWD_ENTRY_HEAD + blen, need;
	int rc = NLG_FWDQ_TAKEN;

	if (q->b && (tl != q->btaglen || memcmp(tag, q->btag, tl) || q->blen + elen > q->c.chunk))
		rc |= nlg_fwdq_close(q) ? NLG_FWDQ_CLOSED : 0;
	if (!q->b) {
		struct msg *m = q->spare;
		size_t cap = m ? m->cap : BATCH_MIN_CAP;

		if (m) {
			q->spare = m->next;
			q->nspare--;
		} else if (!(m = malloc(cap))) {
			return -ENOMEM;
		}
		memset(m, 0, sizeof(*m));
		q->b = m;
		q->bcap = cap;
		memcpy(q->btag, tag, tl);
		q->btaglen = tl;
		q->blen = 0;
		q->bopened_ms = nlg_now_ms();
		q->bytes += BATCH_OVH;
	}
	need = sizeof(struct msg) + NLG_FWD_HEAD_MAX + q->blen + elen + NLG_FWD_OPT_MAX;
	if (need > q->bcap) {
		size_t cap = q->bcap;
		struct msg *m;

		while (cap < need)
			cap *= 2;
		if (!(m = realloc(q->b, cap))) {
			if (!q->b->nent) { /* never leave an empty message behind */
				free(q->b);
				q->b = NULL;
				q->bcap = 0;
				q->bytes -= BATCH_OVH;
			}
			return -ENOMEM;
		}
		q->b = m;
		q->bcap = cap;
	}
	nlg_fwd_entry_head(ENTRIES(q->b) + q->blen, time_ns);
	memcpy(ENTRIES(q->b) + q->blen + NLG_FWD_ENTRY_HEAD, body, blen);
	q->blen += elen;
	q->b->nent++;
	q->b->nrec += is_rec != 0;
	q->bytes += elen;
	q->ents++;
	q->recs += is_rec != 0;
	if (q->b->nent >= q->c.size || q->blen >= q->c.chunk)
		rc |= nlg_fwdq_close(q) ? NLG_FWDQ_CLOSED : 0;
	return rc;
}

/* tag_prefix "." tag into out[NLG_FWD_TAG_MAX]: its length. */
static size_t make_tag(const struct nlg_fwdq *q, const char *tag, size_t taglen, char *out)
{
	if (!q->plen) {
		memcpy(out, tag, taglen);
		return taglen;
	}
	memcpy(out, q->prefix, q->plen);
	out[q->plen] = '.';
	memcpy(out + q->plen + 1, tag, taglen);
	return q->plen + 1 + taglen;
}

static size_t gap_body(uint8_t *b, uint64_t missed)
{
	b[0] = 0x81;
	b[1] = 0xa6;
	memcpy(b + 2, "missed", 6);
	b[8] = 0xcf;
	for (int i = 0; i < 8; i++)
		b[9 + i] = (uint8_t)(missed >> (56 - 8 * i));
	return GAP_BODY_MAX;
}

/* The bytes a gap record costs, its own message included. */
static uint64_t gap_cost(const struct nlg_fwdq *q)
{
	return NLG_FWD_ENTRY_HEAD + GAP_BODY_MAX + BATCH_OVH + q->plen + 1;
}

static int announce(struct nlg_fwdq *q)
{
	uint8_t body[GAP_BODY_MAX];
	char tag[NLG_FWD_TAG_MAX];
	size_t tl = make_tag(q, GAP_TAG, sizeof(GAP_TAG) - 1, tag);
	int rc = add_entry(q, tag, tl, nlg_realtime_ns(), body, gap_body(body, q->missed), 0);

	if (rc < 0)
		return rc;
	q->missed = 0;
	q->st.gaps++;
	return rc;
}

int nlg_fwdq_announce(struct nlg_fwdq *q)
{
	int rc;

	if (!q->missed || !fits(q, gap_cost(q), 1))
		return 0;
	return (rc = announce(q)) < 0 ? 0 : rc;
}

int nlg_fwdq_push(struct nlg_fwdq *q, const char *tag, size_t taglen, uint64_t time_ns,
		  const uint8_t *body, size_t len)
{
	char t[NLG_FWD_TAG_MAX];
	size_t tl;
	int rc = 0, g;

	if (taglen > 255 || !len)
		return -EINVAL;
	/* Room for the record, and for the gap record before it: both go in,
	 * or the record is missed too. Either may open a message of its own
	 * (counted whole: a record that would join the open batch may be
	 * dropped with a few hundred bytes to spare). */
	if (len > q->c.max_bytes ||
	    !fits(q, NLG_FWD_ENTRY_HEAD + len + BATCH_OVH + (q->missed ? gap_cost(q) : 0),
		  1 + (q->missed != 0)))
		goto drop;
	if (q->missed && (g = announce(q)) > 0)
		rc |= g;
	tl = make_tag(q, tag, taglen, t);
	if ((g = add_entry(q, t, tl, time_ns, body, len, 1)) < 0)
		goto drop;
	q->st.queued++;
	return rc | g;
drop:
	q->missed++;
	q->st.dropped++;
	return rc & NLG_FWDQ_CLOSED; /* dropped; a gap may have closed a message */
}

/* ---- writing, acks, rewinding ---- */

int nlg_fwdq_iov(const struct nlg_fwdq *q, struct iovec *iov, int n)
{
	size_t off = q->wr_off;
	int i = 0;

	for (struct msg *m = q->wr; m && i < n; m = m->next, off = 0)
		iov[i++] = (struct iovec){m->data + off, m->len - off};
	return i;
}

void nlg_fwdq_consume(struct nlg_fwdq *q, size_t w)
{
	while (w && q->wr) {
		struct msg *m = q->wr;
		size_t left = m->len - q->wr_off;

		if (w < left) {
			q->wr_off += w;
			return;
		}
		w -= left;
		q->wr = m->next;
		q->wr_off = 0;
		if (m->written) {
			q->st.resent += m->nrec;
		} else {
			m->written = 1;
			q->st.sent += m->nrec;
		}
		m->sent_ms = nlg_now_ms();
		/* Without acks, written is as delivered as we will ever know.
		 * Nothing before wr is kept then, so m is the head. */
		if (!q->c.ack) {
			q->head = m->next;
			if (!q->head)
				q->tail = NULL;
			release(q, m);
		}
	}
}

int nlg_fwdq_ack(struct nlg_fwdq *q, const char *id, size_t len)
{
	struct msg *prev = NULL;

	if (len != NLG_FWD_ID_LEN)
		return 0;
	/* Acks come in order, so this finds the head; a server that answers
	 * out of order is served too. */
	for (struct msg *m = q->head; m && m != q->wr; prev = m, m = m->next) {
		if (memcmp(m->id, id, len))
			continue;
		if (prev)
			prev->next = m->next;
		else
			q->head = m->next;
		if (q->tail == m)
			q->tail = prev;
		q->st.acked += m->nrec;
		q->st.chunks_acked++;
		release(q, m);
		return 1;
	}
	return 0;
}

void nlg_fwdq_rewind(struct nlg_fwdq *q)
{
	q->wr = q->head;
	q->wr_off = 0;
}

/* ---- what is held ---- */

uint64_t nlg_fwdq_oldest(const struct nlg_fwdq *q)
{
	return q->c.ack && q->head && q->head != q->wr ? q->head->sent_ms : 0;
}

int nlg_fwdq_unwritten(const struct nlg_fwdq *q)
{
	return q->wr != NULL;
}

uint64_t nlg_fwdq_unacked(const struct nlg_fwdq *q)
{
	uint64_t n = 0;

	for (const struct msg *m = q->head; m && m != q->wr; m = m->next)
		n++;
	return n;
}

uint64_t nlg_fwdq_bytes(const struct nlg_fwdq *q)
{
	return q->bytes;
}

uint64_t nlg_fwdq_entries(const struct nlg_fwdq *q)
{
	return q->ents;
}

uint64_t nlg_fwdq_missed(const struct nlg_fwdq *q)
{
	return q->missed;
}

void nlg_fwdq_held(const struct nlg_fwdq *q, uint64_t *unacked, uint64_t *unsent)
{
	*unacked = *unsent = 0;
	for (const struct msg *m = q->head; m; m = m->next)
		*(m->written ? unacked : unsent) += m->nrec;
	if (q->b)
		*unsent += q->b->nrec;
}

const struct nlg_fwdq_stats *nlg_fwdq_stats(const struct nlg_fwdq *q)
{
	return &q->st;
}
