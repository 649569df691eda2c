/* sockdiag: under construction. */
#include "nlgate/common.h"
