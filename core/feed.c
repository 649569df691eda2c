/* A feed: every frame to every client of a listening socket, each through
 * its own bounded queue; a client that falls behind loses whole frames and
 * hears of them (an nlgate.gap frame). Never blocks the loop. Used by the
 * unix feed and the TCP output's listen mode. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nlgate/common.h"
#include "nlgate/feed.h"
#include "nlgate/net.h"

/* A client's queue is written at once when it reaches this; below it, when
 * the loop runs (EPOLLOUT). A poll sends thousands of small frames, and one
 * write per frame per client cost more than the encoding. */
#define WRITE_BATCH	(64 * 1024)
#define ACCEPT_RETRY_MS 100 /* listener pause when out of fds */
/* Queues count their frames (for the exit drain); this is no real bound. */
#define FRAMES_UNBOUNDED ((size_t)1 << 40)

struct nlg_client {
	struct nlg_feed *f;
	int fd;
	int want_out; /* EPOLLOUT registered */
	int blocked;  /* the socket took less than we had: wait for EPOLLOUT */
	size_t retry; /* while blocked, try again once the queue is this long */
	struct nlg_outq *q;
};

struct nlg_feed {
	struct nlg_loop *loop;
	int fd;
	struct nlg_feed_conf conf;
	char name[128];
	struct nlg_client **cl;
	int ncl;
	int64_t retry_timer;	  /* > 0 while accept is paused */
	struct nlg_outq_stats qt; /* every client's queue adds to it */
	uint64_t frames, accepted, rejected;
};

/* ---- clients ---- */

static void client_set_out(struct nlg_feed *f, struct nlg_client *c, int on)
{
	if (c->want_out == on)
		return;
	if (nlg_loop_mod_fd(f->loop, c->fd, EPOLLIN | (on ? EPOLLOUT : 0)) == 0)
		c->want_out = on;
}

static void client_free(struct nlg_feed *f, struct nlg_client *c)
{
	nlg_loop_del_fd(f->loop, c->fd);
	close(c->fd);
	nlg_outq_destroy(c->q);
	free(c);
}

static void client_remove(struct nlg_feed *f, int i)
{
	client_free(f, f->cl[i]);
	f->cl[i] = f->cl[--f->ncl];
}

static int client_index(const struct nlg_feed *f, const struct nlg_client *c)
{
	for (int i = 0; i < f->ncl; i++)
		if (f->cl[i] == c)
			return i;
	return -1;
}

/* Write what the socket takes; EPOLLOUT while some remains. 0, or -1 when
 * the client is gone. A write that freed room lets the gap frame in at
 * once: the frames that would carry it may have stopped coming. */
static int client_write(struct nlg_feed *f, struct nlg_client *c)
{
	uint64_t before = nlg_outq_stats(c->q)->written;
	int rc = nlg_outq_write(c->q, c->fd);

	if (rc >= 0 && nlg_outq_missed(c->q) && nlg_outq_stats(c->q)->written != before &&
	    nlg_outq_announce(c->q) > 0)
		rc = nlg_outq_write(c->q, c->fd);
	if (rc < 0)
		return -1;
	c->blocked = rc;
	c->retry = nlg_outq_len(c->q) + WRITE_BATCH;
	client_set_out(f, c, rc);
	return 0;
}

/* Clients may write; nobody listens. Read and discard, and learn of EOF. */
static int client_read(struct nlg_client *c)
{
	char junk[4096];

	/* Bounded, so a chatty client cannot hold the loop; level-triggered
	 * epoll brings us back for the rest. */
	for (int i = 0; i < 16; i++) {
		ssize_t r = read(c->fd, junk, sizeof(junk));
		if (r > 0)
			continue;
		if (r == 0)
			return -1;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
	return 0;
}

/* The loop may deliver a stale event for a reused fd number, so a client is
 * dropped only on what read/write say, never on event bits alone. */
static void client_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct nlg_client *c = data;
	struct nlg_feed *f = c->f;
	int i = client_index(f, c);

	(void)loop;
	(void)fd;
	if (i < 0)
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && client_read(c) < 0) {
		client_remove(f, i);
		return;
	}
	if ((events & (EPOLLOUT | EPOLLERR)) && client_write(f, c) < 0)
		client_remove(f, i);
}

/* ---- listener ---- */

static int64_t accept_resume(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_feed *f = data;

	(void)id;
	f->retry_timer = 0;
	nlg_loop_mod_fd(loop, f->fd, EPOLLIN);
	return -1;
}

static struct nlg_client *client_new(struct nlg_feed *f, int cfd)
{
	struct nlg_outq_conf qc = {
	    .max_bytes = f->conf.queue, .max_frames = FRAMES_UNBOUNDED, .total = &f->qt};
	struct nlg_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->f = f;
	c->fd = cfd;
	c->q = nlg_outq_create(&qc);
	if (!c->q || nlg_loop_add_fd(f->loop, cfd, EPOLLIN, client_io, c) < 0) {
		nlg_outq_destroy(c->q);
		free(c);
		return NULL;
	}
	return c;
}

static void accept_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct nlg_feed *f = data;

	(void)events;
	for (;;) {
		struct nlg_client *c;
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The pending connection stays pending, and a
				 * level-triggered listener would spin: pause it. */
				int64_t t =
				    nlg_loop_add_timer(loop, ACCEPT_RETRY_MS, accept_resume, f);
				if (t > 0 && nlg_loop_mod_fd(loop, fd, 0) == 0)
					f->retry_timer = t;
				else if (t > 0)
					nlg_loop_del_timer(loop, t);
			}
			return;
		}
		/* A TCP consumer that vanished, or reads nothing for the
		 * timeout, is noticed by the kernel (keepalive, user timeout). */
		if (f->conf.keepalive || f->conf.timeout_ms)
			nlg_net_tune(cfd, f->conf.keepalive, f->conf.timeout_ms);
		c = f->ncl < f->conf.max_clients ? client_new(f, cfd) : NULL;
		if (!c) {
			close(cfd);
			f->rejected++;
			continue;
		}
		f->cl[f->ncl++] = c;
		f->accepted++;
	}
}

