/* The script API: the one door from the command line (and any embedder) to
 * the Lua runtime. A script is one pipeline file running in its own
 * sandboxed state, bound to the caller's event loop. Reloading starts the
 * new text aside and hands over the sources and outputs it declares again
 * with the same options; the caller never sees a lua_State. */
#ifndef NLGATE_SCRIPT_H
#define NLGATE_SCRIPT_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "loop.h"

struct nlg_script_opts {
	size_t mem_limit;     /* bytes the script may allocate; 0 = no limit */
	uint64_t insn_budget; /* VM instructions per handler call; 0 = no limit */
	const char *lua_path; /* where require looks: "dir/?.lua;...", or NULL */
	/* The daemon's: an fd that turns readable when the gateway is asked to
	 * stop (its signalfd), or 0/-1 for none. With it the watchdog thread
	 * (nlg_script_watchdog) logs
	 * a handler that holds the loop past wall_ms (default 2000), stops a
	 * Lua handler that holds it while a stop is pending, and ends the
	 * process within 2 s if one is stuck inside a C function then. */
	int stop_fd;
	uint64_t wall_ms;
	/* At stop, how long outputs may take to deliver what they hold
	 * (NLG_DRAIN_MS is the command line's default); 0: one try. */
	uint64_t drain_ms;
};

struct nlg_script;

/* Create a state, load path and run its top level. NULL with err
 * ("file:line: message", and a traceback when it raised) on failure; nothing
 * it opened stays open. */
struct nlg_script *nlg_script_start(struct nlg_loop *loop, const char *path,
				    const struct nlg_script_opts *o, struct nlg_err *err);
/* Start the watchdog thread (with stop_fd > 0 in the options). Call it
 * after any privilege drop: a thread started before keeps what it had. */
void nlg_script_watchdog(struct nlg_script *s);
/* Read path again and start it aside. On success the old state is closed,
 * the sources and outputs the new one declared with the same options were
 * handed over (not reopened), gw.state was carried over, and 0 is returned.
 * On failure the running script is untouched and keeps running, err says
 * why (file:line), the failure is counted (gw.stats().script.reload_failures)
 * and a negative errno is returned. */
int nlg_script_reload(struct nlg_script *s, struct nlg_err *err);
/* Drain the sources into their handlers, close them, give the outputs up
 * to drain_ms to deliver (one log line says what they could not), then
 * close the state and everything it opened. NULL ok. */
void nlg_script_stop(struct nlg_script *s);
/* Handler errors raised and caught so far. */
uint64_t nlg_script_errors(const struct nlg_script *s);
/* Capabilities (bits of 1 << CAP_x) the open sources need to keep running. */
uint64_t nlg_script_caps(const struct nlg_script *s);

/* Run path's top level against a dry gateway in the same sandbox as
 * nlg_script_start (o's memory limit, budget and lua_path): options are
 * checked by each source's and output's table, nothing is opened, no timer
 * fires. 0, or a negative errno with err "file:line: message" (and a
 * traceback when it raised) for a syntax error, a raise or a bad option. */
int nlg_script_check(const char *path, const struct nlg_script_opts *o, struct nlg_err *err);
/* The require path `nlgate run` gives script: its own directory, then
 * nlgate's scripts/ ("dir/?.lua;..."). */
void nlg_script_lua_path(const char *script, char *buf, size_t len);

#endif
