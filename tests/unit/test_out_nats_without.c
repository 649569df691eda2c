/* gw.nats in a build without libnats: core/out_nats.c compiled here as such
 * a build compiles it (NLGATE_HAVE_NATS undefined, its exported names
 * renamed so they do not meet the real ones in nlgcore), so the message is
 * checked whatever this build has: the same options, and an open that says
 * what to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#undef NLGATE_HAVE_NATS
#define nlg_nats_output	      nlg_nats_output_without
#define nlg_nats_stats_schema nlg_nats_stats_schema_without
#include "../../core/out_nats.c"
#undef nlg_nats_output
#undef nlg_nats_stats_schema

#include "nlgate/loop.h"

static void test_without(void **state)
{
	const struct nlg_output_ops *ops = &nlg_nats_output_without;
	const char *values[32] = {0};
	struct nlg_nats_conf conf;
	struct nlg_err err = {{0}};
	struct nlg_loop *loop = nlg_loop_create();
	void *st = (void *)1;

	(void)state;
	memset(&conf, 0, sizeof(conf));
	assert_string_equal(ops->name, "nats");
	assert_int_equal(nlg_opt_apply(ops->opts, &conf, values, NLG_CTX_SCRIPT, &err), 0);
	assert_string_equal(conf.subject, "nlgate.{tag}");
	assert_int_equal(ops->open(loop, &conf, &st, &err), -ENOTSUP);
	assert_null(st);
	assert_string_equal(err.msg, "built without NATS support: install libnats-dev and rebuild");
	nlg_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_without),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
