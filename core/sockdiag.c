/* inet_diag socket dumps: requests (families × protocols, a port filter as
 * inet_diag bytecode; TCP over both families as one legacy TCPDIAG_GETSOCK
 * dump), reply decoding into struct nlg_sock, and the poll that walks the
 * requests over the nl.c dump runner. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/sock_diag.h>
#include <libmnl/libmnl.h>

#include "nlgate/sockdiag.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* The kernel's TCP_* states (include/net/tcp_states.h); no uapi header
 * names them without clashing with <linux/tcp.h>. */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT,
	TCP_SYN_RECV,
	TCP_FIN_WAIT1,
	TCP_FIN_WAIT2,
	TCP_TIME_WAIT,
	TCP_CLOSE,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
	TCP_LISTEN,
	TCP_CLOSING,
};

/* TCP_* state bits. "all" is ESTABLISHED..CLOSING, as ss means it (the
 * kernel-internal NEW_SYN_RECV rides on SYN_RECV, BOUND_INACTIVE is left out). */
#define ST(s)	     (1u << (s))
#define SD_ST_ALL    (ST(TCP_CLOSING + 1) - ST(TCP_ESTABLISHED))
#define SD_ST_CONN   (SD_ST_ALL & ~(ST(TCP_CLOSE) | ST(TCP_LISTEN)))
#define SD_ST_SYNC   (SD_ST_CONN & ~ST(TCP_SYN_SENT))
#define SD_ST_BUCKET (ST(TCP_SYN_RECV) | ST(TCP_TIME_WAIT))
#define SD_ST_BIG    (SD_ST_ALL & ~SD_ST_BUCKET)

#define EXT(a) (1u << ((a)-1))
#define SD_EXT_ALL                                                                                 \
	(EXT(INET_DIAG_INFO) | EXT(INET_DIAG_MEMINFO) | EXT(INET_DIAG_SKMEMINFO) |                 \
	 EXT(INET_DIAG_CONG) | EXT(INET_DIAG_TOS) | EXT(INET_DIAG_TCLASS) |                        \
	 EXT(INET_DIAG_VEGASINFO))
/* What only a TCP socket answers; ss does not ask UDP for it either. */
#define SD_EXT_TCP_ONLY (EXT(INET_DIAG_INFO) | EXT(INET_DIAG_CONG) | EXT(INET_DIAG_VEGASINFO))

struct sd_name {
	const char *name;
	uint32_t bits;
};

static const struct sd_name state_words[] = {
    {"all", SD_ST_ALL},
    {"connected", SD_ST_CONN},
    {"synchronized", SD_ST_SYNC},
    {"bucket", SD_ST_BUCKET},
    {"big", SD_ST_BIG},
    {"established", ST(TCP_ESTABLISHED)},
    {"estab", ST(TCP_ESTABLISHED)},
    {"syn-sent", ST(TCP_SYN_SENT)},
    {"syn-recv", ST(TCP_SYN_RECV)},
    {"syn-rcv", ST(TCP_SYN_RECV)},
    {"synrecv", ST(TCP_SYN_RECV)},
    {"fin-wait-1", ST(TCP_FIN_WAIT1)},
    {"fin-wait-2", ST(TCP_FIN_WAIT2)},
    {"time-wait", ST(TCP_TIME_WAIT)},
    {"closed", ST(TCP_CLOSE)},
    {"close", ST(TCP_CLOSE)},
    {"unconn", ST(TCP_CLOSE)},
    {"unconnected", ST(TCP_CLOSE)},
    {"close-wait", ST(TCP_CLOSE_WAIT)},
    {"last-ack", ST(TCP_LAST_ACK)},
    {"listen", ST(TCP_LISTEN)},
    {"listening", ST(TCP_LISTEN)},
    {"closing", ST(TCP_CLOSING)},
};

/* The kernel answers BBR and DCTCP info to the VEGASINFO bit: BBRINFO (16)
 * does not fit the 8-bit idiag_ext. */
static const struct sd_name ext_words[] = {
    {"tcp_info", EXT(INET_DIAG_INFO)},
    {"info", EXT(INET_DIAG_INFO)},
    {"meminfo", EXT(INET_DIAG_MEMINFO)},
    {"skmem", EXT(INET_DIAG_SKMEMINFO)},
    {"cong", EXT(INET_DIAG_CONG)},
    {"tos", EXT(INET_DIAG_TOS) | EXT(INET_DIAG_TCLASS)},
    {"vegas", EXT(INET_DIAG_VEGASINFO)},
    {"bbr", EXT(INET_DIAG_VEGASINFO)},
    {"all", SD_EXT_ALL},
    {"none", 0},
};

