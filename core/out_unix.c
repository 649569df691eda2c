/* out_unix: under construction. */
#include "nlgate/common.h"
