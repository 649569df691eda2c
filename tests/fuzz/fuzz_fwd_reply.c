/* libFuzzer target: arbitrary bytes as what a Forward server sends, read
 * message after message by nlg_fwd_parse_reply as the output reads them,
 * checking the contract: a verdict for every input, never more consumed than
 * given, and every field pointing inside the message it came from. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "nlgate/forward.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const void *p, size_t n, const uint8_t *m, size_t len)
{
	const uint8_t *b = p;

	if (n && (!b || b < m || b + n > m + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	while (size) {
		struct nlg_fwd_reply r;
		int rc = nlg_fwd_parse_reply(data, size, &r);

		if (rc <= 0) {
			if (rc != 0 && rc != -EPROTO)
				abort();
			break;
		}
		if ((size_t)rc > size || rc > NLG_FWD_REPLY_MAX)
			abort();
		inside(r.nonce, r.nonce_len, data, (size_t)rc);
		inside(r.auth, r.auth_len, data, (size_t)rc);
		inside(r.reason, r.reason_len, data, (size_t)rc);
		inside(r.host, r.host_len, data, (size_t)rc);
		inside(r.digest, r.digest_len, data, (size_t)rc);
		inside(r.ack, r.ack_len, data, (size_t)rc);
		if (r.kind < NLG_FWD_HELO || r.kind > NLG_FWD_ACK)
			abort();
		data += rc;
		size -= (size_t)rc;
	}
	return 0;
}
