/* One msgpack frame [tag, time, record] rendered back as a JSON line, for
 * `nlgate tail`: a byte-level pre-scan bounds what msgpack-c may allocate,
 * then msgpack-c builds the object and it is written out as JSON. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/encode.h"
/* Seconds with 9 decimals, exact: no trip through a double. */
static int json_time(struct nlg_buf *b, int64_t sec, uint32_t nsec)
{
	char frac[10];
	int rc = 0;

	if (nsec >= 1000000000u)
		nsec = 999999999u;
	if (sec < 0 && nsec) { /* -1 s + 0.25 s is -0.75 s */
		sec += 1;
		nsec = 1000000000u - nsec;
		rc = nlg_buf_append(b, "-", 1);
		if (sec < 0)
			sec = -sec;
	}
	rc = rc ? rc : nlg_json_i64(b, sec);
	frac[0] = '.';
	for (int i = 9; i >= 1; i--) {
		frac[i] = (char)('0' + nsec % 10);
		nsec /= 10;
	}
	return rc ? rc : nlg_buf_append(b, frac, sizeof(frac));
}

static int json_lit(struct nlg_buf *b, const char *s)
{
	return nlg_buf_append(b, s, strlen(s));
}

static int json_base64(struct nlg_buf *b, const void *data, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = data;
	size_t i;

	if (n > SIZE_MAX / 2 || nlg_buf_reserve(b, (n + 2) / 3 * 4 + 2))
		return -ENOMEM;
	b->data[b->len++] = '"';
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		b->data[b->len++] = (uint8_t)tab[v >> 18];
		b->data[b->len++] = (uint8_t)tab[(v >> 12) & 63];
		b->data[b->len++] = (uint8_t)tab[(v >> 6) & 63];
		b->data[b->len++] = (uint8_t)tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		b->data[b->len++] = (uint8_t)tab[v >> 18];
		b->data[b->len++] = (uint8_t)tab[(v >> 12) & 63];
		b->data[b->len++] = i + 1 < n ? (uint8_t)tab[(v >> 6) & 63] : '=';
		b->data[b->len++] = '=';
	}
	b->data[b->len++] = '"';
	return 0;
}

/* The shortest text that reads back as the same value (as float for a
 * float32), so 0.1 prints as 0.1, not 0.10000000000000001. */
static int json_double(struct nlg_buf *b, double d, int is_float)
{
	char tmp[40];
	int n = 0;

	if (!isfinite(d))
		return json_lit(b, "null"); /* JSON has no NaN or infinity */
	for (int prec = 1; prec <= 17; prec++) {
		double back;
		n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		back = strtod(tmp, NULL);
		if (is_float ? (float)back == (float)d : back == d)
			break;
	}
	if (n <= 0 || (size_t)n >= sizeof(tmp) - 2)
		return json_lit(b, "null");
	/* Keep it a float for readers that care: "1" would read as an int. */
	if (!strpbrk(tmp, ".eEn"))
		tmp[n++] = '.', tmp[n++] = '0';
	return nlg_buf_append(b, tmp, (size_t)n);
}

/* Nesting bound: a hostile or corrupt frame must not exhaust the stack. */
#define JSON_MAX_DEPTH 64
/* A key that is not a string is rendered and then quoted, so a key inside a
 * key is escaped twice: its backslashes double at each level, and 25 levels
 * of one-byte maps made gigabytes. Such a key spends this much of the depth
 * budget, which lets keys nest 3 deep. */
#define JSON_KEY_DEPTH 16

static int json_object(struct nlg_buf *b, const msgpack_object *o, int depth);

/* JSON keys must be strings: other key types are rendered, then quoted. */
static int json_key(struct nlg_buf *b, const msgpack_object *k, int depth)
{
	struct nlg_buf tmp;
	int rc;

	if (k->type == MSGPACK_OBJECT_STR)
		return nlg_json_str(b, k->via.str.ptr, k->via.str.size);
	nlg_buf_init(&tmp);
	rc = json_object(&tmp, k, depth + JSON_KEY_DEPTH);
	if (!rc)
		rc = nlg_json_str(b, (const char *)tmp.data, tmp.len);
	nlg_buf_free(&tmp);
	return rc;
}

