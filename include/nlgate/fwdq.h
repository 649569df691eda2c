/* The Forward output's message queue: records batched into PackedForward
 * messages (one tag each), the messages kept in order until written — and,
 * with acks, until acknowledged — under a bound in bytes and records, whole
 * records dropped past it and announced by an `nlgate.gap` record. Like
 * outq.h it knows no loop and no socket: the output asks for the iovecs to
 * write and says what the socket took, what was acknowledged, and when a
 * connection was lost.
 *
 *   push ─▶ open batch ──tag change, size, chunk, or nlg_fwdq_close──▶ message
 *
 *   messages: [written, awaiting ack]...[being written][unwritten]...
 *              ▲ nlg_fwdq_ack frees   ▲ wr: nlg_fwdq_iov / nlg_fwdq_consume
 *   nlg_fwdq_rewind: wr back to the oldest, so all of it is written again
 *
 * Counts: queued (records taken), sent (records in messages written whole
 * the first time), resent (written whole again), acked, dropped (no room);
 * gap records are counted in gaps only. */
#ifndef NLGATE_FWDQ_H
#define NLGATE_FWDQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct nlg_fwdq_conf {
	const char *tag_prefix; /* copied; "" or NULL: tags as given */
	uint32_t size;		/* records per message */
	uint64_t chunk;		/* bytes of entries per message */
	uint64_t max_bytes;	/* the bound on bytes held; 0 is refused */
	uint64_t max_records;	/* the bound on records held; 0: none */
	int ack;		/* keep written messages until acknowledged */
};

struct nlg_fwdq_stats {
	uint64_t queued, sent, resent, acked, dropped;
	uint64_t chunks, chunks_acked, gaps;
};

struct nlg_fwdq;

/* NULL when out of memory, max_bytes or size is 0, or the prefix is over 127
 * bytes. */
struct nlg_fwdq *nlg_fwdq_create(const struct nlg_fwdq_conf *conf);
void nlg_fwdq_destroy(struct nlg_fwdq *q); /* accepts NULL */

/* Take one record (tag of at most 255 bytes, body one msgpack value),
 * preceded by the gap record if records were dropped since the last one:
 * both fit, or the record is dropped too (counted). Returns bits:
 * NLG_FWDQ_TAKEN if the record was taken, NLG_FWDQ_CLOSED if a message
 * closed (there is something new to write); or -EINVAL. */
enum { NLG_FWDQ_TAKEN = 1, NLG_FWDQ_CLOSED = 2 };
int nlg_fwdq_push(struct nlg_fwdq *q, const char *tag, size_t taglen, uint64_t time_ns,
		  const uint8_t *body, size_t len);
/* Queue the gap record now if records were missed and it fits (after acks
 * or writes freed room, and before letting go): 0 if not, else bits as
 * push's (the gap's tag closes a batch of another tag). */
int nlg_fwdq_announce(struct nlg_fwdq *q);
/* Close the open batch into a message: 1 if there was one. */
int nlg_fwdq_close(struct nlg_fwdq *q);
/* When the open batch got its first entry (nlg_now_ms), 0 if none. */
uint64_t nlg_fwdq_opened(const struct nlg_fwdq *q);

/* The unwritten bytes from wr on, up to n pieces: how many were filled. */
int nlg_fwdq_iov(const struct nlg_fwdq *q, struct iovec *iov, int n);
/* The socket took w bytes of them. A message written whole is freed
 * without acks, and otherwise waits for its ack from now (nlg_now_ms). */
void nlg_fwdq_consume(struct nlg_fwdq *q, size_t w);
/* The server acknowledged the message with this id: 1 freed, 0 unknown (a
 * late ack of a message freed already). */
int nlg_fwdq_ack(struct nlg_fwdq *q, const char *id, size_t len);
/* The connection was lost: write everything still held again, oldest first
 * (a message cut in the middle starts over). */
void nlg_fwdq_rewind(struct nlg_fwdq *q);

/* When the oldest message awaiting its ack was written (0: none). */
uint64_t nlg_fwdq_oldest(const struct nlg_fwdq *q);
int nlg_fwdq_unwritten(const struct nlg_fwdq *q);    /* 1 if wr is not at the end */
uint64_t nlg_fwdq_unacked(const struct nlg_fwdq *q); /* messages awaiting an ack */
uint64_t nlg_fwdq_bytes(const struct nlg_fwdq *q);   /* held, open batch included */
uint64_t nlg_fwdq_entries(const struct nlg_fwdq *q); /* held, gap records included */
uint64_t nlg_fwdq_missed(const struct nlg_fwdq *q);  /* dropped, not yet announced */
/* Records (not gaps) held: written and awaiting an ack, and the rest. */
void nlg_fwdq_held(const struct nlg_fwdq *q, uint64_t *unacked, uint64_t *unsent);
const struct nlg_fwdq_stats *nlg_fwdq_stats(const struct nlg_fwdq *q);

#endif
