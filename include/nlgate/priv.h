/* Dropping privileges after the sources are open: switch to a user and keep
 * only the capabilities that sources still need (resync dumps, reloads). */
#ifndef NLGATE_PRIV_H
#define NLGATE_PRIV_H

#include <stdint.h>
#include "common.h"

/* Capability bits (1 << CAP_x) worth keeping for nlgate's sources. */
uint64_t nlg_priv_wanted(void);

/* Become user (name or numeric uid), with its primary group and no
 * supplementary groups, keeping those of `keep` capabilities the process has
 * now (permitted and effective; nothing is gained). 0 or -errno with err. */
int nlg_priv_drop(const char *user, uint64_t keep, struct nlg_err *err);

#endif
