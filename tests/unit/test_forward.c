/* Unit tests for core/forward.c, the Forward protocol's bytes: EventTime and
 * a PackedForward message decoded back with msgpack-c (an independent
 * reader), chunk ids, the sha512 digest against a published vector, the
 * PING and the PONG check, and the reader of server messages on complete,
 * cut, nested, oversized and hostile input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nlgate/forward.h"

static void test_entry_head(void **state)
{
	uint8_t h[NLG_FWD_ENTRY_HEAD];
	static const uint8_t want[] = {0x92, 0xd7, 0x00, 0x65, 0x53, 0xf1,
				       0x00, 0x07, 0x5b, 0xcd, 0x15};

	(void)state;
	/* 1700000000 s = 0x6553f100, 123456789 ns = 0x075bcd15 */
	nlg_fwd_entry_head(h, 1700000000ull * 1000000000ull + 123456789ull);
	assert_memory_equal(h, want, sizeof(want));
	nlg_fwd_entry_head(h, 999999999ull);
	assert_int_equal(h[3] | h[4] | h[5] | h[6], 0);
	assert_int_equal((h[7] << 24 | h[8] << 16 | h[9] << 8 | h[10]), 999999999);
}

/* Build [tag, entries, option] the way the output does and read it back. */
static void check_message(size_t taglen, unsigned nent, size_t bodylen, int ack)
{
	char tag[NLG_FWD_TAG_MAX];
	uint8_t *buf =
	    malloc(NLG_FWD_HEAD_MAX + nent * (NLG_FWD_ENTRY_HEAD + bodylen + 16) + NLG_FWD_OPT_MAX);
	uint8_t *ents = buf + NLG_FWD_HEAD_MAX, head[NLG_FWD_HEAD_MAX], raw[16];
	char id[NLG_FWD_ID_LEN + 1];
	size_t elen = 0, len, off = 0;
	msgpack_unpacked u;
	msgpack_object *a;
	int hl;

	assert_non_null(buf);
	memset(tag, 't', taglen);
	for (unsigned i = 0; i < nent; i++) {
		nlg_fwd_entry_head(ents + elen, (1700000000ull + i) * 1000000000ull + i);
		elen += NLG_FWD_ENTRY_HEAD;
		/* {"i": i} padded with a str of bodylen bytes: a map of 2 */
		ents[elen++] = 0x82;
		ents[elen++] = 0xa1;
		ents[elen++] = 'i';
		ents[elen++] = 0xce;
		ents[elen++] = (uint8_t)(i >> 24);
		ents[elen++] = (uint8_t)(i >> 16);
		ents[elen++] = (uint8_t)(i >> 8);
		ents[elen++] = (uint8_t)i;
		ents[elen++] = 0xa1;
		ents[elen++] = 'p';
		ents[elen++] = 0xda;
		ents[elen++] = (uint8_t)(bodylen >> 8);
		ents[elen++] = (uint8_t)bodylen;
		memset(ents + elen, 'x', bodylen);
		elen += bodylen;
	}
	hl = nlg_fwd_msg_head(head, tag, taglen, elen);
	assert_true(hl > 0 && hl <= NLG_FWD_HEAD_MAX);
	memcpy(ents - hl, head, (size_t)hl);
	memset(raw, 0xa5, sizeof(raw));
	nlg_fwd_chunk_id(id, raw);
	len = (size_t)hl + elen + nlg_fwd_msg_option(ents + elen, nent, ack ? id : NULL);

	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)ents - hl, len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, len);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(u.data.via.array.size, 3);
	a = u.data.via.array.ptr;
	assert_int_equal(a[0].type, MSGPACK_OBJECT_STR);
	assert_int_equal(a[0].via.str.size, taglen);
	assert_int_equal(a[1].type, MSGPACK_OBJECT_BIN);
	assert_int_equal(a[1].via.bin.size, elen);
	assert_int_equal(a[2].type, MSGPACK_OBJECT_MAP);
	assert_int_equal(a[2].via.map.size, ack ? 2 : 1);
	assert_int_equal(a[2].via.map.ptr[0].val.via.u64, nent);
	if (ack) {
		assert_int_equal(a[2].via.map.ptr[1].key.via.str.size, 5);
		assert_memory_equal(a[2].via.map.ptr[1].val.via.str.ptr, id, NLG_FWD_ID_LEN);
	}
	/* the entries: [EventTime, {i, p}] each */
	{
		const char *eb = a[1].via.bin.ptr;
		size_t eoff = 0;
		msgpack_unpacked e;

		msgpack_unpacked_init(&e);
		for (unsigned i = 0; i < nent; i++) {
			msgpack_object *p;
			const uint8_t *t;

			assert_int_equal(msgpack_unpack_next(&e, eb, elen, &eoff),
					 MSGPACK_UNPACK_SUCCESS);
			assert_int_equal(e.data.via.array.size, 2);
			p = e.data.via.array.ptr;
			assert_int_equal(p[0].type, MSGPACK_OBJECT_EXT);
			assert_int_equal(p[0].via.ext.type, 0);
			assert_int_equal(p[0].via.ext.size, 8);
			t = (const uint8_t *)p[0].via.ext.ptr;
			assert_int_equal((uint32_t)(t[0] << 24 | t[1] << 16 | t[2] << 8 | t[3]),
					 1700000000u + i);
			assert_int_equal((uint32_t)(t[4] << 24 | t[5] << 16 | t[6] << 8 | t[7]), i);
			assert_int_equal(p[1].via.map.ptr[0].val.via.u64, i);
		}
		assert_int_equal(eoff, elen);
		msgpack_unpacked_destroy(&e);
	}
	msgpack_unpacked_destroy(&u);
	free(buf);
}

