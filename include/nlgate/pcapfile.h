/* Reading a pcap or pcapng file through libpcap, packet by packet, with
 * nanosecond timestamps and an optional tcpdump filter: the offline input of
 * packet capture (the same decoder and flow table as a live ring). */
#ifndef NLGATE_PCAPFILE_H
#define NLGATE_PCAPFILE_H

#include <stdint.h>
#include "common.h"
#include "packet.h"

struct nlg_pcap;

/* NULL with err naming the file (missing, unreadable, not a capture, a link
 * type the decoder does not know) or the filter that does not compile. */
struct nlg_pcap *nlg_pcap_open(const char *path, const char *filter, struct nlg_err *err);
enum nlg_link nlg_pcap_link(const struct nlg_pcap *p);
/* The next packet that passes the filter: 1, 0 at the end, or -EIO with err
 * (a file cut or corrupt past its header). Valid until the next call. */
int nlg_pcap_next(struct nlg_pcap *p, const uint8_t **data, uint32_t *caplen, uint32_t *wirelen,
		  uint64_t *ts_ns, struct nlg_err *err);
void nlg_pcap_close(struct nlg_pcap *p);

#endif
