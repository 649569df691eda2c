/* DDSketch: quantiles with a relative error bound, from log-mapped bucket
 * counts in two bounded stores (positive and negative values) and a zero
 * count; mergeable by adding counts. No Lua. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "nlgate/agg.h"

int nlg_dd_init(struct nlg_ddsketch *d, double alpha, uint32_t max_buckets)
{
	memset(d, 0, sizeof(*d));
	if (!(alpha > 0 && alpha <= 0.5))
		return -EINVAL;
	if (!max_buckets)
		max_buckets = 2048;
	if (max_buckets < 16)
		return -EINVAL;
	d->alpha = alpha;
	d->gamma = (1 + alpha) / (1 - alpha);
	d->lg = log(d->gamma);
	d->max_buckets = max_buckets;
	d->min = INFINITY;
	d->max = -INFINITY;
	return 0;
}

static void store_free(struct nlg_dd_store *s, struct nlg_agg_mem *mem)
{
	if (s->c)
		nlg_agg_realloc(mem, s->c, (size_t)s->alloc * sizeof(*s->c), 0);
	memset(s, 0, sizeof(*s));
}

void nlg_dd_free(struct nlg_ddsketch *d, struct nlg_agg_mem *mem)
{
	store_free(&d->pos, mem);
	store_free(&d->neg, mem);
}

void nlg_dd_clear(struct nlg_ddsketch *d, struct nlg_agg_mem *mem)
{
	nlg_dd_free(d, mem);
	d->zero = d->n = 0;
	d->sum = 0;
	d->min = INFINITY;
	d->max = -INFINITY;
}

/* Bucket i holds (gamma^(i-1), gamma^i]. */
int32_t nlg_dd_index(const struct nlg_ddsketch *d, double x)
{
	return (int32_t)ceil(log(x) / d->lg);
}

/* The value reported for bucket i: within alpha of all it holds. */
static double bucket_value(const struct nlg_ddsketch *d, int64_t i)
{
	return 2 * exp((double)i * d->lg) / (1 + d->gamma);
}

/* Make the store cover [nlo, nhi] (at most max buckets, which the caller
 * ensured); counts outside fold into the nearest edge bucket. */
static int reshape(struct nlg_dd_store *s, struct nlg_agg_mem *mem, int64_t nlo, int64_t nhi)
{
	uint32_t len = (uint32_t)(nhi - nlo + 1);
	uint64_t *c;

	if (s->len && nlo == s->lo && nhi >= s->lo + (int64_t)s->len - 1 && len <= s->alloc) {
		memset(s->c + s->len, 0, (size_t)(len - s->len) * sizeof(*c));
		s->len = len;
		return 0;
	}
	uint32_t alloc = len > s->alloc ? (len + 31) & ~31u : s->alloc;
	c = nlg_agg_realloc(mem, NULL, 0, (size_t)alloc * sizeof(*c));
	if (!c)
		return -ENOMEM;
	memset(c, 0, (size_t)alloc * sizeof(*c));
	for (uint32_t j = 0; j < s->len; j++) {
		int64_t k = s->lo + (int64_t)j;
		if (!s->c[j])
			continue;
		k = k < nlo ? nlo : k > nhi ? nhi : k;
		c[k - nlo] += s->c[j];
	}
	if (s->c)
		nlg_agg_realloc(mem, s->c, (size_t)s->alloc * sizeof(*c), 0);
	s->c = c;
	s->alloc = alloc;
	s->lo = (int32_t)nlo;
	s->len = len;
	return 0;
}

/* Add n at bucket i; past max buckets the low end (collapse_low) or the
 * high end folds into the first bucket kept. */
static int store_add(struct nlg_dd_store *s, struct nlg_agg_mem *mem, int64_t i, uint64_t n,
		     uint32_t max, int collapse_low)
{
	int64_t lo = s->len ? s->lo : i, hi = s->len ? s->lo + (int64_t)s->len - 1 : i;
	int64_t nlo = i < lo ? i : lo, nhi = i > hi ? i : hi;
	int rc;

	if (nhi - nlo + 1 > (int64_t)max) {
		s->collapsed = 1;
		if (collapse_low)
			nlo = nhi - max + 1;
		else
			nhi = nlo + max - 1;
		i = i < nlo ? nlo : i > nhi ? nhi : i;
	}
	if (!s->len || nlo != s->lo || nhi != hi) {
		if ((rc = reshape(s, mem, nlo, nhi)) < 0)
			return rc;
	}
	s->c[i - s->lo] += n;
	return 0;
}

static int add_n(struct nlg_ddsketch *d, struct nlg_agg_mem *mem, double x, uint64_t n)
{
	int rc = 0;

	if (x >= DBL_MIN)
		rc = store_add(&d->pos, mem, nlg_dd_index(d, x), n, d->max_buckets, 1);
	else if (x <= -DBL_MIN)
		rc = store_add(&d->neg, mem, nlg_dd_index(d, -x), n, d->max_buckets, 0);
	else
		d->zero += n;
	return rc;
}

int nlg_dd_add(struct nlg_ddsketch *d, struct nlg_agg_mem *mem, double x)
{
	int rc;

	if (!isfinite(x))
		return -EINVAL;
	if ((rc = add_n(d, mem, x, 1)) < 0)
		return rc;
	d->n++;
	d->sum += x;
	if (x < d->min)
		d->min = x;
	if (x > d->max)
		d->max = x;
	return 0;
}

double nlg_dd_quantile(const struct nlg_ddsketch *d, double q)
{
	double rank, v = NAN;
	uint64_t seen = 0;

	if (!d->n || !(q >= 0 && q <= 1))
		return NAN;
	rank = floor(q * (double)(d->n - 1));
	if (rank <= 0) /* the ends are known exactly */
		return d->min;
	if (rank >= (double)(d->n - 1))
		return d->max;
	/* Ascending values: the most negative first. */
	for (int64_t j = (int64_t)d->neg.len - 1; j >= 0; j--) {
		seen += d->neg.c[j];
		if ((double)seen > rank) {
			v = -bucket_value(d, d->neg.lo + j);
			goto found;
		}
	}
	seen += d->zero;
	if ((double)seen > rank) {
		v = 0;
		goto found;
	}
	for (uint32_t j = 0; j < d->pos.len; j++) {
		seen += d->pos.c[j];
		if ((double)seen > rank) {
			v = bucket_value(d, d->pos.lo + (int64_t)j);
			goto found;
		}
	}
	v = d->max;
found:
	/* The exact value lies in [min, max]: clamping only brings v nearer. */
	return v < d->min ? d->min : v > d->max ? d->max : v;
}

int nlg_dd_merge(struct nlg_ddsketch *dst, struct nlg_agg_mem *mem, const struct nlg_ddsketch *src)
{
	int rc;

	if (dst->gamma != src->gamma)
		return -EINVAL;
	for (uint32_t j = 0; j < src->pos.len; j++)
		if (src->pos.c[j] && (rc = store_add(&dst->pos, mem, src->pos.lo + (int64_t)j,
						     src->pos.c[j], dst->max_buckets, 1)) < 0)
			return rc;
	for (uint32_t j = 0; j < src->neg.len; j++)
		if (src->neg.c[j] && (rc = store_add(&dst->neg, mem, src->neg.lo + (int64_t)j,
						     src->neg.c[j], dst->max_buckets, 0)) < 0)
			return rc;
	dst->pos.collapsed |= src->pos.collapsed;
	dst->neg.collapsed |= src->neg.collapsed;
	dst->zero += src->zero;
	dst->n += src->n;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	return 0;
}
