/* Embedding the script runtime: the daemon creates a sandboxed Lua state
 * bound to its event loop, loads one pipeline script into it, and closes it. */
#ifndef NLGATE_SCRIPT_H
#define NLGATE_SCRIPT_H

#include <stddef.h>
#include <lua.h>
#include "common.h"
#include "loop.h"

struct nlg_lua_opts {
	size_t mem_limit;     /* bytes the script may allocate; 0 = no limit */
	uint64_t insn_budget; /* VM instructions per handler call; 0 = no limit */
	const char *lua_path; /* extra package.path entries, or NULL */
};

/* A sandboxed state (no os.execute, io.popen, package.loadlib, C module
 * loaders, os.exit) where require "nlgate" drives the given loop. */
lua_State *nlg_lua_new(struct nlg_loop *loop, const struct nlg_lua_opts *o, struct nlg_err *err);
/* Compile path; with run, also execute it. err gets "file:line: message"
 * (and a traceback when it raised while running). */
int nlg_lua_load(lua_State *L, const char *path, int run, struct nlg_err *err);
/* Closes the state: every source and output it opened is closed with it. */
void nlg_lua_close(lua_State *L);
/* Script error count (handler errors raised and caught). */
uint64_t nlg_lua_errors(lua_State *L);

int luaopen_nlgate(lua_State *L);

#endif
