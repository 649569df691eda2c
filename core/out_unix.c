/* The local feed: a listening unix stream socket that copies every frame to
 * every client through a bounded per-client queue. A client that falls
 * behind loses whole frames, counted, and is told so by an `nlgate.gap`
 * frame before the next one it gets. Nothing here ever blocks the loop. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "nlgate/encode.h"
#include "nlgate/out_unix.h"

#define NLG_UNIX_WRITE_BATCH (64 * 1024) /* queued bytes that trigger a write at once */

#define DEF_QUEUE_BYTES (4u << 20)
#define DEF_MAX_CLIENTS 64
#define DEF_MODE	0660
#define QUEUE_MIN_CAP	(64u << 10)  /* first allocation of a client's queue */
#define QUEUE_KEEP_CAP	(256u << 10) /* an empty queue bigger than this is freed */
#define ACCEPT_RETRY_MS 100	     /* listener pause when out of fds */

/* A client's queue is a ring over q[cap]: `len` bytes from `head`, wrapping.
 * It only ever holds whole frames after what the socket already took.
 *
 *      head             head+len (mod cap)
 *   ....|=================|.........
 *       oldest bytes       free
 */
struct nlg_client {
	struct nlg_out_unix *u;
	int fd;
	int want_out; /* EPOLLOUT registered */
	uint8_t *q;
	size_t head, len, cap;
	uint64_t missed; /* frames dropped since the last gap frame */
};

struct nlg_out_unix {
	struct nlg_loop *loop;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* the socket file we bound, so close unlinks only ours */
	ino_t ino;
	size_t qmax;
	int max_clients;
	struct nlg_client **cl;
	int ncl;
	int64_t retry_timer; /* > 0 while accept is paused */
	struct nlg_out_unix_stats st;
	struct nlg_buf gap; /* scratch for gap frames */
	msgpack_packer gpk;
};

/* ---- client queues ---- */

/* Append n bytes; the caller has checked len + n <= qmax. */
static int q_push(struct nlg_out_unix *u, struct nlg_client *c, const void *p, size_t n)
{
	size_t tail, first;

	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : QUEUE_MIN_CAP;
		uint8_t *q;
		while (cap < c->len + n)
			cap *= 2;
		if (cap > u->qmax)
			cap = u->qmax;
		q = malloc(cap);
		if (!q)
			return -ENOMEM;
		/* Linearise the old ring into the new buffer. */
		first = c->cap - c->head < c->len ? c->cap - c->head : c->len;
		if (c->len) {
			memcpy(q, c->q + c->head, first);
			memcpy(q + first, c->q, c->len - first);
		}
		free(c->q);
		c->q = q;
		c->cap = cap;
		c->head = 0;
	}
	tail = (c->head + c->len) % c->cap;
	first = c->cap - tail < n ? c->cap - tail : n;
	memcpy(c->q + tail, p, first);
	memcpy(c->q, (const uint8_t *)p + first, n - first);
	c->len += n;
	return 0;
}

static void q_pop(struct nlg_client *c, size_t n)
{
	c->len -= n;
	c->head = c->len ? (c->head + n) % c->cap : 0;
	if (!c->len && c->cap > QUEUE_KEEP_CAP) { /* a burst is over: give it back */
		free(c->q);
		c->q = NULL;
		c->cap = 0;
	}
}

static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t w;

	do
		w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return w;
}

static void client_set_out(struct nlg_out_unix *u, struct nlg_client *c, int on)
{
	if (c->want_out == on)
		return;
	if (nlg_loop_mod_fd(u->loop, c->fd, EPOLLIN | (on ? EPOLLOUT : 0)) == 0)
		c->want_out = on;
}

static void client_free(struct nlg_out_unix *u, struct nlg_client *c)
{
	nlg_loop_del_fd(u->loop, c->fd);
	close(c->fd);
	free(c->q);
	free(c);
}

static void client_remove(struct nlg_out_unix *u, int i)
{
	client_free(u, u->cl[i]);
	u->cl[i] = u->cl[--u->ncl];
	u->st.clients = (uint64_t)u->ncl;
}

static int client_index(const struct nlg_out_unix *u, const struct nlg_client *c)
{
	for (int i = 0; i < u->ncl; i++)
		if (u->cl[i] == c)
			return i;
	return -1;
}

/* Write what the socket takes. 0, or -1 when the client is gone. */
static int client_drain(struct nlg_out_unix *u, struct nlg_client *c)
{
	while (c->len) {
		size_t first = c->cap - c->head < c->len ? c->cap - c->head : c->len;
		struct iovec iov[2] = {
		    {.iov_base = c->q + c->head, .iov_len = first},
		    {.iov_base = c->q, .iov_len = c->len - first},
		};
		ssize_t w = send_iov(c->fd, iov, c->len > first ? 2 : 1);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1; /* EPIPE, ECONNRESET, ... */
		}
		q_pop(c, (size_t)w);
	}
	client_set_out(u, c, c->len != 0);
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
	struct nlg_out_unix *u = c->u;
	int i = client_index(u, c);

	(void)loop;
	(void)fd;
	if (i < 0)
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && client_read(c) < 0) {
		client_remove(u, i);
		return;
	}
	if ((events & (EPOLLOUT | EPOLLERR)) && client_drain(u, c) < 0)
		client_remove(u, i);
}

