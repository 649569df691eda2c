/* core/flow.c: pkts made up field by field folded into flows; each test
 * checks the records emitted (what, when, in which order, why) and the
 * counters, with created = emitted + live at every end. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "nlgate/packet.h"

#define S  1000000000ull
#define MS 1000000ull

/* What emit got, in order. */
struct got {
	struct nlg_flow f[64];
	size_t n;
};

static void collect(void *data, const struct nlg_flow *f)
{
	struct got *g = data;

	assert_true(g->n < NLG_ARRAY_SIZE(g->f));
	assert_true(f->last_ns >= f->first_ns);
	assert_int_equal(f->packets, f->fwd_packets + f->rev_packets);
	assert_int_equal(f->bytes, f->fwd_bytes + f->rev_bytes);
	g->f[g->n++] = *f;
}

static struct nlg_addr A(const char *text) {
	struct nlg_addr a;

	memset(&a, 0, sizeof(a));
	a.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(a.family, text, a.bytes), 1);
	return a;
}

#define assert_addr(got, text)                                                                     \
	do {                                                                                       \
		struct nlg_addr want_ = A(text);                                                   \
		assert_memory_equal(&(got), &want_, sizeof(want_));                                \
	} while (0)

/* A pkt as the decoder leaves it: proto 6 gets TCP fields, 6 and 17 ports. */
static struct nlg_pkt
pkt(uint8_t proto, const char *src, unsigned sport, const char *dst, unsigned dport, unsigned flags,
    uint64_t t, uint32_t len)
{
	struct nlg_pkt p;

	memset(&p, 0, sizeof(p));
	p.present = NLG_PKT_HAS_IP;
	p.src = A(src);
	p.dst = A(dst);
	p.family = p.src.family;
	p.proto = proto;
	p.time_ns = t;
	p.wire_len = p.cap_len = len;
	p.ifindex = 4;
	if (proto == 6 || proto == 17) {
		p.present |= NLG_PKT_HAS_PORTS;
		p.sport = (uint16_t)sport;
		p.dport = (uint16_t)dport;
	}
	if (proto == 6) {
		p.present |= NLG_PKT_HAS_TCP;
		p.tcp_flags = (uint8_t)flags;
	}
	return p;
}

static void add(struct nlg_flow_table *t, struct nlg_pkt p, struct got *g)
{
	nlg_flow_add(t, &p, collect, g);
}

static struct nlg_flow_table *table(uint32_t max, uint64_t idle, uint64_t active)
{
	struct nlg_flow_conf c = {.idle_ns = idle, .active_ns = active, .max = max, .worker = 3};
	struct nlg_flow_table *t = nlg_flow_create(&c);

	assert_non_null(t);
	return t;
}

/* Flush, check the invariant of the counters, destroy. */
static void done(struct nlg_flow_table *t, struct got *g)
{
	const struct nlg_flow_stats *st = nlg_flow_stats(t);

	assert_int_equal(st->created, st->emitted + st->live);
	nlg_flow_flush(t, collect, g);
	assert_int_equal(st->live, 0);
	assert_int_equal(st->created, st->emitted);
	nlg_flow_destroy(t);
}

enum {
	SYN = NLG_TCP_SYN,
	ACK = NLG_TCP_ACK,
	FIN = NLG_TCP_FIN,
	RST = NLG_TCP_RST,
	PSH = NLG_TCP_PSH
};

/* ---- one flow, both ways ------------------------------------------------------ */

