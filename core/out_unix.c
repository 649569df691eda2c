/* The local feed: a listening unix stream socket that copies every frame to
 * every client through its own bounded queue (core/outq.c). A client that
 * falls behind loses whole frames, counted, and is told so by an
 * `nlgate.gap` frame as soon as its queue has room again, or with the next
 * frame it gets, whichever comes first, and before the feed closes. Never
 * blocks the loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "nlgate/feed.h"
#include "nlgate/out_unix.h"
#include "nlgate/outq.h"

struct nlg_out_unix {
	struct nlg_loop *loop;
	int fd; /* until the feed owns it */
	struct nlg_feed *feed;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* the socket file we bound, so close unlinks only ours */
	ino_t ino;
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

/* The feed closes its clients and the listener; the path goes if ours. */
static void unix_close_now(struct nlg_out_unix *u, int timeout_ms)
{
	struct stat sb;

	if (u->feed)
		nlg_feed_free(u->feed, timeout_ms);
	else if (u->fd >= 0)
		close(u->fd);
	/* Unlink only the socket we bound: a newer instance may own the path. */
	if (u->path[0] && lstat(u->path, &sb) == 0 && sb.st_dev == u->dev && sb.st_ino == u->ino)
		unlink(u->path);
	free(u);
}

static int unix_open(struct nlg_loop *loop, const void *conf, void **st, struct nlg_err *err)
{
	const struct nlg_unix_conf *cf = conf;
	struct nlg_out_unix *u;
	struct nlg_feed_conf fc = {0};
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
	fc.queue = (size_t)cf->queue;
	fc.max_clients = (int)cf->max_clients;
	u = calloc(1, sizeof(*u));
	if (!u)
		return nlg_err_set(err, ENOMEM, "%s: out of memory", cf->path);
	u->loop = loop;
	u->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		rc = nlg_err_set(err, errno, "%s: socket: %s", cf->path, strerror(errno));
		goto err;
	}
	if ((rc = create_socket(u, cf->path, cf->mode, err)) < 0)
		goto err;
	/* From here the path holds our socket: close unlinks it. */
	memcpy(u->path, cf->path, plen + 1);
	fc.name = u->path;
	u->feed = nlg_feed_new(loop, u->fd, &fc); /* owns the fd, also on failure */
	u->fd = -1;
	if (!u->feed) {
		rc = nlg_err_set(err, ENOMEM, "%s: cannot watch the listener", cf->path);
		goto err;
	}
	*st = u;
	return 0;
err:
	unix_close_now(u, 0);
	return rc;
}

static void unix_flush(void *st, int timeout_ms)
{
	struct nlg_out_unix *u = st;

	if (u)
		nlg_feed_flush(u->feed, timeout_ms);
}

static void unix_close(void *st, int timeout_ms)
{
	if (st)
		unix_close_now(st, timeout_ms);
}

static uint64_t unix_pending(void *st)
{
	return nlg_feed_pending(((struct nlg_out_unix *)st)->feed);
}

/* ---- sending ---- */

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
	return nlg_feed_push(((struct nlg_out_unix *)st)->feed, iov, 2);
}

static void unix_stats(void *st, void *out)
{
	struct nlg_out_unix *u = st;
	struct nlg_unix_stats *s = out;
	struct nlg_feed_counts c;

	nlg_feed_counts(u->feed, &c);
	s->frames = c.frames;
	s->bytes = c.q.bytes;
	s->dropped = c.q.dropped;
	s->gaps = c.q.gaps;
	s->unannounced = c.q.unannounced;
	s->clients = c.clients;
	s->accepted = c.accepted;
	s->rejected = c.rejected;
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
    .pending = unix_pending,
};
