/* Unit tests for core/out_unix.c over real unix sockets in a temp directory,
 * through its output ops (nlg_unix_output): whole frames in order, bounded
 * queues with drops and `nlgate.gap`, every miss announced (after a burst
 * and silence, to a reader that resumes, at shutdown), client removal, the
 * socket file (made with its mode, never through a path someone could swap;
 * what is at the path refused or replaced), error messages, max_clients,
 * flush and close; the option table and the stats schema. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "nlgate/encode.h"
#include "nlgate/loop.h"
#include "nlgate/opt.h"
#include "nlgate/out_unix.h"

#define OPS (&nlg_unix_output)

struct fx {
	char dir[64];
	char path[128];
	struct nlg_loop *loop;
	struct nlg_unix_conf conf;
	void *u; /* the output's state */
	struct nlg_unix_stats stats;
	struct nlg_buf fr; /* a whole frame: head, then the body */
	size_t headlen;
	msgpack_packer pk;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/nlg-out-unix-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/feed.sock", f->dir);
	f->loop = nlg_loop_create();
	assert_non_null(f->loop);
	nlg_buf_init(&f->fr);
	nlg_mp_init(&f->pk, &f->fr);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->u)
		OPS->close(f->u, 0);
	nlg_loop_destroy(f->loop);
	nlg_buf_free(&f->fr);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A conf as the option table fills it, with path, and queue and
 * max_clients when not 0. */
static void fx_conf(struct fx *f, struct nlg_unix_conf *c, size_t queue_bytes, int max_clients)
{
	char q[32], m[32];
	const char *values[5] = {NULL, NULL, NULL, NULL, NULL};
	struct nlg_err err = {{0}};

	assert_int_equal(nlg_opt_count(OPS->opts), 4);
	snprintf(q, sizeof(q), "%zu", queue_bytes);
	snprintf(m, sizeof(m), "%d", max_clients);
	values[nlg_opt_find(OPS->opts, "path", 0)] = f->path;
	values[nlg_opt_find(OPS->opts, "queue", 0)] = queue_bytes ? q : NULL;
	values[nlg_opt_find(OPS->opts, "max_clients", 0)] = max_clients ? m : NULL;
	memset(c, 0, sizeof(*c));
	if (nlg_opt_apply(OPS->opts, c, values, NLG_CTX_SCRIPT, &err) < 0)
		fail_msg("options: %s", err.msg);
}

static void *fx_open(struct fx *f, size_t queue_bytes, int max_clients)
{
	struct nlg_err err = {{0}};

	fx_conf(f, &f->conf, queue_bytes, max_clients);
	if (OPS->open(f->loop, &f->conf, &f->u, &err) < 0)
		fail_msg("open: %s", err.msg);
	return f->u;
}

static const struct nlg_unix_stats *stats(struct fx *f)
{
	memset(&f->stats, 0, sizeof(f->stats));
	OPS->stats(f->u, &f->stats);
	return &f->stats;
}

static int client_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sun.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Run the loop until the feed has n clients. */
static void wait_clients(struct fx *f, uint64_t n)
{
	for (int i = 0; i < 500 && stats(f)->clients != n; i++)
		nlg_loop_run_once(f->loop, 10);
	assert_int_equal(stats(f)->clients, n);
}

#define TIME0 1700000000000000000ull

/* A frame ["test", TIME0 + seq, {seq = seq, pad = "xxx..."}]: f->fr holds
 * the whole of it, the body from f->headlen. */
static void make_frame(struct fx *f, uint64_t seq, size_t pad)
{
	static char padding[65536];

	memset(padding, 'x', sizeof(padding));
	nlg_buf_reset(&f->fr);
	assert_int_equal(nlg_enc_mp_frame_head(&f->pk, "test", 4, TIME0 + seq), 0);
	f->headlen = f->fr.len;
	msgpack_pack_map(&f->pk, 2);
	msgpack_pack_str_with_body(&f->pk, "seq", 3);
	msgpack_pack_uint64(&f->pk, seq);
	msgpack_pack_str_with_body(&f->pk, "pad", 3);
	msgpack_pack_str_with_body(&f->pk, padding, pad);
}

/* The same frame as an item: the output frames it again around the body. */
static int send_frame(struct fx *f, uint64_t seq, size_t pad)
{
	struct nlg_item it;

	make_frame(f, seq, pad);
	it = (struct nlg_item){.tag = "test",
			       .taglen = 4,
			       .time_ns = TIME0 + seq,
			       .body = f->fr.data + f->headlen,
			       .len = f->fr.len - f->headlen};
	return OPS->send(f->u, &it);
}

/* ---- a test-side reader of the feed ---- */

struct rd {
	int fd;
	struct nlg_buf in;
	size_t off;	/* parsed up to here */
	uint64_t bytes; /* received in total */
	int eof;
};

static void rd_init(struct rd *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	nlg_buf_init(&r->in);
}

static void rd_free(struct rd *r)
{
	if (r->fd >= 0)
		close(r->fd);
	nlg_buf_free(&r->in);
}