/* ---- the feed ---- */

struct nlg_feed *nlg_feed_new(struct nlg_loop *loop, int lfd, const struct nlg_feed_conf *conf)
{
	struct nlg_feed *f = calloc(1, sizeof(*f));

	if (!f || conf->max_clients <= 0 || !conf->queue ||
	    !(f->cl = calloc((size_t)conf->max_clients, sizeof(*f->cl)))) {
		free(f);
		close(lfd);
		return NULL;
	}
	f->loop = loop;
	f->fd = lfd;
	f->conf = *conf;
	snprintf(f->name, sizeof(f->name), "%s", conf->name ? conf->name : "feed");
	f->conf.name = f->name;
	if (nlg_loop_add_fd(loop, lfd, EPOLLIN, accept_io, f) < 0) {
		close(lfd);
		free(f->cl);
		free(f);
		return NULL;
	}
	return f;
}

void nlg_feed_flush(struct nlg_feed *f, int timeout_ms)
{
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd *pfd;

	if (!f || !f->ncl)
		return;
	pfd = calloc((size_t)f->ncl, sizeof(*pfd));
	if (!pfd)
		return;
	for (int i = 0; i < f->ncl; i++)
		nlg_outq_announce(f->cl[i]->q); /* -ENOMEM: it waits, as when full */
	for (;;) {
		int n = 0;
		uint64_t now;

		for (int i = 0; i < f->ncl;) {
			struct nlg_client *c = f->cl[i];
			if (nlg_outq_len(c->q) && client_write(f, c) < 0) {
				client_remove(f, i);
				continue;
			}
			if (nlg_outq_len(c->q))
				pfd[n++] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
			i++;
		}
		now = nlg_now_ms();
		if (!n || now >= deadline)
			break;
		if (poll(pfd, (nfds_t)n, (int)(deadline - now)) < 0 && errno != EINTR)
			break;
	}
	free(pfd);
}

void nlg_feed_free(struct nlg_feed *f, int timeout_ms)
{
	uint64_t missed = 0, unsent = 0;
	int cut = 0;

	if (!f)
		return;
	nlg_feed_flush(f, timeout_ms);
	/* A client whose queue is still not empty at the deadline stopped
	 * reading. Its connection closes with the queue unsent: it reads EOF,
	 * perhaps inside a frame, so it can tell the stream was cut, but not
	 * how much it lost; if its queue stayed full, the gap frame never got
	 * in either. Those misses are counted unannounced (by the queue's
	 * destroy) and, since the counters go with the feed, said here. */
	for (int i = 0; i < f->ncl; i++) {
		struct nlg_outq *q = f->cl[i]->q;
		if (nlg_outq_len(q) || nlg_outq_missed(q)) {
			cut++;
			missed += nlg_outq_missed(q);
			unsent += nlg_outq_len(q);
		}
	}
	if (cut)
		nlg_log("%s: %d client(s) closed with their queue not drained after %d ms: "
			"%" PRIu64 " dropped frames never announced, %" PRIu64 " bytes unsent",
			f->name, cut, timeout_ms > 0 ? timeout_ms : 0, missed, unsent);
	for (int i = 0; i < f->ncl; i++)
		client_free(f, f->cl[i]);
	if (f->retry_timer > 0)
		nlg_loop_del_timer(f->loop, f->retry_timer);
	nlg_loop_del_fd(f->loop, f->fd);
	close(f->fd);
	free(f->cl);
	free(f);
}

int nlg_feed_push(struct nlg_feed *f, const struct iovec *iov, int n)
{
	int taken = 0;

	f->frames++;
	for (int i = 0; i < f->ncl;) {
		struct nlg_client *c = f->cl[i];
		int rc = nlg_outq_push(c->q, iov, n);

		/* Queued, and written in batches; the loop writes the rest
		 * as soon as it runs (EPOLLOUT). A socket found full is tried
		 * again after another batch, not per frame (a long handler
		 * keeps the loop from hearing of its room). -ENOMEM drops the
		 * client rather than frames it would never hear of. */
		if (rc > 0 && nlg_outq_len(c->q) >= (c->blocked ? c->retry : WRITE_BATCH))
			rc = client_write(f, c) < 0 ? -1 : 1;
		else if (rc > 0)
			client_set_out(f, c, 1);
		/* Dropped with nothing queued (a frame over the bound): no
		 * write is coming to let the announcement in, so now. */
		else if (rc == 0 && !nlg_outq_len(c->q) && nlg_outq_announce(c->q) > 0)
			client_set_out(f, c, 1);
		if (rc < 0) {
			client_remove(f, i); /* the last client moved to i */
			continue;
		}
		taken += rc;
		i++;
	}
	return taken;
}

uint64_t nlg_feed_pending(const struct nlg_feed *f)
{
	uint64_t n = 0;

	for (int i = 0; i < f->ncl; i++)
		n += nlg_outq_frames(f->cl[i]->q);
	return n;
}

void nlg_feed_counts(const struct nlg_feed *f, struct nlg_feed_counts *c)
{
	c->q = f->qt;
	c->frames = f->frames;
	c->clients = (uint64_t)f->ncl;
	c->accepted = f->accepted;
	c->rejected = f->rejected;
}
