/* Unit tests for core/encode.c: every field type through msgpack (decoded
 * back with msgpack-c) and JSON (exact text), absent groups, frames and their
 * timestamps, and frame → JSON for `nlgate tail`. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"
#include "nlgate/encode.h"
#include "nlgate/record.h"
#include "nlgate/sockdiag.h"

/* A record kind made for the test: one field of every type. */
struct trec {
	NLG_RECORD_HEAD;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int32_t i32;
	int64_t i64;
	uint8_t flag;
	uint8_t color;
	uint32_t flags;
	struct nlg_addr a4, a6, none;
	char name[12];
	uint8_t id[4];
	uint32_t opt;  /* in group 1 */
	uint32_t opt2; /* in group 2 */
};

static const char *const colors[] = {"red", "green", "blue", NULL};
static const char *const flagnames[] = {"SYN", "ACK", "FIN", NULL};

#define TF(n, t, m, g)                                                                             \
	{                                                                                          \
		.name = n, .type = t, .offset = offsetof(struct trec, m),                          \
		.size = sizeof(((struct trec *)0)->m), .group = g, .desc = "test"                  \
	}

static const struct nlg_field tfields[] = {
    TF("u8", NLG_T_U8, u8, 0),
    TF("u16", NLG_T_U16, u16, 0),
    TF("u32", NLG_T_U32, u32, 0),
    TF("u64", NLG_T_U64, u64, 0),
    TF("i32", NLG_T_I32, i32, 0),
    TF("i64", NLG_T_I64, i64, 0),
    TF("flag", NLG_T_BOOL, flag, 0),
    {.name = "color",
     .type = NLG_T_ENUM,
     .offset = offsetof(struct trec, color),
     .size = 1,
     .names = colors,
     .desc = "test"},
    {.name = "flags",
     .type = NLG_T_FLAGS,
     .offset = offsetof(struct trec, flags),
     .size = 4,
     .names = flagnames,
     .desc = "test"},
    TF("a4", NLG_T_ADDR, a4, 0),
    TF("a6", NLG_T_ADDR, a6, 0),
    TF("none", NLG_T_ADDR, none, 0),
    TF("name", NLG_T_STR, name, 0),
    TF("id", NLG_T_HEX, id, 0),
    TF("opt", NLG_T_U32, opt, 1),
    TF("opt2", NLG_T_U32, opt2, 2),
};

static struct nlg_fkey tkeys[NLG_ARRAY_SIZE(tfields)];
static struct nlg_schema tschema = {
    .kind = "test",
    .fields = tfields,
    .nfields = NLG_ARRAY_SIZE(tfields),
    .rec_size = sizeof(struct trec),
    .present_off = offsetof(struct trec, present),
    .keys = tkeys,
};

/* The same bytes nlg_schema_init() builds for the real kinds. */
static void tkeys_init(void)
{
	for (size_t i = 0; i < tschema.nfields; i++) {
		const char *n = tfields[i].name;
		size_t l = strlen(n);
		tkeys[i].mp[0] = (uint8_t)(0xa0 | l);
		memcpy(tkeys[i].mp + 1, n, l);
		tkeys[i].mp_len = (uint8_t)(l + 1);
		tkeys[i].json_len =
		    (uint8_t)snprintf((char *)tkeys[i].json, sizeof(tkeys[i].json), "\"%s\":", n);
	}
}

static void trec_fill(struct trec *r)
{
	memset(r, 0, sizeof(*r));
	r->present = 1; /* opt in, opt2 out */
	r->u8 = 200;
	r->u16 = 65535;
	r->u32 = 4000000000u;
	r->u64 = UINT64_MAX;
	r->i32 = -5;
	r->i64 = INT64_MIN;
	r->flag = 1;
	r->color = 2;
	r->flags = 1 | 4 | 16; /* SYN, FIN and an unnamed bit */
	r->a4.family = AF_INET;
	inet_pton(AF_INET, "10.0.0.1", r->a4.bytes);
	r->a6.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", r->a6.bytes);
	strcpy(r->name, "a\"b\\c\n\x01\xc3\xa9");
	memcpy(r->id, "\xde\xad\x00\x0f", 4);
	r->opt = 7;
	r->opt2 = 8;
}

static int setup(void **state)
{
	(void)state;
	nlg_schema_init();
	tkeys_init();
	return 0;
}

static const void *contains(const struct nlg_buf *b, const char *lit)
{
	return memmem(b->data, b->len, lit, strlen(lit));
}

/* ---- helpers over msgpack-c's decoder ---- */

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		assert_int_equal(k->type, MSGPACK_OBJECT_STR);
		if (k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, k->via.str.size))
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

static void assert_str(const msgpack_object *o, const char *want)
{
	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.str.size, strlen(want));
	assert_memory_equal(o->via.str.ptr, want, o->via.str.size);
}

static void assert_uint(const msgpack_object *o, uint64_t want)
{
	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_true(o->via.u64 == want);
}

static void assert_neg(const msgpack_object *o, int64_t want)
{
	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	assert_true(o->via.i64 == want);
}

