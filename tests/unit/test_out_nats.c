/* Unit tests for core/out_nats.c through its output ops (nlg_nats_output),
 * against a nats-server -js the test starts on a free loopback port with a
 * temporary store (skipped when nats-server is missing): JetStream records
 * acknowledged and stored once each with their Nats-Msg-Id, batches per
 * subject, the bounded queue while no server answers (drops counted, the
 * nlgate.gap message published once one does), a server that stops
 * answering (close returns, what was in flight counted dropped), core NATS;
 * and, without a server, the option table, the schema, bad urls, subjects
 * and creds. Threads: libnats's; also run under ThreadSanitizer. Built
 * without libnats, the options and schema alone (and
 * test_out_nats_without.c checks gw.nats's message either way). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "nlgate/encode.h"
#include "nlgate/loop.h"
#include "nlgate/nats_name.h"
#include "nlgate/opt.h"
#include "nlgate/out_nats.h"
#ifdef NLGATE_HAVE_NATS
#include <nats/nats.h>
#endif

#define OPS (&nlg_nats_output)

/* ---- options, without a server ---- */

/* Fill c from name=value pairs (NULL-terminated), defaults for the rest:
 * 0, or the error. */
static int conf_fill(struct nlg_nats_conf *c, struct nlg_err *err, ...)
{
	const char *values[32] = {0};
	const char *name;
	va_list ap;

	assert_true(nlg_opt_count(OPS->opts) < NLG_ARRAY_SIZE(values));
	va_start(ap, err);
	while ((name = va_arg(ap, const char *))) {
		int i = nlg_opt_find(OPS->opts, name, 0);
		assert_true(i >= 0);
		values[i] = va_arg(ap, const char *);
	}
	va_end(ap);
	memset(c, 0, sizeof(*c));
	return nlg_opt_apply(OPS->opts, c, values, NLG_CTX_SCRIPT, err);
}

static void test_options(void **state)
{
	struct nlg_nats_conf c;
	struct nlg_err err = {{0}};

	(void)state;
	assert_int_equal(conf_fill(&c, &err, NULL), 0);
	assert_string_equal(c.url, "nats://127.0.0.1:4222");
	assert_string_equal(c.subject, "nlgate.{tag}");
	assert_int_equal(c.jetstream, 1);
	assert_int_equal(c.batch, 1);
	assert_int_equal(c.queue, 4u << 20);
	assert_int_equal(c.max_pending, 4096);
	assert_int_equal(c.ack_wait, 5000);
	assert_int_equal(c.reconnect_wait, 1000);
	assert_int_equal(c.connect_timeout, 1000);
	assert_int_equal(conf_fill(&c, &err, "batch", "0", NULL), -EINVAL);
	assert_non_null(strstr(err.msg, "batch"));
	assert_int_equal(conf_fill(&c, &err, "jetstream", "maybe", NULL), -EINVAL);
	assert_int_equal(conf_fill(&c, &err, "queue", "1k", NULL), -EINVAL);
	assert_int_equal(conf_fill(&c, &err, "batch", "100", "linger", "20ms", "jetstream", "false",
				   "ack_wait", "2", NULL),
			 0);
	assert_int_equal(c.batch, 100);
	assert_int_equal(c.linger, 20);
	assert_int_equal(c.jetstream, 0);
	assert_int_equal(c.ack_wait, 2000);
}

static void test_schema(void **state)
{
	static const char *const want[] = {
	    "queued",	  "sent",     "acknowledged", "resent",	    "dropped",	"reconnects",
	    "state",	  "messages", "bytes",	      "backlog",    "inflight", "duplicates",
	    "ack_errors", "gaps",     "disconnects",  "last_error",
	};
	const struct nlg_schema *s = OPS->stats_schema;

	(void)state;
	assert_string_equal(s->kind, "nats.stats");
	assert_int_equal(s->nfields, NLG_ARRAY_SIZE(want));
	for (size_t i = 0; i < NLG_ARRAY_SIZE(want); i++)
		assert_string_equal(s->fields[i].name, want[i]);
}

