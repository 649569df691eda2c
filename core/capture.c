/* Packet capture's threads (include/nlgate/capture.h): AF_PACKET sockets with
 * TPACKET_V3 rings (or recvmmsg) in one fanout group, a worker thread each
 * that decodes, folds flows and fills its hand-off ring; or one worker that
 * reads a pcap file. Only the workers touch the kernel's blocks, and each
 * block goes back to the kernel as soon as its packets are decoded. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "nlgate/bpf.h"
#include "nlgate/capture.h"
#include "nlgate/netns.h"
#include "nlgate/pcapfile.h"

#define BATCH	       64   /* recvmmsg messages per call */
#define STATS_MS       1000 /* PACKET_STATISTICS and flow expiry, at least this often */
#define STOP_WAIT_MS   1000 /* once stopping, how long a full hand-off ring is waited on */
#define FILE_EXPIRE_NS 1000000000ull
#define FLOW_BATCH     64   /* packets of a block decoded before their flows are counted */
#define RING_AHEAD     1024 /* bytes of a block asked for ahead of the packet decoded */

#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING /* Linux 4.20; older headers lack it */
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

_Static_assert(sizeof(struct nlg_bpf_insn) == sizeof(struct sock_filter), "sock_filter layout");

struct fanout {
	unsigned type, flags;
	struct nlg_bpf prog; /* cbpf: the selector */
	int ebpf_fd;	     /* ebpf: the program, -1 if none */
	int own_fd;	     /* ebpf_fd is ours to close */
};

struct worker {
	struct nlg_capture *cap;
	unsigned idx;
	int fd;
	uint8_t *map;
	size_t map_len;
	unsigned nblocks, block_size, cur;
	struct nlg_ring *ring;
	struct nlg_flow_table *flows;
	struct nlg_pcap *file;
	pthread_t thread;
	int started;
	int no_wait;		 /* stopping and the consumer is gone: drop at once */
	uint64_t last_tick_ms;	 /* the last stats read and flow expiry */
	uint64_t file_expired;	 /* file mode: the packets' clock at the last expiry */
	uint64_t skip_before_ns; /* packets stamped before the start's flush: not ours */
	/* Written by this worker, read by anyone. */
	_Atomic uint64_t packets, drops, freezes, received, truncated, blocks, records;
	_Atomic uint64_t nflows, flows_live, evicted, frag_matched, frag_orphans, nonip;
};

