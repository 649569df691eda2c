/* gw.sockets{...}: a socket-dump source polled on a timer. Each poll runs the
 * sockdiag dump non-blocking from the event loop; records go to the :each
 * handler through one reused view, and to the :dump handler as one batch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "nlgate/sockdiag.h"

#define SOCKETS_MT "nlgate.sockets"

struct lua_sockets {
	struct nlg_gw *gw;
	struct nlg_sockdiag *sd;
	struct nlg_sockdiag_req req;
	struct nlg_gw_stat stat;
	char netns[64];
	uint64_t every_ms;
	int64_t timer;
	int each_ref, dump_ref, view_ref, self_ref;
	struct nlg_view *view;
	int running;	/* a poll is in flight */
	int registered; /* fd is in the loop */
	uint64_t started_ms, started_ns;
	/* the current poll's records, kept only when a :dump handler exists */
	struct nlg_recs recs; /* struct nlg_sock */
	/* counters */
	uint64_t polls, records, errors, overlaps, handler_errors;
	uint64_t last_ms, max_ms, last_records, poll_records;
	struct nlg_err last_err;
};

static int on_record(const struct nlg_sock *rec, void *data)
{
	struct lua_sockets *ls = data;
	lua_State *L = ls->gw->L;

	ls->records++;
	ls->poll_records++;
	if (ls->dump_ref != LUA_NOREF) {
		if (nlg_recs_push(&ls->recs, rec) < 0)
			return NLG_CB_ERROR;
	}
	if (ls->each_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->each_ref);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->view_ref);
		ls->view->rec = rec;
		if (nlg_gw_call(ls->gw, L, 1, "sockets:each") < 0)
			ls->handler_errors++;
		ls->view->rec = NULL;
	}
	return NLG_CB_OK;
}

/* An interrupted request is sent again: drop what the batch holds of it so
 * the :dump handler sees each socket once (:each may see it twice). */
static void on_restart(uint8_t family, uint8_t proto, void *data)
{
	struct lua_sockets *ls = data;
	struct nlg_sock *r = ls->recs.data;
	size_t keep = 0;

	for (size_t i = 0; i < ls->recs.n; i++)
		if (r[i].family != family || r[i].proto != proto)
			r[keep++] = r[i];
	ls->recs.n = keep;
}

static void push_stats(lua_State *L, struct lua_sockets *ls)
{
	lua_createtable(L, 0, 12);
#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
	const struct nlg_sockdiag_stats *st = ls->sd ? nlg_sockdiag_stats(ls->sd) : NULL;
	const struct nlg_nl_stats *nl = ls->sd ? nlg_nl_stats(nlg_sockdiag_nl(ls->sd)) : NULL;
	SET("polls", ls->polls);
	SET("records", ls->records);
	SET("last_records", ls->last_records);
	SET("last_ms", ls->last_ms);
	SET("max_ms", ls->max_ms);
	SET("errors", ls->errors);
	SET("overlaps", ls->overlaps);
	SET("handler_errors", ls->handler_errors);
	if (st) {
		SET("malformed", st->malformed);
		SET("skipped", st->skipped);
		SET("fallbacks", st->fallbacks);
	}
	if (nl) {
		SET("messages", nl->msgs);
		SET("bytes", nl->bytes);
		SET("recvs", nl->recvs);
		SET("interrupted", nl->intr);
	}
#undef SET
	lua_pushstring(L, ls->netns[0] ? ls->netns : "");
	lua_setfield(L, -2, "netns");
	if (ls->last_err.msg[0]) {
		lua_pushstring(L, ls->last_err.msg);
		lua_setfield(L, -2, "last_error");
	}
}

static void stat_push(lua_State *L, struct nlg_gw_stat *st)
{
	push_stats(L, (struct lua_sockets *)((char *)st - offsetof(struct lua_sockets, stat)));
}

static void poll_finish(struct lua_sockets *ls, int rc)
{
	lua_State *L = ls->gw->L;
	uint64_t ms = nlg_now_ms() - ls->started_ms;

	ls->running = 0;
	if (ls->registered) {
		nlg_loop_del_fd(ls->gw->loop, nlg_sockdiag_fd(ls->sd));
		ls->registered = 0;
	}
	if (rc < 0) {
		ls->errors++;
		nlg_gw_log("sockets: poll failed: %s", ls->last_err.msg);
		nlg_recs_clear(&ls->recs);
		return;
	}
	ls->polls++;
	ls->last_ms = ms;
	if (ms > ls->max_ms)
		ls->max_ms = ms;
	ls->last_records = ls->poll_records;
	if (ls->dump_ref != LUA_NOREF) {
		push_stats(L, ls);
		if (nlg_batch_call(ls->gw, L, ls->dump_ref, &nlg_sock_schema, ls->recs.data,
				   ls->recs.n, "sockets:dump") < 0)
			ls->handler_errors++;
	}
	nlg_recs_clear(&ls->recs);
}

