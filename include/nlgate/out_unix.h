/* The local feed: a listening unix socket; every connected client receives
 * the stream of msgpack frames [tag, time, body]. Each client has a bounded
 * queue (core/outq.c); what a slow client misses is counted and announced to
 * it as an `nlgate.gap` frame ({missed = N}) as soon as its queue has room
 * (or with the next frame it gets, if that comes first), and before the
 * feed closes: what a client receives plus what it is told it missed is
 * what was sent while it was connected. (A client whose queue is still full
 * when close's drain time runs out cannot be told: counted `unannounced`,
 * and logged.) Never blocks the loop.
 *
 *   ops->send(item) ─▶ head [tag, time] on the stack ─┬─▶ client 1 outq ─▶ fd
 *                      + body (not copied)           ├─▶ client 2 outq ─▶ fd
 *                                                    └─▶ ... */
#ifndef NLGATE_OUT_UNIX_H
#define NLGATE_OUT_UNIX_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "loop.h"
#include "output.h"

/* The output "unix": gw.unix{path = ..., mode = ..., queue = ..., max_clients = ...}.
 * open makes the socket with its mode (no chmod through the path: see
 * core/out_unix.c); it replaces a stale socket of ours (nobody answers) and
 * refuses anything else at the path (a file, a directory, a symlink to
 * anything, a socket that answers, another user's). send frames an item as
 * [tag, time, body] (-EINVAL for a tag over 255 bytes or an empty body);
 * close(st, timeout_ms) writes for up to timeout_ms first. */
extern const struct nlg_output_ops nlg_unix_output;

/* Its conf (filled from nlg_unix_output.opts). No pointers, so a reload can
 * compare two confs with memcmp; callers zero it before filling, which
 * keeps the padding equal too. */
struct nlg_unix_conf {
	char path[108];	      /* sizeof(sun_path), the NUL included */
	uint32_t mode;	      /* file mode of the socket, e.g. 0660 */
	uint64_t queue;	      /* per-client queue bound, bytes */
	uint32_t max_clients; /* connections past this are closed at once */
};

/* Its counters: a record of nlg_unix_stats_schema ("unix.stats"). */
struct nlg_unix_stats {
	NLG_RECORD_HEAD;
	uint64_t frames;      /* frames offered */
	uint64_t bytes;	      /* bytes queued to clients, gap frames included */
	uint64_t dropped;     /* frames dropped for slow clients (sum over clients) */
	uint64_t gaps;	      /* gap frames queued */
	uint64_t unannounced; /* dropped frames never announced (client left, or full at close) */
	uint64_t clients;     /* clients connected now */
	uint64_t accepted;    /* clients accepted in total */
	uint64_t rejected;    /* connections closed at once: over max_clients, or no memory */
	char path[108];
};
extern struct nlg_schema nlg_unix_stats_schema;

#endif
