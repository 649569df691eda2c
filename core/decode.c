/* nlg_pkt_decode: captured bytes → struct nlg_pkt. The link header (Ethernet,
 * Linux cooked v1/v2, raw IP, a bare network header), VLAN tags, IPv4 or IPv6
 * with its extension headers, then the transport's ports, TCP fields or ICMP
 * type. It runs once per packet at millions a second: no allocation, no copy
 * of the frame, every multi-byte field read byte by byte (no unaligned loads). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "nlgate/packet.h"

/* Every read is bounded twice:
 *
 *   data ─────────────────────────────────────────── caplen      what we have
 *        │ link │ vlan │ IP hdr │ ext … │ L4 hdr │ … │ end        what IP declares
 *
 * A header that runs past `end` (the datagram's end by its IP header) is
 * malformed: its length cannot be. One inside `end` but past `caplen` is
 * truncated: the snap length cut it. `end` is SIZE_MAX where no length is
 * declared (the link layer, an IPv4 total length of 0 or an IPv6 payload
 * length of 0: TSO and BIG TCP send those, and jumbograms). */
#define NO_END SIZE_MAX

/* Tags the frame may carry: three stacked are already unusual; eight bounds a
 * crafted run of them (each would otherwise cost a loop turn). */
#define VLAN_MAX 8

#define ETH_IP	   0x0800
#define ETH_IP6	   0x86dd
#define ETH_8021Q  0x8100
#define ETH_8021AD 0x88a8
#define ETH_QINQ   0x9100 /* the pre-802.1ad QinQ TPID */

static inline uint16_t rd16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t rd32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* 1 if n bytes at off can be read; else 0, and the packet says why not. */
static inline int have(struct nlg_pkt *p, size_t off, size_t n, size_t cap, size_t end)
{
	if (__builtin_expect(off + n <= cap && off + n <= end, 1))
		return 1;
	if (off + n > end)
		p->malformed = 1;
	else
		p->truncated = 1;
	return 0;
}

/* Ports, TCP fields or ICMP type/code of the header at off. */
static void transport(struct nlg_pkt *p, const uint8_t *d, size_t off, size_t cap, size_t end)
{
	const uint8_t *h = d + off;
	size_t hlen;

	switch (p->proto) {
	case IPPROTO_TCP:
		if (!have(p, off, 4, cap, end))
			return;
		p->sport = rd16(h);
		p->dport = rd16(h + 2);
		p->present |= NLG_PKT_HAS_PORTS;
		if (!have(p, off, 20, cap, end))
			return;
		hlen = (size_t)(h[12] >> 4) * 4;
		if (hlen < 20) {
			p->malformed = 1;
			return;
		}
		p->seq = rd32(h + 4);
		p->ack = rd32(h + 8);
		p->tcp_flags = h[13];
		p->window = rd16(h + 14);
		p->present |= NLG_PKT_HAS_TCP;
		have(p, off, hlen, cap, end); /* the options: only their length is checked */
		return;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
		hlen = 8;
		break;
	case IPPROTO_SCTP:
	case IPPROTO_DCCP: /* the shorter of its two generic headers */
		hlen = 12;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (!have(p, off, 2, cap, end))
			return;
		p->icmp_type = h[0];
		p->icmp_code = h[1];
		p->present |= NLG_PKT_HAS_ICMP;
		have(p, off, 4, cap, end); /* type, code, checksum */
		return;
	default:
		return;
	}
	/* every port protocol opens with source and destination port */
	if (!have(p, off, 4, cap, end))
		return;
	p->sport = rd16(h);
	p->dport = rd16(h + 2);
	p->present |= NLG_PKT_HAS_PORTS;
	have(p, off, hlen, cap, end);
}

static void ipv4(struct nlg_pkt *p, const uint8_t *d, size_t off, size_t cap)
{
	const uint8_t *ip = d + off;
	size_t ihl, tot, end;
	uint16_t frag;

	if (!have(p, off, 20, cap, NO_END))
		return;
	ihl = (size_t)(ip[0] & 15) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20) {
		p->malformed = 1;
		return;
	}
	p->family = AF_INET;
	p->ttl = ip[8];
	p->proto = ip[9];
	p->src.family = p->dst.family = AF_INET;
	memcpy(p->src.bytes, ip + 12, 4);
	memcpy(p->dst.bytes, ip + 16, 4);
	p->present |= NLG_PKT_HAS_IP;
	frag = rd16(ip + 6);
	if (frag & 0x3fff) { /* MF or an offset; DF alone is no fragment */
		p->frag_id = rd16(ip + 4);
		p->frag_offset = (uint16_t)((frag & 0x1fff) << 3);
		p->frag_more = (frag & 0x2000) != 0;
		p->present |= NLG_PKT_HAS_FRAG;
	}
	tot = rd16(ip + 2);
	end = tot ? off + tot : NO_END; /* a total length under ihl fails the next check */
	if (!have(p, off, ihl, cap, end) || p->frag_offset)
		return; /* a later fragment carries no transport header */
	off += ihl;
	if (p->proto == IPPROTO_AH) { /* IPsec AH: the upper layer follows, as in IPv6 */
		size_t len;
		if (!have(p, off, 2, cap, end))
			return;
		len = ((size_t)d[off + 1] + 2) * 4; /* in 4-byte units, less 2 */
		if (!have(p, off, len, cap, end))
			return;
		p->proto = d[off];
		off += len;
	}
	transport(p, d, off, cap, end);
}

