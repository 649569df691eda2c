/* The script layer's cost (issue 10): CPU per record through a Lua handler
 * that reads three fields (src, dport, rtt_us) and counts per src, against
 * the same work in C (the floor), on this one thread, with no kernel in the
 * way: a registered source "bench" hands over synthesized `sock` records
 * from memory, in runs as a capture worker does, to tests/bench/lua_bench.lua
 * started through include/nlgate/script.h like `nlgate run` starts a script.
 *
 * Usage: bench_lua_driver [-n RECORDS] [-r ROUNDS] [-k KEYS] [-b RUN] [-s SCRIPT] [SPEC...]
 *   SPEC  floor | NAME[+off|+exact][+single]  (NAME: a variant of lua_bench.lua)
 *         floor    the C sink: the same three fields, an open-addressing
 *                  hash map keyed by the address's bytes
 *         +off     no instruction budget and no memory limit (the
 *                  sandbox's count hook is off; the counting allocator
 *                  stays, with no limit to check); default: `nlgate run`'s
 *                  (50,000,000 instructions, 256 MiB, and the watchdog
 *                  thread that arms the count hook once a call runs long)
 *         +exact   the budget's count hook from each call's first
 *                  instruction (no watchdog: the test harness, `nlgate
 *                  check`)
 *         +single  records handed over one by one (a netlink source), not
 *                  in runs of RUN (a capture worker)
 *   RECORDS timed per spec and round (default 2,000,000); a poll hands over
 *   the 1,024 distinct records once, in runs of RUN (64); KEYS distinct
 *   source addresses in a pseudo-random order (256); ROUNDS (5), the specs'
 *   order rotated each round. Each spec starts a fresh state and is warmed
 *   up for two polls first.
 * Prints one line per spec: CPU ns per record (this thread's CPU clock, what
 * perf's task-clock counts) as the median of the rounds with their range,
 * and records/s. Figures only: nothing is asserted. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "nlgate/loop.h"
#include "nlgate/record.h"
#include "nlgate/script.h"
#include "nlgate/source.h"

#define NRECS	  1024 /* distinct records, handed over once per poll */
#define MAX_SPECS 16
#define MAP_SLOTS 4096 /* the floor's table: a power of two, >= 4 keys each */

/* ---- the source: records from memory ------------------------------------ */

struct bench_conf {
	uint32_t unused;
};

static const struct nlg_opt bench_opts[] = {{0}};

static struct nlg_sock *recs;
static size_t run = 64;
static int single;
static struct nlg_source *live; /* the open bench source (one at a time) */

static int bench_open(struct nlg_source *src, const void *conf, void **st, struct nlg_err *err)
{
	NLG_UNUSED(conf);
	if (live)
		return nlg_err_set(err, EBUSY, "one bench source at a time");
	live = src;
	*st = src;
	return 0;
}

static void bench_close(void *st)
{
	if (live == st)
		live = NULL;
}

/* One poll: every record once, in runs (or one by one), then the batch end. */
static int bench_poll(void *st, struct nlg_err *err)
{
	struct nlg_source *src = st;

	NLG_UNUSED(err);
	for (size_t i = 0; i < NRECS; i += run) {
		size_t n = NRECS - i < run ? NRECS - i : run;
		if (single) {
			for (size_t j = 0; j < n; j++)
				nlg_source_emit(src, &recs[i + j]);
		} else {
			nlg_source_emit_n(src, &recs[i], n);
		}
	}
	nlg_source_flush(src);
	return NRECS;
}

static const struct nlg_source_ops bench_ops = {
    .name = "bench",
    .desc = "synthesized sock records from memory (tests/bench/lua_driver.c)",
    .schema = &nlg_sock_schema,
    .opts = bench_opts,
    .conf_size = sizeof(struct bench_conf),
    .open = bench_open,
    .close = bench_close,
    .poll = bench_poll,
};

/* KEYS source addresses 10.1.x.y in a pseudo-random order, ports and RTTs
 * varied; every field group present (tcp_info zero but for the RTT). */
