/* gw.every(interval, fn) and gw.after(delay, fn): timers on the gateway's
 * loop. A timer keeps itself alive until it is cancelled or fires its last
 * time, and unhooks from the loop when its state closes (reload, exit). */
#include <string.h>

#include "binding.h"

#define TIMER_MT "nlgate.timer"

struct lua_timer {
	struct nlg_gw *gw;
	int64_t id;
	int fn_ref, self_ref;
	uint32_t fails;	   /* in a row */
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
	int rc;

	if (t->gw->quiet) { /* exiting: the outputs drain, nothing new comes */
		t->id = 0;
		timer_cancel(L, t);
		return -1;
	}

	/* On the stack during the call: a handler that cancels its own timer
	 * and drops the last reference cannot have it collected under us. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
	lua_pushnumber(L, (lua_Number)nlg_gw_clock_ns(t->gw) / 1e9);
	rc = nlg_gw_call(t->gw, L, 1, "timer");
	if (t->id)
		nlg_gw_outcome(t->gw, L, rc, &t->fails, &t->fn_ref, "timer");
	if (!t->every_ms || !t->id || t->fn_ref == LUA_NOREF) {
		/* one-shot, cancelled inside, or disabled */
		if (t->id) {
			t->id = 0; /* the loop deletes it on our -1 */
			timer_cancel(L, t);
		}
		lua_pop(L, 1);
		return -1;
	}
	lua_pop(L, 1);
	return (int64_t)t->every_ms;
}

static int timer_new(lua_State *L, int repeat)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	uint64_t ms = nlg_lua_checkduration(L, 1, repeat ? "gw.every" : "gw.after");
	struct lua_timer *t;

	nlg_gw_check_open(L, gw, repeat ? "gw.every" : "gw.after");
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (repeat && ms == 0)
		return luaL_error(L, "gw.every: interval must be > 0");
	t = lua_newuserdatauv(L, sizeof(*t), 0);
	*t = (struct lua_timer){.gw = gw, .every_ms = repeat ? ms : 0};
	t->fn_ref = t->self_ref = LUA_NOREF;
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

int nlg_lua_every(lua_State *L)
{
	return timer_new(L, 1);
}

int nlg_lua_after(lua_State *L)
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
	struct lua_timer *t = luaL_checkudata(L, 1, TIMER_MT);
	if (t->id > 0 && t->gw->loop)
		nlg_loop_del_timer(t->gw->loop, t->id);
	t->id = 0;
	return 0;
}

void nlg_lua_timer_register(lua_State *L)
{
	static const luaL_Reg methods[] = {{"cancel", timer_cancel_l}, {NULL, NULL}};
	nlg_lua_class(L, TIMER_MT, methods, timer_gc);
}
