/* The conntrack flow table behind resync: which flows nlgate has shown live,
 * keyed by (zone, original tuple, id), and the reconciliation of a resync dump
 * (and the kernel's dying list) against it into missed flows and synthetic
 * DESTROYs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "nlgate/conntrack.h"

/* ---- the flow table ------------------------------------------------------ */

/* The hot path is one lookup per event in a table that can hold a million
 * flows, so the index is compact: 16-byte slots {64-bit fingerprint of the
 * key, id, flow number} under open addressing with linear probing and
 * backward-shift deletion (no tombstones: a flood deletes as much as it
 * inserts). A lookup touches one cache line; the full key (for synthetic
 * DESTROYs) and the resync bookkeeping live in a side array of flows that is
 * written on insert and read only by resync.
 *
 *   index: [fp|id|flow][fp|id|flow][ 0 ... ][fp|id|flow] ...
 *                   │
 *   flows:          └─▶ { key (zone, orig tuple, id), gen, state }      */
struct ct_key {
	uint32_t id;
	uint16_t zone;
	uint16_t sport, dport; /* ports; for ICMP: id and type<<8|code */
	uint8_t family, proto;
	uint8_t src[16], dst[16];
	uint8_t kind; /* NLG_CT_HAS_PORTS / HAS_ICMP bits of the record */
	uint8_t pad[3];
};

enum { ENT_LIVE = 1, ENT_DEAD = 2 };

struct ct_slot {
	uint64_t fp; /* 0: empty */
	uint32_t id;
	uint32_t flow; /* index into flows */
};

struct ct_flow {
	struct ct_key k;
	uint32_t gen;
	uint8_t state;
	uint8_t unconfirmed; /* known from a dump only: no event has named it yet */
	uint8_t pad[2];
};

struct nlg_ct_table {
	struct ct_slot *ix;
	size_t cap, n, dead, unconfirmed;
	struct ct_flow *flows;
	uint32_t *free_flows; /* stack of released flow numbers */
	size_t nflows, flows_cap, nfree;
	uint32_t gen;
	int syncing;
};

#define CT_TABLE_MIN (1u << 14)

static void key_from(struct ct_key *k, const struct nlg_ct *ct)
{
	memset(k, 0, sizeof(*k));
	k->id = ct->id;
	k->zone = ct->zone;
	k->family = ct->family;
	k->proto = ct->proto;
	memcpy(k->src, ct->orig_src.bytes, 16);
	memcpy(k->dst, ct->orig_dst.bytes, 16);
	k->kind = (uint8_t)(ct->present & (NLG_CT_HAS_PORTS | NLG_CT_HAS_ICMP));
	if (ct->present & NLG_CT_HAS_ICMP) {
		k->sport = ct->icmp_id;
		k->dport = (uint16_t)(ct->icmp_type << 8 | ct->icmp_code);
	} else {
		k->sport = ct->orig_sport;
		k->dport = ct->orig_dport;
	}
}

/* 64-bit fingerprint of the whole key; with the id beside it, two live flows
 * colliding is a 2^-96 event. Never 0 (the empty mark). */
static uint64_t key_fp(const struct ct_key *k)
{
	uint64_t w[sizeof(*k) / 8], h = 0x9e3779b97f4a7c15ull;

	memcpy(w, k, sizeof(w));
	for (size_t i = 0; i < NLG_ARRAY_SIZE(w); i++) {
		h ^= w[i];
		h *= 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	return h ? h : 1;
}

/* The index is probed at random, one cache miss per event; past a few MiB
 * the TLB misses too, so big indexes ask for transparent huge pages (the
 * kernel grants them under THP "madvise" mode; a hint, nothing fails
 * without it). */
#define CT_HUGE (2u << 20)
static struct ct_slot *index_alloc(size_t cap)
{
	size_t bytes = cap * sizeof(struct ct_slot);
	struct ct_slot *ix;

	if (bytes < CT_HUGE)
		return calloc(cap, sizeof(*ix));
	ix = aligned_alloc(CT_HUGE, bytes); /* bytes: a power of two >= CT_HUGE */
	if (!ix)
		return NULL;
	(void)madvise(ix, bytes, MADV_HUGEPAGE);
	memset(ix, 0, bytes);
	return ix;
}

struct nlg_ct_table *nlg_ct_table_new(void)
{
	struct nlg_ct_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = CT_TABLE_MIN;
	t->ix = index_alloc(t->cap);
	if (!t->ix) {
		free(t);
		return NULL;
	}
	return t;
}

void nlg_ct_table_free(struct nlg_ct_table *t)
{
	if (!t)
		return;
	free(t->ix);
	free(t->flows);
	free(t->free_flows);
	free(t);
}

size_t nlg_ct_table_count(const struct nlg_ct_table *t)
{
	return t->n - t->dead;
}

size_t nlg_ct_table_unconfirmed(const struct nlg_ct_table *t)
{
	return t->unconfirmed;
}

static struct ct_slot *table_find(const struct nlg_ct_table *t, uint64_t fp, uint32_t id)
{
	size_t mask = t->cap - 1, i = fp & mask;

	for (; t->ix[i].fp; i = (i + 1) & mask)
		if (t->ix[i].fp == fp && t->ix[i].id == id)
			return &t->ix[i];
	return NULL;
}

static void slot_put(struct ct_slot *ix, size_t cap, const struct ct_slot *v)
{
	size_t mask = cap - 1, i = v->fp & mask;

	while (ix[i].fp)
		i = (i + 1) & mask;
	ix[i] = *v;
}

static int table_grow(struct nlg_ct_table *t)
{
	size_t cap = t->cap * 2;
	struct ct_slot *ix = index_alloc(cap);

	if (!ix)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->ix[i].fp)
			slot_put(ix, cap, &t->ix[i]);
	free(t->ix);
	t->ix = ix;
	t->cap = cap;
	return 0;
}

