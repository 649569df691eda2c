/* Record views for Lua: userdata over a C record whose fields are decoded on
 * access through the schema, batches of records for per-poll handlers, and
 * Lua values packed as msgpack for out:send(tag, table). */
#include <arpa/inet.h>
#include <errno.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/record.h"

#define VIEW_MT	       "nlgate.view"
#define BATCH_MT       "nlgate.batch"
#define VIEW_INDEX_KEY "nlgate.viewidx" /* schema (light userdata) → name → field */

/* Views of every kind share one metatable. The registry holds a table from
 * each kind's schema (light userdata) to its name → field-index table, built
 * the first time a view of that kind is made. */
static void push_index(lua_State *L, int cache, const struct nlg_schema *s)
{
	if (lua_rawgetp(L, cache, s) == LUA_TTABLE)
		return;
	lua_pop(L, 1);
	lua_createtable(L, 0, (int)s->nfields);
	for (size_t i = 0; i < s->nfields; i++) {
		lua_pushinteger(L, (lua_Integer)i);
		lua_setfield(L, -2, s->fields[i].name);
	}
	lua_pushvalue(L, -1);
	lua_rawsetp(L, cache, s);
}

static void push_flags(lua_State *L, const struct nlg_field *f, uint32_t v)
{
	lua_newtable(L);
	for (unsigned bit = 0; f->names && f->names[bit] && bit < 32; bit++) {
		if (v & (1u << bit)) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, f->names[bit]);
		}
	}
}

void nlg_view_push_field(lua_State *L, const struct nlg_schema *s, int fi, const void *rec)
{
	const struct nlg_field *f = &s->fields[fi];
	char text[128];

	if (!nlg_field_present(s, f, rec)) {
		lua_pushnil(L);
		return;
	}
	switch (f->type) {
	case NLG_T_BOOL:
		lua_pushboolean(L, *((const uint8_t *)rec + f->offset));
		return;
	case NLG_T_ENUM: {
		unsigned v = *((const uint8_t *)rec + f->offset), i = 0;
		while (f->names && f->names[i] && i < v)
			i++;
		if (f->names && f->names[i] && i == v) {
			lua_pushstring(L, f->names[v]);
			return;
		}
		lua_pushlstring(L, text, nlg_field_text(f, rec, text, sizeof(text)));
		return;
	}
	case NLG_T_STR:
	case NLG_T_HEX:
		lua_pushlstring(L, text, nlg_field_text(f, rec, text, sizeof(text)));
		return;
	case NLG_T_ADDR:
		if (!((const struct nlg_addr *)((const char *)rec + f->offset))->family) {
			lua_pushnil(L);
			return;
		}
		lua_pushlstring(L, text, nlg_field_text(f, rec, text, sizeof(text)));
		return;
	case NLG_T_FLAGS:
		push_flags(L, f, (uint32_t)nlg_field_int(f, rec));
		return;
	default:
		lua_pushinteger(L, (lua_Integer)nlg_field_int(f, rec));
		return;
	}
}

void nlg_view_push_table(lua_State *L, const struct nlg_schema *s, const void *rec)
{
	lua_createtable(L, 0, (int)s->nfields);
	for (size_t i = 0; i < s->nfields; i++) {
		if (!nlg_field_present(s, &s->fields[i], rec))
			continue;
		nlg_view_push_field(L, s, (int)i, rec);
		lua_setfield(L, -2, s->fields[i].name);
	}
}

void nlg_lua_push_counters(lua_State *L, const struct nlg_schema *s, const void *rec)
{
	nlg_view_push_table(L, s, rec);
}

struct nlg_view *nlg_view_test(lua_State *L, int idx)
{
	return luaL_testudata(L, idx, VIEW_MT);
}

static const void *view_rec(lua_State *L, struct nlg_view *v)
{
	if (!v->rec)
		luaL_error(L, "%s record used after its handler returned (copy it with r:table())",
			   v->s->kind);
	return v->rec;
}

static int view_table(lua_State *L)
{
	struct nlg_view *v = luaL_checkudata(L, 1, VIEW_MT);
	nlg_view_push_table(L, v->s, view_rec(L, v));
	return 1;
}

static int view_copy(lua_State *L)
{
	struct nlg_view *v = luaL_checkudata(L, 1, VIEW_MT);
	nlg_view_copy(L, v->s, view_rec(L, v));
	return 1;
}

static int view_kind(lua_State *L)
{
	struct nlg_view *v = luaL_checkudata(L, 1, VIEW_MT);
	lua_pushstring(L, v->s->kind);
	return 1;
}

static const luaL_Reg view_methods[] = {
    {"table", view_table},
    {"copy", view_copy},
    {"kind", view_kind},
    {NULL, NULL},
};

