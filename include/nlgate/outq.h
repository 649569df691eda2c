/* One consumer's bounded output queue (a feed client, later a TCP, Forward or
 * NATS connection): whole frames in, whole frames dropped and counted, the
 * count announced by a gap frame, and what the fd takes written out.
 *
 *   push(frame) ──fits?──yes──▶ [gap frame if frames were missed] + frame ─▶ ring ─▶ write(fd)
 *                    └──no───▶ missed++, dropped++                          ▲
 *   announce() ──missed and the gap frame fits?──yes──▶ gap frame alone ────┘
 *
 * A consumer hears of every frame it missed: with the next frame that fits,
 * or sooner through announce, which the caller runs once a write has freed
 * room (the frames may have stopped coming) and before it lets go.
 *
 * It knows no event loop and no socket family: the caller owns the fd, asks
 * for a write when it wants one, and watches EPOLLOUT while data remains. */
#ifndef NLGATE_OUTQ_H
#define NLGATE_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Room a gap framer gets; a gap frame is a few dozen bytes (the feed's is
 * 30-40: array, "nlgate.gap", a timestamp, {missed = N}). */
#define NLG_OUTQ_GAP_MAX 256

/* Frame the announcement "missed frames were dropped here" into buf[cap].
 * Returns its length, or a negative errno (the frame it would have preceded
 * is then dropped too, and the count keeps growing). */
typedef int nlg_outq_gap_fn(void *data, uint64_t missed, uint8_t *buf, size_t cap);

struct nlg_outq_stats {
	uint64_t frames;  /* frames queued */
	uint64_t bytes;	  /* bytes queued, gap frames included */
	uint64_t dropped; /* frames dropped: no room, or larger than the bound */
	uint64_t gaps;	  /* gap frames queued */
	uint64_t written; /* bytes the fd took */
	uint64_t sent;	  /* entries (a frame, with its gap frame if any) the fd took whole;
			     counted with max_frames only */
	/* Frames dropped that the consumer was never told of: the queue was
	 * destroyed with them still to announce (the consumer left, or was
	 * closed while its queue was still full). */
	uint64_t unannounced;
};

struct nlg_outq_conf {
	size_t max_bytes;     /* bound on queued bytes; 0 is refused */
	size_t max_frames;    /* bound on queued frames (a gap rides with its frame, or
				 announced alone is one); 0: none */
	nlg_outq_gap_fn *gap; /* NULL: nlg_outq_gap_mp, the feed's frame */
	void *gap_data;
	/* Optional: every count is added here too, so an output's totals
	 * outlive the consumers that come and go. */
	struct nlg_outq_stats *total;
};

struct nlg_outq;

/* NULL when out of memory or max_bytes is 0. Nothing is allocated for data
 * until the first push. */
struct nlg_outq *nlg_outq_create(const struct nlg_outq_conf *conf);
/* Accepts NULL; drops what is queued, and counts what is still missed as
 * unannounced (in the total too). */
void nlg_outq_destroy(struct nlg_outq *q);

/* Queue one frame given as n pieces (a framer's header, then the body, with
 * no copy in between): 1 queued, 0 dropped whole and counted missed,
 * -EINVAL for an empty frame, -ENOMEM (nothing queued, nothing counted: the
 * caller should give up on the consumer rather than lose frames silently).
 * If frames were missed since the last announcement, a gap frame goes in
 * with this one, under the same bound, so it is never dropped or split. */
int nlg_outq_push(struct nlg_outq *q, const struct iovec *iov, int n);

/* Queue the gap frame alone, now, if frames were missed since the last
 * announcement and it fits under the bounds: 1 queued, 0 nothing to
 * announce or no room yet (the count waits, and grows), -ENOMEM (nothing
 * queued, the count waits). Run it after a write that freed room, after a
 * drop that left the queue empty (no write is coming then), and before
 * destroying a queue whose consumer should hear of everything. */
int nlg_outq_announce(struct nlg_outq *q);

/* Write what fd takes now (sendmsg, MSG_NOSIGNAL | MSG_DONTWAIT, two pieces
 * across the wrap) until it is all gone or fd would block. Returns 1 if data
 * remains (watch for EPOLLOUT), 0 if the queue is empty, or a negative errno
 * when the peer is gone (-EPIPE, -ECONNRESET, ...). */
int nlg_outq_write(struct nlg_outq *q, int fd);

/* A connection broke: if the oldest frame was partly written, drop the
 * rest of it so the next connection starts on a frame boundary. Returns 1
 * if it did (the frame counts as dropped, not missed: the peer got its
 * front), 0 if not. Needs max_frames (it knows where frames end); -EINVAL
 * without. */
int nlg_outq_cut(struct nlg_outq *q);

size_t nlg_outq_len(const struct nlg_outq *q);	    /* bytes queued */
size_t nlg_outq_frames(const struct nlg_outq *q);   /* entries queued (max_frames only) */
size_t nlg_outq_cap(const struct nlg_outq *q);	    /* bytes allocated for the ring */
uint64_t nlg_outq_missed(const struct nlg_outq *q); /* dropped since the last gap frame */
const struct nlg_outq_stats *nlg_outq_stats(const struct nlg_outq *q);

/* ---- the feed's framing: msgpack [tag, time, body] -------------------- */

/* Longest head nlg_outq_mp_head writes for a tag of up to 255 bytes: array
 * (1), str8 header (2) + tag, timestamp96 ext (15). */
#define NLG_OUTQ_HEAD_MAX (1 + 2 + 255 + 15)

/* The array(3) header, the tag and the time as the msgpack timestamp ext
 * (-1) into buf[cap]; one msgpack value (the body) completes the frame.
 * Returns the length, or -ENOSPC if it does not fit. */
int nlg_outq_mp_head(uint8_t *buf, size_t cap, const char *tag, size_t taglen, uint64_t time_ns);

/* The default gap framer: ["nlgate.gap", now, {missed = N}]. data unused. */
int nlg_outq_gap_mp(void *data, uint64_t missed, uint8_t *buf, size_t cap);

#endif
