/* Classic BPF for packet sockets (include/nlgate/bpf.h): libpcap compiles the
 * tcpdump expression; here the result is checked, moved for cooked sockets,
 * parsed from text or made a fanout selector. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>

#include "nlgate/bpf.h"

_Static_assert(sizeof(struct nlg_bpf_insn) == sizeof(struct bpf_insn), "bpf_insn layout");

/* The kernel's ancillary loads (linux/filter.h, not included beside pcap.h). */
#define AD_OFF	    (-0x1000)
#define AD_PROTOCOL 0
#define AD_PKTTYPE  4
#define SLL_LEN	    16
#ifndef BPF_MAXINSNS
#define BPF_MAXINSNS 4096 /* the kernel's limit for a classic program */
#endif			  /* the cooked v1 header the program was compiled for */

void nlg_bpf_free(struct nlg_bpf *p)
{
	free(p->insns);
	p->insns = NULL;
	p->len = 0;
}

static int copy_out(struct nlg_bpf *out, const struct bpf_insn *insns, unsigned len)
{
	out->insns = malloc((len ? len : 1) * sizeof(*out->insns));
	if (!out->insns)
		return -ENOMEM;
	memcpy(out->insns, insns, len * sizeof(*out->insns));
	out->len = len;
	return 0;
}

/* A socket without the link-layer header: loads below the cooked header
 * become ancillary loads, loads past it move back by its length. libpcap
 * does the same for its own cooked captures. */
static int move_for_net(struct nlg_bpf *p, struct nlg_err *err)
{
	for (unsigned i = 0; i < p->len; i++) {
		struct nlg_bpf_insn *in = &p->insns[i];
		int ld = BPF_CLASS(in->code) == BPF_LD &&
			 (BPF_MODE(in->code) == BPF_ABS || BPF_MODE(in->code) == BPF_IND);
		int msh = BPF_CLASS(in->code) == BPF_LDX && BPF_MODE(in->code) == BPF_MSH;

		if (!ld && !msh)
			continue;
		if (in->k >= SLL_LEN) {
			in->k -= SLL_LEN;
			continue;
		}
		if (ld && BPF_MODE(in->code) == BPF_ABS && BPF_SIZE(in->code) == BPF_H &&
		    (in->k == 14 || in->k == 0)) {
			in->k = (uint32_t)(AD_OFF + (in->k == 14 ? AD_PROTOCOL : AD_PKTTYPE));
			continue;
		}
		return nlg_err_set(err, EINVAL,
				   "the filter reads the link-layer header, which this interface "
				   "does not have (only its protocol and packet type)");
	}
	return 0;
}

/* libpcap compiles `vlan` as the kernel's tag metadata (where the kernel
 * puts a received packet's tag) only for a handle it activated on a live
 * interface; a dead handle sees tags left in the frame only. The handle is
 * opened for the compiler's sake and closed at once; NULL if it cannot be. */
static pcap_t *live_handle(const char *iface, uint32_t snaplen)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_create(iface, ebuf);

	if (!p)
		return NULL;
	pcap_set_snaplen(p, (int)snaplen);
	pcap_set_buffer_size(p, 65536);
	pcap_set_immediate_mode(p, 1);
	if (pcap_activate(p) < 0 || pcap_datalink(p) != DLT_EN10MB) {
		pcap_close(p);
		return NULL;
	}
	return p;
}

int nlg_bpf_compile(struct nlg_bpf *out, const char *expr, enum nlg_bpf_link link, uint32_t snaplen,
		    struct nlg_err *err)
{
	return nlg_bpf_compile_for(out, expr, link, NULL, snaplen, err);
}

