/* The conntrack source: ctnetlink event sockets (reliable DESTROY, best-effort
 * NEW/UPDATE with loss detection), table and dying-list dumps, and resync
 * driven through the flow table (ct_table.c); messages are decoded by
 * ct_parse.c. Also the one-shot dump. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "nlgate/conntrack.h"
#include "nlgate/nl.h"

/* ---- options ------------------------------------------------------------- */

void nlg_ct_opts_default(struct nlg_ct_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->events = NLG_CT_EV_ALL;
	o->reliable = NLG_CT_RELIABLE_DESTROY;
	o->initial_dump = 1;
	o->resync = 1;
}

int nlg_ct_parse_events(const char *s, unsigned *events)
{
	unsigned ev = 0;

	while (*s) {
		size_t n = strcspn(s, ", ");
		if (n == 3 && !strncmp(s, "new", 3))
			ev |= NLG_CT_EV_NEW;
		else if (n == 6 && !strncmp(s, "update", 6))
			ev |= NLG_CT_EV_UPDATE;
		else if (n == 7 && !strncmp(s, "destroy", 7))
			ev |= NLG_CT_EV_DESTROY;
		else if (n == 3 && !strncmp(s, "all", 3))
			ev |= NLG_CT_EV_ALL;
		else if (n)
			return -EINVAL;
		s += n;
		s += strspn(s, ", ");
	}
	if (!ev)
		return -EINVAL;
	*events = ev;
	return 0;
}

int nlg_ct_parse_reliable(const char *s, int *mode)
{
	if (!strcmp(s, "destroy") || !strcmp(s, "on"))
		*mode = NLG_CT_RELIABLE_DESTROY;
	else if (!strcmp(s, "all"))
		*mode = NLG_CT_RELIABLE_ALL;
	else if (!strcmp(s, "off"))
		*mode = NLG_CT_RELIABLE_OFF;
	else
		return -EINVAL;
	return 0;
}

/* ---- dump requests ------------------------------------------------------- */

/* A ctnetlink GET dump of the given type; the kernel filters on family when
 * it is set (and otherwise dumps all). */
static struct nlmsghdr *ct_get_request(void *buf, size_t len, int type, uint8_t family)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	memset(buf, 0, len);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = family;
	nfg->version = NFNETLINK_V0;
	return nlh;
}

struct nlmsghdr *nlg_ct_dump_request(void *buf, size_t len, const struct nlg_ct_filter *f)
{
	struct nlmsghdr *nlh =
	    ct_get_request(buf, len, IPCTNL_MSG_CT_GET, f ? f->family : AF_UNSPEC);

	if (f && f->has_mark) {
		mnl_attr_put_u32(nlh, CTA_MARK, htonl(f->mark));
		mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(f->mark_mask));
	}
	if (f && f->has_zone)
		mnl_attr_put_u16(nlh, CTA_ZONE, htons(f->zone));
	return nlh;
}

struct nlmsghdr *nlg_ct_dying_request(void *buf, size_t len, const struct nlg_ct_filter *f)
{
	return ct_get_request(buf, len, IPCTNL_MSG_CT_GET_DYING, f ? f->family : AF_UNSPEC);
}

/* ---- the source ---------------------------------------------------------- */

#define CT_VLEN		   NLG_NL_BATCH_MAX /* datagrams per recvmmsg */
#define CT_BUDGET	   256		    /* recvmmsg calls per readable step before yielding */
#define CT_BATCH	   CT_VLEN	    /* events decoded before the table sees them */
#define CT_EARLY_RESYNC_MS 30000

struct ct_sock {
	struct nlg_nl *nl;
	int fd;
	uint32_t portid;
	int reliable;
	unsigned groups;
	uint64_t drops; /* last Drops value read from /proc/net/netlink */
};

enum { SOCK_EV, SOCK_DEL, NSOCKS };
enum { PH_TABLE, PH_DYING, PH_DRAIN };

