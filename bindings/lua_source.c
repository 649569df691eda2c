/* gw.NAME{...} for every registered source: one binding for all. Options go
 * through the source's table; records arrive through the sink to an optional
 * script filter, the :each handler (one reused view) and the :batch handler
 * (the records of one poll or read step). A source that a reload's new state
 * declares again with the same options is handed over, not reopened. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/source.h"

#define SOURCE_MT "nlgate.source"

struct lua_src {
	struct nlg_gw *gw;
	const struct nlg_source_ops *ops;
	const struct nlg_schema *schema; /* the kind it emits with its options */
	struct nlg_inst *inst;		 /* NULL once closed (or handed to a new state) */
	struct nlg_gw_stat stat;
	int each_ref, batch_ref, filter_ref, view_ref, self_ref;
	struct nlg_view *view;
	struct nlg_view_fields each_fields; /* src:each(fn, names...): fn(r, values...) */
	int depth;			    /* sink calls of ours on the C stack */
	int closing; /* :close() ran inside a handler: finish when it returns */
	int batched; /* a run went to :batch in place since the last flush */
	struct nlg_recs recs;
	/* the script side's counters; the source keeps the rest */
	/* handler names for the log, made once: not per record */
	char what_each[40], what_batch[40], what_filter[40];
	uint32_t each_fails, batch_fails, filter_fails; /* in a row */
	uint64_t delivered, script_filtered, filter_errors, handler_errors, batches, batch_dropped;
};

static struct nlg_source *src_of(struct lua_src *ls)
{
	return ls->inst && !ls->closing ? ls->inst->handle : NULL;
}

static void push_stats(lua_State *L, struct lua_src *ls)
{
	struct nlg_source *src = src_of(ls);
	const struct nlg_schema *s = ls->ops->stats_schema;

	if (src && s) {
		void *rec = lua_newuserdatauv(L, s->rec_size, 0);
		memset(rec, 0, s->rec_size);
		nlg_source_stats(src, rec);
		nlg_lua_push_counters(L, s, rec);
		lua_remove(L, -2);
	} else {
		lua_createtable(L, 0, 8);
	}
#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
	SET("delivered", ls->delivered);
	SET("script_filtered", ls->script_filtered);
	SET("filter_errors", ls->filter_errors);
	SET("handler_errors", ls->handler_errors);
	SET("batches", ls->batches);
	SET("batch_dropped", ls->batch_dropped);
#undef SET
	lua_pushboolean(L, src != NULL);
	lua_setfield(L, -2, "open");
}

static void stat_push(lua_State *L, struct nlg_gw_stat *st)
{
	push_stats(L, (struct lua_src *)((char *)st - offsetof(struct lua_src, stat)));
}

/* ---- the sink -------------------------------------------------------------- */

static void finish_close(struct lua_src *ls);

static void enter(struct lua_src *ls)
{
	ls->depth++;
}

static void leave(struct lua_src *ls)
{
	if (--ls->depth == 0 && ls->closing)
		finish_close(ls);
}

/* The filter runs protected; the trampoline hands the verdict back. */
static int filter_tramp(lua_State *L)
{
	int *keep = lua_touserdata(L, 3);

	lua_settop(L, 2);
	lua_call(L, 1, 1);
	*keep = lua_toboolean(L, -1);
	return 0;
}

/* The :each handler of one record with its named fields (the view's
 * record set): protected, inside nlg_gw_call. */
static int each_one_tramp(lua_State *L)
{
	struct lua_src *ls = lua_touserdata(L, 1);

	nlg_view_push_anchors(L); /* 2 */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->each_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->view_ref);
	nlg_view_push_fields(L, ls->view, &ls->each_fields, 2);
	lua_call(L, 1 + ls->each_fields.n, 0);
	return 0;
}