/* Unpack exactly one object filling all of b. */
static void unpack_all(msgpack_unpacked *u, const struct nlg_buf *b)
{
	size_t off = 0;

	msgpack_unpacked_init(u);
	assert_int_equal(msgpack_unpack_next(u, (const char *)b->data, b->len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, b->len);
}

/* ---- tests ---- */

static void test_buf_growth(void **state)
{
	struct nlg_buf b;
	uint8_t chunk[77];

	(void)state;
	nlg_buf_init(&b);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(nlg_buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 77000);
	assert_true(b.cap >= b.len);
	for (int i = 0; i < 1000; i++)
		assert_memory_equal(b.data + i * sizeof(chunk), chunk, sizeof(chunk));
	assert_int_equal(nlg_buf_reserve(&b, 1 << 20), 0);
	assert_true(b.cap - b.len >= (1 << 20));
	assert_int_equal(nlg_buf_reserve(&b, SIZE_MAX), -ENOMEM);
	assert_int_equal(nlg_buf_append(&b, chunk, SIZE_MAX - 1), -ENOMEM);
	assert_int_equal(b.len, 77000); /* a failed append leaves it whole */
	nlg_buf_free(&b);
	assert_null(b.data);
	nlg_buf_free(NULL);
}

static void test_mp_every_type(void **state)
{
	struct trec r;
	struct nlg_buf b;
	msgpack_packer pk;
	msgpack_unpacked u;
	const msgpack_object *m, *o;

	(void)state;
	trec_fill(&r);
	nlg_buf_init(&b);
	nlg_mp_init(&pk, &b);
	assert_int_equal(nlg_enc_mp_record(&pk, &tschema, &r), 0);
	unpack_all(&u, &b);
	m = &u.data;
	assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(m->via.map.size, tschema.nfields - 1); /* opt2 is absent */
	/* Keys come in schema order. */
	for (uint32_t i = 0; i < m->via.map.size; i++)
		assert_str(&m->via.map.ptr[i].key, tfields[i].name);

	assert_uint(map_get(m, "u8"), 200);
	assert_uint(map_get(m, "u16"), 65535);
	assert_uint(map_get(m, "u32"), 4000000000u);
	assert_uint(map_get(m, "u64"), UINT64_MAX);
	assert_neg(map_get(m, "i32"), -5);
	assert_neg(map_get(m, "i64"), INT64_MIN);
	o = map_get(m, "flag");
	assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
	assert_true(o->via.boolean);
	assert_str(map_get(m, "color"), "blue");
	o = map_get(m, "flags");
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 3);
	assert_str(&o->via.array.ptr[0], "SYN");
	assert_str(&o->via.array.ptr[1], "FIN");
	assert_uint(&o->via.array.ptr[2], 16); /* no name: its value */
	assert_str(map_get(m, "a4"), "10.0.0.1");
	assert_str(map_get(m, "a6"), "2001:db8::1");
	o = map_get(m, "none");
	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
	assert_str(map_get(m, "name"), "a\"b\\c\n\x01\xc3\xa9");
	assert_str(map_get(m, "id"), "dead000f");
	assert_uint(map_get(m, "opt"), 7);
	assert_null(map_get(m, "opt2"));
	msgpack_unpacked_destroy(&u);

	/* Integers take their smallest form, as msgpack-c packs them. */
	r.u64 = 5;
	r.i64 = -1;
	r.color = 9; /* out of range: the number */
	r.flag = 0;
	r.flags = 0;
	nlg_buf_reset(&b);
	assert_int_equal(nlg_enc_mp_record(&pk, &tschema, &r), 0);
	unpack_all(&u, &b);
	assert_uint(map_get(&u.data, "u64"), 5);
	assert_neg(map_get(&u.data, "i64"), -1);
	assert_uint(map_get(&u.data, "color"), 9);
	o = map_get(&u.data, "flag");
	assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
	assert_false(o->via.boolean);
	o = map_get(&u.data, "flags");
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 0);
	msgpack_unpacked_destroy(&u);
	{
		/* "u64":5 is the fixstr key then one positive fixint byte. */
		const uint8_t want[] = {0xa3, 'u', '6', '4', 0x05};
		assert_non_null(memmem(b.data, b.len, want, sizeof(want)));
	}
	nlg_buf_free(&b);
}

static void test_absent_groups(void **state)
{
	struct trec r;
	struct nlg_buf b;
	msgpack_packer pk;
	msgpack_unpacked u;

	(void)state;
	trec_fill(&r);
	nlg_buf_init(&b);
	nlg_mp_init(&pk, &b);
	for (uint64_t present = 0; present < 4; present++) {
		r.present = present;
		nlg_buf_reset(&b);
		assert_int_equal(nlg_enc_mp_record(&pk, &tschema, &r), 0);
		unpack_all(&u, &b);
		assert_int_equal(u.data.via.map.size,
				 tschema.nfields - 2 + !!(present & 1) + !!(present & 2));
		assert_true(!map_get(&u.data, "opt") == !(present & 1));
		assert_true(!map_get(&u.data, "opt2") == !(present & 2));
		assert_non_null(map_get(&u.data, "u8"));
		msgpack_unpacked_destroy(&u);

		nlg_buf_reset(&b);
		assert_int_equal(nlg_enc_json_record(&b, &tschema, &r), 0);
		assert_true(!contains(&b, "\"opt\":") == !(present & 1));
		assert_true(!contains(&b, "\"opt2\":") == !(present & 2));
	}
	nlg_buf_free(&b);
}

