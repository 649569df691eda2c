/* The test harness behind require "nlgate.testing"
 * (scripts/nlgate/testing.lua): a pipeline file in its own
 * sandboxed, dry state on a virtual clock; records pushed into its fake
 * sources, its timers fired as the clock is advanced, its outputs' frames
 * read back. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/output.h"
#include "nlgate/packet.h"
#include "nlgate/pcapfile.h"
#include "nlgate/script.h"
#include "nlgate/sockdiag.h"
#include "nlgate/source.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* ---- the harness: require "nlgate.testing_core" ---------------------------
 *
 * A pipeline is a file's top level run in a new sandboxed state, as under
 * `nlgate run`, on a dry gateway (struct nlg_dry) and a loop of its own
 * whose clock is the gateway's virtual one. The caller's state (busted's)
 * holds it as a userdata; values cross between the two as msgpack. */

#define PIPE_MT	  "nlgate.testing.pipeline"
#define MAX_FAKES 64

int luaopen_nlgate(lua_State *L);

struct pipeline {
	lua_State *P; /* the pipeline's state; NULL once closed */
	struct nlg_loop *loop;
	struct nlg_gw *gw;
	struct nlg_dry dry;
};

static uint64_t pipe_clock_ms(void *data)
{
	const struct pipeline *p = data;
	return p->gw->clock_ns / 1000000;
}

static void pipe_close(struct pipeline *p)
{
	if (p->P) {
		p->gw->sealed = 1; /* no __gc may open anything now */
		nlg_sandbox_close(p->P);
		p->P = NULL;
		p->gw = NULL;
	}
	nlg_loop_destroy(p->loop);
	p->loop = NULL;
	nlg_dry_free(&p->dry);
}

static struct pipeline *pipe_check(lua_State *L)
{
	struct pipeline *p = luaL_checkudata(L, 1, PIPE_MT);
	if (!p->P)
		luaL_error(L, "the pipeline is closed");
	return p;
}

/* Protected, on the pipeline's state: os.getenv answers from a table of
 * the caller's env (copied), and from nothing else. */
static int env_getenv(lua_State *P)
{
	luaL_checkstring(P, 1);
	lua_pushvalue(P, 1);
	if (lua_rawget(P, lua_upvalueindex(1)) != LUA_TSTRING)
		lua_pushnil(P);
	return 1;
}

static int env_install(lua_State *P)
{
	lua_State *L = lua_touserdata(P, 1);
	int env = (int)lua_tointeger(P, 2);

	lua_newtable(P);
	if (env) {
		lua_pushnil(L);
		while (lua_next(L, env)) {
			if (lua_type(L, -2) == LUA_TSTRING &&
			    (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
				lua_pushstring(P, lua_tostring(L, -2));
				lua_pushstring(P, lua_tostring(L, -1));
				lua_rawset(P, -3);
			}
			lua_pop(L, 1);
		}
	}
	lua_pushcclosure(P, env_getenv, 1);
	lua_getglobal(P, "os");
	lua_insert(P, -2);
	lua_setfield(P, -2, "getenv");
	return 0;
}

/* The error message without its traceback: "file:line: message". */
static const char *first_part(char *msg)
{
	char *tb = strstr(msg, "\nstack traceback:");
	if (tb)
		*tb = 0;
	return msg;
}

/* testing.pipeline(path, {clock = seconds, env = {...}, lua_path = "..."}) */
static int t_pipeline(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct nlg_script_opts o = {.mem_limit = 256u << 20, .insn_budget = 50000000};
	struct nlg_err err = {{0}};
	char lpath[4 * PATH_MAX];
	struct pipeline *p;
	lua_Number clock = 0;
	int env = 0;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		if (lua_getfield(L, 2, "clock") != LUA_TNIL)
			clock = luaL_checknumber(L, -1);
		if (clock < 0 || clock > 1e10)
			return luaL_error(L, "testing.pipeline: bad clock %f (seconds)", clock);
		if (lua_getfield(L, 2, "env") != LUA_TNIL) {
			luaL_checktype(L, -1, LUA_TTABLE);
			env = lua_gettop(L);
		}
		if (lua_getfield(L, 2, "lua_path") != LUA_TNIL)
			o.lua_path = luaL_checkstring(L, -1);
	}
	if (!o.lua_path) {
		nlg_script_lua_path(path, lpath, sizeof(lpath));
		o.lua_path = lpath;
	}
	p = lua_newuserdatauv(L, sizeof(*p), 0);
	memset(p, 0, sizeof(*p));
	luaL_setmetatable(L, PIPE_MT);
	if (!(p->loop = nlg_loop_create()))
		return luaL_error(L, "testing.pipeline: cannot create an event loop");
	p->P = nlg_script_sandbox(&o, p->loop, &p->dry, &err);
	if (!p->P)
		return luaL_error(L, "testing.pipeline: %s", err.msg);
	p->gw = nlg_gw_get(p->P);
	p->gw->virtual_clock = 1;
	p->gw->clock_ns = (uint64_t)(clock * 1e9);
	nlg_loop_set_clock(p->loop, pipe_clock_ms, p);
	lua_pushcfunction(p->P, env_install);
	lua_pushlightuserdata(p->P, L);
	lua_pushinteger(p->P, env);
	if (lua_pcall(p->P, 2, 0, 0) != LUA_OK) {
		pipe_close(p);
		return luaL_error(L, "testing.pipeline: out of memory");
	}
	if (nlg_script_run_file(p->P, path, &err) < 0) {
		pipe_close(p);
		return luaL_error(L, "%s", first_part(err.msg));
	}
	return 1;
}

