/* The NATS output: every item is published through libnats to a subject made
 * from a template ("nlgate.{tag}"), to JetStream with acknowledgements awaited
 * asynchronously in a bounded window, or to core NATS without them. Every
 * message carries a Nats-Msg-Id unique to this host, boot, process and
 * instance, so a resend after a lost acknowledgement is de-duplicated by the
 * server: at least once on the wire, exactly once in the stream.
 *
 *   send ─▶ [tag,time,body] ─▶ (batch per subject) ─▶ natsMsg + Nats-Msg-Id ─┐
 *                                                                           ▼
 *        window has room and connected? ──yes──▶ js_PublishMsgAsync ─▶ libnats threads
 *                 │no                                                   │ ack / error / timeout
 *                 ▼                                                     ▼
 *        nlgate's bounded queue ◀── pushed again when acks free room ◀── eventfd on the loop
 *        (records and bytes; drops counted, announced by nlgate.gap)    (failures resent, same id)
 *
 * Built without libnats (NLGATE_WITH_NATS=OFF, or not found), gw.nats still
 * exists, takes the same options, and fails to open with a message saying so. */
#ifndef NLGATE_OUT_NATS_H
#define NLGATE_OUT_NATS_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "output.h"

/* The output "nats": gw.nats{url, subject, jetstream, batch, creds, ...}. */
extern const struct nlg_output_ops nlg_nats_output;

/* Its conf (filled from nlg_nats_output.opts). No pointers, so a reload can
 * compare two confs with memcmp. */
struct nlg_nats_conf {
	char url[256];		  /* nats://host:port (a comma-separated list of servers) */
	char subject[256];	  /* template: "{tag}" is replaced by the item's tag */
	int jetstream;		  /* 1: JetStream with acknowledgements; 0: core NATS */
	uint32_t batch;		  /* records per message, per subject */
	uint64_t linger;	  /* ms a partial batch waits for more records */
	char creds[256];	  /* a .creds file (user JWT and nkey seed), or "" */
	char name[64];		  /* the connection's name, as the server shows it */
	uint64_t queue;		  /* bound on nlgate's queue, bytes */
	uint32_t queue_records;	  /* bound on nlgate's queue, records */
	uint32_t max_pending;	  /* JetStream messages awaiting acknowledgement at once */
	uint64_t ack_wait;	  /* ms before an unacknowledged message is resent */
	uint64_t retry_wait;	  /* ms between resends of failed messages */
	uint64_t reconnect_wait;  /* ms between libnats's reconnect attempts */
	uint64_t reconnect_buf;	  /* bytes libnats buffers while reconnecting */
	uint64_t connect_timeout; /* ms one connection attempt may take */
};

/* Its counters: a record of nlg_nats_stats_schema ("nats.stats"). */
struct nlg_nats_stats {
	NLG_RECORD_HEAD;
	struct nlg_link_stats link;
	uint64_t messages;    /* messages published (a batch is one), resends included */
	uint64_t bytes;	      /* message bodies published, resends included */
	uint64_t backlog;     /* records in nlgate's queue now, not yet given to libnats */
	uint64_t inflight;    /* records published, acknowledgement awaited (or resend) */
	uint64_t duplicates;  /* acknowledgements saying the server had the id already */
	uint64_t ack_errors;  /* publishes refused or not acknowledged in time */
	uint64_t gaps;	      /* nlgate.gap messages queued */
	uint64_t disconnects; /* connections lost */
	char last_error[128]; /* the last error libnats or the server reported */
};
extern struct nlg_schema nlg_nats_stats_schema;

#endif