/* The state's memo for __index, shared by its views (each points at it), so
 * a view made for one batch finds it warm: the string objects of the field
 * names read of each kind, and the text of the addresses read. What it
 * points at is kept in the anchors table, __index's upvalue 2 (address
 * texts in slots 1..MEMO_ADDRS, names after them), so no other object can
 * take a remembered string's address while it is remembered. */
#define MEMO_SETS	 64  /* names: sets of two */
#define MEMO_ADDRS	 256 /* address texts, one per slot */
#define VIEW_MEMO_KEY	 "nlgate.viewmemo"
#define VIEW_ANCHORS_KEY "nlgate.viewanchors"

struct nlg_view_memo {
	struct {
		const void *k; /* the name's string object */
		const struct nlg_schema *s;
		int field;
	} name[MEMO_SETS][2];
	uint8_t older[MEMO_SETS];	  /* the way to replace next */
	struct nlg_addr addr[MEMO_ADDRS]; /* whose text slot i keeps; family 0: none */
};

static unsigned memo_set(const void *k, const struct nlg_schema *s)
{
	uint64_t h = ((uintptr_t)k ^ (uintptr_t)s >> 3) * 0x9e3779b97f4a7c15ull;
	return (unsigned)(h >> 58) & (MEMO_SETS - 1);
}

/* Remember name (at 2, a string) as field fi of kind s. */
static void memo_name(lua_State *L, struct nlg_view_memo *m, const void *k,
		      const struct nlg_schema *s, int fi)
{
	unsigned set = memo_set(k, s), w = m->older[set];

	m->name[set][w].k = NULL; /* until the name is kept */
	m->name[set][w].s = NULL;
	lua_pushvalue(L, 2);
	/* the anchors' array part was made this size: no allocation, no raise */
	lua_rawseti(L, lua_upvalueindex(2), MEMO_ADDRS + 1 + (int)(set * 2 + w));
	m->name[set][w].k = k;
	m->name[set][w].s = s;
	m->name[set][w].field = fi;
	m->older[set] = (uint8_t)!w;
}

/* An address's text, made once for as long as the address keeps its slot:
 * formatting and interning it was a third of a field read. anchors: the
 * stack index of the memo's anchors table. */
static void push_addr(lua_State *L, struct nlg_view_memo *m, int anchors, const struct nlg_addr *a)
{
	size_t len = a->family == AF_INET ? 4 : 16;
	uint32_t w[4] = {0};
	unsigned i;
	char text[INET6_ADDRSTRLEN];

	if (a->family != AF_INET && a->family != AF_INET6) {
		lua_pushlstring(L, text, nlg_addr_text(a, text));
		return;
	}
	memcpy(w, a->bytes, len);
	i = (unsigned)(((w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1u) >> 24) & (MEMO_ADDRS - 1);
	if (m->addr[i].family == a->family && !memcmp(m->addr[i].bytes, a->bytes, len)) {
		lua_rawgeti(L, anchors, (lua_Integer)i + 1);
		return;
	}
	lua_pushlstring(L, text, nlg_addr_text(a, text));
	lua_pushvalue(L, -1);
	m->addr[i].family = 0; /* until the text is kept */
	lua_rawseti(L, anchors, (lua_Integer)i + 1);
	memcpy(m->addr[i].bytes, a->bytes, len);
	m->addr[i].family = a->family;
}

/* Field fi of rec, a record of kind s, as a view gives it; anchors is the
 * memo's anchors table (upvalue 2 of __index and batch:fields' iterator). */
static void push_value(lua_State *L, const struct nlg_schema *s, struct nlg_view_memo *m,
		       int anchors, int fi, const void *rec)
{
	const struct nlg_field *f = &s->fields[fi];

	if (!nlg_field_present(s, f, rec)) {
		lua_pushnil(L);
		return;
	}
	switch (f->type) {
	case NLG_T_U8:
	case NLG_T_U16:
	case NLG_T_U32:
	case NLG_T_U64:
	case NLG_T_I32:
	case NLG_T_I64:
		lua_pushinteger(L, (lua_Integer)nlg_field_int(f, rec));
		return;
	case NLG_T_ADDR: {
		const struct nlg_addr *a = (const void *)((const char *)rec + f->offset);
		if (!a->family)
			lua_pushnil(L);
		else
			push_addr(L, m, anchors, a);
		return;
	}
	default:
		nlg_view_push_field(L, s, fi, rec);
	}
}

static void view_push(lua_State *L, struct nlg_view *v, int fi, const void *rec)
{
	push_value(L, v->s, v->memo, lua_upvalueindex(2), fi, rec);
}

void nlg_view_push_anchors(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, VIEW_ANCHORS_KEY);
}

