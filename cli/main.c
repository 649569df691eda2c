/* The nlgate executable: everything it does is in the nlgcli library, so
 * tests can drive the same command line in-process. */
#include "cli.h"

int main(int argc, char **argv)
{
	return nlg_cli_main(argc, argv);
}