static const struct sd_name proto_words[] = {
    {"tcp", NLG_SD_TCP},
    {"udp", NLG_SD_UDP},
    {"mptcp", NLG_SD_MPTCP},
    {"all", NLG_SD_TCP | NLG_SD_UDP | NLG_SD_MPTCP},
};

static const struct sd_name family_words[] = {
    {"inet", NLG_SD_INET},
    {"inet6", NLG_SD_INET6},
    {"ipv4", NLG_SD_INET},
    {"ipv6", NLG_SD_INET6},
    {"4", NLG_SD_INET},
    {"6", NLG_SD_INET6},
    {"all", NLG_SD_INET | NLG_SD_INET6},
};

/* As `ss -tuanH` prints them; core/schema_sock.c's state_names match. */
static const char *const state_names[] = {
    "UNKNOWN", "ESTAB",	     "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
    "UNCONN",  "CLOSE-WAIT", "LAST-ACK", "LISTEN",   "CLOSING",	   "SYN-RECV",	 "BOUND-INACTIVE",
};

/* Split a comma-separated list and OR the bits of each known word. */
static int sd_parse_list(const char *list, const struct sd_name *words, size_t nwords,
			 const char *kind, uint32_t *out, struct nlg_err *err)
{
	uint32_t bits = 0;
	const char *p = list;
	int any = 0;

	if (!list)
		return nlg_err_set(err, EINVAL, "empty %s list", kind);
	while (*p) {
		size_t n, i;

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ", ");
		if (n == 0)
			break;
		for (i = 0; i < nwords; i++) {
			if (strlen(words[i].name) == n && strncasecmp(words[i].name, p, n) == 0)
				break;
		}
		if (i == nwords)
			return nlg_err_set(err, EINVAL, "unknown %s '%.*s'", kind, (int)n, p);
		bits |= words[i].bits;
		any = 1;
		p += n;
	}
	if (!any)
		return nlg_err_set(err, EINVAL, "empty %s list", kind);
	*out = bits;
	return 0;
}

int nlg_sockdiag_parse_states(const char *list, uint32_t *mask, struct nlg_err *err)
{
	return sd_parse_list(list, state_words, NLG_ARRAY_SIZE(state_words), "socket state", mask,
			     err);
}

int nlg_sockdiag_parse_ext(const char *list, uint8_t *ext, struct nlg_err *err)
{
	/* sd_parse_list sets it only on success, and GCC at -O3 cannot see that
	 * nlg_err_set never returns 0: start from "no info" so no path reads junk. */
	uint32_t bits = 0;
	int rc =
	    sd_parse_list(list, ext_words, NLG_ARRAY_SIZE(ext_words), "socket info", &bits, err);

	if (rc == 0)
		*ext = (uint8_t)bits;
	return rc;
}

int nlg_sockdiag_parse_protos(const char *list, uint32_t *protos, struct nlg_err *err)
{
	return sd_parse_list(list, proto_words, NLG_ARRAY_SIZE(proto_words), "protocol", protos,
			     err);
}

int nlg_sockdiag_parse_families(const char *list, uint32_t *families, struct nlg_err *err)
{
	return sd_parse_list(list, family_words, NLG_ARRAY_SIZE(family_words), "family", families,
			     err);
}

const char *nlg_sockdiag_state_name(unsigned int state)
{
	return state < NLG_ARRAY_SIZE(state_names) ? state_names[state] : "UNKNOWN";
}

/* ---- decoding ------------------------------------------------------------
 *
 *   SOCK_DIAG_BY_FAMILY reply:
 *   +----------+-----------------------+--------+---------+--------+-----
 *   | nlmsghdr | struct inet_diag_msg  | nlattr | payload | nlattr | ...
 *   |          | (72 bytes, fixed)     | INFO   | tcp_info| CONG   |
 *   +----------+-----------------------+--------+---------+--------+-----
 *   attributes are 4-byte aligned TLVs; each must end inside the message. */

struct sd_decode {
	struct nlg_sock *out;
	int tcp;	     /* decode INET_DIAG_INFO as tcp_info */
	const char *end;     /* end of the last attribute walked */
	const char *msg_end; /* nlmsg_len, unaligned: libmnl's walk allows the pad */
};

/* libmnl's getters are out-of-line calls; per attribute of 100,000 sockets
 * they cost more than the decoding, so the TLV header is read here. */
#define SD_PAYLOAD(a)	  ((const char *)(a) + MNL_ATTR_HDRLEN)
#define SD_PAYLOAD_LEN(a) ((size_t)(a)->nla_len - MNL_ATTR_HDRLEN)

