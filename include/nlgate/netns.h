/* Entering a named network namespace (/run/netns/NAME) for the time it takes
 * to open sockets there: setns moves only the calling thread, and a socket
 * keeps the namespace it was created in. */
#ifndef NLGATE_NETNS_H
#define NLGATE_NETNS_H

#include "common.h"

/* Move this thread into namespace name; *back is what nlg_netns_return
 * needs to come home. 0 or -errno with err (not found, needs CAP_SYS_ADMIN). */
int nlg_netns_enter(const char *name, int *back, struct nlg_err *err);
/* Return to the namespace *back was taken from and close it. 0 or -errno. */
int nlg_netns_return(int back, const char *name, struct nlg_err *err);

#endif
