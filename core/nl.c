/* nl: under construction. */
#include "nlgate/common.h"