static void both_directions_one_flow(void **state)
{
	struct nlg_flow_table *t = table(16, 60 * S, 0);
	struct got g = {0};
	(void)state;

	/* the server's address sorts first: src must still be the client */
	add(t, pkt(6, "10.0.0.9", 40000, "10.0.0.1", 80, SYN, 100 * S, 60), &g);
	add(t, pkt(6, "10.0.0.1", 80, "10.0.0.9", 40000, SYN | ACK, 100 * S + 1 * MS, 60), &g);
	add(t, pkt(6, "10.0.0.9", 40000, "10.0.0.1", 80, ACK, 100 * S + 2 * MS, 52), &g);
	add(t, pkt(6, "10.0.0.1", 80, "10.0.0.9", 40000, PSH | ACK, 100 * S + 3 * MS, 1000), &g);
	add(t, pkt(6, "10.0.0.1", 80, "10.0.0.9", 40000, PSH | ACK, 100 * S + 4 * MS, 1500), &g);
	assert_int_equal(g.n, 0);
	assert_int_equal(nlg_flow_stats(t)->live, 1);
	assert_int_equal(nlg_flow_stats(t)->created, 1);
	done(t, &g);
	assert_int_equal(g.n, 1);
	const struct nlg_flow *f = &g.f[0];
	assert_int_equal(f->present, NLG_FLOW_HAS_PORTS);
	assert_int_equal(f->family, AF_INET);
	assert_int_equal(f->proto, 6);
	assert_addr(f->src, "10.0.0.9");
	assert_int_equal(f->sport, 40000);
	assert_addr(f->dst, "10.0.0.1");
	assert_int_equal(f->dport, 80);
	assert_int_equal(f->packets, 5);
	assert_int_equal(f->bytes, 2672);
	assert_int_equal(f->fwd_packets, 2);
	assert_int_equal(f->fwd_bytes, 112);
	assert_int_equal(f->rev_packets, 3);
	assert_int_equal(f->rev_bytes, 2560);
	assert_int_equal(f->first_ns, 100 * S);
	assert_int_equal(f->last_ns, 100 * S + 4 * MS);
	assert_int_equal(f->tcp_flags, SYN | ACK | PSH);
	assert_int_equal(f->fwd_tcp_flags, SYN | ACK);
	assert_int_equal(f->rev_tcp_flags, SYN | ACK | PSH);
	assert_int_equal(f->end_reason, NLG_FLOW_SHUTDOWN);
	assert_int_equal(f->ifindex, 4);
	assert_int_equal(f->worker, 3);
}

static void ipv6_and_icmp_flows(void **state)
{
	struct nlg_flow_table *t = table(16, 60 * S, 0);
	struct got g = {0};
	(void)state;

	add(t, pkt(17, "2001:db8::2", 53, "2001:db8::1", 5353, 0, 1 * S, 100), &g);
	add(t, pkt(17, "2001:db8::1", 5353, "2001:db8::2", 53, 0, 2 * S, 300), &g);
	add(t, pkt(1, "192.0.2.1", 0, "192.0.2.2", 0, 0, 3 * S, 84), &g);
	add(t, pkt(1, "192.0.2.2", 0, "192.0.2.1", 0, 0, 4 * S, 84), &g);
	done(t, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.f[0].family, AF_INET6);
	assert_addr(g.f[0].src, "2001:db8::2");
	assert_int_equal(g.f[0].sport, 53);
	assert_int_equal(g.f[0].fwd_bytes, 100);
	assert_int_equal(g.f[0].rev_bytes, 300);
	assert_int_equal(g.f[0].tcp_flags, 0);
	assert_int_equal(g.f[1].present, 0); /* ICMP: no ports */
	assert_int_equal(g.f[1].proto, 1);
	assert_addr(g.f[1].src, "192.0.2.1");
	assert_int_equal(g.f[1].fwd_packets, 1);
	assert_int_equal(g.f[1].rev_packets, 1);
}

/* ---- TCP endings ------------------------------------------------------------ */

