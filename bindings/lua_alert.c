/* gw.alert and gw.threshold: an alert is one record sent as `alert.<name>`
 * to every output the script declared, and one log line, de-duplicated per
 * (name, key) on the gateway clock; a threshold is a keyed hysteresis state
 * machine (ok → pending → firing → clearing → ok) that raises and resolves
 * them. Both keep bounded tables of keys in C. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/agg.h"

#define ALERTS_KEY	 "nlgate.alerts.table"	    /* registry: the state's alert table */
#define THRESHOLDS_KEY	 "nlgate.alerts.thresholds" /* registry: {threshold = true}, weak */
#define ALERTS_MT	 "nlgate.alerts"
#define THRESHOLD_MT	 "nlgate.threshold"
#define NAME_LEN	 64	/* an alert's name, at most */
#define KEY_LEN		 512	/* a key's text, at most */
#define ALERT_KEYS	 10000	/* (name, key) pairs gw.alert remembers at once */
#define THRESHOLD_KEYS	 100000 /* a threshold's default max_keys */
#define DEFAULT_EVERY_NS (300 * NLG_NS_PER_S)
#define MAX_DURATION_S	 1e8 /* about three years: sums on ns never overflow */
#define NLG_NS_PER_S	 1000000000ull

static const char *const severities[] = {"info", "warning", "error", "critical", NULL};

/* Record fields an alert sets itself: a script's fields may not take them. */
static const char *const reserved[] = {"name",	"severity",   "key",	"message",
				       "state", "suppressed", "value",	"threshold",
				       "since", "duration",   "reason", NULL};

/* ---- a bounded table of keys, in order of last use -------------------- */

enum { T_OK, T_PENDING, T_FIRING, T_CLEARING };

struct kent {
	struct kent *chain;	  /* the bucket's next */
	struct kent *prev, *next; /* use order, oldest first */
	uint64_t hash;
	uint64_t used_ns; /* last use, on the gateway clock */
	union {
		struct { /* gw.alert's (name, key) */
			uint64_t sent_ns, every_ns;
			uint64_t pending; /* suppressed since the last frame sent */
			int sent;	  /* a frame was sent: sent_ns holds */
		} a;
		struct {		   /* a threshold's key */
			uint64_t since_ns; /* pending: first breach; firing: fired */
			uint64_t clear_ns; /* clearing: first update under clear */
			double value;	   /* the last update's */
			int state;
			int sent; /* the firing frame went out (not suppressed) */
		} t;
	} u;
	size_t len;
	char text[]; /* len bytes, then a NUL */
};

struct keytab {
	struct kent **b;
	size_t nb, n;
	struct kent *oldest, *newest;
	/* the state's allocator: keys count against the script's memory limit */
	lua_Alloc alloc;
	void *ud;
};

static void kt_setalloc(struct keytab *kt, lua_State *L)
{
	kt->alloc = lua_getallocf(L, &kt->ud);
}

static void *kt_mem(struct keytab *kt, void *p, size_t osize, size_t nsize)
{
	return kt->alloc(kt->ud, p, osize, nsize);
}

static size_t kent_size(size_t len)
{
	return sizeof(struct kent) + len + 1;
}

/* The aggregators' hash (core/agg_table.c): keys come from the network, and
 * it mixes every bit where FNV-1a's low bits, the bucket index, are weak. */
static uint64_t hash_text(const char *s, size_t n)
{
	return nlg_agg_hash(s, n, 0);
}

static struct kent *kt_find(const struct keytab *kt, const char *s, size_t n, uint64_t h)
{
	if (!kt->nb)
		return NULL;
	for (struct kent *e = kt->b[h & (kt->nb - 1)]; e; e = e->chain)
		if (e->hash == h && e->len == n && !memcmp(e->text, s, n))
			return e;
	return NULL;
}

static void kt_link_newest(struct keytab *kt, struct kent *e)
{
	e->next = NULL;
	e->prev = kt->newest;
	if (kt->newest)
		kt->newest->next = e;
	else
		kt->oldest = e;
	kt->newest = e;
}

static void kt_unlink(struct keytab *kt, struct kent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		kt->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		kt->newest = e->prev;
}

/* Twice the buckets when there are as many keys as buckets; a failed
 * allocation keeps the old array (longer chains, still correct). */
