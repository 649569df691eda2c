/* Option tables (opt.h): every option value, from argv or from a script,
 * arrives as text and is parsed here, defaults by the same code, so a
 * command line and a script can never disagree about what "8M" means. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nlgate/opt.h"

/* A value echoed in a message is cut here, so the hint after it survives
 * the 256-byte error buffer. */
#define ECHO_MAX 64

size_t nlg_opt_count(const struct nlg_opt *opts)
{
	size_t n = 0;

	while (opts && opts[n].name)
		n++;
	return n;
}

/* name with '_' read as '-': the command line's spelling of a Lua key. */
static int dashed_eq(const char *name, const char *s)
{
	for (; *name && *s; name++, s++)
		if (*name != *s && !(*name == '_' && *s == '-'))
			return 0;
	return !*name && !*s;
}

int nlg_opt_find(const struct nlg_opt *opts, const char *name, int cli)
{
	for (size_t i = 0; opts && opts[i].name; i++) {
		const struct nlg_opt *o = &opts[i];
		if (!strcmp(o->name, name))
			return (int)i;
		if (cli && (dashed_eq(o->name, name) || (o->cli && !strcmp(o->cli, name))))
			return (int)i;
	}
	return -1;
}

int nlg_opt_allowed(const struct nlg_opt *o, enum nlg_opt_ctx ctx)
{
	int cli = ctx == NLG_CTX_DUMP || ctx == NLG_CTX_WATCH;

	if ((o->type == NLG_OPT_ALIAS || o->flags & NLG_OPT_CLI) && !cli)
		return 0;
	if (o->flags & NLG_OPT_SCRIPT && cli)
		return 0;
	/* A one-shot dump has nothing running for a live option to act on. */
	if (o->flags & NLG_OPT_LIVE && ctx == NLG_CTX_DUMP)
		return 0;
	return 1;
}

/* An alias is offered only where the option it sets is. */
static int offered(const struct nlg_opt *opts, const struct nlg_opt *o, enum nlg_opt_ctx ctx)
{
	int t;

	if (!nlg_opt_allowed(o, ctx))
		return 0;
	if (o->type != NLG_OPT_ALIAS)
		return 1;
	t = o->target ? nlg_opt_find(opts, o->target, 0) : -1;
	return t >= 0 && opts[t].type != NLG_OPT_ALIAS && nlg_opt_allowed(&opts[t], ctx);
}

/* ---- the parsers ------------------------------------------------------- */

int nlg_parse_bool(const char *s, int *v)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; s && i < NLG_ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i])) {
			*v = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*v = 0;
			return 0;
		}
	}
	return -EINVAL;
}

int nlg_parse_uint(const char *s, uint64_t *v)
{
	int base = 10;
	uint64_t r = 0;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return -EINVAL;
	}
	/* By hand: strtoull would take blanks, a sign, and octal. */
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -EINVAL;
		if (r > (UINT64_MAX - d) / (unsigned)base)
			return -ERANGE;
		r = r * (unsigned)base + d;
	}
	*v = r;
	return 0;
}

/* "12" or "1.5" times mult, rounded to the nearest unit; *end is left at
 * the suffix. Up to 9 decimals, so 1.5s and 0.25M are exact. */
static int parse_scaled(const char *s, const char **end, uint64_t mult, uint64_t *out)
{
	uint64_t ip = 0, frac = 0, scale = 1;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (ip > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		ip = ip * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (scale == 1000000000ull)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*s - '0');
			scale *= 10;
		}
	}
	if (ip > UINT64_MAX / mult)
		return -ERANGE;
	/* frac < 10^9 and mult <= 2^30 (G) or 3.6e6 (h): no overflow here. */
	frac = (frac * mult + scale / 2) / scale;
	if (ip * mult > UINT64_MAX - frac)
		return -ERANGE;
	*out = ip * mult + frac;
	*end = s;
	return 0;
}

static int suffix_mult(const char *suffix, const char *const *names, const uint64_t *mults,
		       size_t n, uint64_t *mult)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(suffix, names[i])) {
			*mult = mults[i];
			return 0;
		}
	return -EINVAL;
}