void nlg_view_push_fields(lua_State *L, const struct nlg_view *v, const struct nlg_view_fields *f,
			  int anchors)
{
	for (int k = 0; k < f->n; k++)
		push_value(L, v->s, v->memo, anchors, f->fi[k], v->rec);
}

/* __index(view, key): upvalue 1 is the method table, 2 the memo's anchors.
 * Field lookups go through the per-kind index table; an unknown name
 * raises, so typos surface. A name found is remembered by its string
 * object: Lua interns short strings, so the next read of p.name passes the
 * same object, and finds its field without the index table. */
static int view_index(lua_State *L)
{
	struct nlg_view *v = lua_touserdata(L, 1);
	struct nlg_view_memo *m;
	const void *rec, *k;
	unsigned set;

	/* luaL_checkudata's type check costs a registry lookup by name per
	 * field read; a full userdata of our size with our magic is a view. */
	if (!v || lua_rawlen(L, 1) < sizeof(*v) || v->magic != NLG_VIEW_MAGIC)
		return luaL_typeerror(L, 1, VIEW_MT);
	rec = view_rec(L, v);
	m = v->memo;
	/* Any key's object, or NULL: only strings are remembered, and a
	 * remembered one is kept, so no other object has its address. */
	k = lua_topointer(L, 2);
	set = memo_set(k, v->s);
	for (unsigned w = 0; w < 2; w++)
		if (m->name[set][w].k == k && m->name[set][w].s == v->s && k) {
			view_push(L, v, m->name[set][w].field, rec);
			return 1;
		}

	lua_getiuservalue(L, 1, 1); /* the kind's index, set when the view was made */
	lua_pushvalue(L, 2);
	if (lua_rawget(L, -2) == LUA_TNUMBER) {
		int fi = (int)lua_tointeger(L, -1);
		if (lua_type(L, 2) == LUA_TSTRING)
			memo_name(L, m, k, v->s, fi);
		view_push(L, v, fi, rec);
		return 1;
	}
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	return luaL_error(L, "%s record has no field '%s' (see `nlgate fields %s`)", v->s->kind,
			  luaL_tolstring(L, 2, NULL), v->s->kind);
}

static int view_newindex(lua_State *L)
{
	struct nlg_view *v = luaL_checkudata(L, 1, VIEW_MT);
	return luaL_error(L, "%s record is read-only (copy it with r:table())", v->s->kind);
}

static int view_tostring(lua_State *L)
{
	struct nlg_view *v = luaL_checkudata(L, 1, VIEW_MT);
	const void *rec = view_rec(L, v);
	struct nlg_buf b;

	nlg_buf_init(&b);
	if (nlg_enc_json_record(&b, v->s, rec) < 0) {
		nlg_buf_free(&b);
		return luaL_error(L, "out of memory");
	}
	lua_pushlstring(L, (const char *)b.data, b.len);
	nlg_buf_free(&b);
	return 1;
}

/* A view carries its kind's index as its user value: a field read is then
 * a user-value fetch and one raw lookup, with no search for the kind. */
static struct nlg_view *view_alloc(lua_State *L, const struct nlg_schema *s, size_t extra)
{
	struct nlg_view *v = lua_newuserdatauv(L, sizeof(*v) + extra, 1);

	*v = (struct nlg_view){.magic = NLG_VIEW_MAGIC, .s = s};
	luaL_setmetatable(L, VIEW_MT);
	lua_getfield(L, LUA_REGISTRYINDEX, VIEW_MEMO_KEY);
	v->memo = lua_touserdata(L, -1);
	lua_getfield(L, LUA_REGISTRYINDEX, VIEW_INDEX_KEY);
	push_index(L, lua_gettop(L), s);
	lua_setiuservalue(L, -4, 1);
	lua_pop(L, 2);
	return v;
}

struct nlg_view *nlg_view_new(lua_State *L, const struct nlg_schema *s)
{
	return view_alloc(L, s, 0);
}

struct nlg_view *nlg_view_copy(lua_State *L, const struct nlg_schema *s, const void *rec)
{
	struct nlg_view *v = view_alloc(L, s, s->rec_size);

	memcpy(v + 1, rec, s->rec_size);
	v->rec = v + 1;
	v->owned = 1;
	return v;
}

/* ---- a record from a table (the test harness) ------------------------------ */

/* A name's index in a NULL-terminated list (case-insensitive), or -1. */
static int name_index(const char *const *names, const char *name)
{
	for (int i = 0; names && names[i]; i++)
		if (!strcasecmp(names[i], name))
			return i;
	return -1;
}

