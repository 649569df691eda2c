/* core/ring.c: single-thread checks of the slot arithmetic, the drop count and
 * the wake-up protocol, then a worker thread handing 10 million records to an
 * nlg_loop, every record checked for order and contents. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nlgate/common.h"
#include "nlgate/loop.h"
#include "nlgate/ring.h"

/* 64 bytes: a sequence number, words derived from it, and a checksum over
 * all of them, so a torn or stale slot cannot pass for a good one. */
struct trec {
	uint64_t seq;
	uint64_t w[6];
	uint64_t sum;
};

static uint64_t trec_sum(const struct trec *t)
{
	uint64_t h = t->seq ^ 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < 6; i++)
		h = (h ^ t->w[i]) * 0x100000001b3ull;
	return h;
}

static void trec_fill(struct trec *t, uint64_t seq)
{
	t->seq = seq;
	for (int i = 0; i < 6; i++)
		t->w[i] = seq * (2 * (uint64_t)i + 3) + (uint64_t)i;
	t->sum = trec_sum(t);
}

static int trec_ok(const struct trec *t)
{
	for (int i = 0; i < 6; i++)
		if (t->w[i] != t->seq * (2 * (uint64_t)i + 3) + (uint64_t)i)
			return 0;
	return t->sum == trec_sum(t);
}

static int readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ---- single thread ------------------------------------------------------ */

struct seen {
	uint64_t next; /* expected seq */
	size_t calls, runs[8], bad;
	int verdict; /* what fn returns */
};

static int collect(void *data, const void *slots, size_t n)
{
	struct seen *s = data;
	const struct trec *t = slots;

	if (s->calls < NLG_ARRAY_SIZE(s->runs))
		s->runs[s->calls] = n;
	s->calls++;
	for (size_t i = 0; i < n; i++, s->next++)
		if (t[i].seq != s->next || !trec_ok(&t[i]))
			s->bad++;
	return s->verdict;
}

static void push_seq(struct nlg_ring *r, uint64_t *seq, int n, int *ok, int *full)
{
	for (int i = 0; i < n; i++) {
		struct trec t;

		trec_fill(&t, *seq);
		if (nlg_ring_push(r, &t) == 0) {
			(*ok)++;
			(*seq)++;
		} else {
			(*full)++;
		}
	}
}

static void create_checks_its_arguments(void **state)
{
	(void)state;
	errno = 0;
	assert_null(nlg_ring_create(64, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(nlg_ring_create(64, 1));
	assert_null(nlg_ring_create(64, 6));
	assert_null(nlg_ring_create(0, 8));
	assert_null(nlg_ring_create(SIZE_MAX / 2, 4)); /* size overflows */
	nlg_ring_destroy(NULL);

	struct nlg_ring *r = nlg_ring_create(sizeof(struct trec), 8);
	assert_non_null(r);
	assert_true(nlg_ring_fd(r) >= 0);
	assert_int_equal((uintptr_t)nlg_ring_reserve(r) % 64, 0);
	nlg_ring_destroy(r);
}

/* No consumer at all: a ring of 8 takes 8 and counts every refusal. */
static void full_ring_drops_exactly(void **state)
{
	struct nlg_ring *r = nlg_ring_create(sizeof(struct trec), 8);
	struct nlg_ring_stats st;
	struct seen s = {.verdict = NLG_CB_OK};
	uint64_t seq = 0;
	int ok = 0, full = 0;
	(void)state;

	push_seq(r, &seq, 20, &ok, &full);
	assert_int_equal(ok, 8);
	assert_int_equal(full, 12);
	assert_null(nlg_ring_reserve(r)); /* reserve refuses and counts too */
	nlg_ring_stats(r, &st);
	assert_int_equal(st.produced, 8);
	assert_int_equal(st.dropped, 13);
	assert_int_equal(st.consumed, 0);

	assert_int_equal(nlg_ring_consume(r, 3, collect, &s), 3);
	push_seq(r, &seq, 5, &ok, &full);
	assert_int_equal(ok, 11);
	assert_int_equal(full, 14);
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 8);
	assert_int_equal(s.next, 11);
	assert_int_equal(s.bad, 0);
	nlg_ring_stats(r, &st);
	assert_int_equal(st.produced, 11);
	assert_int_equal(st.consumed, 11);
	assert_int_equal(st.dropped, 15);
	nlg_ring_destroy(r);
}

/* A reservation filled in place; one abandoned is reused, not leaked. */
static void reserve_fills_in_place(void **state)
{
	struct nlg_ring *r = nlg_ring_create(sizeof(struct trec), 4);
	struct seen s = {.verdict = NLG_CB_OK};
	struct nlg_ring_stats st;
	(void)state;

	struct trec *a = nlg_ring_reserve(r);
	assert_non_null(a);
	trec_fill(a, 99); /* abandoned */
	struct trec *b = nlg_ring_reserve(r);
	assert_ptr_equal(a, b);
	trec_fill(b, 0);
	nlg_ring_commit(r);
	struct trec *c = nlg_ring_reserve(r);
	assert_ptr_equal(c, b + 1); /* slots are an array of the record */
	trec_fill(c, 1);
	nlg_ring_commit(r);
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 2);
	assert_int_equal(s.bad, 0);
	nlg_ring_stats(r, &st);
	assert_int_equal(st.produced, 2);
	assert_int_equal(st.dropped, 0);
	nlg_ring_destroy(r);
}