static struct ct_flow *flow_alloc(struct nlg_ct_table *t, uint32_t *num)
{
	if (t->nfree) {
		*num = t->free_flows[--t->nfree];
		return &t->flows[*num];
	}
	if (t->nflows == t->flows_cap) {
		size_t cap = t->flows_cap ? t->flows_cap * 2 : CT_TABLE_MIN;
		struct ct_flow *f = realloc(t->flows, cap * sizeof(*f));
		uint32_t *fr;
		if (!f)
			return NULL;
		t->flows = f;
		fr = realloc(t->free_flows, cap * sizeof(*fr));
		if (!fr)
			return NULL;
		t->free_flows = fr;
		t->flows_cap = cap;
	}
	*num = (uint32_t)t->nflows++;
	return &t->flows[*num];
}

static struct ct_flow *table_insert(struct nlg_ct_table *t, const struct ct_key *k, uint64_t fp,
				    int state)
{
	struct ct_slot v = {.fp = fp, .id = k->id};
	struct ct_flow *f;

	if ((t->n + 1) * 10 > t->cap * 7 && table_grow(t) < 0)
		return NULL;
	f = flow_alloc(t, &v.flow);
	if (!f)
		return NULL;
	f->k = *k;
	f->gen = t->gen;
	f->state = (uint8_t)state;
	f->unconfirmed = 0;
	slot_put(t->ix, t->cap, &v);
	t->n++;
	if (state == ENT_DEAD)
		t->dead++;
	return f;
}

static void table_remove(struct nlg_ct_table *t, struct ct_slot *victim)
{
	size_t mask = t->cap - 1, i = (size_t)(victim - t->ix), j = i;
	struct ct_flow *f = &t->flows[victim->flow];

	if (f->unconfirmed)
		t->unconfirmed--;
	if (f->state == ENT_DEAD)
		t->dead--;
	f->state = 0;
	t->free_flows[t->nfree++] = victim->flow;
	t->n--;
	/* backward shift: pull later members of the probe run into the hole */
	for (;;) {
		j = (j + 1) & mask;
		if (!t->ix[j].fp)
			break;
		size_t home = t->ix[j].fp & mask;
		/* ix[j] may move to i only if its home is not in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->ix[i] = t->ix[j];
			i = j;
		}
	}
	memset(&t->ix[i], 0, sizeof(t->ix[i]));
}

static void flow_confirm(struct nlg_ct_table *t, struct ct_flow *f)
{
	if (f->unconfirmed) {
		f->unconfirmed = 0;
		t->unconfirmed--;
	}
}

void nlg_ct_table_prefetch(const struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;

	key_from(&k, ct);
	__builtin_prefetch(&t->ix[key_fp(&k) & (t->cap - 1)]);
}

int nlg_ct_table_has(const struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;
	const struct ct_slot *e;

	key_from(&k, ct);
	e = table_find(t, key_fp(&k), k.id);
	return e && t->flows[e->flow].state == ENT_LIVE;
}

int nlg_ct_table_event(struct nlg_ct_table *t, const struct nlg_ct *ct, int *orphan)
{
	struct ct_key k;
	struct ct_slot *e;
	struct ct_flow *f;
	uint64_t fp;

	key_from(&k, ct);
	fp = key_fp(&k);
	e = table_find(t, fp, k.id);
	f = e ? &t->flows[e->flow] : NULL;
	*orphan = 0;
	if (ct->event == NLG_CT_DESTROY) {
		*orphan = !e;
		if (t->syncing) {
			/* keep a tombstone so the dump in flight cannot resurrect it */
			if (!e && !table_insert(t, &k, fp, ENT_DEAD))
				return -ENOMEM;
			if (f && f->state == ENT_LIVE) {
				flow_confirm(t, f);
				f->state = ENT_DEAD;
				t->dead++;
			}
		} else if (e) {
			table_remove(t, e);
		}
		return 1;
	}
	if (f && f->state == ENT_LIVE) {
		int confirmed = !f->unconfirmed;
		flow_confirm(t, f);
		f->gen = t->gen;
		/* the second NEW for a flow (or the NEW of one a dump already
		 * showed) adds nothing */
		return ct->event == NLG_CT_NEW && confirmed ? 0 : 1;
	}
	if (f) /* a NEW/UPDATE after its DESTROY within one resync: keep the DESTROY */
		return 1;
	if (!table_insert(t, &k, fp, ENT_LIVE))
		return -ENOMEM;
	return 1;
}

