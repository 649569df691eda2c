/* The NATS output's link to the server (core/nats_link.c): libnats's
 * connection and JetStream context, the window of publishes awaiting an
 * acknowledgement, the messages that failed and go again with their
 * Nats-Msg-Id, and what libnats's own threads share with the loop. The
 * output (core/out_nats.c) frames, batches and queues; the link publishes.
 *
 *   out_nats: queue ──publish──▶ link ──▶ libnats ──▶ server
 *               ▲                  ▲          │ acks, refusals, timeouts
 *               │                  │          ▼ (libnats's threads: atomics, a mutex)
 *               └─── ready() ◀── eventfd ◀── room in the window, failures to resend,
 *                    (on the loop)           the connection's state
 *
 * Only with libnats (NLGATE_HAVE_NATS). Every function runs on the loop's
 * thread. */
#ifndef NLGATE_NATS_LINK_H
#define NLGATE_NATS_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <nats/nats.h>
#include "common.h"
#include "loop.h"
#include "out_nats.h"

struct nlg_nats_link;

/* Called on the loop when publishing may go on: the window has room again,
 * a connection was made, a resend is due. */
typedef void nlg_nats_ready_fn(void *data);

/* A link for cf (kept by the caller): nothing of libnats runs until the
 * loop's first turn, which connects (run --user drops privileges before).
 * 0, or a negative errno with a message. */
int nlg_nats_link_open(struct nlg_nats_link **lp, struct nlg_loop *loop,
		       const struct nlg_nats_conf *cf, nlg_nats_ready_fn *ready, void *data,
		       struct nlg_err *err);
/* Stop libnats and free the link: returns the records of the messages still
 * in flight or to be resent, now lost. Bounded: the ack handlers running
 * get 1 s, libnats's close flushes for 0.5 s at most. */
uint64_t nlg_nats_link_close(struct nlg_nats_link *l);

/* A message for subj with a body of recs records (0 for a gap
 * announcement): its Nats-Msg-Id is the next of the link's, and a count
 * other than 1 goes in an Nlgate-Records header. NULL when out of memory. */
natsMsg *nlg_nats_link_msg(struct nlg_nats_link *l, const char *subj, const void *data, size_t len,
			   uint32_t recs);

/* Connected: publishes may go. */
int nlg_nats_link_up(const struct nlg_nats_link *l);
/* Connected, and (JetStream) the window has room. */
int nlg_nats_link_room(const struct nlg_nats_link *l);
/* Hand m (recs records, len bytes of body) to libnats: 0 taken, or -1 with
 * m still the caller's (libnats's buffer full while it reconnects, the
 * connection gone): ready() comes after retry_wait. */
int nlg_nats_link_publish(struct nlg_nats_link *l, natsMsg *m, uint32_t recs, uint32_t len);
/* Send again what failed, while the window takes it: 0 when none is left,
 * 1 when some wait for room, -1 when a publish failed (ready() comes). */
int nlg_nats_link_resend(struct nlg_nats_link *l);
/* The caller has more than the window takes: ready() once it has room
 * again (or the last acknowledgements came). Returns 1 if it has room
 * already (an acknowledgement came meanwhile): go on at once. */
int nlg_nats_link_want_room(struct nlg_nats_link *l);

/* Away from the loop (close, flush with a time): wait up to timeout_ms for
 * news from libnats's threads and take it; failed messages are due at
 * once here. */
void nlg_nats_link_poll(struct nlg_nats_link *l, int timeout_ms);
/* Core NATS: what libnats buffered reaches the server (a PING answered
 * after it), for up to timeout_ms. */
void nlg_nats_link_flush(struct nlg_nats_link *l, int timeout_ms);

/* Records published and awaiting an acknowledgement, or to be sent again;
 * 1 when nothing but a gap message is in flight. */
uint64_t nlg_nats_link_pending(const struct nlg_nats_link *l);
/* The largest body a message may have (the server's max_payload, less
 * room for headers). */
size_t nlg_nats_link_max_data(const struct nlg_nats_link *l);
/* Fill what the link counts: sent, acknowledged, resent, reconnects, state,
 * messages, bytes, inflight, duplicates, ack_errors, disconnects,
 * last_error; its lost records are added to dropped. */
void nlg_nats_link_stats(const struct nlg_nats_link *l, struct nlg_nats_stats *s);

#endif
