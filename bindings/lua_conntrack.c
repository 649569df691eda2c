/* gw.conntrack{ events=..., reliable=..., filter=... }: the conntrack source
 * for scripts. Its sockets sit in the event loop, a timer drives tick/resync;
 * events go through an optional script filter to :each (one reused view) and
 * to :batch (the records of one read step). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "binding.h"
#include "nlgate/conntrack.h"

#define CT_MT	     "nlgate.conntrack"
#define CT_TICK_MS   250
#define CT_LINGER_MS 1 /* as `watch conntrack --linger`: batches a flood's reads */
#define CT_MAX_FDS   4
#define CT_GIVE_UP   1000 /* consecutive read errors before the source stops */
#define CT_LOG_GAP   1000 /* ms between two logged errors of one source */

struct lua_ct {
	struct nlg_gw *gw;
	struct nlg_ct_src *src;
	struct nlg_ct_opts o;
	struct nlg_gw_stat stat;
	char netns[64];
	char events[32];
	int fds[CT_MAX_FDS], nfds;
	int registered; /* fds are in the loop */
	int64_t timer;
	int each_ref, batch_ref, filter_ref, view_ref, self_ref;
	struct nlg_view *view;
	int depth;   /* inside a core call that may run handlers */
	int closing; /* :close() ran inside a handler: finish when it returns */
	/* the records of the current read step, kept only for a :batch handler */
	struct nlg_recs recs; /* struct nlg_ct */
	/* the script side's counters (the core keeps the rest) */
	uint64_t delivered, script_filtered, filter_errors, handler_errors, batches;
	uint64_t batch_dropped, errors, consecutive;
	uint64_t linger_ms; /* after a read that gave events, pause the fd this long */
	uint64_t last_log_ms;
	struct nlg_err last_err;
};

static const char *reliable_name(int r)
{
	return r == NLG_CT_RELIABLE_OFF ? "off" : r == NLG_CT_RELIABLE_ALL ? "all" : "destroy";
}

static void push_stats(lua_State *L, struct lua_ct *lc)
{
	const struct nlg_ct_stats *st = lc->src ? nlg_ct_stats(lc->src) : NULL;

	lua_createtable(L, 0, 32);
#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
	if (st) {
		SET("received", st->received);
		SET("new", st->new);
		SET("update", st->update);
		SET("destroy", st->destroy);
		SET("emitted", st->emitted);
		SET("lost", st->lost);
		SET("enobufs", st->enobufs);
		SET("deferred", st->deferred);
		SET("resyncs", st->resyncs);
		SET("resynced", st->resynced);
		SET("synthetic", st->synthetic);
		SET("duplicates", st->duplicates);
		SET("orphans", st->orphans);
		SET("filtered", st->filtered);
		SET("bad", st->bad);
		SET("dumped", st->dumped);
		SET("live", st->live);
		SET("rcvbuf", st->rcvbuf);
	}
	SET("delivered", lc->delivered);
	SET("script_filtered", lc->script_filtered);
	SET("filter_errors", lc->filter_errors);
	SET("handler_errors", lc->handler_errors);
	SET("batches", lc->batches);
	SET("batch_dropped", lc->batch_dropped);
	SET("errors", lc->errors);
#undef SET
	lua_pushboolean(L, lc->src && nlg_ct_syncing(lc->src));
	lua_setfield(L, -2, "syncing");
	lua_pushboolean(L, lc->src != NULL && !lc->closing);
	lua_setfield(L, -2, "open");
	lua_pushstring(L, lc->events);
	lua_setfield(L, -2, "events");
	lua_pushstring(L, reliable_name(lc->o.reliable));
	lua_setfield(L, -2, "reliable");
	lua_pushstring(L, lc->netns);
	lua_setfield(L, -2, "netns");
	if (lc->last_err.msg[0]) {
		lua_pushstring(L, lc->last_err.msg);
		lua_setfield(L, -2, "last_error");
	}
}

static void stat_push(lua_State *L, struct nlg_gw_stat *st)
{
	push_stats(L, (struct lua_ct *)((char *)st - offsetof(struct lua_ct, stat)));
}

