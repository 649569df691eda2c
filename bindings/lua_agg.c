/* The aggregators' shared half: panes of key → value tables, tumbling and
 * sliding windows closing on the gateway clock from a loop timer, on_close
 * with a read-only window object, and the methods every aggregator
 * answers. Keys are lua_agg_key.c's, the values lua_agg_kinds.c's. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lua_agg_types.h"

#define SELF_KEY "nlgate.agg.self" /* weak: agg pointer → its userdata */

uint64_t agg_seed(void)
{
	static uint64_t seed;

	/* One seed per process (merges reuse stored hashes), random so keys
	 * from the network cannot be chosen to collide. */
	if (!seed && getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = nlg_realtime_ns() ^ (uint64_t)(uintptr_t)&seed;
	seed |= 1;
	return seed;
}

void agg_push_number(lua_State *L, double v)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, v);
}

/* ---- panes ------------------------------------------------------------------ */

static void val_free(void *v, void *ctx)
{
	struct agg *a = ctx;
	a->type->free(v, a);
}

static int pane_init(struct agg *a, union agg_pane *p, uint32_t max_keys)
{
	if (a->type->kind == AGG_TOPK)
		return nlg_topk_init(&p->k, &a->mem, a->k * 4);
	/* a plain key's tag and a short string inline; keys from views all
	 * have one length, which the first sets */
	nlg_agg_table_init(&p->t, &a->mem, a->by.nf ? 0 : 24, a->type->vsize, max_keys);
	if (a->type->free) {
		p->t.val_free = val_free;
		p->t.ctx = a;
	}
	return 0;
}

static void pane_clear(struct agg *a, union agg_pane *p)
{
	if (a->type->kind == AGG_TOPK) {
		nlg_topk_clear(&p->k);
		return;
	}
	a->dropped += p->t.dropped;
	p->t.dropped = 0;
	nlg_agg_table_clear(&p->t);
}

static void pane_free(struct agg *a, union agg_pane *p)
{
	if (a->type->kind == AGG_TOPK) {
		nlg_topk_free(&p->k);
		return;
	}
	a->dropped += p->t.dropped;
	nlg_agg_table_free(&p->t);
}

/* Merge src into dst (src may belong to another aggregator of the type). */
static int pane_merge(struct agg *a, union agg_pane *dst, const union agg_pane *src)
{
	if (a->type->kind == AGG_TOPK)
		return nlg_topk_merge(&dst->k, &src->k);
	for (uint32_t i = 0; i < src->t.n; i++) {
		size_t kl;
		const void *k = nlg_agg_table_key(&src->t, i, &kl);
		void *v;
		int rc = nlg_agg_table_put(&dst->t, k, kl, nlg_agg_table_hash(&src->t, i), &v);
		if (rc == -ENOSPC)
			continue;
		if (rc < 0)
			return rc;
		if (rc == 1 && a->type->init && (rc = a->type->init(a, v)) < 0) {
			nlg_agg_table_del_at(&dst->t, dst->t.n - 1);
			return rc;
		}
		if ((rc = a->type->merge(a, v, nlg_agg_table_val(&src->t, i))) < 0)
			return rc;
	}
	return 0;
}

void *agg_slot(lua_State *L, struct agg *a, const void *kb, size_t kl, uint64_t h)
{
	struct nlg_agg_table *t = &a->panes[a->cur].t;
	void *v;
	int rc = nlg_agg_table_put(t, kb, kl, h, &v);

	if (rc == 1 && a->type->init && a->type->init(a, v) < 0) {
		nlg_agg_table_del_at(t, t->n - 1);
		agg_oom(L, a);
	}
	if (rc == -ENOSPC)
		return NULL;
	if (rc < 0)
		agg_oom(L, a);
	return v;
}

/* ---- readers ---------------------------------------------------------------- */

static uint64_t live_start(const struct agg *a)
{
	int64_t s = a->window_ns ? (int64_t)(a->pane_start + a->slide_ns) - (int64_t)a->window_ns
				 : (int64_t)a->since;
	return s > (int64_t)a->since ? (uint64_t)s : a->since;
}

