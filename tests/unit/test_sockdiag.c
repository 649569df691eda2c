/* sockdiag: the decoder on crafted replies, the state/info parsers, request
 * building (v2 and the TCPDIAG_GETSOCK compat dump, its fallback) and the
 * poll state machine through the nl replay seam, recorded fixtures, and live
 * dumps of sockets this process opens on 127.0.0.1 and ::1. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sock_diag.h>
#include <libmnl/libmnl.h>
#include <cmocka.h>

#include "fixture.h"
#include "nlgate/sockdiag.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define EXT(a) (1u << ((a)-1))

/* ---- crafting replies ---------------------------------------------------- */

struct msgbuf {
	union {
		struct nlmsghdr h;
		uint8_t b[8192];
	} u;
};

/* A reply with a fixed, recognisable inet_diag_msg and no attributes. */
static struct nlmsghdr *mk_msg(struct msgbuf *mb, uint8_t family)
{
	struct nlmsghdr *nlh;
	struct inet_diag_msg *m;

	memset(mb, 0, sizeof(*mb));
	nlh = mnl_nlmsg_put_header(mb->u.b);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_MULTI;
	m = mnl_nlmsg_put_extra_header(nlh, sizeof(*m));
	m->idiag_family = family;
	m->idiag_state = 1;
	m->idiag_timer = 1;
	m->idiag_retrans = 2;
	m->id.idiag_sport = htons(8080);
	m->id.idiag_dport = htons(40000);
	if (family == AF_INET) {
		inet_pton(AF_INET, "127.0.0.1", m->id.idiag_src);
		inet_pton(AF_INET, "10.1.2.3", m->id.idiag_dst);
	} else {
		inet_pton(AF_INET6, "2001:db8::1", m->id.idiag_src);
		inet_pton(AF_INET6, "fe80::2", m->id.idiag_dst);
	}
	m->id.idiag_if = 3;
	m->id.idiag_cookie[0] = 0x11223344;
	m->id.idiag_cookie[1] = 0x55667788;
	m->idiag_expires = 1500;
	m->idiag_rqueue = 7;
	m->idiag_wqueue = 9;
	m->idiag_uid = 1000;
	m->idiag_inode = 123456;
	return nlh;
}

static void put_info(struct nlmsghdr *nlh, size_t len, uint8_t fill)
{
	uint8_t info[sizeof(struct tcp_info) + 64];

	assert_true(len <= sizeof(info));
	memset(info, fill, sizeof(info));
	mnl_attr_put(nlh, INET_DIAG_INFO, len, info);
}

static void test_decode_ipv4_header(void **state)
{
	struct msgbuf mb;
	struct nlg_sock s;
	uint8_t want[4];
	(void)state;

	memset(&s, 0xa5, sizeof(s));
	assert_int_equal(nlg_sock_decode(mk_msg(&mb, AF_INET), IPPROTO_TCP, &s), 0);
	assert_int_equal(s.family, AF_INET);
	assert_int_equal(s.proto, NLG_SOCK_TCP);
	assert_int_equal(s.state, 1);
	assert_int_equal(s.timer, 1);
	assert_int_equal(s.retrans, 2);
	assert_int_equal(s.sport, 8080);
	assert_int_equal(s.dport, 40000);
	assert_int_equal(s.ifindex, 3);
	assert_int_equal(s.src.family, AF_INET);
	assert_int_equal(s.dst.family, AF_INET);
	inet_pton(AF_INET, "127.0.0.1", want);
	assert_memory_equal(s.src.bytes, want, 4);
	inet_pton(AF_INET, "10.1.2.3", want);
	assert_memory_equal(s.dst.bytes, want, 4);
	/* the unused 12 bytes of an IPv4 address are zero, not stale */
	for (int i = 4; i < 16; i++) {
		assert_int_equal(s.src.bytes[i], 0);
		assert_int_equal(s.dst.bytes[i], 0);
	}
	assert_true(s.cookie == 0x5566778811223344ull);
	assert_int_equal(s.expires_ms, 1500);
	assert_int_equal(s.rqueue, 7);
	assert_int_equal(s.wqueue, 9);
	assert_int_equal(s.uid, 1000);
	assert_int_equal(s.inode, 123456);
	assert_true(s.present == 0);
	assert_int_equal(s.info.tcpi_rtt, 0);
	assert_int_equal(s.cong[0], 0);
}

static void test_decode_ipv6_header(void **state)
{
	struct msgbuf mb;
	struct nlg_sock s;
	uint8_t want[16];
	(void)state;

	assert_int_equal(nlg_sock_decode(mk_msg(&mb, AF_INET6), IPPROTO_UDP, &s), 0);
	assert_int_equal(s.family, AF_INET6);
	assert_int_equal(s.proto, NLG_SOCK_UDP);
	assert_int_equal(s.src.family, AF_INET6);
	inet_pton(AF_INET6, "2001:db8::1", want);
	assert_memory_equal(s.src.bytes, want, 16);
	inet_pton(AF_INET6, "fe80::2", want);
	assert_memory_equal(s.dst.bytes, want, 16);
	assert_int_equal(s.sport, 8080);
}

static void test_decode_proto_arg(void **state)
{
	struct msgbuf mb;
	struct nlg_sock s;
	(void)state;

	assert_int_equal(nlg_sock_decode(mk_msg(&mb, AF_INET), IPPROTO_MPTCP, &s), 0);
	assert_int_equal(s.proto, NLG_SOCK_MPTCP);
	assert_int_equal(nlg_sock_decode(mk_msg(&mb, AF_INET), IPPROTO_ICMP, &s), -EINVAL);
	/* inet_diag only speaks inet and inet6 */
	assert_int_equal(nlg_sock_decode(mk_msg(&mb, AF_UNIX), IPPROTO_TCP, &s), -EPROTO);
}

static void test_decode_each_attr(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh = mk_msg(&mb, AF_INET6);
	struct nlg_sock s;
	struct inet_diag_meminfo mi = {1, 2, 3, 4};
	uint32_t skm[NLG_SKMEM_VARS];
	struct tcpvegas_info vg = {1, 22, 333, 44};
	struct tcp_bbr_info bbr = {.bbr_bw_lo = 0x89abcdef,
				   .bbr_bw_hi = 0x1,
				   .bbr_min_rtt = 250,
				   .bbr_pacing_gain = 739,
				   .bbr_cwnd_gain = 512};
	(void)state;

	for (unsigned int i = 0; i < NLG_SKMEM_VARS; i++)
		skm[i] = 100 + i;
	mnl_attr_put(nlh, INET_DIAG_MEMINFO, sizeof(mi), &mi);
	mnl_attr_put(nlh, INET_DIAG_SKMEMINFO, sizeof(skm), skm);
	mnl_attr_put_strz(nlh, INET_DIAG_CONG, "cubic");
	mnl_attr_put_u8(nlh, INET_DIAG_TOS, 0x10);
	mnl_attr_put_u8(nlh, INET_DIAG_TCLASS, 0x28);
	mnl_attr_put_u8(nlh, INET_DIAG_SHUTDOWN, 3);
	mnl_attr_put_u32(nlh, INET_DIAG_MARK, 0xbeef);
	mnl_attr_put_u64(nlh, INET_DIAG_CGROUP_ID, 0x0102030405060708ull);
	mnl_attr_put(nlh, INET_DIAG_VEGASINFO, sizeof(vg), &vg);
	mnl_attr_put(nlh, INET_DIAG_BBRINFO, sizeof(bbr), &bbr);
	mnl_attr_put_u8(nlh, INET_DIAG_PROTOCOL, IPPROTO_TCP); /* known to the kernel, unused */
	mnl_attr_put_u32(nlh, 200, 0xffffffff);		       /* unknown: ignored */

	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_true(s.present == (NLG_SOCK_HAS_MEMINFO | NLG_SOCK_HAS_SKMEM | NLG_SOCK_HAS_CONG |
				  NLG_SOCK_HAS_TOS | NLG_SOCK_HAS_TCLASS | NLG_SOCK_HAS_SHUTDOWN |
				  NLG_SOCK_HAS_MARK | NLG_SOCK_HAS_CGROUP | NLG_SOCK_HAS_VEGAS |
				  NLG_SOCK_HAS_BBR));
	assert_int_equal(s.mem_rmem, 1);
	assert_int_equal(s.mem_wmem, 2);
	assert_int_equal(s.mem_fmem, 3);
	assert_int_equal(s.mem_tmem, 4);
	for (unsigned int i = 0; i < NLG_SKMEM_VARS; i++)
		assert_int_equal(s.skmem[i], 100 + i);
	assert_string_equal(s.cong, "cubic");
	assert_int_equal(s.tos, 0x10);
	assert_int_equal(s.tclass, 0x28);
	assert_int_equal(s.shutdown, 3);
	assert_int_equal(s.mark, 0xbeef);
	assert_true(s.cgroup_id == 0x0102030405060708ull);
	assert_int_equal(s.vegas_enabled, 1);
	assert_int_equal(s.vegas_rttcnt, 22);
	assert_int_equal(s.vegas_rtt, 333);
	assert_int_equal(s.vegas_minrtt, 44);
	assert_true(s.bbr_bw == 0x189abcdefull);
	assert_int_equal(s.bbr_min_rtt, 250);
	assert_int_equal(s.bbr_pacing_gain, 739);
	assert_int_equal(s.bbr_cwnd_gain, 512);
	assert_false(s.present & NLG_SOCK_HAS_INFO);
}

