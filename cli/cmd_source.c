/* `nlgate dump KIND` and `nlgate watch KIND`: any source in the registry,
 * driven from the command line. Its flags are the rows of its option table
 * (long names, short letters, --no-NAME, aliases) and every value goes
 * through nlg_opt_apply, as a script's would; records go to the printer. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cmd.h"
#include "nlgate/loop.h"
#include "nlgate/opt.h"
#include "nlgate/output.h"
#include "nlgate/source.h"

/* The flags every source takes are rows too, appended to the source's own,
 * so that --help and parsing treat them alike. */
struct generic {
	int msgpack, stats, help;
	char to[512];
	uint64_t drain_ms;
};

enum { GEN_MSGPACK, GEN_STATS, GEN_TO, GEN_DRAIN, GEN_HELP, GEN_N };

static const struct nlg_opt generic_opts[] = {
    [GEN_MSGPACK] = {.name = "msgpack",
		     .type = NLG_OPT_BOOL,
		     .off = offsetof(struct generic, msgpack),
		     .shortopt = 'm',
		     .flags = NLG_OPT_CLI,
		     .desc = "print msgpack maps instead of JSON lines"},
    [GEN_STATS] = {.name = "stats",
		   .type = NLG_OPT_BOOL,
		   .off = offsetof(struct generic, stats),
		   .flags = NLG_OPT_CLI | NLG_OPT_LIVE,
		   .desc = "print the counters as one JSON object on stderr at exit"},
    [GEN_TO] = {.name = "to",
		.type = NLG_OPT_STR,
		.off = offsetof(struct generic, to),
		.size = sizeof(((struct generic *)0)->to),
		.flags = NLG_OPT_CLI | NLG_OPT_LIVE,
		.arg = "URL",
		.desc = "send the records to an output instead of printing them: unix:PATH, "
			"tcp://HOST:PORT, tcp-listen://[ADDR]:PORT, forward://HOST:PORT, "
			"nats://HOST:PORT/SUBJECT; more of its options as ?name=value&..."},
    [GEN_DRAIN] = {.name = "drain",
		   .type = NLG_OPT_DURATION,
		   .off = offsetof(struct generic, drain_ms),
		   .size = sizeof(uint64_t),
		   .def = "5s",
		   .unit = "s",
		   .flags = NLG_OPT_CLI | NLG_OPT_LIVE,
		   .arg = "DURATION",
		   .desc = "with --to: at exit, how long the output may take to deliver what it "
			   "holds (default 5s)"},
    [GEN_HELP] = {.name = "help",
		  .type = NLG_OPT_BOOL,
		  .off = offsetof(struct generic, help),
		  .shortopt = 'h',
		  .flags = NLG_OPT_CLI,
		  .desc = "this help"},
    [GEN_N] = {0},
};

/* getopt_long's val for row r: VAL_BASE + 2r, or + 2r + 1 for --no-NAME.
 * Above any short letter, so one switch tells them apart. */
#define VAL_BASE 256

struct cli {
	const struct nlg_source_ops *ops;
	enum nlg_opt_ctx ctx;
	const char *positional; /* the row the words after the flags go to (capture: filter) */
	char cmd[80];		/* "dump sockets", for messages */
	struct nlg_opt *all;	/* the source's rows, then generic_opts */
	size_t n, nall;		/* rows of the source, of all */
	char **vals;		/* the text given for each row of all, or NULL */
	struct option *lo;	/* getopt_long's table, and the names it points to */
	char **names;
	size_t nlo;
	char optstring[2 + 3 * 64];
	int letter[256]; /* short letter → val, 0 if none */
	struct generic gen;
	void *conf;
};

static void cli_free(struct cli *c)
{
	for (size_t i = 0; c->vals && i < c->nall; i++)
		free(c->vals[i]);
	for (size_t i = 0; i < c->nlo; i++)
		free(c->names[i]);
	free(c->vals);
	free(c->names);
	free(c->lo);
	free(c->all);
	free(c->conf);
}

static int default_true(const struct nlg_opt *o)
{
	int v = 0;

	return o->type == NLG_OPT_BOOL && o->def && nlg_parse_bool(o->def, &v) == 0 && v;
}

/* Whether row r is a flag here: allowed in the context, and for an alias,
 * its target is too. */