static int deliver(struct lua_src *ls, const void *rec)
{
	lua_State *L = ls->gw->L;

	if (ls->filter_ref != LUA_NOREF) {
		/* A filter that raises keeps the record: the source loses
		 * nothing on a script bug, and filter_errors says so. */
		int keep = 1;
		lua_pushcfunction(L, filter_tramp);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->filter_ref);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->view_ref);
		lua_pushlightuserdata(L, &keep);
		ls->view->rec = rec;
		int rc = nlg_gw_call(ls->gw, L, 3, ls->what_filter);
		if (rc < 0) {
			ls->filter_errors++;
			keep = 1;
		}
		nlg_gw_outcome(ls->gw, L, rc, &ls->filter_fails, &ls->filter_ref, ls->what_filter);
		ls->view->rec = NULL;
		if (ls->closing)
			return NLG_CB_STOP;
		if (!keep) {
			ls->script_filtered++;
			return NLG_CB_OK;
		}
	}
	ls->delivered++;
	if (ls->batch_ref != LUA_NOREF && nlg_recs_push(&ls->recs, rec) < 0)
		ls->batch_dropped++; /* :each still sees it; the batch is short */
	if (ls->each_ref != LUA_NOREF) {
		int rc;
		ls->view->rec = rec;
		if (ls->each_fields.n) { /* the pushes allocate: inside the protected call */
			lua_pushcfunction(L, each_one_tramp);
			lua_pushlightuserdata(L, ls);
			rc = nlg_gw_call(ls->gw, L, 1, ls->what_each);
		} else {
			lua_rawgeti(L, LUA_REGISTRYINDEX, ls->each_ref);
			lua_rawgeti(L, LUA_REGISTRYINDEX, ls->view_ref);
			rc = nlg_gw_call(ls->gw, L, 1, ls->what_each);
		}
		if (rc < 0)
			ls->handler_errors++;
		nlg_gw_outcome(ls->gw, L, rc, &ls->each_fails, &ls->each_ref, ls->what_each);
		ls->view->rec = NULL;
	}
	return ls->closing ? NLG_CB_STOP : NLG_CB_OK;
}

/* A run of records for the :each handler alone (no filter), in one
 * protected call of each_tramp instead of one per record: each record is
 * still its own outermost handler call (counted, its own budget and watchdog
 * sequence) and its own failure. A raise unwinds to each_run's lua_pcall
 * with `i` the record whose handler raised (in_call: between its enter and
 * leave); it is reported and counted as nlg_gw_call would, and the run goes
 * on from the next record in a new protected call. */
struct each_call {
	struct lua_src *ls;
	const char *recs;
	size_t n, i; /* the run; the record being handed over */
	int in_call;
};

static int each_tramp(lua_State *L)
{
	struct each_call *ec = lua_touserdata(L, 1);
	struct lua_src *ls = ec->ls;
	struct nlg_gw *gw = ls->gw;
	size_t size = ls->schema->rec_size;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->view_ref); /* 2: the view, once */
	nlg_view_push_anchors(L);			 /* 3: for the named fields */
	for (; ec->i < ec->n; ec->i++) {
		const void *rec = ec->recs + ec->i * size;
		if (ls->closing || ls->each_ref == LUA_NOREF || ls->filter_ref != LUA_NOREF)
			break;
		ls->delivered++;
		if (ls->batch_ref != LUA_NOREF && nlg_recs_push(&ls->recs, rec) < 0)
			ls->batch_dropped++;
		int nf = ls->each_fields.n;
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->each_ref);
		lua_pushvalue(L, 2);
		ls->view->rec = rec;
		if (nf)
			nlg_view_push_fields(L, ls->view, &ls->each_fields, 3);
		gw->calls++;
		nlg_gw_enter(gw, ls->what_each);
		ec->in_call = 1;
		lua_call(L, 1 + nf, 0);
		ec->in_call = 0;
		nlg_gw_leave(gw, L);
		ls->each_fails = 0; /* nlg_gw_outcome of a success */
		ls->view->rec = NULL;
	}
	return 0;
}

/* Returns the index of the first record not taken: n, or where deliver()
 * must go on (a filter was set, the handler was dropped, or closing). */
