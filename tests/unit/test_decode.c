/* core/decode.c: frames built byte by byte here, one per link type and header
 * shape, decoded and checked field by field; then every prefix of a frame
 * (each in a buffer of exactly that size, so ASan sees any over-read), and
 * lengths that cannot be. Also the pkt schema: the JSON of a decoded TCP
 * segment, exactly. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "nlgate/encode.h"
#include "nlgate/packet.h"

/* ---- a frame, written big-endian byte by byte ------------------------------- */

struct fb {
	uint8_t b[512];
	size_t n;
};

static void u8(struct fb *f, unsigned v)
{
	assert_true(f->n < sizeof(f->b));
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

static void put(struct fb *f, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		u8(f, ((const uint8_t *)p)[i]);
}

static void zeros(struct fb *f, size_t n)
{
	while (n--)
		u8(f, 0);
}

static void eth(struct fb *f, unsigned type)
{
	static const uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 2}, smac[6] = {0x02, 0, 0, 0, 0, 1};

	put(f, dmac, 6);
	put(f, smac, 6);
	u16(f, type);
}

static void vlan_tag(struct fb *f, unsigned tci, unsigned next)
{
	u16(f, tci);
	u16(f, next);
}

static void addr(struct fb *f, int family, const char *text)
{
	uint8_t a[16];

	assert_int_equal(inet_pton(family, text, a), 1);
	put(f, a, family == AF_INET ? 4 : 16);
}

/* An IPv4 header of ihl 4-byte words (options are NOPs) and total length tot. */
static void ip4(struct fb *f, unsigned ihl, unsigned tot, unsigned id, unsigned frag,
		unsigned proto, const char *src, const char *dst)
{
	u8(f, 0x40 | ihl);
	u8(f, 0);
	u16(f, tot);
	u16(f, id);
	u16(f, frag);
	u8(f, 64); /* ttl */
	u8(f, proto);
	u16(f, 0); /* checksum: not ours to check */
	addr(f, AF_INET, src);
	addr(f, AF_INET, dst);
	for (unsigned i = 5; i < ihl; i++)
		u32(f, 0x01010101);
}

static void ip6(struct fb *f, unsigned plen, unsigned nh, const char *src, const char *dst)
{
	u32(f, 0x60000000);
	u16(f, plen);
	u8(f, nh);
	u8(f, 57); /* hop limit */
	addr(f, AF_INET6, src);
	addr(f, AF_INET6, dst);
}

/* TCP with doff 4-byte words (options are NOPs). */
static void tcp(struct fb *f, unsigned sport, unsigned dport, uint32_t seq, uint32_t ack,
		unsigned doff, unsigned flags, unsigned win)
{
	u16(f, sport);
	u16(f, dport);
	u32(f, seq);
	u32(f, ack);
	u8(f, doff << 4);
	u8(f, flags);
	u16(f, win);
	u16(f, 0);
	u16(f, 0);
	for (unsigned i = 5; i < doff; i++)
		u32(f, 0x01010101);
}

static void udp(struct fb *f, unsigned sport, unsigned dport, unsigned len)
{
	u16(f, sport);
	u16(f, dport);
	u16(f, len);
	u16(f, 0);
}

static struct nlg_addr A(const char *text) {
	struct nlg_addr a;

	memset(&a, 0, sizeof(a));
	a.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(a.family, text, a.bytes), 1);
	return a;
}

#define assert_addr(got, text)                                                                     \
	do {                                                                                       \
		struct nlg_addr want_ = A(text);                                                   \
		assert_memory_equal(&(got), &want_, sizeof(want_));                                \
	} while (0)

/* Decode from a heap buffer of exactly n bytes: one byte more read is ASan's. */
static void
decode(struct nlg_pkt *p, enum nlg_link link, const void *frame, size_t n,
       const struct nlg_pkt_meta *meta)
{
	uint8_t *copy = malloc(n ? n : 1);

	assert_non_null(copy);
	memcpy(copy, frame, n);
	nlg_pkt_decode(p, link, copy, n, meta);
	free(copy);
}

static const uint64_t IPTCP = NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS | NLG_PKT_HAS_TCP;