static void poll_step(struct lua_sockets *ls)
{
	int rc = nlg_sockdiag_step(ls->sd, on_record, ls, &ls->last_err);
	if (rc != 1)
		poll_finish(ls, rc);
}

static void on_readable(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	NLG_UNUSED(loop);
	NLG_UNUSED(fd);
	NLG_UNUSED(events);
	poll_step(data);
}

static int poll_start(struct lua_sockets *ls)
{
	int rc;

	if (ls->running) {
		ls->overlaps++;
		return 0;
	}
	ls->last_err.msg[0] = 0;
	ls->recs.n = 0;
	ls->poll_records = 0;
	ls->started_ms = nlg_now_ms();
	ls->started_ns = nlg_realtime_ns();
	rc = nlg_sockdiag_start(ls->sd, &ls->req, &ls->last_err);
	if (rc < 0) {
		poll_finish(ls, rc);
		return rc;
	}
	ls->running = 1;
	rc = nlg_loop_add_fd(ls->gw->loop, nlg_sockdiag_fd(ls->sd), EPOLLIN, on_readable, ls);
	if (rc < 0) {
		nlg_err_set(&ls->last_err, rc, "sockets: cannot watch netlink socket");
		poll_finish(ls, rc);
		return rc;
	}
	ls->registered = 1;
	poll_step(ls);
	return 0;
}

static int64_t on_timer(struct nlg_loop *loop, int64_t id, void *data)
{
	struct lua_sockets *ls = data;

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	poll_start(ls);
	return (int64_t)ls->every_ms;
}

static struct lua_sockets *check(lua_State *L)
{
	struct lua_sockets *ls = luaL_checkudata(L, 1, SOCKETS_MT);
	if (!ls->sd)
		luaL_error(L, "sockets source is closed");
	return ls;
}

static int set_handler(lua_State *L, int *ref)
{
	check(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_unref(L, LUA_REGISTRYINDEX, *ref);
	lua_pushvalue(L, 2);
	*ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 1);
	return 1;
}

static int l_each(lua_State *L)
{
	struct lua_sockets *ls = check(L);
	return set_handler(L, &ls->each_ref);
}

static int l_dump(lua_State *L)
{
	struct lua_sockets *ls = check(L);
	return set_handler(L, &ls->dump_ref);
}

/* src:poll() — run one whole poll now, handlers included (blocking). */
static int l_poll(lua_State *L)
{
	struct lua_sockets *ls = check(L);
	int rc;

	if (ls->running)
		return luaL_error(L, "sockets:poll: a poll is already running");
	ls->gw->L = L;
	rc = poll_start(ls);
	while (rc == 0 && ls->running) {
		/* The socket is non-blocking: wait for it like the loop would. */
		struct epoll_event ev;
		int ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0)
			break;
		ev = (struct epoll_event){.events = EPOLLIN};
		epoll_ctl(ep, EPOLL_CTL_ADD, nlg_sockdiag_fd(ls->sd), &ev);
		while (ls->running) {
			if (epoll_wait(ep, &ev, 1, 5000) <= 0)
				break;
			poll_step(ls);
		}
		close(ep);
	}
	if (ls->running) {
		nlg_err_set(&ls->last_err, ETIMEDOUT, "sockets: poll timed out");
		poll_finish(ls, -ETIMEDOUT);
	}
	if (ls->last_err.msg[0] && ls->errors)
		return luaL_error(L, "%s", ls->last_err.msg);
	lua_pushinteger(L, (lua_Integer)ls->last_records);
	return 1;
}

static int l_stats(lua_State *L)
{
	push_stats(L, check(L));
	return 1;
}

static void sockets_close(lua_State *L, struct lua_sockets *ls)
{
	if (ls->timer > 0 && ls->gw->loop)
		nlg_loop_del_timer(ls->gw->loop, ls->timer);
	ls->timer = 0;
	if (ls->registered && ls->gw->loop)
		nlg_loop_del_fd(ls->gw->loop, nlg_sockdiag_fd(ls->sd));
	ls->registered = 0;
	nlg_gw_stat_del(&ls->stat);
	nlg_sockdiag_close(ls->sd);
	ls->sd = NULL;
	nlg_recs_free(&ls->recs);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->each_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->dump_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->view_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
	ls->each_ref = ls->dump_ref = ls->view_ref = ls->self_ref = LUA_NOREF;
}

static int l_close(lua_State *L)
{
	struct lua_sockets *ls = luaL_checkudata(L, 1, SOCKETS_MT);
	if (ls->sd)
		sockets_close(L, ls);
	return 0;
}

static const luaL_Reg methods[] = {
    {"each", l_each},	{"dump", l_dump},   {"poll", l_poll},
    {"stats", l_stats}, {"close", l_close}, {NULL, NULL},
};

/* An option or its default; the value stays on the stack (see nlg_lua_optlist). */
static const char *opt_string(lua_State *L, const char *key, const char *def)
{
	const char *v = nlg_lua_optlist(L, key, "gw.sockets");
	return v ? v : def;
}

