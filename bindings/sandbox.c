/* A state for a pipeline script: a counting allocator that enforces the
 * memory limit, the standard libraries minus what a gateway running as root
 * must not offer (os.execute, os.exit, io.popen, package.loadlib, C module
 * searchers), and a panic handler that logs instead of aborting silently. */
#include <errno.h>
#include <stdlib.h>

#include <lualib.h>

#include "binding.h"

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

static void restrict_libs(lua_State *L)
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

lua_State *nlg_sandbox_new(size_t mem_limit, struct nlg_err *err)
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
	luaL_openlibs(L);
	restrict_libs(L);
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