/* ---- well-formed frames ----------------------------------------------------- */

static void ether_ipv4_tcp(void **state)
{
	struct nlg_pkt_meta m = {.time_ns = 1700000000123456789ull,
				 .wire_len = 1514,
				 .ifindex = 3,
				 .rxhash = 0xabcdef01,
				 .has_rxhash = 1,
				 .pkttype = NLG_DIR_OUTGOING,
				 .worker = 2};
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x0800);
	ip4(&f, 5, 40, 0x1234, 0x4000 /* DF */, 6, "192.0.2.1", "198.51.100.7");
	tcp(&f, 40000, 443, 0x01020304, 0xa0b0c0d0, 5, NLG_TCP_SYN | NLG_TCP_ACK, 64240);
	zeros(&f, 6); /* Ethernet pads to 60 bytes: past the IP total length */
	assert_int_equal(f.n, 60);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, &m);

	assert_int_equal(p.present, IPTCP | NLG_PKT_HAS_RXHASH);
	assert_int_equal(p.time_ns, 1700000000123456789ull);
	assert_int_equal(p.ifindex, 3);
	assert_int_equal(p.wire_len, 1514);
	assert_int_equal(p.cap_len, 60);
	assert_int_equal(p.rxhash, 0xabcdef01);
	assert_int_equal(p.direction, NLG_DIR_OUTGOING);
	assert_int_equal(p.worker, 2);
	assert_int_equal(p.truncated, 0);
	assert_int_equal(p.malformed, 0);
	assert_int_equal(p.ethertype, 0x0800);
	assert_int_equal(p.family, AF_INET);
	assert_addr(p.src, "192.0.2.1");
	assert_addr(p.dst, "198.51.100.7");
	assert_int_equal(p.proto, 6);
	assert_int_equal(p.ttl, 64);
	assert_int_equal(p.frag_id, 0); /* DF alone: no fragment */
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 443);
	assert_int_equal(p.seq, 0x01020304);
	assert_int_equal(p.ack, 0xa0b0c0d0);
	assert_int_equal(p.tcp_flags, NLG_TCP_SYN | NLG_TCP_ACK);
	assert_int_equal(p.window, 64240);

	/* without meta: the capture length stands in for the wire length */
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.wire_len, 60);
	assert_int_equal(p.present, IPTCP);
}

/* The schema names every field once; the JSON of a pkt shows them all. */
static void pkt_json_is_exact(void **state)
{
	struct nlg_pkt_meta m = {.time_ns = 5, .ifindex = 2, .pkttype = NLG_DIR_HOST};
	const struct nlg_schema *s;
	struct fb f = {0};
	struct nlg_pkt p;
	struct nlg_buf b;
	char text[64];
	const char *want =
	    "{\"time_ns\":5,\"ifindex\":2,\"direction\":\"host\",\"wire_len\":58,\"cap_len\":58,"
	    "\"truncated\":false,\"malformed\":false,\"worker\":0,\"vlan\":9,\"ethertype\":2048,"
	    "\"family\":\"inet\",\"src\":\"10.0.0.1\",\"dst\":\"10.0.0.2\",\"proto\":\"tcp\","
	    "\"ttl\":64,\"sport\":1,\"dport\":2,\"tcp_flags\":[\"FIN\",\"PSH\",\"ACK\",\"CWR\"],"
	    "\"seq\":3,\"ack\":4,\"window\":5}";
	(void)state;

	nlg_schema_init();
	s = nlg_schema_find("pkt");
	assert_ptr_equal(s, &nlg_pkt_schema);
	assert_ptr_equal(nlg_schema_find("flow"), &nlg_flow_schema);
	eth(&f, 0x8100);
	vlan_tag(&f, 9, 0x0800);
	ip4(&f, 5, 40, 0, 0, 6, "10.0.0.1", "10.0.0.2");
	tcp(&f, 1, 2, 3, 4, 5, NLG_TCP_FIN | NLG_TCP_PSH | NLG_TCP_ACK | NLG_TCP_CWR, 5);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, &m);
	nlg_buf_init(&b);
	assert_int_equal(nlg_enc_json_record(&b, s, &p), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	nlg_buf_free(&b);
	/* a one-byte flags field is read as one byte, not four */
	nlg_field_text(&s->fields[nlg_schema_field(s, "tcp_flags")], &p, text, sizeof(text));
	assert_string_equal(text, "FIN|PSH|ACK|CWR");
	assert_int_equal(nlg_field_int(&s->fields[nlg_schema_field(s, "tcp_flags")], &p), 0x99);
	/* every field has a description with room for its unit */
	for (size_t i = 0; i < s->nfields; i++)
		assert_true(strlen(s->fields[i].desc) > 8);
}

