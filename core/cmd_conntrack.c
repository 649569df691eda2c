/* `nlgate dump conntrack` and `nlgate watch conntrack`: the conntrack source
 * driven from the command line, one record per line (JSON, or msgpack). */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "nlgate/conntrack.h"
#include "nlgate/loop.h"

/* Under a flood the kernel wakes a reader for every few events, and the
 * wakeups, not the events, were most of the CPU (3.1 s against 1.7 s for
 * 800,000 events with 1 ms): after a read that found events, the socket is
 * left unwatched for --linger ms. Events wait at most that long; the kernel
 * queues them meanwhile (256 MiB buffers). */
#define WATCH_LINGER_MS 1

static const char filter_help[] =
    "  -4, --ipv4          IPv4 flows only      -6, --ipv6   IPv6 flows only\n"
    "  -p, --proto NAME    tcp, udp, icmp, icmpv6, sctp, dccp, gre or a number\n"
    "      --mark V[/M]    flows whose mark & M == V (M defaults to all ones)\n"
    "      --zone N        flows in conntrack zone N\n"
    "  -n, --netns NAME    in network namespace NAME (/run/netns/NAME)\n"
    "  -m, --msgpack       print msgpack maps instead of JSON lines\n"
    "  -h, --help          this help\n";

static const char dump_usage[] =
    "usage: nlgate dump conntrack [OPTIONS]\n"
    "Dump the conntrack table, one JSON object per line (fields: `nlgate fields ct`).\n\n";

static const char watch_usage[] =
    "usage: nlgate watch conntrack [OPTIONS]\n"
    "Print conntrack events as they happen, one JSON object per line, with an `event`\n"
    "field of new, update or destroy. The table is dumped first (records with\n"
    "dump=true); after any event the kernel could not deliver, it is dumped again and\n"
    "the difference is printed: missed flows, and destroy records with synthetic=true\n"
    "for flows that ended unseen.\n\n"
    "  -e, --events LIST   new,update,destroy or all (default: all)\n"
    "  -r, --reliable MODE destroy (default): DESTROY events are never lost (the kernel\n"
    "                      holds them until delivered); all: NEW/UPDATE too; off\n"
    "      --no-dump       do not print the table at start\n"
    "      --no-resync     no flow table and no resync (losses are only counted)\n"
    "      --rcvbuf BYTES  receive buffer per event socket (default 256 MiB)\n"
    "      --linger MS     after a read, wait MS before watching that socket again, so\n"
    "                      that a flood is read in batches, not a few events per\n"
    "                      wakeup (default 1; 0: read at once)\n"
    "      --stats         print the counters as JSON on stderr at exit\n"
    "  -q, --quiet         no notes about the kernel's settings\n";

enum { O_MARK = 256, O_ZONE, O_NODUMP, O_NORESYNC, O_RCVBUF, O_STATS, O_LINGER };

static const struct option long_opts[] = {
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"proto", required_argument, NULL, 'p'},
    {"mark", required_argument, NULL, O_MARK},
    {"zone", required_argument, NULL, O_ZONE},
    {"netns", required_argument, NULL, 'n'},
    {"msgpack", no_argument, NULL, 'm'},
    {"help", no_argument, NULL, 'h'},
    {"events", required_argument, NULL, 'e'},
    {"reliable", required_argument, NULL, 'r'},
    {"no-dump", no_argument, NULL, O_NODUMP},
    {"no-resync", no_argument, NULL, O_NORESYNC},
    {"rcvbuf", required_argument, NULL, O_RCVBUF},
    {"stats", no_argument, NULL, O_STATS},
    {"linger", required_argument, NULL, O_LINGER},
    {"quiet", no_argument, NULL, 'q'},
    {NULL, 0, NULL, 0},
};

struct ct_args {
	struct nlg_ct_opts o;
	int msgpack, stats, quiet;
	int linger_ms;
};