static void kt_grow(struct keytab *kt)
{
	size_t nb = kt->nb ? kt->nb * 2 : 16;
	struct kent **b = kt_mem(kt, NULL, 0, nb * sizeof(*b));

	if (!b)
		return;
	memset(b, 0, nb * sizeof(*b));
	for (size_t i = 0; i < kt->nb; i++) {
		for (struct kent *e = kt->b[i], *next; e; e = next) {
			next = e->chain;
			e->chain = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	if (kt->b)
		kt_mem(kt, kt->b, kt->nb * sizeof(*kt->b), 0);
	kt->b = b;
	kt->nb = nb;
}

/* A new zeroed entry for s, the newest; NULL when out of memory. */
static struct kent *kt_add(struct keytab *kt, const char *s, size_t n, uint64_t h, uint64_t now)
{
	struct kent *e;

	if (kt->n >= kt->nb)
		kt_grow(kt);
	if (!kt->nb || !(e = kt_mem(kt, NULL, 0, kent_size(n))))
		return NULL;
	memset(e, 0, kent_size(n));
	e->hash = h;
	e->len = n;
	memcpy(e->text, s, n);
	e->used_ns = now;
	e->chain = kt->b[h & (kt->nb - 1)];
	kt->b[h & (kt->nb - 1)] = e;
	kt_link_newest(kt, e);
	kt->n++;
	return e;
}

static void kt_touch(struct keytab *kt, struct kent *e, uint64_t now)
{
	e->used_ns = now;
	if (kt->newest == e)
		return;
	kt_unlink(kt, e);
	kt_link_newest(kt, e);
}

static void kt_del(struct keytab *kt, struct kent *e)
{
	for (struct kent **p = &kt->b[e->hash & (kt->nb - 1)]; *p; p = &(*p)->chain) {
		if (*p == e) {
			*p = e->chain;
			break;
		}
	}
	kt_unlink(kt, e);
	kt->n--;
	kt_mem(kt, e, kent_size(e->len), 0);
}

static void kt_free(struct keytab *kt)
{
	for (struct kent *e = kt->oldest, *next; e; e = next) {
		next = e->next;
		kt_mem(kt, e, kent_size(e->len), 0);
	}
	if (kt->b)
		kt_mem(kt, kt->b, kt->nb * sizeof(*kt->b), 0);
	kt->b = NULL;
	kt->nb = kt->n = 0;
	kt->oldest = kt->newest = NULL;
}

/* ---- reading options ------------------------------------------------- */

/* A duration option at idx: seconds as a number, or "500ms", "2s", "1m". */
static uint64_t opt_duration(lua_State *L, int idx, const char *what, const char *opt)
{
	uint64_t ms = 0;

	if (lua_type(L, idx) == LUA_TNUMBER) {
		lua_Number v = lua_tonumber(L, idx);
		if (!(v >= 0 && v <= MAX_DURATION_S))
			luaL_error(L, "%s: bad %s %f (a duration: 500ms, 2s, 1m)", what, opt,
				   (double)v);
		return (uint64_t)(v * 1e9);
	}
	if (lua_type(L, idx) != LUA_TSTRING ||
	    nlg_parse_duration(lua_tostring(L, idx), "s", &ms) < 0 ||
	    ms > (uint64_t)MAX_DURATION_S * 1000)
		luaL_error(L, "%s: bad %s '%s' (a duration: 500ms, 2s, 1m)", what, opt,
			   luaL_tolstring(L, idx, NULL));
	return ms * 1000000ull;
}

/* An alert's name: 1 to NAME_LEN of A-Z a-z 0-9 _ . - (it is in a tag). */
static int name_ok(const char *s, size_t n)
{
	return n > 0 && n <= NAME_LEN &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

#define BAD_NAME     "bad name '%s' (1 to %d of A-Z a-z 0-9 _ . -)"
#define BAD_SEVERITY "bad severity '%s' (info, warning, error, critical)"

/* The severity called s, as the table's own string; NULL if none. */
static const char *severity_of(const char *s)
{
	for (size_t i = 0; severities[i]; i++)
		if (!strcmp(s, severities[i]))
			return severities[i];
	return NULL;
}

static void check_name(lua_State *L, int idx, const char *what)
{
	size_t n;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s: name is required (a string)", what);
	s = lua_tolstring(L, idx, &n);
	if (!name_ok(s, n))
		luaL_error(L, "%s: " BAD_NAME, what, s, NAME_LEN);
}

static const char *check_severity(lua_State *L, int idx, const char *what)
{
	const char *sev = NULL;

	if (lua_isnil(L, idx))
		return "warning";
	if (lua_type(L, idx) == LUA_TSTRING)
		sev = severity_of(lua_tostring(L, idx));
	if (!sev)
		luaL_error(L, "%s: " BAD_SEVERITY, what, luaL_tolstring(L, idx, NULL));
	return sev;
}

/* The option table at idx has only keys from allowed. */
static void check_keys(lua_State *L, int idx, const char *const *allowed, const char *what)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		size_t i = 0;
		if (lua_type(L, -2) == LUA_TSTRING)
			for (; allowed[i] && strcmp(allowed[i], lua_tostring(L, -2)); i++)
				;
		if (lua_type(L, -2) != LUA_TSTRING || !allowed[i])
			luaL_error(L, "%s: unknown option '%s'", what, luaL_tolstring(L, -2, NULL));
		lua_pop(L, 1);
	}
}

/* A script's fields table at idx (or nil): names not reserved, values
 * plain (string, number, boolean), so the record is flat. */
static void check_fields(lua_State *L, int idx, const char *what)
{
	if (lua_isnoneornil(L, idx))
		return;
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: fields must be a table", what);
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int t = lua_type(L, -1);
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: fields: names are strings", what);
		for (size_t i = 0; reserved[i]; i++)
			if (!strcmp(reserved[i], lua_tostring(L, -2)))
				luaL_error(L, "%s: fields: '%s' is the alert's own field", what,
					   reserved[i]);
		if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
			luaL_error(L, "%s: fields.%s must be a string, number or boolean", what,
				   lua_tostring(L, -2));
		lua_pop(L, 1);
	}
}

/* Copy the (checked) fields table at from into the table at to. */
static void copy_fields(lua_State *L, int from, int to)
{
	if (lua_isnoneornil(L, from))
		return;
	from = lua_absindex(L, from);
	to = lua_absindex(L, to);
	lua_pushnil(L);
	while (lua_next(L, from)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, to);
	}
}

/* A key given as a value: its text into buf (a string, number or boolean). */
static size_t value_text(lua_State *L, int idx, char *buf, const char *what)
{
	size_t n = 0;
	const char *s;

	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		if (n > KEY_LEN)
			luaL_error(L, "%s: key longer than %d bytes", what, KEY_LEN);
		memcpy(buf, s, n);
		return n;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return (size_t)snprintf(buf, KEY_LEN, "%lld",
						(long long)lua_tointeger(L, idx));
		return (size_t)snprintf(buf, KEY_LEN, "%.14g", (double)lua_tonumber(L, idx));
	case LUA_TBOOLEAN:
		n = lua_toboolean(L, idx) ? 4 : 5;
		memcpy(buf, lua_toboolean(L, idx) ? "true" : "false", n);
		return n;
	default:
		return (size_t)luaL_error(L, "%s: a key is a string, number or boolean (got %s)",
					  what, luaL_typename(L, idx));
	}
}

/* ---- the state's alerts ------------------------------------------------ */

struct alerts {
	struct nlg_gw *gw;
	struct keytab kt; /* (name, key) → the last frame sent */
	uint64_t sent, suppressed, resolved, dropped_keys;
	struct nlg_gw_stat stat;
};

