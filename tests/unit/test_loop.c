/* core/loop.c: file events, timers in due order, timers and fds removed from
 * inside handlers, stop and resume. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "nlgate/common.h"
#include "nlgate/loop.h"

struct tlog {
	int64_t order[16];
	int n;
	int64_t other; /* a timer to delete */
	int repeat;
};

static int64_t t_record(struct nlg_loop *loop, int64_t id, void *data)
{
	struct tlog *l = data;
	NLG_UNUSED(loop);
	l->order[l->n++] = id;
	return -1;
}

static void timers_fire_in_due_order(void **state)
{
	struct nlg_loop *loop = nlg_loop_create();
	struct tlog l = {0};
	(void)state;

	int64_t late = nlg_loop_add_timer(loop, 30, t_record, &l);
	int64_t early = nlg_loop_add_timer(loop, 0, t_record, &l);
	int64_t mid = nlg_loop_add_timer(loop, 10, t_record, &l);
	uint64_t start = nlg_now_ms();
	while (l.n < 3 && nlg_now_ms() - start < 2000)
		nlg_loop_run_once(loop, -1);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.order[0], early);
	assert_int_equal(l.order[1], mid);
	assert_int_equal(l.order[2], late);
	assert_true(nlg_now_ms() - start >= 30);
	nlg_loop_destroy(loop);
}

static int64_t t_repeat(struct nlg_loop *loop, int64_t id, void *data)
{
	struct tlog *l = data;
	l->order[l->n++] = id;
	if (l->other) {
		nlg_loop_del_timer(loop, l->other);
		l->other = 0;
	}
	if (l->n == 3) {
		nlg_loop_stop(loop);
		return -1;
	}
	return 1;
}