static int parse_proto(const char *s, uint8_t *proto)
{
	static const struct {
		const char *name;
		uint8_t num;
	} names[] = {
	    {"tcp", IPPROTO_TCP},	{"udp", IPPROTO_UDP},	      {"icmp", IPPROTO_ICMP},
	    {"icmpv6", IPPROTO_ICMPV6}, {"sctp", IPPROTO_SCTP},	      {"dccp", IPPROTO_DCCP},
	    {"gre", IPPROTO_GRE},	{"udplite", IPPROTO_UDPLITE},
	};
	char *end;
	long v;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(names); i++)
		if (!strcmp(s, names[i].name)) {
			*proto = names[i].num;
			return 0;
		}
	v = strtol(s, &end, 10);
	if (*end || end == s || v <= 0 || v > 255)
		return -EINVAL;
	*proto = (uint8_t)v;
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || (*end && *end != '/') || v > 0xffffffffull)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct ct_args *a, int watch)
{
	const char *usage = watch ? watch_usage : dump_usage;
	uint32_t v;
	int c;

	memset(a, 0, sizeof(*a));
	nlg_ct_opts_default(&a->o);
	a->linger_ms = WATCH_LINGER_MS;
	optind = 1;
	while ((c = getopt_long(argc, argv, "46p:n:mhe:r:q", long_opts, NULL)) != -1) {
		if (!watch && (c == 'e' || c == 'r' || c == 'q' || c >= O_NODUMP))
			c = '?';
		switch (c) {
		case '4':
			a->o.filter.family = AF_INET;
			break;
		case '6':
			a->o.filter.family = AF_INET6;
			break;
		case 'p':
			if (parse_proto(optarg, &a->o.filter.proto) < 0)
				return nlg_cmd_fail("conntrack: unknown protocol '%s'", optarg);
			break;
		case O_MARK: {
			const char *slash = strchr(optarg, '/');
			a->o.filter.mark_mask = 0xffffffffu;
			if (parse_u32(optarg, &a->o.filter.mark) < 0 ||
			    (slash && parse_u32(slash + 1, &a->o.filter.mark_mask) < 0))
				return nlg_cmd_fail(
				    "conntrack: bad mark '%s' (VALUE or VALUE/MASK)", optarg);
			a->o.filter.has_mark = 1;
			break;
		}
		case O_ZONE:
			if (parse_u32(optarg, &v) < 0 || v > 65535 || strchr(optarg, '/'))
				return nlg_cmd_fail("conntrack: bad zone '%s'", optarg);
			a->o.filter.zone = (uint16_t)v;
			a->o.filter.has_zone = 1;
			break;
		case 'n':
			a->o.netns = optarg;
			break;
		case 'm':
			a->msgpack = 1;
			break;
		case 'e':
			if (nlg_ct_parse_events(optarg, &a->o.events) < 0)
				return nlg_cmd_fail("watch conntrack: bad event list '%s' (new, "
						    "update, destroy, all)",
						    optarg);
			break;
		case 'r':
			if (nlg_ct_parse_reliable(optarg, &a->o.reliable) < 0)
				return nlg_cmd_fail(
				    "watch conntrack: --reliable takes destroy, all "
				    "or off");
			break;
		case O_NODUMP:
			a->o.initial_dump = 0;
			break;
		case O_NORESYNC:
			a->o.resync = 0;
			break;
		case O_RCVBUF:
			if (parse_u32(optarg, &v) < 0 || v < 4096 || v > 0x7fffffff ||
			    strchr(optarg, '/'))
				return nlg_cmd_fail("watch conntrack: bad --rcvbuf '%s'", optarg);
			a->o.rcvbuf = (int)v;
			break;
		case O_LINGER:
			if (parse_u32(optarg, &v) < 0 || v > 1000 || strchr(optarg, '/'))
				return nlg_cmd_fail(
				    "watch conntrack: bad --linger '%s' (0 to 1000 ms)", optarg);
			a->linger_ms = (int)v;
			break;
		case O_STATS:
			a->stats = 1;
			break;
		case 'q':
			a->quiet = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			fputs(filter_help, stdout);
			return 0;
		default:
			return nlg_cmd_badopt(watch ? "watch conntrack" : "dump conntrack", argv);
		}
	}
	if (optind < argc)
		return nlg_cmd_fail("conntrack: unexpected argument '%s' (see --help)",
				    argv[optind]);
	return -1;
}