static int sd_attr(const struct nlattr *a, void *data)
{
	struct sd_decode *d = data;
	struct nlg_sock *o = d->out;
	const char *p = SD_PAYLOAD(a);
	size_t len = SD_PAYLOAD_LEN(a);

	/* libmnl checks an attribute against the aligned message end; a
	 * message whose length is not a multiple of 4 (never the kernel's; a
	 * fuzzer's, found at once) would let the last payload run past it. */
	if ((const char *)a + a->nla_len > d->msg_end)
		return MNL_CB_ERROR;
	d->end = (const char *)a + MNL_ALIGN(a->nla_len);
	switch (a->nla_type & NLA_TYPE_MASK) {
	case INET_DIAG_INFO: {
		size_t n = len < sizeof(o->info) ? len : sizeof(o->info);

		if (!d->tcp)
			break;
		memcpy(&o->info, p, n);
		if (n < sizeof(o->info))
			memset((char *)&o->info + n, 0, sizeof(o->info) - n);
		/* the bitfields sit in byte 6 and 7; zero if the kernel sent less */
		o->snd_wscale = o->info.tcpi_snd_wscale;
		o->rcv_wscale = o->info.tcpi_rcv_wscale;
		o->app_limited = o->info.tcpi_delivery_rate_app_limited;
		o->present |= NLG_SOCK_HAS_INFO;
		break;
	}
	case INET_DIAG_MEMINFO: {
		struct inet_diag_meminfo m;

		if (len < sizeof(m))
			return MNL_CB_ERROR;
		memcpy(&m, p, sizeof(m));
		o->mem_rmem = m.idiag_rmem;
		o->mem_wmem = m.idiag_wmem;
		o->mem_fmem = m.idiag_fmem;
		o->mem_tmem = m.idiag_tmem;
		o->present |= NLG_SOCK_HAS_MEMINFO;
		break;
	}
	case INET_DIAG_SKMEMINFO: {
		/* u32 per SK_MEMINFO_*; older kernels send fewer, newer more */
		size_t n = len / sizeof(uint32_t);

		if (n == 0)
			return MNL_CB_ERROR;
		if (n > NLG_SKMEM_VARS)
			n = NLG_SKMEM_VARS;
		memcpy(o->skmem, p, n * sizeof(uint32_t));
		o->present |= NLG_SOCK_HAS_SKMEM;
		break;
	}
	case INET_DIAG_CONG: {
		size_t n;

		if (mnl_attr_validate(a, MNL_TYPE_STRING) < 0)
			return MNL_CB_ERROR;
		n = strnlen(p, len);
		if (n >= sizeof(o->cong))
			n = sizeof(o->cong) - 1;
		memcpy(o->cong, p, n);
		o->cong[n] = '\0';
		o->present |= NLG_SOCK_HAS_CONG;
		break;
	}
	case INET_DIAG_TOS:
		if (mnl_attr_validate(a, MNL_TYPE_U8) < 0)
			return MNL_CB_ERROR;
		o->tos = (uint8_t)*p;
		o->present |= NLG_SOCK_HAS_TOS;
		break;
	case INET_DIAG_TCLASS:
		if (mnl_attr_validate(a, MNL_TYPE_U8) < 0)
			return MNL_CB_ERROR;
		o->tclass = (uint8_t)*p;
		o->present |= NLG_SOCK_HAS_TCLASS;
		break;
	case INET_DIAG_SHUTDOWN:
		if (mnl_attr_validate(a, MNL_TYPE_U8) < 0)
			return MNL_CB_ERROR;
		o->shutdown = (uint8_t)*p;
		o->present |= NLG_SOCK_HAS_SHUTDOWN;
		break;
	case INET_DIAG_MARK:
		if (mnl_attr_validate(a, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		memcpy(&o->mark, p, sizeof(o->mark));
		o->present |= NLG_SOCK_HAS_MARK;
		break;
	case INET_DIAG_CGROUP_ID:
		if (mnl_attr_validate(a, MNL_TYPE_U64) < 0)
			return MNL_CB_ERROR;
		memcpy(&o->cgroup_id, p, sizeof(o->cgroup_id));
		o->present |= NLG_SOCK_HAS_CGROUP;
		break;
	case INET_DIAG_VEGASINFO: {
		struct tcpvegas_info v;

		if (len < sizeof(v))
			return MNL_CB_ERROR;
		memcpy(&v, p, sizeof(v));
		o->vegas_enabled = v.tcpv_enabled;
		o->vegas_rttcnt = v.tcpv_rttcnt;
		o->vegas_rtt = v.tcpv_rtt;
		o->vegas_minrtt = v.tcpv_minrtt;
		o->present |= NLG_SOCK_HAS_VEGAS;
		break;
	}
	case INET_DIAG_BBRINFO: {
		struct tcp_bbr_info b;

		if (len < sizeof(b))
			return MNL_CB_ERROR;
		memcpy(&b, p, sizeof(b));
		o->bbr_bw = (uint64_t)b.bbr_bw_hi << 32 | b.bbr_bw_lo;
		o->bbr_min_rtt = b.bbr_min_rtt;
		o->bbr_pacing_gain = b.bbr_pacing_gain;
		o->bbr_cwnd_gain = b.bbr_cwnd_gain;
		o->present |= NLG_SOCK_HAS_BBR;
		break;
	}
	default: /* newer or uninteresting attributes */
		break;
	}
	return MNL_CB_OK;
}

int nlg_sock_decode(const struct nlmsghdr *nlh, int ipproto, struct nlg_sock *out)
{
	const struct inet_diag_msg *m;
	struct sd_decode d;
	size_t alen;
	uint8_t proto;

	switch (ipproto) {
	case IPPROTO_TCP:
		proto = NLG_SOCK_TCP;
		break;
	case IPPROTO_UDP:
		proto = NLG_SOCK_UDP;
		break;
	case IPPROTO_MPTCP:
		proto = NLG_SOCK_MPTCP;
		break;
	default:
		return -EINVAL;
	}
	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*m))
		return -EPROTO;
	m = mnl_nlmsg_get_payload(nlh);
	switch (m->idiag_family) {
	case AF_INET:
		alen = 4;
		break;
	case AF_INET6:
		alen = 16;
		break;
	default:
		return -EPROTO;
	}

	/* Everything but tcp_info is cleared here (a few cache lines); tcp_info
	 * is either copied-and-tail-zeroed by the attribute or zeroed below, so
	 * it is written once per record and nothing stale survives. */
	memset(out, 0, offsetof(struct nlg_sock, info));
	memset((char *)out + offsetof(struct nlg_sock, info) + sizeof(out->info), 0,
	       sizeof(*out) - offsetof(struct nlg_sock, info) - sizeof(out->info));
	out->family = m->idiag_family;
	out->proto = proto;
	out->state = m->idiag_state;
	out->timer = m->idiag_timer;
	out->retrans = m->idiag_retrans;
	out->sport = ntohs(m->id.idiag_sport);
	out->dport = ntohs(m->id.idiag_dport);
	out->ifindex = m->id.idiag_if;
	out->src.family = out->dst.family = m->idiag_family;
	memcpy(out->src.bytes, m->id.idiag_src, alen);
	memcpy(out->dst.bytes, m->id.idiag_dst, alen);
	out->cookie = (uint64_t)m->id.idiag_cookie[1] << 32 | m->id.idiag_cookie[0];
	out->expires_ms = m->idiag_expires;
	out->rqueue = m->idiag_rqueue;
	out->wqueue = m->idiag_wqueue;
	out->uid = m->idiag_uid;
	out->inode = m->idiag_inode;

	d.out = out;
	d.tcp = proto == NLG_SOCK_TCP;
	d.end = (const char *)m + sizeof(*m);
	d.msg_end = (const char *)nlh + nlh->nlmsg_len;
	if (mnl_attr_parse(nlh, sizeof(*m), sd_attr, &d) < 0)
		goto bad;
	/* mnl_attr_parse stops quietly at an attribute that runs past the
	 * message: anything left unwalked is a malformed tail. */
	if (d.end < (const char *)mnl_nlmsg_get_payload_tail(nlh))
		goto bad;
	if (!(out->present & NLG_SOCK_HAS_INFO))
		memset(&out->info, 0, sizeof(out->info));
	return 0;
bad:
	memset(&out->info, 0, sizeof(out->info));
	out->present = 0;
	return -EPROTO;
}

