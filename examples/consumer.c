/* A feed consumer in C with msgpack-c: connects to an nlgate unix feed and
 * prints one line per frame, "TAG SECONDS RECORD" (the record in msgpack-c's
 * own text form), for frames whose tag starts with --tag, until --count of
 * them or the feed closes. Built by CMake as example_consumer.
 *
 *   example_consumer [SOCKET] [--tag PREFIX] [--count N] */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The frame's time: msgpack's timestamp extension (type -1), 4, 8 or 12 bytes. */
static double frame_time(const msgpack_object *o)
{
	msgpack_timestamp ts;

	if (o->type == MSGPACK_OBJECT_EXT && msgpack_object_to_timestamp(o, &ts))
		return (double)ts.tv_sec + ts.tv_nsec / 1e9;
	return -1;
}

/* One frame [tag, time, record]: 1 printed, 0 skipped (tag), -1 not a frame. */
static int print_frame(const msgpack_object *f, const char *prefix)
{
	const msgpack_object *v;
	const msgpack_object_str *tag;

	if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size != 3)
		return -1;
	v = f->via.array.ptr;
	if (v[0].type != MSGPACK_OBJECT_STR)
		return -1;
	tag = &v[0].via.str;
	if (strlen(prefix) > tag->size || strncmp(tag->ptr, prefix, strlen(prefix)))
		return 0;
	printf("%.*s %.6f ", (int)tag->size, tag->ptr, frame_time(&v[1]));
	msgpack_object_print(stdout, v[2]);
	putchar('\n');
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv)
{
	const char *path = "nlgate.sock", *prefix = "";
	long count = 0, seen = 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	msgpack_unpacker up;
	msgpack_unpacked msg;
	int fd, rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			prefix = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = strtol(argv[++i], NULL, 10);
		else if (argv[i][0] != '-')
			path = argv[i];
		else {
			fprintf(stderr, "usage: %s [SOCKET] [--tag PREFIX] [--count N]\n", argv[0]);
			return 2;
		}
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "%s: path too long\n", path);
		return 1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!msgpack_unpacker_init(&up, 64 * 1024)) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	msgpack_unpacked_init(&msg);
	while (!count || seen < count) {
		msgpack_unpack_return r = MSGPACK_UNPACK_CONTINUE;
		ssize_t n;

		if (!msgpack_unpacker_reserve_buffer(&up, 64 * 1024)) {
			rc = 1;
			break;
		}
		n = read(fd, msgpack_unpacker_buffer(&up), msgpack_unpacker_buffer_capacity(&up));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* the feed closed (or failed): done */
			rc = n < 0;
			break;
		}
		msgpack_unpacker_buffer_consumed(&up, (size_t)n);
		while ((!count || seen < count) &&
		       (r = msgpack_unpacker_next(&up, &msg)) == MSGPACK_UNPACK_SUCCESS) {
			int p = print_frame(&msg.data, prefix);

			if (p < 0) {
				fprintf(stderr, "not an nlgate frame\n");
				rc = 1;
				goto out;
			}
			seen += p;
		}
		if (r == MSGPACK_UNPACK_PARSE_ERROR || r == MSGPACK_UNPACK_NOMEM_ERROR) {
			fprintf(stderr, "the feed's bytes do not decode\n");
			rc = 1;
			break;
		}
	}
out:
	msgpack_unpacked_destroy(&msg);
	msgpack_unpacker_destroy(&up);
	close(fd);
	return rc;
}
