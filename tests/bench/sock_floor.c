/* The floor for the socket benchmark: sends the inet_diag dump request(s)
 * nlgate sends for TCP (core/sockdiag.c) and only walks the replies, decoding
 * nothing: what the kernel costs. Both families: one TCPDIAG_GETSOCK dump
 * (struct inet_diag_req v1, the kernel walks its TCP tables once for
 * AF_UNSPEC), or with -m v2 the two SOCK_DIAG_BY_FAMILY inet_diag_req_v2
 * dumps nlgate sent before (and still sends on kernels refusing the compat
 * request); one family: its v2 dump. States ESTABLISHED..CLOSING, the
 * idiag_ext bits asked.
 *
 * Usage: bench_sock_floor [-n NETNS] [-e EXTLIST] [-f 4|6|46] [-m compat|v2] [-r REPS]
 * Prints one line per repetition: "messages M bytes B recvs R ms T". */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>

#include "nlgate/nl.h" /* NLG_NL_BUFSIZE: the same receive buffer as nlgate */

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

/* ESTABLISHED..CLOSING, as nlgate's "all" (sockdiag.c SD_ST_ALL) */
#define FLOOR_STATES ((1u << (TCP_CLOSING + 1)) - (1u << TCP_ESTABLISHED))
#define EXT(a)	     (1u << ((a)-1))

struct floor_count {
	unsigned long msgs, bytes, recvs;
};

static const struct {
	const char *name;
	unsigned int bit;
} ext_names[] = {
    {"tcp_info", EXT(INET_DIAG_INFO)},
    {"info", EXT(INET_DIAG_INFO)},
    {"meminfo", EXT(INET_DIAG_MEMINFO)},
    {"skmem", EXT(INET_DIAG_SKMEMINFO)},
    {"cong", EXT(INET_DIAG_CONG)},
    {"tos", EXT(INET_DIAG_TOS)},
    {"tclass", EXT(INET_DIAG_TCLASS)},
    {"vegas", EXT(INET_DIAG_VEGASINFO)},
    {"none", 0},
};

static int parse_ext(const char *list, unsigned int *ext)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	*ext = 0;
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(ext_names) / sizeof(ext_names[0]); i++)
			if (!strcmp(w, ext_names[i].name))
				break;
		if (i == sizeof(ext_names) / sizeof(ext_names[0]))
			return -EINVAL;
		*ext |= ext_names[i].bit;
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Enter /run/netns/NAME for good: the socket is opened after this. */
static int enter_netns(const char *name)
{
	char path[4096];
	int fd, r = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* One dump: send the request, walk replies until NLMSG_DONE. family
 * AF_UNSPEC sends the compat request (both families, one walk). */
static int floor_dump(int fd, int family, unsigned int ext, unsigned int seq, unsigned char *buf,
		      struct floor_count *c)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
	    .nlh = {.nlmsg_len = sizeof(req),
		    .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		    .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		    .nlmsg_seq = seq},
	    .r = {.sdiag_family = (unsigned char)family,
		  .sdiag_protocol = IPPROTO_TCP,
		  .idiag_ext = (unsigned char)ext,
		  .idiag_states = FLOOR_STATES},
	};
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req r;
	} compat = {
	    .nlh = {.nlmsg_len = sizeof(compat),
		    .nlmsg_type = TCPDIAG_GETSOCK,
		    .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		    .nlmsg_seq = seq},
	    .r = {.idiag_family = AF_UNSPEC,
		  .idiag_ext = (unsigned char)ext,
		  .idiag_states = FLOOR_STATES},
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	const void *msg = family == AF_UNSPEC ? (const void *)&compat : (const void *)&req;
	size_t len = family == AF_UNSPEC ? sizeof(compat) : sizeof(req);

	if (sendto(fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, buf, NLG_NL_BUFSIZE, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c->recvs++;
		c->bytes += (unsigned long)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				return h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error < 0
					   ? e->error
					   : -EPROTO;
			}
			c->msgs++;
		}
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_sock_floor [-n NETNS] [-e EXTLIST] [-f 4|6|46] [-m compat|v2] "
		   "[-r REPS]\n"
		   "  -n NETNS    dump /run/netns/NETNS\n"
		   "  -e EXTLIST  idiag_ext: tcp_info,cong,meminfo,skmem,tos,tclass,vegas,none"
		   " (default tcp_info)\n"
		   "  -f FAMS     4, 6 or 46 (default 46: both families)\n"
		   "  -m MODE     with -f 46: compat (default, as nlgate: one TCPDIAG_GETSOCK\n"
		   "              dump) or v2 (SOCK_DIAG_BY_FAMILY for AF_INET, then AF_INET6)\n"
		   "  -r REPS     repetitions, one line each (default 1)\n");
}

int main(int argc, char **argv)
{
	const char *netns = NULL, *fams = "46", *mode = "compat";
	unsigned int ext = EXT(INET_DIAG_INFO), seq = (unsigned int)time(NULL);
	int reps = 1, c, fd, one = 1, rc = 0;
	unsigned char *buf;

	while ((c = getopt(argc, argv, "n:e:f:m:r:h")) != -1) {
		switch (c) {
		case 'n':
			netns = optarg;
			break;
		case 'e':
			if (parse_ext(optarg, &ext) < 0) {
				fprintf(stderr, "bench_sock_floor: unknown info '%s'\n", optarg);
				return 2;
			}
			break;
		case 'f':
			fams = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || reps < 1 ||
	    (strcmp(fams, "4") && strcmp(fams, "6") && strcmp(fams, "46")) ||
	    (strcmp(mode, "compat") && strcmp(mode, "v2"))) {
		usage(stderr);
		return 2;
	}
	if (netns && (rc = enter_netns(netns)) < 0) {
		fprintf(stderr, "bench_sock_floor: netns %s: %s\n", netns, strerror(-rc));
		return 1;
	}
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	buf = malloc(NLG_NL_BUFSIZE);
	if (fd < 0 || !buf) {
		perror("bench_sock_floor: socket");
		return 1;
	}
	/* as nlgate's nl.c sets them (they change nothing in a clean dump) */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	for (int i = 0; i < reps && rc == 0; i++) {
		struct floor_count cnt = {0};
		double t0 = now_ms();

		if (!strcmp(fams, "46") && !strcmp(mode, "compat")) {
			rc = floor_dump(fd, AF_UNSPEC, ext, ++seq, buf, &cnt);
		} else {
			if (strchr(fams, '4'))
				rc = floor_dump(fd, AF_INET, ext, ++seq, buf, &cnt);
			if (rc == 0 && strchr(fams, '6'))
				rc = floor_dump(fd, AF_INET6, ext, ++seq, buf, &cnt);
		}
		if (rc == 0)
			printf("messages %lu bytes %lu recvs %lu ms %.3f\n", cnt.msgs, cnt.bytes,
			       cnt.recvs, now_ms() - t0);
	}
	if (rc < 0)
		fprintf(stderr, "bench_sock_floor: dump failed: %s\n", strerror(-rc));
	free(buf);
	close(fd);
	return rc < 0 ? 1 : 0;
}