/* ---- recorded replies ------------------------------------------------------ */

/* The protocol of a recorded reply: INET_DIAG_PROTOCOL where the kernel
 * put it (a dump has it only when asked for the socket's own protocol),
 * else TCP for a TCPDIAG_GETSOCK reply (the legacy dump is TCP only), else
 * fallback. */
static int reply_proto(const struct nlmsghdr *nlh, int fallback)
{
	const struct nlattr *a;

	if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(struct inet_diag_msg))
		mnl_attr_for_each(a, nlh, sizeof(struct inet_diag_msg))
		{
			if (mnl_attr_get_type(a) == INET_DIAG_PROTOCOL &&
			    mnl_attr_get_payload_len(a) >= 1)
				return *(const uint8_t *)mnl_attr_get_payload(a);
		}
	return nlh->nlmsg_type == TCPDIAG_GETSOCK ? IPPROTO_TCP : fallback;
}

int nlg_sockdiag_replay(const void *buf, size_t len, int ipproto, nlg_sock_fn *fn, void *data,
			struct nlg_err *err)
{
	size_t off = 0;
	struct nlg_sock rec;
	int n = 0;

	/* Checked here, not with mnl_nlmsg_ok: its length test is signed, and
	 * a file's bytes are anything. */
	while (off < len) {
		const struct nlmsghdr *nlh = (const void *)((const char *)buf + off);
		if (len - off < NLMSG_HDRLEN || nlh->nlmsg_len < NLMSG_HDRLEN ||
		    nlh->nlmsg_len > len - off)
			return nlg_err_set(err, EPROTO, "not a recorded netlink dump (byte %zu)",
					   off);
		off += NLMSG_ALIGN(nlh->nlmsg_len);
		if (nlh->nlmsg_type < NLMSG_MIN_TYPE)
			continue; /* DONE, ERROR, NOOP: the dumps' ends */
		if (nlg_sock_decode(nlh, reply_proto(nlh, ipproto), &rec) < 0)
			return nlg_err_set(err, EPROTO, "a malformed reply at byte %zu",
					   (size_t)((const char *)nlh - (const char *)buf));
		n++;
		int rc = fn(&rec, data);
		if (rc == NLG_CB_STOP)
			return n;
		if (rc != NLG_CB_OK)
			return nlg_err_set(err, ECANCELED, "stopped at record %d", n);
	}
	return n;
}

