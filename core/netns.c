/* Entering a named network namespace and coming back (include/nlgate/netns.h):
 * shared by the netlink sockets and the capture sockets. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nlgate/netns.h"

int nlg_netns_enter(const char *name, int *back, struct nlg_err *err)
{
	char path[PATH_MAX];
	int target, self, r;

	*back = -1;
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return nlg_err_set(err, EINVAL, "bad network namespace name '%s'", name);
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		r = errno;
		if (r == ENOENT)
			return nlg_err_set(err, r, "network namespace '%s' not found (no %s)", name,
					   path);
		return nlg_err_set(err, r, "opening %s: %s", path, strerror(r));
	}
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		r = errno;
		close(target);
		return nlg_err_set(err, r, "opening the current network namespace: %s",
				   strerror(r));
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		r = errno;
		close(target);
		close(self);
		if (r == EPERM)
			return nlg_err_set(
			    err, r, "entering network namespace '%s' needs CAP_SYS_ADMIN", name);
		if (r == EINVAL)
			return nlg_err_set(err, r, "%s is not a network namespace", path);
		return nlg_err_set(err, r, "entering network namespace '%s': %s", name,
				   strerror(r));
	}
	close(target);
	*back = self;
	return 0;
}

int nlg_netns_return(int back, const char *name, struct nlg_err *err)
{
	int r = 0;

	if (back < 0)
		return 0;
	if (setns(back, CLONE_NEWNET) < 0) {
		r = errno;
		nlg_err_set(err, r, "returning from network namespace '%s' to our own: %s", name,
			    strerror(r));
		r = -r;
	}
	close(back);
	return r;
}
