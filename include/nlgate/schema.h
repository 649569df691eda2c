/* One schema table per record kind: field name, type, offset, description.
 * The Lua view, the msgpack and JSON encoders and `nlgate fields` all walk it,
 * so a field is named in exactly one place. */
#ifndef NLGATE_SCHEMA_H
#define NLGATE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

enum nlg_ftype {
	NLG_T_U8,
	NLG_T_U16,
	NLG_T_U32,
	NLG_T_U64,
	NLG_T_I32,
	NLG_T_I64,
	NLG_T_BOOL,  /* uint8_t, 0 or 1 */
	NLG_T_ENUM,  /* uint8_t index into field->names; out of range → its number */
	NLG_T_ADDR,  /* struct nlg_addr, rendered as text ("127.0.0.1", "::1") */
	NLG_T_STR,   /* char[size], NUL-terminated */
	NLG_T_FLAGS, /* bitmask of 1, 2 or 4 bytes (the field's size), rendered as "A|B|C"
		      * using field->names by bit: nlg_field_flags() reads it */
	NLG_T_HEX,   /* uint8_t[size], rendered as lowercase hex text */
};

struct nlg_field {
	const char *name;
	enum nlg_ftype type;
	uint16_t offset;
	uint16_t size;		  /* bytes of storage in the record */
	uint64_t group;		  /* 0: always present; else a bit of the record's `present` */
	const char *const *names; /* NLG_T_ENUM / NLG_T_FLAGS names, NULL-terminated */
	const char *desc;	  /* one line, with the unit */
};

/* Pre-encoded key bytes, built once at start-up (not per record). */
struct nlg_fkey {
	uint8_t mp[40]; /* msgpack fixstr header + name (at most 31 bytes) */
	uint8_t mp_len;
	uint8_t json[40]; /* "name": */
	uint8_t json_len;
};

struct nlg_schema {
	const char *kind; /* "sock", "ct", ... */
	const char *desc;
	const struct nlg_field *fields;
	size_t nfields;
	size_t rec_size;
	size_t present_off;    /* offset of the uint64_t `present` bitmask */
	struct nlg_fkey *keys; /* nfields entries, filled by nlg_schema_init() */
	size_t mp_max;	       /* nlg_schema_mp_bound, set with the keys (0: not yet) */
};

/* A row of a schema table over struct type st: NLG_FIELD(struct x, "name",
 * NLG_T_U64, member, group, "desc"). Counter tables use it with group 0. */
#define NLG_FIELD(st, n, t, member, grp, d)                                                        \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(st, member),                              \
		.size = sizeof(((st *)0)->member), .group = grp, .desc = d                         \
	}

/* Every record struct starts with this, so generic code can find `present`. */
#define NLG_RECORD_HEAD uint64_t present

/* The registry of kinds: the built-in record kinds (sock, ct, ...) and
 * every kind registered since (a source's or output's counters, a test's
 * fake records). nlg_schema_init() registers the built-ins and pre-encodes
 * their keys once (pthread_once: safe from any thread); register other kinds
 * before any worker thread starts. */
void nlg_schema_init(void);
/* Add a kind and build its key bytes; a kind already registered (same
 * pointer) is a no-op. 0, -EEXIST (another kind of that name), -ENOSPC. */
int nlg_schema_register(struct nlg_schema *s);
/* The i-th kind (registration order), NULL past the end. */
const struct nlg_schema *nlg_schema_at(size_t i);
const struct nlg_schema *nlg_schema_find(const char *kind);
/* The most bytes a record of s takes as a msgpack map (its keys built):
 * what the encoder reserves, computed once at registration (mp_max). */
size_t nlg_schema_mp_bound(const struct nlg_schema *s);
/* Index of the field called name, or -1. */
int nlg_schema_field(const struct nlg_schema *s, const char *name);

static inline int nlg_field_present(const struct nlg_schema *s, const struct nlg_field *f,
				    const void *rec)
{
	if (!f->group)
		return 1;
	return (*(const uint64_t *)((const char *)rec + s->present_off) & f->group) != 0;
}

/* An NLG_T_FLAGS field's bits, whatever its width (tcp_flags is a byte). */
static inline uint32_t nlg_field_flags(const struct nlg_field *f, const void *rec)
{
	const char *p = (const char *)rec + f->offset;

	if (f->size == 1)
		return *(const uint8_t *)p;
	if (f->size == 2)
		return *(const uint16_t *)p;
	return *(const uint32_t *)p;
}

/* Names several kinds share, NULL-terminated: address families by AF_*
 * number ("inet", "inet6"), IP protocols by number ("tcp", "icmpv6", ...). */
extern const char *const nlg_family_names[];
extern const char *const nlg_ipproto_names[];

/* The type's short name ("u32", "addr", ...), for `nlgate fields`. */
const char *nlg_ftype_name(enum nlg_ftype t);
/* Read an integer-like field (U*, I*, BOOL, ENUM, FLAGS) widened to 64 bits. */
int64_t nlg_field_int(const struct nlg_field *f, const void *rec);
/* Render a field as text into buf (for ADDR, ENUM, FLAGS, HEX, STR; numbers too). */
size_t nlg_field_text(const struct nlg_field *f, const void *rec, char *buf, size_t len);

#endif
