/* Generic schema machinery: the list of record kinds, field lookup, and the
 * key bytes (msgpack and JSON) pre-encoded once at start-up. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlgate/common.h"
#include "nlgate/schema.h"
#include "nlgate/record.h"

#ifdef NLGATE_HAVE_CT
extern struct nlg_schema nlg_ct_schema;
#endif
extern struct nlg_schema nlg_pkt_schema;  /* packet.h */
extern struct nlg_schema nlg_flow_schema; /* packet.h */

/* The record kinds every build has; sources and outputs register their
 * counters' kinds, and tests their fakes, through nlg_schema_register. */
static struct nlg_schema *const builtin[] = {
    &nlg_sock_schema,
#ifdef NLGATE_HAVE_CT
    &nlg_ct_schema,
#endif
    &nlg_pkt_schema,
    &nlg_flow_schema,
};

/* Names more than one kind uses (ct, pkt, flow; sock's family). */
const char *const nlg_family_names[] = {
    "unspec", "unix", "inet", "3", "4", "5", "6", "7", "8", "9", "inet6", NULL,
};
/* Indexed by IP protocol number; unnamed numbers print as themselves. */
const char *const nlg_ipproto_names[] = {
    "ip",   "icmp", "igmp", "3",   "ipip",    "5",    "tcp", "7",   "8",   "9",	   "10",     "11",
    "12",   "13",   "14",   "15",  "16",      "udp",  "18",  "19",  "20",  "21",   "22",     "23",
    "24",   "25",   "26",   "27",  "28",      "29",   "30",  "31",  "32",  "dccp", "34",     "35",
    "36",   "37",   "38",   "39",  "40",      "ipv6", "42",  "43",  "44",  "45",   "46",     "gre",
    "48",   "49",   "esp",  "ah",  "52",      "53",   "54",  "55",  "56",  "57",   "icmpv6", "59",
    "60",   "61",   "62",   "63",  "64",      "65",   "66",  "67",  "68",  "69",   "70",     "71",
    "72",   "73",   "74",   "75",  "76",      "77",   "78",  "79",  "80",  "81",   "82",     "83",
    "84",   "85",   "86",   "87",  "88",      "89",   "90",  "91",  "92",  "93",   "94",     "95",
    "96",   "97",   "98",   "99",  "100",     "101",  "102", "pim", "104", "105",  "106",    "107",
    "108",  "109",  "110",  "111", "112",     "113",  "114", "115", "116", "117",  "118",    "119",
    "120",  "121",  "122",  "123", "124",     "125",  "126", "127", "128", "129",  "130",    "131",
    "sctp", "133",  "134",  "135", "udplite", NULL,
};

#define NLG_SCHEMA_MAX 64
static struct nlg_schema *kinds[NLG_SCHEMA_MAX];
static size_t nkinds;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void key_init(struct nlg_fkey *k, const char *name)
{
	size_t n = strlen(name);

	/* Field names are short identifiers: fixstr (< 32 bytes) always fits. */
	if (n > 31)
		abort();
	k->mp[0] = (uint8_t)(0xa0 | n);
	memcpy(k->mp + 1, name, n);
	k->mp_len = (uint8_t)(n + 1);
	k->json[0] = '"';
	memcpy(k->json + 1, name, n);
	k->json[n + 1] = '"';
	k->json[n + 2] = ':';
	k->json_len = (uint8_t)(n + 3);
}

/* msgpack's container or string head: the fix form below fixmax, else the
 * 8- (str only), 16- or 32-bit length form. */
static size_t mp_head_len(size_t n, size_t fixmax, int has8)
{
	return n < fixmax ? 1 : has8 && n < 256 ? 2 : n < 65536 ? 3 : 5;
}

