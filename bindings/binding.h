/* Internal to bindings/: the per-state runtime (struct nlg_gw), the house of
 * open sources and outputs that reloads hand over, record views and
 * batches. Uses only the public lua_* and luaL_* API.
 *
 *   nlgate.c (module entry: the gw table) ──▶ lua_source.c, lua_output.c, lua_timer.c
 *        │                                          │
 *        └──────────────▶ runtime.c ◀───────────────┘   lua_record.c (views, batches, pack)
 *   script.c (the script API) ──▶ sandbox.c (state, allocator, allow-list) */
#ifndef NLGATE_BINDING_H
#define NLGATE_BINDING_H

#include <lua.h>
#include <lauxlib.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>

#include "nlgate/common.h"
#include "nlgate/encode.h"
#include "nlgate/loop.h"
#include "nlgate/opt.h"
#include "nlgate/record.h"
#include "nlgate/schema.h"

/* Something gw.stats() reports: sources and outputs register themselves. */
struct nlg_gw_stat {
	struct nlg_gw_stat *next, *prev;
	const char *group;				    /* "sockets", "unix", ... */
	void (*push)(lua_State *L, struct nlg_gw_stat *st); /* push one table */
	int single; /* set after nlg_gw_stat_add: the group is this table, not a list */
};

/* An open source or output. It belongs to the gateway, not to one Lua
 * state: a reload's new state claims what it declares again with the same
 * options, and the old state's close then leaves it open. */
struct nlg_inst {
	struct nlg_inst *next;
	const char *name; /* the source's or output's name */
	const void *ops;  /* struct nlg_source_ops or struct nlg_output_ops */
	void *conf;	  /* the parsed options, compared byte for byte */
	size_t conf_size;
	void *handle;	      /* struct nlg_source *, or the output's state */
	struct nlg_gw *owner; /* the state that uses it */
	void *obj;	      /* owner's userdata (struct lua_src / lua_out) */
	struct nlg_gw *heir;  /* a starting state that claimed it */
	void *heir_obj;
	/* Move the instance between the two objects: commit, the old lets go
	 * and the heir keeps it; abort, the heir lets go, the old keeps it. */
	void (*handover)(void *old_obj, void *heir_obj, int commit);
};

/* The instances of one gateway, shared by its states across reloads, and
 * what the watchdog thread reads of the handler running now: a call
 * sequence bumped at each outermost call (no clock read per record), its
 * name, and a stop request the budget hook honours. */
struct nlg_house {
	struct nlg_inst *list;
	struct nlg_gw *starting; /* a reload's new state, while it starts */
	uint64_t reloads, reload_failures, handed_over;
	_Atomic uint64_t call_seq;
	_Atomic int in_call;
	_Atomic(const char *) current;
	_Atomic int stop_now;
};

struct lua_out; /* lua_output.c */
struct nlg_dry; /* dry.c: a dry gateway's recorder */

struct nlg_gw {
	struct nlg_loop *loop;
	int own_loop; /* module mode: the loop is ours to destroy */
	struct nlg_house *house;
	int own_house;
	lua_State *L; /* thread handlers run on (set at each entry) */
	uint64_t calls, errors, budget_kills, disabled, oom;
	uint64_t insn_budget, insn_used;
	int depth;  /* handler calls on the C stack; the budget is the outermost's */
	int killed; /* 1 the budget, 2 a stop, stopped this call: it stays stopped */
	int lazy;   /* the main thread's hook is armed by the watchdog (nlg_gw_lazy) */
	int sealed; /* the state is closing: no new sources, outputs or timers */
	struct nlg_gw_stat stats; /* list head */
	struct nlg_buf enc;	  /* shared encode buffer for sends */
	msgpack_packer pk;
	int closing;
	int quiet; /* stopping: sources closed, timers no longer fire; outputs drain */
	/* The test harness's virtual clock (ns since the epoch), when set:
	 * nlg_gw_clock_ns reads it instead of CLOCK_REALTIME. */
	int virtual_clock;
	uint64_t clock_ns;
	/* The outputs this state declared and has not closed, in that order:
	 * what nlg_lua_send_all sends to. */
	struct lua_out *outs;
	/* A dry gateway (`nlgate check`, the test harness), set through
	 * NLG_DRY_KEY before luaopen_nlgate: sources are fakes that open
	 * nothing, outputs record what is sent to them. */
	struct nlg_dry *dry;
};

/* The gateway's clock, in ns since the epoch: CLOCK_REALTIME, or the test
 * harness's virtual clock. Windows, rates, thresholds and alerts read this
 * clock and schedule on gw->loop's timers, never the system clock. */