/* The pipeline's open fake sources named key or emitting records of kind
 * key (all of them for NULL), at most MAX_FAKES. */
static size_t fakes(struct pipeline *p, const char *key, struct nlg_source **out)
{
	size_t n = 0;

	for (struct nlg_inst *in = p->gw->house->list; in && n < MAX_FAKES; in = in->next) {
		const struct nlg_source_ops *ops = nlg_source_find(in->name);
		if (in->owner != p->gw || !in->handle || (const void *)ops != in->ops)
			continue;
		if (key && strcmp(key, ops->name) &&
		    strcmp(key, nlg_source_schema(ops, in->conf)->kind))
			continue;
		out[n++] = in->handle;
	}
	return n;
}

/* A handler may have closed src meanwhile: is it still there? */
static int alive(struct pipeline *p, const struct nlg_source *src)
{
	if (!p->P)
		return 0;
	for (struct nlg_inst *in = p->gw->house->list; in; in = in->next)
		if (in->handle == src && in->owner == p->gw)
			return 1;
	return 0;
}

/* p:push(kind_or_name, table_or_view) → the sources it went to */
static int p_push(lua_State *L)
{
	struct pipeline *p = pipe_check(L);
	const char *key = luaL_checkstring(L, 2);
	struct nlg_source *src[MAX_FAKES];
	void *rec[MAX_FAKES];
	struct nlg_view *v = nlg_view_test(L, 3);
	size_t n = fakes(p, key, src);

	if (!v)
		luaL_checktype(L, 3, LUA_TTABLE);
	if (!n)
		return luaL_error(L, "p:push: the pipeline has no source named or of kind '%s'",
				  key);
	/* Every record is built before any is delivered: a bad table raises
	 * with nothing half-done. Each is a userdata on the stack. */
	luaL_checkstack(L, (int)n + 4, "p:push: too many sources");
	for (size_t i = 0; i < n; i++) {
		const struct nlg_source_ops *ops = nlg_source_ops(src[i]);
		const struct nlg_schema *s = nlg_source_schema(ops, nlg_source_conf(src[i]));
		rec[i] = lua_newuserdatauv(L, s->rec_size, 0);
		if (!v) {
			nlg_view_fill(L, 3, s, rec[i], "p:push");
			continue;
		}
		if (v->s != s)
			return luaL_error(L, "p:push: a %s record for %s, which takes %s",
					  v->s->kind, ops->name, s->kind);
		if (!v->rec)
			return luaL_error(L, "p:push: the record's handler has returned");
		memcpy(rec[i], v->rec, s->rec_size);
	}
	for (size_t i = 0; i < n; i++)
		if (alive(p, src[i]))
			nlg_source_inject(src[i], rec[i]);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* p:poll([kind_or_name]): end a poll of those sources (batch handlers run). */
static int p_poll(lua_State *L)
{
	struct pipeline *p = pipe_check(L);
	const char *key = luaL_optstring(L, 2, NULL);
	struct nlg_source *src[MAX_FAKES];
	size_t n = fakes(p, key, src);

	if (key && !n)
		return luaL_error(L, "p:poll: the pipeline has no source named or of kind '%s'",
				  key);
	for (size_t i = 0; i < n; i++)
		if (alive(p, src[i]))
			nlg_source_inject_flush(src[i]);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* p:advance(duration): the clock moves to each timer deadline in turn,
 * firing what is due there, and ends exactly duration later. Returns the
 * timers fired. */
static int p_advance(lua_State *L)
{
	struct pipeline *p = pipe_check(L);
	uint64_t ms = nlg_lua_checkduration(L, 2, "p:advance");
	uint64_t target = p->gw->clock_ns + ms * 1000000, when;
	lua_Integer fired = 0;

	nlg_loop_resume(p->loop); /* a gw.stop() of the script's stopped it */
	while (p->P && nlg_loop_next_timer(p->loop, &when) == 0 && when * 1000000 <= target) {
		int n;
		if (when * 1000000 > p->gw->clock_ns)
			p->gw->clock_ns = when * 1000000;
		if ((n = nlg_loop_fire_due(p->loop)) == 0)
			break; /* stopped by the script */
		fired += n;
	}
	if (p->P) {
		p->gw->clock_ns = target;
		fired += nlg_loop_fire_due(p->loop);
	}
	lua_pushinteger(L, fired);
	return 1;
}

/* p:sent([prefix [, output]]) → { {tag=, time=, record=, output=}, ... } */
static int p_sent(lua_State *L)
{
	struct pipeline *p = luaL_checkudata(L, 1, PIPE_MT);
	size_t plen = 0;
	const char *prefix = luaL_optlstring(L, 2, "", &plen);
	const char *output = luaL_optstring(L, 3, NULL);
	lua_Integer n = 0;

	lua_newtable(L);
	for (size_t i = 0; i < p->dry.nframes; i++) {
		const struct nlg_dry_frame *f = &p->dry.frames[i];
		if (strncmp(f->tag, prefix, plen) || (output && strcmp(output, f->output)))
			continue;
		lua_createtable(L, 0, 4);
		lua_pushstring(L, f->tag);
		lua_setfield(L, -2, "tag");
		lua_pushnumber(L, (lua_Number)f->time_ns / 1e9);
		lua_setfield(L, -2, "time");
		lua_pushstring(L, f->output);
		lua_setfield(L, -2, "output");
		if (nlg_lua_unpack(L, f->body, f->len) == 0)
			lua_setfield(L, -2, "record");
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

static int p_clear(lua_State *L)
{
	nlg_dry_clear(&((struct pipeline *)luaL_checkudata(L, 1, PIPE_MT))->dry);
	return 0;
}

static int p_errors(lua_State *L)
{
	struct pipeline *p = luaL_checkudata(L, 1, PIPE_MT);

	lua_createtable(L, (int)p->dry.nerrors, 0);
	for (size_t i = 0; i < p->dry.nerrors; i++) {
		lua_pushstring(L, p->dry.errors[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int p_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)pipe_check(L)->gw->clock_ns / 1e9);
	return 1;
}

/* Protected, on the pipeline's state: gw.stats() as msgpack. */
static int stats_tramp(lua_State *P)
{
	msgpack_packer pk;

	nlg_mp_init(&pk, lua_touserdata(P, 1));
	nlg_gw_stats(P);
	nlg_lua_pack(P, -1, &pk);
	return 0;
}

static int p_stats(lua_State *L)
{
	struct pipeline *p = pipe_check(L);
	struct nlg_buf b;
	int rc;

	nlg_buf_init(&b);
	lua_pushcfunction(p->P, stats_tramp);
	lua_pushlightuserdata(p->P, &b);
	if (lua_pcall(p->P, 1, 0, 0) != LUA_OK) {
		lua_pushstring(L, lua_tostring(p->P, -1));
		lua_pop(p->P, 1);
		nlg_buf_free(&b);
		return luaL_error(L, "p:stats: %s", lua_tostring(L, -1));
	}
	rc = nlg_lua_unpack(L, b.data, b.len);
	nlg_buf_free(&b);
	if (rc < 0)
		return luaL_error(L, "p:stats: cannot copy the stats");
	return 1;
}

static int p_stopped(lua_State *L)
{
	lua_pushboolean(L, nlg_loop_stopped(pipe_check(L)->loop));
	return 1;
}

static int p_close(lua_State *L)
{
	struct pipeline *p = luaL_checkudata(L, 1, PIPE_MT);
	if (p->P || p->loop)
		pipe_close(p);
	return 0;
}

/* testing.record(kind, table) → an owned view */
static int t_record(lua_State *L)
{
	const struct nlg_schema *s = nlg_schema_find(luaL_checkstring(L, 1));
	void *rec;

	if (!s)
		return luaL_error(L, "testing.record: unknown record kind '%s'",
				  lua_tostring(L, 1));
	rec = lua_newuserdatauv(L, s->rec_size, 0);
	nlg_view_fill(L, 2, s, rec, "testing.record");
	nlg_view_copy(L, s, rec);
	return 1;
}

struct replay {
	lua_State *L;
	const struct nlg_schema *s;
	lua_Integer n;
};

static int replay_rec(const struct nlg_sock *rec, void *data)
{
	struct replay *r = data;

	nlg_view_copy(r->L, r->s, rec);
	lua_rawseti(r->L, -2, ++r->n);
	return NLG_CB_OK;
}

/* A capture file's packets as pkt views, decoded as `gw.packets{file}`
 * decodes them; protected, so the open file is closed whatever happens. */
struct pcap_replay {
	struct nlg_pcap *pc;
	struct nlg_err err;
	int rc;
};

static int pcap_replay_tramp(lua_State *L)
{
	struct pcap_replay *r = lua_touserdata(L, 1);
	const struct nlg_schema *s = nlg_schema_find("pkt");
	const uint8_t *data;
	uint32_t caplen, wirelen;
	uint64_t ts;
	struct nlg_pkt p;
	lua_Integer n = 0;

	if (!s)
		return luaL_error(L, "testing.replay: no pkt schema in this build");
	lua_newtable(L);
	while ((r->rc = nlg_pcap_next(r->pc, &data, &caplen, &wirelen, &ts, &r->err)) == 1) {
		struct nlg_pkt_meta m = {.time_ns = ts, .wire_len = wirelen};
		nlg_pkt_decode(&p, nlg_pcap_link(r->pc), data, caplen, &m);
		nlg_view_copy(L, s, &p);
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

static int replay_pcap(lua_State *L, const char *path, const char *filter)
{
	struct pcap_replay r = {0};
	int rc;

	if (!(r.pc = nlg_pcap_open(path, filter, &r.err)))
		return luaL_error(L, "testing.replay: %s", r.err.msg);
	lua_pushcfunction(L, pcap_replay_tramp);
	lua_pushlightuserdata(L, &r);
	rc = lua_pcall(L, 1, 1, 0);
	nlg_pcap_close(r.pc);
	if (rc != LUA_OK)
		return lua_error(L);
	if (r.rc < 0)
		return luaL_error(L, "testing.replay: %s", r.err.msg);
	return 1;
}

/* pcap (either byte order, µs or ns) and pcapng, by their first four bytes */
static int is_capture(const unsigned char *m)
{
	static const uint32_t magic[] = {0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1,
					 0x0a0d0d0a};
	uint32_t v = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];

	for (size_t i = 0; i < NLG_ARRAY_SIZE(magic); i++)
		if (v == magic[i])
			return 1;
	return 0;
}

/* testing.replay(path [, proto]) → { view, ... } from a recorded sockets
 * dump. A reply says its protocol only where the kernel adds
 * INET_DIAG_PROTOCOL (not to a plain dump): else proto, by default "udp" for
 * a file whose name says udp, "mptcp" likewise, and "tcp" otherwise.
 * testing.replay(capture [, filter]) → { pkt view, ... } from a pcap or
 * pcapng file, through an optional tcpdump filter. */
static int t_replay(lua_State *L)
{
	static const char *const protos[] = {"tcp", "udp", "mptcp", NULL};
	static const int ipproto[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_MPTCP};
	const char *path = luaL_checkstring(L, 1);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int guess = strstr(base, "mptcp") ? 2 : strstr(base, "udp") ? 1 : 0;
	int proto;
	struct replay r = {.L = L, .s = nlg_schema_find("sock")};
	struct nlg_err err = {{0}};
	FILE *f;
	char *buf;
	long len;

	lua_settop(L, 2); /* the option stays at 2, absent or not */
	if (!(f = fopen(path, "rb")))
		return luaL_error(L, "testing.replay: %s: %s", path, strerror(errno));
	unsigned char head[4];
	if (fread(head, 1, 4, f) == 4 && is_capture(head)) {
		fclose(f);
		return replay_pcap(L, path, luaL_optstring(L, 2, ""));
	}
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return luaL_error(L, "testing.replay: %s: cannot read", path);
	}
	/* a userdata: a raise below leaks nothing */
	buf = lua_newuserdatauv(L, (size_t)len + 1, 0);
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fclose(f);
		return luaL_error(L, "testing.replay: %s: cannot read", path);
	}
	fclose(f);
	proto = ipproto[luaL_checkoption(L, 2, protos[guess], protos)];
	lua_newtable(L);
	if (nlg_sockdiag_replay(buf, (size_t)len, proto, replay_rec, &r, &err) < 0)
		return luaL_error(L, "testing.replay: %s: %s", path, err.msg);
	return 1;
}

int luaopen_nlgate_testing_core(lua_State *L)
{
	static const luaL_Reg methods[] = {
	    {"push", p_push},	{"poll", p_poll},   {"advance", p_advance},
	    {"sent", p_sent},	{"clear", p_clear}, {"errors", p_errors},
	    {"now", p_now},	{"stats", p_stats}, {"stopped", p_stopped},
	    {"close", p_close}, {NULL, NULL},
	};
	static const luaL_Reg funcs[] = {
	    {"pipeline", t_pipeline},
	    {"record", t_record},
	    {"replay", t_replay},
	    {NULL, NULL},
	};

	/* views need nlgate's classes in this state too */
	luaL_requiref(L, "nlgate", luaopen_nlgate, 0);
	lua_pop(L, 1);
	nlg_lua_class(L, PIPE_MT, methods, p_close);
	luaL_newlib(L, funcs);
	return 1;
}