static size_t each_run(struct lua_src *ls, const void *recs, size_t n)
{
	lua_State *L = ls->gw->L;
	struct nlg_gw *gw = ls->gw;
	struct each_call ec = {.ls = ls, .recs = recs, .n = n};
	int msgh, rc;

	lua_pushcfunction(L, nlg_gw_traceback);
	msgh = lua_gettop(L);
	for (;;) {
		lua_pushcfunction(L, each_tramp);
		lua_pushlightuserdata(L, &ec);
		rc = lua_pcall(L, 1, 0, msgh);
		if (rc == LUA_OK)
			break;
		if (ec.in_call) {
			ec.in_call = 0;
			nlg_gw_leave(gw, L);
		} else {
			gw->calls++; /* the set-up of record i failed: its call */
		}
		gw->errors++;
		if (rc == LUA_ERRMEM) {
			gw->oom++;
			nlg_gw_error(gw, ls->what_each, "not enough memory (the script's limit)");
		} else {
			nlg_gw_error(gw, ls->what_each, lua_tostring(L, -1));
		}
		lua_pop(L, 1);
		ls->handler_errors++;
		nlg_gw_outcome(gw, L, -1, &ls->each_fails, &ls->each_ref, ls->what_each);
		ls->view->rec = NULL;
		if (++ec.i >= n)
			break;
	}
	lua_pop(L, 1);
	return ec.i;
}

static int sink_record(void *data, const void *rec)
{
	struct lua_src *ls = data;
	int rc;

	if (ls->closing)
		return NLG_CB_STOP;
	enter(ls);
	rc = deliver(ls, rec);
	leave(ls);
	return rc;
}

/* The batch handler's call, with its set-up (the stats table, the batch
 * object): all of it allocates, so all of it runs protected — out of memory
 * is a logged, counted error, never a panic. */
struct batch_call {
	struct lua_src *ls;
	const void *recs;
	size_t n;
	int rc;
};

static int batch_tramp(lua_State *L)
{
	struct batch_call *bc = lua_touserdata(L, 1);
	struct lua_src *ls = bc->ls;

	push_stats(L, ls);
	bc->rc =
	    nlg_batch_call(ls->gw, L, ls->batch_ref, ls->schema, bc->recs, bc->n, ls->what_batch);
	return 0;
}

