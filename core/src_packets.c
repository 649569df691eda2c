/* The packets source: core/capture.c's workers behind the source contract.
 * Options and counters are tables here; the loop side watches each worker's
 * hand-off ring and passes its records on in runs, pkt records or (with
 * flows on) flow records. `nlgate capture` and gw.packets{} both come here. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nlgate/capture.h"
#include "nlgate/source.h"

#define PK_CONSUME  4096 /* records per ring per loop wake-up */
/* How often the end of a file, or a failed worker, is noticed: a file's end
 * soon; live, a worker fails seldom, and an idle capture should not wake the
 * loop ten times a second for it (each wake-up costs ~20 us of CPU here). */
#define PK_TICK_MS	100
#define PK_LIVE_TICK_MS 1000
#define PK_DRAIN_MS 5000 /* at exit: how long the workers get to hand over their flows */

struct pk_conf {
	struct nlg_capture_conf cap;
	uint64_t idle_ms, active_ms;
	int quiet;
};

/* ---- options ------------------------------------------------------------ */

static int parse_fanout(void *conf, const char *text, struct nlg_err *err)
{
	struct pk_conf *c = conf;
	int r = nlg_capture_parse_fanout(text, err);

	if (r < 0)
		return r;
	if (strlen(text) >= sizeof(c->cap.fanout))
		return nlg_err_set(err, EINVAL, "fanout: at most %zu bytes",
				   sizeof(c->cap.fanout) - 1);
	snprintf(c->cap.fanout, sizeof(c->cap.fanout), "%s", text);
	return 0;
}

static int parse_dispatch(void *conf, const char *text, struct nlg_err *err)
{
	struct pk_conf *c = conf;

	if (!strcmp(text, "auto"))
		c->cap.dispatch = NLG_CAP_AUTO;
	else if (!strcmp(text, "mmap"))
		c->cap.dispatch = NLG_CAP_MMAP;
	else if (!strcmp(text, "recvmmsg"))
		c->cap.dispatch = NLG_CAP_RECVMMSG;
	else
		return nlg_err_set(err, EINVAL, "bad dispatch '%s' (auto, mmap, recvmmsg)", text);
	return 0;
}

static int parse_netns(void *conf, const char *text, struct nlg_err *err)
{
	struct pk_conf *c = conf;

	return nlg_parse_netns(text, c->cap.netns, sizeof(c->cap.netns), err);
}

#define OFF(m) offsetof(struct pk_conf, m)

