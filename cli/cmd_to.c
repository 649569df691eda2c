/* `watch KIND --to URL`: a source's records to any output, without a script.
 * The URL names the output and its main options (unix:PATH, tcp://H:P,
 * forward://H:P, nats://H:P/SUBJECT); "?name=value&..." adds any other of
 * the output's options, checked by its own option table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "nlgate/output.h"

/* scheme → output, and the option(s) the rest of the URL fills. */
static const struct {
	const char *scheme, *output;
	int kind; /* 0: rest → opt1; 1: host:port → opt1, opt2; 2: host:port/subj → url, subject */
	const char *opt1, *opt2;
} schemes[] = {
    {"unix:", "unix", 0, "path", NULL},		 {"tcp://", "tcp", 0, "connect", NULL},
    {"tcp-listen://", "tcp", 0, "listen", NULL}, {"forward://", "forward", 1, "host", "port"},
    {"nats://", "nats", 2, "url", "subject"},
};

static int set(const struct nlg_output_ops *ops, char **vals, const char *name, const char *v,
	       size_t vlen, struct nlg_err *err)
{
	int i = nlg_opt_find(ops->opts, name, 0);

	if (i < 0)
		return nlg_err_set(err, EINVAL, "--to: %s has no option '%s'", ops->name, name);
	free(vals[i]);
	vals[i] = strndup(v, vlen);
	return vals[i] ? 0 : nlg_err_set(err, ENOMEM, "out of memory");
}

/* The query's name=value pairs, then the URL's own parts. */
static int fill(const struct nlg_output_ops *ops, char **vals, int kind, const char *opt1,
		const char *opt2, const char *rest, size_t rlen, struct nlg_err *err)
{
	const char *colon, *slash;
	char url[300];
	int rc;

	if (!rlen)
		return nlg_err_set(err, EINVAL, "--to: nothing after the scheme");
	if (kind == 0)
		return set(ops, vals, opt1, rest, rlen, err);
	slash = memchr(rest, '/', rlen);
	if (kind == 1) {
		colon = memrchr(rest, ':', rlen);
		if (!colon || slash)
			return nlg_err_set(err, EINVAL, "--to: want forward://HOST:PORT");
		if ((rc = set(ops, vals, opt1, rest, (size_t)(colon - rest), err)) < 0)
			return rc;
		return set(ops, vals, opt2, colon + 1, rlen - (size_t)(colon - rest) - 1, err);
	}
	if (!slash || slash == rest || slash + 1 == rest + rlen)
		return nlg_err_set(err, EINVAL, "--to: want nats://HOST:PORT/SUBJECT");
	snprintf(url, sizeof(url), "nats://%.*s", (int)(slash - rest), rest);
	if ((rc = set(ops, vals, opt1, url, strlen(url), err)) < 0)
		return rc;
	return set(ops, vals, opt2, slash + 1, rlen - (size_t)(slash - rest) - 1, err);
}

int nlg_to_open(struct nlg_to *to, const char *url, struct nlg_loop *loop, struct nlg_err *err)
{
	const struct nlg_output_ops *ops = NULL;
	const char *rest = NULL, *q;
	size_t n, k;
	char **vals = NULL;
	int rc;

	memset(to, 0, sizeof(*to));
	nlg_buf_init(&to->buf);
	nlg_mp_init(&to->pk, &to->buf);
	for (k = 0; k < NLG_ARRAY_SIZE(schemes); k++)
		if (!strncmp(url, schemes[k].scheme, strlen(schemes[k].scheme))) {
			rest = url + strlen(schemes[k].scheme);
			break;
		}
	if (!rest)
		return nlg_err_set(err, EINVAL,
				   "--to: unknown URL '%s' (unix:PATH, tcp://HOST:PORT, "
				   "tcp-listen://[ADDR]:PORT, forward://HOST:PORT, "
				   "nats://HOST:PORT/SUBJECT)",
				   url);
	ops = nlg_output_find(schemes[k].output);
	if (!ops)
		return nlg_err_set(err, ENOTSUP, "--to: this build has no %s output",
				   schemes[k].output);
	n = nlg_opt_count(ops->opts);
	vals = calloc(n + 1, sizeof(*vals));
	to->conf = calloc(1, ops->conf_size);
	if (!vals || !to->conf) {
		rc = nlg_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	q = strchr(rest, '?');
	rc = fill(ops, vals, schemes[k].kind, schemes[k].opt1, schemes[k].opt2, rest,
		  q ? (size_t)(q - rest) : strlen(rest), err);
	for (const char *p = q ? q + 1 : NULL; rc == 0 && p && *p;) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		char name[64];

		if (!eq || eq == p || (size_t)(eq - p) >= sizeof(name)) {
			rc = nlg_err_set(err, EINVAL, "--to: bad option '%.*s' (want name=value)",
					 (int)len, p);
			break;
		}
		memcpy(name, p, (size_t)(eq - p));
		name[eq - p] = 0;
		rc = set(ops, vals, name, eq + 1, len - (size_t)(eq - p) - 1, err);
		p += len + (p[len] == '&');
	}
	if (rc == 0 && (rc = nlg_opt_apply(ops->opts, to->conf, (const char *const *)vals,
					   NLG_CTX_SCRIPT, err)) < 0) {
		char m[NLG_ERRLEN];
		snprintf(m, sizeof(m), "%s", err->msg);
		nlg_err_set(err, -rc, "--to %s: %s", url, m);
	}
	if (rc == 0 && (rc = ops->open(loop, to->conf, &to->st, err)) == 0)
		to->ops = ops;
out:
	for (size_t i = 0; vals && i < n; i++)
		free(vals[i]);
	free(vals);
	if (rc < 0) {
		free(to->conf);
		nlg_buf_free(&to->buf);
		to->conf = NULL;
	}
	return rc;
}

int nlg_to_send(struct nlg_to *to, const struct nlg_schema *s, const void *rec)
{
	struct nlg_item it = {.tag = s->kind, .taglen = strlen(s->kind)};

	nlg_buf_reset(&to->buf);
	if (nlg_enc_mp_record(&to->pk, s, rec) < 0)
		return -ENOMEM;
	it.time_ns = nlg_realtime_ns();
	it.body = to->buf.data;
	it.len = to->buf.len;
	return to->ops->send(to->st, &it);
}

void nlg_to_close(struct nlg_to *to, struct nlg_loop *loop, uint64_t drain_ms)
{
	char line[512];

	if (!to->ops) {
		nlg_buf_free(&to->buf);
		return;
	}
	if (nlg_output_drain(loop, &to->ops, &to->st, 1, drain_ms, line, sizeof(line)))
		nlg_log("stop: %s", line);
	to->ops->close(to->st, 0);
	free(to->conf);
	nlg_buf_free(&to->buf);
	memset(to, 0, sizeof(*to));
}
