/* core/opt.c: every option type from text and from its default, bounds,
 * the exact messages for bad values, contexts, aliases, and --help rows. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nlgate/opt.h"

struct conf {
	int flag, on, resync;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64, max_rows;
	uint64_t every, linger, rcvbuf;
	uint32_t small_size;
	char netns[8];
	char proto[32];
	char states[32];
	char raw[16], lua_only[16];
	uint32_t mark;
	int mark_saw_u16; /* what u16 held when mark was parsed: rows go in order */
};

static int parse_mark(void *conf, const char *text, struct nlg_err *err)
{
	struct conf *c = conf;
	uint64_t v;

	if (nlg_parse_uint(text, &v) < 0 || v > 0xffffffffu)
		return nlg_err_set(err, EINVAL, "bad mark '%s' (VALUE or VALUE/MASK)", text);
	c->mark = (uint32_t)v;
	c->mark_saw_u16 = c->u16;
	return 0;
}

#define OFF(f) offsetof(struct conf, f)
static const struct nlg_opt table[] = {
    {.name = "flag", .type = NLG_OPT_BOOL, .off = OFF(flag), .desc = "a flag", .shortopt = 'f'},
    {.name = "on", .type = NLG_OPT_BOOL, .off = OFF(on), .def = "true", .desc = "on by default"},
    {.name = "u8", .type = NLG_OPT_UINT, .off = OFF(u8), .size = 1, .arg = "N"},
    {.name = "u16",
     .type = NLG_OPT_UINT,
     .off = OFF(u16),
     .size = 2,
     .def = "7",
     .min = 1,
     .max = 1000,
     .arg = "N",
     .desc = "a bounded one"},
    {.name = "u32", .type = NLG_OPT_UINT, .off = OFF(u32), .size = 4, .def = "0x10"},
    {.name = "u64", .type = NLG_OPT_UINT, .off = OFF(u64), .size = 8},
    {.name = "max_rows", .type = NLG_OPT_UINT, .off = OFF(max_rows), .size = 8, .arg = "N"},
    {.name = "every", .type = NLG_OPT_DURATION, .off = OFF(every), .def = "2s", .arg = "DUR"},
    {.name = "linger",
     .type = NLG_OPT_DURATION,
     .off = OFF(linger),
     .def = "1",
     .max = 1000,
     .unit = "ms",
     .arg = "MS",
     .flags = NLG_OPT_LIVE},
    {.name = "rcvbuf",
     .type = NLG_OPT_SIZE,
     .off = OFF(rcvbuf),
     .def = "256M",
     .min = 4096,
     .max = 2ull << 30,
     .arg = "BYTES"},
    {.name = "small_size", .type = NLG_OPT_SIZE, .off = OFF(small_size), .size = 4},
    {.name = "netns",
     .type = NLG_OPT_STR,
     .off = OFF(netns),
     .size = 8,
     .arg = "NAME",
     .shortopt = 'n'},
    {.name = "proto",
     .type = NLG_OPT_STR,
     .off = OFF(proto),
     .size = 32,
     .def = "tcp,udp",
     .flags = NLG_OPT_LIST,
     .arg = "LIST",
     .shortopt = 'p'},
    {.name = "states",
     .type = NLG_OPT_STR,
     .off = OFF(states),
     .size = 32,
     .arg = "LIST",
     .cli = "state",
     .shortopt = 's'},
    {.name = "mark", .type = NLG_OPT_CUSTOM, .off = OFF(mark), .parse = parse_mark, .arg = "V"},
    {.name = "resync",
     .type = NLG_OPT_BOOL,
     .off = OFF(resync),
     .def = "true",
     .flags = NLG_OPT_LIVE,
     .desc = "resync after loss"},
    {.name = "raw", .type = NLG_OPT_STR, .off = OFF(raw), .size = 16, .flags = NLG_OPT_CLI},
    {.name = "lua_only",
     .type = NLG_OPT_STR,
     .off = OFF(lua_only),
     .size = 16,
     .flags = NLG_OPT_SCRIPT},
    {.name = "tcp", .type = NLG_OPT_ALIAS, .shortopt = 't', .target = "proto", .value = "tcp"},
    {.name = "again",
     .type = NLG_OPT_ALIAS,
     .target = "resync",
     .value = "true",
     .desc = "an alias of a live row"},
    {.name = "wordy",
     .type = NLG_OPT_BOOL,
     .off = OFF(flag),
     .desc = "a description long enough that it cannot stay on one line of a terminal, "
	     "so it wraps at a space and goes on under the first"},
    {0},
};

