/* `nlgate tail`: connect to a feed and print each frame as a JSON line
 * {"tag":..,"time":..,"record":{..}}, or pass the msgpack through. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmd.h"
#include "nlgate/net.h"
#include "nlgate/opt.h"

static const char usage[] =
    "usage: nlgate tail [OPTIONS] [SOCKET | unix:PATH | tcp://HOST:PORT]\n"
    "Connect to an nlgate feed (default ./nlgate.sock; tcp:// for gw.tcp{listen})\n"
    "and print its frames as JSON lines: {\"tag\":...,\"time\":...,\"record\":{...}}.\n\n"
    "  -n, --count N     exit after N frames\n"
    "  -t, --tag PREFIX  only frames whose tag starts with PREFIX\n"
    "  -m, --msgpack     copy the raw msgpack stream to stdout instead\n"
    "  -h, --help        this help\n";

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The tag is the first string in the JSON line: {"tag":"<tag>",... */
static int tag_matches(const struct nlg_buf *line, const char *prefix)
{
	size_t pl = strlen(prefix);
	return line->len > 8 + pl && !memcmp(line->data + 8, prefix, pl);
}

int nlg_cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"count", required_argument, NULL, 'n'},
	    {"tag", required_argument, NULL, 't'},
	    {"msgpack", no_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *path = "nlgate.sock", *tag = NULL;
	long long count = -1, seen = 0;
	struct nlg_buf in, out;
	int c, fd, msgpack = 0, rc = 0;
	uint64_t n;

	optind = 0; /* 0: glibc starts afresh (nlg_cli_main may run again) */
	while ((c = getopt_long(argc, argv, ":n:t:mh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (nlg_parse_uint(optarg, &n) < 0 || n > INT64_MAX)
				return nlg_cmd_fail("tail: bad count '%s' (an integer)", optarg);
			count = (long long)n;
			break;
		case 't':
			tag = optarg;
			break;
		case 'm':
			msgpack = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return nlg_cmd_badopt("tail", argv, c);
		}
	}
	if (optind < argc)
		path = argv[optind++];
	if (optind < argc)
		return nlg_cmd_fail("tail: one socket at a time (see --help)");
	if (!strncmp(path, "tcp://", 6)) {
		struct nlg_netaddr a;
		struct nlg_err err = {{0}};

		if (nlg_net_resolve(&a, path + 6, "127.0.0.1", 0, &err) < 0)
			return nlg_cmd_fail("tail: %s", err.msg);
		fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a.ss, a.len) < 0)
			return nlg_cmd_fail("tail: cannot connect to %s: %s", path,
					    strerror(errno));
	} else {
		if (!strncmp(path, "unix:", 5))
			path += 5;
		if (strlen(path) >= sizeof(sun.sun_path))
			return nlg_cmd_fail("tail: socket path too long: %s", path);
		strcpy(sun.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			return nlg_cmd_fail("tail: cannot connect to %s: %s", path,
					    strerror(errno));
	}
	nlg_buf_init(&in);
	nlg_buf_init(&out);
	while (count < 0 || seen < count) {
		if (nlg_buf_reserve(&in, 65536) < 0) {
			rc = nlg_cmd_fail("tail: out of memory");
			break;
		}
		ssize_t n = read(fd, in.data + in.len, in.cap - in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				rc = nlg_cmd_fail("tail: read %s: %s", path, strerror(errno));
			break;
		}
		in.len += (size_t)n;
		size_t off = 0;
		for (;;) {
			nlg_buf_reset(&out);
			int used = nlg_frame_to_json(in.data + off, in.len - off, &out);
			if (used == 0)
				break;
			if (used < 0) {
				rc = nlg_cmd_fail("tail: %s does not speak the nlgate feed format",
						  path);
				goto done;
			}
			if (!tag || tag_matches(&out, tag)) {
				int w = msgpack ? write_all(1, in.data + off, (size_t)used)
						: (nlg_buf_append(&out, "\n", 1),
						   write_all(1, out.data, out.len));
				if (w < 0)
					goto done; /* stdout closed */
				seen++;
			}
			off += (size_t)used;
			if (count >= 0 && seen >= count)
				break;
		}
		memmove(in.data, in.data + off, in.len - off);
		in.len -= off;
	}
done:
	close(fd);
	nlg_buf_free(&in);
	nlg_buf_free(&out);
	return rc;
}
