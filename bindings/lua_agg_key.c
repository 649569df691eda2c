/* The aggregators' keys: a view's by (or of) fields read in C as raw bytes
 * — a presence byte and the field's bytes each, addresses and strings
 * normalized — or a plain string, number or boolean with a type tag; and
 * keys made back into Lua values, as a view gives them. */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua_agg_types.h"

void agg_parse_names(lua_State *L, int idx, struct agg_keyspec *ks, const char *opt,
		     const char *what)
{
	int n = 0;

	ks->nf = 0;
	if (lua_isnil(L, idx))
		return;
	if (lua_type(L, idx) == LUA_TSTRING) {
		lua_newtable(L);
		lua_pushvalue(L, idx);
		lua_rawseti(L, -2, 1);
		idx = lua_gettop(L);
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "%s: %s must be a field name or a list of them", what, opt);
	n = (int)lua_rawlen(L, idx);
	if (n < 1 || n > AGG_MAXF)
		luaL_error(L, "%s: %s takes 1 to %d field names", what, opt, AGG_MAXF);
	for (int i = 0; i < n; i++) {
		size_t len;
		lua_rawgeti(L, idx, i + 1);
		const char *s = lua_tolstring(L, -1, &len);
		if (lua_type(L, -1) != LUA_TSTRING || !len || len >= sizeof(ks->names[i]))
			luaL_error(L, "%s: %s must be field names", what, opt);
		memcpy(ks->names[i], s, len + 1);
		lua_pop(L, 1);
	}
	ks->nf = n;
}

/* The fields of record kind s for ks; the first kind seen fixes the key
 * layout, a later one must agree with it. */
const struct agg_kmap *agg_kmap(lua_State *L, struct agg *a, struct agg_keyspec *ks,
				const struct nlg_schema *s)
{
	struct agg_kmap m = {.s = s};
	size_t klen = 0;
	int fi[AGG_MAXF];

	for (int i = 0; i < ks->nkinds; i++)
		if (ks->kinds[i].s == s)
			return &ks->kinds[i];
	if (ks->nkinds == AGG_KINDS)
		luaL_error(L, "%s: views of more than %d record kinds", a->type->name, AGG_KINDS);
	for (int i = 0; i < ks->nf; i++) {
		const struct nlg_field *f;
		if ((fi[i] = nlg_schema_field(s, ks->names[i])) < 0)
			luaL_error(L, "%s: %s records have no field '%s' (see `nlgate fields %s`)",
				   a->type->name, s->kind, ks->names[i], s->kind);
		f = &s->fields[fi[i]];
		m.f[i].off = f->offset;
		m.f[i].group = f->group;
		m.f[i].how = f->type == NLG_T_ADDR  ? AGG_ADDR
			     : f->type == NLG_T_STR ? AGG_STR
						    : AGG_COPY;
		m.f[i].psize = f->type == NLG_T_ADDR ? 17 : f->size;
		if (ks->nkinds) {
			const struct nlg_schema *s0 = ks->kinds[0].s;
			const struct nlg_field *f0 = &s0->fields[ks->fi0[i]];
			if (f0->type != f->type || f0->size != f->size || f0->names != f->names)
				luaL_error(
				    L, "%s: field '%s' of %s records is not of the type %s's is",
				    a->type->name, ks->names[i], s->kind, s0->kind);
		}
		klen += 1 + m.f[i].psize;
	}
	if (klen > AGG_KEYMAX)
		luaL_error(L, "%s: key fields too large (%zu bytes)", a->type->name, klen);
	if (!ks->nkinds) {
		if (ks == &a->by) {
			a->rec = nlg_agg_realloc(&a->mem, NULL, 0, s->rec_size);
			if (!a->rec)
				agg_oom(L, a);
		}
		memcpy(ks->fi0, fi, sizeof(fi));
		ks->klen = klen;
	}
	ks->kinds[ks->nkinds] = m;
	return &ks->kinds[ks->nkinds++];
}