static void call_batch(struct lua_src *ls, const void *recs, size_t n)
{
	lua_State *L = ls->gw->L;
	struct batch_call bc = {.ls = ls, .recs = recs, .n = n, .rc = -1};

	ls->batches++;
	lua_pushcfunction(L, batch_tramp);
	lua_pushlightuserdata(L, &bc);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		ls->gw->errors++;
		ls->gw->oom++;
		nlg_gw_log("%s: batch not delivered: %s", ls->what_batch, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	if (bc.rc < 0)
		ls->handler_errors++;
	nlg_gw_outcome(ls->gw, L, bc.rc, &ls->batch_fails, &ls->batch_ref, ls->what_batch);
}

/* A run of records back to back (a worker ring): with only a batch handler
 * it gets them in place, without a copy. */
static int sink_records(void *data, const void *recs, size_t n)
{
	struct lua_src *ls = data;
	size_t size = ls->schema->rec_size;
	int rc = NLG_CB_OK;

	if (ls->closing)
		return NLG_CB_STOP;
	enter(ls);
	if (ls->filter_ref == LUA_NOREF && ls->each_ref == LUA_NOREF && !ls->recs.n &&
	    ls->batch_ref != LUA_NOREF) {
		ls->delivered += n;
		ls->batched = 1;
		call_batch(ls, recs, n);
	} else {
		size_t i = 0;
		if (ls->filter_ref == LUA_NOREF && ls->each_ref != LUA_NOREF)
			i = each_run(ls, recs, n);
		for (; i < n && rc == NLG_CB_OK && !ls->closing; i++)
			rc = deliver(ls, (const char *)recs + i * size);
	}
	leave(ls);
	return ls->closing ? NLG_CB_STOP : rc;
}

static void sink_flush(void *data)
{
	struct lua_src *ls = data;

	static const char none[1]; /* an empty batch's records: not NULL, which
				    * marks a batch used after its handler */
	int batched = ls->batched;

	ls->batched = 0;
	/* An empty poll is still a poll: a batch handler that ends peers or
	 * resolves alerts on what it no longer sees must hear of it. A run
	 * the batch handler already had in place (sink_records) was the poll. */
	if (ls->closing || ls->batch_ref == LUA_NOREF || (!ls->recs.n && batched)) {
		ls->recs.n = 0;
		return;
	}
	enter(ls);
	call_batch(ls, ls->recs.n ? ls->recs.data : none, ls->recs.n);
	nlg_recs_clear(&ls->recs);
	leave(ls);
}

static void sink_retract(void *data, int (*same)(const void *, const void *), const void *arg)
{
	struct lua_src *ls = data;
	char *r = ls->recs.data;
	size_t keep = 0, size = ls->recs.size;

	for (size_t i = 0; i < ls->recs.n; i++)
		if (!same(r + i * size, arg)) {
			if (keep != i)
				memcpy(r + keep * size, r + i * size, size);
			keep++;
		}
	ls->recs.n = keep;
}

static struct nlg_sink sink_for(struct lua_src *ls)
{
	return (struct nlg_sink){.record = sink_record,
				 .records = sink_records,
				 .flush = sink_flush,
				 .retract = sink_retract,
				 .data = ls};
}

static void handover(void *old_obj, void *new_obj, int commit);

/* ---- closing ------------------------------------------------------------- */

static void unref_all(struct lua_src *ls)
{
	lua_State *L = ls->gw->L;

	luaL_unref(L, LUA_REGISTRYINDEX, ls->each_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->batch_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->filter_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->view_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
	ls->each_ref = ls->batch_ref = ls->filter_ref = ls->view_ref = ls->self_ref = LUA_NOREF;
}

static void finish_close(struct lua_src *ls)
{
	ls->closing = 0;
	nlg_recs_free(&ls->recs);
	unref_all(ls);
}

/* Close the instance (it leaves the house) and our side. Inside one of our
 * own handlers the Lua side finishes when that handler returns. */
static void src_close(struct lua_src *ls)
{
	struct nlg_inst *in = ls->inst;

	nlg_gw_stat_del(&ls->stat);
	if (in) {
		/* A reload's new state closes what it was handed: the old state
		 * lets go first, so nothing points at the closed instance. */
		if (in->heir == ls->gw && in->obj)
			in->handover(in->obj, ls, 1);
		ls->inst = NULL;
		nlg_source_close(in->handle); /* deferred inside its own delivery */
		nlg_house_remove(ls->gw->house, in);
	}
	if (ls->depth > 0) {
		ls->closing = 1;
		return;
	}
	finish_close(ls);
}

void nlg_lua_quiesce(struct nlg_gw *gw)
{
	struct nlg_inst *in;

	gw->quiet = 1;
	/* src_close takes the instance out of the list: start over each time. */
	do {
		for (in = gw->house->list; in; in = in->next)
			if (in->owner == gw && in->obj && nlg_source_find(in->name) == in->ops) {
				src_close(in->obj);
				break;
			}
	} while (in);
}

static struct lua_src *check(lua_State *L)
{
	struct lua_src *ls = luaL_checkudata(L, 1, SOURCE_MT);
	if (!src_of(ls))
		luaL_error(L, "%s source is closed", ls->ops->name);
	return ls;
}

/* ---- methods ---------------------------------------------------------------- */

static int set_handler(lua_State *L, int *ref)
{
	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_unref(L, LUA_REGISTRYINDEX, *ref);
	lua_pushvalue(L, 2);
	*ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 1);
	return 1;
}

/* src:each(fn [, name...]): fn(r) per record, or fn(r, r.name, ...) with
 * the named fields read in C (no __index call per field). */
static int l_each(lua_State *L)
{
	struct lua_src *ls = check(L);
	struct nlg_view_fields f = {0};
	int n = lua_gettop(L) - 2;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (n > 0)
		nlg_view_fields_resolve(L, ls->schema, 3, n, &f, "each");
	lua_settop(L, 2);
	ls->each_fields = f;
	return set_handler(L, &ls->each_ref);
}

static int l_batch(lua_State *L)
{
	return set_handler(L, &check(L)->batch_ref);
}

/* src:poll(): one whole poll now, handlers included; returns the records. */
static int l_poll(lua_State *L)
{
	struct lua_src *ls = check(L);
	struct nlg_err err = {{0}};
	int rc;

	lua_State *prev = ls->gw->L;

	/* Handlers of this poll run on the caller's thread (perhaps a
	 * coroutine); the runtime keeps no pointer to it afterwards. */
	ls->gw->L = L;
	rc = nlg_source_poll(src_of(ls), &err);
	ls->gw->L = prev;
	if (rc < 0)
		return luaL_error(L, "%s", err.msg);
	lua_pushinteger(L, rc);
	return 1;
}

static int l_stats(lua_State *L)
{
	push_stats(L, luaL_checkudata(L, 1, SOURCE_MT));
	return 1;
}

static int l_notes(lua_State *L)
{
	lua_pushstring(L, nlg_source_notes(src_of(check(L))));
	return 1;
}

static int l_close(lua_State *L)
{
	struct lua_src *ls = luaL_checkudata(L, 1, SOURCE_MT);

	if (ls->inst && !ls->closing)
		src_close(ls);
	return 0;
}

/* An extra method of the source: upvalue 1 is its struct nlg_source_method. */
static int l_method(lua_State *L)
{
	const struct nlg_source_method *m = lua_touserdata(L, lua_upvalueindex(1));
	struct lua_src *ls = check(L);
	struct nlg_err err = {{0}};
	int rc;

	lua_State *prev = ls->gw->L;

	ls->gw->L = L;
	rc = nlg_source_call(src_of(ls), m, &err);
	ls->gw->L = prev;
	if (rc < 0)
		return luaL_error(L, "%s:%s: %s", ls->ops->name, m->name, err.msg);
	lua_pushboolean(L, rc);
	return 1;
}

static const luaL_Reg methods[] = {
    {"each", l_each},	{"batch", l_batch}, {"dump", l_batch},	{"poll", l_poll},
    {"stats", l_stats}, {"notes", l_notes}, {"close", l_close}, {NULL, NULL},
};

/* __index: the common methods, then the source's own (upvalue 1: a table
 * ops → { name = closure }). */
static int src_index(lua_State *L)
{
	struct lua_src *ls = luaL_checkudata(L, 1, SOURCE_MT);

	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (lua_rawgetp(L, lua_upvalueindex(2), ls->ops) == LUA_TTABLE) {
		lua_pushvalue(L, 2);
		lua_rawget(L, -2);
		return 1;
	}
	lua_pushnil(L);
	return 1;
}

static void push_extras(lua_State *L, const struct nlg_source_ops *ops)
{
	luaL_getmetatable(L, SOURCE_MT);
	lua_getfield(L, -1, "extras");
	if (lua_rawgetp(L, -1, ops) != LUA_TNIL) {
		lua_pop(L, 3);
		return;
	}
	lua_pop(L, 1);
	lua_newtable(L);
	for (const struct nlg_source_method *m = ops->methods; m && m->name; m++) {
		lua_pushlightuserdata(L, (void *)m);
		lua_pushcclosure(L, l_method, 1);
		lua_setfield(L, -2, m->name);
	}
	lua_rawsetp(L, -2, ops);
	lua_pop(L, 2);
}

static int src_gc(lua_State *L)
{
	struct lua_src *ls = luaL_checkudata(L, 1, SOURCE_MT);

	if (ls->inst) {
		ls->depth = 0; /* at lua_close nothing of ours is running */
		src_close(ls);
	}
	return 0;
}

/* ---- the constructor ----------------------------------------------------- */

static void log_notes(struct lua_src *ls)
{
	const char *s = nlg_source_notes(ls->inst->handle);

	while (*s) {
		size_t len = strcspn(s, "\n");
		if (len)
			nlg_gw_log("%s: note: %.*s", ls->ops->name, (int)len, s);
		s += len + (s[len] == '\n');
	}
}

static int l_new(lua_State *L)
{
	static const char *const extra[] = {"filter", NULL};
	const struct nlg_source_ops *ops = lua_touserdata(L, lua_upvalueindex(1));
	int own_filter = 0;
	struct nlg_gw *gw = nlg_gw_get(L);
	struct nlg_err err = {{0}};
	struct lua_src *ls;
	struct nlg_sink sink;
	char name[48];
	void *conf;

	snprintf(name, sizeof(name), "gw.%s", ops->name);
	nlg_gw_check_open(L, gw, name);
	/* filter is the script's function, or the source's own option where
	 * that takes text (packets: a tcpdump expression). */
	if (lua_istable(L, 1)) {
		own_filter = lua_getfield(L, 1, "filter") == LUA_TSTRING &&
			     nlg_opt_find(ops->opts, "filter", 0) >= 0;
		lua_pop(L, 1);
	}
	conf =
	    nlg_lua_conf(L, ops->opts, ops->conf_size, own_filter ? NULL : extra, name); /* at 2 */
	if (!own_filter) {
		int t = lua_getfield(L, 1, "filter");
		if (t != LUA_TNIL && t != LUA_TFUNCTION)
			return luaL_error(L, "%s: bad filter (function expected)", name);
		lua_pop(L, 1);
	}

	ls = lua_newuserdatauv(L, sizeof(*ls), 0); /* 3 */
	memset(ls, 0, sizeof(*ls));
	ls->gw = gw;
	ls->ops = ops;
	ls->each_ref = ls->batch_ref = ls->filter_ref = ls->view_ref = ls->self_ref = LUA_NOREF;
	ls->schema = nlg_source_schema(ops, conf);
	ls->recs.size = ls->schema->rec_size;
	snprintf(ls->what_each, sizeof(ls->what_each), "%s:each", ops->name);
	snprintf(ls->what_batch, sizeof(ls->what_batch), "%s:batch", ops->name);
	snprintf(ls->what_filter, sizeof(ls->what_filter), "%s filter", ops->name);
	luaL_setmetatable(L, SOURCE_MT);
	push_extras(L, ops);

	sink = sink_for(ls);
	/* A dry gateway opens nothing and claims nothing: a fake with the
	 * same name, schema and options takes the harness's records. */
	ls->inst = gw->dry ? NULL : nlg_house_claim(gw, ops, conf, ops->conf_size, ls);
	if (ls->inst) {
		nlg_source_set_sink(ls->inst->handle, &sink);
	} else {
		struct nlg_source *src =
		    gw->dry ? nlg_source_open_fake(ops, gw->loop, conf, &sink, &err)
			    : nlg_source_open(ops, gw->loop, conf, &sink, &err);
		if (!src)
			return luaL_error(L, "%s: %s", name, err.msg);
		ls->inst = nlg_house_add(gw, ops->name, ops, conf, ops->conf_size, src, ls);
		if (!ls->inst) {
			nlg_source_close(src);
			return luaL_error(L, "%s: out of memory", name);
		}
		ls->inst->handover = handover;
		if (!(lua_getfield(L, 1, "quiet"), lua_toboolean(L, -1)) && !gw->dry)
			log_notes(ls);
		lua_pop(L, 1);
	}
	if (!own_filter && lua_getfield(L, 1, "filter") != LUA_TNIL)
		ls->filter_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	else if (!own_filter)
		lua_pop(L, 1);
	nlg_view_new(L, ls->schema);
	ls->view = lua_touserdata(L, -1);
	ls->view_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* The loop holds the source: keep it alive until :close(). */
	lua_pushvalue(L, 3);
	ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	nlg_gw_stat_add(gw, &ls->stat, ops->name, stat_push);
	lua_settop(L, 3);
	return 1;
}

void nlg_lua_push_source_ctor(lua_State *L, const void *ops)
{
	lua_pushlightuserdata(L, (void *)ops);
	lua_pushcclosure(L, l_new, 1);
}

void nlg_lua_source_register(lua_State *L)
{
	luaL_newmetatable(L, SOURCE_MT);
	lua_newtable(L);
	lua_setfield(L, -2, "extras");
	luaL_newlib(L, methods);
	lua_getfield(L, -2, "extras");
	lua_pushcclosure(L, src_index, 2);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, src_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* ---- reload hand-over --------------------------------------------------- */

static void handover(void *old_obj, void *new_obj, int commit)
{
	struct lua_src *old = old_obj, *heir = new_obj;

	if (commit) {
		/* The old state lets go; its close leaves the source open. */
		nlg_gw_stat_del(&old->stat);
		nlg_recs_free(&old->recs);
		old->inst = NULL;
	} else {
		/* The new state failed: records go back to the old one. */
		struct nlg_sink sink = sink_for(old);
		nlg_source_set_sink(heir->inst->handle, &sink);
		nlg_gw_stat_del(&heir->stat);
		nlg_recs_free(&heir->recs);
		heir->inst = NULL;
	}
}
