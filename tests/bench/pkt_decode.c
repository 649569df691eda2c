/* Packet benchmark: the seed frames of fuzz_decode (tests/fuzz/corpus/decode/:
 * Ethernet, VLAN, QinQ, IPv4 options and fragments, IPv6 extension headers,
 * SLL, SLL2, raw, bare) decoded in a loop, in ns per packet; then decode plus
 * nlg_flow_add into a table of 65,536 flows, the frames' source ports varied
 * over 3,000 values: some 21,000 flows (the seeds share addresses), all
 * live. No capture, no emit work. Prints figures only.
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
	return 0;
}
