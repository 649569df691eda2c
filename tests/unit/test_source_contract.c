/* The source contract is the whole story: a fake source defined in this file
 * alone — its record schema, options, counters and operations — is
 * registered and then driven through the generic command line (`nlgate dump
 * fake`, `nlgate watch fake`, `--help`, bad options) and the generic Lua
 * binding (`nlgate run` with a script using gw.fake: :each, :batch, :poll,
 * :stats, a filter, close from inside its own handler). No other file knows
 * it exists. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../cli/cli.h"
#include "nlgate/source.h"

/* ---- the fake source -------------------------------------------------- */

struct fake_rec {
	NLG_RECORD_HEAD;
	uint64_t seq;
	uint32_t value;
	char name[16];
};

static const struct nlg_field fake_fields[] = {
    NLG_FIELD(struct fake_rec, "seq", NLG_T_U64, seq, 0, "sequence number"),
    NLG_FIELD(struct fake_rec, "value", NLG_T_U32, value, 0, "seq * 3"),
    NLG_FIELD(struct fake_rec, "name", NLG_T_STR, name, 0, "the name option"),
};

static struct nlg_schema fake_schema = {
    .kind = "fake",
    .desc = "a test record",
    .fields = fake_fields,
    .nfields = NLG_ARRAY_SIZE(fake_fields),
    .rec_size = sizeof(struct fake_rec),
    .present_off = offsetof(struct fake_rec, present),
};

struct fake_stats {
	NLG_RECORD_HEAD;
	uint64_t emitted, polls;
};

static const struct nlg_field fake_stats_fields[] = {
    NLG_FIELD(struct fake_stats, "emitted", NLG_T_U64, emitted, 0, "records emitted"),
    NLG_FIELD(struct fake_stats, "polls", NLG_T_U64, polls, 0, "batches emitted"),
};

static struct nlg_schema fake_stats_schema = {
    .kind = "fake.stats",
    .desc = "counters of the fake source",
    .fields = fake_stats_fields,
    .nfields = NLG_ARRAY_SIZE(fake_stats_fields),
    .rec_size = sizeof(struct fake_stats),
    .present_off = offsetof(struct fake_stats, present),
};

struct fake_conf {
	uint64_t fail; /* give up after this many batches (0: never) */
	uint64_t count;
	uint64_t every_ms;
	char name[16];
};

static const struct nlg_opt fake_opts[] = {
    {.name = "count",
     .type = NLG_OPT_UINT,
     .off = offsetof(struct fake_conf, count),
     .size = 8,
     .def = "3",
     .min = 1,
     .max = 1000,
     .arg = "N",
     .shortopt = 'c',
     .desc = "records per batch"},
    {.name = "every",
     .type = NLG_OPT_DURATION,
     .off = offsetof(struct fake_conf, every_ms),
     .def = "10ms",
     .min = 1,
     .unit = "ms",
     .arg = "MS",
     .flags = NLG_OPT_LIVE,
     .desc = "interval between batches"},
    {.name = "fail",
     .type = NLG_OPT_UINT,
     .off = offsetof(struct fake_conf, fail),
     .size = 8,
     .arg = "N",
     .flags = NLG_OPT_LIVE,
     .desc = "stop for good after N batches"},
    {.name = "name",
     .type = NLG_OPT_STR,
     .off = offsetof(struct fake_conf, name),
     .size = 16,
     .def = "fake",
     .arg = "NAME",
     .desc = "what each record is called"},
    {0},
};

struct fake {
	struct nlg_source *src;
	const struct fake_conf *c;
	struct fake_stats st;
	uint64_t seq;
};

static int fake_batch(struct fake *f)
{
	int rc = NLG_CB_OK;

	for (uint64_t i = 0; i < f->c->count && rc == NLG_CB_OK; i++) {
		struct fake_rec r = {.seq = f->seq++};
		r.value = (uint32_t)(r.seq * 3);
		snprintf(r.name, sizeof(r.name), "%s", f->c->name);
		f->st.emitted++;
		rc = nlg_source_emit(f->src, &r);
	}
	f->st.polls++;
	nlg_source_flush(f->src);
	return (int)f->c->count;
}