/* ---- listener ---- */

static int64_t accept_resume(struct nlg_loop *loop, int64_t id, void *data)
{
	struct nlg_out_unix *u = data;

	(void)id;
	u->retry_timer = 0;
	nlg_loop_mod_fd(loop, u->fd, EPOLLIN);
	return -1;
}

static void accept_io(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct nlg_out_unix *u = data;

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
				    nlg_loop_add_timer(loop, ACCEPT_RETRY_MS, accept_resume, u);
				if (t > 0 && nlg_loop_mod_fd(loop, fd, 0) == 0)
					u->retry_timer = t;
				else if (t > 0)
					nlg_loop_del_timer(loop, t);
			}
			return;
		}
		if (u->ncl >= u->max_clients) {
			close(cfd);
			u->st.rejected++;
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(cfd);
			u->st.rejected++;
			continue;
		}
		c->u = u;
		c->fd = cfd;
		if (nlg_loop_add_fd(loop, cfd, EPOLLIN, client_io, c) < 0) {
			close(cfd);
			free(c);
			u->st.rejected++;
			continue;
		}
		u->cl[u->ncl++] = c;
		u->st.clients = (uint64_t)u->ncl;
		u->st.accepted++;
	}
}

/* A socket file at path: replace it only if nobody answers there. */
static int clear_stale(const char *path, const struct sockaddr_un *sun, struct nlg_err *err)
{
	struct stat sb;
	int fd, rc;

	if (lstat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return nlg_err_set(err, errno, "%s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(sb.st_mode))
		return nlg_err_set(err, EEXIST, "%s: exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nlg_err_set(err, errno, "%s: socket: %s", path, strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		close(fd); /* EAGAIN: a listener with a full backlog */
		return nlg_err_set(err, EADDRINUSE, "%s: address in use", path);
	}
	rc = errno;
	close(fd);
	if (rc != ECONNREFUSED && rc != ENOENT)
		return nlg_err_set(err, rc, "%s: %s", path, strerror(rc));
	if (unlink(path) < 0 && errno != ENOENT)
		return nlg_err_set(err, errno, "%s: cannot remove stale socket: %s", path,
				   strerror(errno));
	return 0;
}

struct nlg_out_unix *nlg_out_unix_open(struct nlg_loop *loop, const struct nlg_out_unix_opts *o,
				       struct nlg_err *err)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct nlg_out_unix *u;
	struct stat sb;
	unsigned mode;
	int bound = 0;

	if (!o->path || !*o->path) {
		nlg_err_set(err, EINVAL, "unix feed: no socket path");
		return NULL;
	}
	if (strlen(o->path) >= sizeof(sun.sun_path)) {
		nlg_err_set(err, ENAMETOOLONG, "%s: socket path too long (at most %zu bytes)",
			    o->path, sizeof(sun.sun_path) - 1);
		return NULL;
	}
	strcpy(sun.sun_path, o->path);
	u = calloc(1, sizeof(*u));
	if (!u) {
		nlg_err_set(err, ENOMEM, "%s: out of memory", o->path);
		return NULL;
	}
	u->loop = loop;
	u->fd = -1;
	strcpy(u->path, o->path);
	u->qmax = o->queue_bytes ? o->queue_bytes : DEF_QUEUE_BYTES;
	u->max_clients = o->max_clients > 0 ? o->max_clients : DEF_MAX_CLIENTS;
	mode = o->mode ? o->mode : DEF_MODE;
	nlg_buf_init(&u->gap);
	nlg_mp_init(&u->gpk, &u->gap);
	u->cl = calloc((size_t)u->max_clients, sizeof(*u->cl));
	if (!u->cl) {
		nlg_err_set(err, ENOMEM, "%s: out of memory", o->path);
		goto err;
	}
	u->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		nlg_err_set(err, errno, "%s: socket: %s", o->path, strerror(errno));
		goto err;
	}
	if (clear_stale(o->path, &sun, err) < 0)
		goto err;
	if (bind(u->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		nlg_err_set(err, errno, "%s: bind: %s", o->path,
			    errno == EADDRINUSE ? "address in use" : strerror(errno));
		goto err;
	}
	bound = 1;
	if (stat(o->path, &sb) == 0) {
		u->dev = sb.st_dev;
		u->ino = sb.st_ino;
	}
	if (chmod(o->path, mode) < 0) {
		nlg_err_set(err, errno, "%s: chmod %o: %s", o->path, mode, strerror(errno));
		goto err;
	}
	if (listen(u->fd, SOMAXCONN) < 0) {
		nlg_err_set(err, errno, "%s: listen: %s", o->path, strerror(errno));
		goto err;
	}
	if (nlg_loop_add_fd(loop, u->fd, EPOLLIN, accept_io, u) < 0) {
		nlg_err_set(err, ENOMEM, "%s: cannot watch the listener", o->path);
		goto err;
	}
	return u;
err:
	if (!bound)
		u->path[0] = 0; /* not ours: close must not unlink it */
	nlg_out_unix_close(u);
	return NULL;
}

void nlg_out_unix_close(struct nlg_out_unix *u)
{
	struct stat sb;

	if (!u)
		return;
	for (int i = 0; i < u->ncl; i++)
		client_free(u, u->cl[i]);
	u->ncl = 0;
	if (u->retry_timer > 0)
		nlg_loop_del_timer(u->loop, u->retry_timer);
	if (u->fd >= 0) {
		nlg_loop_del_fd(u->loop, u->fd);
		close(u->fd);
	}
	/* Unlink only the socket we bound: a newer instance may own the path. */
	if (u->path[0] && lstat(u->path, &sb) == 0 && sb.st_dev == u->dev && sb.st_ino == u->ino)
		unlink(u->path);
	nlg_buf_free(&u->gap);
	free(u->cl);
	free(u);
}

/* ---- sending ---- */

static int gap_frame(struct nlg_out_unix *u, uint64_t missed)
{
	int rc;

	nlg_buf_reset(&u->gap);
	rc = nlg_enc_mp_frame_head(&u->gpk, "nlgate.gap", 10, nlg_realtime_ns());
	rc |= msgpack_pack_map(&u->gpk, 1);
	rc |= msgpack_pack_str_with_body(&u->gpk, "missed", 6);
	rc |= msgpack_pack_uint64(&u->gpk, missed);
	return rc ? -ENOMEM : 0;
}

/* Offer one frame to client i: 1 taken, 0 dropped, -1 client gone. */
static int client_send(struct nlg_out_unix *u, struct nlg_client *c, const void *frame, size_t len)
{
	struct iovec iov[2];
	size_t gaplen = 0, total;
	int n = 0;

	if (c->missed) {
		/* The gap frame goes in with the frame, under the same bound,
		 * so it is never itself dropped or split. */
		if (gap_frame(u, c->missed) < 0)
			goto drop;
		gaplen = u->gap.len;
		iov[n++] = (struct iovec){.iov_base = u->gap.data, .iov_len = gaplen};
	}
	total = gaplen + len;
	if (len > u->qmax || c->len + total > u->qmax)
		goto drop;
	iov[n++] = (struct iovec){.iov_base = (void *)frame, .iov_len = len};
	/* Frames are queued and written in batches: a poll sends thousands of
	 * small frames, and one write per frame per client cost more than the
	 * encoding. The loop writes the rest as soon as it runs (EPOLLOUT). */
	for (int i = 0; i < n; i++)
		if (q_push(u, c, iov[i].iov_base, iov[i].iov_len) < 0)
			return -1; /* out of memory: drop the client, not half a frame */
	if (c->len >= NLG_UNIX_WRITE_BATCH && client_drain(u, c) < 0)
		return -1;
	if (gaplen) {
		u->st.gaps++;
		c->missed = 0;
	}
	u->st.bytes += total;
	client_set_out(u, c, c->len != 0);
	return 1;
drop:
	c->missed++;
	u->st.dropped++;
	return 0;
}

int nlg_out_unix_send(struct nlg_out_unix *u, const void *frame, size_t len)
{
	int taken = 0;

	if (!u)
		return -EINVAL;
	u->st.frames++;
	for (int i = 0; i < u->ncl;) {
		int rc = client_send(u, u->cl[i], frame, len);
		if (rc < 0) {
			client_remove(u, i); /* the last client moved to i */
			continue;
		}
		taken += rc;
		i++;
	}
	return taken;
}

const struct nlg_out_unix_stats *nlg_out_unix_stats(const struct nlg_out_unix *u)
{
	return &u->st;
}

void nlg_out_unix_flush(struct nlg_out_unix *u, int timeout_ms)
{
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd *pfd;

	if (!u || !u->ncl)
		return;
	pfd = calloc((size_t)u->ncl, sizeof(*pfd));
	if (!pfd)
		return;
	for (;;) {
		int n = 0;
		uint64_t now;

		for (int i = 0; i < u->ncl;) {
			struct nlg_client *c = u->cl[i];
			if (c->len && client_drain(u, c) < 0) {
				client_remove(u, i);
				continue;
			}
			if (c->len)
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