static void test_json_exact(void **state)
{
	struct trec r;
	struct nlg_buf b;
	size_t first;
	const char *want = "{\"u8\":200,\"u16\":65535,\"u32\":4000000000,"
			   "\"u64\":18446744073709551615,\"i32\":-5,\"i64\":-9223372036854775808,"
			   "\"flag\":true,\"color\":\"blue\",\"flags\":[\"SYN\",\"FIN\",16],"
			   "\"a4\":\"10.0.0.1\",\"a6\":\"2001:db8::1\",\"none\":null,"
			   "\"name\":\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\",\"id\":\"dead000f\","
			   "\"opt\":7}";

	(void)state;
	trec_fill(&r);
	nlg_buf_init(&b);
	assert_int_equal(nlg_enc_json_record(&b, &tschema, &r), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);

	/* Appends: a second record follows the first untouched. */
	first = b.len;
	r.present = 0;
	r.u8 = 0;
	r.u16 = 10;
	r.u32 = 99;
	r.u64 = 100;
	r.i32 = 0;
	r.i64 = 1234567890123;
	r.flag = 0;
	r.color = 200;
	r.flags = 2;
	r.a4.family = 0;
	memcpy(r.name, "full-width!!", 12); /* no NUL: size bounds it */
	assert_int_equal(nlg_enc_json_record(&b, &tschema, &r), 0);
	want = "{\"u8\":0,\"u16\":10,\"u32\":99,\"u64\":100,\"i32\":0,\"i64\":1234567890123,"
	       "\"flag\":false,\"color\":200,\"flags\":[\"ACK\"],\"a4\":null,"
	       "\"a6\":\"2001:db8::1\",\"none\":null,\"name\":\"full-width!!\","
	       "\"id\":\"dead000f\"}";
	assert_int_equal(b.len, first + strlen(want));
	assert_memory_equal(b.data + first, want, strlen(want));
	nlg_buf_free(&b);
}

