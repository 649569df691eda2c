/* The local feed: a listening unix socket; every connected client receives
 * the stream of msgpack frames. Each client has a bounded queue; what a slow
 * client misses is counted and announced to it as an `nlgate.gap` frame
 * ({missed = N}) before the next frame it does get. Never blocks the loop. */
#ifndef NLGATE_OUT_UNIX_H
#define NLGATE_OUT_UNIX_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "loop.h"

struct nlg_out_unix_opts {
	const char *path;
	unsigned int mode;  /* file mode of the socket, e.g. 0660 */
	size_t queue_bytes; /* per-client queue bound */
	int max_clients;
};

struct nlg_out_unix_stats {
	uint64_t frames;   /* frames offered */
	uint64_t bytes;	   /* bytes queued to clients */
	uint64_t dropped;  /* frames dropped for slow clients (sum over clients) */
	uint64_t gaps;	   /* gap frames announced */
	uint64_t clients;  /* clients connected now */
	uint64_t accepted; /* clients accepted in total */
	uint64_t rejected; /* connections closed at once: over max_clients, or no memory */
};

struct nlg_out_unix;

struct nlg_out_unix *nlg_out_unix_open(struct nlg_loop *loop, const struct nlg_out_unix_opts *o,
				       struct nlg_err *err);
void nlg_out_unix_close(struct nlg_out_unix *u); /* accepts NULL; unlinks the path */
/* Queue one complete msgpack frame to every client; returns how many took
 * it (the others count it as missed). */
int nlg_out_unix_send(struct nlg_out_unix *u, const void *frame, size_t len);
const struct nlg_out_unix_stats *nlg_out_unix_stats(const struct nlg_out_unix *u);
/* Try to write queued data now (used at shutdown to drain). */
void nlg_out_unix_flush(struct nlg_out_unix *u, int timeout_ms);

#endif