static void test_decode_skmem_lengths(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh;
	struct nlg_sock s;
	uint32_t v[NLG_SKMEM_VARS + 3];
	(void)state;

	for (unsigned int i = 0; i < NLG_ARRAY_SIZE(v); i++)
		v[i] = 7 + i;
	/* a newer kernel's longer array is cut to ours */
	nlh = mk_msg(&mb, AF_INET);
	mnl_attr_put(nlh, INET_DIAG_SKMEMINFO, sizeof(v), v);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_memory_equal(s.skmem, v, sizeof(s.skmem));
	assert_int_equal(s.cong[0], 0); /* the field after skmem is untouched */
	/* an older kernel's shorter one (8 vars, no drops) leaves the rest zero */
	memset(&s, 0xff, sizeof(s));
	nlh = mk_msg(&mb, AF_INET);
	mnl_attr_put(nlh, INET_DIAG_SKMEMINFO, 8 * sizeof(uint32_t), v);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_memory_equal(s.skmem, v, 8 * sizeof(uint32_t));
	assert_int_equal(s.skmem[8], 0);
}

static void test_decode_cong_bounded(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh = mk_msg(&mb, AF_INET);
	struct nlg_sock s;
	char longname[40];
	(void)state;

	memset(longname, 'x', sizeof(longname));
	/* not NUL-terminated and longer than our field */
	mnl_attr_put(nlh, INET_DIAG_CONG, sizeof(longname), longname);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_true(s.present & NLG_SOCK_HAS_CONG);
	assert_int_equal(strlen(s.cong), sizeof(s.cong) - 1);
	assert_int_equal(s.cong[0], 'x');
}

static void test_decode_tcp_info_exact(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh = mk_msg(&mb, AF_INET);
	struct nlg_sock s;
	struct tcp_info ti;
	(void)state;

	memset(&ti, 0, sizeof(ti));
	ti.tcpi_state = 1;
	ti.tcpi_snd_wscale = 9;
	ti.tcpi_rcv_wscale = 7;
	ti.tcpi_delivery_rate_app_limited = 1;
	ti.tcpi_rtt = 1234;
	ti.tcpi_snd_cwnd = 10;
	ti.tcpi_bytes_acked = 1ull << 40;
	ti.tcpi_snd_wnd = 65535;
	mnl_attr_put(nlh, INET_DIAG_INFO, sizeof(ti), &ti);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_true(s.present & NLG_SOCK_HAS_INFO);
	assert_memory_equal(&s.info, &ti, sizeof(ti));
	assert_int_equal(s.snd_wscale, 9);
	assert_int_equal(s.rcv_wscale, 7);
	assert_int_equal(s.app_limited, 1);
	assert_int_equal(s.info.tcpi_rtt, 1234);
}

/* An older kernel: tcp_info ends early; the rest must be zero even when the
 * record held a longer one before. */
static void test_decode_tcp_info_short(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh;
	struct nlg_sock s;
	const size_t old = offsetof(struct tcp_info, tcpi_rcv_rtt); /* 2.6-era size */
	(void)state;

	nlh = mk_msg(&mb, AF_INET);
	put_info(nlh, sizeof(struct tcp_info), 0xee);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);

	nlh = mk_msg(&mb, AF_INET);
	put_info(nlh, old, 0x11);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_true(s.present & NLG_SOCK_HAS_INFO);
	for (size_t i = 0; i < sizeof(s.info); i++)
		assert_int_equal(((uint8_t *)&s.info)[i], i < old ? 0x11 : 0);
	assert_int_equal(s.snd_wscale, 1);
	assert_int_equal(s.rcv_wscale, 1);

	/* 6 bytes: even the bitfield byte is missing */
	nlh = mk_msg(&mb, AF_INET);
	put_info(nlh, 6, 0xff);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_int_equal(s.snd_wscale, 0);
	assert_int_equal(s.rcv_wscale, 0);
	assert_int_equal(s.app_limited, 0);
	assert_int_equal(s.info.tcpi_rto, 0);
}

/* A newer kernel (6.18 here): a longer tcp_info, copied up to our size. */
static void test_decode_tcp_info_long(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh = mk_msg(&mb, AF_INET6);
	struct nlg_sock s;
	uint8_t big[sizeof(struct tcp_info) + 48];
	(void)state;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	mnl_attr_put(nlh, INET_DIAG_INFO, sizeof(big), big);
	mnl_attr_put_strz(nlh, INET_DIAG_CONG, "bbr"); /* the walk goes on past it */
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), 0);
	assert_memory_equal(&s.info, big, sizeof(s.info));
	assert_string_equal(s.cong, "bbr");
}

/* UDP has no tcp_info; MPTCP's INET_DIAG_INFO is struct mptcp_info. */
static void test_decode_info_only_tcp(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh;
	struct nlg_sock s;
	(void)state;

	nlh = mk_msg(&mb, AF_INET);
	mnl_attr_put_u8(nlh, INET_DIAG_SHUTDOWN, 0);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_UDP, &s), 0);
	assert_true(s.present == NLG_SOCK_HAS_SHUTDOWN);
	assert_int_equal(s.proto, NLG_SOCK_UDP);

	nlh = mk_msg(&mb, AF_INET);
	put_info(nlh, sizeof(struct tcp_info), 0x33);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_UDP, &s), 0);
	assert_false(s.present & NLG_SOCK_HAS_INFO);
	assert_int_equal(s.info.tcpi_rtt, 0);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_MPTCP, &s), 0);
	assert_false(s.present & NLG_SOCK_HAS_INFO);
	assert_int_equal(s.snd_wscale, 0);
}

static void test_decode_truncated_msg(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh = mk_msg(&mb, AF_INET);
	struct nlg_sock s;
	(void)state;

	nlh->nlmsg_len = NLMSG_HDRLEN + sizeof(struct inet_diag_msg) - 1;
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), -EPROTO);
	nlh->nlmsg_len = NLMSG_HDRLEN;
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), -EPROTO);
}

static void test_decode_attr_past_end(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh = mk_msg(&mb, AF_INET);
	struct nlg_sock s;
	struct nlattr *a;
	(void)state;

	mnl_attr_put_strz(nlh, INET_DIAG_CONG, "cubic");
	a = mnl_nlmsg_get_payload_tail(nlh);
	mnl_attr_put_u32(nlh, INET_DIAG_MARK, 5);
	a->nla_len = 64; /* claims more than the message holds */
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), -EPROTO);
	assert_true(s.present == 0);

	/* 4 stray zero bytes: not an attribute (nla_len 0) */
	nlh = mk_msg(&mb, AF_INET);
	mnl_attr_put_u8(nlh, INET_DIAG_TOS, 1);
	nlh->nlmsg_len += 4;
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &s), -EPROTO);
}

/* A known attribute with too short a payload rejects the whole record. */
static void test_decode_short_known_attr(void **state)
{
	static const struct {
		uint16_t type;
		uint16_t len;
	} cases[] = {
	    {INET_DIAG_MEMINFO, sizeof(struct inet_diag_meminfo) - 4},
	    {INET_DIAG_SKMEMINFO, 2},
	    {INET_DIAG_TOS, 0},
	    {INET_DIAG_TCLASS, 0},
	    {INET_DIAG_SHUTDOWN, 0},
	    {INET_DIAG_MARK, 2},
	    {INET_DIAG_CGROUP_ID, 4},
	    {INET_DIAG_VEGASINFO, sizeof(struct tcpvegas_info) - 4},
	    {INET_DIAG_BBRINFO, sizeof(struct tcp_bbr_info) - 4},
	    {INET_DIAG_CONG, 0},
	};
	uint8_t zeros[64] = {0};
	(void)state;

	for (size_t i = 0; i < NLG_ARRAY_SIZE(cases); i++) {
		struct msgbuf mb;
		struct nlmsghdr *nlh = mk_msg(&mb, AF_INET);
		struct nlg_sock s;

		mnl_attr_put(nlh, cases[i].type, cases[i].len, zeros);
		if (nlg_sock_decode(nlh, IPPROTO_TCP, &s) != -EPROTO)
			fail_msg("attribute %u with %u bytes was accepted", cases[i].type,
				 cases[i].len);
	}
}

/* Decoding into a dirty record leaves exactly what a clean one gets. */
static void test_decode_no_stale_data(void **state)
{
	struct msgbuf mb;
	struct nlmsghdr *nlh;
	struct nlg_sock dirty, clean;
	(void)state;

	nlh = mk_msg(&mb, AF_INET6);
	put_info(nlh, sizeof(struct tcp_info), 0x5a);
	mnl_attr_put_strz(nlh, INET_DIAG_CONG, "reno");
	mnl_attr_put_u32(nlh, INET_DIAG_MARK, 1);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &dirty), 0);
	memset((char *)&dirty + sizeof(dirty.present), 0xc3, sizeof(dirty) - sizeof(dirty.present));

	nlh = mk_msg(&mb, AF_INET);
	memset(&clean, 0, sizeof(clean));
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &clean), 0);
	assert_int_equal(nlg_sock_decode(nlh, IPPROTO_TCP, &dirty), 0);
	assert_memory_equal(&clean, &dirty, sizeof(clean));
}

/* ---- parsers ------------------------------------------------------------- */

