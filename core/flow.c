/* The per-worker flow table: decoded pkts folded into bidirectional flows,
 * ended by the idle and active timeouts, TCP FIN/RST, eviction and shutdown.
 * One thread owns a table, and nothing is allocated after create. */
#include <endian.h>
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
 * Each entry is on exactly one list; a free one is on the free stack. The
 * list links live apart from the entries (link[i]), eight to a cache line:
 * moving a flow to the tail writes its neighbours' links, not their entries.
 *
 * An entry is two cache lines: what a lookup compares (key, hash, chain,
 * state) and what a packet counts (per direction; the record's totals are
 * their sums, made at emit). A packet reads its bucket and its entry's two
 * lines; nlg_flow_add_batch() fetches those of a batch together.
 *
 * The bucket array has room for 2 pow2(max) heads, but only about twice as
 * many are used as flows are alive (at least MIN_BUCKETS): it doubles when
 * the live flows are more than half the buckets and halves at expiry when
 * they are under a sixteenth, splitting or joining chains in place. A
 * lookup's bucket is then in a small, warm array (1,000 flows in 65,536
 * buckets touched a thousand cache lines that had gone cold between two ring
 * blocks), and most often its flow is the chain's first. */
#define NIL UINT32_MAX
/* 2^30 entries of 136 bytes is already 136 GiB: past it is a mistake. */
#define MAX_FLOWS (1u << 30)
#define MIN_BUCKETS 64u

enum { L_FREE = 0, L_OPEN, L_CLOSING };

/* Both endpoints in a canonical order (a <= b by address, then port), so
 * the two directions of a flow find the same key. 48 bytes, no padding left
 * uninitialised: compared whole; hashed as it is made (key_make). */
struct fkey {
	uint8_t a[16], b[16];
	uint16_t pa, pb;
	uint16_t vlan;
	uint8_t family, proto;
	uint8_t kind; /* NLG_FLOW_HAS_PORTS | NLG_FLOW_HAS_VLAN */
	uint8_t pad[7];
};
_Static_assert(sizeof(struct fkey) == 48, "fkey is six words");

struct fent {
	/* what a lookup reads */
	struct fkey k;
	uint32_t hash;		      /* k's hash (low half): picks the bucket; compared before k */
	uint32_t hnext;		      /* bucket chain */
	uint8_t list;		      /* L_FREE, L_OPEN, L_CLOSING */
	uint8_t first_b;	      /* the first sender is the key's b side */
	uint8_t fin;		      /* FIN seen: bit 0 from src, bit 1 from dst */
	uint8_t reason;		      /* closing: NLG_FLOW_FIN or NLG_FLOW_RST */
	uint8_t fwd_flags, rev_flags; /* TCP flags sent by src, by dst */
	uint8_t pad[2];
	/* what a packet counts: the record's since it began (fwd: from src) */
	uint64_t fwd_packets, fwd_bytes, rev_packets, rev_bytes;
	uint64_t first_ns, last_ns;
	uint64_t seq;	  /* touch order: each list is sorted by it */
	uint32_t ifindex; /* of the record's first packet */
	uint32_t gen;	  /* bumped when the flow ends: fragment slots check it */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct fent) == 128, "an entry is two cache lines");

struct flink {
	uint32_t prev, next; /* list (next: the free stack too) */
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
	struct flink *link;
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
	struct flink *e = &t->link[i];

	if (e->prev != NIL)
		t->link[e->prev].next = e->next;
	else
		l->head = e->next;
	if (e->next != NIL)
		t->link[e->next].prev = e->prev;
	else
		l->tail = e->prev;
}