static void test_json_str(void **state)
{
	struct nlg_buf b;
	const char in[] = "q\"\\/\t\x1f\x7f\x80z";
	const char *want = "\"q\\\"\\\\/\\u0009\\u001f\x7f\x80z\"";

	(void)state;
	nlg_buf_init(&b);
	assert_int_equal(nlg_json_str(&b, in, sizeof(in) - 1), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	nlg_buf_reset(&b);
	assert_int_equal(nlg_json_str(&b, "a\0b", 3), 0); /* NUL inside: escaped */
	assert_int_equal(b.len, 10);
	assert_memory_equal(b.data, "\"a\\u0000b\"", 10);
	nlg_buf_free(&b);
}

/* The real sock kind: every present field decoded back and compared with
 * the schema's own reading of the record. */
static void test_sock_roundtrip(void **state)
{
	const struct nlg_schema *s = nlg_schema_find("sock");
	struct nlg_sock k;
	struct nlg_buf b;
	msgpack_packer pk;
	msgpack_unpacked u;
	size_t npresent = 0;

	(void)state;
	assert_non_null(s);
	memset(&k, 0, sizeof(k));
	k.present = NLG_SOCK_HAS_INFO | NLG_SOCK_HAS_CONG | NLG_SOCK_HAS_MARK;
	k.family = AF_INET6;
	k.proto = NLG_SOCK_TCP;
	k.state = 10;
	k.sport = 22;
	k.src.family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.7", k.src.bytes);
	k.cookie = 0xfedcba9876543210ull;
	k.mark = 0x10000;
	k.info.tcpi_rtt = 1234;
	k.info.tcpi_bytes_acked = 1ull << 40;
	k.info.tcpi_ca_state = 3;
	k.app_limited = 1;
	strcpy(k.cong, "bbr");

	nlg_buf_init(&b);
	nlg_mp_init(&pk, &b);
	assert_int_equal(nlg_enc_mp_record(&pk, s, &k), 0);
	unpack_all(&u, &b);
	for (size_t i = 0; i < s->nfields; i++) {
		const struct nlg_field *f = &s->fields[i];
		const msgpack_object *o = map_get(&u.data, f->name);
		char text[128];

		if (!nlg_field_present(s, f, &k)) {
			assert_null(o);
			continue;
		}
		npresent++;
		assert_non_null(o);
		switch (f->type) {
		case NLG_T_BOOL:
			assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
			assert_int_equal(o->via.boolean, nlg_field_int(f, &k));
			break;
		case NLG_T_ADDR:
			if (((const struct nlg_addr *)((const char *)&k + f->offset))->family) {
				nlg_field_text(f, &k, text, sizeof(text));
				assert_str(o, text);
			} else {
				assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
			}
			break;
		case NLG_T_ENUM:
		case NLG_T_STR:
		case NLG_T_HEX:
			nlg_field_text(f, &k, text, sizeof(text));
			assert_str(o, text);
			break;
		case NLG_T_FLAGS:
			assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
			break;
		default:
			assert_uint(o, (uint64_t)nlg_field_int(f, &k));
		}
	}
	assert_int_equal(u.data.via.map.size, npresent);
	assert_str(map_get(&u.data, "src"), "::ffff:192.0.2.7");
	assert_str(map_get(&u.data, "state"), "LISTEN");
	assert_str(map_get(&u.data, "ca_state"), "recovery");
	assert_str(map_get(&u.data, "cong"), "bbr");
	assert_null(map_get(&u.data, "rmem"));
	msgpack_unpacked_destroy(&u);
	nlg_buf_free(&b);
}

/* Addresses are formatted by hand; inet_ntop is the reference. */
static void test_addr_text_matches_inet_ntop(void **state)
{
	struct trec r;
	struct nlg_buf b;
	msgpack_packer pk;
	msgpack_unpacked u;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	trec_fill(&r);
	nlg_buf_init(&b);
	nlg_mp_init(&pk, &b);
	for (int n = 0; n < 20000; n++) {
		char want4[INET_ADDRSTRLEN], want6[INET6_ADDRSTRLEN];
		/* Words drawn to make zero runs, 0xffff and small values common. */
		for (int i = 0; i < 8; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			uint16_t w = (x & 3) == 0   ? 0
				     : (x & 3) == 1 ? 0xffff
				     : (x & 3) == 2 ? (uint16_t)(x >> 60)
						    : (uint16_t)(x >> 20);
			r.a6.bytes[2 * i] = (uint8_t)(w >> 8);
			r.a6.bytes[2 * i + 1] = (uint8_t)w;
		}
		if (n % 5 == 0)
			memset(r.a6.bytes, 0, 10 + (n % 3 == 0) * 2);
		memcpy(r.a4.bytes, &x, 4);
		inet_ntop(AF_INET, r.a4.bytes, want4, sizeof(want4));
		inet_ntop(AF_INET6, r.a6.bytes, want6, sizeof(want6));
		nlg_buf_reset(&b);
		assert_int_equal(nlg_enc_mp_record(&pk, &tschema, &r), 0);
		unpack_all(&u, &b);
		assert_str(map_get(&u.data, "a4"), want4);
		assert_str(map_get(&u.data, "a6"), want6);
		msgpack_unpacked_destroy(&u);
	}
	nlg_buf_free(&b);
}

static void test_frame_timestamp(void **state)
{
	static const struct {
		uint64_t ns;
		size_t ext_size; /* the spec's form: 32, 64 or 96 bits */
	} cases[] = {
	    {0, 4},
	    {1700000000ull * 1000000000ull, 4},
	    {1700000000ull * 1000000000ull + 1, 8},
	    {1700000000123456789ull, 8},
	    {4294967295ull * 1000000000ull, 4},
	    {4294967296ull * 1000000000ull + 999999999, 8},
	    {17179869184ull * 1000000000ull + 5, 12}, /* 2^34 s */
	    {UINT64_MAX, 12},
	};
	const struct nlg_schema *s = nlg_schema_find("sock");
	struct nlg_sock k;
	struct nlg_buf b;
	msgpack_packer pk;
	msgpack_unpacked u;

	(void)state;
	memset(&k, 0, sizeof(k));
	k.sport = 80;
	nlg_buf_init(&b);
	nlg_mp_init(&pk, &b);
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cases); i++) {
		msgpack_timestamp ts;
		const msgpack_object *a;

		nlg_buf_reset(&b);
		assert_int_equal(nlg_enc_mp_frame(&pk, "sock", 4, cases[i].ns, s, &k), 0);
		unpack_all(&u, &b);
		a = &u.data;
		assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(a->via.array.size, 3);
		assert_str(&a->via.array.ptr[0], "sock");
		assert_int_equal(a->via.array.ptr[1].type, MSGPACK_OBJECT_EXT);
		assert_int_equal(a->via.array.ptr[1].via.ext.type, -1);
		assert_int_equal(a->via.array.ptr[1].via.ext.size, cases[i].ext_size);
		assert_true(msgpack_object_to_timestamp(&a->via.array.ptr[1], &ts));
		assert_true((uint64_t)ts.tv_sec == cases[i].ns / 1000000000u);
		assert_int_equal(ts.tv_nsec, cases[i].ns % 1000000000u);
		assert_uint(map_get(&a->via.array.ptr[2], "sport"), 80);
		msgpack_unpacked_destroy(&u);
	}
	nlg_buf_free(&b);
}

/* A frame whose record holds one of every msgpack type. */
static void pack_mixed_frame(msgpack_packer *pk)
{
	msgpack_timestamp inner = {.tv_sec = 5, .tv_nsec = 250000000};

	assert_int_equal(nlg_enc_mp_frame_head(pk, "t\"x", 3, 1700000000000000042ull), 0);
	msgpack_pack_map(pk, 11);
	msgpack_pack_str_with_body(pk, "n", 1);
	msgpack_pack_nil(pk);
	msgpack_pack_str_with_body(pk, "b", 1);
	msgpack_pack_false(pk);
	msgpack_pack_str_with_body(pk, "i", 1);
	msgpack_pack_int64(pk, -300);
	msgpack_pack_str_with_body(pk, "u", 1);
	msgpack_pack_uint64(pk, 12345678901ull);
	msgpack_pack_str_with_body(pk, "f", 1);
	msgpack_pack_double(pk, -1.5e300);
	msgpack_pack_str_with_body(pk, "g", 1);
	msgpack_pack_float(pk, 2.0f);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_str_with_body(pk, "x\n", 2);
	msgpack_pack_array(pk, 0);
	msgpack_pack_str_with_body(pk, "bin", 3);
	msgpack_pack_bin_with_body(pk, "\x00\xff\x10\x20", 4);
	msgpack_pack_str_with_body(pk, "e", 1);
	msgpack_pack_ext_with_body(pk, "\xab\xcd", 2, 7);
	msgpack_pack_str_with_body(pk, "ts", 2);
	msgpack_pack_timestamp(pk, &inner);
	msgpack_pack_int(pk, 3); /* a non-string key */
	msgpack_pack_map(pk, 0);
}

