/* The command line as a library: nlgate's main() is one call to it, and a
 * test can register a fake source (nlg_source_register) and run the same
 * commands on an argv of its own. */
#ifndef NLGATE_CLI_H
#define NLGATE_CLI_H

/* Run `nlgate argv[1] ...`; returns the process exit code (0 ok, 1 failed,
 * 2 bad usage). Prints records on fd 1 and one-line errors on stderr. */
int nlg_cli_main(int argc, char **argv);

#endif