/* The most bytes a field's value takes, whatever the record holds. */
static size_t mp_value_bound(const struct nlg_field *f)
{
	size_t n = 0, nnames = 0, bits;

	switch (f->type) {
	case NLG_T_U8:
		return 2;
	case NLG_T_U16:
		return 3;
	case NLG_T_U32:
	case NLG_T_I32:
		return 5;
	case NLG_T_U64:
	case NLG_T_I64:
		return 9;
	case NLG_T_BOOL:
		return 1;
	case NLG_T_ENUM:
		for (n = 2; f->names && f->names[nnames]; nnames++) {
			size_t l = strlen(f->names[nnames]);
			if (mp_head_len(l, 32, 1) + l > n)
				n = mp_head_len(l, 32, 1) + l;
		}
		return n;
	case NLG_T_FLAGS:
		bits = f->size >= 4 ? 32 : f->size * 8u;
		while (f->names && nnames < 32 && f->names[nnames])
			nnames++;
		n = mp_head_len(bits, 16, 0);
		for (size_t bit = 0; bit < bits; bit++) {
			size_t l = bit < nnames ? strlen(f->names[bit]) : 0;
			n += bit < nnames ? mp_head_len(l, 32, 1) + l : 5;
		}
		return n;
	case NLG_T_ADDR: /* str8 head, the text and the NUL nlg_addr_text adds */
		return 2 + INET6_ADDRSTRLEN;
	case NLG_T_STR:
		return mp_head_len(f->size, 32, 1) + f->size;
	case NLG_T_HEX:
		return mp_head_len(f->size * 2u, 32, 1) + f->size * 2u;
	}
	return 1;
}

size_t nlg_schema_mp_bound(const struct nlg_schema *s)
{
	size_t n = 5; /* map32 head */

	for (size_t i = 0; i < s->nfields; i++)
		n += s->keys[i].mp_len + mp_value_bound(&s->fields[i]);
	return n;
}

static int add_kind(struct nlg_schema *s)
{
	for (size_t i = 0; i < nkinds; i++) {
		if (kinds[i] == s)
			return 0;
		if (!strcmp(kinds[i]->kind, s->kind))
			return -EEXIST;
	}
	if (nkinds == NLG_SCHEMA_MAX)
		return -ENOSPC;
	if (!s->keys) {
		s->keys = calloc(s->nfields ? s->nfields : 1, sizeof(*s->keys));
		if (!s->keys)
			abort(); /* at start-up, before anything could be lost */
		for (size_t f = 0; f < s->nfields; f++)
			key_init(&s->keys[f], s->fields[f].name);
	}
	/* The msgpack encoder's one reserve per record, sized once here,
	 * beside the key bytes it copies. */
	if (!s->mp_max)
		s->mp_max = nlg_schema_mp_bound(s);
	kinds[nkinds++] = s;
	return 0;
}

static void builtin_init(void)
{
	for (size_t i = 0; i < NLG_ARRAY_SIZE(builtin); i++)
		add_kind(builtin[i]);
}

void nlg_schema_init(void)
{
	pthread_once(&builtin_once, builtin_init);
}

int nlg_schema_register(struct nlg_schema *s)
{
	nlg_schema_init();
	return add_kind(s);
}

const struct nlg_schema *nlg_schema_at(size_t i)
{
	nlg_schema_init();
	return i < nkinds ? kinds[i] : NULL;
}

const struct nlg_schema *nlg_schema_find(const char *kind)
{
	nlg_schema_init();
	for (size_t i = 0; i < nkinds; i++)
		if (!strcmp(kinds[i]->kind, kind))
			return kinds[i];
	return NULL;
}

int nlg_schema_field(const struct nlg_schema *s, const char *name)
{
	for (size_t i = 0; i < s->nfields; i++)
		if (!strcmp(s->fields[i].name, name))
			return (int)i;
	return -1;
}

static const char *const ftype_names[] = {
    [NLG_T_U8] = "u8",	   [NLG_T_U16] = "u16",	   [NLG_T_U32] = "u32",	    [NLG_T_U64] = "u64",
    [NLG_T_I32] = "i32",   [NLG_T_I64] = "i64",	   [NLG_T_BOOL] = "bool",   [NLG_T_ENUM] = "enum",
    [NLG_T_ADDR] = "addr", [NLG_T_STR] = "string", [NLG_T_FLAGS] = "flags", [NLG_T_HEX] = "hex",
};

const char *nlg_ftype_name(enum nlg_ftype t)
{
	return (unsigned)t < NLG_ARRAY_SIZE(ftype_names) ? ftype_names[t] : "?";
}

static char *ip4_text(const uint8_t *b, char *p)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];
		if (v >= 100) {
			*p++ = (char)('0' + v / 100);
			*p++ = (char)('0' + v / 10 % 10);
		} else if (v >= 10) {
			*p++ = (char)('0' + v / 10);
		}
		*p++ = (char)('0' + v % 10);
		*p++ = '.';
	}
	return p - 1;
}

