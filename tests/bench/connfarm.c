/* Connection farm for the socket benchmark: builds N established TCP
 * connections on loopback in the current network namespace, spread over
 * several processes (both ends of a connection live in one process), then
 * reports ready and sleeps until it is sent SIGTERM or SIGINT.
 *
 * Usage: bench_connfarm [-n CONNS] [-p PROCS] [-b PORT] [-r READYFILE] [-6]
 *
 * Every 4-tuple is chosen explicitly, so the ephemeral port range plays no
 * part: process k listens on 127.0.0.1:(PORT + k) and its clients bind
 * 127.1.k.1:(10000 + j). With -6 the odd processes use [::1] instead; their
 * clients share ::1, so they take source ports 10000 + k * per + j.
 * Clients are connected in batches smaller than the listen backlog and the
 * batch is accepted before the next one, so no SYN is ever dropped. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define FARM_BATCH	1024 /* connects before an accept round; < backlog */
#define FARM_BACKLOG	4096
#define FARM_SPORT_BASE 10000
#define FARM_SPORT_MAX	65000
#define FARM_MAX_PROCS	64

struct farm_report {
	int ok;	   /* 1 when the process built all its connections */
	int conns; /* connections built */
	int err;   /* errno of the failure, 0 if none */
	char what[48];
};

struct farm_opts {
	long conns;
	int procs;
	int port;
	int mixed; /* odd processes on IPv6 */
	const char *ready;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_connfarm [-n CONNS] [-p PROCS] [-b PORT] [-r READYFILE] [-6]\n"
		   "  -n CONNS     established connections in total (default 50000)\n"
		   "  -p PROCS     processes to spread them over (default 6)\n"
		   "  -b PORT      first listener port (default 5000; below the client ports)\n"
		   "  -r FILE      write \"CONNS SOCKETS\" to FILE when ready\n"
		   "  -6           odd processes use [::1] instead of 127.0.0.1\n");
}

static int fail(struct farm_report *r, const char *what)
{
	r->ok = 0;
	r->err = errno;
	snprintf(r->what, sizeof(r->what), "%s", what);
	return -r->err;
}

/* Fill ss with the listener or a client address of process k. */
static socklen_t farm_addr(struct sockaddr_storage *ss, int v6, int k, int client, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons((uint16_t)port);
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	/* 127.0.0.1 for listeners, 127.1.k.1 for the clients of process k */
	a->sin_addr.s_addr = client ? htonl(0x7f010001u | ((uint32_t)k << 8)) : htonl(0x7f000001u);
	a->sin_port = htons((uint16_t)port);
	return sizeof(*a);
}

/* Build `per` connections for process k; the descriptors are kept open. */
static int farm_build(const struct farm_opts *o, int k, long per, struct farm_report *r)
{
	int v6 = o->mixed && (k & 1);
	int fam = v6 ? AF_INET6 : AF_INET;
	long port0 = FARM_SPORT_BASE + (v6 ? (long)k * per : 0);
	struct sockaddr_storage ls, cs;
	socklen_t llen = farm_addr(&ls, v6, k, 0, o->port + k);
	int one = 1;
	int lfd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0)
		return fail(r, "socket (listener)");
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return fail(r, "SO_REUSEADDR");
	if (bind(lfd, (struct sockaddr *)&ls, llen) < 0)
		return fail(r, "bind (listener)");
	if (listen(lfd, FARM_BACKLOG) < 0)
		return fail(r, "listen");

	/* RST on close: tearing the farm down leaves no TIME-WAIT behind. */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	for (long done = 0; done < per;) {
		long batch = per - done < FARM_BATCH ? per - done : FARM_BATCH;

		for (long b = 0; b < batch; b++) {
			socklen_t clen = farm_addr(&cs, v6, k, 1, (int)(port0 + done + b));
			int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);

			if (fd < 0)
				return fail(r, "socket (client)");
			if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
				return fail(r, "SO_LINGER");
			if (bind(fd, (struct sockaddr *)&cs, clen) < 0)
				return fail(r, "bind (client)");
			if (connect(fd, (struct sockaddr *)&ls, llen) < 0)
				return fail(r, "connect");
		}
		for (long b = 0; b < batch; b++) {
			if (accept4(lfd, NULL, NULL, SOCK_CLOEXEC) < 0)
				return fail(r, "accept");
			r->conns++;
		}
		done += batch;
	}
	r->ok = 1;
	return 0;
}

