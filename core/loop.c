/* A small epoll event loop in the manner of Redis's ae: file events keyed by
 * fd, millisecond timers kept in a short unsorted array (a pipeline has a
 * handful), and a stop flag. It knows nothing of what it drives. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nlgate/common.h"
#include "nlgate/loop.h"

struct nlg_fev {
	nlg_io_fn *fn;
	void *data;
	uint32_t events;    /* 0: not registered */
	uint64_t resume_ms; /* paused until then; 0: watched */
};

#define NLG_MAX_PAUSED 16

struct nlg_timer {
	int64_t id;
	uint64_t when_ms;
	nlg_timer_fn *fn;
	void *data;
};

struct nlg_loop {
	int epfd;
	int stop;
	struct nlg_fev *fevs; /* indexed by fd */
	int nfevs;
	struct nlg_timer *timers;
	size_t ntimers, captimers;
	int paused[NLG_MAX_PAUSED]; /* fds whose resume_ms is set */
	int npaused;
	int64_t next_id;
	/* A virtual clock (the test harness's) in place of nlg_now_ms. */
	nlg_clock_fn *clock;
	void *clock_data;
};

/* One predictable branch on the real path. */
static inline uint64_t now_ms(const struct nlg_loop *loop)
{
	return loop->clock ? loop->clock(loop->clock_data) : nlg_now_ms();
}

struct nlg_loop *nlg_loop_create(void)
{
	struct nlg_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	loop->next_id = 1;
	return loop;
}

void nlg_loop_destroy(struct nlg_loop *loop)
{
	if (!loop)
		return;
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->fevs);
	free(loop->timers);
	free(loop);
}

static int fev_grow(struct nlg_loop *loop, int fd)
{
	int n = loop->nfevs ? loop->nfevs : 64;
	struct nlg_fev *f;

	while (n <= fd)
		n *= 2;
	if (n == loop->nfevs)
		return 0;
	f = realloc(loop->fevs, (size_t)n * sizeof(*f));
	if (!f)
		return -ENOMEM;
	memset(f + loop->nfevs, 0, (size_t)(n - loop->nfevs) * sizeof(*f));
	loop->fevs = f;
	loop->nfevs = n;
	return 0;
}

int nlg_loop_add_fd(struct nlg_loop *loop, int fd, uint32_t events, nlg_io_fn *fn, void *data)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	int op, rc;

	if (fd < 0)
		return -EBADF;
	if ((rc = fev_grow(loop, fd)) < 0)
		return rc;
	op = loop->fevs[fd].events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(loop->epfd, op, fd, &ev) < 0)
		return -errno;
	loop->fevs[fd] = (struct nlg_fev){.fn = fn, .data = data, .events = events | EPOLLERR};
	return 0;
}

int nlg_loop_mod_fd(struct nlg_loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (fd < 0 || fd >= loop->nfevs || !loop->fevs[fd].events)
		return -ENOENT;
	/* A paused fd takes its new events when it resumes. */
	if (!loop->fevs[fd].resume_ms && epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	loop->fevs[fd].events = events | EPOLLERR;
	return 0;
}

static void unpause(struct nlg_loop *loop, int i)
{
	loop->fevs[loop->paused[i]].resume_ms = 0;
	loop->paused[i] = loop->paused[--loop->npaused];
}

void nlg_loop_del_fd(struct nlg_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->nfevs || !loop->fevs[fd].events)
		return;
	for (int i = 0; i < loop->npaused; i++)
		if (loop->paused[i] == fd)
			unpause(loop, i);
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->fevs[fd] = (struct nlg_fev){0};
}

int nlg_loop_pause_fd(struct nlg_loop *loop, int fd, uint64_t ms)
{
	struct epoll_event ev = {.events = 0, .data.fd = fd};

	if (fd < 0 || fd >= loop->nfevs || !loop->fevs[fd].events)
		return -ENOENT;
	if (loop->fevs[fd].resume_ms)
		return 0;
	if (loop->npaused == NLG_MAX_PAUSED)
		return -ENOSPC;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	loop->fevs[fd].resume_ms = now_ms(loop) + (ms ? ms : 1);
	loop->paused[loop->npaused++] = fd;
	return 0;
}

static void resume_due(struct nlg_loop *loop)
{
	uint64_t now = now_ms(loop);

	for (int i = 0; i < loop->npaused;) {
		int fd = loop->paused[i];
		struct epoll_event ev = {.events = loop->fevs[fd].events & ~EPOLLERR,
					 .data.fd = fd};
		if (loop->fevs[fd].resume_ms > now) {
			i++;
			continue;
		}
		epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
		unpause(loop, i);
	}
}

