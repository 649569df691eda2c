/* core/capture.c's ring set-up when the kernel is short of memory: the ring
 * is halved until it is granted, and the user is told. setsockopt and mmap
 * are wrapped (-Wl,--wrap, tests/tests.cmake) to refuse rings over a limit
 * with ENOMEM; the capture is a live one on lo (root: CAP_NET_RAW; skipped
 * otherwise), opened and closed without traffic. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_packet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "nlgate/capture.h"

#define MIB (1024u * 1024u)

static unsigned max_blocks; /* PACKET_RX_RING: more blocks than this is ENOMEM */
static size_t max_map;	    /* mmap of a packet ring longer than this is ENOMEM */
static unsigned rings_asked, maps_refused;

int __real_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int __wrap_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (level == SOL_PACKET && name == PACKET_RX_RING && len >= sizeof(struct tpacket_req3)) {
		const struct tpacket_req3 *req = val;
		if (req->tp_block_nr) /* 0: giving a ring back */
			rings_asked++;
		if (max_blocks && req->tp_block_nr > max_blocks) {
			errno = ENOMEM;
			return -1;
		}
	}
	return __real_setsockopt(fd, level, name, val, len);
}

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fd >= 0 && max_map && len > max_map) {
		maps_refused++;
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap(addr, len, prot, flags, fd, off);
}

static int root_or_skip(void)
{
	int fd = socket(AF_PACKET, SOCK_RAW, 0);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static void conf_lo(struct nlg_capture_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->iface, sizeof(c->iface), "lo");
	snprintf(c->fanout, sizeof(c->fanout), "hash");
	c->workers = 1;
	c->snaplen = 128;
	c->ring_size = 8 * MIB; /* 8 blocks */
	c->ring_block = MIB;
	c->ring_frame = 2048;
	c->ring_timeout_ms = 10;
	c->queue = 1024;
	c->dispatch = NLG_CAP_MMAP;
	c->flow.idle_ns = 30000000000ull;
	c->flow.max = 1024;
}

static void reset(unsigned blocks, size_t map)
{
	max_blocks = blocks;
	max_map = map;
	rings_asked = maps_refused = 0;
}

static void opens(size_t want_bytes, unsigned want_asked)
{
	struct nlg_capture_conf c;
	struct nlg_err err = {{0}};
	struct nlg_capture_stats st;
	struct nlg_capture *cap;
	char note[128];

	conf_lo(&c);
	cap = nlg_capture_open(&c, &err);
	if (!cap)
		fail_msg("open: %s", err.msg);
	nlg_capture_stats(cap, &st);
	assert_int_equal(st.ring_bytes, want_bytes);
	assert_string_equal(st.mode, "mmap");
	assert_int_equal(rings_asked, want_asked);
	snprintf(note, sizeof(note),
		 "not enough memory for the ring: halved to %zu bytes per worker", want_bytes);
	if (want_bytes == 8 * MIB)
		assert_null(strstr(nlg_capture_notes(cap), "halved"));
	else
		assert_non_null(strstr(nlg_capture_notes(cap), note));
	nlg_capture_close(cap);
}

static void granted_at_once(void **state)
{
	(void)state;
	if (!root_or_skip())
		skip();
	reset(0, 0);
	opens(8 * MIB, 1);
}

/* The kernel refuses the ring itself: 8 blocks, then 4, then 2. */
static void halved_until_granted(void **state)
{
	(void)state;
	if (!root_or_skip())
		skip();
	reset(2, 0);
	opens(2 * MIB, 3);
}

/* The ring is granted but cannot be mapped: it is given back and halved. */
static void halved_when_the_map_fails(void **state)
{
	(void)state;
	if (!root_or_skip())
		skip();
	reset(0, 4 * MIB);
	opens(4 * MIB, 2);
	assert_int_equal(maps_refused, 1);
}

/* Not even two blocks: a clear error, nothing left open. */
static void too_little_memory_is_an_error(void **state)
{
	struct nlg_capture_conf c;
	struct nlg_err err = {{0}};

	(void)state;
	if (!root_or_skip())
		skip();
	reset(1, 0);
	conf_lo(&c);
	assert_null(nlg_capture_open(&c, &err));
	assert_non_null(strstr(err.msg, "no memory for even a 2097152-byte ring"));
	assert_int_equal(rings_asked, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(granted_at_once),
	    cmocka_unit_test(halved_until_granted),
	    cmocka_unit_test(halved_when_the_map_fails),
	    cmocka_unit_test(too_little_memory_is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
