/* The Fluentd Forward protocol v1, the bytes only: PackedForward messages,
 * EventTime, the shared-key handshake (HELO / PING / PONG, sha512 digests)
 * and reading the server's few messages. No sockets, no loop: the output
 * that drives a connection is core/out_forward.c.
 *
 * One PackedForward message (a "chunk"): entries is a bin holding entries
 * back to back, each a 2-array [EventTime, record]:
 *
 *   93 | str tag | bin32 len | 92 d7 00 ss ss ss ss nn nn nn nn <record map> | 92 d7 00 ... | 8x
 * option [  | tag,    | entries ─────────────────────────────────────────────────────────────── | ,
 * option ] EventTime: ext 0, 4 bytes BE seconds, 4 bytes BE nanoseconds
 *
 * option = {"size": entries, "chunk": id} (chunk only when an ack is wanted;
 * the server answers {"ack": id}).
 *
 * The handshake, when the server has a shared key (it speaks first):
 *
 *   server: ["HELO", {"nonce": n, "auth": a, "keepalive": bool}]
 *   client: ["PING", self_hostname, salt, hex(sha512(salt + self_hostname + n + key)),
 *            username, hex(sha512(a + username + password))]   (the last two "" when a is "")
 *   server: ["PONG", ok, reason, server_hostname, hex(sha512(salt + server_hostname + n + key))]
 *
 * The client checks the PONG's digest, so a server that does not know the
 * key cannot pass for one that does. */
#ifndef NLGATE_FORWARD_H
#define NLGATE_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include "encode.h"

/* An entry's head: fixarray(2) and the EventTime ext; the record's msgpack
 * value completes the entry. */
#define NLG_FWD_ENTRY_HEAD 11
void nlg_fwd_entry_head(uint8_t out[NLG_FWD_ENTRY_HEAD], uint64_t time_ns);

/* A tag nlgate builds: tag_prefix "." tag, both bounded. */
#define NLG_FWD_TAG_MAX 400
/* The message head: fixarray(3), the tag (str16 at most), bin32 header. */
#define NLG_FWD_HEAD_MAX (1 + 3 + NLG_FWD_TAG_MAX + 5)
/* The option map: {"size": u32, "chunk": 24 characters}. */
#define NLG_FWD_OPT_MAX 48
/* A chunk id as sent: base64 of 16 bytes, no padding newline. */
#define NLG_FWD_ID_LEN 24

/* Head of a message whose entries are elen bytes, into out (at least
 * NLG_FWD_HEAD_MAX): its length, or -EINVAL for a tag over NLG_FWD_TAG_MAX. */
int nlg_fwd_msg_head(uint8_t *out, const char *tag, size_t taglen, size_t elen);
/* The option map into out (at least NLG_FWD_OPT_MAX): its length. id is
 * NLG_FWD_ID_LEN characters, or NULL for no ack. */
size_t nlg_fwd_msg_option(uint8_t *out, uint32_t size, const char *id);
/* base64 (RFC 4648, padded) of 16 bytes into out[NLG_FWD_ID_LEN + 1]. */
void nlg_fwd_chunk_id(char *out, const uint8_t raw[16]);

/* n random bytes (getrandom; the clock stands in if it fails): for chunk
 * ids and salts, which want uniqueness and unpredictability, not keys. */
void nlg_fwd_random(uint8_t *p, size_t n);

/* hex(sha512(a + b + c + d)) into hex[129]: the handshake's digests.
 * 0, or -ENOMEM / -EIO when libcrypto fails. */
int nlg_fwd_digest(char *hex, const void *a, size_t alen, const void *b, size_t blen, const void *c,
		   size_t clen, const void *d, size_t dlen);

/* ---- what the server says ---- */

enum nlg_fwd_kind { NLG_FWD_HELO = 1, NLG_FWD_PONG, NLG_FWD_ACK };

/* Pointers into the buffer parsed (valid while it is). */
struct nlg_fwd_reply {
	enum nlg_fwd_kind kind;
	/* HELO: nonce and auth salt (str or bin, either may be empty) */
	const uint8_t *nonce, *auth;
	size_t nonce_len, auth_len;
	int keepalive; /* 1 unless the server says false */
	/* PONG */
	int ok;
	const char *reason, *host, *digest;
	size_t reason_len, host_len, digest_len;
	/* ack */
	const char *ack;
	size_t ack_len;
};

/* Messages longer than this are refused: every one the server sends is a
 * few hundred bytes, and a reader must not buffer without end. */
#define NLG_FWD_REPLY_MAX 65536

/* Read one message from buf[len]: bytes consumed (> 0), 0 if it is not
 * complete yet, or -EPROTO if it is not a HELO, PONG or ack (or a value is
 * nested over 8 deep, or longer than NLG_FWD_REPLY_MAX). */
int nlg_fwd_parse_reply(const uint8_t *buf, size_t len, struct nlg_fwd_reply *r);

/* The PING answering helo, appended to out: salt is the client's
 * (any bytes; nlgate sends 32 hex characters), user and password may be
 * empty when helo's auth is. 0, -ENOMEM, -EIO (libcrypto). */
int nlg_fwd_ping(struct nlg_buf *out, const struct nlg_fwd_reply *helo, const char *self_host,
		 const char *salt, const char *key, const char *user, const char *password);

/* Whether pong's digest is the one a server knowing key computes for the
 * HELO's nonce (kept by the caller: the HELO's buffer is gone by then):
 * 1 yes, 0 no, -EIO. */
int nlg_fwd_pong_ok(const struct nlg_fwd_reply *pong, const char *salt, const uint8_t *nonce,
		    size_t nonce_len, const char *key);

#endif
