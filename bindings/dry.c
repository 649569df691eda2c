/* A dry gateway's record: the frames its outputs were given and the handler
 * errors it logged, kept for `nlgate check` and the test harness to read.
 * Plain memory; it knows no Lua state and no loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nlgate/output.h"

int nlg_dry_frame_add(struct nlg_dry *d, const char *output, const struct nlg_item *it)
{
	struct nlg_dry_frame *f;

	if (d->nframes == d->capframes) {
		size_t cap = d->capframes ? d->capframes * 2 : 16;
		f = realloc(d->frames, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		d->frames = f;
		d->capframes = cap;
	}
	f = &d->frames[d->nframes];
	f->tag = strndup(it->tag, it->taglen);
	f->body = malloc(it->len ? it->len : 1);
	if (!f->tag || !f->body) {
		free(f->tag);
		free(f->body);
		return -ENOMEM;
	}
	memcpy(f->body, it->body, it->len);
	f->len = it->len;
	f->time_ns = it->time_ns;
	f->output = output;
	d->nframes++;
	return 0;
}

void nlg_dry_error_add(struct nlg_dry *d, const char *msg)
{
	char *m;

	if (d->nerrors == d->caperrors) {
		size_t cap = d->caperrors ? d->caperrors * 2 : 8;
		char **e = realloc(d->errors, cap * sizeof(*e));
		if (!e)
			return;
		d->errors = e;
		d->caperrors = cap;
	}
	if ((m = strdup(msg ? msg : "(no message)")))
		d->errors[d->nerrors++] = m;
}

void nlg_dry_clear(struct nlg_dry *d)
{
	for (size_t i = 0; i < d->nframes; i++) {
		free(d->frames[i].tag);
		free(d->frames[i].body);
	}
	d->nframes = 0;
}

void nlg_dry_free(struct nlg_dry *d)
{
	nlg_dry_clear(d);
	free(d->frames);
	for (size_t i = 0; i < d->nerrors; i++)
		free(d->errors[i]);
	free(d->errors);
	memset(d, 0, sizeof(*d));
}
