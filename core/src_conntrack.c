/* The conntrack source: core/conntrack.c's event and dump sockets driven by
 * the loop (read batching by linger, a tick for loss detection and resync),
 * ct records to the sink and each read step as a batch. Options, counters
 * and the one-shot table dump for `nlgate dump conntrack` live here too. */
#include <errno.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nlgate/conntrack.h"
#include "nlgate/source.h"

#define CT_TICK_MS 250
#define CT_MAX_FDS 4
#define CT_GIVE_UP 1000 /* consecutive read errors before the source stops */
#define CT_LOG_GAP 1000 /* ms between two logged errors of one source */
#define CT_MAX_GAP 1000 /* ms a read of nf_conntrack_max is reused for */

struct ct_conf {
	struct nlg_ct_opts o; /* o.netns stays NULL here: confs hold no pointers */
	char netns[64];
	/* Under a flood the kernel wakes a reader for every few events, and
	 * the wakeups, not the events, were most of the CPU (3.1 s against
	 * 1.7 s for 800,000 events with 1 ms): after a read that found
	 * events, the socket is left unwatched for linger. */
	uint64_t linger_ms;
	uint64_t rcvbuf; /* bytes per event socket; 0: NLG_CT_RCVBUF */
	int quiet;
};

/* ---- options ------------------------------------------------------------ */

static int parse_events(void *conf, const char *text, struct nlg_err *err)
{
	struct ct_conf *c = conf;

	if (nlg_ct_parse_events(text, &c->o.events) < 0)
		return nlg_err_set(err, EINVAL, "bad events '%s' (new, update, destroy, all)",
				   text);
	return 0;
}

static int parse_reliable(void *conf, const char *text, struct nlg_err *err)
{
	struct ct_conf *c = conf;

	if (!strcmp(text, "true"))
		c->o.reliable = NLG_CT_RELIABLE_DESTROY;
	else if (!strcmp(text, "false"))
		c->o.reliable = NLG_CT_RELIABLE_OFF;
	else if (nlg_ct_parse_reliable(text, &c->o.reliable) < 0)
		return nlg_err_set(err, EINVAL,
				   "bad reliable '%s' (destroy, all, off, true, false)", text);
	return 0;
}

static int parse_family(void *conf, const char *text, struct nlg_err *err)
{
	static const struct {
		const char *name;
		uint8_t family;
	} names[] = {
	    {"inet", AF_INET},	 {"ipv4", AF_INET},  {"4", AF_INET},
	    {"inet6", AF_INET6}, {"ipv6", AF_INET6}, {"6", AF_INET6},
	    {"all", 0},		 {"inet,inet6", 0},  {"inet6,inet", 0},
	};
	struct ct_conf *c = conf;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(names); i++)
		if (!strcmp(names[i].name, text)) {
			c->o.filter.family = names[i].family;
			return 0;
		}
	return nlg_err_set(err, EINVAL, "bad family '%s' (inet, inet6, all)", text);
}

static int parse_proto(void *conf, const char *text, struct nlg_err *err)
{
	static const struct {
		const char *name;
		uint8_t num;
	} names[] = {
	    {"tcp", IPPROTO_TCP},	{"udp", IPPROTO_UDP},	      {"icmp", IPPROTO_ICMP},
	    {"icmpv6", IPPROTO_ICMPV6}, {"sctp", IPPROTO_SCTP},	      {"dccp", IPPROTO_DCCP},
	    {"gre", IPPROTO_GRE},	{"udplite", IPPROTO_UDPLITE}, {"all", 0},
	};
	struct ct_conf *c = conf;
	uint64_t v;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(names); i++)
		if (!strcmp(names[i].name, text)) {
			c->o.filter.proto = names[i].num;
			return 0;
		}
	if (nlg_parse_uint(text, &v) < 0 || v < 1 || v > 255)
		return nlg_err_set(err, EINVAL,
				   "bad proto '%s' (tcp, udp, icmp, icmpv6, sctp, dccp, gre, "
				   "udplite, all or a number 1-255)",
				   text);
	c->o.filter.proto = (uint8_t)v;
	return 0;
}

