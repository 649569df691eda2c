/* The six aggregators on the gw table — counter, rate, topk, distinct,
 * quantiles, ewma: their options, their values (how a key's value starts,
 * merges, is freed and shown) and their methods. Keys, panes and windows
 * are lua_agg.c's. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lua_agg_types.h"

#define ITEM_SALT 0x5ca1ab1e0ddba11ull /* distinct's items hash apart from keys */

#define OPT_WINDOW                                                                                 \
	{.name = "window",                                                                         \
	 .type = NLG_OPT_DURATION,                                                                 \
	 .off = offsetof(struct agg_conf, window),                                                 \
	 .min = 1,                                                                                 \
	 .unit = "s",                                                                              \
	 .arg = "DURATION",                                                                        \
	 .desc = "window length: tumbling, or sliding with slide"},                                \
	{                                                                                          \
		.name = "slide", .type = NLG_OPT_DURATION,                                         \
		.off = offsetof(struct agg_conf, slide), .min = 1, .unit = "s", .arg = "DURATION", \
		.desc = "a sliding window's step (window is a multiple of it)"                     \
	}
#define OPT_MAX_KEYS                                                                               \
	{                                                                                          \
		.name = "max_keys", .type = NLG_OPT_UINT,                                          \
		.off = offsetof(struct agg_conf, max_keys), .size = 4, .def = "100000", .min = 1,  \
		.max = 100000000, .arg = "N",                                                      \
		.desc = "keys kept at most; new keys past it are refused and counted"              \
	}

static int parse_accuracy(void *conf, const char *text, struct nlg_err *err)
{
	char *end;
	double v = strtod(text, &end);

	if (*end || !(v > 0 && v <= 0.5))
		return nlg_err_set(err, -EINVAL, "bad accuracy '%s' (a fraction in (0, 0.5])",
				   text);
	((struct agg_conf *)conf)->accuracy = v;
	return 0;
}

static int parse_bits(void *conf, const char *text, struct nlg_err *err)
{
	if (strcmp(text, "32") && strcmp(text, "64"))
		return nlg_err_set(err, -EINVAL, "bad bits '%s' (32 or 64)", text);
	((struct agg_conf *)conf)->bits = (uint32_t)atoi(text);
	return 0;
}

static const struct nlg_opt counter_opts[] = {OPT_WINDOW, OPT_MAX_KEYS, {0}};
static const struct nlg_opt rate_opts[] = {
    {.name = "bits",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_bits,
     .def = "64",
     .arg = "N",
     .desc = "the kernel counter's width: 32 wraps, 64 resets"},
    {.name = "expire",
     .type = NLG_OPT_DURATION,
     .off = offsetof(struct agg_conf, expire),
     .def = "10m",
     .min = 1,
     .unit = "s",
     .arg = "DURATION",
     .desc = "keys not updated for this long are dropped"},
    OPT_MAX_KEYS,
    {0},
};
static const struct nlg_opt topk_opts[] = {
    {.name = "k",
     .type = NLG_OPT_UINT,
     .off = offsetof(struct agg_conf, k),
     .size = 4,
     .def = "10",
     .min = 1,
     .max = 100000,
     .arg = "N",
     .desc = "heavy hitters listed (4k keys are monitored)"},
    OPT_WINDOW,
    {0},
};
static const struct nlg_opt distinct_opts[] = {
    {.name = "precision",
     .type = NLG_OPT_UINT,
     .off = offsetof(struct agg_conf, precision),
     .size = 4,
     .def = "14",
     .min = 4,
     .max = 18,
     .arg = "P",
     .desc = "HyperLogLog registers 2^P: standard error 1.04/sqrt(2^P)"},
    OPT_WINDOW,
    OPT_MAX_KEYS,
    {0},
};
static const struct nlg_opt quantiles_opts[] = {
    {.name = "accuracy",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_accuracy,
     .def = "0.01",
     .arg = "ALPHA",
     .desc = "relative error of any quantile"},
    OPT_WINDOW,
    OPT_MAX_KEYS,
    {0},
};
static const struct nlg_opt ewma_opts[] = {
    {.name = "half_life",
     .type = NLG_OPT_DURATION,
     .off = offsetof(struct agg_conf, half_life),
     .def = "1m",
     .min = 1,
     .unit = "s",
     .arg = "DURATION",
     .desc = "a value's weight halves in this time"},
    OPT_MAX_KEYS,
    {0},
};

