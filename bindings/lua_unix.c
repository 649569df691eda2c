/* gw.unix{...}: the local feed output. out:send(tag, x) encodes one frame —
 * straight from the C record for a view, from the value for a Lua table —
 * and hands it to every connected client (core/out_unix.c). */
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/out_unix.h"

#define UNIX_MT "nlgate.unix"

struct lua_unix {
	struct nlg_gw *gw;
	struct nlg_out_unix *u;
	struct nlg_gw_stat stat;
	char path[108];
	int self_ref;
	uint64_t sent, encode_errors;
};

static struct lua_unix *check(lua_State *L)
{
	struct lua_unix *lu = luaL_checkudata(L, 1, UNIX_MT);
	if (!lu->u)
		luaL_error(L, "unix output is closed");
	return lu;
}

static void push_stats(lua_State *L, struct lua_unix *lu)
{
	const struct nlg_out_unix_stats *st = lu->u ? nlg_out_unix_stats(lu->u) : NULL;

	lua_createtable(L, 0, 8);
	lua_pushstring(L, lu->path);
	lua_setfield(L, -2, "path");
#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
	SET("sent", lu->sent);
	if (st) {
		SET("frames", st->frames);
		SET("bytes", st->bytes);
		SET("dropped", st->dropped);
		SET("gaps", st->gaps);
		SET("clients", st->clients);
		SET("accepted", st->accepted);
	}
#undef SET
}

static void stat_push(lua_State *L, struct nlg_gw_stat *st)
{
	push_stats(L, (struct lua_unix *)((char *)st - offsetof(struct lua_unix, stat)));
}

/* out:send(tag, record_or_value) */
static int l_send(lua_State *L)
{
	struct lua_unix *lu = check(L);
	struct nlg_gw *gw = lu->gw;
	size_t taglen;
	const char *tag = luaL_checklstring(L, 2, &taglen);
	struct nlg_view *v = nlg_view_test(L, 3);
	uint64_t now = nlg_realtime_ns();

	luaL_checkany(L, 3);
	nlg_buf_reset(&gw->enc);
	if (v) {
		if (!v->rec)
			return luaL_error(L, "%s record used after its handler returned",
					  v->s->kind);
		if (nlg_enc_mp_frame(&gw->pk, tag, taglen, now, v->s, v->rec) < 0)
			return luaL_error(L, "send: out of memory");
	} else {
		nlg_enc_mp_frame_head(&gw->pk, tag, taglen, now);
		nlg_lua_pack(L, 3, &gw->pk, 0);
	}
	nlg_out_unix_send(lu->u, gw->enc.data, gw->enc.len);
	lu->sent++;
	return 0;
}

static int l_stats(lua_State *L)
{
	push_stats(L, check(L));
	return 1;
}

static void unix_close(lua_State *L, struct lua_unix *lu)
{
	nlg_gw_stat_del(&lu->stat);
	if (!lu->gw->closing)
		nlg_out_unix_flush(lu->u, 200);
	nlg_out_unix_close(lu->u);
	lu->u = NULL;
	luaL_unref(L, LUA_REGISTRYINDEX, lu->self_ref);
	lu->self_ref = LUA_NOREF;
}

static int l_close(lua_State *L)
{
	struct lua_unix *lu = luaL_checkudata(L, 1, UNIX_MT);
	if (lu->u)
		unix_close(L, lu);
	return 0;
}

static const luaL_Reg methods[] = {
    {"send", l_send},
    {"stats", l_stats},
    {"close", l_close},
    {NULL, NULL},
};

int nlg_lua_unix(lua_State *L)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	struct nlg_out_unix_opts o = {0};
	struct nlg_err err = {{0}};
	struct lua_unix *lu;

	if (lua_type(L, 1) == LUA_TSTRING) { /* gw.unix "path" */
		lua_createtable(L, 0, 1);
		lua_pushvalue(L, 1);
		lua_setfield(L, -2, "path");
		lua_replace(L, 1);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_getfield(L, 1, "path");
	o.path = luaL_optstring(L, -1, "nlgate.sock");
	lua_getfield(L, 1, "mode");
	if (lua_type(L, -1) == LUA_TSTRING)
		o.mode = (unsigned)strtoul(lua_tostring(L, -1), NULL, 8);
	else
		o.mode = (unsigned)luaL_optinteger(L, -1, 0660);
	lua_getfield(L, 1, "queue");
	o.queue_bytes = (size_t)luaL_optinteger(L, -1, 0);
	lua_getfield(L, 1, "max_clients");
	o.max_clients = (int)luaL_optinteger(L, -1, 0);
	lua_pop(L, 3); /* path string stays on the stack */

	lu = lua_newuserdatauv(L, sizeof(*lu), 0);
	memset(lu, 0, sizeof(*lu));
	lu->gw = gw;
	lu->self_ref = LUA_NOREF;
	luaL_setmetatable(L, UNIX_MT);
	snprintf(lu->path, sizeof(lu->path), "%s", o.path);
	lu->u = nlg_out_unix_open(gw->loop, &o, &err);
	if (!lu->u)
		return luaL_error(L, "gw.unix: %s", err.msg);
	lua_pushvalue(L, -1);
	lu->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	nlg_gw_stat_add(gw, &lu->stat, "feeds", stat_push);
	return 1;
}

static int unix_gc(lua_State *L)
{
	struct lua_unix *lu = lua_touserdata(L, 1);
	if (lu->u)
		unix_close(L, lu);
	return 0;
}

void nlg_lua_unix_register(lua_State *L)
{
	nlg_lua_class(L, UNIX_MT, methods, unix_gc);
}