static void test_message(void **state)
{
	(void)state;
	check_message(3, 1, 0, 1);		     /* fixstr tag, bin8 entries */
	check_message(31, 5, 10, 0);		     /* bin16 */
	check_message(32, 200, 100, 1);		     /* str8 tag */
	check_message(300, 3, 30000, 1);	     /* str16 tag, bin32 entries */
	check_message(NLG_FWD_TAG_MAX, 70000, 0, 1); /* size as uint32 */
	{
		uint8_t h[NLG_FWD_HEAD_MAX + 8];
		char tag[NLG_FWD_TAG_MAX + 1] = {0};
		assert_int_equal(nlg_fwd_msg_head(h, tag, NLG_FWD_TAG_MAX + 1, 1), -EINVAL);
	}
}

static void test_chunk_id(void **state)
{
	uint8_t raw[16];
	char id[NLG_FWD_ID_LEN + 1];

	(void)state;
	for (int i = 0; i < 16; i++)
		raw[i] = (uint8_t)i;
	nlg_fwd_chunk_id(id, raw);
	assert_string_equal(id, "AAECAwQFBgcICQoLDA0ODw==");
	memset(raw, 0xff, sizeof(raw));
	nlg_fwd_chunk_id(id, raw);
	assert_string_equal(id, "/////////////////////w==");
}

