/* HyperLogLog with dense one-byte registers and Ertl's improved estimator
 * (unbiased over the whole range without bias tables; with many empty
 * registers it is linear counting). No Lua. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "nlgate/agg.h"

int nlg_hll_init(struct nlg_hll *h, struct nlg_agg_mem *mem, unsigned p)
{
	h->p = (uint8_t)p;
	h->reg = NULL;
	if (p < 4 || p > 18)
		return -EINVAL;
	h->reg = nlg_agg_realloc(mem, NULL, 0, (size_t)1 << p);
	if (!h->reg)
		return -ENOMEM;
	memset(h->reg, 0, (size_t)1 << p);
	return 0;
}

void nlg_hll_free(struct nlg_hll *h, struct nlg_agg_mem *mem)
{
	if (h->reg)
		nlg_agg_realloc(mem, h->reg, (size_t)1 << h->p, 0);
	h->reg = NULL;
}

void nlg_hll_clear(struct nlg_hll *h)
{
	memset(h->reg, 0, (size_t)1 << h->p);
}

/* The low p bits pick the register; the rank is the position of the lowest
 * set bit among the other 64 - p (64 - p + 1 when none is set). */
void nlg_hll_add(struct nlg_hll *h, uint64_t hash)
{
	uint64_t w = hash >> h->p;
	uint8_t r = w ? (uint8_t)(__builtin_ctzll(w) + 1) : (uint8_t)(64 - h->p + 1);
	uint8_t *reg = &h->reg[hash & (((uint64_t)1 << h->p) - 1)];

	if (r > *reg)
		*reg = r;
}

int nlg_hll_merge(struct nlg_hll *dst, const struct nlg_hll *src)
{
	if (dst->p != src->p)
		return -EINVAL;
	for (size_t i = 0; i < (size_t)1 << dst->p; i++)
		if (src->reg[i] > dst->reg[i])
			dst->reg[i] = src->reg[i];
	return 0;
}

double nlg_hll_error(unsigned p)
{
	return 1.04 / sqrt((double)((uint64_t)1 << p));
}

static double sigma(double x)
{
	double y = 1, z = x, zp;

	if (x == 1)
		return INFINITY;
	do {
		x *= x;
		zp = z;
		z += x * y;
		y += y;
	} while (z != zp);
	return z;
}

static double tau(double x)
{
	double y = 1, z = 1 - x, zp;

	if (x == 0 || x == 1)
		return 0;
	do {
		x = sqrt(x);
		zp = z;
		y *= 0.5;
		z -= (1 - x) * (1 - x) * y;
	} while (z != zp);
	return z / 3;
}

double nlg_hll_count(const struct nlg_hll *h)
{
	unsigned q = 64 - h->p;
	uint32_t c[66] = {0};
	double m = (double)((uint64_t)1 << h->p), z;

	for (size_t i = 0; i < (size_t)1 << h->p; i++)
		c[h->reg[i]]++;
	if (c[0] == (uint32_t)m)
		return 0;
	z = m * tau((m - c[q + 1]) / m);
	for (unsigned k = q; k >= 1; k--) {
		z += c[k];
		z *= 0.5;
	}
	z += m * sigma(c[0] / m);
	return 0.5 / log(2) * m * m / z;
}
