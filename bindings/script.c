/* The script API (include/nlgate/script.h): a pipeline file in a sandboxed
 * state on the caller's loop, and the reload that starts the new text aside,
 * hands over the sources and outputs it declares again with the same
 * options, carries gw.state across, and only then closes the old state. */
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/output.h"
#include "nlgate/script.h"
#include "nlgate/source.h"

#define STATE_KEY "nlgate.state" /* as in nlgate.c */

#ifndef NLGATE_SRCDIR
#define NLGATE_SRCDIR "/usr/share/nlgate"
#endif

/* package.path: the script's own directory, then the shipped rule library. */
void nlg_script_lua_path(const char *script, char *buf, size_t len)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", script);
	snprintf(buf, len, "%s/?.lua;%s/scripts/?.lua;%s/scripts/?/init.lua", dirname(dir),
		 NLGATE_SRCDIR, NLGATE_SRCDIR);
}

int luaopen_nlgate(lua_State *L);

struct watchdog {
	pthread_t thread;
	pthread_t loop_thread; /* where NLG_SIG_ARM goes */
	int running;
	int lazy; /* the budget's hook is armed by this thread (nlg_gw_lazy) */
	atomic_int quit;
};

struct nlg_script {
	struct nlg_loop *loop;
	struct watchdog wd;
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

/* Close a state: first sealed, so a __gc that runs during the close cannot
 * open a source, an output or a timer that would outlive it. */
static void state_close(lua_State *L)
{
	if (!L)
		return;
	nlg_gw_get(L)->sealed = 1;
	nlg_sandbox_close(L);
}

/* A sandboxed state with nlgate open on loop and house (NULL: its own);
 * dry: a dry gateway recording into it. */
static lua_State *sandbox_gw(const struct nlg_script_opts *o, const char *lua_path,
			     struct nlg_loop *loop, struct nlg_house *house, struct nlg_dry *dry,
			     const struct nlg_buf *carry, struct nlg_err *err)
{
	lua_State *L = nlg_sandbox_new(o->mem_limit, lua_path, err);
	struct nlg_gw *gw;

	if (!L)
		return NULL;
	lua_pushlightuserdata(L, loop);
	lua_setfield(L, LUA_REGISTRYINDEX, NLG_LOOP_KEY);
	if (house) {
		lua_pushlightuserdata(L, house);
		lua_setfield(L, LUA_REGISTRYINDEX, NLG_HOUSE_KEY);
	}
	if (dry) {
		lua_pushlightuserdata(L, dry);
		lua_setfield(L, LUA_REGISTRYINDEX, NLG_DRY_KEY);
	}
	lua_pushcfunction(L, open_module);
	lua_pushlightuserdata(L, (void *)carry);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		nlg_err_set(err, ENOMEM, "cannot start the runtime: %s", lua_tostring(L, -1));
		nlg_sandbox_close(L);
		return NULL;
	}
	gw = nlg_gw_get(L);
	gw->insn_budget = o->insn_budget;
	if (gw->insn_budget)
		lua_sethook(L, nlg_gw_budget_hook, LUA_MASKCOUNT, NLG_HOOK_EVERY);
	return L;
}

lua_State *nlg_script_sandbox(const struct nlg_script_opts *o, struct nlg_loop *loop,
			      struct nlg_dry *dry, struct nlg_err *err)
{
	return sandbox_gw(o, o->lua_path, loop, NULL, dry, NULL, err);
}

static lua_State *state_new(struct nlg_script *s, const struct nlg_buf *carry, struct nlg_err *err)
{
	return sandbox_gw(&s->o, s->lua_path, s->loop, &s->house, NULL, carry, err);
}

/* Load and run path's top level; err gets file:line and a traceback. */
int nlg_script_run_file(lua_State *L, const char *path, struct nlg_err *err)
{
	int rc;

	lua_pushcfunction(L, nlg_gw_traceback);
	rc = luaL_loadfilex(L, path, "t");
	if (rc == LUA_OK) {
		struct nlg_gw *gw = nlg_gw_get(L);
		nlg_gw_enter(gw, "the script's top level");
		rc = lua_pcall(L, 0, 0, -2);
		nlg_gw_leave(gw, L);
	}
	if (rc != LUA_OK) {
		nlg_err_set(err, EINVAL, "%s", lua_tostring(L, -1));
		lua_pop(L, 2);
		return -EINVAL;
	}
	lua_pop(L, 1);
	return 0;
}