/* "0x10" or "0x10/0xff" */
static int parse_mark(void *conf, const char *text, struct nlg_err *err)
{
	struct ct_conf *c = conf;
	char value[32];
	const char *slash = strchr(text, '/');
	uint64_t v, m = 0xffffffffu;

	snprintf(value, sizeof(value), "%.*s", slash ? (int)(slash - text) : (int)strlen(text),
		 text);
	if (nlg_parse_uint(value, &v) < 0 || v > 0xffffffffu ||
	    (slash && (nlg_parse_uint(slash + 1, &m) < 0 || m > 0xffffffffu)))
		return nlg_err_set(err, EINVAL, "bad mark '%s' (VALUE or VALUE/MASK)", text);
	c->o.filter.mark = (uint32_t)v;
	c->o.filter.mark_mask = (uint32_t)m;
	c->o.filter.has_mark = 1;
	return 0;
}

static int parse_zone(void *conf, const char *text, struct nlg_err *err)
{
	struct ct_conf *c = conf;
	uint64_t v;

	if (nlg_parse_uint(text, &v) < 0 || v > 65535)
		return nlg_err_set(err, EINVAL, "bad zone '%s' (0-65535)", text);
	c->o.filter.zone = (uint16_t)v;
	c->o.filter.has_zone = 1;
	return 0;
}

static int parse_netns(void *conf, const char *text, struct nlg_err *err)
{
	struct ct_conf *c = conf;

	return nlg_parse_netns(text, c->netns, sizeof(c->netns), err);
}

#define OFF(m) offsetof(struct ct_conf, m)

static const struct nlg_opt ct_opts[] = {
    {.name = "family",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_family,
     .arg = "NAME",
     .flags = NLG_OPT_LIST,
     .desc = "inet or inet6 flows only (default all)"},
    {.name = "ipv4",
     .type = NLG_OPT_ALIAS,
     .shortopt = '4',
     .target = "family",
     .value = "inet",
     .desc = "IPv4 flows only"},
    {.name = "ipv6",
     .type = NLG_OPT_ALIAS,
     .shortopt = '6',
     .target = "family",
     .value = "inet6",
     .desc = "IPv6 flows only"},
    {.name = "proto",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_proto,
     .shortopt = 'p',
     .arg = "NAME",
     .desc = "tcp, udp, icmp, icmpv6, sctp, dccp, gre, udplite or a number"},
    {.name = "mark",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_mark,
     .arg = "V[/M]",
     .desc = "flows whose mark & M == V (M defaults to all ones)"},
    {.name = "zone",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_zone,
     .arg = "N",
     .desc = "flows in conntrack zone N"},
    {.name = "netns",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_netns,
     .shortopt = 'n',
     .arg = "NAME",
     .desc = "in network namespace NAME (/run/netns/NAME)"},
    {.name = "events",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_events,
     .def = "all",
     .shortopt = 'e',
     .arg = "LIST",
     .flags = NLG_OPT_LIST | NLG_OPT_LIVE,
     .desc = "new, update, destroy or all (default all)"},
    {.name = "reliable",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_reliable,
     .def = "destroy",
     .shortopt = 'r',
     .arg = "MODE",
     .flags = NLG_OPT_LIVE,
     .desc = "destroy (default): DESTROY events are never lost (the kernel holds them "
	     "until delivered); all: NEW/UPDATE too; off"},
    {.name = "dump",
     .type = NLG_OPT_BOOL,
     .off = OFF(o.initial_dump),
     .def = "true",
     .flags = NLG_OPT_LIVE,
     .desc = "deliver the table first (records with dump=true)"},
    {.name = "resync",
     .type = NLG_OPT_BOOL,
     .off = OFF(o.resync),
     .def = "true",
     .flags = NLG_OPT_LIVE,
     .desc = "keep a flow table and resync it after a loss (false: losses only counted)"},
    {.name = "rcvbuf",
     .type = NLG_OPT_SIZE,
     .off = OFF(rcvbuf),
     .min = 4096,
     .max = 0x7fffffff,
     .arg = "BYTES",
     .flags = NLG_OPT_LIVE,
     .desc = "receive buffer per event socket (default 256M)"},
    {.name = "linger",
     .type = NLG_OPT_DURATION,
     .off = OFF(linger_ms),
     .def = "1ms",
     .max = 1000,
     .unit = "ms",
     .arg = "MS",
     .flags = NLG_OPT_LIVE,
     .desc = "after a read, wait this long before watching that socket again, so that a "
	     "flood is read in batches (default 1ms; 0: read at once)"},
    {.name = "quiet",
     .type = NLG_OPT_BOOL,
     .off = OFF(quiet),
     .def = "false",
     .shortopt = 'q',
     .flags = NLG_OPT_LIVE,
     .desc = "no notes about the kernel's settings"},
    {0},
};