enum {
	R_FLAG,
	R_ON,
	R_U8,
	R_U16,
	R_U32,
	R_U64,
	R_MAX_ROWS,
	R_EVERY,
	R_LINGER,
	R_RCVBUF,
	R_SMALL,
	R_NETNS,
	R_PROTO,
	R_STATES,
	R_MARK,
	R_RESYNC,
	R_RAW,
	R_LUA,
	R_TCP,
	R_AGAIN,
	R_WORDY,
	R_N
};

/* Apply one value for one row; the rest take their defaults. */
static int apply1(struct conf *c, int row, const char *text, enum nlg_opt_ctx ctx,
		  struct nlg_err *err)
{
	const char *v[R_N] = {0};

	memset(c, 0, sizeof(*c));
	memset(err, 0, sizeof(*err));
	v[row] = text;
	return nlg_opt_apply(table, c, v, ctx, err);
}

static void expect_bad(int row, const char *text, const char *msg)
{
	struct conf c;
	struct nlg_err err;

	assert_int_equal(apply1(&c, row, text, NLG_CTX_WATCH, &err), -EINVAL);
	assert_string_equal(err.msg, msg);
}

static void count_and_find(void **state)
{
	(void)state;
	assert_int_equal(nlg_opt_count(table), R_N);
	assert_int_equal(nlg_opt_count(NULL), 0);
	assert_int_equal(nlg_opt_find(table, "rcvbuf", 0), R_RCVBUF);
	assert_int_equal(nlg_opt_find(table, "max_rows", 0), R_MAX_ROWS);
	assert_int_equal(nlg_opt_find(table, "max-rows", 0), -1);
	assert_int_equal(nlg_opt_find(table, "max-rows", 1), R_MAX_ROWS);
	assert_int_equal(nlg_opt_find(table, "max_rows", 1), R_MAX_ROWS);
	assert_int_equal(nlg_opt_find(table, "state", 0), -1);
	assert_int_equal(nlg_opt_find(table, "state", 1), R_STATES);
	assert_int_equal(nlg_opt_find(table, "states", 1), R_STATES);
	assert_int_equal(nlg_opt_find(table, "frobnicate", 1), -1);
}