struct nlg_ct_src {
	struct nlg_ct_opts o;
	struct nlg_ct_sink sink;
	struct nlg_ct_parser *parser;
	struct nlg_ct_table *table; /* NULL when resync is off */
	struct ct_sock s[NSOCKS];
	struct nlg_nl *dump;
	int dumping, initial, pending;
	/* A resync is three steps: the table dump; the dying-list dump (flows
	 * out of the table whose DESTROY the kernel still holds for a reliable
	 * listener: they are not gone unseen); and draining the DESTROY socket,
	 * since a flow the dumps missed may have its DESTROY queued there. Only
	 * then is whatever the dumps did not show gone unseen. */
	int phase;
	int no_dying;	 /* the kernel refused the dying-list dump */
	int events_mode; /* net.netfilter.nf_conntrack_events, -1 unknown */
	uint64_t last_sync_ms;
	struct nlg_ct_stats st;
	struct nlg_ct batch[CT_BATCH]; /* decoded, waiting for the table */
	int nb;
	char notes[1024];
	struct nlg_err derr; /* last dump error, for tick() to report */
};

int nlg_ct_sysctl(const char *name)
{
	char path[128], buf[32];
	int fd, v = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/sys/net/netfilter/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		v = atoi(buf);
	}
	close(fd);
	return v;
}

static void check_kernel(struct nlg_ct_src *s)
{
	int acct, ts;

	if (s->o.netns) /* /proc/sys is our namespace's, not the target's */
		return;
	s->events_mode = nlg_ct_sysctl("nf_conntrack_events");
	acct = nlg_ct_sysctl("nf_conntrack_acct");
	ts = nlg_ct_sysctl("nf_conntrack_timestamp");
	if (s->events_mode == 0)
		nlg_note(s->notes, sizeof(s->notes),
			 "net.netfilter.nf_conntrack_events=0: the kernel sends no conntrack "
			 "events; only dumps will show flows (set it to 1)");
	else if (s->events_mode == 2)
		nlg_note(s->notes, sizeof(s->notes),
			 "net.netfilter.nf_conntrack_events=2: the kernel gives events only to "
			 "flows created while a listener exists, so flows that predate nlgate "
			 "never report their end; nlgate lists them from its start-up dump and "
			 "notices their end at a resync dump (every %d s while any remain). Set it "
			 "to 1 for destroy events from every flow",
			 CT_EARLY_RESYNC_MS / 1000);
	if (acct == 0)
		nlg_note(s->notes, sizeof(s->notes),
			 "net.netfilter.nf_conntrack_acct=0: no packet/byte counters (set it to 1; "
			 "applies to flows created afterwards)");
	if (ts == 0)
		nlg_note(s->notes, sizeof(s->notes),
			 "net.netfilter.nf_conntrack_timestamp=0: no start/stop timestamps (set "
			 "it to 1; applies to flows created afterwards)");
}

static int cap_msg(struct nlg_err *err, int r, const char *what)
{
	if (r == -EPERM || r == -EACCES)
		return nlg_err_set(err, EPERM,
				   "conntrack %s need CAP_NET_ADMIN (run as root, or grant "
				   "cap_net_admin)",
				   what);
	return r;
}

static int sock_open(struct nlg_ct_src *s, struct ct_sock *cs, unsigned groups, int reliable,
		     struct nlg_err *err)
{
	int want = s->o.rcvbuf ? s->o.rcvbuf : NLG_CT_RCVBUF, got = 0, r;

