/* The conntrack source: ctnetlink events and dumps decoded into `ct` records,
 * with reliable DESTROY delivery, loss detection and resync. Driven by the
 * caller's epoll loop: watch nlg_ct_fds(), call nlg_ct_readable() on each
 * ready fd and nlg_ct_tick() about once a second; records go to the sink.
 *
 *   kernel ──NEW/UPDATE (best effort)──▶ ev socket ─┐
 *   kernel ──DESTROY (BROADCAST_ERROR)──▶ del socket ├─▶ parse ─▶ table ─▶ sink
 *   kernel ◀──IPCTNL_MSG_CT_GET dump──── dump socket ┘   (after any loss: resync) */
#ifndef NLGATE_CONNTRACK_H
#define NLGATE_CONNTRACK_H

#include <stdint.h>
#include <stddef.h>
#include <linux/netlink.h>
#include "common.h"
#include "record.h"

/* ct.event */
enum { NLG_CT_NEW = 0, NLG_CT_UPDATE = 1, NLG_CT_DESTROY = 2 };

/* ct.present bits */
enum {
	NLG_CT_HAS_PORTS = 1u << 0, /* tcp, udp, sctp, dccp, udplite */
	NLG_CT_HAS_ICMP = 1u << 1,  /* icmp / icmpv6 type, code, id */
	NLG_CT_HAS_TCP = 1u << 2,   /* tcp_state */
	NLG_CT_HAS_MARK = 1u << 3,
	NLG_CT_HAS_ZONE = 1u << 4,
	NLG_CT_HAS_LABELS = 1u << 5,
	NLG_CT_HAS_TIMEOUT = 1u << 6,
	NLG_CT_HAS_ACCT = 1u << 7,   /* nf_conntrack_acct=1 */
	NLG_CT_HAS_TSTART = 1u << 8, /* nf_conntrack_timestamp=1 */
	NLG_CT_HAS_TSTOP = 1u << 9,  /* destroy events with timestamps */
	NLG_CT_HAS_HELPER = 1u << 10,
	NLG_CT_HAS_USE = 1u << 11,
	NLG_CT_HAS_SECMARK = 1u << 12,
	NLG_CT_HAS_REPLY = 1u << 13, /* reply tuple present */
};

#define NLG_CT_LABEL_BYTES 16

struct nlg_ct {
	NLG_RECORD_HEAD;
	uint8_t event;	   /* NLG_CT_NEW / UPDATE / DESTROY */
	uint8_t family;	   /* AF_INET / AF_INET6 */
	uint8_t proto;	   /* IPPROTO_* of the original tuple */
	uint8_t tcp_state; /* TCP_CONNTRACK_* */
	uint8_t synthetic; /* a DESTROY nlgate made up during resync */
	uint8_t dump;	   /* came from a table dump, not an event */
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id;
	uint16_t zone;
	uint16_t orig_sport, orig_dport, reply_sport, reply_dport; /* host order */
	uint32_t id;
	uint32_t status; /* IPS_* bits */
	uint32_t mark;
	uint32_t timeout; /* seconds left */
	uint32_t use;
	uint32_t secmark;
	struct nlg_addr orig_src, orig_dst, reply_src, reply_dst;
	uint8_t labels[NLG_CT_LABEL_BYTES]; /* bit n of the label set is byte n/8, bit n%8 */
	char helper[16];
	uint64_t orig_packets, orig_bytes, reply_packets, reply_bytes;
	uint64_t start_ns, stop_ns; /* CLOCK_REALTIME, ns */
};

extern struct nlg_schema nlg_ct_schema;

/* Which events to subscribe to (kernel-side: multicast groups). */
enum { NLG_CT_EV_NEW = 1, NLG_CT_EV_UPDATE = 2, NLG_CT_EV_DESTROY = 4, NLG_CT_EV_ALL = 7 };

/* Reliable delivery: NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS so the
 * kernel keeps undelivered events and re-sends them (DESTROY for certain;
 * NEW/UPDATE are folded into the next event of the flow). */
enum { NLG_CT_RELIABLE_OFF = 0, NLG_CT_RELIABLE_DESTROY = 1, NLG_CT_RELIABLE_ALL = 2 };

/* Filters: family / mark / zone go to the kernel in dumps where it supports
 * them; every filter is also applied here to events and dumps. */
struct nlg_ct_filter {
	uint8_t family; /* 0: any */
	uint8_t proto;	/* 0: any */
	uint8_t has_mark, has_zone;
	uint32_t mark, mark_mask;
	uint16_t zone;
};