/* ---- counters ------------------------------------------------------------ */

enum { ST_HAS_ERROR = 1u << 0, ST_HAS_MAX = 1u << 1 };

struct ct_stats {
	NLG_RECORD_HEAD;
	struct nlg_ct_stats ct;
	uint64_t errors;
	uint64_t max;
	uint8_t syncing;
	char events[32];
	char reliable[8];
	char netns[64];
	char last_error[NLG_ERRLEN];
};

#define S(n, t, m, d) NLG_FIELD(struct ct_stats, n, t, m, 0, d)
static const struct nlg_field stats_fields[] = {
    S("received", NLG_T_U64, ct.received, "event messages read from the kernel"),
    S("new", NLG_T_U64, ct.new, "NEW events"),
    S("update", NLG_T_U64, ct.update, "UPDATE events"),
    S("destroy", NLG_T_U64, ct.destroy, "DESTROY events"),
    S("emitted", NLG_T_U64, ct.emitted, "records delivered"),
    S("lost", NLG_T_U64, ct.lost, "events the kernel could not deliver (best effort)"),
    S("enobufs", NLG_T_U64, ct.enobufs, "ENOBUFS on a best-effort socket"),
    S("deferred", NLG_T_U64, ct.deferred, "reliable-socket overflows: the kernel re-delivers"),
    S("resyncs", NLG_T_U64, ct.resyncs, "resync dumps completed (not the initial dump)"),
    S("resynced", NLG_T_U64, ct.resynced, "flows a resync found that events had not shown"),
    S("synthetic", NLG_T_U64, ct.synthetic, "DESTROYs made up for flows that ended unseen"),
    S("duplicates", NLG_T_U64, ct.duplicates, "NEW for a known flow, suppressed"),
    S("orphans", NLG_T_U64, ct.orphans, "DESTROY for a flow never seen"),
    S("filtered", NLG_T_U64, ct.filtered, "dropped by the family/proto/mark/zone filter"),
    S("bad", NLG_T_U64, ct.bad, "malformed messages skipped"),
    S("dumped", NLG_T_U64, ct.dumped, "flows read from dumps"),
    S("live", NLG_T_U64, ct.live, "flows in the table now"),
    S("rcvbuf", NLG_T_I32, ct.rcvbuf, "receive buffer the kernel granted per event socket"),
    NLG_FIELD(struct ct_stats, "max", NLG_T_U64, max, ST_HAS_MAX,
	      "the kernel's table limit, nf_conntrack_max (read once a second at most)"),
    S("errors", NLG_T_U64, errors, "read or tick errors"),
    S("syncing", NLG_T_BOOL, syncing, "a table dump is in flight"),
    S("events", NLG_T_STR, events, "events subscribed to"),
    S("reliable", NLG_T_STR, reliable, "reliable mode: destroy, all or off"),
    S("netns", NLG_T_STR, netns, "network namespace, \"\" for our own"),
    NLG_FIELD(struct ct_stats, "last_error", NLG_T_STR, last_error, ST_HAS_ERROR, "the last error"),
};
#undef S

static struct nlg_schema stats_schema = {
    .kind = "conntrack.stats",
    .desc = "counters of a conntrack source",
    .fields = stats_fields,
    .nfields = NLG_ARRAY_SIZE(stats_fields),
    .rec_size = sizeof(struct ct_stats),
    .present_off = offsetof(struct ct_stats, present),
};

/* ---- the source ------------------------------------------------------------ */

struct ct {
	struct nlg_source *src;
	const struct ct_conf *c;
	struct nlg_ct_src *ct;
	int fds[CT_MAX_FDS], nfds;
	uint64_t errors, consecutive, last_log_ms;
	struct nlg_err last_err;
	int max;	 /* nf_conntrack_max as last read, -1 unreadable */
	uint64_t max_ms; /* when, 0 never */
};