static inline uint64_t nlg_gw_clock_ns(const struct nlg_gw *gw)
{
	return gw->virtual_clock ? gw->clock_ns : nlg_realtime_ns();
}

struct nlg_gw *nlg_gw_get(lua_State *L); /* raises if nlgate was never opened */

/* Call the function below nargs arguments on L's stack, protected, with a
 * traceback on error. Errors are logged with their traceback and counted; the
 * gateway keeps going. Returns 0 or -1 (error, already reported). */
int nlg_gw_call(struct nlg_gw *gw, lua_State *L, int nargs, const char *what);
/* The count hook runs every NLG_HOOK_EVERY VM instructions: the budget's
 * granularity. */
#define NLG_HOOK_EVERY 1000
/* Around any call into a script (nlg_gw_call does it): the outermost call
 * starts the budget; leaving it lifts a budget kill. */
void nlg_gw_enter(struct nlg_gw *gw, const char *what);
void nlg_gw_leave(struct nlg_gw *gw, lua_State *L);
/* After a handler call: 0 clears *fails; -1 counts it, and the
 * NLG_HANDLER_FAILS-th failure in a row disables the handler (*ref is
 * released and set to LUA_NOREF) with one log line; gw.stats().script
 * lists it. */
#define NLG_HANDLER_FAILS 100
void nlg_gw_outcome(struct nlg_gw *gw, lua_State *L, int rc, uint32_t *fails, int *ref,
		    const char *what);
/* 1 if the running handler was stopped (budget or a stop), for the
 * sandbox's xpcall guard; 0 also when nlgate is not loaded. */
int nlg_gw_stopped(lua_State *L);
/* Raise if the state is closing (a __gc running at reload or exit). */
void nlg_gw_check_open(lua_State *L, struct nlg_gw *gw, const char *what);
/* The message handler nlg_gw_call uses: the error with a traceback. */
int nlg_gw_traceback(lua_State *L);
/* The count hook behind the instruction budget. */
void nlg_gw_budget_hook(lua_State *L, lua_Debug *ar);
/* The signal that arms the budget's hook on a lazy state's main thread,
 * sent by the watchdog to the loop thread. */
#define NLG_SIG_ARM (SIGRTMIN + 4)
/* on: the main thread of gw's state runs without the count hook until
 * NLG_SIG_ARM arrives during a call (at most one lazy state per process:
 * the latest); the budget then counts from that moment. off (or gw NULL):
 * no state is lazy any more; gw, if given, is hooked from its first
 * instruction again. Returns 0 or -errno (the handler not installed). */
int nlg_gw_lazy(struct nlg_gw *gw, int on);
/* Hook a coroutine co created on L for the budget (coroutines are always
 * hooked, a lazy state's too). */
void nlg_gw_hook_thread(lua_State *L, lua_State *co);
void nlg_gw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log "error in WHAT handler: MSG" (and keep it for p:errors() in a dry
 * gateway); the caller counts it. */
void nlg_gw_error(struct nlg_gw *gw, const char *what, const char *msg);
void nlg_gw_stat_add(struct nlg_gw *gw, struct nlg_gw_stat *st, const char *group,
		     void (*push)(lua_State *, struct nlg_gw_stat *));
void nlg_gw_stat_del(struct nlg_gw_stat *st);
/* gw.stats(): the script's, the process's and every registered table. */
int nlg_gw_stats(lua_State *L);

/* The house (runtime.c). A starting state first asks for an instance with
 * the same ops and conf (claim); a fresh one is added after it opened. */
struct nlg_inst *nlg_house_claim(struct nlg_gw *gw, const void *ops, const void *conf,
				 size_t conf_size, void *obj);
struct nlg_inst *nlg_house_add(struct nlg_gw *gw, const char *name, const void *ops,
			       const void *conf, size_t conf_size, void *handle, void *obj);
/* The instance leaves the house (closed by its owner). */
void nlg_house_remove(struct nlg_house *h, struct nlg_inst *in);

/* At exit, before the outputs drain: close every source this state holds
 * (lua_source.c) and let no timer fire again (gw->quiet). */
void nlg_lua_quiesce(struct nlg_gw *gw);

/* Options: read the table at idx against an option table into conf (zeroed
 * by the caller). Values become text as on the command line (numbers,
 * booleans, lists {"a","b"} as "a,b" for list options); an unknown key
 * raises, except those in `extra` (NULL-terminated: keys the binding itself
 * takes, like a source's filter). Raises "what: message". */
