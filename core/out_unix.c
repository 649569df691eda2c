/* The local feed: a listening unix stream socket that copies every frame to
 * every client through its own bounded queue (core/outq.c). A client that
 * falls behind loses whole frames, counted, and is told so by an
 * `nlgate.gap` frame as soon as its queue has room again, or with the next
 * frame it gets, whichever comes first, and before the feed closes. Never
 * blocks the loop. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "nlgate/out_unix.h"
#include "nlgate/outq.h"

/* A client's queue is written at once when it reaches this; below it, when
 * the loop runs (EPOLLOUT). A poll sends thousands of small frames, and one
 * write per frame per client cost more than the encoding. */
#define WRITE_BATCH	(64 * 1024)
#define ACCEPT_RETRY_MS 100 /* listener pause when out of fds */

struct nlg_client {
	struct nlg_out_unix *u;
	int fd;
	int want_out; /* EPOLLOUT registered */
	struct nlg_outq *q;
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
	int64_t retry_timer;	  /* > 0 while accept is paused */
	struct nlg_outq_stats qt; /* every client's queue adds to it */
	uint64_t frames, accepted, rejected;
};

/* ---- options and counters ---- */

/* Always octal, as chmod(1) reads a mode: "0660" and "660" alike, so a Lua
 * script's `mode = 0660` (a decimal 660 to Lua) means what it says. */
static int parse_mode(void *conf, const char *text, struct nlg_err *err)
{
	const char *p = text;
	uint32_t mode = 0;

	if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
		p += 2;
	if (!*p)
		goto bad;
	for (; *p; p++) {
		if (*p < '0' || *p > '7')
			goto bad;
		mode = mode * 8 + (uint32_t)(*p - '0');
		if (mode > 07777)
			goto bad;
	}
	((struct nlg_unix_conf *)conf)->mode = mode;
	return 0;
bad:
	return nlg_err_set(err, EINVAL, "bad mode '%.64s%s' (an octal file mode such as 0660)",
			   text, strlen(text) > 64 ? "..." : "");
}

#define CONF(m) offsetof(struct nlg_unix_conf, m), sizeof(((struct nlg_unix_conf *)0)->m)

static const struct nlg_opt unix_opts[] = {
    {.name = "path",
     .type = NLG_OPT_STR,
     CONF(path),
     .def = "nlgate.sock",
     .arg = "PATH",
     .desc = "the socket to listen on (default nlgate.sock)"},
    {.name = "mode",
     .type = NLG_OPT_CUSTOM,
     CONF(mode),
     .def = "0660",
     .parse = parse_mode,
     .arg = "MODE",
     .desc = "file mode of the socket, octal as chmod reads it (default 0660)"},
    {.name = "queue",
     .type = NLG_OPT_SIZE,
     CONF(queue),
     .def = "4M",
     .min = 4096,
     .max = 1ull << 30,
     .arg = "BYTES",
     .desc = "per-client queue bound; a client further behind loses whole frames, "
	     "announced by an nlgate.gap frame (default 4M)"},
    {.name = "max_clients",
     .type = NLG_OPT_UINT,
     CONF(max_clients),
     .def = "64",
     .min = 1,
     .max = 4096,
     .arg = "N",
     .desc = "connections past this many are closed at once (default 64)"},
    {.name = NULL},
};

#define STAT(n, t, d)                                                                              \
	{                                                                                          \
		.name = #n, .type = t, .offset = offsetof(struct nlg_unix_stats, n),               \
		.size = sizeof(((struct nlg_unix_stats *)0)->n), .desc = d                         \
	}

static const struct nlg_field unix_stats_fields[] = {
    STAT(frames, NLG_T_U64, "frames offered"),
    STAT(bytes, NLG_T_U64, "bytes queued to clients, gap frames included"),
    STAT(dropped, NLG_T_U64, "frames dropped for slow clients (sum over clients)"),
    STAT(gaps, NLG_T_U64, "nlgate.gap frames queued"),
    STAT(unannounced, NLG_T_U64,
	 "dropped frames never announced: the client left, or its queue was still full at close"),
    STAT(clients, NLG_T_U64, "clients connected now"),
    STAT(accepted, NLG_T_U64, "clients accepted in total"),
    STAT(rejected, NLG_T_U64, "connections closed at once: over max_clients, or no memory"),
    STAT(path, NLG_T_STR, "the socket's path"),
};