/* Take what the socket holds now, without waiting. */
static size_t rd_pull(struct rd *r)
{
	size_t got = 0;

	for (;;) {
		ssize_t n;
		assert_int_equal(nlg_buf_reserve(&r->in, 65536), 0);
		n = recv(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len, MSG_DONTWAIT);
		if (n > 0) {
			r->in.len += (size_t)n;
			r->bytes += (uint64_t)n;
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			r->eof = 1;
		else
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		return got;
	}
}

/* Read at most max bytes: a reader slower than the feed. */
static void rd_pull_some(struct rd *r, size_t max)
{
	ssize_t n;

	assert_int_equal(nlg_buf_reserve(&r->in, max), 0);
	n = recv(r->fd, r->in.data + r->in.len, max, MSG_DONTWAIT);
	if (n > 0) {
		r->in.len += (size_t)n;
		r->bytes += (uint64_t)n;
	}
}

/* Alternate reading and running the loop until nothing moves for a while:
 * the feed has written all it had for this reader. */
static void rd_drain(struct fx *f, struct rd *r)
{
	for (int idle = 0; idle < 5;) {
		size_t got = rd_pull(r);
		nlg_loop_run_once(f->loop, 5);
		got += rd_pull(r);
		idle = got ? 0 : idle + 1;
	}
}

struct frame {
	char tag[32];
	uint64_t seq;	 /* "seq" of test frames */
	uint64_t missed; /* "missed" of gap frames */
};

/* Next whole frame from what was read: 1, or 0 when none is complete. */
static int rd_next(struct rd *r, struct frame *fr)
{
	msgpack_unpacked u;
	size_t off = r->off;
	const msgpack_object *a, *m;
	int rc;

	memset(fr, 0, sizeof(*fr));
	msgpack_unpacked_init(&u);
	rc = msgpack_unpack_next(&u, (const char *)r->in.data, r->in.len, &off);
	if (rc == MSGPACK_UNPACK_CONTINUE) {
		msgpack_unpacked_destroy(&u);
		return 0;
	}
	assert_true(rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES);
	a = &u.data;
	assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(a->via.array.size, 3);
	assert_int_equal(a->via.array.ptr[0].type, MSGPACK_OBJECT_STR);
	assert_true(a->via.array.ptr[0].via.str.size < sizeof(fr->tag));
	memcpy(fr->tag, a->via.array.ptr[0].via.str.ptr, a->via.array.ptr[0].via.str.size);
	assert_int_equal(a->via.array.ptr[1].type, MSGPACK_OBJECT_EXT);
	assert_int_equal(a->via.array.ptr[1].via.ext.type, -1);
	m = &a->via.array.ptr[2];
	assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		if (kv->key.via.str.size == 3 && !memcmp(kv->key.via.str.ptr, "seq", 3))
			fr->seq = kv->val.via.u64;
		if (kv->key.via.str.size == 6 && !memcmp(kv->key.via.str.ptr, "missed", 6)) {
			assert_int_equal(kv->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
			fr->missed = kv->val.via.u64;
		}
	}
	msgpack_unpacked_destroy(&u);
	r->off = off;
	return 1;
}

/* Expect test frames first..last-1, in order, and nothing after. */
static void expect_seqs(struct rd *r, uint64_t first, uint64_t last)
{
	struct frame fr;

	for (uint64_t s = first; s < last; s++) {
		assert_int_equal(rd_next(r, &fr), 1);
		assert_string_equal(fr.tag, "test");
		assert_int_equal(fr.seq, s);
	}
}

static void expect_end(struct rd *r)
{
	assert_int_equal(r->off, r->in.len); /* no partial frame either */
}

/* Walk the whole stream from its start: test frames in increasing seq, and
 * between two of them (and before the first, and after the last of sent
 * frames 0..sent-1) gap frames announcing exactly the hole: received +
 * announced == sent. Returns the gap frames seen; *tail_gap: the stream
 * ends with one. */
static uint64_t expect_accounted(struct rd *r, uint64_t sent, int *tail_gap)
{
	uint64_t next_seq = 0, pending = 0, got = 0, missed = 0, gaps = 0;
	struct frame fr;
	int tail = 0;

	r->off = 0;
	while (rd_next(r, &fr)) {
		tail = !strcmp(fr.tag, "nlgate.gap");
		if (tail) {
			assert_true(fr.missed > 0);
			pending += fr.missed;
			missed += fr.missed;
			gaps++;
			continue;
		}
		assert_string_equal(fr.tag, "test");
		assert_true(fr.seq >= next_seq);
		assert_int_equal(fr.seq - next_seq, pending); /* the hole, exactly */
		pending = 0;
		next_seq = fr.seq + 1;
		got++;
	}
	expect_end(r);
	assert_int_equal(sent - next_seq, pending);
	assert_int_equal(got + missed, sent);
	if (tail_gap)
		*tail_gap = tail;
	return gaps;
}

/* ---- tests ---- */

static void test_frames_in_order(void **state)
{
	struct fx *f = *state;
	struct rd r;
	uint64_t want = 0;

	fx_open(f, 0, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	/* ~3 MB, read in bursts far apart: the socket buffer fills between
	 * them, so frames go through the queue and EPOLLOUT as well. */
	for (uint64_t s = 0; s < 3000; s++) {
		assert_int_equal(send_frame(f, s, (size_t)(s * 37 % 2000)), 1);
		want += f->fr.len;
		if (s % 400 == 399) {
			rd_pull(&r);
			nlg_loop_run_once(f->loop, 0);
		}
	}
	rd_drain(f, &r);
	expect_seqs(&r, 0, 3000);
	expect_end(&r);
	/* Drained: no EPOLLOUT left registered, so the loop has nothing to do. */
	assert_int_equal(nlg_loop_run_once(f->loop, 0), 0);
	assert_int_equal(r.bytes, want);
	assert_int_equal(stats(f)->frames, 3000);
	assert_int_equal(stats(f)->bytes, want);
	assert_int_equal(stats(f)->dropped, 0);
	assert_int_equal(stats(f)->gaps, 0);
	rd_free(&r);
}

/* A client that does not read loses frames (counted) while a reading one
 * gets them all; once it reads again, it is told how many it missed, with
 * no later frame needed to carry the news. */
static void test_slow_client_gap(void **state)
{
	struct fx *f = *state;
	struct rd slow, fast;
	struct frame fr;
	uint64_t got, missed;

	fx_open(f, 64 << 10, 0);
	rd_init(&slow, client_connect(f->path));
	wait_clients(f, 1);
	rd_init(&fast, client_connect(f->path));
	wait_clients(f, 2);
	for (uint64_t s = 0; s < 1000; s++) {
		send_frame(f, s, 1000);
		rd_pull(&fast);
		nlg_loop_run_once(f->loop, 0);
	}
	assert_true(stats(f)->dropped > 0);
	assert_true(stats(f)->dropped < 1000);
	assert_int_equal(stats(f)->gaps, 0);
	missed = stats(f)->dropped;

	/* The slow one wakes up: an unbroken prefix, then the count. */
	rd_drain(f, &slow);
	got = 0;
	while (rd_next(&slow, &fr) && !strcmp(fr.tag, "test")) {
		assert_int_equal(fr.seq, got);
		got++;
	}
	assert_string_equal(fr.tag, "nlgate.gap");
	assert_int_equal(fr.missed, missed);
	expect_end(&slow);
	assert_int_equal(got + missed, 1000);
	assert_int_equal(stats(f)->gaps, 1);

	/* The next frames come as they are: nothing left to announce. */
	for (uint64_t s = 1000; s < 1010; s++)
		assert_int_equal(send_frame(f, s, 1000), 2);
	rd_drain(f, &slow);
	expect_seqs(&slow, 1000, 1010);
	expect_end(&slow);
	assert_int_equal(stats(f)->gaps, 1);
	assert_int_equal(stats(f)->dropped, missed);
	assert_int_equal(stats(f)->unannounced, 0);

	rd_drain(f, &fast);
	expect_seqs(&fast, 0, 1010);
	expect_end(&fast);
	rd_free(&slow);
	rd_free(&fast);
}

/* A reader a little slower than the feed: the queue fills, drains, wraps
 * around and drops, over and over. Whatever happens, the client sees whole
 * frames in order, and every frame is either received or announced missed,
 * each hole by the gap frames in it. */
static void test_steady_partial_reads(void **state)
{
	struct fx *f = *state;
	struct rd r;
	uint64_t n = 5000, gaps;

	fx_open(f, 256 << 10, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	for (uint64_t s = 0; s < n; s++) {
		send_frame(f, s, 500 + (size_t)(s * 7919 % 1000));
		if (s % 10 == 9) {
			rd_pull_some(&r, 6144 + (size_t)(s * 31 % 4096));
			nlg_loop_run_once(f->loop, 0);
		}
	}
	rd_drain(f, &r);
	gaps = expect_accounted(&r, n, NULL);
	assert_true(stats(f)->dropped > 0); /* the point of the test: drops did happen */
	assert_int_equal(stats(f)->gaps, gaps);
	assert_int_equal(stats(f)->bytes, r.bytes);
	assert_int_equal(stats(f)->unannounced, 0);
	rd_free(&r);
}

/* A burst far past the queue, then nothing more: the reader, once it
 * catches up, is told of every frame it missed, the last ones too. */
static void test_gap_burst_then_silence(void **state)
{
	struct fx *f = *state;
	struct rd r;
	uint64_t n = 4000;
	int tail;

	fx_open(f, 64 << 10, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	for (uint64_t s = 0; s < n; s++) {
		send_frame(f, s, 200 + (size_t)(s * 13 % 800));
		if (s % 100 == 0)
			nlg_loop_run_once(f->loop, 0);
	}
	assert_true(stats(f)->dropped > n / 2);
	rd_drain(f, &r); /* silence: no frame is sent from here on */
	expect_accounted(&r, n, &tail);
	assert_true(tail);
	assert_int_equal(stats(f)->unannounced, 0);
	rd_free(&r);
}

/* A reader that stops for a while and resumes, reading odd amounts, while
 * frames come at their own pace: each hole is announced exactly, and the
 * reader hears of it when it resumes, before any later frame. */
static void test_gap_reader_resumes(void **state)
{
	struct fx *f = *state;
	struct rd r;
	uint64_t s = 0, gaps;
	int tail;

	fx_open(f, 32 << 10, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	for (int round = 0; round < 5; round++) {
		uint64_t dropped = stats(f)->dropped;

		for (int i = 0; i < 600; i++, s++) { /* stopped */
			send_frame(f, s, 300 + (size_t)(s * 7 % 500));
			nlg_loop_run_once(f->loop, 0);
		}
		assert_true(stats(f)->dropped > dropped);
		for (int i = 0; i < 200; i++) { /* resumed, slowly, nothing sent */
			rd_pull_some(&r, 1000 + (size_t)(i * 37 % 3000));
			nlg_loop_run_once(f->loop, 1);
		}
		rd_drain(f, &r);
		expect_accounted(&r, s, &tail);
		assert_true(tail);		     /* heard of before the next frame */
		for (int i = 0; i < 100; i++, s++) { /* keeping up */
			assert_int_equal(send_frame(f, s, 300), 1);
			rd_pull(&r);
			nlg_loop_run_once(f->loop, 0);
		}
	}
	rd_drain(f, &r);
	gaps = expect_accounted(&r, s, &tail);
	assert_false(tail);
	assert_true(gaps >= 5);
	assert_int_equal(stats(f)->gaps, gaps);
	assert_int_equal(stats(f)->bytes, r.bytes);
	rd_free(&r);
}

struct slurp {
	int fd;
	int delay_ms;
	struct nlg_buf in;
};

/* Read the feed to EOF in a thread, after a delay; no cmocka asserts here. */
static void *slurp(void *p)
{
	struct slurp *a = p;
	ssize_t n;

	usleep((useconds_t)a->delay_ms * 1000);
	for (;;) {
		if (nlg_buf_reserve(&a->in, 65536) < 0)
			break;
		n = read(a->fd, a->in.data + a->in.len, 65536);
		if (n <= 0)
			break;
		a->in.len += (size_t)n;
	}
	return NULL;
}

/* Shut down with misses pending and the queue full: close drains, and the
 * reader is told of the frames it missed before EOF. */
static void test_gap_at_shutdown(void **state)
{
	struct fx *f = *state;
	struct slurp a = {.delay_ms = 50};
	struct rd r;
	pthread_t th;
	uint64_t n = 3000;
	int tail;

	fx_open(f, 64 << 10, 0);
	a.fd = client_connect(f->path);
	nlg_buf_init(&a.in);
	wait_clients(f, 1);
	for (uint64_t s = 0; s < n; s++) {
		send_frame(f, s, 500);
		if (s % 100 == 0)
			nlg_loop_run_once(f->loop, 0);
	}
	assert_true(stats(f)->dropped > n / 2);
	assert_int_equal(pthread_create(&th, NULL, slurp, &a), 0);
	OPS->close(f->u, 10000);
	f->u = NULL;
	assert_int_equal(pthread_join(th, NULL), 0);
	rd_init(&r, a.fd);
	r.in = a.in;
	expect_accounted(&r, n, &tail);
	assert_true(tail);
	rd_free(&r);
}

/* Misses a client never heard of are counted when it goes: it left with
 * its queue full. */
static void test_unannounced_on_disconnect(void **state)
{
	struct fx *f = *state;
	uint64_t dropped;
	int fd;

	fx_open(f, 16 << 10, 0);
	fd = client_connect(f->path);
	wait_clients(f, 1);
	for (uint64_t s = 0; s < 1000; s++)
		send_frame(f, s, 500);
	dropped = stats(f)->dropped;
	assert_true(dropped > 0);
	assert_int_equal(stats(f)->unannounced, 0);
	close(fd);
	wait_clients(f, 0);
	assert_int_equal(stats(f)->unannounced, dropped);
}

/* A frame larger than the queue bound can never be taken. */
static void test_oversized_frame(void **state)
{
	struct fx *f = *state;
	struct rd r;
	struct frame fr;

	fx_open(f, 4096, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	assert_int_equal(send_frame(f, 0, 100), 1);
	assert_int_equal(send_frame(f, 1, 5000), 0);
	assert_int_equal(send_frame(f, 2, 6000), 0);
	assert_int_equal(send_frame(f, 3, 100), 1);
	rd_drain(f, &r);
	expect_seqs(&r, 0, 1);
	assert_int_equal(rd_next(&r, &fr), 1);
	assert_string_equal(fr.tag, "nlgate.gap");
	assert_int_equal(fr.missed, 2);
	expect_seqs(&r, 3, 4);
	expect_end(&r);
	/* Dropped with the queue empty: no write would come to announce it
	 * later, so it is announced at once. */
	assert_int_equal(send_frame(f, 4, 5000), 0);
	rd_drain(f, &r);
	assert_int_equal(rd_next(&r, &fr), 1);
	assert_string_equal(fr.tag, "nlgate.gap");
	assert_int_equal(fr.missed, 1);
	expect_end(&r);
	assert_int_equal(stats(f)->gaps, 2);
	rd_free(&r);
}

static void test_disconnect(void **state)
{
	struct fx *f = *state;
	struct rd keep, chatty;
	int gone, gone2;

	fx_open(f, 0, 0);
	gone = client_connect(f->path);
	wait_clients(f, 1);
	rd_init(&keep, client_connect(f->path));
	wait_clients(f, 2);
	rd_init(&chatty, client_connect(f->path));
	wait_clients(f, 3);
	gone2 = client_connect(f->path);
	wait_clients(f, 4);

	/* Clients may talk; the feed reads and ignores it. */
	assert_int_equal(write(chatty.fd, "hello\n", 6), 6);
	for (uint64_t s = 0; s < 10; s++)
		send_frame(f, s, 10);
	close(gone);
	wait_clients(f, 3); /* seen through EOF on read */
	/* This one goes without the loop noticing: the send finds out. */
	shutdown(gone2, SHUT_RD);
	for (uint64_t s = 10; s < 500; s++) {
		send_frame(f, s, 200);
		if (s % 20 == 0) {
			rd_pull(&keep);
			rd_pull(&chatty);
		}
	}
	assert_int_equal(stats(f)->clients, 2);
	close(gone2);
	rd_drain(f, &keep);
	rd_drain(f, &chatty);
	expect_seqs(&keep, 0, 500);
	expect_end(&keep);
	expect_seqs(&chatty, 0, 500);
	expect_end(&chatty);
	assert_int_equal(stats(f)->dropped, 0);
	assert_int_equal(stats(f)->accepted, 4);
	rd_free(&keep);
	rd_free(&chatty);
}

/* ---- the socket file ---- */

/* No private directory left beside the path, whatever happened. */
static void expect_no_litter(struct fx *f)
{
	char dir[sizeof(f->path)];
	struct dirent *e;
	DIR *d;

	strcpy(dir, f->path);
	*strrchr(dir, '/') = 0;
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, ".nlgate-", 8))
			fail_msg("left behind: %s/%s", dir, e->d_name);
	closedir(d);
}

/* open refuses what is at the path: code, and one line naming the path and
 * saying what. */
static void expect_refused(struct fx *f, int code, const char *what)
{
	struct nlg_unix_conf c;
	struct nlg_err err = {{0}};

	fx_conf(f, &c, 0, 0);
	assert_int_equal(OPS->open(f->loop, &c, &f->u, &err), code);
	assert_null(f->u);
	assert_non_null(strstr(err.msg, f->path));
	if (!strstr(err.msg, what))
		fail_msg("'%s' does not say '%s'", err.msg, what);
	assert_null(strchr(err.msg, '\n'));
	expect_no_litter(f);
}

/* A socket bound at path by someone else, listening or not: its fd. */
static int other_socket(const char *path, int listening)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sun.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (listening)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* A feed open at f->path answers, and its socket file has mode. */
static void expect_feed_at(struct fx *f, mode_t mode)
{
	struct stat sb;
	struct rd r;

	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, mode);
	assert_int_equal(sb.st_uid, geteuid());
	assert_int_equal(sb.st_nlink, 1); /* the private name is gone */
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	assert_int_equal(send_frame(f, 7, 10), 1);
	rd_drain(f, &r);
	expect_seqs(&r, 7, 8);
	rd_free(&r);
	expect_no_litter(f);
}

/* A socket file left behind by a process that died (nobody answers, ours):
 * replaced by a new one. */
static void test_stale_socket_replaced(void **state)
{
	struct fx *f = *state;
	struct stat old, sb;

	close(other_socket(f->path, 1));
	assert_int_equal(lstat(f->path, &old), 0);
	assert_true(S_ISSOCK(old.st_mode));
	fx_open(f, 0, 0);
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(sb.st_ino != old.st_ino);
	expect_feed_at(f, 0660);
}

/* A stale socket of another user is not ours to take (as root only: only
 * root can give a file away). */
static void test_stale_socket_of_another_user(void **state)
{
	struct fx *f = *state;
	struct stat sb;

	if (geteuid() != 0)
		skip();
	close(other_socket(f->path, 0));
	assert_int_equal(lchown(f->path, 65534, 65534), 0);
	expect_refused(f, -EEXIST, "owned by uid 65534");
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
}

/* Another feed of ours answers there: address in use, the first one kept. */
static void test_live_socket_kept(void **state)
{
	struct fx *f = *state;
	struct nlg_err err = {{0}};
	void *second = &err;
	struct rd r;

	fx_open(f, 0, 0);
	assert_int_equal(OPS->open(f->loop, &f->conf, &second, &err), -EADDRINUSE);
	assert_null(second);
	assert_non_null(strstr(err.msg, f->path));
	assert_non_null(strstr(err.msg, "address in use"));
	expect_no_litter(f);
	/* The first feed still owns its socket. */
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	assert_int_equal(send_frame(f, 1, 10), 1);
	rd_drain(f, &r);
	expect_seqs(&r, 1, 2);
	rd_free(&r);
}

/* Any other listener answers there: refused, and it keeps its socket. */
static void test_live_foreign_socket(void **state)
{
	struct fx *f = *state;
	int l = other_socket(f->path, 1), c, a;
	struct stat before, sb;

	assert_int_equal(lstat(f->path, &before), 0);
	expect_refused(f, -EADDRINUSE, "address in use");
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_int_equal(sb.st_ino, before.st_ino);
	assert_int_equal(sb.st_mode, before.st_mode);
	c = client_connect(f->path);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	close(a);
	close(c);
	close(l);
}

static void test_not_a_socket(void **state)
{
	struct fx *f = *state;
	struct stat sb;
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	fputs("precious", fp);
	fclose(fp);
	assert_int_equal(chmod(f->path, 0640), 0);
	expect_refused(f, -EEXIST, "is a regular file, not a socket");
	assert_int_equal(stat(f->path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_size, 8);
	assert_int_equal(sb.st_mode & 07777, 0640);
}

static void test_refuse_directory(void **state)
{
	struct fx *f = *state;
	struct stat sb;

	assert_int_equal(mkdir(f->path, 0750), 0);
	expect_refused(f, -EEXIST, "is a directory, not a socket");
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0750);
	assert_int_equal(rmdir(f->path), 0); /* still empty */
}

/* A symlink to a file is refused, never followed: the file keeps its mode
 * (a chmod by path would have changed it, as root whoever owns it). */
static void test_refuse_symlink_to_file(void **state)
{
	struct fx *f = *state;
	char target[160];
	struct stat sb;
	FILE *fp;

	snprintf(target, sizeof(target), "%s/shadow", f->dir);
	fp = fopen(target, "w");
	assert_non_null(fp);
	fputs("secret", fp);
	fclose(fp);
	assert_int_equal(chmod(target, 0600), 0);
	assert_int_equal(symlink(target, f->path), 0);
	expect_refused(f, -EEXIST, "is a symbolic link, not a socket");
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	assert_int_equal(stat(target, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(sb.st_size, 6);
	assert_int_equal(unlink(target), 0);
}

/* A symlink to a directory, or to nothing, is refused as well; nothing is
 * created through it. */
static void test_refuse_symlink_to_dir(void **state)
{
	struct fx *f = *state;
	char target[160], inside[192];
	struct stat sb;

	snprintf(target, sizeof(target), "%s/d", f->dir);
	snprintf(inside, sizeof(inside), "%s/feed.sock", target);
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(symlink(target, f->path), 0);
	expect_refused(f, -EEXIST, "is a symbolic link, not a socket");
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_int_equal(lstat(inside, &sb), -1);
	assert_int_equal(rmdir(target), 0); /* nothing went in */

	/* Dangling: still refused, and nothing appears where it points. */
	expect_refused(f, -EEXIST, "is a symbolic link, not a socket");
	assert_int_equal(lstat(target, &sb), -1);
	assert_int_equal(errno, ENOENT);
}

/* The socket is made with its mode, exactly, whatever the umask; the
 * configured one or 0660. */
static void test_socket_mode(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *mode;
		mode_t want;
		mode_t umask;
	} m[] = {
	    {NULL, 0660, 022}, {NULL, 0660, 077},   {NULL, 0660, 0},
	    {"0600", 0600, 0}, {"0666", 0666, 022}, {"0640", 0640, 027},
	};
	struct nlg_err err = {{0}};
	mode_t old = umask(022);

	for (size_t i = 0; i < NLG_ARRAY_SIZE(m); i++) {
		fx_conf(f, &f->conf, 0, 0);
		if (m[i].mode)
			assert_int_equal(OPS->opts[nlg_opt_find(OPS->opts, "mode", 0)].parse(
					     &f->conf, m[i].mode, &err),
					 0);
		umask(m[i].umask);
		if (OPS->open(f->loop, &f->conf, &f->u, &err) < 0)
			fail_msg("open: %s", err.msg);
		umask(022);
		expect_feed_at(f, m[i].want);
		OPS->close(f->u, 0);
		f->u = NULL;
		assert_int_equal(access(f->path, F_OK), -1);
	}
	umask(old);
}

/* A path whose private directory's name would not fit sun_path: the socket
 * is bound through the directory's fd instead. */
static void test_long_path(void **state)
{
	struct fx *f = *state;
	char sub[128];
	size_t n = strlen(f->dir);

	/* dir/ddd.../f.sock of 107 bytes, the longest sun_path takes. */
	memset(sub, 0, sizeof(sub));
	memcpy(sub, f->dir, n);
	sub[n] = '/';
	memset(sub + n + 1, 'd', 107 - n - 1 - 7);
	assert_int_equal(mkdir(sub, 0700), 0);
	n = strlen(sub);
	memcpy(f->path, sub, n);
	memcpy(f->path + n, "/f.sock", 8);
	assert_int_equal(strlen(f->path), 107);
	fx_open(f, 0, 0);
	expect_feed_at(f, 0660);
	OPS->close(f->u, 0);
	f->u = NULL;
	assert_int_equal(rmdir(sub), 0);
}

static void test_bad_paths(void **state)
{
	struct fx *f = *state;
	char path[256];
	struct nlg_unix_conf c;
	struct nlg_err err = {{0}};
	const char *values[5] = {path};

	fx_conf(f, &c, 0, 0);
	snprintf(c.path, sizeof(c.path), "%s/missing/feed.sock", f->dir);
	assert_int_equal(OPS->open(f->loop, &c, &f->u, &err), -ENOENT);
	assert_non_null(strstr(err.msg, c.path));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));

	/* Too long: the table refuses it, and open an unterminated conf. */
	memset(path, 'a', 200);
	path[200] = 0;
	memset(&c, 0, sizeof(c));
	assert_true(nlg_opt_apply(OPS->opts, &c, values, NLG_CTX_SCRIPT, &err) < 0);
	assert_non_null(strstr(err.msg, "path"));
	fx_conf(f, &c, 0, 0);
	memset(c.path, 'a', sizeof(c.path));
	memset(&err, 0, sizeof(err));
	assert_int_equal(OPS->open(f->loop, &c, &f->u, &err), -ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "too long"));

	c.path[0] = 0;
	assert_int_equal(OPS->open(f->loop, &c, &f->u, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no socket path"));
	assert_null(f->u);
}

static void test_max_clients_mode_close(void **state)
{
	struct fx *f = *state;
	struct nlg_err err = {{0}};
	struct pollfd p;
	struct stat sb;
	char c;
	int a, b, x;

	fx_conf(f, &f->conf, 0, 2);
	assert_int_equal(
	    OPS->opts[nlg_opt_find(OPS->opts, "mode", 0)].parse(&f->conf, "0600", &err), 0);
	assert_int_equal(OPS->open(f->loop, &f->conf, &f->u, &err), 0);
	assert_non_null(f->u);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	a = client_connect(f->path);
	wait_clients(f, 1);
	b = client_connect(f->path);
	wait_clients(f, 2);
	x = client_connect(f->path);
	for (int i = 0; i < 100 && !stats(f)->rejected; i++)
		nlg_loop_run_once(f->loop, 10);
	assert_int_equal(stats(f)->rejected, 1);
	assert_int_equal(stats(f)->clients, 2);
	p = (struct pollfd){.fd = x, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(x, &c, 1), 0); /* closed at once */

	OPS->close(f->u, 0);
	f->u = NULL;
	assert_int_equal(lstat(f->path, &sb), -1);
	assert_int_equal(errno, ENOENT);
	p = (struct pollfd){.fd = a, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(a, &c, 1), 0);
	close(a);
	close(b);
	close(x);
	OPS->close(NULL, 0);
}

/* Close does not unlink a path that another feed has taken over since. */
static void test_close_spares_successor(void **state)
{
	struct fx *f = *state;
	void *old;
	struct stat sb;

	old = fx_open(f, 0, 0);
	assert_int_equal(unlink(f->path), 0); /* e.g. an operator cleaned up */
	fx_open(f, 0, 0);
	OPS->close(old, 0);
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
}

struct reader_arg {
	int fd;
	uint64_t bytes;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	char buf[65536];
	ssize_t n;

	usleep(50 * 1000); /* let the queue build up before reading */
	while ((n = read(a->fd, buf, sizeof(buf))) > 0)
		a->bytes += (uint64_t)n;
	return NULL;
}

/* At shutdown, flush hands the queued bytes over before close. */
static void test_flush(void **state)
{
	struct fx *f = *state;
	struct reader_arg arg;
	pthread_t th;
	uint64_t queued;

	fx_open(f, 0, 0);
	arg.fd = client_connect(f->path);
	arg.bytes = 0;
	wait_clients(f, 1);
	for (uint64_t s = 0; s < 2000; s++) /* ~2 MB: well past the socket buffer */
		assert_int_equal(send_frame(f, s, 1000), 1);
	queued = stats(f)->bytes;
	assert_int_equal(stats(f)->dropped, 0);
	assert_int_equal(pthread_create(&th, NULL, reader, &arg), 0);
	OPS->flush(f->u, 10000);
	OPS->close(f->u, 0);
	f->u = NULL;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(arg.bytes, queued);
	close(arg.fd);
}

/* close(st, timeout_ms) drains first: what was queued arrives, then EOF. */
static void test_close_drains(void **state)
{
	struct fx *f = *state;
	struct reader_arg arg;
	pthread_t th;
	uint64_t queued;

	fx_open(f, 0, 0);
	arg.fd = client_connect(f->path);
	arg.bytes = 0;
	wait_clients(f, 1);
	for (uint64_t s = 0; s < 2000; s++)
		assert_int_equal(send_frame(f, s, 1000), 1);
	queued = stats(f)->bytes;
	assert_int_equal(pthread_create(&th, NULL, reader, &arg), 0);
	OPS->close(f->u, 10000);
	f->u = NULL;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(arg.bytes, queued);
	close(arg.fd);
}

/* The item's body is framed as [tag, time, body]: byte for byte what the
 * encoder's frame head and the body make; what cannot be framed is refused
 * and not counted. */
static void test_send_item(void **state)
{
	struct fx *f = *state;
	struct nlg_buf want;
	struct rd r;
	char tag[300];
	struct nlg_item it = {
	    .tag = tag, .taglen = 255, .time_ns = 42, .body = (const uint8_t *)"\x80", .len = 1};
	msgpack_packer pk;

	nlg_buf_init(&want);
	nlg_mp_init(&pk, &want);
	memset(tag, 'g', sizeof(tag));
	fx_open(f, 0, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	for (uint64_t s = 0; s < 100; s++) {
		assert_int_equal(send_frame(f, s, (size_t)(s * 97 % 300)), 1);
		assert_int_equal(nlg_buf_append(&want, f->fr.data, f->fr.len), 0);
	}
	assert_int_equal(OPS->send(f->u, &it), 1); /* the longest tag, an empty map */
	assert_int_equal(nlg_enc_mp_frame_head(&pk, tag, 255, 42), 0);
	assert_int_equal(nlg_buf_append(&want, "\x80", 1), 0);
	it.taglen = 256;
	assert_int_equal(OPS->send(f->u, &it), -EINVAL);
	it.taglen = 4;
	it.len = 0;
	assert_int_equal(OPS->send(f->u, &it), -EINVAL);
	assert_int_equal(stats(f)->frames, 101);
	rd_drain(f, &r);
	assert_int_equal(r.in.len, want.len);
	assert_memory_equal(r.in.data, want.data, want.len);
	assert_int_equal(stats(f)->bytes, want.len);
	nlg_buf_free(&want);
	rd_free(&r);
}

static int row(const char *name)
{
	int i = nlg_opt_find(OPS->opts, name, 0);

	assert_true(i >= 0);
	return i;
}

/* The option table: its rows, defaults, bounds and the mode parser. */
static void test_options(void **state)
{
	struct fx *f = *state;
	struct nlg_unix_conf c, d;
	struct nlg_err err = {{0}};
	const char *values[5] = {NULL, NULL, NULL, NULL, NULL};
	const struct nlg_opt *mode = &OPS->opts[row("mode")];

	(void)f;
	assert_string_equal(OPS->name, "unix");
	assert_non_null(OPS->desc);
	assert_int_equal(OPS->conf_size, sizeof(struct nlg_unix_conf));
	assert_int_equal(OPS->opts[row("path")].type, NLG_OPT_STR);
	assert_int_equal(OPS->opts[row("path")].size, 108);
	assert_int_equal(mode->type, NLG_OPT_CUSTOM);
	assert_int_equal(OPS->opts[row("queue")].type, NLG_OPT_SIZE);
	assert_int_equal(OPS->opts[row("max_clients")].type, NLG_OPT_UINT);
	for (size_t i = 0; OPS->opts[i].name; i++) {
		assert_non_null(OPS->opts[i].desc);
		assert_true(OPS->opts[i].off + OPS->opts[i].size <= OPS->conf_size);
	}

	memset(&c, 0, sizeof(c));
	assert_int_equal(nlg_opt_apply(OPS->opts, &c, values, NLG_CTX_SCRIPT, &err), 0);
	assert_string_equal(c.path, "nlgate.sock");
	assert_int_equal(c.mode, 0660);
	assert_int_equal(c.queue, 4u << 20);
	assert_int_equal(c.max_clients, 64);
	/* Same options, same bytes: what a reload compares. */
	memset(&d, 0, sizeof(d));
	values[row("mode")] = "660";
	values[row("queue")] = "4M";
	assert_int_equal(nlg_opt_apply(OPS->opts, &d, values, NLG_CTX_SCRIPT, &err), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	values[row("queue")] = "512k";
	values[row("max_clients")] = "3";
	values[row("path")] = "/run/x.sock";
	assert_int_equal(nlg_opt_apply(OPS->opts, &d, values, NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(d.queue, 512u << 10);
	assert_int_equal(d.max_clients, 3);
	assert_string_equal(d.path, "/run/x.sock");
	assert_memory_not_equal(&c, &d, sizeof(c));
	values[row("max_clients")] = "0";
	assert_true(nlg_opt_apply(OPS->opts, &d, values, NLG_CTX_SCRIPT, &err) < 0);
	assert_non_null(strstr(err.msg, "max_clients"));

	/* Modes are octal, as chmod reads them. */
	static const struct {
		const char *text;
		int rc;
		uint32_t mode;
	} m[] = {
	    {"0660", 0, 0660},	   {"660", 0, 0660},
	    {"0o600", 0, 0600},	   {"0", 0, 0},
	    {"7777", 0, 07777},	   {"0777", 0, 0777},
	    {"", -EINVAL, 0},	   {"0668", -EINVAL, 0},
	    {"10000", -EINVAL, 0}, {"rw-rw----", -EINVAL, 0},
	    {"-1", -EINVAL, 0},	   {"0o", -EINVAL, 0},
	    {" 660", -EINVAL, 0},
	};
	for (size_t i = 0; i < NLG_ARRAY_SIZE(m); i++) {
		memset(&err, 0, sizeof(err));
		c.mode = 12345;
		assert_int_equal(mode->parse(&c, m[i].text, &err), m[i].rc);
		if (m[i].rc == 0) {
			assert_int_equal(c.mode, m[i].mode);
		} else {
			assert_int_equal(c.mode, 12345);
			assert_non_null(strstr(err.msg, "bad mode"));
			assert_non_null(strstr(err.msg, "octal"));
		}
	}
	memset(&d, 0, sizeof(d));
	memset(values, 0, sizeof(values));
	values[row("mode")] = "0x1ff";
	assert_int_equal(nlg_opt_apply(OPS->opts, &d, values, NLG_CTX_SCRIPT, &err), -EINVAL);
	assert_string_equal(err.msg, "bad mode '0x1ff' (an octal file mode such as 0660)");
}

/* The counters' schema names every field of the stats record, all always
 * present, and the stats op fills them. */
static void test_stats_schema(void **state)
{
	struct fx *f = *state;
	const struct nlg_schema *s = OPS->stats_schema;
	const struct nlg_unix_stats *st;
	static const char *const names[] = {"frames",	"bytes",       "dropped",
					    "gaps",	"unannounced", "clients",
					    "accepted", "rejected",    "path"};
	char text[128];
	struct rd r;

	assert_ptr_equal(s, &nlg_unix_stats_schema);
	assert_string_equal(s->kind, "unix.stats");
	assert_int_equal(s->rec_size, sizeof(struct nlg_unix_stats));
	assert_int_equal(s->present_off, 0);
	assert_int_equal(s->nfields, NLG_ARRAY_SIZE(names));
	for (size_t i = 0; i < s->nfields; i++) {
		assert_string_equal(s->fields[i].name, names[i]);
		assert_int_equal(s->fields[i].group, 0);
		assert_true(s->fields[i].offset + s->fields[i].size <= s->rec_size);
		assert_int_equal(s->fields[i].type, i < 8 ? NLG_T_U64 : NLG_T_STR);
		assert_non_null(s->fields[i].desc);
	}

	fx_open(f, 0, 0);
	rd_init(&r, client_connect(f->path));
	wait_clients(f, 1);
	assert_int_equal(send_frame(f, 1, 10), 1);
	st = stats(f);
	assert_int_equal(nlg_field_int(&s->fields[nlg_schema_field(s, "frames")], st), 1);
	assert_int_equal(nlg_field_int(&s->fields[nlg_schema_field(s, "clients")], st), 1);
	assert_int_equal(nlg_field_int(&s->fields[nlg_schema_field(s, "accepted")], st), 1);
	assert_int_equal(nlg_field_int(&s->fields[nlg_schema_field(s, "bytes")], st), f->fr.len);
	nlg_field_text(&s->fields[nlg_schema_field(s, "path")], st, text, sizeof(text));
	assert_string_equal(text, f->path);
	rd_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_frames_in_order, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_slow_client_gap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_steady_partial_reads, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_burst_then_silence, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_reader_resumes, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_at_shutdown, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unannounced_on_disconnect, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_frame, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_disconnect, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stale_socket_replaced, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stale_socket_of_another_user, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_live_socket_kept, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_live_foreign_socket, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_socket, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_directory, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_symlink_to_file, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_symlink_to_dir, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_socket_mode, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_long_path, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_paths, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_max_clients_mode_close, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_close_spares_successor, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_flush, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_close_drains, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_send_item, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_options, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stats_schema, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
