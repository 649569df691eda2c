/* The output contract. An output receives items — a tag, a time and a record
 * body encoded once as a msgpack map — and frames them its own way: the unix
 * feed as [tag, time, body] arrays, later TCP, Fluentd Forward, NATS. It is a
 * struct of operations plus an option table, like a source (source.h), and
 * the bounded queue with whole-frame drops and gap announcements it needs is
 * core/outq.c.
 *
 *   out:send(tag, r) ─▶ encode body once ─▶ ops->send(st, item) ─▶ frame ─▶ outq ─▶ fd
 *
 * Adding an output: core/out_<name>.c with a `const struct nlg_output_ops`,
 * one line in core/output.c. */
#ifndef NLGATE_OUTPUT_H
#define NLGATE_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "loop.h"
#include "opt.h"
#include "schema.h"

struct nlg_item {
	const char *tag;
	size_t taglen;
	uint64_t time_ns;    /* CLOCK_REALTIME */
	const uint8_t *body; /* one msgpack value (a map for records) */
	size_t len;
};

struct nlg_output_ops {
	const char *name; /* gw.NAME, gw.stats().NAME */
	const char *desc;
	const struct nlg_opt *opts; /* fill a conf_size struct */
	size_t conf_size;
	const struct nlg_schema *stats_schema; /* its counters */

	/* Open with conf (kept by the caller for the output's life). */
	int (*open)(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err);
	/* Give queued data up to timeout_ms to leave, then release everything. */
	void (*close)(void *st, int timeout_ms);
	/* Frame and queue one item; never blocks. Returns how many consumers
	 * took it (0: dropped for all, counted), or -errno if it cannot be
	 * framed at all. */
	int (*send)(void *st, const struct nlg_item *it);
	/* Optional: try to write what is queued now, for up to timeout_ms. */
	void (*flush)(void *st, int timeout_ms);
	void (*stats)(void *st, void *out); /* fill a stats_schema record, zeroed */
};

/* The built-in outputs, then those registered; NULL past the end. */
const struct nlg_output_ops *nlg_output_at(size_t i);
const struct nlg_output_ops *nlg_output_find(const char *name);
int nlg_output_register(const struct nlg_output_ops *ops); /* 0, -EEXIST, -ENOSPC */

#endif