static size_t key_rec(const struct agg_keyspec *ks, const struct agg_kmap *m, const void *rec,
		      unsigned char *kb)
{
	const unsigned char *r = rec;
	unsigned char *p = kb;
	uint64_t present;

	memcpy(&present, r + m->s->present_off, 8);
	for (int i = 0; i < ks->nf; i++) {
		const struct agg_kf *f = &m->f[i];
		const unsigned char *src = r + f->off;
		int ok = !f->group || (present & f->group);

		if (ok && f->how == AGG_COPY) {
			p[0] = 1;
			memcpy(p + 1, src, f->psize);
		} else if (ok && f->how == AGG_ADDR && ((const struct nlg_addr *)src)->family) {
			const struct nlg_addr *ad = (const void *)src;
			size_t n = ad->family == AF_INET ? 4 : 16;
			p[0] = 1;
			p[1] = ad->family;
			memcpy(p + 2, ad->bytes, n);
			memset(p + 2 + n, 0, 16 - n);
		} else if (ok && f->how == AGG_STR) {
			size_t n = strnlen((const char *)src, f->psize);
			p[0] = 1;
			memcpy(p + 1, src, n);
			memset(p + 1 + n, 0, f->psize - n);
		} else
			memset(p, 0, 1 + (size_t)f->psize); /* absent */
		p += 1 + f->psize;
	}
	return (size_t)(p - kb);
}

static struct nlg_view *view_at(lua_State *L, int idx)
{
	struct nlg_view *v = lua_touserdata(L, idx);

	/* As the view's own __index: size and magic, no registry lookup. */
	if (!v || lua_rawlen(L, idx) < sizeof(*v) || v->magic != NLG_VIEW_MAGIC)
		return NULL;
	if (!v->rec)
		luaL_error(L, "%s record used after its handler returned (copy it with r:table())",
			   v->s->kind);
	return v;
}

int agg_is_view(lua_State *L, int idx)
{
	return view_at(L, idx) != NULL;
}

size_t agg_plain(lua_State *L, int idx, unsigned char *kb, int nil_ok, const char *what)
{
	size_t n;
	const char *s;
	lua_Integer i;
	double d;

	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		if (n > AGG_PLAINMAX)
			luaL_error(L, "%s: key longer than %d bytes", what, AGG_PLAINMAX);
		kb[0] = 's';
		memcpy(kb + 1, s, n);
		return n + 1;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			i = lua_tointeger(L, idx);
		} else {
			d = lua_tonumber(L, idx);
			if (d != d)
				luaL_error(L, "%s: a key cannot be NaN", what);
			/* 2 and 2.0 are one key, as in a Lua table */
			if (!(d == floor(d) && d >= -9223372036854775808.0 &&
			      d < 9223372036854775808.0)) {
				kb[0] = 'f';
				memcpy(kb + 1, &d, 8);
				return 9;
			}
			i = (lua_Integer)d;
		}
		kb[0] = 'i';
		memcpy(kb + 1, &i, 8);
		return 9;
	case LUA_TBOOLEAN:
		kb[0] = 'b';
		kb[1] = (unsigned char)lua_toboolean(L, idx);
		return 2;
	case LUA_TNIL:
	case LUA_TNONE:
		if (nil_ok) {
			kb[0] = 'n';
			return 1;
		}
		/* fallthrough */
	default:
		return (size_t)luaL_error(L, "%s: a key is a string, number or boolean, not %s",
					  what, luaL_typename(L, idx));
	}
}

static void push_plain(lua_State *L, const unsigned char *k, size_t kl)
{
	lua_Integer i;
	double d;

	switch (k[0]) {
	case 's':
		lua_pushlstring(L, (const char *)k + 1, kl - 1);
		return;
	case 'i':
		memcpy(&i, k + 1, 8);
		lua_pushinteger(L, i);
		return;
	case 'f':
		memcpy(&d, k + 1, 8);
		lua_pushnumber(L, d);
		return;
	case 'b':
		lua_pushboolean(L, k[1]);
		return;
	default:
		lua_pushnil(L);
	}
}

