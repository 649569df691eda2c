/* The `nlgate` Lua module and the per-state runtime behind it: the gw
 * table (every, after, stats, log, stop, run), protected handler calls with
 * tracebacks and an instruction budget, and the embedding API for the daemon. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <lualib.h>

#include "binding.h"
#include "nlgate/script.h"

#define GW_KEY	 "nlgate.gw"
#define LOOP_KEY "nlgate.loop"
#define TIMER_MT "nlgate.timer"

/* ---- logging and protected calls ------------------------------------- */

void nlg_gw_log(const char *fmt, ...)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
	fprintf(stderr, "%s nlgate: ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			msg = lua_tostring(L, -1);
		else
			msg =
			    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

struct nlg_gw *nlg_gw_get(lua_State *L)
{
	struct nlg_gw *gw;

	lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY);
	gw = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (!gw)
		luaL_error(L, "nlgate: module not initialised");
	return gw;
}

int nlg_gw_call(struct nlg_gw *gw, lua_State *L, int nargs, const char *what)
{
	int base = lua_gettop(L) - nargs; /* index of the function */

	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	gw->calls++;
	gw->insn_used = 0;
	if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
		gw->errors++;
		nlg_gw_log("error in %s handler: %s", what, lua_tostring(L, -1));
		lua_pop(L, 2);
		return -1;
	}
	lua_pop(L, 1);
	return 0;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	struct nlg_gw *gw;

	NLG_UNUSED(ar);
	lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY);
	gw = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (!gw || !gw->insn_budget)
		return;
	gw->insn_used += 1000;
	if (gw->insn_used > gw->insn_budget) {
		gw->budget_kills++;
		gw->insn_used = 0;
		luaL_error(L, "instruction budget exceeded (%d instructions)",
			   (int)gw->insn_budget);
	}
}

/* ---- stats ------------------------------------------------------------ */

void nlg_gw_stat_add(struct nlg_gw *gw, struct nlg_gw_stat *st, const char *group,
		     void (*push)(lua_State *, struct nlg_gw_stat *))
{
	st->group = group;
	st->push = push;
	st->next = gw->stats.next;
	st->prev = &gw->stats;
	gw->stats.next->prev = st;
	gw->stats.next = st;
}

void nlg_gw_stat_del(struct nlg_gw_stat *st)
{
	if (!st->next)
		return;
	st->prev->next = st->next;
	st->next->prev = st->prev;
	st->next = st->prev = NULL;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static int gw_stats(lua_State *L)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	struct rusage ru;

	lua_newtable(L);
	lua_newtable(L);
	set_int(L, "calls", gw->calls);
	set_int(L, "errors", gw->errors);
	set_int(L, "budget_kills", gw->budget_kills);
	set_int(L, "mem_kb", (uint64_t)lua_gc(L, LUA_GCCOUNT, 0));
	lua_setfield(L, -2, "script");
	getrusage(RUSAGE_SELF, &ru);
	lua_newtable(L);
	set_int(L, "maxrss_kb", (uint64_t)ru.ru_maxrss);
	set_int(L, "cpu_user_ms",
		(uint64_t)ru.ru_utime.tv_sec * 1000 + (uint64_t)ru.ru_utime.tv_usec / 1000);
	set_int(L, "cpu_sys_ms",
		(uint64_t)ru.ru_stime.tv_sec * 1000 + (uint64_t)ru.ru_stime.tv_usec / 1000);
	lua_setfield(L, -2, "process");
	/* Walk oldest first so each group's array is in creation order. */
	struct nlg_gw_stat *st = gw->stats.prev;
	for (; st != &gw->stats; st = st->prev) {
		if (lua_getfield(L, -1, st->group) != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_setfield(L, -3, st->group);
		}
		st->push(L, st);
		lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
		lua_pop(L, 1);
	}
	return 1;
}

/* ---- timers ----------------------------------------------------------- */

struct lua_timer {
	struct nlg_gw *gw;
	int64_t id;
	int fn_ref, self_ref;
	uint64_t every_ms; /* 0: one-shot */
};

