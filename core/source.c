/* The source registry and the generic half of every open source: its copy of
 * the options, the loop hooks it registered (unhooked on close), the sink its
 * records go to, and the close that waits until the source's own delivery
 * has returned when a handler closes the source from inside it. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/source.h"

extern const struct nlg_source_ops nlg_sockets_source;
#ifdef NLGATE_HAVE_CT
extern const struct nlg_source_ops nlg_conntrack_source;
#endif
extern const struct nlg_source_ops nlg_packets_source;

/* The registry: one line per built-in source. */
static const struct nlg_source_ops *const builtin[] = {
    &nlg_sockets_source,
#ifdef NLGATE_HAVE_CT
    &nlg_conntrack_source,
#endif
    &nlg_packets_source,
};

#define NLG_SOURCE_EXTRA 16
static const struct nlg_source_ops *extra[NLG_SOURCE_EXTRA];
static size_t nextra;

static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* Each source's kinds join the schema registry (keys pre-encoded) once. */
static void builtin_init(void)
{
	for (size_t i = 0; i < NLG_ARRAY_SIZE(builtin); i++) {
		nlg_schema_register((struct nlg_schema *)builtin[i]->schema);
		if (builtin[i]->stats_schema)
			nlg_schema_register((struct nlg_schema *)builtin[i]->stats_schema);
	}
}

const struct nlg_source_ops *nlg_source_at(size_t i)
{
	pthread_once(&builtin_once, builtin_init);
	if (i < NLG_ARRAY_SIZE(builtin))
		return builtin[i];
	i -= NLG_ARRAY_SIZE(builtin);
	return i < nextra ? extra[i] : NULL;
}

const struct nlg_source_ops *nlg_source_find(const char *name)
{
	const struct nlg_source_ops *ops;

	for (size_t i = 0; (ops = nlg_source_at(i)); i++)
		if (!strcmp(ops->name, name))
			return ops;
	return NULL;
}

int nlg_source_register(const struct nlg_source_ops *ops)
{
	int rc;

	if (nlg_source_find(ops->name))
		return -EEXIST;
	if (nextra == NLG_SOURCE_EXTRA)
		return -ENOSPC;
	if ((rc = nlg_schema_register((struct nlg_schema *)ops->schema)) < 0 ||
	    (ops->stats_schema &&
	     (rc = nlg_schema_register((struct nlg_schema *)ops->stats_schema)) < 0))
		return rc;
	extra[nextra++] = ops;
	return 0;
}

/* ---- an open source --------------------------------------------------- */

struct hook {
	struct nlg_source *src;
	int fd;	    /* -1 for a timer */
	int64_t id; /* the loop's timer id */
	nlg_source_io_fn *io;
	nlg_source_timer_fn *timer;
};

#define NLG_SOURCE_HOOKS 16

struct nlg_source {
	const struct nlg_source_ops *ops;
	struct nlg_loop *loop;
	void *conf;
	void *st;
	struct nlg_sink sink;
	size_t rec_size;   /* of the kind it emits with conf */
	int depth;	   /* deliveries of ours on the C stack */
	int closing;	   /* closed while depth > 0: release when it drops to 0 */
	int fake;	   /* opened nothing: records come from nlg_source_inject */
	uint64_t injected; /* a fake's records since its last flush */
	struct hook *hooks[NLG_SOURCE_HOOKS];
};

static void release(struct nlg_source *src)
{
	if (src->st && src->ops->close)
		src->ops->close(src->st);
	for (int i = 0; i < NLG_SOURCE_HOOKS; i++)
		free(src->hooks[i]);
	free(src->conf);
	free(src);
}

static void enter(struct nlg_source *src)
{
	src->depth++;
}

/* Returns 1 if src is gone. */
static int leave(struct nlg_source *src)
{
	if (--src->depth == 0 && src->closing) {
		release(src);
		return 1;
	}
	return 0;
}

static void unhook_all(struct nlg_source *src)
{
	for (int i = 0; i < NLG_SOURCE_HOOKS; i++) {
		struct hook *h = src->hooks[i];
		if (!h)
			continue;
		if (src->loop) {
			if (h->fd >= 0)
				nlg_loop_del_fd(src->loop, h->fd);
			else if (h->id > 0)
				nlg_loop_del_timer(src->loop, h->id);
		}
		h->id = 0;
		h->fd = -1;
		/* Freed with src: a trampoline of ours may still be running. */
	}
}

/* The generic half, with a copy of the options; nothing opened yet. */
static struct nlg_source *source_new(const struct nlg_source_ops *ops, struct nlg_loop *loop,
				     const void *conf, const struct nlg_sink *sink,
				     struct nlg_err *err)
{
	struct nlg_source *src = calloc(1, sizeof(*src));

	if (!src || !(src->conf = calloc(1, ops->conf_size ? ops->conf_size : 1))) {
		free(src);
		nlg_err_set(err, ENOMEM, "%s: out of memory", ops->name);
		return NULL;
	}
	src->ops = ops;
	src->loop = loop;
	if (ops->conf_size)
		memcpy(src->conf, conf, ops->conf_size);
	src->rec_size = nlg_source_schema(ops, src->conf)->rec_size;
	if (sink)
		src->sink = *sink;
	return src;
}