static void ipv4_options_udp(void **state)
{
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x0800);
	ip4(&f, 7, 28 + 8 + 4, 1, 0, 17, "10.1.1.1", "10.2.2.2"); /* 8 bytes of options */
	udp(&f, 5353, 53, 12);
	u32(&f, 0xdeadbeef);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.proto, 17);
	assert_int_equal(p.sport, 5353);
	assert_int_equal(p.dport, 53);
	assert_false(p.truncated || p.malformed);
}

static void ipv4_fragments(void **state)
{
	struct fb f = {0}, g = {0};
	struct nlg_pkt p;
	(void)state;

	/* the first: offset 0, MF, and the UDP header */
	eth(&f, 0x0800);
	ip4(&f, 5, 1500, 0xbeef, 0x2000, 17, "10.0.0.1", "10.0.0.2");
	udp(&f, 1111, 2222, 3000);
	zeros(&f, 400); /* a snap length cut the data, no header */
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_FRAG | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.frag_id, 0xbeef);
	assert_int_equal(p.frag_offset, 0);
	assert_int_equal(p.frag_more, 1);
	assert_int_equal(p.sport, 1111);
	assert_int_equal(p.dport, 2222);
	assert_false(p.truncated || p.malformed);

	/* a later one: offset 1480 (185 units), last; its first bytes are data */
	eth(&g, 0x0800);
	ip4(&g, 5, 20 + 28, 0xbeef, 185, 17, "10.0.0.1", "10.0.0.2");
	udp(&g, 9, 9, 9);
	zeros(&g, 20);
	decode(&p, NLG_LINK_ETHER, g.b, g.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_FRAG);
	assert_int_equal(p.frag_id, 0xbeef);
	assert_int_equal(p.frag_offset, 1480);
	assert_int_equal(p.frag_more, 0);
	assert_int_equal(p.proto, 17);
	assert_int_equal(p.sport, 0);
	assert_false(p.truncated || p.malformed);
}

static void vlan_tags(void **state)
{
	struct nlg_pkt_meta m = {.has_vlan = 1, .vlan_tci = 0x2005 /* prio 1, id 5 */};
	struct fb f = {0}, g = {0}, h = {0};
	struct nlg_pkt p;
	(void)state;

	/* 802.1Q */
	eth(&f, 0x8100);
	vlan_tag(&f, 0xe064, 0x0800); /* prio 7, id 100 */
	ip4(&f, 5, 28, 0, 0, 17, "10.0.0.1", "10.0.0.2");
	udp(&f, 1, 2, 8);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_VLAN | NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.vlan, 100);
	assert_int_equal(p.ethertype, 0x0800);
	assert_int_equal(p.dport, 2);

	/* QinQ: 802.1ad outside, 802.1Q inside */
	eth(&g, 0x88a8);
	vlan_tag(&g, 10, 0x8100);
	vlan_tag(&g, 20, 0x86dd);
	ip6(&g, 8, 17, "2001:db8::1", "2001:db8::2");
	udp(&g, 7, 8, 8);
	decode(&p, NLG_LINK_ETHER, g.b, g.n, NULL);
	assert_int_equal(p.present,
			 NLG_PKT_HAS_VLAN | NLG_PKT_HAS_VLAN2 | NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.vlan, 10);
	assert_int_equal(p.vlan_inner, 20);
	assert_int_equal(p.ethertype, 0x86dd);
	assert_int_equal(p.sport, 7);

	/* the kernel took the outer tag off; the inner one is still there */
	eth(&h, 0x9100);
	vlan_tag(&h, 7, 0x0800);
	ip4(&h, 5, 28, 0, 0, 17, "10.0.0.1", "10.0.0.2");
	udp(&h, 1, 2, 8);
	decode(&p, NLG_LINK_ETHER, h.b, h.n, &m);
	assert_int_equal(p.present,
			 NLG_PKT_HAS_VLAN | NLG_PKT_HAS_VLAN2 | NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.vlan, 5);
	assert_int_equal(p.vlan_inner, 7);
	/* and a stripped tag alone */
	h.n = 12;
	u16(&h, 0x0800);
	ip4(&h, 5, 28, 0, 0, 17, "10.0.0.1", "10.0.0.2");
	udp(&h, 1, 2, 8);
	decode(&p, NLG_LINK_ETHER, h.b, h.n, &m);
	assert_int_equal(p.present, NLG_PKT_HAS_VLAN | NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.vlan, 5);
	assert_false(p.truncated || p.malformed);
}

