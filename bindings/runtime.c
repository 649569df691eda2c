/* The per-state runtime: protected handler calls with tracebacks and the
 * instruction budget, logging, the registry of counters behind gw.stats(),
 * the house of instances a reload hands over, and reading option tables
 * from a script's table. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "binding.h"

#define GW_KEY "nlgate.gw"

/* ---- logging and protected calls ------------------------------------- */

void nlg_gw_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nlg_vlog(NULL, fmt, ap);
	va_end(ap);
}

void nlg_gw_error(struct nlg_gw *gw, const char *what, const char *msg)
{
	nlg_gw_log("error in %s handler: %s", what, msg);
	if (gw->dry) /* the test harness's p:errors() */
		nlg_dry_error_add(gw->dry, msg);
}

/* A C function's raise (a constructor's bad option, a bad argument) has no
 * position: give it the script's, the first Lua frame's line, the way
 * error() names its caller. A message that already starts with a position
 * ("file:12: ", error() at any level) is left as it is. Returns msg, or the
 * prefixed message (pushed). */
static const char *script_where(lua_State *L, const char *msg)
{
	const char *colon = strchr(msg, ':');
	lua_Debug ar;

	if (colon && colon > msg && colon[1] >= '0' && colon[1] <= '9') {
		const char *p = colon + 1;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p == ':')
			return msg;
	}
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0)
			continue;
		return lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
	}
	return msg;
}

int nlg_gw_traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			msg = lua_tostring(L, -1);
		else
			msg =
			    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	msg = script_where(L, msg);
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

/* ---- the budget's hook, armed late ------------------------------------------
 *
 * Lua 5.4 calls into the debugger for every VM instruction while a count
 * hook is set, whatever its interval: about a quarter of a small handler's
 * cost. Under `nlgate run` the main thread therefore runs unhooked, and the
 * watchdog arms the hook (a signal to the loop thread: lua_sethook is one
 * of the few calls Lua allows in a signal handler, as lua.c does for ^C)
 * once a call has held the loop one watchdog tick; the budget counts from
 * there and the kill is as sticky as before. Coroutines are always hooked
 * (nlg_gw_hook_thread): the signal can only reach the main thread. Only one
 * state per process is armed this way, the one the watchdog watches. */
static lua_State *volatile arm_L;	/* main thread of the lazy state */
static volatile sig_atomic_t arm_set;	/* the signal hooked it this call */
static volatile sig_atomic_t arm_count; /* times it did, for gw.stats() */

static void arm_handler(int sig)
{
	lua_State *L = arm_L;

	NLG_UNUSED(sig);
	if (!L || arm_set)
		return;
	arm_set = 1;
	arm_count++;
	lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, NLG_HOOK_EVERY);
}

int nlg_gw_lazy(struct nlg_gw *gw, int on)
{
	static int installed;

	if (on && !installed) {
		struct sigaction sa = {.sa_handler = arm_handler, .sa_flags = SA_RESTART};

		sigemptyset(&sa.sa_mask);
		if (sigaction(NLG_SIG_ARM, &sa, NULL) < 0)
			return -errno;
		installed = 1;
	}
	if (!on || !gw) {
		arm_L = NULL;
		if (gw) {
			gw->lazy = 0;
			if (gw->insn_budget)
				lua_sethook(gw->L, nlg_gw_budget_hook, LUA_MASKCOUNT,
					    NLG_HOOK_EVERY);
		}
		return 0;
	}
	arm_L = NULL;
	if (!gw->insn_budget) /* nothing to arm */
		return 0;
	gw->lazy = 1;
	lua_sethook(gw->L, NULL, 0, 0);
	arm_set = 0;
	arm_L = gw->L;
	return 0;
}

void nlg_gw_hook_thread(lua_State *L, lua_State *co)
{
	struct nlg_gw *gw;

	lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY);
	gw = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (gw && gw->insn_budget)
		lua_sethook(co, nlg_gw_budget_hook, LUA_MASKCOUNT, gw->killed ? 1 : NLG_HOOK_EVERY);
}