static int offered(const struct cli *c, size_t r)
{
	const struct nlg_opt *o = &c->all[r];
	int t;

	if (!nlg_opt_allowed(o, c->ctx))
		return 0;
	if (o->type != NLG_OPT_ALIAS)
		return 1;
	t = o->target ? nlg_opt_find(c->all, o->target, 0) : -1;
	return t >= 0 && c->all[t].type != NLG_OPT_ALIAS && nlg_opt_allowed(&c->all[t], c->ctx);
}

/* --prefixNAME with '_' as '-'. The first row to claim a spelling keeps it:
 * the generic flags are added first, so --help always means help. */
static int add_long(struct cli *c, const char *prefix, const char *name, int has_arg, int val)
{
	char *s;

	if (asprintf(&s, "%s%s", prefix, name) < 0)
		return -ENOMEM;
	for (char *p = s; *p; p++)
		if (*p == '_')
			*p = '-';
	for (size_t i = 0; i < c->nlo; i++)
		if (!strcmp(c->lo[i].name, s)) {
			free(s);
			return 0;
		}
	c->names[c->nlo] = s;
	c->lo[c->nlo++] = (struct option){s, has_arg, NULL, val};
	return 0;
}

static int add_row(struct cli *c, size_t r)
{
	const struct nlg_opt *o = &c->all[r];
	int has_arg =
	    o->type == NLG_OPT_BOOL || o->type == NLG_OPT_ALIAS ? no_argument : required_argument;
	int val = VAL_BASE + 2 * (int)r, rc = 0;
	unsigned char ch = (unsigned char)o->shortopt;

	rc |= add_long(c, "", o->name, has_arg, val);
	if (o->cli)
		rc |= add_long(c, "", o->cli, has_arg, val);
	/* Every bool of the source's can be turned off; --help shows the --no-
	 * form where it matters, for those that default to on. */
	if (o->type == NLG_OPT_BOOL && (r < c->n || default_true(o))) {
		rc |= add_long(c, "no-", o->name, no_argument, val + 1);
		if (o->cli)
			rc |= add_long(c, "no-", o->cli, no_argument, val + 1);
	}
	if (ch && ch != ':' && ch != '?' && !c->letter[ch]) {
		size_t len = strlen(c->optstring);
		if (len + 3 > sizeof(c->optstring))
			return -ENOSPC;
		c->letter[ch] = val;
		c->optstring[len++] = (char)ch;
		if (has_arg == required_argument)
			c->optstring[len++] = ':';
		c->optstring[len] = 0;
	}
	return rc ? -ENOMEM : 0;
}

static int cli_build(struct cli *c)
{
	size_t maxlong;

	c->n = nlg_opt_count(c->ops->opts);
	c->nall = c->n + GEN_N;
	maxlong = 4 * c->nall + 1; /* name, cli, and their --no- forms */
	c->all = calloc(c->nall + 1, sizeof(*c->all));
	c->vals = calloc(c->nall, sizeof(*c->vals));
	c->lo = calloc(maxlong, sizeof(*c->lo));
	c->names = calloc(maxlong, sizeof(*c->names));
	if (!c->all || !c->vals || !c->lo || !c->names)
		return -ENOMEM;
	if (c->n)
		memcpy(c->all, c->ops->opts, c->n * sizeof(*c->all));
	memcpy(c->all + c->n, generic_opts, GEN_N * sizeof(*c->all));
	/* ':' first: a missing value comes back as ':', not as a bad option */
	strcpy(c->optstring, ":");
	for (size_t k = 0; k < c->nall; k++) {
		size_t r = (k + c->n) % c->nall; /* the generic rows first */
		int rc;
		if (!offered(c, r))
			continue;
		if ((rc = add_row(c, r)) < 0)
			return rc;
	}
	return 0;
}

static int set_val(struct cli *c, size_t r, const char *text)
{
	char *s = strdup(text);

	if (!s)
		return -ENOMEM;
	free(c->vals[r]);
	c->vals[r] = s;
	return 0;
}

static int list_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; p; p = strchr(p, ',')) {
		p += *p == ',';
		if (!strncmp(p, item, n) && (p[n] == ',' || !p[n]))
			return 1;
	}
	return 0;
}

/* -t -u: an alias of a list adds to what the flags before it gave (not to
 * the default); of anything else it replaces, like an explicit value. */