static void ipv6_hbh_fragment_udp(void **state)
{
	struct fb f = {0}, g = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x86dd);
	ip6(&f, 8 + 8 + 8 + 4, 0, "2001:db8::a", "2001:db8::b");
	u8(&f, 44); /* hop-by-hop: next fragment, 8 bytes */
	u8(&f, 0);
	u8(&f, 1); /* PadN of 4 */
	u8(&f, 4);
	u32(&f, 0);
	u8(&f, 17); /* fragment: next udp, offset 0, M */
	u8(&f, 0);
	u16(&f, 0x0001);
	u32(&f, 0xdeadbeef);
	udp(&f, 500, 4500, 12);
	u32(&f, 1);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_FRAG | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.family, AF_INET6);
	assert_addr(p.src, "2001:db8::a");
	assert_addr(p.dst, "2001:db8::b");
	assert_int_equal(p.ttl, 57);
	assert_int_equal(p.proto, 17);
	assert_int_equal(p.frag_id, 0xdeadbeef);
	assert_int_equal(p.frag_offset, 0);
	assert_int_equal(p.frag_more, 1);
	assert_int_equal(p.sport, 500);
	assert_int_equal(p.dport, 4500);
	assert_false(p.truncated || p.malformed);

	/* a later fragment: offset 1232 (154 units), last */
	eth(&g, 0x86dd);
	ip6(&g, 8 + 16, 44, "2001:db8::a", "2001:db8::b");
	u8(&g, 17);
	u8(&g, 0);
	u16(&g, 154 << 3);
	u32(&g, 0xdeadbeef);
	zeros(&g, 16);
	decode(&p, NLG_LINK_ETHER, g.b, g.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_FRAG);
	assert_int_equal(p.proto, 17);
	assert_int_equal(p.frag_offset, 1232);
	assert_int_equal(p.frag_more, 0);
	assert_int_equal(p.frag_id, 0xdeadbeef);
	assert_false(p.truncated || p.malformed);
}

static void ipv6_ah_and_esp(void **state)
{
	struct fb f = {0}, g = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x86dd);
	ip6(&f, 24 + 8 + 20, 60, "fe80::1", "fe80::2");
	u8(&f, 51); /* destination options → AH */
	u8(&f, 0);
	zeros(&f, 6);
	u8(&f, 6); /* AH: next tcp, length 4 → (4 + 2) * 4 = 24 bytes */
	u8(&f, 4);
	u16(&f, 0);
	u32(&f, 0x100); /* SPI */
	u32(&f, 1);	/* sequence */
	zeros(&f, 12);	/* ICV */
	tcp(&f, 22, 50000, 7, 8, 5, NLG_TCP_ACK, 100);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, IPTCP);
	assert_int_equal(p.proto, 6);
	assert_int_equal(p.sport, 22);
	assert_int_equal(p.seq, 7);
	assert_int_equal(p.tcp_flags, NLG_TCP_ACK);
	assert_false(p.truncated || p.malformed);

	/* ESP hides what follows: proto esp, no ports */
	eth(&g, 0x86dd);
	ip6(&g, 16, 50, "fe80::1", "fe80::2");
	zeros(&g, 16);
	decode(&p, NLG_LINK_ETHER, g.b, g.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP);
	assert_int_equal(p.proto, 50);
	assert_false(p.truncated || p.malformed);
}