/* ---- requests and the poll ------------------------------------------------ */

/* One request of a poll; a poll walks this table in order. */
struct sd_job {
	uint8_t family; /* AF_UNSPEC: the compat request, both families */
	uint8_t fam_bit, proto_bit, rec_proto;
	int ipproto;
	const char *what; /* the kernel module that answers, for "the kernel lacks ..." */
};

/* TCP over both families is asked first as one TCPDIAG_GETSOCK (v1, "compat")
 * dump: the kernel then walks its TCP hash tables once for AF_UNSPEC instead
 * of once per family (100k sockets: ~128 ms against ~160 ms for the two v2
 * dumps). The two v2 TCP requests below it stand in when the poll wants one
 * family only, or for good once the kernel refused the compat request. UDP
 * and MPTCP have no compat request. */
static const struct sd_job sd_jobs[] = {
    {AF_UNSPEC, NLG_SD_INET | NLG_SD_INET6, NLG_SD_TCP, NLG_SOCK_TCP, IPPROTO_TCP,
     "tcp_diag (inet+inet6)"},
    {AF_INET, NLG_SD_INET, NLG_SD_TCP, NLG_SOCK_TCP, IPPROTO_TCP, "tcp_diag (inet)"},
    {AF_INET6, NLG_SD_INET6, NLG_SD_TCP, NLG_SOCK_TCP, IPPROTO_TCP, "tcp_diag (inet6)"},
    {AF_INET, NLG_SD_INET, NLG_SD_UDP, NLG_SOCK_UDP, IPPROTO_UDP, "udp_diag (inet)"},
    {AF_INET6, NLG_SD_INET6, NLG_SD_UDP, NLG_SOCK_UDP, IPPROTO_UDP, "udp_diag (inet6)"},
    {AF_INET, NLG_SD_INET, NLG_SD_MPTCP, NLG_SOCK_MPTCP, IPPROTO_MPTCP, "mptcp_diag (inet)"},
    {AF_INET6, NLG_SD_INET6, NLG_SD_MPTCP, NLG_SOCK_MPTCP, IPPROTO_MPTCP, "mptcp_diag (inet6)"},
};
#define SD_NJOBS NLG_ARRAY_SIZE(sd_jobs)

struct nlg_sockdiag {
	struct nlg_nl *nl;
	struct nlg_sockdiag_stats stats;
	nlg_sock_restart_fn *restart;

	/* the poll in flight */
	struct nlg_sockdiag_req req;
	int running;
	int inflight;	    /* a request was sent and its dump has not ended */
	unsigned int job;   /* index into sd_jobs of the request in flight */
	unsigned int tries; /* DUMP_INTR retries of that request */
	uint32_t missing;   /* NLG_SD_* protocols the kernel turned down this poll */
	int stopped;	    /* the consumer said NLG_CB_STOP: drain, send no more */
	int no_compat;	    /* the kernel refused TCPDIAG_GETSOCK: v2 requests from now on */
	uint64_t job_recs;  /* records the request in flight delivered (this attempt) */
	nlg_sock_fn *fn;
	void *data;

	struct nlg_sock rec; /* decode target, reused: no per-record allocation */
	union {
		struct nlmsghdr nlh;
		uint8_t buf[256];
	} msg;
};

struct nlg_sockdiag *nlg_sockdiag_open(const char *netns, struct nlg_err *err)
{
	struct nlg_sockdiag *sd = calloc(1, sizeof(*sd));
	int rc;

