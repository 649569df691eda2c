/* Internal to the command line: the commands, and the record printer that
 * dump and watch share (JSON lines, or msgpack with --msgpack). */
#ifndef NLGATE_CMD_H
#define NLGATE_CMD_H

#include <stdio.h>
#include "nlgate/common.h"
#include "nlgate/encode.h"
#include "nlgate/schema.h"

/* Each command: argv[0] is the command word, e.g. nlg_cmd_dump(argc, argv)
 * sees argv = {"dump", "sockets", opts...}. Returns the process exit code;
 * prints its own one-line error to stderr. */
int nlg_cmd_run(int argc, char **argv);
int nlg_cmd_check(int argc, char **argv);
int nlg_cmd_dump(int argc, char **argv);
int nlg_cmd_watch(int argc, char **argv);
int nlg_cmd_capture(int argc, char **argv);
int nlg_cmd_tail(int argc, char **argv);
int nlg_cmd_fields(int argc, char **argv);

/* " sockets, conntrack": the registered sources, those with a one-shot
 * dump only if dump_only, for usage lines. */
void nlg_cmd_kinds(FILE *f, int dump_only);

/* After getopt_long returned c ('?' or, with a ':'-led optstring, ':'):
 * one line naming the bad option or the one missing its value; returns 2. */
int nlg_cmd_badopt(const char *cmd, char **argv, int c);

/* Print "nlgate: <msg>\n" to stderr; returns 1 (the exit code for errors). */
int nlg_cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Buffered record printer to a stdio-free fd (default 1). */
struct nlg_printer {
	int fd;
	int msgpack; /* 0: JSON lines, 1: msgpack maps back to back */
	struct nlg_buf buf;
	msgpack_packer pk;
	uint64_t records;
	int error; /* first write error (negative errno) */
};
void nlg_printer_init(struct nlg_printer *p, int fd, int msgpack);
/* Append one record; flushes when the buffer passes 256 KiB. */
int nlg_printer_record(struct nlg_printer *p, const struct nlg_schema *s, const void *rec);
int nlg_printer_flush(struct nlg_printer *p);
void nlg_printer_free(struct nlg_printer *p);

/* `--to URL` (cmd_to.c): one output opened from a URL, records sent to it,
 * drained at exit. */
struct nlg_loop;
struct nlg_output_ops;
struct nlg_to {
	const struct nlg_output_ops *ops;
	void *conf, *st;
	struct nlg_buf buf;
	msgpack_packer pk;
};
/* 0, or a negative errno with err "--to URL: why". */
int nlg_to_open(struct nlg_to *to, const char *url, struct nlg_loop *loop, struct nlg_err *err);
/* Encode rec (of schema s) once and hand it to the output, tagged s->kind:
 * as out:send does. Returns what ops->send returns. */
int nlg_to_send(struct nlg_to *to, const struct nlg_schema *s, const void *rec);
/* Give the output up to drain_ms to deliver (one log line for what it
 * could not), then close it. */
void nlg_to_close(struct nlg_to *to, struct nlg_loop *loop, uint64_t drain_ms);

#endif