static void ipv6(struct nlg_pkt *p, const uint8_t *d, size_t off, size_t cap)
{
	const uint8_t *ip = d + off;
	size_t plen, end, len;
	uint8_t nh;
	uint16_t frag;

	if (!have(p, off, 40, cap, NO_END))
		return;
	if ((ip[0] >> 4) != 6) {
		p->malformed = 1;
		return;
	}
	plen = rd16(ip + 4);
	nh = ip[6];
	p->family = AF_INET6;
	p->ttl = ip[7];
	p->src.family = p->dst.family = AF_INET6;
	memcpy(p->src.bytes, ip + 8, 16);
	memcpy(p->dst.bytes, ip + 24, 16);
	p->present |= NLG_PKT_HAS_IP;
	end = plen ? off + 40 + plen : NO_END;
	off += 40;
	/* Extension headers until the upper layer. Each is at least 8 bytes,
	 * so the walk is bounded by the payload; proto is where it stopped. */
	for (;;) {
		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
		case IPPROTO_AH:
			if (!have(p, off, 2, cap, end))
				goto stop;
			if (nh == IPPROTO_AH) /* in 4-byte units, less 2 */
				len = ((size_t)d[off + 1] + 2) * 4;
			else /* in 8-byte units, less 1 */
				len = ((size_t)d[off + 1] + 1) * 8;
			if (!have(p, off, len, cap, end))
				goto stop;
			nh = d[off];
			off += len;
			continue;
		case IPPROTO_FRAGMENT:
			if (!have(p, off, 8, cap, end))
				goto stop;
			frag = rd16(d + off + 2);
			p->frag_offset = frag & 0xfff8; /* 8-byte units, already shifted by 3 */
			p->frag_more = frag & 1;
			p->frag_id = rd32(d + off + 4);
			p->present |= NLG_PKT_HAS_FRAG;
			nh = d[off];
			off += 8;
			if (p->frag_offset) {
				p->proto = nh;
				return;
			}
			continue;
		default: /* the upper layer; ESP, no-next-header and unknowns end here too */
			break;
		}
		break;
	}
	p->proto = nh;
	transport(p, d, off, cap, end);
	return;
stop:
	p->proto = nh;
}

void nlg_pkt_decode(struct nlg_pkt *p, enum nlg_link link, const uint8_t *data, size_t caplen,
		    const struct nlg_pkt_meta *meta)
{
	static const struct nlg_pkt_meta none;
	/* copied rather than memset: seven stores, where gcc made the memset
	 * of 112 bytes a `rep stos` costing more than the rest of an IPv4/UDP
	 * decode */
	static const struct nlg_pkt zero;
	size_t off = 0;
	unsigned ntag = 0;
	uint16_t et;

	if (!meta)
		meta = &none;
	*p = zero;
	p->time_ns = meta->time_ns;
	p->ifindex = meta->ifindex;
	p->cap_len = caplen > UINT32_MAX ? UINT32_MAX : (uint32_t)caplen;
	p->wire_len = meta->wire_len ? meta->wire_len : p->cap_len;
	p->direction = meta->pkttype;
	p->worker = meta->worker;
	if (meta->has_rxhash) {
		p->rxhash = meta->rxhash;
		p->present |= NLG_PKT_HAS_RXHASH;
	}
	/* A tag the kernel took off was the outermost: tags left in the frame
	 * come after it. */
	if (meta->has_vlan) {
		p->vlan = meta->vlan_tci & 0xfff;
		p->present |= NLG_PKT_HAS_VLAN;
		ntag = 1;
	}

	switch (link) {
	case NLG_LINK_ETHER: /* dst(6) src(6) type(2) */
		if (!have(p, 0, 14, caplen, NO_END))
			return;
		et = rd16(data + 12);
		off = 14;
		break;
	case NLG_LINK_SLL: /* pkttype(2) hatype(2) halen(2) addr(8) protocol(2) */
		if (!have(p, 0, 16, caplen, NO_END))
			return;
		if (!meta->pkttype) { /* 0 (host) is also what a file's reader leaves */
			uint16_t t = rd16(data);
			p->direction = t > 255 ? 255 : (uint8_t)t;
		}
		et = rd16(data + 14);
		off = 16;
		break;
	case NLG_LINK_SLL2: /* protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1)
			       addr(8) */
		if (!have(p, 0, 20, caplen, NO_END))
			return;
		et = rd16(data);
		if (!p->ifindex)
			p->ifindex = rd32(data + 4);
		if (!meta->pkttype)
			p->direction = data[10];
		off = 20;
		break;
	case NLG_LINK_RAW:
		if (!have(p, 0, 1, caplen, NO_END))
			return;
		et = (data[0] >> 4) == 4 ? ETH_IP : (data[0] >> 4) == 6 ? ETH_IP6 : 0;
		break;
	case NLG_LINK_NET:
		et = meta->ethertype;
		break;
	default:
		return;
	}

	/* 802.1Q / 802.1ad tags still in the frame: TCI(2) then the next type */
	while (et == ETH_8021Q || et == ETH_8021AD || et == ETH_QINQ) {
		if (!have(p, off, 4, caplen, NO_END))
			return;
		if (ntag == VLAN_MAX) {
			p->malformed = 1;
			return;
		}
		if (ntag == 0) {
			p->vlan = rd16(data + off) & 0xfff;
			p->present |= NLG_PKT_HAS_VLAN;
		} else if (ntag == 1) {
			p->vlan_inner = rd16(data + off) & 0xfff;
			p->present |= NLG_PKT_HAS_VLAN2;
		}
		ntag++;
		et = rd16(data + off + 2);
		off += 4;
	}
	/* below 0x0600 it is an 802.3 length or a cooked header's pseudo-type */
	p->ethertype = et >= 0x0600 ? et : 0;
	if (et == ETH_IP)
		ipv4(p, data, off, caplen);
	else if (et == ETH_IP6)
		ipv6(p, data, off, caplen);
}
