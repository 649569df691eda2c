/* The script runtime's defences, one by one: the pack bounds and what a
 * frame looks like to a strict decoder (bindings/lua_record.c), the budget
 * (sticky kill, nested calls charged to the outer one), the memory limit
 * (out of memory is a logged error, the gateway goes on), and disabling a
 * handler that keeps failing — through the script API the daemon uses. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <lualib.h>

#include "../../bindings/binding.h"
#include "nlgate/script.h"

/* ---- nlg_lua_pack ------------------------------------------------------ */

struct packed {
	struct nlg_buf buf;
	msgpack_unpacked u;
	int ok;
	char err[256];
};

static int pack_tramp(lua_State *L)
{
	struct nlg_buf *b = lua_touserdata(L, 2);
	msgpack_packer pk;

	nlg_mp_init(&pk, b);
	nlg_lua_pack(L, 1, &pk);
	return 0;
}

/* Evaluate expr (Lua returning one value), pack it protected. */
static void pack_expr(const char *expr, struct packed *p)
{
	lua_State *L = luaL_newstate();
	size_t off = 0;

	luaL_openlibs(L);
	nlg_buf_init(&p->buf);
	msgpack_unpacked_init(&p->u);
	assert_int_equal(luaL_dostring(L, expr), LUA_OK);
	lua_pushcfunction(L, pack_tramp);
	lua_insert(L, -2);
	lua_pushlightuserdata(L, &p->buf);
	p->ok = lua_pcall(L, 2, 0, 0) == LUA_OK;
	p->err[0] = 0;
	if (!p->ok)
		snprintf(p->err, sizeof(p->err), "%s", lua_tostring(L, -1));
	else
		assert_int_equal(
		    msgpack_unpack_next(&p->u, (const char *)p->buf.data, p->buf.len, &off),
		    MSGPACK_UNPACK_SUCCESS);
	lua_close(L);
}

static void packed_free(struct packed *p)
{
	msgpack_unpacked_destroy(&p->u);
	nlg_buf_free(&p->buf);
}

static void pack_keys_without_metamethods(void **state)
{
	struct packed p;

	(void)state;
	/* a key whose __tostring would empty the table being walked */
	pack_expr("local t = {a = 1, b = 2}\n"
		  "local k = setmetatable({}, {__tostring = function() t.a = nil; t.b = nil; "
		  "return 'k' end})\n"
		  "t[k] = 3 return t",
		  &p);
	assert_false(p.ok);
	assert_non_null(strstr(p.err, "table key must be a string, number or boolean"));
	packed_free(&p);

	pack_expr("return {[1.5] = 'x', [true] = 'y', s = 'z', [7] = 'w'}", &p);
	assert_true(p.ok);
	assert_int_equal(p.u.data.type, MSGPACK_OBJECT_MAP);
	assert_int_equal(p.u.data.via.map.size, 4); /* the count equals the entries */
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(p.u.data.via.map.ptr[i].key.type, MSGPACK_OBJECT_STR);
	packed_free(&p);
}

static void pack_bounds(void **state)
{
	struct packed p;

	(void)state;
	pack_expr("local t = {} for i = 1, 26 do t = {t, t} end return t", &p);
	assert_false(p.ok);
	assert_non_null(strstr(p.err, "value too large"));
	packed_free(&p);

	pack_expr("local t = {} for i = 1, 40 do t = {x = t} end return t", &p);
	assert_false(p.ok);
	assert_non_null(strstr(p.err, "nested too deeply"));
	packed_free(&p);

	pack_expr("local t = {} t.self = t return t", &p);
	assert_false(p.ok);
	packed_free(&p);

	pack_expr("return string.rep('x', 17 * 1024 * 1024)", &p);
	assert_false(p.ok);
	assert_non_null(strstr(p.err, "MiB"));
	packed_free(&p);

	pack_expr("local t = {} for i = 1, 31 do t = {t} end return t", &p);
	assert_true(p.ok); /* within the bounds: fine */
	packed_free(&p);
}