/* IPv4 with AH: the upper layer after it, as for IPv6; an AH cut short by
 * the snap length says so. */
static void ipv4_ah(void **state)
{
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x0800);
	ip4(&f, 5, 20 + 24 + 8, 0, 0, 51, "10.0.0.1", "10.0.0.2");
	u8(&f, 17); /* AH: next udp, length 4 → (4 + 2) * 4 = 24 bytes */
	u8(&f, 4);
	u16(&f, 0);
	u32(&f, 0x100); /* SPI */
	u32(&f, 1);	/* sequence */
	zeros(&f, 12);	/* ICV */
	udp(&f, 500, 4500, 8);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.proto, 17);
	assert_int_equal(p.sport, 500);
	assert_int_equal(p.dport, 4500);
	assert_false(p.truncated || p.malformed);

	decode(&p, NLG_LINK_ETHER, f.b, 14 + 20 + 10, NULL); /* inside the AH */
	assert_int_equal(p.present, NLG_PKT_HAS_IP);
	assert_int_equal(p.proto, 51);
	assert_true(p.truncated);
}

static void icmp_both(void **state)
{
	struct fb f = {0}, g = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x0800);
	ip4(&f, 5, 28, 0, 0, 1, "10.0.0.1", "10.0.0.2");
	u8(&f, 8); /* echo request */
	u8(&f, 0);
	zeros(&f, 6);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_ICMP);
	assert_int_equal(p.icmp_type, 8);
	assert_int_equal(p.icmp_code, 0);

	eth(&g, 0x86dd);
	ip6(&g, 8, 58, "2001:db8::1", "ff02::1");
	u8(&g, 1); /* destination unreachable, port */
	u8(&g, 4);
	zeros(&g, 6);
	decode(&p, NLG_LINK_ETHER, g.b, g.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_ICMP);
	assert_int_equal(p.proto, 58);
	assert_int_equal(p.icmp_type, 1);
	assert_int_equal(p.icmp_code, 4);
	assert_false(p.truncated || p.malformed);
}

static void cooked_sll(void **state)
{
	struct nlg_pkt_meta m = {.pkttype = NLG_DIR_BROADCAST};
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	u16(&f, NLG_DIR_OUTGOING); /* pkttype */
	u16(&f, 1);		   /* ARPHRD_ETHER */
	u16(&f, 6);
	zeros(&f, 8);
	u16(&f, 0x0800);
	ip4(&f, 5, 28, 0, 0, 17, "10.9.9.9", "10.8.8.8");
	udp(&f, 67, 68, 8);
	decode(&p, NLG_LINK_SLL, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.direction, NLG_DIR_OUTGOING);
	assert_int_equal(p.ethertype, 0x0800);
	assert_addr(p.src, "10.9.9.9");
	assert_int_equal(p.dport, 68);
	/* what the capture knew wins over the header */
	decode(&p, NLG_LINK_SLL, f.b, f.n, &m);
	assert_int_equal(p.direction, NLG_DIR_BROADCAST);
	/* a tag the capture put back after the cooked header */
	f.n = 14;
	u16(&f, 0x8100);
	vlan_tag(&f, 33, 0x0800);
	ip4(&f, 5, 28, 0, 0, 17, "10.9.9.9", "10.8.8.8");
	udp(&f, 67, 68, 8);
	decode(&p, NLG_LINK_SLL, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_VLAN | NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.vlan, 33);
}