static void set_int(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static void alerts_stat_push(lua_State *L, struct nlg_gw_stat *st)
{
	struct alerts *al = (struct alerts *)((char *)st - offsetof(struct alerts, stat));

	lua_createtable(L, 0, 5);
	set_int(L, "sent", al->sent);
	set_int(L, "suppressed", al->suppressed);
	set_int(L, "resolved", al->resolved);
	set_int(L, "keys", al->kt.n);
	set_int(L, "dropped_keys", al->dropped_keys);
}

/* "name\0key": the de-duplication key, in buf. */
static size_t pair_text(char *buf, const char *name, const char *key, size_t klen)
{
	size_t nl = strlen(name);

	memcpy(buf, name, nl + 1);
	memcpy(buf + nl + 1, key, klen);
	return nl + 1 + klen;
}

/* Forget the pairs no alert came for within their `every`: they hold
 * nothing the next alert needs (it will be sent). Oldest first, so the
 * walk stops at the first pair still in use. */
static void alerts_forget(struct alerts *al, uint64_t now)
{
	struct kent *e;

	while ((e = al->kt.oldest) && e->used_ns <= now && now - e->used_ns >= e->u.a.every_ns)
		kt_del(&al->kt, e);
}

enum { ADMIT_REFUSED = -1, ADMIT_SUPPRESSED = 0, ADMIT_SEND = 1 };

/* May an alert for (name, key) go out now? The pair is remembered either
 * way (*out); a suppressed one is counted for the next frame. */
static int alerts_admit(struct alerts *al, const char *name, const char *key, size_t klen,
			uint64_t every_ns, uint64_t now, struct kent **out)
{
	char buf[NAME_LEN + 1 + KEY_LEN];
	size_t n = pair_text(buf, name, key, klen);
	uint64_t h = hash_text(buf, n);
	struct kent *e;

	alerts_forget(al, now);
	e = kt_find(&al->kt, buf, n, h);
	if (!e && al->kt.n >= ALERT_KEYS) {
		/* Full: first every pair past its own `every` (one with a long
		 * every can stand before many expired ones in use order), then
		 * the oldest pair. Forgetting a pair costs at most one frame its
		 * de-duplication would have held back; refusing would lose an
		 * alert. */
		struct kent *next;
		for (struct kent *o = al->kt.oldest; o; o = next) {
			next = o->next;
			if (o->used_ns <= now && now - o->used_ns >= o->u.a.every_ns)
				kt_del(&al->kt, o);
		}
		if (al->kt.n >= ALERT_KEYS && al->kt.oldest) {
			kt_del(&al->kt, al->kt.oldest);
			al->dropped_keys++;
		}
	}
	if (!e && !(e = kt_add(&al->kt, buf, n, h, now))) {
		al->dropped_keys++;
		return ADMIT_REFUSED;
	}
	kt_touch(&al->kt, e, now);
	e->u.a.every_ns = every_ns;
	*out = e;
	/* A clock gone backwards (now < sent_ns) lets the alert through. */
	if (e->u.a.sent && now >= e->u.a.sent_ns && now - e->u.a.sent_ns < every_ns) {
		e->u.a.pending++;
		al->suppressed++;
		return ADMIT_SUPPRESSED;
	}
	return ADMIT_SEND;
}

/* Send the record at rec, complete but for `suppressed`, as
 * alert.<name> to every output, and log it. e: the pair, whose suppressed
 * count the frame carries (NULL: none). */
static void alerts_send(lua_State *L, struct alerts *al, struct kent *e, int rec, const char *name,
			const char *label, const char *key, size_t klen, const char *msg)
{
	char tag[sizeof("alert.") + NAME_LEN], note[48] = "";
	uint64_t pending = e ? e->u.a.pending : 0;

	rec = lua_absindex(L, rec);
	lua_pushinteger(L, (lua_Integer)pending);
	lua_setfield(L, rec, "suppressed");
	snprintf(tag, sizeof(tag), "alert.%s", name);
	nlg_lua_send_all(al->gw, L, tag, rec);
	if (e)
		e->u.a.pending = 0;
	if (pending)
		snprintf(note, sizeof(note), " (%" PRIu64 " suppressed before)", pending);
	nlg_gw_log("alert %s [%s]%s%.*s: %s%s", name, label, klen ? " " : "", (int)klen, key, msg,
		   note);
}

static int alerts_gc(lua_State *L)
{
	struct alerts *al = luaL_checkudata(L, 1, ALERTS_MT);

	nlg_gw_stat_del(&al->stat);
	kt_free(&al->kt);
	return 0;
}

/* The state's alert table (made at the first luaopen_nlgate), pushed. */
static struct alerts *push_alerts(lua_State *L)
{
	struct alerts *al;

	if (lua_getfield(L, LUA_REGISTRYINDEX, ALERTS_KEY) == LUA_TUSERDATA)
		return lua_touserdata(L, -1);
	lua_pop(L, 1);
	al = lua_newuserdatauv(L, sizeof(*al), 0);
	memset(al, 0, sizeof(*al));
	kt_setalloc(&al->kt, L);
	al->gw = nlg_gw_get(L);
	luaL_setmetatable(L, ALERTS_MT);
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, ALERTS_KEY);
	nlg_gw_stat_add(al->gw, &al->stat, "alerts", alerts_stat_push);
	al->stat.single = 1;
	return al;
}

static const char *const alert_opts[] = {"name",   "severity", "key", "message",
					 "fields", "every",    NULL};

/* gw.alert{ name, severity, key, message, fields, every } → sent */
static int l_alert(lua_State *L)
{
	struct alerts *al = lua_touserdata(L, lua_upvalueindex(1));
	const char *what = "gw.alert", *sev, *name, *msg = "";
	char key[KEY_LEN];
	size_t klen = 0;
	uint64_t every = DEFAULT_EVERY_NS, now;
	struct kent *e;
	int rec;

	nlg_gw_check_open(L, al->gw, what);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	check_keys(L, 1, alert_opts, what);
	lua_getfield(L, 1, "name");	/* 2 */
	lua_getfield(L, 1, "severity"); /* 3 */
	lua_getfield(L, 1, "key");	/* 4 */
	lua_getfield(L, 1, "message");	/* 5 */
	lua_getfield(L, 1, "fields");	/* 6 */
	lua_getfield(L, 1, "every");	/* 7 */
	check_name(L, 2, what);
	name = lua_tostring(L, 2);
	sev = check_severity(L, 3, what);
	if (!lua_isnil(L, 4))
		klen = value_text(L, 4, key, what);
	if (!lua_isnil(L, 5)) {
		if (lua_type(L, 5) != LUA_TSTRING && lua_type(L, 5) != LUA_TNUMBER)
			return luaL_error(L, "%s: message must be a string", what);
		msg = lua_tostring(L, 5);
	}
	check_fields(L, 6, what);
	if (!lua_isnil(L, 7))
		every = opt_duration(L, 7, what, "every");

	now = nlg_gw_clock_ns(al->gw);
	if (alerts_admit(al, name, key, klen, every, now, &e) != ADMIT_SEND) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_createtable(L, 0, 8);
	rec = lua_gettop(L);
	lua_pushvalue(L, 2);
	lua_setfield(L, rec, "name");
	lua_pushstring(L, sev);
	lua_setfield(L, rec, "severity");
	lua_pushlstring(L, key, klen);
	lua_setfield(L, rec, "key");
	lua_pushstring(L, msg);
	lua_setfield(L, rec, "message");
	lua_pushliteral(L, "firing");
	lua_setfield(L, rec, "state");
	copy_fields(L, 6, rec);
	alerts_send(L, al, e, rec, name, sev, key, klen, msg);
	e->u.a.sent = 1;
	e->u.a.sent_ns = now;
	al->sent++;
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- thresholds ------------------------------------------------------- */

struct threshold {
	struct alerts *al;
	struct nlg_gw *gw;
	char name[NAME_LEN + 1];
	char what[NAME_LEN + 16]; /* "threshold NAME", for messages */
	const char *sev;
	char *msg; /* NULL: made from the value */
	int below; /* below = Y (else above = X) */
	double limit, clear;
	uint64_t hold_ns, every_ns, expire_ns;
	size_t max_keys;
	char **by; /* field names, nby of them */
	size_t nby;
	const struct nlg_schema *by_s; /* the kind by_fi was resolved for */
	int *by_fi;
	struct keytab kt; /* keys not ok */
	uint64_t fired, resolved, expired, dropped_keys;
	uint32_t fire_fails, clear_fails;
	int on_fire, on_clear; /* not LUA_NOREF: the user value holds it */
	int64_t timer;	       /* the expiry timer's id, 0: none */
	int self_ref;	       /* alive while its expiry timer is */
	struct nlg_gw_stat stat;
};

/* The user values: 1 the keys as the script gave them (text → value), 2
 * on_fire, 3 on_clear. */
enum { UV_KEYS = 1, UV_FIRE, UV_CLEAR };

static const char *const state_names[] = {"ok", "pending", "firing", "firing"};

static int breached(const struct threshold *t, double v)
{
	return t->below ? v < t->limit : v > t->limit;
}

static int cleared(const struct threshold *t, double v)
{
	return t->below ? v > t->clear : v < t->clear;
}

/* The key of the argument at idx as text in buf: a record view's `by`
 * fields read in C (joined by ","), a table's `by` fields, or the value. */
static size_t key_text(lua_State *L, struct threshold *t, int idx, char *buf)
{
	struct nlg_view *v = nlg_view_test(L, idx);
	size_t n = 0;

	if (v) {
		if (!t->nby)
			luaL_error(L, "threshold %s: a record as the key needs `by`", t->name);
		if (!v->rec)
			luaL_error(L, "%s record used after its handler returned", v->s->kind);
		if (t->by_s != v->s) {
			for (size_t i = 0; i < t->nby; i++) {
				t->by_fi[i] = nlg_schema_field(v->s, t->by[i]);
				if (t->by_fi[i] < 0) {
					t->by_s = NULL;
					luaL_error(L, "threshold %s: %s record has no field '%s'",
						   t->name, v->s->kind, t->by[i]);
				}
			}
			t->by_s = v->s;
		}
		for (size_t i = 0; i < t->nby && n < KEY_LEN - 1; i++) {
			const struct nlg_field *f = &v->s->fields[t->by_fi[i]];
			if (i)
				buf[n++] = ',';
			if (!nlg_field_present(v->s, f, v->rec))
				continue;
			if (f->type == NLG_T_BOOL)
				n += (size_t)snprintf(buf + n, KEY_LEN - n, "%s",
						      nlg_field_int(f, v->rec) ? "true" : "false");
			else
				n += nlg_field_text(f, v->rec, buf + n, KEY_LEN - n);
		}
		return n < KEY_LEN ? n : KEY_LEN - 1;
	}
	if (lua_istable(L, idx) && t->nby) {
		char one[KEY_LEN];
		idx = lua_absindex(L, idx);
		for (size_t i = 0; i < t->nby; i++) {
			size_t m = 0;
			if (lua_getfield(L, idx, t->by[i]) != LUA_TNIL)
				m = value_text(L, -1, one, t->what);
			lua_pop(L, 1);
			if (n + m + 1 > KEY_LEN)
				luaL_error(L, "threshold %s: key longer than %d bytes", t->name,
					   KEY_LEN);
			if (i)
				buf[n++] = ',';
			memcpy(buf + n, one, m);
			n += m;
		}
		return n;
	}
	return value_text(L, idx, buf, t->what);
}

/* Push the key the script sees for the argument at idx: one `by` field's
 * value, several as a table, or the value itself. */
static void push_key_value(lua_State *L, struct threshold *t, int idx)
{
	struct nlg_view *v = nlg_view_test(L, idx);

	if (!v && lua_istable(L, idx) && t->nby) { /* its `by` fields */
		idx = lua_absindex(L, idx);
		if (t->nby == 1) {
			lua_getfield(L, idx, t->by[0]);
			return;
		}
		lua_createtable(L, 0, (int)t->nby);
		for (size_t i = 0; i < t->nby; i++) {
			lua_getfield(L, idx, t->by[i]);
			lua_setfield(L, -2, t->by[i]);
		}
		return;
	}
	if (!v) {
		lua_pushvalue(L, idx);
		return;
	}
	if (t->nby == 1) {
		nlg_view_push_field(L, v->s, t->by_fi[0], v->rec);
		return;
	}
	lua_createtable(L, 0, (int)t->nby);
	for (size_t i = 0; i < t->nby; i++) {
		nlg_view_push_field(L, v->s, t->by_fi[i], v->rec);
		lua_setfield(L, -2, t->by[i]);
	}
}

/* Push the script's value for key text (from the keys user value). */
static void push_stored_key(lua_State *L, int self, const struct kent *e)
{
	lua_getiuservalue(L, self, UV_KEYS);
	lua_pushlstring(L, e->text, e->len);
	lua_rawget(L, -2);
	lua_remove(L, -2);
}

/* Forget a key (back to ok): its entry and the script's value of it. */
static void forget_key(lua_State *L, struct threshold *t, int self, struct kent *e)
{
	lua_getiuservalue(L, self, UV_KEYS);
	lua_pushlstring(L, e->text, e->len);
	lua_pushnil(L);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	kt_del(&t->kt, e);
}

/* A number as the script would write it: 250, not 250.0. */
static void push_num(lua_State *L, double v)
{
	if (v == floor(v) && fabs(v) < 9e15)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, (lua_Number)v);
}