void nlg_gw_enter(struct nlg_gw *gw, const char *what)
{
	struct nlg_house *h = gw->house;

	if (gw->depth++ > 0)
		return; /* a nested call is charged to the outer one */
	gw->insn_used = 0;
	gw->killed = 0;
	atomic_store_explicit(&h->current, what, memory_order_relaxed);
	atomic_store_explicit(&h->call_seq,
			      atomic_load_explicit(&h->call_seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&h->in_call, 1, memory_order_release);
}

void nlg_gw_leave(struct nlg_gw *gw, lua_State *L)
{
	if (--gw->depth > 0)
		return;
	if (gw->killed) /* back to the normal rate (L may be a coroutine: always hooked) */
		lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, NLG_HOOK_EVERY);
	if (gw->lazy) {
		if (arm_set || gw->killed) { /* unhooked again until the watchdog says */
			arm_set = 0;
			lua_sethook(gw->L, NULL, 0, 0);
		}
	} else if (gw->killed && gw->L != L) {
		lua_sethook(gw->L, nlg_gw_budget_hook, LUA_MASKCOUNT, NLG_HOOK_EVERY);
	}
	gw->killed = 0;
	atomic_store_explicit(&gw->house->stop_now, 0, memory_order_relaxed);
	atomic_store_explicit(&gw->house->in_call, 0, memory_order_release);
}

int nlg_gw_call(struct nlg_gw *gw, lua_State *L, int nargs, const char *what)
{
	int base = lua_gettop(L) - nargs; /* index of the function */
	int rc = 0;

	lua_pushcfunction(L, nlg_gw_traceback);
	lua_insert(L, base);
	gw->calls++;
	nlg_gw_enter(gw, what);
	switch (lua_pcall(L, nargs, 0, base)) {
	case LUA_OK:
		break;
	case LUA_ERRMEM: /* no traceback could be made: say so plainly */
		gw->errors++;
		gw->oom++;
		nlg_gw_error(gw, what, "not enough memory (the script's limit)");
		lua_pop(L, 1);
		rc = -1;
		break;
	default:
		gw->errors++;
		nlg_gw_error(gw, what, lua_tostring(L, -1));
		lua_pop(L, 1);
		rc = -1;
	}
	nlg_gw_leave(gw, L);
	lua_pop(L, 1);
	return rc;
}

#define DISABLED_KEY "nlgate.disabled"

/* Protected: append the handler's name to the registry's list. */
static int note_disabled(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, DISABLED_KEY) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, DISABLED_KEY);
	}
	lua_pushstring(L, lua_touserdata(L, 1));
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	return 0;
}

void nlg_gw_outcome(struct nlg_gw *gw, lua_State *L, int rc, uint32_t *fails, int *ref,
		    const char *what)
{
	if (rc == 0) {
		*fails = 0;
		return;
	}
	if (++*fails < NLG_HANDLER_FAILS || *ref == LUA_NOREF)
		return;
	luaL_unref(L, LUA_REGISTRYINDEX, *ref);
	*ref = LUA_NOREF;
	gw->disabled++;
	nlg_gw_log("%s handler disabled: it failed %d times in a row (see the errors above)", what,
		   NLG_HANDLER_FAILS);
	/* Remembered by name for gw.stats().script.disabled: pushing a
	 * string can fail for memory, so it runs protected. */
	lua_pushcfunction(L, note_disabled);
	lua_pushlightuserdata(L, (void *)what);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		lua_pop(L, 1);
}

int nlg_gw_stopped(lua_State *L)
{
	struct nlg_gw *gw;

	lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY);
	gw = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return gw && gw->killed;
}

void nlg_gw_check_open(lua_State *L, struct nlg_gw *gw, const char *what)
{
	if (gw->sealed)
		luaL_error(L, "%s: nlgate is closing this script (a __gc at reload or exit)", what);
}

void nlg_gw_budget_hook(lua_State *L, lua_Debug *ar)
{
	struct nlg_gw *gw;

	NLG_UNUSED(ar);
	lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY);
	gw = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (!gw || !gw->depth)
		return;
	if (!gw->killed && atomic_load_explicit(&gw->house->stop_now, memory_order_relaxed)) {
		gw->killed = 2;
		lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, 1);
		if (gw->L != L)
			lua_sethook(gw->L, nlg_gw_budget_hook, LUA_MASKCOUNT, 1);
	}
	if (gw->killed) { /* sticky: pcall and coroutines cannot swallow it */
		lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, 1);
		luaL_error(L, gw->killed == 2 ? "the gateway is stopping: handler stopped"
					      : "instruction budget exceeded: handler stopped");
	}
	if (!gw->insn_budget)
		return;
	gw->insn_used += (uint64_t)lua_gethookcount(L);
	if (gw->insn_used > gw->insn_budget) {
		gw->budget_kills++;
		gw->killed = 1;
		/* From now on every instruction raises, on this thread and on
		 * the handler's, until the outermost call returns. */
		lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, 1);
		if (gw->L != L)
			lua_sethook(gw->L, nlg_gw_budget_hook, LUA_MASKCOUNT, 1);
		luaL_error(L, "instruction budget exceeded (%I instructions)",
			   (lua_Integer)gw->insn_budget);
	}
}

