/* Unit tests for the aggregation structures (core/agg_*.c): the table's
 * growth, deletion, long keys and max_keys refusals; HyperLogLog within 3
 * standard errors and merge = union; DDSketch within its relative error on
 * uniform, exponential and Pareto data against sorted exact quantiles,
 * negative and zero values, merge = sketch of the union, the bucket bound;
 * space-saving top-k's bounds and exact heavy hitters. Deterministic PRNG. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nlgate/agg.h"
#include "nlgate/common.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unif(void) /* (0, 1) */
{
	return ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
}

static uint64_t hash_u64(uint64_t i)
{
	return nlg_agg_hash(&i, sizeof(i), 42);
}

/* ---- table ------------------------------------------------------------------ */

static void table_grows_and_finds(void **state)
{
	struct nlg_agg_mem mem = {0};
	struct nlg_agg_table t;
	void *v;
	(void)state;

	nlg_agg_table_init(&t, &mem, 8, sizeof(uint64_t), 0);
	for (uint64_t i = 0; i < 100000; i++) {
		assert_int_equal(nlg_agg_table_put(&t, &i, 8, hash_u64(i), &v), 1);
		*(uint64_t *)v = i * 3;
	}
	assert_int_equal(t.n, 100000);
	assert_true(mem.bytes > 100000 * 8);
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t *p = nlg_agg_table_get(&t, &i, 8, hash_u64(i));
		assert_non_null(p);
		assert_int_equal(*p, i * 3);
		assert_int_equal(nlg_agg_table_put(&t, &i, 8, hash_u64(i), &v), 0);
		assert_ptr_equal(v, p);
	}
	uint64_t missing = 100000;
	assert_null(nlg_agg_table_get(&t, &missing, 8, hash_u64(missing)));
	/* delete the even keys by position; the odd ones stay findable */
	for (uint32_t i = 0; i < t.n;) {
		size_t kl;
		uint64_t k;
		memcpy(&k, nlg_agg_table_key(&t, i, &kl), 8);
		if (k % 2 == 0)
			nlg_agg_table_del_at(&t, i);
		else
			i++;
	}
	assert_int_equal(t.n, 50000);
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t *p = nlg_agg_table_get(&t, &i, 8, hash_u64(i));
		if (i % 2)
			assert_true(p && *p == i * 3);
		else
			assert_null(p);
	}
	nlg_agg_table_clear(&t);
	assert_int_equal(t.n, 0);
	nlg_agg_table_free(&t);
	assert_int_equal(mem.bytes, 0);
}

static void table_long_keys(void **state)
{
	struct nlg_agg_mem mem = {0};
	struct nlg_agg_table t;
	char key[300];
	void *v;
	(void)state;

	nlg_agg_table_init(&t, &mem, 16, 8, 0);
	for (int i = 0; i < 200; i++) {
		size_t n = (size_t)i + 1;
		memset(key, 'a' + i % 26, n);
		key[0] = (char)i;
		assert_int_equal(nlg_agg_table_put(&t, key, n, nlg_agg_hash(key, n, 1), &v), 1);
	}
	for (int i = 0; i < 200; i++) {
		size_t n = (size_t)i + 1, kl;
		memset(key, 'a' + i % 26, n);
		key[0] = (char)i;
		int64_t e = nlg_agg_table_find(&t, key, n, nlg_agg_hash(key, n, 1));
		assert_true(e >= 0);
		const void *k = nlg_agg_table_key(&t, (uint32_t)e, &kl);
		assert_int_equal(kl, n);
		assert_memory_equal(k, key, n);
	}
	nlg_agg_table_free(&t);
	assert_int_equal(mem.bytes, 0); /* the long keys' blocks went too */
}

static void table_max_keys(void **state)
{
	struct nlg_agg_table t;
	void *v;
	(void)state;

	nlg_agg_table_init(&t, NULL, 8, 8, 1000);
	for (uint64_t i = 0; i < 1500; i++) {
		int rc = nlg_agg_table_put(&t, &i, 8, hash_u64(i), &v);
		assert_int_equal(rc, i < 1000 ? 1 : -ENOSPC);
	}
	assert_int_equal(t.n, 1000);
	assert_int_equal(t.dropped, 500);
	uint64_t old = 5; /* a known key is still found at the bound */
	assert_int_equal(nlg_agg_table_put(&t, &old, 8, hash_u64(old), &v), 0);
	assert_int_equal(t.dropped, 500);
	nlg_agg_table_free(&t);
}

/* ---- HyperLogLog -------------------------------------------------------------- */