static const struct nlg_opt pk_opts[] = {
    {.name = "iface",
     .type = NLG_OPT_STR,
     .off = OFF(cap.iface),
     .size = sizeof(((struct pk_conf *)0)->cap.iface),
     .def = "any",
     .shortopt = 'i',
     .arg = "NAME",
     .desc = "the interface to capture on (default any: every interface, from the network "
	     "header)"},
    {.name = "file",
     .type = NLG_OPT_STR,
     .off = OFF(cap.file),
     .size = sizeof(((struct pk_conf *)0)->cap.file),
     .shortopt = 'r',
     .arg = "FILE",
     .desc = "read a pcap or pcapng file instead of an interface (its own timestamps)"},
    {.name = "filter",
     .type = NLG_OPT_STR,
     .off = OFF(cap.filter),
     .size = sizeof(((struct pk_conf *)0)->cap.filter),
     .arg = "EXPR",
     .desc = "tcpdump filter expression, run in the kernel (capture: the words after the "
	     "options)"},
    {.name = "workers",
     .type = NLG_OPT_UINT,
     .off = OFF(cap.workers),
     .size = sizeof(uint32_t),
     .def = "0",
     .max = NLG_CAP_MAX_WORKERS,
     .arg = "N",
     .desc = "capture threads, each with its own socket and ring (default 0: one per CPU, "
	     "at most 16)"},
    {.name = "fanout",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_fanout,
     .def = "hash,defrag",
     .arg = "MODE",
     .desc = "how packets are split between workers: hash, lb, cpu, rollover, rnd, qm, "
	     "cbpf:PROG, ebpf:PATH|fd=N; flags defrag, rollover, ignore-outgoing (default "
	     "hash,defrag: both directions of a flow to one worker)"},
    {.name = "group",
     .type = NLG_OPT_UINT,
     .off = OFF(cap.group),
     .size = sizeof(uint32_t),
     .max = 65535,
     .arg = "ID",
     .desc = "join fanout group ID (default: a group of our own, picked by the kernel)"},
    {.name = "snaplen",
     .type = NLG_OPT_UINT,
     .off = OFF(cap.snaplen),
     .size = sizeof(uint32_t),
     .def = "256",
     .min = 64,
     .max = 262144,
     .shortopt = 's',
     .arg = "BYTES",
     .desc = "bytes kept of each packet: headers only are decoded (default 256)"},
    {.name = "ring_size",
     .type = NLG_OPT_SIZE,
     .off = OFF(cap.ring_size),
     .def = "32M",
     .min = 65536,
     .max = 1ull << 34,
     .arg = "BYTES",
     .desc = "ring memory per worker (default 32M; halved until the kernel grants it)"},
    {.name = "ring_block",
     .type = NLG_OPT_SIZE,
     .off = OFF(cap.ring_block),
     .min = 4096,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "ring block size, a power of two of pages (default: an eighth of the ring, at "
	     "most 1M)"},
    {.name = "ring_frame",
     .type = NLG_OPT_SIZE,
     .off = OFF(cap.ring_frame),
     .def = "2048",
     .min = 128,
     .max = 1ull << 20,
     .arg = "BYTES",
     .desc = "ring frame size, a divisor of the block (default 2048; TPACKET_V3 packs "
	     "packets by length)"},
    {.name = "ring_timeout",
     .type = NLG_OPT_DURATION,
     .off = OFF(cap.ring_timeout_ms),
     .def = "10ms",
     .min = 1,
     .max = 60000,
     .unit = "ms",
     .arg = "MS",
     .desc = "a block is handed over after this long even if not full (default 10ms)"},
    {.name = "queue",
     .type = NLG_OPT_UINT,
     .off = OFF(cap.queue),
     .size = sizeof(uint64_t),
     .def = "16384",
     .min = 64,
     .max = 1u << 24,
     .arg = "N",
     .desc = "records between each worker and the loop, a power of two (default 16384)"},
    {.name = "dispatch",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_dispatch,
     .def = "auto",
     .arg = "MODE",
     .desc = "auto (an mmap ring, else recvmmsg), mmap or recvmmsg"},
    {.name = "promisc",
     .type = NLG_OPT_BOOL,
     .off = OFF(cap.promisc),
     .def = "true",
     .desc = "put the interface in promiscuous mode while capturing (default true)"},
    {.name = "flows",
     .type = NLG_OPT_BOOL,
     .off = OFF(cap.flows),
     .def = "false",
     .desc = "emit flow records (a flow table per worker) instead of pkt records"},
    {.name = "flows_idle",
     .type = NLG_OPT_DURATION,
     .off = OFF(idle_ms),
     .def = "30s",
     .min = 1,
     .unit = "s",
     .arg = "DURATION",
     .desc = "a flow ends after this long without a packet (default 30s)"},
    {.name = "flows_active",
     .type = NLG_OPT_DURATION,
     .off = OFF(active_ms),
     .def = "5m",
     .unit = "s",
     .arg = "DURATION",
     .desc = "a flow open this long is reported and begins again (default 5m; 0: never)"},
    {.name = "flows_max",
     .type = NLG_OPT_UINT,
     .off = OFF(cap.flow.max),
     .size = sizeof(uint32_t),
     .def = "65536",
     .min = 1,
     .max = 1u << 24,
     .arg = "N",
     .desc = "flows held per worker; the least recently seen is evicted (default 65536)"},
    {.name = "netns",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_netns,
     .shortopt = 'n',
     .arg = "NAME",
     .desc = "in network namespace NAME (/run/netns/NAME)"},
    {.name = "quiet",
     .type = NLG_OPT_BOOL,
     .off = OFF(quiet),
     .def = "false",
     .shortopt = 'q',
     .desc = "no notes at start (mode, ring)"},
    {0},
};

/* ---- counters ------------------------------------------------------------ */

enum { ST_HAS_ERROR = 1u << 0 };

struct pk_stats {
	NLG_RECORD_HEAD;
	uint64_t packets, received, kernel_drops, freezes, ring_drops, records, flows, flows_live;
	uint64_t evicted, frag_matched, frag_orphans, nonip, truncated, blocks, ring_bytes;
	uint32_t workers, group;
	uint8_t ended;
	char mode[16];
	char iface[32];
	char last_error[NLG_ERRLEN];
};

