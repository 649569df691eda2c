/* The sockets source: inet_diag dumps (core/sockdiag.c) polled on a timer,
 * each poll run non-blocking from the loop, records to the sink one by one
 * and the end of each poll as the batch boundary. Options, counters and the
 * one-shot dump for `nlgate dump sockets` live here too. */
#include <errno.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "nlgate/sockdiag.h"
#include "nlgate/source.h"

struct sockets_conf {
	struct nlg_sockdiag_req req;
	uint64_t every_ms;
	int start;
	char netns[64];
	char raw[256];
};

/* ---- options ------------------------------------------------------------ */

static int parse_proto(void *conf, const char *text, struct nlg_err *err)
{
	struct sockets_conf *c = conf;

	if (nlg_sockdiag_parse_protos(text, &c->req.protos, NULL) < 0)
		return nlg_err_set(err, EINVAL, "bad proto '%s' (tcp, udp, mptcp, all)", text);
	return 0;
}

static int parse_family(void *conf, const char *text, struct nlg_err *err)
{
	struct sockets_conf *c = conf;

	if (nlg_sockdiag_parse_families(text, &c->req.families, NULL) < 0)
		return nlg_err_set(err, EINVAL, "bad family '%s' (inet, inet6, all)", text);
	return 0;
}

static int parse_states(void *conf, const char *text, struct nlg_err *err)
{
	struct sockets_conf *c = conf;
	struct nlg_err e;

	if (nlg_sockdiag_parse_states(text, &c->req.states, &e) < 0)
		return nlg_err_set(err, EINVAL, "bad states '%s': %s", text, e.msg);
	return 0;
}

static int parse_info(void *conf, const char *text, struct nlg_err *err)
{
	struct sockets_conf *c = conf;
	struct nlg_err e;

	if (nlg_sockdiag_parse_ext(text, &c->req.ext, &e) < 0)
		return nlg_err_set(err, EINVAL, "bad info '%s': %s", text, e.msg);
	return 0;
}

static int parse_netns(void *conf, const char *text, struct nlg_err *err)
{
	struct sockets_conf *c = conf;

	return nlg_parse_netns(text, c->netns, sizeof(c->netns), err);
}

#define OFF(m) offsetof(struct sockets_conf, m)

static const struct nlg_opt sockets_opts[] = {
    {.name = "proto",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_proto,
     .def = "tcp,udp",
     .arg = "LIST",
     .flags = NLG_OPT_LIST,
     .desc = "protocols: tcp, udp, mptcp, all (default tcp,udp)"},
    {.name = "tcp",
     .type = NLG_OPT_ALIAS,
     .shortopt = 't',
     .target = "proto",
     .value = "tcp",
     .desc = "TCP sockets"},
    {.name = "udp",
     .type = NLG_OPT_ALIAS,
     .shortopt = 'u',
     .target = "proto",
     .value = "udp",
     .desc = "UDP sockets"},
    {.name = "mptcp",
     .type = NLG_OPT_ALIAS,
     .shortopt = 'M',
     .target = "proto",
     .value = "mptcp",
     .desc = "MPTCP sockets"},
    {.name = "family",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_family,
     .def = "inet,inet6",
     .arg = "LIST",
     .flags = NLG_OPT_LIST,
     .desc = "address families: inet, inet6, all (default both)"},
    {.name = "ipv4",
     .type = NLG_OPT_ALIAS,
     .shortopt = '4',
     .target = "family",
     .value = "inet",
     .desc = "IPv4 only"},
    {.name = "ipv6",
     .type = NLG_OPT_ALIAS,
     .shortopt = '6',
     .target = "family",
     .value = "inet6",
     .desc = "IPv6 only"},
    {.name = "states",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_states,
     .def = "all",
     .arg = "LIST",
     .flags = NLG_OPT_LIST,
     .shortopt = 's',
     .cli = "state",
     .desc = "states, as ss takes them: all, connected, established, listen, time-wait, "
	     "syn-recv, ... (default all)"},
    {.name = "info",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_info,
     .def = "tcp_info,cong",
     .arg = "LIST",
     .flags = NLG_OPT_LIST,
     .shortopt = 'i',
     .desc = "extensions: tcp_info, meminfo, skmem, cong, tos, vegas, bbr, all, none "
	     "(default tcp_info,cong)"},
    {.name = "sport",
     .type = NLG_OPT_UINT,
     .off = OFF(req.sport),
     .size = 2,
     .min = 1,
     .max = 65535,
     .arg = "N",
     .desc = "only sockets with local port N (filtered in the kernel)"},
    {.name = "dport",
     .type = NLG_OPT_UINT,
     .off = OFF(req.dport),
     .size = 2,
     .min = 1,
     .max = 65535,
     .arg = "N",
     .desc = "only sockets with peer port N (filtered in the kernel)"},
    {.name = "netns",
     .type = NLG_OPT_CUSTOM,
     .parse = parse_netns,
     .shortopt = 'n',
     .arg = "NAME",
     .desc = "in network namespace NAME (/run/netns/NAME; needs CAP_SYS_ADMIN)"},
    {.name = "every",
     .type = NLG_OPT_DURATION,
     .off = OFF(every_ms),
     .def = "5s",
     .min = 10,
     .unit = "s",
     .arg = "DURATION",
     .flags = NLG_OPT_LIVE,
     .desc = "poll interval (default 5s, at least 10ms)"},
    {.name = "start",
     .type = NLG_OPT_BOOL,
     .off = OFF(start),
     .def = "true",
     .flags = NLG_OPT_SCRIPT,
     .desc = "poll on the timer from the start (false: only on src:poll())"},
    {.name = "raw",
     .type = NLG_OPT_STR,
     .off = OFF(raw),
     .size = sizeof(((struct sockets_conf *)0)->raw),
     .arg = "FILE",
     .flags = NLG_OPT_CLI,
     .desc = "also write the raw netlink replies to FILE (test fixtures)"},
    {0},
};