int nlg_bpf_compile_for(struct nlg_bpf *out, const char *expr, enum nlg_bpf_link link,
			const char *iface, uint32_t snaplen, struct nlg_err *err)
{
	static const int dlt[] = {
	    [NLG_BPF_ETHER] = DLT_EN10MB,  [NLG_BPF_NET] = DLT_LINUX_SLL,
	    [NLG_BPF_SLL] = DLT_LINUX_SLL, [NLG_BPF_SLL2] = DLT_LINUX_SLL2,
	    [NLG_BPF_RAW] = DLT_RAW,
	};
	struct bpf_program prog = {0};
	pcap_t *p;
	int r;

	memset(out, 0, sizeof(*out));
	if (!expr || !*expr) {
		struct bpf_insn keep = BPF_STMT(BPF_RET | BPF_K, snaplen);
		return copy_out(out, &keep, 1) < 0 ? nlg_err_set(err, ENOMEM, "out of memory") : 0;
	}
	p = link == NLG_BPF_ETHER && iface ? live_handle(iface, snaplen) : NULL;
	if (!p)
		p = pcap_open_dead(dlt[link], (int)snaplen);
	if (!p)
		return nlg_err_set(err, ENOMEM, "out of memory");
	if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		r = nlg_err_set(err, EINVAL, "filter '%s': %s", expr, pcap_geterr(p));
		pcap_close(p);
		return r;
	}
	pcap_close(p);
	r = copy_out(out, prog.bf_insns, prog.bf_len);
	pcap_freecode(&prog);
	if (r < 0)
		return nlg_err_set(err, ENOMEM, "out of memory");
	if (link == NLG_BPF_NET && (r = move_for_net(out, err)) < 0) {
		char why[NLG_ERRLEN];
		snprintf(why, sizeof(why), "%s", err->msg);
		nlg_bpf_free(out);
		return nlg_err_set(err, EINVAL, "filter '%s': %s", expr, why);
	}
	return 0;
}

int nlg_bpf_parse(struct nlg_bpf *out, const char *text, struct nlg_err *err)
{
	const char *s = text;
	char *end;
	unsigned long n;

	memset(out, 0, sizeof(*out));
	n = strtoul(s, &end, 10);
	if (end == s || n == 0 || n > BPF_MAXINSNS || (*end != ',' && *end != '\n'))
		return nlg_err_set(
		    err, EINVAL,
		    "bad BPF program '%.40s' (`tcpdump -ddd` text: N,code jt jf k,...)", text);
	out->insns = calloc(n, sizeof(*out->insns));
	if (!out->insns)
		return nlg_err_set(err, ENOMEM, "out of memory");
	out->len = (unsigned)n;
	s = end + 1;
	for (unsigned i = 0; i < n; i++) {
		unsigned long v[4];
		for (int f = 0; f < 4; f++) {
			while (*s == ' ' || *s == '\t')
				s++;
			v[f] = strtoul(s, &end, 10);
			if (end == s || v[f] > (f == 0	? 0xffffUL
						: f < 3 ? 0xffUL
							: 0xffffffffUL)) {
				nlg_bpf_free(out);
				return nlg_err_set(err, EINVAL,
						   "bad BPF program: instruction %u of %lu is not "
						   "'code jt jf k'",
						   i + 1, n);
			}
			s = end;
		}
		out->insns[i] = (struct nlg_bpf_insn){(uint16_t)v[0], (uint8_t)v[1], (uint8_t)v[2],
						      (uint32_t)v[3]};
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == ',' || *s == '\n')
			s++;
		else if (*s || i + 1 < n) {
			nlg_bpf_free(out);
			return nlg_err_set(err, EINVAL,
					   "bad BPF program: %lu instructions announced, %u found",
					   n, i + 1);
		}
	}
	if (*s) {
		nlg_bpf_free(out);
		return nlg_err_set(err, EINVAL,
				   "bad BPF program: more than the %lu instructions "
				   "announced",
				   n);
	}
	if (!bpf_validate((const struct bpf_insn *)out->insns, (int)out->len)) {
		nlg_bpf_free(out);
		return nlg_err_set(err, EINVAL, "bad BPF program: it does not validate");
	}
	return 0;
}

void nlg_bpf_to_selector(struct nlg_bpf *p)
{
	for (unsigned i = 0; i < p->len; i++)
		if (p->insns[i].code == (BPF_RET | BPF_K) && p->insns[i].k)
			p->insns[i].k = 1;
}

uint32_t nlg_bpf_run(const struct nlg_bpf *p, const uint8_t *pkt, uint32_t wirelen, uint32_t caplen)
{
	return bpf_filter((const struct bpf_insn *)p->insns, pkt, wirelen, caplen);
}