void agg_reader(lua_State *L, int idx, const struct agg_type *type, struct agg_reader *r)
{
	void *u = lua_touserdata(L, idx);
	size_t len = lua_rawlen(L, idx);
	struct agg *a = u;
	struct agg_win *w = u;

	if (u && len == sizeof(*a) && a->magic == AGG_MAGIC && (!type || a->type == type)) {
		r->a = a;
		r->p = a->npanes == 1 ? &a->panes[0] : NULL;
		r->start = live_start(a);
		r->end = nlg_gw_clock_ns(a->gw);
		r->closed = 0;
		return;
	}
	if (u && len == sizeof(*w) && w->magic == WIN_MAGIC && (!type || w->type == type)) {
		if (!w->valid)
			luaL_error(L, "%s window used after its on_close returned", w->type->name);
		r->a = w->a;
		r->p = w->p;
		r->start = w->since;
		r->end = w->end;
		r->closed = 1;
		return;
	}
	luaL_typeerror(L, idx, type ? type->mt : "aggregator");
}

union agg_pane *agg_read_pane(lua_State *L, struct agg_reader *r)
{
	struct agg *a = r->a;
	union agg_pane *live = &a->panes[a->npanes + 1];

	if (r->p)
		return r->p;
	pane_clear(a, live);
	for (unsigned i = 0; i < a->npanes; i++)
		if (pane_merge(a, live, &a->panes[i]) < 0)
			agg_oom(L, a);
	return r->p = live;
}

/* ---- windows ----------------------------------------------------------------- */

static void win_close(lua_State *L, struct agg *a)
{
	struct nlg_gw *gw = a->gw;
	uint64_t end = a->pane_start + a->slide_ns;
	union agg_pane *closed = &a->panes[a->npanes];

	pane_clear(a, closed);
	if (a->npanes == 1) { /* the pane becomes the closed window; adds go on */
		union agg_pane t = *closed;
		*closed = a->panes[0];
		a->panes[0] = t;
		if (a->type->kind != AGG_TOPK) {
			a->panes[0].t.max_keys = a->max_keys;
			closed->t.max_keys = 0;
		}
	} else {
		for (unsigned i = 0; i < a->npanes; i++)
			if (pane_merge(a, closed, &a->panes[i]) < 0)
				nlg_gw_log("%s: out of memory merging a window's panes",
					   a->type->name);
		a->cur = (a->cur + 1) % a->npanes;
		pane_clear(a, &a->panes[a->cur]); /* the oldest leaves the window */
	}
	a->pane_start = end;
	a->windows++;
	if (a->on_close_ref != LUA_NOREF) {
		struct agg_win *w = lua_newuserdatauv(L, sizeof(*w), 0);
		int64_t start = (int64_t)end - (int64_t)a->window_ns;
		*w = (struct agg_win){.magic = WIN_MAGIC,
				      .type = a->type,
				      .a = a,
				      .p = closed,
				      .start = start,
				      .end = end,
				      .since =
					  start > (int64_t)a->since ? (uint64_t)start : a->since,
				      .valid = 1};
		luaL_setmetatable(L, a->type->win_mt);
		lua_rawgeti(L, LUA_REGISTRYINDEX, a->on_close_ref);
		lua_pushvalue(L, -2);
		int rc = nlg_gw_call(gw, L, 1, a->type->what);
		nlg_gw_outcome(gw, L, rc, &a->fails, &a->on_close_ref, a->type->what);
		w->valid = 0;
		w->a = NULL;
		w->p = NULL;
		lua_pop(L, 1);
	}
	pane_clear(a, closed);
}

static int64_t next_delay(const struct agg *a, uint64_t now)
{
	uint64_t end = a->pane_start + a->slide_ns, ms;

	ms = end > now ? (end - now + 999999) / 1000000 : 1;
	/* a clock set back far: look again each slide, not once in an hour */
	if (ms > a->slide_ns / 1000000)
		ms = a->slide_ns / 1000000;
	return ms ? (int64_t)ms : 1;
}

/* The windows due at the time given: in a protected call (a window object
 * is allocated), with the aggregator on the stack while on_close runs, so it
 * cannot be collected. */
static int fire_due(lua_State *L)
{
	struct agg *a = lua_touserdata(L, 1);
	uint64_t now = (uint64_t)lua_tointeger(L, 2);
	unsigned n = 0;

	lua_getfield(L, LUA_REGISTRYINDEX, SELF_KEY);
	if (lua_rawgetp(L, -1, a) != LUA_TUSERDATA) { /* being finalized */
		a->timer_id = 0;
		return 0;
	}
	while (now >= a->pane_start + a->slide_ns) {
		if (n++ == AGG_CATCHUP) { /* a jump: the rest are empty, skip them */
			uint64_t start = now - now % a->slide_ns;
			a->skipped += (start - a->pane_start) / a->slide_ns;
			a->pane_start = start;
			for (unsigned i = 0; i < a->npanes; i++)
				pane_clear(a, &a->panes[i]);
			break;
		}
		win_close(L, a);
	}
	return 0;
}

