/* The switch to a user for `nlgate run --user`, through libcap-ng: the
 * bounding set is cut to the kept capabilities while CAP_SETPCAP is still
 * held, then capng_change_id switches ids and leaves only those. */
#include <cap-ng.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "nlgate/priv.h"

static struct passwd *user_find(const char *user)
{
	struct passwd *pw = getpwnam(user);
	char *end;

	if (!pw && *user) {
		unsigned long uid = strtoul(user, &end, 10);
		if (!*end)
			pw = getpwuid((uid_t)uid);
	}
	return pw;
}

/* Threads besides the caller, or -errno. */
static int threads_other(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = -1;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The capabilities libcap-ng last read or was told, in one set. */
static uint64_t caps_in(capng_type_t which)
{
	uint64_t caps = 0;

	for (unsigned c = 0; c < 64; c++)
		if (capng_have_capability(which, c) == 1)
			caps |= 1ull << c;
	return caps;
}

/* capng_change_id's negative returns, by the step that failed. */
static const char *change_id_step(int rc)
{
	switch (rc) {
	case -2:
	case -7:
		return "PR_SET_KEEPCAPS";
	case -3:
		return "capset before the switch";
	case -4:
		return "setresgid";
	case -5:
		return "setgroups";
	case -6:
		return "setresuid";
	case -9:
		return "capset after the switch";
	default:
		return "capng_change_id";
	}
}

const char *nlg_priv_names(uint64_t caps, char *buf, size_t len)
{
	size_t used = 0;

	snprintf(buf, len, "none");
	for (unsigned c = 0; c < 64 && used < len; c++) {
		const char *name;
		if (!(caps >> c & 1))
			continue;
		name = capng_capability_to_name(c);
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "",
					 name ? name : "unknown");
	}
	return buf;
}

/* "cannot drop privileges: what: strerror(errno)", errno EPERM if unset. */
static int drop_fail(struct nlg_err *err, const char *user, const char *what)
{
	int code = errno ? errno : EPERM;

	return nlg_err_set(err, code, "--user %s: cannot drop privileges: %s: %s", user, what,
			   strerror(code));
}

int nlg_priv_drop(const char *user, uint64_t keep, struct nlg_err *err)
{
	const uint64_t switching = 1ull << CAP_SETUID | 1ull << CAP_SETGID | 1ull << CAP_SETPCAP;
	struct passwd *pw = user_find(user);
	uint64_t kept;
	int rc;

	if (!pw)
		return nlg_err_set(err, ENOENT, "--user: no such user '%s'", user);
	/* capset(2) changes the calling thread only (setresuid does reach every
	 * thread, through glibc), so another thread would keep everything. */
	rc = threads_other();
	if (rc < 0) {
		errno = -rc;
		return drop_fail(err, user, "counting threads in /proc/self/task");
	}
	if (rc > 0)
		return nlg_err_set(err, EBUSY,
				   "--user %s: cannot drop privileges: %d other thread(s) running "
				   "(capabilities are per thread)",
				   user, rc);
	errno = 0;
	if (capng_get_caps_process() < 0)
		return drop_fail(err, user, "reading capabilities");
	if ((caps_in(CAPNG_EFFECTIVE) & switching) != switching)
		return nlg_err_set(err, EPERM,
				   "--user %s: cannot drop privileges: switching user needs "
				   "CAP_SETUID, CAP_SETGID and CAP_SETPCAP (start as root)",
				   user);
	kept = keep & caps_in(CAPNG_PERMITTED);

	/* First: from here on no execve can gain anything (setuid bits, file
	 * capabilities), whatever happens next. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return drop_fail(err, user, "no_new_privs");
	capng_clear(CAPNG_SELECT_BOTH);
	for (unsigned c = 0; c < 64; c++)
		if (kept >> c & 1)
			capng_update(CAPNG_ADD,
				     CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET, c);
	/* Not CAPNG_CLEAR_BOUNDING, which would empty the bounding set: it is
	 * cut to the kept set here instead, while CAP_SETPCAP is effective
	 * (capng_change_id drops that one at its end). */
	errno = 0;
	if (capng_apply(CAPNG_SELECT_BOUNDS) != 0)
		return drop_fail(err, user, "limiting the bounding set");
	errno = 0;
	rc = capng_change_id((int)pw->pw_uid, (int)pw->pw_gid, CAPNG_DROP_SUPP_GRP);
	if (rc != 0)
		return drop_fail(err, user, change_id_step(rc));

	/* What the kernel now reports, not what was asked for. */
	errno = 0;
	if (capng_get_caps_process() < 0)
		return drop_fail(err, user, "reading capabilities back");
	if (caps_in(CAPNG_EFFECTIVE) != kept || caps_in(CAPNG_PERMITTED) != kept ||
	    caps_in(CAPNG_BOUNDING_SET) != kept || caps_in(CAPNG_INHERITABLE) != 0 ||
	    getuid() != pw->pw_uid || geteuid() != pw->pw_uid)
		return nlg_err_set(err, EPERM,
				   "--user %s: cannot drop privileges: the kernel reports other "
				   "capabilities or ids than those asked for",
				   user);
	return 0;
}
