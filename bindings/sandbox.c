/* A state for a pipeline script, which runs as root but must not act as it:
 * a counting allocator enforces the memory limit, and the globals are an
 * allow-list — the safe parts of the standard library, text-only `load` and
 * `require`, terminal output, and nothing that writes, deletes or executes.
 *
 *   kept:    base (minus dofile, loadfile), string (minus dump), table, math,
 *            utf8, coroutine, io.write/io.flush/io.stdout/io.stderr (write
 *            and flush only), os.time/clock/date/difftime/getenv
 *   changed: load (text chunks only, the script's globals by default),
 *            require (Lua text files on nlgate's script path and beside the
 *            script; never C modules or bytecode)
 *   gone:    debug, io.open/lines/popen/read/..., os.execute/exit/remove/
 *            rename/tmpname/setlocale, package.loadlib, string.dump */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "binding.h"

#define SEARCH_PATH_KEY "nlgate.search_path" /* where require looks, fixed at start */

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

/* Every entry from the loop into Lua is protected; a panic means a bug of
 * ours. Say so before the abort Lua makes of it. */
static int panic(lua_State *L)
{
	nlg_gw_log("Lua panic (a bug in nlgate, please report): %s", lua_tostring(L, -1));
	return 0;
}

/* ---- load and require, text only -------------------------------------- */

/* load(chunk [, name [, mode [, env]]]): mode is always "t"; without env
 * the chunk sees the script's globals. */
static int safe_load(lua_State *L)
{
	int has_env = !lua_isnone(L, 4);

	luaL_checkany(L, 1);
	lua_settop(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1)); /* the real load */
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushliteral(L, "t");
	if (has_env)
		lua_pushvalue(L, 4);
	else
		lua_pushglobaltable(L);
	lua_call(L, 4, LUA_MULTRET);
	return lua_gettop(L) - 4;
}

/* The searcher behind require: name → a file on the fixed search path,
 * loaded as text. Upvalue 1 is the real package.searchpath: a script that
 * replaces the global one cannot make require open other files. */
static int search_text(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *file;

	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, SEARCH_PATH_KEY);
	lua_call(L, 2, 2);
	if (lua_isnil(L, -2))
		return 1; /* the message why: not found on the path */
	file = lua_tostring(L, -2);
	if (luaL_loadfilex(L, file, "t") != LUA_OK)
		return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
				  lua_tostring(L, -1));
	lua_pushstring(L, file);
	return 2;
}

/* ---- finalizers and message handlers ------------------------------------
 *
 * Lua runs __gc finalizers and xpcall message handlers where the count hook
 * cannot stop them (finalizers run with hooks off; a message handler that
 * raises is called again for its own error): a loop there would hold the
 * gateway, at a reload or at exit too. So scripts get no finalizers and no
 * __close (run when a coroutine killed by the budget is closed), and a
 * handler stopped by the budget does not run its message handler again. */

/* setmetatable(t, mt) as the base library has it, less finalizers; checked
 * here, not handed on, so errors name the script's line. */
static int safe_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	/* Raw lookups, as Lua's own: an __index on the metatable must not
	 * get to plant a __gc while we look. __close runs at the same places
	 * (a coroutine closed after a budget kill, an error unwinding). */
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc finalizers are not allowed in "
					     "scripts");
		lua_pushliteral(L, "__close");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __close metamethods are not allowed in "
					     "scripts");
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* The message handler xpcall is given: upvalue 1 is the script's. Once the
 * handler is stopped, the error goes through as it is. */
static int msgh_guard(lua_State *L)
{
	if (nlg_gw_stopped(L))
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int safe_xpcall(lua_State *L)
{
	int n = lua_gettop(L);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, msgh_guard, 1);
	lua_replace(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1)); /* the real xpcall */
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

/* ---- coroutines ------------------------------------------------------------
 *
 * A coroutine inherits its creator's hook when it is made, and a lazy
 * state's main thread runs unhooked (runtime.c): every coroutine gets the
 * budget's hook of its own. Upvalue 1 is the real function. */
static int hooked_create(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	nlg_gw_hook_thread(L, lua_tothread(L, -1));
	return 1;
}

static int hooked_wrap(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	/* coroutine.wrap's function keeps its thread as its one upvalue */
	if (lua_getupvalue(L, -1, 1) && lua_type(L, -1) == LUA_TTHREAD)
		nlg_gw_hook_thread(L, lua_tothread(L, -1));
	else
		return luaL_error(L, "coroutine.wrap: no thread to watch");
	lua_pop(L, 1);
	return 1;
}

static void hook_coroutines(lua_State *L)
{
	lua_getglobal(L, "coroutine");
	lua_getfield(L, -1, "create");
	lua_pushcclosure(L, hooked_create, 1);
	lua_setfield(L, -2, "create");
	lua_getfield(L, -1, "wrap");
	lua_pushcclosure(L, hooked_wrap, 1);
	lua_setfield(L, -2, "wrap");
	lua_pop(L, 1);
}

/* ---- terminal output ---------------------------------------------------- */

/* io.stdout / io.stderr stand-ins: write and flush, nothing that closes,
 * seeks or reads. Upvalue 1: the real file handle. */
static int out_write(lua_State *L)
{
	int n = lua_gettop(L);

	lua_pushvalue(L, lua_upvalueindex(1));
	lua_getfield(L, -1, "write");
	lua_insert(L, -2);
	for (int i = 2; i <= n; i++)
		lua_pushvalue(L, i);
	lua_call(L, n, 0);
	lua_settop(L, 1);
	return 1;
}

