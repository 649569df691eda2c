/* Internal to the aggregation binding: what lua_agg_key.c (keys), lua_agg.c (panes,
 * windows, the shared methods) and lua_agg_kinds.c (the six aggregators'
 * values and methods) share. */
#ifndef NLGATE_LUA_AGG_TYPES_H
#define NLGATE_LUA_AGG_TYPES_H

#include "binding.h"
#include "nlgate/agg.h"

#define AGG_MAXF     8	  /* fields in a by or of list */
#define AGG_KINDS    4	  /* record kinds one aggregator takes views of */
#define AGG_KEYMAX   512  /* bytes of a key read from a view */
#define AGG_PLAINMAX 1024 /* bytes of a plain string key */
#define AGG_KEYBUF   (AGG_PLAINMAX + 16)
#define AGG_MAXPANES 1024 /* window / slide */
#define AGG_CATCHUP  4096 /* windows closed in one go after a clock jump; past it, skipped */

enum agg_kind { AGG_COUNTER, AGG_RATE, AGG_TOPK, AGG_DISTINCT, AGG_QUANTILES, AGG_EWMA };

/* One by/of field as one record kind lays it out: where to read it. The
 * key bytes are 1 presence byte + psize payload bytes per field. */
struct agg_kf {
	uint32_t off;
	uint16_t psize;
	uint8_t how; /* AGG_COPY, AGG_ADDR, AGG_STR */
	uint64_t group;
};
enum { AGG_COPY, AGG_ADDR, AGG_STR };

struct agg_kmap {
	const struct nlg_schema *s;
	struct agg_kf f[AGG_MAXF];
};

/* A by (or of) list: the names, and per record kind seen the fields. The
 * first kind seen fixes the layout (and renders keys); another kind is
 * taken if its fields have the same types. */
struct agg_keyspec {
	int nf;
	char names[AGG_MAXF][64];
	int fi0[AGG_MAXF]; /* the fields' indexes in kinds[0].s */
	struct agg_kmap kinds[AGG_KINDS];
	int nkinds;
	size_t klen;
};

/* Every aggregator's options (each kind's table names its own). */
struct agg_conf {
	uint64_t window, slide, expire, half_life; /* ms */
	uint32_t max_keys, k, precision, bits;
	double accuracy;
};

union agg_pane {
	struct nlg_agg_table t;
	struct nlg_topk k;
};

struct agg;
struct agg_type {
	const char *name; /* "gw.counter" */
	const char *what; /* "gw.counter on_close", for logs */
	const char *mt, *win_mt;
	int kind, windows; /* windows: takes window/slide/on_close */
	size_t vsize;
	int (*init)(struct agg *a, void *v); /* a new key's value; NULL: zeroed */
	int (*merge)(struct agg *a, void *dst, const void *src);
	void (*free)(void *v, void *a);
	/* pairs() pushes a key's value with this */
	void (*push)(lua_State *L, struct agg *a, const void *v);
};

#define AGG_MAGIC 0x6e6c6761u /* "nlga" */
#define WIN_MAGIC 0x6e6c6777u /* "nlgw" */

struct agg {
	uint32_t magic;
	const struct agg_type *type;
	struct nlg_gw *gw;
	struct agg_keyspec by, of;
	struct nlg_agg_mem mem;
	uint32_t max_keys;
	/* the kinds' parameters */
	unsigned precision, bits;
	uint32_t k;
	double accuracy;
	uint64_t expire_ns, half_life_ns, next_sweep;
	/* panes[0..npanes) live (cur takes adds), then the closed window's
	 * and the live merge's scratch panes */
	union agg_pane *panes;
	unsigned npanes, cur;
	uint64_t window_ns, slide_ns; /* 0: no window */
	uint64_t pane_start;	      /* the current pane's start, on the gateway clock */
	uint64_t since;		      /* created or reset */
	int64_t timer_id;
	int on_close_ref;
	uint32_t fails;
	uint64_t windows, skipped, dropped;
	unsigned char *rec; /* a record of kinds[0] to render keys from */
};

