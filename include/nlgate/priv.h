/* Least privilege for `nlgate run --user`: once the script has opened its
 * sources, become the user and hold exactly the capabilities those sources
 * need to keep running (nlg_script_caps), with nothing able to bring more back. */
#ifndef NLGATE_PRIV_H
#define NLGATE_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"

/* Become user (a name or a numeric uid), with its primary group and no
 * supplementary groups. Afterwards the effective, permitted and bounding
 * sets are exactly those of `keep` (bits of 1 << CAP_x) that the process
 * holds now (nothing is gained), inheritable and ambient are empty, and
 * no-new-privs is set. Capabilities belong to threads, not processes, so it
 * must run while the caller is the only thread: -EBUSY otherwise. On any
 * other failure the process is half-switched and must not go on.
 * 0 or -errno with err. */
int nlg_priv_drop(const char *user, uint64_t keep, struct nlg_err *err);

/* caps as "net_admin,sys_admin" ("none" for 0) in buf; returns buf. */
const char *nlg_priv_names(uint64_t caps, char *buf, size_t len);

#endif