/* The record of a firing or a resolution, pushed: the alert's fields, the
 * key's `by` fields (the key value at keyval), the update's fields. */
static void push_record(lua_State *L, struct threshold *t, const char *key, size_t klen, int keyval,
			const char *state, const char *msg, double value, int fields)
{
	int rec;

	keyval = lua_absindex(L, keyval);
	if (fields)
		fields = lua_absindex(L, fields);
	lua_createtable(L, 0, 12);
	rec = lua_gettop(L);
	if (t->nby == 1 && !lua_isnil(L, keyval)) {
		lua_pushvalue(L, keyval);
		lua_setfield(L, rec, t->by[0]);
	} else if (t->nby > 1 && lua_istable(L, keyval)) {
		for (size_t i = 0; i < t->nby; i++) {
			lua_getfield(L, keyval, t->by[i]);
			lua_setfield(L, rec, t->by[i]);
		}
	}
	if (fields)
		copy_fields(L, fields, rec);
	/* The alert's own fields last: a `by` field called state or key
	 * cannot hide them (it is in `key` anyway). */
	lua_pushstring(L, t->name);
	lua_setfield(L, rec, "name");
	lua_pushstring(L, t->sev);
	lua_setfield(L, rec, "severity");
	lua_pushlstring(L, key, klen);
	lua_setfield(L, rec, "key");
	lua_pushstring(L, msg);
	lua_setfield(L, rec, "message");
	lua_pushstring(L, state);
	lua_setfield(L, rec, "state");
	push_num(L, value);
	lua_setfield(L, rec, "value");
	push_num(L, t->limit);
	lua_setfield(L, rec, "threshold");
}

static void set_seconds(lua_State *L, const char *k, uint64_t ns)
{
	lua_pushnumber(L, (lua_Number)ns / 1e9);
	lua_setfield(L, -2, k);
}

/* Call on_fire or on_clear (key, value, record) with the three values on
 * top of the stack, popping them; protected, counted. */
static void call_hook(lua_State *L, struct threshold *t, int self, int uv, uint32_t *fails,
		      const char *what)
{
	int rc, ref;

	if (lua_getiuservalue(L, self, uv) != LUA_TFUNCTION) {
		lua_pop(L, 4);
		return;
	}
	lua_insert(L, -4);
	rc = nlg_gw_call(t->gw, L, 3, what);
	if (rc == 0 || *fails + 1 < NLG_HANDLER_FAILS) {
		*fails = rc ? *fails + 1 : 0;
		return;
	}
	/* The NLG_HANDLER_FAILS-th failure in a row: disabled, logged and
	 * listed as nlg_gw_outcome does for a handler held by a reference. */
	lua_pushnil(L);
	lua_setiuservalue(L, self, uv);
	lua_pushboolean(L, 1);
	ref = luaL_ref(L, LUA_REGISTRYINDEX);
	nlg_gw_outcome(t->gw, L, rc, fails, &ref, what);
}