static const char *const size_units[] = {"", "k", "K", "m", "M", "g", "G"};
static const uint64_t size_mults[] = {1,	  1ull << 10, 1ull << 10, 1ull << 20,
				      1ull << 20, 1ull << 30, 1ull << 30};

int nlg_parse_size(const char *s, uint64_t *bytes)
{
	const char *p = s, *end;
	uint64_t mult, v;
	int rc;

	if (!s || !*s)
		return -EINVAL;
	/* Find the suffix first: the multiplier is needed to scale decimals. */
	while ((*p >= '0' && *p <= '9') || *p == '.')
		p++;
	if (suffix_mult(p, size_units, size_mults, NLG_ARRAY_SIZE(size_units), &mult) < 0)
		return -EINVAL;
	rc = parse_scaled(s, &end, mult, &v);
	if (rc < 0)
		return rc;
	if (end != p)
		return -EINVAL;
	*bytes = v;
	return 0;
}

int nlg_parse_netns(const char *s, char *out, size_t len, struct nlg_err *err)
{
	if (!*s || strchr(s, '/') || strlen(s) >= len)
		return nlg_err_set(err, EINVAL, "bad netns '%s' (a name under /run/netns)", s);
	snprintf(out, len, "%s", s);
	return 0;
}

static const char *const dur_units[] = {"ms", "s", "m", "h"};
static const uint64_t dur_mults[] = {1, 1000, 60 * 1000, 3600 * 1000};

int nlg_parse_duration(const char *s, const char *unit, uint64_t *ms)
{
	const char *p = s, *end;
	uint64_t mult, v;
	int rc;

	if (!s || !*s)
		return -EINVAL;
	while ((*p >= '0' && *p <= '9') || *p == '.')
		p++;
	if (suffix_mult(*p ? p : (unit ? unit : "s"), dur_units, dur_mults,
			NLG_ARRAY_SIZE(dur_units), &mult) < 0)
		return -EINVAL;
	rc = parse_scaled(s, &end, mult, &v);
	if (rc < 0)
		return rc;
	if (end != p)
		return -EINVAL;
	*ms = v;
	return 0;
}

/* ---- messages ---------------------------------------------------------- */

/* v in the largest unit that states it exactly: 1s, 64M, 4097. */
static void fmt_scaled(char *buf, size_t len, uint64_t v, const char *const *names,
		       const uint64_t *mults, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (v && mults[i] > 1 && v % mults[i] == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(v / mults[i]), names[i]);
			return;
		}
	snprintf(buf, len, "%llu%s", (unsigned long long)v, n ? names[0] : "");
}