static int json_object(struct nlg_buf *b, const msgpack_object *o, int depth)
{
	int rc = 0;

	if (depth > JSON_MAX_DEPTH)
		return -EPROTO;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_lit(b, "null");
	case MSGPACK_OBJECT_BOOLEAN:
		return json_lit(b, o->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return nlg_json_u64(b, o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return nlg_json_i64(b, o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
		return json_double(b, o->via.f64, 1);
	case MSGPACK_OBJECT_FLOAT64:
		return json_double(b, o->via.f64, 0);
	case MSGPACK_OBJECT_STR:
		return nlg_json_str(b, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_base64(b, o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		rc = nlg_buf_append(b, "[", 1);
		for (uint32_t i = 0; i < o->via.array.size && !rc; i++) {
			if (i)
				rc = nlg_buf_append(b, ",", 1);
			rc = rc ? rc : json_object(b, &o->via.array.ptr[i], depth + 1);
		}
		return rc ? rc : nlg_buf_append(b, "]", 1);
	case MSGPACK_OBJECT_MAP:
		rc = nlg_buf_append(b, "{", 1);
		for (uint32_t i = 0; i < o->via.map.size && !rc; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (i)
				rc = nlg_buf_append(b, ",", 1);
			rc = rc ? rc : json_key(b, &kv->key, depth + 1);
			rc = rc ? rc : nlg_buf_append(b, ":", 1);
			rc = rc ? rc : json_object(b, &kv->val, depth + 1);
		}
		return rc ? rc : nlg_buf_append(b, "}", 1);
	case MSGPACK_OBJECT_EXT: {
		msgpack_timestamp ts;
		char head[32];
		int n;
		if (msgpack_object_to_timestamp(o, &ts))
			return json_time(b, ts.tv_sec, ts.tv_nsec);
		n = snprintf(head, sizeof(head), "{\"ext\":%d,\"hex\":", (int)o->via.ext.type);
		rc = nlg_buf_append(b, head, (size_t)n);
		rc = rc ? rc : nlg_json_hex(b, o->via.ext.ptr, o->via.ext.size);
		return rc ? rc : nlg_buf_append(b, "}", 1);
	}
	}
	return json_lit(b, "null");
}

/* A frame always starts with a 3-element array and a str tag. Checking the
 * first bytes lets garbage fail at once instead of looking "incomplete"
 * (a bogus array32 header would otherwise wait for gigabytes). */
static int frame_prefix_ok(const uint8_t *buf, size_t len)
{
	size_t i = 1;

	if (buf[0] == 0xdc)
		i = 3;
	else if (buf[0] == 0xdd)
		i = 5;
	else if (buf[0] != 0x93)
		return 0;
	/* array16/32 (non-canonical, but legal) must still say 3 */
	for (size_t j = 1; j < i && j < len; j++)
		if (buf[j] != (j + 1 == i ? 3 : 0))
			return 0;
	if (len > i) {
		uint8_t t = buf[i];
		if (!((t >= 0xa0 && t <= 0xbf) || t == 0xd9 || t == 0xda || t == 0xdb))
			return 0;
	}
	return 1;
}

/* Frames bigger than this are refused rather than waited for. */
#define FRAME_MAX (64u << 20)

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

/* Walk one msgpack object without building it: its length, 0 if more bytes
 * are needed, -1 if it is not msgpack. msgpack-c allocates for a container's
 * declared size before its elements arrive, so a bogus map32 header would
 * cost gigabytes; here a count only counts once the bytes are present.
 *
 *   head byte → fixed part (hdr bytes) → body (skip bytes) + items to walk */
static int64_t mp_scan(const uint8_t *p, size_t len)
{
	uint64_t pending = 1, off = 0;

	while (pending--) {
		uint8_t t;
		int hdr = 0;	/* size/count bytes after the type byte */
		uint64_t n = 0; /* bytes to skip, or items to walk */
		int kind = 0;	/* 0 skip fixed, 1 skip n, 2 n items, 3 2n items */
		uint64_t fixed = 0, extra = 0;

		if (off >= len)
			return 0;
		t = p[off++];
		if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
			continue;
		if (t <= 0x8f) {
			kind = 3, n = t & 15;
		} else if (t <= 0x9f) {
			kind = 2, n = t & 15;
		} else if (t <= 0xbf) {
			kind = 1, n = t & 31;
		} else {
			switch (t) {
			case 0xc4:
			case 0xc5:
			case 0xc6: /* bin 8/16/32 */
				kind = 1, hdr = 1 << (t - 0xc4);
				break;
			case 0xc7:
			case 0xc8:
			case 0xc9: /* ext 8/16/32, then a type byte */
				kind = 1, hdr = 1 << (t - 0xc7), extra = 1;
				break;
			case 0xca:
				fixed = 4;
				break;
			case 0xcb:
				fixed = 8;
				break;
			case 0xcc:
			case 0xd0:
				fixed = 1;
				break;
			case 0xcd:
			case 0xd1:
				fixed = 2;
				break;
			case 0xce:
			case 0xd2:
				fixed = 4;
				break;
			case 0xcf:
			case 0xd3:
				fixed = 8;
				break;
			case 0xd4:
			case 0xd5:
			case 0xd6:
			case 0xd7:
			case 0xd8: /* fixext */
				fixed = 1 + (1u << (t - 0xd4));
				break;
			case 0xd9:
			case 0xda:
			case 0xdb: /* str 8/16/32 */
				kind = 1, hdr = 1 << (t - 0xd9);
				break;
			case 0xdc:
			case 0xdd:
				kind = 2, hdr = 2 << (t - 0xdc);
				break;
			case 0xde:
			case 0xdf:
				kind = 3, hdr = 2 << (t - 0xde);
				break;
			default: /* 0xc1, never used */
				return -1;
			}
		}
		if (len - off < (uint64_t)hdr)
			return 0;
		if (hdr)
			n = be(p + off, hdr);
		off += (uint64_t)hdr;
		if (kind == 0)
			n = fixed;
		if (kind <= 1) {
			n += extra;
			if (n > FRAME_MAX)
				return -1;
			if (len - off < n)
				return 0;
			off += n;
			continue;
		}
		if (kind == 3)
			n *= 2;
		/* Every item takes a byte at least. */
		if (n > FRAME_MAX)
			return -1;
		pending += n;
		if (pending > len - off)
			return 0;
	}
	return (int64_t)off;
}

int nlg_frame_to_json(const uint8_t *buf, size_t len, struct nlg_buf *out)
{
	msgpack_unpacked u;
	msgpack_timestamp ts;
	const msgpack_object *a;
	size_t off = 0, start = out->len;
	int64_t whole;
	int rc;

	if (!len)
		return 0;
	if (!frame_prefix_ok(buf, len))
		return -EPROTO;
	whole = mp_scan(buf, len < FRAME_MAX ? len : FRAME_MAX);
	if (whole < 0 || (whole == 0 && len >= FRAME_MAX))
		return -EPROTO;
	if (whole == 0)
		return 0;
	msgpack_unpacked_init(&u);
	switch (msgpack_unpack_next(&u, (const char *)buf, (size_t)whole, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
	case MSGPACK_UNPACK_EXTRA_BYTES:
		break;
	case MSGPACK_UNPACK_CONTINUE:
		msgpack_unpacked_destroy(&u);
		return 0;
	default:
		/* PARSE_ERROR, and NOMEM_ERROR, which msgpack-c also returns for
		 * nesting deeper than its fixed stack: a frame is never that. */
		msgpack_unpacked_destroy(&u);
		return -EPROTO;
	}
	a = &u.data;
	if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 3 ||
	    a->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
	    !msgpack_object_to_timestamp(&a->via.array.ptr[1], &ts) || off > INT32_MAX) {
		msgpack_unpacked_destroy(&u);
		return -EPROTO;
	}
	rc = json_lit(out, "{\"tag\":");
	rc = rc ? rc
		: nlg_json_str(out, a->via.array.ptr[0].via.str.ptr,
			       a->via.array.ptr[0].via.str.size);
	rc = rc ? rc : json_lit(out, ",\"time\":");
	rc = rc ? rc : json_time(out, ts.tv_sec, ts.tv_nsec);
	rc = rc ? rc : json_lit(out, ",\"record\":");
	rc = rc ? rc : json_object(out, &a->via.array.ptr[2], 1);
	rc = rc ? rc : nlg_buf_append(out, "}", 1);
	msgpack_unpacked_destroy(&u);
	if (rc) {
		out->len = start;
		return rc;
	}
	return (int)off;
}
