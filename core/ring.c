/* The SPSC hand-off ring: fixed-size slots filled in place by one worker
 * thread, handed to the loop thread in contiguous runs, and an eventfd written
 * at most once per batch, only when the consumer has gone to sleep.
 *
 *   slots: nslots × slot_size bytes, one cache-line aligned block
 *
 *               head & mask                     tail & mask
 *                    v                               v
 *   +-------+-------+-------+-------+-------+-------+-------+-------+
 *   | free  | rec   | rec   | rec   | rec   | free  | free  | free  |
 *   +-------+-------+-------+-------+-------+-------+-------+-------+
 *                   '---- the consumer's: [head, tail) ----'
 *
 *   head and tail count records since creation (64 bits: never wrap); a
 *   record's slot is count & (nslots - 1); the ring is full when
 *   tail - head == nslots. A run handed to fn ends at the last slot, so a
 *   consume that wraps calls fn twice.
 *
 *   struct nlg_ring, one cache line per writer so neither side's stores
 *   invalidate the line the other side writes:
 *   line 0  set at create:  slots, slot_size, mask, efd
 *   line 1  producer:       tail (read by the consumer), next, head_seen,
 *                           dropped, last_pub
 *   line 2  consumer:       head (read by the producer), wakes_read
 *   line 3  wake-up:        armed, published, wakes (once per batch at most)
 *
 * Committed records are visible at once, so an awake consumer takes them as
 * they come; the wake-up follows publish only. It is a Dekker handshake on
 * two seq_cst pairs: the consumer stores armed = 1 then loads published; the
 * producer stores published then loads armed. One of them sees the other's
 * store: either the producer finds the consumer asleep and writes the
 * eventfd, or the consumer finds published records it has not taken and
 * stays awake. Whoever takes armed back to 0 (exchange) owns the wake.
 * The handshake is on published, not tail: with tail, a consumer faster than
 * the producer found half a batch on nearly every sleep and woke itself (10M
 * records in 64-record batches: 47,000 of 48,000 eventfd writes were its own).
 * And the eventfd is read only once the consumer is asleep, not before it
 * arms: reading first left it nothing to be called again by when a publish
 * raced the arming (11,000 to 50,000 self-wakes per 10M records; now ~100). */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "nlgate/common.h"
#include "nlgate/ring.h"

#define RING_LINE 64

struct nlg_ring {
	/* line 0: read-only after create */
	alignas(RING_LINE) unsigned char *slots;
	size_t slot_size;
	uint64_t mask;
	int efd;

	/* line 1: producer */
	alignas(RING_LINE) _Atomic uint64_t tail; /* committed: visible to the consumer */
	uint64_t next;				  /* == tail, kept unshared for the producer */
	uint64_t head_seen;			  /* last head loaded: full check without a miss */
	_Atomic uint64_t dropped;		  /* written by the producer only */
	uint64_t last_pub;			  /* == published, kept unshared */

	/* line 2: consumer */
	alignas(RING_LINE) _Atomic uint64_t head; /* released to the producer */
	uint64_t wakes_read;			  /* eventfd counts read so far */

	/* line 3: the wake-up handshake */
	alignas(RING_LINE) _Atomic int armed; /* 1: the consumer sleeps, the next publish wakes */
	_Atomic uint64_t published;	      /* tail at the last publish */
	_Atomic uint64_t wakes;		      /* eventfd writes, counted before each write */
};

struct nlg_ring *nlg_ring_create(size_t slot_size, size_t nslots)
{
	struct nlg_ring *r;
	size_t bytes;

	if (slot_size == 0 || nslots < 2 || (nslots & (nslots - 1)) != 0 ||
	    nslots > (SIZE_MAX - RING_LINE) / slot_size) {
		errno = EINVAL;
		return NULL;
	}
	r = aligned_alloc(RING_LINE, sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->efd = -1;
	/* aligned_alloc wants a multiple of the alignment */
	bytes = (nslots * slot_size + RING_LINE - 1) & ~(size_t)(RING_LINE - 1);
	r->slots = aligned_alloc(RING_LINE, bytes);
	if (!r->slots)
		goto err;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0)
		goto err;
	r->slot_size = slot_size;
	r->mask = nslots - 1;
	atomic_init(&r->tail, 0);
	atomic_init(&r->dropped, 0);
	atomic_init(&r->head, 0);
	atomic_init(&r->published, 0);
	atomic_init(&r->wakes, 0);
	/* born asleep: the first publish wakes the consumer */
	atomic_init(&r->armed, 1);
	return r;
err:
	nlg_ring_destroy(r);
	return NULL;
}

void nlg_ring_destroy(struct nlg_ring *r)
{
	int saved = errno;

	if (!r)
		return;
	if (r->efd >= 0)
		close(r->efd);
	free(r->slots);
	free(r);
	errno = saved;
}

int nlg_ring_fd(const struct nlg_ring *r)
{
	return r->efd;
}

/* Count first, then write: the consumer reads the eventfd only while the
 * count is ahead of what it has read, so a wake in flight is never missed and
 * an idle consumer never pays a read that would fail. */
static int ring_wake(struct nlg_ring *r)
{
	uint64_t one = 1;

	atomic_fetch_add_explicit(&r->wakes, 1, memory_order_release);
	while (write(r->efd, &one, sizeof(one)) < 0) {
		if (errno == EAGAIN) /* counter saturated: already readable */
			return 1;
		if (errno != EINTR)
			return -errno;
	}
	return 1;
}