/* The key e (from the argument at keyarg, or the stored value) fires. */
static void fire(lua_State *L, struct threshold *t, int self, struct kent *e, int keyarg,
		 double value, int fields, uint64_t now)
{
	char msg[160];
	const char *m = t->msg;
	struct kent *pair = NULL;
	int admit, base = lua_gettop(L);

	if (!m) {
		snprintf(msg, sizeof(msg), "value %.14g %s %.14g", value,
			 t->below ? "below" : "above", t->limit);
		m = msg;
	}
	e->u.t.state = T_FIRING;
	uint64_t since = e->u.t.since_ns;
	e->u.t.since_ns = now;
	t->fired++;
	if (keyarg)
		push_key_value(L, t, keyarg);
	else
		push_stored_key(L, self, e);
	push_record(L, t, e->text, e->len, -1, "firing", m, value, fields);
	set_seconds(L, "since", since);
	admit = alerts_admit(t->al, t->name, e->text, e->len, t->every_ns, now, &pair);
	e->u.t.sent = admit == ADMIT_SEND;
	if (admit == ADMIT_SEND) {
		alerts_send(L, t->al, pair, -1, t->name, t->sev, e->text, e->len, m);
		pair->u.a.sent = 1;
		pair->u.a.sent_ns = now;
		t->al->sent++;
	}
	/* e may be gone after the hook (it can update this threshold). */
	push_num(L, value);
	lua_insert(L, -2);
	call_hook(L, t, self, UV_FIRE, &t->fire_fails, "threshold on_fire");
	lua_settop(L, base);
}

/* The key e resolves: its frame if its firing went out, the hook, and the
 * key is forgotten. reason: NULL, or "expired". */
static void resolve(lua_State *L, struct threshold *t, int self, struct kent *e, int keyarg,
		    double value, int fields, uint64_t now, const char *reason)
{
	char msg[160], text[KEY_LEN];
	const char *m = t->msg;
	size_t klen = e->len;
	uint64_t fired = e->u.t.since_ns;
	int sent = e->u.t.sent, base = lua_gettop(L);
	struct alerts *al = t->al;

	if (reason)
		snprintf(msg, sizeof(msg), "no update for %.14gs: resolved as expired",
			 (double)t->expire_ns / 1e9);
	else
		snprintf(msg, sizeof(msg), "value %.14g back %s %.14g", value,
			 t->below ? "above" : "below", t->clear);
	if (!m || reason)
		m = msg;
	memcpy(text, e->text, klen);
	if (keyarg)
		push_key_value(L, t, keyarg);
	else
		push_stored_key(L, self, e);
	forget_key(L, t, self, e);
	t->resolved++;
	if (reason)
		t->expired++;
	push_record(L, t, text, klen, -1, "resolved", m, value, fields);
	set_seconds(L, "since", fired);
	set_seconds(L, "duration", now >= fired ? now - fired : 0);
	if (reason) {
		lua_pushstring(L, reason);
		lua_setfield(L, -2, "reason");
	}
	char buf[NAME_LEN + 1 + KEY_LEN];
	size_t n = pair_text(buf, t->name, text, klen);
	struct kent *pair = kt_find(&al->kt, buf, n, hash_text(buf, n));
	if (sent) {
		alerts_send(L, al, pair, -1, t->name, "resolved", text, klen, m);
		al->resolved++;
	} else if (pair) { /* its firing was suppressed: so is this */
		pair->u.a.pending++;
		al->suppressed++;
	} else {
		al->suppressed++;
	}
	push_num(L, value);
	lua_insert(L, -2);
	call_hook(L, t, self, UV_CLEAR, &t->clear_fails, "threshold on_clear");
	lua_settop(L, base);
}

/* Keys with no update for `expire`: a firing one resolves ("expired"), a
 * pending one is forgotten. The threshold is at self. */
static void sweep(lua_State *L, struct threshold *t, int self, uint64_t now)
{
	struct kent *e;

	while ((e = t->kt.oldest) && e->used_ns <= now && now - e->used_ns >= t->expire_ns) {
		if (e->u.t.state >= T_FIRING) {
			resolve(L, t, self, e, 0, e->u.t.value, 0, now, "expired");
		} else {
			t->expired++;
			forget_key(L, t, self, e);
		}
	}
}

static int l_sweep(lua_State *L)
{
	struct threshold *t = luaL_checkudata(L, 1, THRESHOLD_MT);
	sweep(L, t, 1, nlg_gw_clock_ns(t->gw));
	return 0;
}

static void drop_timer(lua_State *L, struct threshold *t)
{
	if (t->timer > 0 && t->gw->loop)
		nlg_loop_del_timer(t->gw->loop, t->timer);
	t->timer = 0;
	luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
	t->self_ref = LUA_NOREF;
}

/* ns as a timer's delay: whole ms, never early, at least 1. */
static int64_t ms_ceil(uint64_t ns)
{
	uint64_t ms = (ns + 999999) / 1000000;

	return ms ? (int64_t)ms : 1;
}

/* The expiry timer: sweep, then sleep until the oldest key could expire. */
static int64_t expiry_tick(struct nlg_loop *loop, int64_t id, void *data)
{
	struct threshold *t = data;
	lua_State *L = t->gw->L;
	uint64_t now, due;

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	if (t->gw->quiet) {
		t->timer = 0; /* the loop deletes it on our -1 */
		drop_timer(L, t);
		return -1;
	}
	lua_pushcfunction(L, l_sweep);
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
	nlg_gw_call(t->gw, L, 1, "threshold expiry");
	now = nlg_gw_clock_ns(t->gw);
	if (!t->kt.oldest || t->kt.oldest->used_ns > now)
		return ms_ceil(t->expire_ns);
	due = t->kt.oldest->used_ns + t->expire_ns;
	return due > now ? ms_ceil(due - now) : 1;
}

/* t:update(key_or_view, value [, fields]) → state */
static int t_update(lua_State *L)
{
	struct threshold *t = luaL_checkudata(L, 1, THRESHOLD_MT);
	double v = luaL_checknumber(L, 3);
	char key[KEY_LEN];
	size_t n;
	uint64_t now = nlg_gw_clock_ns(t->gw), h;
	struct kent *e;
	int fields = lua_isnoneornil(L, 4) ? 0 : 4;

	luaL_checkany(L, 2);
	if (fields)
		check_fields(L, 4, t->what);
	if (t->expire_ns)
		sweep(L, t, 1, now);
	n = key_text(L, t, 2, key);
	h = hash_text(key, n);
	e = kt_find(&t->kt, key, n, h);
	if (!e) {
		if (!breached(t, v)) {
			lua_pushliteral(L, "ok");
			return 1;
		}
		if (t->kt.n >= t->max_keys) {
			t->dropped_keys++;
			lua_pushliteral(L, "ok");
			return 1;
		}
		lua_getiuservalue(L, 1, UV_KEYS);
		lua_pushlstring(L, key, n);
		push_key_value(L, t, 2);
		if (!(e = kt_add(&t->kt, key, n, h, now)))
			return luaL_error(L, "threshold %s: out of memory", t->name);
		lua_rawset(L, -3);
		lua_pop(L, 1);
		e->u.t.state = T_PENDING;
		e->u.t.since_ns = now;
	} else {
		kt_touch(&t->kt, e, now);
	}
	e->u.t.value = v;
	switch (e->u.t.state) {
	case T_PENDING:
		if (!breached(t, v)) {
			forget_key(L, t, 1, e);
			lua_pushliteral(L, "ok");
			return 1;
		}
		if (now >= e->u.t.since_ns && now - e->u.t.since_ns >= t->hold_ns) {
			fire(L, t, 1, e, 2, v, fields, now);
			lua_pushliteral(L, "firing");
			return 1;
		}
		lua_pushliteral(L, "pending");
		return 1;
	case T_FIRING:
		if (!cleared(t, v))
			break;
		e->u.t.state = T_CLEARING;
		e->u.t.clear_ns = now;
		/* with no `for`, it clears at once */
		/* fallthrough */
	case T_CLEARING:
		if (!cleared(t, v)) {
			e->u.t.state = T_FIRING;
			break;
		}
		if (now >= e->u.t.clear_ns && now - e->u.t.clear_ns >= t->hold_ns) {
			resolve(L, t, 1, e, 2, v, fields, now, NULL);
			lua_pushliteral(L, "ok");
			return 1;
		}
		break;
	}
	lua_pushliteral(L, "firing");
	return 1;
}