static void hll_within_three_errors(void **state)
{
	static const uint64_t sizes[] = {1000, 30000, 100000, 1000000};
	(void)state;

	for (unsigned p = 10; p <= 14; p += 4) {
		for (size_t s = 0; s < NLG_ARRAY_SIZE(sizes); s++) {
			struct nlg_hll h;
			assert_int_equal(nlg_hll_init(&h, NULL, p), 0);
			for (uint64_t i = 0; i < sizes[s]; i++) {
				uint64_t item = i * 7919 + s;
				nlg_hll_add(&h, nlg_agg_hash(&item, 8, 0x51));
				if (i % 3 == 0) /* repeats change nothing */
					nlg_hll_add(&h, nlg_agg_hash(&item, 8, 0x51));
			}
			double est = nlg_hll_count(&h), n = (double)sizes[s];
			double err = fabs(est - n) / n;
			if (err > 3 * nlg_hll_error(p))
				fail_msg("p=%u n=%.0f estimate %.0f (error %.4f > %.4f)", p, n, est,
					 err, 3 * nlg_hll_error(p));
			nlg_hll_free(&h, NULL);
		}
	}
}

static void hll_merge_is_union(void **state)
{
	struct nlg_hll a, b, u, q;
	(void)state;

	assert_int_equal(nlg_hll_init(&a, NULL, 14), 0);
	assert_int_equal(nlg_hll_init(&b, NULL, 14), 0);
	assert_int_equal(nlg_hll_init(&u, NULL, 14), 0);
	assert_int_equal(nlg_hll_init(&q, NULL, 12), 0);
	assert_true(nlg_hll_count(&a) == 0);
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t h = hash_u64(i);
		if (i < 60000)
			nlg_hll_add(&a, h);
		if (i >= 40000)
			nlg_hll_add(&b, h);
		nlg_hll_add(&u, h);
	}
	assert_int_equal(nlg_hll_merge(&a, &b), 0);
	assert_memory_equal(a.reg, u.reg, 1u << 14);
	assert_true(fabs(nlg_hll_count(&a) - 100000) < 3 * nlg_hll_error(14) * 100000);
	assert_int_equal(nlg_hll_merge(&a, &q), -EINVAL);
	nlg_hll_free(&q, NULL);
	assert_int_equal(nlg_hll_init(&q, NULL, 3), -EINVAL);
	nlg_hll_free(&a, NULL);
	nlg_hll_free(&b, NULL);
	nlg_hll_free(&u, NULL);
	nlg_hll_free(&q, NULL);
}

/* ---- DDSketch ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};

/* Every quantile of d within alpha of sorted v[floor(q (n-1))]. */
static void check_quantiles(const struct nlg_ddsketch *d, double *v, size_t n, const char *what)
{
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < NLG_ARRAY_SIZE(qs); i++) {
		double exact = v[(size_t)floor(qs[i] * (double)(n - 1))];
		double got = nlg_dd_quantile(d, qs[i]);
		if (fabs(got - exact) > d->alpha * fabs(exact) * (1 + 1e-9))
			fail_msg("%s q=%g: %g vs exact %g (relative %g > %g)", what, qs[i], got,
				 exact, fabs(got - exact) / fabs(exact), d->alpha);
	}
}

static void dd_relative_error(void **state)
{
	enum { N = 100000 };
	double *v = malloc(N * sizeof(*v));
	static const double alphas[] = {0.01, 0.05};
	(void)state;

	for (size_t a = 0; a < NLG_ARRAY_SIZE(alphas); a++) {
		for (int dist = 0; dist < 3; dist++) {
			struct nlg_agg_mem mem = {0};
			struct nlg_ddsketch d;
			assert_int_equal(nlg_dd_init(&d, alphas[a], 0), 0);
			for (size_t i = 0; i < N; i++) {
				double u = unif();
				v[i] = dist == 0   ? 1000 * u		    /* uniform */
				       : dist == 1 ? -log(u) * 250	    /* exponential */
						   : 1.0 / pow(u, 1 / 1.5); /* Pareto 1.5 */
				assert_int_equal(nlg_dd_add(&d, &mem, v[i]), 0);
			}
			assert_int_equal(d.n, N);
			assert_false(d.pos.collapsed);
			check_quantiles(&d, v, N,
					dist == 0   ? "uniform"
					: dist == 1 ? "exponential"
						    : "pareto");
			nlg_dd_free(&d, &mem);
			assert_int_equal(mem.bytes, 0);
		}
	}
	free(v);
}

