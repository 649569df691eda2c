/* A bounded per-consumer output queue: a byte ring that holds only whole
 * frames after what the fd already took, whole-frame drops counted and
 * announced by a gap frame (with the next frame, or alone as soon as it
 * fits), and writes of what the fd takes, never more. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nlgate/common.h"
#include "nlgate/encode.h"
#include "nlgate/outq.h"

/* Sizes chosen, not measured: the first allocation is one batch write of the
 * feed (64 KiB), and an idle ring above 256 KiB is given back so a burst
 * does not pin its peak for every client for the process's life. */
#define OUTQ_MIN_CAP  (64u << 10)
#define OUTQ_KEEP_CAP (256u << 10)
#define OUTQ_FL_MIN   64u   /* first frame-length ring, in entries */
#define OUTQ_FL_KEEP  4096u /* an empty frame-length ring bigger than this is freed */

/* The byte ring over buf[cap]: `len` bytes from `head`, wrapping. Only whole
 * frames, except that the oldest may have lost its front to the fd already.
 *
 *   not wrapped  |....|==============|......|   one piece: [head, tail)
 *                0    head           tail   cap
 *   wrapped      |=====|.........|==========|   two pieces: [head, cap) + [0, tail)
 *                0     tail      head       cap
 *
 * (tail = (head + len) % cap.) An empty ring starts over at 0; pieces go
 * out with one sendmsg, so a wrapped ring costs no extra system call.
 *
 * With max_frames, fl[] is a second ring of entry lengths (a gap frame and
 * the frame it precedes are one entry), and fdone the bytes of the oldest
 * entry already written. */
struct nlg_outq {
	uint8_t *buf;
	size_t head, len, cap;
	size_t max_bytes, max_frames;
	size_t *fl;
	size_t fhead, fn, fcap, fdone;
	uint64_t missed;
	nlg_outq_gap_fn *gap;
	void *gap_data;
	struct nlg_outq_stats st;
	struct nlg_outq_stats *total;
};

struct nlg_outq *nlg_outq_create(const struct nlg_outq_conf *conf)
{
	struct nlg_outq *q;

	if (!conf->max_bytes)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->max_bytes = conf->max_bytes;
	q->max_frames = conf->max_frames;
	q->gap = conf->gap ? conf->gap : nlg_outq_gap_mp;
	q->gap_data = conf->gap_data;
	q->total = conf->total;
	return q;
}

#define COUNT(q, field, n)                                                                         \
	do {                                                                                       \
		(q)->st.field += (n);                                                              \
		if ((q)->total)                                                                    \
			(q)->total->field += (n);                                                  \
	} while (0)

void nlg_outq_destroy(struct nlg_outq *q)
{
	if (!q)
		return;
	COUNT(q, unannounced, q->missed);
	free(q->buf);
	free(q->fl);
	free(q);
}

size_t nlg_outq_len(const struct nlg_outq *q)
{
	return q->len;
}

size_t nlg_outq_cap(const struct nlg_outq *q)
{
	return q->cap;
}

size_t nlg_outq_frames(const struct nlg_outq *q)
{
	return q->fn;
}

uint64_t nlg_outq_missed(const struct nlg_outq *q)
{
	return q->missed;
}

const struct nlg_outq_stats *nlg_outq_stats(const struct nlg_outq *q)
{
	return &q->st;
}

/* x % cap for x < 2 * cap, which every ring index sum here is (an index
 * below cap plus a length at most cap): a division per frame, several
 * times, was a visible part of queuing a small frame. */
static inline size_t wrap(size_t x, size_t cap)
{
	return x >= cap ? x - cap : x;
}

/* Room for n more bytes (the caller checked the bound), linearising the old
 * ring into a bigger buffer. */
