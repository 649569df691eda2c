/* Unit tests for core/outq.c over a socketpair: whole-frame drops, gap frames
 * (decoded with msgpack-c: received + announced missed == sent), the gap
 * announced alone once a write makes room (a burst then silence, a reader
 * that stops and resumes), wrap-around with partial writes, memory given
 * back, frame bounds, custom gap framing, unannounced misses counted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "nlgate/encode.h"
#include "nlgate/outq.h"

struct fx {
	int sv[2]; /* [0] the queue writes, [1] the test reads */
	struct nlg_buf hd, body;
	msgpack_packer hpk, bpk;
	struct nlg_buf in;   /* what the reader got */
	size_t off;	     /* parsed up to here */
	struct nlg_buf sent; /* every byte queued, in order, to compare with */
	int tail_gap;	     /* expect_accounted: the stream ends with a gap frame */
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int sz = 4096; /* the kernel doubles it: a few frames fill the socket */

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0);
	assert_int_equal(setsockopt(f->sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	assert_int_equal(setsockopt(f->sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
	nlg_buf_init(&f->hd);
	nlg_buf_init(&f->body);
	nlg_buf_init(&f->in);
	nlg_buf_init(&f->sent);
	nlg_mp_init(&f->hpk, &f->hd);
	nlg_mp_init(&f->bpk, &f->body);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->sv[0] >= 0)
		close(f->sv[0]);
	if (f->sv[1] >= 0)
		close(f->sv[1]);
	nlg_buf_free(&f->hd);
	nlg_buf_free(&f->body);
	nlg_buf_free(&f->in);
	nlg_buf_free(&f->sent);
	free(f);
	return 0;
}

static struct nlg_outq *q_new(size_t max_bytes, size_t max_frames)
{
	struct nlg_outq_conf c = {.max_bytes = max_bytes, .max_frames = max_frames};
	struct nlg_outq *q = nlg_outq_create(&c);

	assert_non_null(q);
	return q;
}

/* Frame ["test", t, {seq = seq, pad = "xx.."}] as two pieces, head and body,
 * the way an output hands it over; the whole frame is pad + ~40 bytes. */
static size_t push_frame(struct fx *f, struct nlg_outq *q, uint64_t seq, size_t pad, int *rc)
{
	static char padding[65536];
	struct iovec iov[2];

	memset(padding, 'x', sizeof(padding));
	nlg_buf_reset(&f->hd);
	nlg_buf_reset(&f->body);
	assert_int_equal(nlg_enc_mp_frame_head(&f->hpk, "test", 4, 1700000000000000000ull + seq),
			 0);
	msgpack_pack_map(&f->bpk, 2);
	msgpack_pack_str_with_body(&f->bpk, "seq", 3);
	msgpack_pack_uint64(&f->bpk, seq);
	msgpack_pack_str_with_body(&f->bpk, "pad", 3);
	msgpack_pack_str_with_body(&f->bpk, padding, pad);
	iov[0] = (struct iovec){.iov_base = f->hd.data, .iov_len = f->hd.len};
	iov[1] = (struct iovec){.iov_base = f->body.data, .iov_len = f->body.len};
	*rc = nlg_outq_push(q, iov, 2);
	if (*rc == 1) {
		assert_int_equal(nlg_buf_append(&f->sent, f->hd.data, f->hd.len), 0);
		assert_int_equal(nlg_buf_append(&f->sent, f->body.data, f->body.len), 0);
	}
	return f->hd.len + f->body.len;
}

static int push(struct fx *f, struct nlg_outq *q, uint64_t seq, size_t pad)
{
	int rc;

	push_frame(f, q, seq, pad, &rc);
	return rc;
}

/* Read at most max bytes now (0: all there is). */
static size_t rd(struct fx *f, size_t max)
{
	size_t got = 0;

	for (;;) {
		size_t want = max ? max - got : 65536;
		ssize_t n;

		if (!want)
			return got;
		assert_int_equal(nlg_buf_reserve(&f->in, want), 0);
		n = recv(f->sv[1], f->in.data + f->in.len, want, MSG_DONTWAIT);
		if (n <= 0) {
			assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
			return got;
		}
		f->in.len += (size_t)n;
		got += (size_t)n;
	}
}

/* Write and read until the queue is empty. */
static void drain(struct fx *f, struct nlg_outq *q)
{
	for (int i = 0; i < 100000 && nlg_outq_len(q); i++) {
		assert_true(nlg_outq_write(q, f->sv[0]) >= 0);
		rd(f, 0);
	}
	assert_int_equal(nlg_outq_len(q), 0);
	rd(f, 0);
}

struct frame {
	char tag[32];
	uint64_t seq;
	uint64_t missed;
};

static int next(struct fx *f, struct frame *fr)
{
	msgpack_unpacked u;
	size_t off = f->off;
	const msgpack_object *a, *m;
	int rc;

	memset(fr, 0, sizeof(*fr));
	msgpack_unpacked_init(&u);
	rc = msgpack_unpack_next(&u, (const char *)f->in.data, f->in.len, &off);
	if (rc == MSGPACK_UNPACK_CONTINUE) {
		msgpack_unpacked_destroy(&u);
		return 0;
	}
	assert_true(rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES);
	a = &u.data;
	assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(a->via.array.size, 3);
	assert_int_equal(a->via.array.ptr[0].type, MSGPACK_OBJECT_STR);
	assert_true(a->via.array.ptr[0].via.str.size < sizeof(fr->tag));
	memcpy(fr->tag, a->via.array.ptr[0].via.str.ptr, a->via.array.ptr[0].via.str.size);
	assert_int_equal(a->via.array.ptr[1].type, MSGPACK_OBJECT_EXT);
	assert_int_equal(a->via.array.ptr[1].via.ext.type, -1);
	m = &a->via.array.ptr[2];
	assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		if (kv->key.via.str.size == 3 && !memcmp(kv->key.via.str.ptr, "seq", 3))
			fr->seq = kv->val.via.u64;
		if (kv->key.via.str.size == 6 && !memcmp(kv->key.via.str.ptr, "missed", 6)) {
			assert_int_equal(kv->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
			fr->missed = kv->val.via.u64;
		}
	}
	msgpack_unpacked_destroy(&u);
	f->off = off;
	return 1;
}

static void expect_seq(struct fx *f, uint64_t seq)
{
	struct frame fr;

	assert_int_equal(next(f, &fr), 1);
	assert_string_equal(fr.tag, "test");
	assert_int_equal(fr.seq, seq);
}

static void expect_gap(struct fx *f, uint64_t missed)
{
	struct frame fr;

	assert_int_equal(next(f, &fr), 1);
	assert_string_equal(fr.tag, "nlgate.gap");
	assert_int_equal(fr.missed, missed);
}

static void expect_end(struct fx *f)
{
	assert_int_equal(f->off, f->in.len);
}

/* Walk the whole stream from its start: test frames in increasing seq, and
 * between two of them (and before the first, and after the last of sent
 * frames 0..sent-1) gap frames announcing exactly the hole. Returns the gap
 * frames seen. */
static uint64_t expect_accounted(struct fx *f, uint64_t sent)
{
	uint64_t next_seq = 0, pending = 0, got = 0, missed = 0, gaps = 0;
	struct frame fr;

	f->off = 0;
	f->tail_gap = 0;
	while (next(f, &fr)) {
		f->tail_gap = !strcmp(fr.tag, "nlgate.gap");
		if (f->tail_gap) {
			assert_true(fr.missed > 0);
			pending += fr.missed;
			missed += fr.missed;
			gaps++;
			continue;
		}
		assert_string_equal(fr.tag, "test");
		assert_true(fr.seq >= next_seq);
		assert_int_equal(fr.seq - next_seq, pending); /* the hole, exactly */
		pending = 0;
		next_seq = fr.seq + 1;
		got++;
	}
	expect_end(f);
	assert_int_equal(sent - next_seq, pending); /* the tail: announced too */
	assert_int_equal(got + missed, sent);
	return gaps;
}

/* Write what the socket takes and, if that freed room, announce: what an
 * output does on EPOLLOUT. */
static int write_announce(struct fx *f, struct nlg_outq *q)
{
	uint64_t before = nlg_outq_stats(q)->written;
	int w = nlg_outq_write(q, f->sv[0]);

	assert_true(w >= 0);
	if (nlg_outq_stats(q)->written != before && nlg_outq_announce(q) > 0)
		w = nlg_outq_write(q, f->sv[0]);
	return w;
}

/* ---- tests ---- */

/* A full queue drops the frame whole and counts it; nothing is written until
 * asked; the next frame that fits carries the gap frame in front of it. */
static void test_whole_frame_drops(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(4096, 0);
	const struct nlg_outq_stats *st = nlg_outq_stats(q);
	size_t len = 0;
	int rc;

	for (uint64_t s = 0; s < 4; s++) {
		len += push_frame(f, q, s, 960, &rc);
		assert_int_equal(rc, 1);
	}
	assert_int_equal(nlg_outq_len(q), len);
	assert_true(len + 1000 > 4096);
	assert_int_equal(push(f, q, 4, 960), 0);
	assert_int_equal(push(f, q, 5, 10), 1); /* a small one still fits */
	assert_int_equal(push(f, q, 6, 960), 0);
	assert_int_equal(nlg_outq_missed(q), 1); /* the gap rode with frame 5 */
	assert_int_equal(st->frames, 5);
	assert_int_equal(st->dropped, 2);
	assert_int_equal(st->gaps, 1);
	assert_int_equal(rd(f, 0), 0); /* push never writes */

	drain(f, q);
	for (uint64_t s = 0; s < 4; s++)
		expect_seq(f, s);
	expect_gap(f, 1);
	expect_seq(f, 5);
	expect_end(f);

	assert_int_equal(push(f, q, 7, 10), 1);
	drain(f, q);
	expect_gap(f, 1);
	expect_seq(f, 7);
	expect_end(f);
	assert_int_equal(st->gaps, 2);
	assert_int_equal(st->written, f->in.len);
	assert_int_equal(st->bytes, f->in.len);
	nlg_outq_destroy(q);
}

/* A reader slower than the writer, reading odd amounts: the ring fills,
 * wraps, writes partially and drops, over and over. The stream is whole
 * frames in order, and every frame is received or announced as missed. */
static void test_gap_accounting(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(48 << 10, 0);
	const struct nlg_outq_stats *st = nlg_outq_stats(q);
	uint64_t n = 6000, got = 0, missed = 0, gaps = 0, last = 0;
	struct frame fr;
	int first = 1, partial = 0;

	for (uint64_t s = 0; s < n; s++) {
		push(f, q, s, 200 + (size_t)(s * 7919 % 900));
		if (s % 8 == 7) {
			int w = nlg_outq_write(q, f->sv[0]);
			assert_true(w >= 0);
			partial += w == 1;
			rd(f, 2048 + (size_t)(s * 31 % 4096));
		}
	}
	drain(f, q);
	assert_int_equal(push(f, q, n, 10), 1); /* carries the last gap, if any */
	drain(f, q);
	while (next(f, &fr)) {
		if (!strcmp(fr.tag, "nlgate.gap")) {
			assert_true(fr.missed > 0);
			missed += fr.missed;
			gaps++;
			continue;
		}
		assert_string_equal(fr.tag, "test");
		assert_true(first || fr.seq > last);
		first = 0;
		last = fr.seq;
		got++;
	}
	expect_end(f);
	assert_int_equal(last, n);
	assert_int_equal(got + missed, n + 1);
	assert_true(missed > 0);
	assert_true(partial > 0);
	assert_int_equal(nlg_outq_missed(q), 0);
	assert_int_equal(st->dropped, missed);
	assert_int_equal(st->gaps, gaps);
	assert_int_equal(st->frames, got);
	assert_int_equal(st->bytes, f->in.len);
	assert_int_equal(st->written, f->in.len);
	nlg_outq_destroy(q);
}

/* A reader that keeps up, barely: the ring (64 KiB, the bound) fills, wraps
 * and is written in two pieces, partially, many times over; what arrives is
 * what was pushed, byte for byte. */
static void test_wrap_partial_writes(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(64 << 10, 0);
	size_t through = 0, since_empty = 0, most = 0;
	int partial = 0;

	for (uint64_t s = 0; through < (1u << 20); s++) {
		size_t len;
		int rc, w;

		/* Room for the next (at most ~3 KB) frame, reading as needed. */
		while (nlg_outq_len(q) > (60u << 10)) {
			w = nlg_outq_write(q, f->sv[0]);
			assert_true(w >= 0);
			rd(f, 3000);
		}
		len = push_frame(f, q, s, 300 + (size_t)(s * 131 % 2500), &rc);
		assert_int_equal(rc, 1);
		through += len;
		since_empty += len;
		w = nlg_outq_write(q, f->sv[0]);
		assert_true(w >= 0);
		partial += w == 1;
		if (!w)
			since_empty = 0; /* the ring starts over at 0 */
		most = since_empty > most ? since_empty : most;
		if (s % 4 == 3)
			rd(f, 1000 + (size_t)(s * 17 % 7000));
	}
	drain(f, q);
	/* Bytes pushed without the ring emptying, past its size: it wrapped. */
	assert_true(most > 2 * (64u << 10));
	assert_true(partial > 100);
	assert_int_equal(nlg_outq_stats(q)->dropped, 0);
	assert_int_equal(nlg_outq_cap(q), 64u << 10); /* not freed: at most the keep size */
	assert_int_equal(f->in.len, f->sent.len);
	assert_memory_equal(f->in.data, f->sent.data, f->sent.len);
	nlg_outq_destroy(q);
}

/* A burst grows the ring; once it is written out the memory goes back. A
 * small queue keeps its buffer. */
static void test_memory_release(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(4u << 20, 0);

	assert_int_equal(nlg_outq_cap(q), 0); /* nothing until the first push */
	for (uint64_t s = 0; s < 1000; s++)
		assert_int_equal(push(f, q, s, 1000), 1);
	assert_true(nlg_outq_cap(q) >= nlg_outq_len(q));
	assert_true(nlg_outq_cap(q) >= (1u << 20));
	drain(f, q);
	assert_int_equal(nlg_outq_cap(q), 0);
	for (uint64_t s = 0; s < 1000; s++)
		expect_seq(f, s);
	expect_end(f);

	assert_int_equal(push(f, q, 1000, 1000), 1);
	assert_int_equal(nlg_outq_cap(q), 64u << 10);
	drain(f, q);
	assert_int_equal(nlg_outq_cap(q), 64u << 10);
	expect_seq(f, 1000);
	expect_end(f);
	nlg_outq_destroy(q);
}

/* A frame larger than the bound can never be taken, even by an empty queue;
 * nothing is allocated for it. */
static void test_frame_over_bound(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(4096, 0);

	assert_int_equal(push(f, q, 0, 5000), 0);
	assert_int_equal(push(f, q, 1, 4090), 0); /* the bound counts the head too */
	assert_int_equal(nlg_outq_cap(q), 0);
	assert_int_equal(nlg_outq_missed(q), 2);
	assert_int_equal(push(f, q, 2, 100), 1);
	assert_int_equal(nlg_outq_cap(q), 4096); /* never above the bound */
	drain(f, q);
	expect_gap(f, 2);
	expect_seq(f, 2);
	expect_end(f);
	assert_int_equal(nlg_outq_stats(q)->dropped, 2);
	nlg_outq_destroy(q);
}

/* max_frames bounds queued frames (a gap frame rides with its frame); a
 * frame leaves the count once its last byte is written. */
static void test_max_frames(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(1u << 20, 3);
	const struct nlg_outq_stats *st = nlg_outq_stats(q);
	uint64_t base, len0;

	for (uint64_t s = 0; s < 3; s++)
		assert_int_equal(push(f, q, s, 10), 1);
	assert_int_equal(push(f, q, 3, 10), 0);
	assert_int_equal(nlg_outq_write(q, f->sv[0]), 0);
	assert_int_equal(push(f, q, 4, 10), 1); /* gap + 4: one entry */
	for (uint64_t s = 5; s < 7; s++)
		assert_int_equal(push(f, q, s, 10), 1);
	assert_int_equal(push(f, q, 7, 10), 0);
	drain(f, q);
	for (uint64_t s = 0; s < 3; s++)
		expect_seq(f, s);
	expect_gap(f, 1);
	for (uint64_t s = 4; s < 7; s++)
		expect_seq(f, s);
	expect_end(f);

	/* A frame half written still counts; it leaves once its last byte
	 * has. Three 20 KB frames, a socket that takes ~9 KB at a time. */
	base = st->written;
	assert_int_equal(base, st->bytes);
	assert_int_equal(push(f, q, 8, 20000), 1); /* with the gap for 7: one entry */
	len0 = st->bytes - base;
	for (uint64_t s = 9; s < 11; s++)
		assert_int_equal(push(f, q, s, 20000), 1);
	assert_int_equal(nlg_outq_write(q, f->sv[0]), 1);
	assert_true(st->written - base < len0);
	while (st->written - base < len0) {
		assert_int_equal(push(f, q, 99, 10), 0);
		rd(f, 0);
		assert_true(nlg_outq_write(q, f->sv[0]) >= 0);
	}
	assert_int_equal(push(f, q, 11, 10), 1);
	drain(f, q);
	assert_int_equal(st->frames, 3 + 3 + 4);
	nlg_outq_destroy(q);
}

/* The gap frame alone: not while the queue is full, at once when a write
 * has made room; it is an entry of its own under max_frames, counted as a
 * gap and in bytes but not as a frame. */
static void test_announce_alone(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(4096, 5);
	const struct nlg_outq_stats *st = nlg_outq_stats(q);
	struct nlg_outq *scratch = q_new(1 << 20, 0);
	uint64_t s = 0;
	size_t len = 0, over;
	int rc;

	assert_int_equal(nlg_outq_announce(q), 0); /* nothing missed */
	for (; s < 4; s++) {
		len += push_frame(f, q, s, 960, &rc);
		assert_int_equal(rc, 1);
	}
	/* One more frame fills the queue to the byte: no room for a gap. */
	over = push_frame(f, scratch, s, 100, &rc) - 100;
	nlg_outq_destroy(scratch);
	assert_true(4096 - len - over >= 32 && 4096 - len - over < 256);
	assert_int_equal(push(f, q, s++, 4096 - len - over), 1);
	assert_int_equal(nlg_outq_len(q), 4096);
	assert_int_equal(push(f, q, s++, 960), 0);
	assert_int_equal(push(f, q, s++, 960), 0);
	assert_int_equal(nlg_outq_announce(q), 0); /* it does not fit yet */
	assert_int_equal(nlg_outq_missed(q), 2);
	assert_int_equal(st->gaps, 0);

	assert_int_equal(nlg_outq_write(q, f->sv[0]), 0); /* the socket takes it all */
	assert_int_equal(nlg_outq_announce(q), 1);
	assert_int_equal(nlg_outq_missed(q), 0);
	assert_int_equal(nlg_outq_announce(q), 0); /* once */
	drain(f, q);
	assert_int_equal(expect_accounted(f, s), 1);
	assert_int_equal(st->frames, 5);
	assert_int_equal(st->dropped, 2);
	assert_int_equal(st->gaps, 1);
	assert_int_equal(st->bytes, f->in.len);

	/* Under max_frames the gap frame alone takes an entry. */
	for (uint64_t i = 0; i < 5; i++)
		assert_int_equal(push(f, q, s++, 10), 1);
	assert_int_equal(push(f, q, s++, 10), 0);
	assert_int_equal(nlg_outq_announce(q), 0); /* five entries queued */
	assert_int_equal(nlg_outq_write(q, f->sv[0]), 0);
	assert_int_equal(nlg_outq_announce(q), 1);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(push(f, q, s++, 10), 1);
	assert_int_equal(push(f, q, s++, 10), 0); /* the gap is the fifth */
	drain(f, q);
	assert_int_equal(nlg_outq_announce(q), 1);
	drain(f, q);
	assert_int_equal(expect_accounted(f, s), 3);
	nlg_outq_destroy(q);
}

/* A burst far past the bound, then nothing more: every dropped frame is
 * announced anyway, once the reader catches up, with no frame to carry it. */
static void test_burst_then_silence(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(16 << 10, 0);
	uint64_t n = 3000;

	for (uint64_t s = 0; s < n; s++) {
		push(f, q, s, 100 + (size_t)(s * 13 % 300));
		if (s % 50 == 49)
			write_announce(f, q); /* the reader does not read: little moves */
	}
	assert_true(nlg_outq_missed(q) > 0);
	/* Silence: the reader reads, the queue writes and announces. */
	for (int i = 0; i < 100000 && (nlg_outq_len(q) || nlg_outq_missed(q)); i++) {
		write_announce(f, q);
		rd(f, 1000);
	}
	drain(f, q);
	assert_int_equal(nlg_outq_missed(q), 0);
	assert_true(expect_accounted(f, n) >= 1);
	assert_true(f->tail_gap); /* the burst's tail, announced alone */
	assert_int_equal(nlg_outq_stats(q)->unannounced, 0);
	nlg_outq_destroy(q);
}

/* A reader that stops for a while and resumes, several times, reading odd
 * amounts; frames keep coming at their own pace. Each hole is announced
 * exactly, some of them before any later frame arrives. */
static void test_reader_resumes(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(24 << 10, 0);
	uint64_t s = 0, alone = 0;

	for (int round = 0; round < 6; round++) {
		/* Stopped: frames pile up and overflow. */
		for (int i = 0; i < 400; i++, s++)
			push(f, q, s, 50 + (size_t)(s * 7 % 400));
		assert_true(nlg_outq_missed(q) > 0);
		/* Resumed, with no frame coming: the announcement goes alone. */
		for (int i = 0; i < 100000 && (nlg_outq_len(q) || nlg_outq_missed(q)); i++) {
			uint64_t gaps = nlg_outq_stats(q)->gaps;
			write_announce(f, q);
			alone += nlg_outq_stats(q)->gaps - gaps;
			rd(f, 500 + (size_t)(s * 31 % 3000));
		}
		/* Keeping up for a while. */
		for (int i = 0; i < 100; i++, s++) {
			assert_int_equal(push(f, q, s, 200), 1);
			write_announce(f, q);
			rd(f, 0);
		}
	}
	drain(f, q);
	assert_true(alone >= 6);
	assert_int_equal(expect_accounted(f, s), nlg_outq_stats(q)->gaps);
	assert_int_equal(nlg_outq_stats(q)->written, f->in.len);
	nlg_outq_destroy(q);
}

/* What is still missed when a queue goes is counted unannounced, in the
 * shared total too; a failing gap framer keeps the count for later. */
static void test_unannounced(void **state)
{
	struct fx *f = *state;
	struct nlg_outq_stats total = {0};
	struct nlg_outq_conf c = {.max_bytes = 2000, .total = &total};
	struct nlg_outq *q = nlg_outq_create(&c);

	assert_non_null(q);
	assert_int_equal(push(f, q, 0, 1500), 1);
	assert_int_equal(push(f, q, 1, 1500), 0);
	assert_int_equal(push(f, q, 2, 1500), 0);
	nlg_outq_destroy(q);
	assert_int_equal(total.dropped, 2);
	assert_int_equal(total.unannounced, 2);

	q = nlg_outq_create(&c);
	assert_non_null(q);
	assert_int_equal(push(f, q, 0, 1500), 1);
	assert_int_equal(push(f, q, 1, 1500), 0);
	drain(f, q);
	assert_int_equal(nlg_outq_announce(q), 1);
	nlg_outq_destroy(q);
	assert_int_equal(total.unannounced, 2); /* announced: not counted */
}

static int gap_text(void *data, uint64_t missed, uint8_t *buf, size_t cap)
{
	int *calls = data;
	int n = snprintf((char *)buf, cap, "GAP %llu\n", (unsigned long long)missed);

	(*calls)++;
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static int gap_fails(void *data, uint64_t missed, uint8_t *buf, size_t cap)
{
	(void)data;
	(void)missed;
	(void)buf;
	(void)cap;
	return -ENOSPC;
}

/* Another output frames its gap its own way (a NATS PUB, a Forward entry). */
static void test_custom_gap(void **state)
{
	struct fx *f = *state;
	int calls = 0;
	struct nlg_outq_conf c = {.max_bytes = 100, .gap = gap_text, .gap_data = &calls};
	struct nlg_outq *q = nlg_outq_create(&c);
	struct iovec iov = {.iov_base = "0123456789", .iov_len = 10};

	assert_non_null(q);
	for (int i = 0; i < 10; i++)
		assert_int_equal(nlg_outq_push(q, &iov, 1), 1);
	assert_int_equal(nlg_outq_push(q, &iov, 1), 0);
	assert_int_equal(nlg_outq_push(q, &iov, 1), 0);
	assert_int_equal(calls, 0);
	drain(f, q);
	assert_int_equal(nlg_outq_push(q, &iov, 1), 1);
	assert_int_equal(calls, 1);
	drain(f, q);
	assert_int_equal(f->in.len, 100 + 6 + 10);
	assert_memory_equal(f->in.data + 100, "GAP 2\n0123456789", 16);
	nlg_outq_destroy(q);

	/* A framer that fails: the frame is dropped too, the count grows;
	 * announce queues nothing and keeps the count. */
	c = (struct nlg_outq_conf){.max_bytes = 100, .gap = gap_fails};
	q = nlg_outq_create(&c);
	assert_non_null(q);
	for (int i = 0; i < 11; i++)
		nlg_outq_push(q, &iov, 1);
	drain(f, q);
	assert_int_equal(nlg_outq_push(q, &iov, 1), 0);
	assert_int_equal(nlg_outq_missed(q), 2);
	assert_int_equal(nlg_outq_announce(q), 0);
	assert_int_equal(nlg_outq_missed(q), 2);
	assert_int_equal(nlg_outq_len(q), 0);
	nlg_outq_destroy(q);
}

/* The peer is gone: a negative errno, and no SIGPIPE. */
static void test_peer_gone(void **state)
{
	struct fx *f = *state;
	struct nlg_outq *q = q_new(1 << 20, 0);

	assert_int_equal(push(f, q, 0, 10), 1);
	close(f->sv[1]);
	f->sv[1] = -1;
	assert_int_equal(nlg_outq_write(q, f->sv[0]), -EPIPE);
	assert_int_equal(nlg_outq_len(q), nlg_outq_stats(q)->bytes);
	nlg_outq_destroy(q);
}

/* Queues of one output add to one total that outlives them. */
static void test_shared_total_and_args(void **state)
{
	struct fx *f = *state;
	struct nlg_outq_stats total = {0};
	struct nlg_outq_conf c = {.max_bytes = 2000, .total = &total};
	struct nlg_outq *a = nlg_outq_create(&c), *b = nlg_outq_create(&c);
	struct iovec none = {.iov_base = "", .iov_len = 0};

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(push(f, a, 0, 1000), 1);
	assert_int_equal(push(f, a, 1, 1000), 0);
	assert_int_equal(push(f, b, 0, 100), 1);
	nlg_outq_destroy(a);
	assert_int_equal(push(f, b, 1, 100), 1);
	drain(f, b);
	assert_int_equal(total.frames, 3);
	assert_int_equal(total.dropped, 1);
	assert_int_equal(total.gaps, 0);
	assert_int_equal(total.written, nlg_outq_stats(b)->written);
	assert_int_equal(total.bytes, nlg_outq_stats(b)->bytes + f->sent.len - f->in.len);

	assert_int_equal(nlg_outq_push(b, &none, 1), -EINVAL);
	assert_int_equal(nlg_outq_push(b, NULL, 0), -EINVAL);
	assert_int_equal(nlg_outq_write(b, f->sv[0]), 0); /* empty: nothing to do */
	nlg_outq_destroy(b);
	nlg_outq_destroy(NULL);
	c.max_bytes = 0;
	assert_null(nlg_outq_create(&c));
}

/* The feed's head is nlg_enc_mp_frame_head byte for byte, in a fixed
 * buffer; the default gap frame decodes as the feed's gap. */
static void test_mp_framing(void **state)
{
	struct fx *f = *state;
	uint8_t head[NLG_OUTQ_HEAD_MAX], gap[NLG_OUTQ_GAP_MAX];
	char tag[300];
	int n;

	memset(tag, 't', sizeof(tag));
	for (size_t tl = 1; tl <= 255; tl += 127) {
		for (int k = 0; k < 3; k++) {
			uint64_t t = k == 0   ? 1000000000ull			  /* timestamp32 */
				     : k == 1 ? 1700000000123456789ull		  /* timestamp64 */
					      : (1ull << 34) * 1000000000ull + 5; /* 96 */
			nlg_buf_reset(&f->hd);
			assert_int_equal(nlg_enc_mp_frame_head(&f->hpk, tag, tl, t), 0);
			n = nlg_outq_mp_head(head, sizeof(head), tag, tl, t);
			assert_int_equal(n, f->hd.len);
			assert_memory_equal(head, f->hd.data, f->hd.len);
			assert_int_equal(nlg_outq_mp_head(head, (size_t)n - 1, tag, tl, t),
					 -ENOSPC);
		}
	}
	assert_int_equal(nlg_outq_mp_head(head, sizeof(head), tag, 300, 0), -ENOSPC);

	n = nlg_outq_gap_mp(NULL, 123456789012ull, gap, sizeof(gap));
	assert_true(n > 0 && n < 64);
	assert_int_equal(nlg_buf_append(&f->in, gap, (size_t)n), 0);
	expect_gap(f, 123456789012ull);
	expect_end(f);
	assert_int_equal(nlg_outq_gap_mp(NULL, 1, gap, 10), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_whole_frame_drops, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_accounting, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_wrap_partial_writes, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_memory_release, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_frame_over_bound, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_max_frames, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_announce_alone, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_burst_then_silence, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reader_resumes, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unannounced, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_custom_gap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_peer_gone, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_shared_total_and_args, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_mp_framing, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
