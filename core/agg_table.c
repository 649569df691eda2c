/* The aggregators' table: key bytes → a fixed-size value, entries in a
 * dense array and an open-addressed index over them, plus the hash and the
 * allocator every aggregation structure shares. No Lua. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/agg.h"

void *nlg_agg_realloc(struct nlg_agg_mem *m, void *p, size_t osize, size_t nsize)
{
	void *q;

	if (!p)
		osize = 0;
	if (m && m->fn)
		q = m->fn(m->ud, p, osize, nsize);
	else if (!nsize) {
		free(p);
		q = NULL;
	} else
		q = realloc(p, nsize);
	if (m && (q || !nsize))
		m->bytes += nsize - osize; /* wraps back correctly on a free */
	return q;
}

/* ---- hash ------------------------------------------------------------------ */

#define H0 0xa0761d6478bd642full
#define H1 0xe7037ed1a0b428dbull
#define H2 0x8ebc6af09c88c6e3ull

static inline uint64_t fold(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

uint64_t nlg_agg_hash(const void *data, size_t n, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t a, b, s = seed ^ fold(seed ^ H0, H1);
	size_t len = n;

	if (n <= 16) {
		if (n >= 4) {
			a = (rd32(p) << 32) | rd32(p + ((n >> 3) << 2));
			b = (rd32(p + n - 4) << 32) | rd32(p + n - 4 - ((n >> 3) << 2));
		} else if (n) {
			a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
			b = 0;
		} else
			a = b = 0;
	} else {
		while (n > 16) {
			s = fold(rd64(p) ^ H1, rd64(p + 8) ^ s);
			p += 16;
			n -= 16;
		}
		a = rd64(p + n - 16);
		b = rd64(p + n - 8);
	}
	a ^= H1;
	b ^= s;
	__uint128_t r = (__uint128_t)a * b;
	a = (uint64_t)r;
	b = (uint64_t)(r >> 64);
	return fold(a ^ H0 ^ len, b ^ H1) ^ fold(b ^ H2, a);
}

/* ---- table ----------------------------------------------------------------- *
 * An entry: u64 hash, u32 key length, u32 spare, kcap bytes of key (or a
 * pointer to a longer key's block), vsize bytes of value. */

static size_t round8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

void nlg_agg_table_init(struct nlg_agg_table *t, struct nlg_agg_mem *mem, size_t kcap, size_t vsize,
			uint32_t max_keys)
{
	memset(t, 0, sizeof(*t));
	t->mem = mem;
	t->kcap = kcap ? round8(kcap < 8 ? 8 : kcap) : 0;
	t->vsize = round8(vsize);
	t->esz = 16 + t->kcap + t->vsize;
	t->max_keys = max_keys;
}

static uint32_t ent_klen(const unsigned char *e)
{
	uint32_t n;
	memcpy(&n, e + 8, 4);
	return n;
}

const void *nlg_agg_table_key(const struct nlg_agg_table *t, uint32_t i, size_t *klen)
{
	const unsigned char *e = nlg_agg_table_ent(t, i);
	uint32_t n = ent_klen(e);
	const void *k = e + 16;

	if (n > t->kcap)
		memcpy(&k, e + 16, sizeof(k));
	if (klen)
		*klen = n;
	return k;
}

static void ent_release(struct nlg_agg_table *t, uint32_t i)
{
	unsigned char *e = nlg_agg_table_ent(t, i);
	uint32_t n = ent_klen(e);

	if (t->val_free)
		t->val_free(e + 16 + t->kcap, t->ctx);
	if (n > t->kcap) {
		void *k;
		memcpy(&k, e + 16, sizeof(k));
		nlg_agg_realloc(t->mem, k, n, 0);
	}
}

void nlg_agg_table_clear(struct nlg_agg_table *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		ent_release(t, i);
	t->n = 0;
	if (t->mask)
		memset(t->slots, 0, ((size_t)t->mask + 1) * sizeof(*t->slots));
}

void nlg_agg_table_free(struct nlg_agg_table *t)
{
	nlg_agg_table_clear(t);
	nlg_agg_realloc(t->mem, t->ents, (size_t)t->cap * t->esz, 0);
	if (t->mask)
		nlg_agg_realloc(t->mem, t->slots, ((size_t)t->mask + 1) * sizeof(*t->slots), 0);
	t->ents = NULL;
	t->slots = NULL;
	t->cap = t->mask = 0;
}

size_t nlg_agg_table_bytes(const struct nlg_agg_table *t)
{
	return (size_t)t->cap * t->esz + (t->mask ? ((size_t)t->mask + 1) * 8 : 0);
}

static int ent_is(const struct nlg_agg_table *t, uint32_t i, const void *key, size_t klen)
{
	size_t n;
	const void *k = nlg_agg_table_key(t, i, &n);
	return n == klen && !memcmp(k, key, klen);
}

/* The slot holding key, or the empty slot where it would go. */
static uint32_t probe(const struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h)
{
	uint32_t i = (uint32_t)h & t->mask, tag = (uint32_t)(h >> 32);

	for (;; i = (i + 1) & t->mask) {
		uint64_t s = t->slots[i];
		if (!s)
			return i;
		if ((uint32_t)(s >> 32) == tag && ent_is(t, (uint32_t)s - 1, key, klen))
			return i;
	}
}

int64_t nlg_agg_table_find(const struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h)
{
	if (!t->n)
		return -1;
	uint64_t s = t->slots[probe(t, key, klen, h)];
	return s ? (int64_t)(uint32_t)s - 1 : -1;
}

void *nlg_agg_table_get(const struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h)
{
	int64_t i = nlg_agg_table_find(t, key, klen, h);
	return i < 0 ? NULL : nlg_agg_table_val(t, (uint32_t)i);
}

static int reindex(struct nlg_agg_table *t, uint32_t slots)
{
	uint64_t *s = nlg_agg_realloc(t->mem, NULL, 0, (size_t)slots * sizeof(*s));

	if (!s)
		return -ENOMEM;
	memset(s, 0, (size_t)slots * sizeof(*s));
	if (t->mask)
		nlg_agg_realloc(t->mem, t->slots, ((size_t)t->mask + 1) * sizeof(*s), 0);
	t->slots = s;
	t->mask = slots - 1;
	for (uint32_t i = 0; i < t->n; i++) {
		uint64_t h = nlg_agg_table_hash(t, i);
		uint32_t j = (uint32_t)h & t->mask;
		while (s[j])
			j = (j + 1) & t->mask;
		s[j] = (h >> 32 << 32) | (i + 1);
	}
	return 0;
}

static int grow(struct nlg_agg_table *t)
{
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 8;
		void *e;
		if (t->cap >= (1u << 30))
			return -ENOMEM;
		e = nlg_agg_realloc(t->mem, t->ents, (size_t)t->cap * t->esz, (size_t)cap * t->esz);
		if (!e)
			return -ENOMEM;
		t->ents = e;
		t->cap = cap;
	}
	if (!t->mask || (uint64_t)(t->n + 1) * 2 > (uint64_t)t->mask + 1)
		return reindex(t, t->mask ? (t->mask + 1) * 2 : 16);
	return 0;
}