static void test_parse_states(void **state)
{
	struct nlg_err err = {{0}};
	uint32_t m = 0;
	(void)state;

	assert_int_equal(nlg_sockdiag_parse_states("established,listen", &m, &err), 0);
	assert_int_equal(m, (1u << 1) | (1u << 10));
	assert_int_equal(nlg_sockdiag_parse_states("ESTAB, Listening", &m, &err), 0);
	assert_int_equal(m, (1u << 1) | (1u << 10));
	assert_int_equal(nlg_sockdiag_parse_states("all", &m, &err), 0);
	assert_int_equal(m, 0xffe);
	assert_int_equal(nlg_sockdiag_parse_states("connected", &m, &err), 0);
	assert_false(m & (1u << 10));
	assert_false(m & (1u << 7));
	assert_true(m & (1u << 2));
	assert_true(m & (1u << 6));
	assert_int_equal(nlg_sockdiag_parse_states("synchronized", &m, &err), 0);
	assert_false(m & (1u << 2));
	assert_true(m & (1u << 3));
	assert_int_equal(nlg_sockdiag_parse_states("bucket", &m, &err), 0);
	assert_int_equal(m, (1u << 3) | (1u << 6));
	assert_int_equal(nlg_sockdiag_parse_states("big", &m, &err), 0);
	assert_int_equal(m & ((1u << 3) | (1u << 6)), 0);
	assert_true(m & (1u << 10));
	assert_int_equal(
	    nlg_sockdiag_parse_states("syn-sent,syn-recv,synrecv,fin-wait-1,fin-wait-2,"
				      "time-wait,close-wait,last-ack,closing",
				      &m, &err),
	    0);
	assert_int_equal(m, (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) |
				(1u << 9) | (1u << 11));
	assert_int_equal(nlg_sockdiag_parse_states("closed", &m, &err), 0);
	assert_int_equal(m, 1u << 7);
	assert_int_equal(nlg_sockdiag_parse_states("unconn", &m, &err), 0);
	assert_int_equal(m, 1u << 7);

	m = 42;
	assert_int_equal(nlg_sockdiag_parse_states("established,bogus", &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bogus"));
	assert_int_equal(m, 42);
	assert_int_equal(nlg_sockdiag_parse_states("", &m, &err), -EINVAL);
	assert_int_equal(nlg_sockdiag_parse_states(",", &m, &err), -EINVAL);
	assert_int_equal(nlg_sockdiag_parse_states("estab-", &m, NULL), -EINVAL);
}

static void test_parse_ext(void **state)
{
	struct nlg_err err = {{0}};
	uint8_t e = 0;
	(void)state;

	assert_int_equal(nlg_sockdiag_parse_ext("tcp_info,meminfo", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_INFO) | EXT(INET_DIAG_MEMINFO));
	assert_int_equal(nlg_sockdiag_parse_ext("info", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_INFO));
	assert_int_equal(nlg_sockdiag_parse_ext("skmem,cong", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_SKMEMINFO) | EXT(INET_DIAG_CONG));
	assert_int_equal(nlg_sockdiag_parse_ext("tos", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_TOS) | EXT(INET_DIAG_TCLASS));
	/* BBR (and DCTCP) info come back for the VEGASINFO bit */
	assert_int_equal(nlg_sockdiag_parse_ext("bbr", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_VEGASINFO));
	assert_int_equal(nlg_sockdiag_parse_ext("vegas", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_VEGASINFO));
	assert_int_equal(nlg_sockdiag_parse_ext("all", &e, &err), 0);
	assert_int_equal(e, EXT(INET_DIAG_INFO) | EXT(INET_DIAG_MEMINFO) |
				EXT(INET_DIAG_SKMEMINFO) | EXT(INET_DIAG_CONG) |
				EXT(INET_DIAG_TOS) | EXT(INET_DIAG_TCLASS) |
				EXT(INET_DIAG_VEGASINFO));
	assert_int_equal(nlg_sockdiag_parse_ext("none", &e, &err), 0);
	assert_int_equal(e, 0);
	assert_int_equal(nlg_sockdiag_parse_ext("tcp_info,nope", &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "nope"));
}

static void test_state_names(void **state)
{
	int idx = nlg_schema_field(&nlg_sock_schema, "state");
	const struct nlg_field *f;
	unsigned int n = 0;
	(void)state;

	assert_string_equal(nlg_sockdiag_state_name(1), "ESTAB");
	assert_string_equal(nlg_sockdiag_state_name(7), "UNCONN");
	assert_string_equal(nlg_sockdiag_state_name(10), "LISTEN");
	assert_string_equal(nlg_sockdiag_state_name(2), "SYN-SENT");
	assert_string_equal(nlg_sockdiag_state_name(99), "UNKNOWN");
	/* the schema's enum names say the same */
	assert_true(idx >= 0);
	f = &nlg_sock_schema.fields[idx];
	assert_non_null(f->names);
	for (; f->names[n]; n++)
		assert_string_equal(nlg_sockdiag_state_name(n), f->names[n]);
	assert_true(n >= 12);
}

/* ---- requests and the poll, through the nl replay seam ------------------- */

enum {
	R_RECORDS,
	R_ENOENT,	  /* NLMSG_ERROR -ENOENT, as to a missing protocol */
	R_EINVAL,	  /* NLMSG_ERROR -EINVAL, as an unknown message type gets */
	R_EOPNOTSUPP,	  /* NLMSG_ERROR -EOPNOTSUPP: no compat hook registered */
	R_RECORDS_ENOENT, /* records, then NLMSG_DONE carrying -ENOENT */
	R_INTR_ONCE,
	R_INTR_ALWAYS,
	R_MALFORMED_FIRST,
};

/* fake job indices: v2 requests 0..5 as (proto, family), the compat one 6 */
#define J_COMPAT 6

struct fake {
	int mode[7];   /* per job index: how the "kernel" answers */
	int records;   /* records per dump */
	int intr_done; /* R_INTR_ONCE: interrupted once already */
	uint8_t sent[16][512];
	unsigned int nsent;
	uint8_t q[8][16384]; /* reply buffers queued */
	size_t qlen[8];
	unsigned int qhead, qtail;
};

static int job_of(const struct nlmsghdr *req)
{
	const struct inet_diag_req_v2 *r = mnl_nlmsg_get_payload(req);
	struct nlattr *a;
	int proto = r->sdiag_protocol;

	if (req->nlmsg_type == TCPDIAG_GETSOCK)
		return J_COMPAT;
	assert_int_equal(req->nlmsg_type, SOCK_DIAG_BY_FAMILY);
	mnl_attr_for_each(a, req, sizeof(*r))
	{
		if (mnl_attr_get_type(a) == INET_DIAG_REQ_PROTOCOL)
			proto = (int)mnl_attr_get_u32(a);
	}
	return (proto == IPPROTO_TCP   ? 0
		: proto == IPPROTO_UDP ? 2
				       : 4) +
	       (r->sdiag_family == AF_INET6);
}

static struct nlmsghdr *q_put(struct fake *f, size_t *off, uint32_t seq, uint32_t pid,
			      uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->q[f->qtail] + *off);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = pid;
	return nlh;
}

static int fake_send(void *ctx, const struct nlmsghdr *req)
{
	struct fake *f = ctx;
	int job = job_of(req), mode = f->mode[job];
	size_t off = 0;
	uint16_t intr = 0;
	struct nlmsghdr *nlh;

	assert_true(f->nsent < 16 && req->nlmsg_len <= sizeof(f->sent[0]));
	memcpy(f->sent[f->nsent++], req, req->nlmsg_len);
	if (mode == R_ENOENT || mode == R_EINVAL || mode == R_EOPNOTSUPP) {
		struct nlmsgerr *e;

		nlh = q_put(f, &off, req->nlmsg_seq, req->nlmsg_pid, NLMSG_ERROR, 0);
		e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
		e->error = mode == R_ENOENT ? -ENOENT : mode == R_EINVAL ? -EINVAL : -EOPNOTSUPP;
		e->msg = *req;
		off += nlh->nlmsg_len;
		goto queued;
	}
	if ((mode == R_INTR_ONCE && !f->intr_done) || mode == R_INTR_ALWAYS) {
		intr = NLM_F_DUMP_INTR;
		f->intr_done = 1;
	}
	for (int i = 0; i < f->records; i++) {
		const struct inet_diag_req_v2 *r = mnl_nlmsg_get_payload(req);
		struct inet_diag_msg *m;

		/* as the kernel does, a reply carries the request's type; the
		 * compat dump's records come in both families, mixed */
		nlh = q_put(f, &off, req->nlmsg_seq, req->nlmsg_pid, req->nlmsg_type,
			    NLM_F_MULTI | intr);
		m = mnl_nlmsg_put_extra_header(nlh, sizeof(*m));
		if (job == J_COMPAT)
			m->idiag_family = i % 2 ? AF_INET6 : AF_INET;
		else
			m->idiag_family = r->sdiag_family;
		m->idiag_state = 1;
		m->id.idiag_sport = htons((uint16_t)(1000 + i));
		m->idiag_inode = (uint32_t)(job * 100 + i);
		if (mode == R_MALFORMED_FIRST && i == 0)
			nlh->nlmsg_len = NLMSG_HDRLEN + 8; /* too short for inet_diag_msg */
		off += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	nlh = q_put(f, &off, req->nlmsg_seq, req->nlmsg_pid, NLMSG_DONE, NLM_F_MULTI | intr);
	*(int *)mnl_nlmsg_put_extra_header(nlh, sizeof(int)) =
	    mode == R_RECORDS_ENOENT ? -ENOENT : 0;
	off += nlh->nlmsg_len;
queued:
	f->qlen[f->qtail] = off;
	f->qtail = (f->qtail + 1) % 8;
	return 0;
}

static ssize_t fake_recv(void *ctx, void *buf, size_t len)
{
	struct fake *f = ctx;
	size_t n;

	if (f->qhead == f->qtail)
		return 0;
	n = f->qlen[f->qhead];
	assert_true(n <= len);
	memcpy(buf, f->q[f->qhead], n);
	f->qhead = (f->qhead + 1) % 8;
	return (ssize_t)n;
}

struct seen {
	unsigned int n;
	uint32_t inode[64];
	uint8_t proto[64], family[64];
	int stop_after;	 /* return NLG_CB_STOP at this record (1-based), 0 never */
	int error_after; /* return NLG_CB_ERROR at this record */
	unsigned int restarts;
	uint8_t restart_family, restart_proto;
	unsigned int restart_fams;  /* 1: AF_INET seen, 2: AF_INET6 seen */
	unsigned int restart_at[8]; /* records seen when each restart came */
};

static int on_rec(const struct nlg_sock *s, void *data)
{
	struct seen *sn = data;

	if (sn->n < 64) {
		sn->inode[sn->n] = s->inode;
		sn->proto[sn->n] = s->proto;
		sn->family[sn->n] = s->family;
	}
	sn->n++;
	if (sn->stop_after && (int)sn->n == sn->stop_after)
		return NLG_CB_STOP;
	if (sn->error_after && (int)sn->n == sn->error_after)
		return NLG_CB_ERROR;
	return NLG_CB_OK;
}

static void on_restart(uint8_t family, uint8_t proto, void *data)
{
	struct seen *sn = data;

	if (sn->restarts < 8)
		sn->restart_at[sn->restarts] = sn->n;
	sn->restarts++;
	sn->restart_family = family;
	sn->restart_proto = proto;
	sn->restart_fams |= family == AF_INET ? 1u : family == AF_INET6 ? 2u : 4u;
}

struct fixture {
	struct nlg_sockdiag *sd;
	struct fake *f;
};

static int setup_fake(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct nlg_err err = {{0}};
	struct nlg_nl_io io;

	if (!fx)
		return -1;
	fx->f = calloc(1, sizeof(*fx->f));
	fx->sd = nlg_sockdiag_open(NULL, &err);
	if (!fx->f || !fx->sd) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	fx->f->records = 2;
	io = (struct nlg_nl_io){fake_send, fake_recv, fx->f};
	nlg_nl_set_io(nlg_sockdiag_nl(fx->sd), &io);
	nlg_sockdiag_set_restart(fx->sd, on_restart);
	*state = fx;
	return 0;
}

static int teardown_fake(void **state)
{
	struct fixture *fx = *state;

	nlg_sockdiag_close(fx->sd);
	free(fx->f);
	free(fx);
	return 0;
}

/* Drive start/step to the end, as the event loop would. */
static int run_steps(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req, struct seen *sn,
		     struct nlg_err *err)
{
	int rc = nlg_sockdiag_start(sd, req, err);

	for (int i = 0; rc >= 0 && i < 100; i++) {
		rc = nlg_sockdiag_step(sd, on_rec, sn, err);
		if (rc <= 0)
			return rc;
	}
	return rc < 0 ? rc : -ETIMEDOUT;
}

typedef int runner_fn(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req, struct seen *sn,
		      struct nlg_err *err);

static int run_poll(struct nlg_sockdiag *sd, const struct nlg_sockdiag_req *req, struct seen *sn,
		    struct nlg_err *err)
{
	return nlg_sockdiag_poll(sd, req, on_rec, sn, err);
}

static const struct inet_diag_req_v2 *sent_req(struct fake *f, unsigned int i)
{
	return mnl_nlmsg_get_payload((struct nlmsghdr *)f->sent[i]);
}

/* The v2 request i (a fake job index 0..5) as check_v2_req expects it. */
static const struct {
	uint8_t family;
	int proto;
} v2_jobs[] = {
    {AF_INET, IPPROTO_TCP},  {AF_INET6, IPPROTO_TCP},  {AF_INET, IPPROTO_UDP},
    {AF_INET6, IPPROTO_UDP}, {AF_INET, IPPROTO_MPTCP}, {AF_INET6, IPPROTO_MPTCP},
};

static void check_v2_req(const struct nlmsghdr *nlh, int job, uint8_t asked_ext)
{
	const struct inet_diag_req_v2 *r = mnl_nlmsg_get_payload(nlh);
	uint8_t ext = asked_ext;
	int has_proto_attr = 0;
	struct nlattr *a;

	assert_int_equal(nlh->nlmsg_type, SOCK_DIAG_BY_FAMILY);
	assert_true(nlh->nlmsg_flags & NLM_F_DUMP);
	assert_true(nlh->nlmsg_flags & NLM_F_REQUEST);
	assert_int_equal(r->sdiag_family, v2_jobs[job].family);
	assert_int_equal(job_of(nlh), job);
	assert_int_equal(r->idiag_states, 0xffe); /* 0 in the request means all */
	if (v2_jobs[job].proto == IPPROTO_UDP)
		ext &= (uint8_t) ~(EXT(INET_DIAG_INFO) | EXT(INET_DIAG_CONG) |
				   EXT(INET_DIAG_VEGASINFO));
	assert_int_equal(r->idiag_ext, ext);
	mnl_attr_for_each(a, nlh, sizeof(*r))
	{
		assert_int_not_equal(mnl_attr_get_type(a), INET_DIAG_REQ_BYTECODE);
		if (mnl_attr_get_type(a) == INET_DIAG_REQ_PROTOCOL)
			has_proto_attr = 1;
	}
	assert_int_equal(has_proto_attr, v2_jobs[job].proto == IPPROTO_MPTCP);
	if (v2_jobs[job].proto == IPPROTO_MPTCP)
		assert_int_equal(r->sdiag_protocol, IPPROTO_TCP);
}

/* The compat request, byte for byte where it matters: type 18, a struct
 * inet_diag_req (v1) payload, attributes (if any) right after it. */
static void check_compat_req(const struct nlmsghdr *nlh, uint8_t ext, uint32_t states, int has_bc)
{
	const struct inet_diag_req *r = mnl_nlmsg_get_payload(nlh);
	struct inet_diag_sockid zero_id;
	struct nlattr *a;
	int bc = 0;

	memset(&zero_id, 0, sizeof(zero_id));
	assert_int_equal(nlh->nlmsg_type, TCPDIAG_GETSOCK);
	assert_int_equal(nlh->nlmsg_type, 18);
	assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
	assert_true(nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(*r));
	assert_int_equal(r->idiag_family, AF_UNSPEC);
	assert_int_equal(r->idiag_src_len, 0);
	assert_int_equal(r->idiag_dst_len, 0);
	assert_int_equal(r->idiag_ext, ext);
	assert_memory_equal(&r->id, &zero_id, sizeof(zero_id));
	assert_int_equal(r->idiag_states, states);
	assert_int_equal(r->idiag_dbs, 0);
	mnl_attr_for_each(a, nlh, sizeof(*r))
	{
		/* the compat request has no INET_DIAG_REQ_PROTOCOL: TCP is its type */
		assert_int_equal(mnl_attr_get_type(a), INET_DIAG_REQ_BYTECODE);
		bc++;
	}
	assert_int_equal(bc, has_bc);
	if (!has_bc)
		assert_int_equal(nlh->nlmsg_len, NLMSG_HDRLEN + sizeof(*r));
}

/* Everything asked: TCP as one compat dump (records of both families, the
 * replies typed TCPDIAG_GETSOCK), then UDP and MPTCP per family over v2. */
static void check_order_and_fields(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.ext = 0xff & ~EXT(INET_DIAG_SHUTDOWN)};
	struct seen sn = {0};
	struct nlg_err err = {{0}};
	static const int want_job[] = {J_COMPAT, 2, 3, 4, 5};

	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 5);
	check_compat_req((const struct nlmsghdr *)fx->f->sent[0], req.ext, 0xffe, 0);
	for (unsigned int i = 1; i < 5; i++)
		check_v2_req((const struct nlmsghdr *)fx->f->sent[i], want_job[i], req.ext);
	/* two records per dump, in request order, each with the request's proto */
	assert_int_equal(sn.n, 10);
	for (unsigned int i = 0; i < 10; i++) {
		int job = want_job[i / 2];

		assert_int_equal(sn.inode[i], job * 100 + i % 2);
		assert_int_equal(sn.family[i], job == J_COMPAT ? (i % 2 ? AF_INET6 : AF_INET)
							       : v2_jobs[job].family);
		assert_int_equal(sn.proto[i], i < 2   ? NLG_SOCK_TCP
					      : i < 6 ? NLG_SOCK_UDP
						      : NLG_SOCK_MPTCP);
	}
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->records, 10);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->malformed, 0);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->polls, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->failed, 0);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 0);

	/* the next poll asks the same way */
	sn = (struct seen){0};
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 10);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[5]), J_COMPAT);
	assert_int_equal(sn.n, 10);
}

