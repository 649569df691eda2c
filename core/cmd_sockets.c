/* `nlgate dump sockets`: one inet_diag dump printed as JSON lines (or
 * msgpack maps), the fields named by the sock schema, like `ss -tuan`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "nlgate/sockdiag.h"

static const char usage[] =
    "usage: nlgate dump sockets [OPTIONS]\n"
    "Dump the kernel's inet sockets (inet_diag), one JSON object per line.\n\n"
    "  -t, --tcp           TCP sockets (default: TCP and UDP)\n"
    "  -u, --udp           UDP sockets\n"
    "  -M, --mptcp         MPTCP sockets\n"
    "  -4, --ipv4          IPv4 only\n"
    "  -6, --ipv6          IPv6 only\n"
    "  -s, --state LIST    states, as ss takes them: all, connected, established,\n"
    "                      listen, time-wait, syn-recv, ... (default: all)\n"
    "  -i, --info LIST     extensions: tcp_info, meminfo, skmem, cong, tos, vegas,\n"
    "                      bbr, all, none (default: tcp_info,cong)\n"
    "      --sport N       only sockets with local port N (filtered in the kernel)\n"
    "      --dport N       only sockets with peer port N (filtered in the kernel)\n"
    "  -n, --netns NAME    dump in network namespace NAME (/run/netns/NAME)\n"
    "  -m, --msgpack       print msgpack maps instead of JSON lines\n"
    "      --raw FILE      also write the raw netlink replies to FILE (fixtures)\n"
    "  -h, --help          this help\n\n"
    "Needs no privilege (entering another namespace needs CAP_SYS_ADMIN).\n"
    "Fields: `nlgate fields sock`.\n";

static int print_one(const struct nlg_sock *rec, void *data)
{
	return nlg_printer_record(data, &nlg_sock_schema, rec) < 0 ? NLG_CB_ERROR : NLG_CB_OK;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || v <= 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int nlg_cmd_dump_sockets(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"tcp", no_argument, NULL, 't'},	     {"udp", no_argument, NULL, 'u'},
	    {"mptcp", no_argument, NULL, 'M'},	     {"ipv4", no_argument, NULL, '4'},
	    {"ipv6", no_argument, NULL, '6'},	     {"state", required_argument, NULL, 's'},
	    {"info", required_argument, NULL, 'i'},  {"sport", required_argument, NULL, 'S'},
	    {"dport", required_argument, NULL, 'D'}, {"netns", required_argument, NULL, 'n'},
	    {"msgpack", no_argument, NULL, 'm'},     {"raw", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},	     {NULL, 0, NULL, 0},
	};
	struct nlg_sockdiag_req req = {0};
	const char *netns = NULL, *raw = NULL, *states = "all", *info = "tcp_info,cong";
	struct nlg_err err = {{0}};
	struct nlg_printer p;
	struct nlg_sockdiag *sd;
	int c, msgpack = 0, rc, rawfd = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "tuM46s:i:n:mh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			req.protos |= NLG_SD_TCP;
			break;
		case 'u':
			req.protos |= NLG_SD_UDP;
			break;
		case 'M':
			req.protos |= NLG_SD_MPTCP;
			break;
		case '4':
			req.families |= NLG_SD_INET;
			break;
		case '6':
			req.families |= NLG_SD_INET6;
			break;
		case 's':
			states = optarg;
			break;
		case 'i':
			info = optarg;
			break;
		case 'S':
		case 'D':
			if (parse_port(optarg, c == 'S' ? &req.sport : &req.dport) < 0)
				return nlg_cmd_fail("dump sockets: bad port '%s'", optarg);
			break;
		case 'n':
			netns = optarg;
			break;
		case 'm':
			msgpack = 1;
			break;
		case 'R':
			raw = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return nlg_cmd_badopt("dump sockets", argv);
		}
	}
	if (optind < argc)
		return nlg_cmd_fail("dump sockets: unexpected argument '%s' (see --help)",
				    argv[optind]);
	if (!req.protos)
		req.protos = NLG_SD_TCP | NLG_SD_UDP;
	if (!req.families)
		req.families = NLG_SD_INET | NLG_SD_INET6;
	if (nlg_sockdiag_parse_states(states, &req.states, &err) < 0 ||
	    nlg_sockdiag_parse_ext(info, &req.ext, &err) < 0)
		return nlg_cmd_fail("dump sockets: %s", err.msg);

	sd = nlg_sockdiag_open(netns, &err);
	if (!sd)
		return nlg_cmd_fail("dump sockets: %s", err.msg);
	if (raw) {
		rawfd = open(raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (rawfd < 0) {
			nlg_sockdiag_close(sd);
			return nlg_cmd_fail("dump sockets: cannot write %s: %s", raw,
					    strerror(errno));
		}
		nlg_nl_set_raw(nlg_sockdiag_nl(sd), rawfd);
	}
	nlg_printer_init(&p, STDOUT_FILENO, msgpack);
	rc = nlg_sockdiag_poll(sd, &req, print_one, &p, &err);
	if (rc >= 0)
		rc = nlg_printer_flush(&p);
	else
		nlg_printer_flush(&p);
	nlg_printer_free(&p);
	nlg_sockdiag_close(sd);
	if (rawfd >= 0)
		close(rawfd);
	if (rc < 0) {
		if (p.error == -EPIPE)
			return 0; /* stdout closed early (| head): not an error */
		return nlg_cmd_fail("dump sockets: %s", p.error ? strerror(-p.error) : err.msg);
	}
	return 0;
}