static void store_uint(void *p, size_t size, uint64_t v)
{
	switch (size) {
	case 1:
		*(uint8_t *)p = (uint8_t)v;
		break;
	case 2:
		*(uint16_t *)p = (uint16_t)v;
		break;
	case 4:
		*(uint32_t *)p = (uint32_t)v;
		break;
	default:
		*(uint64_t *)p = v;
	}
}

/* The value at -1 as an integer of the field's width, or raise. */
static uint64_t fill_int(lua_State *L, const struct nlg_field *f, const char *what)
{
	int ok;
	lua_Integer v = lua_tointegerx(L, -1, &ok);
	int is_signed = f->type == NLG_T_I32 || f->type == NLG_T_I64;
	unsigned bits = f->size * 8;

	if (!ok || lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "%s: field '%s' takes an integer, not %s", what, f->name,
			   lua_type(L, -1) == LUA_TNUMBER ? "a fraction" : luaL_typename(L, -1));
	if (!is_signed && bits < 64 && (v < 0 || (uint64_t)v >> bits))
		luaL_error(L, "%s: field '%s': %I does not fit %d bits", what, f->name, v,
			   (int)bits);
	if (is_signed && bits == 32 && (v < INT32_MIN || v > INT32_MAX))
		luaL_error(L, "%s: field '%s': %I does not fit 32 bits", what, f->name, v);
	return (uint64_t)v;
}

/* A flags value: a number, "A|B", {"A", "B"} or {A = true}. */
static uint32_t fill_flags(lua_State *L, const struct nlg_field *f, const char *what)
{
	uint32_t v = 0;
	int t = lua_type(L, -1);

	if (t == LUA_TNUMBER)
		return (uint32_t)fill_int(L, f, what);
	if (t == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		while (*s) {
			char name[64];
			size_t n = strcspn(s, "|, ");
			int i;
			if (n && n < sizeof(name)) {
				memcpy(name, s, n);
				name[n] = 0;
				if ((i = name_index(f->names, name)) < 0 || i >= 32)
					luaL_error(L, "%s: field '%s': unknown flag '%s'", what,
						   f->name, name);
				v |= 1u << i;
			}
			s += n + (s[n] != 0);
		}
		return v;
	}
	if (t != LUA_TTABLE)
		luaL_error(L,
			   "%s: field '%s' takes flags (\"A|B\", {\"A\", \"B\"} or a number), "
			   "not %s",
			   what, f->name, luaL_typename(L, -1));
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *name = lua_type(L, -2) == LUA_TSTRING   ? lua_tostring(L, -2)
				   : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
								    : NULL;
		int i = name ? name_index(f->names, name) : -1;
		if (i < 0 || i >= 32)
			luaL_error(L, "%s: field '%s': unknown flag '%s'", what, f->name,
				   name ? name : "?");
		if (lua_type(L, -2) != LUA_TSTRING || lua_toboolean(L, -1))
			v |= 1u << i;
		lua_pop(L, 1);
	}
	return v;
}

/* Field f of rec from the value at -1. */
static void fill_field(lua_State *L, const struct nlg_field *f, void *rec, const char *what)
{
	char *p = (char *)rec + f->offset;
	int t = lua_type(L, -1);

	switch (f->type) {
	case NLG_T_BOOL:
		if (t != LUA_TBOOLEAN)
			luaL_error(L, "%s: field '%s' takes true or false, not %s", what, f->name,
				   luaL_typename(L, -1));
		*(uint8_t *)p = (uint8_t)lua_toboolean(L, -1);
		return;
	case NLG_T_ENUM: {
		int i;
		if (t == LUA_TSTRING) {
			if ((i = name_index(f->names, lua_tostring(L, -1))) < 0)
				luaL_error(L, "%s: field '%s': unknown name '%s'", what, f->name,
					   lua_tostring(L, -1));
			*(uint8_t *)p = (uint8_t)i;
		} else {
			*(uint8_t *)p = (uint8_t)fill_int(L, f, what);
		}
		return;
	}
	case NLG_T_FLAGS:
		store_uint(p, f->size, fill_flags(L, f, what));
		return;
	case NLG_T_ADDR: {
		struct nlg_addr *a = (struct nlg_addr *)p;
		const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		memset(a, 0, sizeof(*a));
		if (s && inet_pton(AF_INET, s, a->bytes) == 1)
			a->family = AF_INET;
		else if (s && inet_pton(AF_INET6, s, a->bytes) == 1)
			a->family = AF_INET6;
		else
			luaL_error(L, "%s: field '%s' takes an address as text, not %s", what,
				   f->name, s ? s : luaL_typename(L, -1));
		return;
	}
	case NLG_T_STR: {
		size_t n = 0;
		const char *s = t == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
		if (!s || n >= f->size)
			luaL_error(L, "%s: field '%s' takes a string of at most %d bytes", what,
				   f->name, (int)f->size - 1);
		memset(p, 0, f->size);
		memcpy(p, s, n);
		return;
	}
	case NLG_T_HEX: {
		size_t n;
		const char *s = t == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
		if (!s || n != 2 * (size_t)f->size)
			luaL_error(L, "%s: field '%s' takes %d hex digits", what, f->name,
				   2 * (int)f->size);
		for (size_t i = 0; i < f->size; i++) {
			unsigned b;
			char two[3] = {s[2 * i], s[2 * i + 1], 0};
			if (sscanf(two, "%2x", &b) != 1)
				luaL_error(L, "%s: field '%s': bad hex '%s'", what, f->name, s);
			((uint8_t *)p)[i] = (uint8_t)b;
		}
		return;
	}
	default:
		store_uint(p, f->size, fill_int(L, f, what));
	}
}