static int64_t fake_tick(void *st)
{
	struct fake *f = st;

	fake_batch(f);
	if (f->c->fail && f->st.polls >= f->c->fail) {
		nlg_source_fail(f->src, "gave up after %llu batches",
				(unsigned long long)f->st.polls);
		return -1;
	}
	return (int64_t)f->c->every_ms;
}

static int opened; /* fake_open calls: a dry fake makes none */

static int fake_open(struct nlg_source *src, const void *conf, void **st, struct nlg_err *err)
{
	struct fake *f = calloc(1, sizeof(*f));

	opened++;
	if (!f)
		return nlg_err_set(err, ENOMEM, "out of memory");
	f->src = src;
	f->c = conf;
	if (nlg_source_timer(src, f->c->every_ms, fake_tick) < 0) {
		free(f);
		return nlg_err_set(err, ENOMEM, "no timer");
	}
	*st = f;
	return 0;
}

static void fake_close(void *st)
{
	free(st);
}

static int fake_poll(void *st, struct nlg_err *err)
{
	NLG_UNUSED(err);
	return fake_batch(st);
}

static int fake_dump(struct nlg_source *src, const void *conf, struct nlg_err *err)
{
	struct fake f = {.src = src, .c = conf};

	NLG_UNUSED(err);
	return fake_batch(&f);
}

static void fake_stats_fill(void *st, void *out)
{
	*(struct fake_stats *)out = ((struct fake *)st)->st;
}

static const struct nlg_source_ops fake_ops = {
    .name = "fake",
    .desc = "a fake source from the test suite",
    .schema = &fake_schema,
    .stats_schema = &fake_stats_schema,
    .opts = fake_opts,
    .conf_size = sizeof(struct fake_conf),
    .open = fake_open,
    .close = fake_close,
    .poll = fake_poll,
    .dump = fake_dump,
    .stats = fake_stats_fill,
};

/* ---- running the command line with captured output --------------------- */

static char tmpdir[64];

struct run {
	int rc;
	char out[65536], err[8192];
};

static void slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

static void cli(struct run *r, int argc, const char **argv)
{
	char out[128], err[128];
	int o, e, so = dup(1), se = dup(2);

	snprintf(out, sizeof(out), "%s/out", tmpdir);
	snprintf(err, sizeof(err), "%s/err", tmpdir);
	o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(o >= 0 && e >= 0);
	fflush(stdout);
	fflush(stderr);
	dup2(o, 1);
	dup2(e, 2);
	r->rc = nlg_cli_main(argc, (char **)argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(o);
	close(e);
	close(so);
	close(se);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ---- tests --------------------------------------------------------------- */

static void dump_prints_the_records(void **state)
{
	struct run r;
	const char *argv[] = {"nlgate", "dump", "fake", "--count", "5", "--name", "zed"};

	NLG_UNUSED(state);
	cli(&r, 7, argv);
	assert_int_equal(r.rc, 0);
	assert_int_equal(count_lines(r.out, "\n"), 5);
	assert_non_null(strstr(r.out, "{\"seq\":0,\"value\":0,\"name\":\"zed\"}\n"));
	assert_non_null(strstr(r.out, "{\"seq\":4,\"value\":12,\"name\":\"zed\"}\n"));
}

static void help_and_bad_options_come_from_the_table(void **state)
{
	struct run r;
	const char *help[] = {"nlgate", "dump", "fake", "--help"};
	const char *bad[] = {"nlgate", "dump", "fake", "--count", "many"};
	const char *range[] = {"nlgate", "dump", "fake", "-c", "5000"};
	const char *live[] = {"nlgate", "dump", "fake", "--every", "5ms"};
	const char *top[] = {"nlgate", "--help"};

	NLG_UNUSED(state);
	cli(&r, 4, help);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "records per batch"));
	assert_non_null(strstr(r.out, "--count"));
	cli(&r, 5, bad);
	assert_int_not_equal(r.rc, 0);
	assert_non_null(strstr(r.err, "count"));
	assert_non_null(strstr(r.err, "many"));
	assert_int_equal(count_lines(r.err, "\n"), 1);
	cli(&r, 5, range);
	assert_int_not_equal(r.rc, 0);
	assert_non_null(strstr(r.err, "5000"));
	cli(&r, 5, live); /* every is for a running source, not for dump */
	assert_int_not_equal(r.rc, 0);
	cli(&r, 2, top);
	assert_non_null(strstr(r.out, "fake"));
}