static int reserve_bytes(struct nlg_outq *q, size_t n)
{
	size_t need = q->len + n, cap, first;
	uint8_t *b;

	if (need <= q->cap)
		return 0;
	cap = q->cap ? q->cap * 2 : OUTQ_MIN_CAP;
	while (cap < need)
		cap *= 2;
	if (cap > q->max_bytes)
		cap = q->max_bytes;
	b = malloc(cap);
	if (!b)
		return -ENOMEM;
	first = q->cap - q->head < q->len ? q->cap - q->head : q->len;
	if (q->len) {
		memcpy(b, q->buf + q->head, first);
		memcpy(b + first, q->buf, q->len - first);
	}
	free(q->buf);
	q->buf = b;
	q->cap = cap;
	q->head = 0;
	return 0;
}

/* Room for one more entry in fl[] (max_frames only). */
static int reserve_frame(struct nlg_outq *q)
{
	size_t cap, *fl;

	if (q->fn < q->fcap)
		return 0;
	cap = q->fcap ? q->fcap * 2 : OUTQ_FL_MIN;
	if (cap > q->max_frames)
		cap = q->max_frames;
	fl = malloc(cap * sizeof(*fl));
	if (!fl)
		return -ENOMEM;
	for (size_t i = 0; i < q->fn; i++)
		fl[i] = q->fl[wrap(q->fhead + i, q->fcap)];
	free(q->fl);
	q->fl = fl;
	q->fcap = cap;
	q->fhead = 0;
	return 0;
}

static void put(struct nlg_outq *q, const void *p, size_t n)
{
	size_t tail = wrap(q->head + q->len, q->cap);
	size_t first = q->cap - tail < n ? q->cap - tail : n;

	memcpy(q->buf + tail, p, first);
	memcpy(q->buf, (const uint8_t *)p + first, n - first);
	q->len += n;
}

/* Frame the pending announcement into gap[NLG_OUTQ_GAP_MAX]: its length,
 * 0 when nothing was missed, -1 when the framer fails. */
static int frame_gap(struct nlg_outq *q, uint8_t *gap)
{
	int g;

	if (!q->missed)
		return 0;
	g = q->gap(q->gap_data, q->missed, gap, NLG_OUTQ_GAP_MAX);
	return g < 0 || g > NLG_OUTQ_GAP_MAX ? -1 : g;
}

/* Queue [gap frame] + frame pieces as one entry; the caller checked the
 * bounds. */
static int enqueue(struct nlg_outq *q, const uint8_t *gap, size_t glen, const struct iovec *iov,
		   int n, size_t len)
{
	if (reserve_bytes(q, glen + len) < 0 || (q->max_frames && reserve_frame(q) < 0))
		return -ENOMEM;
	if (glen)
		put(q, gap, glen);
	for (int i = 0; i < n; i++)
		if (iov[i].iov_len)
			put(q, iov[i].iov_base, iov[i].iov_len);
	if (q->max_frames)
		q->fl[wrap(q->fhead + q->fn++, q->fcap)] = glen + len;
	if (glen) {
		COUNT(q, gaps, 1);
		q->missed = 0;
	}
	COUNT(q, bytes, glen + len);
	return 0;
}

int nlg_outq_push(struct nlg_outq *q, const struct iovec *iov, int n)
{
	uint8_t gap[NLG_OUTQ_GAP_MAX];
	size_t len = 0, glen;
	int g;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (!len)
		return -EINVAL;
	/* Under a flood most pushes are drops: decide those before the gap
	 * framer (and its clock read) runs. */
	if (len > q->max_bytes || q->len > q->max_bytes - len)
		goto drop;
	if (q->max_frames && q->fn >= q->max_frames)
		goto drop;
	if ((g = frame_gap(q, gap)) < 0)
		goto drop;
	glen = (size_t)g;
	/* Written so that no sum can wrap, whatever len is. */
	if (glen > q->max_bytes - len || q->len > q->max_bytes - len - glen)
		goto drop;
	if (enqueue(q, gap, glen, iov, n, len) < 0)
		return -ENOMEM;
	COUNT(q, frames, 1);
	return 1;
drop:
	q->missed++;
	COUNT(q, dropped, 1);
	return 0;
}