/* ---- producer ---- */

void *nlg_ring_reserve(struct nlg_ring *r)
{
	uint64_t t = r->next;

	if (t - r->head_seen > r->mask) {
		/* acquire: the consumer has finished reading the slot we refill */
		r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
		if (t - r->head_seen > r->mask) {
			uint64_t d = atomic_load_explicit(&r->dropped, memory_order_relaxed);

			/* one writer: a plain increment, no locked instruction */
			atomic_store_explicit(&r->dropped, d + 1, memory_order_relaxed);
			return NULL;
		}
	}
	return r->slots + (size_t)(t & r->mask) * r->slot_size;
}

size_t nlg_ring_space(struct nlg_ring *r)
{
	r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
	return (size_t)(r->mask + 1 - (r->next - r->head_seen));
}

void nlg_ring_commit(struct nlg_ring *r)
{
	/* release: the slot's bytes are visible before the new tail */
	atomic_store_explicit(&r->tail, ++r->next, memory_order_release);
}

int nlg_ring_push(struct nlg_ring *r, const void *rec)
{
	void *slot = nlg_ring_reserve(r);

	if (!slot)
		return -ENOBUFS;
	memcpy(slot, rec, r->slot_size);
	nlg_ring_commit(r);
	return 0;
}

int nlg_ring_publish(struct nlg_ring *r)
{
	uint64_t t = r->next;

	/* Nothing new: the last publish already woke the consumer or found it
	 * awake, and an awake consumer checks published before it sleeps. */
	if (t == r->last_pub)
		return 0;
	r->last_pub = t;
	/* the producer's half of the handshake */
	atomic_store_explicit(&r->published, t, memory_order_seq_cst);
	if (!atomic_load_explicit(&r->armed, memory_order_seq_cst))
		return 0; /* awake: it will see published before it sleeps */
	if (!atomic_exchange_explicit(&r->armed, 0, memory_order_acq_rel))
		return 0; /* the consumer woke itself meanwhile */
	return ring_wake(r);
}

/* ---- consumer ---- */

/* Read what the eventfd holds, if any wake is unread. */
static void ring_ack(struct nlg_ring *r)
{
	uint64_t v;

	if (atomic_load_explicit(&r->wakes, memory_order_acquire) <= r->wakes_read)
		return;
	if (read(r->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		r->wakes_read += v;
	/* EAGAIN: counted but not yet written; it will make the fd readable
	 * and the next consume reads it. */
}

/* Records are left and the consumer is awake (armed == 0): the producer will
 * not write, so unless a wake is still unread, the consumer wakes itself or
 * nothing would call it again. A stale count (below what was read) errs
 * towards one wake too many, never one too few. */
static void ring_stay_awake(struct nlg_ring *r)
{
	if (atomic_load_explicit(&r->armed, memory_order_acquire))
		return; /* asleep: the publish of what is left will wake it */
	if (atomic_load_explicit(&r->wakes, memory_order_acquire) <= r->wakes_read)
		ring_wake(r);
}

size_t nlg_ring_consume(struct nlg_ring *r, size_t max, nlg_ring_fn *fn, void *data)
{
	uint64_t start = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t head = start;
	/* acquire: the slots up to tail are filled */
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint64_t end = tail - head > max ? head + max : tail;
	int stop = 0;

	while (head != end && !stop) {
		uint64_t idx = head & r->mask;
		uint64_t n = end - head;

		if (n > r->mask + 1 - idx)
			n = r->mask + 1 - idx; /* up to the last slot; the rest wraps */
		stop = fn(data, r->slots + (size_t)idx * r->slot_size, (size_t)n) != NLG_CB_OK;
		head += n;
		/* release: done reading these slots; the producer may refill them */
		atomic_store_explicit(&r->head, head, memory_order_release);
	}
	if (head != tail) {
		ring_stay_awake(r);
		return (size_t)(head - start);
	}

	/* Drained: the consumer's half of the handshake. */
	atomic_store_explicit(&r->armed, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&r->published, memory_order_seq_cst) > head) {
		/* A publish came in meanwhile and may have found the consumer
		 * awake. Winning the flag back keeps it awake: the wake it
		 * was called for is still unread, so the loop calls again
		 * without a syscall. If the exchange finds 0, the producer
		 * took the flag and its wake is on the way. */
		if (atomic_exchange_explicit(&r->armed, 0, memory_order_acq_rel))
			ring_stay_awake(r);
		return (size_t)(head - start);
	}
	/* Asleep. Only now read the eventfd, so it is not readable while
	 * nothing waits; if a publish woke it in between, this read may
	 * have taken that wake too, and the consumer puts it back. Records
	 * committed but not yet published need no wake: their publish
	 * brings it. */
	ring_ack(r);
	if (!atomic_load_explicit(&r->armed, memory_order_acquire))
		ring_stay_awake(r);
	return (size_t)(head - start);
}

void nlg_ring_stats(const struct nlg_ring *r, struct nlg_ring_stats *st)
{
	/* The struct is logically const; C11 atomic loads take non-const. */
	struct nlg_ring *w = (struct nlg_ring *)r;

	st->consumed = atomic_load_explicit(&w->head, memory_order_acquire);
	st->produced = atomic_load_explicit(&w->tail, memory_order_acquire);
	st->dropped = atomic_load_explicit(&w->dropped, memory_order_relaxed);
	st->wakeups = atomic_load_explicit(&w->wakes, memory_order_relaxed);
}