void nlg_view_fill(lua_State *L, int idx, const struct nlg_schema *s, void *rec, const char *what)
{
	uint64_t *present = (uint64_t *)((char *)rec + s->present_off);
	int family = nlg_schema_field(s, "family"), family_set = 0, addr_family = 0;

	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	memset(rec, 0, s->rec_size);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int fi =
		    lua_type(L, -2) == LUA_TSTRING ? nlg_schema_field(s, lua_tostring(L, -2)) : -1;
		if (fi < 0)
			luaL_error(L, "%s: unknown field '%s' for %s (see `nlgate fields %s`)",
				   what, luaL_tolstring(L, -2, NULL), s->kind, s->kind);
		fill_field(L, &s->fields[fi], rec, what);
		*present |= s->fields[fi].group;
		family_set |= fi == family;
		if (s->fields[fi].type == NLG_T_ADDR && !addr_family)
			addr_family =
			    ((const struct nlg_addr *)((char *)rec + s->fields[fi].offset))->family;
		lua_pop(L, 1);
	}
	/* An address says its family: a record given src = "10.0.0.1" is inet
	 * unless the table says otherwise. */
	if (family >= 0 && !family_set && addr_family && s->fields[family].size == 1)
		*((uint8_t *)rec + s->fields[family].offset) = (uint8_t)addr_family;
}

/* ---- batches ------------------------------------------------------------- */

static struct nlg_batch *batch_check(lua_State *L)
{
	struct nlg_batch *b = luaL_checkudata(L, 1, BATCH_MT);
	if (!b->recs && b->n)
		luaL_error(L, "batch used after its handler returned");
	return b;
}

static int batch_len(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)batch_check(L)->n);
	return 1;
}

static int batch_stats(lua_State *L)
{
	struct nlg_batch *b = batch_check(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, b->stats_ref);
	return 1;
}

/* iterator: for i, r in batch:records() — r is one reused view, valid per
 * step; the batch clears it when its handler returns. The control value
 * comes from the caller: anything out of range ends the loop. */
static int batch_iter(lua_State *L)
{
	struct nlg_batch *b = lua_touserdata(L, lua_upvalueindex(1));
	struct nlg_view *v = lua_touserdata(L, lua_upvalueindex(2));
	lua_Integer i = luaL_checkinteger(L, 2);

	if (!b->recs || i < 0 || i >= (lua_Integer)b->n) {
		v->rec = NULL;
		return 0;
	}
	v->rec = (const char *)b->recs + (size_t)i * b->s->rec_size;
	lua_pushinteger(L, i + 1);
	lua_pushvalue(L, lua_upvalueindex(2));
	return 2;
}

static int batch_records(lua_State *L)
{
	struct nlg_batch *b = batch_check(L);

	lua_pushvalue(L, 1);
	nlg_view_new(L, b->s);
	/* The batch remembers its iterators' views, to clear them. */
	if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setiuservalue(L, 1, 1);
	}
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	lua_pop(L, 1);
	lua_pushcclosure(L, batch_iter, 2);
	lua_pushnil(L);
	lua_pushinteger(L, 0);
	return 3;
}

/* for i, a, b in batch:fields("src", "dport") — the named fields of each
 * record in turn, as a view gives them, in one call per record instead of
 * one __index call per field read. Names are looked up once, here; an
 * unknown one raises as a view's read does. */
struct fields_sel {
	struct nlg_view_memo *memo;
	struct nlg_view_fields f;
};

