/* libFuzzer target: arbitrary bytes as a feed stream through
 * nlg_frame_to_json, frame after frame as `nlgate tail` reads them, checking
 * the contract: a refused or incomplete frame leaves the output untouched. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "{\"tag\":";
	struct nlg_buf out;

	nlg_buf_init(&out);
	while (size) {
		int rc;
		size_t before;

		nlg_buf_reset(&out);
		if (nlg_buf_append(&out, "x", 1)) /* a byte that must survive */
			abort();
		before = out.len;
		rc = nlg_frame_to_json(data, size, &out);
		if (rc <= 0) {
			if (out.len != before || out.data[0] != 'x')
				abort();
			break;
		}
		if ((size_t)rc > size || out.len < before + sizeof(head) ||
		    memcmp(out.data + before, head, sizeof(head) - 1) ||
		    out.data[out.len - 1] != '}')
			abort();
		data += rc;
		size -= (size_t)rc;
	}
	nlg_buf_free(&out);
	return 0;
}
