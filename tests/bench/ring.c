/* Hand-off ring benchmark: one producer thread fills slots in place and
 * publishes every batch; the main thread runs an nlg_loop that consumes them.
 * Prints records/s, eventfd wake-ups per million records and drops for 64-
 * and 512-byte slots. Figures only, never an assertion.
 * Usage: bench_ring [-n records] [-b batch] [-s slots] [-r reps]
 *   defaults: 10,000,000 records, batches of 64, 4096 slots, 3 repetitions. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nlgate/common.h"
#include "nlgate/loop.h"
#include "nlgate/ring.h"

struct run {
	struct nlg_ring *r;
	struct nlg_loop *loop;
	size_t slot_size;
	uint64_t records, batch;
	atomic_int done;
	/* producer */
	uint64_t t_start_ns, t_produced_ns;
	/* consumer */
	uint64_t next, disorder, sum;
	uint64_t consumes, t_last_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What a decoder does: write the whole record. The first word is the
 * sequence number, the last one its complement. */
static void *produce(void *arg)
{
	struct run *x = arg;
	size_t words = x->slot_size / sizeof(uint64_t);

	x->t_start_ns = now_ns();
	for (uint64_t seq = 0; seq < x->records; seq++) {
		uint64_t *w = nlg_ring_reserve(x->r);

		if (w) {
			w[0] = seq;
			for (size_t i = 1; i + 1 < words; i++)
				w[i] = seq + i;
			w[words - 1] = ~seq;
			nlg_ring_commit(x->r);
		}
		if ((seq + 1) % x->batch == 0)
			nlg_ring_publish(x->r);
	}
	nlg_ring_publish(x->r);
	x->t_produced_ns = now_ns();
	atomic_store(&x->done, 1);
	return NULL;
}

/* What a consumer does at least: read the fields it keys on (first and
 * last word), in order. */
static int take(void *data, const void *slots, size_t n)
{
	struct run *x = data;
	const unsigned char *p = slots;
	size_t words = x->slot_size / sizeof(uint64_t);

	for (size_t i = 0; i < n; i++, p += x->slot_size) {
		const uint64_t *w = (const uint64_t *)p;

		x->disorder += w[0] < x->next || w[words - 1] != ~w[0];
		x->next = w[0] + 1;
		x->sum += w[0];
	}
	return NLG_CB_OK;
}

static void readable(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct run *x = data;
	NLG_UNUSED(loop), NLG_UNUSED(fd), NLG_UNUSED(events);

	/* 4096 per call: a real handler bounds its turn so timers still run */
	if (nlg_ring_consume(x->r, 4096, take, x) > 0)
		x->t_last_ns = now_ns();
	x->consumes++;
}

static int64_t tick(struct nlg_loop *loop, int64_t id, void *data)
{
	struct run *x = data;
	struct nlg_ring_stats st;
	NLG_UNUSED(id);

	nlg_ring_stats(x->r, &st);
	if (atomic_load(&x->done) && st.consumed == st.produced) {
		nlg_loop_stop(loop);
		return -1;
	}
	return 1;
}

static int one_run(size_t slot_size, uint64_t records, uint64_t batch, size_t nslots)
{
	struct run x = {.slot_size = slot_size, .records = records, .batch = batch};
	struct nlg_ring_stats st;
	pthread_t th;

	x.r = nlg_ring_create(slot_size, nslots);
	x.loop = nlg_loop_create();
	if (!x.r || !x.loop) {
		perror("bench_ring: create");
		return 1;
	}
	nlg_loop_add_fd(x.loop, nlg_ring_fd(x.r), EPOLLIN, readable, &x);
	nlg_loop_add_timer(x.loop, 1, tick, &x);
	if (pthread_create(&th, NULL, produce, &x) != 0) {
		perror("bench_ring: pthread_create");
		return 1;
	}
	nlg_loop_run(x.loop);
	pthread_join(th, NULL);
	nlg_ring_stats(x.r, &st);

	double took = (double)(x.t_last_ns - x.t_start_ns) / 1e9;
	double offered = (double)records / ((double)(x.t_produced_ns - x.t_start_ns) / 1e9);
	printf("%5zu %10" PRIu64 " %10.2f %10.2f %10" PRIu64 " %6.2f%% %8" PRIu64
	       " %10.1f %9.1f%s\n",
	       slot_size, records, (double)st.consumed / took / 1e6, offered / 1e6, st.dropped,
	       100.0 * (double)st.dropped / (double)records, st.wakeups,
	       (double)st.wakeups * 1e6 / (double)st.consumed,
	       (double)st.consumed / (double)x.consumes, x.disorder ? "  DISORDER" : "");
	nlg_loop_destroy(x.loop);
	nlg_ring_destroy(x.r);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t records = 10 * 1000 * 1000, batch = 64;
	size_t nslots = 4096, sizes[] = {64, 512};
	int reps = 3, c;

	while ((c = getopt(argc, argv, "n:b:s:r:")) != -1) {
		switch (c) {
		case 'n':
			records = strtoull(optarg, NULL, 10);
			break;
		case 'b':
			batch = strtoull(optarg, NULL, 10);
			break;
		case 's':
			nslots = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_ring [-n records] [-b batch] [-s slots] "
					"[-r reps]\n");
			return 2;
		}
	}
	if (batch == 0 || records == 0) {
		fprintf(stderr, "bench_ring: -n and -b must be > 0\n");
		return 2;
	}
	printf("one producer thread -> nlg_loop; %zu slots, publish every %" PRIu64
	       " records; %ld CPUs\n",
	       nslots, batch, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%5s %10s %10s %10s %10s %7s %8s %10s %9s\n", "slot", "records", "Mrec/s", "offered",
	       "drops", "", "wakeups", "wakes/Mrec", "rec/call");
	for (size_t s = 0; s < NLG_ARRAY_SIZE(sizes); s++)
		for (int i = 0; i < reps; i++)
			if (one_run(sizes[s], records, batch, nslots))
				return 1;
	printf("Mrec/s: records delivered per second (first reserve to last consume);\n"
	       "offered: the producer's rate of attempts; drops: refused, ring full.\n");
	return 0;
}