static pthread_t main_thread;

static void *interrupt_later(void *arg)
{
	NLG_UNUSED(arg);
	usleep(300 * 1000);
	pthread_kill(main_thread, SIGINT);
	return NULL;
}

static void watch_runs_the_source_on_the_loop(void **state)
{
	struct run r;
	const char *argv[] = {"nlgate", "watch",   "fake", "--count",
			      "2",	"--every", "20",   "--stats"};
	pthread_t t;

	NLG_UNUSED(state);
	main_thread = pthread_self();
	pthread_create(&t, NULL, interrupt_later, NULL);
	cli(&r, 8, argv);
	pthread_join(t, NULL);
	assert_int_equal(r.rc, 0);
	/* about 15 ticks of 2 records in 300 ms; the timing is loose on purpose */
	int n = count_lines(r.out, "\"seq\":");
	assert_true(n >= 4);
	assert_int_equal(n % 2, 0);
	assert_non_null(strstr(r.out, "{\"seq\":3,"));
	/* --stats: the counters from the stats schema, on stderr */
	char want[64];
	snprintf(want, sizeof(want), "\"emitted\":%d", n);
	assert_non_null(strstr(r.err, want));
}

static void watch_ends_when_the_source_gives_up(void **state)
{
	struct run r;
	const char *argv[] = {"nlgate", "watch", "fake", "--fail", "2", "--every", "5"};

	NLG_UNUSED(state);
	cli(&r, 7, argv); /* no signal needed: the failure ends it */
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "watch fake: gave up after 2 batches"));
	assert_int_equal(count_lines(r.out, "\"seq\":"), 6);
}

static void script_drives_it_through_the_generic_binding(void **state)
{
	char script[128], text[4096];
	struct run r;
	FILE *f;

	NLG_UNUSED(state);
	snprintf(script, sizeof(script), "%s/fake.lua", tmpdir);
	f = fopen(script, "w");
	assert_non_null(f);
	fprintf(
	    f, "local gw = require 'nlgate'\n"
	       "local src = gw.fake { count = 4, every = '15ms', name = 'lua',\n"
	       "                      filter = function(r) return r.seq %% 2 == 0 end }\n"
	       "local each, batches, inbatch, kept = 0, 0, 0, nil\n"
	       "src:each(function(r) each = each + 1; kept = r; assert(r.name == 'lua') end)\n"
	       "src:batch(function(b) batches = batches + 1; inbatch = inbatch + #b end)\n"
	       "local polled = src:poll()\n"
	       "local closer = gw.fake { count = 5, every = '10ms' }\n"
	       "local closer_seen = 0\n"
	       "closer:each(function(r) closer_seen = closer_seen + 1; closer:close() end)\n"
	       "gw.after('200ms', function()\n"
	       "  local st = src:stats()\n"
	       "  local ok = pcall(function() return kept.seq end)\n"
	       "  gw.log(string.format('RESULT polled=%%d each=%%d batches=%%d inbatch=%%d '..\n"
	       "    'emitted=%%d filtered=%%d delivered=%%d kept_ok=%%s closer_seen=%%d '..\n"
	       "    'closer_open=%%s stats=%%d',\n"
	       "    polled, each, batches, inbatch, st.emitted, st.script_filtered, st.delivered,\n"
	       "    tostring(ok), closer_seen, tostring(closer:stats().open), #gw.stats().fake))\n"
	       "  gw.stop()\n"
	       "end)\n");
	fclose(f);
	const char *argv[] = {"nlgate", "run", script};
	cli(&r, 3, argv);
	assert_int_equal(r.rc, 0);
	/* scripts cannot write files (the sandbox): the result is a log line */
	const char *res = strstr(r.err, "RESULT ");
	assert_non_null(res);
	snprintf(text, sizeof(text), "%s", res + 7);
	int polled, each, batches, inbatch, emitted, filtered, delivered, closer_seen, nstats;
	char kept_ok[8], closer_open[8];
	assert_int_equal(sscanf(text,
				"polled=%d each=%d batches=%d inbatch=%d emitted=%d filtered=%d "
				"delivered=%d kept_ok=%7s closer_seen=%d closer_open=%7s stats=%d",
				&polled, &each, &batches, &inbatch, &emitted, &filtered, &delivered,
				kept_ok, &closer_seen, closer_open, &nstats),
			 11);
	assert_int_equal(polled, 4);
	assert_true(emitted >= 8);		 /* the poll and some ticks */
	assert_int_equal(emitted % 4, 0);	 /* whole batches */
	assert_int_equal(filtered, emitted / 2); /* odd seqs */
	assert_int_equal(delivered, emitted / 2);
	assert_int_equal(each, delivered);
	assert_int_equal(inbatch, delivered);
	assert_int_equal(batches, emitted / 4);
	assert_string_equal(kept_ok, "false"); /* a kept view raises */
	assert_int_equal(closer_seen, 1);      /* closed inside its own handler */
	assert_string_equal(closer_open, "false");
	assert_int_equal(nstats, 1); /* the closed one left gw.stats() */
}

