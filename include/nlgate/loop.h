/* A small epoll event loop: file events, millisecond timers, stop.
 * Modelled on Redis's ae: the loop knows nothing of what it drives. */
#ifndef NLGATE_LOOP_H
#define NLGATE_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct nlg_loop;

typedef void nlg_io_fn(struct nlg_loop *loop, int fd, uint32_t events, void *data);
/* Returns the next delay in ms, or a negative value to delete the timer. */
typedef int64_t nlg_timer_fn(struct nlg_loop *loop, int64_t id, void *data);

struct nlg_loop *nlg_loop_create(void);
void nlg_loop_destroy(struct nlg_loop *loop); /* accepts NULL */

/* events: EPOLLIN / EPOLLOUT. add replaces an existing registration. */
int nlg_loop_add_fd(struct nlg_loop *loop, int fd, uint32_t events, nlg_io_fn *fn, void *data);
int nlg_loop_mod_fd(struct nlg_loop *loop, int fd, uint32_t events);
void nlg_loop_del_fd(struct nlg_loop *loop, int fd);
/* Stop watching fd for ms, then watch it again as before. A source under a
 * flood uses it to read in larger batches: fewer wakeups for the same
 * events, each waiting at most ms longer. No-op if fd is already paused. */
int nlg_loop_pause_fd(struct nlg_loop *loop, int fd, uint64_t ms);

/* Returns a timer id (> 0) or a negative errno. */
int64_t nlg_loop_add_timer(struct nlg_loop *loop, uint64_t delay_ms, nlg_timer_fn *fn, void *data);
void nlg_loop_del_timer(struct nlg_loop *loop, int64_t id);

/* Run one iteration, waiting at most timeout_ms (-1: until the next timer). */
int nlg_loop_run_once(struct nlg_loop *loop, int timeout_ms);
/* Run until nlg_loop_stop() (returns at once if it was already stopped). */
int nlg_loop_run(struct nlg_loop *loop);
void nlg_loop_stop(struct nlg_loop *loop);
/* Clear a stop so the loop can be run again (tests drive it in slices). */
void nlg_loop_resume(struct nlg_loop *loop);
int nlg_loop_stopped(const struct nlg_loop *loop);

/* A clock for the loop's timers in place of the monotonic one (the test
 * harness's virtual clock): now in ms, read each time the loop needs it.
 * Set it before any timer is added; fn NULL goes back to the real clock. */
typedef uint64_t nlg_clock_fn(void *data);
void nlg_loop_set_clock(struct nlg_loop *loop, nlg_clock_fn *fn, void *data);
uint64_t nlg_loop_now_ms(const struct nlg_loop *loop);
/* The earliest timer deadline on the loop's clock: 0 with *when_ms, or
 * -ENOENT without timers. */
int nlg_loop_next_timer(const struct nlg_loop *loop, uint64_t *when_ms);
/* Fire every timer due at the clock's now, in order of deadline, including
 * those (re)armed while firing that are due by then; no fd is polled.
 * Returns how many fired. */
int nlg_loop_fire_due(struct nlg_loop *loop);

#endif
