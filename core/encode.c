/* Schema-driven encoding of C records: msgpack maps and JSON objects written
 * by hand (msgpack-c's packer for foreign packers, and as the reference),
 * and frames [tag, time, record]. The reverse path, a frame back to JSON for
 * `nlgate tail`, is in frame_json.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nlgate/encode.h"
#include "nlgate/record.h"

/* ---- growable buffer ---- */

void nlg_buf_init(struct nlg_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void nlg_buf_free(struct nlg_buf *b)
{
	if (!b)
		return;
	free(b->data);
	nlg_buf_init(b);
}

static int buf_grow(struct nlg_buf *b, size_t extra)
{
	size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (need < b->len)
		return -ENOMEM;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int nlg_buf_reserve(struct nlg_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	return buf_grow(b, extra);
}

int nlg_buf_append(struct nlg_buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n && buf_grow(b, n))
		return -ENOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* The packer's write callback: called once per packed item, so it is the
 * hot path of msgpack encoding. One compare in the common case. */
static inline int mp_write(void *data, const char *p, size_t n)
{
	struct nlg_buf *b = data;
	uint8_t *d;

	if (b->cap - b->len < n && buf_grow(b, n))
		return -1;
	d = b->data + b->len;
	b->len += n;
	/* Items are mostly 1-9 bytes: a libc memcpy call costs more than that. */
	if (n <= 16) {
		for (size_t i = 0; i < n; i++)
			d[i] = (uint8_t)p[i];
	} else {
		memcpy(d, p, n);
	}
	return 0;
}

void nlg_mp_init(msgpack_packer *pk, struct nlg_buf *b)
{
	msgpack_packer_init(pk, b, mp_write);
}

/* ---- field helpers shared by both encoders ---- */

static inline uint64_t rec_present(const struct nlg_schema *s, const void *rec)
{
	return *(const uint64_t *)((const char *)rec + s->present_off);
}

/* The enum's name, or NULL when v is past the end of the names. */
static const char *enum_name(const struct nlg_field *f, unsigned v)
{
	if (!f->names)
		return NULL;
	for (unsigned i = 0; i < v; i++)
		if (!f->names[i])
			return NULL;
	return f->names[v];
}

static const char hexdig[] = "0123456789abcdef";

/* ---- msgpack ---- */

static int mp_str(msgpack_packer *pk, const char *s, size_t n)
{
	return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

static int mp_flags(msgpack_packer *pk, const struct nlg_field *f, uint32_t v)
{
	unsigned n = (unsigned)__builtin_popcount(v), nnames = 0;
	int rc = msgpack_pack_array(pk, n);

	while (f->names && nnames < 32 && f->names[nnames])
		nnames++;
	for (unsigned bit = 0; v; bit++, v >>= 1) {
		if (!(v & 1))
			continue;
		if (bit < nnames)
			rc |= mp_str(pk, f->names[bit], strlen(f->names[bit]));
		else /* a bit with no name: its value, as for an unnamed enum */
			rc |= msgpack_pack_uint32(pk, 1u << bit);
	}
	return rc;
}

/* Strings, enums, flags, addresses: the less common, longer values. */
static int mp_value_text(msgpack_packer *pk, const struct nlg_field *f, const void *rec)
{
	const char *p = (const char *)rec + f->offset;

	switch (f->type) {
	case NLG_T_ENUM: {
		uint8_t v = *(const uint8_t *)p;
		const char *name = enum_name(f, v);
		if (!name)
			return msgpack_pack_uint8(pk, v);
		return mp_str(pk, name, strlen(name));
	}
	case NLG_T_FLAGS:
		return mp_flags(pk, f, nlg_field_flags(f, rec));
	case NLG_T_ADDR: {
		const struct nlg_addr *a = (const struct nlg_addr *)p;
		char text[INET6_ADDRSTRLEN];
		if (!a->family)
			return msgpack_pack_nil(pk);
		return mp_str(pk, text, nlg_addr_text(a, text));
	}
	case NLG_T_STR:
		return mp_str(pk, p, strnlen(p, f->size));
	case NLG_T_HEX: {
		/* In chunks through a small buffer: hex fields may be long. */
		char h[128];
		int rc = msgpack_pack_str(pk, f->size * 2u);
		for (size_t i = 0; i < f->size; i += sizeof(h) / 2) {
			size_t n = f->size - i < sizeof(h) / 2 ? f->size - i : sizeof(h) / 2;
			for (size_t j = 0; j < n; j++) {
				h[2 * j] = hexdig[(uint8_t)p[i + j] >> 4];
				h[2 * j + 1] = hexdig[(uint8_t)p[i + j] & 15];
			}
			rc |= msgpack_pack_str_body(pk, h, 2 * n);
		}
		return rc;
	}
	default:
		return msgpack_pack_nil(pk);
	}
}

/* The reference encoder, through the packer's callback one item at a time:
 * for packers that write elsewhere than an nlg_buf (nlg_mp_init's go the
 * direct way below, which must produce the same bytes: test_encode and
 * fuzz_nl_parse compare the two). */
static int mp_fields(msgpack_packer *pk, const struct nlg_schema *s, const void *rec,
		     uint64_t present)
{
	const struct nlg_field *f, *end = s->fields + s->nfields;
	int rc = 0;

	for (f = s->fields; f < end; f++) {
		const struct nlg_fkey *k = &s->keys[f - s->fields];
		const char *p = (const char *)rec + f->offset;
		if (f->group && !(present & f->group))
			continue;
		rc |= msgpack_pack_str_body(pk, k->mp, k->mp_len);
		switch (f->type) {
		case NLG_T_U8:
			rc |= msgpack_pack_uint8(pk, *(const uint8_t *)p);
			break;
		case NLG_T_U16:
			rc |= msgpack_pack_uint16(pk, *(const uint16_t *)p);
			break;
		case NLG_T_U32:
			rc |= msgpack_pack_uint32(pk, *(const uint32_t *)p);
			break;
		case NLG_T_U64:
			rc |= msgpack_pack_uint64(pk, *(const uint64_t *)p);
			break;
		case NLG_T_I32:
			rc |= msgpack_pack_int32(pk, *(const int32_t *)p);
			break;
		case NLG_T_I64:
			rc |= msgpack_pack_int64(pk, *(const int64_t *)p);
			break;
		case NLG_T_BOOL:
			rc |= *(const uint8_t *)p ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
			break;
		default:
			rc |= mp_value_text(pk, f, rec);
		}
	}
	return rc;
}

/* ---- msgpack written straight into an nlg_buf ----
 *
 * One reserve per record (the schema's bound, nlg_enc_mp_bound), then plain
 * stores: a callback per item was most of a record's cost. A key is copied
 * as a fixed KEY_COPY bytes (two vector moves, no length-driven memcpy),
 * past its own length; MP_SLACK in the bound covers that, and the next
 * write or the buffer's length makes it irrelevant. */

#define KEY_COPY 32 /* a fixstr head and a name of at most 31 bytes (schema.c) */
#define MP_SLACK KEY_COPY
_Static_assert(sizeof(((struct nlg_fkey *)0)->mp) >= KEY_COPY, "a key's array holds KEY_COPY");

static inline void st_be16(uint8_t *o, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(o, &v, 2);
}

static inline void st_be32(uint8_t *o, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(o, &v, 4);
}

static inline void st_be64(uint8_t *o, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(o, &v, 8);
}

/* msgpack's smallest form of an unsigned integer, as msgpack-c picks it.
 * Branches: a field's value mostly keeps its size from record to record,
 * and predicted branches measured faster than a branch-free table form. */
static inline uint8_t *w_uint(uint8_t *o, uint64_t v)
{
	if (v < 128) {
		o[0] = (uint8_t)v;
		return o + 1;
	}
	if (v < 256) {
		o[0] = 0xcc;
		o[1] = (uint8_t)v;
		return o + 2;
	}
	if (v < 65536) {
		o[0] = 0xcd;
		st_be16(o + 1, (uint16_t)v);
		return o + 3;
	}
	if (v <= UINT32_MAX) {
		o[0] = 0xce;
		st_be32(o + 1, (uint32_t)v);
		return o + 5;
	}
	o[0] = 0xcf;
	st_be64(o + 1, v);
	return o + 9;
}

/* Negative values take msgpack's int forms; the rest are unsigned. */
static inline uint8_t *w_int(uint8_t *o, int64_t v)
{
	if (v >= 0)
		return w_uint(o, (uint64_t)v);
	if (v >= -32) {
		o[0] = (uint8_t)v; /* negative fixint */
		return o + 1;
	}
	if (v >= INT8_MIN) {
		o[0] = 0xd0;
		o[1] = (uint8_t)v;
		return o + 2;
	}
	if (v >= INT16_MIN) {
		o[0] = 0xd1;
		st_be16(o + 1, (uint16_t)v);
		return o + 3;
	}
	if (v >= INT32_MIN) {
		o[0] = 0xd2;
		st_be32(o + 1, (uint32_t)v);
		return o + 5;
	}
	o[0] = 0xd3;
	st_be64(o + 1, (uint64_t)v);
	return o + 9;
}

/* A container or string header: fix form (fix | n below fixmax), else the
 * 8- (str only), 16- or 32-bit length form. */
static inline size_t head_len(size_t n, size_t fixmax, int has8)
{
	return n < fixmax ? 1 : has8 && n < 256 ? 2 : n < 65536 ? 3 : 5;
}

static inline uint8_t *w_head(uint8_t *o, size_t n, uint8_t fix, size_t fixmax, uint8_t m8,
			      uint8_t m16)
{
	if (n < fixmax) {
		o[0] = (uint8_t)(fix | n);
		return o + 1;
	}
	if (m8 && n < 256) {
		o[0] = m8;
		o[1] = (uint8_t)n;
		return o + 2;
	}
	if (n < 65536) {
		o[0] = m16;
		st_be16(o + 1, (uint16_t)n);
		return o + 3;
	}
	o[0] = (uint8_t)(m16 + 1); /* str32, array32, map32 follow their 16 */
	st_be32(o + 1, (uint32_t)n);
	return o + 5;
}

static inline uint8_t *w_str(uint8_t *o, const void *s, size_t n)
{
	o = w_head(o, n, 0xa0, 32, 0xd9, 0xda);
	memcpy(o, s, n);
	return o + n;
}

static uint8_t *w_flags(uint8_t *o, const struct nlg_field *f, uint32_t v)
{
	unsigned nnames = 0;

	o = w_head(o, (unsigned)__builtin_popcount(v), 0x90, 16, 0, 0xdc);
	while (f->names && nnames < 32 && f->names[nnames])
		nnames++;
	for (unsigned bit = 0; v; bit++, v >>= 1) {
		if (!(v & 1))
			continue;
		if (bit < nnames)
			o = w_str(o, f->names[bit], strlen(f->names[bit]));
		else
			o = w_uint(o, 1u << bit);
	}
	return o;
}

/* Strings, enums, flags, addresses: the less common, longer values. */
static uint8_t *w_value_text(uint8_t *o, const struct nlg_field *f, const void *rec)
{
	const char *p = (const char *)rec + f->offset;

	switch (f->type) {
	case NLG_T_ENUM: {
		uint8_t v = *(const uint8_t *)p;
		const char *name = enum_name(f, v);
		return name ? w_str(o, name, strlen(name)) : w_uint(o, v);
	}
	case NLG_T_FLAGS:
		return w_flags(o, f, nlg_field_flags(f, rec));
	case NLG_T_ADDR: {
		const struct nlg_addr *a = (const struct nlg_addr *)p;
		size_t n;
		if (!a->family) {
			*o = 0xc0;
			return o + 1;
		}
		/* The text in place after a fixstr head; the rare IPv6 text of
		 * 32 bytes or more moves over for str8's second head byte. */
		n = nlg_addr_text(a, (char *)o + 1);
		if (n < 32) {
			o[0] = (uint8_t)(0xa0 | n);
			return o + 1 + n;
		}
		memmove(o + 2, o + 1, n);
		o[0] = 0xd9;
		o[1] = (uint8_t)n;
		return o + 2 + n;
	}
	case NLG_T_STR:
		return w_str(o, p, strnlen(p, f->size));
	case NLG_T_HEX:
		o = w_head(o, f->size * 2u, 0xa0, 32, 0xd9, 0xda);
		for (size_t i = 0; i < f->size; i++) {
			*o++ = (uint8_t)hexdig[(uint8_t)p[i] >> 4];
			*o++ = (uint8_t)hexdig[(uint8_t)p[i] & 15];
		}
		return o;
	default:
		*o = 0xc0;
		return o + 1;
	}
}

size_t nlg_enc_mp_bound(const struct nlg_schema *s)
{
	/* the schema's bound, and the writers' overshoot past it */
	return (s->mp_max ? s->mp_max : nlg_schema_mp_bound(s)) + MP_SLACK;
}

_Static_assert(NLG_T_U8 == 0 && NLG_T_U16 == 1 && NLG_T_U32 == 2 && NLG_T_U64 == 3,
	       "the unsigned types come first: one compare finds them");

static int mp_record_direct(struct nlg_buf *b, const struct nlg_schema *s, const void *rec)
{
	uint64_t present = rec_present(s, rec);
	const struct nlg_field *f = s->fields, *end = f + s->nfields;
	const struct nlg_fkey *k = s->keys;
	size_t hl = head_len(s->nfields, 16, 0), n = 0;
	uint8_t *start, *o;

	if (nlg_buf_reserve(b, nlg_enc_mp_bound(s)))
		return -ENOMEM;
	/* The map's head wants the count of present fields: room for the
	 * longest head the schema can need, filled in after the fields. */
	start = b->data + b->len;
	o = start + hl;
	for (; f < end; f++, k++) {
		const char *p = (const char *)rec + f->offset;
		if (f->group && !(present & f->group))
			continue;
		n++;
		memcpy(o, k->mp, KEY_COPY);
		o += k->mp_len;
		/* Unsigned numbers, most of a record, share one inlined writer:
		 * a switch to a copy per width cost an indirect jump per field
		 * that mispredicted far more than these compares do. */
		if (f->type <= NLG_T_U64) {
			uint64_t v = f->type == NLG_T_U32   ? *(const uint32_t *)p
				     : f->type == NLG_T_U64 ? *(const uint64_t *)p
				     : f->type == NLG_T_U8  ? *(const uint8_t *)p
							    : *(const uint16_t *)p;
			o = w_uint(o, v);
			continue;
		}
		switch (f->type) {
		case NLG_T_I32:
			o = w_int(o, *(const int32_t *)p);
			break;
		case NLG_T_I64:
			o = w_int(o, *(const int64_t *)p);
			break;
		case NLG_T_BOOL:
			*o++ = *(const uint8_t *)p ? 0xc3 : 0xc2;
			break;
		default:
			o = w_value_text(o, f, rec);
		}
	}
	/* Absent groups may leave fewer fields than the head's form was
	 * chosen for: the body then moves back over the spare bytes. */
	if (head_len(n, 16, 0) < hl) {
		size_t body = (size_t)(o - start) - hl;
		uint8_t *h = w_head(start, n, 0x80, 16, 0, 0xde);
		memmove(h, start + hl, body);
		o = h + body;
	} else {
		w_head(start, n, 0x80, 16, 0, 0xde);
	}
	b->len += (size_t)(o - start);
	return 0;
}

int nlg_enc_mp_record(msgpack_packer *pk, const struct nlg_schema *s, const void *rec)
{
	uint64_t present;
	const struct nlg_field *f, *end = s->fields + s->nfields;
	uint32_t n = 0;

	if (pk->callback == mp_write)
		return mp_record_direct(pk->data, s, rec);
	present = rec_present(s, rec);
	for (f = s->fields; f < end; f++)
		n += !f->group | ((present & f->group) != 0);
	if (msgpack_pack_map(pk, n) | mp_fields(pk, s, rec, present))
		return -ENOMEM;
	return 0;
}

/* The timestamp ext's form for a time: 32 bits when the nanoseconds are 0
 * and the seconds fit, 64 when the seconds fit 34 bits, else 96 (as the spec
 * orders, and msgpack-c picks). Its length, head included. */
static inline size_t ts_len(uint64_t sec, uint64_t nsec)
{
	return sec >> 34 ? 15 : (nsec << 34 | sec) >> 32 ? 10 : 6;
}

/* [tag, time]'s head into o, exactly ts_len + tag + head bytes: array(3),
 * the tag, the timestamp ext (-1). */
static uint8_t *w_frame_head(uint8_t *o, const char *tag, size_t taglen, uint64_t time_ns)
{
	uint64_t sec = time_ns / 1000000000u, nsec = time_ns % 1000000000u;

	*o++ = 0x93;
	o = w_str(o, tag, taglen);
	switch (ts_len(sec, nsec)) {
	case 6:
		o[0] = 0xd6;
		o[1] = 0xff;
		st_be32(o + 2, (uint32_t)sec);
		return o + 6;
	case 10:
		o[0] = 0xd7;
		o[1] = 0xff;
		st_be64(o + 2, nsec << 34 | sec);
		return o + 10;
	default:
		o[0] = 0xc7;
		o[1] = 12;
		o[2] = 0xff;
		st_be32(o + 3, (uint32_t)nsec);
		st_be64(o + 7, sec);
		return o + 15;
	}
}

static size_t frame_head_len(size_t taglen, uint64_t time_ns)
{
	return 1 + head_len(taglen, 32, 1) + taglen +
	       ts_len(time_ns / 1000000000u, time_ns % 1000000000u);
}

int nlg_enc_mp_head(uint8_t *buf, size_t cap, const char *tag, size_t taglen, uint64_t time_ns)
{
	if (taglen > INT32_MAX - 32 || frame_head_len(taglen, time_ns) > cap)
		return -ENOSPC;
	return (int)(w_frame_head(buf, tag, taglen, time_ns) - buf);
}

int nlg_enc_mp_frame_head(msgpack_packer *pk, const char *tag, size_t taglen, uint64_t time_ns)
{
	msgpack_timestamp ts = {
	    .tv_sec = (int64_t)(time_ns / 1000000000u),
	    .tv_nsec = (uint32_t)(time_ns % 1000000000u),
	};
	int rc;

	if (pk->callback == mp_write) {
		struct nlg_buf *b = pk->data;
		if (taglen > SIZE_MAX - 32 || nlg_buf_reserve(b, frame_head_len(taglen, time_ns)))
			return -ENOMEM;
		b->len = (size_t)(w_frame_head(b->data + b->len, tag, taglen, time_ns) - b->data);
		return 0;
	}
	rc = msgpack_pack_array(pk, 3);
	rc |= mp_str(pk, tag, taglen);
	/* msgpack-c picks the timestamp 32/64/96 form as the spec orders. */
	rc |= msgpack_pack_timestamp(pk, &ts);
	return rc ? -ENOMEM : 0;
}

int nlg_enc_mp_frame(msgpack_packer *pk, const char *tag, size_t taglen, uint64_t time_ns,
		     const struct nlg_schema *s, const void *rec)
{
	int rc = nlg_enc_mp_frame_head(pk, tag, taglen, time_ns);

	return rc ? rc : nlg_enc_mp_record(pk, s, rec);
}

/* ---- JSON ---- */

static const char digits2[] = "00010203040506070809"
			      "10111213141516171819"
			      "20212223242526272829"
			      "30313233343536373839"
			      "40414243444546474849"
			      "50515253545556575859"
			      "60616263646566676869"
			      "70717273747576777879"
			      "80818283848586878889"
			      "90919293949596979899";

static const uint64_t pow10[20] = {
    1ull,
    10ull,
    100ull,
    1000ull,
    10000ull,
    100000ull,
    1000000ull,
    10000000ull,
    100000000ull,
    1000000000ull,
    10000000000ull,
    100000000000ull,
    1000000000000ull,
    10000000000000ull,
    100000000000000ull,
    1000000000000000ull,
    10000000000000000ull,
    100000000000000000ull,
    1000000000000000000ull,
    10000000000000000000ull,
};

/* Decimal digits of v at out (20 bytes suffice); returns the length. The
 * length comes first, so the digits go straight to their place, two per
 * division: no snprintf, no copy. */
static size_t u64_dec(uint64_t v, char *out)
{
	/* log10 from log2: bits * 1233 / 4096 undercounts by at most one. */
	unsigned bits = 64 - (unsigned)__builtin_clzll(v | 1);
	size_t n = (bits * 1233) >> 12;
	char *p;

	n += n < 20 && v >= pow10[n];
	n += !n;
	p = out + n;
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		*--p = digits2[d + 1];
		*--p = digits2[d];
	}
	if (v >= 10) {
		unsigned d = (unsigned)v * 2;
		*--p = digits2[d + 1];
		*--p = digits2[d];
	} else {
		*--p = (char)('0' + v);
	}
	return n;
}

static size_t i64_dec(int64_t v, char *out)
{
	if (v < 0) {
		out[0] = '-';
		return 1 + u64_dec((uint64_t)0 - (uint64_t)v, out + 1);
	}
	return u64_dec((uint64_t)v, out);
}

static int json_u64(struct nlg_buf *b, uint64_t v)
{
	if (nlg_buf_reserve(b, 20))
		return -ENOMEM;
	b->len += u64_dec(v, (char *)b->data + b->len);
	return 0;
}

static int json_i64(struct nlg_buf *b, int64_t v)
{
	if (nlg_buf_reserve(b, 21))
		return -ENOMEM;
	b->len += i64_dec(v, (char *)b->data + b->len);
	return 0;
}

/* Exported for frame_json.c; the static versions above stay so that the
 * record encoder can inline them (an exported function may be interposed
 * under -fPIC, so the compiler will not inline it). */
int nlg_json_u64(struct nlg_buf *b, uint64_t v)
{
	return json_u64(b, v);
}

int nlg_json_i64(struct nlg_buf *b, int64_t v)
{
	return json_i64(b, v);
}

int nlg_json_hex(struct nlg_buf *b, const void *data, size_t n)
{
	const uint8_t *p = data;

	if (n > (SIZE_MAX - 2) / 2 || nlg_buf_reserve(b, 2 * n + 2))
		return -ENOMEM;
	b->data[b->len++] = '"';
	for (size_t i = 0; i < n; i++) {
		b->data[b->len++] = (uint8_t)hexdig[p[i] >> 4];
		b->data[b->len++] = (uint8_t)hexdig[p[i] & 15];
	}
	b->data[b->len++] = '"';
	return 0;
}

static int json_lit(struct nlg_buf *b, const char *s)
{
	return nlg_buf_append(b, s, strlen(s));
}

int nlg_json_str(struct nlg_buf *b, const char *s, size_t n)
{
	uint8_t *o;

	if (n > (SIZE_MAX - 2) / 6 || nlg_buf_reserve(b, 6 * n + 2))
		return -ENOMEM;
	o = b->data + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*o++ = c;
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = (uint8_t)hexdig[c >> 4];
			*o++ = (uint8_t)hexdig[c & 15];
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
	return 0;
}

static int json_flags(struct nlg_buf *b, const struct nlg_field *f, uint32_t v)
{
	unsigned nnames = 0;
	int rc = nlg_buf_append(b, "[", 1), first = 1;

	while (f->names && nnames < 32 && f->names[nnames])
		nnames++;
	for (unsigned bit = 0; v && !rc; bit++, v >>= 1) {
		if (!(v & 1))
			continue;
		if (!first)
			rc |= nlg_buf_append(b, ",", 1);
		first = 0;
		if (bit < nnames)
			rc |= nlg_json_str(b, f->names[bit], strlen(f->names[bit]));
		else
			rc |= json_u64(b, 1u << bit);
	}
	return rc | nlg_buf_append(b, "]", 1);
}

static int json_value(struct nlg_buf *b, const struct nlg_field *f, const void *rec)
{
	const char *p = (const char *)rec + f->offset;

	switch (f->type) {
	case NLG_T_U8:
		return json_u64(b, *(const uint8_t *)p);
	case NLG_T_U16:
		return json_u64(b, *(const uint16_t *)p);
	case NLG_T_U32:
		return json_u64(b, *(const uint32_t *)p);
	case NLG_T_U64:
		return json_u64(b, *(const uint64_t *)p);
	case NLG_T_I32:
		return json_i64(b, *(const int32_t *)p);
	case NLG_T_I64:
		return json_i64(b, *(const int64_t *)p);
	case NLG_T_BOOL:
		return json_lit(b, *(const uint8_t *)p ? "true" : "false");
	case NLG_T_ENUM: {
		uint8_t v = *(const uint8_t *)p;
		const char *name = enum_name(f, v);
		return name ? nlg_json_str(b, name, strlen(name)) : json_u64(b, v);
	}
	case NLG_T_FLAGS:
		return json_flags(b, f, nlg_field_flags(f, rec));
	case NLG_T_ADDR: {
		const struct nlg_addr *a = (const struct nlg_addr *)p;
		char text[INET6_ADDRSTRLEN];
		if (!a->family)
			return json_lit(b, "null");
		return nlg_json_str(b, text, nlg_addr_text(a, text));
	}
	case NLG_T_STR:
		return nlg_json_str(b, p, strnlen(p, f->size));
	case NLG_T_HEX:
		return nlg_json_hex(b, p, f->size);
	}
	return json_lit(b, "null");
}

int nlg_enc_json_record(struct nlg_buf *b, const struct nlg_schema *s, const void *rec)
{
	uint64_t present = rec_present(s, rec);
	const struct nlg_field *f, *end = s->fields + s->nfields;
	size_t start = b->len;
	int rc = 0, first = 1;

	if (nlg_buf_append(b, "{", 1))
		return -ENOMEM;
	for (f = s->fields; f < end && !rc; f++) {
		const struct nlg_fkey *k;
		if (f->group && !(present & f->group))
			continue;
		k = &s->keys[f - s->fields];
		/* Room for ",", the whole key array and any number: the common
		 * fields then need no further check. */
		if (nlg_buf_reserve(b, 1 + sizeof(k->json) + 24)) {
			rc = -ENOMEM;
			break;
		}
		b->data[b->len] = ',';
		b->len += !first;
		first = 0;
		memcpy(b->data + b->len, k->json, sizeof(k->json));
		b->len += k->json_len;
		rc = json_value(b, f, rec);
	}
	if (!rc)
		rc = nlg_buf_append(b, "}", 1);
	if (rc) {
		b->len = start; /* never leave half an object behind */
		return -ENOMEM;
	}
	return 0;
}

int nlg_utf8_valid(const void *s, size_t n)
{
	const uint8_t *p = s, *end = p + n;

	while (p < end) {
		uint8_t c = *p;
		size_t len;
		uint32_t cp, min;

		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			len = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			len = 4, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if ((size_t)(end - p) < len)
			return 0;
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += len;
	}
	return 1;
}
