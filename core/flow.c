/* The per-worker flow table: decoded pkts folded into bidirectional flows,
 * ended by the idle and active timeouts, TCP FIN/RST, eviction and shutdown.
 * One thread owns a table, and nothing is allocated after create. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "nlgate/packet.h"

/* The table: a chained hash over preallocated entries, and two lists in
 * touch order (least recently seen at the head), so that expiry walks only
 * what is due and eviction takes the head:
 *
 *   bucket[h & mask] ─▶ ent ─hnext─▶ ent ─▶ NIL
 *   open:    head ⇄ ent ⇄ ent ⇄ … ⇄ tail   due at last_ns + idle
 *   closing: head ⇄ ent ⇄ … ⇄ tail         due at last_ns + linger (FIN both ways, RST)
 *
 * Each entry is on exactly one list; a free one is on the free stack.
 *
 * The bucket array has room for pow2(max) heads, but only as many are used
 * as flows are alive (at least MIN_BUCKETS): it doubles when the live flows
 * outnumber the buckets and halves at expiry when they are under an eighth,
 * splitting or joining chains in place. A lookup's bucket is then in a small,
 * warm array: 1,000 flows in 65,536 buckets touched a thousand cache lines
 * that had gone cold between two ring blocks. */
#define NIL UINT32_MAX
/* 2^30 entries of ~200 bytes is already 200 GiB: past it is a mistake. */
#define MAX_FLOWS (1u << 30)
#define MIN_BUCKETS 64u

enum { L_FREE = 0, L_OPEN, L_CLOSING };

/* Both endpoints in a canonical order (a <= b by address, then port), so
 * the two directions of a flow find the same key. 48 bytes, no padding left
 * uninitialised: compared and hashed as six words. */
struct fkey {
	uint8_t a[16], b[16];
	uint16_t pa, pb;
	uint16_t vlan;
	uint8_t family, proto;
	uint8_t kind; /* NLG_FLOW_HAS_PORTS | NLG_FLOW_HAS_VLAN */
	uint8_t pad[7];
};
_Static_assert(sizeof(struct fkey) == 48, "fkey is hashed as six words");

struct fent {
	struct fkey k;
	uint64_t hash;	     /* of k: its low bits pick the bucket; compared before k */
	uint32_t hnext;	     /* bucket chain */
	uint32_t prev, next; /* list (next: the free stack too) */
	uint32_t gen;	     /* bumped when the flow ends: fragment slots check it */
	uint8_t list;	     /* L_FREE, L_OPEN, L_CLOSING */
	uint8_t first_b;     /* the first sender is the key's b side */
	uint8_t fin;	     /* FIN seen: bit 0 from src, bit 1 from dst */
	uint8_t reason;	     /* closing: NLG_FLOW_FIN or NLG_FLOW_RST */
	uint64_t seq;	     /* touch order: each list is sorted by it */
	struct nlg_flow rec; /* the record being built */
};

/* A first fragment's datagram → its flow, so that later fragments (no
 * ports) count there. Direct-mapped: a collision replaces the older slot,
 * whose remaining fragments then count as orphans. */
struct fslot {
	uint8_t src[16], dst[16];
	uint32_t id;
	uint8_t family, proto, used, pad;
	uint32_t flow, gen;
	uint64_t time_ns;
};

struct flist {
	uint32_t head, tail;
};

struct nlg_flow_table {
	struct nlg_flow_conf c;
	uint64_t close_ns; /* linger of a closed TCP flow: min(NLG_FLOW_LINGER_NS, idle) */
	uint64_t seed;
	uint64_t seq;
	/* bucket has room for nbmax heads; the first bmask + 1 are in use */
	uint32_t *bucket, bmask, nbmax;
	struct fent *ent;
	uint32_t nused; /* entries handed out at least once: the rest are untouched */
	uint32_t free;	/* stack of ended entries, through next */
	struct flist open, closing;
	struct fslot *frag;
	uint32_t fmask;
	struct nlg_flow_stats st;
};

/* ---- hashing ---------------------------------------------------------------- */

/* Multiply-xorshift rounds over 64-bit words, seeded per table so that
 * crafted traffic cannot aim at one bucket without knowing the seed. */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static inline uint64_t fin64(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	return h ^ (h >> 32);
}

