/* libFuzzer target: arbitrary bytes as one ctnetlink message (its length
 * taken from the input, as the receive path checks it) through nlg_ct_parse,
 * which runs the fast decoder and hands what it declines to the reference
 * (libnetfilter_conntrack). An exit() is a crash: libFuzzer reports it. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>

#include "nlgate/conntrack.h"

static struct nlg_ct_parser *parser;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	parser = nlg_ct_parser_new(); /* reused, as the source reuses it */
	if (!parser)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nlg_ct out, fast, ref;
	struct nlg_err err = {{0}};
	struct nlmsghdr *nlh;
	int r, rf;

	if (size < NLMSG_HDRLEN || size > UINT16_MAX)
		return 0;
	/* a copy of exactly the message: a read past its end is ASan's to see */
	nlh = malloc(size);
	if (!nlh)
		return 0;
	memcpy(nlh, data, size);
	nlh->nlmsg_len = (uint32_t)size;
	memset(&out, 0, sizeof(out));
	r = nlg_ct_parse(parser, nlh, &out, &err);
	/* the fast decoder's verdict holds against the reference: what it refuses
	 * nlg_ct_parse refuses, what it decodes the reference decodes alike */
	memset(&fast, 0, sizeof(fast));
	rf = nlg_ct_decode(nlh, &fast);
	if (rf < 0 && r != -EPROTO)
		abort();
	if (rf == 0) {
		memset(&ref, 0, sizeof(ref));
		if (r != 0 || memcmp(&out, &fast, sizeof(out)) ||
		    nlg_ct_parse_nfct(parser, nlh, &ref, NULL) != 0 ||
		    memcmp(&ref, &fast, sizeof(ref)))
			abort();
	}
	free(nlh);
	return 0;
}