static void fin_both_ways_then_last_ack(void **state)
{
	struct nlg_flow_table *t = table(16, 60 * S, 0);
	struct got g = {0};
	uint64_t t0 = 50 * S;
	(void)state;

	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 22, SYN, t0, 60), &g);
	add(t, pkt(6, "10.0.0.2", 22, "10.0.0.1", 1000, FIN | ACK, t0 + 1 * MS, 52), &g);
	/* one FIN is a half close: nothing due */
	nlg_flow_expire(t, t0 + 10 * S, collect, &g);
	assert_int_equal(g.n, 0);
	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 22, FIN | ACK, t0 + 10 * S, 52), &g);
	add(t, pkt(6, "10.0.0.2", 22, "10.0.0.1", 1000, ACK, t0 + 10 * S + 1 * MS, 52), &g);
	/* the last ACK belongs to it; the linger runs from there */
	nlg_flow_expire(t, t0 + 12 * S, collect, &g);
	assert_int_equal(g.n, 0);
	nlg_flow_expire(t, t0 + 12 * S + 1 * MS - 1, collect, &g);
	assert_int_equal(g.n, 0);
	nlg_flow_expire(t, t0 + 12 * S + 1 * MS, collect, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_FIN);
	assert_int_equal(g.f[0].packets, 4);
	assert_int_equal(g.f[0].fwd_tcp_flags, SYN | FIN | ACK);
	assert_int_equal(g.f[0].rev_tcp_flags, FIN | ACK);
	assert_int_equal(g.f[0].last_ns, t0 + 10 * S + 1 * MS);
	assert_int_equal(nlg_flow_stats(t)->live, 0);
	done(t, &g);
	assert_int_equal(g.n, 1);
}

static void rst_ends_after_linger(void **state)
{
	struct nlg_flow_table *t = table(16, 60 * S, 0);
	struct got g = {0};
	(void)state;

	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 23, SYN, 1 * S, 60), &g);
	add(t, pkt(6, "10.0.0.2", 23, "10.0.0.1", 1000, RST | ACK, 1 * S + 5, 40), &g);
	nlg_flow_expire(t, 3 * S + 4, collect, &g);
	assert_int_equal(g.n, 0);
	nlg_flow_expire(t, 3 * S + 5, collect, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_RST);
	assert_int_equal(g.f[0].rev_tcp_flags, RST | ACK);
	assert_int_equal(g.f[0].packets, 2);
	done(t, &g);
}

static void syn_reuses_a_closed_key(void **state)
{
	struct nlg_flow_table *t = table(16, 60 * S, 0);
	struct got g = {0};
	(void)state;

	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, SYN, 1 * S, 60), &g);
	/* a retransmitted SYN on an open flow is part of it */
	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, SYN, 2 * S, 60), &g);
	assert_int_equal(nlg_flow_stats(t)->created, 1);
	add(t, pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, RST, 2 * S + 1, 40), &g);
	/* within the linger, the same ports again: the old flow ends now */
	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, SYN, 3 * S, 60), &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_RST);
	assert_int_equal(g.f[0].packets, 3);
	assert_int_equal(nlg_flow_stats(t)->live, 1);
	/* ... and a fin-closed one, reopened from the other side */
	add(t, pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, FIN | ACK, 4 * S, 52), &g);
	add(t, pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, FIN | ACK, 4 * S + 1, 52), &g);
	/* a SYN+ACK is no new connection: it stays with the closing one */
	add(t, pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, SYN | ACK, 4 * S + 2, 52), &g);
	assert_int_equal(g.n, 1);
	add(t, pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, SYN, 4 * S + 3, 60), &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.f[1].end_reason, NLG_FLOW_FIN);
	assert_int_equal(g.f[1].packets, 4);
	assert_int_equal(g.f[1].first_ns, 3 * S);
	assert_int_equal(nlg_flow_stats(t)->created, 3);
	done(t, &g);
	assert_int_equal(g.n, 3);
	assert_addr(g.f[2].src, "10.0.0.2"); /* the new one's first sender */
	assert_int_equal(g.f[2].sport, 80);
	assert_int_equal(g.f[2].packets, 1);
	assert_int_equal(g.f[2].end_reason, NLG_FLOW_SHUTDOWN);
}

/* ---- timeouts --------------------------------------------------------------- */

