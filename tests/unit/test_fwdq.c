/* Unit tests for core/fwdq.c, the Forward output's message queue: messages
 * closed by size, tag change and close, read back with msgpack-c; acks free
 * them (in order or not), a rewind writes them again as resends; the bound
 * in bytes and in records drops whole records, and the gap record that
 * announces them goes in as soon as room is made; without acks a write
 * frees. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nlgate/encode.h"
#include "nlgate/forward.h"
#include "nlgate/fwdq.h"

struct got {
	char tag[64];
	unsigned n;	/* entries */
	uint64_t first; /* the first entry's "i" (or "missed" for a gap) */
	char id[32];	/* the chunk option, "" without */
	size_t len;	/* bytes of the message */
};

/* The body {"i": i}. */
static size_t body(uint8_t *b, uint32_t i)
{
	b[0] = 0x81;
	b[1] = 0xa1;
	b[2] = 'i';
	b[3] = 0xce;
	b[4] = (uint8_t)(i >> 24);
	b[5] = (uint8_t)(i >> 16);
	b[6] = (uint8_t)(i >> 8);
	b[7] = (uint8_t)i;
	return 8;
}

static int push(struct nlg_fwdq *q, const char *tag, uint32_t i)
{
	uint8_t b[8];

	return nlg_fwdq_push(q, tag, strlen(tag), 1700000000000000000ull + i, b, body(b, i));
}

/* Decode the k-th unwritten message (from wr on) into g. */
static void peek(struct nlg_fwdq *q, int k, struct got *g)
{
	struct iovec iov[16];
	int n = nlg_fwdq_iov(q, iov, 16);
	msgpack_unpacked u, e;
	msgpack_object *a;
	size_t off = 0, eoff = 0;

	assert_true(k < n);
	memset(g, 0, sizeof(*g));
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, iov[k].iov_base, iov[k].iov_len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, iov[k].iov_len);
	g->len = off;
	a = u.data.via.array.ptr;
	memcpy(g->tag, a[0].via.str.ptr, a[0].via.str.size);
	msgpack_unpacked_init(&e);
	while (msgpack_unpack_next(&e, a[1].via.bin.ptr, a[1].via.bin.size, &eoff) ==
	       MSGPACK_UNPACK_SUCCESS) {
		if (!g->n++)
			g->first = e.data.via.array.ptr[1].via.map.ptr[0].val.via.u64;
	}
	assert_int_equal(eoff, a[1].via.bin.size);
	assert_int_equal(a[2].via.map.ptr[0].val.via.u64, g->n);
	if (a[2].via.map.size == 2)
		memcpy(g->id, a[2].via.map.ptr[1].val.via.str.ptr,
		       a[2].via.map.ptr[1].val.via.str.size);
	msgpack_unpacked_destroy(&e);
	msgpack_unpacked_destroy(&u);
}

