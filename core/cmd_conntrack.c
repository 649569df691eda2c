/* `nlgate dump conntrack` and `nlgate watch conntrack`: the conntrack source
 * driven from the command line, one record per line (JSON, or msgpack). */
#include "cmd.h"

int nlg_cmd_dump_conntrack(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return nlg_cmd_fail("dump conntrack: not built yet");
}

int nlg_cmd_watch_conntrack(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return nlg_cmd_fail("watch conntrack: not built yet");
}