struct nlg_schema nlg_unix_stats_schema = {
    .kind = "unix.stats",
    .desc = "counters of a unix feed output",
    .fields = unix_stats_fields,
    .nfields = NLG_ARRAY_SIZE(unix_stats_fields),
    .rec_size = sizeof(struct nlg_unix_stats),
    .present_off = offsetof(struct nlg_unix_stats, present),
};

/* ---- clients ---- */

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
	nlg_outq_destroy(c->q);
	free(c);
}

static void client_remove(struct nlg_out_unix *u, int i)
{
	client_free(u, u->cl[i]);
	u->cl[i] = u->cl[--u->ncl];
}

static int client_index(const struct nlg_out_unix *u, const struct nlg_client *c)
{
	for (int i = 0; i < u->ncl; i++)
		if (u->cl[i] == c)
			return i;
	return -1;
}

/* Write what the socket takes; EPOLLOUT while some remains. 0, or -1 when
 * the client is gone. A write that freed room lets the gap frame in at
 * once: the frames that would carry it may have stopped coming. */
static int client_write(struct nlg_out_unix *u, struct nlg_client *c)
{
	uint64_t before = nlg_outq_stats(c->q)->written;
	int rc = nlg_outq_write(c->q, c->fd);

	if (rc >= 0 && nlg_outq_missed(c->q) && nlg_outq_stats(c->q)->written != before &&
	    nlg_outq_announce(c->q) > 0)
		rc = nlg_outq_write(c->q, c->fd);
	if (rc < 0)
		return -1;
	client_set_out(u, c, rc);
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
	if ((events & (EPOLLOUT | EPOLLERR)) && client_write(u, c) < 0)
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

static struct nlg_client *client_new(struct nlg_out_unix *u, int cfd)
{
	struct nlg_outq_conf qc = {.max_bytes = u->qmax, .total = &u->qt};
	struct nlg_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->u = u;
	c->fd = cfd;
	c->q = nlg_outq_create(&qc);
	if (!c->q || nlg_loop_add_fd(u->loop, cfd, EPOLLIN, client_io, c) < 0) {
		nlg_outq_destroy(c->q);
		free(c);
		return NULL;
	}
	return c;
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
		c = u->ncl < u->max_clients ? client_new(u, cfd) : NULL;
		if (!c) {
			close(cfd);
			u->rejected++;
			continue;
		}
		u->cl[u->ncl++] = c;
		u->accepted++;
	}
}

/* ---- the socket file ----
 *
 * The mode is set where nobody else can reach the name: the socket is bound
 * inside a fresh private directory beside the path (mkdtemp, 0700, ours),
 * chmod'ed there through the directory's fd, listening, and only then
 * hard-linked to the path. A chmod by path after bind would follow whatever
 * a writer of the directory swapped in meanwhile (a symlink to /etc/shadow,
 * and root chmods that); umask would do it without a chmod, but it is
 * process-wide and races with other threads. link, not rename: link never
 * replaces an entry, so what appeared at the path since we looked is
 * refused, not clobbered (renameat2's RENAME_NOREPLACE would do the same,
 * but not on every filesystem). getsockname still names the private
 * directory, which no client needs.
 *
 *   dir/.nlgate-XXXXXX/ (0700)      bind sock, chmod mode, listen
 *   dir/PATH ◀── link ── sock       then unlink sock, rmdir the directory */

#define PRIV_DIR  ".nlgate-XXXXXX"
#define PRIV_SOCK "sock"

static const char *file_kind(mode_t m)
{
	return S_ISREG(m)    ? "a regular file"
	       : S_ISDIR(m)  ? "a directory"
	       : S_ISLNK(m)  ? "a symbolic link"
	       : S_ISFIFO(m) ? "a fifo"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
			     : "a file of unknown kind";
}

/* What is at path: 0 nothing, 1 a stale socket of ours (nobody answers;
 * *old is it), or a negative errno with a one-line message: anything else
 * is refused. A symlink is refused whatever it points to, and never
 * followed. */