/* Subjects from the template: the tag made a subject a publish may use. */
static void test_subjects(void **state)
{
	static const struct {
		const char *tmpl, *tag, *want;
	} cases[] = {
	    {"nlgate.{tag}", "sock", "nlgate.sock"},
	    {"nlgate.{tag}", "alert.retrans", "nlgate.alert.retrans"},
	    {"{tag}", "a b\tc", "a_b_c"},
	    {"x.{tag}.y", "*", "x._.y"},
	    {"x.{tag}", "a.>", "x.a._"},
	    {"x.{tag}", "", "x._"},
	    {"x.{tag}", ".a..b.", "x._.a._.b._"},
	    {"{tag}.{tag}", "t", "t.t"},
	    {"fixed", "ignored", "fixed"},
	    {"x.{tag}", "caf\xc3\xa9", "x.caf\xc3\xa9"},
	};
	char out[NLG_NATS_SUBJ_MAX], big[600];
	struct nlg_err err = {{0}};
	size_t n;

	(void)state;
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cases); i++) {
		int len = nlg_nats_subject(cases[i].tmpl, cases[i].tag, strlen(cases[i].tag), out);
		assert_int_equal(len, strlen(cases[i].want));
		assert_string_equal(out, cases[i].want);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(nlg_nats_subject("x.{tag}", big, strlen(big), out), -ENAMETOOLONG);
	assert_int_equal(nlg_nats_subject_check("nlgate.{tag}", &err), 0);
	assert_int_equal(nlg_nats_subject_check("a.*", &err), -EINVAL);
	assert_int_equal(nlg_nats_subject_check("", &err), -EINVAL);
	assert_int_equal(nlg_nats_url_check("nats://u:p@h:1,tls://[::1]:4222, h2", &err), 0);
	assert_int_equal(nlg_nats_url_check("nats://[::1", &err), -EINVAL);
	n = nlg_nats_id_prefix(out, sizeof(out));
	assert_int_equal(n, strlen(out));
	assert_true(out[strlen(out) - 1] == '/');
	assert_non_null(strchr(out, '.'));
}

#ifdef NLGATE_HAVE_NATS

/* open fails with a message containing what; nothing is left behind. */
static void open_fails(struct nlg_nats_conf *c, const char *what)
{
	struct nlg_loop *loop = nlg_loop_create();
	struct nlg_err err = {{0}};
	void *st = (void *)1;

	assert_true(OPS->open(loop, c, &st, &err) < 0);
	assert_null(st);
	if (!strstr(err.msg, what))
		fail_msg("open's error '%s' does not say '%s'", err.msg, what);
	nlg_loop_destroy(loop);
}

static void test_bad_input(void **state)
{
	static const char *const urls[] = {
	    "http://h:1",      "nats://:4222", "nats://h:0",  "nats://h:70000",
	    "nats://h:1/path", "nats://h:1,",  "nats://[]:1", "nats://h:x",
	};
	static const char *const subjects[] = {"a.*.{tag}", "a.>", "a b", ".a", "a.", "a..b"};
	struct nlg_nats_conf c;
	struct nlg_err err = {{0}};
	char path[] = "/tmp/nlg-nats-creds-XXXXXX";
	int fd;

	(void)state;
	for (size_t i = 0; i < NLG_ARRAY_SIZE(urls); i++) {
		assert_int_equal(conf_fill(&c, &err, "url", urls[i], NULL), 0);
		open_fails(&c, "url");
	}
	for (size_t i = 0; i < NLG_ARRAY_SIZE(subjects); i++) {
		assert_int_equal(conf_fill(&c, &err, "subject", subjects[i], NULL), 0);
		open_fails(&c, "subject");
	}
	assert_int_equal(conf_fill(&c, &err, "creds", "/nonexistent/x.creds", NULL), 0);
	open_fails(&c, "No such file");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello\n", 6), 6);
	close(fd);
	assert_int_equal(conf_fill(&c, &err, "creds", path, NULL), 0);
	open_fails(&c, "not a NATS credentials file");
	unlink(path);
}