/* ---- counters ------------------------------------------------------------ */

void nlg_gw_stat_add(struct nlg_gw *gw, struct nlg_gw_stat *st, const char *group,
		     void (*push)(lua_State *, struct nlg_gw_stat *))
{
	st->group = group;
	st->push = push;
	st->single = 0;
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

int nlg_gw_stats(lua_State *L)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	struct rusage ru;

	lua_newtable(L);
	lua_newtable(L);
	set_int(L, "calls", gw->calls);
	set_int(L, "errors", gw->errors);
	set_int(L, "budget_kills", gw->budget_kills);
	set_int(L, "budget_armed", (uint64_t)arm_count);
	set_int(L, "mem_kb", (uint64_t)lua_gc(L, LUA_GCCOUNT, 0));
	set_int(L, "reloads", gw->house->reloads);
	set_int(L, "reload_failures", gw->house->reload_failures);
	set_int(L, "handed_over", gw->house->handed_over);
	set_int(L, "out_of_memory", gw->oom);
	if (lua_getfield(L, LUA_REGISTRYINDEX, DISABLED_KEY) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
	}
	lua_setfield(L, -2, "disabled"); /* handlers disabled for failing, by name */
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
		if (st->single) {
			st->push(L, st);
			lua_setfield(L, -2, st->group);
			continue;
		}
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

/* ---- the house ------------------------------------------------------------ */

struct nlg_inst *nlg_house_claim(struct nlg_gw *gw, const void *ops, const void *conf,
				 size_t conf_size, void *obj)
{
	struct nlg_house *h = gw->house;

	if (h->starting != gw)
		return NULL;
	for (struct nlg_inst *in = h->list; in; in = in->next) {
		if (in->ops != ops || in->owner == gw || in->heir || in->conf_size != conf_size ||
		    memcmp(in->conf, conf, conf_size))
			continue;
		in->heir = gw;
		in->heir_obj = obj;
		return in;
	}
	return NULL;
}

struct nlg_inst *nlg_house_add(struct nlg_gw *gw, const char *name, const void *ops,
			       const void *conf, size_t conf_size, void *handle, void *obj)
{
	struct nlg_inst *in = calloc(1, sizeof(*in));

	if (!in || !(in->conf = malloc(conf_size ? conf_size : 1))) {
		free(in);
		return NULL;
	}
	memcpy(in->conf, conf, conf_size);
	in->name = name;
	in->ops = ops;
	in->conf_size = conf_size;
	in->handle = handle;
	in->owner = gw;
	in->obj = obj;
	in->next = gw->house->list;
	gw->house->list = in;
	return in;
}

void nlg_house_remove(struct nlg_house *h, struct nlg_inst *in)
{
	for (struct nlg_inst **p = &h->list; *p; p = &(*p)->next) {
		if (*p == in) {
			*p = in->next;
			free(in->conf);
			free(in);
			return;
		}
	}
}

/* ---- options -------------------------------------------------------------- */

/* The value at -1 as option text, pushed (a string on the stack keeps it
 * alive); raises for a type no option takes. */
static const char *opt_text(lua_State *L, const struct nlg_opt *o, const char *what)
{
	/* A script says true or false; "yes" is the command line's business. */
	if (o->type == NLG_OPT_BOOL && lua_type(L, -1) != LUA_TBOOLEAN)
		luaL_error(L, "%s: %s must be true or false", what, o->name);
	switch (lua_type(L, -1)) {
	case LUA_TSTRING:
		lua_pushvalue(L, -1);
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, -1))
			lua_pushfstring(L, "%I", lua_tointeger(L, -1));
		else
			lua_pushfstring(L, "%f", lua_tonumber(L, -1));
		break;
	case LUA_TBOOLEAN:
		lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
		break;
	case LUA_TTABLE: {
		luaL_Buffer b;
		size_t n = lua_rawlen(L, -1);
		if (!(o->flags & NLG_OPT_LIST))
			luaL_error(L, "%s: %s takes one value, not a list", what, o->name);
		luaL_buffinit(L, &b);
		for (size_t i = 1; i <= n; i++) {
			if (i > 1)
				luaL_addchar(&b, ',');
			lua_rawgeti(L, -2, (lua_Integer)i);
			if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
				luaL_error(L, "%s: %s must be a list of strings", what, o->name);
			luaL_addvalue(&b);
		}
		luaL_pushresult(&b);
		break;
	}
	default:
		luaL_error(L, "%s: bad %s (a %s value)", what, o->name, luaL_typename(L, -1));
	}
	return lua_tostring(L, -1);
}

