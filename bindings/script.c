/* The script API (include/nlgate/script.h): a pipeline file in a sandboxed
 * state on the caller's loop, and the reload that starts the new text aside,
 * hands over the sources and outputs it declares again with the same
 * options, carries gw.state across, and only then closes the old state. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/script.h"
#include "nlgate/source.h"

#define STATE_KEY "nlgate.state" /* as in nlgate.c */

int luaopen_nlgate(lua_State *L);

struct nlg_script {
	struct nlg_loop *loop;
	struct nlg_script_opts o;
	char path[PATH_MAX];
	char lua_path[4 * PATH_MAX];
	lua_State *L;
	struct nlg_house house;
};

/* Protected: the carried state, then require "nlgate" into a new state. */
static int open_module(lua_State *L)
{
	const struct nlg_buf *carry = lua_touserdata(L, 1);

	if (carry && carry->len && nlg_lua_unpack(L, carry->data, carry->len) == 0 &&
	    lua_istable(L, -1))
		lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
	luaL_requiref(L, "nlgate", luaopen_nlgate, 0);
	return 0;
}

static lua_State *state_new(struct nlg_script *s, const struct nlg_buf *carry, struct nlg_err *err)
{
	lua_State *L = nlg_sandbox_new(s->o.mem_limit, err);
	struct nlg_gw *gw;

	if (!L)
		return NULL;
	if (s->lua_path[0]) {
		lua_getglobal(L, "package");
		lua_pushfstring(L, "%s;", s->lua_path);
		lua_getfield(L, -2, "path");
		lua_concat(L, 2);
		lua_setfield(L, -2, "path");
		lua_pop(L, 1);
	}
	lua_pushlightuserdata(L, s->loop);
	lua_setfield(L, LUA_REGISTRYINDEX, NLG_LOOP_KEY);
	lua_pushlightuserdata(L, &s->house);
	lua_setfield(L, LUA_REGISTRYINDEX, NLG_HOUSE_KEY);
	lua_pushcfunction(L, open_module);
	lua_pushlightuserdata(L, (void *)carry);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		nlg_err_set(err, ENOMEM, "cannot start the runtime: %s", lua_tostring(L, -1));
		nlg_sandbox_close(L);
		return NULL;
	}
	gw = nlg_gw_get(L);
	gw->insn_budget = s->o.insn_budget;
	if (gw->insn_budget)
		lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, 1000);
	return L;
}

/* Load and run path's top level; err gets file:line and a traceback. */
static int run_file(lua_State *L, const char *path, struct nlg_err *err)
{
	int rc;

	lua_pushcfunction(L, nlg_gw_traceback);
	rc = luaL_loadfile(L, path);
	if (rc == LUA_OK) {
		nlg_gw_get(L)->insn_used = 0;
		rc = lua_pcall(L, 0, 0, -2);
	}
	if (rc != LUA_OK) {
		nlg_err_set(err, EINVAL, "%s", lua_tostring(L, -1));
		lua_pop(L, 2);
		return -EINVAL;
	}
	lua_pop(L, 1);
	return 0;
}

struct nlg_script *nlg_script_start(struct nlg_loop *loop, const char *path,
				    const struct nlg_script_opts *o, struct nlg_err *err)
{
	struct nlg_script *s = calloc(1, sizeof(*s));

	if (!s) {
		nlg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	s->loop = loop;
	if (o)
		s->o = *o;
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (o && o->lua_path)
		snprintf(s->lua_path, sizeof(s->lua_path), "%s", o->lua_path);
	s->o.lua_path = NULL;
	s->L = state_new(s, NULL, err);
	if (!s->L || run_file(s->L, s->path, err) < 0) {
		nlg_script_stop(s);
		return NULL;
	}
	return s;
}

/* Protected: gw.state of the old state as one msgpack value. */
static int pack_state(lua_State *L)
{
	struct nlg_buf *out = lua_touserdata(L, 1);
	msgpack_packer pk;

	nlg_mp_init(&pk, out);
	if (lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY) != LUA_TTABLE)
		return 0;
	nlg_lua_pack(L, -1, &pk, 0);
	return 0;
}

static void carry_state(lua_State *L, struct nlg_buf *out)
{
	lua_pushcfunction(L, pack_state);
	lua_pushlightuserdata(L, out);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		nlg_gw_log("reload: gw.state not carried over: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
		nlg_buf_reset(out);
	}
}

int nlg_script_reload(struct nlg_script *s, struct nlg_err *err)
{
	struct nlg_buf carry;
	struct nlg_gw *old_gw = nlg_gw_get(s->L), *gw;
	lua_State *L;
	int rc;

	nlg_buf_init(&carry);
	carry_state(s->L, &carry);
	L = state_new(s, &carry, err);
	nlg_buf_free(&carry);
	if (!L) {
		s->house.reload_failures++;
		return -ENOMEM;
	}
	gw = nlg_gw_get(L);
	s->house.starting = gw;
	rc = run_file(L, s->path, err);
	s->house.starting = NULL;
	for (struct nlg_inst *in = s->house.list; in; in = in->next) {
		if (in->heir != gw)
			continue;
		in->handover(in->obj, in->heir_obj, rc == 0);
		if (rc == 0) {
			in->owner = gw;
			in->obj = in->heir_obj;
			s->house.handed_over++;
		}
		in->heir = NULL;
		in->heir_obj = NULL;
	}
	if (rc < 0) {
		/* What the new state opened closes with it; the rest stays. */
		nlg_sandbox_close(L);
		s->house.reload_failures++;
		old_gw->L = s->L;
		return rc;
	}
	nlg_sandbox_close(s->L); /* closes what the new script no longer declares */
	s->L = L;
	s->house.reloads++;
	return 0;
}

void nlg_script_stop(struct nlg_script *s)
{
	if (!s)
		return;
	nlg_sandbox_close(s->L);
	free(s);
}

uint64_t nlg_script_errors(const struct nlg_script *s)
{
	return nlg_gw_get(s->L)->errors;
}

uint64_t nlg_script_caps(const struct nlg_script *s)
{
	uint64_t caps = 0;

	for (const struct nlg_inst *in = s->house.list; in; in = in->next) {
		const struct nlg_source_ops *ops = nlg_source_find(in->name);
		if (ops && (const void *)ops == in->ops)
			caps |= ops->caps | (ops->caps_for ? ops->caps_for(in->conf) : 0);
	}
	return caps;
}

int nlg_script_check(const char *path, struct nlg_err *err)
{
	lua_State *L = luaL_newstate();
	int rc = 0;

	if (!L)
		return nlg_err_set(err, ENOMEM, "out of memory");
	if (luaL_loadfile(L, path) != LUA_OK)
		rc = nlg_err_set(err, EINVAL, "%s", lua_tostring(L, -1));
	lua_close(L);
	return rc;
}