#define S(n, t, m, d) NLG_FIELD(struct pk_stats, n, t, m, 0, d)
static const struct nlg_field stats_fields[] = {
    S("packets", NLG_T_U64, packets, "packets the kernel passed our filter, drops included"),
    S("received", NLG_T_U64, received, "packets the workers read and decoded"),
    S("kernel_drops", NLG_T_U64, kernel_drops, "packets the kernel dropped: a ring was full"),
    S("freezes", NLG_T_U64, freezes, "times a ring's queue froze (TPACKET_V3)"),
    S("ring_drops", NLG_T_U64, ring_drops, "records lost between the workers and the loop"),
    S("records", NLG_T_U64, records, "records handed to the loop"),
    S("flows", NLG_T_U64, flows, "flow records emitted"),
    S("flows_live", NLG_T_U64, flows_live, "flows open now"),
    S("evicted", NLG_T_U64, evicted, "flows ended early because a flow table was full"),
    S("frag_matched", NLG_T_U64, frag_matched, "non-first fragments counted in their flow"),
    S("frag_orphans", NLG_T_U64, frag_orphans, "non-first fragments whose first was not seen"),
    S("nonip", NLG_T_U64, nonip, "packets without an IP header (in no flow)"),
    S("truncated", NLG_T_U64, truncated, "packets whose headers went past the snap length"),
    S("blocks", NLG_T_U64, blocks, "ring blocks read"),
    S("ring_bytes", NLG_T_U64, ring_bytes, "ring memory per worker, bytes"),
    S("workers", NLG_T_U32, workers, "capture threads"),
    S("group", NLG_T_U32, group, "fanout group id"),
    S("ended", NLG_T_BOOL, ended, "a file was read to its end"),
    S("mode", NLG_T_STR, mode, "dispatch in use: mmap, recvmmsg or file"),
    S("iface", NLG_T_STR, iface, "interface (\"\" for a file)"),
    NLG_FIELD(struct pk_stats, "last_error", NLG_T_STR, last_error, ST_HAS_ERROR,
	      "why a worker stopped"),
};
#undef S

static struct nlg_schema stats_schema = {
    .kind = "packets.stats",
    .desc = "counters of a packets source",
    .fields = stats_fields,
    .nfields = NLG_ARRAY_SIZE(stats_fields),
    .rec_size = sizeof(struct pk_stats),
    .present_off = offsetof(struct pk_stats, present),
};

/* ---- the source ------------------------------------------------------------ */

struct pk {
	struct nlg_source *src;
	const struct pk_conf *c;
	struct nlg_capture *cap;
	int started, ended, failed;
};

static int take(void *data, const void *slots, size_t n)
{
	struct pk *p = data;

	return nlg_source_emit_n(p->src, slots, n) == NLG_CB_OK ? NLG_CB_OK : NLG_CB_STOP;
}

/* Returns the records taken from every ring. */
static size_t consume_all(struct pk *p)
{
	size_t total = 0;

	for (size_t i = 0; i < nlg_capture_nrings(p->cap) && !nlg_source_closing(p->src); i++)
		total += nlg_ring_consume(nlg_capture_ring(p->cap, i), PK_CONSUME, take, p);
	if (total && !nlg_source_closing(p->src))
		nlg_source_flush(p->src);
	return total;
}

static void on_ring(void *st, int fd)
{
	struct pk *p = st;

	for (size_t i = 0; i < nlg_capture_nrings(p->cap); i++) {
		struct nlg_ring *r = nlg_capture_ring(p->cap, i);
		if (nlg_ring_fd(r) != fd)
			continue;
		if (nlg_ring_consume(r, PK_CONSUME, take, p) && !nlg_source_closing(p->src))
			nlg_source_flush(p->src);
		return;
	}
}

static int rings_empty(struct pk *p)
{
	for (size_t i = 0; i < nlg_capture_nrings(p->cap); i++) {
		struct nlg_ring_stats rs;
		nlg_ring_stats(nlg_capture_ring(p->cap, i), &rs);
		if (rs.produced != rs.consumed)
			return 0;
	}
	return 1;
}