static int64_t win_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct agg *a = data;
	struct nlg_gw *gw = a->gw;
	lua_State *L = gw->L;
	uint64_t now = nlg_gw_clock_ns(gw);
	int top = lua_gettop(L);

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	if (gw->quiet) {
		a->timer_id = 0;
		return -1;
	}
	if (now < a->pane_start + a->slide_ns) /* early, or the clock went back */
		return next_delay(a, now);
	lua_pushcfunction(L, fire_due);
	lua_pushlightuserdata(L, a);
	lua_pushinteger(L, (lua_Integer)now);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) { /* out of memory: this window is lost */
		gw->errors++;
		nlg_gw_log("%s: closing a window: %s", a->type->name,
			   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
		if (now >= a->pane_start + a->slide_ns)
			a->pane_start = now - now % a->slide_ns;
	}
	lua_settop(L, top);
	if (!a->timer_id)
		return -1;
	return next_delay(a, now);
}

/* ---- construction ------------------------------------------------------------ */

static int agg_gc(lua_State *L)
{
	struct agg *a = lua_touserdata(L, 1);

	if (a->timer_id > 0 && a->gw && a->gw->loop)
		nlg_loop_del_timer(a->gw->loop, a->timer_id);
	a->timer_id = 0;
	if (a->panes) {
		for (unsigned i = 0; i < a->npanes + 2; i++)
			pane_free(a, &a->panes[i]);
		nlg_agg_realloc(&a->mem, a->panes, (a->npanes + 2) * sizeof(*a->panes), 0);
		a->panes = NULL;
	}
	if (a->rec)
		nlg_agg_realloc(&a->mem, a->rec, a->by.kinds[0].s->rec_size, 0);
	a->rec = NULL;
	luaL_unref(L, LUA_REGISTRYINDEX, a->on_close_ref);
	a->on_close_ref = LUA_NOREF;
	a->magic = 0;
	return 0;
}

struct agg *agg_new(lua_State *L, const struct agg_type *type, const struct nlg_opt *opts)
{
	static const char *const extra[] = {"by", "of", "on_close", NULL};
	struct nlg_gw *gw = nlg_gw_get(L);
	struct agg_conf *c;
	struct agg *a;
	uint64_t now;