static void dd_negative_and_zero(void **state)
{
	enum { N = 20001 };
	double v[N];
	struct nlg_ddsketch d;
	(void)state;

	assert_int_equal(nlg_dd_init(&d, 0.02, 0), 0);
	assert_true(isnan(nlg_dd_quantile(&d, 0.5)));
	for (size_t i = 0; i < N; i++) {
		double u = unif();
		v[i] = i % 10 == 0 ? 0 : (u - 0.6) * 200; /* a tenth zeros, more negatives */
		assert_int_equal(nlg_dd_add(&d, NULL, v[i]), 0);
	}
	assert_int_equal(nlg_dd_add(&d, NULL, NAN), -EINVAL);
	assert_int_equal(nlg_dd_add(&d, NULL, INFINITY), -EINVAL);
	assert_int_equal(d.n, N);
	assert_true(d.zero >= N / 10);
	check_quantiles(&d, v, N, "signed");
	nlg_dd_free(&d, NULL);
}

static void dd_merge_is_union(void **state)
{
	enum { N = 50000 };
	struct nlg_ddsketch a, b, u, other;
	(void)state;

	assert_int_equal(nlg_dd_init(&a, 0.01, 0), 0);
	assert_int_equal(nlg_dd_init(&b, 0.01, 0), 0);
	assert_int_equal(nlg_dd_init(&u, 0.01, 0), 0);
	assert_int_equal(nlg_dd_init(&other, 0.02, 0), 0);
	for (size_t i = 0; i < N; i++) {
		/* two different ranges, so the merge must extend a's store both ways */
		double x = i % 2 ? -log(unif()) * 10 : 1e4 / pow(unif(), 0.7);
		if (i % 7 == 0)
			x = -x;
		assert_int_equal(nlg_dd_add(i % 2 ? &a : &b, NULL, x), 0);
		assert_int_equal(nlg_dd_add(&u, NULL, x), 0);
	}
	assert_int_equal(nlg_dd_merge(&a, NULL, &b), 0);
	assert_int_equal(a.n, u.n);
	assert_int_equal(a.zero, u.zero);
	assert_int_equal(a.pos.lo, u.pos.lo);
	assert_int_equal(a.pos.len, u.pos.len);
	assert_memory_equal(a.pos.c, u.pos.c, u.pos.len * sizeof(uint64_t));
	assert_int_equal(a.neg.lo, u.neg.lo);
	assert_int_equal(a.neg.len, u.neg.len);
	assert_memory_equal(a.neg.c, u.neg.c, u.neg.len * sizeof(uint64_t));
	assert_true(a.min == u.min && a.max == u.max);
	for (size_t i = 0; i < NLG_ARRAY_SIZE(qs); i++)
		assert_true(nlg_dd_quantile(&a, qs[i]) == nlg_dd_quantile(&u, qs[i]));
	assert_int_equal(nlg_dd_merge(&a, NULL, &other), -EINVAL);
	nlg_dd_free(&a, NULL);
	nlg_dd_free(&b, NULL);
	nlg_dd_free(&u, NULL);
	nlg_dd_free(&other, NULL);
}

static void dd_collapse_bound(void **state)
{
	enum { N = 50000 };
	double *v = malloc(N * sizeof(*v));
	struct nlg_ddsketch d;
	(void)state;

	assert_int_equal(nlg_dd_init(&d, 0.01, 64), 0);
	for (size_t i = 0; i < N; i++) {
		v[i] = pow(10, -6 + 12 * unif()); /* 1e-6 .. 1e6: ~1400 buckets */
		assert_int_equal(nlg_dd_add(&d, NULL, v[i]), 0);
		assert_true(d.pos.len <= 64);
	}
	assert_true(d.pos.collapsed);
	qsort(v, N, sizeof(*v), cmp_double);
	/* The top 64 buckets span a factor gamma^64 ~ 3.6: above 1e6 / 3.6 the
	 * bound holds; 0.99 is ~7.6e5, the maximum exact. */
	double exact = v[(size_t)floor(0.99 * (N - 1))];
	assert_true(fabs(nlg_dd_quantile(&d, 0.99) - exact) <= 0.01 * exact * (1 + 1e-9));
	assert_true(nlg_dd_quantile(&d, 1) == v[N - 1]);
	assert_true(nlg_dd_quantile(&d, 0) == v[0]); /* clamped to the minimum */
	nlg_dd_free(&d, NULL);
	assert_int_equal(nlg_dd_init(&d, 0.6, 0), -EINVAL);
	assert_int_equal(nlg_dd_init(&d, 0.01, 8), -EINVAL);
	free(v);
}

/* ---- top-k ------------------------------------------------------------------ */

/* A Zipf-like stream over m items: item i with weight ~ 1/(i+1)^1.2. */
static uint32_t zipf(uint32_t m, const double *cdf)
{
	double u = unif();
	uint32_t lo = 0, hi = m - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void stream(struct nlg_topk *k, uint64_t *truth, uint32_t m, const double *cdf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t x = (uint64_t)zipf(m, cdf) * 2654435761u; /* keys not in rank order */
		truth[x % 1000003]++;
		assert_int_equal(nlg_topk_add(k, &x, 8, hash_u64(x), 1), 0);
	}
}

