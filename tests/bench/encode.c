/* Encoder benchmark: a realistic TCP sock record (tcp_info, meminfo, skmem,
 * cong present) encoded as msgpack frames and as JSON, in ns of the thread's
 * CPU time per record (so a shared machine's other work counts less).
 * Usage: bench_encode [records] (default 1,000,000). Prints figures only. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "nlgate/encode.h"
#include "nlgate/record.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An established connection with the numbers a busy host shows in `ss -tim`. */
static void fill(struct nlg_sock *s, unsigned i, int v6)
{
	memset(s, 0, sizeof(*s));
	s->present = NLG_SOCK_HAS_INFO | NLG_SOCK_HAS_MEMINFO | NLG_SOCK_HAS_SKMEM |
		     NLG_SOCK_HAS_CONG | NLG_SOCK_HAS_TOS | NLG_SOCK_HAS_SHUTDOWN |
		     NLG_SOCK_HAS_CGROUP;
	s->family = v6 ? AF_INET6 : AF_INET;
	s->proto = NLG_SOCK_TCP;
	s->state = 1;
	s->timer = 1;
	s->sport = 443;
	s->dport = (uint16_t)(30000 + i % 30000);
	s->src.family = s->dst.family = s->family;
	if (v6) {
		inet_pton(AF_INET6, "2001:db8::10", s->src.bytes);
		inet_pton(AF_INET6, "2001:db8:0:1::2:3", s->dst.bytes);
	} else {
		inet_pton(AF_INET, "10.1.2.3", s->src.bytes);
		inet_pton(AF_INET, "192.168.100.201", s->dst.bytes);
		s->dst.bytes[3] = (uint8_t)i;
	}
	s->uid = 33;
	s->inode = 1234567 + i;
	s->cookie = 0x1234567890ull + i;
	s->cgroup_id = 7890;
	s->rqueue = 0;
	s->wqueue = 1448 * (i % 7);
	s->expires_ms = 203;
	s->snd_wscale = 7;
	s->rcv_wscale = 7;
	s->info.tcpi_state = 1;
	s->info.tcpi_options = 7;
	s->info.tcpi_rto = 204000;
	s->info.tcpi_ato = 40000;
	s->info.tcpi_snd_mss = 1448;
	s->info.tcpi_rcv_mss = 1448;
	s->info.tcpi_unacked = i % 11;
	s->info.tcpi_last_data_sent = 12;
	s->info.tcpi_last_data_recv = 120;
	s->info.tcpi_last_ack_recv = 12;
	s->info.tcpi_pmtu = 1500;
	s->info.tcpi_rcv_ssthresh = 64088;
	s->info.tcpi_rtt = 1873 + i % 100;
	s->info.tcpi_rttvar = 422;
	s->info.tcpi_snd_ssthresh = 2147483647;
	s->info.tcpi_snd_cwnd = 10 + i % 40;
	s->info.tcpi_advmss = 1448;
	s->info.tcpi_reordering = 3;
	s->info.tcpi_rcv_rtt = 2000;
	s->info.tcpi_rcv_space = 14480;
	s->info.tcpi_total_retrans = i % 3;
	s->info.tcpi_pacing_rate = 15462340;
	s->info.tcpi_max_pacing_rate = UINT64_MAX;
	s->info.tcpi_bytes_acked = 123456789ull + i;
	s->info.tcpi_bytes_received = 98765ull * i;
	s->info.tcpi_segs_out = 84532;
	s->info.tcpi_segs_in = 60231;
	s->info.tcpi_min_rtt = 1002;
	s->info.tcpi_data_segs_in = 4021;
	s->info.tcpi_data_segs_out = 80012;
	s->info.tcpi_delivery_rate = 7731000;
	s->info.tcpi_busy_time = 5123000;
	s->info.tcpi_delivered = 80010;
	s->info.tcpi_bytes_sent = 123999999ull;
	s->info.tcpi_bytes_retrans = 2896;
	s->info.tcpi_snd_wnd = 501760;
	s->mem_rmem = 0;
	s->mem_wmem = 2304;
	s->mem_fmem = 1792;
	s->mem_tmem = 0;
	for (int k = 0; k < NLG_SKMEM_VARS; k++)
		s->skmem[k] = (uint32_t)(k * 4096);
	strcpy(s->cong, "cubic");
}

static size_t count_present(const struct nlg_schema *sc, const void *rec)
{
	size_t n = 0;

	for (size_t i = 0; i < sc->nfields; i++)
		n += nlg_field_present(sc, &sc->fields[i], rec);
	return n;
}

int main(int argc, char **argv)
{
	enum { NREC = 256 };
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000ul;
	static struct nlg_sock recs[NREC];
	const struct nlg_schema *sc;
	struct nlg_buf b;
	msgpack_packer pk;
	size_t bytes = 0;
	double t0, t1;

	nlg_schema_init();
	sc = nlg_schema_find("sock");
	for (unsigned i = 0; i < NREC; i++)
		fill(&recs[i], i, i % 4 == 0); /* a quarter IPv6 */
	nlg_buf_init(&b);
	nlg_mp_init(&pk, &b);
	printf("sock record: %zu of %zu fields present\n", count_present(sc, &recs[0]),
	       sc->nfields);

	for (int pass = 0; pass < 2; pass++) { /* pass 0 warms caches and the buffer */
		t0 = now_s();
		bytes = 0;
		for (unsigned long i = 0; i < n; i++) {
			nlg_buf_reset(&b);
			if (nlg_enc_mp_frame(&pk, "sock", 4, 1700000000123456789ull, sc,
					     &recs[i % NREC]))
				return 1;
			bytes += b.len;
		}
		t1 = now_s();
	}
	printf("msgpack frame: %7.1f ns/record, %5.0f bytes/record\n", (t1 - t0) * 1e9 / (double)n,
	       (double)bytes / (double)n);

	for (int pass = 0; pass < 2; pass++) {
		t0 = now_s();
		bytes = 0;
		for (unsigned long i = 0; i < n; i++) {
			nlg_buf_reset(&b);
			if (nlg_enc_json_record(&b, sc, &recs[i % NREC]))
				return 1;
			bytes += b.len;
		}
		t1 = now_s();
	}
	printf("json record:   %7.1f ns/record, %5.0f bytes/record\n", (t1 - t0) * 1e9 / (double)n,
	       (double)bytes / (double)n);

	/* The tail path: frame → JSON line. */
	{
		struct nlg_buf fr, out;
		unsigned long m = n / 4 ? n / 4 : 1;
		nlg_buf_init(&fr);
		nlg_buf_init(&out);
		nlg_mp_init(&pk, &fr);
		if (nlg_enc_mp_frame(&pk, "sock", 4, 1700000000123456789ull, sc, &recs[1]))
			return 1;
		t0 = now_s();
		for (unsigned long i = 0; i < m; i++) {
			nlg_buf_reset(&out);
			if (nlg_frame_to_json(fr.data, fr.len, &out) != (int)fr.len)
				return 1;
		}
		t1 = now_s();
		printf("frame_to_json: %7.1f ns/record\n", (t1 - t0) * 1e9 / (double)m);
		nlg_buf_free(&fr);
		nlg_buf_free(&out);
	}
	nlg_buf_free(&b);
	return 0;
}