static void cooked_sll2(void **state)
{
	struct nlg_pkt_meta m = {.ifindex = 3, .pkttype = NLG_DIR_HOST};
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	u16(&f, 0x86dd); /* protocol */
	u16(&f, 0);
	u32(&f, 7); /* ifindex */
	u16(&f, 1); /* ARPHRD_ETHER */
	u8(&f, NLG_DIR_MULTICAST);
	u8(&f, 6);
	zeros(&f, 8);
	ip6(&f, 20, 6, "::1", "::2");
	tcp(&f, 1, 2, 3, 4, 5, NLG_TCP_RST, 0);
	decode(&p, NLG_LINK_SLL2, f.b, f.n, NULL);
	assert_int_equal(p.present, IPTCP);
	assert_int_equal(p.ifindex, 7);
	assert_int_equal(p.direction, NLG_DIR_MULTICAST);
	assert_int_equal(p.ethertype, 0x86dd);
	assert_int_equal(p.tcp_flags, NLG_TCP_RST);
	decode(&p, NLG_LINK_SLL2, f.b, f.n, &m);
	assert_int_equal(p.ifindex, 3);
	assert_int_equal(p.direction, NLG_DIR_MULTICAST); /* host is what "not given" reads as */
}

static void raw_and_net(void **state)
{
	struct nlg_pkt_meta m = {.ethertype = 0x86dd};
	struct fb f = {0}, g = {0};
	struct nlg_pkt p;
	(void)state;

	ip4(&f, 5, 28, 0, 0, 17, "10.0.0.1", "10.0.0.2");
	udp(&f, 1, 2, 8);
	decode(&p, NLG_LINK_RAW, f.b, f.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.ethertype, 0x0800);
	assert_int_equal(p.family, AF_INET);

	ip6(&g, 8, 17, "2001:db8::1", "2001:db8::2");
	udp(&g, 3, 4, 8);
	decode(&p, NLG_LINK_RAW, g.b, g.n, NULL);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.ethertype, 0x86dd);
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(p.sport, 3);

	decode(&p, NLG_LINK_NET, g.b, g.n, &m);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.ethertype, 0x86dd);
	assert_int_equal(p.dport, 4);

	/* not IP: the link fields only, nothing flagged */
	g.b[0] = 0x50;
	decode(&p, NLG_LINK_RAW, g.b, g.n, NULL);
	assert_int_equal(p.present, 0);
	assert_int_equal(p.ethertype, 0);
	assert_false(p.truncated || p.malformed);
	m.ethertype = 0x0806; /* ARP */
	decode(&p, NLG_LINK_NET, g.b, g.n, &m);
	assert_int_equal(p.present, 0);
	assert_int_equal(p.ethertype, 0x0806);
	/* an IPv4 ethertype over an IPv6 header */
	m.ethertype = 0x0800;
	g.b[0] = 0x60;
	decode(&p, NLG_LINK_NET, g.b, g.n, &m);
	assert_int_equal(p.present, 0);
	assert_true(p.malformed);
}

/* ---- every prefix ----------------------------------------------------------- */

/* eth(14) ip6(40) tcp with 12 bytes of options(32) data(10): headers end at 86. */
static void every_prefix_of_tcp6(void **state)
{
	struct nlg_pkt_meta m = {.wire_len = 96};
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	eth(&f, 0x86dd);
	ip6(&f, 42, 6, "2001:db8::1", "2001:db8::2");
	tcp(&f, 8080, 9090, 11, 22, 8, NLG_TCP_PSH | NLG_TCP_ACK, 333);
	put(&f, "0123456789", 10);
	assert_int_equal(f.n, 96);
	for (size_t n = 0; n <= f.n; n++) {
		decode(&p, NLG_LINK_ETHER, f.b, n, &m);
		assert_int_equal(p.truncated, n < 86);
		assert_int_equal(p.malformed, 0);
		assert_int_equal(p.cap_len, n);
		assert_int_equal(p.wire_len, 96);
		assert_int_equal(p.ethertype, n >= 14 ? 0x86dd : 0);
		assert_int_equal(!!(p.present & NLG_PKT_HAS_IP), n >= 54);
		assert_int_equal(!!(p.present & NLG_PKT_HAS_PORTS), n >= 58);
		assert_int_equal(!!(p.present & NLG_PKT_HAS_TCP), n >= 74);
		assert_int_equal(p.present & ~IPTCP, 0);
		if (n >= 54) {
			assert_addr(p.dst, "2001:db8::2");
			assert_int_equal(p.proto, 6);
		}
		if (n >= 58)
			assert_int_equal(p.sport * 100000 + p.dport, 808009090);
		if (n >= 74) {
			assert_int_equal(p.seq, 11);
			assert_int_equal(p.ack, 22);
			assert_int_equal(p.tcp_flags, NLG_TCP_PSH | NLG_TCP_ACK);
			assert_int_equal(p.window, 333);
		}
	}
}