/* The table at -1, the value of option `key`: each of its fields k is the
 * option key_k. The texts are kept alive below the iteration, at top + 2. */
static void sub_options(lua_State *L, const char *key, const struct nlg_opt *opts,
			const char **values, int top, const char *what)
{
	int t = lua_gettop(L);

	lua_pushnil(L);
	while (lua_next(L, t)) {
		char name[64];
		int i;
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: %s: option names are strings", what, key);
		snprintf(name, sizeof(name), "%s_%s", key, lua_tostring(L, -2));
		i = nlg_opt_find(opts, name, 0);
		if (i < 0 || !nlg_opt_allowed(&opts[i], NLG_CTX_SCRIPT) ||
		    opts[i].type == NLG_OPT_ALIAS || lua_type(L, -1) == LUA_TTABLE)
			luaL_error(L, "%s: unknown option '%s.%s'", what, key, lua_tostring(L, -2));
		values[i] = opt_text(L, &opts[i], what);
		lua_insert(L, top + 2);
		lua_pop(L, 1);
		t++; /* the table moved up by the text inserted below it */
	}
}

void nlg_lua_options(lua_State *L, int idx, const struct nlg_opt *opts, void *conf,
		     const char *const *extra, const char *what)
{
	size_t n = nlg_opt_count(opts);
	const char **values;
	struct nlg_err err = {{0}};
	int top = lua_gettop(L);

	idx = lua_absindex(L, idx);
	values = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*values), 0);
	memset(values, 0, (n ? n : 1) * sizeof(*values));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *key;
		int i, skip = 0;
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: option names are strings", what);
		key = lua_tostring(L, -2);
		for (size_t e = 0; extra && extra[e]; e++)
			skip |= !strcmp(extra[e], key);
		if (skip) {
			lua_pop(L, 1);
			continue;
		}
		i = nlg_opt_find(opts, key, 0);
		if (lua_type(L, -1) == LUA_TTABLE && (i < 0 || opts[i].type == NLG_OPT_BOOL)) {
			/* flows = { idle = "10s" }: flows = true, flows_idle = "10s" */
			if (i >= 0) {
				if (!nlg_opt_allowed(&opts[i], NLG_CTX_SCRIPT))
					luaL_error(L, "%s: unknown option '%s'", what, key);
				values[i] = "true";
			}
			sub_options(L, key, opts, values, top, what);
			lua_pop(L, 1);
			continue;
		}
		if (i < 0 || !nlg_opt_allowed(&opts[i], NLG_CTX_SCRIPT) ||
		    opts[i].type == NLG_OPT_ALIAS)
			luaL_error(L, "%s: unknown option '%s'", what, key);
		values[i] = opt_text(L, &opts[i], what);
		/* Keep the text alive: move it below the key being iterated. */
		lua_insert(L, top + 2);
		lua_pop(L, 1);
	}
	if (nlg_opt_apply(opts, conf, values, NLG_CTX_SCRIPT, &err) < 0)
		luaL_error(L, "%s: %s", what, err.msg);
	lua_settop(L, top);
}

void *nlg_lua_conf(lua_State *L, const struct nlg_opt *opts, size_t conf_size,
		   const char *const *extra, const char *what)
{
	void *conf;

	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	conf = lua_newuserdatauv(L, conf_size ? conf_size : 1, 0);
	memset(conf, 0, conf_size ? conf_size : 1);
	nlg_lua_options(L, 1, opts, conf, extra, what);
	return conf;
}

/* ---- small helpers --------------------------------------------------------- */

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
	if (nlg_parse_duration(s, "s", &ms) < 0)
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
	/* getmetatable(obj) is false: no script reaches __gc or __index. */
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