static int set_alias(struct cli *c, const struct nlg_opt *o)
{
	int t = nlg_opt_find(c->all, o->target, 0);
	const char *value = o->value ? o->value : "";
	char *cur = c->vals[t], *s;

	if (!(c->all[t].flags & NLG_OPT_LIST) || !cur || !*cur)
		return set_val(c, (size_t)t, value);
	if (list_has(cur, value))
		return 0;
	if (asprintf(&s, "%s,%s", cur, value) < 0)
		return -ENOMEM;
	free(cur);
	c->vals[t] = s;
	return 0;
}

static void print_help(const struct cli *c)
{
	const char *word = c->ctx == NLG_CTX_DUMP ? "dump" : "watch";

	if (c->positional)
		printf("usage: nlgate %s [OPTIONS] [EXPRESSION]\n", c->cmd);
	else
		printf("usage: nlgate %s %s [OPTIONS]\n", word, c->ops->name);
	if (c->ops->desc)
		printf("%s: %s.\n", c->ops->name, c->ops->desc);
	if (c->ctx == NLG_CTX_DUMP)
		puts("One dump, one JSON object per record and line.");
	else
		puts("Records as they come, one JSON object per line, until INT or TERM.");
	putchar('\n');
	nlg_opt_help(stdout, c->all, c->ctx);
	if (c->ops->schema_for)
		printf(
		    "\nThe records' kind depends on the options; fields: `nlgate fields KIND`.\n");
	else if (c->ops->schema)
		printf("\nFields: `nlgate fields %s`.\n", c->ops->schema->kind);
}

/* An unknown --NAME that is a row of the source's table, offered elsewhere
 * (--linger to a dump, a script's option): say where it belongs. */
static int misplaced(const struct cli *c, const char *arg)
{
	char name[64];
	int r;

	if (strncmp(arg, "--", 2))
		return 0;
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
	r = nlg_opt_find(c->all, name, 1);
	if (r < 0 && !strncmp(name, "no-", 3))
		r = nlg_opt_find(c->all, name + 3, 1);
	if (r < 0 || (size_t)r >= c->n)
		return 0;
	if (c->ctx == NLG_CTX_DUMP && nlg_opt_allowed(&c->all[r], NLG_CTX_WATCH))
		fprintf(stderr, "nlgate: %s: '--%s' is for `nlgate watch %s` only\n", c->cmd, name,
			c->ops->name);
	else if (nlg_opt_allowed(&c->all[r], NLG_CTX_SCRIPT))
		fprintf(stderr, "nlgate: %s: '--%s' is for scripts only (gw.%s{ %s = ... })\n",
			c->cmd, name, c->ops->name, c->all[r].name);
	else
		return 0;
	return 1;
}

/* Returns -1 to go on, else the exit code (help, or a bad command line). */
static int cli_parse(struct cli *c, int argc, char **argv)
{
	struct nlg_err err = {{0}};
	int ch;

	if (cli_build(c) < 0)
		return nlg_cmd_fail("%s: out of memory", c->cmd);
	optind = 0; /* 0: glibc starts afresh (nlg_cli_main may run again) */
	while ((ch = getopt_long(argc, argv, c->optstring, c->lo, NULL)) != -1) {
		int val = ch > 0 && ch < 256 ? c->letter[ch] : ch, rc;
		size_t r;
		const struct nlg_opt *o;

		if (ch == '?' && !optopt && misplaced(c, argv[optind - 1]))
			return 2;
		if (ch == '?' || ch == ':' || val < VAL_BASE)
			return nlg_cmd_badopt(c->cmd, argv, ch == ':' ? ':' : '?');
		r = (size_t)(val - VAL_BASE) / 2;
		o = &c->all[r];
		if (r == c->n + GEN_HELP && val == VAL_BASE + 2 * (int)r) {
			print_help(c);
			return 0;
		}
		if (o->type == NLG_OPT_BOOL)
			rc = set_val(c, r, (val - VAL_BASE) % 2 ? "false" : "true");
		else if (o->type == NLG_OPT_ALIAS)
			rc = set_alias(c, o);
		else
			rc = set_val(c, r, optarg);
		if (rc < 0)
			return nlg_cmd_fail("%s: out of memory", c->cmd);
	}
	if (optind < argc && c->positional) {
		/* tcpdump's way: the words left are one expression */
		int r = nlg_opt_find(c->all, c->positional, 0);
		size_t len = 0;
		char *text;
		for (int i = optind; i < argc; i++)
			len += strlen(argv[i]) + 1;
		if (r < 0 || !(text = calloc(1, len)))
			return nlg_cmd_fail("%s: out of memory", c->cmd);
		for (int i = optind; i < argc; i++) {
			if (i > optind)
				strcat(text, " ");
			strcat(text, argv[i]);
		}
		free(c->vals[r]);
		c->vals[r] = text;
		optind = argc;
	}
	if (optind < argc) {
		fprintf(stderr, "nlgate: %s: unexpected argument '%s' (see `nlgate %s --help`)\n",
			c->cmd, argv[optind], c->cmd);
		return 2;
	}
	c->conf = calloc(1, c->ops->conf_size ? c->ops->conf_size : 1);
	if (!c->conf)
		return nlg_cmd_fail("%s: out of memory", c->cmd);
	if (nlg_opt_apply(c->ops->opts, c->conf, (const char *const *)c->vals, c->ctx, &err) < 0 ||
	    nlg_opt_apply(generic_opts, &c->gen, (const char *const *)c->vals + c->n, c->ctx,
			  &err) < 0)
		return nlg_cmd_fail("%s: %s", c->cmd, err.msg);
	return -1;
}