/* ---- a server of the test's own ---- */

struct fx {
	char dir[64];
	pid_t server;
	int port;
	struct nlg_loop *loop;
	struct nlg_nats_conf conf;
	void *o;
	struct nlg_nats_stats st;
	struct nlg_buf body;
	msgpack_packer pk;
	natsConnection *nc; /* the test's own client */
	jsCtx *js;
};

static int free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int port_answers(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

static void server_start(struct fx *f)
{
	char port[16], store[96];

	snprintf(port, sizeof(port), "%d", f->port);
	snprintf(store, sizeof(store), "%s/store", f->dir);
	f->server = fork();
	assert_true(f->server >= 0);
	if (f->server == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd",
		       store, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && !port_answers(f->port); i++)
		usleep(25000);
	assert_true(port_answers(f->port));
}

static void server_kill(struct fx *f)
{
	if (f->server > 0) {
		kill(f->server, SIGKILL);
		waitpid(f->server, NULL, 0);
		f->server = 0;
	}
}

static int have_server(void)
{
	return system("command -v nats-server >/dev/null 2>&1") == 0;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/nlg-out-nats-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->port = free_port();
	f->loop = nlg_loop_create();
	assert_non_null(f->loop);
	nlg_buf_init(&f->body);
	nlg_mp_init(&f->pk, &f->body);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	if (f->o)
		OPS->close(f->o, 0);
	jsCtx_Destroy(f->js);
	natsConnection_Destroy(f->nc);
	server_kill(f);
	nlg_loop_destroy(f->loop);
	nlg_buf_free(&f->body);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The test's client, and a file stream named name on subjects. */
static void stream_add(struct fx *f, const char *name, const char *subject)
{
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	char url[64];
	const char *subjects[1] = {subject};

	if (!f->nc) {
		snprintf(url, sizeof(url), "nats://127.0.0.1:%d", f->port);
		assert_int_equal(natsConnection_ConnectTo(&f->nc, url), NATS_OK);
		assert_int_equal(natsConnection_JetStream(&f->js, f->nc, NULL), NATS_OK);
	}
	jsStreamConfig_Init(&cfg);
	cfg.Name = name;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	assert_int_equal(js_AddStream(&si, f->js, &cfg, NULL, &jerr), NATS_OK);
	jsStreamInfo_Destroy(si);
}

static uint64_t stream_msgs(struct fx *f, const char *name)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	uint64_t n;

	assert_int_equal(js_GetStreamInfo(&si, f->js, name, NULL, &jerr), NATS_OK);
	n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	return n;
}

/* Open the output with the server's url and name=value pairs. */
#define fx_open(f, ...) fx_open_(f, __VA_ARGS__, NULL)
static void fx_open_(struct fx *f, ...)
{
	const char *values[32] = {0};
	struct nlg_err err = {{0}};
	char url[64];
	const char *name;
	va_list ap;

	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", f->port);
	values[nlg_opt_find(OPS->opts, "url", 0)] = url;
	va_start(ap, f);
	while ((name = va_arg(ap, const char *))) {
		int i = nlg_opt_find(OPS->opts, name, 0);
		assert_true(i >= 0);
		values[i] = va_arg(ap, const char *);
	}
	va_end(ap);
	memset(&f->conf, 0, sizeof(f->conf));
	if (nlg_opt_apply(OPS->opts, &f->conf, values, NLG_CTX_SCRIPT, &err) < 0)
		fail_msg("options: %s", err.msg);
	if (OPS->open(f->loop, &f->conf, &f->o, &err) < 0)
		fail_msg("open: %s", err.msg);
}

static const struct nlg_nats_stats *stats(struct fx *f)
{
	memset(&f->st, 0, sizeof(f->st));
	OPS->stats(f->o, &f->st);
	return &f->st;
}

/* {n = n} sent with tag. */
static int send_n(struct fx *f, const char *tag, uint64_t n)
{
	struct nlg_item it;

	nlg_buf_reset(&f->body);
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_str_with_body(&f->pk, "n", 1);
	msgpack_pack_uint64(&f->pk, n);
	it = (struct nlg_item){.tag = tag,
			       .taglen = strlen(tag),
			       .time_ns = nlg_realtime_ns(),
			       .body = f->body.data,
			       .len = f->body.len};
	return OPS->send(f->o, &it);
}

/* Run the loop (as the exit drain does: flush, then a turn) until cond
 * holds or ms pass. */
#define RUN_UNTIL(f, ms, cond)                                                                     \
	do {                                                                                       \
		uint64_t end_ = nlg_now_ms() + (ms);                                               \
		while (!(cond) && nlg_now_ms() < end_) {                                           \
			OPS->flush((f)->o, 0);                                                     \
			nlg_loop_run_once((f)->loop, 10);                                          \
		}                                                                                  \
	} while (0)

static void test_jetstream(void **state)
{
	struct fx *f = *state;
	natsMsg *m = NULL;
	const char *id = NULL;
	jsErrCode jerr = 0;
	const int n = 5000;

	if (!have_server())
		skip();
	server_start(f);
	stream_add(f, "U", "u.>");
	fx_open(f, "subject", "u.{tag}", "max_pending", "256");
	RUN_UNTIL(f, 5000, stats(f)->link.state == NLG_LINK_CONNECTED);
	assert_int_equal(stats(f)->link.state, NLG_LINK_CONNECTED);
	for (int i = 1; i <= n; i++)
		assert_int_equal(send_n(f, "rec", (uint64_t)i), 1);
	RUN_UNTIL(f, 10000, !OPS->pending(f->o));
	assert_int_equal(OPS->pending(f->o), 0);
	stats(f);
	assert_int_equal(f->st.link.queued, n);
	assert_int_equal(f->st.link.sent, n);
	assert_int_equal(f->st.link.acked, n);
	assert_int_equal(f->st.link.dropped, 0);
	assert_int_equal(f->st.messages, n);
	assert_int_equal(stream_msgs(f, "U"), n);
	/* Every message names its origin and sequence. */
	assert_int_equal(js_GetMsg(&m, f->js, "U", 1, NULL, &jerr), NATS_OK);
	assert_string_equal(natsMsg_GetSubject(m), "u.rec");
	assert_int_equal(natsMsgHeader_Get(m, "Nats-Msg-Id", &id), NATS_OK);
	assert_true(strlen(id) > 2 && !strcmp(id + strlen(id) - 2, "/1"));
	natsMsg_Destroy(m);
	OPS->close(f->o, 1000);
	f->o = NULL;
}

static void test_batches(void **state)
{
	struct fx *f = *state;

	if (!have_server())
		skip();
	server_start(f);
	stream_add(f, "B", "b.>");
	fx_open(f, "subject", "b.{tag}", "batch", "10", "linger", "1s");
	RUN_UNTIL(f, 5000, stats(f)->link.state == NLG_LINK_CONNECTED);
	/* Two subjects interleaved: 100 records each, 10 per message. */
	for (int i = 1; i <= 100; i++) {
		assert_int_equal(send_n(f, "x", (uint64_t)i), 1);
		assert_int_equal(send_n(f, "y", (uint64_t)i), 1);
	}
	/* Three more wait for the linger (1 s) or a flush: the drain's. */
	for (int i = 101; i <= 103; i++)
		assert_int_equal(send_n(f, "x", (uint64_t)i), 1);
	RUN_UNTIL(f, 10000, !OPS->pending(f->o));
	stats(f);
	assert_int_equal(f->st.link.acked, 203);
	assert_int_equal(f->st.messages, 21);
	assert_int_equal(stream_msgs(f, "B"), 21);
	OPS->close(f->o, 1000);
	f->o = NULL;
}

/* No server yet: the queue holds what it may, drops the rest (counted),
 * and once a server answers, the records and one nlgate.gap message go. */
static void test_queue_and_gap(void **state)
{
	struct fx *f = *state;
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	uint64_t last;

	if (!have_server())
		skip();
	fx_open(f, "subject", "q.{tag}", "queue_records", "50", "reconnect_wait", "100ms");
	RUN_UNTIL(f, 300, 0);
	assert_int_equal(stats(f)->link.state, NLG_LINK_CONNECTING);
	for (int i = 1; i <= 80; i++)
		assert_int_equal(send_n(f, "r", (uint64_t)i), i <= 50);
	stats(f);
	assert_int_equal(f->st.link.queued, 50);
	assert_int_equal(f->st.link.dropped, 30);
	assert_int_equal(f->st.backlog, 50);
	assert_int_equal(OPS->pending(f->o), 50);
	server_start(f);
	stream_add(f, "Q", "q.>");
	RUN_UNTIL(f, 10000, !OPS->pending(f->o));
	stats(f);
	assert_int_equal(f->st.link.acked, 50);
	assert_int_equal(f->st.gaps, 1);
	/* The gap message is the last, on the subject for nlgate.gap. */
	last = stream_msgs(f, "Q");
	assert_int_equal(last, 51);
	assert_int_equal(js_GetMsg(&m, f->js, "Q", last, NULL, &jerr), NATS_OK);
	assert_string_equal(natsMsg_GetSubject(m), "q.nlgate.gap");
	assert_non_null(memmem(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), "missed", 6));
	natsMsg_Destroy(m);
	OPS->close(f->o, 0);
	f->o = NULL;
}