/* Two calls when the records wrap; the verdict stops after a run and the
 * rest stays queued (and the fd readable, so the loop comes back). */
static void runs_wrap_and_verdict_stops(void **state)
{
	struct nlg_ring *r = nlg_ring_create(sizeof(struct trec), 8);
	struct seen s = {.verdict = NLG_CB_OK};
	uint64_t seq = 0;
	int ok = 0, full = 0;
	(void)state;

	push_seq(r, &seq, 6, &ok, &full);
	assert_int_equal(nlg_ring_consume(r, 4, collect, &s), 4);
	push_seq(r, &seq, 6, &ok, &full); /* slots 6, 7, then 0..3 */
	assert_int_equal(full, 0);
	s.calls = 0;
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 8);
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.runs[0], 4); /* 4..7 */
	assert_int_equal(s.runs[1], 4); /* 0..3 */

	push_seq(r, &seq, 8, &ok, &full); /* slots 4..7, 0..3 */
	assert_int_equal(nlg_ring_publish(r), 1);
	assert_true(readable(nlg_ring_fd(r)));
	s.calls = 0;
	s.verdict = NLG_CB_STOP;
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 4);
	assert_int_equal(s.calls, 1);
	assert_true(readable(nlg_ring_fd(r))); /* 4 left: call me again */
	s.verdict = NLG_CB_ERROR;
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 4);
	assert_false(readable(nlg_ring_fd(r))); /* drained: asleep */
	assert_int_equal(s.next, seq);
	assert_int_equal(s.bad, 0);
	nlg_ring_destroy(r);
}

/* The protocol step by step: publish writes only to a sleeping consumer,
 * once; a consumer that stops early keeps itself awake. */
static void publish_wakes_only_a_sleeper(void **state)
{
	struct nlg_ring *r = nlg_ring_create(sizeof(struct trec), 256);
	struct seen s = {.verdict = NLG_CB_OK};
	struct nlg_ring_stats st;
	uint64_t seq = 0;
	int ok = 0, full = 0, fd = nlg_ring_fd(r);
	(void)state;

	assert_int_equal(nlg_ring_publish(r), 0); /* nothing committed */
	push_seq(r, &seq, 100, &ok, &full);
	assert_false(readable(fd)); /* committed, not yet published */
	assert_int_equal(nlg_ring_publish(r), 1);
	assert_true(readable(fd));
	push_seq(r, &seq, 100, &ok, &full);
	assert_int_equal(nlg_ring_publish(r), 0); /* already woken */
	assert_int_equal(nlg_ring_publish(r), 0);
	nlg_ring_stats(r, &st);
	assert_int_equal(st.wakeups, 1);

	assert_int_equal(nlg_ring_consume(r, 50, collect, &s), 50);
	assert_true(readable(fd)); /* 150 left: the wake stays unread */
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 150);
	assert_false(readable(fd));
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 0);

	push_seq(r, &seq, 1, &ok, &full);
	assert_int_equal(nlg_ring_publish(r), 1);
	nlg_ring_stats(r, &st);
	assert_int_equal(st.wakeups, 2);

	/* Woken, but it takes only part: the unread wake keeps the fd
	 * readable, no new write is needed. */
	push_seq(r, &seq, 9, &ok, &full);
	assert_int_equal(nlg_ring_consume(r, 4, collect, &s), 4);
	assert_true(readable(fd));
	assert_int_equal(nlg_ring_consume(r, SIZE_MAX, collect, &s), 6);
	assert_false(readable(fd));
	nlg_ring_stats(r, &st);
	assert_int_equal(st.wakeups, 2);
	assert_int_equal(st.consumed, 210);
	assert_int_equal(s.bad, 0);
	nlg_ring_destroy(r);
}

/* ---- a worker thread and the loop ---------------------------------------- */

