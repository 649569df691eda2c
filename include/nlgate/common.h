/* Shared basics: the error contract, callback verdicts, time helpers.
 * Functions return 0 (or a count) on success and a negative errno on failure;
 * a message for the user is written into a struct nlg_err where the context is known. */
#ifndef NLGATE_COMMON_H
#define NLGATE_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define NLG_ERRLEN 256

struct nlg_err {
	char msg[NLG_ERRLEN];
};

/* Fill err (if not NULL) with a formatted message and return -abs(code). */
int nlg_err_set(struct nlg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Callback verdicts, as libmnl: continue, stop cleanly, or fail. */
enum { NLG_CB_ERROR = -1, NLG_CB_STOP = 0, NLG_CB_OK = 1 };

/* One line on stderr for the user: "TIMESTAMP nlgate: message". */
void nlg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Append one line to notes[size] (a source's notes for the user: one per
 * line); a line that does not fit whole is cut, and past the end dropped. */
void nlg_note(char *notes, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nlg_vlog(const char *prefix, const char *fmt, va_list ap);

uint64_t nlg_now_ms(void);	/* CLOCK_MONOTONIC, milliseconds */
uint64_t nlg_realtime_ns(void); /* CLOCK_REALTIME, nanoseconds */

#define NLG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NLG_UNUSED(x)	  (void)(x)

#endif
