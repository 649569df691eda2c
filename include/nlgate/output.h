/* The output contract. An output receives items — a tag, a time and a record
 * body encoded once as a msgpack map — and frames them its own way: the unix
 * feed as [tag, time, body] arrays, later TCP, Fluentd Forward, NATS. It is a
 * struct of operations plus an option table, like a source (source.h), and
 * the bounded queue with whole-frame drops and gap announcements it needs is
 * core/outq.c.
 *
 *   out:send(tag, r) ─▶ encode body once ─▶ ops->send(st, item) ─▶ frame ─▶ outq ─▶ fd
 *
 * Adding an output: core/out_<name>.c with a `const struct nlg_output_ops`,
 * one line in core/output.c. */
#ifndef NLGATE_OUTPUT_H
#define NLGATE_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "loop.h"
#include "opt.h"
#include "schema.h"

struct nlg_item {
	const char *tag;
	size_t taglen;
	uint64_t time_ns;    /* CLOCK_REALTIME */
	const uint8_t *body; /* one msgpack value (a map for records) */
	size_t len;
};

struct nlg_output_ops {
	const char *name; /* gw.NAME, gw.stats().NAME */
	const char *desc;
	const struct nlg_opt *opts; /* fill a conf_size struct */
	size_t conf_size;
	const struct nlg_schema *stats_schema; /* its counters */

	/* Open with conf (kept by the caller for the output's life). */
	int (*open)(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err);
	/* Give queued data up to timeout_ms to leave, then release everything. */
	void (*close)(void *st, int timeout_ms);
	/* Frame and queue one item; never blocks. Returns how many consumers
	 * took it (0: dropped for all, counted), or -errno if it cannot be
	 * framed at all. */
	int (*send)(void *st, const struct nlg_item *it);
	/* Optional: try to write what is queued now, for up to timeout_ms. */
	void (*flush)(void *st, int timeout_ms);
	void (*stats)(void *st, void *out); /* fill a stats_schema record, zeroed */
	/* Optional: items taken but not yet delivered (queued, or sent and
	 * awaiting the peer's acknowledgement). At exit the loop keeps running
	 * until every output's pending is 0 or the drain time is over, so
	 * reconnects and acknowledgements still happen then. Called on the
	 * loop's thread. */
	uint64_t (*pending)(void *st);
};

/* ---- the counters every network output reports -------------------------
 *
 * An output's stats record embeds a struct nlg_link_stats and its schema
 * lists NLG_LINK_FIELDS(type, member): one definition of the names for the
 * TCP, Forward and NATS outputs. */

enum nlg_link_state {
	NLG_LINK_CONNECTING,
	NLG_LINK_CONNECTED,
	NLG_LINK_BACKOFF,	   /* waiting to reconnect */
	NLG_LINK_HANDSHAKE_FAILED, /* the peer refused us (a wrong key): retried, slowly */
	NLG_LINK_LISTENING,	   /* listen mode: serving whoever connects */
	NLG_LINK_CLOSED,
};
extern const char *const nlg_link_state_names[]; /* "connecting", ... NULL */

struct nlg_link_stats {
	uint64_t queued;     /* records taken into the output's queue */
	uint64_t sent;	     /* records written to the peer */
	uint64_t acked;	     /* records the peer acknowledged (forward ack, JetStream) */
	uint64_t resent;     /* records sent again after a reconnect or a lost ack */
	uint64_t dropped;    /* records dropped: queue full, or undeliverable at exit */
	uint64_t reconnects; /* connections made after the first */
	uint8_t state;	     /* enum nlg_link_state */
};

#define NLG_LINK_FIELDS(st, m)                                                                     \
	NLG_FIELD(st, "queued", NLG_T_U64, m.queued, 0, "records taken into the queue"),           \
	    NLG_FIELD(st, "sent", NLG_T_U64, m.sent, 0, "records written to the peer"),            \
	    NLG_FIELD(st, "acknowledged", NLG_T_U64, m.acked, 0,                                   \
		      "records the peer acknowledged (0 where it does not)"),                      \
	    NLG_FIELD(st, "resent", NLG_T_U64, m.resent, 0,                                        \
		      "records sent again after a reconnect or a lost acknowledgement"),           \
	    NLG_FIELD(st, "dropped", NLG_T_U64, m.dropped, 0,                                      \
		      "records dropped: queue full, or still undelivered at exit"),                \
	    NLG_FIELD(st, "reconnects", NLG_T_U64, m.reconnects, 0,                                \
		      "connections made after the first"),                                         \
	{                                                                                          \
		.name = "state", .type = NLG_T_ENUM, .offset = offsetof(st, m.state),              \
		.size = sizeof(uint8_t), .names = nlg_link_state_names,                            \
		.desc = "connecting, connected, backing off, handshake failed, listening, closed"  \
	}

/* The built-in outputs, then those registered; NULL past the end. */
const struct nlg_output_ops *nlg_output_at(size_t i);
const struct nlg_output_ops *nlg_output_find(const char *name);
int nlg_output_register(const struct nlg_output_ops *ops); /* 0, -EEXIST, -ENOSPC */

/* The default time outputs get at exit to deliver what they hold. */
#define NLG_DRAIN_MS 5000

/* At exit, after the sources stopped: run the loop until no output has
 * anything pending, ms have passed, or the loop is stopped (a second INT or
 * TERM). Returns what is still pending, summed; if anything, writes one line
 * for the user into line[len]: "N records not delivered after T ms (forward
 * 12, nats 3)". */
uint64_t nlg_output_drain(struct nlg_loop *loop, const struct nlg_output_ops *const *ops,
			  void *const *st, size_t n, uint64_t ms, char *line, size_t len);

#endif