static void pack_utf8(void **state)
{
	struct packed p;

	(void)state;
	pack_expr("return {ok = 'h\\u{e9}llo', bad = 'a\\xff\\xfeb', ['\\xc0\\x80'] = 1}", &p);
	assert_true(p.ok);
	for (uint32_t i = 0; i < p.u.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &p.u.data.via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_BIN) { /* an overlong NUL: not UTF-8 */
			assert_int_equal(kv->key.via.bin.size, 2);
			continue;
		}
		assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
		if (!strncmp(kv->key.via.str.ptr, "ok", 2))
			assert_int_equal(kv->val.type, MSGPACK_OBJECT_STR);
		else
			assert_int_equal(kv->val.type, MSGPACK_OBJECT_BIN);
	}
	packed_free(&p);
}

static void utf8_validator(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"", 1},
	    {"plain ascii", 1},
	    {"\xc3\xa9", 1},
	    {"\xe2\x82\xac", 1},
	    {"\xf0\x9f\x98\x80", 1},
	    {"\xc0\x80", 0},
	    {"\xe0\x80\x80", 0},
	    {"\xed\xa0\x80", 0},
	    {"\xf4\x90\x80\x80", 0},
	    {"\xc3", 0},
	    {"\xe2\x82", 0},
	    {"\x80", 0},
	    {"\xff", 0},
	    {"a\xc3\xa9z\xe2\x82\xac", 1},
	};

	(void)state;
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cases); i++)
		assert_int_equal(nlg_utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
}

/* ---- scripts through the script API -------------------------------------- */

static char tmpdir[64];

/* stderr into a file from capture_begin (which returns the saved fd) to
 * capture_end, which reads it into err. */
static int capture_begin(void)
{
	char errpath[128];
	int se = dup(2), fd;

	snprintf(errpath, sizeof(errpath), "%s/err", tmpdir);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	dup2(fd, 2);
	close(fd);
	return se;
}

