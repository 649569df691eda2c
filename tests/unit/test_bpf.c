/* core/bpf.c: tcpdump expressions compiled and run on crafted frames, the move
 * for sockets without a link header (ancillary loads, shifted offsets, refusals),
 * `tcpdump -ddd` text parsed and refused, filters turned into fanout selectors,
 * and fanout specs checked. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nlgate/bpf.h"
#include "nlgate/capture.h"

#define AD_PROTOCOL_K 0xfffff000u /* SKF_AD_OFF + SKF_AD_PROTOCOL */
#define AD_PKTTYPE_K  0xfffff004u /* SKF_AD_OFF + SKF_AD_PKTTYPE */

/* Ethernet + IPv4 (20 bytes) + UDP or TCP header, ports given. */
static size_t frame4(uint8_t *f, uint8_t proto, uint16_t sport, uint16_t dport)
{
	size_t l4 = proto == 6 ? 20 : 8;

	memset(f, 0, 14 + 20 + l4);
	f[12] = 0x08; /* IPv4 */
	f[14] = 0x45;
	f[16] = 0, f[17] = (uint8_t)(20 + l4);
	f[22] = 64;
	f[23] = proto;
	memcpy(f + 26, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	f[34] = (uint8_t)(sport >> 8), f[35] = (uint8_t)sport;
	f[36] = (uint8_t)(dport >> 8), f[37] = (uint8_t)dport;
	if (proto == 6)
		f[46] = 0x50, f[47] = 0x02; /* doff 5, SYN */
	return 14 + 20 + l4;
}

static void compile_and_run(void **state)
{
	struct nlg_bpf p;
	struct nlg_err err = {{0}};
	uint8_t f[128];
	size_t n;

	(void)state;
	assert_int_equal(nlg_bpf_compile(&p, "", NLG_BPF_ETHER, 256, &err), 0);
	assert_int_equal(p.len, 1);
	n = frame4(f, 17, 1000, 53);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 256);
	nlg_bpf_free(&p);

	assert_int_equal(nlg_bpf_compile(&p, "udp port 53", NLG_BPF_ETHER, 128, &err), 0);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 128);
	n = frame4(f, 17, 1000, 54);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 0);
	n = frame4(f, 6, 1000, 53);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 0);
	nlg_bpf_free(&p);

	assert_int_equal(nlg_bpf_compile(&p, "udp port", NLG_BPF_ETHER, 128, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "filter 'udp port'"));
	assert_null(p.insns);
}

/* Without a link header: the protocol test reads the kernel's ancillary
 * field, the IP header is read 16 bytes earlier, and a test of another
 * link-layer field is refused. */
static void moved_for_net(void **state)
{
	struct nlg_bpf eth, net;
	struct nlg_err err = {{0}};
	int ad = 0;

	(void)state;
	assert_int_equal(nlg_bpf_compile(&eth, "ip and udp", NLG_BPF_SLL, 256, &err), 0);
	assert_int_equal(nlg_bpf_compile(&net, "ip and udp", NLG_BPF_NET, 256, &err), 0);
	assert_int_equal(eth.len, net.len);
	for (unsigned i = 0; i < net.len; i++) {
		struct nlg_bpf_insn a = eth.insns[i], b = net.insns[i];
		assert_int_equal(a.code, b.code);
		if ((a.code & 0x07) != 0x00 || (a.code & 0xe0) != 0x20) /* BPF_LD|BPF_ABS */
			continue;
		if (a.k == 14) {
			assert_int_equal(b.k, AD_PROTOCOL_K);
			ad++;
		} else {
			assert_true(a.k >= 16);
			assert_int_equal(b.k, a.k - 16);
		}
	}
	assert_int_equal(ad, 1);
	nlg_bpf_free(&eth);
	nlg_bpf_free(&net);

	assert_int_equal(nlg_bpf_compile(&net, "inbound", NLG_BPF_NET, 256, &err), 0);
	for (unsigned i = 0; i < net.len; i++)
		ad += net.insns[i].k == AD_PKTTYPE_K;
	assert_int_equal(ad, 2);
	nlg_bpf_free(&net);

	/* link-layer addresses: not there to read */
	assert_int_equal(nlg_bpf_compile(&net, "ether[6] == 1", NLG_BPF_NET, 256, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "link-layer header"));
}