static uint64_t words_hash(uint64_t seed, const void *p, size_t nwords)
{
	uint64_t h = seed, w;

	for (size_t i = 0; i < nwords; i++) {
		memcpy(&w, (const char *)p + 8 * i, 8);
		h = mix(h, w);
	}
	return fin64(h);
}

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t v = 1;

	while (v < n)
		v <<= 1;
	return v;
}

static inline int due(uint64_t last, uint64_t after, uint64_t now)
{
	return now >= last && now - last >= after;
}

/* ---- lists ------------------------------------------------------------------ */

static void list_del(struct nlg_flow_table *t, struct flist *l, uint32_t i)
{
	struct fent *e = &t->ent[i];

	if (e->prev != NIL)
		t->ent[e->prev].next = e->next;
	else
		l->head = e->next;
	if (e->next != NIL)
		t->ent[e->next].prev = e->prev;
	else
		l->tail = e->prev;
}

static void list_add_tail(struct nlg_flow_table *t, struct flist *l, uint32_t i)
{
	struct fent *e = &t->ent[i];

	e->next = NIL;
	e->prev = l->tail;
	if (l->tail != NIL)
		t->ent[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
}

static inline struct flist *list_of(struct nlg_flow_table *t, const struct fent *e)
{
	return e->list == L_CLOSING ? &t->closing : &t->open;
}

/* Seen now: to the tail of its list. */
static void touch(struct nlg_flow_table *t, uint32_t i)
{
	struct fent *e = &t->ent[i];
	struct flist *l = list_of(t, e);

	e->seq = ++t->seq;
	if (l->tail == i)
		return;
	list_del(t, l, i);
	list_add_tail(t, l, i);
}

/* ---- flows ------------------------------------------------------------------ */

/* 1 if the packet's source is the key's b side. */
static int key_make(struct fkey *k, const struct nlg_pkt *p, int ports)
{
	size_t alen = p->family == AF_INET ? 4 : 16;
	uint16_t sp = ports ? p->sport : 0, dp = ports ? p->dport : 0;
	int c, swap;

	memset(k, 0, sizeof(*k));
	k->family = p->family;
	k->proto = p->proto;
	if (ports)
		k->kind |= NLG_FLOW_HAS_PORTS;
	if (p->present & NLG_PKT_HAS_VLAN) {
		k->kind |= NLG_FLOW_HAS_VLAN;
		k->vlan = p->vlan;
	}
	c = memcmp(p->src.bytes, p->dst.bytes, alen);
	swap = c > 0 || (c == 0 && sp > dp);
	memcpy(k->a, swap ? p->dst.bytes : p->src.bytes, alen);
	memcpy(k->b, swap ? p->src.bytes : p->dst.bytes, alen);
	k->pa = swap ? dp : sp;
	k->pb = swap ? sp : dp;
	return swap;
}

static uint32_t lookup(const struct nlg_flow_table *t, const struct fkey *k, uint64_t h)
{
	for (uint32_t i = t->bucket[h & t->bmask]; i != NIL; i = t->ent[i].hnext) {
		const struct fent *e = &t->ent[i];
		if (e->hash == h && !memcmp(&e->k, k, sizeof(*k)))
			return i;
	}
	return NIL;
}

/* A fresh record for the entry's key and direction, begun by p. */
static void rec_begin(struct nlg_flow_table *t, struct fent *e, const struct nlg_pkt *p)
{
	struct nlg_flow *f = &e->rec;
	const struct fkey *k = &e->k;
	size_t alen = k->family == AF_INET ? 4 : 16;

	memset(f, 0, sizeof(*f));
	f->present = k->kind;
	f->family = k->family;
	f->proto = k->proto;
	f->vlan = k->vlan;
	f->src.family = f->dst.family = k->family;
	memcpy(f->src.bytes, e->first_b ? k->b : k->a, alen);
	memcpy(f->dst.bytes, e->first_b ? k->a : k->b, alen);
	if (k->kind & NLG_FLOW_HAS_PORTS) {
		f->sport = e->first_b ? k->pb : k->pa;
		f->dport = e->first_b ? k->pa : k->pb;
	}
	f->first_ns = f->last_ns = p->time_ns;
	f->ifindex = p->ifindex;
	f->worker = t->c.worker;
	t->st.created++;
}

static void emit_rec(struct nlg_flow_table *t, struct fent *e, uint8_t reason,
		     nlg_flow_emit_fn *emit, void *data)
{
	e->rec.end_reason = reason;
	t->st.emitted++;
	if (emit)
		emit(data, &e->rec);
}

/* Emit the flow and give its entry back. */
static void flow_end(struct nlg_flow_table *t, uint32_t i, uint8_t reason, nlg_flow_emit_fn *emit,
		     void *data)
{
	struct fent *e = &t->ent[i];
	uint32_t *pp;

	emit_rec(t, e, reason, emit, data);
	pp = &t->bucket[e->hash & t->bmask];
	while (*pp != i)
		pp = &t->ent[*pp].hnext;
	*pp = e->hnext;
	list_del(t, list_of(t, e), i);
	e->list = L_FREE;
	e->gen++;
	e->next = t->free;
	t->free = i;
	t->st.live--;
}

/* The least recently seen of both lists, or NIL. */
static uint32_t oldest(const struct nlg_flow_table *t)
{
	uint32_t a = t->open.head, b = t->closing.head;

	if (a == NIL)
		return b;
	if (b == NIL)
		return a;
	return t->ent[a].seq < t->ent[b].seq ? a : b;
}

/* Make room for one flow at packet time now. A victim already due ends as
 * it would have at the next expire; only a live one is evicted. */
static void evict_one(struct nlg_flow_table *t, uint64_t now, nlg_flow_emit_fn *emit, void *data)
{
	uint32_t i = oldest(t);
	struct fent *e = &t->ent[i];

	if (e->list == L_CLOSING && due(e->rec.last_ns, t->close_ns, now)) {
		flow_end(t, i, e->reason, emit, data);
	} else if (e->list == L_OPEN && due(e->rec.last_ns, t->c.idle_ns, now)) {
		flow_end(t, i, NLG_FLOW_IDLE, emit, data);
	} else {
		t->st.evicted++;
		flow_end(t, i, NLG_FLOW_EVICTED, emit, data);
	}
}

/* Double the buckets in use: chain j splits into j and j + n by the hash's
 * next bit. */
static void buckets_grow(struct nlg_flow_table *t)
{
	uint32_t n = t->bmask + 1;

	for (uint32_t j = 0; j < n; j++) {
		uint32_t i = t->bucket[j], *lo = &t->bucket[j], *hi = &t->bucket[j + n];
		while (i != NIL) {
			struct fent *e = &t->ent[i];
			uint32_t **to = e->hash & n ? &hi : &lo;
			**to = i;
			*to = &e->hnext;
			i = e->hnext;
		}
		*lo = NIL;
		*hi = NIL;
	}
	t->bmask = 2 * n - 1;
}

/* Halve them: chain j + n joins chain j. */
static void buckets_shrink(struct nlg_flow_table *t)
{
	uint32_t n = (t->bmask + 1) / 2;

	for (uint32_t j = 0; j < n; j++) {
		uint32_t *pp = &t->bucket[j];
		while (*pp != NIL)
			pp = &t->ent[*pp].hnext;
		*pp = t->bucket[j + n];
	}
	t->bmask = n - 1;
}

static uint32_t flow_new(struct nlg_flow_table *t, const struct fkey *k, uint64_t h, int swap,
			 const struct nlg_pkt *p, nlg_flow_emit_fn *emit, void *data)
{
	uint32_t i, *b;
	struct fent *e;

	if (t->free == NIL && t->nused == t->c.max)
		evict_one(t, p->time_ns, emit, data);
	if (t->free != NIL) {
		i = t->free;
		t->free = t->ent[i].next;
	} else {
		i = t->nused++;
	}
	e = &t->ent[i];
	e->k = *k;
	e->hash = h;
	b = &t->bucket[h & t->bmask];
	e->hnext = *b;
	*b = i;
	e->first_b = (uint8_t)swap;
	e->fin = 0;
	e->reason = 0;
	e->list = L_OPEN;
	e->seq = ++t->seq;
	list_add_tail(t, &t->open, i);
	rec_begin(t, e, p);
	if (++t->st.live > t->bmask + 1 && t->bmask + 1 < t->nbmax)
		buckets_grow(t);
	return i;
}

/* Count p in flow i; fwd: p came from the flow's src. */
static void count(struct nlg_flow_table *t, uint32_t i, const struct nlg_pkt *p, int fwd)
{
	struct fent *e = &t->ent[i];
	struct nlg_flow *f = &e->rec;

	f->packets++;
	f->bytes += p->wire_len;
	if (fwd) {
		f->fwd_packets++;
		f->fwd_bytes += p->wire_len;
	} else {
		f->rev_packets++;
		f->rev_bytes += p->wire_len;
	}
	/* a clock that stepped back makes no negative duration */
	if (p->time_ns > f->last_ns)
		f->last_ns = p->time_ns;
	if (p->present & NLG_PKT_HAS_TCP) {
		uint8_t fl = p->tcp_flags;
		f->tcp_flags |= fl;
		if (fwd)
			f->fwd_tcp_flags |= fl;
		else
			f->rev_tcp_flags |= fl;
		if (fl & NLG_TCP_FIN)
			e->fin |= fwd ? 1 : 2;
		if (e->list == L_OPEN && ((fl & NLG_TCP_RST) || e->fin == 3)) {
			/* closed: it lingers on the closing list for the last ACK */
			e->reason = (fl & NLG_TCP_RST) ? NLG_FLOW_RST : NLG_FLOW_FIN;
			list_del(t, &t->open, i);
			e->list = L_CLOSING;
			list_add_tail(t, &t->closing, i);
		}
	}
	touch(t, i);
}

/* ---- fragments -------------------------------------------------------------- */

static struct fslot *frag_slot(const struct nlg_flow_table *t, const struct nlg_pkt *p)
{
	uint64_t w[5];

	memcpy(w, p->src.bytes, 16);
	memcpy(w + 2, p->dst.bytes, 16);
	w[4] = (uint64_t)p->frag_id | (uint64_t)p->proto << 32 | (uint64_t)p->family << 40;
	return &t->frag[words_hash(t->seed, w, 5) & t->fmask];
}

static int frag_same(const struct fslot *s, const struct nlg_pkt *p)
{
	return s->used && s->id == p->frag_id && s->family == p->family && s->proto == p->proto &&
	       !memcmp(s->src, p->src.bytes, 16) && !memcmp(s->dst, p->dst.bytes, 16);
}

static void frag_note(struct nlg_flow_table *t, const struct nlg_pkt *p, uint32_t i)
{
	struct fslot *s = frag_slot(t, p);

	memcpy(s->src, p->src.bytes, 16);
	memcpy(s->dst, p->dst.bytes, 16);
	s->id = p->frag_id;
	s->family = p->family;
	s->proto = p->proto;
	s->used = 1;
	s->flow = i;
	s->gen = t->ent[i].gen;
	s->time_ns = p->time_ns;
}

/* The flow of p's datagram, if its first fragment was seen and the flow and
 * the slot are still live; else NIL. */
static uint32_t frag_find(struct nlg_flow_table *t, const struct nlg_pkt *p)
{
	struct fslot *s = frag_slot(t, p);
	const struct fent *e;

	if (!frag_same(s, p))
		return NIL;
	e = &t->ent[s->flow];
	if (e->list == L_FREE || e->gen != s->gen || due(s->time_ns, t->c.idle_ns, p->time_ns)) {
		s->used = 0;
		return NIL;
	}
	return s->flow;
}

/* ---- the API ---------------------------------------------------------------- */

struct nlg_flow_table *nlg_flow_create(const struct nlg_flow_conf *c)
{
	struct nlg_flow_table *t;
	uint32_t nb, nf;

	if (!c || !c->max || !c->idle_ns || c->max > MAX_FLOWS) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->c = *c;
	t->close_ns = c->idle_ns < NLG_FLOW_LINGER_NS ? c->idle_ns : NLG_FLOW_LINGER_NS;
	/* malloc: the heads past those in use are written when first used */
	t->nbmax = pow2_at_least(c->max);
	nb = t->nbmax < MIN_BUCKETS ? t->nbmax : MIN_BUCKETS;
	t->bmask = nb - 1;
	t->bucket = malloc((size_t)t->nbmax * sizeof(*t->bucket));
	/* calloc: the pages of entries never used are never touched */
	t->ent = calloc(c->max, sizeof(*t->ent));
	nf = pow2_at_least(c->max < 64 ? 64 : c->max > 4096 ? 4096 : c->max);
	t->fmask = nf - 1;
	t->frag = calloc(nf, sizeof(*t->frag));
	if (!t->bucket || !t->ent || !t->frag)
		goto nomem;
	memset(t->bucket, 0xff, (size_t)nb * sizeof(*t->bucket)); /* NIL */
	t->free = NIL;
	t->open.head = t->open.tail = NIL;
	t->closing.head = t->closing.tail = NIL;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed))
		t->seed = fin64(nlg_realtime_ns() ^ (uint64_t)(uintptr_t)t);
	return t;
