/* Decoder benchmark: the recorded inet_diag replies (tests/fixtures/sock_*.bin,
 * kernel 6.18, tcp_info/meminfo/skmem/cong/bbr present) decoded with
 * nlg_sock_decode in a loop, in ns per record. Decoding only: no recv, no sink.
 * Usage: bench_sock_decode [rounds] (default 1,000,000). Prints figures only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <libmnl/libmnl.h>

#include "nlgate/sockdiag.h"

#define MAXMSG 256

struct corpus {
	const struct nlmsghdr *msg[MAXMSG];
	int ipproto[MAXMSG];
	unsigned int n;
	int cur_proto;
	uint8_t *bufs[4]; /* the fixtures, which msg[] points into */
	unsigned int nbufs;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int collect(const struct nlmsghdr *nlh, void *data)
{
	struct corpus *c = data;

	if (c->n < MAXMSG) {
		c->msg[c->n] = nlh;
		c->ipproto[c->n++] = c->cur_proto;
	}
	return NLG_CB_OK;
}

/* Read a fixture and index its data messages (the buffer lives in c->bufs). */
static int load(struct corpus *c, const char *dir, const char *name, int ipproto)
{
	char path[512];
	struct stat st;
	uint8_t *buf;
	size_t start = 0, off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "bench_sock_decode: %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf = malloc((size_t)st.st_size);
	if (buf && c->nbufs < 4)
		c->bufs[c->nbufs++] = buf;
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
		fprintf(stderr, "bench_sock_decode: reading %s failed\n", path);
		return -1;
	}
	close(fd);
	c->cur_proto = ipproto;
	/* one nlg_nl_parse per recorded dump, each ending at its NLMSG_DONE */
	while (off + NLMSG_HDRLEN <= (size_t)st.st_size) {
		const struct nlmsghdr *nlh = (const void *)(buf + off);
		struct nlg_nl_dump d = {.what = name};
		struct nlg_err err;

		if (!mnl_nlmsg_ok(nlh, (int)((size_t)st.st_size - off)))
			break;
		off += NLMSG_ALIGN(nlh->nlmsg_len);
		if (nlh->nlmsg_type != NLMSG_DONE)
			continue;
		if (nlg_nl_parse(&d, buf + start, off - start, collect, c, NULL, &err) < 0) {
			fprintf(stderr, "bench_sock_decode: %s: %s\n", name, err.msg);
			return -1;
		}
		start = off;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = getenv("NLGATE_SRC") ? getenv("NLGATE_SRC") : NLGATE_SRCDIR;
	unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000ul;
	struct corpus c = {.n = 0};
	struct nlg_sock rec;
	unsigned int tcp = 0, bad = 0;
	uint64_t sink = 0;
	double t0, t1;

	if (load(&c, dir, "sock_tcp4.bin", IPPROTO_TCP) < 0 ||
	    load(&c, dir, "sock_tcp6.bin", IPPROTO_TCP) < 0 ||
	    load(&c, dir, "sock_udp4.bin", IPPROTO_UDP) < 0 ||
	    load(&c, dir, "sock_udp6.bin", IPPROTO_UDP) < 0)
		return 1;
	if (c.n == 0 || rounds == 0) {
		fprintf(stderr, "bench_sock_decode: nothing to decode\n");
		return 1;
	}
	for (unsigned int i = 0; i < c.n; i++) {
		if (nlg_sock_decode(c.msg[i], c.ipproto[i], &rec) < 0)
			bad++;
		tcp += c.ipproto[i] == IPPROTO_TCP;
	}
	printf("corpus: %u records (%u tcp with tcp_info %zu bytes ours, %u udp), %u malformed\n",
	       c.n, tcp, sizeof(rec.info), c.n - tcp, bad);

	t0 = now_s();
	for (unsigned long r = 0; r < rounds; r++) {
		for (unsigned int i = 0; i < c.n; i++) {
			nlg_sock_decode(c.msg[i], c.ipproto[i], &rec);
			sink += rec.inode + rec.present;
		}
	}
	t1 = now_s();
	printf("decode: %7.1f ns/record over %lu records (%.1f ms per 100,000 sockets)\n",
	       (t1 - t0) * 1e9 / ((double)rounds * c.n), rounds * c.n,
	       (t1 - t0) * 1e3 / ((double)rounds * c.n) * 100000.0);
	while (c.nbufs)
		free(c.bufs[--c.nbufs]);
	return sink == 42 ? 2 : 0; /* keep the loop's work observable */
}
