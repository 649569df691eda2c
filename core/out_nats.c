/* The NATS output (include/nlgate/out_nats.h): items framed [tag, time, body]
 * as on the unix feed, published through libnats to a subject made from a
 * template, with JetStream acknowledgements awaited in a bounded window. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/out_nats.h"

/* ---- options and counters (the same with or without libnats) ---- */

#define CONF(m) offsetof(struct nlg_nats_conf, m), sizeof(((struct nlg_nats_conf *)0)->m)

static const struct nlg_opt nats_opts[] = {
    {.name = "url",
     .type = NLG_OPT_STR,
     CONF(url),
     .def = "nats://127.0.0.1:4222",
     .arg = "URL",
     .desc = "the server, nats://[user:pass@]host:port (several: comma-separated; default "
	     "nats://127.0.0.1:4222)"},
    {.name = "subject",
     .type = NLG_OPT_STR,
     CONF(subject),
     .def = "nlgate.{tag}",
     .arg = "SUBJECT",
     .desc = "the subject; {tag} is replaced by the record's tag (default nlgate.{tag})"},
    {.name = "jetstream",
     .type = NLG_OPT_BOOL,
     CONF(jetstream),
     .def = "true",
     .desc = "publish to JetStream and await acknowledgements; false: core NATS, no acks "
	     "(default true)"},
    {.name = "batch",
     .type = NLG_OPT_UINT,
     CONF(batch),
     .def = "1",
     .min = 1,
     .max = 10000,
     .arg = "N",
     .desc = "records per message, grouped by subject: concatenated [tag, time, record] "
	     "frames (default 1)"},
    {.name = "linger",
     .type = NLG_OPT_DURATION,
     CONF(linger),
     .def = "5ms",
     .max = 60000,
     .unit = "ms",
     .arg = "DURATION",
     .desc = "how long a partial batch waits for more records (default 5ms)"},
    {.name = "creds",
     .type = NLG_OPT_STR,
     CONF(creds),
     .def = "",
     .arg = "FILE",
     .desc = "a NATS credentials file (user JWT and nkey seed), read at every connect"},
    {.name = "name",
     .type = NLG_OPT_STR,
     CONF(name),
     .def = "nlgate",
     .arg = "NAME",
     .desc = "the connection's name, as the server's monitoring shows it (default nlgate)"},
    {.name = "queue",
     .type = NLG_OPT_SIZE,
     CONF(queue),
     .def = "4M",
     .min = 4096,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "bound on nlgate's own queue (records waiting for the window or a connection); "
	     "past it records are dropped, counted and announced by nlgate.gap (default 4M)"},
    {.name = "queue_records",
     .type = NLG_OPT_UINT,
     CONF(queue_records),
     .def = "100000",
     .min = 1,
     .max = 100000000,
     .arg = "N",
     .desc = "bound on nlgate's own queue, in records (default 100000)"},
    {.name = "max_pending",
     .type = NLG_OPT_UINT,
     CONF(max_pending),
     .def = "4096",
     .min = 1,
     .max = 1000000,
     .arg = "N",
     .desc = "JetStream: messages awaiting acknowledgement at once (default 4096)"},
    {.name = "ack_wait",
     .type = NLG_OPT_DURATION,
     CONF(ack_wait),
     .def = "5s",
     .min = 10,
     .max = 3600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "JetStream: a message not acknowledged within this is sent again, same id "
	     "(default 5s)"},
    {.name = "retry_wait",
     .type = NLG_OPT_DURATION,
     CONF(retry_wait),
     .def = "250ms",
     .min = 1,
     .max = 600000,
     .unit = "ms",
     .arg = "DURATION",
     .desc = "JetStream: pause before a refused or timed-out message is sent again "
	     "(default 250ms)"},
    {.name = "reconnect_wait",
     .type = NLG_OPT_DURATION,
     CONF(reconnect_wait),
     .def = "1s",
     .min = 10,
     .max = 600000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "between reconnect attempts; they never stop (default 1s)"},
    {.name = "reconnect_buf",
     .type = NLG_OPT_SIZE,
     CONF(reconnect_buf),
     .def = "8M",
     .min = 0,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "what libnats buffers while a connection is re-established (default 8M)"},
    {.name = "connect_timeout",
     .type = NLG_OPT_DURATION,
     CONF(connect_timeout),
     .def = "1s",
     .min = 10,
     .max = 60000,
     .unit = "s",
     .arg = "DURATION",
     .desc = "one connection attempt; the first runs on the loop, so keep it short "
	     "(default 1s)"},
    {.name = NULL},
};

#define STAT(n, t, d) NLG_FIELD(struct nlg_nats_stats, #n, t, n, 0, d)

static const struct nlg_field nats_stats_fields[] = {
    NLG_LINK_FIELDS(struct nlg_nats_stats, link),
    STAT(messages, NLG_T_U64, "messages published (a batch is one), resends included"),
    STAT(bytes, NLG_T_U64, "message bodies published, bytes, resends included"),
    STAT(backlog, NLG_T_U64, "records in nlgate's queue now, not yet given to libnats"),
    STAT(inflight, NLG_T_U64, "records published and awaiting acknowledgement or a resend"),
    STAT(duplicates, NLG_T_U64,
	 "acknowledgements saying the server had the message id already (a resend)"),
    STAT(ack_errors, NLG_T_U64, "publishes refused or not acknowledged in time (then resent)"),
    STAT(gaps, NLG_T_U64, "nlgate.gap messages queued"),
    STAT(disconnects, NLG_T_U64, "connections lost"),
    STAT(last_error, NLG_T_STR, "the last error libnats or the server reported"),
};

struct nlg_schema nlg_nats_stats_schema = {
    .kind = "nats.stats",
    .desc = "counters of a NATS output",
    .fields = nats_stats_fields,
    .nfields = NLG_ARRAY_SIZE(nats_stats_fields),
    .rec_size = sizeof(struct nlg_nats_stats),
    .present_off = offsetof(struct nlg_nats_stats, present),
};

#define NATS_DESC                                                                                  \
	"NATS and JetStream: [tag, time, record] frames published to a subject per tag, "         \
	"acknowledged, de-duplicated by Nats-Msg-Id"



/* Built without libnats: the same options, so a script is checked the same
 * way, and an open that says what to do. (For now also with libnats: the
 * output itself follows.) */
static int nats_open_missing(struct nlg_loop *loop, const void *conf, void **st,
			     struct nlg_err *err)
{
	(void)loop;
	(void)conf;
	*st = NULL;
	return nlg_err_set(err, ENOTSUP,
			   "built without NATS support: install libnats-dev and rebuild");
}

static void nats_close_missing(void *st, int timeout_ms)
{
	(void)st;
	(void)timeout_ms;
}

static int nats_send_missing(void *st, const struct nlg_item *it)
{
	(void)st;
	(void)it;
	return -ENOTSUP;
}

static void nats_stats_missing(void *st, void *out)
{
	(void)st;
	(void)out;
}

const struct nlg_output_ops nlg_nats_output = {
    .name = "nats",
    .desc = NATS_DESC " (not built: install libnats-dev and rebuild)",
    .opts = nats_opts,
    .conf_size = sizeof(struct nlg_nats_conf),
    .stats_schema = &nlg_nats_stats_schema,
    .open = nats_open_missing,
    .close = nats_close_missing,
    .send = nats_send_missing,
    .stats = nats_stats_missing,
};