static void make_records(unsigned keys)
{
	uint64_t all = 0, x = 88172645463325252ull;

	for (size_t f = 0; f < nlg_sock_schema.nfields; f++)
		all |= nlg_sock_schema.fields[f].group;
	recs = calloc(NRECS, sizeof(*recs));
	if (!recs) {
		perror("bench_lua_driver");
		exit(1);
	}
	for (size_t i = 0; i < NRECS; i++) {
		struct nlg_sock *r = &recs[i];
		unsigned k;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		k = (unsigned)(x % keys);
		r->present = all;
		r->family = AF_INET;
		r->proto = NLG_SOCK_TCP;
		r->state = 1; /* TCP_ESTABLISHED */
		r->src.family = r->dst.family = AF_INET;
		r->src.bytes[0] = 10, r->src.bytes[1] = 1;
		r->src.bytes[2] = (uint8_t)(k >> 8), r->src.bytes[3] = (uint8_t)k;
		r->dst.bytes[0] = 10, r->dst.bytes[3] = 2;
		r->sport = (uint16_t)(32768 + (x >> 20) % 28000);
		r->dport = (uint16_t)(i % 7 ? 443 : 80);
		r->info.tcpi_rtt = (uint32_t)(100 + (x >> 40) % 200000);
		r->inode = (uint32_t)i;
	}
}

/* ---- the floor: the same work in C --------------------------------------- */

struct slot {
	struct nlg_addr key;
	uint64_t count;
	int used;
};

static struct slot map[MAP_SLOTS];