struct nlg_source *nlg_source_open(const struct nlg_source_ops *ops, struct nlg_loop *loop,
				   const void *conf, const struct nlg_sink *sink,
				   struct nlg_err *err)
{
	struct nlg_source *src = source_new(ops, loop, conf, sink, err);

	if (!src)
		return NULL;
	enter(src);
	int rc = ops->open(src, src->conf, &src->st, err);
	if (rc < 0) {
		unhook_all(src);
		src->st = NULL; /* open cleans up after itself */
		src->depth = 0;
		release(src);
		return NULL;
	}
	src->depth--;
	return src;
}

struct nlg_source *nlg_source_open_fake(const struct nlg_source_ops *ops, struct nlg_loop *loop,
					const void *conf, const struct nlg_sink *sink,
					struct nlg_err *err)
{
	struct nlg_source *src = source_new(ops, loop, conf, sink, err);

	if (src)
		src->fake = 1;
	return src;
}

int nlg_source_is_fake(const struct nlg_source *src)
{
	return src->fake;
}

int nlg_source_inject(struct nlg_source *src, const void *rec)
{
	int rc;

	if (src->closing)
		return NLG_CB_STOP;
	enter(src);
	src->injected++;
	rc = nlg_source_emit(src, rec);
	leave(src);
	return rc;
}

void nlg_source_inject_flush(struct nlg_source *src)
{
	if (src->closing)
		return;
	enter(src);
	src->injected = 0;
	nlg_source_flush(src);
	leave(src);
}

void nlg_source_close(struct nlg_source *src)
{
	if (!src || src->closing)
		return;
	unhook_all(src);
	src->closing = 1;
	if (src->depth == 0)
		release(src);
}

void nlg_source_set_sink(struct nlg_source *src, const struct nlg_sink *sink)
{
	src->sink = *sink;
}

const struct nlg_source_ops *nlg_source_ops(const struct nlg_source *src)
{
	return src->ops;
}

const void *nlg_source_conf(const struct nlg_source *src)
{
	return src->conf;
}

int nlg_source_poll(struct nlg_source *src, struct nlg_err *err)
{
	int rc;

	if (src->closing)
		return nlg_err_set(err, EBADF, "%s source is closed", src->ops->name);
	if (src->fake) { /* a poll ends with what was injected since the last */
		rc = (int)src->injected;
		nlg_source_inject_flush(src);
		return rc;
	}
	if (!src->ops->poll)
		return nlg_err_set(err, ENOTSUP, "%s: this source has no poll", src->ops->name);
	enter(src);
	rc = src->ops->poll(src->st, err);
	leave(src);
	return rc;
}

void nlg_source_drain(struct nlg_source *src)
{
	if (src->closing || src->fake || !src->ops->drain)
		return;
	enter(src);
	src->ops->drain(src->st);
	leave(src);
}

int nlg_source_busy(struct nlg_source *src)
{
	return !src->closing && !src->fake && src->ops->busy ? src->ops->busy(src->st) : 0;
}

int nlg_source_call(struct nlg_source *src, const struct nlg_source_method *m, struct nlg_err *err)
{
	int rc;

	if (src->closing)
		return nlg_err_set(err, EBADF, "%s source is closed", src->ops->name);
	if (src->fake) /* resync and the like: nothing to do */
		return 0;
	enter(src);
	rc = m->fn(src->st, err);
	leave(src);
	return rc;
}

void nlg_source_stats(struct nlg_source *src, void *out)
{
	if (src->st && src->ops->stats)
		src->ops->stats(src->st, out);
}

const char *nlg_source_notes(struct nlg_source *src)
{
	return src->st && src->ops->notes ? src->ops->notes(src->st) : "";
}

int nlg_source_delivering(const struct nlg_source *src)
{
	return src->depth > 0;
}

int nlg_source_dump(const struct nlg_source_ops *ops, const void *conf, const struct nlg_sink *sink,
		    struct nlg_err *err)
{
	struct nlg_source src = {.ops = ops, .conf = (void *)conf};

	src.rec_size = nlg_source_schema(ops, conf)->rec_size;
	if (!ops->dump)
		return nlg_err_set(err, ENOTSUP, "%s: this source has no one-shot dump", ops->name);
	if (sink)
		src.sink = *sink;
	src.depth = 1;
	return ops->dump(&src, conf, err);
}

/* ---- for implementations ----------------------------------------------- */

int nlg_source_emit(struct nlg_source *src, const void *rec)
{
	if (src->closing)
		return NLG_CB_STOP;
	return src->sink.record ? src->sink.record(src->sink.data, rec) : NLG_CB_OK;
}

int nlg_source_emit_n(struct nlg_source *src, const void *recs, size_t n)
{
	if (src->closing)
		return NLG_CB_STOP;
	if (src->sink.records)
		return src->sink.records(src->sink.data, recs, n);
	for (size_t i = 0; i < n; i++) {
		int rc = nlg_source_emit(src, (const char *)recs + i * src->rec_size);
		if (rc != NLG_CB_OK)
			return rc;
	}
	return NLG_CB_OK;
}