static int check_path(const char *path, const struct sockaddr_un *sun, struct stat *old,
		      struct nlg_err *err)
{
	int fd, rc;

	if (lstat(path, old) < 0) {
		if (errno == ENOENT)
			return 0;
		return nlg_err_set(err, errno, "%s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(old->st_mode))
		return nlg_err_set(err, EEXIST,
				   "%s: exists and is %s, not a socket; refusing to replace it",
				   path, file_kind(old->st_mode));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nlg_err_set(err, errno, "%s: socket: %s", path, strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		close(fd); /* EAGAIN: a listener with a full backlog */
		return nlg_err_set(err, EADDRINUSE, "%s: address in use (a listener answers there)",
				   path);
	}
	rc = errno;
	close(fd);
	if (rc == ENOENT)
		return 0; /* gone since lstat */
	if (rc != ECONNREFUSED)
		return nlg_err_set(err, rc, "%s: %s", path, strerror(rc));
	/* Dead, but maybe another user's: not ours to take. */
	if (old->st_uid != geteuid())
		return nlg_err_set(
		    err, EEXIST,
		    "%s: a stale socket owned by uid %u, not by us (uid %u); refusing "
		    "to replace it",
		    path, (unsigned)old->st_uid, (unsigned)geteuid());
	return 1;
}

/* The private directory beside path: its name in tmpl[cap], its fd, or a
 * negative errno. Checked after opening, so a directory swapped in between
 * mkdtemp and open is not taken for ours. */
static int priv_dir(const char *path, char *tmpl, size_t cap, struct nlg_err *err)
{
	const char *slash = strrchr(path, '/');
	size_t plen = slash ? (size_t)(slash - path) + 1 : 0;
	struct stat sb;
	int dfd;

	if (plen + sizeof(PRIV_DIR) > cap)
		return nlg_err_set(err, ENAMETOOLONG, "%s: path too long", path);
	memcpy(tmpl, path, plen);
	memcpy(tmpl + plen, PRIV_DIR, sizeof(PRIV_DIR));
	if (!mkdtemp(tmpl))
		return nlg_err_set(err, errno,
				   "%s: cannot create a private directory beside it: %s", path,
				   strerror(errno));
	dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077)) {
		int e = dfd < 0 ? errno : EPERM;
		if (dfd >= 0)
			close(dfd);
		else
			rmdir(tmpl);
		return nlg_err_set(err, e, "%s: private directory %s: %s", path, tmpl,
				   e == EPERM ? "not ours after creating it" : strerror(e));
	}
	return dfd;
}