int nlg_agg_table_put(struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h, void **val)
{
	uint32_t j, i;
	unsigned char *e;
	int rc;

	if (klen > UINT32_MAX)
		return -EINVAL;
	if (t->n) {
		j = probe(t, key, klen, h);
		if (t->slots[j]) {
			*val = nlg_agg_table_val(t, (uint32_t)t->slots[j] - 1);
			return 0;
		}
	}
	if (t->max_keys && t->n >= t->max_keys) {
		t->dropped++;
		return -ENOSPC;
	}
	if (!t->kcap && !t->cap) { /* the first key sets the inline size */
		t->kcap = round8(klen < 8 ? 8 : klen);
		t->esz = 16 + t->kcap + t->vsize;
	}
	if ((rc = grow(t)) < 0)
		return rc;
	i = t->n;
	e = nlg_agg_table_ent(t, i);
	memcpy(e, &h, 8);
	uint32_t kl = (uint32_t)klen, spare = 0;
	memcpy(e + 8, &kl, 4);
	memcpy(e + 12, &spare, 4);
	if (klen > t->kcap) {
		void *k = nlg_agg_realloc(t->mem, NULL, 0, klen);
		if (!k)
			return -ENOMEM;
		memcpy(k, key, klen);
		memcpy(e + 16, &k, sizeof(k));
	} else
		memcpy(e + 16, key, klen);
	memset(e + 16 + t->kcap, 0, t->vsize);
	j = probe(t, key, klen, h);
	t->slots[j] = (h >> 32 << 32) | (i + 1);
	t->n++;
	*val = e + 16 + t->kcap;
	return 1;
}

/* The slot pointing at entry i. */
static uint32_t slot_of(const struct nlg_agg_table *t, uint32_t i)
{
	uint32_t j = (uint32_t)nlg_agg_table_hash(t, i) & t->mask;

	while ((uint32_t)t->slots[j] != i + 1)
		j = (j + 1) & t->mask;
	return j;
}

void nlg_agg_table_del_at(struct nlg_agg_table *t, uint32_t i)
{
	uint32_t j = slot_of(t, i), k = j, last = t->n - 1;

	ent_release(t, i);
	/* Backward-shift deletion keeps every probe run unbroken. */
	t->slots[j] = 0;
	for (;;) {
		k = (k + 1) & t->mask;
		uint64_t s = t->slots[k];
		if (!s)
			break;
		uint32_t home = (uint32_t)nlg_agg_table_hash(t, (uint32_t)s - 1) & t->mask;
		/* s may move to j if its home is not within (j, k] cyclically. */
		if ((j < k && (home <= j || home > k)) || (j > k && home <= j && home > k)) {
			t->slots[j] = s;
			t->slots[k] = 0;
			j = k;
		}
	}
	if (i != last) {
		uint32_t m = slot_of(t, last);
		t->slots[m] = (t->slots[m] >> 32 << 32) | (i + 1);
		memcpy(nlg_agg_table_ent(t, i), nlg_agg_table_ent(t, last), t->esz);
	}
	t->n--;
}