/* Run the script filter, protected: the handler machinery logs and counts a
 * raise. The trampoline hands the verdict back through a C pointer. */
static int filter_tramp(lua_State *L)
{
	int *keep = lua_touserdata(L, 3);

	lua_settop(L, 2);
	lua_call(L, 1, 1);
	*keep = lua_toboolean(L, -1);
	return 0;
}

static int on_record(const struct nlg_ct *ct, void *data)
{
	struct lua_ct *lc = data;
	lua_State *L = lc->gw->L;

	if (lc->closing)
		return NLG_CB_ERROR; /* stop the read step: the source is going away */
	if (lc->filter_ref != LUA_NOREF) {
		/* A filter that raises keeps the event: the source loses nothing
		 * on a script bug, and filter_errors says it happened. */
		int keep = 1;
		lua_pushcfunction(L, filter_tramp);
		lua_rawgeti(L, LUA_REGISTRYINDEX, lc->filter_ref);
		lua_rawgeti(L, LUA_REGISTRYINDEX, lc->view_ref);
		lua_pushlightuserdata(L, &keep);
		lc->view->rec = ct;
		if (nlg_gw_call(lc->gw, L, 3, "conntrack filter") < 0) {
			lc->filter_errors++;
			keep = 1;
		}
		lc->view->rec = NULL;
		if (lc->closing)
			return NLG_CB_ERROR;
		if (!keep) {
			lc->script_filtered++;
			return NLG_CB_OK;
		}
	}
	lc->delivered++;
	if (lc->batch_ref != LUA_NOREF) {
		/* Out of memory: :each still sees it, the batch is short (counted). */
		if (nlg_recs_push(&lc->recs, ct) < 0)
			lc->batch_dropped++;
	}
	if (lc->each_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, lc->each_ref);
		lua_rawgeti(L, LUA_REGISTRYINDEX, lc->view_ref);
		lc->view->rec = ct;
		if (nlg_gw_call(lc->gw, L, 1, "conntrack:each") < 0)
			lc->handler_errors++;
		lc->view->rec = NULL;
	}
	return lc->closing ? NLG_CB_ERROR : NLG_CB_OK;
}

static void on_batch(void *data)
{
	struct lua_ct *lc = data;
	lua_State *L = lc->gw->L;

	if (lc->closing || lc->batch_ref == LUA_NOREF || !lc->recs.n) {
		lc->recs.n = 0;
		return;
	}
	lc->batches++;
	push_stats(L, lc);
	if (nlg_batch_call(lc->gw, L, lc->batch_ref, &nlg_ct_schema, lc->recs.data, lc->recs.n,
			   "conntrack:batch") < 0)
		lc->handler_errors++;
	nlg_recs_clear(&lc->recs);
}

static void unhook(struct lua_ct *lc)
{
	struct nlg_loop *loop = lc->gw->loop;

	if (lc->timer > 0 && loop)
		nlg_loop_del_timer(loop, lc->timer);
	lc->timer = 0;
	if (lc->registered && loop)
		for (int i = 0; i < lc->nfds; i++)
			nlg_loop_del_fd(loop, lc->fds[i]);
	lc->registered = 0;
}

static void ct_close(lua_State *L, struct lua_ct *lc)
{
	unhook(lc);
	nlg_gw_stat_del(&lc->stat);
	if (lc->depth > 0) {
		/* Inside one of our own handlers: the core is mid-read on src.
		 * Finish when it returns; self_ref keeps us alive until then. */
		lc->closing = 1;
		return;
	}
	nlg_ct_close(lc->src);
	lc->src = NULL;
	lc->closing = 0;
	nlg_recs_free(&lc->recs);
	luaL_unref(L, LUA_REGISTRYINDEX, lc->each_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, lc->batch_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, lc->filter_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, lc->view_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, lc->self_ref);
	lc->each_ref = lc->batch_ref = lc->filter_ref = lc->view_ref = lc->self_ref = LUA_NOREF;
}