/* Bind u->fd, set its mode and listen, then put it at path (see above). */
static int create_socket(struct nlg_out_unix *u, const char *path, uint32_t mode,
			 struct nlg_err *err)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char tmpl[sizeof(sun.sun_path) + sizeof(PRIV_DIR)];
	struct stat old, sb;
	int rc, dfd, stale;

	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((stale = check_path(path, &sun, &old, err)) < 0)
		return stale;
	if ((dfd = priv_dir(path, tmpl, sizeof(tmpl), err)) < 0)
		return dfd;
	/* The directory's own name when it fits sun_path; else through its fd,
	 * which also pins it (/proc is then needed). */
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/" PRIV_SOCK, tmpl) >=
	    (int)sizeof(sun.sun_path))
		snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/" PRIV_SOCK, dfd);
	if (bind(u->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		rc = nlg_err_set(err, errno, "%s: bind: %s", path, strerror(errno));
		goto out;
	}
	/* Nobody else can add a name to the directory: this is our socket. */
	if (fstatat(dfd, PRIV_SOCK, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(sb.st_mode)) {
		rc = nlg_err_set(err, EPERM, "%s: the socket is not where it was bound", path);
		goto out;
	}
	u->dev = sb.st_dev;
	u->ino = sb.st_ino;
	if (fchmodat(dfd, PRIV_SOCK, mode, 0) < 0) {
		rc = nlg_err_set(err, errno, "%s: chmod %o: %s", path, mode, strerror(errno));
		goto out;
	}
	/* Listening before it has its name: a client that finds it can connect,
	 * and a second instance checking the path sees it alive. */
	if (listen(u->fd, SOMAXCONN) < 0) {
		rc = nlg_err_set(err, errno, "%s: listen: %s", path, strerror(errno));
		goto out;
	}
	/* The stale socket, if it is still the one we looked at; whatever
	 * replaced it meanwhile makes the link fail below. */
	if (stale && lstat(path, &sb) == 0 && sb.st_dev == old.st_dev && sb.st_ino == old.st_ino &&
	    unlink(path) < 0 && errno != ENOENT) {
		rc = nlg_err_set(err, errno, "%s: cannot remove the stale socket: %s", path,
				 strerror(errno));
		goto out;
	}
	if (linkat(dfd, PRIV_SOCK, AT_FDCWD, path, 0) < 0) {
		rc = nlg_err_set(err, errno, "%s: %s", path,
				 errno == EEXIST ? "something appeared there while the socket was "
						   "made; refusing to replace it"
						 : strerror(errno));
		goto out;
	}
	rc = 0;
out:
	unlinkat(dfd, PRIV_SOCK, 0);
	close(dfd);
	rmdir(tmpl);
	return rc;
}

/* ---- open, flush, close ---- */

static void unix_close_now(struct nlg_out_unix *u)
{
	struct stat sb;

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
	free(u->cl);
	free(u);
}

static int unix_open(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err)
{
	const struct nlg_unix_conf *cf = conf;
	struct nlg_out_unix *u;
	size_t plen = strnlen(cf->path, sizeof(cf->path));
	int rc;

	*st = NULL;
	if (!plen)
		return nlg_err_set(err, EINVAL, "unix feed: no socket path");
	if (plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return nlg_err_set(err, ENAMETOOLONG,
				   "%.*s: socket path too long (at most %zu bytes)", (int)plen,
				   cf->path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (!cf->queue || !cf->max_clients || cf->max_clients > INT32_MAX)
		return nlg_err_set(err, EINVAL, "%s: queue and max_clients must be positive",
				   cf->path);
	u = calloc(1, sizeof(*u));
	if (!u)
		return nlg_err_set(err, ENOMEM, "%s: out of memory", cf->path);
	u->loop = loop;
	u->fd = -1;
	u->qmax = (size_t)cf->queue;
	u->max_clients = (int)cf->max_clients;
	u->cl = calloc((size_t)u->max_clients, sizeof(*u->cl));
	if (!u->cl) {
		rc = nlg_err_set(err, ENOMEM, "%s: out of memory", cf->path);
		goto err;
	}
	u->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		rc = nlg_err_set(err, errno, "%s: socket: %s", cf->path, strerror(errno));
		goto err;
	}
	if ((rc = create_socket(u, cf->path, cf->mode, err)) < 0)
		goto err;
	/* From here the path holds our socket: close unlinks it. */
	memcpy(u->path, cf->path, plen + 1);
	if (nlg_loop_add_fd(loop, u->fd, EPOLLIN, accept_io, u) < 0) {
		rc = nlg_err_set(err, ENOMEM, "%s: cannot watch the listener", cf->path);
		goto err;
	}
	*st = u;
	return 0;
err:
	unix_close_now(u);
	return rc;
}

/* Write until every queue is empty, or timeout_ms passes; 0 or less: one
 * pass of what the sockets take now. Misses are announced first where the
 * gap frame fits, and by client_write as soon as a write makes room. */
static void unix_flush(void *st, int timeout_ms)
{
	struct nlg_out_unix *u = st;
	uint64_t deadline = nlg_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd *pfd;

	if (!u || !u->ncl)
		return;
	pfd = calloc((size_t)u->ncl, sizeof(*pfd));
	if (!pfd)
		return;
	for (int i = 0; i < u->ncl; i++)
		nlg_outq_announce(u->cl[i]->q); /* -ENOMEM: it waits, as when full */
	for (;;) {
		int n = 0;
		uint64_t now;

		for (int i = 0; i < u->ncl;) {
			struct nlg_client *c = u->cl[i];
			if (nlg_outq_len(c->q) && client_write(u, c) < 0) {
				client_remove(u, i);
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

static void unix_close(void *st, int timeout_ms)
{
	struct nlg_out_unix *u = st;
	uint64_t missed = 0, unsent = 0;
	int cut = 0;

	if (!u)
		return;
	unix_flush(u, timeout_ms);
	/* A client whose queue is still not empty at the deadline stopped
	 * reading. Its connection closes with the queue unsent: it reads EOF,
	 * perhaps inside a frame, so it can tell the stream was cut, but not
	 * how much it lost; if its queue stayed full, the gap frame never got
	 * in either. Those misses are counted unannounced (by the queue's
	 * destroy) and, since the counters go with the feed, said here. */
	for (int i = 0; i < u->ncl; i++) {
		struct nlg_outq *q = u->cl[i]->q;
		if (nlg_outq_len(q) || nlg_outq_missed(q)) {
			cut++;
			missed += nlg_outq_missed(q);
			unsent += nlg_outq_len(q);
		}
	}
	if (cut)
		nlg_log("%s: %d client(s) closed with their queue not drained after %d ms: "
			"%" PRIu64 " dropped frames never announced, %" PRIu64 " bytes unsent",
			u->path, cut, timeout_ms > 0 ? timeout_ms : 0, missed, unsent);
	unix_close_now(u);
}

/* ---- sending ---- */

/* Offer one frame, given in pieces, to every client: how many took it. */
static int push_all(struct nlg_out_unix *u, const struct iovec *iov, int n)
{
	int taken = 0;

	u->frames++;
	for (int i = 0; i < u->ncl;) {
		struct nlg_client *c = u->cl[i];
		int rc = nlg_outq_push(c->q, iov, n);

		/* Queued, and written in batches; the loop writes the rest
		 * as soon as it runs (EPOLLOUT). -ENOMEM drops the client
		 * rather than frames it would never hear of. */
		if (rc > 0 && nlg_outq_len(c->q) >= WRITE_BATCH)
			rc = client_write(u, c) < 0 ? -1 : 1;
		else if (rc > 0)
			client_set_out(u, c, 1);
		/* Dropped with nothing queued (a frame over the bound): no
		 * write is coming to let the announcement in, so now. */
		else if (rc == 0 && !nlg_outq_len(c->q) && nlg_outq_announce(c->q) > 0)
			client_set_out(u, c, 1);
		if (rc < 0) {
			client_remove(u, i); /* the last client moved to i */
			continue;
		}
		taken += rc;
		i++;
	}
	return taken;
}

static int unix_send(void *st, const struct nlg_item *it)
{
	uint8_t head[NLG_OUTQ_HEAD_MAX];
	struct iovec iov[2];
	int hl;

	/* A tag past 255 bytes would fit the head buffer some times and not
	 * others (the timestamp's size varies): refuse it always. */
	if (it->taglen > 255 || !it->len)
		return -EINVAL;
	hl = nlg_outq_mp_head(head, sizeof(head), it->tag, it->taglen, it->time_ns);
	if (hl < 0)
		return hl;
	iov[0] = (struct iovec){.iov_base = head, .iov_len = (size_t)hl};
	iov[1] = (struct iovec){.iov_base = (void *)it->body, .iov_len = it->len};
	return push_all(st, iov, 2);
}

static void unix_stats(void *st, void *out)
{
	struct nlg_out_unix *u = st;
	struct nlg_unix_stats *s = out;

	s->frames = u->frames;
	s->bytes = u->qt.bytes;
	s->dropped = u->qt.dropped;
	s->gaps = u->qt.gaps;
	s->unannounced = u->qt.unannounced;
	s->clients = (uint64_t)u->ncl;
	s->accepted = u->accepted;
	s->rejected = u->rejected;
	memcpy(s->path, u->path, sizeof(s->path));
}

const struct nlg_output_ops nlg_unix_output = {
    .name = "unix",
    .desc = "the local feed: msgpack [tag, time, record] frames to every client of a unix socket",
    .opts = unix_opts,
    .conf_size = sizeof(struct nlg_unix_conf),
    .stats_schema = &nlg_unix_stats_schema,
    .open = unix_open,
    .close = unix_close,
    .send = unix_send,
    .flush = unix_flush,
    .stats = unix_stats,
};