static void timer_cancel(lua_State *L, struct lua_timer *t)
{
	if (t->id > 0)
		nlg_loop_del_timer(t->gw->loop, t->id);
	t->id = 0;
	luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
	t->fn_ref = t->self_ref = LUA_NOREF;
}

static int64_t timer_fire(struct nlg_loop *loop, int64_t id, void *data)
{
	struct lua_timer *t = data;
	lua_State *L = t->gw->L;

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
	lua_pushnumber(L, (lua_Number)nlg_realtime_ns() / 1e9);
	nlg_gw_call(t->gw, L, 1, "timer");
	if (!t->every_ms || !t->id) { /* one-shot, or cancelled inside */
		if (t->id) {
			t->id = 0; /* the loop deletes it on our -1 */
			timer_cancel(L, t);
		}
		return -1;
	}
	return (int64_t)t->every_ms;
}

static int timer_new(lua_State *L, int repeat)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	uint64_t ms = nlg_lua_checkduration(L, 1, repeat ? "gw.every" : "gw.after");
	struct lua_timer *t;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (repeat && ms == 0)
		return luaL_error(L, "gw.every: interval must be > 0");
	t = lua_newuserdatauv(L, sizeof(*t), 0);
	*t = (struct lua_timer){.gw = gw, .every_ms = repeat ? ms : 0};
	luaL_setmetatable(L, TIMER_MT);
	lua_pushvalue(L, 2);
	t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, -1);
	t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* alive until cancelled */
	t->id = nlg_loop_add_timer(gw->loop, ms, timer_fire, t);
	if (t->id < 0)
		return luaL_error(L, "gw.every: %s", strerror((int)-t->id));
	return 1;
}

static int gw_every(lua_State *L)
{
	return timer_new(L, 1);
}

static int gw_after(lua_State *L)
{
	return timer_new(L, 0);
}

static int timer_cancel_l(lua_State *L)
{
	timer_cancel(L, luaL_checkudata(L, 1, TIMER_MT));
	return 0;
}

/* At lua_close (reload, exit) the loop outlives the state: unhook. */
static int timer_gc(lua_State *L)
{
	struct lua_timer *t = lua_touserdata(L, 1);
	if (t->id > 0 && t->gw->loop)
		nlg_loop_del_timer(t->gw->loop, t->id);
	t->id = 0;
	return 0;
}

/* ---- the rest of gw ------------------------------------------------------ */

uint64_t nlg_lua_checkduration(lua_State *L, int idx, const char *what)
{
	uint64_t ms;

	if (lua_type(L, idx) == LUA_TNUMBER) {
		lua_Number v = lua_tonumber(L, idx);
		if (v < 0 || v > 1e12)
			luaL_error(L, "%s: bad duration %f", what, (double)v);
		return (uint64_t)(v * 1000);
	}
	const char *s = luaL_checkstring(L, idx);
	if (nlg_parse_duration_ms(s, &ms) < 0)
		luaL_error(L, "%s: bad duration '%s' (use e.g. 500ms, 2s, 1m)", what, s);
	return ms;
}

void nlg_lua_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc)
{
	luaL_newmetatable(L, mt);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}

const char *nlg_lua_optlist(lua_State *L, const char *key, const char *what)
{
	if (lua_getfield(L, 1, key) == LUA_TNIL)
		return NULL;
	if (lua_type(L, -1) == LUA_TTABLE) {
		luaL_Buffer b;
		size_t n = lua_rawlen(L, -1);
		luaL_buffinit(L, &b);
		for (size_t i = 1; i <= n; i++) {
			if (i > 1)
				luaL_addchar(&b, ',');
			lua_rawgeti(L, -2, (lua_Integer)i);
			luaL_addvalue(&b);
		}
		luaL_pushresult(&b);
		lua_replace(L, -2);
	}
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: %s must be a string or a list of strings", what, key);
	return lua_tostring(L, -1);
}

static int gw_log(lua_State *L)
{
	luaL_Buffer b;
	int n = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, ' ');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	nlg_gw_log("%s", lua_tostring(L, -1));
	return 0;
}

static int gw_stop(lua_State *L)
{
	nlg_loop_stop(nlg_gw_get(L)->loop);
	return 0;
}

