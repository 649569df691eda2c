/* core/capture.c without a network: the pcap-file worker on the committed
 * fixture, its records taken from the hand-off ring by this thread as the loop
 * would (also under ThreadSanitizer), with a ring small enough that the worker
 * waits for room; a stop before the end; and the errors that name the file. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nlgate/capture.h"

static char fixture[200];

static int setup(void **state)
{
	const char *src = getenv("NLGATE_SRC");

	(void)state;
	snprintf(fixture, sizeof(fixture), "%.160s/tests/fixtures/capture.pcap", src ? src : ".");
	return 0;
}

static void conf_for(struct nlg_capture_conf *c, int flows, uint64_t queue)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->file, sizeof(c->file), "%s", fixture);
	snprintf(c->fanout, sizeof(c->fanout), "hash");
	c->snaplen = 256;
	c->queue = queue;
	c->flows = flows;
	c->flow.idle_ns = 60000000000ull;
	c->flow.max = 1024;
}

struct take {
	size_t n;
	uint64_t bytes, last_ns;
	int ordered;
};

static int take_pkt(void *data, const void *slots, size_t n)
{
	struct take *t = data;
	const struct nlg_pkt *p = slots;

	for (size_t i = 0; i < n; i++) {
		if (p[i].time_ns < t->last_ns)
			t->ordered = 0;
		t->last_ns = p[i].time_ns;
		t->bytes += p[i].wire_len;
	}
	t->n += n;
	return NLG_CB_OK;
}

static int take_flow(void *data, const void *slots, size_t n)
{
	struct take *t = data;
	const struct nlg_flow *f = slots;

	for (size_t i = 0; i < n; i++)
		t->bytes += f[i].bytes;
	t->n += n;
	return NLG_CB_OK;
}

/* What the loop does: wait on the eventfd, take what is there, until the
 * worker has ended and the ring is empty. */
static void drain(struct nlg_capture *cap, nlg_ring_fn *fn, struct take *t)
{
	struct nlg_ring *r = nlg_capture_ring(cap, 0);

	for (int spins = 0; spins < 10000; spins++) {
		struct pollfd pfd = {.fd = nlg_ring_fd(r), .events = POLLIN};
		int done = nlg_capture_finished(cap);
		size_t got = nlg_ring_consume(r, 3, fn, t); /* small bites: many wake-ups */
		if (!got && done)
			return;
		if (!got)
			poll(&pfd, 1, 10);
	}
	fail_msg("the file worker never finished");
}

static void file_packets(void **state)
{
	struct nlg_capture_conf c;
	struct nlg_err err = {{0}};
	struct nlg_capture_stats st;
	struct take t = {.ordered = 1};
	struct nlg_capture *cap;

	(void)state;
	conf_for(&c, 0, 4); /* 24 packets through 4 slots */
	cap = nlg_capture_open(&c, &err);
	assert_non_null(cap);
	assert_int_equal(nlg_capture_nrings(cap), 1);
	assert_int_equal(nlg_capture_start(cap, &err), 0);
	drain(cap, take_pkt, &t);
	assert_int_equal(t.n, 24);
	assert_true(t.ordered);
	/* the sizes make_pcap.py wrote */
	assert_int_equal(t.bytes, 940 + 204 + 3110 + 168 + 82 + 2132 + 132 + 42);
	nlg_capture_stats(cap, &st);
	assert_int_equal(st.received, 24);
	assert_int_equal(st.records, 24);
	assert_int_equal(st.ring_drops, 0);
	assert_string_equal(st.mode, "file");
	assert_string_equal(nlg_capture_error(cap), "");
	nlg_capture_close(cap);
}

static void file_flows(void **state)
{
	struct nlg_capture_conf c;
	struct nlg_err err = {{0}};
	struct nlg_capture_stats st;
	struct take t = {.ordered = 1};
	struct nlg_capture *cap;

	(void)state;
	conf_for(&c, 1, 2);
	cap = nlg_capture_open(&c, &err);
	assert_non_null(cap);
	assert_int_equal(nlg_capture_start(cap, &err), 0);
	drain(cap, take_flow, &t);
	assert_int_equal(t.n, 7);
	assert_int_equal(t.bytes, 940 + 204 + 3110 + 168 + 82 + 2132 + 132);
	nlg_capture_stats(cap, &st);
	assert_int_equal(st.flows, 7);
	assert_int_equal(st.nonip, 1);
	assert_int_equal(st.flows_live, 0);
	nlg_capture_close(cap);
}

/* Closed with the ring full and nobody consuming: the worker must not wait
 * for a consumer that is gone. */
static void close_while_full(void **state)
{
	struct nlg_capture_conf c;
	struct nlg_err err = {{0}};
	struct nlg_capture *cap;

	(void)state;
	conf_for(&c, 0, 2);
	cap = nlg_capture_open(&c, &err);
	assert_non_null(cap);
	assert_int_equal(nlg_capture_start(cap, &err), 0);
	nlg_capture_close(cap);
}

static void errors(void **state)
{
	struct nlg_capture_conf c;
	struct nlg_err err = {{0}};

	(void)state;
	conf_for(&c, 0, 16);
	snprintf(c.file, sizeof(c.file), "/nonexistent/none.pcap");
	assert_null(nlg_capture_open(&c, &err));
	assert_non_null(strstr(err.msg, "/nonexistent/none.pcap"));

	conf_for(&c, 0, 16);
	snprintf(c.filter, sizeof(c.filter), "tcp port");
	assert_null(nlg_capture_open(&c, &err));
	assert_non_null(strstr(err.msg, "filter 'tcp port'"));

	conf_for(&c, 0, 16);
	snprintf(c.file, sizeof(c.file), "%s/README.md",
		 getenv("NLGATE_SRC") ? getenv("NLGATE_SRC") : ".");
	assert_null(nlg_capture_open(&c, &err));
	assert_non_null(strstr(err.msg, "README.md"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(file_packets),
	    cmocka_unit_test(file_flows),
	    cmocka_unit_test(close_while_full),
	    cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