static void repeating_timer_deletes_another_and_stops(void **state)
{
	struct nlg_loop *loop = nlg_loop_create();
	struct tlog l = {0}, never = {0};
	(void)state;

	nlg_loop_add_timer(loop, 0, t_repeat, &l);
	l.other = nlg_loop_add_timer(loop, 50, t_record, &never);
	assert_int_equal(nlg_loop_run(loop), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(never.n, 0);
	/* stopped stays stopped until resumed */
	assert_true(nlg_loop_stopped(loop));
	assert_int_equal(nlg_loop_run(loop), 0);
	nlg_loop_resume(loop);
	assert_false(nlg_loop_stopped(loop));
	nlg_loop_destroy(loop);
}

struct fdctx {
	int reads;
	int other_fd;
};

static void on_read(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct fdctx *c = data;
	char b[16];
	assert_true(events & EPOLLIN);
	assert_true(read(fd, b, sizeof(b)) > 0);
	c->reads++;
	/* the other fd is also ready in this batch: deleting it must be safe */
	nlg_loop_del_fd(loop, c->other_fd);
}

static void fd_events_and_delete_inside_handler(void **state)
{
	struct nlg_loop *loop = nlg_loop_create();
	int a[2], b[2];
	struct fdctx ca = {0}, cb = {0};
	(void)state;

	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	ca.other_fd = b[0];
	cb.other_fd = a[0];
	assert_int_equal(nlg_loop_add_fd(loop, a[0], EPOLLIN, on_read, &ca), 0);
	assert_int_equal(nlg_loop_add_fd(loop, b[0], EPOLLIN, on_read, &cb), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	assert_int_equal(nlg_loop_run_once(loop, 100), 2);
	/* exactly one handler ran: it removed the other before its turn */
	assert_int_equal(ca.reads + cb.reads, 1);
	assert_int_equal(nlg_loop_mod_fd(loop, 1000, EPOLLIN), -ENOENT);
	nlg_loop_destroy(loop);
	close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void count_read(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	char b[16];
	NLG_UNUSED(loop);
	NLG_UNUSED(events);
	assert_true(read(fd, b, sizeof(b)) > 0);
	(*(int *)data)++;
}

static void paused_fd_waits_then_resumes(void **state)
{
	struct nlg_loop *loop = nlg_loop_create();
	int p[2], reads = 0;
	(void)state;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(nlg_loop_add_fd(loop, p[0], EPOLLIN, count_read, &reads), 0);
	assert_int_equal(nlg_loop_pause_fd(loop, p[0], 40), 0);
	assert_int_equal(nlg_loop_pause_fd(loop, p[0], 1000), 0); /* already paused: kept */
	assert_int_equal(write(p[1], "x", 1), 1);
	uint64_t start = nlg_now_ms();
	assert_int_equal(nlg_loop_run_once(loop, 0), 0);
	assert_int_equal(reads, 0);
	while (!reads && nlg_now_ms() - start < 2000)
		nlg_loop_run_once(loop, -1); /* the pause bounds the wait */
	assert_int_equal(reads, 1);
	assert_true(nlg_now_ms() - start >= 40);
	assert_true(nlg_now_ms() - start < 1000);
	/* watched again as before */
	assert_int_equal(write(p[1], "y", 1), 1);
	assert_int_equal(nlg_loop_run_once(loop, 100), 1);
	assert_int_equal(reads, 2);
	/* deleting a paused fd forgets the pause */
	assert_int_equal(nlg_loop_pause_fd(loop, p[0], 50), 0);
	nlg_loop_del_fd(loop, p[0]);
	assert_int_equal(nlg_loop_pause_fd(loop, p[0], 50), -ENOENT);
	nlg_loop_destroy(loop);
	close(p[0]), close(p[1]);
}

/* ---- the virtual clock ---------------------------------------------------- */

struct vlog {
	uint64_t *clock;
	char what[64]; /* which timer fired, in order: 'a', 'b', 'c' */
	uint64_t at[64];
	int n;
	struct nlg_loop *loop;
	int b_left; /* b re-arms itself this many times */
	int added;  /* c was added from inside a firing */
};

static uint64_t vclock(void *data)
{
	return *(uint64_t *)data;
}

static void vnote(struct vlog *l, char c)
{
	assert_true(l->n < 64);
	l->what[l->n] = c;
	l->at[l->n++] = *l->clock;
}

static int64_t v_c(struct nlg_loop *loop, int64_t id, void *data)
{
	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	vnote(data, 'c');
	return -1;
}

static int64_t v_a(struct nlg_loop *loop, int64_t id, void *data)
{
	struct vlog *l = data;
	NLG_UNUSED(id);
	vnote(l, 'a');
	if (!l->added++) /* scheduled on the virtual clock: 15 ms from now */
		nlg_loop_add_timer(loop, 15, v_c, l);
	return 10; /* every 10 ms */
}

static int64_t v_b(struct nlg_loop *loop, int64_t id, void *data)
{
	struct vlog *l = data;
	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	vnote(l, 'b');
	return --l->b_left > 0 ? 0 : -1; /* re-armed due at once: fires again now */
}

/* The harness's advance: step to each deadline, fire what is due there. */
static void advance_to(struct nlg_loop *loop, uint64_t *clock, uint64_t target)
{
	uint64_t when;

	while (nlg_loop_next_timer(loop, &when) == 0 && when <= target) {
		if (when > *clock)
			*clock = when;
		nlg_loop_fire_due(loop);
	}
	*clock = target;
	nlg_loop_fire_due(loop);
}

static void virtual_clock_fires_in_deadline_order(void **state)
{
	struct nlg_loop *loop = nlg_loop_create();
	uint64_t clock = 1000000, when = 0;
	struct vlog l = {.clock = &clock, .loop = loop, .b_left = 3};
	(void)state;

	nlg_loop_set_clock(loop, vclock, &clock);
	assert_int_equal(nlg_loop_next_timer(loop, &when), -ENOENT);
	assert_int_equal(nlg_loop_now_ms(loop), 1000000);
	nlg_loop_add_timer(loop, 10, v_a, &l);
	nlg_loop_add_timer(loop, 25, v_b, &l);
	assert_int_equal(nlg_loop_next_timer(loop, &when), 0);
	assert_int_equal(when, 1000010);
	/* nothing is due until the clock moves, however long we wait */
	assert_int_equal(nlg_loop_fire_due(loop), 0);
	assert_int_equal(nlg_loop_run_once(loop, 0), 0);
	assert_int_equal(l.n, 0);

	advance_to(loop, &clock, 1000040);
	/* a at 10, 20, 30, 40; c added at 10 (+15) fires at 25, as does b,
	 * which re-arms with 0 twice; all in order of deadline */
	assert_int_equal(l.n, 8);
	assert_memory_equal(l.what, "aabbbcaa", 8);
	uint64_t at[] = {10, 20, 25, 25, 25, 25, 30, 40};
	for (int i = 0; i < 8; i++)
		assert_int_equal(l.at[i], 1000000 + at[i]);
	assert_int_equal(clock, 1000040);
	/* b was deleted after its third firing, c after its one: only a is left */
	assert_int_equal(nlg_loop_next_timer(loop, &when), 0);
	assert_int_equal(when, 1000050);
	advance_to(loop, &clock, 1000049);
	assert_int_equal(l.n, 8);
	advance_to(loop, &clock, 1000050);
	assert_int_equal(l.n, 9);
	assert_int_equal(l.at[8], 1000050);
	nlg_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(timers_fire_in_due_order),
	    cmocka_unit_test(repeating_timer_deletes_another_and_stops),
	    cmocka_unit_test(fd_events_and_delete_inside_handler),
	    cmocka_unit_test(paused_fd_waits_then_resumes),
	    cmocka_unit_test(virtual_clock_fires_in_deadline_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
