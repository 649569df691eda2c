/* conntrack: under construction. */
#include "nlgate/conntrack.h"