static void idle_expiry_on_time(void **state)
{
	struct nlg_flow_table *t = table(16, 10 * S, 0);
	struct got g = {0};
	(void)state;

	add(t, pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 0, 100 * S, 10), &g);
	add(t, pkt(17, "10.0.0.1", 3, "10.0.0.2", 4, 0, 101 * S, 10), &g);
	add(t, pkt(17, "10.0.0.1", 5, "10.0.0.2", 6, 0, 102 * S, 10), &g);
	add(t, pkt(17, "10.0.0.2", 2, "10.0.0.1", 1, 0, 103 * S, 10), &g); /* first again */
	nlg_flow_expire(t, 111 * S - 1, collect, &g);
	assert_int_equal(g.n, 0);
	nlg_flow_expire(t, 111 * S, collect, &g); /* 101 + 10 */
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].sport, 3);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_IDLE);
	/* two due at once: the least recently seen first */
	nlg_flow_expire(t, 200 * S, collect, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.f[1].sport, 5);
	assert_int_equal(g.f[2].sport, 1);
	assert_int_equal(g.f[2].last_ns, 103 * S);
	assert_int_equal(nlg_flow_stats(t)->live, 0);
	nlg_flow_expire(t, 300 * S, collect, &g);
	assert_int_equal(g.n, 3);
	done(t, &g);
}

static void active_timeout_splits(void **state)
{
	struct nlg_flow_table *t = table(16, 60 * S, 5 * S);
	struct got g = {0};
	(void)state;

	for (unsigned i = 0; i <= 7; i++) /* a packet a second, the odd ones back */
		add(t,
		    i & 1 ? pkt(17, "10.0.0.2", 9, "10.0.0.1", 8, 0, i * S, 100 + i)
			  : pkt(17, "10.0.0.1", 8, "10.0.0.2", 9, 0, i * S, 100 + i),
		    &g);
	/* at 6 s the flow had run 5 s (0 to 5): that record ends, 6 begins anew */
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_ACTIVE);
	assert_int_equal(g.f[0].packets, 6);
	assert_int_equal(g.f[0].bytes, 615);
	assert_int_equal(g.f[0].first_ns, 0);
	assert_int_equal(g.f[0].last_ns, 5 * S);
	done(t, &g);
	assert_int_equal(g.n, 2);
	/* the same key and direction, though the 7 s packet came from dst */
	assert_addr(g.f[1].src, "10.0.0.1");
	assert_int_equal(g.f[1].sport, 8);
	assert_int_equal(g.f[1].packets, 2);
	assert_int_equal(g.f[1].fwd_packets, 1);
	assert_int_equal(g.f[1].rev_bytes, 107);
	assert_int_equal(g.f[1].first_ns, 6 * S);
	assert_int_equal(g.f[1].last_ns, 7 * S);
	assert_int_equal(g.f[1].end_reason, NLG_FLOW_SHUTDOWN);
}

/* ---- a full table ----------------------------------------------------------- */

static void eviction_takes_least_recent(void **state)
{
	struct nlg_flow_table *t = table(3, 60 * S, 0);
	struct got g = {0};
	(void)state;

	add(t, pkt(17, "10.0.0.1", 1, "10.0.0.2", 1, 0, 1 * S, 10), &g);
	add(t, pkt(17, "10.0.0.1", 2, "10.0.0.2", 2, 0, 2 * S, 10), &g);
	add(t, pkt(17, "10.0.0.1", 3, "10.0.0.2", 3, 0, 3 * S, 10), &g);
	add(t, pkt(17, "10.0.0.2", 1, "10.0.0.1", 1, 0, 4 * S, 10), &g); /* 1 seen again */
	assert_int_equal(g.n, 0);
	add(t, pkt(17, "10.0.0.1", 4, "10.0.0.2", 4, 0, 5 * S, 10), &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].sport, 2);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_EVICTED);
	add(t, pkt(17, "10.0.0.1", 5, "10.0.0.2", 5, 0, 6 * S, 10), &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.f[1].sport, 3);
	assert_int_equal(nlg_flow_stats(t)->evicted, 2);
	assert_int_equal(nlg_flow_stats(t)->live, 3);
	/* a closing flow is no exception: least recently seen goes */
	add(t, pkt(6, "10.0.0.1", 6, "10.0.0.2", 6, RST, 7 * S, 10), &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.f[2].sport, 1);
	assert_int_equal(g.f[2].packets, 2);
	/* a victim already idle ends as idle, not as evicted */
	add(t, pkt(17, "10.0.0.1", 7, "10.0.0.2", 7, 0, 66 * S, 10), &g);
	assert_int_equal(g.n, 4);
	assert_int_equal(g.f[3].sport, 4);
	assert_int_equal(g.f[3].end_reason, NLG_FLOW_IDLE);
	assert_int_equal(nlg_flow_stats(t)->evicted, 3);
	done(t, &g);
	/* flush: oldest first, the closed one with its reason */
	assert_int_equal(g.n, 7);
	assert_int_equal(g.f[4].sport, 5);
	assert_int_equal(g.f[4].end_reason, NLG_FLOW_SHUTDOWN);
	assert_int_equal(g.f[5].sport, 6);
	assert_int_equal(g.f[5].end_reason, NLG_FLOW_RST);
	assert_int_equal(g.f[6].sport, 7);
}

