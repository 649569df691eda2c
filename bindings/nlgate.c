/* Lua binding: under construction. */
#include <lua.h>
#include <lauxlib.h>
int luaopen_nlgate(lua_State *L);
int luaopen_nlgate(lua_State *L)
{
	lua_newtable(L);
	return 1;
}
