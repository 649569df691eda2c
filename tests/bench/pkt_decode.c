/* Packet benchmark: the seed frames of fuzz_decode (tests/fuzz/corpus/decode/:
 * Ethernet, VLAN, QinQ, IPv4 options and fragments, IPv6 extension headers,
 * SLL, SLL2, raw, bare) decoded in a loop, in ns per packet; then decode plus
 * nlg_flow_add into a table of 65,536 flows, the frames' source ports varied
 * over 3,000 values: some 21,000 flows (the seeds share addresses), all
 * live. No capture, no emit work. Then the capture bench's traffic as a
 * worker meets it in its ring: blocks of 1,500 256-byte UDP frames of 1000
 * flows cut to 128 bytes, laid out as TPACKET_V3 does, with the caches and TLB
 * cold at each block (16 MiB written in between), in ns of thread CPU per
 * packet: decoded in batches of 64 counted by nlg_flow_add_batch (what the
 * capture does), and one by one by nlg_flow_add.
 * Usage: bench_pkt_decode [rounds] (default 2,000,000 per frame set). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nlgate/packet.h"

#define MAXF 64

struct frame {
	enum nlg_link link;
	uint8_t b[512];
	size_t n;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sink(void *data, const struct nlg_flow *f)
{
	*(uint64_t *)data += f->packets;
}

/* The seeds: a ctl byte (link in bits 0-2), then the frame. */
static size_t load(struct frame *fr)
{
	const char *dir = NLGATE_SRCDIR "/tests/fuzz/corpus/decode";
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (!d) {
		perror(dir);
		exit(1);
	}
	while ((de = readdir(d)) && n < MAXF) {
		char path[1024];
		uint8_t buf[513];
		size_t len;
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (len < 2 || len > sizeof(buf) - 1 || (buf[0] & 7) > NLG_LINK_NET)
			continue;
		fr[n].link = (enum nlg_link)(buf[0] & 7);
		fr[n].n = len - 1;
		memcpy(fr[n].b, buf + 1, len - 1);
		n++;
	}
	closedir(d);
	return n;
}

#define BLOCK	(1u << 20)
#define STRIDE	224 /* tpacket3_hdr + sockaddr_ll + 128 bytes, aligned as the kernel does */
#define HDR	80  /* where the frame starts in its slot */
#define SNAP	128
#define NFLOWS	1000
#define PER_BLOCK 1500
#define BATCH	64
#define EVICT	(16u << 20)

/* One block of the bench's frames (10.213.0.1:10000+i -> 10.213.0.2:9), as
 * many as its paced rounds find in a block (~1,500): each flow once or twice. */
static size_t fill_block(uint8_t *blk)
{
	size_t n = 0;

	for (size_t off = 0; off + STRIDE <= BLOCK && n < PER_BLOCK; off += STRIDE, n++) {
		uint8_t *f = blk + off + HDR;
		unsigned sport = 10000 + (unsigned)(n % NFLOWS);
		static const uint8_t head[42] = {
		    2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,		  /* eth */
		    0x45, 0, 0, 242, 0, 1, 0, 0, 64, 17, 0, 0, 10, 213, 0, 1, 10, 213, 0, 2, /* ip */
		    0, 0, 0, 9, 0, 222, 0, 0};					  /* udp */
		memcpy(f, head, sizeof(head));
		f[34] = (uint8_t)(sport >> 8);
		f[35] = (uint8_t)sport;
		memset(f + 42, 0x41, SNAP - 42);
	}
	return n;
}