static int gw_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)nlg_realtime_ns() / 1e9);
	return 1;
}

/* gw.run([seconds]): module mode only — drive the loop from a test. */
static int gw_run(lua_State *L)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	uint64_t deadline = UINT64_MAX;

	if (!gw->own_loop)
		return luaL_error(L, "gw.run: the daemon runs the loop; gw.run is for tests");
	if (!lua_isnoneornil(L, 1))
		deadline = nlg_now_ms() + nlg_lua_checkduration(L, 1, "gw.run");
	nlg_loop_resume(gw->loop);
	gw->L = L;
	while (!nlg_loop_stopped(gw->loop)) {
		uint64_t now = nlg_now_ms();
		if (now >= deadline)
			break;
		int wait = deadline == UINT64_MAX ? -1 : (int)(deadline - now);
		if (nlg_loop_run_once(gw->loop, wait) < 0)
			return luaL_error(L, "gw.run: %s", strerror(errno));
	}
	lua_pushboolean(L, nlg_loop_stopped(gw->loop));
	nlg_loop_resume(gw->loop);
	return 1;
}

/* gw.fields(kind) → { {name=, type=, desc=}, ... } from the schema. */
static int gw_fields(lua_State *L)
{
	const struct nlg_schema *s = nlg_schema_find(luaL_checkstring(L, 1));

	if (!s)
		return luaL_error(L, "gw.fields: unknown record kind '%s'", lua_tostring(L, 1));
	lua_createtable(L, (int)s->nfields, 0);
	for (size_t i = 0; i < s->nfields; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, s->fields[i].name);
		lua_setfield(L, -2, "name");
		lua_pushstring(L, nlg_ftype_name(s->fields[i].type));
		lua_setfield(L, -2, "type");
		lua_pushstring(L, s->fields[i].desc);
		lua_setfield(L, -2, "desc");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int gw_gc(lua_State *L)
{
	struct nlg_gw *gw = lua_touserdata(L, 1);

	gw->closing = 1;
	nlg_buf_free(&gw->enc);
	if (gw->own_loop)
		nlg_loop_destroy(gw->loop);
	gw->loop = NULL;
	return 0;
}

static const luaL_Reg gw_funcs[] = {
    {"sockets", nlg_lua_sockets},
#ifdef NLGATE_HAVE_CT
    {"conntrack", nlg_lua_conntrack},
#endif
    {"unix", nlg_lua_unix},
    {"every", gw_every},
    {"after", gw_after},
    {"stats", gw_stats},
    {"log", gw_log},
    {"stop", gw_stop},
    {"now", gw_now},
    {"run", gw_run},
    {"fields", gw_fields},
    {NULL, NULL},
};

int luaopen_nlgate(lua_State *L)
{
	struct nlg_gw *gw;

	nlg_schema_init();
	if (lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY) == LUA_TNIL) {
		lua_pop(L, 1);
		gw = lua_newuserdatauv(L, sizeof(*gw), 0);
		memset(gw, 0, sizeof(*gw));
		gw->stats.next = gw->stats.prev = &gw->stats;
		nlg_buf_init(&gw->enc);
		nlg_mp_init(&gw->pk, &gw->enc);
		lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
		gw->loop = lua_touserdata(L, -1);
		lua_pop(L, 1);
		if (!gw->loop) { /* loaded by a plain interpreter (busted): our own loop */
			gw->loop = nlg_loop_create();
			gw->own_loop = 1;
			if (!gw->loop)
				return luaL_error(L, "nlgate: cannot create event loop");
		}
		gw->L = L;
		lua_newtable(L);
		lua_pushcfunction(L, gw_gc);
		lua_setfield(L, -2, "__gc");
		lua_setmetatable(L, -2);
		lua_setfield(L, LUA_REGISTRYINDEX, GW_KEY);

		luaL_newmetatable(L, TIMER_MT);
		lua_pushcfunction(L, timer_cancel_l);
		lua_setfield(L, -2, "cancel");
		lua_pushcfunction(L, timer_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushvalue(L, -1);
		lua_setfield(L, -2, "__index");
		lua_pop(L, 1);
		nlg_view_register(L);
		nlg_lua_sockets_register(L);
		nlg_lua_unix_register(L);
#ifdef NLGATE_HAVE_CT
		nlg_lua_conntrack_register(L);
#endif
	} else {
		lua_pop(L, 1);
	}
	luaL_newlib(L, gw_funcs);
	lua_pushstring(L, "0.1.0");
	lua_setfield(L, -2, "version");
	return 1;
}

/* ---- embedding (the daemon) -------------------------------------------- */

struct lua_mem {
	size_t used, limit;
};

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lua_mem *m = ud;

	if (!ptr)
		osize = 0;
	if (nsize == 0) {
		m->used -= osize;
		free(ptr);
		return NULL;
	}
	if (m->limit && nsize > osize && m->used + (nsize - osize) > m->limit)
		return NULL; /* Lua raises "not enough memory" */
	void *p = realloc(ptr, nsize);
	if (p)
		m->used = m->used - osize + nsize;
	return p;
}

