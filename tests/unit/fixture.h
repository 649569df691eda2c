/* For unit tests: a file under tests/fixtures read whole (the recorded
 * socket dumps of tests/fixtures/record.sh), the test failing if it cannot
 * be. Include after <cmocka.h>. */
#ifndef NLGATE_TEST_FIXTURE_H
#define NLGATE_TEST_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The bytes (malloc'd, the caller frees them) and their count in *len. */
static inline uint8_t *read_fixture(const char *name, size_t *len)
{
	const char *src = getenv("NLGATE_SRC");
	char path[512];
	struct stat st;
	uint8_t *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", src ? src : NLGATE_SRCDIR, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("fixture %s: %s (run tests/fixtures/record.sh as root)", path,
			 strerror(errno));
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

#endif