void nlg_lua_options(lua_State *L, int idx, const struct nlg_opt *opts, void *conf,
		     const char *const *extra, const char *what);
/* A constructor's options: the table at index 1 (absent: empty) read into
 * a zeroed conf of conf_size bytes, a userdata left at index 2 so a raise
 * leaks nothing; returns it. */
void *nlg_lua_conf(lua_State *L, const struct nlg_opt *opts, size_t conf_size,
		   const char *const *extra, const char *what);
/* Push a record of a counters schema as a table (fields by name). */
void nlg_lua_push_counters(lua_State *L, const struct nlg_schema *s, const void *rec);

/* Record views (lua_record.c). A view is userdata over a C record; a
 * borrowed view is valid only during the handler call it was passed to. */
#define NLG_VIEW_MAGIC 0x6e6c6776u /* "nlgv": __index's cheap type check */
struct nlg_view_memo;
struct nlg_view {
	uint32_t magic;
	const struct nlg_schema *s;
	const void *rec; /* NULL once invalidated */
	int owned;	 /* rec points at the bytes after this struct */
	/* __index's memo, the state's (field names by their string objects,
	 * address texts), shared by all its views. */
	struct nlg_view_memo *memo;
};
void nlg_view_register(lua_State *L);
/* A reusable borrowed view: push it, then set ->rec per record. */
struct nlg_view *nlg_view_new(lua_State *L, const struct nlg_schema *s);
/* A view that owns a copy of rec (lives as long as Lua keeps it). */
struct nlg_view *nlg_view_copy(lua_State *L, const struct nlg_schema *s, const void *rec);
/* The view at idx, or NULL if it is not one. */
struct nlg_view *nlg_view_test(lua_State *L, int idx);
/* Fill rec (zeroed first) from the table at idx by the schema: fields by
 * name (an unknown one raises "what: unknown field 'x' for KIND"), numbers
 * checked against the field's width, enums and flags by name or number,
 * addresses as text, booleans; a field's group becomes present; a `family`
 * left out takes the first address's. Raises "what: ..." on a bad value. */
void nlg_view_fill(lua_State *L, int idx, const struct nlg_schema *s, void *rec, const char *what);
/* Push a record field's value (nil when absent). */
void nlg_view_push_field(lua_State *L, const struct nlg_schema *s, int fi, const void *rec);
/* Fields picked by name once, pushed per record without an __index call
 * each (batch:fields, src:each(fn, names...)). */
#define NLG_VIEW_FIELDS_MAX 16
struct nlg_view_fields {
	int n;
	uint16_t fi[NLG_VIEW_FIELDS_MAX];
};
/* The n names at first.. on L's stack, fields of kind s; raises on an
 * unknown name as a view's read does ("sock record has no field 'x'"). */
void nlg_view_fields_resolve(lua_State *L, const struct nlg_schema *s, int first, int n,
			     struct nlg_view_fields *out, const char *what);
/* Push the memo's anchors table, which nlg_view_push_fields needs at a
 * stack index (push it once for a run of records). */
void nlg_view_push_anchors(lua_State *L);
/* Push f's fields of v's record as v's reads would give them. */
void nlg_view_push_fields(lua_State *L, const struct nlg_view *v, const struct nlg_view_fields *f,
			  int anchors);
/* Push a table copy of the record. */
void nlg_view_push_table(lua_State *L, const struct nlg_schema *s, const void *rec);

/* Records kept for a batch handler: a growable array of one record kind. */
struct nlg_recs {
	void *data;
	size_t n, cap, size; /* count, capacity, bytes per record */
};
int nlg_recs_push(struct nlg_recs *r, const void *rec); /* 0 or -ENOMEM */
void nlg_recs_clear(struct nlg_recs *r); /* empty; a large array is freed, not held */
void nlg_recs_free(struct nlg_recs *r);

/* Batches: a C array of records handed to a per-poll handler. */
struct nlg_batch {
	const struct nlg_schema *s;
	const void *recs; /* NULL once invalidated */
	size_t n;
	int stats_ref; /* registry ref of a stats table, or LUA_NOREF */
};
struct nlg_batch *nlg_batch_new(lua_State *L, const struct nlg_schema *s);
/* The batch at idx, or NULL if it is not one. */
struct nlg_batch *nlg_batch_test(lua_State *L, int idx);
/* Call the handler fn_ref with a batch over recs[0..n), valid for the call
 * only; the stats table on top of the stack becomes batch:stats() (popped).
 * Returns nlg_gw_call's result. */