struct xfer {
	struct nlg_ring *r;
	struct nlg_loop *loop;
	uint64_t records; /* the producer attempts these */
	unsigned batch;	  /* records per publish */
	unsigned slow_ns; /* the consumer sleeps this long per run */
	int lockstep;	  /* the producer waits for the consumer to drain */
	int bursty;	  /* random bursts, now and then waiting for a drain */

	/* producer, read after join or through atomics */
	uint64_t refused; /* reserve returned NULL */
	int stalled;	  /* bursty: published records not taken within 5 s */
	atomic_int done;

	/* consumer (the loop thread) */
	uint64_t next; /* lowest seq still expected */
	uint64_t gaps; /* seqs skipped: must equal the drops */
	uint64_t got, bad;
	atomic_ullong idle; /* lockstep: consumed count when last drained */
	uint64_t deadline_ms;
	int timed_out;
};

static int xfer_check(void *data, const void *slots, size_t n)
{
	struct xfer *x = data;
	const struct trec *t = slots;

	for (size_t i = 0; i < n; i++) {
		if (t[i].seq < x->next || !trec_ok(&t[i]))
			x->bad++;
		else
			x->gaps += t[i].seq - x->next;
		x->next = t[i].seq + 1;
	}
	x->got += n;
	if (x->slow_ns) {
		struct timespec ts = {0, (long)x->slow_ns};

		nanosleep(&ts, NULL);
	}
	return NLG_CB_OK;
}

static void xfer_readable(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct xfer *x = data;
	struct nlg_ring_stats st;
	NLG_UNUSED(loop), NLG_UNUSED(fd), NLG_UNUSED(events);

	/* a bounded take per call, as a real handler would, so timers and
	 * other fds get their turn */
	nlg_ring_consume(x->r, 1024, xfer_check, x);
	if (x->lockstep) {
		nlg_ring_stats(x->r, &st);
		if (st.consumed == st.produced)
			atomic_store(&x->idle, st.consumed);
	}
}

/* Stop once the producer is done and everything it committed arrived. The
 * check is a timer, not the fd handler: a lost wake-up would leave records
 * behind and show as a timeout, not as a hang. */
static int64_t xfer_tick(struct nlg_loop *loop, int64_t id, void *data)
{
	struct xfer *x = data;
	struct nlg_ring_stats st;
	NLG_UNUSED(id);

	nlg_ring_stats(x->r, &st);
	if (atomic_load(&x->done) && (st.consumed == st.produced || x->stalled)) {
		nlg_loop_stop(loop);
		return -1;
	}
	if (nlg_now_ms() > x->deadline_ms) {
		x->timed_out = 1;
		nlg_loop_stop(loop);
		return -1;
	}
	return 2;
}

static void *xfer_produce(void *arg)
{
	struct xfer *x = arg;
	uint64_t committed = 0;

	for (uint64_t seq = 0; seq < x->records; seq++) {
		struct trec *t = nlg_ring_reserve(x->r);

		if (t) {
			trec_fill(t, seq);
			nlg_ring_commit(x->r);
			committed++;
		} else {
			x->refused++;
		}
		if ((seq + 1) % x->batch == 0 || seq + 1 == x->records) {
			nlg_ring_publish(x->r);
			if (x->lockstep)
				while (atomic_load(&x->idle) != committed)
					sched_yield();
			else if (!t)
				sched_yield(); /* full: let the consumer run */
		}
	}
	atomic_store(&x->done, 1);
	return NULL;
}

/* Bursts of 1..32 records at random moments; after one burst in four the
 * producer waits for the consumer to take everything. A publish that races
 * the consumer going to sleep and loses its wake-up shows as a stall. */
static void *xfer_bursts(void *arg)
{
	struct xfer *x = arg;
	struct nlg_ring_stats st;
	uint64_t seq = 0, rnd = 0x2545f4914f6cdd1dull;

	while (seq < x->records && !x->stalled) {
		rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
		for (uint64_t n = 1 + rnd % 32; n > 0 && seq < x->records; n--, seq++) {
			struct trec *t = nlg_ring_reserve(x->r);

			if (!t) {
				x->refused++;
				continue;
			}
			trec_fill(t, seq);
			nlg_ring_commit(x->r);
		}
		nlg_ring_publish(x->r);
		for (unsigned spin = (rnd >> 8) % 2000; spin > 0; spin--)
			atomic_signal_fence(memory_order_seq_cst); /* a pause of random length */
		if ((rnd >> 20) % 4)
			continue;
		uint64_t give_up = nlg_now_ms() + 5000;
		do {
			nlg_ring_stats(x->r, &st);
			if (st.consumed == st.produced)
				break;
			sched_yield();
		} while (nlg_now_ms() < give_up);
		x->stalled = st.consumed != st.produced;
	}
	x->records = seq; /* what was attempted, if it stopped on a stall */
	atomic_store(&x->done, 1);
	return NULL;
}

