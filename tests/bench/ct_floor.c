/* The floor for the conntrack benchmark: one ctnetlink event socket with a
 * large buffer that only counts messages by type, parsing nothing. Whatever
 * nlgate spends per event beyond this is nlgate's own cost.
 * Usage: bench_ct_floor [--rcvbuf BYTES] [--idle MS] [--groups new,update,destroy] */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int rcvbuf = 1 << 30, idle_ms = 2000, actual = 0;
	unsigned groups =
	    NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY;
	unsigned long long n_new = 0, n_upd = 0, n_del = 0, n_other = 0, enobufs = 0;
	static char buf[64 * 1024];
	double t0 = 0, t1 = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rcvbuf") && i + 1 < argc) {
			rcvbuf = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
			idle_ms = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--groups") && i + 1 < argc) {
			const char *g = argv[++i];
			groups = (strstr(g, "new") ? NF_NETLINK_CONNTRACK_NEW : 0) |
				 (strstr(g, "update") ? NF_NETLINK_CONNTRACK_UPDATE : 0) |
				 (strstr(g, "destroy") ? NF_NETLINK_CONNTRACK_DESTROY : 0);
		} else {
			fprintf(stderr, "usage: %s [--rcvbuf BYTES] [--idle MS] [--groups LIST]\n",
				argv[0]);
			return 2;
		}
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = groups};
	socklen_t sl = sizeof(actual);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("ctnetlink socket (needs CAP_NET_ADMIN)");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &actual, &sl);
	fprintf(stderr, "ct_floor: ready rcvbuf=%d\n", actual);

	while (!stop) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (n_new + n_upd + n_del) ? idle_ms : 100);
		if (r == 0 && (n_new + n_upd + n_del))
			break; /* the flood is over */
		if (r <= 0)
			continue;
		for (;;) {
			ssize_t len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (len < 0) {
				if (errno == ENOBUFS) {
					enobufs++;
					continue;
				}
				break;
			}
			if (!t0)
				t0 = now_s();
			t1 = now_s();
			for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
			     h = NLMSG_NEXT(h, len)) {
				if (NFNL_SUBSYS_ID(h->nlmsg_type) != NFNL_SUBSYS_CTNETLINK) {
					n_other++;
					continue;
				}
				if (NFNL_MSG_TYPE(h->nlmsg_type) == IPCTNL_MSG_CT_DELETE)
					n_del++;
				else if (h->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL))
					n_new++;
				else
					n_upd++;
			}
		}
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("events=%llu new=%llu update=%llu destroy=%llu enobufs=%llu cpu_s=%.3f "
	       "wall_s=%.3f rcvbuf=%d\n",
	       n_new + n_upd + n_del, n_new, n_upd, n_del, enobufs, cpu, t1 - t0, actual);
	close(fd);
	return 0;
}