/* Many flows through a small table: the hash chains and lists stay whole. */
static void churn_keeps_the_table_whole(void **state)
{
	struct nlg_flow_table *t = table(64, 1 * S, 0);
	struct got g;
	char a[32];
	(void)state;

	for (unsigned i = 0; i < 20000; i++) {
		g.n = 0;
		snprintf(a, sizeof(a), "10.%u.%u.1", (i * 7919) % 97, i % 251);
		add(t, pkt(17, a, i % 300, "10.0.0.1", 53, 0, (uint64_t)i * MS, 80), &g);
		if (i % 100 == 0) {
			g.n = 0;
			nlg_flow_expire(t, (uint64_t)i * MS, collect, &g);
		}
		assert_true(nlg_flow_stats(t)->live <= 64);
	}
	g.n = 0;
	assert_int_equal(nlg_flow_stats(t)->created,
			 nlg_flow_stats(t)->emitted + nlg_flow_stats(t)->live);
	done(t, &g);
	assert_true(g.n <= 64);
}

/* Sums what emit got, for tables of many flows. */
struct tally {
	uint64_t flows, packets;
};

static void tally(void *data, const struct nlg_flow *f)
{
	struct tally *y = data;

	y->flows++;
	y->packets += f->packets;
}

/* The buckets in use follow the live flows (doubled as flows come, halved at
 * expiry when few are left): every flow is found again after each change. */
static void buckets_follow_the_live_flows(void **state)
{
	struct nlg_flow_table *t = table(100000, 10 * S, 0);
	const struct nlg_flow_stats *st = nlg_flow_stats(t);
	struct tally y = {0};
	char a[32];
	(void)state;

	/* 20,000 flows, twice each: grown from the first buckets to 65,536 */
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < 20000; i++) {
			snprintf(a, sizeof(a), "10.%u.%u.1", i / 250, i % 250);
			struct nlg_pkt p = pkt(17, a, 1000 + i % 7, "10.0.0.1", 53, 0,
					       (uint64_t)(i >= 19980 ? 20 : 1) * S + pass * MS, 80);
			nlg_flow_add(t, &p, tally, &y);
		}
	assert_int_equal(st->created, 20000);
	assert_int_equal(st->live, 20000);
	assert_int_equal(y.flows, 0);
	/* all but the last 20, seen at 20 s, end: the buckets shrink back */
	nlg_flow_expire(t, 15 * S, tally, &y);
	assert_int_equal(y.flows, 19980);
	assert_int_equal(y.packets, 2 * 19980);
	assert_int_equal(st->live, 20);
	for (unsigned i = 19980; i < 20000; i++) {
		snprintf(a, sizeof(a), "10.%u.%u.1", i / 250, i % 250);
		struct nlg_pkt p = pkt(17, "10.0.0.1", 53, a, 1000 + i % 7, 0, 21 * S, 80);
		nlg_flow_add(t, &p, tally, &y);
	}
	assert_int_equal(st->created, 20000);
	/* and grow again */
	for (unsigned i = 0; i < 3000; i++) {
		snprintf(a, sizeof(a), "10.%u.%u.2", i / 250, i % 250);
		struct nlg_pkt p = pkt(6, a, 5, "10.0.0.1", 80, SYN, 22 * S, 60);
		nlg_flow_add(t, &p, tally, &y);
		p = pkt(6, "10.0.0.1", 80, a, 5, SYN | ACK, 22 * S, 60);
		nlg_flow_add(t, &p, tally, &y);
	}
	assert_int_equal(st->created, 23000);
	assert_int_equal(st->live, 3020);
	nlg_flow_flush(t, tally, &y);
	assert_int_equal(y.flows, 23000);
	assert_int_equal(y.packets, 2 * 20000 + 20 + 2 * 3000);
	assert_int_equal(st->live, 0);
	nlg_flow_destroy(t);
}