/* After a core call: a deferred :close() completes here. */
static void leave(struct lua_ct *lc)
{
	if (--lc->depth == 0 && lc->closing)
		ct_close(lc->gw->L, lc);
}

static void report(struct lua_ct *lc, const char *what)
{
	uint64_t now = nlg_now_ms();

	lc->errors++;
	if (!lc->last_log_ms || now - lc->last_log_ms >= CT_LOG_GAP) {
		lc->last_log_ms = now;
		nlg_gw_log("conntrack: %s: %s", what, lc->last_err.msg);
	}
}

static void on_readable(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct lua_ct *lc = data;
	int r;

	NLG_UNUSED(loop);
	NLG_UNUSED(events);
	/* Not re-entered from a nested loop (gw.run inside a handler): the
	 * core is mid-read; the fd stays readable and is served afterwards. */
	if (!lc->src || lc->closing || lc->depth > 0)
		return;
	lc->depth++;
	uint64_t before = nlg_ct_stats(lc->src)->received;
	r = nlg_ct_readable(lc->src, fd, &lc->last_err);
	/* It just gave events, more are coming: read them in one batch. */
	if (r >= 0 && lc->linger_ms && lc->src && nlg_ct_stats(lc->src)->received != before)
		nlg_loop_pause_fd(lc->gw->loop, fd, lc->linger_ms);
	if (r < 0 && !lc->closing) {
		report(lc, "reading events");
		/* A socket that keeps failing would spin the loop: stop. */
		if (++lc->consecutive >= CT_GIVE_UP) {
			nlg_gw_log("conntrack: %llu read errors in a row, source stopped",
				   (unsigned long long)lc->consecutive);
			unhook(lc);
		}
	} else if (r >= 0) {
		lc->consecutive = 0;
	}
	leave(lc);
}

static int64_t on_tick(struct nlg_loop *loop, int64_t id, void *data)
{
	struct lua_ct *lc = data;

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	if (!lc->src || lc->closing)
		return -1;
	lc->depth++;
	if (nlg_ct_tick(lc->src, &lc->last_err) < 0)
		report(lc, "tick");
	leave(lc);
	if (!lc->src) { /* closed meanwhile: the loop deletes us on -1 */
		lc->timer = 0;
		return -1;
	}
	return CT_TICK_MS;
}

static struct lua_ct *check(lua_State *L)
{
	struct lua_ct *lc = luaL_checkudata(L, 1, CT_MT);
	if (!lc->src || lc->closing)
		luaL_error(L, "conntrack source is closed");
	return lc;
}

static int set_handler(lua_State *L, int *ref)
{
	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_unref(L, LUA_REGISTRYINDEX, *ref);
	lua_pushvalue(L, 2);
	*ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 1);
	return 1;
}

static int l_each(lua_State *L)
{
	return set_handler(L, &check(L)->each_ref);
}

static int l_batch(lua_State *L)
{
	return set_handler(L, &check(L)->batch_ref);
}

static int l_stats(lua_State *L)
{
	push_stats(L, luaL_checkudata(L, 1, CT_MT));
	return 1;
}

/* src:resync() — dump the table again now and reconcile (no-op with
 * resync=false; while a dump runs, it is redone after). */
static int l_resync(lua_State *L)
{
	struct lua_ct *lc = check(L);
	struct nlg_err err = {{0}};

	if (nlg_ct_resync(lc->src, &err) < 0)
		return luaL_error(L, "conntrack:resync: %s", err.msg);
	lua_pushboolean(L, lc->o.resync);
	return 1;
}

static int l_notes(lua_State *L)
{
	lua_pushstring(L, nlg_ct_notes(check(L)->src));
	return 1;
}

static int l_close(lua_State *L)
{
	struct lua_ct *lc = luaL_checkudata(L, 1, CT_MT);
	if (lc->src && !lc->closing)
		ct_close(L, lc);
	return 0;
}

static const luaL_Reg methods[] = {
    {"each", l_each},	{"batch", l_batch}, {"stats", l_stats}, {"resync", l_resync},
    {"notes", l_notes}, {"close", l_close}, {NULL, NULL},
};

/* ---- options ------------------------------------------------------------- */