	cs->groups = groups;
	cs->reliable = reliable;
	cs->fd = -1;
	if (!groups)
		return 0;
	cs->nl = nlg_nl_open(NETLINK_NETFILTER, groups, s->o.netns, err);
	if (!cs->nl)
		return errno == EPERM ? cap_msg(err, -EPERM, "events") : -EIO;
	cs->fd = nlg_nl_fd(cs->nl);
	cs->portid = nlg_nl_portid(cs->nl);
	r = nlg_nl_set_nonblock(cs->nl, 1);
	if (r < 0)
		return nlg_err_set(err, -r, "conntrack: non-blocking socket: %s", strerror(-r));
	r = nlg_nl_set_rcvbuf(cs->nl, want, &got, err);
	if (r < 0)
		return r;
	if (!s->st.rcvbuf || got < s->st.rcvbuf)
		s->st.rcvbuf = got;
	if (reliable) {
		r = nlg_nl_setsockopt_int(cs->nl, NETLINK_BROADCAST_ERROR, 1);
		if (r == 0)
			r = nlg_nl_setsockopt_int(cs->nl, NETLINK_NO_ENOBUFS, 1);
		if (r < 0)
			return nlg_err_set(err, -r, "conntrack: reliable delivery options: %s",
					   strerror(-r));
	}
	return 0;
}

static int emit(struct nlg_ct_src *s, const struct nlg_ct *ct)
{
	if (!(s->o.events & (1u << ct->event)))
		return NLG_CB_OK;
	s->st.emitted++;
	return s->sink.record(ct, s->sink.data) == NLG_CB_ERROR ? NLG_CB_ERROR : NLG_CB_OK;
}

static int emit_synthetic(const struct nlg_ct *ct, void *data)
{
	struct nlg_ct_src *s = data;

	if (!nlg_ct_filter_match(&s->o.filter, ct))
		return NLG_CB_OK;
	s->st.synthetic++;
	return emit(s, ct);
}

static int on_dump_msg(const struct nlmsghdr *nlh, void *data)
{
	struct nlg_ct_src *s = data;
	struct nlg_ct ct;

	if (nlg_ct_parse(s->parser, nlh, &ct, NULL) < 0) {
		s->st.bad++;
		return NLG_CB_OK;
	}
	if (!nlg_ct_filter_match(&s->o.filter, &ct)) {
		s->st.filtered++;
		return NLG_CB_OK;
	}
	if (s->phase == PH_DYING) {
		if (s->table)
			(void)nlg_ct_table_sync_dying(s->table, &ct);
		return NLG_CB_OK;
	}
	s->st.dumped++;
	ct.dump = 1;
	ct.event = NLG_CT_NEW;
	if (s->table) {
		int r = nlg_ct_table_sync_flow(s->table, &ct);
		if (r < 0)
			return NLG_CB_ERROR;
		if (r == 0)
			return NLG_CB_OK;
		if (!s->initial)
			s->st.resynced++;
	}
	return emit(s, &ct);
}

static int dump_start(struct nlg_ct_src *s, struct nlg_err *err)
{
	char buf[256];
	struct nlmsghdr *req = nlg_ct_dump_request(buf, sizeof(buf), &s->o.filter);
	int r;

	if (s->table)
		nlg_ct_table_sync_begin(s->table);
	r = nlg_nl_dump_start(s->dump, req, "ctnetlink", err);
	if (r < 0)
		return cap_msg(err, r, "dumps");
	s->dumping = 1;
	s->pending = 0;
	s->phase = PH_TABLE;
	return 0;
}

static int dump_finish(struct nlg_ct_src *s)
{
	int r = 0;

	if (s->table) {
		r = nlg_ct_table_sync_end(s->table, emit_synthetic, s);
		s->st.live = nlg_ct_table_count(s->table);
	}
	if (!s->initial)
		s->st.resyncs++;
	s->initial = 0;
	s->dumping = 0;
	s->last_sync_ms = nlg_now_ms();
	return r < 0 ? r : 0;
}

int nlg_ct_resync(struct nlg_ct_src *s, struct nlg_err *err)
{
	if (!s->table)
		return 0;
	if (s->dumping) {
		s->pending = 1; /* what this dump has passed may be stale: redo it after */
		return 0;
	}
	return dump_start(s, err);
}

int nlg_ct_syncing(const struct nlg_ct_src *s)
{
	return s->dumping || s->pending;
}

/* Drops per socket from /proc/net/netlink (this namespace):
 *   sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode */
