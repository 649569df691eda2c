/* The command line: finds the command, hands it the rest of argv. Each
 * command lives in cli/cmd_<name>.c and returns the process exit code;
 * `dump` and `watch` serve every source in the registry. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "nlgate/output.h"
#include "nlgate/source.h"

struct cmd {
	const char *word;
	int (*fn)(int argc, char **argv);
	const char *usage;
	int kinds; /* 1: the usage line ends with the sources it takes */
};

static const struct cmd cmds[] = {
    {"run", nlg_cmd_run, "run [SCRIPT]          run a pipeline (default: the shipped one)", 0},
    {"check", nlg_cmd_check, "check SCRIPT          run a script dry, errors as file:line", 0},
    {"dump", nlg_cmd_dump, "dump KIND [OPTS]      one dump as JSON lines; KIND:", 1},
    {"watch", nlg_cmd_watch, "watch KIND [OPTS]     records as they come, as JSON lines; KIND:", 1},
    {"capture", nlg_cmd_capture, "capture [OPTS] [EXPR] packets (flows with --flows) as JSON lines",
     0},
    {"tail", nlg_cmd_tail, "tail [SOCKET]         print a feed as JSON lines", 0},
    {"fields", nlg_cmd_fields, "fields [KIND]         list record fields", 0},
};

static void usage(FILE *f)
{
	fputs("usage: nlgate COMMAND [OPTIONS]\n\n"
	      "nlgate reads the kernel's views of the network (socket dumps, conntrack,\n"
	      "packets) and hands them as typed records to a Lua pipeline script and to\n"
	      "local feeds.\n\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cmds); i++) {
		fprintf(f, "  %s", cmds[i].usage);
		if (cmds[i].kinds)
			nlg_cmd_kinds(f, !strcmp(cmds[i].word, "dump"));
		fputc('\n', f);
	}
	fputs("\n`nlgate COMMAND --help` tells more about one command.\n", f);
}

int nlg_cli_main(int argc, char **argv)
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
	nlg_source_at(0); /* the sources' kinds join the schema registry */
	nlg_output_at(0); /* and the outputs' counters (unix.stats, forward.stats, ...) */
	opterr = 0;	  /* commands report a bad option in one line of their own */
	for (size_t i = 0; i < NLG_ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].word))
			return cmds[i].fn(argc - 1, argv + 1);
	return nlg_cmd_fail("unknown command '%s' (try `nlgate --help`)", argv[1]);
}