	nlg_gw_check_open(L, gw, type->name);
	c = nlg_lua_conf(L, opts, sizeof(*c), extra, type->name); /* table 1, conf 2 */
	a = lua_newuserdatauv(L, sizeof(*a), 0);		  /* 3 */
	memset(a, 0, sizeof(*a));
	a->on_close_ref = LUA_NOREF;
	luaL_setmetatable(L, type->mt);
	a->type = type;
	a->gw = gw;
	a->mem.fn = lua_getallocf(L, &a->mem.ud); /* counted in the state's memory limit */
	a->max_keys = c->max_keys;
	a->precision = c->precision;
	a->bits = c->bits;
	a->k = c->k;
	a->accuracy = c->accuracy;
	a->expire_ns = c->expire * 1000000;
	a->half_life_ns = c->half_life * 1000000;
	lua_getfield(L, 1, "by");
	agg_parse_names(L, lua_gettop(L), &a->by, "by", type->name);
	lua_settop(L, 3);
	lua_getfield(L, 1, "of");
	if (!lua_isnil(L, -1) && type->kind != AGG_DISTINCT)
		luaL_error(L, "%s: unknown option 'of'", type->name);
	agg_parse_names(L, lua_gettop(L), &a->of, "of", type->name);
	lua_settop(L, 3);
	if (lua_getfield(L, 1, "on_close") != LUA_TNIL) {
		if (!type->windows)
			luaL_error(L, "%s: unknown option 'on_close'", type->name);
		if (lua_type(L, -1) != LUA_TFUNCTION)
			luaL_error(L, "%s: on_close must be a function", type->name);
		if (!c->window)
			luaL_error(L, "%s: on_close needs a window", type->name);
		a->on_close_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_settop(L, 3);
	if (c->slide && !c->window)
		luaL_error(L, "%s: slide needs a window", type->name);
	a->npanes = 1;
	if (c->window) {
		uint64_t slide = c->slide ? c->slide : c->window;
		if (c->window % slide || c->window / slide > AGG_MAXPANES)
			luaL_error(L, "%s: window must be a multiple of slide (at most %d slides)",
				   type->name, AGG_MAXPANES);
		a->window_ns = c->window * 1000000;
		a->slide_ns = slide * 1000000;
		a->npanes = (unsigned)(c->window / slide);
	}
	a->panes = nlg_agg_realloc(&a->mem, NULL, 0, (a->npanes + 2) * sizeof(*a->panes));
	if (!a->panes)
		agg_oom(L, a);
	memset(a->panes, 0, (a->npanes + 2) * sizeof(*a->panes));
	for (unsigned i = 0; i < a->npanes + 2; i++)
		if (pane_init(a, &a->panes[i], i < a->npanes ? a->max_keys : 0) < 0)
			agg_oom(L, a);
	now = nlg_gw_clock_ns(gw);
	a->since = now;
	if (a->window_ns) {
		a->pane_start = now - now % a->slide_ns; /* aligned on the clock */
		a->timer_id =
		    nlg_loop_add_timer(gw->loop, (uint64_t)next_delay(a, now), win_fire, a);
		if (a->timer_id < 0)
			luaL_error(L, "%s: %s", type->name, strerror((int)-a->timer_id));
	}
	lua_getfield(L, LUA_REGISTRYINDEX, SELF_KEY);
	lua_pushvalue(L, 3);
	lua_rawsetp(L, -2, a);
	lua_settop(L, 3);
	a->magic = AGG_MAGIC;
	return a;
}

void agg_register(lua_State *L, const struct agg_type *type, const luaL_Reg *methods,
		  const luaL_Reg *win_methods)
{
	if (luaL_getmetatable(L, type->mt) != LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, LUA_REGISTRYINDEX, SELF_KEY) != LUA_TTABLE) {
		lua_newtable(L);
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "v");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_setfield(L, LUA_REGISTRYINDEX, SELF_KEY);
	}
	lua_pop(L, 1);
	nlg_lua_class(L, type->mt, methods, agg_gc);
	luaL_newmetatable(L, type->win_mt);
	lua_newtable(L);
	luaL_setfuncs(L, win_methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* ---- shared methods ----------------------------------------------------------- */

static void sweep_if(struct agg *a);

int agg_m_size(lua_State *L)
{
	struct agg_reader r;
	union agg_pane *p;

	agg_reader(L, 1, NULL, &r);
	sweep_if(r.closed ? NULL : r.a);
	p = agg_read_pane(L, &r);
	lua_pushinteger(L, r.a->type->kind == AGG_TOPK ? p->k.t.n : p->t.n);
	return 1;
}

static int pairs_iter(lua_State *L)
{
	struct agg_reader r;
	lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
	const union agg_pane *p;
	size_t kl;
	const unsigned char *k;

	agg_reader(L, lua_upvalueindex(1), NULL, &r);
	p = r.p ? r.p : &r.a->panes[r.a->npanes + 1]; /* merged when pairs began */
	if (i >= (lua_Integer)p->t.n)
		return 0;
	lua_pushinteger(L, i + 1);
	lua_replace(L, lua_upvalueindex(2));
	k = nlg_agg_table_key(&p->t, (uint32_t)i, &kl);
	agg_push_key(L, r.a, k, kl);
	if (lua_isnil(L, -1)) { /* an absent field: nil would end the loop */
		lua_pop(L, 1);
		lua_pushboolean(L, 0);
	}
	r.a->type->push(L, r.a, nlg_agg_table_val(&p->t, (uint32_t)i));
	return 2;
}

int agg_m_pairs(lua_State *L)
{
	struct agg_reader r;

	agg_reader(L, 1, NULL, &r);
	sweep_if(r.closed ? NULL : r.a);
	agg_read_pane(L, &r);
	lua_settop(L, 1);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, pairs_iter, 2);
	return 1;
}

int agg_m_reset(lua_State *L)
{
	struct agg *a = lua_touserdata(L, 1);

	if (!a || lua_rawlen(L, 1) != sizeof(*a) || a->magic != AGG_MAGIC)
		return luaL_typeerror(L, 1, "aggregator");
	for (unsigned i = 0; i < a->npanes; i++)
		pane_clear(a, &a->panes[i]);
	a->since = nlg_gw_clock_ns(a->gw);
	return 0;
}