static int read_drops(struct nlg_ct_src *s, uint64_t drops[NSOCKS])
{
	char buf[8192];
	int fd = open("/proc/net/netlink", O_RDONLY | O_CLOEXEC), found = 0;
	size_t have = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			unsigned long long sk, dr, inode;
			int eth;
			unsigned pid;
			*nl = 0;
			if (sscanf(line, "%llx %d %u %*x %*d %*d %*d %*d %llu %llu", &sk, &eth,
				   &pid, &dr, &inode) == 5 &&
			    eth == NETLINK_NETFILTER) {
				for (int i = 0; i < NSOCKS; i++)
					if (s->s[i].nl && s->s[i].portid == pid) {
						drops[i] = dr;
						found++;
					}
			}
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
	close(fd);
	return found;
}

/* Compare the kernel's drop counters with what we saw last; a drop on a
 * best-effort socket is a lost event (resync), on a reliable DESTROY socket
 * an event the kernel will deliver again. */
static int check_drops(struct nlg_ct_src *s, struct nlg_err *err)
{
	uint64_t d[NSOCKS] = {0};
	int need = 0;

	if (s->o.netns || read_drops(s, d) <= 0)
		return 0;
	for (int i = 0; i < NSOCKS; i++) {
		struct ct_sock *cs = &s->s[i];
		if (!cs->nl || d[i] <= cs->drops)
			continue;
		uint64_t delta = d[i] - cs->drops;
		cs->drops = d[i];
		if (cs->reliable)
			s->st.deferred += delta;
		else
			s->st.lost += delta;
		/* NEW/UPDATE are not re-sent as such even on a reliable socket */
		if (!cs->reliable || !(cs->groups & NF_NETLINK_CONNTRACK_DESTROY))
			need = 1;
	}
	return need ? nlg_ct_resync(s, err) : 0;
}

static int sync_done(struct nlg_ct_src *s, struct nlg_err *err);

/* An event message: decoded, counted, filtered. Returns 1 to go on with it. */
static int ev_decode(struct nlg_ct_src *s, const struct nlmsghdr *nlh, struct nlg_ct *ct)
{
	if (nlg_ct_parse(s->parser, nlh, ct, NULL) < 0) {
		s->st.bad++;
		return 0;
	}
	s->st.received++;
	if (ct->event == NLG_CT_NEW)
		s->st.new ++;
	else if (ct->event == NLG_CT_UPDATE)
		s->st.update++;
	else
		s->st.destroy++;
	if (!nlg_ct_filter_match(&s->o.filter, ct)) {
		s->st.filtered++;
		return 0;
	}
	if (s->table) /* its slot is loading while the rest of the batch decodes */
		nlg_ct_table_prefetch(s->table, ct);
	return 1;
}

/* The decoded events of one receive, in order: the table, then the sink. */
static int ev_apply(struct nlg_ct_src *s, int n)
{
	for (int i = 0; i < n; i++) {
		const struct nlg_ct *ct = &s->batch[i];
		int orphan = 0;
		if (s->table) {
			int r = nlg_ct_table_event(s->table, ct, &orphan);
			if (r < 0)
				return NLG_CB_ERROR;
			if (r == 0) {
				s->st.duplicates++;
				continue;
			}
			s->st.orphans += (uint64_t)orphan;
		}
		if (emit(s, ct) == NLG_CB_ERROR)
			return NLG_CB_ERROR;
	}
	return NLG_CB_OK;
}

/* nlg_nl_recv_events_batch hands each message here: decoded into the batch,
 * which goes to the table and the sink whenever it fills (and after each
 * receive). */
static int on_event_msg(const struct nlmsghdr *nlh, void *data)
{
	struct nlg_ct_src *s = data;

	s->nb += ev_decode(s, nlh, &s->batch[s->nb]);
	if (s->nb < CT_BATCH)
		return NLG_CB_OK;
	s->nb = 0;
	return ev_apply(s, CT_BATCH);
}