static int panic(lua_State *L)
{
	nlg_gw_log("Lua panic: %s", lua_tostring(L, -1));
	return 0;
}

static void sandbox(lua_State *L)
{
	static const char *const drop[][2] = {
	    {"os", "execute"},
	    {"os", "exit"},
	    {"io", "popen"},
	    {"package", "loadlib"},
	};
	for (size_t i = 0; i < NLG_ARRAY_SIZE(drop); i++) {
		lua_getglobal(L, drop[i][0]);
		lua_pushnil(L);
		lua_setfield(L, -2, drop[i][1]);
		lua_pop(L, 1);
	}
	/* Keep the preload and Lua-file searchers; drop the C-library ones. */
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchers");
	lua_pushnil(L);
	lua_rawseti(L, -2, 4);
	lua_pushnil(L);
	lua_rawseti(L, -2, 3);
	lua_pop(L, 2);
}

lua_State *nlg_lua_new(struct nlg_loop *loop, const struct nlg_lua_opts *o, struct nlg_err *err)
{
	struct lua_mem *m = calloc(1, sizeof(*m));
	lua_State *L;

	if (!m) {
		nlg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	m->limit = o ? o->mem_limit : 0;
	L = lua_newstate(limited_alloc, m);
	if (!L) {
		free(m);
		nlg_err_set(err, ENOMEM, "cannot create Lua state");
		return NULL;
	}
	lua_atpanic(L, panic);
	luaL_openlibs(L);
	sandbox(L);
	if (o && o->lua_path) {
		lua_getglobal(L, "package");
		lua_pushfstring(L, "%s;", o->lua_path);
		lua_getfield(L, -2, "path");
		lua_concat(L, 2);
		lua_setfield(L, -2, "path");
		lua_pop(L, 1);
	}
	lua_pushlightuserdata(L, loop);
	lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
	luaL_requiref(L, "nlgate", luaopen_nlgate, 0);
	lua_pop(L, 1);
	struct nlg_gw *gw = nlg_gw_get(L);
	gw->insn_budget = o ? o->insn_budget : 0;
	if (gw->insn_budget)
		lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1000);
	return L;
}

int nlg_lua_load(lua_State *L, const char *path, int run, struct nlg_err *err)
{
	int rc;

	lua_pushcfunction(L, traceback);
	rc = luaL_loadfile(L, path);
	if (rc == LUA_OK && run) {
		nlg_gw_get(L)->insn_used = 0;
		rc = lua_pcall(L, 0, 0, -2);
	}
	if (rc != LUA_OK) {
		nlg_err_set(err, EINVAL, "%s", lua_tostring(L, -1));
		lua_pop(L, 2);
		return -EINVAL;
	}
	lua_pop(L, run ? 1 : 2);
	return 0;
}

void nlg_lua_close(lua_State *L)
{
	void *ud;

	if (!L)
		return;
	lua_getallocf(L, &ud);
	lua_close(L);
	free(ud);
}

uint64_t nlg_lua_errors(lua_State *L)
{
	return nlg_gw_get(L)->errors;
}