static const char mixed_json[] =
    "{\"tag\":\"t\\\"x\",\"time\":1700000000.000000042,\"record\":{\"n\":null,\"b\":false,"
    "\"i\":-300,\"u\":12345678901,\"f\":-1.5e+300,\"g\":2.0,\"a\":[\"x\\u000a\",[]],"
    "\"bin\":\"AP8QIA==\",\"e\":{\"ext\":7,\"hex\":\"abcd\"},\"ts\":5.250000000,"
    "\"3\":{}}}";

static void test_frame_to_json(void **state)
{
	struct nlg_buf fr, out;
	msgpack_packer pk;
	size_t one;

	(void)state;
	nlg_buf_init(&fr);
	nlg_buf_init(&out);
	nlg_mp_init(&pk, &fr);
	pack_mixed_frame(&pk);
	one = fr.len;
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), (int)one);
	assert_int_equal(out.len, strlen(mixed_json));
	assert_memory_equal(out.data, mixed_json, out.len);

	/* Every strict prefix is incomplete: 0, and out untouched. */
	for (size_t n = 0; n < one; n++) {
		nlg_buf_reset(&out);
		assert_int_equal(nlg_frame_to_json(fr.data, n, &out), 0);
		assert_int_equal(out.len, 0);
	}

	/* Two frames back to back: the first is consumed alone. */
	{
		struct nlg_sock k;
		memset(&k, 0, sizeof(k));
		k.dport = 443;
		assert_int_equal(
		    nlg_enc_mp_frame(&pk, "sock", 4, 2500000000ull, nlg_schema_find("sock"), &k),
		    0);
	}
	nlg_buf_reset(&out);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), (int)one);
	nlg_buf_reset(&out);
	assert_int_equal(nlg_frame_to_json(fr.data + one, fr.len - one, &out), (int)(fr.len - one));
	assert_true(out.len > 40);
	assert_memory_equal(out.data, "{\"tag\":\"sock\",\"time\":2.500000000,\"record\":{", 42);
	assert_non_null(contains(&out, "\"dport\":443,"));
	assert_int_equal(out.data[out.len - 1], '}');
	nlg_buf_free(&fr);
	nlg_buf_free(&out);
}

static void test_frame_to_json_rejects(void **state)
{
	struct nlg_buf fr, out;
	msgpack_packer pk;
	msgpack_timestamp ts = {.tv_sec = 1, .tv_nsec = 0};

	(void)state;
	nlg_buf_init(&fr);
	nlg_buf_init(&out);
	nlg_mp_init(&pk, &fr);

	assert_int_equal(nlg_frame_to_json((const uint8_t *)"hello", 5, &out), -EPROTO);
	assert_int_equal(nlg_frame_to_json((const uint8_t *)"\xc1", 1, &out), -EPROTO);
	/* A huge array32 header: garbage, not "wait for more". */
	assert_int_equal(nlg_frame_to_json((const uint8_t *)"\xdd\xff\xff\xff\xff", 5, &out),
			 -EPROTO);

	msgpack_pack_array(&pk, 2); /* wrong arity */
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_timestamp(&pk, &ts);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);

	nlg_buf_reset(&fr);
	msgpack_pack_array(&pk, 3); /* tag not a string */
	msgpack_pack_int(&pk, 1);
	msgpack_pack_timestamp(&pk, &ts);
	msgpack_pack_map(&pk, 0);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);

	nlg_buf_reset(&fr);
	msgpack_pack_array(&pk, 3); /* time not a timestamp */
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_uint32(&pk, 1700000000);
	msgpack_pack_map(&pk, 0);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);

	nlg_buf_reset(&fr);
	msgpack_pack_array(&pk, 3); /* ext of the wrong type in the time slot */
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_ext_with_body(&pk, "\0\0\0\1", 4, 0);
	msgpack_pack_map(&pk, 0);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);
	assert_int_equal(out.len, 0);

	/* Nested values render... */
	nlg_buf_reset(&fr);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_timestamp(&pk, &ts);
	for (int i = 0; i < 20; i++)
		msgpack_pack_array(&pk, 1);
	msgpack_pack_nil(&pk);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), (int)fr.len);
	{
		const char *want = "\"record\":"
				   "[[[[[[[[[["
				   "[[[[[[[[[["
				   "null"
				   "]]]]]]]]]]"
				   "]]]]]]]]]]"
				   "}";
		assert_non_null(memmem(out.data, out.len, want, strlen(want)));
	}
	nlg_buf_reset(&out);

	/* ...but nesting deeper than any record is refused, not a stack overflow. */
	nlg_buf_reset(&fr);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_timestamp(&pk, &ts);
	for (int i = 0; i < 1000; i++)
		msgpack_pack_array(&pk, 1);
	msgpack_pack_nil(&pk);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);
	assert_int_equal(out.len, 0);

	nlg_buf_free(&fr);
	nlg_buf_free(&out);
}