/* ---- fragments -------------------------------------------------------------- */

static struct nlg_pkt frag(struct nlg_pkt p, uint32_t id, uint16_t off, int more)
{
	p.present |= NLG_PKT_HAS_FRAG;
	p.frag_id = id;
	p.frag_offset = off;
	p.frag_more = (uint8_t)more;
	if (off) /* the decoder gives a later fragment no ports */
		p.present &= ~(uint64_t)(NLG_PKT_HAS_PORTS | NLG_PKT_HAS_TCP);
	return p;
}

static void fragments_matched_and_orphaned(void **state)
{
	struct nlg_flow_table *t = table(16, 30 * S, 0);
	struct got g = {0};
	struct nlg_pkt p;
	(void)state;

	p = pkt(17, "10.0.0.1", 4000, "10.0.0.2", 4500, 0, 1 * S, 1514);
	add(t, frag(p, 77, 0, 1), &g);
	add(t, frag(p, 77, 1480, 1), &g);
	add(t, frag(p, 77, 2960, 0), &g);
	/* the answer, fragmented too, from the other side */
	p = pkt(17, "10.0.0.2", 4500, "10.0.0.1", 4000, 0, 2 * S, 1514);
	add(t, frag(p, 91, 0, 1), &g);
	add(t, frag(p, 91, 1480, 0), &g);
	assert_int_equal(nlg_flow_stats(t)->frag_matched, 3);
	assert_int_equal(nlg_flow_stats(t)->live, 1);
	/* a later fragment of a datagram never seen begun: a flow of its own */
	p = pkt(17, "10.0.0.1", 0, "10.0.0.2", 0, 0, 3 * S, 600);
	add(t, frag(p, 78, 1480, 0), &g);
	/* a different protocol with the same id is another datagram */
	p = pkt(6, "10.0.0.1", 0, "10.0.0.2", 0, 0, 3 * S, 600);
	add(t, frag(p, 77, 1480, 0), &g);
	assert_int_equal(nlg_flow_stats(t)->frag_orphans, 2);
	assert_int_equal(nlg_flow_stats(t)->live, 3);
	/* the flow ends: its datagrams' later fragments are orphans now */
	nlg_flow_expire(t, 32 * S, collect, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.f[0].packets, 5);
	assert_int_equal(g.f[0].fwd_packets, 3);
	assert_int_equal(g.f[0].rev_packets, 2);
	assert_int_equal(g.f[0].bytes, 5 * 1514);
	assert_int_equal(g.f[0].sport, 4000);
	p = pkt(17, "10.0.0.1", 0, "10.0.0.2", 0, 0, 32 * S, 600);
	add(t, frag(p, 77, 4440, 0), &g);
	assert_int_equal(nlg_flow_stats(t)->frag_orphans, 3);
	assert_int_equal(nlg_flow_stats(t)->frag_matched, 3);
	/* the first fragment is remembered no longer than the idle timeout, even
	 * when its flow lives on */
	p = pkt(17, "10.0.0.1", 4000, "10.0.0.2", 4500, 0, 40 * S, 1514);
	add(t, frag(p, 5, 0, 1), &g);
	for (unsigned i = 1; i <= 4; i++) /* keep the flow alive */
		add(t, pkt(17, "10.0.0.1", 4000, "10.0.0.2", 4500, 0, (40 + 10 * i) * S, 10), &g);
	p = pkt(17, "10.0.0.1", 0, "10.0.0.2", 0, 0, 80 * S, 600);
	add(t, frag(p, 5, 1480, 0), &g);
	assert_int_equal(nlg_flow_stats(t)->frag_orphans, 4);
	done(t, &g);
	/* the orphans' flows: no ports, the two addresses and the protocol;
	 * flushed least recently seen first */
	assert_int_equal(g.n, 4);
	assert_int_equal(g.f[1].present, 0);
	assert_int_equal(g.f[1].proto, 6);
	assert_int_equal(g.f[1].packets, 1);
	assert_int_equal(g.f[2].sport, 4000);
	assert_int_equal(g.f[2].packets, 5);
	assert_int_equal(g.f[3].present, 0);
	assert_int_equal(g.f[3].proto, 17);
	assert_int_equal(g.f[3].packets, 3); /* ids 78, 77 (late), 5 (late) */
	assert_int_equal(g.f[3].bytes, 1800);
}

