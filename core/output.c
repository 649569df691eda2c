/* The output registry: the built-in outputs, one line each, and any an
 * embedder or a test registers. The Lua binding offers gw.NAME for each. */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nlgate/output.h"

extern const struct nlg_output_ops nlg_unix_output;
extern const struct nlg_output_ops nlg_nats_output;
extern const struct nlg_output_ops nlg_tcp_output;
extern const struct nlg_output_ops nlg_forward_output;

const char *const nlg_link_state_names[] = {
    "connecting", "connected", "backing off", "handshake failed", "listening", "closed", NULL,
};

static const struct nlg_output_ops *const builtin[] = {
    &nlg_unix_output,
    &nlg_tcp_output,
    &nlg_nats_output,
    &nlg_forward_output,
};

#define NLG_OUTPUT_EXTRA 16
static const struct nlg_output_ops *extra[NLG_OUTPUT_EXTRA];
static size_t nextra;

static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_init(void)
{
	for (size_t i = 0; i < NLG_ARRAY_SIZE(builtin); i++)
		if (builtin[i]->stats_schema)
			nlg_schema_register((struct nlg_schema *)builtin[i]->stats_schema);
}

const struct nlg_output_ops *nlg_output_at(size_t i)
{
	pthread_once(&builtin_once, builtin_init);
	if (i < NLG_ARRAY_SIZE(builtin))
		return builtin[i];
	i -= NLG_ARRAY_SIZE(builtin);
	return i < nextra ? extra[i] : NULL;
}

const struct nlg_output_ops *nlg_output_find(const char *name)
{
	const struct nlg_output_ops *ops;

	for (size_t i = 0; (ops = nlg_output_at(i)); i++)
		if (!strcmp(ops->name, name))
			return ops;
	return NULL;
}

int nlg_output_register(const struct nlg_output_ops *ops)
{
	int rc;

	if (nlg_output_find(ops->name))
		return -EEXIST;
	if (nextra == NLG_OUTPUT_EXTRA)
		return -ENOSPC;
	if (ops->stats_schema &&
	    (rc = nlg_schema_register((struct nlg_schema *)ops->stats_schema)) < 0)
		return rc;
	extra[nextra++] = ops;
	return 0;
}

static uint64_t pending_sum(const struct nlg_output_ops *const *ops, void *const *st, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		if (ops[i]->pending && st[i])
			sum += ops[i]->pending(st[i]);
	return sum;
}

uint64_t nlg_output_drain(struct nlg_loop *loop, const struct nlg_output_ops *const *ops,
			  void *const *st, size_t n, uint64_t ms, char *line, size_t len)
{
	uint64_t start = nlg_now_ms(), left;
	size_t at;

	if (len)
		line[0] = 0;
	/* Stopped is how the loop ended; a stop from here on cuts the drain. */
	nlg_loop_resume(loop);
	while ((left = pending_sum(ops, st, n))) {
		uint64_t now = nlg_now_ms();
		if (now - start >= ms || nlg_loop_stopped(loop))
			break;
		for (size_t i = 0; i < n; i++)
			if (ops[i]->flush && st[i])
				ops[i]->flush(st[i], 0);
		nlg_loop_run_once(loop, (int)(ms - (now - start) < 50 ? ms - (now - start) : 50));
	}
	if (!left || !len)
		return left;
	at = (size_t)snprintf(line, len, "%" PRIu64 " records not delivered after %" PRIu64 " ms (",
			      left, nlg_now_ms() - start);
	for (size_t i = 0, first = 1; i < n && at < len; i++) {
		uint64_t p = ops[i]->pending && st[i] ? ops[i]->pending(st[i]) : 0;
		if (!p)
			continue;
		at += (size_t)snprintf(line + at, len - at, "%s%s %" PRIu64, first ? "" : ", ",
				       ops[i]->name, p);
		first = 0;
	}
	if (at < len)
		snprintf(line + at, len - at, ")");
	return left;
}
