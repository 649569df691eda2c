/* gw.NAME{...} for every registered output: one binding for all. out:send
 * encodes the record body once — straight from the C record for a view, from
 * the value for a Lua table — and the output frames it its own way. An output
 * a reload's new state declares again with the same options is handed over:
 * a feed keeps its socket and its clients. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/output.h"

#define OUTPUT_MT      "nlgate.output"
#define CLOSE_DRAIN_MS 200 /* what a closing output may spend sending its queue */

struct lua_out {
	struct nlg_gw *gw;
	const struct nlg_output_ops *ops;
	struct nlg_inst *inst; /* NULL once closed (or handed to a new state) */
	struct nlg_gw_stat stat;
	int self_ref;
	int dry;	      /* a dry gateway's recorder: inst is ours, not the house's */
	struct lua_out *next; /* gw->outs while open */
	uint64_t offered;     /* out:send calls that framed */
};

/* At the end: nlg_lua_send_all sends in the order the script declared. */
static void outs_add(struct lua_out *lo)
{
	struct lua_out **p = &lo->gw->outs;

	while (*p)
		p = &(*p)->next;
	lo->next = NULL;
	*p = lo;
}

static void outs_del(struct lua_out *lo)
{
	for (struct lua_out **p = &lo->gw->outs; *p; p = &(*p)->next)
		if (*p == lo) {
			*p = lo->next;
			break;
		}
	lo->next = NULL;
}

/* Hand one encoded item to the output, or to the dry run's record. */
static int out_send(struct lua_out *lo, const struct nlg_item *it)
{
	if (lo->dry)
		return nlg_dry_frame_add(lo->gw->dry, lo->ops->name, it) < 0 ? -ENOMEM : 1;
	return lo->ops->send(lo->inst->handle, it);
}

static void push_stats(lua_State *L, struct lua_out *lo)
{
	const struct nlg_schema *s = lo->ops->stats_schema;

	if (lo->inst && s && lo->ops->stats) {
		void *rec = lua_newuserdatauv(L, s->rec_size, 0);
		memset(rec, 0, s->rec_size);
		if (!lo->dry) /* a recorder's counters are zeros */
			lo->ops->stats(lo->inst->handle, rec);
		nlg_lua_push_counters(L, s, rec);
		lua_remove(L, -2);
	} else {
		lua_createtable(L, 0, 2);
	}
	lua_pushinteger(L, (lua_Integer)lo->offered);
	lua_setfield(L, -2, "offered");
	lua_pushboolean(L, lo->inst != NULL);
	lua_setfield(L, -2, "open");
}

static void stat_push(lua_State *L, struct nlg_gw_stat *st)
{
	push_stats(L, (struct lua_out *)((char *)st - offsetof(struct lua_out, stat)));
}

static struct lua_out *check(lua_State *L)
{
	struct lua_out *lo = luaL_checkudata(L, 1, OUTPUT_MT);
	if (!lo->inst)
		luaL_error(L, "%s output is closed", lo->ops->name);
	return lo;
}

static int pack_tramp(lua_State *L)
{
	nlg_lua_pack(L, 1, lua_touserdata(L, 2));
	return 0;
}

/* out:send(tag, batch): every record, encoded and framed in C, one clock
 * read for all; forwarding a whole poll costs no Lua per record. */
static int send_batch(lua_State *L, struct lua_out *lo, struct nlg_item *it,
		      const struct nlg_batch *b)
{
	struct nlg_gw *gw = lo->gw;

	if (!b->recs)
		return luaL_error(L, "%s batch used after its handler returned", b->s->kind);
	for (size_t i = 0; i < b->n; i++) {
		nlg_buf_reset(&gw->enc);
		if (nlg_enc_mp_record(&gw->pk, b->s, (const char *)b->recs + i * b->s->rec_size) <
		    0)
			return luaL_error(L, "send: out of memory");
		it->body = gw->enc.data;
		it->len = gw->enc.len;
		if (out_send(lo, it) < 0)
			return luaL_error(L, "%s:send: cannot frame the item", lo->ops->name);
		lo->offered++;
	}
	return 0;
}

/* Encode the value at idx (a view or a Lua value) into gw->enc, once. */
static void encode_value(lua_State *L, struct nlg_gw *gw, int idx)
{
	struct nlg_view *v = nlg_view_test(L, idx);

	idx = lua_absindex(L, idx);
	nlg_buf_reset(&gw->enc);
	if (v) {
		if (!v->rec)
			luaL_error(L, "%s record used after its handler returned", v->s->kind);
		if (nlg_enc_mp_record(&gw->pk, v->s, v->rec) < 0)
			luaL_error(L, "send: out of memory");
		return;
	}
	/* No collection while the value is walked: a weak table or a
	 * finalizer would change it between the map's count and its
	 * entries. */
	int running = lua_gc(L, LUA_GCISRUNNING);
	lua_gc(L, LUA_GCSTOP);
	lua_pushcfunction(L, pack_tramp);
	lua_pushvalue(L, idx);
	lua_pushlightuserdata(L, &gw->pk);
	int rc = lua_pcall(L, 2, 0, 0);
	if (running)
		lua_gc(L, LUA_GCRESTART);
	if (rc != LUA_OK) { /* the script's line, as if raised here */
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
		lua_error(L);
	}
}