/* ---- keys ------------------------------------------------------------------- */

/* A fragment slot names an entry; once that entry holds another flow, the
 * slot is stale even though the entry is live. */
static void fragment_of_a_reused_entry(void **state)
{
	struct nlg_flow_table *t = table(1, 30 * S, 0);
	struct got g = {0};
	struct nlg_pkt p;
	(void)state;

	p = pkt(17, "10.0.0.1", 4000, "10.0.0.2", 4500, 0, 1 * S, 1514);
	add(t, frag(p, 77, 0, 1), &g);
	add(t, pkt(17, "10.0.0.3", 1, "10.0.0.4", 2, 0, 2 * S, 10), &g); /* evicts it */
	assert_int_equal(g.n, 1);
	p = pkt(17, "10.0.0.1", 0, "10.0.0.2", 0, 0, 3 * S, 600);
	add(t, frag(p, 77, 1480, 0), &g);
	assert_int_equal(nlg_flow_stats(t)->frag_matched, 0);
	assert_int_equal(nlg_flow_stats(t)->frag_orphans, 1);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.f[1].packets, 1); /* the flow of 10.0.0.3, untouched */
	assert_int_equal(g.f[1].bytes, 10);
	done(t, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.f[2].present, 0);
	assert_int_equal(g.f[2].bytes, 600);
}

static void vlan_separates_flows(void **state)
{
	struct nlg_flow_table *t = table(16, 30 * S, 0);
	struct got g = {0};
	struct nlg_pkt p;
	(void)state;

	p = pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 0, 1 * S, 10);
	add(t, p, &g);
	p.present |= NLG_PKT_HAS_VLAN;
	p.vlan = 10;
	add(t, p, &g);
	p.vlan = 20;
	add(t, p, &g);
	p.vlan = 0; /* a priority tag is a tag */
	add(t, p, &g);
	p.vlan = 10;
	add(t, p, &g);
	assert_int_equal(nlg_flow_stats(t)->live, 4);
	done(t, &g);
	assert_int_equal(g.n, 4);
	/* least recently seen first: vlan 10 was seen last */
	assert_int_equal(g.f[0].present, NLG_FLOW_HAS_PORTS);
	assert_int_equal(g.f[1].present, NLG_FLOW_HAS_PORTS | NLG_FLOW_HAS_VLAN);
	assert_int_equal(g.f[1].vlan, 20);
	assert_int_equal(g.f[2].present, NLG_FLOW_HAS_PORTS | NLG_FLOW_HAS_VLAN);
	assert_int_equal(g.f[2].vlan, 0);
	assert_int_equal(g.f[3].vlan, 10);
	assert_int_equal(g.f[3].packets, 2);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(g.f[i].packets, 1);
}

static void non_ip_counts_nowhere(void **state)
{
	struct nlg_flow_table *t = table(16, 30 * S, 0);
	struct got g = {0};
	struct nlg_pkt p;
	(void)state;

	memset(&p, 0, sizeof(p));
	p.ethertype = 0x0806;
	p.wire_len = 60;
	add(t, p, &g);
	add(t, p, &g);
	assert_int_equal(nlg_flow_stats(t)->nonip, 2);
	assert_int_equal(nlg_flow_stats(t)->created, 0);
	done(t, &g);
	assert_int_equal(g.n, 0);
}

/* Clocks step back (an NTP step, a merged capture): nothing breaks, no
 * duration goes negative, everything still ends. */