struct nlg_ct_opts {
	unsigned events;  /* NLG_CT_EV_* bits; 0 means all */
	int reliable;	  /* NLG_CT_RELIABLE_*; default DESTROY */
	int rcvbuf;	  /* per event socket, bytes; 0: NLG_CT_RCVBUF */
	int initial_dump; /* dump the table after subscribing (default 1) */
	int resync;	  /* keep a flow table and resync after loss (default 1) */
	struct nlg_ct_filter filter;
	const char *netns; /* NULL or a name under /run/netns */
};

#define NLG_CT_RCVBUF (256 << 20) /* a limit, not an allocation */

void nlg_ct_opts_default(struct nlg_ct_opts *o);
/* Parse "new,update,destroy" (or "all") into NLG_CT_EV_* bits. */
int nlg_ct_parse_events(const char *s, unsigned *events);
/* "destroy" (or "on"), "all", "off" → NLG_CT_RELIABLE_*; -EINVAL otherwise. */
int nlg_ct_parse_reliable(const char *s, int *mode);

struct nlg_ct_stats {
	uint64_t received;	       /* event messages read from the kernel */
	uint64_t new, update, destroy; /* of those, by type */
	uint64_t emitted;	       /* records handed to the sink */
	uint64_t lost;		       /* events the kernel could not deliver to us (best effort) */
	uint64_t enobufs;	       /* ENOBUFS seen on a best-effort socket */
	uint64_t deferred;	       /* reliable-socket overflows: the kernel re-delivers */
	uint64_t resyncs;	       /* resync dumps completed (the initial dump not counted) */
	uint64_t resynced;	       /* flows a resync found that events had not shown */
	uint64_t synthetic;	       /* DESTROYs made up for flows that vanished unseen */
	uint64_t duplicates;	       /* NEW for a flow already known, suppressed */
	uint64_t orphans;  /* DESTROY for a flow never seen (created before start, or lost) */
	uint64_t filtered; /* dropped by the filter */
	uint64_t bad;	   /* malformed messages skipped */
	uint64_t dumped;   /* flows read from dumps */
	uint64_t live;	   /* flows in the table now */
	int rcvbuf;	   /* what the kernel granted per event socket */
};

/* The sink: one call per record (valid during the call only); return
 * NLG_CB_OK, or NLG_CB_ERROR to stop nlg_ct_readable() with -ECANCELED.
 * batch (may be NULL) runs after each read step that emitted records. */
struct nlg_ct_sink {
	int (*record)(const struct nlg_ct *ct, void *data);
	void (*batch)(void *data);
	void *data;
};

struct nlg_ct_src;

/* Subscribe, then start the initial dump (non-blocking). Needs CAP_NET_ADMIN;
 * without it err names the capability. */
struct nlg_ct_src *nlg_ct_open(const struct nlg_ct_opts *o, const struct nlg_ct_sink *sink,
			       struct nlg_err *err);
void nlg_ct_close(struct nlg_ct_src *s); /* accepts NULL */
/* The fds to watch for reading (up to 3); returns how many were written. */
int nlg_ct_fds(const struct nlg_ct_src *s, int *fds, int max);
/* fd is ready: read until it would block (bounded). Returns records emitted or
 * a negative errno (err filled). */
int nlg_ct_readable(struct nlg_ct_src *s, int fd, struct nlg_err *err);
/* Periodic: compare /proc/net/netlink Drops for our sockets, start a pending
 * resync. Returns 0 or a negative errno. */
int nlg_ct_tick(struct nlg_ct_src *s, struct nlg_err *err);
/* Ask for a resync dump now (no-op while one runs; it is redone after). */
int nlg_ct_resync(struct nlg_ct_src *s, struct nlg_err *err);
int nlg_ct_syncing(const struct nlg_ct_src *s); /* a dump is in flight */
const struct nlg_ct_stats *nlg_ct_stats(const struct nlg_ct_src *s);
/* Notes for the user about this kernel's settings (events, acct, timestamps,
 * buffer granted), one per line; "" when none. */
const char *nlg_ct_notes(const struct nlg_ct_src *s);
/* net.netfilter.NAME from this process's /proc/sys (nf_conntrack_max, ...);
 * -1 when it cannot be read. */
int nlg_ct_sysctl(const char *name);

/* One-shot dump of the table to the sink (blocking). Returns records or -errno. */
int nlg_ct_dump(const struct nlg_ct_opts *o, const struct nlg_ct_sink *sink, struct nlg_err *err);