static void list_add_tail(struct nlg_flow_table *t, struct flist *l, uint32_t i)
{
	struct flink *e = &t->link[i];

	e->next = NIL;
	e->prev = l->tail;
	if (l->tail != NIL)
		t->link[l->tail].next = i;
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

/* memcmp(x, y, 4 or 16) < 0, = 0, > 0 as -1, 0, 1: addresses compared as
 * big-endian words, without a call per packet. */
static inline int addr_cmp(const uint8_t *x, const uint8_t *y, int v4)
{
	uint64_t a, b;

	if (v4) {
		uint32_t a4, b4;
		memcpy(&a4, x, 4);
		memcpy(&b4, y, 4);
		a4 = be32toh(a4);
		b4 = be32toh(b4);
		return (a4 > b4) - (a4 < b4);
	}
	memcpy(&a, x, 8);
	memcpy(&b, y, 8);
	if (a == b) {
		memcpy(&a, x + 8, 8);
		memcpy(&b, y + 8, 8);
	}
	a = be64toh(a);
	b = be64toh(b);
	return (a > b) - (a < b);
}

/* p's key and its hash (*h); 1 if the packet's source is the key's b side.
 * The words are hashed as they are made, not read back from the key (a
 * read of a word just written in parts would wait for the writes); an IPv4
 * key's two addresses are one word. */
static int key_make(const struct nlg_flow_table *t, struct fkey *k, const struct nlg_pkt *p,
		    int ports, uint32_t *h)
{
	uint64_t s0 = 0, s1 = 0, d0 = 0, d1 = 0, x, y, a0, a1, b0, b1, w, hh;
	uint32_t s4 = 0, d4 = 0;
	uint16_t sp = ports ? p->sport : 0, dp = ports ? p->dport : 0, pa, pb, vlan = 0;
	uint8_t kind = ports ? NLG_FLOW_HAS_PORTS : 0;
	int v4 = p->family == AF_INET, swap;

	if (v4) {
		memcpy(&s4, p->src.bytes, 4);
		memcpy(&d4, p->dst.bytes, 4);
		memcpy(&s0, &s4, 4); /* the address's bytes first, as memcpy would */
		memcpy(&d0, &d4, 4);
		x = be32toh(s4);
		y = be32toh(d4);
	} else {
		memcpy(&s0, p->src.bytes, 8);
		memcpy(&s1, p->src.bytes + 8, 8);
		memcpy(&d0, p->dst.bytes, 8);
		memcpy(&d1, p->dst.bytes + 8, 8);
		x = be64toh(s0);
		y = be64toh(d0);
		if (x == y) {
			x = be64toh(s1);
			y = be64toh(d1);
		}
	}
	if (p->present & NLG_PKT_HAS_VLAN) {
		kind |= NLG_FLOW_HAS_VLAN;
		vlan = p->vlan;
	}
	swap = x > y || (x == y && sp > dp);
	a0 = swap ? d0 : s0;
	a1 = swap ? d1 : s1;
	b0 = swap ? s0 : d0;
	b1 = swap ? s1 : d1;
	pa = swap ? dp : sp;
	pb = swap ? sp : dp;
	memcpy(k->a, &a0, 8);
	memcpy(k->a + 8, &a1, 8);
	memcpy(k->b, &b0, 8);
	memcpy(k->b + 8, &b1, 8);
	k->pa = pa;
	k->pb = pb;
	k->vlan = vlan;
	k->family = p->family;
	k->proto = p->proto;
	k->kind = kind;
	memset(k->pad, 0, sizeof(k->pad));
	/* a VLAN id is 12 bits: kind above it */
	w = (uint64_t)pa | (uint64_t)pb << 16 | (uint64_t)(vlan | kind << 12) << 32 |
	    (uint64_t)p->family << 48 | (uint64_t)p->proto << 56;
	if (v4) {
		hh = mix(t->seed, swap ? (uint64_t)d4 | (uint64_t)s4 << 32
				       : (uint64_t)s4 | (uint64_t)d4 << 32);
	} else {
		hh = mix(t->seed, a0);
		hh = mix(hh, a1);
		hh = mix(hh, b0);
		hh = mix(hh, b1);
	}
	*h = (uint32_t)fin64(mix(hh, w));
	return swap;
}

static uint32_t lookup(const struct nlg_flow_table *t, const struct fkey *k, uint32_t h)
{
	for (uint32_t i = t->bucket[h & t->bmask]; i != NIL; i = t->ent[i].hnext) {
		const struct fent *e = &t->ent[i];
		if (e->hash == h && !memcmp(&e->k, k, sizeof(*k)))
			return i;
	}
	return NIL;
}

/* A fresh record for the entry, begun by p. */
static void rec_begin(struct nlg_flow_table *t, struct fent *e, const struct nlg_pkt *p)
{
	e->fwd_packets = e->fwd_bytes = e->rev_packets = e->rev_bytes = 0;
	e->fwd_flags = e->rev_flags = 0;
	e->first_ns = e->last_ns = p->time_ns;
	e->ifindex = p->ifindex;
	t->st.created++;
}

/* The entry's record, src being the side that sent its first packet. */
static void rec_make(const struct nlg_flow_table *t, const struct fent *e, struct nlg_flow *f)
{
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
	f->fwd_packets = e->fwd_packets;
	f->fwd_bytes = e->fwd_bytes;
	f->rev_packets = e->rev_packets;
	f->rev_bytes = e->rev_bytes;
	f->packets = e->fwd_packets + e->rev_packets;
	f->bytes = e->fwd_bytes + e->rev_bytes;
	f->fwd_tcp_flags = e->fwd_flags;
	f->rev_tcp_flags = e->rev_flags;
	f->tcp_flags = e->fwd_flags | e->rev_flags;
	f->first_ns = e->first_ns;
	f->last_ns = e->last_ns;
	f->ifindex = e->ifindex;
	f->worker = t->c.worker;
}

static void emit_rec(struct nlg_flow_table *t, struct fent *e, uint8_t reason,
		     nlg_flow_emit_fn *emit, void *data)
{
	struct nlg_flow f;

	t->st.emitted++;
	if (!emit)
		return;
	rec_make(t, e, &f);
	f.end_reason = reason;
	emit(data, &f);
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
	t->link[i].next = t->free;
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

	if (e->list == L_CLOSING && due(e->last_ns, t->close_ns, now)) {
		flow_end(t, i, e->reason, emit, data);
	} else if (e->list == L_OPEN && due(e->last_ns, t->c.idle_ns, now)) {
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

static uint32_t flow_new(struct nlg_flow_table *t, const struct fkey *k, uint32_t h, int swap,
			 const struct nlg_pkt *p, nlg_flow_emit_fn *emit, void *data)
{
	uint32_t i, *b;
	struct fent *e;

	if (t->free == NIL && t->nused == t->c.max)
		evict_one(t, p->time_ns, emit, data);
	if (t->free != NIL) {
		i = t->free;
		t->free = t->link[i].next;
	} else {
		i = t->nused++;
		t->ent[i].gen = 0;
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
	if (++t->st.live > (t->bmask + 1) / 2 && t->bmask + 1 < t->nbmax)
		buckets_grow(t);
	return i;
}

/* Count p in flow i; fwd: p came from the flow's src. */
static void count(struct nlg_flow_table *t, uint32_t i, const struct nlg_pkt *p, int fwd)
{
	struct fent *e = &t->ent[i];

	if (fwd) {
		e->fwd_packets++;
		e->fwd_bytes += p->wire_len;
	} else {
		e->rev_packets++;
		e->rev_bytes += p->wire_len;
	}
	/* a clock that stepped back makes no negative duration */
	if (p->time_ns > e->last_ns)
		e->last_ns = p->time_ns;
	if (p->present & NLG_PKT_HAS_TCP) {
		uint8_t fl = p->tcp_flags;
		if (fwd)
			e->fwd_flags |= fl;
		else
			e->rev_flags |= fl;
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
	t->nbmax = 2 * pow2_at_least(c->max);
	nb = t->nbmax < MIN_BUCKETS ? t->nbmax : MIN_BUCKETS;
	t->bmask = nb - 1;
	t->bucket = malloc((size_t)t->nbmax * sizeof(*t->bucket));
	/* not zeroed: the pages of entries never used are never touched */
	t->ent = aligned_alloc(64, (size_t)c->max * sizeof(*t->ent));
	t->link = malloc((size_t)c->max * sizeof(*t->link));
	nf = pow2_at_least(c->max < 64 ? 64 : c->max > 4096 ? 4096 : c->max);
	t->fmask = nf - 1;
	t->frag = calloc(nf, sizeof(*t->frag));
	if (!t->bucket || !t->ent || !t->link || !t->frag)
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
	free(t->link);
	free(t->frag);
	free(t);
}

/* Count p, whose key k (hash h) is made, in its flow. */
static void add_keyed(struct nlg_flow_table *t, const struct nlg_pkt *p, const struct fkey *k,
		      uint32_t h, int swap, int ports, nlg_flow_emit_fn *emit, void *data)
{
	uint32_t i = lookup(t, k, h);

	if (i != NIL) {
		struct fent *e = &t->ent[i];
		if (e->list == L_CLOSING) {
			/* a new SYN on a closed connection's key: the port is reused */
			if ((p->present & NLG_PKT_HAS_TCP) &&
			    (p->tcp_flags & (NLG_TCP_SYN | NLG_TCP_ACK)) == NLG_TCP_SYN) {
				flow_end(t, i, e->reason, emit, data);
				i = NIL;
			}
		} else if (t->c.active_ns && e->last_ns - e->first_ns >= t->c.active_ns) {
			/* long-lived: report what it did so far and go on counting
			 * (a closing flow is not split: it ends within the linger) */
			emit_rec(t, e, NLG_FLOW_ACTIVE, emit, data);
			rec_begin(t, e, p);
		}
	}
	if (i == NIL)
		i = flow_new(t, k, h, swap, p, emit, data);
	count(t, i, p, swap == t->ent[i].first_b);
	if ((p->present & NLG_PKT_HAS_FRAG) && !p->frag_offset && p->frag_more && ports)
		frag_note(t, p, i);
}

/* A later fragment (no ports), or a packet without IP: 1 if it was dealt
 * with; else 0, and *ports says whether its key has them. */
static int add_special(struct nlg_flow_table *t, const struct nlg_pkt *p, int *ports)
{
	uint32_t i;

	*ports = (p->present & NLG_PKT_HAS_PORTS) != 0;
	if (!(p->present & NLG_PKT_HAS_IP)) {
		t->st.nonip++;
		return 1;
	}
	if ((p->present & NLG_PKT_HAS_FRAG) && p->frag_offset) {
		i = frag_find(t, p);
		if (i != NIL) {
			const struct fent *e = &t->ent[i];
			int v4 = p->family == AF_INET;
			t->st.frag_matched++;
			count(t, i, p, !addr_cmp(p->src.bytes, e->first_b ? e->k.b : e->k.a, v4));
			return 1;
		}
		/* its first fragment was not seen: a flow of the two addresses */
		t->st.frag_orphans++;
		*ports = 0;
	}
	return 0;
}

static inline int plain(const struct nlg_pkt *p)
{
	return (p->present & NLG_PKT_HAS_IP) && !((p->present & NLG_PKT_HAS_FRAG) && p->frag_offset);
}

void nlg_flow_add(struct nlg_flow_table *t, const struct nlg_pkt *p, nlg_flow_emit_fn *emit,
		  void *data)
{
	struct fkey k;
	uint32_t h;
	int ports, swap;

	if (add_special(t, p, &ports))
		return;
	swap = key_make(t, &k, p, ports, &h);
	add_keyed(t, p, &k, h, swap, ports, emit, data);
}

/* A pipeline of three stages over the batch: packet j's key is made and its
 * bucket asked for, packet j - AHEAD's bucket is read and its first entry
 * asked for, and packet j - 2 * AHEAD is counted as nlg_flow_add would, in
 * order. The memory reads of a few packets overlap instead of waiting one
 * after the other. What is asked for early is only a hint: a flow begun or
 * ended meanwhile is found (or not) when the packet is counted. */
#define AHEAD 4
#define INFLIGHT 16 /* > 2 * AHEAD: the keys made and not yet counted */

struct pending {
	struct fkey k;
	uint32_t h;
	int8_t swap; /* -1: not plain, nlg_flow_add's way */
};

void nlg_flow_add_batch(struct nlg_flow_table *t, const struct nlg_pkt *p, size_t n,
			nlg_flow_emit_fn *emit, void *data)
{
	struct pending q[INFLIGHT];

	_Static_assert(INFLIGHT > 2 * AHEAD, "the pipeline's keys fit");
	for (size_t j = 0; j < n + 2 * AHEAD; j++) {
		if (j < n) {
			struct pending *a = &q[j % INFLIGHT];
			if (plain(&p[j])) {
				a->swap = (int8_t)key_make(t, &a->k, &p[j],
							   (p[j].present & NLG_PKT_HAS_PORTS) != 0, &a->h);
				__builtin_prefetch(&t->bucket[a->h & t->bmask]);
			} else {
				a->swap = -1;
			}
		}
		if (j >= AHEAD && j - AHEAD < n) {
			const struct pending *b = &q[(j - AHEAD) % INFLIGHT];
			uint32_t i;
			if (b->swap >= 0 && (i = t->bucket[b->h & t->bmask]) != NIL) {
				__builtin_prefetch(&t->ent[i]);
				__builtin_prefetch((const char *)&t->ent[i] + 64);
			}
		}
		if (j >= 2 * AHEAD) {
			size_t c = j - 2 * AHEAD;
			const struct pending *d = &q[c % INFLIGHT];
			if (d->swap < 0)
				nlg_flow_add(t, &p[c], emit, data);
			else
				add_keyed(t, &p[c], &d->k, d->h, d->swap,
					  (p[c].present & NLG_PKT_HAS_PORTS) != 0, emit, data);
		}
	}
}

void nlg_flow_expire(struct nlg_flow_table *t, uint64_t now_ns, nlg_flow_emit_fn *emit, void *data)
{
	for (;;) {
		uint32_t a = t->open.head, b = t->closing.head, i;
		int da = a != NIL && due(t->ent[a].last_ns, t->c.idle_ns, now_ns);
		int db = b != NIL && due(t->ent[b].last_ns, t->close_ns, now_ns);

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
	while (t->bmask + 1 > MIN_BUCKETS && t->st.live < (t->bmask + 1) / 16)
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