static int out_flush(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_getfield(L, -1, "flush");
	lua_insert(L, -2);
	lua_call(L, 1, 0);
	return 0;
}

/* Push a stand-in for the io library's file handle io[name]. */
static void push_stream(lua_State *L, int io, const char *name)
{
	lua_newtable(L);	  /* the object */
	lua_createtable(L, 0, 3); /* its metatable */
	lua_createtable(L, 0, 2); /* methods */
	lua_getfield(L, io, name);
	lua_pushvalue(L, -1);
	lua_pushcclosure(L, out_write, 1);
	lua_setfield(L, -3, "write");
	lua_pushcclosure(L, out_flush, 1);
	lua_setfield(L, -2, "flush");
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}

/* ---- the allow-list -------------------------------------------------------- */

/* Copy t[names...] of the library table at lib into a new table. */
static void keep(lua_State *L, int lib, const char *const *names)
{
	lua_newtable(L);
	for (; *names; names++) {
		lua_getfield(L, lib, *names);
		lua_setfield(L, -2, *names);
	}
}

static int build_env(lua_State *L)
{
	static const char *const base_drop[] = {"dofile", "loadfile", "debug", "io",
						"os",	  "package",  "load",  NULL};
	static const char *const os_keep[] = {"time", "clock", "date", "difftime", "getenv", NULL};
	static const char *const io_keep[] = {"write", "flush", NULL};
	const char *search_path = lua_tostring(L, 1);
	int g, io, os, pkg;

	luaL_openlibs(L);
	lua_pushglobaltable(L);
	g = lua_gettop(L);
	lua_getglobal(L, "io");
	io = lua_gettop(L);
	lua_getglobal(L, "os");
	os = lua_gettop(L);
	lua_getglobal(L, "package");
	pkg = lua_gettop(L);

	/* string.dump is reachable through every string's metatable: drop it
	 * from the library itself. */
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	hook_coroutines(L);

	/* require: preloaded modules (nlgate), then Lua text on the path. */
	lua_pushstring(L, search_path ? search_path : "");
	lua_setfield(L, LUA_REGISTRYINDEX, SEARCH_PATH_KEY);
	lua_createtable(L, 2, 0);
	lua_getfield(L, pkg, "searchers");
	lua_rawgeti(L, -1, 1); /* the preload searcher */
	lua_rawseti(L, -3, 1);
	lua_pop(L, 1);
	lua_getfield(L, pkg, "searchpath");
	lua_pushcclosure(L, search_text, 1);
	lua_rawseti(L, -2, 2);
	lua_setfield(L, pkg, "searchers");
	lua_pushnil(L);
	lua_setfield(L, pkg, "loadlib");
	lua_pushstring(L, "");
	lua_setfield(L, pkg, "cpath");
	lua_pushstring(L, search_path ? search_path : "");
	lua_setfield(L, pkg, "path");

	lua_getglobal(L, "load");
	lua_pushcclosure(L, safe_load, 1);
	lua_setfield(L, g, "\x01load"); /* parked while the base is trimmed */
	lua_pushcfunction(L, safe_setmetatable);
	lua_setfield(L, g, "setmetatable");
	lua_getglobal(L, "xpcall");
	lua_pushcclosure(L, safe_xpcall, 1);
	lua_setfield(L, g, "xpcall");

	keep(L, os, os_keep);
	keep(L, io, io_keep);
	push_stream(L, io, "stdout");
	lua_setfield(L, -2, "stdout");
	push_stream(L, io, "stderr");
	lua_setfield(L, -2, "stderr");
	for (const char *const *d = base_drop; *d; d++) {
		lua_pushnil(L);
		lua_setfield(L, g, *d);
	}
	lua_setfield(L, g, "io");
	lua_setfield(L, g, "os");
	lua_getfield(L, g, "\x01load");
	lua_setfield(L, g, "load");
	lua_pushnil(L);
	lua_setfield(L, g, "\x01load");
	/* package stays for require's bookkeeping (loaded, preload, path) */
	lua_pushvalue(L, pkg);
	lua_setfield(L, g, "package");
	/* the debug library is gone from package.loaded too */
	lua_getfield(L, pkg, "loaded");
	lua_pushnil(L);
	lua_setfield(L, -2, "debug");
	lua_pushnil(L);
	lua_setfield(L, -2, "io");
	lua_pushnil(L);
	lua_setfield(L, -2, "os");
	lua_getfield(L, g, "io");
	lua_setfield(L, -2, "io");
	lua_getfield(L, g, "os");
	lua_setfield(L, -2, "os");
	return 0;
}

lua_State *nlg_sandbox_new(size_t mem_limit, const char *search_path, struct nlg_err *err)
{
	struct lua_mem *m = calloc(1, sizeof(*m));
	lua_State *L;

	if (!m) {
		nlg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	m->limit = mem_limit;
	L = lua_newstate(limited_alloc, m);
	if (!L) {
		free(m);
		nlg_err_set(err, ENOMEM, "cannot create Lua state");
		return NULL;
	}
	lua_atpanic(L, panic);
	lua_pushcfunction(L, build_env);
	lua_pushstring(L, search_path ? search_path : "");
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		nlg_err_set(err, ENOMEM, "cannot set up the script's environment: %s",
			    lua_tostring(L, -1));
		nlg_sandbox_close(L);
		return NULL;
	}
	return L;
}

void nlg_sandbox_close(lua_State *L)
{
	void *ud;

	if (!L)
		return;
	lua_getallocf(L, &ud);
	lua_close(L);
	free(ud);
}