static int farm_child(const struct farm_opts *o, int k, long per, int wfd)
{
	struct farm_report r = {0};

	/* The farm dies with its parent, however the parent ends. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	farm_build(o, k, per, &r);
	if (write(wfd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		return 1;
	close(wfd);
	if (!r.ok)
		return 1;
	for (;;)
		pause();
}

static int parse_opts(int argc, char **argv, struct farm_opts *o)
{
	int c;

	*o = (struct farm_opts){.conns = 50000, .procs = 6, .port = 5000};
	while ((c = getopt(argc, argv, "n:p:b:r:6h")) != -1) {
		switch (c) {
		case 'n':
			o->conns = strtol(optarg, NULL, 10);
			break;
		case 'p':
			o->procs = atoi(optarg);
			break;
		case 'b':
			o->port = atoi(optarg);
			break;
		case 'r':
			o->ready = optarg;
			break;
		case '6':
			o->mixed = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->conns <= 0 || o->procs <= 0 || o->procs > FARM_MAX_PROCS ||
	    o->port <= 0 || o->port + o->procs > FARM_SPORT_BASE) {
		fprintf(stderr, "bench_connfarm: bad arguments (try -h)\n");
		return -1;
	}
	return 0;
}

/* Each process holds 2 * per descriptors plus a few; raise the soft limit
 * to the hard one and refuse early rather than fail half-way. */
static int check_limits(const struct farm_opts *o, long per)
{
	struct rlimit rl;
	long need = 2 * per + 16;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if ((rlim_t)need > rl.rlim_cur && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((rlim_t)need > rl.rlim_cur) {
		fprintf(stderr,
			"bench_connfarm: %ld connections per process need %ld fds, limit is %lu; "
			"use more processes (-p)\n",
			per, need, (unsigned long)rl.rlim_cur);
		return -EMFILE;
	}
	long v6procs = o->mixed ? o->procs / 2 : 0;
	long last = FARM_SPORT_BASE + (v6procs ? (long)o->procs * per : per);

	if (last > FARM_SPORT_MAX) {
		fprintf(stderr, "bench_connfarm: too many connections for the source ports\n");
		return -ERANGE;
	}
	return 0;
}

static int write_ready(const char *path, long conns)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%ld %ld\n", conns, 2 * conns);
	if (fclose(f) != 0)
		return -errno;
	/* rename: a reader never sees a half-written file */
	return rename(tmp, path) < 0 ? -errno : 0;
}

static void kill_all(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
}

int main(int argc, char **argv)
{
	struct farm_opts o;
	pid_t pids[FARM_MAX_PROCS] = {0};
	int pfd[2], rc = parse_opts(argc, argv, &o);
	long per, total = 0;
	sigset_t set;

	if (rc)
		return rc > 0 ? 0 : 2;
	per = (o.conns + o.procs - 1) / o.procs;
	if (check_limits(&o, per) < 0)
		return 1;
	/* Signals are taken synchronously by sigwait below; children unblock. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("bench_connfarm: pipe");
		return 1;
	}
	for (int k = 0; k < o.procs; k++) {
		long mine = per;

		if ((long)k * per + mine > o.conns)
			mine = o.conns - (long)k * per;
		if (mine <= 0)
			break;
		pids[k] = fork();
		if (pids[k] < 0) {
			perror("bench_connfarm: fork");
			kill_all(pids, k);
			return 1;
		}
		if (pids[k] == 0) {
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			close(pfd[0]);
			_exit(farm_child(&o, k, mine, pfd[1]));
		}
	}
	close(pfd[1]);
	for (;;) {
		struct farm_report r;
		ssize_t n = read(pfd[0], &r, sizeof(r));

		if (n == 0)
			break;
		if (n != (ssize_t)sizeof(r)) {
			if (n < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "bench_connfarm: short report from a worker\n");
			kill_all(pids, o.procs);
			return 1;
		}
		if (!r.ok) {
			fprintf(stderr,
				"bench_connfarm: worker failed after %d connections: %s: %s\n",
				r.conns, r.what, strerror(r.err));
			kill_all(pids, o.procs);
			return 1;
		}
		total += r.conns;
	}
	close(pfd[0]);
	if (total != o.conns) {
		fprintf(stderr, "bench_connfarm: built %ld of %ld connections\n", total, o.conns);
		kill_all(pids, o.procs);
		return 1;
	}
	printf("ready %ld connections %ld sockets\n", total, 2 * total);
	fflush(stdout);
	if (o.ready && write_ready(o.ready, total) < 0) {
		perror("bench_connfarm: ready file");
		kill_all(pids, o.procs);
		return 1;
	}
	/* Hold until told to stop, or until a worker dies (then the farm is no
	 * longer what it claims to be: stop with an error). */
	for (;;) {
		int sig;

		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGCHLD) {
			fprintf(stderr, "bench_connfarm: a worker exited\n");
			kill_all(pids, o.procs);
			return 1;
		}
		kill_all(pids, o.procs);
		return 0;
	}
}