static int read_events(struct nlg_ct_src *s, struct ct_sock *cs, struct nlg_err *err)
{
	uint64_t before = s->st.emitted;
	int loss = 0, drained = 0;

	for (int round = 0; round < CT_BUDGET; round++) {
		uint64_t foreign = nlg_nl_stats(cs->nl)->bad_seq;
		int n = nlg_nl_recv_events_batch(cs->nl, CT_VLEN, on_event_msg, s, err), nb = s->nb;
		s->nb = 0;
		/* only the kernel may speak here: unicasts from other processes
		 * (forged events) were dropped */
		s->st.bad += nlg_nl_stats(cs->nl)->bad_seq - foreign;
		if (n == -ECANCELED || ev_apply(s, nb) == NLG_CB_ERROR)
			return nlg_err_set(err, ECANCELED, "conntrack: the consumer stopped");
		if (n == -ENOBUFS || n == -EOVERFLOW || n == -EMSGSIZE) {
			/* dropped by the kernel, or too big to read whole: lost */
			if (n == -ENOBUFS)
				s->st.enobufs++;
			else
				s->st.bad++;
			loss = 1;
			continue;
		}
		if (n == -EPROTO) { /* a garbled datagram, skipped */
			s->st.bad++;
			continue;
		}
		if (n < 0)
			return n;
		if (n < CT_VLEN) { /* the queue ran dry */
			drained = 1;
			break;
		}
	}
	if (loss) {
		int r;
		uint64_t lost = s->st.lost;
		r = check_drops(s, err);
		if (r < 0)
			return r;
		if (s->st.lost == lost) /* no /proc view: at least one was lost */
			s->st.lost++;
		r = nlg_ct_resync(s, err);
		if (r < 0)
			return r;
	}
	if (drained && s->dumping && s->phase == PH_DRAIN && cs == &s->s[SOCK_DEL]) {
		int r = sync_done(s, err);
		if (r < 0)
			return r;
	}
	if (s->st.emitted != before && s->sink.batch)
		s->sink.batch(s->sink.data);
	if (s->table)
		s->st.live = nlg_ct_table_count(s->table);
	return (int)(s->st.emitted - before);
}

/* The dump has ended and, if pending, a new one starts. */
static int sync_done(struct nlg_ct_src *s, struct nlg_err *err)
{
	int r = dump_finish(s);

	if (r < 0)
		return nlg_err_set(err, -r, "conntrack: resync: out of memory");
	return s->pending ? dump_start(s, err) : 0;
}

/* The table dump is over: ask for the dying list, then drain DESTROYs. */
static int next_phase(struct nlg_ct_src *s, struct nlg_err *err)
{
	struct ct_sock *del = &s->s[SOCK_DEL];
	int r;

	if (s->phase == PH_TABLE && s->table && del->nl && !s->no_dying) {
		char buf[64];
		struct nlmsghdr *req = nlg_ct_dying_request(buf, sizeof(buf), &s->o.filter);
		if (nlg_nl_dump_start(s->dump, req, "ctnetlink (dying list)", NULL) == 0) {
			s->phase = PH_DYING;
			return 0;
		}
		s->no_dying = 1;
	}
	s->phase = PH_DRAIN;
	if (!del->nl)
		return sync_done(s, err);
	r = read_events(s, del, err); /* finishes the resync once drained */
	return r < 0 ? r : 0;
}

static int step_dump(struct nlg_ct_src *s, struct nlg_err *err)
{
	uint64_t before = s->st.emitted;
	int r = nlg_nl_dump_step(s->dump, on_dump_msg, s, err);

	if (r < 0 && s->phase == PH_DYING) {
		/* an interrupted dying dump is asked again; a kernel without it
		 * leaves only the drain to tell the DESTROYs in flight */
		if (r != -EINTR)
			s->no_dying = 1;
		s->phase = PH_TABLE;
		r = next_phase(s, err);
		if (r < 0)
			return r;
	} else if (r == -EINTR) { /* interrupted dump: start it again */
		s->dumping = 0;
		r = dump_start(s, err);
		if (r < 0)
			return r;
	} else if (r < 0) {
		s->dumping = 0;
		if (s->table)
			(void)nlg_ct_table_sync_end(s->table, NULL, NULL);
		return cap_msg(err, r, "dumps");
	} else if (r == 0) {
		r = next_phase(s, err);
		if (r < 0)
			return r;
	}
	if (s->st.emitted != before && s->sink.batch)
		s->sink.batch(s->sink.data);
	return (int)(s->st.emitted - before);
}