nomem:
	nlg_flow_destroy(t);
	errno = ENOMEM;
	return NULL;
}

void nlg_flow_destroy(struct nlg_flow_table *t)
{
	if (!t)
		return;
	free(t->bucket);
	free(t->ent);
	free(t->frag);
	free(t);
}

void nlg_flow_add(struct nlg_flow_table *t, const struct nlg_pkt *p, nlg_flow_emit_fn *emit,
		  void *data)
{
	int ports = (p->present & NLG_PKT_HAS_PORTS) != 0, swap;
	struct fkey k;
	uint64_t h;
	uint32_t i;

	if (!(p->present & NLG_PKT_HAS_IP)) {
		t->st.nonip++;
		return;
	}
	if ((p->present & NLG_PKT_HAS_FRAG) && p->frag_offset) {
		i = frag_find(t, p);
		if (i != NIL) {
			size_t alen = p->family == AF_INET ? 4 : 16;
			t->st.frag_matched++;
			count(t, i, p, !memcmp(p->src.bytes, t->ent[i].rec.src.bytes, alen));
			return;
		}
		/* its first fragment was not seen: a flow of the two addresses */
		t->st.frag_orphans++;
		ports = 0;
	}
	swap = key_make(&k, p, ports);
	h = words_hash(t->seed, &k, sizeof(k) / 8);
	i = lookup(t, &k, h);
	if (i != NIL) {
		struct fent *e = &t->ent[i];
		if (e->list == L_CLOSING) {
			/* a new SYN on a closed connection's key: the port is reused */
			if ((p->present & NLG_PKT_HAS_TCP) &&
			    (p->tcp_flags & (NLG_TCP_SYN | NLG_TCP_ACK)) == NLG_TCP_SYN) {
				flow_end(t, i, e->reason, emit, data);
				i = NIL;
			}
		} else if (t->c.active_ns && e->rec.last_ns - e->rec.first_ns >= t->c.active_ns) {
			/* long-lived: report what it did so far and go on counting
			 * (a closing flow is not split: it ends within the linger) */
			emit_rec(t, e, NLG_FLOW_ACTIVE, emit, data);
			rec_begin(t, e, p);
		}
	}
	if (i == NIL)
		i = flow_new(t, &k, h, swap, p, emit, data);
	count(t, i, p, swap == t->ent[i].first_b);
	if ((p->present & NLG_PKT_HAS_FRAG) && !p->frag_offset && p->frag_more && ports)
		frag_note(t, p, i);
}