/* ---- the printer as a sink --------------------------------------------- */

struct out {
	const struct nlg_source_ops *ops;
	const struct nlg_schema *schema; /* of the records it emits */
	const char *cmd;		 /* "watch sockets", "capture": for messages */
	struct nlg_printer p;
	struct nlg_loop *loop; /* watch only */
	struct nlg_to *to;     /* --to: records go there, not to the printer */
	struct nlg_source *src;
	int ready;
	int failed; /* the source stopped for good */
};

/* Once the source is live (its initial dump done), say so once: scripts
 * and tests wait for this line before they make traffic. */
static void say_ready(struct out *o)
{
	if (o->ready || !o->src || nlg_source_busy(o->src))
		return;
	o->ready = 1;
	fprintf(stderr, "nlgate: %s: watching\n", o->ops->name);
}

static int sink_record(void *data, const void *rec)
{
	struct out *o = data;

	if (o->to) {
		if (nlg_to_send(o->to, o->schema, rec) < 0) {
			nlg_cmd_fail("%s: cannot frame a record for %s", o->cmd, o->to->ops->name);
			o->failed = 1;
			nlg_loop_stop(o->loop);
			return NLG_CB_ERROR;
		}
		return NLG_CB_OK;
	}
	if (nlg_printer_record(&o->p, o->schema, rec) < 0) {
		if (o->loop)
			nlg_loop_stop(o->loop);
		return NLG_CB_ERROR;
	}
	return NLG_CB_OK;
}

static void sink_flush(void *data)
{
	struct out *o = data;

	if (nlg_printer_flush(&o->p) < 0) {
		if (o->loop)
			nlg_loop_stop(o->loop);
		return;
	}
	say_ready(o);
}

/* The source stopped for good: so does watch, with exit status 1. */
static void sink_fail(void *data, const char *msg)
{
	struct out *o = data;

	nlg_cmd_fail("%s: %s", o->cmd, msg);
	o->failed = 1;
	if (o->loop)
		nlg_loop_stop(o->loop);
}

/* The source has given everything (a file's end): so has watch. */
static void sink_end(void *data)
{
	struct out *o = data;

	if (o->loop)
		nlg_loop_stop(o->loop);
}

/* What the end of a run says: 0, or 1 after a write error other than a
 * reader that went away (`| head`). */
static int out_result(struct out *o, const char *cmd)
{
	if (!o->p.error || o->p.error == -EPIPE)
		return 0;
	return nlg_cmd_fail("%s: writing: %s", cmd, strerror(-o->p.error));
}

/* ---- the commands ------------------------------------------------------ */

void nlg_cmd_kinds(FILE *f, int dump_only)
{
	const struct nlg_source_ops *ops;
	int first = 1;

	for (size_t i = 0; (ops = nlg_source_at(i)); i++) {
		if (dump_only && !ops->dump)
			continue;
		fprintf(f, "%s %s", first ? "" : ",", ops->name);
		first = 0;
	}
}