static int on_record(const struct nlg_ct *rec, void *data)
{
	struct ct *s = data;

	/* Anything but OK stops the read step; the kernel keeps the rest. */
	return nlg_source_emit(s->src, rec) == NLG_CB_OK ? NLG_CB_OK : NLG_CB_ERROR;
}

static void on_batch(void *data)
{
	nlg_source_flush(((struct ct *)data)->src);
}

static void report(struct ct *s, const char *what)
{
	uint64_t now = nlg_now_ms();

	s->errors++;
	if (!s->last_log_ms || now - s->last_log_ms >= CT_LOG_GAP) {
		s->last_log_ms = now;
		nlg_source_log(s->src, "%s: %s", what, s->last_err.msg);
	}
}

static void on_readable(void *st, int fd)
{
	struct ct *s = st;
	uint64_t before = nlg_ct_stats(s->ct)->received;
	int r = nlg_ct_readable(s->ct, fd, &s->last_err);

	if (nlg_source_closing(s->src))
		return;
	/* It just gave events, more are coming: read them in one batch. */
	if (r >= 0 && s->c->linger_ms && nlg_ct_stats(s->ct)->received != before)
		nlg_source_pause(s->src, fd, s->c->linger_ms);
	if (r >= 0) {
		s->consecutive = 0;
		return;
	}
	report(s, "reading events");
	/* A socket that keeps failing would spin the loop: stop. */
	if (++s->consecutive >= CT_GIVE_UP) {
		for (int i = 0; i < s->nfds; i++)
			nlg_source_unwatch(s->src, s->fds[i]);
		nlg_source_fail(s->src, "%llu read errors in a row (the last: %s); source stopped",
				(unsigned long long)s->consecutive, s->last_err.msg);
	}
}

static int64_t on_tick(void *st)
{
	struct ct *s = st;

	if (nlg_ct_tick(s->ct, &s->last_err) < 0 && !nlg_source_closing(s->src))
		report(s, "tick");
	return CT_TICK_MS;
}

static void ct_close(void *st)
{
	struct ct *s = st;

	nlg_ct_close(s->ct);
	free(s);
}

static void ct_opts_of(const struct ct_conf *c, struct nlg_ct_opts *o)
{
	*o = c->o;
	o->netns = c->netns[0] ? c->netns : NULL;
	o->rcvbuf = (int)c->rcvbuf;
}

/* Who reads this message wonders what to grant: name it. */
static int name_capability(struct nlg_err *err)
{
	if (!strstr(err->msg, "CAP_NET_ADMIN") &&
	    (strstr(err->msg, "ermission") || strstr(err->msg, "not permitted"))) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, " (needs CAP_NET_ADMIN)");
	}
	return -EPERM;
}

static int ct_open(struct nlg_source *src, const void *conf, void **st, struct nlg_err *err)
{
	const struct ct_conf *c = conf;
	struct ct *s = calloc(1, sizeof(*s));
	struct nlg_ct_opts o;
	struct nlg_ct_sink sink;

	if (!s)
		return nlg_err_set(err, ENOMEM, "out of memory");
	s->src = src;
	s->c = c;
	ct_opts_of(c, &o);
	sink = (struct nlg_ct_sink){.record = on_record, .batch = on_batch, .data = s};
	s->ct = nlg_ct_open(&o, &sink, err);
	if (!s->ct) {
		free(s);
		return name_capability(err);
	}
	s->nfds = nlg_ct_fds(s->ct, s->fds, CT_MAX_FDS);
	for (int i = 0; i < s->nfds; i++) {
		int r = nlg_source_watch(src, s->fds[i], on_readable);
		if (r < 0) {
			ct_close(s);
			return nlg_err_set(err, r, "cannot watch a netlink socket: %s",
					   strerror(-r));
		}
	}
	if (nlg_source_timer(src, CT_TICK_MS, on_tick) < 0) {
		ct_close(s);
		return nlg_err_set(err, ENOMEM, "cannot add a timer");
	}
	*st = s;
	return 0;
}

/* Read what the kernel already queued, without waiting. */
static int ct_poll(void *st, struct nlg_err *err)
{
	struct ct *s = st;
	int total = 0;

	for (int i = 0; i < s->nfds && !nlg_source_closing(s->src); i++)
		for (int round = 0; round < 1000; round++) {
			int r = nlg_ct_readable(s->ct, s->fds[i], err);
			if (r < 0)
				return nlg_source_closing(s->src) ? total : r;
			if (r == 0)
				break;
			total += r;
		}
	return total;
}