/* ---- counters ------------------------------------------------------------ */

enum { ST_HAS_ERROR = 1u << 0 };

struct sockets_stats {
	NLG_RECORD_HEAD;
	uint64_t polls, records, last_records, last_ms, max_ms, errors, overlaps;
	uint64_t malformed, skipped, fallbacks;
	uint64_t messages, bytes, recvs, interrupted;
	char netns[64];
	char last_error[NLG_ERRLEN];
};

#define S(n, t, m, d) NLG_FIELD(struct sockets_stats, n, t, m, 0, d)
static const struct nlg_field stats_fields[] = {
    S("polls", NLG_T_U64, polls, "polls completed"),
    S("records", NLG_T_U64, records, "records delivered, all polls"),
    S("last_records", NLG_T_U64, last_records, "records in the last poll"),
    S("last_ms", NLG_T_U64, last_ms, "duration of the last poll, ms"),
    S("max_ms", NLG_T_U64, max_ms, "longest poll, ms"),
    S("errors", NLG_T_U64, errors, "polls that failed"),
    S("overlaps", NLG_T_U64, overlaps, "timer ticks skipped: the previous poll still ran"),
    S("malformed", NLG_T_U64, malformed, "replies that failed to decode, skipped"),
    S("skipped", NLG_T_U64, skipped, "requests skipped: the kernel lacks the protocol"),
    S("fallbacks", NLG_T_U64, fallbacks, "TCPDIAG_GETSOCK refused: two v2 requests since"),
    S("messages", NLG_T_U64, messages, "netlink messages read"),
    S("bytes", NLG_T_U64, bytes, "netlink bytes read"),
    S("recvs", NLG_T_U64, recvs, "recv calls"),
    S("interrupted", NLG_T_U64, interrupted, "dumps interrupted (NLM_F_DUMP_INTR), re-sent"),
    S("netns", NLG_T_STR, netns, "network namespace, \"\" for our own"),
    NLG_FIELD(struct sockets_stats, "last_error", NLG_T_STR, last_error, ST_HAS_ERROR,
	      "why the last poll failed"),
};
#undef S

static struct nlg_schema stats_schema = {
    .kind = "sockets.stats",
    .desc = "counters of a sockets source",
    .fields = stats_fields,
    .nfields = NLG_ARRAY_SIZE(stats_fields),
    .rec_size = sizeof(struct sockets_stats),
    .present_off = offsetof(struct sockets_stats, present),
};

/* ---- the source ------------------------------------------------------------ */