	if (!sd) {
		nlg_err_set(err, ENOMEM, "sockdiag: out of memory");
		return NULL;
	}
	sd->nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, netns, err);
	if (!sd->nl)
		goto err;
	rc = nlg_nl_set_nonblock(sd->nl, 1);
	if (rc < 0) {
		nlg_err_set(err, rc, "sockdiag: non-blocking socket: %s", strerror(-rc));
		goto err;
	}
	return sd;
err:
	nlg_sockdiag_close(sd);
	return NULL;
}

void nlg_sockdiag_close(struct nlg_sockdiag *sd)
{
	if (!sd)
		return;
	nlg_nl_close(sd->nl);
	free(sd);
}

int nlg_sockdiag_fd(const struct nlg_sockdiag *sd)
{
	return nlg_nl_fd(sd->nl);
}

struct nlg_nl *nlg_sockdiag_nl(struct nlg_sockdiag *sd)
{
	return sd->nl;
}

const struct nlg_sockdiag_stats *nlg_sockdiag_stats(const struct nlg_sockdiag *sd)
{
	return &sd->stats;
}

void nlg_sockdiag_set_restart(struct nlg_sockdiag *sd, nlg_sock_restart_fn *restart)
{
	sd->restart = restart;
}

/* Bytecode for "sport = N and dport = M": each test is two ops, the test
 * (yes: go to the next test; no: jump 4 past the end, which rejects) and one
 * carrying the port in .no. Falling off the end accepts. */
static size_t sd_bytecode(struct inet_diag_bc_op *op, uint16_t sport, uint16_t dport)
{
	size_t n = 0, total = (sport ? 2 : 0) + (dport ? 2 : 0);

	if (sport) {
		op[n] = (struct inet_diag_bc_op){INET_DIAG_BC_S_EQ, 2 * sizeof(*op),
						 (uint16_t)((total - n) * sizeof(*op) + 4)};
		op[n + 1] = (struct inet_diag_bc_op){0, 0, sport};
		n += 2;
	}
	if (dport) {
		op[n] = (struct inet_diag_bc_op){INET_DIAG_BC_D_EQ, 2 * sizeof(*op),
						 (uint16_t)((total - n) * sizeof(*op) + 4)};
		op[n + 1] = (struct inet_diag_bc_op){0, 0, dport};
		n += 2;
	}
	return n * sizeof(*op);
}

/* The legacy request: struct inet_diag_req (v1) after the header, the
 * protocol implied by the message type, the family ignored for dumps (the
 * kernel's inet_diag_dump_compat asks for AF_UNSPEC). Attributes start after
 * the v1 header, and the kernel audits and runs the bytecode as for v2. */
static struct nlmsghdr *sd_build_compat(struct nlg_sockdiag *sd)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(sd->msg.buf);
	struct inet_diag_req *r;
	struct inet_diag_bc_op bc[4];
	size_t bclen;

	nlh->nlmsg_type = TCPDIAG_GETSOCK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	r = mnl_nlmsg_put_extra_header(nlh, sizeof(*r));
	r->idiag_family = AF_UNSPEC;
	r->idiag_states = sd->req.states ? sd->req.states : SD_ST_ALL;
	r->idiag_ext = sd->req.ext;
	bclen = sd_bytecode(bc, sd->req.sport, sd->req.dport);
	if (bclen)
		mnl_attr_put(nlh, INET_DIAG_REQ_BYTECODE, bclen, bc);
	return nlh;
}

static struct nlmsghdr *sd_build(struct nlg_sockdiag *sd, const struct sd_job *j)
{
	struct nlmsghdr *nlh;
	struct inet_diag_req_v2 *r;
	struct inet_diag_bc_op bc[4];
	size_t bclen;