static uint64_t key_hash(const unsigned char *kb, size_t kl)
{
	return nlg_agg_hash(kb, kl, agg_seed());
}

/* ---- counter --------------------------------------------------------------- */

static int counter_merge_v(struct agg *a, void *d, const void *s)
{
	NLG_UNUSED(a);
	*(double *)d += *(const double *)s;
	return 0;
}

static void counter_push(lua_State *L, struct agg *a, const void *v)
{
	NLG_UNUSED(a);
	agg_push_number(L, *(const double *)v);
}

static const struct agg_type counter_type = {
    .name = "gw.counter",
    .what = "gw.counter on_close",
    .mt = "nlgate.counter",
    .win_mt = "nlgate.counter.window",
    .kind = AGG_COUNTER,
    .windows = 1,
    .vsize = sizeof(double),
    .merge = counter_merge_v,
    .push = counter_push,
};

/* The hot path: key bytes from the view, one lookup, no allocation once
 * the key exists. */
static int counter_add(lua_State *L)
{
	struct agg *a = agg_check(L, 1, &counter_type);
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key(L, a, 2, kb, 0);
	double n = lua_isnoneornil(L, 3) ? 1 : luaL_checknumber(L, 3);
	double *v = agg_slot(L, a, kb, kl, key_hash(kb, kl));

	if (v)
		*v += n;
	return 0;
}

static double counter_value(lua_State *L, struct agg_reader *r, int idx)
{
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key_read(L, r->a, idx, kb);
	uint64_t h;
	double sum = 0;
	const double *v;

	if (!kl)
		return 0;
	h = key_hash(kb, kl);
	if (r->p) {
		v = nlg_agg_table_get(&r->p->t, kb, kl, h);
		return v ? *v : 0;
	}
	for (unsigned i = 0; i < r->a->npanes; i++) /* a live sliding window: its panes */
		if ((v = nlg_agg_table_get(&r->a->panes[i].t, kb, kl, h)))
			sum += *v;
	return sum;
}

static int counter_get(lua_State *L)
{
	struct agg_reader r;

	agg_reader(L, 1, &counter_type, &r);
	agg_push_number(L, counter_value(L, &r, 2));
	return 1;
}

static int counter_rate(lua_State *L)
{
	struct agg_reader r;
	double v, secs;

	agg_reader(L, 1, &counter_type, &r);
	v = counter_value(L, &r, 2);
	secs = r.end > r.start ? (double)(r.end - r.start) / 1e9 : 0;
	lua_pushnumber(L, secs > 0 ? v / secs : 0);
	return 1;
}

struct rank {
	double v;
	uint32_t i;
};