/* A Lua value for field f (of kinds[0]) into its 1 + psize key bytes. */
static void value_bytes(lua_State *L, struct agg *a, int idx, const struct nlg_field *f,
			unsigned char *p)
{
	size_t psize = f->type == NLG_T_ADDR ? 17 : f->size, n;
	const char *s;
	lua_Integer v = 0;
	int t = lua_type(L, idx);

	memset(p, 0, 1 + psize);
	if (t == LUA_TNIL || t == LUA_TNONE)
		return;
	p[0] = 1;
	switch (f->type) {
	case NLG_T_ADDR: {
		struct in6_addr b;
		s = lua_tostring(L, idx);
		if (t == LUA_TSTRING && inet_pton(AF_INET, s, &b) == 1) {
			p[1] = AF_INET;
			memcpy(p + 2, &b, 4);
		} else if (t == LUA_TSTRING && inet_pton(AF_INET6, s, &b) == 1) {
			p[1] = AF_INET6;
			memcpy(p + 2, &b, 16);
		} else
			goto bad;
		return;
	}
	case NLG_T_STR:
		s = lua_tolstring(L, idx, &n);
		if (t != LUA_TSTRING || n > psize)
			goto bad;
		memcpy(p + 1, s, n);
		return;
	case NLG_T_HEX:
		s = lua_tolstring(L, idx, &n);
		if (t != LUA_TSTRING || n != 2 * psize)
			goto bad;
		for (size_t i = 0; i < psize; i++) {
			unsigned x;
			if (sscanf(s + 2 * i, "%2x", &x) != 1)
				goto bad;
			p[1 + i] = (unsigned char)x;
		}
		return;
	case NLG_T_BOOL:
		if (t != LUA_TBOOLEAN)
			goto bad;
		p[1] = (unsigned char)lua_toboolean(L, idx);
		return;
	case NLG_T_ENUM:
		if (t == LUA_TSTRING) {
			s = lua_tostring(L, idx);
			for (v = 0; f->names && f->names[v] && strcmp(f->names[v], s); v++)
				;
			if (!f->names || !f->names[v])
				goto bad;
		} else if (!lua_isinteger(L, idx) &&
			   !(t == LUA_TNUMBER &&
			     lua_tonumber(L, idx) == floor(lua_tonumber(L, idx))))
			goto bad;
		else
			v = (lua_Integer)lua_tonumber(L, idx);
		p[1] = (unsigned char)v;
		return;
	case NLG_T_FLAGS:
		if (t == LUA_TTABLE) {
			for (unsigned b = 0; f->names && f->names[b] && b < 32; b++) {
				lua_getfield(L, idx, f->names[b]);
				if (lua_toboolean(L, -1))
					v |= (lua_Integer)1 << b;
				lua_pop(L, 1);
			}
			break;
		}
		/* a number: as the integers */
		__attribute__((fallthrough));
	default:
		if (t != LUA_TNUMBER || lua_tonumber(L, idx) != floor(lua_tonumber(L, idx)))
			goto bad;
		v = lua_isinteger(L, idx) ? lua_tointeger(L, idx)
					  : (lua_Integer)lua_tonumber(L, idx);
		break;
	}
	{ /* integers: the field's width, host order, as in the record */
		uint64_t u = (uint64_t)v;
		uint32_t u32 = (uint32_t)u;
		uint16_t u16 = (uint16_t)u;
		uint8_t u8 = (uint8_t)u;
		memcpy(p + 1,
		       psize == 8   ? (void *)&u
		       : psize == 4 ? (void *)&u32
		       : psize == 2 ? (void *)&u16
				    : (void *)&u8,
		       psize);
	}
	return;
bad:
	luaL_error(L, "%s: a %s is no key for '%s' (a %s field)", a->type->name,
		   luaL_typename(L, idx), f->name, nlg_ftype_name(f->type));
}