	if (j->family == AF_UNSPEC)
		return sd_build_compat(sd);
	nlh = mnl_nlmsg_put_header(sd->msg.buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	r = mnl_nlmsg_put_extra_header(nlh, sizeof(*r));
	r->sdiag_family = j->family;
	/* IPPROTO_MPTCP does not fit the byte: it goes in INET_DIAG_REQ_PROTOCOL */
	r->sdiag_protocol = j->ipproto == IPPROTO_MPTCP ? IPPROTO_TCP : (uint8_t)j->ipproto;
	r->idiag_states = sd->req.states ? sd->req.states : SD_ST_ALL;
	r->idiag_ext = sd->req.ext;
	if (j->ipproto == IPPROTO_UDP)
		r->idiag_ext &= (uint8_t)~SD_EXT_TCP_ONLY;
	bclen = sd_bytecode(bc, sd->req.sport, sd->req.dport);
	if (bclen)
		mnl_attr_put(nlh, INET_DIAG_REQ_BYTECODE, bclen, bc);
	if (j->ipproto == IPPROTO_MPTCP)
		mnl_attr_put_u32(nlh, INET_DIAG_REQ_PROTOCOL, IPPROTO_MPTCP);
	return nlh;
}

/* Does this poll send TCP as the one compat dump? */
static int sd_compat(const struct nlg_sockdiag *sd)
{
	return !sd->no_compat && (sd->req.protos & NLG_SD_TCP) &&
	       (sd->req.families & (NLG_SD_INET | NLG_SD_INET6)) == (NLG_SD_INET | NLG_SD_INET6);
}

static int sd_wanted(const struct nlg_sockdiag *sd, const struct sd_job *j)
{
	if (j->family == AF_UNSPEC)
		return sd_compat(sd);
	if (j->proto_bit == NLG_SD_TCP && sd_compat(sd))
		return 0; /* the compat dump has them */
	return (sd->req.families & j->fam_bit) && (sd->req.protos & j->proto_bit);
}

static int sd_lacks(int rc)
{
	return rc == -EOPNOTSUPP || rc == -ENOENT;
}

/* A protocol may be skipped when the kernel lacks it, unless it is the only one asked. */
static int sd_may_skip(const struct nlg_sockdiag *sd, int rc)
{
	return sd_lacks(rc) && (sd->req.protos & (sd->req.protos - 1));
}

/* The kernel turned the compat request down (an old or stripped kernel:
 * EINVAL for an unknown type, EOPNOTSUPP/ENOENT without the compat hook):
 * the v2 requests take over for the rest of the source's life, and records
 * the attempt already delivered will come again from them. Returns 1 if rc
 * was such a refusal. */
static int sd_fall_back(struct nlg_sockdiag *sd, int rc)
{
	const struct sd_job *j = &sd_jobs[sd->job];

	if (j->family != AF_UNSPEC || (rc != -EINVAL && !sd_lacks(rc)))
		return 0;
	sd->no_compat = 1;
	sd->stats.fallbacks++;
	if (sd->job_recs && sd->restart) {
		sd->restart(AF_INET, j->rec_proto, sd->data);
		sd->restart(AF_INET6, j->rec_proto, sd->data);
	}
	sd->job_recs = 0;
	return 1;
}

static int sd_on_msg(const struct nlmsghdr *nlh, void *data)
{
	struct nlg_sockdiag *sd = data;
	int rc;

	if (sd->stopped)
		return NLG_CB_OK; /* drain the rest of this dump */
	if (nlg_sock_decode(nlh, sd_jobs[sd->job].ipproto, &sd->rec) < 0) {
		sd->stats.malformed++;
		return NLG_CB_OK;
	}
	sd->stats.records++;
	sd->job_recs++;
	rc = sd->fn ? sd->fn(&sd->rec, sd->data) : NLG_CB_OK;
	if (rc == NLG_CB_STOP) {
		sd->stopped = 1;
		return NLG_CB_OK;
	}
	return rc == NLG_CB_ERROR ? NLG_CB_ERROR : NLG_CB_OK;
}

static void sd_on_restart(void *data)
{
	struct nlg_sockdiag *sd = data;
	const struct sd_job *j = &sd_jobs[sd->job];

	sd->job_recs = 0;
	if (!sd->restart)
		return;
	if (j->family == AF_UNSPEC) { /* the compat dump re-sends both families */
		sd->restart(AF_INET, j->rec_proto, sd->data);
		sd->restart(AF_INET6, j->rec_proto, sd->data);
	} else {
		sd->restart(j->family, j->rec_proto, sd->data);
	}
}

static int sd_check_req(const struct nlg_sockdiag_req *req, struct nlg_sockdiag_req *out,
			struct nlg_err *err)
{
	*out = *req;
	if (!out->families)
		out->families = NLG_SD_INET | NLG_SD_INET6;
	if (!out->protos)
		out->protos = NLG_SD_TCP | NLG_SD_UDP | NLG_SD_MPTCP;
	if (out->families & ~(uint32_t)(NLG_SD_INET | NLG_SD_INET6))
		return nlg_err_set(err, EINVAL, "sockdiag: unknown family bits %#x", out->families);
	if (out->protos & ~(uint32_t)(NLG_SD_TCP | NLG_SD_UDP | NLG_SD_MPTCP))
		return nlg_err_set(err, EINVAL, "sockdiag: unknown protocol bits %#x", out->protos);
	return 0;
}

/* Send the next wanted request from sd->job on (inclusive). Returns 1 when
 * one was sent, 0 when the poll has no more, or a negative errno. */
static int sd_send_from(struct nlg_sockdiag *sd, unsigned int job, struct nlg_err *err)
{
	for (; job < SD_NJOBS && !sd->stopped; job++) {
		const struct sd_job *j = &sd_jobs[job];
		int rc;

		if (!sd_wanted(sd, j))
			continue;
		if (sd->missing & j->proto_bit) {
			sd->stats.skipped++; /* the other family told us already */
			continue;
		}
		sd->job = job;
		sd->tries = 0;
		sd->job_recs = 0;
		rc = nlg_nl_dump_start(sd->nl, sd_build(sd, j), j->what, err);
		sd->inflight = rc >= 0;
		return rc < 0 ? rc : 1;
	}
	sd->inflight = 0;
	return 0;
}

static void sd_finish(struct nlg_sockdiag *sd, int rc)
{
	sd->running = 0;
	sd->inflight = 0;
	sd->stopped = 0;
	if (rc < 0)
		sd->stats.failed++;
	else
		sd->stats.polls++;
}

int nlg_sockdiag_start(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req,
		       struct nlg_err *err)
{
	int rc;