int nlg_ct_readable(struct nlg_ct_src *s, int fd, struct nlg_err *err)
{
	if (s->dump && fd == nlg_nl_fd(s->dump)) {
		if (!s->dumping)
			return 0;
		return step_dump(s, err);
	}
	for (int i = 0; i < NSOCKS; i++)
		if (s->s[i].nl && fd == s->s[i].fd)
			return read_events(s, &s->s[i], err);
	return nlg_err_set(err, EBADF, "conntrack: fd %d is not ours", fd);
}

int nlg_ct_tick(struct nlg_ct_src *s, struct nlg_err *err)
{
	int r = check_drops(s, err);

	if (r < 0)
		return r;
	if (s->pending && !s->dumping)
		return dump_start(s, err);
	if (s->dumping && s->phase == PH_DRAIN && s->s[SOCK_DEL].nl) {
		r = read_events(s, &s->s[SOCK_DEL], err);
		return r < 0 ? r : 0;
	}
	/* events=2: flows from before our start never report their end */
	if (s->table && s->events_mode == 2 && nlg_ct_table_unconfirmed(s->table) && !s->dumping &&
	    nlg_now_ms() - s->last_sync_ms >= CT_EARLY_RESYNC_MS)
		return dump_start(s, err);
	return 0;
}

int nlg_ct_fds(const struct nlg_ct_src *s, int *fds, int max)
{
	int n = 0;

	for (int i = 0; i < NSOCKS && n < max; i++)
		if (s->s[i].nl)
			fds[n++] = s->s[i].fd;
	if (s->dump && n < max)
		fds[n++] = nlg_nl_fd(s->dump);
	return n;
}

const struct nlg_ct_stats *nlg_ct_stats(const struct nlg_ct_src *s)
{
	return &s->st;
}

const char *nlg_ct_notes(const struct nlg_ct_src *s)
{
	return s->notes;
}

struct nlg_ct_src *nlg_ct_open(const struct nlg_ct_opts *o, const struct nlg_ct_sink *sink,
			       struct nlg_err *err)
{
	struct nlg_ct_src *s = calloc(1, sizeof(*s));
	unsigned ev, del;
	int r, want;

	if (!s) {
		nlg_err_set(err, ENOMEM, "conntrack: out of memory");
		return NULL;
	}
	s->o = *o;
	if (!s->o.events)
		s->o.events = NLG_CT_EV_ALL;
	s->sink = *sink;
	s->events_mode = -1;
	s->s[SOCK_EV].fd = s->s[SOCK_DEL].fd = -1;
	s->parser = nlg_ct_parser_new();
	if (!s->parser) {
		nlg_err_set(err, ENOMEM, "conntrack: out of memory");
		goto err;
	}
	if (s->o.resync) {
		s->table = nlg_ct_table_new();
		if (!s->table) {
			nlg_err_set(err, ENOMEM, "conntrack: out of memory");
			goto err;
		}
	}
	check_kernel(s);