static void capture_end(int se, char *err, size_t errlen)
{
	char errpath[128];
	int fd;

	fflush(stderr);
	dup2(se, 2);
	close(se);
	snprintf(errpath, sizeof(errpath), "%s/err", tmpdir);
	fd = open(errpath, O_RDONLY);
	ssize_t n = read(fd, err, errlen - 1);
	err[n > 0 ? n : 0] = 0;
	close(fd);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Run script text for ms of loop time; stderr captured into err. */
static int run_script(const char *text, const struct nlg_script_opts *o, int ms, char *err,
		      size_t errlen)
{
	char path[128];
	struct nlg_err e = {{0}};
	struct nlg_loop *loop = nlg_loop_create();
	struct nlg_script *s;
	int se, rc = 0;

	snprintf(path, sizeof(path), "%s/s.lua", tmpdir);
	write_file(path, text);
	se = capture_begin();
	s = nlg_script_start(loop, path, o, &e);
	if (!s) {
		fprintf(stderr, "START FAILED: %s\n", e.msg);
		rc = -1;
	} else {
		uint64_t end = nlg_now_ms() + (uint64_t)ms;
		while (nlg_now_ms() < end && !nlg_loop_stopped(loop))
			nlg_loop_run_once(loop, 20);
	}
	nlg_script_stop(s);
	nlg_loop_destroy(loop);
	capture_end(se, err, errlen);
	return rc;
}

static int count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static char err[1 << 16];

static void budget_kill_is_sticky(void **state)
{
	struct nlg_script_opts o = {.insn_budget = 200000};

	(void)state;
	/* pcall around an endless loop, and the same through a coroutine:
	 * once killed, the handler stays killed. A second timer goes on. */
	assert_int_equal(
	    run_script("local gw = require 'nlgate'\n"
		       "local ticks, after = 0, 0\n"
		       "gw.after('20ms', function()\n"
		       "  while true do pcall(function() while true do end end) end\n"
		       "end)\n"
		       "gw.after('40ms', function()\n"
		       "  while true do\n"
		       "    coroutine.resume(coroutine.create(function() while true do end end))\n"
		       "  end\n"
		       "end)\n"
		       "gw.every('10ms', function() ticks = ticks + 1 end)\n"
		       "gw.after('200ms', function()\n"
		       "  gw.log(string.format('RESULT ticks=%d kills=%d', ticks,\n"
		       "         gw.stats().script.budget_kills))\n"
		       "  gw.stop()\n"
		       "end)\n",
		       &o, 2000, err, sizeof(err)),
	    0);
	assert_int_equal(count(err, "instruction budget exceeded"), 2);
	int ticks = 0, kills = 0;
	const char *r = strstr(err, "RESULT ");
	assert_non_null(r);
	assert_int_equal(sscanf(r, "RESULT ticks=%d kills=%d", &ticks, &kills), 2);
	assert_int_equal(kills, 2);
	assert_true(ticks >= 5);
}

static void nested_calls_are_charged_to_the_outer_one(void **state)
{
	struct nlg_script_opts o = {.insn_budget = 300000};

	(void)state;
	/* Each poll's handlers are cheap; a thousand of them from one timer
	 * are not. Charged separately, none would ever be stopped. */
	assert_int_equal(run_script("local gw = require 'nlgate'\n"
				    "local src = gw.sockets { proto = 'tcp', start = false }\n"
				    "local n = 0\n"
				    "src:each(function(s) for i = 1, 200 do n = n + i end end)\n"
				    "src:batch(function(b) for i = 1, 200 do n = n + i end end)\n"
				    "local polls = 0\n"
				    "gw.after('10ms', function()\n"
				    "  for i = 1, 100000 do src:poll(); polls = polls + 1 end\n"
				    "end)\n"
				    "gw.after('300ms', function()\n"
				    "  gw.log(string.format('RESULT polls=%d kills=%d', polls,\n"
				    "         gw.stats().script.budget_kills))\n"
				    "  gw.stop()\n"
				    "end)\n",
				    &o, 5000, err, sizeof(err)),
			 0);
	int polls = 0, kills = 0;
	const char *r = strstr(err, "RESULT ");
	assert_non_null(r);
	assert_int_equal(sscanf(r, "RESULT polls=%d kills=%d", &polls, &kills), 2);
	assert_int_equal(kills, 1);
	assert_true(polls < 100000);
	assert_non_null(strstr(err, "error in timer handler"));
}

/* A worker's run of records goes to :each in one protected call: a record
 * whose handler the budget kills (behind pcall, so only the sticky kill
 * stops it) costs that record alone; the next record gets a fresh budget. */
static void a_budget_kill_in_a_run_stops_that_record_only(void **state)
{
	struct nlg_script_opts o = {.insn_budget = 200000};

	(void)state;
	assert_int_equal(
	    run_script("local gw = require 'nlgate'\n"
		       "local src = gw.packets { file = (os.getenv('NLGATE_SRC') or '.') ..\n"
		       "  '/tests/fixtures/capture.pcap' }\n"
		       "local n, done = 0, 0\n"
		       "src:each(function(p)\n"
		       "  n = n + 1\n"
		       "  if n % 2 == 1 then pcall(function() while true do end end) end\n"
		       "  done = done + 1\n"
		       "end)\n"
		       "gw.every('10ms', function()\n"
		       "  if not src:stats().ended then return end\n"
		       "  gw.log(string.format('RESULT n=%d done=%d kills=%d', n, done,\n"
		       "         gw.stats().script.budget_kills))\n"
		       "  gw.stop()\n"
		       "end)\n",
		       &o, 5000, err, sizeof(err)),
	    0);
	int n = 0, done = 0, kills = 0;
	const char *r = strstr(err, "RESULT ");
	assert_non_null(r);
	assert_int_equal(sscanf(r, "RESULT n=%d done=%d kills=%d", &n, &done, &kills), 3);
	assert_int_equal(n, 24);
	assert_int_equal(done, 12);
	assert_int_equal(kills, 12);
	assert_int_equal(count(err, "instruction budget exceeded"), 12);
	assert_int_equal(count(err, "error in packets:each handler"), 12);
}

static void out_of_memory_is_an_error_not_an_abort(void **state)
{
	struct nlg_script_opts o = {.mem_limit = 4u << 20};

	(void)state;
	assert_int_equal(
	    run_script("local gw = require 'nlgate'\n"
		       "local hog, ticks = {}, 0\n"
		       "local src = gw.sockets { proto = 'tcp', every = '20ms' }\n"
		       "local batches = 0\n"
		       "src:batch(function(b) batches = batches + 1 end)\n"
		       "gw.after('10ms', function()\n"
		       "  for i = 1, 1e9 do hog[i] = string.rep('x', 1000) .. i end\n"
		       "end)\n"
		       "gw.every('10ms', function() ticks = ticks + 1 end)\n"
		       "gw.after('400ms', function()\n"
		       "  hog = nil; collectgarbage()\n"
		       "  gw.log(string.format('RESULT ticks=%d batches=%d', ticks, batches))\n"
		       "  gw.stop()\n"
		       "end)\n",
		       &o, 3000, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "not enough memory"));
	assert_null(strstr(err, "panic"));
	int ticks = 0, batches = 0;
	const char *r = strstr(err, "RESULT ");
	assert_non_null(r);
	assert_int_equal(sscanf(r, "RESULT ticks=%d batches=%d", &ticks, &batches), 2);
	assert_true(ticks >= 5);
}

/* Start the script at path (with the watchdog if o has a stop fd), run
 * the loop ms, then reload and run ms again, gens times in all; stderr
 * into err, "START FAILED" or "RELOAD FAILED" there if one did. */
static void run_generations(const char *path, const struct nlg_script_opts *o, int gens, int ms)
{
	struct nlg_err e = {{0}};
	struct nlg_loop *loop = nlg_loop_create();
	struct nlg_script *s;
	int se = capture_begin();

	s = nlg_script_start(loop, path, o, &e);
	if (s)
		nlg_script_watchdog(s);
	for (int gen = 1; s && gen <= gens; gen++) {
		uint64_t end = nlg_now_ms() + (uint64_t)ms;
		if (gen > 1 && nlg_script_reload(s, &e) < 0)
			fprintf(stderr, "RELOAD FAILED: %s\n", e.msg);
		while (nlg_now_ms() < end)
			nlg_loop_run_once(loop, 10);
	}
	if (!s)
		fprintf(stderr, "START FAILED: %s\n", e.msg);
	nlg_script_stop(s);
	nlg_loop_destroy(loop);
	capture_end(se, err, sizeof(err));
}

/* Three generations of one script through two reloads: a threshold that
 * fired stays firing (no second frame) and resolves in the third; a
 * de-duplicated gw.alert is not sent again. Without the carry-over each
 * reload would fire both again and the resolution would never come. */
static void a_reload_keeps_alert_state(void **state)
{
	struct nlg_script_opts o = {.insn_budget = 1000000};
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/reload.lua", tmpdir);
	write_file(
	    path, "local gw = require 'nlgate'\n"
		  "gw.state.gen = (gw.state.gen or 0) + 1\n"
		  "local gen = gw.state.gen\n"
		  "local t = gw.threshold { name = 'hot', above = 10, by = 'k', every = '1h' }\n"
		  "gw.after('10ms', function()\n"
		  "  local st = t:update({ k = 'x' }, gen < 3 and 20 or 5)\n"
		  "  gw.alert { name = 'once', key = 'a', message = 'gen ' .. gen, every = '1h' }\n"
		  "  gw.log('GEN ' .. gen .. ' ' .. st)\n"
		  "end)\n");
	run_generations(path, &o, 3, 60);
	assert_int_equal(count(err, "FAILED"), 0);
	assert_int_equal(count(err, "GEN 1 firing"), 1);
	assert_int_equal(count(err, "GEN 2 firing"), 1);
	assert_int_equal(count(err, "GEN 3 ok"), 1);
	assert_int_equal(count(err, "alert hot [warning] x:"), 1);
	assert_int_equal(count(err, "alert hot [resolved] x:"), 1);
	assert_int_equal(count(err, "alert once [warning] a: gen 1"), 1);
	assert_int_equal(count(err, "alert once [warning]"), 1);
}

/* As `nlgate run` runs it: the watchdog started (a stop fd), handlers
 * unhooked until it arms the budget's hook. A runaway handler is still
 * stopped, before and after a reload (the signal then reaches the new
 * state), and a handler after it runs normally. ThreadSanitizer holds
 * signals back until the thread calls into libc, which a Lua loop never
 * does: skipped there. */
static void a_late_armed_budget_stops_a_runaway_across_a_reload(void **state)
{
	struct nlg_script_opts o = {.insn_budget = 1000000};
	char path[128];
	int stop[2];

	(void)state;
#if defined(__SANITIZE_THREAD__)
	skip();
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	skip();
#endif
#endif
	assert_int_equal(pipe(stop), 0);
	o.stop_fd = stop[0];
	snprintf(path, sizeof(path), "%s/runaway.lua", tmpdir);
	write_file(path,
		   "local gw = require 'nlgate'\n"
		   "gw.state.gen = (gw.state.gen or 0) + 1\n"
		   "local gen = gw.state.gen\n"
		   "gw.after('10ms', function() while true do end end)\n"
		   "gw.after('400ms', function()\n"
		   "  local st = gw.stats().script\n"
		   "  gw.log(string.format('GEN %d kills=%d armed=%d', gen, st.budget_kills,\n"
		   "         st.budget_armed))\n"
		   "end)\n");
	run_generations(path, &o, 2, 600);
	close(stop[0]);
	close(stop[1]);
	assert_int_equal(count(err, "FAILED"), 0);
	assert_int_equal(count(err, "instruction budget exceeded"), 2);
	/* kills are counted per state; arming per process (a loop thread held
	 * off the CPU during a short call may be armed too: at least) */
	int kills[2] = {0}, armed[2] = {0};
	for (int g = 0; g < 2; g++) {
		char key[16];
		snprintf(key, sizeof(key), "GEN %d ", g + 1);
		const char *r = strstr(err, key);
		assert_non_null(r);
		assert_int_equal(sscanf(r + strlen(key), "kills=%d armed=%d", &kills[g], &armed[g]),
				 2);
	}
	assert_int_equal(kills[0], 1);
	assert_int_equal(kills[1], 1);
	assert_true(armed[0] >= 1);
	assert_true(armed[1] > armed[0]);
}

static void a_handler_that_keeps_failing_is_disabled(void **state)
{
	struct nlg_script_opts o = {0};

	(void)state;
	assert_int_equal(
	    run_script("local gw = require 'nlgate'\n"
		       "local bad, good = 0, 0\n"
		       "gw.every('1ms', function() bad = bad + 1; error('always') end)\n"
		       "gw.every('5ms', function() good = good + 1 end)\n"
		       "gw.after('600ms', function()\n"
		       "  local d = gw.stats().script.disabled\n"
		       "  gw.log(string.format('RESULT bad=%d good=%d disabled=%s', bad, good,\n"
		       "         table.concat(d, ',')))\n"
		       "  gw.stop()\n"
		       "end)\n",
		       &o, 3000, err, sizeof(err)),
	    0);
	assert_int_equal(count(err, "timer handler disabled"), 1);
	const char *r = strstr(err, "RESULT ");
	assert_non_null(r);
	int bad = 0, good = 0;
	char disabled[64] = "";
	assert_int_equal(sscanf(r, "RESULT bad=%d good=%d disabled=%63s", &bad, &good, disabled),
			 3);
	assert_int_equal(bad, NLG_HANDLER_FAILS);
	assert_true(good > 10);
	assert_string_equal(disabled, "timer");
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/nlgt-script.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pack_keys_without_metamethods),
	    cmocka_unit_test(pack_bounds),
	    cmocka_unit_test(pack_utf8),
	    cmocka_unit_test(utf8_validator),
	    cmocka_unit_test(budget_kill_is_sticky),
	    cmocka_unit_test(nested_calls_are_charged_to_the_outer_one),
	    cmocka_unit_test(a_budget_kill_in_a_run_stops_that_record_only),
	    cmocka_unit_test(out_of_memory_is_an_error_not_an_abort),
	    cmocka_unit_test(a_handler_that_keeps_failing_is_disabled),
	    cmocka_unit_test(a_reload_keeps_alert_state),
	    cmocka_unit_test(a_late_armed_budget_stops_a_runaway_across_a_reload),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0 && !rc)
		rc = 1;
	return rc;
}
