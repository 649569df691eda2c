/* Writes the seed corpus of fuzz_frame_json (tests/fuzz/corpus/frame/):
 * frames the encoder makes from the recorded inet_diag fixtures, and one
 * hand-packed frame holding every msgpack type the JSON writer handles.
 *   fuzz_gen_frames OUTDIR tests/fixtures/sock_tcp4.bin ... */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/encode.h"
#include "nlgate/nl.h"
#include "nlgate/record.h"
#include "nlgate/schema.h"
#include "nlgate/sockdiag.h"

struct gen {
	struct nlg_buf all; /* every record of one fixture, back to back */
	msgpack_packer pk;
	int ipproto;
	unsigned n;
};

static int on_msg(const struct nlmsghdr *nlh, void *data)
{
	struct gen *g = data;
	struct nlg_sock rec;

	if (nlg_sock_decode(nlh, g->ipproto, &rec))
		return NLG_CB_OK;
	if (nlg_enc_mp_frame(&g->pk, "sock", 4, 1700000000123456789ull + g->n, &nlg_sock_schema,
			     &rec))
		return NLG_CB_ERROR;
	g->n++;
	return NLG_CB_OK;
}

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -errno;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

static int read_file(const char *path, struct nlg_buf *b)
{
	FILE *f = fopen(path, "rb");
	uint8_t chunk[4096];
	size_t n;

	if (!f)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (nlg_buf_append(b, chunk, n))
			break;
	fclose(f);
	return 0;
}

/* One frame whose record holds each msgpack type once. */
static void pack_types(msgpack_packer *pk)
{
	msgpack_timestamp ts96 = {.tv_sec = -1, .tv_nsec = 250000000};

	nlg_enc_mp_frame_head(pk, "types", 5, 1);
	msgpack_pack_map(pk, 11);
	msgpack_pack_str_with_body(pk, "nil", 3), msgpack_pack_nil(pk);
	msgpack_pack_str_with_body(pk, "t", 1), msgpack_pack_true(pk);
	msgpack_pack_str_with_body(pk, "neg", 3), msgpack_pack_int64(pk, -1234567890123ll);
	msgpack_pack_str_with_body(pk, "f32", 3), msgpack_pack_float(pk, 0.1f);
	msgpack_pack_str_with_body(pk, "f64", 3), msgpack_pack_double(pk, 1e300);
	msgpack_pack_str_with_body(pk, "bin", 3), msgpack_pack_bin_with_body(pk, "\0\1\2\3\4", 5);
	msgpack_pack_str_with_body(pk, "ext", 3), msgpack_pack_ext_with_body(pk, "ab", 2, 7);
	msgpack_pack_str_with_body(pk, "ts", 2), msgpack_pack_timestamp(pk, &ts96);
	msgpack_pack_str_with_body(pk, "arr", 3);
	msgpack_pack_array(pk, 2), msgpack_pack_array(pk, 0), msgpack_pack_map(pk, 0);
	msgpack_pack_uint8(pk, 42), msgpack_pack_str_with_body(pk, "int key", 7);
	msgpack_pack_str_with_body(pk, "esc", 3), msgpack_pack_str_with_body(pk, "\"\\\n\x01", 4);
}

int main(int argc, char **argv)
{
	struct nlg_buf b;
	struct gen g;

	if (argc < 2) {
		fprintf(stderr, "usage: %s OUTDIR [sock_PROTO*.bin ...]\n", argv[0]);
		return 2;
	}
	nlg_schema_init();
	nlg_buf_init(&b);
	nlg_buf_init(&g.all);
	nlg_mp_init(&g.pk, &g.all);
	for (int i = 2; i < argc; i++) {
		struct nlg_nl_dump d = {.what = "fixture"};
		struct nlg_err err = {{0}};
		const char *base = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
		char name[256];

		nlg_buf_reset(&b);
		nlg_buf_reset(&g.all);
		g.n = 0;
		g.ipproto = strstr(base, "udp") ? IPPROTO_UDP : IPPROTO_TCP;
		if (read_file(argv[i], &b) ||
		    nlg_nl_parse(&d, b.data, b.len, on_msg, &g, NULL, &err) < 0) {
			fprintf(stderr, "%s: cannot read or parse %s\n", argv[0], argv[i]);
			return 1;
		}
		snprintf(name, sizeof(name), "%.*s.frames", (int)strcspn(base, "."), base);
		if (write_file(argv[1], name, g.all.data, g.all.len))
			return 1;
	}
	nlg_buf_reset(&g.all);
	pack_types(&g.pk);
	if (write_file(argv[1], "types.frame", g.all.data, g.all.len))
		return 1;
	nlg_buf_free(&b);
	nlg_buf_free(&g.all);
	return 0;
}