static void test_poll_order(void **state)
{
	check_order_and_fields(state, run_poll);
}

static void test_step_order(void **state)
{
	check_order_and_fields(state, run_steps);
}

/* A kernel that refuses the compat request (each way it can): no error, the
 * poll goes on with the six v2 requests, counted once; later polls send v2
 * only, for the life of the source. */
static void check_fallback(void **state, runner_fn *run, int refusal)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.ext = EXT(INET_DIAG_INFO)};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	fx->f->mode[J_COMPAT] = refusal;
	if (run(fx->sd, &req, &sn, &err) != 0)
		fail_msg("refusal %d: %s", refusal, err.msg);
	assert_int_equal(fx->f->nsent, 7);
	check_compat_req((const struct nlmsghdr *)fx->f->sent[0], req.ext, 0xffe, 0);
	for (unsigned int i = 1; i < 7; i++)
		check_v2_req((const struct nlmsghdr *)fx->f->sent[i], (int)i - 1, req.ext);
	assert_int_equal(sn.n, 12);
	for (unsigned int i = 0; i < 12; i++) {
		assert_int_equal(sn.inode[i], (i / 2) * 100 + i % 2);
		assert_int_equal(sn.family[i], v2_jobs[i / 2].family);
	}
	assert_int_equal(sn.restarts, 0); /* refused before any record */
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->skipped, 0);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->polls, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->failed, 0);

	/* the source remembers: no compat request again */
	sn = (struct seen){0};
	req.protos = NLG_SD_TCP;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 9);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[7]), 0);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[8]), 1);
	assert_int_equal(sn.n, 4);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->polls, 2);
}

