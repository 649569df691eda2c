/* Privilege drop for `nlgate run --user`: setgroups/setgid/setuid with
 * PR_SET_KEEPCAPS, then capset to the kept set. Raw capset(2), so no libcap. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nlgate/priv.h"

uint64_t nlg_priv_wanted(void)
{
	/* NET_ADMIN: conntrack and SO_RCVBUFFORCE; NET_RAW: packet sockets;
	 * SYS_ADMIN: entering a named network namespace on reload. */
	return 1ull << CAP_NET_ADMIN | 1ull << CAP_NET_RAW | 1ull << CAP_SYS_ADMIN;
}

static int caps_get(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	return syscall(SYS_capget, &h, d) < 0 ? -errno : 0;
}

static int caps_set(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int nlg_priv_drop(const char *user, uint64_t keep, struct nlg_err *err)
{
	struct __user_cap_data_struct d[2];
	struct passwd *pw;
	uint64_t have, kept;
	int rc;

	pw = getpwnam(user);
	if (!pw) {
		char *end;
		unsigned long uid = strtoul(user, &end, 10);
		if (*user && !*end)
			pw = getpwuid((uid_t)uid);
	}
	if (!pw)
		return nlg_err_set(err, ENOENT, "--user: no such user '%s'", user);
	if ((rc = caps_get(d)) < 0)
		return nlg_err_set(err, rc, "--user: capget: %s", strerror(-rc));
	have = (uint64_t)d[1].permitted << 32 | d[0].permitted;
	kept = have & keep;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return nlg_err_set(err, errno,
				   "--user %s: %s (switching user needs CAP_SETUID and CAP_SETGID)",
				   user, strerror(errno));
	memset(d, 0, sizeof(struct __user_cap_data_struct) * 2);
	d[0].permitted = d[0].effective = (uint32_t)kept;
	d[1].permitted = d[1].effective = (uint32_t)(kept >> 32);
	if ((rc = caps_set(d)) < 0)
		return nlg_err_set(err, rc, "--user %s: capset: %s", user, strerror(-rc));
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	return 0;
}