/* Every msgpack type and width, decoded whole, incomplete at every cut. */
static void test_frame_to_json_all_widths(void **state)
{
	static char big[70000];
	struct nlg_buf fr, out;
	msgpack_packer pk;
	size_t len;

	(void)state;
	memset(big, 'b', sizeof(big));
	nlg_buf_init(&fr);
	nlg_buf_init(&out);
	nlg_mp_init(&pk, &fr);
	assert_int_equal(nlg_enc_mp_frame_head(&pk, "w", 1, 1), 0);
	msgpack_pack_array(&pk, 20);		     /* array16 */
	msgpack_pack_str_with_body(&pk, big, 300);   /* str16 */
	msgpack_pack_str_with_body(&pk, big, 70000); /* str32 */
	msgpack_pack_str_with_body(&pk, big, 40);    /* str8 */
	msgpack_pack_bin_with_body(&pk, big, 300);   /* bin16 */
	msgpack_pack_int8(&pk, -100);
	msgpack_pack_int16(&pk, -1000);
	msgpack_pack_int32(&pk, -100000);
	msgpack_pack_int64(&pk, -10000000000ll);
	msgpack_pack_uint8(&pk, 200);
	msgpack_pack_uint16(&pk, 60000);
	msgpack_pack_uint32(&pk, 4000000000u);
	msgpack_pack_uint64(&pk, 10000000000000000000ull);
	msgpack_pack_ext_with_body(&pk, "abc", 3, 1); /* ext8 */
	msgpack_pack_ext_with_body(&pk, big, 300, 2); /* ext16 */
	msgpack_pack_ext_with_body(&pk, "a", 1, 3);   /* fixext1 */
	msgpack_pack_ext_with_body(&pk, big, 16, 4);  /* fixext16 */
	msgpack_pack_map(&pk, 20);		      /* map16 */
	for (int i = 0; i < 20; i++) {
		msgpack_pack_int(&pk, i);
		msgpack_pack_nil(&pk);
	}
	msgpack_pack_float(&pk, 0.1f);
	msgpack_pack_true(&pk);
	msgpack_pack_double(&pk, 0.1);
	len = fr.len;
	assert_int_equal(nlg_frame_to_json(fr.data, len, &out), (int)len);
	assert_non_null(contains(&out, ",-100,-1000,-100000,-10000000000,200,60000,"));
	assert_non_null(contains(&out, "4000000000,10000000000000000000,"));
	assert_non_null(contains(&out, "{\"ext\":1,\"hex\":\"616263\"}"));
	assert_non_null(contains(&out, ",0.1,true,0.1]}"));
	for (size_t n = 0; n < len; n += n < 2000 ? 1 : 997) {
		nlg_buf_reset(&out);
		assert_int_equal(nlg_frame_to_json(fr.data, n, &out), 0);
	}
	assert_int_equal(nlg_frame_to_json(fr.data, len - 1, &out), 0);

	/* A container that claims more than can ever come is not waited for;
	 * one that claims much but may still come is incomplete, and costs no
	 * allocation of its claimed size. */
	nlg_buf_reset(&fr);
	assert_int_equal(nlg_enc_mp_frame_head(&pk, "w", 1, 1), 0);
	len = fr.len;
	assert_int_equal(nlg_buf_append(&fr, "\xdf\xff\xff\xff\xff\x01\xc0", 7), 0);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);
	fr.len = len;
	assert_int_equal(nlg_buf_append(&fr, "\xdf\x00\x10\x00\x00\x01\xc0", 7), 0);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), 0);
	fr.len = len;
	assert_int_equal(nlg_buf_append(&fr, "\xdb\x7f\xff\xff\xffxyz", 8), 0);
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);
	fr.len = len;
	assert_int_equal(nlg_buf_append(&fr, "\xc1", 1), 0); /* never-used type byte */
	assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), -EPROTO);
	nlg_buf_free(&fr);
	nlg_buf_free(&out);
}

/* Negative and far timestamps render exactly. */
static void test_frame_time_text(void **state)
{
	static const struct {
		int64_t sec;
		uint32_t nsec;
		const char *want;
	} cases[] = {
	    {0, 0, "0.000000000"},   {1, 5, "1.000000005"},
	    {-1, 0, "-1.000000000"}, {-1, 250000000, "-0.750000000"},
	    {-3, 1, "-2.999999999"}, {17179869184ll, 999999999, "17179869184.999999999"},
	};
	struct nlg_buf fr, out;
	msgpack_packer pk;

	(void)state;
	nlg_buf_init(&fr);
	nlg_buf_init(&out);
	nlg_mp_init(&pk, &fr);
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cases); i++) {
		msgpack_timestamp ts = {.tv_sec = cases[i].sec, .tv_nsec = cases[i].nsec};
		char want[128];
		nlg_buf_reset(&fr);
		nlg_buf_reset(&out);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_str_with_body(&pk, "t", 1);
		msgpack_pack_timestamp(&pk, &ts);
		msgpack_pack_nil(&pk);
		assert_int_equal(nlg_frame_to_json(fr.data, fr.len, &out), (int)fr.len);
		snprintf(want, sizeof(want), "{\"tag\":\"t\",\"time\":%s,\"record\":null}",
			 cases[i].want);
		assert_int_equal(out.len, strlen(want));
		assert_memory_equal(out.data, want, out.len);
	}
	nlg_buf_free(&fr);
	nlg_buf_free(&out);
}