void nlg_flow_expire(struct nlg_flow_table *t, uint64_t now_ns, nlg_flow_emit_fn *emit, void *data)
{
	for (;;) {
		uint32_t a = t->open.head, b = t->closing.head, i;
		int da = a != NIL && due(t->ent[a].rec.last_ns, t->c.idle_ns, now_ns);
		int db = b != NIL && due(t->ent[b].rec.last_ns, t->close_ns, now_ns);

		if (da && db)
			i = t->ent[a].seq < t->ent[b].seq ? a : b;
		else if (da)
			i = a;
		else if (db)
			i = b;
		else
			break;
		flow_end(t, i, i == a ? NLG_FLOW_IDLE : t->ent[i].reason, emit, data);
	}
	while (t->bmask + 1 > MIN_BUCKETS && t->st.live < (t->bmask + 1) / 8)
		buckets_shrink(t);
}

void nlg_flow_flush(struct nlg_flow_table *t, nlg_flow_emit_fn *emit, void *data)
{
	uint32_t i;

	while ((i = oldest(t)) != NIL) {
		const struct fent *e = &t->ent[i];
		flow_end(t, i, e->list == L_CLOSING ? e->reason : NLG_FLOW_SHUTDOWN, emit, data);
	}
}

const struct nlg_flow_stats *nlg_flow_stats(const struct nlg_flow_table *t)
{
	return &t->st;
}
