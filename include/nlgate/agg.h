/* Aggregation data structures, no Lua: a 64-bit hash, an open-addressing
 * table from key bytes to fixed-size values, HyperLogLog, DDSketch and
 * space-saving top-k. bindings/lua_agg.c puts keys, windows and Lua on top.
 * Memory goes through a struct nlg_agg_mem so an embedder can count it. */
#ifndef NLGATE_AGG_H
#define NLGATE_AGG_H

#include <stddef.h>
#include <stdint.h>

/* An allocator with lua_Alloc's contract (nsize 0 frees; osize is the old
 * block's size). fn NULL: realloc/free. bytes: what is held now. */
struct nlg_agg_mem {
	void *(*fn)(void *ud, void *ptr, size_t osize, size_t nsize);
	void *ud;
	size_t bytes;
};
void *nlg_agg_realloc(struct nlg_agg_mem *m, void *p, size_t osize, size_t nsize);

/* A wyhash-style 64-bit hash (multiply-fold mixing): every output bit
 * depends on every input bit, good enough for HyperLogLog's registers. */
uint64_t nlg_agg_hash(const void *p, size_t n, uint64_t seed);

/* ---- the table ----------------------------------------------------------- *
 * Entries live in a dense array (iteration, sorting, swap-removal); an
 * open-addressed index of 64-bit slots (hash's high half | entry + 1) at
 * most half full finds them with linear probing. A key of at most kcap
 * bytes is stored in its entry, a longer one in its own block. Values are
 * vsize bytes, 8-aligned, zeroed when the key is created. */
struct nlg_agg_table {
	struct nlg_agg_mem *mem;
	size_t kcap, vsize, esz; /* esz: bytes per entry */
	uint32_t n, cap;	 /* entries used, allocated */
	uint32_t mask;		 /* index slots - 1 (0: no index yet) */
	uint32_t max_keys;	 /* 0: unbounded */
	uint64_t *slots;
	unsigned char *ents;
	uint64_t dropped; /* keys refused at max_keys */
	/* Called on a value before its entry goes (clear, delete, free). */
	void (*val_free)(void *val, void *ctx);
	void *ctx;
};

/* kcap 0: decided by the first key's length. */
void nlg_agg_table_init(struct nlg_agg_table *t, struct nlg_agg_mem *mem, size_t kcap, size_t vsize,
			uint32_t max_keys);
void nlg_agg_table_free(struct nlg_agg_table *t);
/* Every key goes; the storage stays for the next window. */
void nlg_agg_table_clear(struct nlg_agg_table *t);
/* The value of key, or NULL. h is nlg_agg_hash of the key (any seed, the
 * same for a table's every call). */
void *nlg_agg_table_get(const struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h);
/* Find or create key: 1 created (value zeroed), 0 found, -ENOSPC refused at
 * max_keys (counted in dropped), -ENOMEM. *val is the value on 0 and 1. */
int nlg_agg_table_put(struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h,
		      void **val);
/* Remove entry i; the last entry moves into its place. */
void nlg_agg_table_del_at(struct nlg_agg_table *t, uint32_t i);

static inline unsigned char *nlg_agg_table_ent(const struct nlg_agg_table *t, uint32_t i)
{
	return t->ents + (size_t)i * t->esz;
}
/* Entry i's hash, key (and its length) and value. */
static inline uint64_t nlg_agg_table_hash(const struct nlg_agg_table *t, uint32_t i)
{
	return *(const uint64_t *)nlg_agg_table_ent(t, i);
}
const void *nlg_agg_table_key(const struct nlg_agg_table *t, uint32_t i, size_t *klen);
static inline void *nlg_agg_table_val(const struct nlg_agg_table *t, uint32_t i)
{
	return nlg_agg_table_ent(t, i) + 16 + t->kcap;
}
/* Index of the entry holding key, or -1. */
int64_t nlg_agg_table_find(const struct nlg_agg_table *t, const void *key, size_t klen, uint64_t h);
size_t nlg_agg_table_bytes(const struct nlg_agg_table *t);

/* ---- HyperLogLog ------------------------------------------------------------ *
 * m = 2^p one-byte registers (p in 4..18), dense. The estimate is Ertl's
 * improved estimator ("New cardinality estimation algorithms for
 * HyperLogLog sketches", 2017): unbiased from 0 up, with linear counting's
 * small-range behaviour built in and no bias tables. Standard error
 * 1.04/sqrt(m): 0.81% at p = 14. Merging is a register-wise max: the
 * sketch of the union. */