static void kinds_usage(FILE *f, const char *word)
{
	const struct nlg_source_ops *ops;
	int dump = !strcmp(word, "dump");

	fprintf(f, "usage: nlgate %s KIND [OPTIONS]\n", word);
	fputs(dump ? "One dump of a source, one JSON object per record and line (msgpack maps\n"
		     "with --msgpack).\n\n"
		   : "Follow a source: its records as they come, one JSON object per line\n"
		     "(msgpack maps with --msgpack), until INT or TERM.\n\n",
	      f);
	for (size_t i = 0; (ops = nlg_source_at(i)); i++)
		if (!dump || ops->dump)
			fprintf(f, "  %-12s %s\n", ops->name, ops->desc ? ops->desc : "");
	fprintf(f, "\n`nlgate %s KIND --help` lists KIND's options.\n", word);
}

/* The KIND after the command word, or an exit code through *rc. */
static const struct nlg_source_ops *find_kind(int argc, char **argv, int *rc)
{
	const struct nlg_source_ops *ops;

	if (argc < 2) {
		kinds_usage(stderr, argv[0]);
		*rc = 2;
		return NULL;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		kinds_usage(stdout, argv[0]);
		*rc = 0;
		return NULL;
	}
	ops = nlg_source_find(argv[1]);
	if (!ops)
		*rc = nlg_cmd_fail("unknown '%s' target '%s' (try `nlgate %s --help`)", argv[0],
				   argv[1], argv[0]);
	return ops;
}

int nlg_cmd_dump(int argc, char **argv)
{
	struct cli c = {.ctx = NLG_CTX_DUMP};
	struct out o = {0};
	struct nlg_sink sink = {.record = sink_record,
				.flush = sink_flush,
				.fail = sink_fail,
				.end = sink_end,
				.data = &o};
	struct nlg_err err = {{0}};
	struct sigaction ign = {.sa_handler = SIG_IGN}, oldpipe;
	int rc;

	if (!(c.ops = find_kind(argc, argv, &rc)))
		return rc;
	snprintf(c.cmd, sizeof(c.cmd), "dump %s", c.ops->name);
	rc = cli_parse(&c, argc - 1, argv + 1);
	if (rc >= 0)
		goto out;
	if (!c.ops->dump) {
		rc = nlg_cmd_fail("%s: %s has no one-shot dump (try `nlgate watch %s`)", c.cmd,
				  c.ops->name, c.ops->name);
		goto out;
	}
	o.ops = c.ops;
	o.cmd = c.cmd;
	o.schema = nlg_source_schema(c.ops, c.conf);
	nlg_printer_init(&o.p, STDOUT_FILENO, c.gen.msgpack);
	sigaction(SIGPIPE, &ign, &oldpipe);
	rc = nlg_source_dump(c.ops, c.conf, &sink, &err);
	nlg_printer_flush(&o.p);
	sigaction(SIGPIPE, &oldpipe, NULL);
	if (o.p.error)
		rc = out_result(&o, c.cmd);
	else
		rc = rc < 0 ? nlg_cmd_fail("%s: %s", c.cmd, err.msg) : 0;
	nlg_printer_free(&o.p);
out:
	cli_free(&c);
	return rc;
}

static void on_signal(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	NLG_UNUSED(events);
	NLG_UNUSED(data);
	while (read(fd, &si, sizeof(si)) == sizeof(si))
		;
	nlg_loop_stop(loop);
}

/* Until the source is live: a source whose start-up ends without a batch
 * (an empty table) is seen live here. */
static int64_t ready_tick(struct nlg_loop *loop, int64_t id, void *data)
{
	struct out *o = data;

	NLG_UNUSED(loop);
	NLG_UNUSED(id);
	say_ready(o);
	return o->ready ? -1 : 50;
}

static void print_notes(const char *s)
{
	while (s && *s) {
		size_t len = strcspn(s, "\n");
		if (len)
			fprintf(stderr, "nlgate: note: %.*s\n", (int)len, s);
		s += len + (s[len] == '\n');
	}
}

/* The source's counters, named by its stats schema: one JSON object. */
static void print_stats(struct out *o)
{
	const struct nlg_schema *s = o->ops->stats_schema;
	struct nlg_buf b;
	void *rec;

	if (!s) {
		fputs("{}\n", stderr);
		return;
	}
	rec = calloc(1, s->rec_size);
	nlg_buf_init(&b);
	if (rec) {
		nlg_source_stats(o->src, rec);
		if (nlg_enc_json_record(&b, s, rec) >= 0 && nlg_buf_append(&b, "\n", 1) >= 0)
			fwrite(b.data, 1, b.len, stderr);
	}
	nlg_buf_free(&b);
	free(rec);
}