/* t:state(key_or_view) → "ok" | "pending" | "firing" */
static int t_state(lua_State *L)
{
	struct threshold *t = luaL_checkudata(L, 1, THRESHOLD_MT);
	char key[KEY_LEN];
	size_t n;
	struct kent *e;

	luaL_checkany(L, 2);
	n = key_text(L, t, 2, key);
	e = kt_find(&t->kt, key, n, hash_text(key, n));
	lua_pushstring(L, state_names[e ? e->u.t.state : T_OK]);
	return 1;
}

/* t:firing() → { key, ... } the keys firing now, least recently updated
 * first */
static int t_firing(lua_State *L)
{
	struct threshold *t = luaL_checkudata(L, 1, THRESHOLD_MT);
	lua_Integer i = 0;

	lua_newtable(L);
	for (struct kent *e = t->kt.oldest; e; e = e->next) {
		if (e->u.t.state < T_FIRING)
			continue;
		push_stored_key(L, 1, e);
		lua_rawseti(L, -2, ++i);
	}
	return 1;
}

static void push_tstats(lua_State *L, struct threshold *t)
{
	uint64_t pending = 0, firing = 0;

	for (struct kent *e = t->kt.oldest; e; e = e->next) {
		if (e->u.t.state == T_PENDING)
			pending++;
		else
			firing++;
	}
	lua_createtable(L, 0, 8);
	lua_pushstring(L, t->name);
	lua_setfield(L, -2, "name");
	set_int(L, "keys", t->kt.n);
	set_int(L, "pending", pending);
	set_int(L, "firing", firing);
	set_int(L, "fired", t->fired);
	set_int(L, "resolved", t->resolved);
	set_int(L, "expired", t->expired);
	set_int(L, "dropped_keys", t->dropped_keys);
}

static void tstat_push(lua_State *L, struct nlg_gw_stat *st)
{
	push_tstats(L, (struct threshold *)((char *)st - offsetof(struct threshold, stat)));
}

static int t_stats(lua_State *L)
{
	push_tstats(L, luaL_checkudata(L, 1, THRESHOLD_MT));
	return 1;
}

static int t_gc(lua_State *L)
{
	struct threshold *t = luaL_checkudata(L, 1, THRESHOLD_MT);

	if (t->timer > 0 && t->gw->loop)
		nlg_loop_del_timer(t->gw->loop, t->timer);
	t->timer = 0;
	nlg_gw_stat_del(&t->stat);
	kt_free(&t->kt);
	for (size_t i = 0; t->by && i < t->nby; i++)
		free(t->by[i]);
	free(t->by);
	free(t->by_fi);
	free(t->msg);
	t->by = NULL;
	t->by_fi = NULL;
	t->msg = NULL;
	t->nby = 0;
	return 0;
}

/* gw.threshold's options, read by the option table (core/opt.c) like every
 * constructor's; by, on_fire and on_clear are Lua values, taken apart. */
#define MSG_LEN 256
struct threshold_conf {
	char name[NAME_LEN + 1];
	double above, below, clear;
	int has_above, has_below, has_clear;
	uint64_t for_ms, hold_ms, every_ms, expire_ms, max_keys;
	const char *sev;
	char message[MSG_LEN];
};

static int parse_name(void *conf, const char *text, struct nlg_err *err)
{
	struct threshold_conf *c = conf;
	size_t n = strlen(text);

	if (!name_ok(text, n))
		return nlg_err_set(err, EINVAL, BAD_NAME, text, NAME_LEN);
	memcpy(c->name, text, n + 1);
	return 0;
}

static int parse_limit(const char *name, const char *text, double *v, int *set, struct nlg_err *err)
{
	char *end;

	*v = strtod(text, &end);
	if (!*text || *end || isnan(*v))
		return nlg_err_set(err, EINVAL, "%s must be a number (got '%s')", name, text);
	*set = 1;
	return 0;
}

static int parse_above(void *conf, const char *text, struct nlg_err *err)
{
	struct threshold_conf *c = conf;
	return parse_limit("above", text, &c->above, &c->has_above, err);
}

static int parse_below(void *conf, const char *text, struct nlg_err *err)
{
	struct threshold_conf *c = conf;
	return parse_limit("below", text, &c->below, &c->has_below, err);
}

static int parse_clear(void *conf, const char *text, struct nlg_err *err)
{
	struct threshold_conf *c = conf;
	return parse_limit("clear", text, &c->clear, &c->has_clear, err);
}

static int parse_severity(void *conf, const char *text, struct nlg_err *err)
{
	struct threshold_conf *c = conf;

	if (!(c->sev = severity_of(text)))
		return nlg_err_set(err, EINVAL, BAD_SEVERITY, text);
	return 0;
}

#define T_OFF(f) offsetof(struct threshold_conf, f)
#define T_DURATION(n, f, d, text)                                                                  \
	{                                                                                          \
		.name = n, .type = NLG_OPT_DURATION, .off = T_OFF(f), .def = d,                    \
		.max = (uint64_t)MAX_DURATION_S * 1000, .unit = "s", .arg = "DURATION",            \
		.desc = text                                                                       \
	}
static const struct nlg_opt threshold_opts[] = {
    {.name = "name",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_name,
     .arg = "NAME",
     .desc = "the alert's name: frames are tagged alert.NAME"},
    {.name = "above",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_above,
     .arg = "X",
     .desc = "fire when a value is above X"},
    {.name = "below",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_below,
     .arg = "Y",
     .desc = "fire when a value is below Y"},
    {.name = "clear",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_clear,
     .arg = "C",
     .desc = "resolve when back beyond C (default: the limit itself)"},
    T_DURATION("for", for_ms, NULL, "the breach must last this long before it fires"),
    T_DURATION("hold", hold_ms, NULL, "the same as for"),
    T_DURATION("every", every_ms, "5m", "a firing key's alert is sent at most this often"),
    T_DURATION("expire", expire_ms, NULL, "a key not updated for this long resolves"),
    {.name = "severity",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_severity,
     .def = "warning",
     .arg = "LEVEL",
     .desc = "info, warning, error or critical"},
    {.name = "max_keys",
     .type = NLG_OPT_UINT,
     .off = T_OFF(max_keys),
     .size = 8,
     .def = "100000",
     .min = 1,
     .arg = "N",
     .desc = "keys held (not ok) at most"},
    {.name = "message",
     .type = NLG_OPT_STR,
     .off = T_OFF(message),
     .size = MSG_LEN,
     .arg = "TEXT",
     .desc = "the alert's message (default: made from the value)"},
    {0},
};