static void test_poll_fallback_einval(void **state)
{
	check_fallback(state, run_poll, R_EINVAL);
}

static void test_step_fallback_einval(void **state)
{
	check_fallback(state, run_steps, R_EINVAL);
}

static void test_poll_fallback_eopnotsupp(void **state)
{
	check_fallback(state, run_poll, R_EOPNOTSUPP);
}

static void test_step_fallback_enoent(void **state)
{
	check_fallback(state, run_steps, R_ENOENT);
}

/* Refused after records came (a NLMSG_DONE carrying the error): they will
 * come again from the v2 requests, so the consumer hears a restart for each
 * family first. */
static void check_fallback_after_records(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.protos = NLG_SD_TCP};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	fx->f->mode[J_COMPAT] = R_RECORDS_ENOENT;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 3);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[1]), 0);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[2]), 1);
	assert_int_equal(sn.n, 6);
	assert_int_equal(sn.restarts, 2);
	assert_int_equal(sn.restart_fams, 3);
	assert_int_equal(sn.restart_at[0], 2); /* after the compat records, before v2's */
	assert_int_equal(sn.restart_at[1], 2);
	assert_int_equal(sn.restart_proto, NLG_SOCK_TCP);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 1);
}

static void test_poll_fallback_after_records(void **state)
{
	check_fallback_after_records(state, run_poll);
}

static void test_step_fallback_after_records(void **state)
{
	check_fallback_after_records(state, run_steps);
}

/* No tcp_diag at all: the compat refusal falls back, the v2 refusal is the
 * usual "kernel lacks" skip when other protocols were asked, and an error
 * naming tcp_diag when TCP was the only one. */
static void check_fallback_no_tcp(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.protos = NLG_SD_TCP | NLG_SD_UDP};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	fx->f->mode[J_COMPAT] = fx->f->mode[0] = fx->f->mode[1] = R_ENOENT;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	/* compat, tcp inet (refused), udp inet, udp inet6 */
	assert_int_equal(fx->f->nsent, 4);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[1]), 0);
	assert_int_equal(job_of((const struct nlmsghdr *)fx->f->sent[2]), 2);
	assert_int_equal(sn.n, 4);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->skipped, 2);

	req.protos = NLG_SD_TCP;
	assert_int_equal(run(fx->sd, &req, &sn, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "tcp_diag (inet)"));
	assert_int_equal(fx->f->nsent, 5);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 1);
}

static void test_poll_fallback_no_tcp(void **state)
{
	check_fallback_no_tcp(state, run_poll);
}

static void test_step_fallback_no_tcp(void **state)
{
	check_fallback_no_tcp(state, run_steps);
}

static void test_subset_and_states(void **state)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {
	    .families = NLG_SD_INET6, .protos = NLG_SD_UDP | NLG_SD_TCP, .states = 1u << 10};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	assert_int_equal(run_steps(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 2);
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[0]), 1);
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[1]), 3);
	assert_int_equal(sent_req(fx->f, 0)->idiag_states, 1u << 10);

	req.families = 1u << 5;
	assert_int_equal(nlg_sockdiag_poll(fx->sd, &req, on_rec, &sn, &err), -EINVAL);
	assert_int_equal(nlg_sockdiag_start(fx->sd, &req, &err), -EINVAL);
	assert_int_equal(fx->f->nsent, 2);
}

/* The kernel's bytecode interpreter (inet_diag_bc_run), to check ours. */
static int bc_run(const uint8_t *bc, int len, uint16_t sport, uint16_t dport)
{
	while (len > 0) {
		const struct inet_diag_bc_op *op = (const void *)bc;
		int yes = 1;

		switch (op->code) {
		case INET_DIAG_BC_S_EQ:
			yes = sport == op[1].no;
			break;
		case INET_DIAG_BC_D_EQ:
			yes = dport == op[1].no;
			break;
		default:
			fail_msg("unexpected op %u", op->code);
		}
		if (yes) {
			len -= op->yes;
			bc += op->yes;
		} else {
			len -= op->no;
			bc += op->no;
		}
	}
	return len == 0;
}

static const struct nlattr *find_bc(struct fake *f, unsigned int i)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)f->sent[i];
	struct nlattr *a;
	/* attributes follow the request header, v1 (compat) or v2 */
	size_t hdr = nlh->nlmsg_type == TCPDIAG_GETSOCK ? sizeof(struct inet_diag_req)
							: sizeof(struct inet_diag_req_v2);

	mnl_attr_for_each(a, nlh, hdr)
	{
		if (mnl_attr_get_type(a) == INET_DIAG_REQ_BYTECODE)
			return a;
	}
	return NULL;
}

static void test_port_bytecode(void **state)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.families = NLG_SD_INET, .protos = NLG_SD_TCP};
	struct seen sn = {0};
	struct nlg_err err = {{0}};
	const struct nlattr *a;

	req.sport = 8080;
	assert_int_equal(nlg_sockdiag_poll(fx->sd, &req, on_rec, &sn, &err), 0);
	a = find_bc(fx->f, 0);
	assert_non_null(a);
	assert_true(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 8080, 1));
	assert_true(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 8080, 0));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 8081, 8080));

	req.sport = 0;
	req.dport = 443;
	assert_int_equal(nlg_sockdiag_poll(fx->sd, &req, on_rec, &sn, &err), 0);
	a = find_bc(fx->f, 1);
	assert_non_null(a);
	assert_true(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 1, 443));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 443, 444));

	req.sport = 22;
	assert_int_equal(nlg_sockdiag_poll(fx->sd, &req, on_rec, &sn, &err), 0);
	a = find_bc(fx->f, 2);
	assert_non_null(a);
	assert_true(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 22, 443));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 22, 442));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 23, 443));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 443, 22));

	/* both families: the compat request carries the same bytecode after
	 * its v1 header, the states and ext beside it */
	req.families = 0;
	req.states = (1u << 1) | (1u << 10);
	req.ext = EXT(INET_DIAG_INFO) | EXT(INET_DIAG_CONG);
	req.sport = 0;
	req.dport = 8443;
	assert_int_equal(nlg_sockdiag_poll(fx->sd, &req, on_rec, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 4);
	check_compat_req((const struct nlmsghdr *)fx->f->sent[3], req.ext, req.states, 1);
	a = find_bc(fx->f, 3);
	assert_non_null(a);
	assert_int_equal(mnl_attr_get_payload_len(a), 2 * sizeof(struct inet_diag_bc_op));
	assert_true(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 5, 8443));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 8443, 5));

	req.sport = 22;
	assert_int_equal(run_steps(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 5);
	check_compat_req((const struct nlmsghdr *)fx->f->sent[4], req.ext, req.states, 1);
	a = find_bc(fx->f, 4);
	assert_non_null(a);
	assert_true(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 22, 8443));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 22, 443));
	assert_false(bc_run(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), 21, 8443));
}

static void check_skip_missing(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {0};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	fx->f->mode[4] = fx->f->mode[5] = R_ENOENT;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	/* tcp (one compat dump), udp ×2, inet mptcp refused; inet6 mptcp not even asked */
	assert_int_equal(fx->f->nsent, 4);
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[3]), 4);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->skipped, 2);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 0);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->polls, 1);
	assert_int_equal(sn.n, 6);

	/* asked for alone, a missing protocol is an error with the message */
	req.protos = NLG_SD_MPTCP;
	assert_int_equal(run(fx->sd, &req, &sn, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "mptcp_diag"));
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->failed, 1);
	assert_int_equal(fx->f->nsent, 5);
}

static void test_poll_skip_missing(void **state)
{
	check_skip_missing(state, run_poll);
}

static void test_step_skip_missing(void **state)
{
	check_skip_missing(state, run_steps);
}