void nlg_ct_table_sync_begin(struct nlg_ct_table *t)
{
	t->gen++;
	t->syncing = 1;
}

int nlg_ct_table_sync_flow(struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;
	struct ct_slot *e;
	struct ct_flow *f;
	uint64_t fp;

	key_from(&k, ct);
	fp = key_fp(&k);
	e = table_find(t, fp, k.id);
	if (e) {
		f = &t->flows[e->flow];
		if (f->state == ENT_LIVE)
			f->gen = t->gen;
		return 0;
	}
	f = table_insert(t, &k, fp, ENT_LIVE);
	if (!f)
		return -ENOMEM;
	f->unconfirmed = 1;
	t->unconfirmed++;
	return 1;
}

int nlg_ct_table_sync_dying(struct nlg_ct_table *t, const struct nlg_ct *ct)
{
	struct ct_key k;
	struct ct_slot *e;
	struct ct_flow *f;

	key_from(&k, ct);
	e = table_find(t, key_fp(&k), k.id);
	if (!e)
		return 0; /* never seen: its DESTROY will be an orphan, as it is */
	f = &t->flows[e->flow];
	if (f->state != ENT_LIVE)
		return 0; /* its DESTROY already came */
	f->gen = t->gen;
	return 1;
}

static void ct_from_key(struct nlg_ct *ct, const struct ct_key *k)
{
	memset(ct, 0, sizeof(*ct));
	ct->event = NLG_CT_DESTROY;
	ct->synthetic = 1;
	ct->id = k->id;
	ct->zone = k->zone;
	ct->family = k->family;
	ct->proto = k->proto;
	ct->orig_src.family = ct->orig_dst.family = k->family;
	memcpy(ct->orig_src.bytes, k->src, 16);
	memcpy(ct->orig_dst.bytes, k->dst, 16);
	ct->present = k->kind;
	if (k->kind & NLG_CT_HAS_ICMP) {
		ct->icmp_id = k->sport;
		ct->icmp_type = (uint8_t)(k->dport >> 8);
		ct->icmp_code = (uint8_t)k->dport;
	} else {
		ct->orig_sport = k->sport;
		ct->orig_dport = k->dport;
	}
}

int nlg_ct_table_sync_end(struct nlg_ct_table *t, int (*fn)(const struct nlg_ct *, void *),
			  void *data)
{
	int gone = 0;

	/* Walk the index and drop what the dump did not confirm: tombstones,
	 * and live flows of an older generation (gone unseen). Removal shifts
	 * later slots back, so a slot is examined again after a removal; a
	 * removal at the wrapped start is re-checked by the final pass. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < t->cap;) {
			struct ct_slot *e = &t->ix[i];
			struct ct_flow *f;
			if (!e->fp) {
				i++;
				continue;
			}
			f = &t->flows[e->flow];
			if (f->state == ENT_LIVE && f->gen == t->gen) {
				i++;
				continue;
			}
			if (f->state == ENT_LIVE) {
				struct nlg_ct ct;
				ct_from_key(&ct, &f->k);
				gone++;
				if (fn)
					fn(&ct, data);
			}
			table_remove(t, e);
		}
	}
	t->syncing = 0;
	return gone;
}