/* out:send(tag, record_or_value_or_batch) */
static int l_send(lua_State *L)
{
	struct lua_out *lo = check(L);
	struct nlg_gw *gw = lo->gw;
	struct nlg_item it;
	struct nlg_batch *b;

	it.tag = luaL_checklstring(L, 2, &it.taglen);
	luaL_checkany(L, 3);
	it.time_ns = nlg_gw_clock_ns(gw);
	if (!nlg_view_test(L, 3) && (b = nlg_batch_test(L, 3)))
		return send_batch(L, lo, &it, b);
	encode_value(L, gw, 3);
	it.body = gw->enc.data;
	it.len = gw->enc.len;
	if (out_send(lo, &it) < 0)
		return luaL_error(L, "%s:send: cannot frame the item", lo->ops->name);
	lo->offered++;
	return 0;
}

int nlg_lua_send_all(struct nlg_gw *gw, lua_State *L, const char *tag, int value_idx)
{
	struct nlg_item it = {.tag = tag, .taglen = strlen(tag), .time_ns = nlg_gw_clock_ns(gw)};
	int n = 0;

	encode_value(L, gw, value_idx);
	it.body = gw->enc.data;
	it.len = gw->enc.len;
	for (struct lua_out *lo = gw->outs; lo; lo = lo->next) {
		if (!lo->inst || out_send(lo, &it) < 0)
			continue;
		lo->offered++;
		n++;
	}
	return n;
}

static int l_stats(lua_State *L)
{
	push_stats(L, luaL_checkudata(L, 1, OUTPUT_MT));
	return 1;
}

static void out_close(lua_State *L, struct lua_out *lo)
{
	struct nlg_inst *in = lo->inst;

	nlg_gw_stat_del(&lo->stat);
	outs_del(lo);
	lo->inst = NULL;
	if (lo->dry) { /* a recorder: nothing was opened */
		free(in);
	} else {
		if (in->heir == lo->gw && in->obj)
			in->handover(in->obj, lo, 1);
		lo->ops->close(in->handle, lo->gw->closing ? 0 : CLOSE_DRAIN_MS);
		nlg_house_remove(lo->gw->house, in);
	}
	luaL_unref(L, LUA_REGISTRYINDEX, lo->self_ref);
	lo->self_ref = LUA_NOREF;
}

static int l_close(lua_State *L)
{
	struct lua_out *lo = luaL_checkudata(L, 1, OUTPUT_MT);
	if (lo->inst)
		out_close(L, lo);
	return 0;
}

static const luaL_Reg methods[] = {
    {"send", l_send},
    {"stats", l_stats},
    {"close", l_close},
    {NULL, NULL},
};

static int out_gc(lua_State *L)
{
	struct lua_out *lo = luaL_checkudata(L, 1, OUTPUT_MT);
	if (lo->inst)
		out_close(L, lo);
	return 0;
}

static void handover(void *old_obj, void *new_obj, int commit)
{
	struct lua_out *old = old_obj, *heir = new_obj;

	if (commit) {
		nlg_gw_stat_del(&old->stat);
		outs_del(old);
		old->inst = NULL;
	} else {
		nlg_gw_stat_del(&heir->stat);
		outs_del(heir);
		heir->inst = NULL;
	}
}

/* gw.unix "path" is gw.unix { path = "path" }: the first option. */
static int l_new(lua_State *L)
{
	const struct nlg_output_ops *ops = lua_touserdata(L, lua_upvalueindex(1));
	struct nlg_gw *gw = nlg_gw_get(L);
	struct nlg_err err = {{0}};
	struct lua_out *lo;
	char name[48];
	void *conf, *st;

	snprintf(name, sizeof(name), "gw.%s", ops->name);
	nlg_gw_check_open(L, gw, name);
	if (lua_type(L, 1) == LUA_TSTRING && ops->opts[0].name) {
		lua_createtable(L, 0, 1);
		lua_pushvalue(L, 1);
		lua_setfield(L, -2, ops->opts[0].name);
		lua_replace(L, 1);
	}
	conf = nlg_lua_conf(L, ops->opts, ops->conf_size, NULL, name); /* at 2 */

	lo = lua_newuserdatauv(L, sizeof(*lo), 0); /* 3 */
	memset(lo, 0, sizeof(*lo));
	lo->gw = gw;
	lo->ops = ops;
	lo->self_ref = LUA_NOREF;
	luaL_setmetatable(L, OUTPUT_MT);
	if (gw->dry) {
		/* Options checked; a recorder stands in for the output. */
		lo->inst = calloc(1, sizeof(*lo->inst));
		if (!lo->inst)
			return luaL_error(L, "%s: out of memory", name);
		lo->inst->name = ops->name;
		lo->inst->ops = ops;
		lo->dry = 1;
	} else {
		lo->inst = nlg_house_claim(gw, ops, conf, ops->conf_size, lo);
	}
	if (!lo->inst) {
		/* The output keeps its conf: open it with the house's copy. */
		struct nlg_inst *in =
		    nlg_house_add(gw, ops->name, ops, conf, ops->conf_size, NULL, lo);
		if (!in)
			return luaL_error(L, "%s: out of memory", name);
		if (ops->open(gw->loop, in->conf, &st, &err) < 0) {
			nlg_house_remove(gw->house, in);
			return luaL_error(L, "%s: %s", name, err.msg);
		}
		in->handle = st;
		in->handover = handover;
		lo->inst = in;
	}
	lua_pushvalue(L, 3);
	lo->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	nlg_gw_stat_add(gw, &lo->stat, ops->name, stat_push);
	outs_add(lo);
	return 1;
}

void nlg_lua_push_output_ctor(lua_State *L, const void *ops)
{
	lua_pushlightuserdata(L, (void *)ops);
	lua_pushcclosure(L, l_new, 1);
}

void nlg_lua_output_register(lua_State *L)
{
	nlg_lua_class(L, OUTPUT_MT, methods, out_gc);
}
