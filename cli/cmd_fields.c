/* `nlgate fields [KIND]`: the record schema, straight from the tables that
 * drive Lua, msgpack and JSON: every registered kind, the sources' counters
 * too. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static void print_kind(const struct nlg_schema *s, int markdown)
{
	if (markdown) {
		printf("### `%s` — %s\n\n| field | type | description |\n|---|---|---|\n", s->kind,
		       s->desc);
		for (size_t i = 0; i < s->nfields; i++)
			printf("| `%s` | %s | %s |\n", s->fields[i].name,
			       nlg_ftype_name(s->fields[i].type), s->fields[i].desc);
		putchar('\n');
		return;
	}
	printf("%s: %s\n", s->kind, s->desc);
	for (size_t i = 0; i < s->nfields; i++)
		printf("  %-20s %-7s %s\n", s->fields[i].name, nlg_ftype_name(s->fields[i].type),
		       s->fields[i].desc);
}

int nlg_cmd_fields(int argc, char **argv)
{
	int markdown = 0, shown = 0;
	const char *kind = NULL;
	const struct nlg_schema *s;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			puts("usage: nlgate fields [--markdown] [KIND]\n"
			     "List the fields of each record kind (or of KIND): name, type, "
			     "meaning.");
			return 0;
		} else if (!strcmp(argv[i], "--markdown")) {
			markdown = 1;
		} else if (argv[i][0] == '-' || kind) {
			return nlg_cmd_fail("fields: unexpected argument '%s' (see --help)",
					    argv[i]);
		} else {
			kind = argv[i];
		}
	}
	for (size_t i = 0; (s = nlg_schema_at(i)); i++) {
		if (kind && strcmp(kind, s->kind))
			continue;
		print_kind(s, markdown);
		shown++;
	}
	if (!shown)
		return nlg_cmd_fail("fields: unknown record kind '%s'", kind);
	return 0;
}