static void clock_going_backwards(void **state)
{
	struct nlg_flow_table *t = table(4, 10 * S, 3 * S);
	struct got g = {0};
	(void)state;

	add(t, pkt(6, "10.0.0.1", 1, "10.0.0.2", 2, SYN, 100 * S, 60), &g);
	add(t, pkt(6, "10.0.0.2", 2, "10.0.0.1", 1, SYN | ACK, 50 * S, 60), &g);
	add(t, pkt(6, "10.0.0.1", 1, "10.0.0.2", 2, ACK, 20 * S, 60), &g);
	add(t, pkt(17, "10.0.0.1", 5, "10.0.0.2", 6, 0, 10 * S, 60), &g);
	add(t, pkt(17, "10.0.0.1", 7, "10.0.0.2", 8, 0, 0, 60), &g);
	nlg_flow_expire(t, 0, collect, &g);
	nlg_flow_expire(t, 5 * S, collect, &g);
	assert_int_equal(g.n, 0);
	/* (emit checks last >= first for every record) */
	nlg_flow_expire(t, 109 * S, collect, &g);
	assert_int_equal(g.n, 0);
	/* the TCP flow was seen first: it goes first, with the UDP ones due behind it */
	nlg_flow_expire(t, 110 * S, collect, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.f[0].proto, 6);
	assert_int_equal(g.f[0].first_ns, 100 * S);
	assert_int_equal(g.f[0].last_ns, 100 * S);
	assert_int_equal(g.f[0].packets, 3);
	assert_int_equal(g.f[0].end_reason, NLG_FLOW_IDLE);
	assert_int_equal(g.f[1].last_ns, 10 * S);
	assert_int_equal(g.f[2].last_ns, 0);
	done(t, &g);
}

static void create_checks_its_conf(void **state)
{
	struct nlg_flow_conf c = {.idle_ns = S, .max = 1};
	struct nlg_flow_table *t;
	(void)state;

	errno = 0;
	assert_null(nlg_flow_create(NULL));
	assert_int_equal(errno, EINVAL);
	c.max = 0;
	errno = 0;
	assert_null(nlg_flow_create(&c));
	assert_int_equal(errno, EINVAL);
	c.max = 1;
	c.idle_ns = 0;
	errno = 0;
	assert_null(nlg_flow_create(&c));
	assert_int_equal(errno, EINVAL);
	c.idle_ns = S;
	c.max = UINT32_MAX;
	errno = 0;
	assert_null(nlg_flow_create(&c));
	assert_int_equal(errno, EINVAL);
	nlg_flow_destroy(NULL);
	/* one flow at a time still works */
	c.max = 1;
	t = nlg_flow_create(&c);
	assert_non_null(t);
	{
		struct got g = {0};
		add(t, pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 0, 1, 10), &g);
		add(t, pkt(17, "10.0.0.1", 3, "10.0.0.2", 4, 0, 2, 10), &g);
		assert_int_equal(g.n, 1);
		assert_int_equal(g.f[0].end_reason, NLG_FLOW_EVICTED);
		/* destroy emits nothing */
		nlg_flow_destroy(t);
		assert_int_equal(g.n, 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(both_directions_one_flow),
	    cmocka_unit_test(ipv6_and_icmp_flows),
	    cmocka_unit_test(fin_both_ways_then_last_ack),
	    cmocka_unit_test(rst_ends_after_linger),
	    cmocka_unit_test(syn_reuses_a_closed_key),
	    cmocka_unit_test(idle_expiry_on_time),
	    cmocka_unit_test(active_timeout_splits),
	    cmocka_unit_test(eviction_takes_least_recent),
	    cmocka_unit_test(churn_keeps_the_table_whole),
	    cmocka_unit_test(buckets_follow_the_live_flows),
	    cmocka_unit_test(fragments_matched_and_orphaned),
	    cmocka_unit_test(fragment_of_a_reused_entry),
	    cmocka_unit_test(vlan_separates_flows),
	    cmocka_unit_test(non_ip_counts_nowhere),
	    cmocka_unit_test(clock_going_backwards),
	    cmocka_unit_test(create_checks_its_conf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
