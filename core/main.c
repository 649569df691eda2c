/* The command line: finds the command, hands it the rest of argv. Each
 * command lives in core/cmd_<name>.c and returns the process exit code. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

struct cmd {
	const char *word, *sub; /* "dump" "sockets"; sub NULL for one-word commands */
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct cmd cmds[] = {
    {"run", NULL, nlg_cmd_run, "run [SCRIPT]            run a pipeline (default: the shipped one)"},
    {"check", NULL, nlg_cmd_check,
     "check SCRIPT            compile a pipeline script, report errors"},
    {"dump", "sockets", nlg_cmd_dump_sockets,
     "dump sockets [OPTS]     one socket dump as JSON lines"},
#ifdef NLGATE_HAVE_CT
    {"dump", "conntrack", nlg_cmd_dump_conntrack,
     "dump conntrack [OPTS]   the conntrack table as JSON lines"},
    {"watch", "conntrack", nlg_cmd_watch_conntrack,
     "watch conntrack [OPTS]  conntrack events as JSON lines"},
#endif
    {"tail", NULL, nlg_cmd_tail, "tail [SOCKET]           print a feed as JSON lines"},
    {"fields", NULL, nlg_cmd_fields, "fields [KIND]           list record fields"},
};

int nlg_cmd_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("nlgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int nlg_cmd_badopt(const char *cmd, char **argv)
{
	const char *bad = optind > 0 ? argv[optind - 1] : "?";

	/* A short option missing its argument leaves optopt set and optind past it. */
	if (optopt && bad[0] == '-' && bad[1] == optopt && !bad[2])
		fprintf(stderr, "nlgate: %s: option '-%c' needs a value (see `nlgate %s --help`)\n",
			cmd, optopt, cmd);
	else
		fprintf(stderr, "nlgate: %s: bad option '%s' (see `nlgate %s --help`)\n", cmd, bad,
			cmd);
	return 2;
}

static void usage(FILE *f)
{
	fputs("usage: nlgate COMMAND [OPTIONS]\n\n"
	      "nlgate reads the kernel's views of the network (socket dumps, conntrack) and\n"
	      "hands them as typed records to a Lua pipeline script and to local feeds.\n\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %s\n", cmds[i].usage);
	fputs("\n`nlgate COMMAND --help` tells more about one command.\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		puts("nlgate 0.1.0");
		return 0;
	}
	nlg_schema_init();
	opterr = 0; /* commands report a bad option in one line of their own */
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cmds); i++) {
		const struct cmd *c = &cmds[i];
		if (strcmp(argv[1], c->word))
			continue;
		if (!c->sub)
			return c->fn(argc - 1, argv + 1);
		if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
			int rc = argc < 3 ? 2 : 0;
			FILE *f = rc ? stderr : stdout;
			fprintf(f, "usage: nlgate %s WHAT\n", c->word);
			for (size_t j = 0; j < NLG_ARRAY_SIZE(cmds); j++)
				if (!strcmp(cmds[j].word, c->word))
					fprintf(f, "  %s\n", cmds[j].usage);
			return rc;
		}
		for (size_t j = i; j < NLG_ARRAY_SIZE(cmds); j++)
			if (!strcmp(cmds[j].word, c->word) && cmds[j].sub &&
			    !strcmp(cmds[j].sub, argv[2]))
				return cmds[j].fn(argc - 2, argv + 2);
		return nlg_cmd_fail("unknown '%s' target '%s' (try `nlgate %s --help`)", c->word,
				    argv[2], c->word);
	}
	return nlg_cmd_fail("unknown command '%s' (try `nlgate --help`)", argv[1]);
}