static int64_t tick_ms(const struct pk *p)
{
	return p->c->cap.file[0] ? PK_TICK_MS : PK_LIVE_TICK_MS;
}

/* The end of a file, or a worker that gave up: noticed here, said once. */
static int64_t on_tick(void *st)
{
	struct pk *p = st;
	const char *e;

	if (!p->started) {
		struct nlg_err err = {{0}};
		/* Started from the loop: after `run --user` dropped privileges, so
		 * no worker keeps capabilities it does not need. */
		p->started = 1;
		if (nlg_capture_start(p->cap, &err) < 0) {
			p->failed = 1;
			nlg_source_fail(p->src, "%s", err.msg);
			return -1;
		}
		return tick_ms(p);
	}
	e = nlg_capture_error(p->cap);
	if (*e && !p->failed) {
		p->failed = 1;
		nlg_capture_stop(p->cap);
		consume_all(p);
		nlg_source_fail(p->src, "%s", e);
		return -1;
	}
	if (nlg_capture_finished(p->cap) && !p->ended) {
		consume_all(p);
		if (nlg_source_closing(p->src) || !rings_empty(p))
			return tick_ms(p);
		p->ended = 1;
		nlg_source_end(p->src);
		return -1;
	}
	return tick_ms(p);
}

static void pk_close(void *st)
{
	struct pk *p = st;

	nlg_capture_close(p->cap);
	free(p);
}

static uint64_t ms_to_ns(uint64_t ms)
{
	return ms * 1000000ull;
}

static int pk_open(struct nlg_source *src, const void *conf, void **st, struct nlg_err *err)
{
	const struct pk_conf *c = conf;
	struct nlg_capture_conf cc = c->cap;
	struct pk *p;
	long page = sysconf(_SC_PAGESIZE);

	/* Eight blocks at least: with two, a small ring dropped under load
	 * where libpcap's eight blocks of the same memory did not. */
	if (!cc.ring_block) {
		cc.ring_block = 1u << 20;
		while (cc.ring_block > 4096 && cc.ring_block * 8 > cc.ring_size)
			cc.ring_block /= 2;
	}
	if (cc.queue & (cc.queue - 1))
		return nlg_err_set(err, EINVAL, "bad queue %llu (a power of two)",
				   (unsigned long long)cc.queue);
	if (page > 0 && (cc.ring_block % (uint64_t)page || (cc.ring_block & (cc.ring_block - 1))))
		return nlg_err_set(
		    err, EINVAL,
		    "bad ring_block %llu (a power of two, a multiple of the %ld-byte "
		    "page)",
		    (unsigned long long)cc.ring_block, page);
	if (cc.ring_block % cc.ring_frame || cc.ring_frame % 16)
		return nlg_err_set(err, EINVAL,
				   "bad ring_frame %llu (a multiple of 16 that divides ring_block)",
				   (unsigned long long)cc.ring_frame);
	if (cc.file[0] && cc.netns[0])
		return nlg_err_set(err, EINVAL, "file and netns exclude each other");
	cc.flow.idle_ns = ms_to_ns(c->idle_ms);
	cc.flow.active_ns = ms_to_ns(c->active_ms);
	p = calloc(1, sizeof(*p));
	if (!p)
		return nlg_err_set(err, ENOMEM, "out of memory");
	p->src = src;
	p->c = c;
	p->cap = nlg_capture_open(&cc, err);
	if (!p->cap) {
		free(p);
		return -EINVAL;
	}
	for (size_t i = 0; i < nlg_capture_nrings(p->cap); i++) {
		int r = nlg_source_watch(src, nlg_ring_fd(nlg_capture_ring(p->cap, i)), on_ring);
		if (r < 0) {
			pk_close(p);
			return nlg_err_set(err, -r, "watching a ring: %s", strerror(-r));
		}
	}
	if (nlg_source_timer(src, 0, on_tick) < 0) {
		pk_close(p);
		return nlg_err_set(err, ENOMEM, "out of memory");
	}
	*st = p;
	return 0;
}

/* Until the workers run (the first loop turn), packets are not yet taken. */
static int pk_busy(void *st)
{
	return !((struct pk *)st)->started;
}