static void check_bounds(const struct nlg_topk *k, const uint64_t *truth, double total)
{
	double minc = k->t.n == k->cap ? INFINITY : 0;
	for (uint32_t i = 0; i < k->t.n; i++) {
		const struct nlg_topk_val *v = nlg_agg_table_val(&k->t, i);
		uint64_t x;
		memcpy(&x, nlg_agg_table_key(&k->t, i, NULL), 8);
		double t = (double)truth[x % 1000003];
		assert_true(v->count - v->error <= t + 1e-9);
		assert_true(t <= v->count + 1e-9);
		if (v->count < minc)
			minc = v->count;
	}
	assert_true(minc <= total / k->cap + 1e-9); /* the space-saving bound */
}

static void topk_heavy_hitters(void **state)
{
	enum { M = 20000, N = 300000 };
	double *cdf = malloc(M * sizeof(*cdf)), sum = 0;
	uint64_t *truth = calloc(1000003, sizeof(*truth));
	struct nlg_topk k, k2;
	uint32_t top[10];
	(void)state;

	for (uint32_t i = 0; i < M; i++)
		sum += cdf[i] = 1 / pow(i + 1, 1.2);
	for (uint32_t i = 0; i < M; i++)
		cdf[i] = (i ? cdf[i - 1] : 0) + cdf[i] / sum;
	assert_int_equal(nlg_topk_init(&k, NULL, 400), 0);
	stream(&k, truth, M, cdf, N);
	assert_int_equal(k.t.n, 400);
	assert_true(k.total == N);
	check_bounds(&k, truth, N);
	/* The true top 10 are items 0..9 (by construction, well separated):
	 * listed exactly, in order. */
	assert_int_equal(nlg_topk_list(&k, top, 10), 10);
	for (uint32_t r = 0; r < 10; r++) {
		uint64_t x, want = (uint64_t)r * 2654435761u;
		memcpy(&x, nlg_agg_table_key(&k.t, top[r], NULL), 8);
		if (x != want)
			fail_msg("rank %u: key %llu (count %g, true %llu), want %llu (true %llu)",
				 r, (unsigned long long)x,
				 ((struct nlg_topk_val *)nlg_agg_table_val(&k.t, top[r]))->count,
				 (unsigned long long)truth[x % 1000003], (unsigned long long)want,
				 (unsigned long long)truth[want % 1000003]);
	}
	/* Merge with a second stream: the bounds hold against the union. */
	assert_int_equal(nlg_topk_init(&k2, NULL, 400), 0);
	stream(&k2, truth, M, cdf, N / 2);
	assert_int_equal(nlg_topk_merge(&k, &k2), 0);
	assert_true(k.t.n <= 400);
	assert_true(k.total == N + N / 2);
	check_bounds(&k, truth, N + N / 2);
	assert_int_equal(nlg_topk_list(&k, top, 3), 3);
	uint64_t x;
	memcpy(&x, nlg_agg_table_key(&k.t, top[0], NULL), 8);
	assert_true(x == 0);
	nlg_topk_free(&k);
	nlg_topk_free(&k2);
	free(cdf);
	free(truth);
}

static void topk_small_is_exact(void **state)
{
	struct nlg_topk k;
	uint32_t top[8];
	(void)state;

	assert_int_equal(nlg_topk_init(&k, NULL, 8), 0);
	for (uint64_t i = 1; i <= 5; i++)
		for (uint64_t j = 0; j < i; j++)
			assert_int_equal(nlg_topk_add(&k, &i, 8, hash_u64(i), 2), 0);
	assert_int_equal(nlg_topk_list(&k, top, 8), 5);
	for (int r = 0; r < 5; r++) {
		const struct nlg_topk_val *v = nlg_agg_table_val(&k.t, top[r]);
		assert_true(v->count == 2.0 * (5 - r) && v->error == 0);
	}
	nlg_topk_clear(&k);
	assert_int_equal(nlg_topk_list(&k, top, 8), 0);
	nlg_topk_free(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table_grows_and_finds), cmocka_unit_test(table_long_keys),
	    cmocka_unit_test(table_max_keys),	     cmocka_unit_test(hll_within_three_errors),
	    cmocka_unit_test(hll_merge_is_union),    cmocka_unit_test(dd_relative_error),
	    cmocka_unit_test(dd_negative_and_zero),  cmocka_unit_test(dd_merge_is_union),
	    cmocka_unit_test(dd_collapse_bound),     cmocka_unit_test(topk_heavy_hitters),
	    cmocka_unit_test(topk_small_is_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