/* The same over every frame shape and link: a prefix never knows more than
 * the whole, and is truncated wherever the whole was not and it knows less. */
static void every_prefix_of_every_frame(void **state)
{
	struct {
		enum nlg_link link;
		struct fb f;
	} fr[8];
	struct nlg_pkt_meta m = {.ethertype = 0x0800};
	struct nlg_pkt whole, p;
	size_t nf = 0;
	(void)state;

	memset(fr, 0, sizeof(fr));
	fr[nf].link = NLG_LINK_ETHER; /* QinQ IPv4 with options, TCP */
	eth(&fr[nf].f, 0x88a8);
	vlan_tag(&fr[nf].f, 1, 0x8100);
	vlan_tag(&fr[nf].f, 2, 0x0800);
	ip4(&fr[nf].f, 6, 44, 0, 0, 6, "1.2.3.4", "5.6.7.8");
	tcp(&fr[nf++].f, 1, 2, 3, 4, 5, NLG_TCP_SYN, 5);
	fr[nf].link = NLG_LINK_SLL; /* ICMP */
	zeros(&fr[nf].f, 14);
	u16(&fr[nf].f, 0x0800);
	ip4(&fr[nf].f, 5, 28, 0, 0, 1, "1.2.3.4", "5.6.7.8");
	zeros(&fr[nf++].f, 8);
	fr[nf].link = NLG_LINK_SLL2; /* IPv6 hop-by-hop, SCTP */
	u16(&fr[nf].f, 0x86dd);
	zeros(&fr[nf].f, 18);
	ip6(&fr[nf].f, 8 + 12, 0, "::1", "::2");
	u8(&fr[nf].f, 132);
	zeros(&fr[nf].f, 7);
	u16(&fr[nf].f, 1);
	u16(&fr[nf].f, 2);
	zeros(&fr[nf++].f, 8);
	fr[nf].link = NLG_LINK_RAW; /* IPv6 fragment, DCCP */
	ip6(&fr[nf].f, 8 + 12, 44, "::1", "::2");
	u8(&fr[nf].f, 33);
	zeros(&fr[nf].f, 1);
	u16(&fr[nf].f, 1);
	u32(&fr[nf].f, 9);
	u16(&fr[nf].f, 1);
	u16(&fr[nf].f, 2);
	zeros(&fr[nf++].f, 8);
	fr[nf].link = NLG_LINK_NET; /* IPv4 UDPLite */
	ip4(&fr[nf].f, 5, 28, 0, 0, 136, "1.2.3.4", "5.6.7.8");
	udp(&fr[nf++].f, 1, 2, 8);

	for (size_t i = 0; i < nf; i++) {
		const struct fb *f = &fr[i].f;
		decode(&whole, fr[i].link, f->b, f->n, &m);
		assert_false(whole.truncated || whole.malformed);
		assert_true(whole.present & NLG_PKT_HAS_IP);
		for (size_t n = 0; n < f->n; n++) {
			decode(&p, fr[i].link, f->b, n, &m);
			assert_int_equal(p.present & ~whole.present, 0);
			assert_false(p.malformed);
			if (p.present != whole.present)
				assert_true(p.truncated);
		}
	}
}

/* ---- lengths that cannot be ------------------------------------------------- */