static void test_digest(void **state)
{
	char hex[129];

	(void)state;
	/* FIPS 180-2's SHA-512("abc"), split over the four parts */
	assert_int_equal(nlg_fwd_digest(hex, "a", 1, "", 0, "b", 1, "c", 1), 0);
	assert_string_equal(hex,
			    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
			    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

/* ---- the server's messages ---- */

static struct nlg_buf pack_buf;
static msgpack_packer pk;

static void pk_reset(void)
{
	nlg_buf_reset(&pack_buf);
	nlg_mp_init(&pk, &pack_buf);
}

static void pk_str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}

static int parse(struct nlg_fwd_reply *r)
{
	return nlg_fwd_parse_reply(pack_buf.data, pack_buf.len, r);
}

static void test_parse_replies(void **state)
{
	struct nlg_fwd_reply r;

	(void)state;
	nlg_buf_init(&pack_buf);

	pk_reset(); /* HELO with a bin nonce, extra keys ignored */
	msgpack_pack_array(&pk, 2);
	pk_str("HELO");
	msgpack_pack_map(&pk, 4);
	pk_str("nonce");
	msgpack_pack_bin_with_body(&pk, "\x00\x01\x02", 3);
	pk_str("future");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_nil(&pk);
	msgpack_pack_double(&pk, 1.5);
	pk_str("auth");
	pk_str("");
	pk_str("keepalive");
	msgpack_pack_false(&pk);
	assert_int_equal(parse(&r), (int)pack_buf.len);
	assert_int_equal(r.kind, NLG_FWD_HELO);
	assert_int_equal(r.nonce_len, 3);
	assert_memory_equal(r.nonce, "\x00\x01\x02", 3);
	assert_int_equal(r.auth_len, 0);
	assert_int_equal(r.keepalive, 0);
	/* every cut of it is incomplete, not an error */
	for (size_t n = 0; n < pack_buf.len; n++)
		assert_int_equal(nlg_fwd_parse_reply(pack_buf.data, n, &r), 0);

	pk_reset(); /* PONG */
	msgpack_pack_array(&pk, 5);
	pk_str("PONG");
	msgpack_pack_true(&pk);
	pk_str("");
	pk_str("server");
	pk_str("abcd");
	assert_int_equal(parse(&r), (int)pack_buf.len);
	assert_int_equal(r.kind, NLG_FWD_PONG);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.host_len, 6);
	assert_int_equal(r.digest_len, 4);

	pk_reset(); /* two acks back to back: the first is read alone */
	msgpack_pack_map(&pk, 1);
	pk_str("ack");
	pk_str("AAECAwQFBgcICQoLDA0ODw==");
	size_t one = pack_buf.len;
	msgpack_pack_map(&pk, 1);
	pk_str("ack");
	pk_str("x");
	assert_int_equal(parse(&r), (int)one);
	assert_int_equal(r.kind, NLG_FWD_ACK);
	assert_int_equal(r.ack_len, 24);
	assert_int_equal(nlg_fwd_parse_reply(pack_buf.data + one, pack_buf.len - one, &r),
			 (int)(pack_buf.len - one));
	assert_int_equal(r.ack_len, 1);

	/* not what a server says */
	pk_reset();
	msgpack_pack_map(&pk, 1);
	pk_str("nack");
	pk_str("x");
	assert_int_equal(parse(&r), -EPROTO);
	pk_reset();
	msgpack_pack_array(&pk, 2);
	pk_str("PONG");
	msgpack_pack_true(&pk);
	assert_int_equal(parse(&r), -EPROTO);
	pk_reset();
	msgpack_pack_uint32(&pk, 7);
	assert_int_equal(parse(&r), -EPROTO);
	pk_reset(); /* PONG whose ok is not a bool */
	msgpack_pack_array(&pk, 5);
	pk_str("PONG");
	msgpack_pack_int(&pk, 1);
	pk_str("");
	pk_str("");
	pk_str("");
	assert_int_equal(parse(&r), -EPROTO);
	nlg_buf_free(&pack_buf);
}

static void test_parse_hostile(void **state)
{
	struct nlg_fwd_reply r;
	uint8_t b[NLG_FWD_REPLY_MAX + 16];

	(void)state;
	/* 0xc1 is never msgpack */
	assert_int_equal(nlg_fwd_parse_reply((const uint8_t *)"\xc1", 1, &r), -EPROTO);
	/* an array claiming 2^32-1 elements: incomplete while short, refused
	 * once the buffer holds the most a message may be */
	memset(b, 0xc0, sizeof(b));
	memcpy(b, "\xdd\xff\xff\xff\xff", 5);
	assert_int_equal(nlg_fwd_parse_reply(b, 100, &r), 0);
	assert_int_equal(nlg_fwd_parse_reply(b, sizeof(b), &r), -EPROTO);
	/* a str claiming 4 GiB */
	memcpy(b, "\xdb\xff\xff\xff\xff", 5);
	assert_int_equal(nlg_fwd_parse_reply(b, 5, &r), 0);
	assert_int_equal(nlg_fwd_parse_reply(b, NLG_FWD_REPLY_MAX, &r), -EPROTO);
	/* nested past 8 */
	memset(b, 0x91, 20);
	b[20] = 0xc0;
	assert_int_equal(nlg_fwd_parse_reply(b, 21, &r), -EPROTO);
	/* nested 8 deep is read (and refused: not a server message) */
	memset(b, 0x91, 8);
	b[8] = 0xc0;
	assert_int_equal(nlg_fwd_parse_reply(b, 9, &r), -EPROTO);
	/* every byte value alone: a verdict, never a read past the end */
	for (int v = 0; v < 256; v++) {
		b[0] = (uint8_t)v;
		int rc = nlg_fwd_parse_reply(b, 1, &r);
		assert_true(rc == 0 || rc == -EPROTO);
	}
}