/* A server that stops answering: close gives up after its time and counts
 * what was in flight as dropped, without hanging. */
static void test_close_unanswered(void **state)
{
	struct fx *f = *state;
	uint64_t t0;

	if (!have_server())
		skip();
	server_start(f);
	stream_add(f, "S", "s.>");
	fx_open(f, "subject", "s.{tag}");
	RUN_UNTIL(f, 5000, stats(f)->link.state == NLG_LINK_CONNECTED);
	kill(f->server, SIGSTOP);
	for (int i = 1; i <= 100; i++)
		assert_int_equal(send_n(f, "r", (uint64_t)i), 1);
	RUN_UNTIL(f, 200, 0);
	assert_int_equal(OPS->pending(f->o), 100);
	t0 = nlg_now_ms();
	OPS->close(f->o, 300);
	f->o = NULL;
	assert_true(nlg_now_ms() - t0 < 3000);
	kill(f->server, SIGCONT);
}

static void test_core_nats(void **state)
{
	struct fx *f = *state;
	natsSubscription *sub = NULL;
	char url[64];
	int pending = 0;

	if (!have_server())
		skip();
	server_start(f);
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", f->port);
	assert_int_equal(natsConnection_ConnectTo(&f->nc, url), NATS_OK);
	assert_int_equal(natsConnection_SubscribeSync(&sub, f->nc, "c.>"), NATS_OK);
	assert_int_equal(natsConnection_Flush(f->nc), NATS_OK);
	fx_open(f, "subject", "c.{tag}", "jetstream", "false");
	RUN_UNTIL(f, 5000, stats(f)->link.state == NLG_LINK_CONNECTED);
	for (int i = 1; i <= 1000; i++)
		assert_int_equal(send_n(f, "r", (uint64_t)i), 1);
	RUN_UNTIL(f, 5000, !OPS->pending(f->o));
	OPS->flush(f->o, 1000);
	for (int i = 0; i < 100 && pending < 1000; i++) {
		usleep(10000);
		natsSubscription_GetPending(sub, &pending, NULL);
	}
	assert_int_equal(pending, 1000);
	stats(f);
	assert_int_equal(f->st.link.sent, 1000);
	assert_int_equal(f->st.link.acked, 0);
	natsSubscription_Destroy(sub);
	OPS->close(f->o, 500);
	f->o = NULL;
}

#endif /* NLGATE_HAVE_NATS */

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_schema),
	    cmocka_unit_test(test_subjects),
#ifdef NLGATE_HAVE_NATS
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test_setup_teardown(test_jetstream, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_batches, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_queue_and_gap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_close_unanswered, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_core_nats, fx_setup, fx_teardown),
#endif
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
