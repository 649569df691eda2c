/* The `nlgate` Lua module: the gw table — one constructor per registered
 * source and output, timers, stats, log, stop, run, fields and the state
 * table that survives reloads. Loaded by the daemon's states and, as
 * nlgate.so, by a plain interpreter (busted), where it owns its loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/output.h"
#include "nlgate/source.h"

#define GW_KEY	  "nlgate.gw"
#define STATE_KEY "nlgate.state"

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
	lua_pushnumber(L, (lua_Number)nlg_gw_clock_ns(nlg_gw_get(L)) / 1e9);
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
	lua_State *prev = gw->L;

	nlg_loop_resume(gw->loop);
	gw->L = L;
	while (!nlg_loop_stopped(gw->loop)) {
		uint64_t now = nlg_now_ms();
		if (now >= deadline)
			break;
		int wait = deadline == UINT64_MAX ? -1 : (int)(deadline - now);
		if (nlg_loop_run_once(gw->loop, wait) < 0) {
			gw->L = prev;
			return luaL_error(L, "gw.run: %s", strerror(errno));
		}
	}
	gw->L = prev;
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
	if (gw->own_house)
		free(gw->house); /* every instance was closed by its own __gc */
	gw->house = NULL;
	if (gw->own_loop)
		nlg_loop_destroy(gw->loop);
	gw->loop = NULL;
	return 0;
}

static const luaL_Reg gw_funcs[] = {
    {"every", nlg_lua_every}, {"after", nlg_lua_after}, {"stats", nlg_gw_stats},
    {"log", gw_log},	      {"stop", gw_stop},	{"now", gw_now},
    {"run", gw_run},	      {"fields", gw_fields},	{NULL, NULL},
};

static struct nlg_gw *gw_create(lua_State *L)
{
	struct nlg_gw *gw = lua_newuserdatauv(L, sizeof(*gw), 0);

	memset(gw, 0, sizeof(*gw));
	gw->stats.next = gw->stats.prev = &gw->stats;
	nlg_buf_init(&gw->enc);
	nlg_mp_init(&gw->pk, &gw->enc);
	lua_newtable(L);
	lua_pushcfunction(L, gw_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, GW_KEY);

	lua_getfield(L, LUA_REGISTRYINDEX, NLG_LOOP_KEY);
	gw->loop = lua_touserdata(L, -1);
	lua_getfield(L, LUA_REGISTRYINDEX, NLG_HOUSE_KEY);
	gw->house = lua_touserdata(L, -1);
	lua_getfield(L, LUA_REGISTRYINDEX, NLG_DRY_KEY);
	gw->dry = lua_touserdata(L, -1);
	lua_pop(L, 3);
	if (!gw->loop) { /* loaded by a plain interpreter (busted): our own loop */
		gw->loop = nlg_loop_create();
		gw->own_loop = 1;
		if (!gw->loop)
			luaL_error(L, "nlgate: cannot create event loop");
	}
	if (!gw->house) {
		gw->house = calloc(1, sizeof(*gw->house));
		gw->own_house = 1;
		if (!gw->house)
			luaL_error(L, "nlgate: out of memory");
	}
	/* Handlers run on the main thread; never on whichever coroutine
	 * happened to require the module. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	gw->L = lua_tothread(L, -1);
	lua_pop(L, 1);
	nlg_view_register(L);
	nlg_lua_timer_register(L);
	nlg_lua_source_register(L);
	nlg_lua_output_register(L);
	return gw;
}

int luaopen_nlgate(lua_State *L)
{
	const struct nlg_source_ops *src;
	const struct nlg_output_ops *out;

	nlg_schema_init();
	if (lua_getfield(L, LUA_REGISTRYINDEX, GW_KEY) == LUA_TNIL)
		gw_create(L);
	lua_pop(L, 1);
	luaL_newlib(L, gw_funcs);
	nlg_lua_agg_open(L);
	for (size_t i = 0; (src = nlg_source_at(i)); i++) {
		nlg_lua_push_source_ctor(L, src);
		lua_setfield(L, -2, src->name);
	}
	for (size_t i = 0; (out = nlg_output_at(i)); i++) {
		nlg_lua_push_output_ctor(L, out);
		lua_setfield(L, -2, out->name);
	}
	nlg_lua_alert_open(L);
	/* gw.state: plain data a reload carries to the next script. */
	if (lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
	}
	lua_setfield(L, -2, "state");
	lua_pushstring(L, "0.2.0");
	lua_setfield(L, -2, "version");
	return 1;
}