/* The PING read back, and the server's side computed here as the server
 * would: a PONG with its digest passes, one with another key's does not. */
static void test_handshake(void **state)
{
	struct nlg_fwd_reply helo = {.kind = NLG_FWD_HELO}, pong = {.kind = NLG_FWD_PONG};
	struct nlg_buf out;
	msgpack_unpacked u;
	msgpack_object *a;
	char want[129], server[129];
	size_t off = 0;

	(void)state;
	helo.nonce = (const uint8_t *)"\x01\x02\x03\x04";
	helo.nonce_len = 4;
	helo.auth = (const uint8_t *)"";
	nlg_buf_init(&out);
	assert_int_equal(nlg_fwd_ping(&out, &helo, "client", "salt", "key", "", ""), 0);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)out.data, out.len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.via.array.size, 6);
	a = u.data.via.array.ptr;
	assert_memory_equal(a[0].via.str.ptr, "PING", 4);
	assert_memory_equal(a[1].via.str.ptr, "client", 6);
	assert_memory_equal(a[2].via.str.ptr, "salt", 4);
	assert_int_equal(
	    nlg_fwd_digest(want, "salt", 4, "client", 6, "\x01\x02\x03\x04", 4, "key", 3), 0);
	assert_int_equal(a[3].via.str.size, 128);
	assert_memory_equal(a[3].via.str.ptr, want, 128);
	assert_int_equal(a[4].via.str.size, 0);
	assert_int_equal(a[5].via.str.size, 0);
	msgpack_unpacked_destroy(&u);

	/* a server asking for a user: the password's digest over its salt */
	helo.auth = (const uint8_t *)"AS";
	helo.auth_len = 2;
	nlg_buf_reset(&out);
	off = 0;
	assert_int_equal(nlg_fwd_ping(&out, &helo, "client", "salt", "key", "bob", "pw"), 0);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)out.data, out.len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	a = u.data.via.array.ptr;
	assert_memory_equal(a[4].via.str.ptr, "bob", 3);
	assert_int_equal(nlg_fwd_digest(want, "AS", 2, "bob", 3, "pw", 2, "", 0), 0);
	assert_memory_equal(a[5].via.str.ptr, want, 128);
	msgpack_unpacked_destroy(&u);
	nlg_buf_free(&out);

	assert_int_equal(
	    nlg_fwd_digest(server, "salt", 4, "srv", 3, "\x01\x02\x03\x04", 4, "key", 3), 0);
	pong.ok = 1;
	pong.host = "srv";
	pong.host_len = 3;
	pong.digest = server;
	pong.digest_len = 128;
	assert_int_equal(nlg_fwd_pong_ok(&pong, "salt", helo.nonce, 4, "key"), 1);
	assert_int_equal(nlg_fwd_pong_ok(&pong, "salt", helo.nonce, 4, "yek"), 0);
	assert_int_equal(nlg_fwd_pong_ok(&pong, "tlas", helo.nonce, 4, "key"), 0);
	pong.digest_len = 127;
	assert_int_equal(nlg_fwd_pong_ok(&pong, "salt", helo.nonce, 4, "key"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_entry_head),	  cmocka_unit_test(test_message),
	    cmocka_unit_test(test_chunk_id),	  cmocka_unit_test(test_digest),
	    cmocka_unit_test(test_parse_replies), cmocka_unit_test(test_parse_hostile),
	    cmocka_unit_test(test_handshake),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
