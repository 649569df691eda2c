/* The Fluentd Forward protocol's bytes: PackedForward framing, EventTime,
 * chunk ids, the handshake's sha512 digests (libcrypto), and a small strict
 * reader for what a server sends (HELO, PONG, ack). See forward.h. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "nlgate/forward.h"

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void nlg_fwd_entry_head(uint8_t out[NLG_FWD_ENTRY_HEAD], uint64_t time_ns)
{
	out[0] = 0x92; /* [time, record] */
	out[1] = 0xd7; /* fixext 8 */
	out[2] = 0x00; /* ext type 0: EventTime */
	be32(out + 3, (uint32_t)(time_ns / 1000000000u));
	be32(out + 7, (uint32_t)(time_ns % 1000000000u));
}

int nlg_fwd_msg_head(uint8_t *out, const char *tag, size_t taglen, size_t elen)
{
	uint8_t *p = out;

	if (taglen > NLG_FWD_TAG_MAX || elen > UINT32_MAX)
		return -EINVAL;
	*p++ = 0x93;
	if (taglen < 32) {
		*p++ = (uint8_t)(0xa0 | taglen);
	} else if (taglen < 256) {
		*p++ = 0xd9;
		*p++ = (uint8_t)taglen;
	} else {
		*p++ = 0xda;
		*p++ = (uint8_t)(taglen >> 8);
		*p++ = (uint8_t)taglen;
	}
	memcpy(p, tag, taglen);
	p += taglen;
	/* bin, not str: entries are msgpack, not UTF-8 (both are accepted). */
	if (elen < 256) {
		*p++ = 0xc4;
		*p++ = (uint8_t)elen;
	} else if (elen < 65536) {
		*p++ = 0xc5;
		*p++ = (uint8_t)(elen >> 8);
		*p++ = (uint8_t)elen;
	} else {
		*p++ = 0xc6;
		be32(p, (uint32_t)elen);
		p += 4;
	}
	return (int)(p - out);
}

size_t nlg_fwd_msg_option(uint8_t *out, uint32_t size, const char *id)
{
	uint8_t *p = out;

	*p++ = id ? 0x82 : 0x81;
	*p++ = 0xa4;
	memcpy(p, "size", 4);
	p += 4;
	if (size < 128) {
		*p++ = (uint8_t)size;
	} else if (size < 65536) {
		*p++ = 0xcd;
		*p++ = (uint8_t)(size >> 8);
		*p++ = (uint8_t)size;
	} else {
		*p++ = 0xce;
		be32(p, size);
		p += 4;
	}
	if (id) {
		*p++ = 0xa5;
		memcpy(p, "chunk", 5);
		p += 5;
		*p++ = (uint8_t)(0xa0 | NLG_FWD_ID_LEN);
		memcpy(p, id, NLG_FWD_ID_LEN);
		p += NLG_FWD_ID_LEN;
	}
	return (size_t)(p - out);
}

void nlg_fwd_chunk_id(char *out, const uint8_t raw[16])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int o = 0;

	for (int i = 0; i < 16; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16;
		if (i + 1 < 16)
			v |= (uint32_t)raw[i + 1] << 8;
		if (i + 2 < 16)
			v |= raw[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < 16 ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < 16 ? b64[v & 63] : '=';
	}
	out[o] = 0;
}

void nlg_fwd_random(uint8_t *p, size_t n)
{
	ssize_t r = getrandom(p, n, GRND_NONBLOCK);

	if (r < 0 || (size_t)r < n) {
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = (uint8_t)x;
		}
	}
}

int nlg_fwd_digest(char *hex, const void *a, size_t alen, const void *b, size_t blen, const void *c,
		   size_t clen, const void *d, size_t dlen)
{
	static const char digits[] = "0123456789abcdef";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok;

	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) && EVP_DigestUpdate(ctx, a, alen) &&
	     EVP_DigestUpdate(ctx, b, blen) && EVP_DigestUpdate(ctx, c, clen) &&
	     EVP_DigestUpdate(ctx, d, dlen) && EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen != 64)
		return -EIO;
	for (unsigned i = 0; i < 64; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[128] = 0;
	return 0;
}

/* ---- reading the server's messages ----
 *
 * A hand-written reader rather than msgpack-c's unpacker: it allocates
 * nothing (an array header claiming 2^32 elements costs the unpacker that
 * much memory before a single element arrives), needs the whole message in
 * the buffer before it looks at it, and knows only what a server may say. */

enum { V_NIL, V_BOOL, V_INT, V_OTHER, V_STR, V_BIN, V_ARRAY, V_MAP };

struct cur {
	const uint8_t *p, *end;
};

struct val {
	int type;
	uint64_t n; /* STR, BIN: bytes; ARRAY, MAP: count; BOOL: value */
	const uint8_t *data;
};

static uint64_t rd_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* One value's header (and a scalar's payload): 1, 0 incomplete, -1 not
 * msgpack (0xc1). */
