/* Option tables: one per source and output. A row names an option once —
 * its Lua key and long flag, type, default, limits, and the line that becomes
 * --help — and every value, from argv or from a script's table, is parsed
 * here and only here. Values arrive as text: the command line has nothing
 * else, and the binding turns a Lua value into the same text first.
 *
 *   gw.conntrack{ rcvbuf = "8M" }  ─┐
 *                                  ├─▶ "8M" ─▶ nlg_opt_apply ─▶ conf.rcvbuf = 8388608
 *   watch conntrack --rcvbuf 8M  ──┘ */
#ifndef NLGATE_OPT_H
#define NLGATE_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "common.h"

enum nlg_otype {
	NLG_OPT_BOOL,	  /* int: true/false (also yes/no, on/off, 1/0) */
	NLG_OPT_UINT,	  /* unsigned integer of `size` bytes (1, 2, 4, 8) in [min, max] */
	NLG_OPT_DURATION, /* uint64_t ms: "500ms", "2s", "1m", "1h"; a bare number is in `unit` */
	NLG_OPT_SIZE,	  /* uint64_t bytes: 65536, "512k", "64M", "1G" */
	NLG_OPT_STR,	  /* char[size], NUL-terminated; longer is an error */
	NLG_OPT_CUSTOM,	  /* parse(conf, text, err) stores what it means */
	NLG_OPT_ALIAS,	  /* command line only: a flag that stands for target=value */
};

enum {
	NLG_OPT_LIST = 1u << 0,	  /* a Lua list {"a","b"} is "a,b"; aliases add to it */
	NLG_OPT_LIVE = 1u << 1,	  /* for a running source (watch, scripts), not for `dump` */
	NLG_OPT_CLI = 1u << 2,	  /* command line only */
	NLG_OPT_SCRIPT = 1u << 3, /* scripts only */
};

/* Where a value came from: rows flagged for another context are refused. */
enum nlg_opt_ctx {
	NLG_CTX_SCRIPT = 1, /* a script's options table */
	NLG_CTX_DUMP = 2,   /* `nlgate dump KIND` */
	NLG_CTX_WATCH = 3,  /* `nlgate watch KIND` */
};

struct nlg_opt {
	const char *name; /* Lua key; --name on the command line ('_' as '-') */
	enum nlg_otype type;
	size_t off;	   /* offset of the value in the config struct */
	size_t size;	   /* NLG_OPT_UINT: width in bytes; NLG_OPT_STR: bytes of the array */
	const char *def;   /* the default, as text; NULL: none (the field stays zero) */
	uint64_t min, max; /* UINT, DURATION (ms), SIZE bounds, inclusive; max 0: none */
	/* NLG_OPT_CUSTOM: store what text means; on error fill err with
	 * "bad NAME 'TEXT' (what is allowed)" and return a negative errno. */
	int (*parse)(void *conf, const char *text, struct nlg_err *err);
	const char *arg;  /* the value's name in --help ("LIST", "MS"); NULL for BOOL */
	const char *desc; /* one line: what it does, the unit, the default */
	unsigned flags;	  /* NLG_OPT_LIST, NLG_OPT_LIVE, NLG_OPT_CLI, NLG_OPT_SCRIPT */
	char shortopt;	  /* -x on the command line, or 0 */
	const char *cli;  /* another long name accepted on the command line, or NULL */
	const char *unit; /* NLG_OPT_DURATION: what a bare number means, "s" or "ms" */
	/* NLG_OPT_ALIAS: the option this flag sets, and to what. */
	const char *target, *value;
};

/* Tables end with a row whose name is NULL. */
size_t nlg_opt_count(const struct nlg_opt *opts);
/* The row called name (or, with cli, whose command-line name it is); -1. */
int nlg_opt_find(const struct nlg_opt *opts, const char *name, int cli);
/* Whether row o is offered in ctx. */
int nlg_opt_allowed(const struct nlg_opt *o, enum nlg_opt_ctx ctx);

/* Fill conf (zeroed by the caller) from values[i], the text given for
 * opts[i], or its default when values[i] is NULL. Rows are applied in table
 * order, so a custom parser may read fields set by rows above it. A value
 * given for a row not allowed in ctx is refused. On error err holds one line
 * naming the option and the value, without a prefix: the caller adds
 * "gw.sockets: " or "dump sockets: ". Returns 0 or a negative errno. */
int nlg_opt_apply(const struct nlg_opt *opts, void *conf, const char *const *values,
		  enum nlg_opt_ctx ctx, struct nlg_err *err);

/* Command-line help for ctx: one row per option and alias, from the table. */
void nlg_opt_help(FILE *f, const struct nlg_opt *opts, enum nlg_opt_ctx ctx);

/* The parsers behind the types, for custom parsers that need them. */
int nlg_parse_bool(const char *s, int *v);
int nlg_parse_size(const char *s, uint64_t *bytes);
int nlg_parse_uint(const char *s, uint64_t *v); /* decimal or 0x hex */
/* A network namespace's name (a file under /run/netns) into out[len]:
 * "bad netns 'TEXT' (...)" for an empty name, a slash or one too long. */
int nlg_parse_netns(const char *s, char *out, size_t len, struct nlg_err *err);
/* Duration where a bare number is in unit ("s" or "ms"). */
int nlg_parse_duration(const char *s, const char *unit, uint64_t *ms);

#endif
