/* The source contract. A source turns one of the kernel's views into records
 * of one kind. It is a struct of operations plus an option table; the
 * registry (core/source.c) lists them, and one generic Lua binding and one
 * generic pair of commands (`nlgate dump KIND`, `nlgate watch KIND`) serve
 * every source in it.
 *
 *   ops->open ─▶ implementation ──nlg_source_emit()──▶ struct nlg_source ──sink──▶ consumer
 *                 (core/src_x.c)   nlg_source_flush()   (generic: loop hooks,       (Lua binding,
 *                      ▲                                  close deferral, hand-over)   printer)
 *                      └── loop events, through nlg_source_watch/timer
 *
 * Adding a source: core/src_<name>.c with a `const struct nlg_source_ops`,
 * core/schema_<kind>.c with its record schema, one line in core/source.c. */
#ifndef NLGATE_SOURCE_H
#define NLGATE_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "loop.h"
#include "opt.h"
#include "schema.h"

/* Where an open source's records go. Records are valid during the call. */
struct nlg_sink {
	/* One record: NLG_CB_OK, or STOP/ERROR to end the current read step. */
	int (*record)(void *data, const void *rec);
	/* Optional: n records back to back (a worker ring's run), handed
	 * over without copies; NULL means record() for each. */
	int (*records)(void *data, const void *recs, size_t n);
	/* Optional: a batch ends here (one poll, one read step). */
	void (*flush)(void *data);
	/* Optional: the records of this batch for which same(rec, arg) holds
	 * will be delivered again (an interrupted dump is re-sent): a consumer
	 * that keeps them drops them now. */
	void (*retract)(void *data, int (*same)(const void *rec, const void *arg), const void *arg);
	/* Optional: the source has stopped for good (msg says why); nothing
	 * more will come. Without it the message is logged. */
	void (*fail)(void *data, const char *msg);
	/* Optional: the source has given all it had (a file read to its end);
	 * nothing more will come. */
	void (*end)(void *data);
	void *data;
};

/* A method a source offers beyond the common ones (conntrack's resync):
 * src:NAME() in Lua. Returns >= 0 (pushed as a boolean: 0 false, else
 * true) or a negative errno with err filled. */
struct nlg_source_method {
	const char *name;
	int (*fn)(void *st, struct nlg_err *err);
	const char *desc;
};

struct nlg_source;

struct nlg_source_ops {
	const char *name;		 /* gw.NAME, `nlgate dump NAME`, gw.stats().NAME */
	const char *desc;		 /* one line for `nlgate --help` */
	const struct nlg_schema *schema; /* the records it emits */
	/* Optional: a source whose options choose the kind it emits (packets:
	 * pkt, or flow with flows on) says which for conf; the kind must be a
	 * registered schema. */
	const struct nlg_schema *(*schema_for)(const void *conf);
	const struct nlg_schema *stats_schema; /* its counters (all group 0) */
	const struct nlg_opt *opts;	       /* its options; fill a conf_size struct */
	size_t conf_size;
	/* Capabilities (bits of 1 << CAP_x) it needs while it runs, and
	 * optionally those a configuration adds (a netns: CAP_SYS_ADMIN). */
	uint64_t caps;
	uint64_t (*caps_for)(const void *conf);

	/* Open with the options in conf (kept by the generic layer for the
	 * source's life); set *st. Register fds and timers with
	 * nlg_source_watch/nlg_source_timer only. 0 or -errno with err. */
	int (*open)(struct nlg_source *src, const void *conf, void **st, struct nlg_err *err);
	/* Release everything; fds and timers are already unhooked. */
	void (*close)(void *st);
	/* Optional: a whole poll now, blocking (bounded), records through the
	 * sink; returns the records delivered or -errno with err. */
	int (*poll)(void *st, struct nlg_err *err);
	/* Optional: deliver what the kernel already queued, without waiting
	 * (`watch` on exit). */
	void (*drain)(void *st);
	/* Optional: 1 while the source is not yet live (an initial dump). */
	int (*busy)(void *st);
	/* Optional: one-shot for `nlgate dump`: open, emit everything through
	 * src's sink, close. Returns records or -errno with err. */
	int (*dump)(struct nlg_source *src, const void *conf, struct nlg_err *err);
	/* Fill out (a stats_schema record, zeroed by the caller). */
	void (*stats)(void *st, void *out);
	/* Optional: one line for the user when `watch` ends (a capture's
	 * totals), written into buf. */
	void (*summary)(void *st, char *buf, size_t len);
	/* Optional: notes for the user, one per line, "" for none. */
	const char *(*notes)(void *st);
	const struct nlg_source_method *methods; /* optional, ends with name NULL */
};

/* ---- the registry ---------------------------------------------------- */