	/* The table needs NEW and DESTROY to know what lives, whatever the
	 * script asked for; what is emitted is filtered later. */
	want = (int)s->o.events | (s->table ? NLG_CT_EV_NEW | NLG_CT_EV_DESTROY : 0);
	ev = (want & NLG_CT_EV_NEW ? NF_NETLINK_CONNTRACK_NEW : 0) |
	     (want & NLG_CT_EV_UPDATE ? NF_NETLINK_CONNTRACK_UPDATE : 0);
	del = want & NLG_CT_EV_DESTROY ? NF_NETLINK_CONNTRACK_DESTROY : 0;
	/* subscribe first, then dump: nothing falls between the two */
	r = sock_open(s, &s->s[SOCK_DEL], del, s->o.reliable != NLG_CT_RELIABLE_OFF, err);
	if (r < 0)
		goto err;
	r = sock_open(s, &s->s[SOCK_EV], ev, s->o.reliable == NLG_CT_RELIABLE_ALL, err);
	if (r < 0)
		goto err;
	if (s->o.rcvbuf != 0 || s->st.rcvbuf < NLG_CT_RCVBUF) {
		int asked = s->o.rcvbuf ? s->o.rcvbuf : NLG_CT_RCVBUF;
		if (s->st.rcvbuf < asked)
			nlg_note(s->notes, sizeof(s->notes),
				 "conntrack receive buffer: asked %d bytes, the kernel granted %d",
				 asked, s->st.rcvbuf);
	}
	if (s->table || s->o.initial_dump) {
		s->dump = nlg_nl_open(NETLINK_NETFILTER, 0, s->o.netns, err);
		if (!s->dump)
			goto err;
		r = nlg_nl_set_nonblock(s->dump, 1);
		if (r == 0)
			r = nlg_nl_set_rcvbuf(s->dump, 4 << 20, NULL, err);
		if (r < 0) {
			nlg_err_set(err, -r, "conntrack: dump socket: %s", strerror(-r));
			goto err;
		}
	}
	(void)check_drops(s, NULL); /* baseline */
	s->last_sync_ms = nlg_now_ms();
	if (s->o.initial_dump) {
		s->initial = 1;
		if (dump_start(s, err) < 0)
			goto err;
	}
	return s;
err:
	nlg_ct_close(s);
	return NULL;
}

void nlg_ct_close(struct nlg_ct_src *s)
{
	if (!s)
		return;
	for (int i = 0; i < NSOCKS; i++)
		nlg_nl_close(s->s[i].nl);
	nlg_nl_close(s->dump);
	nlg_ct_table_free(s->table);
	nlg_ct_parser_free(s->parser);
	free(s);
}

/* ---- one-shot dump ------------------------------------------------------- */

struct dump_ctx {
	struct nlg_ct_parser *p;
	const struct nlg_ct_opts *o;
	const struct nlg_ct_sink *sink;
	int n;
};

static int on_oneshot(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *c = data;
	struct nlg_ct ct;

	if (nlg_ct_parse(c->p, nlh, &ct, NULL) < 0)
		return NLG_CB_OK;
	if (!nlg_ct_filter_match(&c->o->filter, &ct))
		return NLG_CB_OK;
	ct.dump = 1;
	ct.event = NLG_CT_NEW;
	c->n++;
	return c->sink->record(&ct, c->sink->data) == NLG_CB_ERROR ? NLG_CB_ERROR : NLG_CB_OK;
}

int nlg_ct_dump(const struct nlg_ct_opts *o, const struct nlg_ct_sink *sink, struct nlg_err *err)
{
	struct dump_ctx c = {.o = o, .sink = sink};
	struct nlg_nl *nl;
	char buf[256];
	int r;

	c.p = nlg_ct_parser_new();
	if (!c.p)
		return nlg_err_set(err, ENOMEM, "conntrack: out of memory");
	nl = nlg_nl_open(NETLINK_NETFILTER, 0, o->netns, err);
	if (!nl) {
		nlg_ct_parser_free(c.p);
		return -EIO;
	}
	(void)nlg_nl_set_rcvbuf(nl, 4 << 20, NULL, NULL);
	r = nlg_nl_dump_run(nl, nlg_ct_dump_request(buf, sizeof(buf), &o->filter), "ctnetlink",
			    on_oneshot, &c, NULL, err);
	nlg_nl_close(nl);
	nlg_ct_parser_free(c.p);
	if (r < 0)
		return cap_msg(err, r, "dumps");
	return c.n;
}
