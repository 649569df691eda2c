/* Classic BPF programs for packet sockets: compiled from tcpdump syntax with
 * libpcap's compiler, read from `tcpdump -ddd` text, moved for sockets that
 * see no link-layer header, and turned into fanout selectors. */
#ifndef NLGATE_BPF_H
#define NLGATE_BPF_H

#include <stdint.h>
#include "common.h"

/* The layout of the kernel's struct sock_filter and libpcap's bpf_insn. */
struct nlg_bpf_insn {
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};

struct nlg_bpf {
	struct nlg_bpf_insn *insns;
	unsigned len;
};

/* The bytes a program is run on. */
enum nlg_bpf_link {
	NLG_BPF_ETHER, /* an Ethernet header first (SOCK_RAW on Ethernet, loopback) */
	NLG_BPF_NET,   /* the network header first (SOCK_DGRAM: `any`, tun) */
	NLG_BPF_SLL,   /* a pcap file of Linux cooked v1 */
	NLG_BPF_SLL2,  /* ... v2 */
	NLG_BPF_RAW,   /* a pcap file of raw IP */
};

/* Compile expr (tcpdump syntax; "" accepts everything) into a program that
 * keeps snaplen bytes of what it accepts. For NLG_BPF_NET it is compiled for
 * the cooked header and moved: a test of the header's protocol or packet type
 * becomes the kernel's ancillary load; another header field is an error.
 * 0, or -EINVAL with the compiler's message in err. */
int nlg_bpf_compile(struct nlg_bpf *out, const char *expr, enum nlg_bpf_link link, uint32_t snaplen,
		    struct nlg_err *err);
/* The same for a live Ethernet interface (in the current namespace): `vlan`
 * tests the kernel's tag metadata as well as the frame, as tcpdump's live
 * filters do. Needs CAP_NET_RAW (falls back to nlg_bpf_compile without). */
int nlg_bpf_compile_for(struct nlg_bpf *out, const char *expr, enum nlg_bpf_link link,
			const char *iface, uint32_t snaplen, struct nlg_err *err);
/* `tcpdump -ddd` text: "N,code jt jf k,code jt jf k,..." (commas or newlines). */
int nlg_bpf_parse(struct nlg_bpf *out, const char *text, struct nlg_err *err);
/* A filter as a fanout selector: every return of a non-zero constant returns
 * 1 instead (accepted: socket 1; refused: socket 0). */
void nlg_bpf_to_selector(struct nlg_bpf *p);
/* Run the program on a buffer in user space (tests, a file's packets). */
uint32_t nlg_bpf_run(const struct nlg_bpf *p, const uint8_t *pkt, uint32_t wirelen,
		     uint32_t caplen);
void nlg_bpf_free(struct nlg_bpf *p);

#endif
