/* TCP helpers the network outputs share, in the manner of Redis's anet.c:
 * "host:port" parsing and resolution, non-blocking connect and listen,
 * keepalive and a write timeout on a socket, and the reconnect backoff.
 * Plain functions over fds: the state machines live in the outputs. */
#ifndef NLGATE_NET_H
#define NLGATE_NET_H

#include <stdint.h>
#include <sys/socket.h>
#include "common.h"

struct nlg_netaddr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[300]; /* "host:port" as the user wrote it, for messages */
};

/* "host:port", "[v6]:port" or ":port" (then def_host) into a, resolved once
 * now (getaddrinfo; a name is resolved here, never on a reconnect, so the
 * loop never waits on DNS). port 0 is refused unless allow_zero (a
 * listener asking for any free port). */
int nlg_net_resolve(struct nlg_netaddr *a, const char *text, const char *def_host, int allow_zero,
		    struct nlg_err *err);

/* A non-blocking, close-on-exec TCP socket connecting to a: its fd (the
 * connection completes later: watch EPOLLOUT, then nlg_net_connected), or a
 * negative errno. */
int nlg_net_connect(const struct nlg_netaddr *a);
/* After EPOLLOUT on a connecting fd: 0 connected, or the negative errno the
 * connection failed with (-ECONNREFUSED, -ETIMEDOUT, ...). */
int nlg_net_connected(int fd);

/* A non-blocking listening TCP socket on a (SO_REUSEADDR): its fd, or a
 * negative errno with a message. */
int nlg_net_listen(const struct nlg_netaddr *a, struct nlg_err *err);
/* The port a socket is bound to (after listening on port 0). */
int nlg_net_port(int fd);

/* Keepalive probes after idle_s seconds idle (then every idle_s/3, 3
 * probes), and TCP_USER_TIMEOUT: data unacknowledged by the peer for
 * timeout_ms closes the connection with ETIMEDOUT. Either 0: leave it. */
int nlg_net_tune(int fd, unsigned idle_s, unsigned timeout_ms);

/* Exponential backoff with full jitter (the AWS architecture blog's): each
 * wait is uniform in [min, cur], cur doubling up to max; reset on a
 * connection that worked. */
struct nlg_backoff {
	uint32_t min_ms, max_ms, cur_ms;
	uint64_t seed;
};
void nlg_backoff_init(struct nlg_backoff *b, uint32_t min_ms, uint32_t max_ms);
uint32_t nlg_backoff_next(struct nlg_backoff *b);
void nlg_backoff_reset(struct nlg_backoff *b);

#endif
