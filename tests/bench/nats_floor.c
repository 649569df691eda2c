/* The floor of the NATS benchmark (tests/bench/outputs_nats): libnats alone
 * publishing what nlgate publishes, as a libnats user would write it. The
 * records are read from FILE (msgpack maps, as `nlgate dump sockets
 * --msgpack` prints them) and framed once as nlgate frames them, [tag,
 * time, record]; then N messages, the frames in turn, each with a unique
 * Nats-Msg-Id as long as nlgate's, go to JetStream with js_PublishMsgAsync
 * and WINDOW acknowledgements outstanding at most (PublishAsync.MaxPending;
 * libnats's StallWait blocks the publisher while the window is full), and
 * the program waits for the last acknowledgement. Prints one line:
 *   records N seconds S cpu_ms C acked A errors E bytes_per_record B
 * (S from the first publish to the last ack; C the process's CPU over the
 * same span, libnats's threads included).
 *
 * Usage: bench_nats_floor -u URL -s SUBJECT -n N -w WINDOW -f FILE [-t TAG] */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "nlgate/common.h"
#include "nlgate/nats_name.h"
#include "nlgate/outq.h"

#ifndef NLGATE_HAVE_NATS
int main(void)
{
	fprintf(stderr, "bench_nats_floor: built without NATS support (libnats-dev)\n");
	return 77;
}
#else
#include <msgpack.h>
#include <nats/nats.h>

static atomic_uint_fast64_t acked, errors;

static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pa;
	(void)closure;
	if (pae)
		atomic_fetch_add(&errors, 1);
	else
		atomic_fetch_add(&acked, 1);
	natsMsg_Destroy(m);
}

static uint64_t cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

struct frame {
	char *p;
	size_t len;
};

/* Every map in the file, framed [tag, time, map]. */
static size_t load(const char *path, const char *tag, struct frame **out)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, off = 0, n = 0, fcap = 0;
	struct frame *fr = NULL;
	msgpack_unpacked u;

	if (!f) {
		perror(path);
		exit(1);
	}
	for (;;) {
		if (len == cap && !(buf = realloc(buf, cap = cap ? cap * 2 : 1 << 20)))
			exit(1);
		size_t r = fread(buf + len, 1, cap - len, f);
		if (!r)
			break;
		len += r;
	}
	fclose(f);
	msgpack_unpacked_init(&u);
	for (;;) {
		size_t at = off;
		uint8_t head[NLG_OUTQ_HEAD_MAX];
		int hl;

		if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
			break;
		hl = nlg_outq_mp_head(head, sizeof(head), tag, strlen(tag), nlg_realtime_ns());
		if (n == fcap && !(fr = realloc(fr, (fcap = fcap ? fcap * 2 : 1024) * sizeof(*fr))))
			exit(1);
		fr[n].len = (size_t)hl + (off - at);
		if (!(fr[n].p = malloc(fr[n].len)))
			exit(1);
		memcpy(fr[n].p, head, (size_t)hl);
		memcpy(fr[n].p + hl, buf + at, off - at);
		n++;
	}
	msgpack_unpacked_destroy(&u);
	free(buf);
	*out = fr;
	return n;
}

int main(int argc, char **argv)
{
	const char *url = "nats://127.0.0.1:4222", *subject = "bench.sock", *file = NULL;
	const char *tag = "sock";
	uint64_t n = 100000, window = 4096, bytes = 0, t0, c0, t1, c1;
	struct frame *fr;
	size_t nfr, idlen;
	char idp[224], id[256];
	natsConnection *nc = NULL;
	natsOptions *opts = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	jsPubOptions po;
	int c;

	while ((c = getopt(argc, argv, "u:s:n:w:f:t:")) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 's':
			subject = optarg;
			break;
		case 'n':
			n = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			window = strtoull(optarg, NULL, 10);
			break;
		case 'f':
			file = optarg;
			break;
		case 't':
			tag = optarg;
			break;
		default:
			fprintf(stderr, "usage: bench_nats_floor -u URL -s SUBJECT -n N -w WINDOW "
					"-f FILE [-t TAG]\n");
			return 2;
		}
	}
	if (!file) {
		fprintf(stderr, "bench_nats_floor: -f FILE (msgpack maps) is needed\n");
		return 2;
	}
	nfr = load(file, tag, &fr);
	if (!nfr) {
		fprintf(stderr, "bench_nats_floor: no records in %s\n", file);
		return 1;
	}
	idlen = nlg_nats_id_prefix(idp, sizeof(idp));
	if (natsOptions_Create(&opts) != NATS_OK || natsOptions_SetURL(opts, url) != NATS_OK ||
	    natsConnection_Connect(&nc, opts) != NATS_OK) {
		fprintf(stderr, "bench_nats_floor: cannot connect to %s: %s\n", url,
			nats_GetLastError(NULL));
		return 1;
	}
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = (int64_t)window;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.StallWait = 10000;
	if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
		return 1;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	memcpy(id, idp, idlen);
	t0 = nlg_now_ms();
	c0 = cpu_ms();
	for (uint64_t i = 0; i < n; i++) {
		const struct frame *f = &fr[i % nfr];
		natsMsg *m = NULL;
		natsStatus s;

		snprintf(id + idlen, sizeof(id) - idlen, "%" PRIu64, i + 1);
		if (natsMsg_Create(&m, subject, NULL, f->p, (int)f->len) != NATS_OK ||
		    natsMsgHeader_Set(m, "Nats-Msg-Id", id) != NATS_OK)
			return 1;
		while ((s = js_PublishMsgAsync(js, &m, &po)) == NATS_TIMEOUT)
			; /* stalled past StallWait: the window is still full */
		if (s != NATS_OK) {
			fprintf(stderr, "bench_nats_floor: publish: %s\n", natsStatus_GetText(s));
			return 1;
		}
		bytes += f->len;
	}
	po.MaxWait = 60000;
	js_PublishAsyncComplete(js, &po);
	t1 = nlg_now_ms();
	c1 = cpu_ms();
	printf("records %" PRIu64 " seconds %.3f cpu_ms %" PRIu64 " acked %" PRIu64
	       " errors %" PRIu64 " bytes_per_record %.0f\n",
	       n, (double)(t1 - t0) / 1000, c1 - c0, (uint64_t)atomic_load(&acked),
	       (uint64_t)atomic_load(&errors), (double)bytes / (double)n);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(opts);
	for (size_t i = 0; i < nfr; i++)
		free(fr[i].p);
	free(fr);
	return 0;
}
#endif