void nlg_view_fields_resolve(lua_State *L, const struct nlg_schema *s, int first, int n,
			     struct nlg_view_fields *out, const char *what)
{
	if (n > NLG_VIEW_FIELDS_MAX)
		luaL_error(L, "%s: at most %d fields", what, NLG_VIEW_FIELDS_MAX);
	lua_getfield(L, LUA_REGISTRYINDEX, VIEW_INDEX_KEY);
	push_index(L, lua_gettop(L), s);
	for (int k = 0; k < n; k++) {
		lua_pushvalue(L, first + k);
		if (lua_type(L, -1) != LUA_TSTRING || lua_rawget(L, -2) != LUA_TNUMBER)
			luaL_error(L, "%s record has no field '%s' (see `nlgate fields %s`)",
				   s->kind, luaL_tolstring(L, first + k, NULL), s->kind);
		out->fi[k] = (uint16_t)lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	out->n = n;
	lua_pop(L, 2);
}

static int fields_iter(lua_State *L)
{
	struct nlg_batch *b = lua_touserdata(L, lua_upvalueindex(1));
	struct fields_sel *fs = lua_touserdata(L, lua_upvalueindex(3));
	lua_Integer i = lua_tointeger(L, 2);
	const void *rec;

	if (!b->recs || i < 0 || i >= (lua_Integer)b->n)
		return 0;
	rec = (const char *)b->recs + (size_t)i * b->s->rec_size;
	lua_pushinteger(L, i + 1);
	for (int k = 0; k < fs->f.n; k++)
		push_value(L, b->s, fs->memo, lua_upvalueindex(2), fs->f.fi[k], rec);
	return 1 + fs->f.n;
}

static int batch_fields(lua_State *L)
{
	struct nlg_batch *b = batch_check(L);
	int n = lua_gettop(L) - 1;
	struct fields_sel *fs;

	if (n < 1 || n > NLG_VIEW_FIELDS_MAX)
		return luaL_error(L, "batch:fields: name 1 to %d fields", NLG_VIEW_FIELDS_MAX);
	lua_pushvalue(L, 1);				      /* upvalue 1: the batch */
	lua_getfield(L, LUA_REGISTRYINDEX, VIEW_ANCHORS_KEY); /* 2: the memo's anchors */
	fs = lua_newuserdatauv(L, sizeof(*fs), 0);	      /* 3 */
	memset(fs, 0, sizeof(*fs));
	lua_getfield(L, LUA_REGISTRYINDEX, VIEW_MEMO_KEY);
	fs->memo = lua_touserdata(L, -1);
	lua_pop(L, 1);
	nlg_view_fields_resolve(L, b->s, 2, n, &fs->f, "batch:fields");
	lua_pushcclosure(L, fields_iter, 3);
	lua_pushnil(L);
	lua_pushinteger(L, 0);
	return 3;
}

static const luaL_Reg batch_methods[] = {
    {"stats", batch_stats},
    {"records", batch_records},
    {"fields", batch_fields},
    {NULL, NULL},
};

/* batch[i] → an owned copy (valid after the handler); methods by name. */
static int batch_index(lua_State *L)
{
	struct nlg_batch *b = batch_check(L);

	if (lua_type(L, 2) == LUA_TNUMBER) {
		lua_Integer i = lua_tointeger(L, 2);
		if (i < 1 || i > (lua_Integer)b->n)
			return lua_pushnil(L), 1;
		nlg_view_copy(L, b->s, (const char *)b->recs + (size_t)(i - 1) * b->s->rec_size);
		return 1;
	}
	lua_pushvalue(L, 2);
	lua_rawget(L, lua_upvalueindex(1));
	return 1;
}

static int batch_gc(lua_State *L)
{
	struct nlg_batch *b = luaL_checkudata(L, 1, BATCH_MT);
	luaL_unref(L, LUA_REGISTRYINDEX, b->stats_ref);
	b->stats_ref = LUA_NOREF;
	return 0;
}

struct nlg_batch *nlg_batch_test(lua_State *L, int idx)
{
	return luaL_testudata(L, idx, BATCH_MT);
}

struct nlg_batch *nlg_batch_new(lua_State *L, const struct nlg_schema *s)
{
	struct nlg_batch *b = lua_newuserdatauv(L, sizeof(*b), 1);

	*b = (struct nlg_batch){.s = s, .stats_ref = LUA_NOREF};
	luaL_setmetatable(L, BATCH_MT);
	return b;
}

int nlg_recs_push(struct nlg_recs *r, const void *rec)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		void *d = realloc(r->data, cap * r->size);
		if (!d)
			return -ENOMEM;
		r->data = d;
		r->cap = cap;
	}
	memcpy((char *)r->data + r->n++ * r->size, rec, r->size);
	return 0;
}

void nlg_recs_clear(struct nlg_recs *r)
{
	r->n = 0;
	if (r->cap > 4096) /* don't hold a 100k-record poll between polls */
		nlg_recs_free(r);
}