static const char *opt_list(lua_State *L, const char *key)
{
	return nlg_lua_optlist(L, key, "gw.conntrack");
}

static int opt_bool(lua_State *L, const char *key, int def)
{
	int v = def;
	lua_getfield(L, 1, key);
	if (!lua_isnil(L, -1)) {
		if (!lua_isboolean(L, -1))
			luaL_error(L, "gw.conntrack: %s must be true or false", key);
		v = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	return v;
}

static int parse_u32(const char *s, const char **end, uint32_t *out)
{
	char *e;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &e, 0);
	if (errno || e == s || v > 0xffffffffull || *s == '-')
		return -EINVAL;
	*out = (uint32_t)v;
	*end = e;
	return 0;
}

static void parse_events(lua_State *L, struct lua_ct *lc)
{
	const char *s = opt_list(L, "events");

	if (s && nlg_ct_parse_events(s, &lc->o.events) < 0)
		luaL_error(L, "gw.conntrack: bad events '%s' (new, update, destroy, all)", s);
	snprintf(lc->events, sizeof(lc->events), "%s%s%s",
		 !lc->o.events || lc->o.events & NLG_CT_EV_NEW ? "new," : "",
		 !lc->o.events || lc->o.events & NLG_CT_EV_UPDATE ? "update," : "",
		 !lc->o.events || lc->o.events & NLG_CT_EV_DESTROY ? "destroy," : "");
	lc->events[strlen(lc->events) - 1] = 0;
	lua_pop(L, 1);
}

static void parse_reliable(lua_State *L, struct lua_ct *lc)
{
	int t = lua_getfield(L, 1, "reliable");

	if (t == LUA_TBOOLEAN) { /* true: the default reliable mode */
		lc->o.reliable =
		    lua_toboolean(L, -1) ? NLG_CT_RELIABLE_DESTROY : NLG_CT_RELIABLE_OFF;
	} else if (t == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		if (nlg_ct_parse_reliable(s, &lc->o.reliable) < 0)
			luaL_error(L,
				   "gw.conntrack: bad reliable '%s' (destroy, all, off, true, "
				   "false)",
				   s);
	} else if (t != LUA_TNIL) {
		luaL_error(L, "gw.conntrack: reliable must be destroy, all, off, true or false");
	}
	lua_pop(L, 1);
}

static void parse_family(lua_State *L, struct lua_ct *lc)
{
	static const char *const names[] = {"inet", "ipv4", "4", "inet6", "ipv6", "6", "all", NULL};
	static const uint8_t fams[] = {AF_INET, AF_INET, AF_INET, AF_INET6, AF_INET6, AF_INET6, 0};
	const char *s = opt_list(L, "family");
	int i;

	if (s) {
		for (i = 0; names[i] && strcmp(names[i], s); i++)
			;
		if (!names[i]) /* "inet,inet6" is every family too */
			i = !strcmp(s, "inet,inet6") || !strcmp(s, "inet6,inet") ? 6 : -1;
		if (i < 0)
			luaL_error(L, "gw.conntrack: bad family '%s' (inet, inet6, all)", s);
		lc->o.filter.family = fams[i];
	}
	lua_pop(L, 1);
}

static void parse_proto(lua_State *L, struct lua_ct *lc)
{
	static const struct {
		const char *name;
		uint8_t num;
	} names[] = {
	    {"tcp", IPPROTO_TCP},	{"udp", IPPROTO_UDP},	      {"icmp", IPPROTO_ICMP},
	    {"icmpv6", IPPROTO_ICMPV6}, {"sctp", IPPROTO_SCTP},	      {"dccp", IPPROTO_DCCP},
	    {"gre", IPPROTO_GRE},	{"udplite", IPPROTO_UDPLITE},
	};
	int t = lua_getfield(L, 1, "proto");

	if (t == LUA_TNUMBER) {
		lua_Integer v = luaL_checkinteger(L, -1);
		if (v <= 0 || v > 255)
			luaL_error(L, "gw.conntrack: bad proto %d (1-255)", (int)v);
		lc->o.filter.proto = (uint8_t)v;
	} else if (t == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		size_t i;
		for (i = 0; i < NLG_ARRAY_SIZE(names) && strcmp(names[i].name, s); i++)
			;
		if (i == NLG_ARRAY_SIZE(names) && strcmp(s, "all"))
			luaL_error(L,
				   "gw.conntrack: bad proto '%s' (tcp, udp, icmp, icmpv6, sctp, "
				   "dccp, gre, udplite, all or a number)",
				   s);
		lc->o.filter.proto = i < NLG_ARRAY_SIZE(names) ? names[i].num : 0;
	} else if (t != LUA_TNIL) {
		luaL_error(L, "gw.conntrack: proto must be a name or a number");
	}
	lua_pop(L, 1);
}