int agg_m_stats(lua_State *L)
{
	struct agg *a = lua_touserdata(L, 1);
	uint64_t dropped;
	uint32_t keys = 0;

	if (!a || lua_rawlen(L, 1) != sizeof(*a) || a->magic != AGG_MAGIC)
		return luaL_typeerror(L, 1, "aggregator");
	sweep_if(a);
	dropped = a->dropped;
	for (unsigned i = 0; i < a->npanes; i++) {
		if (a->type->kind == AGG_TOPK) {
			keys = a->panes[i].k.t.n > keys ? a->panes[i].k.t.n : keys;
			continue;
		}
		dropped += a->panes[i].t.dropped;
		keys = a->panes[i].t.n > keys ? a->panes[i].t.n : keys;
	}
	lua_createtable(L, 0, 6);
	lua_pushinteger(L, keys); /* the largest pane's */
	lua_setfield(L, -2, "keys");
	lua_pushinteger(L, (lua_Integer)dropped);
	lua_setfield(L, -2, "dropped_keys");
	lua_pushinteger(L, (lua_Integer)a->windows);
	lua_setfield(L, -2, "windows");
	lua_pushinteger(L, (lua_Integer)a->skipped);
	lua_setfield(L, -2, "windows_skipped");
	lua_pushinteger(L, (lua_Integer)a->mem.bytes);
	lua_setfield(L, -2, "bytes");
	lua_pushinteger(L, (lua_Integer)a->max_keys);
	lua_setfield(L, -2, "max_keys");
	return 1;
}

/* x:merge(other): other's data (an aggregator of the type, or a window
 * during its on_close) into x's current pane. */
int agg_m_merge(lua_State *L)
{
	struct agg *a = lua_touserdata(L, 1), *o;
	struct agg_reader r;
	union agg_pane *p;

	if (!a || lua_rawlen(L, 1) != sizeof(*a) || a->magic != AGG_MAGIC)
		return luaL_typeerror(L, 1, "aggregator");
	agg_reader(L, 2, a->type, &r);
	o = r.a;
	if (o == a)
		return luaL_error(L, "%s: merge with itself", a->type->name);
	if (o->precision != a->precision || o->accuracy != a->accuracy || o->k != a->k)
		return luaL_error(L, "%s: merge needs the same precision/accuracy", a->type->name);
	if (o->by.nf != a->by.nf)
		return luaL_error(L, "%s: merge needs the same by fields", a->type->name);
	for (int i = 0; i < a->by.nf; i++)
		if (strcmp(o->by.names[i], a->by.names[i]))
			return luaL_error(L, "%s: merge needs the same by fields", a->type->name);
	if (a->by.nf && o->by.nkinds) {
		if (!a->by.nkinds)
			agg_kmap(L, a, &a->by, o->by.kinds[0].s);
		else if (a->by.kinds[0].s != o->by.kinds[0].s)
			agg_kmap(L, a, &a->by, o->by.kinds[0].s); /* checks the types agree */
	}
	p = agg_read_pane(L, &r);
	if (pane_merge(a, &a->panes[a->cur], p) < 0)
		return agg_oom(L, a);
	return 0;
}

static struct agg_win *win_check(lua_State *L)
{
	struct agg_win *w = lua_touserdata(L, 1);

	if (!w || lua_rawlen(L, 1) != sizeof(*w) || w->magic != WIN_MAGIC)
		luaL_typeerror(L, 1, "window");
	if (!w->valid)
		luaL_error(L, "window used after its on_close returned");
	return w;
}

int agg_m_start(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)win_check(L)->start / 1e9);
	return 1;
}

int agg_m_finish(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)win_check(L)->end / 1e9);
	return 1;
}

/* gw.rate drops keys not updated for expire: on reads, and from updates
 * every quarter of it (an update of an expired key also starts over). */
static void sweep_if(struct agg *a)
{
	struct nlg_agg_table *t;
	uint64_t now;

	if (!a || a->type->kind != AGG_RATE)
		return;
	t = &a->panes[0].t;
	now = nlg_gw_clock_ns(a->gw);
	for (uint32_t i = 0; i < t->n;) {
		const uint64_t *v = nlg_agg_table_val(t, i); /* {last, t_ns} */
		if (now > v[1] && now - v[1] >= a->expire_ns)
			nlg_agg_table_del_at(t, i);
		else
			i++;
	}
	a->next_sweep = now + a->expire_ns / 4;
}

void agg_sweep(struct agg *a)
{
	sweep_if(a);
}