static void defaults(void **state)
{
	struct conf c;
	struct nlg_err err = {{0}};
	(void)state;

	memset(&c, 0, sizeof(c));
	assert_int_equal(nlg_opt_apply(table, &c, NULL, NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.flag, 0);
	assert_int_equal(c.on, 1);
	assert_int_equal(c.u16, 7);
	assert_int_equal(c.u32, 16);
	assert_int_equal(c.every, 2000);
	assert_int_equal(c.linger, 1);
	assert_int_equal(c.rcvbuf, 256u << 20);
	assert_string_equal(c.proto, "tcp,udp");
	assert_string_equal(c.netns, "");
	assert_int_equal(c.mark, 0); /* no default: the parser is not called */
	assert_int_equal(c.resync, 1);

	/* Rows not offered in a context still get their defaults. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(nlg_opt_apply(table, &c, NULL, NLG_CTX_DUMP, &err), 0);
	assert_int_equal(c.resync, 1);
	assert_int_equal(c.linger, 1);
}

static void bools(void **state)
{
	static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
	static const char *const no[] = {"false", "no", "off", "0", "OFF"};
	struct conf c;
	struct nlg_err err;
	int v = 7;
	(void)state;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(yes); i++) {
		assert_int_equal(apply1(&c, R_FLAG, yes[i], NLG_CTX_SCRIPT, &err), 0);
		assert_int_equal(c.flag, 1);
	}
	for (size_t i = 0; i < NLG_ARRAY_SIZE(no); i++) {
		assert_int_equal(apply1(&c, R_ON, no[i], NLG_CTX_SCRIPT, &err), 0);
		assert_int_equal(c.on, 0);
	}
	assert_int_equal(nlg_parse_bool("maybe", &v), -EINVAL);
	assert_int_equal(nlg_parse_bool("", &v), -EINVAL);
	assert_int_equal(v, 7);
	expect_bad(R_FLAG, "maybe", "flag must be true or false");
	expect_bad(R_ON, "", "on must be true or false");
}

static void uints(void **state)
{
	struct conf c;
	struct nlg_err err;
	uint64_t v;
	(void)state;

	assert_int_equal(nlg_parse_uint("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(nlg_parse_uint("010", &v), 0); /* decimal, not octal */
	assert_int_equal(v, 10);
	assert_int_equal(nlg_parse_uint("0x1f", &v), 0);
	assert_int_equal(v, 31);
	assert_int_equal(nlg_parse_uint("0XFF", &v), 0);
	assert_int_equal(v, 255);
	assert_int_equal(nlg_parse_uint("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(nlg_parse_uint("18446744073709551616", &v), -ERANGE);
	assert_int_equal(nlg_parse_uint("0x10000000000000000", &v), -ERANGE);
	static const char *const bad[] = {"", "0x", "1a", "+1", "-1", " 1", "1 ", "1.5", "0x1g"};
	for (size_t i = 0; i < NLG_ARRAY_SIZE(bad); i++)
		assert_int_equal(nlg_parse_uint(bad[i], &v), -EINVAL);

	/* each width, to its own limit */
	assert_int_equal(apply1(&c, R_U8, "255", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.u8, 255);
	expect_bad(R_U8, "256", "bad u8 '256' (an integer, 0 to 255)");
	assert_int_equal(apply1(&c, R_U16, "1000", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.u16, 1000);
	assert_int_equal(apply1(&c, R_U16, "1", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.u16, 1);
	expect_bad(R_U16, "0", "bad u16 '0' (an integer, 1 to 1000)");
	expect_bad(R_U16, "1001", "bad u16 '1001' (an integer, 1 to 1000)");
	expect_bad(R_U16, "ten", "bad u16 'ten' (an integer, 1 to 1000)");
	assert_int_equal(apply1(&c, R_U32, "4294967295", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.u32, 4294967295u);
	expect_bad(R_U32, "4294967296", "bad u32 '4294967296' (an integer, 0 to 4294967295)");
	assert_int_equal(apply1(&c, R_U64, "0xffffffffffffffff", NLG_CTX_SCRIPT, &err), 0);
	assert_true(c.u64 == UINT64_MAX);
	expect_bad(R_U64, "-1", "bad u64 '-1' (an integer)");
	expect_bad(R_U64, "99999999999999999999", "bad u64 '99999999999999999999' (an integer)");
	/* the neighbours of a narrow field are untouched */
	assert_int_equal(apply1(&c, R_U8, "1", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.u16, 7);
}

static void durations(void **state)
{
	static const struct {
		const char *text, *unit;
		uint64_t ms;
	} good[] = {
	    {"500ms", NULL, 500},    {"2s", NULL, 2000},    {"1.5s", NULL, 1500},
	    {"1m", NULL, 60000},     {"1h", NULL, 3600000}, {"3", NULL, 3000},
	    {"3", "s", 3000},	     {"3", "ms", 3},	    {"0.5", NULL, 500},
	    {"0", "ms", 0},	     {"2s", "ms", 2000},    {"0.25m", NULL, 15000},
	    {"1.0005s", NULL, 1001}, /* rounded to the nearest ms */
	};
	static const char *const bad[] = {"",	 "s",	 "1.5.2s", "-1s",	   " 1s",
					  "1s ", "1d",	 "1.s",	   ".5s",	   "1e3",
					  "1 s", "0x10", "1ms2",   "1.0000000001s"};
	struct conf c;
	struct nlg_err err;
	uint64_t ms;
	(void)state;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(good); i++) {
		ms = 12345;
		assert_int_equal(nlg_parse_duration(good[i].text, good[i].unit, &ms), 0);
		assert_true(ms == good[i].ms);
	}
	for (size_t i = 0; i < NLG_ARRAY_SIZE(bad); i++)
		assert_int_equal(nlg_parse_duration(bad[i], NULL, &ms), -EINVAL);
	assert_int_equal(nlg_parse_duration("99999999999999999h", NULL, &ms), -ERANGE);

	assert_int_equal(apply1(&c, R_EVERY, "250ms", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.every, 250);
	assert_int_equal(apply1(&c, R_EVERY, "5", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.every, 5000);
	assert_int_equal(apply1(&c, R_LINGER, "5", NLG_CTX_WATCH, &err), 0);
	assert_int_equal(c.linger, 5);
	assert_int_equal(apply1(&c, R_LINGER, "1s", NLG_CTX_WATCH, &err), 0);
	assert_int_equal(c.linger, 1000);
	expect_bad(R_EVERY, "2x", "bad every '2x' (a duration: 500ms, 2s, 1m)");
	expect_bad(R_LINGER, "1001", "bad linger '1001' (a duration: 500ms, 2s, 1m; 0 to 1s)");
	expect_bad(R_LINGER, "2s", "bad linger '2s' (a duration: 500ms, 2s, 1m; 0 to 1s)");
}

static void sizes(void **state)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} good[] = {
	    {"65536", 65536},	  {"512k", 512 << 10}, {"512K", 512 << 10}, {"64M", 64u << 20},
	    {"64m", 64u << 20},	  {"1G", 1u << 30},    {"1.5k", 1536},	    {"0", 0},
	    {"0.5G", 512u << 20}, {"3g", 3ull << 30},
	};
	static const char *const bad[] = {"", "k", "1T", "12kb", "-1", "1 k", "0x10", "1.k", "1e3"};
	struct conf c;
	struct nlg_err err;
	uint64_t b;
	(void)state;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(good); i++) {
		assert_int_equal(nlg_parse_size(good[i].text, &b), 0);
		assert_true(b == good[i].bytes);
	}
	for (size_t i = 0; i < NLG_ARRAY_SIZE(bad); i++)
		assert_int_equal(nlg_parse_size(bad[i], &b), -EINVAL);
	assert_int_equal(nlg_parse_size("99999999999999G", &b), -ERANGE);

	assert_int_equal(apply1(&c, R_RCVBUF, "8M", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.rcvbuf, 8u << 20);
	assert_int_equal(apply1(&c, R_RCVBUF, "4096", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.rcvbuf, 4096);
	assert_int_equal(apply1(&c, R_RCVBUF, "2G", NLG_CTX_SCRIPT, &err), 0);
	assert_true(c.rcvbuf == 2ull << 30);
	expect_bad(R_RCVBUF, "1k", "bad rcvbuf '1k' (a size: 65536, 512k, 64M; 4k to 2G)");
	expect_bad(R_RCVBUF, "3G", "bad rcvbuf '3G' (a size: 65536, 512k, 64M; 4k to 2G)");
	expect_bad(R_RCVBUF, "lots", "bad rcvbuf 'lots' (a size: 65536, 512k, 64M; 4k to 2G)");
	/* a 4-byte field holds what fits in it */
	assert_int_equal(apply1(&c, R_SMALL, "3G", NLG_CTX_SCRIPT, &err), 0);
	assert_true(c.small_size == 3u << 30);
	expect_bad(R_SMALL, "4G",
		   "bad small_size '4G' (a size: 65536, 512k, 64M; 0 to 4294967295)");
}

static void strings(void **state)
{
	struct conf c;
	struct nlg_err err;
	char longtext[200];
	(void)state;

	assert_int_equal(apply1(&c, R_NETNS, "blue", NLG_CTX_SCRIPT, &err), 0);
	assert_string_equal(c.netns, "blue");
	assert_int_equal(apply1(&c, R_NETNS, "1234567", NLG_CTX_SCRIPT, &err), 0);
	assert_string_equal(c.netns, "1234567");
	assert_int_equal(apply1(&c, R_NETNS, "", NLG_CTX_SCRIPT, &err), 0);
	assert_string_equal(c.netns, "");
	expect_bad(R_NETNS, "12345678", "bad netns '12345678' (at most 7 characters)");
	/* a long value is cut in the message, so the hint still shows */
	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = 0;
	assert_int_equal(apply1(&c, R_NETNS, longtext, NLG_CTX_SCRIPT, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "...' (at most 7 characters)"));
	assert_true(strlen(err.msg) < 120);
	/* an explicit value replaces the default */
	assert_int_equal(apply1(&c, R_PROTO, "udp", NLG_CTX_SCRIPT, &err), 0);
	assert_string_equal(c.proto, "udp");
}

static void custom_parsers(void **state)
{
	struct conf c;
	struct nlg_err err;
	const char *v[R_N] = {0};
	(void)state;

	assert_int_equal(apply1(&c, R_MARK, "0x20", NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.mark, 0x20);
	/* rows go in table order: u16 (above) was set when mark was parsed */
	assert_int_equal(c.mark_saw_u16, 7);
	memset(&c, 0, sizeof(c));
	v[R_U16] = "99";
	v[R_MARK] = "1";
	assert_int_equal(nlg_opt_apply(table, &c, v, NLG_CTX_SCRIPT, &err), 0);
	assert_int_equal(c.mark_saw_u16, 99);
	/* the parser writes its own message */
	expect_bad(R_MARK, "x/y", "bad mark 'x/y' (VALUE or VALUE/MASK)");
}

static void contexts(void **state)
{
	struct conf c;
	struct nlg_err err;
	(void)state;

	assert_true(nlg_opt_allowed(&table[R_LINGER], NLG_CTX_SCRIPT));
	assert_true(nlg_opt_allowed(&table[R_LINGER], NLG_CTX_WATCH));
	assert_false(nlg_opt_allowed(&table[R_LINGER], NLG_CTX_DUMP));
	assert_false(nlg_opt_allowed(&table[R_RAW], NLG_CTX_SCRIPT));
	assert_true(nlg_opt_allowed(&table[R_RAW], NLG_CTX_DUMP));
	assert_true(nlg_opt_allowed(&table[R_RAW], NLG_CTX_WATCH));
	assert_true(nlg_opt_allowed(&table[R_LUA], NLG_CTX_SCRIPT));
	assert_false(nlg_opt_allowed(&table[R_LUA], NLG_CTX_DUMP));
	assert_false(nlg_opt_allowed(&table[R_TCP], NLG_CTX_SCRIPT));
	assert_true(nlg_opt_allowed(&table[R_TCP], NLG_CTX_DUMP));

	assert_int_equal(apply1(&c, R_LINGER, "5", NLG_CTX_DUMP, &err), -EINVAL);
	assert_string_equal(err.msg, "linger is not an option here");
	assert_int_equal(apply1(&c, R_RESYNC, "false", NLG_CTX_DUMP, &err), -EINVAL);
	assert_string_equal(err.msg, "resync is not an option here");
	assert_int_equal(apply1(&c, R_RAW, "/tmp/x", NLG_CTX_SCRIPT, &err), -EINVAL);
	assert_string_equal(err.msg, "raw is not an option here");
	assert_int_equal(apply1(&c, R_RAW, "/tmp/x", NLG_CTX_DUMP, &err), 0);
	assert_string_equal(c.raw, "/tmp/x");
	assert_int_equal(apply1(&c, R_LUA, "x", NLG_CTX_WATCH, &err), -EINVAL);
	assert_string_equal(err.msg, "lua_only is not an option here");
	assert_int_equal(apply1(&c, R_LUA, "x", NLG_CTX_SCRIPT, &err), 0);
	/* aliases are for the command line, which turns them into their target's text */
	assert_int_equal(apply1(&c, R_TCP, "true", NLG_CTX_SCRIPT, &err), -EINVAL);
	assert_string_equal(err.msg, "tcp is not an option here");
	assert_int_equal(apply1(&c, R_TCP, "true", NLG_CTX_DUMP, &err), -EINVAL);
	assert_string_equal(err.msg, "tcp is not an option here");
}

/* open_memstream's buffer lives in statics: gcc 12 at -O3 takes a local one
 * for a dangling pointer once the stream is closed (it is not). */
static char *help_buf;
static size_t help_len;

static char *help_text(enum nlg_opt_ctx ctx)
{
	FILE *f;

	help_buf = NULL;
	f = open_memstream(&help_buf, &help_len);
	assert_non_null(f);
	nlg_opt_help(f, table, ctx);
	fclose(f);
	return help_buf;
}

/* The column where the description of the line starting with left begins. */
static long desc_col(const char *help, const char *left, const char *desc)
{
	const char *l = strstr(help, left), *d;

	assert_non_null(l);
	assert_true(l == help || l[-1] == '\n');
	d = strstr(l, desc);
	assert_non_null(d);
	assert_null(memchr(l, '\n', (size_t)(d - l))); /* on the same line */
	return d - l;
}

static void help(void **state)
{
	char *h = help_text(NLG_CTX_WATCH);
	long col;
	(void)state;

	col = desc_col(h, "  -f, --flag ", "a flag");
	assert_int_equal(desc_col(h, "      --on / --no-on ", "on by default"), col);
	assert_int_equal(desc_col(h, "      --u16 N ", "a bounded one"), col);
	assert_int_equal(desc_col(h, "      --resync / --no-resync ", "resync after loss"), col);
	assert_int_equal(desc_col(h, "  -t, --tcp ", "same as --proto tcp"), col);
	assert_int_equal(desc_col(h, "      --again ", "an alias of a live row"), col);
	assert_non_null(strstr(h, "\n  -s, --states, --state LIST"));
	assert_non_null(strstr(h, "\n      --max-rows N"));
	assert_non_null(strstr(h, "\n      --linger MS"));
	assert_non_null(strstr(h, "\n      --raw VALUE"));
	assert_non_null(strstr(h, "\n  -n, --netns NAME"));
	assert_null(strstr(h, "lua-only"));
	assert_null(strstr(h, "lua_only"));
	assert_null(strstr(h, "--no-flag")); /* off by default: --flag turns it on */
	/* long descriptions wrap under their first line, within 79 columns */
	col = desc_col(h, "      --wordy ", "a description long");
	for (const char *l = h; *l; l = strchr(l, '\n') + 1)
		assert_true(strcspn(l, "\n") <= 79);
	const char *cont = strchr(strstr(h, "--wordy"), '\n');
	assert_non_null(cont);
	assert_int_equal(strspn(cont + 1, " "), col);
	assert_non_null(strstr(cont, "one line of a terminal"));
	free(h);

	h = help_text(NLG_CTX_DUMP);
	assert_null(strstr(h, "--linger"));
	assert_null(strstr(h, "--resync"));
	assert_null(strstr(h, "--again")); /* its target is not offered in a dump */
	assert_non_null(strstr(h, "--tcp"));
	assert_non_null(strstr(h, "--raw"));
	free(h);

	h = help_text(NLG_CTX_SCRIPT);
	assert_null(strstr(h, "--tcp"));
	assert_null(strstr(h, "--raw"));
	assert_non_null(strstr(h, "--lua-only"));
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(count_and_find), cmocka_unit_test(defaults),
	    cmocka_unit_test(bools),	      cmocka_unit_test(uints),
	    cmocka_unit_test(durations),      cmocka_unit_test(sizes),
	    cmocka_unit_test(strings),	      cmocka_unit_test(custom_parsers),
	    cmocka_unit_test(contexts),	      cmocka_unit_test(help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