static void impossible_lengths(void **state)
{
	struct fb f = {0};
	struct nlg_pkt p;
	(void)state;

	/* IHL 3 */
	eth(&f, 0x0800);
	ip4(&f, 5, 40, 0, 0, 6, "10.0.0.1", "10.0.0.2");
	tcp(&f, 1, 2, 3, 4, 5, 0, 0);
	f.b[14] = 0x43;
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_false(p.truncated);
	assert_int_equal(p.present, 0);

	/* total length shorter than the header */
	f.b[14] = 0x45;
	f.b[17] = 12;
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_int_equal(p.present, NLG_PKT_HAS_IP);

	/* total length too short for the UDP header it carries */
	f.n = 0;
	eth(&f, 0x0800);
	ip4(&f, 5, 26, 0, 0, 17, "10.0.0.1", "10.0.0.2");
	udp(&f, 1, 2, 8);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS); /* the ports fit */

	/* TCP data offset 2 */
	f.n = 0;
	eth(&f, 0x0800);
	ip4(&f, 5, 40, 0, 0, 6, "10.0.0.1", "10.0.0.2");
	tcp(&f, 1, 2, 3, 4, 2, NLG_TCP_SYN, 0);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_false(p.truncated);
	assert_int_equal(p.present, NLG_PKT_HAS_IP | NLG_PKT_HAS_PORTS);
	assert_int_equal(p.dport, 2);

	/* TCP options past the IP total length */
	f.n = 0;
	eth(&f, 0x0800);
	ip4(&f, 5, 40, 0, 0, 6, "10.0.0.1", "10.0.0.2");
	tcp(&f, 1, 2, 3, 4, 6, NLG_TCP_SYN, 0);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_int_equal(p.present, IPTCP);

	/* an extension header longer than the payload length says */
	f.n = 0;
	eth(&f, 0x86dd);
	ip6(&f, 16, 0, "::1", "::2");
	u8(&f, 17);
	u8(&f, 3); /* (3 + 1) * 8 = 32 bytes, in a 16-byte payload */
	zeros(&f, 30);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_false(p.truncated);
	assert_int_equal(p.present, NLG_PKT_HAS_IP);
	assert_int_equal(p.proto, 0); /* stopped at the hop-by-hop header */

	/* ... and the same frame cut inside it: only the payload length is wrong */
	f.b[18] = 0;
	f.b[19] = 64;
	decode(&p, NLG_LINK_ETHER, f.b, 60, NULL);
	assert_false(p.malformed);
	assert_true(p.truncated);

	/* a frame of tags: the ninth is refused */
	f.n = 0;
	eth(&f, 0x8100);
	for (unsigned i = 1; i <= 40; i++)
		vlan_tag(&f, i, 0x8100);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_int_equal(p.present, NLG_PKT_HAS_VLAN | NLG_PKT_HAS_VLAN2);
	assert_int_equal(p.vlan, 1);
	assert_int_equal(p.vlan_inner, 2);
	assert_int_equal(p.ethertype, 0);
	/* nine are refused, eight are taken */
	f.n = 0;
	eth(&f, 0x8100);
	for (unsigned i = 1; i < 9; i++)
		vlan_tag(&f, i, 0x8100);
	vlan_tag(&f, 9, 0x0806);
	zeros(&f, 28);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_true(p.malformed);
	assert_int_equal(p.ethertype, 0);

	f.n = 0;
	eth(&f, 0x8100);
	for (unsigned i = 1; i < 8; i++)
		vlan_tag(&f, i, 0x8100);
	vlan_tag(&f, 8, 0x0806);
	zeros(&f, 28);
	decode(&p, NLG_LINK_ETHER, f.b, f.n, NULL);
	assert_false(p.malformed || p.truncated);
	assert_int_equal(p.ethertype, 0x0806);

	/* an unknown link type decodes nothing */
	decode(&p, (enum nlg_link)99, f.b, f.n, NULL);
	assert_int_equal(p.present, 0);
	assert_int_equal(p.cap_len, f.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ether_ipv4_tcp),
	    cmocka_unit_test(pkt_json_is_exact),
	    cmocka_unit_test(ipv4_options_udp),
	    cmocka_unit_test(ipv4_fragments),
	    cmocka_unit_test(vlan_tags),
	    cmocka_unit_test(ipv6_hbh_fragment_udp),
	    cmocka_unit_test(ipv6_ah_and_esp),
	    cmocka_unit_test(ipv4_ah),
	    cmocka_unit_test(icmp_both),
	    cmocka_unit_test(cooked_sll),
	    cmocka_unit_test(cooked_sll2),
	    cmocka_unit_test(raw_and_net),
	    cmocka_unit_test(every_prefix_of_tcp6),
	    cmocka_unit_test(every_prefix_of_every_frame),
	    cmocka_unit_test(impossible_lengths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