size_t agg_key(lua_State *L, struct agg *a, int idx, unsigned char *kb, int nil_ok)
{
	struct nlg_view *v;

	if (!a->by.nf)
		return agg_plain(L, idx, kb, nil_ok, a->type->name);
	if ((v = view_at(L, idx))) {
		const struct agg_kmap *m =
		    v->s == a->by.kinds[0].s ? &a->by.kinds[0] : agg_kmap(L, a, &a->by, v->s);
		return key_rec(&a->by, m, v->rec, kb);
	}
	if (a->by.nkinds) /* keyed like a view would be */
		return agg_key_read(L, a, idx, kb);
	return (size_t)luaL_error(L, "%s: with by, the key comes from a record view (got a %s)",
				  a->type->name, luaL_typename(L, idx));
}

size_t agg_key_read(lua_State *L, struct agg *a, int idx, unsigned char *kb)
{
	const struct nlg_schema *s0 = a->by.kinds[0].s;
	unsigned char *p = kb;

	if (!a->by.nf)
		return agg_plain(L, idx, kb, 1, a->type->name);
	if (view_at(L, idx))
		return agg_key(L, a, idx, kb, 0);
	if (!s0)
		return 0;
	if (a->by.nf == 1) {
		value_bytes(L, a, idx, &s0->fields[a->by.fi0[0]], kb);
		return a->by.klen;
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "%s: a key of several fields is a table {field = value}",
			   a->type->name);
	for (int i = 0; i < a->by.nf; i++) {
		const struct nlg_field *f = &s0->fields[a->by.fi0[i]];
		lua_getfield(L, idx, a->by.names[i]);
		value_bytes(L, a, lua_gettop(L), f, p);
		lua_pop(L, 1);
		p += 1 + (f->type == NLG_T_ADDR ? 17 : f->size);
	}
	return a->by.klen;
}

size_t agg_item_view(lua_State *L, struct agg *a, int idx, unsigned char *kb)
{
	struct nlg_view *v = view_at(L, idx);

	if (!v)
		return (size_t)luaL_error(L, "%s: with of, the item comes from a record view",
					  a->type->name);
	return key_rec(&a->of, agg_kmap(L, a, &a->of, v->s), v->rec, kb);
}

/* A key's fields written back into a record of the first kind, then
 * pushed as the view would push them. */
void agg_push_key(lua_State *L, struct agg *a, const unsigned char *k, size_t kl)
{
	const struct nlg_schema *s = a->by.kinds[0].s;
	uint64_t present = 0;
	const unsigned char *p = k;

	if (!a->by.nf) {
		push_plain(L, k, kl);
		return;
	}
	memset(a->rec, 0, s->rec_size);
	for (int i = 0; i < a->by.nf; i++) {
		const struct nlg_field *f = &s->fields[a->by.fi0[i]];
		const struct agg_kf *kf = &a->by.kinds[0].f[i];
		unsigned char *dst = a->rec + f->offset;
		if (p[0]) {
			present |= f->group;
			if (kf->how == AGG_ADDR) {
				struct nlg_addr *ad = (void *)dst;
				ad->family = p[1];
				memcpy(ad->bytes, p + 2, 16);
			} else
				memcpy(dst, p + 1, kf->psize);
		}
		p += 1 + kf->psize;
	}
	memcpy(a->rec + s->present_off, &present, 8);
	if (a->by.nf == 1) {
		nlg_view_push_field(L, s, a->by.fi0[0], a->rec);
		return;
	}
	lua_createtable(L, 0, a->by.nf);
	for (int i = 0; i < a->by.nf; i++) {
		nlg_view_push_field(L, s, a->by.fi0[i], a->rec);
		lua_setfield(L, -2, a->by.names[i]);
	}
}
