/* A single-producer single-consumer hand-off ring: a worker thread decodes
 * records straight into fixed-size slots, the main loop thread takes them in
 * contiguous runs without a copy. One eventfd wakes the loop, once per batch.
 *
 *   worker thread                                main loop thread
 *   reserve → fill → commit (×n)                 epoll: nlg_ring_fd() readable
 *   nlg_ring_publish()  ──eventfd, only if ──▶   nlg_ring_consume(r, max, fn, data)
 *                          the consumer sleeps      fn(data, slots, n) ≤ 2× per call
 *
 * The ring knows no loop: the owner registers nlg_ring_fd() (EPOLLIN) and calls
 * nlg_ring_consume() from the handler. Exactly one thread produces and one
 * consumes; the counters may be read from either. */
#ifndef NLGATE_RING_H
#define NLGATE_RING_H

#include <stddef.h>
#include <stdint.h>
#include "common.h" /* NLG_CB_OK / STOP / ERROR, fn's verdicts */

struct nlg_ring;

struct nlg_ring_stats {
	uint64_t produced; /* records committed */
	uint64_t consumed; /* records handed to fn and released */
	uint64_t dropped;  /* records refused because the ring was full */
	uint64_t wakeups;  /* eventfd writes */
};

/* nslots: a power of two >= 2; slot_size: the stride of the slot array, e.g.
 * sizeof(struct rec), so fn may read the slots as an array of it. Slot 0 is
 * cache-line aligned. NULL with errno set (EINVAL, ENOMEM, or eventfd's). */
struct nlg_ring *nlg_ring_create(size_t slot_size, size_t nslots);
/* Accepts NULL. Neither side may be using the ring any more. */
void nlg_ring_destroy(struct nlg_ring *r);

/* ---- producer side (one thread) ---- */

/* The next free slot, to be filled in place and then committed; NULL when the
 * ring is full: the record is dropped and counted. A reservation that is not
 * committed is simply reused by the next reserve. */
void *nlg_ring_reserve(struct nlg_ring *r);
/* Free slots now (at least this many until the producer commits): a
 * producer that would rather wait than drop asks before it reserves. */
size_t nlg_ring_space(struct nlg_ring *r);
/* Make the slot of the last successful reserve visible to the consumer. */
void nlg_ring_commit(struct nlg_ring *r);
/* reserve + copy slot_size bytes + commit: 0, or -ENOBUFS (dropped, counted). */
int nlg_ring_push(struct nlg_ring *r, const void *rec);
/* End of a batch: wake the consumer if it sleeps and records were committed
 * since the last publish. Costs no syscall while the consumer is awake.
 * Returns 1 if it woke the consumer, 0 if no wake was needed, or a negative
 * errno from write(2). */
int nlg_ring_publish(struct nlg_ring *r);

/* ---- consumer side (one thread) ---- */

/* The eventfd to watch for EPOLLIN (non-blocking, close-on-exec). It stays
 * readable while records wait and the consumer has not gone to sleep, so a
 * level-triggered loop keeps calling until the ring is drained. */
int nlg_ring_fd(const struct nlg_ring *r);

/* fn gets n >= 1 contiguous slots (slot_size bytes apart), in order, without
 * a copy; it returns NLG_CB_OK to go on, or NLG_CB_STOP / NLG_CB_ERROR to stop:
 * the run it was given counts as consumed either way, the rest stays queued.
 * Takes at most max of the records committed when it starts, so fn is called
 * at most twice (twice when they wrap around the end of the ring). Having
 * drained them, the consumer goes to sleep: the next publish wakes it. Returns
 * the number of records consumed. */
typedef int nlg_ring_fn(void *data, const void *slots, size_t n);
size_t nlg_ring_consume(struct nlg_ring *r, size_t max, nlg_ring_fn *fn, void *data);

/* A snapshot of the counters; safe from either thread. */
void nlg_ring_stats(const struct nlg_ring *r, struct nlg_ring_stats *st);

#endif
