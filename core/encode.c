/* encode: under construction. */
#include "nlgate/common.h"
