/* The Fluentd Forward output: records batched into PackedForward messages
 * (one tag per message) over one TCP connection to Fluentd, Fluent Bit or
 * Vector, at least once with acknowledgements, the shared-key handshake,
 * reconnects with backoff. The wire format is core/forward.c, the message
 * queue core/fwdq.c.
 *
 *   send(item) ─▶ open batch [EventTime, record]... ──tag change, size, chunk
 *                 bytes or the flush timer──▶ chunk (a whole message + its id)
 *
 *   chunks:  [sent, awaiting ack]...[being written][unsent]...   ─▶ fd
 *             ▲ freed by {"ack": id}  ▲ after a broken link or an ack timeout,
 *                                       writing starts again from the oldest
 *
 * The queue bound (bytes and records) covers the open batch, the unsent and
 * the unacknowledged chunks: a record that does not fit is dropped whole,
 * counted, and announced in-band by an `nlgate.gap` record ({missed = N})
 * as soon as one fits. Never blocks the loop. */
#ifndef NLGATE_OUT_FORWARD_H
#define NLGATE_OUT_FORWARD_H

#include <stdint.h>
#include "output.h"

/* gw.forward{host, port, tag_prefix, shared_key, self_hostname, username,
 * password, ack, size, chunk, flush, queue, queue_records, keepalive,
 * write_timeout, connect_timeout, ack_timeout, retry_min, retry_max}. open
 * resolves host once and connects in the background: a server that is down
 * is retried, not an error. close(st, timeout_ms) writes and collects
 * acknowledgements for up to timeout_ms over a link that is up; what is
 * still undelivered then is counted dropped and said in one line. */
extern const struct nlg_output_ops nlg_forward_output;

/* Its conf; no pointers, so a reload compares two with memcmp. */
struct nlg_forward_conf {
	char host[256];
	uint16_t port;
	char tag_prefix[128];
	char shared_key[256];
	char self_hostname[256]; /* "": gethostname() */
	char username[128];
	char password[256];
	int ack;
	uint32_t size;		/* records per message */
	uint64_t chunk;		/* bytes of entries per message */
	uint64_t flush_ms;	/* a batch waits at most this long */
	uint64_t queue;		/* bound on bytes held */
	uint32_t queue_records; /* bound on records held; 0: none */
	uint64_t keepalive_ms;	/* TCP keepalive idle time; 0: off */
	uint64_t write_timeout_ms;
	uint64_t connect_timeout_ms; /* connect and handshake */
	uint64_t ack_timeout_ms;
	uint64_t retry_min_ms, retry_max_ms;
};

/* Its counters: a record of nlg_forward_stats_schema ("forward.stats"). */
struct nlg_forward_stats {
	NLG_RECORD_HEAD;
	struct nlg_link_stats link;
	uint64_t chunks;	     /* messages framed */
	uint64_t chunks_acked;	     /* messages acknowledged */
	uint64_t gaps;		     /* nlgate.gap records queued */
	uint64_t unacked;	     /* messages written, awaiting their ack now */
	uint64_t queue_records;	     /* records held now (sent unacknowledged, or unsent) */
	uint64_t queue_bytes;	     /* bytes held now */
	uint64_t connect_failures;   /* attempts that failed or broke before the link was up */
	uint64_t handshake_failures; /* refused key, wrong PONG digest, no HELO */
	uint64_t link_failures;	     /* links that broke once up (ack timeouts included) */
	uint64_t ack_timeouts;	     /* links given up because an ack was late */
	uint64_t protocol_errors;    /* the server sent something that is not Forward */
	char peer[300];		     /* host:port */
	char error[200];	     /* the last failure, "" once the link is up */
};
extern struct nlg_schema nlg_forward_stats_schema;

#endif