static int print_ct(const struct nlg_ct *ct, void *data)
{
	return nlg_printer_record(data, &nlg_ct_schema, ct) < 0 ? NLG_CB_ERROR : NLG_CB_OK;
}

int nlg_cmd_dump_conntrack(int argc, char **argv)
{
	struct ct_args a;
	struct nlg_err err = {{0}};
	struct nlg_printer p;
	struct nlg_ct_sink sink = {.record = print_ct};
	int rc = parse_args(argc, argv, &a, 0);

	if (rc >= 0)
		return rc;
	nlg_schema_init();
	nlg_printer_init(&p, STDOUT_FILENO, a.msgpack);
	sink.data = &p;
	rc = nlg_ct_dump(&a.o, &sink, &err);
	if (rc >= 0)
		rc = nlg_printer_flush(&p);
	else
		nlg_printer_flush(&p);
	nlg_printer_free(&p);
	if (rc < 0) {
		if (p.error == -EPIPE)
			return 0;
		return nlg_cmd_fail("dump conntrack: %s", p.error ? strerror(-p.error) : err.msg);
	}
	return 0;
}

/* ---- watch --------------------------------------------------------------- */

struct watch {
	struct nlg_loop *loop;
	struct nlg_ct_src *src;
	struct nlg_printer p;
	struct nlg_err err;
	int rc, ready, sfd;
	int linger_ms;
	int fds[4], nfds;
};

static void watch_fail(struct watch *w)
{
	if (!w->rc)
		w->rc = w->p.error ? -w->p.error : 1;
	nlg_loop_stop(w->loop);
}

static void say_ready(struct watch *w)
{
	if (w->ready || nlg_ct_syncing(w->src))
		return;
	w->ready = 1;
	fprintf(stderr, "nlgate: conntrack: watching (%llu flows in the table)\n",
		(unsigned long long)nlg_ct_stats(w->src)->dumped);
}

static void on_batch(void *data)
{
	struct watch *w = data;

	if (nlg_printer_flush(&w->p) < 0)
		watch_fail(w);
}

static int on_record(const struct nlg_ct *ct, void *data)
{
	struct watch *w = data;

	return nlg_printer_record(&w->p, &nlg_ct_schema, ct) < 0 ? NLG_CB_ERROR : NLG_CB_OK;
}

static void on_readable(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct watch *w = data;
	uint64_t before = nlg_ct_stats(w->src)->received;

	(void)loop;
	(void)events;
	if (nlg_ct_readable(w->src, fd, &w->err) < 0) {
		if (!w->p.error)
			fprintf(stderr, "nlgate: watch conntrack: %s\n", w->err.msg);
		watch_fail(w);
		return;
	}
	say_ready(w);
	/* It just gave events, more are coming: read them in one batch. */
	if (w->linger_ms > 0 && nlg_ct_stats(w->src)->received != before)
		nlg_loop_pause_fd(w->loop, fd, (uint64_t)w->linger_ms);
}

static void on_signal(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)data;
	while (read(fd, &si, sizeof(si)) == sizeof(si))
		;
	nlg_loop_stop(loop);
}

static int64_t on_tick(struct nlg_loop *loop, int64_t id, void *data)
{
	struct watch *w = data;

	(void)loop;
	(void)id;
	if (nlg_ct_tick(w->src, &w->err) < 0) {
		fprintf(stderr, "nlgate: watch conntrack: %s\n", w->err.msg);
		watch_fail(w);
		return -1;
	}
	return 250;
}