/* ---- the watchdog ---------------------------------------------------------
 *
 * The loop thread cannot watch itself while a handler holds it. This thread
 * samples, every WD_TICK_MS, the house's call sequence: the same outermost
 * call still running one tick later has held the loop that much longer. It
 * reads no clock on the loop thread's behalf and takes no lock there. A
 * sample that finds a call running looks again WD_ARM_MS later, and if the
 * same call still runs it gets the budget's hook (NLG_SIG_ARM, see
 * nlg_gw_lazy): the budget starts counting at most a tick and WD_ARM_MS
 * into a long call, at no more than two wake-ups a tick (each costs the
 * process ~30 us of CPU here: a fixed 10 ms tick cost 3 ms a second). */
#define WD_TICK_MS    100
#define WD_ARM_MS     10
#define WD_STOP_MS    500  /* a stop pending this long: ask the handler to stop */
#define WD_EXIT_MS    1500 /* ...and this long: it is stuck in C; exit */
#define WD_DEFAULT_MS 2000

static void *watchdog_main(void *arg)
{
	struct nlg_script *s = arg;
	struct nlg_house *h = &s->house;
	uint64_t last_seq = 0, held_ms = 0, reported_seq = 0, stop_ms = 0, armed_seq = 0;
	uint64_t limit = s->o.wall_ms ? s->o.wall_ms : WD_DEFAULT_MS;
	int wait = WD_TICK_MS;

	while (!atomic_load(&s->wd.quit)) {
		struct pollfd p = {.fd = s->o.stop_fd, .events = POLLIN};
		int pending = poll(&p, 1, wait) > 0 && (p.revents & POLLIN);
		uint64_t seq = atomic_load_explicit(&h->call_seq, memory_order_relaxed);
		int in_call = atomic_load_explicit(&h->in_call, memory_order_acquire);
		int waited = wait;

		if (pending) /* the loop reads the signal as soon as it is free */
			usleep((useconds_t)wait * 1000);
		if (!in_call || seq != last_seq) {
			last_seq = seq;
			held_ms = 0;
			stop_ms = 0;
			/* a call running: is it still the same one shortly? */
			wait = in_call && s->wd.lazy && armed_seq != seq ? WD_ARM_MS : WD_TICK_MS;
			continue;
		}
		wait = WD_TICK_MS;
		held_ms += (uint64_t)waited;
		if (s->wd.lazy && armed_seq != seq) {
			armed_seq = seq;
			pthread_kill(s->wd.loop_thread, NLG_SIG_ARM);
		}
		if (held_ms >= limit && reported_seq != seq) {
			reported_seq = seq;
			/* The name is alive: the loop thread is inside that call. */
			nlg_log("watchdog: the %s handler has held the loop for %llu ms",
				atomic_load_explicit(&h->current, memory_order_relaxed),
				(unsigned long long)held_ms);
		}
		if (!pending)
			continue;
		stop_ms += (uint64_t)waited;
		if (stop_ms >= WD_STOP_MS) {
			atomic_store(&h->stop_now, 1); /* the count hook raises in Lua code */
			if (s->wd.lazy) /* armed already, unless that signal came between calls */
				pthread_kill(s->wd.loop_thread, NLG_SIG_ARM);
		}
		if (stop_ms >= WD_EXIT_MS) {
			nlg_log("watchdog: asked to stop, but the %s handler has held the loop for "
				"%llu ms inside a C function; exiting without draining",
				atomic_load_explicit(&h->current, memory_order_relaxed),
				(unsigned long long)held_ms);
			_exit(1);
		}
	}
	return NULL;
}

