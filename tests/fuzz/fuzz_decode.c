/* libFuzzer target: one captured frame through nlg_pkt_decode, then the pkt
 * into a small flow table (64 flows) driven by the same bytes, so that
 * arbitrary headers meet every path of the table: both directions, TCP
 * flags, fragments, time forward and back, expiry, eviction and flush.
 *
 *   input: ctl(1) frame(...)
 *   ctl:   bits 0-2 link (0-4 enum nlg_link, 5 an unknown one, 6-7 Ethernet)
 *          bit 3 a tag the kernel stripped, bit 4 an rxhash, bits 5-7 pkttype
 *
 * The frame's bytes, read again one by one, are then the script for the
 * table (see step()). The flow counters must add up and every record must be
 * whole; the pkt and each flow are also encoded as JSON through their schema. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/encode.h"
#include "nlgate/packet.h"

struct fz {
	struct nlg_buf json;
	uint64_t emitted;
};

static void on_flow(void *data, const struct nlg_flow *f)
{
	struct fz *z = data;

	if (f->last_ns < f->first_ns || f->packets != f->fwd_packets + f->rev_packets ||
	    f->bytes != f->fwd_bytes + f->rev_bytes || f->end_reason > NLG_FLOW_SHUTDOWN ||
	    (f->tcp_flags != (f->fwd_tcp_flags | f->rev_tcp_flags)))
		abort();
	nlg_buf_reset(&z->json);
	if (nlg_enc_json_record(&z->json, &nlg_flow_schema, f))
		abort();
	z->emitted++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	nlg_schema_init();
	return 0;
}

/* One step of the table's script, from byte b (i: its position):
 *   b & 3 == 0  the pkt as decoded, time on by b >> 2 ms
 *            1  the reply (addresses and ports swapped), tcp_flags = b
 *            2  the pkt as a fragment: offset (b >> 2) * 8, MF = b & 4
 *            3  expire at now + (b >> 2) * 100 ms; b == 0xff: the clock steps
 *               back 1 s instead
 * and from byte 8 on, the source port moves with i: new flows, evictions. */
static void step(struct nlg_flow_table *t, const struct nlg_pkt *p0, uint8_t b, size_t i,
		 uint64_t *now, struct fz *z)
{
	struct nlg_pkt p = *p0;
	struct nlg_addr a;
	uint16_t port;

	if (i >= 8)
		p.sport = (uint16_t)(p.sport + (i >> 3));
	switch (b & 3) {
	case 0:
		*now += (uint64_t)(b >> 2) * 1000000;
		break;
	case 1:
		a = p.src;
		p.src = p.dst;
		p.dst = a;
		port = p.sport;
		p.sport = p.dport;
		p.dport = port;
		p.tcp_flags = b;
		break;
	case 2:
		p.present |= NLG_PKT_HAS_FRAG;
		p.frag_offset = (uint16_t)((b >> 2) * 8);
		p.frag_more = (b & 4) != 0;
		if (p.frag_offset)
			p.present &= ~(uint64_t)(NLG_PKT_HAS_PORTS | NLG_PKT_HAS_TCP);
		break;
	default:
		if (b == 0xff) {
			*now = *now > 1000000000 ? *now - 1000000000 : 0;
			return;
		}
		nlg_flow_expire(t, *now + (uint64_t)(b >> 2) * 100000000, on_flow, z);
		return;
	}
	p.time_ns = *now;
	nlg_flow_add(t, &p, on_flow, z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nlg_flow_conf conf = {
	    .idle_ns = 5000000000ull, .active_ns = 20000000000ull, .max = 64, .worker = 1};
	struct nlg_pkt_meta m = {0};
	struct fz z = {0};
	const struct nlg_flow_stats *st;
	struct nlg_flow_table *t;
	struct nlg_pkt p;
	enum nlg_link link;
	uint64_t now;
	uint8_t ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	link = (ctl & 7) <= 4	? (enum nlg_link)(ctl & 7)
	       : (ctl & 7) == 5 ? (enum nlg_link)42
				: NLG_LINK_ETHER;
	m.has_vlan = (ctl >> 3) & 1;
	m.vlan_tci = (uint16_t)(size * 7);
	m.has_rxhash = (ctl >> 4) & 1;
	m.rxhash = (uint32_t)size;
	m.pkttype = ctl >> 5;
	m.ethertype = (ctl & 0x40) ? 0x86dd : 0x0800; /* NLG_LINK_NET's protocol */
	m.time_ns = now = 1700000000ull * 1000000000;
	m.wire_len = (ctl & 0x80) ? (uint32_t)size + 1000 : 0;
	/* data + 1 is exactly the rest of libFuzzer's buffer: an over-read is ASan's */
	nlg_pkt_decode(&p, link, data + 1, size - 1, &m);
	if (p.cap_len != size - 1 || (p.malformed | p.truncated) > 1)
		abort();
	nlg_buf_init(&z.json);
	if (nlg_enc_json_record(&z.json, &nlg_pkt_schema, &p))
		abort();

	t = nlg_flow_create(&conf);
	if (!t)
		abort();
	nlg_flow_add(t, &p, on_flow, &z);
	for (size_t i = 1; i < size && i < 512; i++)
		step(t, &p, data[i], i, &now, &z);
	st = nlg_flow_stats(t);
	if (st->live > conf.max || st->created != st->emitted + st->live ||
	    st->emitted != z.emitted)
		abort();
	if (size & 1) { /* half the time the table ends with a flush, else destroy drops it */
		nlg_flow_flush(t, on_flow, &z);
		if (st->live || st->created != st->emitted)
			abort();
	}
	nlg_flow_destroy(t);
	nlg_buf_free(&z.json);
	return 0;
}