static size_t unwritten(struct nlg_fwdq *q)
{
	struct iovec iov[64];
	int n = nlg_fwdq_iov(q, iov, 64);
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

static void test_batching(void **state)
{
	struct nlg_fwdq_conf c = {
	    .tag_prefix = "h1", .size = 3, .chunk = 1 << 20, .max_bytes = 1 << 20, .ack = 1};
	struct nlg_fwdq *q = nlg_fwdq_create(&c);
	struct got g;

	(void)state;
	assert_non_null(q);
	assert_int_equal(push(q, "a", 1), NLG_FWDQ_TAKEN);
	assert_int_equal(push(q, "a", 2), NLG_FWDQ_TAKEN);
	assert_int_not_equal(nlg_fwdq_opened(q), 0);
	assert_int_equal(push(q, "a", 3), NLG_FWDQ_TAKEN | NLG_FWDQ_CLOSED); /* size */
	assert_int_equal(nlg_fwdq_opened(q), 0);
	assert_int_equal(push(q, "a", 4), NLG_FWDQ_TAKEN);
	assert_int_equal(push(q, "b", 5), NLG_FWDQ_TAKEN | NLG_FWDQ_CLOSED); /* tag change */
	assert_int_equal(nlg_fwdq_close(q), 1);
	assert_int_equal(nlg_fwdq_close(q), 0);
	peek(q, 0, &g);
	assert_string_equal(g.tag, "h1.a");
	assert_int_equal(g.n, 3);
	assert_int_equal(g.first, 1);
	assert_int_equal(strlen(g.id), NLG_FWD_ID_LEN);
	peek(q, 1, &g);
	assert_string_equal(g.tag, "h1.a");
	assert_int_equal(g.n, 1);
	peek(q, 2, &g);
	assert_string_equal(g.tag, "h1.b");
	assert_int_equal(g.first, 5);
	assert_int_equal(nlg_fwdq_entries(q), 5);
	assert_int_equal(nlg_fwdq_stats(q)->chunks, 3);
	assert_int_equal(nlg_fwdq_stats(q)->queued, 5);
	assert_int_equal(push(q, "", 1), NLG_FWDQ_TAKEN); /* an empty tag is a tag */
	{
		uint8_t b[1] = {0xc0};
		char long_tag[300];
		memset(long_tag, 'x', sizeof(long_tag));
		assert_int_equal(nlg_fwdq_push(q, long_tag, 256, 0, b, 1), -EINVAL);
		assert_int_equal(nlg_fwdq_push(q, "t", 1, 0, b, 0), -EINVAL);
	}
	nlg_fwdq_destroy(q);
}

static void test_acks_and_rewind(void **state)
{
	struct nlg_fwdq_conf c = {.size = 2, .chunk = 1 << 20, .max_bytes = 1 << 20, .ack = 1};
	struct nlg_fwdq *q = nlg_fwdq_create(&c);
	struct got g1, g2, g3;
	uint64_t unacked, unsent;
	size_t all;

	(void)state;
	for (uint32_t i = 1; i <= 6; i++)
		push(q, "t", i);
	peek(q, 0, &g1);
	peek(q, 1, &g2);
	peek(q, 2, &g3);
	assert_string_not_equal(g1.id, g2.id);
	all = unwritten(q);
	assert_int_equal(all, g1.len + g2.len + g3.len);
	/* half of the first, then the rest of it and part of the second */
	nlg_fwdq_consume(q, g1.len / 2);
	assert_int_equal(nlg_fwdq_stats(q)->sent, 0);
	assert_int_equal(nlg_fwdq_oldest(q), 0);
	nlg_fwdq_consume(q, g1.len - g1.len / 2 + 5);
	assert_int_equal(nlg_fwdq_stats(q)->sent, 2);
	assert_int_not_equal(nlg_fwdq_oldest(q), 0);
	assert_int_equal(nlg_fwdq_unacked(q), 1);
	assert_int_equal(unwritten(q), all - g1.len - 5);
	nlg_fwdq_held(q, &unacked, &unsent);
	assert_int_equal(unacked, 2);
	assert_int_equal(unsent, 4);
	/* the link breaks: everything again, oldest first; acks on the new one */
	nlg_fwdq_rewind(q);
	assert_int_equal(unwritten(q), all);
	nlg_fwdq_consume(q, all);
	assert_int_equal(nlg_fwdq_stats(q)->sent, 6);
	assert_int_equal(nlg_fwdq_stats(q)->resent, 2);
	assert_false(nlg_fwdq_unwritten(q));
	assert_int_equal(nlg_fwdq_unacked(q), 3);
	/* out of order, unknown and repeated ids */
	assert_int_equal(nlg_fwdq_ack(q, g2.id, strlen(g2.id)), 1);
	assert_int_equal(nlg_fwdq_ack(q, g2.id, strlen(g2.id)), 0);
	assert_int_equal(nlg_fwdq_ack(q, "nope", 4), 0);
	assert_int_equal(nlg_fwdq_ack(q, g1.id, strlen(g1.id)), 1);
	assert_int_equal(nlg_fwdq_stats(q)->acked, 4);
	assert_int_equal(nlg_fwdq_entries(q), 2);
	assert_int_equal(nlg_fwdq_ack(q, g3.id, strlen(g3.id)), 1);
	assert_int_equal(nlg_fwdq_entries(q), 0);
	assert_int_equal(nlg_fwdq_bytes(q), 0);
	assert_int_equal(nlg_fwdq_oldest(q), 0);
	assert_int_equal(nlg_fwdq_stats(q)->chunks_acked, 3);
	/* buffers come back from the spares */
	for (uint32_t i = 1; i <= 6; i++)
		push(q, "t", i);
	assert_int_equal(nlg_fwdq_stats(q)->chunks, 6);
	nlg_fwdq_destroy(q);
}

static void test_no_ack(void **state)
{
	struct nlg_fwdq_conf c = {.size = 2, .chunk = 1 << 20, .max_bytes = 1 << 20};
	struct nlg_fwdq *q = nlg_fwdq_create(&c);
	struct got g;

	(void)state;
	for (uint32_t i = 1; i <= 4; i++)
		push(q, "t", i);
	peek(q, 0, &g);
	assert_string_equal(g.id, ""); /* no chunk option */
	nlg_fwdq_consume(q, g.len);
	assert_int_equal(nlg_fwdq_entries(q), 2); /* freed once written */
	assert_int_equal(nlg_fwdq_unacked(q), 0);
	nlg_fwdq_consume(q, 3);
	nlg_fwdq_rewind(q); /* a message cut in the middle starts over */
	peek(q, 0, &g);
	assert_int_equal(g.first, 3);
	nlg_fwdq_consume(q, g.len);
	assert_int_equal(nlg_fwdq_entries(q), 0);
	assert_int_equal(nlg_fwdq_stats(q)->sent, 4);
	nlg_fwdq_destroy(q);
}

/* Records dropped while full are announced by one gap record once acks
 * make room, and received + announced = pushed. */
static void test_bound_and_gap(void **state)
{
	struct nlg_fwdq_conf c = {
	    .tag_prefix = "p", .size = 100, .chunk = 4096, .max_bytes = 8192, .ack = 1};
	struct nlg_fwdq *q = nlg_fwdq_create(&c);
	unsigned taken = 0, dropped = 0, got = 0, gaps = 0;
	uint64_t missed = 0;
	uint32_t i;
	struct got g;

	(void)state;
	for (i = 1; i <= 2000; i++) {
		int rc = push(q, "t", i);
		if (rc & NLG_FWDQ_TAKEN)
			taken++;
		else
			dropped++;
		assert_true(nlg_fwdq_bytes(q) <= c.max_bytes);
	}
	assert_true(dropped > 0);
	assert_int_equal(nlg_fwdq_missed(q), dropped);
	assert_int_equal(nlg_fwdq_stats(q)->dropped, dropped);
	assert_int_equal(nlg_fwdq_announce(q), 0); /* still full */
	/* write and acknowledge everything: room, and the gap goes in */
	for (int round = 0; round < 3; round++) {
		nlg_fwdq_close(q);
		while (nlg_fwdq_unwritten(q)) {
			peek(q, 0, &g);
			if (!strcmp(g.tag, "p.nlgate.gap")) {
				gaps++;
				missed += g.first; /* the gap's "missed" */
			} else {
				assert_string_equal(g.tag, "p.t");
				got += g.n;
			}
			nlg_fwdq_consume(q, g.len);
			assert_int_equal(nlg_fwdq_ack(q, g.id, strlen(g.id)), 1);
		}
		nlg_fwdq_announce(q);
	}
	assert_int_equal(gaps, 1);
	assert_int_equal(missed, dropped);
	assert_int_equal(got, taken);
	assert_int_equal(got + missed, 2000);
	assert_int_equal(nlg_fwdq_stats(q)->gaps, 1);
	assert_int_equal(nlg_fwdq_stats(q)->acked, taken); /* gaps are not records */
	nlg_fwdq_destroy(q);
}

static void test_record_bound(void **state)
{
	struct nlg_fwdq_conf c = {
	    .size = 1000, .chunk = 1 << 20, .max_bytes = 1 << 20, .max_records = 10};
	struct nlg_fwdq *q = nlg_fwdq_create(&c);
	unsigned taken = 0;

	(void)state;
	for (uint32_t i = 1; i <= 50; i++)
		taken += push(q, "t", i) & NLG_FWDQ_TAKEN;
	assert_int_equal(taken, 10);
	assert_int_equal(nlg_fwdq_entries(q), 10);
	assert_int_equal(nlg_fwdq_missed(q), 40);
	/* a body over the whole bound is dropped, not refused */
	{
		static uint8_t big[(1 << 20) + 1];
		big[0] = 0xc0;
		assert_int_equal(nlg_fwdq_push(q, "t", 1, 0, big, sizeof(big)), 0);
		assert_int_equal(nlg_fwdq_missed(q), 41);
	}
	nlg_fwdq_destroy(q);
	c.max_bytes = 0;
	assert_null(nlg_fwdq_create(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batching),	 cmocka_unit_test(test_acks_and_rewind),
	    cmocka_unit_test(test_no_ack),	 cmocka_unit_test(test_bound_and_gap),
	    cmocka_unit_test(test_record_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