/* RFC 5952 text, as glibc's inet_ntop writes it (the unit test compares the
 * two): the first longest run of two or more zero words becomes "::", and
 * ::a.b.c.d and ::ffff:a.b.c.d keep their IPv4 tail. */
static char *ip6_text(const uint8_t *b, char *p)
{
	static const char hx[] = "0123456789abcdef";
	uint16_t w[8];
	int best = -1, bestlen = 0, cur = -1;

	for (int i = 0; i < 8; i++) {
		w[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
		if (w[i]) {
			cur = -1;
			continue;
		}
		if (cur < 0)
			cur = i;
		if (i - cur + 1 > bestlen) {
			best = cur;
			bestlen = i - cur + 1;
		}
	}
	if (bestlen < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + bestlen) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i)
			*p++ = ':';
		if (i == 6 && best == 0 && (bestlen == 6 || (bestlen == 5 && w[5] == 0xffff)))
			return ip4_text(b + 12, p);
		for (int sh = 12, lead = 1; sh >= 0; sh -= 4) {
			unsigned d = (w[i] >> sh) & 15;
			if (d || !lead || !sh) {
				*p++ = hx[d];
				lead = 0;
			}
		}
	}
	if (best >= 0 && best + bestlen == 8)
		*p++ = ':';
	return p;
}

size_t nlg_addr_text(const struct nlg_addr *a, char *out)
{
	char *end;

	if (a->family == AF_INET)
		end = ip4_text(a->bytes, out);
	else if (a->family == AF_INET6)
		end = ip6_text(a->bytes, out);
	else
		end = out;
	*end = 0;
	return (size_t)(end - out);
}

int64_t nlg_field_int(const struct nlg_field *f, const void *rec)
{
	const char *p = (const char *)rec + f->offset;

	switch (f->type) {
	case NLG_T_U8:
	case NLG_T_BOOL:
	case NLG_T_ENUM:
		return *(const uint8_t *)p;
	case NLG_T_U16:
		return *(const uint16_t *)p;
	case NLG_T_U32:
		return *(const uint32_t *)p;
	case NLG_T_FLAGS:
		return nlg_field_flags(f, rec);
	case NLG_T_U64:
		return (int64_t) * (const uint64_t *)p;
	case NLG_T_I32:
		return *(const int32_t *)p;
	case NLG_T_I64:
		return *(const int64_t *)p;
	default:
		return 0;
	}
}

static size_t flags_text(const struct nlg_field *f, uint32_t v, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = 0;
	for (unsigned bit = 0; f->names && f->names[bit] && bit < 32; bit++) {
		if (!(v & (1u << bit)))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? "|" : "", f->names[bit]);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	return off;
}

size_t nlg_field_text(const struct nlg_field *f, const void *rec, char *buf, size_t len)
{
	const char *p = (const char *)rec + f->offset;
	int n = 0;

	if (!len)
		return 0;
	switch (f->type) {
	case NLG_T_ADDR: {
		const struct nlg_addr *a = (const struct nlg_addr *)p;
		char text[INET6_ADDRSTRLEN];
		size_t n = nlg_addr_text(a, text);
		if (n >= len)
			n = len ? len - 1 : 0;
		if (len) {
			memcpy(buf, text, n);
			buf[n] = 0;
		}
		return n;
	}
	case NLG_T_STR:
		n = snprintf(buf, len, "%.*s", (int)f->size, p);
		break;
	case NLG_T_ENUM: {
		unsigned v = *(const uint8_t *)p, i;
		for (i = 0; f->names && f->names[i] && i < v; i++)
			;
		if (f->names && f->names[i] && i == v)
			n = snprintf(buf, len, "%s", f->names[v]);
		else
			n = snprintf(buf, len, "%u", v);
		break;
	}
	case NLG_T_FLAGS:
		return flags_text(f, nlg_field_flags(f, rec), buf, len);
	case NLG_T_HEX:
		for (size_t i = 0; i < f->size && 2 * i + 2 < len; i++)
			n += snprintf(buf + 2 * i, len - 2 * i, "%02x", (uint8_t)p[i]);
		break;
	case NLG_T_U64:
		n = snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
		break;
	default:
		n = snprintf(buf, len, "%" PRId64, nlg_field_int(f, rec));
		break;
	}
	if (n < 0)
		n = 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}