static void ct_drain(void *st)
{
	struct nlg_err err;

	ct_poll(st, &err);
}

static int ct_busy(void *st)
{
	return nlg_ct_syncing(((struct ct *)st)->ct);
}

static const char *reliable_name(int r)
{
	return r == NLG_CT_RELIABLE_OFF ? "off" : r == NLG_CT_RELIABLE_ALL ? "all" : "destroy";
}

static void ct_stats_fill(void *st, void *out)
{
	struct ct *s = st;
	struct ct_stats *o = out;
	unsigned ev = s->c->o.events ? s->c->o.events : NLG_CT_EV_ALL;

	o->ct = *nlg_ct_stats(s->ct);
	o->errors = s->errors;
	/* Scripts cannot read /proc (no io.open): a table-pressure rule gets the
	 * limit here. Cached so a script polling stats() costs no syscalls. */
	if (!s->max_ms || nlg_now_ms() - s->max_ms >= CT_MAX_GAP) {
		s->max = nlg_ct_sysctl("nf_conntrack_max");
		s->max_ms = nlg_now_ms();
	}
	if (s->max >= 0) {
		o->max = (uint64_t)s->max;
		o->present |= ST_HAS_MAX;
	}
	o->syncing = (uint8_t)nlg_ct_syncing(s->ct);
	snprintf(o->events, sizeof(o->events), "%s%s%s", ev & NLG_CT_EV_NEW ? "new," : "",
		 ev & NLG_CT_EV_UPDATE ? "update," : "", ev & NLG_CT_EV_DESTROY ? "destroy," : "");
	if (*o->events)
		o->events[strlen(o->events) - 1] = 0;
	snprintf(o->reliable, sizeof(o->reliable), "%s", reliable_name(s->c->o.reliable));
	snprintf(o->netns, sizeof(o->netns), "%s", s->c->netns);
	if (s->last_err.msg[0]) {
		snprintf(o->last_error, sizeof(o->last_error), "%s", s->last_err.msg);
		o->present |= ST_HAS_ERROR;
	}
}

static const char *ct_notes(void *st)
{
	struct ct *s = st;

	return s->c->quiet ? "" : nlg_ct_notes(s->ct);
}

static int ct_resync(void *st, struct nlg_err *err)
{
	struct ct *s = st;
	int rc = nlg_ct_resync(s->ct, err);

	return rc < 0 ? rc : s->c->o.resync;
}

static const struct nlg_source_method ct_methods[] = {
    {"resync", ct_resync, "dump the table again now and reconcile (true if resync is on)"},
    {NULL, NULL, NULL},
};

static int dump_record(const struct nlg_ct *rec, void *data)
{
	return nlg_source_emit(data, rec) == NLG_CB_OK ? NLG_CB_OK : NLG_CB_ERROR;
}

static int ct_dump(struct nlg_source *src, const void *conf, struct nlg_err *err)
{
	struct nlg_ct_opts o;
	struct nlg_ct_sink sink = {.record = dump_record, .data = src};
	int rc;

	ct_opts_of(conf, &o);
	rc = nlg_ct_dump(&o, &sink, err);
	nlg_source_flush(src);
	if (rc < 0 && rc != -ECANCELED)
		name_capability(err);
	return rc;
}

/* Entering another namespace (at a reload's re-open too) takes CAP_SYS_ADMIN. */
static uint64_t ct_caps_for(const void *conf)
{
	return ((const struct ct_conf *)conf)->netns[0] ? 1ull << CAP_SYS_ADMIN : 0;
}

const struct nlg_source_ops nlg_conntrack_source = {
    .name = "conntrack",
    .desc = "conntrack events and table dumps (ctnetlink), lossless DESTROY",
    .schema = &nlg_ct_schema,
    .stats_schema = &stats_schema,
    .opts = ct_opts,
    .conf_size = sizeof(struct ct_conf),
    .caps_for = ct_caps_for,
    .caps = 1ull << CAP_NET_ADMIN,
    .open = ct_open,
    .close = ct_close,
    .poll = ct_poll,
    .drain = ct_drain,
    .busy = ct_busy,
    .dump = ct_dump,
    .stats = ct_stats_fill,
    .notes = ct_notes,
    .methods = ct_methods,
};