struct sockets {
	struct nlg_source *src;
	const struct sockets_conf *c;
	struct nlg_sockdiag *sd;
	int64_t timer;
	int running;  /* a poll is in flight */
	int watching; /* the fd is in the loop */
	int blocking; /* the poll runs inside sockets_poll, not from the loop */
	uint64_t started_ms, poll_records;
	struct sockets_stats st;
	struct nlg_err last_err;
};

static int on_record(const struct nlg_sock *rec, void *data)
{
	struct sockets *s = data;

	s->st.records++;
	s->poll_records++;
	return nlg_source_emit(s->src, rec);
}

struct fam_proto {
	uint8_t family, proto;
};

static int same_request(const void *rec, const void *arg)
{
	const struct nlg_sock *r = rec;
	const struct fam_proto *k = arg;

	return r->family == k->family && r->proto == k->proto;
}

/* An interrupted request is sent again: a consumer that keeps this poll's
 * records drops those of the request, so it sees each socket once. */
static void on_restart(uint8_t family, uint8_t proto, void *data)
{
	struct sockets *s = data;
	struct fam_proto k = {family, proto};

	nlg_source_retract(s->src, same_request, &k);
}

static void poll_finish(struct sockets *s, int rc)
{
	uint64_t ms = nlg_now_ms() - s->started_ms;

	s->running = 0;
	if (s->watching) {
		nlg_source_unwatch(s->src, nlg_sockdiag_fd(s->sd));
		s->watching = 0;
	}
	if (rc < 0) {
		s->st.errors++;
		if (!s->blocking && !nlg_source_closing(s->src))
			nlg_source_log(s->src, "poll failed: %s", s->last_err.msg);
		return;
	}
	s->st.polls++;
	s->st.last_ms = ms;
	if (ms > s->st.max_ms)
		s->st.max_ms = ms;
	s->st.last_records = s->poll_records;
	nlg_source_flush(s->src);
}

static void poll_step(struct sockets *s)
{
	int rc = nlg_sockdiag_step(s->sd, on_record, s, &s->last_err);

	if (rc != 1)
		poll_finish(s, rc);
}

static void on_readable(void *st, int fd)
{
	NLG_UNUSED(fd);
	poll_step(st);
}

static int poll_start(struct sockets *s)
{
	int rc;

	if (s->running) {
		s->st.overlaps++;
		return 0;
	}
	s->last_err.msg[0] = 0;
	s->poll_records = 0;
	s->started_ms = nlg_now_ms();
	rc = nlg_sockdiag_start(s->sd, &s->c->req, &s->last_err);
	if (rc < 0) {
		poll_finish(s, rc);
		return rc;
	}
	s->running = 1;
	if (!s->blocking) {
		rc = nlg_source_watch(s->src, nlg_sockdiag_fd(s->sd), on_readable);
		if (rc < 0) {
			nlg_err_set(&s->last_err, rc, "cannot watch the netlink socket");
			poll_finish(s, rc);
			return rc;
		}
		s->watching = 1;
	}
	poll_step(s);
	return 0;
}

static int64_t on_timer(void *st)
{
	struct sockets *s = st;

	poll_start(s);
	return (int64_t)s->c->every_ms;
}

/* src:poll(): one whole poll now. The socket is non-blocking: wait on it
 * with a private epoll, as the loop would, without running the loop. */
static int sockets_poll(void *st, struct nlg_err *err)
{
	struct sockets *s = st;
	struct epoll_event ev = {.events = EPOLLIN};
	int ep, rc;

	if (s->running)
		return nlg_err_set(err, EBUSY, "sockets:poll: a poll is already running");
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return nlg_err_set(err, errno, "sockets:poll: epoll: %s", strerror(errno));
	s->blocking = 1;
	rc = poll_start(s);
	if (rc == 0 && s->running &&
	    epoll_ctl(ep, EPOLL_CTL_ADD, nlg_sockdiag_fd(s->sd), &ev) == 0) {
		while (s->running && epoll_wait(ep, &ev, 1, 5000) > 0)
			poll_step(s);
	}
	close(ep);
	if (s->running) {
		nlg_err_set(&s->last_err, ETIMEDOUT, "poll timed out");
		poll_finish(s, -ETIMEDOUT);
		rc = -ETIMEDOUT;
	}
	s->blocking = 0;
	if (rc < 0 || s->last_err.msg[0])
		return nlg_err_set(err, rc < 0 ? rc : EIO, "%s", s->last_err.msg);
	return (int)s->st.last_records;
}