	if (sd->running)
		return nlg_err_set(err, EBUSY, "sockdiag: a poll is already running");
	rc = sd_check_req(req, &sd->req, err);
	if (rc < 0)
		return rc;
	sd->missing = 0;
	sd->stopped = 0;
	sd->running = 1;
	rc = sd_send_from(sd, 0, err);
	if (rc < 0)
		sd_finish(sd, rc);
	/* rc == 0 (nothing wanted) leaves the poll running: the next step ends it */
	return rc < 0 ? rc : 0;
}

int nlg_sockdiag_step(struct nlg_sockdiag *sd, nlg_sock_fn *fn, void *data, struct nlg_err *err)
{
	struct nlg_err e = {{0}};
	int rc;

	if (!sd->running)
		return 0;
	sd->fn = fn;
	sd->data = data;
	while (sd->inflight) {
		rc = nlg_nl_dump_step(sd->nl, sd_on_msg, sd, &e);
		if (rc == 1)
			return 1;
		if (rc == -EINTR && sd->stopped)
			rc = 0; /* the consumer is done: no retry */
		if (rc == -EINTR && sd->tries < NLG_NL_INTR_RETRIES) {
			unsigned int tries = sd->tries + 1;

			sd_on_restart(sd);
			rc = sd_send_from(sd, sd->job, &e);
			sd->tries = tries;
		} else {
			if (rc == -EINTR)
				rc = nlg_err_set(&e, EINTR,
						 "%s: dump kept being interrupted (%u attempts)",
						 sd_jobs[sd->job].what, sd->tries + 1);
			if (rc < 0 && sd_fall_back(sd, rc))
				rc = 0; /* the v2 TCP requests come next */
			if (rc < 0 && sd_may_skip(sd, rc)) {
				sd->stats.skipped++;
				sd->missing |= sd_jobs[sd->job].proto_bit;
				rc = 0;
			}
			if (rc == 0)
				rc = sd_send_from(sd, sd->job + 1, &e);
		}
		if (rc < 0) {
			sd_finish(sd, rc);
			if (err)
				*err = e;
			return rc;
		}
	}
	sd_finish(sd, 0);
	return 0;
}

int nlg_sockdiag_poll(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req, nlg_sock_fn *fn,
		      void *data, struct nlg_err *err)
{
	struct nlg_err e = {{0}};
	unsigned int job;
	int rc;

	if (sd->running)
		return nlg_err_set(err, EBUSY, "sockdiag: a poll is already running");
	rc = sd_check_req(req, &sd->req, err);
	if (rc < 0)
		return rc;
	sd->running = 1;
	sd->missing = 0;
	sd->stopped = 0;
	sd->fn = fn;
	sd->data = data;
	rc = 0;
	for (job = 0; job < SD_NJOBS && !sd->stopped; job++) {
		const struct sd_job *j = &sd_jobs[job];

		if (!sd_wanted(sd, j))
			continue;
		if (sd->missing & j->proto_bit) {
			sd->stats.skipped++;
			continue;
		}
		sd->job = job;
		sd->job_recs = 0;
		rc = nlg_nl_dump_run(sd->nl, sd_build(sd, j), j->what, sd_on_msg, sd, sd_on_restart,
				     &e);
		if (rc < 0 && sd_fall_back(sd, rc))
			rc = 0; /* the v2 TCP requests come next in this loop */
		if (rc < 0 && sd_may_skip(sd, rc)) {
			sd->stats.skipped++;
			sd->missing |= j->proto_bit;
			rc = 0;
		}
		if (rc < 0)
			break;
	}
	sd_finish(sd, rc);
	if (rc < 0 && err)
		*err = e;
	return rc;
}