/* The built-in sources, then those registered; NULL past the end. */
const struct nlg_source_ops *nlg_source_at(size_t i);
const struct nlg_source_ops *nlg_source_find(const char *name);
/* Add a source (tests, plugins) before any state or command uses the
 * registry; its schemas are registered too. 0, -EEXIST, -ENOSPC. */
int nlg_source_register(const struct nlg_source_ops *ops);

/* ---- for consumers: the binding, the commands ------------------------ */

/* Open a source with conf (copied). NULL and err on failure. */
struct nlg_source *nlg_source_open(const struct nlg_source_ops *ops, struct nlg_loop *loop,
				   const void *conf, const struct nlg_sink *sink,
				   struct nlg_err *err);
/* A fake of the source for a dry run (`nlgate check`, the test harness):
 * the same ops, conf (copied) and schema, but ops->open is not called and
 * nothing is opened. Its records come from nlg_source_inject; poll ends a
 * batch with them (returns how many), stats are zeros, extra methods do
 * nothing and return 0; emit, flush and close are the generic ones. */
struct nlg_source *nlg_source_open_fake(const struct nlg_source_ops *ops, struct nlg_loop *loop,
					const void *conf, const struct nlg_sink *sink,
					struct nlg_err *err);
int nlg_source_is_fake(const struct nlg_source *src);
/* Deliver a record as if the source read it (a handler may close the
 * source meanwhile: the release waits); end the batch. */
int nlg_source_inject(struct nlg_source *src, const void *rec);
void nlg_source_inject_flush(struct nlg_source *src);
/* Close: unhooks at once; if called from inside one of this source's own
 * deliveries, the rest of the release waits until that delivery returns.
 * The caller must not use src afterwards. Accepts NULL. */
void nlg_source_close(struct nlg_source *src);
/* Send the records elsewhere from now on (a reloaded script takes over). */
void nlg_source_set_sink(struct nlg_source *src, const struct nlg_sink *sink);
const struct nlg_source_ops *nlg_source_ops(const struct nlg_source *src);
/* The kind of record ops emits with conf (ops->schema unless schema_for). */
const struct nlg_schema *nlg_source_schema(const struct nlg_source_ops *ops, const void *conf);
/* ops->summary's line, or "" without one. */
void nlg_source_summary(struct nlg_source *src, char *buf, size_t len);
const void *nlg_source_conf(const struct nlg_source *src);
/* -ENOTSUP where the source has no poll. */
int nlg_source_poll(struct nlg_source *src, struct nlg_err *err);
void nlg_source_drain(struct nlg_source *src);
int nlg_source_busy(struct nlg_source *src);
int nlg_source_call(struct nlg_source *src, const struct nlg_source_method *m, struct nlg_err *err);
void nlg_source_stats(struct nlg_source *src, void *out);
const char *nlg_source_notes(struct nlg_source *src);
/* A delivery of this source is on the C stack (a handler runs inside it). */
int nlg_source_delivering(const struct nlg_source *src);
/* One-shot dump (ops->dump) to sink, without a loop. -ENOTSUP if none. */
int nlg_source_dump(const struct nlg_source_ops *ops, const void *conf, const struct nlg_sink *sink,
		    struct nlg_err *err);

/* ---- for implementations ---------------------------------------------- */

/* Hand records downstream. Return the sink's verdict (NLG_CB_*); once the
 * source is closing they return NLG_CB_STOP without delivering. */
int nlg_source_emit(struct nlg_source *src, const void *rec);
int nlg_source_emit_n(struct nlg_source *src, const void *recs, size_t n);
void nlg_source_flush(struct nlg_source *src);
void nlg_source_retract(struct nlg_source *src, int (*same)(const void *rec, const void *arg),
			const void *arg);
int nlg_source_closing(const struct nlg_source *src);
/* Everything has been emitted (a file's end): tell the consumer. */
void nlg_source_end(struct nlg_source *src);
/* The source cannot go on (its sockets keep failing): tell the consumer. */
void nlg_source_fail(struct nlg_source *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loop hooks that the generic layer owns: unhooked on close, and a close
 * from inside fn's deliveries is deferred until fn returns. */
typedef void nlg_source_io_fn(void *st, int fd);
typedef int64_t nlg_source_timer_fn(void *st); /* next delay in ms, or < 0 to stop */
int nlg_source_watch(struct nlg_source *src, int fd, nlg_source_io_fn *fn);
void nlg_source_unwatch(struct nlg_source *src, int fd);
int nlg_source_pause(struct nlg_source *src, int fd, uint64_t ms);
int64_t nlg_source_timer(struct nlg_source *src, uint64_t ms, nlg_source_timer_fn *fn);
void nlg_source_timer_del(struct nlg_source *src, int64_t id);
struct nlg_loop *nlg_source_loop(const struct nlg_source *src);
/* Log a line for the user, prefixed with the source's name. */
void nlg_source_log(const struct nlg_source *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