static int parse_list(const char *list, const char *const *names, const uint32_t *bits,
		      uint32_t *out)
{
	char buf[128], *save = NULL, *tok;

	*out = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		int i;
		for (i = 0; names[i] && strcmp(names[i], tok); i++)
			;
		if (!names[i])
			return -EINVAL;
		*out |= bits[i];
	}
	return 0;
}

int nlg_lua_sockets(lua_State *L)
{
	static const char *const proto_names[] = {"tcp", "udp", "mptcp", "all", NULL};
	static const uint32_t proto_bits[] = {NLG_SD_TCP, NLG_SD_UDP, NLG_SD_MPTCP,
					      NLG_SD_TCP | NLG_SD_UDP | NLG_SD_MPTCP};
	static const char *const fam_names[] = {"inet", "inet6", "ipv4", "ipv6",
						"4",	"6",	 "all",	 NULL};
	static const uint32_t fam_bits[] = {NLG_SD_INET,
					    NLG_SD_INET6,
					    NLG_SD_INET,
					    NLG_SD_INET6,
					    NLG_SD_INET,
					    NLG_SD_INET6,
					    NLG_SD_INET | NLG_SD_INET6};
	struct nlg_gw *gw = nlg_gw_get(L);
	struct nlg_err err = {{0}};
	struct lua_sockets *ls;
	const char *s;

	if (lua_isnoneornil(L, 1))
		lua_newtable(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	ls = lua_newuserdatauv(L, sizeof(*ls), 0);
	memset(ls, 0, sizeof(*ls));
	ls->gw = gw;
	ls->each_ref = ls->dump_ref = ls->view_ref = ls->self_ref = LUA_NOREF;
	ls->recs.size = sizeof(struct nlg_sock);
	luaL_setmetatable(L, SOCKETS_MT);

	lua_getfield(L, 1, "every");
	ls->every_ms = lua_isnil(L, -1) ? 5000 : nlg_lua_checkduration(L, -1, "gw.sockets every");
	lua_pop(L, 1);
	if (ls->every_ms < 10)
		return luaL_error(L, "gw.sockets: every must be at least 10ms");
	s = opt_string(L, "proto", "tcp,udp");
	if (parse_list(s, proto_names, proto_bits, &ls->req.protos) < 0)
		return luaL_error(L, "gw.sockets: bad proto '%s' (tcp, udp, mptcp, all)", s);
	s = opt_string(L, "family", "inet,inet6");
	if (parse_list(s, fam_names, fam_bits, &ls->req.families) < 0)
		return luaL_error(L, "gw.sockets: bad family '%s' (inet, inet6, all)", s);
	s = opt_string(L, "states", "all");
	if (nlg_sockdiag_parse_states(s, &ls->req.states, &err) < 0)
		return luaL_error(L, "gw.sockets: %s", err.msg);
	s = opt_string(L, "info", "tcp_info,cong");
	if (nlg_sockdiag_parse_ext(s, &ls->req.ext, &err) < 0)
		return luaL_error(L, "gw.sockets: %s", err.msg);
	lua_getfield(L, 1, "sport");
	ls->req.sport = (uint16_t)luaL_optinteger(L, -1, 0);
	lua_getfield(L, 1, "dport");
	ls->req.dport = (uint16_t)luaL_optinteger(L, -1, 0);
	lua_pop(L, 2);
	s = opt_string(L, "netns", NULL);
	if (s)
		snprintf(ls->netns, sizeof(ls->netns), "%s", s);

	ls->sd = nlg_sockdiag_open(s, &err);
	if (!ls->sd)
		return luaL_error(L, "gw.sockets: %s", err.msg);
	nlg_sockdiag_set_restart(ls->sd, on_restart);
	nlg_view_new(L, &nlg_sock_schema);
	ls->view = lua_touserdata(L, -1);
	ls->view_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* The loop holds the source: keep it alive until :close(). */
	lua_pushvalue(L, 2); /* the source, not an option string above it */
	ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	nlg_gw_stat_add(gw, &ls->stat, "sockets", stat_push);

	lua_getfield(L, 1, "start");
	int autostart = lua_isnil(L, -1) || lua_toboolean(L, -1);
	if (autostart) {
		ls->timer = nlg_loop_add_timer(gw->loop, 0, on_timer, ls);
		if (ls->timer < 0)
			return luaL_error(L, "gw.sockets: cannot add timer");
	}
	lua_settop(L, 2); /* the source, above the option strings */
	return 1;
}

static int sockets_gc(lua_State *L)
{
	struct lua_sockets *ls = lua_touserdata(L, 1);
	if (ls->sd)
		sockets_close(L, ls);
	return 0;
}

void nlg_lua_sockets_register(lua_State *L)
{
	nlg_lua_class(L, SOCKETS_MT, methods, sockets_gc);
}
