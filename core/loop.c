/* loop: under construction. */
#include "nlgate/common.h"
