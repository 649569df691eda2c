/* The TCP output: gw.tcp{connect = "host:port"} sends the feed's stream of
 * msgpack [tag, time, record] frames to a collector, reconnecting with
 * backoff and jitter; gw.tcp{listen = "127.0.0.1:port"} serves it to every
 * client like the unix feed. Either way a bounded queue (bytes, and records
 * in client mode) drops whole records when full and announces them with an
 * nlgate.gap frame; keepalive and a write timeout (TCP_USER_TIMEOUT) notice
 * a peer that is gone. Never blocks the loop. */
#ifndef NLGATE_OUT_TCP_H
#define NLGATE_OUT_TCP_H

#include <stdint.h>
#include "output.h"

extern const struct nlg_output_ops nlg_tcp_output;

/* Its conf: no pointers, so a reload compares two with memcmp. */
struct nlg_tcp_conf {
	char connect[256];
	char listen[256];
	uint64_t queue; /* bytes */
	uint32_t queue_records;
	uint32_t max_clients;
	uint64_t keepalive_ms, write_timeout_ms, connect_timeout_ms;
	uint64_t retry_min_ms, retry_max_ms;
};

struct nlg_tcp_stats {
	NLG_RECORD_HEAD;
	struct nlg_link_stats link;
	uint64_t bytes, gaps;
	uint64_t clients, accepted, rejected;
	char peer[256];
};
extern struct nlg_schema nlg_tcp_stats_schema;

#endif
