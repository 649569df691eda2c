/* `nlgate run` (the daemon) and `nlgate check`: one event loop, one
 * sandboxed Lua state running the pipeline script, signals through a
 * signalfd (INT/TERM drain and stop, HUP reloads the script). */
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
#include "nlgate/priv.h"
#include "nlgate/script.h"

#include <lauxlib.h>

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
    "                        keeping only CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN\n"
    "  -h, --help            this help\n\n"
    "Signals: INT/TERM stop (feeds are drained), HUP reloads the script; if the\n"
    "new one fails to load, the previous one is started again.\n";

static const char check_usage[] =
    "usage: nlgate check SCRIPT\n"
    "Compile a pipeline script and report the first error as file:line.\n";

struct run_ctx {
	struct nlg_loop *loop;
	struct nlg_lua_opts lopts;
	lua_State *L;
	const char *script;
	int sfd;
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

/* package.path: the shipped rule library, then the script's own directory. */
static void lua_path_for(const char *script, char *buf, size_t len)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", script);
	snprintf(buf, len, "%s/?.lua;%s/scripts/?.lua;%s/scripts/?/init.lua", dirname(dir),
		 NLGATE_SRCDIR, NLGATE_SRCDIR);
}

static lua_State *start_script(struct run_ctx *ctx, struct nlg_err *err)
{
	lua_State *L = nlg_lua_new(ctx->loop, &ctx->lopts, err);

	if (!L)
		return NULL;
	if (nlg_lua_load(L, ctx->script, 1, err) < 0) {
		nlg_lua_close(L);
		return NULL;
	}
	return L;
}

static void on_signal(struct nlg_loop *loop, int fd, uint32_t events, void *data)
{
	struct run_ctx *ctx = data;
	struct signalfd_siginfo si;

	NLG_UNUSED(events);
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			ctx->reload = 1;
			nlg_loop_stop(loop);
		} else {
			nlg_loop_stop(loop);
		}
	}
}

/* Reload: the new script must compile before the old state goes; the old
 * state is closed before the new one runs (they would fight over feed
 * paths); if the new one fails while starting, the old script starts again. */
static int reload(struct run_ctx *ctx, const char *prev_text, size_t prev_len, int *replaced)
{
	struct nlg_err err = {{0}};
	lua_State *probe = luaL_newstate();
	int ok = probe && luaL_loadfile(probe, ctx->script) == LUA_OK;

	if (!ok)
		fprintf(stderr, "nlgate: reload refused, %s; the running script keeps running\n",
			probe ? lua_tostring(probe, -1) : "out of memory");
	if (probe)
		lua_close(probe);
	if (!ok)
		return 0;
	nlg_lua_close(ctx->L);
	ctx->L = start_script(ctx, &err);
	if (ctx->L) {
		fprintf(stderr, "nlgate: reloaded %s\n", ctx->script);
		*replaced = 1;
		return 0;
	}
	fprintf(stderr, "nlgate: reload failed: %s; starting the previous script again\n", err.msg);
	ctx->L = nlg_lua_new(ctx->loop, &ctx->lopts, &err);
	if (!ctx->L)
		return -ENOMEM;
	if (luaL_loadbuffer(ctx->L, prev_text, prev_len, ctx->script) != LUA_OK ||
	    lua_pcall(ctx->L, 0, 0, 0) != LUA_OK) {
		fprintf(stderr, "nlgate: the previous script failed too: %s\n",
			lua_tostring(ctx->L, -1));
		return -EINVAL;
	}
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

int nlg_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"mem-limit", required_argument, NULL, 'm'},
	    {"budget", required_argument, NULL, 'b'},
	    {"user", required_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char script[PATH_MAX], lpath[3 * PATH_MAX];
	struct run_ctx ctx = {.sfd = -1};
	struct nlg_err err = {{0}};
	sigset_t mask;
	int c, rc = 1;
	char *text = NULL;
	size_t text_len = 0;
	const char *user = NULL;

	ctx.lopts.mem_limit = 256u << 20;
	ctx.lopts.insn_budget = 50000000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:b:u:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			ctx.lopts.mem_limit = (size_t)strtoull(optarg, NULL, 10) << 20;
			break;
		case 'b':
			ctx.lopts.insn_budget = strtoull(optarg, NULL, 10);
			break;
		case 'u':
			user = optarg;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			return nlg_cmd_badopt("run", argv);
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
	lua_path_for(script, lpath, sizeof(lpath));
	ctx.lopts.lua_path = lpath;
	ctx.script = script;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	ctx.loop = nlg_loop_create();
	ctx.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (!ctx.loop || ctx.sfd < 0 ||
	    nlg_loop_add_fd(ctx.loop, ctx.sfd, EPOLLIN, on_signal, &ctx) < 0) {
		nlg_cmd_fail("run: cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	text = slurp(script, &text_len);
	ctx.L = start_script(&ctx, &err);
	if (!ctx.L) {
		nlg_cmd_fail("run: %s", err.msg);
		goto out;
	}
	if (user && nlg_priv_drop(user, nlg_priv_wanted(), &err) < 0) {
		nlg_cmd_fail("run: %s", err.msg);
		goto out;
	}
	for (;;) {
		if (nlg_loop_run(ctx.loop) < 0) {
			nlg_cmd_fail("run: event loop failed: %s", strerror(errno));
			goto out;
		}
		if (!ctx.reload)
			break;
		ctx.reload = 0;
		nlg_loop_resume(ctx.loop);
		size_t new_len = 0;
		char *t = slurp(script, &new_len); /* what the new state will run */
		int replaced = 0;
		if (reload(&ctx, text, text_len, &replaced) < 0) {
			free(t);
			goto out;
		}
		if (replaced && t) {
			free(text);
			text = t;
			text_len = new_len;
		} else {
			free(t);
		}
	}
	rc = 0;
out:
	nlg_lua_close(ctx.L); /* closes sources, drains and closes feeds */
	if (ctx.sfd >= 0)
		close(ctx.sfd);
	nlg_loop_destroy(ctx.loop);
	free(text);
	return rc;
}

int nlg_cmd_check(int argc, char **argv)
{
	struct nlg_err err = {{0}};
	struct nlg_loop *loop;
	lua_State *L;
	int rc;

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
	loop = nlg_loop_create();
	L = loop ? nlg_lua_new(loop, NULL, &err) : NULL;
	if (!L) {
		nlg_loop_destroy(loop);
		return nlg_cmd_fail("check: %s", loop ? err.msg : "out of memory");
	}
	rc = nlg_lua_load(L, argv[1], 0, &err);
	nlg_lua_close(L);
	nlg_loop_destroy(loop);
	if (rc < 0)
		return nlg_cmd_fail("check: %s", err.msg);
	printf("%s: ok\n", argv[1]);
	return 0;
}