static void check_intr_retry(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.protos = NLG_SD_TCP};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	/* both families: the one compat dump is interrupted and sent again, and
	 * its records of both families come again */
	fx->f->mode[J_COMPAT] = R_INTR_ONCE;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 2);
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[0]), J_COMPAT);
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[1]), J_COMPAT);
	assert_int_equal(sn.restarts, 2);
	assert_int_equal(sn.restart_fams, 3); /* AF_INET and AF_INET6 */
	assert_int_equal(sn.restart_at[0], 2);
	assert_int_equal(sn.restart_at[1], 2);
	assert_int_equal(sn.restart_proto, NLG_SOCK_TCP);
	assert_int_equal(sn.n, 4); /* the interrupted attempt's 2 records came too */
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 0);

	/* one family: a v2 request, restarted for its family alone */
	sn = (struct seen){0};
	fx->f->intr_done = 0;
	fx->f->mode[1] = R_INTR_ONCE;
	req.families = NLG_SD_INET6;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(fx->f->nsent, 4); /* inet6 interrupted, inet6 again */
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[2]), 1);
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[3]), 1);
	assert_int_equal(sn.restarts, 1);
	assert_int_equal(sn.restart_fams, 2);
	assert_int_equal(sn.restart_family, AF_INET6);
	assert_int_equal(sn.restart_proto, NLG_SOCK_TCP);
	assert_int_equal(sn.n, 4);
}

/* A dump that never settles fails after NLG_NL_INTR_RETRIES retries. */
static void check_intr_give_up(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {.protos = NLG_SD_UDP};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	fx->f->mode[2] = R_INTR_ALWAYS;
	assert_int_equal(run(fx->sd, &req, &sn, &err), -EINTR);
	assert_int_equal(fx->f->nsent, NLG_NL_INTR_RETRIES + 1);
	assert_int_equal(sn.restarts, NLG_NL_INTR_RETRIES);
	assert_non_null(strstr(err.msg, "interrupted"));
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->failed, 1);

	/* the compat dump: the same bound, two restarts per retry, and an
	 * interrupted dump is not a refusal to fall back from */
	sn = (struct seen){0};
	req.protos = NLG_SD_TCP;
	fx->f->mode[J_COMPAT] = R_INTR_ALWAYS;
	assert_int_equal(run(fx->sd, &req, &sn, &err), -EINTR);
	assert_int_equal(fx->f->nsent, 2 * (NLG_NL_INTR_RETRIES + 1));
	assert_int_equal(job_of((struct nlmsghdr *)fx->f->sent[fx->f->nsent - 1]), J_COMPAT);
	assert_int_equal(sn.restarts, 2 * NLG_NL_INTR_RETRIES);
	assert_non_null(strstr(err.msg, "inet+inet6"));
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->failed, 2);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->fallbacks, 0);
}

static void test_poll_intr_give_up(void **state)
{
	check_intr_give_up(state, run_poll);
}

static void test_step_intr_give_up(void **state)
{
	check_intr_give_up(state, run_steps);
}

static void test_poll_intr_retry(void **state)
{
	check_intr_retry(state, run_poll);
}

static void test_step_intr_retry(void **state)
{
	check_intr_retry(state, run_steps);
}

static void check_stop_error_malformed(void **state, runner_fn *run)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {0};
	struct seen sn = {.stop_after = 1};
	struct nlg_err err = {{0}};

	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(sn.n, 1);
	assert_int_equal(fx->f->nsent, 1);

	sn = (struct seen){.error_after = 3};
	assert_int_equal(run(fx->sd, &req, &sn, &err), -ECANCELED);
	assert_int_equal(sn.n, 3);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->failed, 1);

	sn = (struct seen){0};
	fx->f->mode[0] = R_MALFORMED_FIRST;
	req.protos = NLG_SD_TCP;
	req.families = NLG_SD_INET;
	assert_int_equal(run(fx->sd, &req, &sn, &err), 0);
	assert_int_equal(sn.n, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->malformed, 1);
	assert_int_equal(nlg_sockdiag_stats(fx->sd)->polls, 2);
}

static void test_poll_stop_error(void **state)
{
	check_stop_error_malformed(state, run_poll);
}

static void test_step_stop_error(void **state)
{
	check_stop_error_malformed(state, run_steps);
}

static void test_step_busy(void **state)
{
	struct fixture *fx = *state;
	struct nlg_sockdiag_req req = {0};
	struct seen sn = {0};
	struct nlg_err err = {{0}};

	assert_int_equal(nlg_sockdiag_step(fx->sd, on_rec, &sn, &err), 0); /* nothing running */
	assert_int_equal(nlg_sockdiag_start(fx->sd, &req, &err), 0);
	assert_int_equal(nlg_sockdiag_start(fx->sd, &req, &err), -EBUSY);
	assert_int_equal(nlg_sockdiag_poll(fx->sd, &req, on_rec, &sn, &err), -EBUSY);
	while (nlg_sockdiag_step(fx->sd, on_rec, &sn, &err) == 1)
		;
	assert_int_equal(sn.n, 10);
}

/* ---- recorded fixtures (tests/fixtures/record.sh) ------------------------ */

/* What record.sh creates: keep in step with it. */
#define FIX_TCP_PORT 47001
#define FIX_UDP_PORT 47002

struct fix_scan {
	int ipproto;
	uint8_t family;
	unsigned int n, bad;
	unsigned int listen;	   /* LISTEN on FIX_TCP_PORT */
	unsigned int server_estab; /* ESTAB, sport FIX_TCP_PORT */
	unsigned int client_estab; /* ESTAB, dport FIX_TCP_PORT */
	unsigned int pairs;	   /* client/server records whose ports mirror */
	unsigned int info_ok;	   /* ESTAB with tcp_info, rtt > 0, cong set */
	unsigned int udp_unconn;   /* UNCONN on FIX_UDP_PORT */
	uint16_t server_dports[16], client_sports[16];
};

static int fix_rec(const struct nlmsghdr *nlh, void *data)
{
	struct fix_scan *fs = data;
	struct nlg_sock s;
	uint8_t lo[16];

	if (nlg_sock_decode(nlh, fs->ipproto, &s) < 0) {
		fs->bad++;
		return NLG_CB_OK;
	}
	fs->n++;
	if (s.family != fs->family)
		fs->bad++;
	inet_pton(fs->family, fs->family == AF_INET ? "127.0.0.1" : "::1", lo);
	if (memcmp(s.src.bytes, lo, fs->family == AF_INET ? 4 : 16) != 0)
		return NLG_CB_OK;
	if (s.state == 10 && s.sport == FIX_TCP_PORT)
		fs->listen++;
	if (s.state == 7 && s.sport == FIX_UDP_PORT && !(s.present & NLG_SOCK_HAS_INFO))
		fs->udp_unconn++;
	if (s.state == 1 && fs->ipproto == IPPROTO_TCP) {
		if (s.sport == FIX_TCP_PORT && fs->server_estab < 16)
			fs->server_dports[fs->server_estab++] = s.dport;
		else if (s.dport == FIX_TCP_PORT && fs->client_estab < 16)
			fs->client_sports[fs->client_estab++] = s.sport;
		if ((s.present & NLG_SOCK_HAS_INFO) && s.info.tcpi_rtt > 0 && s.cong[0] &&
		    s.info.tcpi_state == 1)
			fs->info_ok++;
	}
	return NLG_CB_OK;
}

/* Walk every dump in a fixture (recv buffers back to back), ending each at
 * its NLMSG_DONE so that several recorded dumps replay one after the other. */
static unsigned int replay(const uint8_t *buf, size_t len, struct fix_scan *fs)
{
	size_t start = 0, off = 0;
	unsigned int dumps = 0;

	while (off < len) {
		const struct nlmsghdr *nlh = (const void *)(buf + off);
		int rest = (int)(len - off);

		assert_true(mnl_nlmsg_ok(nlh, rest));
		off += NLMSG_ALIGN(nlh->nlmsg_len);
		if (nlh->nlmsg_type == NLMSG_DONE) {
			struct nlg_nl_dump d = {.what = "fixture"};
			struct nlg_err err = {{0}};

			assert_int_equal(
			    nlg_nl_parse(&d, buf + start, off - start, fix_rec, fs, NULL, &err), 0);
			assert_true(d.done);
			dumps++;
			start = off;
		}
	}
	assert_int_equal(start, len);
	return dumps;
}

static void check_tcp_fixture(const char *name, uint8_t family)
{
	struct fix_scan fs = {.ipproto = IPPROTO_TCP, .family = family};
	size_t len;
	uint8_t *buf = read_fixture(name, &len);

	assert_true(replay(buf, len, &fs) >= 1);
	free(buf);
	assert_int_equal(fs.bad, 0);
	assert_int_equal(fs.listen, 1);
	assert_true(fs.server_estab >= 2);
	assert_int_equal(fs.server_estab, fs.client_estab);
	/* every accepted socket's peer port is some client's own port */
	for (unsigned int i = 0; i < fs.server_estab; i++) {
		int found = 0;

		for (unsigned int j = 0; j < fs.client_estab; j++)
			found |= fs.server_dports[i] == fs.client_sports[j];
		assert_true(found);
	}
	assert_int_equal(fs.info_ok, fs.server_estab + fs.client_estab);
}

static void test_fixture_tcp4(void **state)
{
	(void)state;
	check_tcp_fixture("sock_tcp4.bin", AF_INET);
}

static void test_fixture_tcp6(void **state)
{
	(void)state;
	check_tcp_fixture("sock_tcp6.bin", AF_INET6);
}

