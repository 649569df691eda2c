/* A feed: a listening socket whose every client receives every frame through
 * its own bounded queue (core/outq.c). A client that falls behind loses
 * whole frames, counted, and is told by an `nlgate.gap` frame. Shared by the
 * unix feed (core/out_unix.c) and the TCP output's listen mode
 * (core/out_tcp.c); the socket family is the caller's business.
 *
 *   push(frame) ─┬─▶ client 1 outq ─▶ fd
 *                ├─▶ client 2 outq ─▶ fd
 *                └─▶ ...                   accept() adds clients, EOF removes them */
#ifndef NLGATE_FEED_H
#define NLGATE_FEED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "loop.h"
#include "outq.h"

struct nlg_feed_conf {
	size_t queue;	     /* per-client bound, bytes */
	int max_clients;     /* connections past this are closed at once */
	unsigned keepalive;  /* TCP clients: keepalive idle seconds (0: off) */
	unsigned timeout_ms; /* TCP clients: TCP_USER_TIMEOUT (0: off) */
	const char *name;    /* for log lines: the path or address */
};

struct nlg_feed_counts {
	struct nlg_outq_stats q; /* every client's queue, summed (also those gone) */
	uint64_t frames;	 /* frames offered */
	uint64_t clients, accepted, rejected;
};

struct nlg_feed;

/* Serve the listening socket lfd (non-blocking; the feed owns it from here,
 * also on failure). NULL when out of memory or the loop refuses it. */
struct nlg_feed *nlg_feed_new(struct nlg_loop *loop, int lfd, const struct nlg_feed_conf *conf);
/* Write for up to timeout_ms, log what could not go (one line), close every
 * client and the listener. Accepts NULL. */
void nlg_feed_free(struct nlg_feed *f, int timeout_ms);

/* Offer one frame, given in pieces, to every client: how many took it. */
int nlg_feed_push(struct nlg_feed *f, const struct iovec *iov, int n);
/* Write until every queue is empty or timeout_ms passes (<= 0: one pass). */
void nlg_feed_flush(struct nlg_feed *f, int timeout_ms);
/* Frames queued over all clients (the exit drain waits for them). */
uint64_t nlg_feed_pending(const struct nlg_feed *f);
void nlg_feed_counts(const struct nlg_feed *f, struct nlg_feed_counts *c);

#endif