/* Build an IPCTNL_MSG_CT_GET dump request with the kernel-side filters into
 * buf (>= 256 bytes); returns the message. */
struct nlmsghdr *nlg_ct_dump_request(void *buf, size_t len, const struct nlg_ct_filter *f);

/* The parser: one reused libnetfilter_conntrack object, no allocation per message. */
struct nlg_ct_parser;
struct nlg_ct_parser *nlg_ct_parser_new(void);
void nlg_ct_parser_free(struct nlg_ct_parser *p);
/* Decode one ctnetlink message (event or dump reply) into out. -EPROTO (err
 * filled) for anything malformed or not a conntrack message; whatever the
 * bytes, it returns (the source counts the message as bad and skips it). */
int nlg_ct_parse(struct nlg_ct_parser *p, const struct nlmsghdr *nlh, struct nlg_ct *out,
		 struct nlg_err *err);
/* The two decoders behind nlg_ct_parse. nlg_ct_decode reads the attributes
 * events carry in place with libmnl, and first walks every attribute and
 * nest the reference would read, checking each against the reference's own
 * rules. It returns 0 once out is filled; 1 for a well-formed message it
 * does not model (master tuple, helper, NAT sequence, SCTP/DCCP state, ...),
 * which nlg_ct_parse hands to nlg_ct_parse_nfct, the reference
 * (libnetfilter_conntrack); -1 for a message the reference must not see: an
 * attribute of a length it refuses (libnetfilter_conntrack 1.0.9 exits the
 * process on those) or that it would read or write out of bounds (a name
 * without its NUL, a protoinfo type past its table), or one it fails on.
 * nlg_ct_parse_nfct alone does no such check: call it only on a message
 * nlg_ct_decode did not refuse. The unit tests and tests/fuzz/fuzz_ct_parse.c
 * hold the two equal. */
int nlg_ct_decode(const struct nlmsghdr *nlh, struct nlg_ct *out);
int nlg_ct_parse_nfct(struct nlg_ct_parser *p, const struct nlmsghdr *nlh, struct nlg_ct *out,
		      struct nlg_err *err);
int nlg_ct_filter_match(const struct nlg_ct_filter *f, const struct nlg_ct *ct);

/* The flow table behind resync, keyed by (zone, orig tuple, id). */
struct nlg_ct_table;
struct nlg_ct_table *nlg_ct_table_new(void);
void nlg_ct_table_free(struct nlg_ct_table *t);
size_t nlg_ct_table_count(const struct nlg_ct_table *t);
/* Flows known from a dump only: no event has named them yet (with
 * nf_conntrack_events=2 their end may never be reported). */
size_t nlg_ct_table_unconfirmed(const struct nlg_ct_table *t);
int nlg_ct_table_has(const struct nlg_ct_table *t, const struct nlg_ct *ct);
/* A hint: start loading the index slot of ct's flow (one cache miss in a big
 * table) while other work goes on; call nlg_ct_table_event later. */
void nlg_ct_table_prefetch(const struct nlg_ct_table *t, const struct nlg_ct *ct);
/* An event. Returns 1 to emit it, 0 for a duplicate NEW; *orphan is set for
 * a DESTROY of an unknown flow. -ENOMEM if the table cannot grow. */
int nlg_ct_table_event(struct nlg_ct_table *t, const struct nlg_ct *ct, int *orphan);
/* Resync: begin, feed every dumped flow (returns 1 if it was unknown: emit it),
 * end (every known flow the dump did not show is gone: fn receives a synthetic
 * DESTROY for each; returns how many). */
void nlg_ct_table_sync_begin(struct nlg_ct_table *t);
int nlg_ct_table_sync_flow(struct nlg_ct_table *t, const struct nlg_ct *ct);
int nlg_ct_table_sync_end(struct nlg_ct_table *t, int (*fn)(const struct nlg_ct *, void *),
			  void *data);
/* Between the dump and sync_end: a flow the dying-list dump
 * (IPCTNL_MSG_CT_GET_DYING) shows is out of the table but its DESTROY is still
 * held by the kernel for a reliable listener, and will come: a known live flow
 * is kept (no synthetic DESTROY); returns 1 then, else 0. Never adds a flow. */
int nlg_ct_table_sync_dying(struct nlg_ct_table *t, const struct nlg_ct *ct);

/* Build an IPCTNL_MSG_CT_GET_DYING dump request (family filter only) into buf
 * (>= 64 bytes); returns the message. */
struct nlmsghdr *nlg_ct_dying_request(void *buf, size_t len, const struct nlg_ct_filter *f);

#endif
