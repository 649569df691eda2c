/* TCP helpers for the network outputs: addresses, non-blocking connect and
 * listen, keepalive and user timeout, backoff with jitter. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nlgate/net.h"

int nlg_net_resolve(struct nlg_netaddr *a, const char *text, const char *def_host, int allow_zero,
		    struct nlg_err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char host[256];
	const char *port, *colon;
	char *end;
	unsigned long pn;
	size_t hl;
	int rc;

	memset(a, 0, sizeof(*a));
	snprintf(a->text, sizeof(a->text), "%s", text);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return nlg_err_set(err, EINVAL, "bad address '%s' (want [v6addr]:port)",
					   a->text);
		hl = (size_t)(close - text - 1);
		if (hl >= sizeof(host))
			return nlg_err_set(err, EINVAL, "bad address '%s': host too long", a->text);
		memcpy(host, text + 1, hl);
		port = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (!colon || strchr(text, ':') != colon)
			return nlg_err_set(err, EINVAL,
					   "bad address '%s' (want host:port, or [v6addr]:port)",
					   a->text);
		hl = (size_t)(colon - text);
		if (hl >= sizeof(host))
			return nlg_err_set(err, EINVAL, "bad address '%s': host too long", a->text);
		memcpy(host, text, hl);
		port = colon + 1;
	}
	host[hl] = 0;
	errno = 0;
	pn = strtoul(port, &end, 10);
	if (!*port || *end || errno || pn > 65535 || (!pn && !allow_zero) || *port == '-' ||
	    *port == '+')
		return nlg_err_set(err, EINVAL, "bad port in '%s' (1-65535)", a->text);
	if (!hl)
		snprintf(host, sizeof(host), "%s", def_host ? def_host : "127.0.0.1");
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		return nlg_err_set(err, rc == EAI_SYSTEM ? errno : EHOSTUNREACH,
				   "cannot resolve '%s': %s", host,
				   rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int nlg_net_connect(const struct nlg_netaddr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	/* Frames are written in batches already: no need for Nagle's wait. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int nlg_net_connected(int fd)
{
	int e = 0;
	socklen_t l = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		return -errno;
	if (e)
		return -e;
	/* SO_ERROR is 0 also while still connecting (a spurious wakeup). */
	struct sockaddr_storage ss;
	l = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &l) < 0)
		return errno == ENOTCONN ? -EINPROGRESS : -errno;
	return 0;
}

int nlg_net_listen(const struct nlg_netaddr *a, struct nlg_err *err)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return nlg_err_set(err, errno, "%s: socket: %s", a->text, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		close(fd);
		return nlg_err_set(err, e, "%s: %s", a->text, strerror(e));
	}
	return fd;
}

int nlg_net_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &l) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

int nlg_net_tune(int fd, unsigned idle_s, unsigned timeout_ms)
{
	int one = 1;

	if (idle_s) {
		int idle = (int)idle_s, intvl = idle_s >= 3 ? (int)idle_s / 3 : 1, cnt = 3;
		if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0)
			return -errno;
	}
	if (timeout_ms) {
		unsigned t = timeout_ms;
		if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t, sizeof(t)) < 0)
			return -errno;
	}
	return 0;
}

void nlg_backoff_init(struct nlg_backoff *b, uint32_t min_ms, uint32_t max_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	b->min_ms = min_ms ? min_ms : 1;
	b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
	b->cur_ms = b->min_ms;
	/* Instances started together must not retry together. */
	b->seed = (((uint64_t)ts.tv_nsec << 16) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)b) | 1;
}

uint32_t nlg_backoff_next(struct nlg_backoff *b)
{
	uint32_t span = b->cur_ms - b->min_ms + 1, wait;

	/* xorshift64: jitter needs spread, not secrecy. */
	b->seed ^= b->seed << 13;
	b->seed ^= b->seed >> 7;
	b->seed ^= b->seed << 17;
	wait = b->min_ms + (uint32_t)(b->seed % span);
	b->cur_ms = b->cur_ms > b->max_ms / 2 ? b->max_ms : b->cur_ms * 2;
	return wait;
}

void nlg_backoff_reset(struct nlg_backoff *b)
{
	b->cur_ms = b->min_ms;
}
