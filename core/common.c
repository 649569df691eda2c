/* The error contract and small helpers every module shares:
 * error messages, logging and clocks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nlgate/common.h"

int nlg_err_set(struct nlg_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code > 0 ? -code : (code ? code : -EINVAL);
}

void nlg_vlog(const char *prefix, const char *fmt, va_list ap)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;

	/* Locked, so lines from two threads never interleave. */
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
	flockfile(stderr);
	fprintf(stderr, "%s nlgate: %s", ts, prefix ? prefix : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void nlg_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nlg_vlog(NULL, fmt, ap);
	va_end(ap);
}

uint64_t nlg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t nlg_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void nlg_note(char *notes, size_t size, const char *fmt, ...)
{
	size_t len = strlen(notes);
	va_list ap;

	if (len + 2 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(notes + len, size - len - 1, fmt, ap);
	va_end(ap);
	len = strlen(notes);
	notes[len] = '\n';
	notes[len + 1] = 0;
}