static int rank_desc(const void *x, const void *y)
{
	const struct rank *a = x, *b = y;
	if (a->v != b->v)
		return a->v < b->v ? 1 : -1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static int counter_top(lua_State *L)
{
	struct agg_reader r;
	union agg_pane *p;
	lua_Integer n;
	struct rank *rk;

	agg_reader(L, 1, &counter_type, &r);
	n = luaL_optinteger(L, 2, 10);
	p = agg_read_pane(L, &r);
	if (n > (lua_Integer)p->t.n)
		n = p->t.n;
	if (n < 0)
		n = 0;
	rk = lua_newuserdatauv(L, (p->t.n ? p->t.n : 1) * sizeof(*rk), 0);
	for (uint32_t i = 0; i < p->t.n; i++)
		rk[i] = (struct rank){*(const double *)nlg_agg_table_val(&p->t, i), i};
	qsort(rk, p->t.n, sizeof(*rk), rank_desc);
	lua_createtable(L, (int)n, 0);
	for (lua_Integer i = 0; i < n; i++) {
		size_t kl;
		const unsigned char *k = nlg_agg_table_key(&p->t, rk[i].i, &kl);
		lua_createtable(L, 0, 2);
		agg_push_key(L, r.a, k, kl);
		lua_setfield(L, -2, "key");
		agg_push_number(L, rk[i].v);
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int counter_new(lua_State *L)
{
	static const luaL_Reg m[] = {
	    {"add", counter_add},   {"get", counter_get},   {"rate", counter_rate},
	    {"pairs", agg_m_pairs}, {"top", counter_top},   {"size", agg_m_size},
	    {"reset", agg_m_reset}, {"stats", agg_m_stats}, {NULL, NULL},
	};
	static const luaL_Reg w[] = {
	    {"get", counter_get},     {"rate", counter_rate}, {"pairs", agg_m_pairs},
	    {"top", counter_top},     {"size", agg_m_size},   {"start", agg_m_start},
	    {"finish", agg_m_finish}, {NULL, NULL},
	};
	agg_register(L, &counter_type, m, w);
	agg_new(L, &counter_type, counter_opts);
	return 1;
}

/* ---- rate ------------------------------------------------------------------ */

struct rate_val {
	uint64_t last, t; /* t second: lua_agg.c's sweep reads it */
	uint64_t seen;
};

static void rate_push(lua_State *L, struct agg *a, const void *v)
{
	NLG_UNUSED(a);
	lua_pushinteger(L, (lua_Integer)((const struct rate_val *)v)->last);
}

static const struct agg_type rate_type = {
    .name = "gw.rate",
    .what = "gw.rate",
    .mt = "nlgate.rate",
    .win_mt = "nlgate.rate.window",
    .kind = AGG_RATE,
    .vsize = sizeof(struct rate_val),
    .push = rate_push,
};

static int rate_update(lua_State *L)
{
	struct agg *a = agg_check(L, 1, &rate_type);
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key(L, a, 2, kb, 0);
	lua_Integer total = luaL_checkinteger(L, 3);
	uint64_t now = nlg_gw_clock_ns(a->gw), cur = (uint64_t)total, delta;
	struct rate_val *v;

	if (a->bits == 32 && cur > 0xffffffffull)
		return luaL_error(L, "gw.rate: total %I does not fit 32 bits", total);
	if (now >= a->next_sweep)
		agg_sweep(a);
	if (!(v = agg_slot(L, a, kb, kl, key_hash(kb, kl))) || !v->seen ||
	    (now > v->t && now - v->t >= a->expire_ns)) {
		if (v)
			*v = (struct rate_val){.last = cur, .t = now, .seen = 1};
		lua_pushnil(L);
		lua_pushnil(L);
		return 2;
	}
	if (cur >= v->last)
		delta = cur - v->last;
	else if (a->bits == 32) /* wrapped */
		delta = cur + 0x100000000ull - v->last;
	else /* a 64-bit counter going down was reset */
		delta = cur;
	lua_pushinteger(L, (lua_Integer)delta);
	if (now > v->t)
		lua_pushnumber(L, (double)delta / ((double)(now - v->t) / 1e9));
	else /* no time passed (or the clock went back): no rate */
		lua_pushnil(L);
	v->last = cur;
	v->t = now;
	return 2;
}

static int rate_new(lua_State *L)
{
	static const luaL_Reg m[] = {
	    {"update", rate_update}, {"pairs", agg_m_pairs}, {"size", agg_m_size},
	    {"reset", agg_m_reset},  {"stats", agg_m_stats}, {NULL, NULL},
	};
	static const luaL_Reg w[] = {{NULL, NULL}};
	agg_register(L, &rate_type, m, w);
	agg_new(L, &rate_type, rate_opts);
	return 1;
}

/* ---- topk ------------------------------------------------------------------ */

static const struct agg_type topk_type = {
    .name = "gw.topk",
    .what = "gw.topk on_close",
    .mt = "nlgate.topk",
    .win_mt = "nlgate.topk.window",
    .kind = AGG_TOPK,
    .windows = 1,
};

static int topk_add(lua_State *L)
{
	struct agg *a = agg_check(L, 1, &topk_type);
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key(L, a, 2, kb, 0);
	double w = luaL_optnumber(L, 3, 1);

	if (!(w > 0) || !isfinite(w))
		return luaL_error(L, "gw.topk: weight must be a positive number");
	if (nlg_topk_add(&a->panes[a->cur].k, kb, kl, key_hash(kb, kl), w) < 0)
		return agg_oom(L, a);
	return 0;
}

static int topk_top(lua_State *L)
{
	struct agg_reader r;
	union agg_pane *p;
	lua_Integer n;
	uint32_t *idx;
	size_t m;

	agg_reader(L, 1, &topk_type, &r);
	n = luaL_optinteger(L, 2, r.a->k);
	if (n > (lua_Integer)r.a->k)
		n = r.a->k;
	if (n < 0)
		n = 0;
	p = agg_read_pane(L, &r);
	idx = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof(*idx), 0);
	m = nlg_topk_list(&p->k, idx, (size_t)n);
	if (!m && p->k.t.n && n)
		return agg_oom(L, r.a);
	lua_createtable(L, (int)m, 0);
	for (size_t i = 0; i < m; i++) {
		size_t kl;
		const unsigned char *k = nlg_agg_table_key(&p->k.t, idx[i], &kl);
		const struct nlg_topk_val *v = nlg_agg_table_val(&p->k.t, idx[i]);
		lua_createtable(L, 0, 3);
		agg_push_key(L, r.a, k, kl);
		lua_setfield(L, -2, "key");
		agg_push_number(L, v->count);
		lua_setfield(L, -2, "value");
		agg_push_number(L, v->error);
		lua_setfield(L, -2, "error");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int topk_new(lua_State *L)
{
	static const luaL_Reg m[] = {
	    {"add", topk_add},	    {"top", topk_top},	    {"size", agg_m_size},
	    {"reset", agg_m_reset}, {"stats", agg_m_stats}, {NULL, NULL},
	};
	static const luaL_Reg w[] = {
	    {"top", topk_top},	      {"size", agg_m_size}, {"start", agg_m_start},
	    {"finish", agg_m_finish}, {NULL, NULL},
	};
	agg_register(L, &topk_type, m, w);
	agg_new(L, &topk_type, topk_opts);
	return 1;
}

/* ---- distinct ---------------------------------------------------------------- */

static int distinct_init(struct agg *a, void *v)
{
	return nlg_hll_init(v, &a->mem, a->precision);
}

static int distinct_merge_v(struct agg *a, void *d, const void *s)
{
	NLG_UNUSED(a);
	return nlg_hll_merge(d, s);
}

static void distinct_free(void *v, void *a)
{
	nlg_hll_free(v, &((struct agg *)a)->mem);
}

static void distinct_push(lua_State *L, struct agg *a, const void *v)
{
	NLG_UNUSED(a);
	lua_pushinteger(L, (lua_Integer)llround(nlg_hll_count(v)));
}

static const struct agg_type distinct_type = {
    .name = "gw.distinct",
    .what = "gw.distinct on_close",
    .mt = "nlgate.distinct",
    .win_mt = "nlgate.distinct.window",
    .kind = AGG_DISTINCT,
    .windows = 1,
    .vsize = sizeof(struct nlg_hll),
    .init = distinct_init,
    .merge = distinct_merge_v,
    .free = distinct_free,
    .push = distinct_push,
};

/* d:add(key, item); with of, the item from a view: d:add(r) (by, or one
 * stream), d:add(key, r). */
static int distinct_add(lua_State *L)
{
	struct agg *a = agg_check(L, 1, &distinct_type);
	unsigned char kb[AGG_KEYBUF], ib[AGG_KEYBUF];
	size_t kl, il;
	struct nlg_hll *v;

	if (!a->of.nf) {
		kl = agg_key(L, a, 2, kb, 0);
		il = agg_plain(L, 3, ib, 0, "gw.distinct");
	} else if (a->by.nf || agg_is_view(L, 2)) {
		kb[0] = 'n'; /* no by: the one stream, d:count() */
		kl = a->by.nf ? agg_key(L, a, 2, kb, 0) : 1;
		il = agg_item_view(L, a, 2, ib);
	} else {
		kl = agg_key(L, a, 2, kb, 0);
		il = agg_item_view(L, a, 3, ib);
	}
	if ((v = agg_slot(L, a, kb, kl, key_hash(kb, kl))))
		nlg_hll_add(v, nlg_agg_hash(ib, il, agg_seed() ^ ITEM_SALT));
	return 0;
}

/* The value of the key at idx in what r reads, or NULL. */
static const void *read_value(lua_State *L, struct agg_reader *r, int idx)
{
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key_read(L, r->a, idx, kb);
	union agg_pane *p;

	if (!kl)
		return NULL;
	p = agg_read_pane(L, r);
	return nlg_agg_table_get(&p->t, kb, kl, key_hash(kb, kl));
}

static int distinct_count(lua_State *L)
{
	struct agg_reader r;
	const struct nlg_hll *v;

	agg_reader(L, 1, &distinct_type, &r);
	v = read_value(L, &r, 2);
	lua_pushinteger(L, v ? (lua_Integer)llround(nlg_hll_count(v)) : 0);
	return 1;
}

static int distinct_new(lua_State *L)
{
	static const luaL_Reg m[] = {
	    {"add", distinct_add},  {"count", distinct_count},
	    {"merge", agg_m_merge}, {"pairs", agg_m_pairs},
	    {"size", agg_m_size},   {"reset", agg_m_reset},
	    {"stats", agg_m_stats}, {NULL, NULL},
	};
	static const luaL_Reg w[] = {
	    {"count", distinct_count}, {"pairs", agg_m_pairs},	 {"size", agg_m_size},
	    {"start", agg_m_start},    {"finish", agg_m_finish}, {NULL, NULL},
	};
	agg_register(L, &distinct_type, m, w);
	agg_new(L, &distinct_type, distinct_opts);
	return 1;
}

/* ---- quantiles --------------------------------------------------------------- */

static int quant_init(struct agg *a, void *v)
{
	return nlg_dd_init(v, a->accuracy, 0);
}

static int quant_merge_v(struct agg *a, void *d, const void *s)
{
	return nlg_dd_merge(d, &a->mem, s);
}

static void quant_free(void *v, void *a)
{
	nlg_dd_free(v, &((struct agg *)a)->mem);
}

static void quant_push(lua_State *L, struct agg *a, const void *v)
{
	NLG_UNUSED(a);
	lua_pushinteger(L, (lua_Integer)((const struct nlg_ddsketch *)v)->n);
}

static const struct agg_type quant_type = {
    .name = "gw.quantiles",
    .what = "gw.quantiles on_close",
    .mt = "nlgate.quantiles",
    .win_mt = "nlgate.quantiles.window",
    .kind = AGG_QUANTILES,
    .windows = 1,
    .vsize = sizeof(struct nlg_ddsketch),
    .init = quant_init,
    .merge = quant_merge_v,
    .free = quant_free,
    .push = quant_push,
};

static int quant_add(lua_State *L)
{
	struct agg *a = agg_check(L, 1, &quant_type);
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key(L, a, 2, kb, 0);
	double x = luaL_checknumber(L, 3);
	struct nlg_ddsketch *v;
	int rc;

	if (!isfinite(x))
		return luaL_error(L, "gw.quantiles: value must be a finite number");
	if ((v = agg_slot(L, a, kb, kl, key_hash(kb, kl))) && (rc = nlg_dd_add(v, &a->mem, x)) < 0)
		return agg_oom(L, a);
	return 0;
}

static int quant_quantile(lua_State *L)
{
	struct agg_reader r;
	const struct nlg_ddsketch *v;
	double q;

	agg_reader(L, 1, &quant_type, &r);
	q = luaL_checknumber(L, 3);
	if (!(q >= 0 && q <= 1))
		return luaL_error(L, "gw.quantiles: quantile must be in [0, 1]");
	v = read_value(L, &r, 2);
	if (!v || !v->n)
		return lua_pushnil(L), 1;
	lua_pushnumber(L, nlg_dd_quantile(v, q));
	return 1;
}

static int quant_count(lua_State *L)
{
	struct agg_reader r;
	const struct nlg_ddsketch *v;

	agg_reader(L, 1, &quant_type, &r);
	v = read_value(L, &r, 2);
	lua_pushinteger(L, v ? (lua_Integer)v->n : 0);
	return 1;
}

static int quant_new(lua_State *L)
{
	static const luaL_Reg m[] = {
	    {"add", quant_add},	    {"quantile", quant_quantile}, {"count", quant_count},
	    {"merge", agg_m_merge}, {"pairs", agg_m_pairs},	  {"size", agg_m_size},
	    {"reset", agg_m_reset}, {"stats", agg_m_stats},	  {NULL, NULL},
	};
	static const luaL_Reg w[] = {
	    {"quantile", quant_quantile},
	    {"count", quant_count},
	    {"pairs", agg_m_pairs},
	    {"size", agg_m_size},
	    {"start", agg_m_start},
	    {"finish", agg_m_finish},
	    {NULL, NULL},
	};
	agg_register(L, &quant_type, m, w);
	agg_new(L, &quant_type, quantiles_opts);
	return 1;
}

/* ---- ewma -------------------------------------------------------------------- */

/* A time-decayed mean: every value weighs 2^(-age / half_life), so equal
 * times weigh equally and the first value is the mean. */
struct ewma_val {
	double s, w;
	uint64_t t;
};

static void ewma_push(lua_State *L, struct agg *a, const void *v)
{
	const struct ewma_val *e = v;
	NLG_UNUSED(a);
	lua_pushnumber(L, e->s / e->w);
}

static const struct agg_type ewma_type = {
    .name = "gw.ewma",
    .what = "gw.ewma",
    .mt = "nlgate.ewma",
    .win_mt = "nlgate.ewma.window",
    .kind = AGG_EWMA,
    .vsize = sizeof(struct ewma_val),
    .push = ewma_push,
};

static int ewma_update(lua_State *L)
{
	struct agg *a = agg_check(L, 1, &ewma_type);
	unsigned char kb[AGG_KEYBUF];
	size_t kl = agg_key(L, a, 2, kb, 0);
	double x = luaL_checknumber(L, 3);
	uint64_t now = nlg_gw_clock_ns(a->gw);
	struct ewma_val *v;

	if (!isfinite(x))
		return luaL_error(L, "gw.ewma: value must be a finite number");
	if (!(v = agg_slot(L, a, kb, kl, key_hash(kb, kl))))
		return lua_pushnil(L), 1;
	if (v->w == 0) {
		*v = (struct ewma_val){.s = x, .w = 1, .t = now};
	} else {
		/* the clock going back decays nothing */
		double d = now > v->t ? exp2(-(double)(now - v->t) / (double)a->half_life_ns) : 1;
		v->s = v->s * d + x;
		v->w = v->w * d + 1;
		if (now > v->t)
			v->t = now;
	}
	lua_pushnumber(L, v->s / v->w);
	return 1;
}

static int ewma_get(lua_State *L)
{
	struct agg_reader r;
	const struct ewma_val *v;

	agg_reader(L, 1, &ewma_type, &r);
	v = read_value(L, &r, 2);
	if (!v)
		return lua_pushnil(L), 1;
	lua_pushnumber(L, v->s / v->w);
	return 1;
}

static int ewma_new(lua_State *L)
{
	static const luaL_Reg m[] = {
	    {"update", ewma_update},
	    {"get", ewma_get},
	    {"pairs", agg_m_pairs},
	    {"size", agg_m_size},
	    {"reset", agg_m_reset},
	    {"stats", agg_m_stats},
	    {NULL, NULL},
	};
	static const luaL_Reg w[] = {{NULL, NULL}};
	agg_register(L, &ewma_type, m, w);
	agg_new(L, &ewma_type, ewma_opts);
	return 1;
}

/* gw._virtual_clock(seconds | nil): module mode only (a plain interpreter
 * owning its loop, never the daemon's or a pipeline's sandbox), for specs
 * that set the gateway clock back; nil returns to CLOCK_REALTIME. */
static int virtual_clock(lua_State *L)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	lua_Number s;

	if (lua_isnoneornil(L, 1)) {
		gw->virtual_clock = 0;
		return 0;
	}
	s = luaL_checknumber(L, 1);
	if (!(s >= 0 && s < 1e11))
		return luaL_error(L, "gw._virtual_clock: bad time %f", (double)s);
	gw->clock_ns = (uint64_t)(s * 1e9);
	gw->virtual_clock = 1;
	return 0;
}

void nlg_lua_agg_open(lua_State *L)
{
	static const luaL_Reg ctors[] = {
	    {"counter", counter_new},
	    {"rate", rate_new},
	    {"topk", topk_new},
	    {"distinct", distinct_new},
	    {"quantiles", quant_new},
	    {"ewma", ewma_new},
	    {NULL, NULL},
	};
	luaL_setfuncs(L, ctors, 0);
	if (nlg_gw_get(L)->own_loop) {
		lua_pushcfunction(L, virtual_clock);
		lua_setfield(L, -2, "_virtual_clock");
	}
}