static void opt_by(lua_State *L, struct threshold *t, const char *what)
{
	int list = lua_getfield(L, 1, "by") == LUA_TTABLE;
	size_t n = list ? lua_rawlen(L, -1) : 1;

	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!list && lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: by must be a field name or a list of them", what);
	if (n == 0 || n > 8)
		luaL_error(L, "%s: by takes 1 to 8 field names", what);
	t->by = calloc(n, sizeof(*t->by));
	t->by_fi = calloc(n, sizeof(*t->by_fi));
	if (!t->by || !t->by_fi)
		luaL_error(L, "%s: out of memory", what);
	for (size_t i = 0; i < n; i++) {
		if (list)
			lua_rawgeti(L, -1, (lua_Integer)i + 1);
		else
			lua_pushvalue(L, -1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: by must be a field name or a list of them", what);
		if (!(t->by[i] = strdup(lua_tostring(L, -1))))
			luaL_error(L, "%s: out of memory", what);
		t->nby = i + 1;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* gw.threshold{ name, above | below, clear, for/hold, severity, message,
 * every, by, expire, max_keys, on_fire, on_clear } */
static int l_threshold(lua_State *L)
{
	struct alerts *al = lua_touserdata(L, lua_upvalueindex(1));
	const char *what = "gw.threshold";
	static const char *const extra[] = {"by", "on_fire", "on_clear", NULL};
	struct threshold_conf c;
	struct threshold *t;

	nlg_gw_check_open(L, al->gw, what);
	luaL_checktype(L, 1, LUA_TTABLE);
	c = *(struct threshold_conf *)nlg_lua_conf(L, threshold_opts, sizeof(c), extra, what);
	lua_settop(L, 1);
	if (!c.name[0])
		return luaL_error(L, "%s: name is required (a string)", what);
	if (c.has_above == c.has_below)
		return luaL_error(L, "%s: give one of above or below", what);
	if (c.for_ms && c.hold_ms)
		return luaL_error(L, "%s: give for or hold, not both", what);
	if (lua_getfield(L, 1, "expire") != LUA_TNIL && !c.expire_ms)
		return luaL_error(L, "%s: expire must be at least 1ms", what);
	lua_pop(L, 1);
	t = lua_newuserdatauv(L, sizeof(*t), 3); /* 2: a raise from here leaks nothing */
	memset(t, 0, sizeof(*t));
	kt_setalloc(&t->kt, L);
	t->al = al;
	t->gw = al->gw;
	t->self_ref = LUA_NOREF;
	luaL_setmetatable(L, THRESHOLD_MT);

	snprintf(t->name, sizeof(t->name), "%s", c.name);
	snprintf(t->what, sizeof(t->what), "threshold %s", t->name);
	t->below = c.has_below;
	t->limit = c.has_below ? c.below : c.above;
	t->clear = c.has_clear ? c.clear : t->limit;
	if (t->below ? t->clear < t->limit : t->clear > t->limit)
		return luaL_error(L, "%s: clear (%f) must be %s (%f)", what, (lua_Number)t->clear,
				  t->below ? "at least below" : "at most above",
				  (lua_Number)t->limit);
	t->hold_ns = (c.for_ms ? c.for_ms : c.hold_ms) * 1000000ull;
	t->every_ns = c.every_ms * 1000000ull;
	t->expire_ns = c.expire_ms * 1000000ull;
	t->sev = c.sev;
	t->max_keys = (size_t)c.max_keys;
	if (c.message[0] && !(t->msg = strdup(c.message)))
		return luaL_error(L, "%s: out of memory", what);
	opt_by(L, t, what);
	lua_newtable(L);
	lua_setiuservalue(L, 2, UV_KEYS);
	/* Listed for a reload to find by name (nlg_lua_alert_carry). */
	if (lua_getfield(L, LUA_REGISTRYINDEX, THRESHOLDS_KEY) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "k");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, THRESHOLDS_KEY);
	}
	lua_pushvalue(L, 2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	for (int uv = UV_FIRE; uv <= UV_CLEAR; uv++) {
		const char *hook = uv == UV_FIRE ? "on_fire" : "on_clear";
		int ty = lua_getfield(L, 1, hook);
		if (ty != LUA_TNIL && ty != LUA_TFUNCTION)
			return luaL_error(L, "%s: %s must be a function", what, hook);
		lua_setiuservalue(L, 2, uv);
	}
	if (t->expire_ns) {
		t->timer = nlg_loop_add_timer(t->gw->loop, (uint64_t)ms_ceil(t->expire_ns),
					      expiry_tick, t);
		if (t->timer < 0) {
			int err = (int)-t->timer;
			t->timer = 0;
			return luaL_error(L, "%s: %s", what, strerror(err));
		}
		lua_pushvalue(L, 2);
		t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	nlg_gw_stat_add(t->gw, &t->stat, "thresholds", tstat_push);
	return 1;
}

/* ---- carried over a reload ----------------------------------------------
 *
 * What a new script's alerts must not forget when it replaces the old one:
 * the pairs gw.alert de-duplicates (else every alert fires again at each
 * SIGHUP) and each threshold's keys that are pending or firing, by the
 * threshold's name (else a firing key never resolves). The old state
 * writes them as one msgpack value; the new one reads what its own
 * thresholds of the same names can take. Each side runs protected in its
 * own state: the states share no Lua value. */

static void put_int(lua_State *L, int i, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_rawseti(L, -2, i);
}

/* Old state: the pairs, oldest first {{text, used, sent_ns, every, pending,
 * sent}, ...} and {name = {{text, used, state, since, clear, value, sent,
 * key value}, ...}}, as a table at -1. */
static int carry_out(lua_State *L)
{
	struct nlg_buf *out = lua_touserdata(L, 1);
	struct alerts *al;
	msgpack_packer pk;
	int i = 0;

	if (lua_getfield(L, LUA_REGISTRYINDEX, ALERTS_KEY) != LUA_TUSERDATA)
		return 0;
	al = lua_touserdata(L, -1);
	lua_createtable(L, 2, 0); /* the carry */
	lua_createtable(L, (int)al->kt.n, 0);
	for (struct kent *e = al->kt.oldest; e; e = e->next) {
		lua_createtable(L, 6, 0);
		lua_pushlstring(L, e->text, e->len);
		lua_rawseti(L, -2, 1);
		put_int(L, 2, e->used_ns);
		put_int(L, 3, e->u.a.sent_ns);
		put_int(L, 4, e->u.a.every_ns);
		put_int(L, 5, e->u.a.pending);
		put_int(L, 6, (uint64_t)e->u.a.sent);
		lua_rawseti(L, -2, ++i);
	}
	lua_rawseti(L, -2, 1);
	lua_newtable(L);
	if (lua_getfield(L, LUA_REGISTRYINDEX, THRESHOLDS_KEY) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			struct threshold *t = luaL_testudata(L, -2, THRESHOLD_MT);
			lua_pop(L, 1);
			if (!t || !t->kt.n)
				continue;
			lua_getiuservalue(L, -1, UV_KEYS);
			lua_createtable(L, (int)t->kt.n, 0);
			i = 0;
			for (struct kent *e = t->kt.oldest; e; e = e->next) {
				lua_createtable(L, 8, 0);
				lua_pushlstring(L, e->text, e->len);
				lua_rawseti(L, -2, 1);
				put_int(L, 2, e->used_ns);
				put_int(L, 3, (uint64_t)e->u.t.state);
				put_int(L, 4, e->u.t.since_ns);
				put_int(L, 5, e->u.t.clear_ns);
				lua_pushnumber(L, e->u.t.value);
				lua_rawseti(L, -2, 6);
				put_int(L, 7, (uint64_t)e->u.t.sent);
				lua_pushlstring(L, e->text, e->len);
				lua_rawget(L, -4); /* the key as the script gave it */
				lua_rawseti(L, -2, 8);
				lua_rawseti(L, -2, ++i);
			}
			lua_setfield(L, -5, t->name);
			lua_pop(L, 1); /* the keys */
		}
	}
	lua_pop(L, 1);
	lua_rawseti(L, -2, 2);
	nlg_mp_init(&pk, out);
	return nlg_lua_pack(L, -1, &pk) < 0 ? luaL_error(L, "alerts: cannot carry them over") : 0;
}

static uint64_t get_u64(lua_State *L, int t, int i)
{
	lua_Integer v = 0;

	if (lua_rawgeti(L, t, i) == LUA_TNUMBER)
		v = lua_tointeger(L, -1);
	lua_pop(L, 1);
	return v > 0 ? (uint64_t)v : 0;
}

/* The entry at -1 ({text, used, ...}): its text (pushed, when it is a
 * table) and its length; NULL when it is not one. The caller resets the
 * stack. */
static const char *entry_text(lua_State *L, size_t *n)
{
	if (!lua_istable(L, -1) || lua_rawgeti(L, -1, 1) != LUA_TSTRING)
		return NULL;
	return lua_tolstring(L, -1, n);
}

/* New state: take what carry_out wrote, where nothing newer holds it. */
static int carry_in(lua_State *L)
{
	const struct nlg_buf *in = lua_touserdata(L, 1);
	struct alerts *al = push_alerts(L); /* 2 */
	const char *text;
	size_t n;

	if (nlg_lua_unpack(L, in->data, in->len) < 0 || !lua_istable(L, 3))
		return 0;
	if (lua_rawgeti(L, 3, 1) == LUA_TTABLE) { /* 4: the pairs */
		for (lua_Integer i = 1; lua_rawgeti(L, 4, i) != LUA_TNIL; i++) {
			struct kent *e;
			uint64_t h;
			if ((text = entry_text(L, &n)) && n <= NAME_LEN + 1 + KEY_LEN &&
			    al->kt.n < ALERT_KEYS &&
			    !kt_find(&al->kt, text, n, h = hash_text(text, n)) &&
			    (e = kt_add(&al->kt, text, n, h, get_u64(L, -2, 2)))) {
				e->u.a.sent_ns = get_u64(L, -2, 3);
				e->u.a.every_ns = get_u64(L, -2, 4);
				e->u.a.pending = get_u64(L, -2, 5);
				e->u.a.sent = get_u64(L, -2, 6) != 0;
			}
			lua_settop(L, 4);
		}
	}
	lua_settop(L, 3);
	if (lua_rawgeti(L, 3, 2) != LUA_TTABLE ||			      /* 4: by name */
	    lua_getfield(L, LUA_REGISTRYINDEX, THRESHOLDS_KEY) != LUA_TTABLE) /* 5 */
		return 0;
	lua_pushnil(L);
	while (lua_next(L, 5)) {
		struct threshold *t = luaL_testudata(L, -2, THRESHOLD_MT);
		int self = lua_gettop(L) - 1;
		lua_pop(L, 1);
		if (!t || lua_getfield(L, 4, t->name) != LUA_TTABLE) { /* its keys */
			lua_settop(L, self);
			continue;
		}
		lua_getiuservalue(L, self, UV_KEYS); /* self + 2 */
		for (lua_Integer i = 1; lua_rawgeti(L, self + 1, i) != LUA_TNIL; i++) {
			struct kent *e;
			uint64_t h, state = 0;
			if ((text = entry_text(L, &n)) &&
			    (state = get_u64(L, -2, 3)) >= T_PENDING && n < KEY_LEN &&
			    state <= T_CLEARING && t->kt.n < t->max_keys &&
			    !kt_find(&t->kt, text, n, h = hash_text(text, n)) &&
			    (e = kt_add(&t->kt, text, n, h, get_u64(L, -2, 2)))) {
				e->u.t.state = (int)state;
				e->u.t.since_ns = get_u64(L, -2, 4);
				e->u.t.clear_ns = get_u64(L, -2, 5);
				lua_rawgeti(L, -2, 6);
				e->u.t.value = lua_tonumber(L, -1);
				lua_pop(L, 1);
				e->u.t.sent = get_u64(L, -2, 7) != 0;
				lua_pushvalue(L, -1); /* the text */
				lua_rawgeti(L, -3, 8);
				lua_rawset(L, self + 2);
			}
			lua_settop(L, self + 2);
		}
		lua_settop(L, self);
	}
	return 0;
}

int nlg_lua_alert_carry(lua_State *from, lua_State *to)
{
	struct nlg_buf buf;
	int rc = 0;

	nlg_buf_init(&buf);
	lua_pushcfunction(from, carry_out);
	lua_pushlightuserdata(from, &buf);
	if (lua_pcall(from, 1, 0, 0) != LUA_OK) {
		nlg_gw_log("reload: alert state not carried over: %s", lua_tostring(from, -1));
		lua_pop(from, 1);
		rc = -1;
	} else if (buf.len) {
		lua_pushcfunction(to, carry_in);
		lua_pushlightuserdata(to, &buf);
		if (lua_pcall(to, 1, 0, 0) != LUA_OK) {
			nlg_gw_log("reload: alert state not carried over: %s",
				   lua_tostring(to, -1));
			lua_pop(to, 1);
			rc = -1;
		}
	}
	nlg_buf_free(&buf);
	return rc;
}

void nlg_lua_alert_open(lua_State *L)
{
	static const luaL_Reg tmethods[] = {
	    {"update", t_update}, {"state", t_state}, {"firing", t_firing},
	    {"stats", t_stats},	  {NULL, NULL},
	};
	static const luaL_Reg nomethods[] = {{NULL, NULL}};

	nlg_lua_class(L, ALERTS_MT, nomethods, alerts_gc);
	nlg_lua_class(L, THRESHOLD_MT, tmethods, t_gc);
	push_alerts(L);
	lua_pushvalue(L, -1);
	lua_pushcclosure(L, l_alert, 1);
	lua_setfield(L, -3, "alert");
	lua_pushcclosure(L, l_threshold, 1);
	lua_setfield(L, -2, "threshold");
}