int64_t nlg_loop_add_timer(struct nlg_loop *loop, uint64_t delay_ms, nlg_timer_fn *fn, void *data)
{
	if (loop->ntimers == loop->captimers) {
		size_t cap = loop->captimers ? loop->captimers * 2 : 8;
		struct nlg_timer *t = realloc(loop->timers, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		loop->timers = t;
		loop->captimers = cap;
	}
	loop->timers[loop->ntimers++] = (struct nlg_timer){
	    .id = loop->next_id,
	    .when_ms = now_ms(loop) + delay_ms,
	    .fn = fn,
	    .data = data,
	};
	return loop->next_id++;
}

void nlg_loop_del_timer(struct nlg_loop *loop, int64_t id)
{
	for (size_t i = 0; i < loop->ntimers; i++) {
		if (loop->timers[i].id == id) {
			loop->timers[i] = loop->timers[--loop->ntimers];
			return;
		}
	}
}

static int until(uint64_t when, uint64_t now)
{
	return when <= now ? 0 : (when - now > 3600000 ? 3600000 : (int)(when - now));
}

static int next_timeout(const struct nlg_loop *loop, int timeout_ms)
{
	uint64_t now = now_ms(loop);

	for (size_t i = 0; i < loop->ntimers; i++) {
		int d = until(loop->timers[i].when_ms, now);
		if (timeout_ms < 0 || d < timeout_ms)
			timeout_ms = d;
	}
	for (int i = 0; i < loop->npaused; i++) {
		int d = until(loop->fevs[loop->paused[i]].resume_ms, now);
		if (timeout_ms < 0 || d < timeout_ms)
			timeout_ms = d;
	}
	return timeout_ms;
}

/* Fire due timers. A handler may add or delete timers (its own included), so
 * find each due one afresh by id rather than holding an index across calls.
 * Returns how many fired. */
static int run_timers(struct nlg_loop *loop)
{
	uint64_t now = now_ms(loop);
	int64_t limit = loop->next_id; /* timers added while firing wait a turn */
	int fired = 0;

	for (;;) {
		struct nlg_timer *due = NULL;
		for (size_t i = 0; i < loop->ntimers; i++) {
			struct nlg_timer *t = &loop->timers[i];
			if (t->when_ms <= now && t->id < limit &&
			    (!due || t->when_ms < due->when_ms))
				due = t;
		}
		if (!due || loop->stop)
			return fired;
		fired++;
		int64_t id = due->id;
		due->when_ms = UINT64_MAX; /* not due again until rescheduled */
		int64_t next = due->fn(loop, id, due->data);
		for (size_t i = 0; i < loop->ntimers; i++) {
			if (loop->timers[i].id == id) {
				if (next < 0)
					loop->timers[i] = loop->timers[--loop->ntimers];
				else
					loop->timers[i].when_ms = now_ms(loop) + (uint64_t)next;
				break;
			}
		}
	}
}

int nlg_loop_run_once(struct nlg_loop *loop, int timeout_ms)
{
	struct epoll_event evs[64];
	int n;

	n = epoll_wait(loop->epfd, evs, NLG_ARRAY_SIZE(evs), next_timeout(loop, timeout_ms));
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	for (int i = 0; i < n && !loop->stop; i++) {
		int fd = evs[i].data.fd;
		/* An earlier handler in this batch may have deleted this fd. */
		if (fd >= loop->nfevs || !loop->fevs[fd].events)
			continue;
		struct nlg_fev *f = &loop->fevs[fd];
		f->fn(loop, fd, evs[i].events, f->data);
	}
	resume_due(loop);
	run_timers(loop);
	return n;
}

void nlg_loop_set_clock(struct nlg_loop *loop, nlg_clock_fn *fn, void *data)
{
	loop->clock = fn;
	loop->clock_data = data;
}

uint64_t nlg_loop_now_ms(const struct nlg_loop *loop)
{
	return now_ms(loop);
}

int nlg_loop_next_timer(const struct nlg_loop *loop, uint64_t *when_ms)
{
	uint64_t when = UINT64_MAX;

	for (size_t i = 0; i < loop->ntimers; i++)
		if (loop->timers[i].when_ms < when)
			when = loop->timers[i].when_ms;
	if (when == UINT64_MAX)
		return -ENOENT;
	*when_ms = when;
	return 0;
}

int nlg_loop_fire_due(struct nlg_loop *loop)
{
	int total = 0, n;

	/* Timers (re)armed by a firing that are already due fire too, still
	 * by deadline: each round takes those due now, earliest first. A
	 * timer re-arming itself with 0 ms would never let us leave: bounded. */
	while (total < 1000000 && (n = run_timers(loop)) > 0)
		total += n;
	return total;
}

int nlg_loop_run(struct nlg_loop *loop)
{
	while (!loop->stop) {
		int rc = nlg_loop_run_once(loop, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void nlg_loop_stop(struct nlg_loop *loop)
{
	loop->stop = 1;
}

void nlg_loop_resume(struct nlg_loop *loop)
{
	loop->stop = 0;
}

int nlg_loop_stopped(const struct nlg_loop *loop)
{
	return loop->stop;
}
