/* The output registry: the built-in outputs, one line each, and any an
 * embedder or a test registers. The Lua binding offers gw.NAME for each. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "nlgate/output.h"

extern const struct nlg_output_ops nlg_unix_output;

static const struct nlg_output_ops *const builtin[] = {
    &nlg_unix_output,
};

#define NLG_OUTPUT_EXTRA 16
static const struct nlg_output_ops *extra[NLG_OUTPUT_EXTRA];
static size_t nextra;

static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_init(void)
{
	for (size_t i = 0; i < NLG_ARRAY_SIZE(builtin); i++)
		if (builtin[i]->stats_schema)
			nlg_schema_register((struct nlg_schema *)builtin[i]->stats_schema);
}

const struct nlg_output_ops *nlg_output_at(size_t i)
{
	pthread_once(&builtin_once, builtin_init);
	if (i < NLG_ARRAY_SIZE(builtin))
		return builtin[i];
	i -= NLG_ARRAY_SIZE(builtin);
	return i < nextra ? extra[i] : NULL;
}

const struct nlg_output_ops *nlg_output_find(const char *name)
{
	const struct nlg_output_ops *ops;

	for (size_t i = 0; (ops = nlg_output_at(i)); i++)
		if (!strcmp(ops->name, name))
			return ops;
	return NULL;
}

int nlg_output_register(const struct nlg_output_ops *ops)
{
	int rc;

	if (nlg_output_find(ops->name))
		return -EEXIST;
	if (nextra == NLG_OUTPUT_EXTRA)
		return -ENOSPC;
	if (ops->stats_schema &&
	    (rc = nlg_schema_register((struct nlg_schema *)ops->stats_schema)) < 0)
		return rc;
	extra[nextra++] = ops;
	return 0;
}