/* At exit: the workers end their flows and hand everything over. */
static void pk_drain(void *st)
{
	struct pk *p = st;
	uint64_t start = nlg_now_ms();

	if (!p->started)
		return;
	nlg_capture_stop(p->cap);
	while (!nlg_source_closing(p->src) && nlg_now_ms() - start < PK_DRAIN_MS) {
		int done = nlg_capture_finished(p->cap);
		if (!consume_all(p) && done && rings_empty(p))
			break;
		if (!done) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
}

static void pk_stats(void *st, void *out)
{
	struct pk *p = st;
	struct pk_stats *s = out;
	struct nlg_capture_stats cs;
	const char *e = nlg_capture_error(p->cap);

	nlg_capture_stats(p->cap, &cs);
	s->packets = cs.packets;
	s->received = cs.received;
	s->kernel_drops = cs.kernel_drops;
	s->freezes = cs.freezes;
	s->ring_drops = cs.ring_drops;
	s->records = cs.records;
	s->flows = cs.flows;
	s->flows_live = cs.flows_live;
	s->evicted = cs.evicted;
	s->frag_matched = cs.frag_matched;
	s->frag_orphans = cs.frag_orphans;
	s->nonip = cs.nonip;
	s->truncated = cs.truncated;
	s->blocks = cs.blocks;
	s->ring_bytes = cs.ring_bytes;
	s->workers = cs.workers;
	s->group = cs.group;
	s->ended = (uint8_t)p->ended;
	snprintf(s->mode, sizeof(s->mode), "%s", cs.mode);
	snprintf(s->iface, sizeof(s->iface), "%s", p->c->cap.file[0] ? "" : p->c->cap.iface);
	if (*e) {
		snprintf(s->last_error, sizeof(s->last_error), "%s", e);
		s->present |= ST_HAS_ERROR;
	}
}

static void pk_summary(void *st, char *buf, size_t len)
{
	struct pk *p = st;
	struct nlg_capture_stats cs;
	uint64_t start = nlg_now_ms();

	/* The totals are final once every worker has read its counters a last
	 * time: after a drain they have; after a write error they are told. */
	if (p->started) {
		nlg_capture_stop(p->cap);
		while (!nlg_capture_finished(p->cap) && nlg_now_ms() - start < PK_DRAIN_MS) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	nlg_capture_stats(p->cap, &cs);
	if (p->c->cap.file[0])
		snprintf(buf, len, "%llu packets read, %llu dropped between threads, %llu flows",
			 (unsigned long long)cs.received, (unsigned long long)cs.ring_drops,
			 (unsigned long long)cs.flows);
	else
		snprintf(buf, len,
			 "%llu packets captured, %llu seen by the kernel, %llu dropped by the "
			 "kernel, %llu dropped between threads, %llu flows",
			 (unsigned long long)cs.received, (unsigned long long)cs.packets,
			 (unsigned long long)cs.kernel_drops, (unsigned long long)cs.ring_drops,
			 (unsigned long long)cs.flows);
}

static const char *pk_notes(void *st)
{
	struct pk *p = st;

	return p->c->quiet ? "" : nlg_capture_notes(p->cap);
}

static const struct nlg_schema *pk_schema_for(const void *conf)
{
	return ((const struct pk_conf *)conf)->cap.flows ? &nlg_flow_schema : &nlg_pkt_schema;
}

/* A live capture needs CAP_NET_RAW; a file, nothing; a netns, CAP_SYS_ADMIN. */
static uint64_t pk_caps_for(const void *conf)
{
	const struct pk_conf *c = conf;

	if (c->cap.file[0])
		return 0;
	return (1ull << CAP_NET_RAW) | (c->cap.netns[0] ? 1ull << CAP_SYS_ADMIN : 0);
}

const struct nlg_source_ops nlg_packets_source = {
    .name = "packets",
    .desc = "packets from AF_PACKET rings in a fanout group (or a pcap file), as pkt or flow "
	    "records",
    .schema = &nlg_pkt_schema,
    .schema_for = pk_schema_for,
    .stats_schema = &stats_schema,
    .opts = pk_opts,
    .conf_size = sizeof(struct pk_conf),
    .caps_for = pk_caps_for,
    .open = pk_open,
    .close = pk_close,
    .drain = pk_drain,
    .busy = pk_busy,
    .stats = pk_stats,
    .summary = pk_summary,
    .notes = pk_notes,
};