static uint32_t addr_hash(const struct nlg_addr *a)
{
	uint32_t w[5];
	uint64_t h;

	memcpy(w, a, sizeof(w));
	h = (w[0] ^ (uint64_t)w[1] << 32) * 0x9e3779b97f4a7c15ull;
	h ^= (w[2] ^ (uint64_t)w[3] << 32 ^ w[4]) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 33; /* murmur3's finaliser: every bit of the key reaches the low bits */
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

static void map_add(const struct nlg_addr *a)
{
	for (uint32_t i = addr_hash(a);; i++) {
		struct slot *s = &map[i & (MAP_SLOTS - 1)];
		if (!s->used) {
			s->key = *a;
			s->used = 1;
		} else if (memcmp(&s->key, a, sizeof(*a))) {
			continue;
		}
		s->count++;
		return;
	}
}

static void floor_one(const struct nlg_sock *r)
{
	uint16_t port = r->dport;
	uint32_t rtt = r->info.tcpi_rtt;

	if (port != 0 && rtt < 1000000000u)
		map_add(&r->src);
}

static int floor_record(void *data, const void *rec)
{
	NLG_UNUSED(data);
	floor_one(rec);
	return NLG_CB_OK;
}

static int floor_records(void *data, const void *r, size_t n)
{
	NLG_UNUSED(data);
	for (size_t i = 0; i < n; i++)
		floor_one((const struct nlg_sock *)r + i);
	return NLG_CB_OK;
}

/* ---- timing -------------------------------------------------------------- */

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Warm up, then time `total` records: CPU ns per record, or < 0. */
static double timed_polls(unsigned long total)
{
	struct nlg_err err = {{0}};
	unsigned long polls = (total + NRECS - 1) / NRECS;
	double t0;

	for (int i = 0; i < 2; i++)
		if (nlg_source_poll(live, &err) < 0)
			return -1;
	t0 = cpu_ns();
	for (unsigned long i = 0; i < polls; i++)
		nlg_source_poll(live, &err);
	return (cpu_ns() - t0) / ((double)polls * NRECS);
}

static double run_floor(struct nlg_loop *loop, unsigned long total)
{
	struct nlg_sink sink = {.record = floor_record, .records = single ? NULL : floor_records};
	struct bench_conf conf = {0};
	struct nlg_err err = {{0}};
	struct nlg_source *src;
	double ns;

	memset(map, 0, sizeof(map));
	src = nlg_source_open(&bench_ops, loop, &conf, &sink, &err);
	if (!src) {
		fprintf(stderr, "bench_lua_driver: floor: %s\n", err.msg);
		return -1;
	}
	ns = timed_polls(total);
	nlg_source_close(src);
	return ns;
}

static double run_script(struct nlg_loop *loop, const char *script, const char *variant, int off,
			 int exact, unsigned long total, char *why, size_t whylen)
{
	struct nlg_script_opts o = {.stop_fd = -1};
	struct nlg_err err = {{0}};
	struct nlg_script *s;
	int stop[2] = {-1, -1}; /* the watchdog's stop fd: never written */
	double ns;

	if (!exact && !off && pipe(stop) == 0)
		o.stop_fd = stop[0];
	if (!off) {
		o.mem_limit = 256u << 20; /* `nlgate run`'s defaults */
		o.insn_budget = 50000000;
	}
	setenv("NLGATE_BENCH_VARIANT", variant, 1);
	s = nlg_script_start(loop, script, &o, &err);
	if (!s) {
		snprintf(why, whylen, "%s", err.msg);
		ns = -1;
		goto out;
	}
	nlg_script_watchdog(s); /* with a stop fd, as `nlgate run` */
	if (!live) {
		snprintf(why, whylen, "the script opened no gw.bench source");
		nlg_script_stop(s);
		ns = -1;
		goto out;
	}
	ns = timed_polls(total);
	if (nlg_script_errors(s))
		snprintf(why, whylen, "%llu handler errors",
			 (unsigned long long)nlg_script_errors(s));
	nlg_script_stop(s);
out:
	if (stop[0] >= 0) {
		close(stop[0]);
		close(stop[1]);
	}
	return ns;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct spec {
	char text[64], name[32];
	int off, exact, single;
	double ns[64];
	int n;
	char why[256];
};

static double median(struct spec *sp)
{
	double v[64];

	memcpy(v, sp->ns, sizeof(double) * (size_t)sp->n);
	qsort(v, (size_t)sp->n, sizeof(double), cmp_double);
	return sp->n ? (v[(sp->n - 1) / 2] + v[sp->n / 2]) / 2 : -1;
}

static double spec_median(struct spec *specs, int nspecs, const char *text)
{
	for (int i = 0; i < nspecs; i++)
		if (!strcmp(specs[i].text, text) && specs[i].n)
			return median(&specs[i]);
	return -1;
}

static void load(const char *when)
{
	char buf[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f && fgets(buf, sizeof(buf), f))
		buf[strcspn(buf, "\n")] = 0;
	if (f)
		fclose(f);
	printf("load %s: %s\n", when, buf);
}

int main(int argc, char **argv)
{
	static const char *const defaults[] = {
	    "floor",	    "empty",	     "read3",	       "each",
	    "each+off",	    "each+exact",    "each+single",    "each_args",
	    "batch",	    "batch+off",     "batch_fields",   "batch_fields+off",
	    "each_counter", "batch_counter", "each_quantiles", NULL};
	const char *dir = getenv("NLGATE_SRC") ? getenv("NLGATE_SRC") : NLGATE_SRCDIR;
	unsigned long total = 2000000, rounds = 5, keys = 256;
	char script[1024];
	struct spec specs[MAX_SPECS];
	int nspecs = 0, c;
	struct nlg_loop *loop;

	snprintf(script, sizeof(script), "%s/tests/bench/lua_bench.lua", dir);
	while ((c = getopt(argc, argv, "n:r:k:b:s:")) != -1) {
		switch (c) {
		case 'n':
			total = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = strtoul(optarg, NULL, 10);
			break;
		case 'k':
			keys = strtoul(optarg, NULL, 10);
			break;
		case 'b':
			run = strtoul(optarg, NULL, 10);
			break;
		case 's':
			snprintf(script, sizeof(script), "%s", optarg);
			break;
		default:
			fprintf(stderr,
				"usage: bench_lua_driver [-n RECORDS] [-r ROUNDS] [-k KEYS] "
				"[-b RUN] [-s SCRIPT] [SPEC...]\n");
			return 2;
		}
	}
	if (!total || !rounds || rounds > 64 || !keys || keys > 65536 || !run || run > NRECS) {
		fprintf(stderr,
			"bench_lua_driver: bad -n, -r (1..64), -k (1..65536) or -b "
			"(1..%d)\n",
			NRECS);
		return 2;
	}
	for (int i = optind; i < argc || (optind == argc && defaults[i - optind]); i++) {
		const char *t = optind == argc ? defaults[i - optind] : argv[i];
		struct spec *sp = &specs[nspecs];
		if (nspecs == MAX_SPECS)
			break;
		memset(sp, 0, sizeof(*sp));
		snprintf(sp->text, sizeof(sp->text), "%s", t);
		snprintf(sp->name, sizeof(sp->name), "%.*s", (int)strcspn(t, "+"), t);
		sp->off = strstr(t, "+off") != NULL;
		sp->exact = strstr(t, "+exact") != NULL;
		sp->single = strstr(t, "+single") != NULL;
		nspecs++;
	}
	if (nlg_source_register(&bench_ops) < 0) {
		fprintf(stderr, "bench_lua_driver: cannot register the bench source\n");
		return 1;
	}
	make_records((unsigned)keys);
	loop = nlg_loop_create();
	if (!loop)
		return 1;

	printf("bench_lua_driver: %lu records per spec and round, %lu rounds, %lu keys, "
	       "runs of %zu, record %zu bytes\n",
	       total, rounds, keys, run, sizeof(struct nlg_sock));
	load("before");
	for (unsigned long r = 0; r < rounds; r++) {
		for (int k = 0; k < nspecs; k++) {
			struct spec *sp = &specs[(k + r) % (unsigned long)nspecs];
			double ns;
			if (sp->why[0] && !sp->n)
				continue; /* unavailable: said once */
			single = sp->single;
			if (!strcmp(sp->name, "floor"))
				ns = run_floor(loop, total);
			else
				ns = run_script(loop, script, sp->name, sp->off, sp->exact, total,
						sp->why, sizeof(sp->why));
			if (ns >= 0)
				sp->ns[sp->n++] = ns;
		}
	}
	load("after");

	double fl = spec_median(specs, nspecs, "floor");
	printf("\n%-16s %10s %17s %12s %12s\n", "spec", "ns/record", "range", "records/s",
	       "above floor");
	for (int i = 0; i < nspecs; i++) {
		struct spec *sp = &specs[i];
		double lo = 1e18, hi = 0, m = median(sp);
		if (!sp->n) {
			printf("%-16s %10s   (%s)\n", sp->text, "n/a", sp->why);
			continue;
		}
		for (int j = 0; j < sp->n; j++) {
			lo = sp->ns[j] < lo ? sp->ns[j] : lo;
			hi = sp->ns[j] > hi ? sp->ns[j] : hi;
		}
		printf("%-16s %10.1f %8.1f-%-8.1f %12.0f", sp->text, m, lo, hi, 1e9 / m);
		if (fl > 0 && strcmp(sp->name, "floor"))
			printf(" %12.1f", m - fl);
		if (sp->why[0])
			printf("   (%s)", sp->why);
		printf("\n");
	}
	/* The sandbox's hooks: with the budget and limit against without. */
	for (int i = 0; i < nspecs; i++) {
		char off[80];
		double on = median(&specs[i]), o;
		if (specs[i].off || !specs[i].n)
			continue;
		snprintf(off, sizeof(off), "%.*s+off", (int)strcspn(specs[i].text, "+"),
			 specs[i].text);
		if (strcmp(specs[i].name, specs[i].text) && !specs[i].exact)
			continue; /* +single has no +off to compare with */
		if ((o = spec_median(specs, nspecs, off)) > 0)
			printf("hooks on %s: %+.1f ns/record (%+.1f%%)\n", specs[i].text, on - o,
			       (on - o) * 100 / o);
	}
	nlg_loop_destroy(loop);
	free(recs);
	return 0;
}
