/* gw.conntrack{ events=..., reliable=..., filter=... }: the conntrack source
 * for scripts, with per-event (:each) and per-batch (:batch) handlers. */
#include "binding.h"

int nlg_lua_conntrack(lua_State *L)
{
	return luaL_error(L, "gw.conntrack: not built yet");
}

void nlg_lua_conntrack_register(lua_State *L)
{
	(void)L;
}
