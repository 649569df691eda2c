/* Internal to bindings/: the per-state runtime (struct nlg_gw), protected
 * handler calls, record views. Uses only the public lua_* and luaL_* API. */
#ifndef NLGATE_BINDING_H
#define NLGATE_BINDING_H

#include <lua.h>
#include <lauxlib.h>
#include <stdint.h>

#include "nlgate/common.h"
#include "nlgate/encode.h"
#include "nlgate/loop.h"
#include "nlgate/schema.h"

/* Something gw.stats() reports: sources and outputs register themselves. */
struct nlg_gw_stat {
	struct nlg_gw_stat *next, *prev;
	const char *group;				    /* "sockets", "feeds", ... */
	void (*push)(lua_State *L, struct nlg_gw_stat *st); /* push one table */
};

struct nlg_gw {
	struct nlg_loop *loop;
	int own_loop; /* module mode: the loop is ours to destroy */
	lua_State *L; /* thread handlers run on (set at each entry) */
	uint64_t calls, errors, budget_kills;
	uint64_t insn_budget, insn_used;
	struct nlg_gw_stat stats; /* list head */
	struct nlg_buf enc;	  /* shared encode buffer for sends */
	msgpack_packer pk;
	int closing;
};

struct nlg_gw *nlg_gw_get(lua_State *L); /* raises if nlgate was never opened */

/* Call the function below nargs arguments on gw->L's stack, protected, with a
 * traceback on error. Errors are logged with their traceback and counted; the
 * gateway keeps going. Returns 0 or -1 (error, already reported). */
int nlg_gw_call(struct nlg_gw *gw, lua_State *L, int nargs, const char *what);
void nlg_gw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nlg_gw_stat_add(struct nlg_gw *gw, struct nlg_gw_stat *st, const char *group,
		     void (*push)(lua_State *, struct nlg_gw_stat *));
void nlg_gw_stat_del(struct nlg_gw_stat *st);

/* Record views (lua_record.c). A view is userdata over a C record; a
 * borrowed view is valid only during the handler call it was passed to. */
struct nlg_view {
	const struct nlg_schema *s;
	const void *rec; /* NULL once invalidated */
	int owned;	 /* rec points at the bytes after this struct */
	int kind;	 /* 1-based position of s in nlg_schemas */
};
void nlg_view_register(lua_State *L);
/* A reusable borrowed view: push it, then nlg_view_set() per record. */
struct nlg_view *nlg_view_new(lua_State *L, const struct nlg_schema *s);
/* A view that owns a copy of rec (lives as long as Lua keeps it). */
struct nlg_view *nlg_view_copy(lua_State *L, const struct nlg_schema *s, const void *rec);
/* The view at idx, or NULL if it is not one. */
struct nlg_view *nlg_view_test(lua_State *L, int idx);
/* Push a record field's value (nil when absent). */
void nlg_view_push_field(lua_State *L, const struct nlg_schema *s, int fi, const void *rec);
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
/* Call the handler fn_ref with a batch over recs[0..n), valid for the call
 * only; the stats table on top of the stack becomes batch:stats() (popped).
 * Returns nlg_gw_call's result. */
int nlg_batch_call(struct nlg_gw *gw, lua_State *L, int fn_ref, const struct nlg_schema *s,
		   const void *recs, size_t n, const char *what);

/* Encode any Lua value as msgpack (tables: sequences as arrays, else maps). */
int nlg_lua_pack(lua_State *L, int idx, msgpack_packer *pk, int depth);

/* Source/output constructors, each in its own file, with a function that
 * registers its metatable (called once from luaopen_nlgate). */
int nlg_lua_sockets(lua_State *L);
void nlg_lua_sockets_register(lua_State *L);
int nlg_lua_unix(lua_State *L);
void nlg_lua_unix_register(lua_State *L);
#ifdef NLGATE_HAVE_CT
int nlg_lua_conntrack(lua_State *L);
void nlg_lua_conntrack_register(lua_State *L);
#endif

/* Register a userdata class: metatable mt, methods as __index, gc as __gc. */
void nlg_lua_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc);

/* opts[key] (the options table at index 1) as a string; a list { "a", "b" }
 * is joined as "a,b". The value stays on the stack, keeping the string
 * alive; NULL (and nil pushed) when absent. Raises naming what on a bad type. */
const char *nlg_lua_optlist(lua_State *L, const char *key, const char *what);

/* Parse a duration argument ("2s", "500ms", number of seconds) or raise. */
uint64_t nlg_lua_checkduration(lua_State *L, int idx, const char *what);

#endif
