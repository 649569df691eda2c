/* Writes the seed corpus of fuzz_decode (tests/fuzz/corpus/decode/): a
 * well-formed frame of each link type and header shape, as the input format
 * of fuzz_decode.c (a ctl byte, then the frame), each checked to decode whole.
 *   fuzz_gen_decode OUTDIR */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "nlgate/packet.h"

struct fb {
	uint8_t b[256];
	size_t n;
};

static void u8(struct fb *f, unsigned v)
{
	if (f->n < sizeof(f->b))
		f->b[f->n++] = (uint8_t)v;
}

static void u16(struct fb *f, unsigned v)
{
	u8(f, v >> 8);
	u8(f, v);
}

static void u32(struct fb *f, uint32_t v)
{
	u16(f, v >> 16);
	u16(f, v & 0xffff);
}

static void zeros(struct fb *f, size_t n)
{
	while (n--)
		u8(f, 0);
}

static void addr(struct fb *f, int family, const char *text)
{
	uint8_t a[16] = {0};

	inet_pton(family, text, a);
	for (int i = 0; i < (family == AF_INET ? 4 : 16); i++)
		u8(f, a[i]);
}

static void eth(struct fb *f, unsigned type)
{
	u32(f, 0x02000000);
	u16(f, 0x0002);
	u32(f, 0x02000000);
	u16(f, 0x0001);
	u16(f, type);
}

static void ip4(struct fb *f, unsigned ihl, unsigned tot, unsigned frag, unsigned proto)
{
	u8(f, 0x40 | ihl);
	u8(f, 0);
	u16(f, tot);
	u16(f, 0x4242);
	u16(f, frag);
	u8(f, 64);
	u8(f, proto);
	u16(f, 0);
	addr(f, AF_INET, "192.0.2.1");
	addr(f, AF_INET, "198.51.100.2");
	for (unsigned i = 5; i < ihl; i++)
		u32(f, 0x01010101);
}

static void ip6(struct fb *f, unsigned plen, unsigned nh)
{
	u32(f, 0x60000000);
	u16(f, plen);
	u8(f, nh);
	u8(f, 64);
	addr(f, AF_INET6, "2001:db8::1");
	addr(f, AF_INET6, "2001:db8::2");
}

static void tcp(struct fb *f, unsigned flags)
{
	u16(f, 40000);
	u16(f, 443);
	u32(f, 1000);
	u32(f, 2000);
	u8(f, 5 << 4);
	u8(f, flags);
	u16(f, 65535);
	u32(f, 0);
}

static void udp(struct fb *f)
{
	u16(f, 5353);
	u16(f, 53);
	u16(f, 8);
	u16(f, 0);
}

/* ctl: link | has_vlan << 3 | has_rxhash << 4 | pkttype << 5 (fuzz_decode.c) */
static int write_seed(const char *dir, const char *name, unsigned ctl, const struct fb *f)
{
	struct nlg_pkt_meta m = {.ethertype = 0x86dd};
	struct nlg_pkt p;
	char path[512];
	FILE *out;
	int ok;

	nlg_pkt_decode(&p, (enum nlg_link)(ctl & 7), f->b, f->n, &m);
	if (p.malformed || p.truncated || !(p.present & NLG_PKT_HAS_IP)) {
		fprintf(stderr, "fuzz_gen_decode: %s does not decode whole\n", name);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	out = fopen(path, "wb");
	if (!out) {
		fprintf(stderr, "fuzz_gen_decode: %s: %s\n", path, strerror(errno));
		return -1;
	}
	ok = fputc((int)ctl, out) != EOF && fwrite(f->b, 1, f->n, out) == f->n;
	if (fclose(out) || !ok) {
		fprintf(stderr, "fuzz_gen_decode: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fb f;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
#define SEED(name, ctl, build)                                                                     \
	do {                                                                                       \
		memset(&f, 0, sizeof(f));                                                          \
		build;                                                                             \
		rc |= write_seed(argv[1], name, ctl, &f);                                          \
	} while (0)

	SEED("ether-tcp4-syn", NLG_LINK_ETHER, (eth(&f, 0x0800), ip4(&f, 5, 40, 0, 6), tcp(&f, 2)));
	SEED("ether-tcp4-options-fin", NLG_LINK_ETHER | 1 << 4,
	     (eth(&f, 0x0800), ip4(&f, 6, 44, 0x4000, 6), tcp(&f, 0x11)));
	SEED("ether-vlan-udp4", NLG_LINK_ETHER,
	     (eth(&f, 0x8100), u32(&f, 100 << 16 | 0x0800), ip4(&f, 5, 28, 0, 17), udp(&f)));
	SEED("ether-qinq-tcp6", NLG_LINK_ETHER | 1 << 3,
	     (eth(&f, 0x88a8), u32(&f, 10u << 16 | 0x8100), u32(&f, 20u << 16 | 0x86dd),
	      ip6(&f, 20, 6), tcp(&f, 0x18)));
	SEED("ether-frag4-first", NLG_LINK_ETHER,
	     (eth(&f, 0x0800), ip4(&f, 5, 1500, 0x2000, 17), udp(&f), zeros(&f, 32)));
	SEED("ether-frag4-later", NLG_LINK_ETHER,
	     (eth(&f, 0x0800), ip4(&f, 5, 60, 185, 17), zeros(&f, 40)));
	SEED("ether-hbh-frag6-udp", NLG_LINK_ETHER,
	     (eth(&f, 0x86dd), ip6(&f, 24, 0), u8(&f, 44), zeros(&f, 7), u8(&f, 17), u8(&f, 0),
	      u16(&f, 1), u32(&f, 0xdeadbeef), udp(&f)));
	SEED("ether-ah6-tcp", NLG_LINK_ETHER,
	     (eth(&f, 0x86dd), ip6(&f, 36, 51), u8(&f, 6), u8(&f, 2), zeros(&f, 14), tcp(&f, 4)));
	SEED("ether-icmp4", NLG_LINK_ETHER,
	     (eth(&f, 0x0800), ip4(&f, 5, 28, 0, 1), u16(&f, 0x0800), zeros(&f, 6)));
	SEED("ether-icmp6", NLG_LINK_ETHER,
	     (eth(&f, 0x86dd), ip6(&f, 8, 58), u16(&f, 0x8000), zeros(&f, 6)));
	SEED("sll-udp4", NLG_LINK_SLL | 4 << 5,
	     (u16(&f, 4), u16(&f, 1), u16(&f, 6), zeros(&f, 8), u16(&f, 0x0800),
	      ip4(&f, 5, 28, 0, 17), udp(&f)));
	SEED("sll2-tcp6", NLG_LINK_SLL2,
	     (u16(&f, 0x86dd), u16(&f, 0), u32(&f, 7), u16(&f, 1), u8(&f, 1), u8(&f, 6),
	      zeros(&f, 8), ip6(&f, 20, 6), tcp(&f, 0x10)));
	SEED("raw-udp4", NLG_LINK_RAW, (ip4(&f, 5, 28, 0, 17), udp(&f)));
	SEED("raw-tcp6", NLG_LINK_RAW, (ip6(&f, 20, 6), tcp(&f, 0x12)));
	SEED("net-sctp6", NLG_LINK_NET | 0x40,
	     (ip6(&f, 12, 132), u16(&f, 1), u16(&f, 2), zeros(&f, 8)));
	return rc ? 1 : 0;
}
