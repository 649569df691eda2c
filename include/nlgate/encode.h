/* Schema-driven encoding of records: msgpack (with msgpack-c) and JSON lines.
 * Frames are [tag, time, record]: time is the msgpack timestamp ext (-1). */
#ifndef NLGATE_ENCODE_H
#define NLGATE_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "schema.h"

/* A growable byte buffer owned by the caller. */
struct nlg_buf {
	uint8_t *data;
	size_t len, cap;
};

void nlg_buf_init(struct nlg_buf *b);
void nlg_buf_free(struct nlg_buf *b);
int nlg_buf_reserve(struct nlg_buf *b, size_t extra); /* 0 or -ENOMEM */
int nlg_buf_append(struct nlg_buf *b, const void *p, size_t n);
static inline void nlg_buf_reset(struct nlg_buf *b)
{
	b->len = 0;
}

/* A msgpack packer that appends to b (msgpack_packer_init with a write cb). */
void nlg_mp_init(msgpack_packer *pk, struct nlg_buf *b);

/* Encode a record as a msgpack map / a JSON object (no newline). Absent
 * groups are left out. With nlg_mp_init's packer the map is written straight
 * into its buffer (one reserve of the schema's bound, plain stores); any
 * other packer gets the same bytes item by item through its callback. */
int nlg_enc_mp_record(msgpack_packer *pk, const struct nlg_schema *s, const void *rec);
/* The most bytes nlg_enc_mp_record may touch in the buffer for any record of
 * s (what it reserves), for a schema whose keys are built. */
size_t nlg_enc_mp_bound(const struct nlg_schema *s);
int nlg_enc_json_record(struct nlg_buf *b, const struct nlg_schema *s, const void *rec);

/* Frame header: array(3), tag, timestamp. The caller then appends one map. */
int nlg_enc_mp_frame_head(msgpack_packer *pk, const char *tag, size_t taglen, uint64_t time_ns);
/* The same head into buf[cap], no packer: its length, or -ENOSPC. */
int nlg_enc_mp_head(uint8_t *buf, size_t cap, const char *tag, size_t taglen, uint64_t time_ns);
/* Whole frame from a C record. */
int nlg_enc_mp_frame(msgpack_packer *pk, const char *tag, size_t taglen, uint64_t time_ns,
		     const struct nlg_schema *s, const void *rec);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF), else 0. */
int nlg_utf8_valid(const void *s, size_t n);

/* JSON string escaping, for other encoders that emit JSON. */
int nlg_json_str(struct nlg_buf *b, const char *s, size_t n);
/* JSON numbers, and bytes as a quoted lowercase hex string. 0 or -ENOMEM. */
int nlg_json_u64(struct nlg_buf *b, uint64_t v);
int nlg_json_i64(struct nlg_buf *b, int64_t v);
int nlg_json_hex(struct nlg_buf *b, const void *data, size_t n);

/* (frame_json.c) Decode one msgpack frame [tag, time, record] from buf and
 * append it to out as one JSON object, no newline, for `nlgate tail`:
 *   {"tag":"sock","time":1700000000.123456789,"record":{...}}
 * time is seconds with 9 decimals; record is any msgpack value as JSON (bin as
 * base64, ext as {"ext":type,"hex":".."}, nested timestamps as seconds).
 * Returns bytes consumed, 0 if the frame is incomplete, -EPROTO if it is not
 * a frame (out is then left as it was). */
int nlg_frame_to_json(const uint8_t *buf, size_t len, struct nlg_buf *out);

#endif