static void xfer_run(struct xfer *x, size_t nslots)
{
	pthread_t th;

	x->r = nlg_ring_create(sizeof(struct trec), nslots);
	x->loop = nlg_loop_create();
	assert_non_null(x->r);
	assert_non_null(x->loop);
	x->deadline_ms = nlg_now_ms() + 120 * 1000;
	assert_int_equal(nlg_loop_add_fd(x->loop, nlg_ring_fd(x->r), EPOLLIN, xfer_readable, x), 0);
	assert_true(nlg_loop_add_timer(x->loop, 2, xfer_tick, x) > 0);
	assert_int_equal(pthread_create(&th, NULL, x->bursty ? xfer_bursts : xfer_produce, x), 0);
	nlg_loop_run(x->loop);
	pthread_join(th, NULL);
}

static void xfer_check_counts(struct xfer *x)
{
	struct nlg_ring_stats st;

	nlg_ring_stats(x->r, &st);
	assert_false(x->timed_out);
	assert_int_equal(x->bad, 0);
	assert_int_equal(st.consumed, x->got);
	assert_int_equal(st.produced, x->got);
	assert_int_equal(st.dropped, x->refused);
	assert_int_equal(st.produced + st.dropped, x->records);
	/* every drop is a gap in the sequence, and only drops are */
	assert_int_equal(x->gaps + (x->records - x->next), st.dropped);
}

static void ten_million_records_to_the_loop(void **state)
{
	struct xfer x = {.records = 10 * 1000 * 1000, .batch = 64};
	struct nlg_ring_stats st;
	(void)state;

	if (getenv("NLG_RING_RECORDS"))
		x.records = strtoull(getenv("NLG_RING_RECORDS"), NULL, 10);
	xfer_run(&x, 4096);
	xfer_check_counts(&x);
	nlg_ring_stats(x.r, &st);
	print_message("    %llu records: %llu received, %llu dropped, %llu wakeups\n",
		      (unsigned long long)x.records, (unsigned long long)st.consumed,
		      (unsigned long long)st.dropped, (unsigned long long)st.wakeups);
	assert_true(st.consumed > 0);
	/* at most one wake per batch, give or take the consumer's own */
	assert_true(st.wakeups <= 2 * (x.records / x.batch) + 1);
	nlg_loop_destroy(x.loop);
	nlg_ring_destroy(x.r);
}

/* A tiny ring and a consumer that sleeps per run: the producer overruns it
 * and every refusal is counted, matching the holes the consumer sees. */
static void slow_consumer_drops_are_counted(void **state)
{
	struct xfer x = {.records = 200 * 1000, .batch = 32, .slow_ns = 20 * 1000};
	struct nlg_ring_stats st;
	(void)state;

	xfer_run(&x, 16);
	xfer_check_counts(&x);
	nlg_ring_stats(x.r, &st);
	assert_true(st.dropped > 0);
	assert_true(st.consumed >= 16);
	nlg_loop_destroy(x.loop);
	nlg_ring_destroy(x.r);
}

/* The producer waits until the consumer has drained and gone to sleep
 * before each batch: then each batch costs exactly one wake-up. */
static void one_wakeup_per_batch(void **state)
{
	struct xfer x = {.records = 2000 * 64, .batch = 64, .lockstep = 1};
	struct nlg_ring_stats st;
	(void)state;

	xfer_run(&x, 1024);
	xfer_check_counts(&x);
	nlg_ring_stats(x.r, &st);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.wakeups, x.records / x.batch);
	nlg_loop_destroy(x.loop);
	nlg_ring_destroy(x.r);
}

static void no_wakeup_is_lost(void **state)
{
	struct xfer x = {.records = 2 * 1000 * 1000, .bursty = 1};
	(void)state;

	xfer_run(&x, 256);
	assert_false(x.stalled);
	xfer_check_counts(&x);
	nlg_loop_destroy(x.loop);
	nlg_ring_destroy(x.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(create_checks_its_arguments),
	    cmocka_unit_test(full_ring_drops_exactly),
	    cmocka_unit_test(reserve_fills_in_place),
	    cmocka_unit_test(runs_wrap_and_verdict_stops),
	    cmocka_unit_test(publish_wakes_only_a_sleeper),
	    cmocka_unit_test(ten_million_records_to_the_loop),
	    cmocka_unit_test(slow_consumer_drops_are_counted),
	    cmocka_unit_test(one_wakeup_per_batch),
	    cmocka_unit_test(no_wakeup_is_lost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