static void cold_blocks(long blocks)
{
	struct nlg_flow_conf c = {.idle_ns = 60ull * 1000000000, .max = 65536};
	struct nlg_pkt_meta m = {.wire_len = 256, .ifindex = 2, .has_rxhash = 1};
	static struct nlg_pkt batch[BATCH];
	uint8_t *blk = malloc(BLOCK), *junk = malloc(EVICT);
	uint64_t emitted = 0;
	size_t n;

	if (!blk || !junk)
		exit(1);
	n = fill_block(blk);
	for (int mode = 0; mode < 2; mode++) {
		struct nlg_flow_table *t = nlg_flow_create(&c);
		double busy = 0;
		if (!t)
			exit(1);
		for (long r = 0; r < blocks; r++) {
			double t0;
			memset(junk, (int)r, EVICT);
			t0 = cpu_s();
			for (size_t i = 0, nb = 0; i < n; i++) {
				m.time_ns = (uint64_t)r * 1000000 + i;
				if (mode == 0) {
					nlg_pkt_decode(&batch[nb], NLG_LINK_ETHER, blk + i * STRIDE + HDR,
						       SNAP, &m);
					if (++nb == BATCH || i + 1 == n) {
						nlg_flow_add_batch(t, batch, nb, sink, &emitted);
						nb = 0;
					}
				} else {
					nlg_pkt_decode(&batch[0], NLG_LINK_ETHER, blk + i * STRIDE + HDR,
						       SNAP, &m);
					nlg_flow_add(t, &batch[0], sink, &emitted);
				}
			}
			busy += cpu_s() - t0;
		}
		printf("cold blocks: %zu pkts x %ld, %s: %.1f ns/pkt, %llu flows live\n", n, blocks,
		       mode == 0 ? "batches of 64" : "one by one   ", busy * 1e9 / ((double)n * (double)blocks),
		       (unsigned long long)nlg_flow_stats(t)->live);
		nlg_flow_flush(t, sink, &emitted);
		nlg_flow_destroy(t);
	}
	free(blk);
	free(junk);
}

int main(int argc, char **argv)
{
	static struct frame fr[MAXF];
	struct nlg_pkt_meta m = {.ethertype = 0x86dd, .wire_len = 1500};
	struct nlg_flow_conf c = {.idle_ns = 60ull * 1000000000, .max = 65536};
	struct nlg_flow_table *t;
	long rounds = argc > 1 ? atol(argv[1]) : 2000000;
	size_t nf = load(fr);
	volatile uint64_t check = 0; /* keeps the loop's results alive */
	uint64_t emitted = 0;
	struct nlg_pkt p;
	double t0, dt;

	if (!nf) {
		fprintf(stderr, "no frames\n");
		return 1;
	}
	t0 = now_s();
	for (long r = 0; r < rounds; r++)
		for (size_t i = 0; i < nf; i++) {
			nlg_pkt_decode(&p, fr[i].link, fr[i].b, fr[i].n, &m);
			check += p.present + p.sport;
		}
	dt = now_s() - t0;
	printf("decode:      %zu frames x %ld: %.1f ns/pkt (%.1f Mpkt/s, check %llu)\n", nf, rounds,
	       dt * 1e9 / ((double)rounds * (double)nf), (double)rounds * (double)nf / dt / 1e6,
	       (unsigned long long)check);

	t = nlg_flow_create(&c);
	if (!t)
		return 1;
	t0 = now_s();
	for (long r = 0; r < rounds; r++)
		for (size_t i = 0; i < nf; i++) {
			m.time_ns = (uint64_t)r * 1000;
			nlg_pkt_decode(&p, fr[i].link, fr[i].b, fr[i].n, &m);
			p.sport = (uint16_t)(p.sport + (r % 3000));
			nlg_flow_add(t, &p, sink, &emitted);
		}
	dt = now_s() - t0;
	printf("decode+flow: %zu frames x %ld: %.1f ns/pkt, %llu flows live\n", nf, rounds,
	       dt * 1e9 / ((double)rounds * (double)nf),
	       (unsigned long long)nlg_flow_stats(t)->live);
	nlg_flow_flush(t, sink, &emitted);
	nlg_flow_destroy(t);
	cold_blocks(rounds / 500 < 20 ? 20 : rounds / 500);
	return 0;
}