int nlg_outq_announce(struct nlg_outq *q)
{
	uint8_t gap[NLG_OUTQ_GAP_MAX];
	int g;

	/* No clock read while the queue is plainly full. */
	if (!q->missed || q->len >= q->max_bytes || (q->max_frames && q->fn >= q->max_frames))
		return 0;
	/* A failing framer keeps the count for the next frame, as push does. */
	if ((g = frame_gap(q, gap)) <= 0 || (size_t)g > q->max_bytes - q->len)
		return 0;
	return enqueue(q, gap, (size_t)g, NULL, 0, 0) < 0 ? -ENOMEM : 1;
}

/* n bytes left through the fd. */
static void consume(struct nlg_outq *q, size_t n)
{
	q->len -= n;
	q->head = q->len ? wrap(q->head + n, q->cap) : 0;
	COUNT(q, written, n);
	if (q->max_frames) {
		q->fdone += n;
		while (q->fn && q->fdone >= q->fl[q->fhead]) {
			COUNT(q, sent, 1);
			q->fdone -= q->fl[q->fhead];
			q->fhead = wrap(q->fhead + 1, q->fcap);
			q->fn--;
		}
		if (!q->fn)
			q->fhead = q->fdone = 0;
	}
	if (q->len)
		return;
	/* A burst is over: give its memory back. */
	if (q->cap > OUTQ_KEEP_CAP) {
		free(q->buf);
		q->buf = NULL;
		q->cap = 0;
	}
	if (q->fcap > OUTQ_FL_KEEP) {
		free(q->fl);
		q->fl = NULL;
		q->fcap = 0;
	}
}

int nlg_outq_cut(struct nlg_outq *q)
{
	if (!q->max_frames)
		return -EINVAL;
	if (!q->fn || !q->fdone)
		return 0;
	size_t rest = q->fl[q->fhead] - q->fdone;

	consume(q, rest); /* counts them written and the entry sent: they were not */
	q->st.written -= rest;
	q->st.sent--;
	if (q->total) {
		q->total->written -= rest;
		q->total->sent--;
	}
	COUNT(q, dropped, 1);
	return 1;
}

int nlg_outq_write(struct nlg_outq *q, int fd)
{
	while (q->len) {
		size_t first = q->cap - q->head < q->len ? q->cap - q->head : q->len;
		struct iovec iov[2] = {
		    {.iov_base = q->buf + q->head, .iov_len = first},
		    {.iov_base = q->buf, .iov_len = q->len - first},
		};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = q->len > first ? 2 : 1};
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno; /* EPIPE, ECONNRESET, ... */
		}
		if (w == 0)
			break;
		consume(q, (size_t)w);
	}
	return q->len != 0;
}

/* ---- msgpack framing into a fixed buffer ---- */

struct fixbuf {
	uint8_t *p;
	size_t len, cap;
};

static int fixbuf_write(void *data, const char *p, size_t n)
{
	struct fixbuf *b = data;

	if (n > b->cap - b->len)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* Per frame: written directly, not item by item through a packer. */
int nlg_outq_mp_head(uint8_t *buf, size_t cap, const char *tag, size_t taglen, uint64_t time_ns)
{
	return nlg_enc_mp_head(buf, cap, tag, taglen, time_ns);
}

int nlg_outq_gap_mp(void *data, uint64_t missed, uint8_t *buf, size_t cap)
{
	struct fixbuf b = {.p = buf, .cap = cap};
	msgpack_packer pk;
	int rc;

	(void)data;
	msgpack_packer_init(&pk, &b, fixbuf_write);
	rc = nlg_enc_mp_frame_head(&pk, "nlgate.gap", 10, nlg_realtime_ns());
	rc |= msgpack_pack_map(&pk, 1);
	rc |= msgpack_pack_str_with_body(&pk, "missed", 6);
	rc |= msgpack_pack_uint64(&pk, missed);
	return rc ? -ENOSPC : (int)b.len;
}