/* mark = 0x10 | "0x10" | "0x10/0xff"; zone = N */
static void parse_mark_zone(lua_State *L, struct lua_ct *lc)
{
	int t = lua_getfield(L, 1, "mark");

	if (t == LUA_TNUMBER) {
		lua_Integer v = luaL_checkinteger(L, -1);
		if (v < 0 || v > 0xffffffffll)
			luaL_error(L, "gw.conntrack: bad mark %I (0 to 0xffffffff)", v);
		lc->o.filter.mark = (uint32_t)v;
		lc->o.filter.mark_mask = 0xffffffffu;
		lc->o.filter.has_mark = 1;
	} else if (t == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1), *end;
		lc->o.filter.mark_mask = 0xffffffffu;
		if (parse_u32(s, &end, &lc->o.filter.mark) < 0 ||
		    (*end == '/' && (parse_u32(end + 1, &end, &lc->o.filter.mark_mask) < 0)) ||
		    *end)
			luaL_error(L, "gw.conntrack: bad mark '%s' (VALUE or VALUE/MASK)", s);
		lc->o.filter.has_mark = 1;
	} else if (t != LUA_TNIL) {
		luaL_error(L, "gw.conntrack: mark must be a number or \"VALUE/MASK\"");
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "zone") != LUA_TNIL) {
		int ok;
		lua_Integer z = lua_tointegerx(L, -1, &ok);
		if (!ok || z < 0 || z > 65535)
			luaL_error(L, "gw.conntrack: bad zone (0-65535)");
		lc->o.filter.zone = (uint16_t)z;
		lc->o.filter.has_zone = 1;
	}
	lua_pop(L, 1);
}

/* rcvbuf = bytes, or "512k" / "64M" / "1G". */
static void parse_rcvbuf(lua_State *L, struct lua_ct *lc)
{
	int t = lua_getfield(L, 1, "rcvbuf");
	uint64_t v = 0;

	if (t == LUA_TNUMBER) {
		lua_Integer n = luaL_checkinteger(L, -1);
		v = n < 0 ? 0 : (uint64_t)n;
	} else if (t == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		char *end;
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno || end == s || *s == '-')
			v = 0;
		else if (*end == 'k' || *end == 'K')
			v <<= 10, end++;
		else if (*end == 'm' || *end == 'M')
			v <<= 20, end++;
		else if (*end == 'g' || *end == 'G')
			v <<= 30, end++;
		if (*end)
			v = 0;
	} else if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (v < 4096 || v > 0x7fffffff)
		luaL_error(L, "gw.conntrack: bad rcvbuf (4096 bytes to 2G; e.g. 65536, \"64M\")");
	lc->o.rcvbuf = (int)v;
	lua_pop(L, 1);
}

static void log_notes(struct lua_ct *lc)
{
	const char *s = nlg_ct_notes(lc->src);

	while (*s) {
		size_t len = strcspn(s, "\n");
		if (len)
			nlg_gw_log("conntrack: note: %.*s", (int)len, s);
		s += len + (s[len] == '\n');
	}
}