int nlg_batch_call(struct nlg_gw *gw, lua_State *L, int fn_ref, const struct nlg_schema *s,
		   const void *recs, size_t n, const char *what);

/* Encode any Lua value as msgpack (tables: sequences as arrays, else maps),
 * bounded in depth, values and bytes; raises past a bound. */
int nlg_lua_pack(lua_State *L, int idx, msgpack_packer *pk);
/* Decode one msgpack value from data[0..len) and push it; returns 0, or -1
 * (nothing pushed) if it is not one whole value. */
int nlg_lua_unpack(lua_State *L, const void *data, size_t len);

/* The classes, each in its own file, registered once from luaopen_nlgate;
 * the source and output constructors are closures over their ops. */
void nlg_lua_source_register(lua_State *L);
void nlg_lua_push_source_ctor(lua_State *L, const void *ops);
void nlg_lua_output_register(lua_State *L);
void nlg_lua_push_output_ctor(lua_State *L, const void *ops);
/* Send the value at value_idx (a record view or any value out:send takes)
 * tagged tag, at the gateway's clock, to every output the state declared
 * and has open: encoded once. Returns how many outputs took it; raises if
 * the value cannot be encoded (call it from a C function of the script). */
int nlg_lua_send_all(struct nlg_gw *gw, lua_State *L, const char *tag, int value_idx);
/* gw.alert and gw.threshold (lua_alert.c) into the gw table on top. */
void nlg_lua_alert_open(lua_State *L);
/* At a reload, before the old state closes: gw.alert's de-duplication pairs
 * and the pending and firing keys of each threshold, by its name, from the
 * old state into the new (where the new holds none of its own). Each side
 * runs protected; -1 if it failed (logged: the new state starts afresh). */
int nlg_lua_alert_carry(lua_State *from, lua_State *to);
void nlg_lua_timer_register(lua_State *L);
int nlg_lua_every(lua_State *L);
int nlg_lua_after(lua_State *L);
/* gw.counter, gw.rate, gw.topk, gw.distinct, gw.quantiles, gw.ewma into the
 * table on top (lua_agg.c, lua_agg_kinds.c). */
void nlg_lua_agg_open(lua_State *L);

/* Register a userdata class: metatable mt, methods as __index, gc as __gc. */
void nlg_lua_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc);

/* Parse a duration argument ("2s", "500ms", number of seconds) or raise. */
uint64_t nlg_lua_checkduration(lua_State *L, int idx, const char *what);

/* sandbox.c: a state with the memory limit and the allowed libraries;
 * require finds Lua text files on search_path ("dir/?.lua;..."), only. */
lua_State *nlg_sandbox_new(size_t mem_limit, const char *search_path, struct nlg_err *err);
void nlg_sandbox_close(lua_State *L);

/* script.c: a sandboxed state with nlgate open on loop, on its own house,
 * as nlg_script_start makes them (o's limits and lua_path); dry: a dry
 * gateway recording there. And running a file's top level in it (err:
 * "file:line: message" and a traceback). */
struct nlg_script_opts;
lua_State *nlg_script_sandbox(const struct nlg_script_opts *o, struct nlg_loop *loop,
			      struct nlg_dry *dry, struct nlg_err *err);
int nlg_script_run_file(lua_State *L, const char *path, struct nlg_err *err);

/* Registry keys by which an embedder hands the loop, the house and a dry
 * run's recorder to luaopen_nlgate (light userdata). */
#define NLG_LOOP_KEY  "nlgate.loop"
#define NLG_HOUSE_KEY "nlgate.house"
#define NLG_DRY_KEY   "nlgate.dry"

/* A dry gateway's record (dry.c): every frame sent to an output,
 * in order, and every handler error logged. Owned by whoever set
 * NLG_DRY_KEY. */
struct nlg_dry_frame {
	char *tag;
	uint64_t time_ns;
	uint8_t *body; /* the msgpack body as the output got it */
	size_t len;
	const char *output; /* the output's name (static) */
};
struct nlg_dry {
	struct nlg_dry_frame *frames;
	size_t nframes, capframes;
	char **errors;
	size_t nerrors, caperrors;
};
struct nlg_item;
int nlg_dry_frame_add(struct nlg_dry *d, const char *output, const struct nlg_item *it);
void nlg_dry_error_add(struct nlg_dry *d, const char *msg);
void nlg_dry_clear(struct nlg_dry *d); /* forget the frames */
void nlg_dry_free(struct nlg_dry *d);  /* frames and errors; d itself stays */

#endif
