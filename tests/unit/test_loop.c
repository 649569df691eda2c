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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(timers_fire_in_due_order),
	    cmocka_unit_test(repeating_timer_deletes_another_and_stops),
	    cmocka_unit_test(fd_events_and_delete_inside_handler),
	    cmocka_unit_test(paused_fd_waits_then_resumes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