struct nlg_hll {
	uint8_t p;
	uint8_t *reg;
};
int nlg_hll_init(struct nlg_hll *h, struct nlg_agg_mem *mem, unsigned p); /* 0, -EINVAL, -ENOMEM */
void nlg_hll_free(struct nlg_hll *h, struct nlg_agg_mem *mem);
void nlg_hll_clear(struct nlg_hll *h);
void nlg_hll_add(struct nlg_hll *h, uint64_t hash);
double nlg_hll_count(const struct nlg_hll *h);
int nlg_hll_merge(struct nlg_hll *dst, const struct nlg_hll *src); /* -EINVAL: precisions differ */
double nlg_hll_error(unsigned p);				   /* 1.04/sqrt(2^p) */

/* ---- DDSketch ---------------------------------------------------------------- *
 * Values are mapped to buckets of ceil(log_gamma |x|), gamma = (1+a)/(1-a):
 * any quantile comes back within relative error a of the exact one (the
 * item of rank floor(q (n - 1))), as long as its bucket was not collapsed.
 * Positive and negative values have a store each (zero its own count);
 * a store holds at most max_buckets contiguous buckets: past that the
 * positive store collapses its lowest buckets into one and the negative
 * store its highest |x| ones, so the upper quantiles keep their bound.
 * Merging adds bucket counts: with no collapse it is exactly the sketch of
 * the union. */
struct nlg_dd_store {
	uint64_t *c;	/* counts for buckets lo .. lo + len - 1 */
	int32_t lo;	/* index of c[0] */
	uint32_t len;	/* buckets in use from c[0] */
	uint32_t alloc; /* buckets allocated */
	int collapsed;
};
struct nlg_ddsketch {
	double alpha, gamma, lg; /* lg = ln(gamma) */
	uint32_t max_buckets;
	struct nlg_dd_store pos, neg;
	uint64_t zero, n;
	double sum, min, max;
};
/* alpha in (0, 0.5]; max_buckets >= 16 (0: 2048). */
int nlg_dd_init(struct nlg_ddsketch *d, double alpha, uint32_t max_buckets);
void nlg_dd_free(struct nlg_ddsketch *d, struct nlg_agg_mem *mem);
void nlg_dd_clear(struct nlg_ddsketch *d, struct nlg_agg_mem *mem);
int nlg_dd_add(struct nlg_ddsketch *d, struct nlg_agg_mem *mem,
	       double x); /* 0, -ENOMEM, -EINVAL (NaN) */
/* The q-quantile (0 <= q <= 1); NaN when empty. */
double nlg_dd_quantile(const struct nlg_ddsketch *d, double q);
int nlg_dd_merge(struct nlg_ddsketch *dst, struct nlg_agg_mem *mem, const struct nlg_ddsketch *src);
/* The bucket index of x > 0 (for tests). */
int32_t nlg_dd_index(const struct nlg_ddsketch *d, double x);

/* ---- space-saving top-k --------------------------------------------------- *
 * At most cap keys are monitored, each with a count and an error: a new
 * key when full takes the place of the key with the smallest count c and
 * starts at c + weight with error c. A key's true weight is within [count
 * - error, count]; any key with true weight > N/cap is monitored (N: all
 * weight added). Merging two summaries (Agarwal et al.) adds counts, a key
 * missing from a full summary adding that summary's minimum as count and
 * error, and keeps the cap largest. */
struct nlg_topk_val {
	double count, error;
	uint32_t heap; /* position in the heap */
};
struct nlg_topk {
	struct nlg_agg_table t; /* key → struct nlg_topk_val */
	uint32_t cap;
	uint32_t *heap; /* entry indexes, a min-heap by count */
	double total;
};
int nlg_topk_init(struct nlg_topk *k, struct nlg_agg_mem *mem, uint32_t cap);
void nlg_topk_free(struct nlg_topk *k);
void nlg_topk_clear(struct nlg_topk *k);
/* Add weight (> 0) to key: 0, -ENOMEM. */
int nlg_topk_add(struct nlg_topk *k, const void *key, size_t klen, uint64_t h, double w);
int nlg_topk_merge(struct nlg_topk *dst, const struct nlg_topk *src);
/* Entry indexes of the n largest counts (descending) into out; returns how
 * many (at most n and the number monitored). */
size_t nlg_topk_list(const struct nlg_topk *k, uint32_t *out, size_t n);

#endif