int nlg_lua_conntrack(lua_State *L)
{
	struct nlg_gw *gw = nlg_gw_get(L);
	struct nlg_err err = {{0}};
	struct nlg_ct_sink sink;
	struct lua_ct *lc;
	const char *s;

	if (lua_isnoneornil(L, 1))
		lua_newtable(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lc = lua_newuserdatauv(L, sizeof(*lc), 0);
	memset(lc, 0, sizeof(*lc));
	lc->gw = gw;
	lc->each_ref = lc->batch_ref = lc->filter_ref = lc->view_ref = lc->self_ref = LUA_NOREF;
	lc->recs.size = sizeof(struct nlg_ct);
	luaL_setmetatable(L, CT_MT); /* at 2, the options at 1 */
	nlg_ct_opts_default(&lc->o);

	parse_events(L, lc);
	parse_reliable(L, lc);
	parse_family(L, lc);
	parse_proto(L, lc);
	parse_mark_zone(L, lc);
	parse_rcvbuf(L, lc);
	lua_getfield(L, 1, "linger");
	lc->linger_ms =
	    lua_isnil(L, -1) ? CT_LINGER_MS : nlg_lua_checkduration(L, -1, "gw.conntrack linger");
	lua_pop(L, 1);
	if (lc->linger_ms > 1000)
		return luaL_error(L, "gw.conntrack: linger must be at most 1s");
	lc->o.initial_dump = opt_bool(L, "dump", 1);
	lc->o.resync = opt_bool(L, "resync", 1);
	int quiet = opt_bool(L, "quiet", 0);
	s = opt_list(L, "netns");
	if (s) {
		if (strlen(s) >= sizeof(lc->netns) || strchr(s, '/') || !*s)
			return luaL_error(L, "gw.conntrack: bad netns '%s'", s);
		snprintf(lc->netns, sizeof(lc->netns), "%s", s);
		lc->o.netns = lc->netns;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "filter") != LUA_TNIL) {
		luaL_checktype(L, -1, LUA_TFUNCTION);
		lc->filter_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	} else {
		lua_pop(L, 1);
	}
	lua_settop(L, 2); /* the source on top */

	sink = (struct nlg_ct_sink){.record = on_record, .batch = on_batch, .data = lc};
	lc->src = nlg_ct_open(&lc->o, &sink, &err);
	if (!lc->src) {
		luaL_unref(L, LUA_REGISTRYINDEX, lc->filter_ref);
		lc->filter_ref = LUA_NOREF;
		if (!strstr(err.msg, "CAP_NET_ADMIN") &&
		    (strstr(err.msg, "ermission") || strstr(err.msg, "not permitted")))
			return luaL_error(L, "gw.conntrack: %s (needs CAP_NET_ADMIN)", err.msg);
		return luaL_error(L, "gw.conntrack: %s", err.msg);
	}
	nlg_view_new(L, &nlg_ct_schema);
	lc->view = lua_touserdata(L, -1);
	lc->view_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* The loop holds the source: keep it alive until :close(). */
	lua_pushvalue(L, -1);
	lc->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	nlg_gw_stat_add(gw, &lc->stat, "conntrack", stat_push);
	if (!quiet)
		log_notes(lc);

	lc->nfds = nlg_ct_fds(lc->src, lc->fds, CT_MAX_FDS);
	lc->registered = 1;
	for (int i = 0; i < lc->nfds; i++) {
		int r = nlg_loop_add_fd(gw->loop, lc->fds[i], EPOLLIN, on_readable, lc);
		if (r < 0) {
			ct_close(L, lc);
			return luaL_error(L, "gw.conntrack: cannot watch a netlink socket: %s",
					  strerror(-r));
		}
	}
	lc->timer = nlg_loop_add_timer(gw->loop, CT_TICK_MS, on_tick, lc);
	if (lc->timer < 0) {
		lc->timer = 0;
		ct_close(L, lc);
		return luaL_error(L, "gw.conntrack: cannot add timer");
	}
	return 1;
}

static int ct_gc(lua_State *L)
{
	struct lua_ct *lc = lua_touserdata(L, 1);
	if (lc->src) {
		lc->depth = 0; /* at lua_close nothing of ours is running */
		ct_close(L, lc);
	}
	return 0;
}

void nlg_lua_conntrack_register(lua_State *L)
{
	nlg_lua_class(L, CT_MT, methods, ct_gc);
}