static int rd_head(struct cur *c, struct val *v)
{
	size_t avail = (size_t)(c->end - c->p);
	uint8_t b;
	int lenb = 0, skip = 0;

	if (!avail)
		return 0;
	b = *c->p;
	v->n = 0;
	v->data = NULL;
	if (b <= 0x7f || b >= 0xe0) {
		v->type = V_INT;
		c->p++;
		return 1;
	}
	if (b >= 0x80 && b <= 0x8f) {
		v->type = V_MAP;
		v->n = b & 0x0f;
		c->p++;
		return 1;
	}
	if (b >= 0x90 && b <= 0x9f) {
		v->type = V_ARRAY;
		v->n = b & 0x0f;
		c->p++;
		return 1;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		v->type = V_STR;
		v->n = b & 0x1f;
		lenb = 0;
		goto payload;
	}
	switch (b) {
	case 0xc0:
		v->type = V_NIL;
		c->p++;
		return 1;
	case 0xc2:
	case 0xc3:
		v->type = V_BOOL;
		v->n = b == 0xc3;
		c->p++;
		return 1;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		v->type = V_BIN;
		lenb = 1 << (b - 0xc4);
		goto payload;
	case 0xc7:
	case 0xc8:
	case 0xc9:
		v->type = V_OTHER; /* ext: length, type byte, data */
		lenb = 1 << (b - 0xc7);
		skip = 1;
		goto payload;
	case 0xca:
	case 0xcb:
		v->type = V_OTHER;
		skip = b == 0xca ? 4 : 8;
		break;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		v->type = V_INT;
		skip = 1 << ((b - 0xcc) & 3);
		break;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		v->type = V_OTHER; /* fixext: type byte + 1..16 */
		skip = 1 + (1 << (b - 0xd4));
		break;
	case 0xd9:
	case 0xda:
	case 0xdb:
		v->type = V_STR;
		lenb = 1 << (b - 0xd9);
		goto payload;
	case 0xdc:
	case 0xdd:
	case 0xde:
	case 0xdf:
		if (avail < 1u + (b & 1 ? 4 : 2))
			return 0;
		v->type = b <= 0xdd ? V_ARRAY : V_MAP;
		v->n = rd_be(c->p + 1, b & 1 ? 4 : 2);
		c->p += 1 + (b & 1 ? 4 : 2);
		return 1;
	default: /* 0xc1: never used */
		return -1;
	}
	if (avail < 1u + (size_t)skip)
		return 0;
	c->p += 1 + skip;
	return 1;
payload:
	/* str/bin/ext: 1 + lenb length bytes (+ ext's type byte), then n bytes. */
	if (avail < 1u + (size_t)lenb)
		return 0;
	if (lenb)
		v->n = rd_be(c->p + 1, lenb);
	if (avail - 1 - (size_t)lenb < (size_t)skip ||
	    avail - 1 - (size_t)lenb - (size_t)skip < v->n)
		return 0;
	v->data = c->p + 1 + lenb + skip;
	c->p = v->data + v->n;
	return 1;
}

#define MAX_DEPTH 8

/* Past one whole value: 1, 0 incomplete, -1 bad. Each element takes at
 * least a byte, so a huge count runs out of buffer, not of time. */
static int rd_skip(struct cur *c, int depth)
{
	struct val v;
	int rc;

	if (depth > MAX_DEPTH)
		return -1;
	if ((rc = rd_head(c, &v)) <= 0)
		return rc;
	if (v.type == V_ARRAY || v.type == V_MAP) {
		uint64_t n = v.type == V_MAP ? 2 * v.n : v.n;
		for (uint64_t i = 0; i < n; i++)
			if ((rc = rd_skip(c, depth + 1)) <= 0)
				return rc;
	}
	return 1;
}

/* A text field: str or bin, nil as empty. 1, or -1 for another type. */
static int rd_text(struct cur *c, const char **s, size_t *n)
{
	struct val v;

	if (rd_head(c, &v) <= 0)
		return -1;
	if (v.type == V_NIL) {
		*s = "";
		*n = 0;
		return 1;
	}
	if (v.type != V_STR && v.type != V_BIN)
		return -1;
	*s = (const char *)v.data;
	*n = (size_t)v.n;
	return 1;
}

static int key_is(const char *k, size_t kn, const char *want)
{
	return kn == strlen(want) && !memcmp(k, want, kn);
}

/* {"nonce": .., "auth": .., "keepalive": ..}; other keys ignored. */
static int rd_helo(struct cur *c, struct nlg_fwd_reply *r)
{
	struct val v;

	r->nonce = r->auth = (const uint8_t *)"";
	r->keepalive = 1;
	if (rd_head(c, &v) <= 0)
		return -1;
	if (v.type == V_NIL)
		return 1;
	if (v.type != V_MAP)
		return -1;
	for (uint64_t i = 0; i < v.n; i++) {
		const char *k, *s;
		size_t kn, sn;
		struct val b;

		if (rd_text(c, &k, &kn) < 0)
			return -1;
		if (key_is(k, kn, "nonce") || key_is(k, kn, "auth")) {
			if (rd_text(c, &s, &sn) < 0)
				return -1;
			if (k[0] == 'n') {
				r->nonce = (const uint8_t *)s;
				r->nonce_len = sn;
			} else {
				r->auth = (const uint8_t *)s;
				r->auth_len = sn;
			}
		} else if (key_is(k, kn, "keepalive")) {
			if (rd_head(c, &b) <= 0 || (b.type != V_BOOL && b.type != V_NIL))
				return -1;
			r->keepalive = b.type == V_NIL || b.n;
		} else if (rd_skip(c, 2) <= 0) {
			return -1;
		}
	}
	return 1;
}

