/* The record printer that dump and watch share: JSON lines by default,
 * back-to-back msgpack maps with --msgpack, written in large blocks. */
#include <errno.h>
#include <unistd.h>

#include "cmd.h"

#define PRINTER_FLUSH (256 * 1024)

void nlg_printer_init(struct nlg_printer *p, int fd, int msgpack)
{
	*p = (struct nlg_printer){.fd = fd, .msgpack = msgpack};
	nlg_buf_init(&p->buf);
	nlg_mp_init(&p->pk, &p->buf);
}

int nlg_printer_flush(struct nlg_printer *p)
{
	size_t off = 0;

	while (off < p->buf.len && !p->error) {
		ssize_t n = write(p->fd, p->buf.data + off, p->buf.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			p->error = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	nlg_buf_reset(&p->buf);
	return p->error;
}

int nlg_printer_record(struct nlg_printer *p, const struct nlg_schema *s, const void *rec)
{
	int rc;

	if (p->msgpack) {
		rc = nlg_enc_mp_record(&p->pk, s, rec);
	} else {
		rc = nlg_enc_json_record(&p->buf, s, rec);
		if (rc >= 0)
			rc = nlg_buf_append(&p->buf, "\n", 1);
	}
	if (rc < 0)
		return rc;
	p->records++;
	if (p->buf.len >= PRINTER_FLUSH)
		return nlg_printer_flush(p);
	return p->error;
}

void nlg_printer_free(struct nlg_printer *p)
{
	nlg_buf_free(&p->buf);
}