static void parse_text(void **state)
{
	struct nlg_bpf p;
	struct nlg_err err = {{0}};
	uint8_t f[128];
	size_t n = frame4(f, 17, 1, 2);

	(void)state;
	/* tcpdump -ddd ip: accept IPv4 with 1 */
	assert_int_equal(nlg_bpf_parse(&p, "4,40 0 0 12,21 0 1 2048,6 0 0 1,6 0 0 0", &err), 0);
	assert_int_equal(p.len, 4);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 1);
	f[12] = 0x86, f[13] = 0xdd;
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 0);
	nlg_bpf_free(&p);
	/* newlines, as tcpdump prints it */
	assert_int_equal(nlg_bpf_parse(&p, "2\n40 0 0 12\n6 0 0 7\n", &err), 0);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 7);
	nlg_bpf_free(&p);

	assert_int_equal(nlg_bpf_parse(&p, "abc", &err), -EINVAL);
	assert_int_equal(nlg_bpf_parse(&p, "0,6 0 0 1", &err), -EINVAL);
	assert_int_equal(nlg_bpf_parse(&p, "3,6 0 0 1,6 0 0 0", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "3 instructions announced"));
	assert_int_equal(nlg_bpf_parse(&p, "1,6 0 0 1,6 0 0 0", &err), -EINVAL);
	assert_int_equal(nlg_bpf_parse(&p, "1,6 0 0", &err), -EINVAL);
	assert_int_equal(nlg_bpf_parse(&p, "1,70000 0 0 1", &err), -EINVAL);
	/* no return at the end: does not validate */
	assert_int_equal(nlg_bpf_parse(&p, "1,40 0 0 12", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "validate"));
	assert_null(p.insns);
}

static void selector(void **state)
{
	struct nlg_bpf p;
	struct nlg_err err = {{0}};
	uint8_t f[128];
	size_t n;

	(void)state;
	assert_int_equal(nlg_bpf_compile(&p, "udp", NLG_BPF_ETHER, 65535, &err), 0);
	nlg_bpf_to_selector(&p);
	n = frame4(f, 17, 1, 2);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 1);
	n = frame4(f, 6, 1, 2);
	assert_int_equal(nlg_bpf_run(&p, f, (uint32_t)n, (uint32_t)n), 0);
	nlg_bpf_free(&p);
}

static void fanout_specs(void **state)
{
	struct nlg_err err = {{0}};
	static const char *const good[] = {
	    "hash",
	    "hash,defrag",
	    "lb",
	    "cpu",
	    "rollover",
	    "rnd",
	    "qm",
	    "defrag,hash",
	    "hash,rollover,ignore-outgoing",
	    "cbpf:udp port 53",
	    "defrag,cbpf:4,40 0 0 12,6 0 0 1",
	    "ebpf:/sys/fs/bpf/x",
	    "ebpf:fd=3",
	    "defrag",
	};
	static const char *const bad[] = {
	    "hsh",	 "hash,lb",    "hash,",		"rollover,rollover", "cbpf:",
	    "ebpf:fd=x", "ebpf:fd=-1", "hash,cbpf:udp", "hash,defrag,bogus",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int r = nlg_capture_parse_fanout(good[i], &err);
		if (r)
			fail_msg("'%s' refused: %s", good[i], err.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (nlg_capture_parse_fanout(bad[i], &err) == 0)
			fail_msg("'%s' taken", bad[i]);
	assert_int_equal(nlg_capture_parse_fanout("hsh", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad fanout 'hsh' at 'hsh'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(compile_and_run), cmocka_unit_test(moved_for_net),
	    cmocka_unit_test(parse_text),      cmocka_unit_test(selector),
	    cmocka_unit_test(fanout_specs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