struct nlg_capture {
	struct nlg_capture_conf c;
	unsigned n;
	struct worker *w;
	int sock_type; /* SOCK_RAW or SOCK_DGRAM */
	enum nlg_link link;
	int ifindex;
	const char *mode;
	uint32_t group;
	uint64_t ring_bytes;
	struct fanout fan;
	_Atomic int stop;
	int stop_fd;	     /* an eventfd, readable once stop is set: wakes sleeping workers */
	_Atomic int closing; /* no consumer any more: a full ring drops at once */
	_Atomic unsigned running;
	_Atomic int failed;
	char error[NLG_ERRLEN]; /* set once, by the first worker that fails */
	char notes[1024];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void add(_Atomic uint64_t *c, uint64_t v)
{
	/* one writer per counter: no locked instruction needed */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static void fail(struct nlg_capture *cap, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct nlg_capture *cap, const char *fmt, ...)
{
	int expected = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&cap->failed, &expected, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(cap->error, sizeof(cap->error), fmt, ap);
	va_end(ap);
	atomic_store(&cap->failed, 2); /* the message is complete */
}

/* ---- fanout specs --------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned type;
} fan_modes[] = {
    {"hash", PACKET_FANOUT_HASH},	  {"lb", PACKET_FANOUT_LB},   {"cpu", PACKET_FANOUT_CPU},
    {"rollover", PACKET_FANOUT_ROLLOVER}, {"rnd", PACKET_FANOUT_RND}, {"qm", PACKET_FANOUT_QM},
};

static const struct {
	const char *name;
	unsigned flag;
} fan_flags[] = {
    {"defrag", PACKET_FANOUT_FLAG_DEFRAG},
    {"rollover", PACKET_FANOUT_FLAG_ROLLOVER},
    {"ignore-outgoing", PACKET_FANOUT_FLAG_IGNORE_OUTGOING},
    {"ignore_outgoing", PACKET_FANOUT_FLAG_IGNORE_OUTGOING},
};

#define FANOUT_HELP                                                                                \
	"modes hash, lb, cpu, rollover, rnd, qm, cbpf:EXPR, ebpf:PATH|fd=N; flags defrag, "        \
	"rollover, ignore-outgoing"

static int bpf_obj_get(const char *path)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uint64_t)(uintptr_t)path;
	return (int)syscall(__NR_bpf, BPF_OBJ_GET, &attr, sizeof(attr));
}

/* A tcpdump expression as a fanout selector: matching packets to worker 1.
 * The kernel runs it from the network header on packets received, but from
 * the link header on packets sent where there is one: the program asks the
 * packet type and runs the expression compiled for each. */
static int selector(struct nlg_bpf *out, const char *expr, enum nlg_link link, struct nlg_err *err)
{
	struct nlg_bpf net = {0}, eth = {0};
	struct nlg_err e = {{0}};
	unsigned n;
	int r;

	if ((r = nlg_bpf_compile(&net, expr, NLG_BPF_NET, 0xffff, &e)) < 0)
		return nlg_err_set(err, -r, "fanout cbpf: %s", e.msg);
	nlg_bpf_to_selector(&net);
	if (link != NLG_LINK_ETHER) {
		*out = net;
		return 0;
	}
	if ((r = nlg_bpf_compile(&eth, expr, NLG_BPF_ETHER, 0xffff, &e)) < 0) {
		nlg_bpf_free(&net);
		return nlg_err_set(err, -r, "fanout cbpf: %s", e.msg);
	}
	nlg_bpf_to_selector(&eth);
	n = 3 + net.len + eth.len;
	if (n > BPF_MAXINSNS || !(out->insns = calloc(n, sizeof(*out->insns)))) {
		nlg_bpf_free(&net);
		nlg_bpf_free(&eth);
		return nlg_err_set(err, E2BIG, "fanout cbpf: the program is too long");
	}
	out->len = n;
	out->insns[0] = (struct nlg_bpf_insn){BPF_LD | BPF_B | BPF_ABS, 0, 0,
					      (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE)};
	out->insns[1] = (struct nlg_bpf_insn){BPF_JMP | BPF_JEQ | BPF_K, 0, 1, PACKET_OUTGOING};
	out->insns[2] = (struct nlg_bpf_insn){BPF_JMP | BPF_JA, 0, 0, net.len};
	memcpy(out->insns + 3, net.insns, net.len * sizeof(*net.insns));
	memcpy(out->insns + 3 + net.len, eth.insns, eth.len * sizeof(*eth.insns));
	nlg_bpf_free(&net);
	nlg_bpf_free(&eth);
	return 0;
}

/* Parse text into f; with compile = 0 only the syntax is checked (no
 * program is compiled, no object opened). */
static int fanout_parse(const char *text, struct fanout *f, int compile, enum nlg_link link,
			struct nlg_err *err)
{
	const char *s = text;
	int have_mode = 0;

	memset(f, 0, sizeof(*f));
	f->ebpf_fd = -1;
	while (*s) {
		size_t len = strcspn(s, ",");
		char tok[32];
		int found = 0;

		if (!strncmp(s, "cbpf:", 5) || !strncmp(s, "ebpf:", 5)) {
			const char *prog = s + 5;
			if (have_mode)
				return nlg_err_set(err, EINVAL, "fanout '%s': two modes", text);
			have_mode = 1;
			if (!*prog)
				return nlg_err_set(err, EINVAL, "fanout '%s': %.4s needs a program",
						   text, s);
			if (s[0] == 'c') {
				f->type = PACKET_FANOUT_CBPF;
				if (compile) {
					int r = prog[0] >= '0' && prog[0] <= '9'
						    ? nlg_bpf_parse(&f->prog, prog, err)
						    : selector(&f->prog, prog, link, err);
					if (r < 0)
						return r;
				}
			} else {
				f->type = PACKET_FANOUT_EBPF;
				if (!strncmp(prog, "fd=", 3)) {
					char *end;
					long fd = strtol(prog + 3, &end, 10);
					if (end == prog + 3 || *end || fd < 0 || fd > 65535)
						return nlg_err_set(err, EINVAL,
								   "fanout '%s': bad fd", text);
					f->ebpf_fd = compile ? (int)fd : -1;
				} else if (compile) {
					f->ebpf_fd = bpf_obj_get(prog);
					if (f->ebpf_fd < 0)
						return nlg_err_set(err, errno,
								   "fanout: cannot open the eBPF "
								   "program %s: %s",
								   prog, strerror(errno));
					f->own_fd = 1;
				}
			}
			break; /* the program is the rest of the text */
		}
		if (!len)
			return nlg_err_set(err, EINVAL, "bad fanout '%s': an empty item (%s)", text,
					   FANOUT_HELP);
		snprintf(tok, sizeof(tok), "%.*s", (int)(len < 31 ? len : 31), s);
		for (size_t i = 0; !found && !have_mode && i < NLG_ARRAY_SIZE(fan_modes); i++)
			if (!strcmp(tok, fan_modes[i].name) && len < 31) {
				f->type = fan_modes[i].type;
				have_mode = found = 1;
			}
		for (size_t i = 0; !found && i < NLG_ARRAY_SIZE(fan_flags); i++)
			if (!strcmp(tok, fan_flags[i].name) && len < 31) {
				f->flags |= fan_flags[i].flag;
				found = 1;
			}
		if (!found)
			return nlg_err_set(err, EINVAL, "bad fanout '%s' at '%.*s' (%s)", text,
					   (int)len, s, FANOUT_HELP);
		s += len;
		if (*s == ',' && !*++s)
			return nlg_err_set(err, EINVAL, "bad fanout '%s': an empty item (%s)", text,
					   FANOUT_HELP);
	}
	if (!have_mode)
		f->type = PACKET_FANOUT_HASH;
	if (f->type == PACKET_FANOUT_ROLLOVER && (f->flags & PACKET_FANOUT_FLAG_ROLLOVER))
		return nlg_err_set(err, EINVAL, "fanout '%s': the rollover flag is for other modes",
				   text);
	return 0;
}

int nlg_capture_parse_fanout(const char *text, struct nlg_err *err)
{
	struct fanout f;

	return fanout_parse(text, &f, 0, NLG_LINK_NET, err);
}

static void fanout_free(struct fanout *f)
{
	nlg_bpf_free(&f->prog);
	if (f->own_fd && f->ebpf_fd >= 0)
		close(f->ebpf_fd);
	f->ebpf_fd = -1;
}

/* ---- the hand-off ---------------------------------------------------------- */

/* A slot of the worker's ring. A full ring is waited on rather than dropped
 * into: the kernel's ring behind us is far larger and counts what it drops.
 * Once stopping, the consumer may be gone: wait a bounded time, then drop. */
static void *slot(struct worker *w)
{
	struct nlg_ring *r = w->ring;
	uint64_t since = 0;

	if (nlg_ring_space(r) || w->no_wait ||
	    atomic_load_explicit(&w->cap->closing, memory_order_relaxed))
		return nlg_ring_reserve(r);
	nlg_ring_publish(r);
	while (!nlg_ring_space(r)) {
		struct timespec ts = {0, 50000};
		if (atomic_load_explicit(&w->cap->closing, memory_order_relaxed))
			break;
		if (atomic_load_explicit(&w->cap->stop, memory_order_relaxed)) {
			uint64_t now = mono_ms();
			if (!since)
				since = now;
			else if (now - since >= STOP_WAIT_MS) {
				w->no_wait = 1;
				break;
			}
		}
		nanosleep(&ts, NULL);
	}
	return nlg_ring_reserve(r);
}

static void flow_emit(void *data, const struct nlg_flow *f)
{
	struct worker *w = data;
	void *s = slot(w);

	if (!s)
		return;
	memcpy(s, f, sizeof(*f));
	nlg_ring_commit(w->ring);
	add(&w->records, 1);
}

static void handle(struct worker *w, const uint8_t *data, size_t caplen,
		   const struct nlg_pkt_meta *m)
{
	struct nlg_pkt local, *p;

	if (w->flows) {
		p = &local;
		nlg_pkt_decode(p, w->cap->link, data, caplen, m);
		nlg_flow_add(w->flows, p, flow_emit, w);
	} else {
		p = slot(w);
		if (!p) {
			add(&w->received, 1);
			return;
		}
		nlg_pkt_decode(p, w->cap->link, data, caplen, m);
		nlg_ring_commit(w->ring);
		add(&w->records, 1);
	}
	add(&w->received, 1);
	if (p->truncated)
		add(&w->truncated, 1);
}

/* Flow mode: n packets decoded from a block, counted in their flows
 * together (nlg_flow_add_batch overlaps their table reads). */
static void handle_flows(struct worker *w, const struct nlg_pkt *p, size_t n)
{
	nlg_flow_add_batch(w->flows, p, n, flow_emit, w);
	add(&w->received, n);
}

static void flow_counters(struct worker *w)
{
	const struct nlg_flow_stats *fs;

	if (!w->flows)
		return;
	fs = nlg_flow_stats(w->flows);
	set(&w->nflows, fs->emitted);
	set(&w->flows_live, fs->live);
	set(&w->evicted, fs->evicted);
	set(&w->frag_matched, fs->frag_matched);
	set(&w->frag_orphans, fs->frag_orphans);
	set(&w->nonip, fs->nonip);
}

/* The kernel's counters reset on every read: sum them here. */
static void read_stats(struct worker *w)
{
	if (w->map) {
		struct tpacket_stats_v3 st;
		socklen_t len = sizeof(st);
		if (getsockopt(w->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
			add(&w->packets, st.tp_packets);
			add(&w->drops, st.tp_drops);
			add(&w->freezes, st.tp_freeze_q_cnt);
		}
	} else if (w->fd >= 0) {
		struct tpacket_stats st;
		socklen_t len = sizeof(st);
		if (getsockopt(w->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
			add(&w->packets, st.tp_packets);
			add(&w->drops, st.tp_drops);
		}
	}
}

static void tick(struct worker *w, int force)
{
	uint64_t now = mono_ms();

	if (!force && now - w->last_tick_ms < STATS_MS)
		return;
	w->last_tick_ms = now;
	read_stats(w);
	if (w->flows && !w->file) {
		nlg_flow_expire(w->flows, nlg_realtime_ns(), flow_emit, w);
		nlg_ring_publish(w->ring);
	}
	flow_counters(w);
}

static void worker_end(struct worker *w)
{
	read_stats(w);
	if (w->flows) {
		nlg_flow_flush(w->flows, flow_emit, w);
		flow_counters(w);
	}
	nlg_ring_publish(w->ring);
	atomic_fetch_sub(&w->cap->running, 1);
}

static int stopping(const struct worker *w)
{
	return atomic_load_explicit(&w->cap->stop, memory_order_relaxed);
}

/* How long a worker waiting for packets sleeps: until its next tick. A stop
 * wakes it sooner (stop_fd), so an idle capture costs one wake-up a second,
 * not ten (they cost ~0.45 ms of CPU a second here, 6 % of tcpdump's CPU
 * at 100,000 packets/s). */
static int sleep_ms(const struct worker *w)
{
	uint64_t now = mono_ms(), next = w->last_tick_ms + STATS_MS;

	return next > now ? (int)(next - now) : 0;
}

/* ---- TPACKET_V3 ------------------------------------------------------------- */

static struct tpacket_block_desc *block(struct worker *w, unsigned i)
{
	return (struct tpacket_block_desc *)(w->map + (size_t)i * w->block_size);
}

static int block_ready(struct tpacket_block_desc *b)
{
	return __atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER;
}

static void block_release(struct tpacket_block_desc *b)
{
	__atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

/* A tag the kernel took off the frame (TP_STATUS_VLAN_VALID) was on the
 * wire, but tp_len no longer counts it: its 4 bytes are added back where
 * the link header is Ethernet, as libpcap does when it puts the tag back
 * (tcpdump's lengths, a pcap's orig_len). */
static inline uint32_t vlan_taken_len(const struct worker *w)
{
	return w->cap->link == NLG_LINK_ETHER ? 4 : 0;
}

static void walk_block(struct worker *w, struct tpacket_block_desc *b)
{
	uint32_t n = b->hdr.bh1.num_pkts;
	const uint8_t *p = (const uint8_t *)b + b->hdr.bh1.offset_to_first_pkt;
	uint32_t used = b->hdr.bh1.blk_len < w->block_size ? b->hdr.bh1.blk_len : w->block_size;
	const uint8_t *end = (const uint8_t *)b + used, *pf = p;
	struct nlg_pkt batch[FLOW_BATCH];
	size_t nb = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct tpacket3_hdr *h = (const void *)p;
		const struct sockaddr_ll *sll =
		    (const void *)(p + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
		/* the kernel wrote the block, maybe from another CPU: ask for
		 * the packets a few ahead while this one is decoded */
		for (; pf < p + RING_AHEAD && pf < end; pf += 64)
			__builtin_prefetch(pf);
		struct nlg_pkt_meta m = {
		    .time_ns = (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec,
		    .wire_len = h->tp_len,
		    .ifindex = (uint32_t)sll->sll_ifindex,
		    .rxhash = h->hv1.tp_rxhash,
		    .has_rxhash = 1,
		    .ethertype = ntohs(sll->sll_protocol),
		    .pkttype = sll->sll_pkttype,
		    .worker = (uint8_t)w->idx,
		};
		if (m.time_ns < w->skip_before_ns) {
			p += h->tp_next_offset;
			continue;
		}
		if (h->tp_status & TP_STATUS_VLAN_VALID) {
			m.has_vlan = 1;
			m.vlan_tci = (uint16_t)h->hv1.tp_vlan_tci;
			m.vlan_tpid = h->tp_status & TP_STATUS_VLAN_TPID_VALID
					  ? (uint16_t)h->hv1.tp_vlan_tpid
					  : 0x8100;
			m.wire_len += vlan_taken_len(w);
		}
		if (w->flows) {
			nlg_pkt_decode(&batch[nb], w->cap->link, p + h->tp_mac, h->tp_snaplen, &m);
			if (batch[nb].truncated)
				add(&w->truncated, 1);
			if (++nb == FLOW_BATCH) {
				handle_flows(w, batch, nb);
				nb = 0;
			}
		} else {
			handle(w, p + h->tp_mac, h->tp_snaplen, &m);
		}
		p += h->tp_next_offset;
	}
	if (nb)
		handle_flows(w, batch, nb);
}

static void *mmap_worker(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd[2] = {{.fd = w->fd, .events = POLLIN | POLLERR},
				{.fd = w->cap->stop_fd, .events = POLLIN}};

	while (!stopping(w)) {
		struct tpacket_block_desc *b = block(w, w->cur);

		if (!block_ready(b)) {
			nlg_ring_publish(w->ring);
			tick(w, 0);
			if (poll(pfd, 2, sleep_ms(w)) < 0 && errno != EINTR) {
				fail(w->cap, "worker %u: poll: %s", w->idx, strerror(errno));
				break;
			}
			continue;
		}
		walk_block(w, b);
		block_release(b);
		w->cur = (w->cur + 1) % w->nblocks;
		add(&w->blocks, 1);
		nlg_ring_publish(w->ring);
		tick(w, 0);
	}
	/* What the kernel took before the stop is part of the capture, also
	 * the packets of the block it still fills: that one is handed over
	 * when the block timeout runs out, so wait that long for it. */
	if (!atomic_load(&w->cap->closing)) {
		uint64_t until = mono_ms() + 2 * w->cap->c.ring_timeout_ms + 20;
		for (unsigned i = 0; i <= w->nblocks && mono_ms() < until; i++) {
			struct tpacket_block_desc *b = block(w, w->cur);
			if (!block_ready(b)) {
				poll(pfd, 1, (int)w->cap->c.ring_timeout_ms + 1);
				if (!block_ready(b))
					continue;
			}
			walk_block(w, b);
			block_release(b);
			w->cur = (w->cur + 1) % w->nblocks;
			add(&w->blocks, 1);
		}
	}
	worker_end(w);
	return NULL;
}

/* ---- recvmmsg ----------------------------------------------------------------- */

struct mmsg_buf {
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_ll from[BATCH];
	union {
		char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata)) +
			 CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl[BATCH];
	uint8_t *data;
};

static void mmsg_one(struct worker *w, struct mmsg_buf *mb, unsigned i)
{
	struct msghdr *mh = &mb->msgs[i].msg_hdr;
	const struct sockaddr_ll *sll = &mb->from[i];
	uint32_t caplen = mb->msgs[i].msg_len;
	struct nlg_pkt_meta m = {
	    .wire_len = caplen,
	    .ifindex = (uint32_t)sll->sll_ifindex,
	    .ethertype = ntohs(sll->sll_protocol),
	    .pkttype = sll->sll_pkttype,
	    .worker = (uint8_t)w->idx,
	};

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
			struct tpacket_auxdata aux;
			memcpy(&aux, CMSG_DATA(c), sizeof(aux));
			m.wire_len = aux.tp_len;
			if (aux.tp_snaplen < caplen)
				caplen = aux.tp_snaplen;
			if (aux.tp_status & TP_STATUS_VLAN_VALID) {
				m.has_vlan = 1;
				m.vlan_tci = aux.tp_vlan_tci;
				m.vlan_tpid = aux.tp_status & TP_STATUS_VLAN_TPID_VALID
						  ? aux.tp_vlan_tpid
						  : 0x8100;
				m.wire_len += vlan_taken_len(w);
			}
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			m.time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		}
	}
	if (!m.time_ns)
		m.time_ns = nlg_realtime_ns();
	if (caplen > w->cap->c.snaplen)
		caplen = w->cap->c.snaplen;
	handle(w, mb->iov[i].iov_base, caplen, &m);
}

static void *mmsg_worker(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd[2] = {{.fd = w->fd, .events = POLLIN},
				{.fd = w->cap->stop_fd, .events = POLLIN}};
	struct mmsg_buf *mb = calloc(1, sizeof(*mb));
	size_t snap = w->cap->c.snaplen;

	if (mb)
		mb->data = malloc(BATCH * snap);
	if (!mb || !mb->data) {
		fail(w->cap, "worker %u: out of memory", w->idx);
		goto out;
	}
	while (!stopping(w)) {
		int n;
		for (unsigned i = 0; i < BATCH; i++) {
			mb->iov[i] = (struct iovec){mb->data + i * snap, snap};
			mb->msgs[i].msg_hdr = (struct msghdr){
			    .msg_name = &mb->from[i],
			    .msg_namelen = sizeof(mb->from[i]),
			    .msg_iov = &mb->iov[i],
			    .msg_iovlen = 1,
			    .msg_control = mb->ctl[i].buf,
			    .msg_controllen = sizeof(mb->ctl[i].buf),
			};
		}
		n = recvmmsg(w->fd, mb->msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n > 0) {
			for (int i = 0; i < n; i++)
				mmsg_one(w, mb, (unsigned)i);
			nlg_ring_publish(w->ring);
			tick(w, 0);
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fail(w->cap, "worker %u: recvmmsg: %s", w->idx, strerror(errno));
			break;
		}
		nlg_ring_publish(w->ring);
		tick(w, 0);
		poll(pfd, 2, sleep_ms(w));
	}
out:
	if (mb)
		free(mb->data);
	free(mb);
	worker_end(w);
	return NULL;
}

/* ---- a pcap file ------------------------------------------------------------ */

static void *file_worker(void *arg)
{
	struct worker *w = arg;
	struct nlg_err err = {{0}};
	const uint8_t *data;
	uint32_t caplen, wirelen;
	uint64_t ts;
	unsigned batch = 0;
	int r;

	while (!stopping(w) &&
	       (r = nlg_pcap_next(w->file, &data, &caplen, &wirelen, &ts, &err)) > 0) {
		struct nlg_pkt_meta m = {.time_ns = ts, .wire_len = wirelen};

		handle(w, data, caplen, &m);
		add(&w->packets, 1);
		/* the file's clock ends idle flows, as the wall clock does live */
		if (w->flows && ts >= w->file_expired + FILE_EXPIRE_NS) {
			nlg_flow_expire(w->flows, ts, flow_emit, w);
			w->file_expired = ts;
		}
		if (++batch == BATCH) {
			batch = 0;
			nlg_ring_publish(w->ring);
			flow_counters(w);
		}
	}
	if (r < 0)
		fail(w->cap, "%s", err.msg);
	worker_end(w);
	return NULL;
}

/* ---- set-up ------------------------------------------------------------------- */

static int join_fanout(struct nlg_capture *cap, struct worker *w, struct nlg_err *err)
{
	unsigned flags = cap->fan.flags;
	uint32_t arg, id = cap->group;

	/* The first socket asks the kernel for an id no one uses; the others
	 * join it. A configured group is joined as it is, by every socket. */
	if (w->idx == 0 && !cap->c.group)
		flags |= PACKET_FANOUT_FLAG_UNIQUEID, id = 0;
	arg = id | ((cap->fan.type | flags) << 16);
	if (setsockopt(w->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) < 0) {
		int e = errno;
		if (e == EINVAL && cap->c.group)
			return nlg_err_set(err, e,
					   "fanout group %u exists with another mode or flags, or "
					   "on another interface",
					   cap->c.group);
		return nlg_err_set(err, e, "joining fanout group %u: %s", id, strerror(e));
	}
	if (w->idx == 0 && !cap->c.group) {
		socklen_t len = sizeof(arg);
		if (getsockopt(w->fd, SOL_PACKET, PACKET_FANOUT, &arg, &len) < 0)
			return nlg_err_set(err, errno, "reading the fanout group id: %s",
					   strerror(errno));
		cap->group = arg & 0xffff;
	}
	return 0;
}

static int set_ring(struct nlg_capture *cap, struct worker *w, struct nlg_err *err)
{
	int v = TPACKET_V3;
	uint64_t block = cap->c.ring_block, frame = cap->c.ring_frame;
	uint64_t nblocks = cap->c.ring_size / block;
	struct tpacket_req3 req;

	if (setsockopt(w->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0)
		return nlg_err_set(err, errno, "TPACKET_V3: %s", strerror(errno));
	if (nblocks < 2)
		nblocks = 2;
	for (;;) {
		memset(&req, 0, sizeof(req));
		req.tp_block_size = (unsigned)block;
		req.tp_block_nr = (unsigned)nblocks;
		req.tp_frame_size = (unsigned)frame;
		req.tp_frame_nr = (unsigned)(block / frame * nblocks);
		req.tp_retire_blk_tov = (unsigned)cap->c.ring_timeout_ms;
		req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
		if (setsockopt(w->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) == 0) {
			w->map_len = (size_t)block * nblocks;
			w->map =
			    mmap(NULL, w->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
			if (w->map != MAP_FAILED)
				break;
			w->map = NULL;
			if (errno != ENOMEM)
				return nlg_err_set(err, errno, "mapping the ring: %s",
						   strerror(errno));
			/* give the ring back before asking for a smaller one */
			memset(&req, 0, sizeof(req));
			setsockopt(w->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req));
		} else if (errno != ENOMEM) {
			return nlg_err_set(err, errno, "a %llu-byte ring of %llu-byte blocks: %s",
					   (unsigned long long)(block * nblocks),
					   (unsigned long long)block, strerror(errno));
		}
		if (nblocks <= 2)
			return nlg_err_set(err, ENOMEM, "no memory for even a %llu-byte ring",
					   (unsigned long long)(block * nblocks));
		nblocks /= 2;
		if (w->idx == 0)
			nlg_note(cap->notes, sizeof(cap->notes),
				 "not enough memory for the ring: halved to %llu bytes per worker",
				 (unsigned long long)(block * nblocks));
	}
	w->nblocks = (unsigned)nblocks;
	w->block_size = (unsigned)block;
	if (w->idx == 0)
		cap->ring_bytes = w->map_len;
	return 0;
}

static int open_socket(struct nlg_capture *cap, struct worker *w, const struct nlg_bpf *filter,
		       struct nlg_err *err)
{
	struct sock_fprog fp = {.len = (unsigned short)filter->len,
				.filter = (struct sock_filter *)filter->insns};
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = cap->ifindex};
	const char *where = cap->c.iface;
	int one = 1, r;

	/* Protocol 0: nothing is queued before the filter is on and we bind. */
	w->fd = socket(AF_PACKET, cap->sock_type | SOCK_CLOEXEC, 0);
	if (w->fd < 0) {
		if (errno == EPERM || errno == EACCES)
			return nlg_err_set(err, EPERM, "capturing on %s needs CAP_NET_RAW", where);
		return nlg_err_set(err, errno, "a packet socket: %s", strerror(errno));
	}
	if (setsockopt(w->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0)
		return nlg_err_set(err, errno, "attaching the filter: %s", strerror(errno));
	if (strcmp(cap->mode, "recvmmsg")) {
		r = set_ring(cap, w, err);
		if (r < 0 && cap->c.dispatch == NLG_CAP_MMAP)
			return r;
		if (r < 0) {
			nlg_note(cap->notes, sizeof(cap->notes),
				 "no mmap ring (%s): reading with recvmmsg", err->msg);
			close(w->fd);
			w->fd = -1;
			cap->mode = "recvmmsg";
			return open_socket(cap, w, filter, err);
		}
		cap->mode = "mmap";
	} else {
		int buf = (int)(cap->c.ring_size > 0x7fffffff ? 0x7fffffff : cap->c.ring_size);
		cap->mode = "recvmmsg";
		if (setsockopt(w->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
			setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		setsockopt(w->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
		setsockopt(w->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	}
	if (bind(w->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		if (errno == ENETDOWN)
			return nlg_err_set(err, ENETDOWN, "interface %s is down", where);
		return nlg_err_set(err, errno, "binding to %s: %s", where, strerror(errno));
	}
	if (cap->c.promisc && cap->ifindex) {
		struct packet_mreq mr = {.mr_ifindex = cap->ifindex, .mr_type = PACKET_MR_PROMISC};
		if (setsockopt(w->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0 &&
		    w->idx == 0)
			nlg_note(cap->notes, sizeof(cap->notes), "%s: no promiscuous mode: %s",
				 where, strerror(errno));
	}
	return join_fanout(cap, w, err);
}

/* SOCK_RAW where the link header is Ethernet, else SOCK_DGRAM from the
 * network header (`any`, tun, wireguard, ...). */
static int pick_link(struct nlg_capture *cap, struct nlg_err *err)
{
	struct ifreq ifr;
	int fd, hw;

	cap->sock_type = SOCK_DGRAM;
	cap->link = NLG_LINK_NET;
	if (!strcmp(cap->c.iface, "any")) {
		cap->ifindex = 0;
		return 0;
	}
	cap->ifindex = (int)if_nametoindex(cap->c.iface);
	if (!cap->ifindex)
		return nlg_err_set(err, ENODEV, "no interface '%s'%s%s", cap->c.iface,
				   cap->c.netns[0] ? " in network namespace " : "", cap->c.netns);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, cap->c.iface, strnlen(cap->c.iface, sizeof(ifr.ifr_name) - 1));
	hw = fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0 ? ifr.ifr_hwaddr.sa_family : -1;
	if (fd >= 0)
		close(fd);
	if (hw == ARPHRD_ETHER || hw == ARPHRD_LOOPBACK) {
		cap->sock_type = SOCK_RAW;
		cap->link = NLG_LINK_ETHER;
	}
	return 0;
}

static unsigned default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

static int open_live(struct nlg_capture *cap, struct nlg_err *err)
{
	struct nlg_bpf filter = {0};
	int back = -1, r;

	if (cap->c.netns[0] && (r = nlg_netns_enter(cap->c.netns, &back, err)) < 0)
		return r;
	if ((r = pick_link(cap, err)) < 0)
		goto out;
	r = nlg_bpf_compile_for(&filter, cap->c.filter,
				cap->link == NLG_LINK_ETHER ? NLG_BPF_ETHER : NLG_BPF_NET,
				cap->c.iface, cap->c.snaplen, err);
	if (r < 0)
		goto out;
	if ((r = fanout_parse(cap->c.fanout, &cap->fan, 1, cap->link, err)) < 0)
		goto out;
	cap->mode = cap->c.dispatch == NLG_CAP_RECVMMSG ? "recvmmsg" : "mmap";
	for (unsigned i = 0; i < cap->n; i++)
		if ((r = open_socket(cap, &cap->w[i], &filter, err)) < 0)
			goto out;
	if (cap->fan.type == PACKET_FANOUT_CBPF) {
		struct sock_fprog fp = {.len = (unsigned short)cap->fan.prog.len,
					.filter = (struct sock_filter *)cap->fan.prog.insns};
		if (setsockopt(cap->w[0].fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof(fp)) < 0) {
			r = nlg_err_set(err, errno, "fanout cbpf program: %s", strerror(errno));
			goto out;
		}
	} else if (cap->fan.type == PACKET_FANOUT_EBPF) {
		if (setsockopt(cap->w[0].fd, SOL_PACKET, PACKET_FANOUT_DATA, &cap->fan.ebpf_fd,
			       sizeof(cap->fan.ebpf_fd)) < 0) {
			r = nlg_err_set(err, errno, "fanout eBPF program: %s", strerror(errno));
			goto out;
		}
	}
	nlg_note(cap->notes, sizeof(cap->notes), "%s: %u worker%s, %s, fanout %s group %u",
		 cap->c.iface, cap->n, cap->n == 1 ? "" : "s",
		 !strcmp(cap->mode, "mmap") ? "TPACKET_V3 rings" : "recvmmsg batches",
		 cap->c.fanout, cap->group);
	if (!strcmp(cap->mode, "mmap"))
		nlg_note(
		    cap->notes, sizeof(cap->notes),
		    "ring per worker: %u blocks of %u bytes (%zu bytes), block timeout %llu ms",
		    cap->w[0].nblocks, cap->w[0].block_size, cap->w[0].map_len,
		    (unsigned long long)cap->c.ring_timeout_ms);
	r = 0;
out:
	nlg_bpf_free(&filter);
	if (back >= 0) {
		int rb = nlg_netns_return(back, cap->c.netns, err);
		if (rb < 0)
			r = rb;
	}
	return r;
}

struct nlg_capture *nlg_capture_open(const struct nlg_capture_conf *c, struct nlg_err *err)
{
	struct nlg_capture *cap = calloc(1, sizeof(*cap));
	int r;

	if (!cap) {
		nlg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	cap->c = *c;
	cap->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cap->stop_fd < 0) {
		nlg_err_set(err, errno, "eventfd: %s", strerror(errno));
		free(cap);
		return NULL;
	}
	cap->n = c->file[0] ? 1 : c->workers ? c->workers : default_workers();
	if (cap->n > NLG_CAP_MAX_WORKERS) {
		nlg_err_set(err, EINVAL, "at most %d workers", NLG_CAP_MAX_WORKERS);
		close(cap->stop_fd);
		free(cap);
		return NULL;
	}
	cap->fan.ebpf_fd = -1;
	cap->w = calloc(cap->n, sizeof(*cap->w));
	if (!cap->w) {
		nlg_err_set(err, ENOMEM, "out of memory");
		close(cap->stop_fd);
		free(cap);
		return NULL;
	}
	for (unsigned i = 0; i < cap->n; i++) {
		struct worker *w = &cap->w[i];
		struct nlg_flow_conf fc = c->flow;
		w->cap = cap;
		w->idx = i;
		w->fd = -1;
		w->ring = nlg_ring_create(
		    c->flows ? sizeof(struct nlg_flow) : sizeof(struct nlg_pkt), c->queue);
		fc.worker = (uint8_t)i;
		errno = 0;
		if (c->flows)
			w->flows = nlg_flow_create(&fc);
		if (!w->ring || (c->flows && !w->flows)) {
			nlg_err_set(err, errno ? errno : ENOMEM,
				    "worker %u: the hand-off ring or flow table: %s", i,
				    strerror(errno ? errno : ENOMEM));
			goto fail;
		}
	}
	if (c->file[0]) {
		cap->mode = "file";
		cap->w[0].file = nlg_pcap_open(c->file, c->filter, err);
		if (!cap->w[0].file)
			goto fail;
		cap->link = nlg_pcap_link(cap->w[0].file);
		return cap;
	}
	if ((r = open_live(cap, err)) < 0)
		goto fail;
	return cap;
fail:
	nlg_capture_close(cap);
	return NULL;
}

/* Packets that came while the group was forming went to whichever socket
 * was in it: throw them away, and the counts of that time with them. */
static void flush(struct worker *w)
{
	unsigned ready = 0;

	if (w->map) {
		/* The kernel fills blocks in ring order from 0: give back the
		 * full ones, and read on from the block it fills now. */
		while (ready < w->nblocks && block_ready(block(w, ready)))
			block_release(block(w, ready++));
		w->cur = ready % w->nblocks;
	} else if (w->fd >= 0) {
		char b[64];
		while (recv(w->fd, b, sizeof(b), MSG_DONTWAIT | MSG_TRUNC) >= 0)
			;
	}
	/* That block may hold packets from before the group was whole: they
	 * are older than this, and so are the counts the read below drops. */
	w->skip_before_ns = nlg_realtime_ns();
	if (w->fd >= 0) {
		struct tpacket_stats_v3 st;
		socklen_t len = sizeof(st);
		getsockopt(w->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len);
	}
}

int nlg_capture_start(struct nlg_capture *cap, struct nlg_err *err)
{
	for (unsigned i = 0; i < cap->n; i++)
		flush(&cap->w[i]);
	for (unsigned i = 0; i < cap->n; i++) {
		struct worker *w = &cap->w[i];
		void *(*fn)(void *) = w->file ? file_worker : w->map ? mmap_worker : mmsg_worker;
		int r;

		w->last_tick_ms = mono_ms();
		atomic_fetch_add(&cap->running, 1);
		r = pthread_create(&w->thread, NULL, fn, w);
		if (r) {
			atomic_fetch_sub(&cap->running, 1);
			return nlg_err_set(err, r, "starting worker %u: %s", i, strerror(r));
		}
		w->started = 1;
	}
	return 0;
}

const char *nlg_capture_notes(const struct nlg_capture *cap)
{
	return cap->notes;
}

size_t nlg_capture_nrings(const struct nlg_capture *cap)
{
	return cap->n;
}

struct nlg_ring *nlg_capture_ring(struct nlg_capture *cap, size_t i)
{
	return i < cap->n ? cap->w[i].ring : NULL;
}

void nlg_capture_stop(struct nlg_capture *cap)
{
	uint64_t one = 1;
	ssize_t r;

	if (atomic_exchange(&cap->stop, 1))
		return;
	/* written once and never read: it stays readable, so every worker's
	 * poll returns from now on */
	r = write(cap->stop_fd, &one, sizeof(one));
	(void)r;
}

int nlg_capture_finished(const struct nlg_capture *cap)
{
	return atomic_load(&((struct nlg_capture *)cap)->running) == 0;
}

const char *nlg_capture_error(const struct nlg_capture *cap)
{
	return atomic_load(&((struct nlg_capture *)cap)->failed) == 2 ? cap->error : "";
}

void nlg_capture_stats(const struct nlg_capture *cap, struct nlg_capture_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < cap->n; i++) {
		const struct worker *w = &cap->w[i];
		struct nlg_ring_stats rs;

		st->packets += get(&w->packets);
		st->kernel_drops += get(&w->drops);
		st->freezes += get(&w->freezes);
		st->received += get(&w->received);
		st->truncated += get(&w->truncated);
		st->blocks += get(&w->blocks);
		st->records += get(&w->records);
		st->flows += get(&w->nflows);
		st->flows_live += get(&w->flows_live);
		st->evicted += get(&w->evicted);
		st->frag_matched += get(&w->frag_matched);
		st->frag_orphans += get(&w->frag_orphans);
		st->nonip += get(&w->nonip);
		nlg_ring_stats(w->ring, &rs);
		st->ring_drops += rs.dropped;
	}
	st->workers = cap->n;
	st->group = cap->group;
	st->ring_bytes = cap->ring_bytes;
	st->mode = cap->mode ? cap->mode : "";
}

void nlg_capture_close(struct nlg_capture *cap)
{
	if (!cap)
		return;
	atomic_store(&cap->closing, 1);
	nlg_capture_stop(cap);
	for (unsigned i = 0; i < cap->n; i++) {
		struct worker *w = &cap->w[i];
		if (w->started)
			pthread_join(w->thread, NULL);
	}
	for (unsigned i = 0; i < cap->n; i++) {
		struct worker *w = &cap->w[i];
		if (w->map)
			munmap(w->map, w->map_len);
		if (w->fd >= 0)
			close(w->fd);
		nlg_pcap_close(w->file);
		nlg_flow_destroy(w->flows);
		nlg_ring_destroy(w->ring);
	}
	fanout_free(&cap->fan);
	close(cap->stop_fd);
	free(cap->w);
	free(cap);
}