static void check_udp_fixture(const char *name, uint8_t family)
{
	struct fix_scan fs = {.ipproto = IPPROTO_UDP, .family = family};
	size_t len;
	uint8_t *buf = read_fixture(name, &len);

	assert_true(replay(buf, len, &fs) >= 1);
	free(buf);
	assert_int_equal(fs.bad, 0);
	assert_int_equal(fs.udp_unconn, 1);
}

static void test_fixture_udp4(void **state)
{
	(void)state;
	check_udp_fixture("sock_udp4.bin", AF_INET);
}

static void test_fixture_udp6(void **state)
{
	(void)state;
	check_udp_fixture("sock_udp6.bin", AF_INET6);
}

/* ---- live: sockets of this process on 127.0.0.1 -------------------------- */

struct live {
	int lfd, cfd, afd, ufd;
	uint16_t lport, cport, uport;
	uint32_t lino, cino, aino, uino;
};

static uint32_t ino_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint32_t)st.st_ino;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	return ntohs(sa.sin_port);
}

static int setup_live(void **state)
{
	struct live *lv = calloc(1, sizeof(*lv));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char byte = 'x';

	if (!lv)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	lv->cfd = socket(AF_INET, SOCK_STREAM, 0);
	lv->ufd = socket(AF_INET, SOCK_DGRAM, 0);
	if (lv->lfd < 0 || lv->cfd < 0 || lv->ufd < 0 ||
	    bind(lv->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lv->lfd, 8) < 0)
		return -1;
	lv->lport = port_of(lv->lfd);
	sa.sin_port = htons(lv->lport);
	if (connect(lv->cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	lv->afd = accept(lv->lfd, NULL, NULL);
	if (lv->afd < 0 || write(lv->cfd, &byte, 1) != 1 || read(lv->afd, &byte, 1) != 1)
		return -1;
	sa.sin_port = 0;
	if (bind(lv->ufd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	lv->cport = port_of(lv->cfd);
	lv->uport = port_of(lv->ufd);
	lv->lino = ino_of(lv->lfd);
	lv->cino = ino_of(lv->cfd);
	lv->aino = ino_of(lv->afd);
	lv->uino = ino_of(lv->ufd);
	*state = lv;
	return 0;
}

static int teardown_live(void **state)
{
	struct live *lv = *state;

	close(lv->lfd);
	close(lv->cfd);
	close(lv->afd);
	close(lv->ufd);
	free(lv);
	return 0;
}

struct live_seen {
	const struct live *lv;
	unsigned int n, other_port;
	uint16_t want_sport, want_dport;
	int listen_ok, client_ok, server_ok, udp_ok;
};

static int live_rec(const struct nlg_sock *s, void *data)
{
	struct live_seen *ls = data;
	const struct live *lv = ls->lv;
	int info = (s->present & NLG_SOCK_HAS_INFO) && s->info.tcpi_state == s->state &&
		   (s->present & NLG_SOCK_HAS_CONG) && s->cong[0];

	ls->n++;
	if ((ls->want_sport && s->sport != ls->want_sport) ||
	    (ls->want_dport && s->dport != ls->want_dport))
		ls->other_port++;
	if (s->inode == lv->lino)
		ls->listen_ok = s->state == 10 && s->sport == lv->lport && s->dport == 0 &&
				s->proto == NLG_SOCK_TCP && s->family == AF_INET;
	if (s->inode == lv->cino)
		ls->client_ok = s->state == 1 && s->sport == lv->cport && s->dport == lv->lport &&
				info && s->info.tcpi_rtt > 0 && s->src.bytes[0] == 127;
	if (s->inode == lv->aino)
		ls->server_ok = s->state == 1 && s->sport == lv->lport && s->dport == lv->cport &&
				info && s->info.tcpi_bytes_received == 1;
	if (s->inode == lv->uino)
		ls->udp_ok = s->state == 7 && s->proto == NLG_SOCK_UDP && s->sport == lv->uport &&
			     !(s->present & NLG_SOCK_HAS_INFO) && (s->present & NLG_SOCK_HAS_SKMEM);
	return NLG_CB_OK;
}

static struct nlg_sockdiag_req live_req(void)
{
	struct nlg_sockdiag_req req = {.families = NLG_SD_INET, .protos = NLG_SD_TCP | NLG_SD_UDP};
	struct nlg_err err;

	assert_int_equal(nlg_sockdiag_parse_ext("tcp_info,cong,skmem", &req.ext, &err), 0);
	return req;
}

static void test_live_poll(void **state)
{
	struct live *lv = *state;
	struct nlg_err err = {{0}};
	struct nlg_sockdiag *sd = nlg_sockdiag_open(NULL, &err);
	struct nlg_sockdiag_req req = live_req();
	struct live_seen ls = {.lv = lv};
	int rc;

	assert_non_null(sd);
	rc = nlg_sockdiag_poll(sd, &req, live_rec, &ls, &err);
	if (rc < 0)
		fail_msg("poll: %s", err.msg);
	assert_true(ls.listen_ok);
	assert_true(ls.client_ok);
	assert_true(ls.server_ok);
	assert_true(ls.udp_ok);
	assert_int_equal(nlg_sockdiag_stats(sd)->records, ls.n);
	assert_int_equal(nlg_sockdiag_stats(sd)->malformed, 0);
	nlg_sockdiag_close(sd);
}

static void test_live_step(void **state)
{
	struct live *lv = *state;
	struct nlg_err err = {{0}};
	struct nlg_sockdiag *sd = nlg_sockdiag_open(NULL, &err);
	struct nlg_sockdiag_req req = live_req();
	struct live_seen ls = {.lv = lv};
	int rc;

	assert_non_null(sd);
	assert_int_equal(nlg_sockdiag_start(sd, &req, &err), 0);
	for (;;) {
		struct pollfd pfd = {.fd = nlg_sockdiag_fd(sd), .events = POLLIN};

		rc = nlg_sockdiag_step(sd, live_rec, &ls, &err);
		if (rc <= 0)
			break;
		assert_int_equal(poll(&pfd, 1, 5000), 1);
	}
	if (rc < 0)
		fail_msg("step: %s", err.msg);
	assert_true(ls.listen_ok);
	assert_true(ls.client_ok);
	assert_true(ls.server_ok);
	assert_true(ls.udp_ok);
	assert_int_equal(nlg_sockdiag_stats(sd)->polls, 1);
	nlg_sockdiag_close(sd);
}

/* The kernel accepts our bytecode and filters with it. */
static void test_live_port_filter(void **state)
{
	struct live *lv = *state;
	struct nlg_err err = {{0}};
	struct nlg_sockdiag *sd = nlg_sockdiag_open(NULL, &err);
	struct nlg_sockdiag_req req = live_req();
	struct live_seen ls = {.lv = lv};

	assert_non_null(sd);
	req.protos = NLG_SD_TCP;
	req.sport = ls.want_sport = lv->lport;
	if (nlg_sockdiag_poll(sd, &req, live_rec, &ls, &err) < 0)
		fail_msg("poll sport: %s", err.msg);
	assert_int_equal(ls.other_port, 0);
	assert_true(ls.listen_ok && ls.server_ok);
	assert_false(ls.client_ok);

	ls = (struct live_seen){.lv = lv};
	req.sport = 0;
	req.dport = ls.want_dport = lv->lport;
	if (nlg_sockdiag_poll(sd, &req, live_rec, &ls, &err) < 0)
		fail_msg("poll dport: %s", err.msg);
	assert_int_equal(ls.other_port, 0);
	assert_true(ls.client_ok);
	assert_false(ls.listen_ok || ls.server_ok);

	ls = (struct live_seen){.lv = lv};
	req.sport = ls.want_sport = lv->cport;
	if (nlg_sockdiag_poll(sd, &req, live_rec, &ls, &err) < 0)
		fail_msg("poll both: %s", err.msg);
	assert_int_equal(ls.n, 1);
	assert_true(ls.client_ok);

	ls = (struct live_seen){.lv = lv};
	req.states = 1u << 10; /* listen only: the client is not in it */
	assert_int_equal(nlg_sockdiag_poll(sd, &req, live_rec, &ls, &err), 0);
	assert_int_equal(ls.n, 0);
	nlg_sockdiag_close(sd);
}

struct dual_seen {
	uint32_t ino4, ino6, cino, aino;
	uint16_t port;
	unsigned int n, v4, v6, client, server, bad, wrong_port, want_port;
};

static int dual_rec(const struct nlg_sock *s, void *data)
{
	struct dual_seen *ds = data;
	uint8_t lo6[16] = {0};

	lo6[15] = 1;
	ds->n++;
	if (s->proto != NLG_SOCK_TCP || (s->family != AF_INET && s->family != AF_INET6))
		ds->bad++;
	if (ds->want_port && s->sport != ds->want_port)
		ds->wrong_port++;
	if (s->inode == ds->ino4) {
		ds->v4++;
		if (s->family != AF_INET || s->state != 10 || s->sport != ds->port ||
		    s->src.bytes[0] != 127)
			ds->bad++;
	}
	if (s->inode == ds->ino6) {
		ds->v6++;
		if (s->family != AF_INET6 || s->state != 10 || s->sport != ds->port ||
		    memcmp(s->src.bytes, lo6, 16) != 0 || !(s->present & NLG_SOCK_HAS_INFO))
			ds->bad++;
	}
	ds->client += s->inode == ds->cino;
	ds->server += s->inode == ds->aino;
	return NLG_CB_OK;
}

/* The data messages of a raw recording: how many, and how many of type. */
static void raw_types(int fd, uint16_t type, unsigned int *all, unsigned int *typed)
{
	static uint8_t buf[1 << 20];
	ssize_t len = pread(fd, buf, sizeof(buf), 0);
	size_t off = 0;

	assert_true(len > 0 && len < (ssize_t)sizeof(buf));
	*all = *typed = 0;
	while (off < (size_t)len) {
		const struct nlmsghdr *nlh = (const void *)(buf + off);

		assert_true(mnl_nlmsg_ok(nlh, (int)((size_t)len - off)));
		off += NLMSG_ALIGN(nlh->nlmsg_len);
		if (nlh->nlmsg_type < NLMSG_MIN_TYPE)
			continue;
		(*all)++;
		*typed += nlh->nlmsg_type == type;
	}
}

/* TCP on both families (the compat dump on this kernel): our IPv4 and IPv6
 * listeners on one port come exactly once each, the established pair of
 * the fixture too, and the kernel applies the port filter to both. */
static void test_live_both_families(void **state)
{
	struct live *lv = *state;
	struct nlg_err err = {{0}};
	struct nlg_sockdiag *sd = nlg_sockdiag_open(NULL, &err);
	struct nlg_sockdiag_req req = {.protos = NLG_SD_TCP, .ext = EXT(INET_DIAG_INFO)};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct dual_seen ds = {.cino = lv->cino, .aino = lv->aino};
	char rawname[] = "/tmp/test_sockdiag_raw.XXXXXX";
	unsigned int all, typed;
	int fd4, fd6, rawfd, one = 1;

	assert_non_null(sd);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd4 = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd4 >= 0);
	assert_int_equal(bind(fd4, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd4, 4), 0);
	ds.port = port_of(fd4);
	fd6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd6 < 0) {
		close(fd4);
		nlg_sockdiag_close(sd);
		skip(); /* no IPv6 in this kernel */
	}
	assert_int_equal(setsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)), 0);
	sa6.sin6_port = htons(ds.port);
	if (bind(fd6, (struct sockaddr *)&sa6, sizeof(sa6)) < 0) {
		print_message("no ::1 here (%s)\n", strerror(errno));
		close(fd6);
		close(fd4);
		nlg_sockdiag_close(sd);
		skip();
	}
	assert_int_equal(listen(fd6, 4), 0);
	ds.ino4 = ino_of(fd4);
	ds.ino6 = ino_of(fd6);

	rawfd = mkstemp(rawname);
	assert_true(rawfd >= 0);
	unlink(rawname);
	nlg_nl_set_raw(nlg_sockdiag_nl(sd), rawfd);
	if (nlg_sockdiag_poll(sd, &req, dual_rec, &ds, &err) < 0)
		fail_msg("poll: %s", err.msg);
	nlg_nl_set_raw(nlg_sockdiag_nl(sd), -1);
	assert_int_equal(ds.bad, 0);
	assert_int_equal(ds.v4, 1);
	assert_int_equal(ds.v6, 1);
	assert_int_equal(ds.client, 1);
	assert_int_equal(ds.server, 1);
	raw_types(rawfd, TCPDIAG_GETSOCK, &all, &typed);
	assert_int_equal(all, ds.n);
	if (nlg_sockdiag_stats(sd)->fallbacks == 0) {
		/* one walk: every reply answers the compat request */
		assert_int_equal(typed, all);
	} else {
		print_message("this kernel refused TCPDIAG_GETSOCK; v2 requests were used\n");
		assert_int_equal(typed, 0);
	}
	close(rawfd);

	/* the port filter (bytecode after the v1 header) holds for both families */
	ds.n = ds.v4 = ds.v6 = ds.client = ds.server = 0;
	req.sport = ds.want_port = ds.port;
	if (nlg_sockdiag_poll(sd, &req, dual_rec, &ds, &err) < 0)
		fail_msg("poll sport: %s", err.msg);
	assert_int_equal(ds.bad, 0);
	assert_int_equal(ds.wrong_port, 0);
	assert_int_equal(ds.v4, 1);
	assert_int_equal(ds.v6, 1);
	assert_int_equal(ds.client + ds.server, 0);

	/* the step driver gets the same */
	ds.n = ds.v4 = ds.v6 = 0;
	assert_int_equal(nlg_sockdiag_start(sd, &req, &err), 0);
	for (;;) {
		struct pollfd pfd = {.fd = nlg_sockdiag_fd(sd), .events = POLLIN};
		int rc = nlg_sockdiag_step(sd, dual_rec, &ds, &err);

		if (rc < 0)
			fail_msg("step: %s", err.msg);
		if (rc == 0)
			break;
		assert_int_equal(poll(&pfd, 1, 5000), 1);
	}
	assert_int_equal(ds.wrong_port, 0);
	assert_int_equal(ds.v4, 1);
	assert_int_equal(ds.v6, 1);
	assert_int_equal(nlg_sockdiag_stats(sd)->failed, 0);
	close(fd6);
	close(fd4);
	nlg_sockdiag_close(sd);
}