static void fmt_bound(char *buf, size_t len, enum nlg_otype type, uint64_t v)
{
	/* Sizes in the upper-case units people write (64M, not 64m). */
	static const char *const sz[] = {"", "k", "M", "G"};
	static const uint64_t szm[] = {1, 1ull << 10, 1ull << 20, 1ull << 30};

	if (type == NLG_OPT_SIZE)
		fmt_scaled(buf, len, v, sz, szm, NLG_ARRAY_SIZE(sz));
	else if (type == NLG_OPT_DURATION && v)
		fmt_scaled(buf, len, v, dur_units, dur_mults, NLG_ARRAY_SIZE(dur_units));
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The largest value the row's field can hold. */
static uint64_t width_max(const struct nlg_opt *o)
{
	size_t w = o->type == NLG_OPT_UINT ? o->size : o->size == 4 ? 4 : 8;

	return w >= 8 ? UINT64_MAX : (1ull << (8 * w)) - 1;
}

/* The effective bounds: the row's, within what the field holds. */
static void bounds(const struct nlg_opt *o, uint64_t *lo, uint64_t *hi)
{
	uint64_t wm = width_max(o);

	*lo = o->min;
	*hi = o->max && o->max < wm ? o->max : wm;
}

/* What a value of this row may be, for "bad NAME 'TEXT' (hint)". */
static void hint(const struct nlg_opt *o, char *buf, size_t len)
{
	char a[32], b[32];
	uint64_t lo, hi;
	size_t n;

	switch (o->type) {
	case NLG_OPT_UINT:
		n = (size_t)snprintf(buf, len, "an integer");
		break;
	case NLG_OPT_DURATION:
		n = (size_t)snprintf(buf, len, "a duration: 500ms, 2s, 1m");
		break;
	case NLG_OPT_SIZE:
		n = (size_t)snprintf(buf, len, "a size: 65536, 512k, 64M");
		break;
	case NLG_OPT_STR:
		snprintf(buf, len, "at most %zu characters", o->size ? o->size - 1 : 0);
		return;
	default:
		snprintf(buf, len, "see --help");
		return;
	}
	bounds(o, &lo, &hi);
	if (n >= len || (!lo && hi == UINT64_MAX))
		return;
	fmt_bound(a, sizeof(a), o->type, lo);
	fmt_bound(b, sizeof(b), o->type, hi);
	if (hi == UINT64_MAX)
		snprintf(buf + n, len - n, "%sat least %s", o->type == NLG_OPT_UINT ? ", " : "; ",
			 a);
	else
		snprintf(buf + n, len - n, "%s%s to %s", o->type == NLG_OPT_UINT ? ", " : "; ", a,
			 b);
}

static int bad_value(const struct nlg_opt *o, const char *text, struct nlg_err *err)
{
	char h[96];
	size_t tl = strlen(text);

	if (o->type == NLG_OPT_BOOL)
		return nlg_err_set(err, EINVAL, "%s must be true or false", o->name);
	hint(o, h, sizeof(h));
	return nlg_err_set(err, EINVAL, "bad %s '%.*s%s' (%s)", o->name, ECHO_MAX, text,
			   tl > ECHO_MAX ? "..." : "", h);
}

/* ---- applying a table -------------------------------------------------- */

static int store_uint(void *p, size_t size, uint64_t v)
{
	switch (size) {
	case 1:
		*(uint8_t *)p = (uint8_t)v;
		return 0;
	case 2:
		*(uint16_t *)p = (uint16_t)v;
		return 0;
	case 4:
		*(uint32_t *)p = (uint32_t)v;
		return 0;
	case 8:
		*(uint64_t *)p = v;
		return 0;
	}
	return -EINVAL;
}

static int apply_one(const struct nlg_opt *o, void *conf, const char *text, struct nlg_err *err)
{
	char *p = (char *)conf + o->off;
	uint64_t v, lo, hi;
	int b, rc;

	switch (o->type) {
	case NLG_OPT_BOOL:
		if (nlg_parse_bool(text, &b) < 0)
			return bad_value(o, text, err);
		*(int *)p = b;
		return 0;
	case NLG_OPT_UINT:
	case NLG_OPT_DURATION:
	case NLG_OPT_SIZE:
		if (o->type == NLG_OPT_UINT)
			rc = nlg_parse_uint(text, &v);
		else if (o->type == NLG_OPT_DURATION)
			rc = nlg_parse_duration(text, o->unit, &v);
		else
			rc = nlg_parse_size(text, &v);
		bounds(o, &lo, &hi);
		if (rc < 0 || v < lo || v > hi)
			return bad_value(o, text, err);
		/* Durations and sizes are uint64_t; a 4-byte field is honoured too. */
		if (store_uint(p, o->type == NLG_OPT_UINT ? o->size : o->size == 4 ? 4 : 8, v) < 0)
			return nlg_err_set(err, EINVAL, "%s: the table gives a width of %zu bytes",
					   o->name, o->size);
		return 0;
	case NLG_OPT_STR:
		if (!o->size || strlen(text) >= o->size)
			return bad_value(o, text, err);
		memcpy(p, text, strlen(text) + 1);
		return 0;
	case NLG_OPT_CUSTOM:
		if (!o->parse)
			return nlg_err_set(err, EINVAL, "%s: the table gives no parser", o->name);
		rc = o->parse(conf, text, err);
		return rc < 0 ? rc : 0;
	case NLG_OPT_ALIAS:
		/* The command line turns an alias into its target's text first. */
		return nlg_err_set(err, EINVAL, "%s is not an option here", o->name);
	}
	return nlg_err_set(err, EINVAL, "%s: unknown option type %d", o->name, (int)o->type);
}

int nlg_opt_apply(const struct nlg_opt *opts, void *conf, const char *const *values,
		  enum nlg_opt_ctx ctx, struct nlg_err *err)
{
	for (size_t i = 0; opts && opts[i].name; i++) {
		const struct nlg_opt *o = &opts[i];
		const char *text = values ? values[i] : NULL;
		int rc;

		if (text && !nlg_opt_allowed(o, ctx))
			return nlg_err_set(err, EINVAL, "%s is not an option here", o->name);
		/* Rows not offered here still get their defaults: the conf is
		 * whole whatever the context. */
		if (!text && (o->type == NLG_OPT_ALIAS || !o->def))
			continue;
		rc = apply_one(o, conf, text ? text : o->def, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- --help ------------------------------------------------------------ */

/* Rows whose left column is wider than this put their text on the next line. */
#define HELP_COL_MIN 22
#define HELP_COL_MAX 32
/* Descriptions wrap at word boundaries to stay within a terminal's 80. */
#define HELP_WIDTH 79

static void dash(char *buf, size_t len, const char *name)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < len; i++)
		buf[i] = name[i] == '_' ? '-' : name[i];
	buf[i] = 0;
}

/* "  -s, --states, --state LIST", "      --dump / --no-dump". */
static size_t help_left(const struct nlg_opt *o, char *buf, size_t len)
{
	char name[64], cli[64] = "", no[80] = "", arg[40] = "";
	int def = 0;

	dash(name, sizeof(name), o->name);
	if (o->cli)
		snprintf(cli, sizeof(cli), ", --%s", o->cli);
	if (o->type == NLG_OPT_BOOL && o->def && nlg_parse_bool(o->def, &def) == 0 && def)
		snprintf(no, sizeof(no), " / --no-%s", name);
	if (o->type != NLG_OPT_BOOL && o->type != NLG_OPT_ALIAS)
		snprintf(arg, sizeof(arg), " %s", o->arg ? o->arg : "VALUE");
	if (o->shortopt)
		snprintf(buf, len, "  -%c, --%s%s%s%s", o->shortopt, name, no, cli, arg);
	else
		snprintf(buf, len, "      --%s%s%s%s", name, no, cli, arg);
	return strlen(buf);
}

/* text from column col (the cursor is there), continued lines indented to it. */
static void wrap(FILE *f, const char *text, size_t col)
{
	size_t room = HELP_WIDTH > col + 20 ? HELP_WIDTH - col : 60;

	fputs("  ", f);
	while (strlen(text) > room) {
		size_t cut = room;
		while (cut > 0 && text[cut] != ' ')
			cut--;
		if (!cut) /* one long word: let it run over */
			cut = strcspn(text, " ");
		if (!text[cut])
			break;
		fprintf(f, "%.*s\n%*s", (int)cut, text, (int)col, "");
		text += cut;
		while (*text == ' ')
			text++;
	}
	fprintf(f, "%s\n", text);
}

void nlg_opt_help(FILE *f, const struct nlg_opt *opts, enum nlg_opt_ctx ctx)
{
	char left[256], tname[64];
	size_t col = HELP_COL_MIN;

	for (size_t i = 0; opts && opts[i].name; i++) {
		size_t n;
		if (!offered(opts, &opts[i], ctx))
			continue;
		n = help_left(&opts[i], left, sizeof(left));
		if (n > col && n <= HELP_COL_MAX)
			col = n;
	}
	for (size_t i = 0; opts && opts[i].name; i++) {
		const struct nlg_opt *o = &opts[i];
		size_t n;
		if (!offered(opts, o, ctx))
			continue;
		n = help_left(o, left, sizeof(left));
		if (!o->desc && o->type != NLG_OPT_ALIAS) {
			fprintf(f, "%s\n", left);
			continue;
		}
		if (n > col)
			fprintf(f, "%s\n%*s", left, (int)col, "");
		else
			fprintf(f, "%-*s", (int)col, left);
		if (o->desc) {
			wrap(f, o->desc, col + 2);
		} else {
			dash(tname, sizeof(tname), o->target);
			fprintf(f, "  same as --%s %s\n", tname, o->value ? o->value : "");
		}
	}
}