/* ---- the dry fake (nlgate check, the test harness) ------------------------ */

struct dry_sink {
	struct nlg_source *src;
	int records, flushes, close_at;
	uint64_t last;
};

static int dry_record(void *data, const void *rec)
{
	struct dry_sink *d = data;

	d->last = ((const struct fake_rec *)rec)->seq;
	if (++d->records == d->close_at)
		nlg_source_close(d->src); /* from inside its own delivery: deferred */
	return NLG_CB_OK;
}

static void dry_flush(void *data)
{
	((struct dry_sink *)data)->flushes++;
}

static void a_dry_fake_opens_nothing_and_takes_injected_records(void **state)
{
	struct fake_conf conf = {.count = 3, .every_ms = 10, .name = "dry"};
	struct dry_sink d = {0};
	struct nlg_sink sink = {.record = dry_record, .flush = dry_flush, .data = &d};
	struct nlg_loop *loop = nlg_loop_create();
	struct nlg_err err = {{0}};
	struct fake_stats st = {0};
	struct fake_rec r = {.seq = 41};
	uint64_t when;

	NLG_UNUSED(state);
	opened = 0;
	d.src = nlg_source_open_fake(&fake_ops, loop, &conf, &sink, &err);
	assert_non_null(d.src);
	assert_true(nlg_source_is_fake(d.src));
	assert_int_equal(opened, 0);
	assert_int_equal(nlg_loop_next_timer(loop, &when), -ENOENT); /* no timer either */
	assert_ptr_equal(nlg_source_ops(d.src), &fake_ops);
	assert_memory_equal(nlg_source_conf(d.src), &conf, sizeof(conf));
	assert_int_equal(nlg_source_inject(d.src, &r), NLG_CB_OK);
	r.seq = 42;
	nlg_source_inject(d.src, &r);
	assert_int_equal(d.records, 2);
	assert_int_equal(d.last, 42);
	assert_int_equal(d.flushes, 0);
	assert_int_equal(nlg_source_poll(d.src, &err), 2); /* ends the batch */
	assert_int_equal(d.flushes, 1);
	assert_int_equal(nlg_source_poll(d.src, &err), 0);
	nlg_source_stats(d.src, &st);
	assert_int_equal(st.emitted, 0);
	assert_int_equal(nlg_source_busy(d.src), 0);
	nlg_source_drain(d.src);
	/* closed by its sink from inside the third delivery: released after */
	d.close_at = 3;
	assert_int_equal(nlg_source_inject(d.src, &r), NLG_CB_OK);
	assert_int_equal(d.records, 3);
	nlg_loop_destroy(loop);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/nlgt-contract.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	if (nlg_source_register(&fake_ops) < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dump_prints_the_records),
	    cmocka_unit_test(help_and_bad_options_come_from_the_table),
	    cmocka_unit_test(watch_runs_the_source_on_the_loop),
	    cmocka_unit_test(watch_ends_when_the_source_gives_up),
	    cmocka_unit_test(script_drives_it_through_the_generic_binding),
	    cmocka_unit_test(a_dry_fake_opens_nothing_and_takes_injected_records),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
