/* `nlgate run` (the daemon) and `nlgate check`: one event loop, one
 * pipeline script started through the script API (script.h), signals
 * through a signalfd (INT/TERM drain and stop, HUP reloads the script). The
 * command line never sees a lua_State. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cmd.h"
#include "nlgate/loop.h"
#include "nlgate/opt.h"
#include "nlgate/priv.h"
#include "nlgate/output.h"
#include "nlgate/script.h"

#ifndef NLGATE_SRCDIR
#define NLGATE_SRCDIR "/usr/share/nlgate"
#endif

static const char run_usage[] =
    "usage: nlgate run [OPTIONS] [SCRIPT]\n"
    "Run a Lua pipeline script. Without SCRIPT, the default pipeline: socket\n"
    "polling, a feed on ./nlgate.sock and a live summary on the terminal.\n\n"
    "  -m, --mem-limit MIB   memory the script may use (default 256)\n"
    "  -b, --budget N        VM instructions per handler call (default 50000000, 0 = off)\n"
    "  -u, --user USER       after the script has opened its sources, switch to USER,\n"
    "                        keeping only the capabilities they need; a reload that\n"
    "                        would need more is refused\n"
    "  -d, --drain DURATION  at exit, how long outputs may take to deliver what they\n"
    "                        hold: queues, resends, acknowledgements (default 5s)\n"
    "  -h, --help            this help\n\n"
    "Signals: INT/TERM stop: the sources close, the outputs drain (a second INT or\n"
    "TERM cuts it short; what was not delivered is said in one line). HUP reloads\n"
    "the script; if the new one fails to load or to start, the running one keeps\n"
    "running.\n";

static const char check_usage[] =
    "usage: nlgate check SCRIPT\n"
    "Run a pipeline script's top level against a dry gateway, in the sandbox of\n"
    "`nlgate run`: sources and outputs check their options but open nothing, no\n"
    "timer fires. A syntax error, an error raised while loading or a bad option\n"
    "is reported as file:line: message, exit status 1; else \"SCRIPT: ok\".\n";

struct run_ctx {
	struct nlg_loop *loop;
	int reload;
};

static void default_script(char *buf, size_t len)
{
	const char *env = getenv("NLGATE_DEFAULT_SCRIPT");

	if (env) {
		snprintf(buf, len, "%s", env);
		return;
	}
	snprintf(buf, len, "%s/scripts/default.lua", NLGATE_SRCDIR);
	if (access(buf, R_OK) != 0)
		snprintf(buf, len, "/usr/share/nlgate/default.lua");
}

static void on_signal(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct run_ctx *ctx = data;
	struct signalfd_siginfo si;

	NLG_UNUSED(events);
	/* Both stop the loop: a reload runs between two runs of it, never
	 * inside a handler of the state it replaces. */
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGHUP)
			ctx->reload = -1; /* a stop wins over a reload */
		else if (!ctx->reload)
			ctx->reload = 1;
		nlg_loop_stop(loop);
	}
}

/* "256" → 256 MiB in bytes, "0" → 0; -EINVAL past what size_t holds. */
static int parse_mib(const char *s, size_t *bytes)
{
	uint64_t v;

	if (nlg_parse_uint(s, &v) < 0 || v > (SIZE_MAX >> 20))
		return -EINVAL;
	*bytes = (size_t)v << 20;
	return 0;
}