void nlg_script_watchdog(struct nlg_script *s)
{
	if (s->o.stop_fd <= 0 || s->wd.running)
		return;
	s->wd.loop_thread = pthread_self();
	/* Before the thread starts: it reads lazy without a lock. Without a
	 * budget there is no hook to arm, and no signal is sent. */
	s->wd.lazy = nlg_gw_lazy(nlg_gw_get(s->L), 1) == 0 && nlg_gw_get(s->L)->lazy;
	if (pthread_create(&s->wd.thread, NULL, watchdog_main, s) == 0) {
		s->wd.running = 1;
	} else {
		nlg_gw_lazy(nlg_gw_get(s->L), 0);
		s->wd.lazy = 0;
		nlg_log("watchdog: cannot start a thread; handlers run unwatched");
	}
}

static void watchdog_stop(struct nlg_script *s)
{
	if (!s->wd.running)
		return;
	atomic_store(&s->wd.quit, 1);
	pthread_join(s->wd.thread, NULL);
	s->wd.running = 0;
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
	s->o.stop_fd = -1;
	if (o)
		s->o = *o;
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (o && o->lua_path)
		snprintf(s->lua_path, sizeof(s->lua_path), "%s", o->lua_path);
	s->o.lua_path = NULL;
	s->L = state_new(s, NULL, err);
	if (!s->L || nlg_script_run_file(s->L, s->path, err) < 0) {
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
	nlg_lua_pack(L, -1, &pk);
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
	rc = nlg_script_run_file(L, s->path, err);
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
		state_close(L);
		s->house.reload_failures++;
		old_gw->L = s->L;
		return rc;
	}
	nlg_lua_alert_carry(s->L, L); /* no alert fires twice for a reload */
	if (s->wd.lazy) /* before the old state closes: the signal finds the new one */
		nlg_gw_lazy(gw, 1);
	state_close(s->L); /* closes what the new script no longer declares */
	s->L = L;
	s->house.reloads++;
	return 0;
}

/* Sources closed and timers quiet, the outputs get up to drain_ms to
 * deliver what they hold (reconnects and acknowledgements included). */
static void drain_outputs(struct nlg_script *s)
{
	const struct nlg_output_ops *ops[64];
	void *st[64];
	size_t n = 0;
	char line[512];

	nlg_lua_quiesce(nlg_gw_get(s->L));
	for (const struct nlg_inst *in = s->house.list; in && n < NLG_ARRAY_SIZE(ops);
	     in = in->next) {
		const struct nlg_output_ops *o = nlg_output_find(in->name);
		if (o && (const void *)o == in->ops && in->handle) {
			ops[n] = o;
			st[n++] = in->handle;
		}
	}
	if (nlg_output_drain(s->loop, ops, st, n, s->o.drain_ms, line, sizeof(line)))
		nlg_log("stop: %s", line);
}

void nlg_script_stop(struct nlg_script *s)
{
	if (!s)
		return;
	/* What the sources still hold is part of the stream: a capture's open
	 * flows, events the kernel already queued. The handlers get them
	 * before the state closes (and its feeds drain). */
	for (const struct nlg_inst *in = s->house.list; in; in = in->next) {
		const struct nlg_source_ops *ops = nlg_source_find(in->name);
		if (ops && (const void *)ops == in->ops && in->handle)
			nlg_source_drain(in->handle);
	}
	if (s->L)
		drain_outputs(s);
	if (s->wd.lazy)
		nlg_gw_lazy(NULL, 0);
	state_close(s->L);
	watchdog_stop(s);
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

int nlg_script_check(const char *path, const struct nlg_script_opts *o, struct nlg_err *err)
{
	struct nlg_script_opts none = {0};
	struct nlg_dry dry = {0};
	struct nlg_loop *loop = nlg_loop_create(); /* timers are set, never run */
	lua_State *L;
	int rc;

	if (!loop)
		return nlg_err_set(err, ENOMEM, "cannot create an event loop");
	L = nlg_script_sandbox(o ? o : &none, loop, &dry, err);
	if (!L) {
		nlg_loop_destroy(loop);
		return -ENOMEM;
	}
	rc = nlg_script_run_file(L, path, err);
	state_close(L);
	nlg_loop_destroy(loop);
	nlg_dry_free(&dry);
	return rc;
}
