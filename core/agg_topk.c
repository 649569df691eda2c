/* Space-saving top-k (Metwally et al.): a bounded table of monitored keys
 * with a count and an error each, a min-heap to find the key to replace,
 * and the mergeable-summaries merge. No Lua. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/agg.h"

static struct nlg_topk_val *kv(const struct nlg_topk *k, uint32_t i)
{
	return nlg_agg_table_val(&k->t, i);
}

int nlg_topk_init(struct nlg_topk *k, struct nlg_agg_mem *mem, uint32_t cap)
{
	memset(k, 0, sizeof(*k));
	if (!cap)
		return -EINVAL;
	nlg_agg_table_init(&k->t, mem, 0, sizeof(struct nlg_topk_val), 0);
	k->cap = cap;
	k->heap = nlg_agg_realloc(mem, NULL, 0, (size_t)cap * sizeof(*k->heap));
	return k->heap ? 0 : -ENOMEM;
}

void nlg_topk_free(struct nlg_topk *k)
{
	nlg_agg_table_free(&k->t);
	if (k->heap)
		nlg_agg_realloc(k->t.mem, k->heap, (size_t)k->cap * sizeof(*k->heap), 0);
	k->heap = NULL;
}

void nlg_topk_clear(struct nlg_topk *k)
{
	nlg_agg_table_clear(&k->t);
	k->total = 0;
}

static void heap_set(struct nlg_topk *k, uint32_t pos, uint32_t e)
{
	k->heap[pos] = e;
	kv(k, e)->heap = pos;
}

static void sift_up(struct nlg_topk *k, uint32_t pos)
{
	uint32_t e = k->heap[pos];
	double c = kv(k, e)->count;

	while (pos) {
		uint32_t up = (pos - 1) / 2;
		if (kv(k, k->heap[up])->count <= c)
			break;
		heap_set(k, pos, k->heap[up]);
		pos = up;
	}
	heap_set(k, pos, e);
}

static void sift_down(struct nlg_topk *k, uint32_t pos)
{
	uint32_t e = k->heap[pos], n = k->t.n;
	double c = kv(k, e)->count;

	for (;;) {
		uint32_t l = 2 * pos + 1, m = l;
		if (l >= n)
			break;
		if (l + 1 < n && kv(k, k->heap[l + 1])->count < kv(k, k->heap[l])->count)
			m = l + 1;
		if (kv(k, k->heap[m])->count >= c)
			break;
		heap_set(k, pos, k->heap[m]);
		pos = m;
	}
	heap_set(k, pos, e);
}

int nlg_topk_add(struct nlg_topk *k, const void *key, size_t klen, uint64_t h, double w)
{
	struct nlg_topk_val *v;
	double minc = 0;
	int64_t i = nlg_agg_table_find(&k->t, key, klen, h);
	int rc;

	k->total += w;
	if (i >= 0) {
		v = kv(k, (uint32_t)i);
		v->count += w;
		sift_down(k, v->heap);
		return 0;
	}
	int evict = k->t.n == k->cap;
	if (evict) { /* the smallest makes room, and lends its count */
		uint32_t e = k->heap[0], last = k->t.n - 1;
		minc = kv(k, e)->count;
		nlg_agg_table_del_at(&k->t, e);
		if (e != last) /* the last entry moved into e */
			k->heap[kv(k, e)->heap] = e;
	}
	if ((rc = nlg_agg_table_put(&k->t, key, klen, h, (void **)&v)) < 0) {
		/* only -ENOMEM: growing a table that just shrank cannot fail */
		k->total -= w;
		return rc;
	}
	v->count = minc + w;
	v->error = minc;
	if (evict) { /* the new key takes the root's place */
		heap_set(k, 0, k->t.n - 1);
		sift_down(k, 0);
	} else {
		heap_set(k, k->t.n - 1, k->t.n - 1);
		sift_up(k, k->t.n - 1);
	}
	return 0;
}

static double min_count(const struct nlg_topk *k)
{
	return k->t.n == k->cap ? kv(k, k->heap[0])->count : 0;
}

struct item {
	double count, error;
	const void *key;
	size_t klen;
	uint64_t h;
};

static int by_count_desc(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

int nlg_topk_merge(struct nlg_topk *dst, const struct nlg_topk *src)
{
	struct nlg_agg_mem *mem = dst->t.mem;
	double md = min_count(dst), ms = min_count(src);
	size_t n = 0, max = (size_t)dst->t.n + src->t.n;
	struct item *it;
	struct nlg_topk out;
	int rc;

	if (!src->t.n) {
		dst->total += src->total;
		return 0;
	}
	it = nlg_agg_realloc(mem, NULL, 0, max * sizeof(*it));
	if (!it)
		return -ENOMEM;
	for (uint32_t i = 0; i < dst->t.n; i++) {
		struct item *x = &it[n++];
		const struct nlg_topk_val *v = kv(dst, i), *o;
		x->key = nlg_agg_table_key(&dst->t, i, &x->klen);
		x->h = nlg_agg_table_hash(&dst->t, i);
		o = nlg_agg_table_get(&src->t, x->key, x->klen, x->h);
		x->count = v->count + (o ? o->count : ms);
		x->error = v->error + (o ? o->error : ms);
	}
	for (uint32_t i = 0; i < src->t.n; i++) {
		struct item x;
		const struct nlg_topk_val *v = kv(src, i);
		x.key = nlg_agg_table_key(&src->t, i, &x.klen);
		x.h = nlg_agg_table_hash(&src->t, i);
		if (nlg_agg_table_find(&dst->t, x.key, x.klen, x.h) >= 0)
			continue;
		x.count = v->count + md;
		x.error = v->error + md;
		it[n++] = x;
	}
	qsort(it, n, sizeof(*it), by_count_desc);
	if ((rc = nlg_topk_init(&out, mem, dst->cap)) < 0)
		goto done;
	for (size_t i = 0; i < n && i < dst->cap; i++) {
		struct nlg_topk_val *v;
		if ((rc = nlg_agg_table_put(&out.t, it[i].key, it[i].klen, it[i].h, (void **)&v)) <
		    0) {
			nlg_topk_free(&out);
			goto done;
		}
		v->count = it[i].count;
		v->error = it[i].error;
		heap_set(&out, out.t.n - 1, out.t.n - 1);
		sift_up(&out, out.t.n - 1);
	}
	out.total = dst->total + src->total;
	nlg_topk_free(dst);
	*dst = out;
	rc = 0;
done:
	nlg_agg_realloc(mem, it, max * sizeof(*it), 0);
	return rc;
}

struct rank {
	double count;
	uint32_t i;
};

static int rank_desc(const void *a, const void *b)
{
	const struct rank *x = a, *y = b;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return x->i < y->i ? -1 : x->i > y->i;
}

size_t nlg_topk_list(const struct nlg_topk *k, uint32_t *out, size_t n)
{
	uint32_t m = k->t.n;
	struct rank *r;

	if (!m || !n)
		return 0;
	r = nlg_agg_realloc(k->t.mem, NULL, 0, (size_t)m * sizeof(*r));
	if (!r)
		return 0;
	for (uint32_t i = 0; i < m; i++)
		r[i] = (struct rank){kv(k, i)->count, i};
	qsort(r, m, sizeof(*r), rank_desc);
	if (n > m)
		n = m;
	for (size_t i = 0; i < n; i++)
		out[i] = r[i].i;
	nlg_agg_realloc(k->t.mem, r, (size_t)m * sizeof(*r), 0);
	return n;
}