static void print_stats(const struct nlg_ct_stats *st)
{
	fprintf(stderr,
		"{\"received\":%llu,\"new\":%llu,\"update\":%llu,\"destroy\":%llu,"
		"\"emitted\":%llu,\"lost\":%llu,\"enobufs\":%llu,\"deferred\":%llu,"
		"\"resyncs\":%llu,\"resynced\":%llu,\"synthetic\":%llu,\"duplicates\":%llu,"
		"\"orphans\":%llu,\"filtered\":%llu,\"bad\":%llu,\"dumped\":%llu,\"live\":%llu,"
		"\"rcvbuf\":%d}\n",
		(unsigned long long)st->received, (unsigned long long)st->new,
		(unsigned long long)st->update, (unsigned long long)st->destroy,
		(unsigned long long)st->emitted, (unsigned long long)st->lost,
		(unsigned long long)st->enobufs, (unsigned long long)st->deferred,
		(unsigned long long)st->resyncs, (unsigned long long)st->resynced,
		(unsigned long long)st->synthetic, (unsigned long long)st->duplicates,
		(unsigned long long)st->orphans, (unsigned long long)st->filtered,
		(unsigned long long)st->bad, (unsigned long long)st->dumped,
		(unsigned long long)st->live, st->rcvbuf);
}

int nlg_cmd_watch_conntrack(int argc, char **argv)
{
	struct ct_args a;
	struct watch w = {.sfd = -1};
	struct nlg_ct_sink sink = {.record = on_record, .batch = on_batch, .data = &w};
	sigset_t mask;
	int fds[4], n, rc = parse_args(argc, argv, &a, 1);

	if (rc >= 0)
		return rc;
	nlg_schema_init();
	nlg_printer_init(&w.p, STDOUT_FILENO, a.msgpack);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	w.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	w.loop = nlg_loop_create();
	if (w.sfd < 0 || !w.loop) {
		rc = nlg_cmd_fail("watch conntrack: cannot set up the event loop");
		goto out;
	}
	w.src = nlg_ct_open(&a.o, &sink, &w.err);
	if (!w.src) {
		rc = nlg_cmd_fail("watch conntrack: %s", w.err.msg);
		goto out;
	}
	if (!a.quiet && *nlg_ct_notes(w.src)) {
		const char *s = nlg_ct_notes(w.src);
		while (*s) {
			size_t len = strcspn(s, "\n");
			fprintf(stderr, "nlgate: note: %.*s\n", (int)len, s);
			s += len + (s[len] == '\n');
		}
	}
	n = nlg_ct_fds(w.src, fds, 4);
	w.linger_ms = a.linger_ms;
	w.nfds = n;
	memcpy(w.fds, fds, sizeof(fds));
	for (int i = 0; i < n; i++)
		nlg_loop_add_fd(w.loop, fds[i], EPOLLIN, on_readable, &w);
	nlg_loop_add_fd(w.loop, w.sfd, EPOLLIN, on_signal, &w);
	nlg_loop_add_timer(w.loop, 250, on_tick, &w);
	say_ready(&w);
	nlg_loop_run(w.loop);
	/* what the kernel already queued for us is part of the stream */
	for (int i = 0; i < n && !w.rc; i++)
		for (int round = 0; round < 1000; round++)
			if (nlg_ct_readable(w.src, fds[i], &w.err) <= 0)
				break;
	if (nlg_printer_flush(&w.p) < 0 && !w.rc)
		w.rc = 1;
	if (a.stats)
		print_stats(nlg_ct_stats(w.src));
	rc = w.rc == -EPIPE ? 0 : (w.rc ? 1 : 0);
	if (w.rc && w.p.error && w.p.error != -EPIPE)
		nlg_cmd_fail("watch conntrack: writing: %s", strerror(-w.p.error));
out:
	nlg_ct_close(w.src);
	nlg_loop_destroy(w.loop);
	if (w.sfd >= 0)
		close(w.sfd);
	nlg_printer_free(&w.p);
	return rc;
}