int nlg_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"mem-limit", required_argument, NULL, 'm'},
	    {"budget", required_argument, NULL, 'b'},
	    {"user", required_argument, NULL, 'u'},
	    {"drain", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char script[PATH_MAX], lpath[3 * PATH_MAX];
	struct nlg_script_opts so = {
	    .mem_limit = 256u << 20, .insn_budget = 50000000, .drain_ms = NLG_DRAIN_MS};
	struct run_ctx ctx = {0};
	struct nlg_script *s = NULL;
	struct nlg_err err = {{0}};
	sigset_t mask, oldmask;
	int c, sfd = -1, rc = 1;
	const char *user = NULL;
	char dropped[384] = "";

	optind = 0; /* 0: glibc starts afresh (nlg_cli_main may run again) */
	while ((c = getopt_long(argc, argv, ":m:b:u:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_mib(optarg, &so.mem_limit) < 0)
				return nlg_cmd_fail("run: bad mem-limit '%s' (MiB, an integer)",
						    optarg);
			break;
		case 'b':
			if (nlg_parse_uint(optarg, &so.insn_budget) < 0)
				return nlg_cmd_fail("run: bad budget '%s' (an integer)", optarg);
			break;
		case 'u':
			user = optarg;
			break;
		case 'd':
			if (nlg_parse_duration(optarg, "s", &so.drain_ms) < 0)
				return nlg_cmd_fail("run: bad drain '%s' (a duration: 5s, 500ms)",
						    optarg);
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			return nlg_cmd_badopt("run", argv, c);
		}
	}
	if (argc - optind > 1)
		return nlg_cmd_fail("run: one script at a time (see --help)");
	if (optind < argc)
		snprintf(script, sizeof(script), "%s", argv[optind]);
	else
		default_script(script, sizeof(script));
	if (access(script, R_OK) != 0)
		return nlg_cmd_fail("run: cannot read script %s: %s", script, strerror(errno));
	nlg_script_lua_path(script, lpath, sizeof(lpath));
	so.lua_path = lpath;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	ctx.loop = nlg_loop_create();
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (!ctx.loop || sfd < 0 || nlg_loop_add_fd(ctx.loop, sfd, EPOLLIN, on_signal, &ctx) < 0) {
		nlg_cmd_fail("run: cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	so.stop_fd = sfd; /* the watchdog sees a stop the loop cannot read */
	s = nlg_script_start(ctx.loop, script, &so, &err);
	if (!s) {
		nlg_cmd_fail("run: %s", err.msg);
		goto out;
	}
	/* Only what the open sources need: a reload hands them over without
	 * reopening, and one that would open more is refused like any failed
	 * reload. Still one thread here (no source starts a worker yet), which
	 * nlg_priv_drop checks: capabilities are per thread. */
	if (user) {
		uint64_t caps = nlg_script_caps(s);
		char names[256];

		if (nlg_priv_drop(user, caps, &err) < 0) {
			nlg_cmd_fail("run: %s", err.msg);
			goto out;
		}
		nlg_priv_names(caps, names, sizeof(names));
		fprintf(stderr, "nlgate: running as %s with capabilities: %s\n", user, names);
		snprintf(dropped, sizeof(dropped),
			 " (as %s with capabilities: %s; a source that needs more opens only "
			 "on a restart)",
			 user, names);
	}
	/* After the drop: a thread started before it would keep root's
	 * capabilities (they are per thread). */
	nlg_script_watchdog(s);
	for (;;) {
		if (nlg_loop_run(ctx.loop) < 0) {
			nlg_cmd_fail("run: event loop failed: %s", strerror(errno));
			goto out;
		}
		if (ctx.reload <= 0)
			break; /* INT/TERM, or the script called gw.stop() */
		ctx.reload = 0;
		nlg_loop_resume(ctx.loop);
		/* A failed reload leaves the running script as it was: the
		 * gateway never goes down for a bad edit. */
		if (nlg_script_reload(s, &err) < 0)
			fprintf(stderr,
				"nlgate: reload failed: %s; the running script keeps running%s\n",
				err.msg, dropped);
		else
			fprintf(stderr, "nlgate: reloaded %s\n", script);
	}
	rc = 0;
out:
	nlg_script_stop(s); /* closes sources, drains and closes feeds */
	if (sfd >= 0)
		close(sfd);
	nlg_loop_destroy(ctx.loop);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return rc;
}

int nlg_cmd_check(int argc, char **argv)
{
	struct nlg_err err = {{0}};
	/* the limits `nlgate run` starts with */
	struct nlg_script_opts so = {.mem_limit = 256u << 20, .insn_budget = 50000000};
	char lpath[3 * PATH_MAX];

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(check_usage, stdout);
		return 0;
	}
	if (argc == 2 && argv[1][0] == '-' && argv[1][1]) {
		fprintf(stderr, "nlgate: check: bad option '%s' (see `nlgate check --help`)\n",
			argv[1]);
		return 2;
	}
	if (argc != 2) {
		fprintf(stderr,
			"nlgate: check: give exactly one script (see `nlgate check --help`)\n");
		return 2;
	}
	if (access(argv[1], R_OK) != 0)
		return nlg_cmd_fail("check: cannot read %s: %s", argv[1], strerror(errno));
	nlg_script_lua_path(argv[1], lpath, sizeof(lpath));
	so.lua_path = lpath;
	if (nlg_script_check(argv[1], &so, &err) < 0) {
		/* file:line: message; the traceback says nothing more here */
		char *tb = strstr(err.msg, "\nstack traceback:");
		if (tb)
			*tb = 0;
		return nlg_cmd_fail("check: %s", err.msg);
	}
	printf("%s: ok\n", argv[1]);
	return 0;
}