/* A packer with a foreign write callback still gets whole, correct output. */
static int count_write(void *data, const char *buf, size_t len)
{
	struct nlg_buf *b = data;
	return nlg_buf_append(b, buf, len) ? -1 : 0;
}

static void test_foreign_packer(void **state)
{
	struct trec r;
	struct nlg_buf a, b;
	msgpack_packer pa, pb;

	(void)state;
	trec_fill(&r);
	nlg_buf_init(&a);
	nlg_buf_init(&b);
	nlg_mp_init(&pa, &a);
	msgpack_packer_init(&pb, &b, count_write);
	assert_int_equal(nlg_enc_mp_frame(&pa, "x", 1, 42, &tschema, &r), 0);
	assert_int_equal(nlg_enc_mp_frame(&pb, "x", 1, 42, &tschema, &r), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	nlg_buf_free(&a);
	nlg_buf_free(&b);
}

/* ---- the direct encoder against the reference ----
 *
 * nlg_mp_init's packer takes the direct path (plain stores into the buffer);
 * any other packer takes msgpack-c's, item by item. They must agree byte for
 * byte, and the direct one must stay inside the bound it reserves: the
 * buffer here is exactly that big, so ASan sees any store past it. */

static void same_as_reference(const struct nlg_schema *s, const void *rec)
{
	size_t bound = nlg_enc_mp_bound(s), pre = 3;
	struct nlg_buf a = {.data = malloc(pre + bound), .len = pre, .cap = pre + bound};
	struct nlg_buf b;
	msgpack_packer pa, pb;

	assert_non_null(a.data);
	assert_true(!s->mp_max || s->mp_max == nlg_schema_mp_bound(s));
	memcpy(a.data, "pre", pre); /* the record goes after what is there */
	nlg_buf_init(&b);
	nlg_mp_init(&pa, &a);
	msgpack_packer_init(&pb, &b, count_write);
	assert_int_equal(nlg_enc_mp_record(&pa, s, rec), 0);
	assert_int_equal(nlg_enc_mp_record(&pb, s, rec), 0);
	assert_int_equal(a.cap, pre + bound); /* one reserve, and it sufficed */
	assert_memory_equal(a.data, "pre", pre);
	assert_int_equal(a.len - pre, b.len);
	assert_memory_equal(a.data + pre, b.data, b.len);
	free(a.data);
	nlg_buf_free(&b);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Values at and beside every msgpack size boundary, both signs. */
static const int64_t edges[] = {
    0,	   1,	      31,	  32,	     127,	    128,       255, 256, 65535,
    65536, INT32_MAX, UINT32_MAX, 1ll << 32, INT64_MAX,	    -1,	       -32, -33, -128,
    -129,  -32768,    -32769,	  INT32_MIN, -2147483649ll, INT64_MIN,
};

/* Random bytes, with integer fields often set to an edge, addresses often
 * of a real family and strings sometimes unterminated. */
static void random_record(const struct nlg_schema *s, uint8_t *rec)
{
	for (size_t i = 0; i < s->rec_size; i++)
		rec[i] = (uint8_t)rnd();
	for (size_t i = 0; i < s->nfields; i++) {
		const struct nlg_field *f = &s->fields[i];
		uint8_t *p = rec + f->offset;
		int64_t e = edges[rnd() % NLG_ARRAY_SIZE(edges)];
		if (rnd() % 2)
			continue;
		switch (f->type) {
		case NLG_T_U8:
		case NLG_T_U16:
		case NLG_T_U32:
		case NLG_T_U64:
		case NLG_T_I32:
		case NLG_T_I64:
			memcpy(p, &e, f->size); /* little-endian: the low bytes */
			break;
		case NLG_T_ENUM:
			*p = (uint8_t)(rnd() % 16);
			break;
		case NLG_T_ADDR: {
			/* Groups of 0-4 hex digits: IPv6 texts of every length,
			 * on both sides of a fixstr's 31 bytes. */
			struct nlg_addr *a = (struct nlg_addr *)p;
			a->family = rnd() % 2 ? AF_INET6 : rnd() % 2 ? AF_INET : 0;
			for (int g = 0; g < 8; g++) {
				uint16_t v = (uint16_t)(rnd() & (0xffffu >> (4 * (rnd() % 5))));
				a->bytes[2 * g] = (uint8_t)(v >> 8);
				a->bytes[2 * g + 1] = (uint8_t)v;
			}
			break;
		}
		case NLG_T_STR:
			p[rnd() % f->size] = 0;
			break;
		default:
			break;
		}
	}
}

static void test_direct_matches_reference_random(void **state)
{
	const struct nlg_schema *s;
	uint8_t *rec;
	struct trec r;

	(void)state;
	trec_fill(&r);
	same_as_reference(&tschema, &r);
	for (int i = 0; i < 2000; i++) {
		random_record(&tschema, (uint8_t *)&r);
		same_as_reference(&tschema, &r);
	}
	/* Every registered kind: the built-ins and what the test registered. */
	for (size_t k = 0; (s = nlg_schema_at(k)); k++) {
		rec = malloc(s->rec_size);
		assert_non_null(rec);
		memset(rec, 0, s->rec_size);
		same_as_reference(s, rec);
		for (int i = 0; i < 2000; i++) {
			random_record(s, rec);
			same_as_reference(s, rec);
		}
		free(rec);
	}
}

/* A kind with fewer than 16 fields (a fixmap head from the start) and one
 * with enough fields that a record of them all needs map16. */
static void test_direct_map_heads(void **state)
{
	struct nlg_fkey keys[NLG_ARRAY_SIZE(tfields)];
	struct nlg_schema small = tschema;
	struct trec r;

	(void)state;
	memcpy(keys, tkeys, sizeof(keys));
	small.keys = keys;
	small.nfields = 15;
	trec_fill(&r);
	for (uint64_t present = 0; present < 4; present++) {
		r.present = present;
		same_as_reference(&small, &r);
		same_as_reference(&tschema, &r);
	}
}

static int same_record(const struct nlg_sock *rec, void *data)
{
	same_as_reference(&nlg_sock_schema, rec);
	(*(unsigned *)data)++;
	return NLG_CB_OK;
}

static void replay_fixture(const char *name, int ipproto, unsigned *n)
{
	struct nlg_err err = {{0}};
	size_t len;
	uint8_t *buf = read_fixture(name, &len);

	if (nlg_sockdiag_replay(buf, len, ipproto, same_record, n, &err) < 0)
		fail_msg("fixture %s: %s", name, err.msg);
	free(buf);
}

/* The recorded dumps (tests/fixtures/record.sh): real sockets' records. */
static void test_direct_matches_reference_fixtures(void **state)
{
	unsigned n = 0;

	(void)state;
	replay_fixture("sock_tcp4.bin", IPPROTO_TCP, &n);
	replay_fixture("sock_tcp6.bin", IPPROTO_TCP, &n);
	replay_fixture("sock_udp4.bin", IPPROTO_UDP, &n);
	replay_fixture("sock_udp6.bin", IPPROTO_UDP, &n);
	assert_true(n >= 4);
}

/* The frame head written directly (nlg_enc_mp_head, and frame_head with
 * nlg_mp_init's packer) against msgpack-c's: every tag length form and every
 * timestamp form, at their edges. */
static void test_direct_frame_head(void **state)
{
	static const uint64_t times[] = {
	    0,
	    1,
	    999999999ull,
	    1000000000ull,
	    4294967295ull * 1000000000ull,
	    4294967296ull * 1000000000ull,
	    4294967296ull * 1000000000ull + 1,
	    17179869183ull * 1000000000ull + 999999999ull,
	    17179869184ull * 1000000000ull,
	    UINT64_MAX,
	    1700000000123456789ull,
	};
	char tag[300];
	uint8_t head[400];
	struct nlg_buf a, b;
	msgpack_packer pa, pb;

	(void)state;
	memset(tag, 't', sizeof(tag));
	nlg_buf_init(&a);
	nlg_buf_init(&b);
	nlg_mp_init(&pa, &a);
	msgpack_packer_init(&pb, &b, count_write);
	for (size_t tl = 0; tl < sizeof(tag); tl++) {
		for (size_t i = 0; i < NLG_ARRAY_SIZE(times); i++) {
			int n;
			nlg_buf_reset(&a);
			nlg_buf_reset(&b);
			assert_int_equal(nlg_enc_mp_frame_head(&pa, tag, tl, times[i]), 0);
			assert_int_equal(nlg_enc_mp_frame_head(&pb, tag, tl, times[i]), 0);
			assert_int_equal(a.len, b.len);
			assert_memory_equal(a.data, b.data, b.len);
			n = nlg_enc_mp_head(head, sizeof(head), tag, tl, times[i]);
			assert_int_equal(n, (int)b.len);
			assert_memory_equal(head, b.data, b.len);
			assert_int_equal(nlg_enc_mp_head(head, b.len - 1, tag, tl, times[i]),
					 -ENOSPC);
		}
	}
	nlg_buf_free(&a);
	nlg_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf_growth),
	    cmocka_unit_test(test_mp_every_type),
	    cmocka_unit_test(test_absent_groups),
	    cmocka_unit_test(test_json_exact),
	    cmocka_unit_test(test_json_str),
	    cmocka_unit_test(test_sock_roundtrip),
	    cmocka_unit_test(test_addr_text_matches_inet_ntop),
	    cmocka_unit_test(test_frame_timestamp),
	    cmocka_unit_test(test_frame_to_json),
	    cmocka_unit_test(test_frame_to_json_rejects),
	    cmocka_unit_test(test_frame_to_json_all_widths),
	    cmocka_unit_test(test_frame_time_text),
	    cmocka_unit_test(test_foreign_packer),
	    cmocka_unit_test(test_direct_matches_reference_random),
	    cmocka_unit_test(test_direct_map_heads),
	    cmocka_unit_test(test_direct_matches_reference_fixtures),
	    cmocka_unit_test(test_direct_frame_head),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