static int rd_pong(struct cur *c, struct nlg_fwd_reply *r)
{
	struct val b;

	if (rd_head(c, &b) <= 0 || b.type != V_BOOL)
		return -1;
	r->ok = (int)b.n;
	if (rd_text(c, &r->reason, &r->reason_len) < 0 || rd_text(c, &r->host, &r->host_len) < 0 ||
	    rd_text(c, &r->digest, &r->digest_len) < 0)
		return -1;
	return 1;
}

int nlg_fwd_parse_reply(const uint8_t *buf, size_t len, struct nlg_fwd_reply *r)
{
	struct cur c = {buf, buf + (len < NLG_FWD_REPLY_MAX ? len : NLG_FWD_REPLY_MAX)};
	struct val v;
	const char *s;
	size_t n, total;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = rd_skip(&c, 0);
	if (rc < 0)
		return -EPROTO;
	if (rc == 0)
		return len >= NLG_FWD_REPLY_MAX ? -EPROTO : 0;
	total = (size_t)(c.p - buf);
	c = (struct cur){buf, buf + total};
	rd_head(&c, &v);
	if (v.type == V_MAP) {
		for (uint64_t i = 0; i < v.n; i++) {
			if (rd_text(&c, &s, &n) < 0)
				return -EPROTO;
			if (key_is(s, n, "ack")) {
				if (rd_text(&c, &r->ack, &r->ack_len) < 0)
					return -EPROTO;
				r->kind = NLG_FWD_ACK;
			} else if (rd_skip(&c, 1) <= 0) {
				return -EPROTO;
			}
		}
		return r->kind == NLG_FWD_ACK ? (int)total : -EPROTO;
	}
	if (v.type != V_ARRAY || !v.n || rd_text(&c, &s, &n) < 0)
		return -EPROTO;
	if (v.n == 2 && key_is(s, n, "HELO")) {
		r->kind = NLG_FWD_HELO;
		rc = rd_helo(&c, r);
	} else if (v.n == 5 && key_is(s, n, "PONG")) {
		r->kind = NLG_FWD_PONG;
		rc = rd_pong(&c, r);
	} else {
		rc = -1;
	}
	return rc < 0 ? -EPROTO : (int)total;
}

/* ---- the handshake ---- */

static int pack_str(msgpack_packer *pk, const void *s, size_t n)
{
	return msgpack_pack_str_with_body(pk, s, n);
}

int nlg_fwd_ping(struct nlg_buf *out, const struct nlg_fwd_reply *helo, const char *self_host,
		 const char *salt, const char *key, const char *user, const char *password)
{
	char digest[129], pw[129] = "";
	msgpack_packer pk;
	int rc;

	rc = nlg_fwd_digest(digest, salt, strlen(salt), self_host, strlen(self_host), helo->nonce,
			    helo->nonce_len, key, strlen(key));
	if (rc < 0)
		return rc;
	/* Username and password only for a server that asks (a salt in
	 * "auth"), as Fluentd's out_forward does. */
	if (helo->auth_len &&
	    (rc = nlg_fwd_digest(pw, helo->auth, helo->auth_len, user, strlen(user), password,
				 strlen(password), "", 0)) < 0)
		return rc;
	nlg_mp_init(&pk, out);
	rc = msgpack_pack_array(&pk, 6);
	rc |= pack_str(&pk, "PING", 4);
	rc |= pack_str(&pk, self_host, strlen(self_host));
	rc |= pack_str(&pk, salt, strlen(salt));
	rc |= pack_str(&pk, digest, 128);
	rc |= pack_str(&pk, helo->auth_len ? user : "", helo->auth_len ? strlen(user) : 0);
	rc |= pack_str(&pk, pw, strlen(pw));
	return rc ? -ENOMEM : 0;
}

int nlg_fwd_pong_ok(const struct nlg_fwd_reply *pong, const char *salt, const uint8_t *nonce,
		    size_t nonce_len, const char *key)
{
	char want[129];
	unsigned diff = 0;

	if (nlg_fwd_digest(want, salt, strlen(salt), pong->host, pong->host_len, nonce, nonce_len,
			   key, strlen(key)) < 0)
		return -EIO;
	if (pong->digest_len != 128)
		return 0;
	for (int i = 0; i < 128; i++) /* hex case aside, without an early exit */
		diff |= (unsigned)((pong->digest[i] | 0x20) ^ want[i]);
	return diff == 0;
}