static void sockets_close(void *st)
{
	struct sockets *s = st;

	nlg_sockdiag_close(s->sd);
	free(s);
}

static int sockets_open(struct nlg_source *src, const void *conf, void **st, struct nlg_err *err)
{
	const struct sockets_conf *c = conf;
	struct sockets *s = calloc(1, sizeof(*s));

	if (!s)
		return nlg_err_set(err, ENOMEM, "out of memory");
	s->src = src;
	s->c = c;
	snprintf(s->st.netns, sizeof(s->st.netns), "%s", c->netns);
	s->sd = nlg_sockdiag_open(c->netns[0] ? c->netns : NULL, err);
	if (!s->sd) {
		free(s);
		return -EINVAL;
	}
	nlg_sockdiag_set_restart(s->sd, on_restart);
	if (c->start) {
		s->timer = nlg_source_timer(src, 0, on_timer);
		if (s->timer < 0) {
			sockets_close(s);
			return nlg_err_set(err, ENOMEM, "cannot add a timer");
		}
	}
	*st = s;
	return 0;
}

static void sockets_stats(void *st, void *out)
{
	struct sockets *s = st;
	struct sockets_stats *o = out;
	const struct nlg_sockdiag_stats *sd = nlg_sockdiag_stats(s->sd);
	const struct nlg_nl_stats *nl = nlg_nl_stats(nlg_sockdiag_nl(s->sd));

	*o = s->st;
	o->malformed = sd->malformed;
	o->skipped = sd->skipped;
	o->fallbacks = sd->fallbacks;
	o->messages = nl->msgs;
	o->bytes = nl->bytes;
	o->recvs = nl->recvs;
	o->interrupted = nl->intr;
	if (s->last_err.msg[0]) {
		snprintf(o->last_error, sizeof(o->last_error), "%s", s->last_err.msg);
		o->present |= ST_HAS_ERROR;
	}
}

static int sockets_busy(void *st)
{
	return ((struct sockets *)st)->running;
}

static int dump_record(const struct nlg_sock *rec, void *data)
{
	return nlg_source_emit(data, rec);
}

/* `nlgate dump sockets`: one whole poll, blocking. */
static int sockets_dump(struct nlg_source *src, const void *conf, struct nlg_err *err)
{
	const struct sockets_conf *c = conf;
	struct nlg_sockdiag *sd = nlg_sockdiag_open(c->netns[0] ? c->netns : NULL, err);
	int rawfd = -1, rc;

	if (!sd)
		return -EINVAL;
	if (c->raw[0]) {
		rawfd = open(c->raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (rawfd < 0) {
			rc =
			    nlg_err_set(err, errno, "cannot write %s: %s", c->raw, strerror(errno));
			nlg_sockdiag_close(sd);
			return rc;
		}
		nlg_nl_set_raw(nlg_sockdiag_nl(sd), rawfd);
	}
	rc = nlg_sockdiag_poll(sd, &c->req, dump_record, src, err);
	nlg_source_flush(src);
	nlg_sockdiag_close(sd);
	if (rawfd >= 0)
		close(rawfd);
	return rc;
}

/* Entering another namespace (at a reload's re-open too) takes CAP_SYS_ADMIN. */
static uint64_t sockets_caps_for(const void *conf)
{
	return ((const struct sockets_conf *)conf)->netns[0] ? 1ull << CAP_SYS_ADMIN : 0;
}

const struct nlg_source_ops nlg_sockets_source = {
    .name = "sockets",
    .desc = "the kernel's inet sockets (inet_diag), polled",
    .schema = &nlg_sock_schema,
    .stats_schema = &stats_schema,
    .opts = sockets_opts,
    .conf_size = sizeof(struct sockets_conf),
    .caps_for = sockets_caps_for,
    .caps = 0,
    .open = sockets_open,
    .close = sockets_close,
    .poll = sockets_poll,
    .busy = sockets_busy,
    .dump = sockets_dump,
    .stats = sockets_stats,
};
