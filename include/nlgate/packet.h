/* Packet capture's pure half: the `pkt` and `flow` records, the decoder that
 * turns captured bytes into a pkt, and the per-worker flow table that folds
 * pkts into flows. No sockets and no threads here (core/capture.c has them),
 * so both run the same on a live ring, a pcap file and a fuzzer's input.
 *
 *   bytes + meta ──nlg_pkt_decode()──▶ struct nlg_pkt ──nlg_flow_add()──▶ table ──emit──▶ struct nlg_flow */
#ifndef NLGATE_PACKET_H
#define NLGATE_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "record.h"

/* What the first byte handed to the decoder is. */
enum nlg_link {
	NLG_LINK_ETHER = 0, /* an Ethernet header (DLT_EN10MB) */
	NLG_LINK_SLL = 1,   /* Linux cooked v1, 16 bytes (DLT_LINUX_SLL) */
	NLG_LINK_SLL2 = 2,  /* Linux cooked v2, 20 bytes (DLT_LINUX_SLL2) */
	NLG_LINK_RAW = 3,   /* an IP header; the version nibble says which (DLT_RAW) */
	NLG_LINK_NET = 4,   /* the network header of meta->ethertype (SOCK_DGRAM, `any`) */
};

/* pkt.direction: the kernel's PACKET_* packet types. */
enum {
	NLG_DIR_HOST = 0,
	NLG_DIR_BROADCAST,
	NLG_DIR_MULTICAST,
	NLG_DIR_OTHERHOST,
	NLG_DIR_OUTGOING
};

/* pkt.present bits */
enum {
	NLG_PKT_HAS_VLAN = 1u << 0,   /* vlan: the outer tag */
	NLG_PKT_HAS_VLAN2 = 1u << 1,  /* vlan_inner: a second tag (QinQ) */
	NLG_PKT_HAS_IP = 1u << 2,     /* family, src, dst, proto, ttl */
	NLG_PKT_HAS_FRAG = 1u << 3,   /* a fragment: frag_id, frag_offset, frag_more */
	NLG_PKT_HAS_PORTS = 1u << 4,  /* sport, dport (tcp, udp, udplite, sctp, dccp) */
	NLG_PKT_HAS_TCP = 1u << 5,    /* tcp_flags, seq, ack, window */
	NLG_PKT_HAS_ICMP = 1u << 6,   /* icmp_type, icmp_code (icmp and icmpv6) */
	NLG_PKT_HAS_RXHASH = 1u << 7, /* rxhash */
};

/* TCP flag bits as in the header's 13th byte (tcp_flags). */
enum {
	NLG_TCP_FIN = 0x01,
	NLG_TCP_SYN = 0x02,
	NLG_TCP_RST = 0x04,
	NLG_TCP_PSH = 0x08,
	NLG_TCP_ACK = 0x10,
	NLG_TCP_URG = 0x20,
	NLG_TCP_ECE = 0x40,
	NLG_TCP_CWR = 0x80,
};

struct nlg_pkt {
	NLG_RECORD_HEAD;
	uint64_t time_ns;  /* CLOCK_REALTIME ns: the ring's timestamp, or the file's */
	uint32_t ifindex;  /* 0 from a file */
	uint32_t wire_len; /* length on the wire (pcap orig_len, the frame length) */
	uint32_t cap_len;  /* bytes captured (<= snaplen) */
	uint32_t rxhash;
	uint32_t frag_id;     /* IPv4 identification or IPv6 fragment identification */
	uint32_t seq, ack;    /* TCP, host order */
	uint16_t frag_offset; /* bytes */
	uint16_t vlan;	      /* outer VLAN id (12 bits) */
	uint16_t vlan_inner;
	uint16_t ethertype; /* of the payload after any VLAN tags; 0 if unknown */
	uint16_t sport, dport;
	uint16_t window; /* TCP window field, unscaled */
	uint8_t direction;
	uint8_t worker;
	uint8_t truncated; /* the capture ended before the headers did (snaplen) */
	uint8_t malformed; /* a header's length was impossible: decoding stopped there */
	uint8_t family;	   /* AF_INET / AF_INET6 */
	uint8_t proto;	   /* IP protocol: the upper layer after IPv6 extension headers */
	uint8_t ttl;	   /* TTL or hop limit */
	uint8_t frag_more;
	uint8_t tcp_flags;
	uint8_t icmp_type, icmp_code;
	struct nlg_addr src, dst;
};

/* What the capture knows about the packet beside its bytes. */
struct nlg_pkt_meta {
	uint64_t time_ns;
	uint32_t wire_len; /* 0: take caplen */
	uint32_t ifindex;
	uint32_t rxhash;
	uint16_t vlan_tci;  /* a tag the kernel took off the frame (TP_STATUS_VLAN_VALID) */
	uint16_t vlan_tpid; /* its TPID (0x8100, 0x88a8); 0 reads as 0x8100 */
	uint16_t ethertype; /* NLG_LINK_NET: the protocol, host order */
	uint8_t has_vlan;
	uint8_t has_rxhash;
	uint8_t pkttype; /* NLG_DIR_*; 0 (host) also means unknown: SLL/SLL2 then say */
	uint8_t worker;
};