void nlg_source_flush(struct nlg_source *src)
{
	if (!src->closing && src->sink.flush)
		src->sink.flush(src->sink.data);
}

void nlg_source_retract(struct nlg_source *src, int (*same)(const void *rec, const void *arg),
			const void *arg)
{
	if (!src->closing && src->sink.retract)
		src->sink.retract(src->sink.data, same, arg);
}

int nlg_source_closing(const struct nlg_source *src)
{
	return src->closing;
}

struct nlg_loop *nlg_source_loop(const struct nlg_source *src)
{
	return src->loop;
}

static struct hook *hook_new(struct nlg_source *src)
{
	for (int i = 0; i < NLG_SOURCE_HOOKS; i++) {
		struct hook *h = src->hooks[i];
		if (h && h->fd < 0 && h->id <= 0)
			return h; /* unhooked earlier: reuse */
		if (!h) {
			h = src->hooks[i] = calloc(1, sizeof(*h));
			if (h)
				h->src = src;
			return h;
		}
	}
	return NULL;
}

static void io_tramp(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct hook *h = data;
	struct nlg_source *src = h->src;

	NLG_UNUSED(loop);
	NLG_UNUSED(events);
	if (src->closing)
		return;
	/* Not re-entered from a nested loop (gw.run inside a handler): the
	 * source is mid-read; the fd stays readable and is served after. */
	if (src->depth > 0)
		return;
	enter(src);
	h->io(src->st, fd);
	leave(src);
}

int nlg_source_watch(struct nlg_source *src, int fd, nlg_source_io_fn *fn)
{
	struct hook *h = hook_new(src);
	int rc;

	if (!src->loop)
		return -EINVAL;
	if (!h)
		return -ENOSPC;
	h->fd = fd;
	h->io = fn;
	h->id = 0;
	rc = nlg_loop_add_fd(src->loop, fd, EPOLLIN, io_tramp, h);
	if (rc < 0)
		h->fd = -1;
	return rc;
}

void nlg_source_unwatch(struct nlg_source *src, int fd)
{
	for (int i = 0; i < NLG_SOURCE_HOOKS; i++) {
		struct hook *h = src->hooks[i];
		if (h && h->fd == fd) {
			nlg_loop_del_fd(src->loop, fd);
			h->fd = -1;
		}
	}
}

int nlg_source_pause(struct nlg_source *src, int fd, uint64_t ms)
{
	return src->loop ? nlg_loop_pause_fd(src->loop, fd, ms) : -EINVAL;
}

static int64_t timer_tramp(struct nlg_loop *loop, int64_t id, void *data)
{
	struct hook *h = data;
	struct nlg_source *src = h->src;
	int64_t next;

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	if (src->closing || src->depth > 0)
		return src->closing ? -1 : 1; /* busy in a nested loop: soon */
	enter(src);
	next = h->timer(src->st);
	if (next < 0 || src->closing)
		h->id = 0; /* the loop deletes it on our -1 */
	if (leave(src))
		return -1;
	return h->id > 0 ? next : -1;
}

int64_t nlg_source_timer(struct nlg_source *src, uint64_t ms, nlg_source_timer_fn *fn)
{
	struct hook *h = hook_new(src);

	if (!src->loop)
		return -EINVAL;
	if (!h)
		return -ENOSPC;
	h->fd = -1;
	h->timer = fn;
	h->id = nlg_loop_add_timer(src->loop, ms, timer_tramp, h);
	return h->id;
}

void nlg_source_timer_del(struct nlg_source *src, int64_t id)
{
	for (int i = 0; i < NLG_SOURCE_HOOKS; i++) {
		struct hook *h = src->hooks[i];
		if (h && h->fd < 0 && h->id == id && id > 0) {
			nlg_loop_del_timer(src->loop, id);
			h->id = 0;
		}
	}
}

void nlg_source_fail(struct nlg_source *src, const char *fmt, ...)
{
	char msg[NLG_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (src->closing)
		return;
	if (src->sink.fail)
		src->sink.fail(src->sink.data, msg);
	else
		nlg_source_log(src, "%s", msg);
}

void nlg_source_end(struct nlg_source *src)
{
	if (src->closing)
		return;
	if (src->sink.end)
		src->sink.end(src->sink.data);
	else
		nlg_source_log(src, "end of input");
}

const struct nlg_schema *nlg_source_schema(const struct nlg_source_ops *ops, const void *conf)
{
	return ops->schema_for && conf ? ops->schema_for(conf) : ops->schema;
}

void nlg_source_summary(struct nlg_source *src, char *buf, size_t len)
{
	if (len)
		buf[0] = 0;
	if (src->st && src->ops->summary)
		src->ops->summary(src->st, buf, len);
}

void nlg_source_log(const struct nlg_source *src, const char *fmt, ...)
{
	char prefix[64];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "%s: ", src->ops->name);
	va_start(ap, fmt);
	nlg_vlog(prefix, fmt, ap);
	va_end(ap);
}