/* Follow c's source until INT or TERM, its failure or its end. */
static int watch_run(struct cli *c)
{
	struct out o = {0};
	struct nlg_sink sink = {.record = sink_record,
				.flush = sink_flush,
				.fail = sink_fail,
				.end = sink_end,
				.data = &o};
	struct nlg_err err = {{0}};
	struct sigaction ign = {.sa_handler = SIG_IGN}, oldpipe;
	sigset_t mask, oldmask;
	struct nlg_to to = {0};
	char line[256];
	int rc, sfd = -1;

	o.ops = c->ops;
	o.cmd = c->cmd;
	o.schema = nlg_source_schema(c->ops, c->conf);
	nlg_printer_init(&o.p, STDOUT_FILENO, c->gen.msgpack);
	sigaction(SIGPIPE, &ign, &oldpipe);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	o.loop = nlg_loop_create();
	rc = 1;
	if (sfd < 0 || !o.loop || nlg_loop_add_fd(o.loop, sfd, EPOLLIN, on_signal, &o) < 0) {
		nlg_cmd_fail("%s: cannot set up the event loop: %s", c->cmd, strerror(errno));
		goto out;
	}
	if (c->gen.to[0]) {
		if (nlg_to_open(&to, c->gen.to, o.loop, &err) < 0) {
			nlg_cmd_fail("%s: %s", c->cmd, err.msg);
			goto out;
		}
		o.to = &to;
	}
	o.src = nlg_source_open(c->ops, o.loop, c->conf, &sink, &err);
	if (!o.src) {
		nlg_cmd_fail("%s: %s", c->cmd, err.msg);
		goto out;
	}
	print_notes(nlg_source_notes(o.src));
	say_ready(&o);
	if (!o.ready && nlg_loop_add_timer(o.loop, 0, ready_tick, &o) < 0) {
		nlg_cmd_fail("%s: cannot set up the event loop: %s", c->cmd, strerror(errno));
		goto out;
	}
	if (!o.p.error && nlg_loop_run(o.loop) < 0) {
		nlg_cmd_fail("%s: event loop failed: %s", c->cmd, strerror(errno));
		goto out;
	}
	/* What the kernel already queued for us is part of the stream. */
	if (!o.p.error)
		nlg_source_drain(o.src);
	nlg_printer_flush(&o.p);
	nlg_source_summary(o.src, line, sizeof(line));
	if (*line)
		fprintf(stderr, "nlgate: %s: %s\n", c->positional ? c->cmd : c->ops->name, line);
	if (c->gen.stats)
		print_stats(&o);
	/* The source stops before the output drains: nothing new comes. */
	nlg_source_close(o.src);
	o.src = NULL;
	nlg_to_close(&to, o.loop, c->gen.drain_ms);
	rc = o.failed ? 1 : out_result(&o, c->cmd);
out:
	nlg_source_close(o.src);
	nlg_to_close(&to, o.loop, 0);
	nlg_loop_destroy(o.loop);
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGPIPE, &oldpipe, NULL);
	nlg_printer_free(&o.p);
	return rc;
}

int nlg_cmd_watch(int argc, char **argv)
{
	struct cli c = {.ctx = NLG_CTX_WATCH};
	int rc;

	if (!(c.ops = find_kind(argc, argv, &rc)))
		return rc;
	snprintf(c.cmd, sizeof(c.cmd), "watch %s", c.ops->name);
	rc = cli_parse(&c, argc - 1, argv + 1);
	if (rc < 0)
		rc = watch_run(&c);
	cli_free(&c);
	return rc;
}

/* `nlgate capture [OPTIONS] [FILTER]`: tcpdump's shape over `watch packets`. */
int nlg_cmd_capture(int argc, char **argv)
{
	struct cli c = {.ctx = NLG_CTX_WATCH, .positional = "filter"};
	int rc;

	c.ops = nlg_source_find("packets");
	if (!c.ops)
		return nlg_cmd_fail("capture: this build has no packets source");
	snprintf(c.cmd, sizeof(c.cmd), "capture");
	rc = cli_parse(&c, argc, argv);
	if (rc < 0)
		rc = watch_run(&c);
	cli_free(&c);
	return rc;
}
