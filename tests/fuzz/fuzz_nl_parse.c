/* libFuzzer target: arbitrary bytes as one netlink receive buffer through
 * nlg_nl_parse; every message is decoded as an inet_diag TCP reply and, when
 * it decodes, encoded as msgpack and as JSON, as the sockets source would,
 * and as msgpack again through msgpack-c's packer, which must agree. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/encode.h"
#include "nlgate/nl.h"
#include "nlgate/record.h"
#include "nlgate/schema.h"
#include "nlgate/sockdiag.h"

struct fz_ctx {
	struct nlg_buf mp, json, ref;
	msgpack_packer pk, ref_pk;
};

/* A packer nlg_enc_mp_record does not know: it takes msgpack-c's path, the
 * reference for the direct one. */
static int ref_write(void *data, const char *p, size_t n)
{
	return nlg_buf_append(data, p, n) ? -1 : 0;
}

static int on_msg(const struct nlmsghdr *nlh, void *data)
{
	struct fz_ctx *c = data;
	struct nlg_sock rec;

	if (nlg_sock_decode(nlh, IPPROTO_TCP, &rec))
		return NLG_CB_OK;
	nlg_buf_reset(&c->mp);
	nlg_buf_reset(&c->json);
	nlg_buf_reset(&c->ref);
	/* -ENOMEM is the only failure: with small records it means a bug. */
	if (nlg_enc_mp_record(&c->pk, &nlg_sock_schema, &rec) ||
	    nlg_enc_json_record(&c->json, &nlg_sock_schema, &rec) ||
	    nlg_enc_mp_record(&c->ref_pk, &nlg_sock_schema, &rec))
		abort();
	if (c->mp.len != c->ref.len || memcmp(c->mp.data, c->ref.data, c->mp.len))
		abort();
	return NLG_CB_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	nlg_schema_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nlg_nl_dump d = {.what = "fuzz"};
	struct nlg_err err = {{0}};
	struct fz_ctx c;

	nlg_buf_init(&c.mp);
	nlg_buf_init(&c.json);
	nlg_buf_init(&c.ref);
	nlg_mp_init(&c.pk, &c.mp);
	msgpack_packer_init(&c.ref_pk, &c.ref, ref_write);
	(void)nlg_nl_parse(&d, data, size, on_msg, &c, NULL, &err);
	nlg_buf_free(&c.mp);
	nlg_buf_free(&c.json);
	nlg_buf_free(&c.ref);
	return 0;
}