void nlg_recs_free(struct nlg_recs *r)
{
	free(r->data);
	r->data = NULL;
	r->n = r->cap = 0;
}

int nlg_batch_call(struct nlg_gw *gw, lua_State *L, int fn_ref, const struct nlg_schema *s,
		   const void *recs, size_t n, const char *what)
{
	int stats_ref = luaL_ref(L, LUA_REGISTRYINDEX), rc;
	struct nlg_batch *b;

	lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
	b = nlg_batch_new(L, s);
	b->recs = recs;
	b->n = n;
	b->stats_ref = stats_ref;
	lua_pushvalue(L, -1);
	lua_insert(L, -3); /* keep the batch to invalidate it after the call */
	rc = nlg_gw_call(gw, L, 1, what);
	b->recs = NULL;
	b->n = 0;
	if (lua_getiuservalue(L, -1, 1) == LUA_TTABLE) {
		size_t n = lua_rawlen(L, -1);
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			((struct nlg_view *)lua_touserdata(L, -1))->rec = NULL;
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 2);
	return rc;
}

void nlg_view_register(lua_State *L)
{
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, VIEW_INDEX_KEY);
	memset(lua_newuserdatauv(L, sizeof(struct nlg_view_memo), 0), 0,
	       sizeof(struct nlg_view_memo));
	lua_setfield(L, LUA_REGISTRYINDEX, VIEW_MEMO_KEY);
	luaL_newmetatable(L, VIEW_MT);
	luaL_newlib(L, view_methods);
	lua_createtable(L, MEMO_ADDRS + 2 * MEMO_SETS, 0); /* the memo's anchors */
	for (int i = 1; i <= MEMO_ADDRS + 2 * MEMO_SETS; i++) {
		lua_pushboolean(L, 0); /* every slot in the array part from the start */
		lua_rawseti(L, -2, i);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, VIEW_ANCHORS_KEY);
	lua_pushcclosure(L, view_index, 2);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, view_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, view_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	luaL_newmetatable(L, BATCH_MT);
	luaL_newlib(L, batch_methods);
	lua_pushcclosure(L, batch_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, batch_len);
	lua_setfield(L, -2, "__len");
	lua_pushcfunction(L, batch_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* ---- Lua values → msgpack ------------------------------------------------ *
 *
 * A script's value is bounded before a byte is sent: at most NLG_PACK_DEPTH
 * levels (what `nlgate tail` and common decoders take), NLG_PACK_NODES
 * values in all (a table nested as a DAG, for i=1,26 do t={t,t} end, is 2^26
 * nodes in a few bytes of Lua), and NLG_PACK_BYTES of output. Keys are
 * converted without metamethods, so a map's count always equals its
 * entries; strings that are not UTF-8 go out as bin, so a strict decoder
 * (python-msgpack raw=False) reads every frame. */
#define NLG_PACK_DEPTH 32
#define NLG_PACK_NODES 1000000
#define NLG_PACK_BYTES (16u << 20)

struct pack {
	msgpack_packer *pk;
	size_t nodes, bytes;
};

static int is_sequence(lua_State *L, int idx, size_t *n)
{
	size_t len = lua_rawlen(L, idx), count = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) {
			lua_pop(L, 1);
			return 0;
		}
		count++;
	}
	*n = len;
	return count == len && len > 0;
}

static void charge(lua_State *L, struct pack *p, size_t bytes)
{
	p->nodes++;
	p->bytes += bytes + 9; /* a header at most */
	if (p->nodes > NLG_PACK_NODES)
		luaL_error(L,
			   "send: value too large (more than %d values; a table shared "
			   "many times over counts each time)",
			   NLG_PACK_NODES);
	if (p->bytes > NLG_PACK_BYTES)
		luaL_error(L, "send: value too large (more than %d MiB encoded)",
			   (int)(NLG_PACK_BYTES >> 20));
}

static void pack_string(lua_State *L, struct pack *p, const char *s, size_t n)
{
	charge(L, p, n);
	if (nlg_utf8_valid(s, n)) {
		msgpack_pack_str(p->pk, n);
		msgpack_pack_str_body(p->pk, s, n);
	} else {
		msgpack_pack_bin(p->pk, n);
		msgpack_pack_bin_body(p->pk, s, n);
	}
}

/* A map key: strings as they are; numbers and booleans as their text; no
 * metamethod runs (a __tostring could change the table being walked). */