/* Fill *p (zeroed first) from caplen bytes at data. Never reads past
 * data + caplen; decodes as far as the bytes go and marks truncated or
 * malformed where it had to stop. Non-IP packets keep only the link fields. */
void nlg_pkt_decode(struct nlg_pkt *p, enum nlg_link link, const uint8_t *data, size_t caplen,
		    const struct nlg_pkt_meta *meta);

/* ---- flows ------------------------------------------------------------------ */

/* flow.end_reason */
enum {
	NLG_FLOW_IDLE = 0,    /* no packet for the idle timeout */
	NLG_FLOW_ACTIVE = 1,  /* open longer than the active timeout: a new record begins */
	NLG_FLOW_FIN = 2,     /* both sides sent FIN */
	NLG_FLOW_RST = 3,     /* a side sent RST */
	NLG_FLOW_EVICTED = 4, /* the table was full and this was the least recently seen */
	NLG_FLOW_SHUTDOWN = 5 /* the capture ended (exit, end of file) */
};

/* How long a closed TCP flow (FIN both ways, or a RST) keeps counting its
 * stragglers (the last ACK, a retransmitted FIN) without a packet before it
 * ends, on the packets' clock (at most the idle timeout). A SYN on its key
 * ends it at once. */
#define NLG_FLOW_LINGER_NS (2ull * 1000 * 1000 * 1000)

/* flow.present bits */
enum {
	NLG_FLOW_HAS_PORTS = 1u << 0, /* sport, dport */
	NLG_FLOW_HAS_VLAN = 1u << 1,
};

struct nlg_flow {
	NLG_RECORD_HEAD;
	uint64_t packets, bytes; /* both directions; bytes are wire lengths */
	uint64_t fwd_packets, fwd_bytes, rev_packets, rev_bytes;
	uint64_t first_ns, last_ns;
	uint32_t ifindex;
	uint16_t sport, dport;
	uint16_t vlan;
	uint8_t family;
	uint8_t proto;
	uint8_t tcp_flags, fwd_tcp_flags, rev_tcp_flags; /* unions of NLG_TCP_* */
	uint8_t end_reason;
	uint8_t worker;
	struct nlg_addr src, dst; /* src sent the first packet seen */
};

extern struct nlg_schema nlg_pkt_schema;  /* kind "pkt" */
extern struct nlg_schema nlg_flow_schema; /* kind "flow" */

struct nlg_flow_conf {
	uint64_t idle_ns;   /* end a flow after this long without a packet */
	uint64_t active_ns; /* end (and restart) a flow open this long; 0: never */
	uint32_t max;	    /* flows held at once; the least recently seen is evicted */
	uint8_t worker;	    /* copied into every flow record */
};

struct nlg_flow_stats {
	uint64_t created;      /* flows begun */
	uint64_t emitted;      /* flow records handed to emit */
	uint64_t evicted;      /* ended because the table was full */
	uint64_t frag_matched; /* non-first fragments counted in their datagram's flow */
	uint64_t frag_orphans; /* non-first fragments whose first was never seen */
	uint64_t nonip;	       /* packets without an IP header: in no flow */
	uint64_t live;	       /* flows open now */
};

struct nlg_flow_table;

/* Where ended flows go; the record is valid during the call. */
typedef void nlg_flow_emit_fn(void *data, const struct nlg_flow *f);

/* NULL with errno (EINVAL for max == 0, max > 2^30 or idle_ns == 0, ENOMEM).
 * The max entries are allocated here; the table allocates nothing after. */
struct nlg_flow_table *nlg_flow_create(const struct nlg_flow_conf *c);
void nlg_flow_destroy(struct nlg_flow_table *t); /* accepts NULL; emits nothing */
/* Count one decoded packet in its flow (time from p->time_ns). Flows it
 * ends (the previous use of a reused key, an active timeout, an eviction)
 * are emitted before it returns. */
void nlg_flow_add(struct nlg_flow_table *t, const struct nlg_pkt *p, nlg_flow_emit_fn *emit,
		  void *data);
/* The same as nlg_flow_add on each of the n packets at p in turn (the same
 * flows, records and order), faster: the table's memory for a batch of them
 * is fetched at once rather than one packet's after another's. */
void nlg_flow_add_batch(struct nlg_flow_table *t, const struct nlg_pkt *p, size_t n,
			nlg_flow_emit_fn *emit, void *data);
/* End the flows idle at now_ns (the packets' clock: a file's time, or the
 * wall clock on a live capture), and closed TCP flows past their linger,
 * least recently seen first. Cheap when nothing is due: it walks what is due
 * in the order packets touched the flows, so after the clock steps back the
 * flows touched since wait behind older ones (late by at most the step). */
void nlg_flow_expire(struct nlg_flow_table *t, uint64_t now_ns, nlg_flow_emit_fn *emit, void *data);
/* End every open flow: reason shutdown, or fin/rst for those already closed. */
void nlg_flow_flush(struct nlg_flow_table *t, nlg_flow_emit_fn *emit, void *data);
/* The table's counters; read by the thread that owns the table. */
const struct nlg_flow_stats *nlg_flow_stats(const struct nlg_flow_table *t);

#endif
