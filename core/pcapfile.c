/* Offline input (include/nlgate/pcapfile.h): libpcap reads pcap and pcapng,
 * in nanoseconds, and runs the filter compiled for the file's link type. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>

#include "nlgate/pcapfile.h"

struct nlg_pcap {
	pcap_t *p;
	enum nlg_link link;
	char path[256];
};

static int link_of(int dlt, enum nlg_link *link)
{
	switch (dlt) {
	case DLT_EN10MB:
		*link = NLG_LINK_ETHER;
		return 0;
	case DLT_LINUX_SLL:
		*link = NLG_LINK_SLL;
		return 0;
	case DLT_LINUX_SLL2:
		*link = NLG_LINK_SLL2;
		return 0;
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		*link = NLG_LINK_RAW;
		return 0;
	}
	return -1;
}

struct nlg_pcap *nlg_pcap_open(const char *path, const char *filter, struct nlg_err *err)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct nlg_pcap *f = calloc(1, sizeof(*f));
	struct bpf_program prog;
	int dlt;

	if (!f) {
		nlg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
	if (!f->p) {
		/* libpcap says "x: No such file or directory" or "unknown file format" */
		if (!strncmp(ebuf, path, strlen(path)) && ebuf[strlen(path)] == ':')
			nlg_err_set(err, EINVAL, "cannot read %s:%s", path,
				    ebuf + strlen(path) + 1);
		else
			nlg_err_set(err, EINVAL, "cannot read %s: %s", path, ebuf);
		free(f);
		return NULL;
	}
	dlt = pcap_datalink(f->p);
	if (link_of(dlt, &f->link) < 0) {
		const char *name = pcap_datalink_val_to_name(dlt);
		nlg_err_set(err, EINVAL,
			    "%s: link type %s (%d) is not one nlgate decodes (Ethernet, Linux "
			    "cooked, raw IP)",
			    path, name ? name : "unknown", dlt);
		goto fail;
	}
	if (filter && *filter) {
		if (pcap_compile(f->p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
			nlg_err_set(err, EINVAL, "filter '%s': %s", filter, pcap_geterr(f->p));
			goto fail;
		}
		if (pcap_setfilter(f->p, &prog) < 0) {
			nlg_err_set(err, EINVAL, "filter '%s': %s", filter, pcap_geterr(f->p));
			pcap_freecode(&prog);
			goto fail;
		}
		pcap_freecode(&prog);
	}
	return f;
fail:
	pcap_close(f->p);
	free(f);
	return NULL;
}

enum nlg_link nlg_pcap_link(const struct nlg_pcap *f)
{
	return f->link;
}

int nlg_pcap_next(struct nlg_pcap *f, const uint8_t **data, uint32_t *caplen, uint32_t *wirelen,
		  uint64_t *ts_ns, struct nlg_err *err)
{
	struct pcap_pkthdr *h;
	const u_char *d;
	int r = pcap_next_ex(f->p, &h, &d);

	if (r == PCAP_ERROR_BREAK)
		return 0;
	if (r < 0)
		return nlg_err_set(err, EIO, "reading %s: %s", f->path, pcap_geterr(f->p));
	*data = d;
	*caplen = h->caplen;
	*wirelen = h->len;
	/* nano precision: tv_usec holds nanoseconds */
	*ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
	return 1;
}

void nlg_pcap_close(struct nlg_pcap *f)
{
	if (!f)
		return;
	pcap_close(f->p);
	free(f);
}
