/* What every command shares for talking to the user: the one-line error
 * and the one-line complaint about a bad option. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "cmd.h"

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

int nlg_cmd_badopt(const char *cmd, char **argv, int c)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	char shortopt[3] = {'-', (char)optopt, 0};

	/* optopt is the letter of a bad short option, the val of a long one
	 * (>= 256 in dump/watch), or 0 for an unknown long one. */
	if (optopt > 0 && optopt < 256)
		arg = shortopt;
	if (c == ':')
		fprintf(stderr, "nlgate: %s: option '%s' needs a value (see `nlgate %s --help`)\n",
			cmd, arg, cmd);
	else
		fprintf(stderr, "nlgate: %s: bad option '%s' (see `nlgate %s --help`)\n", cmd, arg,
			cmd);
	return 2;
}