struct mptcp_seen {
	uint32_t ino;
	uint16_t port;
	unsigned int n, found, not_mptcp;
};

static int mptcp_rec(const struct nlg_sock *s, void *data)
{
	struct mptcp_seen *ms = data;

	ms->n++;
	if (s->proto != NLG_SOCK_MPTCP)
		ms->not_mptcp++;
	if (s->inode == ms->ino && s->state == 10 && s->sport == ms->port &&
	    !(s->present & NLG_SOCK_HAS_INFO))
		ms->found++;
	return NLG_CB_OK;
}

/* MPTCP alone: an MPTCP listener of ours shows up (and only MPTCP sockets
 * do) when the kernel has MPTCP; without mptcp_diag, a clear error. */
static void test_live_mptcp_alone(void **state)
{
	struct nlg_err err = {{0}};
	struct nlg_sockdiag *sd = nlg_sockdiag_open(NULL, &err);
	struct nlg_sockdiag_req req = {.families = NLG_SD_INET, .protos = NLG_SD_MPTCP};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct mptcp_seen ms = {0};
	int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
	int rc;
	(void)state;

	assert_non_null(sd);
	assert_int_equal(nlg_sockdiag_parse_ext("all", &req.ext, &err), 0);
	if (fd >= 0) {
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(fd, 4), 0);
		ms.ino = ino_of(fd);
		ms.port = port_of(fd);
	}
	rc = nlg_sockdiag_poll(sd, &req, mptcp_rec, &ms, &err);
	if (rc < 0) {
		assert_true(rc == -ENOENT || rc == -EOPNOTSUPP);
		assert_non_null(strstr(err.msg, "mptcp"));
	} else {
		assert_int_equal(ms.not_mptcp, 0);
		if (fd >= 0)
			assert_int_equal(ms.found, 1);
		else
			print_message("no MPTCP sockets here (%s); dump ran empty\n",
				      strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	nlg_sockdiag_close(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode_ipv4_header),
	    cmocka_unit_test(test_decode_ipv6_header),
	    cmocka_unit_test(test_decode_proto_arg),
	    cmocka_unit_test(test_decode_each_attr),
	    cmocka_unit_test(test_decode_skmem_lengths),
	    cmocka_unit_test(test_decode_cong_bounded),
	    cmocka_unit_test(test_decode_tcp_info_exact),
	    cmocka_unit_test(test_decode_tcp_info_short),
	    cmocka_unit_test(test_decode_tcp_info_long),
	    cmocka_unit_test(test_decode_info_only_tcp),
	    cmocka_unit_test(test_decode_truncated_msg),
	    cmocka_unit_test(test_decode_attr_past_end),
	    cmocka_unit_test(test_decode_short_known_attr),
	    cmocka_unit_test(test_decode_no_stale_data),
	    cmocka_unit_test(test_parse_states),
	    cmocka_unit_test(test_parse_ext),
	    cmocka_unit_test(test_state_names),
	    cmocka_unit_test_setup_teardown(test_poll_order, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_order, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_fallback_einval, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_fallback_einval, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_fallback_eopnotsupp, setup_fake,
					    teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_fallback_enoent, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_fallback_after_records, setup_fake,
					    teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_fallback_after_records, setup_fake,
					    teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_fallback_no_tcp, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_fallback_no_tcp, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_subset_and_states, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_port_bytecode, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_skip_missing, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_skip_missing, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_intr_retry, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_intr_retry, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_intr_give_up, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_intr_give_up, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_poll_stop_error, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_stop_error, setup_fake, teardown_fake),
	    cmocka_unit_test_setup_teardown(test_step_busy, setup_fake, teardown_fake),
	    cmocka_unit_test(test_fixture_tcp4),
	    cmocka_unit_test(test_fixture_tcp6),
	    cmocka_unit_test(test_fixture_udp4),
	    cmocka_unit_test(test_fixture_udp6),
	    cmocka_unit_test_setup_teardown(test_live_poll, setup_live, teardown_live),
	    cmocka_unit_test_setup_teardown(test_live_step, setup_live, teardown_live),
	    cmocka_unit_test_setup_teardown(test_live_port_filter, setup_live, teardown_live),
	    cmocka_unit_test_setup_teardown(test_live_both_families, setup_live, teardown_live),
	    cmocka_unit_test_setup_teardown(test_live_mptcp_alone, setup_live, teardown_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
