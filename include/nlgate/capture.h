/* Packet capture's threaded half: one AF_PACKET socket per worker thread,
 * each with a TPACKET_V3 RX ring (or a recvmmsg reader where no ring can be
 * had), all in one fanout group; or one reader of a pcap file. Workers decode
 * each packet (core/decode.c), fold it into their flow table (core/flow.c)
 * when flows are on, and hand the records to the loop thread through one SPSC
 * ring each (core/ring.c). Workers never call the consumer: it watches
 * nlg_ring_fd() of every ring and takes the records in runs.
 *
 *   kernel ─TPACKET_V3 blocks─▶ worker i ─decode/flows─▶ nlg_ring i ─▶ loop thread
 *          (block released as soon as its packets are decoded) */
#ifndef NLGATE_CAPTURE_H
#define NLGATE_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "packet.h"
#include "ring.h"

#define NLG_CAP_MAX_WORKERS 64

enum nlg_cap_dispatch {
	NLG_CAP_AUTO = 0,     /* an mmap ring, else recvmmsg */
	NLG_CAP_MMAP = 1,     /* TPACKET_V3 only: fail without it */
	NLG_CAP_RECVMMSG = 2, /* batches of recvmmsg(2), no ring */
};

/* Everything is by value (no pointers): the source keeps it as its conf. */
struct nlg_capture_conf {
	char iface[32];	   /* "any" or an interface name */
	char file[256];	   /* a pcap/pcapng file instead of an interface */
	char filter[1024]; /* tcpdump syntax, "" for none */
	char fanout[512];  /* MODE[,FLAG...], see nlg_capture_fanout_help */
	char netns[64];
	uint32_t workers;	  /* 0: one per online CPU */
	uint32_t snaplen;	  /* bytes kept of each packet */
	uint32_t group;		  /* fanout group id; 0: one the kernel picks (unique) */
	uint64_t ring_size;	  /* bytes per worker */
	uint64_t ring_block;	  /* bytes per block, a power-of-two multiple of the page */
	uint64_t ring_frame;	  /* the frame size the kernel is told (V3 packs by length) */
	uint64_t ring_timeout_ms; /* a block is handed over after this long, full or not */
	uint64_t queue;		  /* records per worker-to-loop ring (a power of two) */
	uint32_t dispatch;	  /* enum nlg_cap_dispatch */
	int promisc;
	int flows;		   /* emit flow records instead of pkt records */
	struct nlg_flow_conf flow; /* worker is set per worker */
};

struct nlg_capture_stats {
	uint64_t packets;      /* the kernel's count for our sockets, drops included */
	uint64_t kernel_drops; /* dropped by the kernel: our rings were full */
	uint64_t freezes;      /* times a ring's queue froze (TPACKET_V3) */
	uint64_t received;     /* packets the workers read and decoded */
	uint64_t ring_drops;   /* records lost between the workers and the loop */
	uint64_t records;      /* records handed to the loop */
	uint64_t flows;	       /* flow records emitted */
	uint64_t flows_live;   /* flows open now */
	uint64_t evicted;      /* flows ended because a table was full */
	uint64_t frag_matched, frag_orphans, nonip;
	uint64_t truncated; /* packets whose headers went past the snap length */
	uint64_t blocks;    /* ring blocks read */
	uint32_t workers;
	uint32_t group;	     /* the fanout group id in use */
	uint64_t ring_bytes; /* ring memory per worker, after any halving */
	const char *mode;    /* "mmap", "recvmmsg" or "file" */
};

struct nlg_capture;

/* Sockets (or the file), rings, filter and fanout group, set up; no thread
 * yet, nothing captured before nlg_capture_start. NULL with err on failure,
 * err naming the thing at fault (the interface, the file, the filter). */
struct nlg_capture *nlg_capture_open(const struct nlg_capture_conf *c, struct nlg_err *err);
/* Flush what arrived while the group formed, and start the workers. */
int nlg_capture_start(struct nlg_capture *cap, struct nlg_err *err);
/* Notes for the user (ring halved, mode, ...), one per line; "" for none. */
const char *nlg_capture_notes(const struct nlg_capture *cap);
size_t nlg_capture_nrings(const struct nlg_capture *cap);
struct nlg_ring *nlg_capture_ring(struct nlg_capture *cap, size_t i);
/* Ask the workers to finish: each flushes its flows into its ring and
 * exits. Does not wait; a worker whose ring is full waits for the consumer
 * only a bounded time once stopping, then drops (counted). */
void nlg_capture_stop(struct nlg_capture *cap);
/* Every worker has exited (stopped, or a file's end): after its ring is
 * drained nothing more will come. */
int nlg_capture_finished(const struct nlg_capture *cap);
/* A worker gave up (a socket error): the first error, "" if none. */
const char *nlg_capture_error(const struct nlg_capture *cap);
void nlg_capture_stats(const struct nlg_capture *cap, struct nlg_capture_stats *st);
/* Stop, join the workers, release everything. Accepts NULL. */
void nlg_capture_close(struct nlg_capture *cap);

/* Check a fanout spec without opening anything (for option parsing). */
int nlg_capture_parse_fanout(const char *text, struct nlg_err *err);

#endif