/* What a reading method reads: the aggregator's live data, or the window
 * object passed to on_close. */
struct agg_win {
	uint32_t magic;
	/* kept here: a window kept past its on_close may outlive its
	 * aggregator, so nothing reads a once the window is invalid */
	const struct agg_type *type;
	struct agg *a;
	union agg_pane *p;
	int64_t start; /* before the epoch for a first window on a clock near 0 */
	uint64_t end, since;
	int valid;
};
struct agg_reader {
	struct agg *a;
	union agg_pane *p;   /* NULL: live and sliding, per-key reads merge panes */
	uint64_t start, end; /* what the data covers (for rates) */
	int closed;
};

/* lua_agg.c */
uint64_t agg_seed(void);
/* The aggregator of type at idx (raises otherwise): a cheap check. */
static inline struct agg *agg_check(lua_State *L, int idx, const struct agg_type *type)
{
	struct agg *a = lua_touserdata(L, idx);
	if (!a || lua_rawlen(L, idx) != sizeof(*a) || a->magic != AGG_MAGIC || a->type != type)
		luaL_typeerror(L, idx, type->mt);
	return a;
}
/* The reader for self at idx: the aggregator or one of its windows. */
void agg_reader(lua_State *L, int idx, const struct agg_type *type, struct agg_reader *r);
/* The whole data a reader sees as one pane (live sliding windows merged). */
union agg_pane *agg_read_pane(lua_State *L, struct agg_reader *r);
/* lua_agg_key.c. A by/of option (a name or a list) at idx into ks. */
void agg_parse_names(lua_State *L, int idx, struct agg_keyspec *ks, const char *opt,
		     const char *what);
/* The fields of record kind s for ks (the first kind fixes the layout). */
const struct agg_kmap *agg_kmap(lua_State *L, struct agg *a, struct agg_keyspec *ks,
				const struct nlg_schema *s);
/* Key bytes from the argument at idx: a view (with by) or a plain value.
 * nil_ok: a nil is the key "no key". Returns the length; raises. */
size_t agg_key(lua_State *L, struct agg *a, int idx, unsigned char *kb, int nil_ok);
/* For reads: the same, also from a Lua value given for the by fields.
 * Returns 0 when no such key can exist yet (no view seen). */
size_t agg_key_read(lua_State *L, struct agg *a, int idx, unsigned char *kb);
/* Item bytes for distinct: the `of` fields of the view at idx. */
size_t agg_item_view(lua_State *L, struct agg *a, int idx, unsigned char *kb);
int agg_is_view(lua_State *L, int idx); /* raises for a view past its handler */
/* gw.rate: drop the keys not updated for expire */
void agg_sweep(struct agg *a);
size_t agg_plain(lua_State *L, int idx, unsigned char *kb, int nil_ok, const char *what);
void agg_push_key(lua_State *L, struct agg *a, const unsigned char *k, size_t kl);
/* The value of key in the pane that takes adds (created: init), or NULL
 * when refused at max_keys; raises on out of memory. */
void *agg_slot(lua_State *L, struct agg *a, const void *kb, size_t kl, uint64_t h);
static inline int agg_oom(lua_State *L, struct agg *a)
{
	return luaL_error(L, "%s: out of memory", a->type->name);
}
/* Construct: options from the table at 1 (kind's extra options after
 * the common ones), the userdata pushed and returned. */
struct agg *agg_new(lua_State *L, const struct agg_type *type, const struct nlg_opt *opts);
void agg_register(lua_State *L, const struct agg_type *type, const luaL_Reg *methods,
		  const luaL_Reg *win_methods);
void agg_push_number(lua_State *L, double v); /* integral values as integers */

/* shared methods */
int agg_m_size(lua_State *L);
int agg_m_pairs(lua_State *L);
int agg_m_reset(lua_State *L);
int agg_m_stats(lua_State *L);
int agg_m_merge(lua_State *L);
int agg_m_start(lua_State *L);
int agg_m_finish(lua_State *L);

#endif