static void pack_key(lua_State *L, struct pack *p, int idx)
{
	size_t n;
	const char *k;

	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		k = lua_tolstring(L, idx, &n);
		pack_string(L, p, k, n);
		return;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			lua_pushfstring(L, "%I", lua_tointeger(L, idx));
		else
			lua_pushfstring(L, "%f", lua_tonumber(L, idx));
		break;
	case LUA_TBOOLEAN:
		lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
		break;
	default:
		luaL_error(L, "send: a table key must be a string, number or boolean, not a %s",
			   luaL_typename(L, idx));
		return;
	}
	k = lua_tolstring(L, -1, &n);
	pack_string(L, p, k, n);
	lua_pop(L, 1);
}

static void pack_value(lua_State *L, int idx, struct pack *p, int depth)
{
	struct nlg_view *v;
	size_t n;

	idx = lua_absindex(L, idx);
	if (depth > NLG_PACK_DEPTH)
		luaL_error(L, "send: table nested too deeply (more than %d levels, or cyclic)",
			   NLG_PACK_DEPTH);
	luaL_checkstack(L, 6, "send: table nested too deeply");
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		charge(L, p, 0);
		msgpack_pack_nil(p->pk);
		return;
	case LUA_TBOOLEAN:
		charge(L, p, 0);
		lua_toboolean(L, idx) ? msgpack_pack_true(p->pk) : msgpack_pack_false(p->pk);
		return;
	case LUA_TNUMBER:
		charge(L, p, 0);
		if (lua_isinteger(L, idx))
			msgpack_pack_int64(p->pk, lua_tointeger(L, idx));
		else
			msgpack_pack_double(p->pk, lua_tonumber(L, idx));
		return;
	case LUA_TSTRING: {
		const char *s = lua_tolstring(L, idx, &n);
		pack_string(L, p, s, n);
		return;
	}
	case LUA_TTABLE:
		charge(L, p, 0);
		if (is_sequence(L, idx, &n)) {
			msgpack_pack_array(p->pk, n);
			for (size_t i = 1; i <= n; i++) {
				lua_rawgeti(L, idx, (lua_Integer)i);
				pack_value(L, -1, p, depth + 1);
				lua_pop(L, 1);
			}
			return;
		}
		n = 0;
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pop(L, 1);
			n++;
		}
		msgpack_pack_map(p->pk, n);
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			pack_key(L, p, -2);
			pack_value(L, -1, p, depth + 1);
			lua_pop(L, 1);
		}
		return;
	case LUA_TUSERDATA:
		if ((v = nlg_view_test(L, idx))) {
			charge(L, p, v->s->rec_size);
			nlg_enc_mp_record(p->pk, v->s, view_rec(L, v));
			return;
		}
		/* fallthrough */
	default:
		luaL_error(L, "send: cannot encode a %s value", luaL_typename(L, idx));
	}
}

int nlg_lua_pack(lua_State *L, int idx, msgpack_packer *pk)
{
	struct pack p = {.pk = pk};

	pack_value(L, idx, &p, 0);
	return 0;
}

/* ---- msgpack → Lua values (gw.state across a reload) ---------------------- */

static int push_object(lua_State *L, const msgpack_object *o, int depth)
{
	if (depth > 64 || !lua_checkstack(L, 4))
		return -1;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		lua_pushnil(L);
		return 0;
	case MSGPACK_OBJECT_BOOLEAN:
		lua_pushboolean(L, o->via.boolean);
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		lua_pushinteger(L, (lua_Integer)o->via.u64);
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		lua_pushinteger(L, (lua_Integer)o->via.i64);
		return 0;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		lua_pushnumber(L, (lua_Number)o->via.f64);
		return 0;
	case MSGPACK_OBJECT_STR:
		lua_pushlstring(L, o->via.str.ptr, o->via.str.size);
		return 0;
	case MSGPACK_OBJECT_BIN:
		lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
		return 0;
	case MSGPACK_OBJECT_ARRAY:
		lua_createtable(L, (int)o->via.array.size, 0);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (push_object(L, &o->via.array.ptr[i], depth + 1) < 0)
				return -1;
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		return 0;
	case MSGPACK_OBJECT_MAP:
		lua_createtable(L, 0, (int)o->via.map.size);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			if (push_object(L, &o->via.map.ptr[i].key, depth + 1) < 0 ||
			    push_object(L, &o->via.map.ptr[i].val, depth + 1) < 0)
				return -1;
			if (lua_isnil(L, -2)) {
				lua_pop(L, 2);
				continue;
			}
			lua_rawset(L, -3);
		}
		return 0;
	default:
		lua_pushnil(L); /* ext: not plain data */
		return 0;
	}
}

int nlg_lua_unpack(lua_State *L, const void *data, size_t len)
{
	msgpack_unpacked u;
	size_t off = 0;
	int top = lua_gettop(L), rc = -1;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS)
		rc = push_object(L, &u.data, 0);
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		lua_settop(L, top);
	return rc;
}
