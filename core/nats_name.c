/* What NATS takes as names (include/nlgate/nats_name.h): subjects from a
 * template and a tag, server urls and credentials files checked before
 * libnats sees them, and the prefix of the output's message ids. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nlgate/nats_name.h"

/* A byte of a tag as a subject may hold it: a publish names one subject, so
 * no wildcards, and a space or control byte would end the protocol line. */
static char subject_char(char c)
{
	unsigned char u = (unsigned char)c;

	return u <= ' ' || u == 0x7f || c == '*' || c == '>' ? '_' : c;
}

struct sbuf {
	char *p;
	size_t n;
};

/* Append c; a dot that would close an empty token gets a '_' before it. */
static int put(struct sbuf *b, char c)
{
	if (c == '.' && (b->n == 0 || b->p[b->n - 1] == '.')) {
		if (b->n + 1 >= NLG_NATS_SUBJ_MAX)
			return -ENAMETOOLONG;
		b->p[b->n++] = '_';
	}
	if (b->n + 1 >= NLG_NATS_SUBJ_MAX)
		return -ENAMETOOLONG;
	b->p[b->n++] = c;
	return 0;
}

int nlg_nats_subject(const char *tmpl, const char *tag, size_t taglen, char *out)
{
	struct sbuf b = {.p = out};
	int rc = 0;

	for (const char *p = tmpl; *p && !rc;) {
		if (!strncmp(p, "{tag}", 5)) {
			for (size_t i = 0; i < taglen && !rc; i++)
				rc = put(&b, subject_char(tag[i]));
			p += 5;
		} else {
			rc = put(&b, *p++);
		}
	}
	if (!rc && (b.n == 0 || out[b.n - 1] == '.'))
		rc = put(&b, '_');
	if (rc)
		return rc;
	out[b.n] = 0;
	return (int)b.n;
}

int nlg_nats_subject_check(const char *tmpl, struct nlg_err *err)
{
	size_t len = strlen(tmpl);
	char out[NLG_NATS_SUBJ_MAX];

	if (!len)
		return nlg_err_set(err, EINVAL, "nats: subject is empty");
	for (const char *p = tmpl; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '*' || *p == '>' || *p == 0x7f)
			return nlg_err_set(err, EINVAL,
					   "nats: bad subject '%.64s' (no spaces, controls or "
					   "wildcards * >: a publish names one subject)",
					   tmpl);
	if (tmpl[0] == '.' || tmpl[len - 1] == '.' || strstr(tmpl, ".."))
		return nlg_err_set(err, EINVAL,
				   "nats: bad subject '%.64s' (empty token: a dot at either end or "
				   "two in a row)",
				   tmpl);
	/* The gap announcements' subject must always be there; a tag too long
	 * for the rest is refused by send. */
	if (nlg_nats_subject(tmpl, "nlgate.gap", 10, out) < 0)
		return nlg_err_set(err, ENAMETOOLONG, "nats: subject '%.64s...' too long", tmpl);
	return 0;
}

/* One server: [nats://|tls://][user[:pass]@]host[:port], host a name, an
 * IPv4 address or [IPv6]. */
static int url_one(const char *u, size_t len, struct nlg_err *err)
{
	const char *p = u, *end = u + len, *at, *host, *colon;

	while (p < end && *p == ' ')
		p++;
	while (end > p && end[-1] == ' ')
		end--;
	if ((size_t)(end - p) > 7 && !strncmp(p, "nats://", 7))
		p += 7;
	else if ((size_t)(end - p) > 6 && !strncmp(p, "tls://", 6))
		p += 6;
	else if (memmem(p, (size_t)(end - p), "://", 3))
		return nlg_err_set(err, EINVAL,
				   "nats: bad url '%.*s' (the scheme is nats:// or tls://)",
				   (int)len, u);
	at = memrchr(p, '@', (size_t)(end - p));
	host = at ? at + 1 : p;
	if (host == end || memchr(host, '/', (size_t)(end - host)))
		goto bad;
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));
		if (!rb || rb == host + 1 || (rb + 1 < end && rb[1] != ':'))
			goto bad;
		colon = rb + 1 < end ? rb + 1 : NULL;
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		if (colon == host)
			goto bad;
	}
	if (colon) {
		unsigned long port = 0;

		if (colon + 1 == end)
			goto bad;
		for (const char *d = colon + 1; d < end; d++) {
			if (*d < '0' || *d > '9' ||
			    (port = port * 10 + (unsigned)(*d - '0')) > 65535)
				goto bad;
		}
		if (!port)
			goto bad;
	}
	return 0;
bad:
	return nlg_err_set(err, EINVAL,
			   "nats: bad url '%.*s' (nats://[user:pass@]host[:port], several "
			   "comma-separated)",
			   (int)len, u);
}

int nlg_nats_url_check(const char *url, struct nlg_err *err)
{
	const char *p = url;
	int rc;

	if (!*url)
		return nlg_err_set(err, EINVAL, "nats: no url");
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if ((rc = url_one(p, n, err)) < 0)
			return rc;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

int nlg_nats_creds_check(const char *path, struct nlg_err *err)
{
	char buf[16384];
	size_t n;
	int ok;
	FILE *f = fopen(path, "re");

	if (!f)
		return nlg_err_set(err, errno, "nats: creds %s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	ok = strstr(buf, "BEGIN NATS USER JWT") && strstr(buf, "BEGIN USER NKEY SEED");
	explicit_bzero(buf, sizeof(buf)); /* the seed is a secret */
	if (!ok)
		return nlg_err_set(err, EINVAL,
				   "nats: creds %s: not a NATS credentials file (no user JWT and "
				   "nkey seed)",
				   path);
	return 0;
}

size_t nlg_nats_id_prefix(char *buf, size_t cap)
{
	static atomic_uint instances;
	char host[64] = "", boot[40] = "noboot";
	FILE *f;
	int n;

	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = 0;
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "re"))) {
		if (fgets(boot, sizeof(boot), f))
			boot[strcspn(boot, "\n")] = 0;
		fclose(f);
	}
	n = snprintf(buf, cap, "%s/%s/%d.%" PRIx64 ".%u/", host, boot, (int)getpid(),
		     nlg_realtime_ns() / 1000000, atomic_fetch_add(&instances, 1));
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
