/* Unit tests for core/nl.c: every message-type path of the parser on crafted
 * bytes, the dump runner's retry/restart and error paths through the replay
 * seam (nlg_nl_set_io), event receiving, and live NETLINK_SOCK_DIAG dumps. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <cmocka.h>

#include "nlgate/nl.h"

#define SEQ	 0x1234u
#define PID	 0x5678u
#define T_DATA	 0x20 /* any type >= NLMSG_MIN_TYPE */
#define BUFWORDS (16 * 1024)

/* A receive buffer built message by message; uint32_t keeps it aligned. */
struct tbuf {
	uint32_t w[BUFWORDS];
	size_t len;
};

static struct nlmsghdr *put(struct tbuf *b, uint16_t type, uint16_t flags, uint32_t seq,
			    uint32_t pid, const void *payload, size_t plen)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header((char *)b->w + b->len);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = pid;
	if (plen)
		memcpy(mnl_nlmsg_put_extra_header(nlh, plen), payload, plen);
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
	return nlh;
}

static void put_data(struct tbuf *b, uint32_t tag)
{
	put(b, T_DATA, NLM_F_MULTI, SEQ, PID, &tag, sizeof(tag));
}

static void put_done(struct tbuf *b, int code)
{
	put(b, NLMSG_DONE, NLM_F_MULTI, SEQ, PID, &code, sizeof(code));
}

static struct nlmsghdr *put_error(struct tbuf *b, int code)
{
	struct nlmsgerr e = {.error = code};

	e.msg.nlmsg_len = 40; /* our request, echoed back capped to its header */
	e.msg.nlmsg_seq = SEQ;
	return put(b, NLMSG_ERROR, NLM_F_CAPPED, SEQ, PID, &e, sizeof(e));
}

/* What the callback saw, and what it should answer. */
struct seen {
	int calls;
	uint32_t tags[64];
	int verdict_at; /* 1-based call that gets `verdict`; 0: always OK */
	int verdict;
	struct nlg_err *err; /* set: the callback writes its own message on ERROR */
};

static int on_msg(const struct nlmsghdr *nlh, void *data)
{
	struct seen *s = data;
	uint32_t tag = 0;

	if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(tag))
		memcpy(&tag, mnl_nlmsg_get_payload(nlh), sizeof(tag));
	if (s->calls < 64)
		s->tags[s->calls] = tag;
	s->calls++;
	if (s->verdict_at == s->calls) {
		if (s->verdict == NLG_CB_ERROR && s->err)
			nlg_err_set(s->err, EBADMSG, "decoder: bad attribute in message %u", tag);
		return s->verdict;
	}
	return NLG_CB_OK;
}

static struct tbuf B; /* big: keep it off the stack */

static int parse(struct nlg_nl_dump *d, struct seen *s, struct nlg_nl_stats *st,
		 struct nlg_err *err)
{
	return nlg_nl_parse(d, B.w, B.len, on_msg, s, st, err);
}

#define DUMP_INIT                                                                                  \
	{                                                                                          \
		.seq = SEQ, .portid = PID, .what = "inet_diag (tcp)"                               \
	}

static int setup(void **state)
{
	NLG_UNUSED(state);
	memset(&B, 0, sizeof(B));
	return 0;
}

/* ---- parser ------------------------------------------------------------- */

static void test_multi_then_done(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_data(&B, 2);
	put_data(&B, 3);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_int_equal(s.calls, 3);
	assert_int_equal(s.tags[0], 1);
	assert_int_equal(s.tags[2], 3);
	assert_true(d.done);
	assert_int_equal(d.error, 0);
	assert_int_equal(st.msgs, 3);
	assert_int_equal(st.errors, 0);
}

static void test_more_data_across_buffers(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_data(&B, 2);
	assert_int_equal(parse(&d, &s, &st, &err), 1);
	assert_false(d.done);
	memset(&B, 0, sizeof(B));
	put_data(&B, 3);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_int_equal(s.calls, 3);
	assert_int_equal(s.tags[2], 3);
}

static void test_noop_skipped(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put(&B, NLMSG_NOOP, 0, SEQ, PID, NULL, 0);
	put_data(&B, 2);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.tags[1], 2);
	assert_int_equal(st.skipped, 1);
}

static void test_done_negative_payload(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_done(&B, -EPERM);
	assert_int_equal(parse(&d, &s, &st, &err), -EPERM);
	assert_int_equal(s.calls, 1);
	assert_true(d.done);
	assert_int_equal(d.error, -EPERM);
	assert_non_null(strstr(err.msg, "inet_diag (tcp)"));
	assert_non_null(strstr(err.msg, strerror(EPERM)));
	assert_int_equal(st.errors, 1);

	/* a missing module reported through DONE reads the same as through ERROR */
	memset(&B, 0, sizeof(B));
	memset(&d, 0, sizeof(d));
	d.seq = SEQ;
	put_done(&B, -ENOENT);
	assert_int_equal(nlg_nl_parse(&d, B.w, B.len, on_msg, &s, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "kernel lacks"));
}

static void test_error_zero_is_ack(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_error(&B, 0);
	put_data(&B, 9); /* after the end: ignored */
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_true(d.done);
	assert_int_equal(s.calls, 0);
	assert_int_equal(st.errors, 0);
}

static void test_error_kernel_lacks(void **state)
{
	static const int codes[] = {EOPNOTSUPP, ENOENT};
	size_t i;

	NLG_UNUSED(state);
	for (i = 0; i < NLG_ARRAY_SIZE(codes); i++) {
		struct nlg_nl_dump d = {.seq = SEQ, .portid = PID, .what = "mptcp_diag"};
		struct nlg_nl_stats st = {0};
		struct nlg_err err = {{0}};
		struct seen s = {0};

		memset(&B, 0, sizeof(B));
		put_error(&B, -codes[i]);
		assert_int_equal(parse(&d, &s, &st, &err), -codes[i]);
		assert_non_null(strstr(err.msg, "kernel lacks"));
		assert_non_null(strstr(err.msg, "mptcp_diag"));
		assert_true(d.done);
	}
}

static void test_error_other_errno(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_error(&B, -EINVAL);
	assert_int_equal(parse(&d, &s, NULL, &err), -EINVAL);
	assert_null(strstr(err.msg, "kernel lacks"));
	assert_non_null(strstr(err.msg, "inet_diag (tcp): "));
	assert_non_null(strstr(err.msg, strerror(EINVAL)));
}

static void test_error_mid_dump(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_data(&B, 2);
	put_error(&B, -EBUSY);
	put_data(&B, 3);
	assert_int_equal(parse(&d, &s, &st, &err), -EBUSY);
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.tags[1], 2);
	assert_non_null(strstr(err.msg, strerror(EBUSY)));
	/* the dump is over: parsing again reports the same error, delivers nothing */
	assert_int_equal(parse(&d, &s, &st, &err), -EBUSY);
	assert_int_equal(s.calls, 2);
}

static void test_ext_ack_message(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_err err = {{0}};
	struct nlmsghdr *nlh;
	struct nlattr *attr;
	struct seen s = {0};
	size_t before;

	NLG_UNUSED(state);
	nlh = put_error(&B, -EINVAL);
	/* append an NLMSGERR_ATTR_MSG TLV after the capped nlmsgerr */
	before = NLMSG_ALIGN(nlh->nlmsg_len);
	B.len -= before;
	nlh->nlmsg_flags |= NLM_F_ACK_TLVS;
	mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, "unknown attribute type");
	B.len += NLMSG_ALIGN(nlh->nlmsg_len);
	assert_true(B.len > before);
	assert_int_equal(parse(&d, &s, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown attribute type"));

	/* the same text on a DONE carrying an error, TLVs right after the int */
	memset(&B, 0, sizeof(B));
	memset(&d, 0, sizeof(d));
	nlh = put(&B, NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, SEQ, PID, &(int){-ENOENT},
		  sizeof(int));
	B.len -= NLMSG_ALIGN(nlh->nlmsg_len);
	mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, "no such family");
	B.len += NLMSG_ALIGN(nlh->nlmsg_len);
	assert_int_equal(parse(&d, &s, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "kernel lacks"));
	assert_non_null(strstr(err.msg, "no such family"));

	/* a string TLV without its NUL is ignored, not read past */
	memset(&B, 0, sizeof(B));
	memset(&d, 0, sizeof(d));
	nlh = put(&B, NLMSG_DONE, NLM_F_ACK_TLVS, 0, 0, &(int){-ENOENT}, sizeof(int));
	B.len -= NLMSG_ALIGN(nlh->nlmsg_len);
	attr = mnl_nlmsg_get_payload_tail(nlh);
	attr->nla_type = NLMSGERR_ATTR_MSG;
	attr->nla_len = sizeof(*attr) + 4;
	memcpy(attr + 1, "ABCD", 4);
	nlh->nlmsg_len += NLMSG_ALIGN(attr->nla_len);
	B.len += NLMSG_ALIGN(nlh->nlmsg_len);
	assert_int_equal(parse(&d, &s, NULL, &err), -ENOENT);
	assert_null(strstr(err.msg, "ABCD"));
}

static void test_overrun(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put(&B, NLMSG_OVERRUN, 0, SEQ, PID, NULL, 0);
	put_data(&B, 2);
	assert_int_equal(parse(&d, &s, &st, &err), -EOVERFLOW);
	assert_int_equal(s.calls, 1);
	assert_int_equal(st.overruns, 1);
	assert_non_null(strstr(err.msg, "netlink overrun"));
	assert_non_null(strstr(err.msg, "data lost"));
}

static void test_dump_intr(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put(&B, T_DATA, NLM_F_MULTI | NLM_F_DUMP_INTR, SEQ, PID, &(uint32_t){2}, 4);
	put_data(&B, 3);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), -EINTR);
	assert_int_equal(s.calls, 3); /* every message still went through */
	assert_true(d.intr);
	assert_int_equal(st.intr, 1);
	assert_non_null(strstr(err.msg, "NLM_F_DUMP_INTR"));

	/* the flag on DONE alone counts too */
	memset(&B, 0, sizeof(B));
	memset(&d, 0, sizeof(d));
	put_data(&B, 1);
	put(&B, NLMSG_DONE, NLM_F_MULTI | NLM_F_DUMP_INTR, SEQ, PID, &(int){0}, sizeof(int));
	assert_int_equal(parse(&d, &s, &st, &err), -EINTR);
	assert_int_equal(st.intr, 2);
}

static void test_foreign_seq_and_portid(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put(&B, T_DATA, NLM_F_MULTI, SEQ + 1, PID, &(uint32_t){100}, 4);
	put(&B, T_DATA, NLM_F_MULTI, SEQ, PID + 1, &(uint32_t){101}, 4);
	put(&B, NLMSG_DONE, NLM_F_MULTI, SEQ - 1, PID, &(int){0}, sizeof(int)); /* stale */
	put_error(&B, 0)->nlmsg_pid = 0;					/* not ours */
	put_data(&B, 2);
	assert_int_equal(parse(&d, &s, &st, &err), 1); /* foreign DONE/ack end nothing */
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.tags[0], 1);
	assert_int_equal(s.tags[1], 2);
	assert_int_equal(st.bad_seq, 4);
	assert_false(d.done);

	/* portid 0 in the dump state: any port id is accepted */
	memset(&B, 0, sizeof(B));
	d = (struct nlg_nl_dump){.seq = SEQ};
	put(&B, T_DATA, 0, SEQ, 4242, &(uint32_t){7}, 4);
	put(&B, T_DATA, 0, SEQ + 9, 4242, &(uint32_t){8}, 4);
	put_done(&B, 0);
	s.calls = 0;
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.tags[0], 7);
}

static void test_unknown_control_type(void **state)
{
	char junk[37] = "control payload of an odd length....";
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put(&B, 0x7, 0, SEQ, PID, junk, sizeof(junk));
	put_data(&B, 1);
	put(&B, NLMSG_MIN_TYPE - 1, 0, SEQ, PID, junk, 3);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.tags[0], 1);
	assert_int_equal(st.skipped, 2);
}

static void expect_eproto(size_t len, uint32_t nlmsg_len_at_0)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};

	if (nlmsg_len_at_0 != UINT32_MAX)
		((struct nlmsghdr *)B.w)->nlmsg_len = nlmsg_len_at_0;
	assert_int_equal(nlg_nl_parse(&d, B.w, len, on_msg, &s, &st, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "truncated netlink message"));
	assert_int_equal(d.error, -EPROTO);
	assert_int_equal(st.errors, 1);
	assert_int_equal(s.calls, 0);
}

static void test_truncated_header(void **state)
{
	NLG_UNUSED(state);
	put_data(&B, 1);
	expect_eproto(10, UINT32_MAX); /* fewer bytes than a header */
	expect_eproto(B.len, 12);      /* nlmsg_len below a header */
}

static void test_len_beyond_buffer(void **state)
{
	NLG_UNUSED(state);
	put_data(&B, 1);
	expect_eproto(B.len, (uint32_t)B.len + 4);
	expect_eproto(B.len - 1, UINT32_MAX); /* the buffer ends inside the message */
}

static void test_garbled_length(void **state)
{
	NLG_UNUSED(state);
	put_data(&B, 1);
	put_done(&B, 0);
	expect_eproto(B.len, 0); /* would never advance */
	expect_eproto(B.len, 0xffffffffu);
	expect_eproto(B.len, 0x80000010u);
}

static void test_garbage_after_good_message(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	memset((char *)B.w + B.len, 0xa5, 8);
	assert_int_equal(nlg_nl_parse(&d, B.w, B.len + 8, on_msg, &s, NULL, &err), -EPROTO);
	assert_int_equal(s.calls, 1); /* the good message before it was delivered */
	assert_non_null(strstr(err.msg, "truncated netlink message"));
}

static void test_zero_length_buffer(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	assert_int_equal(nlg_nl_parse(&d, B.w, 0, on_msg, &s, NULL, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "truncated netlink message"));
	assert_int_equal(s.calls, 0);
}

static void test_callback_stop(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {.verdict_at = 2, .verdict = NLG_CB_STOP};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_data(&B, 2);
	put_data(&B, 3);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), 0);
	assert_int_equal(s.calls, 2);
	assert_false(d.done); /* the kernel is still dumping */
	assert_int_equal(d.error, 0);
	assert_int_equal(st.errors, 0);
}

static void test_callback_error(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {.verdict_at = 2, .verdict = NLG_CB_ERROR};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_data(&B, 2);
	put_data(&B, 3);
	put_done(&B, 0);
	assert_int_equal(parse(&d, &s, &st, &err), -ECANCELED);
	assert_int_equal(s.calls, 2);
	assert_int_equal(st.errors, 1);
	assert_non_null(strstr(err.msg, "handler failed"));

	/* a callback that explains itself keeps its message */
	d = (struct nlg_nl_dump)DUMP_INIT;
	memset(&err, 0, sizeof(err));
	s = (struct seen){.verdict_at = 1, .verdict = NLG_CB_ERROR, .err = &err};
	assert_int_equal(parse(&d, &s, &st, &err), -ECANCELED);
	assert_string_equal(err.msg, "decoder: bad attribute in message 1");
}

static void test_short_error_payload(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};
	struct nlg_err err = {{0}};
	struct seen s = {0};
	int code = -EPERM;

	NLG_UNUSED(state);
	put_data(&B, 1);
	put(&B, NLMSG_ERROR, 0, SEQ, PID, &code, sizeof(code)); /* just the int */
	assert_int_equal(parse(&d, &s, &st, &err), -EPROTO);
	assert_int_equal(s.calls, 1);
	assert_non_null(strstr(err.msg, "NLMSG_ERROR"));
}

static void test_null_callback_discards(void **state)
{
	struct nlg_nl_dump d = DUMP_INIT;
	struct nlg_nl_stats st = {0};

	NLG_UNUSED(state);
	put_data(&B, 1);
	put_done(&B, 0);
	assert_int_equal(nlg_nl_parse(&d, B.w, B.len, NULL, NULL, &st, NULL), 0);
	assert_int_equal(st.msgs, 0);
	assert_true(d.done);
}

/* ---- the runner, through the replay seam ----------------------------------- */

/* A fake kernel: answers each request with data messages and DONE, flagging
 * the first `intr_attempts` dumps as interrupted, or fails recv with recv_err. */
struct fake {
	int sends;
	uint32_t seq, pid;
	int intr_attempts;
	int msgs_per_dump;
	int served; /* the current request has been answered */
	int recv_err;
	int restarts;
	int delivered_at_restart;
	struct seen seen;
	struct tbuf out;
};

static int fake_send(void *ctx, const struct nlmsghdr *req)
{
	struct fake *f = ctx;

	f->sends++;
	f->seq = req->nlmsg_seq;
	f->pid = req->nlmsg_pid;
	f->served = 0;
	assert_true(req->nlmsg_flags & NLM_F_REQUEST);
	return 0;
}

static ssize_t fake_recv(void *ctx, void *buf, size_t len)
{
	struct fake *f = ctx;
	uint16_t flags = NLM_F_MULTI;
	int i;

	if (f->recv_err)
		return -f->recv_err;
	if (f->served)
		return 0; /* would block */
	memset(&f->out, 0, sizeof(f->out));
	if (f->sends <= f->intr_attempts)
		flags |= NLM_F_DUMP_INTR;
	for (i = 0; i < f->msgs_per_dump; i++)
		put(&f->out, T_DATA, flags, f->seq, f->pid, &(uint32_t){(uint32_t)i}, 4);
	put(&f->out, NLMSG_DONE, flags, f->seq, f->pid, &(int){0}, sizeof(int));
	assert_true(f->out.len <= len);
	memcpy(buf, f->out.w, f->out.len);
	f->served = 1;
	return (ssize_t)f->out.len;
}

static int fake_msg(const struct nlmsghdr *nlh, void *data)
{
	struct fake *f = data;
	return on_msg(nlh, &f->seen);
}

static void fake_restart(void *data)
{
	struct fake *f = data;

	f->restarts++;
	f->delivered_at_restart = f->seen.calls;
	f->seen.calls = 0; /* drop the partial result, as a consumer would */
}

static struct nlg_nl *open_fake(struct fake *f)
{
	struct nlg_err err = {{0}};
	struct nlg_nl *nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, NULL, &err);
	struct nlg_nl_io io = {.send = fake_send, .recv = fake_recv, .ctx = f};

	if (!nl)
		fail_msg("nlg_nl_open: %s", err.msg);
	nlg_nl_set_io(nl, &io);
	return nl;
}

static void test_run_retries_interrupted_dump(void **state)
{
	struct fake f = {.intr_attempts = 2, .msgs_per_dump = 5};
	struct nlg_nl *nl = open_fake(&f);
	struct nlg_err err = {{0}};
	struct nlmsghdr req = {.nlmsg_len = sizeof(req), .nlmsg_type = T_DATA};

	NLG_UNUSED(state);
	assert_int_equal(nlg_nl_dump_run(nl, &req, "fake", fake_msg, &f, fake_restart, &err), 0);
	assert_int_equal(f.sends, 3);
	assert_int_equal(f.restarts, 2);
	assert_int_equal(f.delivered_at_restart, 5); /* the interrupted dump was delivered */
	assert_int_equal(f.seen.calls, 5);	     /* and only the clean one remains */
	assert_int_equal(f.pid, nlg_nl_portid(nl));
	assert_int_equal(nlg_nl_stats(nl)->intr, 2);
	assert_int_equal(nlg_nl_stats(nl)->msgs, 15);
	nlg_nl_close(nl);
}

static void test_run_fresh_seq_each_attempt(void **state)
{
	struct fake f = {.msgs_per_dump = 1};
	struct nlg_nl *nl = open_fake(&f);
	struct nlg_err err = {{0}};
	struct nlmsghdr req = {.nlmsg_len = sizeof(req), .nlmsg_type = T_DATA};
	uint32_t first;

	NLG_UNUSED(state);
	assert_int_equal(nlg_nl_dump_run(nl, &req, "fake", fake_msg, &f, NULL, &err), 0);
	first = f.seq;
	assert_int_not_equal(first, 0);
	assert_int_equal(nlg_nl_dump_run(nl, &req, "fake", fake_msg, &f, NULL, &err), 0);
	assert_int_equal(f.seq, first + 1);
	nlg_nl_close(nl);
}

static void test_run_gives_up_after_retries(void **state)
{
	struct fake f = {.intr_attempts = 1000, .msgs_per_dump = 2};
	struct nlg_nl *nl = open_fake(&f);
	struct nlg_err err = {{0}};
	struct nlmsghdr req = {.nlmsg_len = sizeof(req), .nlmsg_type = T_DATA};

	NLG_UNUSED(state);
	assert_int_equal(
	    nlg_nl_dump_run(nl, &req, "inet_diag (tcp)", fake_msg, &f, fake_restart, &err), -EINTR);
	assert_int_equal(f.sends, NLG_NL_INTR_RETRIES + 1);
	assert_int_equal(f.restarts, NLG_NL_INTR_RETRIES);
	assert_non_null(strstr(err.msg, "inet_diag (tcp): dump kept being interrupted"));
	nlg_nl_close(nl);
}

static void test_run_enobufs_is_hard_error(void **state)
{
	struct fake f = {.recv_err = ENOBUFS};
	struct nlg_nl *nl = open_fake(&f);
	struct nlg_err err = {{0}};
	struct nlmsghdr req = {.nlmsg_len = sizeof(req), .nlmsg_type = T_DATA};

	NLG_UNUSED(state);
	assert_int_equal(nlg_nl_dump_run(nl, &req, "fake", fake_msg, &f, fake_restart, &err),
			 -ENOBUFS);
	assert_non_null(strstr(err.msg, "ENOBUFS"));
	assert_int_equal(f.restarts, 0);
	assert_int_equal(nlg_nl_stats(nl)->enobufs, 1);
	nlg_nl_close(nl);
}

static void test_run_no_reply_times_out(void **state)
{
	struct fake f = {.recv_err = EAGAIN}; /* the fake never answers */
	struct nlg_nl *nl = open_fake(&f);
	struct nlg_err err = {{0}};
	struct nlmsghdr req = {.nlmsg_len = sizeof(req), .nlmsg_type = T_DATA};

	NLG_UNUSED(state);
	assert_int_equal(nlg_nl_dump_run(nl, &req, "fake", fake_msg, &f, NULL, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "no reply"));
	nlg_nl_close(nl);
}

static void test_raw_recording(void **state)
{
	struct fake f = {.msgs_per_dump = 3};
	struct nlg_nl *nl = open_fake(&f);
	struct nlg_err err = {{0}};
	struct nlmsghdr req = {.nlmsg_len = sizeof(req), .nlmsg_type = T_DATA};
	char path[] = "/tmp/nlg-test-nl-XXXXXX";
	static char back[sizeof(B.w)];
	int fd = mkstemp(path);
	ssize_t n;

	NLG_UNUSED(state);
	assert_true(fd >= 0);
	unlink(path);
	nlg_nl_set_raw(nl, fd);
	assert_int_equal(nlg_nl_dump_run(nl, &req, "fake", fake_msg, &f, NULL, &err), 0);
	n = pread(fd, back, sizeof(back), 0);
	assert_int_equal(n, (ssize_t)f.out.len);
	assert_memory_equal(back, f.out.w, f.out.len);
	assert_int_equal(nlg_nl_stats(nl)->bytes, f.out.len);
	close(fd);
	nlg_nl_close(nl);
}

/* ---- events ------------------------------------------------------------- */

struct evsrc {
	struct tbuf *b;
	int err;
};

static ssize_t ev_recv(void *ctx, void *buf, size_t len)
{
	struct evsrc *e = ctx;

	if (e->err)
		return -e->err;
	assert_true(e->b->len <= len);
	memcpy(buf, e->b->w, e->b->len);
	return (ssize_t)e->b->len;
}

static void test_events(void **state)
{
	struct evsrc src = {.b = &B};
	struct nlg_nl *nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, NULL, NULL);
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	assert_non_null(nl);
	nlg_nl_set_io(nl, &(struct nlg_nl_io){.send = NULL, .recv = ev_recv, .ctx = &src});
	/* events carry seq 0 and any pid; control messages do not end anything */
	put(&B, T_DATA, 0, 0, 0, &(uint32_t){1}, 4);
	put(&B, NLMSG_NOOP, 0, 0, 0, NULL, 0);
	put_error(&B, 0);
	put(&B, NLMSG_DONE, 0, 0, 0, &(int){0}, sizeof(int));
	put(&B, T_DATA, 0, 77, 0, &(uint32_t){2}, 4);
	assert_int_equal(nlg_nl_recv_events(nl, on_msg, &s, &err), (int)B.len);
	assert_int_equal(s.calls, 2);
	assert_int_equal(s.tags[1], 2);
	assert_int_equal(nlg_nl_stats(nl)->skipped, 2);

	/* an overrun is reported after the rest of the buffer was delivered */
	memset(&B, 0, sizeof(B));
	s.calls = 0;
	put(&B, NLMSG_OVERRUN, 0, 0, 0, NULL, 0);
	put(&B, T_DATA, 0, 0, 0, &(uint32_t){3}, 4);
	assert_int_equal(nlg_nl_recv_events(nl, on_msg, &s, &err), -EOVERFLOW);
	assert_int_equal(s.calls, 1);
	assert_int_equal(nlg_nl_stats(nl)->overruns, 1);

	/* garbage */
	memset(&B, 0, sizeof(B));
	put(&B, T_DATA, 0, 0, 0, &(uint32_t){4}, 4);
	((struct nlmsghdr *)B.w)->nlmsg_len = 3;
	assert_int_equal(nlg_nl_recv_events(nl, on_msg, &s, &err), -EPROTO);

	/* a handler failure */
	memset(&B, 0, sizeof(B));
	s = (struct seen){.verdict_at = 1, .verdict = NLG_CB_ERROR};
	put(&B, T_DATA, 0, 0, 0, &(uint32_t){5}, 4);
	assert_int_equal(nlg_nl_recv_events(nl, on_msg, &s, &err), -ECANCELED);

	/* dropped events, and nothing to read */
	src.err = ENOBUFS;
	assert_int_equal(nlg_nl_recv_events(nl, on_msg, &s, &err), -ENOBUFS);
	assert_int_equal(nlg_nl_stats(nl)->enobufs, 1);
	assert_non_null(strstr(err.msg, "ENOBUFS"));
	src.err = EAGAIN;
	assert_int_equal(nlg_nl_recv_events(nl, on_msg, &s, &err), 0);
	nlg_nl_close(nl);
}

/* A queue of event buffers for the batch receiver: served in turn, then
 * "would block". */
struct evq {
	struct tbuf *bufs;
	int n, next, err;
};

static ssize_t evq_recv(void *ctx, void *buf, size_t len)
{
	struct evq *q = ctx;

	if (q->err)
		return -q->err;
	if (q->next == q->n)
		return 0;
	assert_true(q->bufs[q->next].len <= len);
	memcpy(buf, q->bufs[q->next].w, q->bufs[q->next].len);
	return (ssize_t)q->bufs[q->next++].len;
}

static void test_events_batch(void **state)
{
	static struct tbuf bufs[5];
	struct evq q = {.bufs = bufs, .n = 5};
	struct nlg_nl *nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, NULL, NULL);
	struct nlg_err err = {{0}};
	struct seen s = {0};

	NLG_UNUSED(state);
	assert_non_null(nl);
	memset(bufs, 0, sizeof(bufs));
	nlg_nl_set_io(nl, &(struct nlg_nl_io){.send = NULL, .recv = evq_recv, .ctx = &q});
	for (int i = 0; i < 5; i++) {
		put(&bufs[i], T_DATA, 0, 0, 0, &(uint32_t){(uint32_t)(10 + 2 * i)}, 4);
		put(&bufs[i], NLMSG_NOOP, 0, 0, 0, NULL, 0);
		put(&bufs[i], T_DATA, 0, 0, 0, &(uint32_t){(uint32_t)(11 + 2 * i)}, 4);
	}
	/* at most max datagrams; every message in order; stats as for events */
	assert_int_equal(nlg_nl_recv_events_batch(nl, 3, on_msg, &s, &err), 3);
	assert_int_equal(s.calls, 6);
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), 2); /* ran dry */
	assert_int_equal(s.calls, 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(s.tags[i], 10 + i);
	assert_int_equal(nlg_nl_stats(nl)->msgs, 10);
	assert_int_equal(nlg_nl_stats(nl)->recvs, 5);
	assert_int_equal(nlg_nl_stats(nl)->skipped, 5);
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), 0);

	/* garbage in one datagram is reported after the others were delivered */
	memset(bufs, 0, sizeof(bufs));
	put(&bufs[0], T_DATA, 0, 0, 0, &(uint32_t){1}, 4);
	((struct nlmsghdr *)bufs[0].w)->nlmsg_len = 3;
	put(&bufs[1], T_DATA, 0, 0, 0, &(uint32_t){2}, 4);
	q = (struct evq){.bufs = bufs, .n = 2};
	s = (struct seen){0};
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), -EPROTO);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.tags[0], 2);

	/* a handler failure stops the batch at once */
	q = (struct evq){.bufs = bufs, .n = 2, .next = 1};
	s = (struct seen){.verdict_at = 1, .verdict = NLG_CB_ERROR};
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), -ECANCELED);

	/* dropped events */
	q.err = ENOBUFS;
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), -ENOBUFS);
	assert_int_equal(nlg_nl_stats(nl)->enobufs, 1);
	assert_non_null(strstr(err.msg, "ENOBUFS"));
	nlg_nl_close(nl);
}

/* The recvmmsg path on a live socket: kernel replies to our own requests are
 * kernel datagrams (delivered), datagrams from another socket are not. */
static void test_live_events_batch(void **state)
{
	struct nlg_err err = {{0}};
	struct nlg_nl *nl = nlg_nl_open(NETLINK_ROUTE, 0, NULL, &err);
	struct mnl_socket *other = mnl_socket_open(NETLINK_ROUTE);
	struct seen s = {0};
	char req[256];
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};

	NLG_UNUSED(state);
	assert_non_null(nl);
	assert_non_null(other);
	assert_int_equal(mnl_socket_bind(other, 0, MNL_SOCKET_AUTOPID), 0);
	assert_int_equal(nlg_nl_set_nonblock(nl, 1), 0);
	/* three RTM_GETLINK requests for lo: three unicast replies */
	for (int i = 0; i < 3; i++) {
		struct nlmsghdr *nlh;
		struct ifinfomsg *ifi;
		memset(req, 0, sizeof(req));
		nlh = mnl_nlmsg_put_header(req);
		nlh->nlmsg_type = RTM_GETLINK;
		nlh->nlmsg_flags = NLM_F_REQUEST;
		nlh->nlmsg_seq = (uint32_t)(i + 1);
		ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
		ifi->ifi_family = AF_UNSPEC;
		ifi->ifi_index = 1;
		assert_int_equal(send(nlg_nl_fd(nl), nlh, nlh->nlmsg_len, 0),
				 (ssize_t)nlh->nlmsg_len);
	}
	/* and a forged "event" from another process's socket */
	to.nl_pid = nlg_nl_portid(nl);
	memset(req, 0, sizeof(req));
	struct nlmsghdr *fake = mnl_nlmsg_put_header(req);
	fake->nlmsg_type = RTM_NEWLINK;
	mnl_nlmsg_put_extra_header(fake, sizeof(struct ifinfomsg));
	assert_int_equal(sendto(mnl_socket_get_fd(other), fake, fake->nlmsg_len, 0,
				(struct sockaddr *)&to, sizeof(to)),
			 (ssize_t)fake->nlmsg_len);
	struct pollfd pfd = {.fd = nlg_nl_fd(nl), .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(nlg_nl_recv_events_batch(nl, 2, on_msg, &s, &err), 2);
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), 2);
	assert_int_equal(s.calls, 3);
	assert_int_equal(nlg_nl_stats(nl)->msgs, 3);
	assert_int_equal(nlg_nl_stats(nl)->recvs, 3);
	assert_int_equal(nlg_nl_stats(nl)->bad_seq, 1);
	assert_int_equal(nlg_nl_recv_events_batch(nl, 64, on_msg, &s, &err), 0);
	mnl_socket_close(other);
	nlg_nl_close(nl);
}

/* ---- live sock_diag --------------------------------------------------------- */

struct listeners {
	int fds[1200];
	int n;
	uint16_t port0; /* the first one's port, host order */
};

static void listen_many(struct listeners *l, int n)
{
	int i;

	l->n = 0;
	for (i = 0; i < n; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(0x7f000001)};
		socklen_t alen = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		assert_true(fd >= 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(listen(fd, 1), 0);
		if (i == 0) {
			assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
			l->port0 = ntohs(a.sin_port);
		}
		l->fds[l->n++] = fd;
	}
}

static void close_all(struct listeners *l)
{
	while (l->n > 0)
		close(l->fds[--l->n]);
}

struct diag_count {
	int msgs;
	int found; /* saw the listener with this port */
	uint16_t port;
	int stop_after;
};

static int on_diag(const struct nlmsghdr *nlh, void *data)
{
	struct diag_count *c = data;
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);

	assert_int_equal(nlh->nlmsg_type, SOCK_DIAG_BY_FAMILY);
	assert_true(mnl_nlmsg_get_payload_len(nlh) >= sizeof(*m));
	assert_int_equal(m->idiag_family, AF_INET);
	if (ntohs(m->id.idiag_sport) == c->port && m->idiag_state == 10 /* TCP_LISTEN */)
		c->found++;
	c->msgs++;
	if (c->stop_after && c->msgs == c->stop_after)
		return NLG_CB_STOP;
	return NLG_CB_OK;
}

static struct nlmsghdr *diag_req(char *buf, uint8_t ext)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct inet_diag_req_v2 *r;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	r = mnl_nlmsg_put_extra_header(nlh, sizeof(*r));
	r->sdiag_family = AF_INET;
	r->sdiag_protocol = IPPROTO_TCP;
	r->idiag_states = ~0u;
	r->idiag_ext = ext;
	return nlh;
}

static void test_live_sock_diag(void **state)
{
	static struct listeners l;
	struct nlg_err err = {{0}};
	struct nlg_nl *nl;
	struct diag_count c = {0};
	char buf[256];
	int actual = 0, check = 0;
	socklen_t len = sizeof(check);

	NLG_UNUSED(state);
	listen_many(&l, 1);
	nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, NULL, &err);
	if (!nl)
		fail_msg("%s", err.msg);
	assert_int_equal(nlg_nl_set_rcvbuf(nl, 1 << 20, &actual, &err), 0);
	assert_int_equal(getsockopt(nlg_nl_fd(nl), SOL_SOCKET, SO_RCVBUF, &check, &len), 0);
	assert_int_equal(actual, check);
	assert_true(actual > 0);
	if (geteuid() == 0)
		assert_int_equal(actual, 2 << 20); /* FORCE worked; the kernel doubles it */
	assert_int_not_equal(nlg_nl_portid(nl), 0);

	c.port = l.port0;
	assert_int_equal(
	    nlg_nl_dump_run(nl, diag_req(buf, 0), "inet_diag (tcp)", on_diag, &c, NULL, &err), 0);
	assert_true(c.msgs >= 1);
	assert_int_equal(c.found, 1);
	assert_int_equal(nlg_nl_stats(nl)->msgs, (uint64_t)c.msgs);
	assert_int_equal(nlg_nl_stats(nl)->bad_seq, 0);
	assert_int_equal(nlg_nl_stats(nl)->errors, 0);
	nlg_nl_close(nl);
	close_all(&l);
}

/* Non-blocking start/step driven by poll, a dump abandoned by STOP mid-way
 * (several kernel skbs), then a full dump on the same socket: the kernel
 * would answer EBUSY had the runner not drained the first. */
static void test_live_nonblocking_stop_then_dump(void **state)
{
	static struct listeners l;
	struct nlg_err err = {{0}};
	struct nlg_nl *nl;
	struct diag_count c = {0};
	char buf[256];
	uint64_t recvs_before;
	int r;

	NLG_UNUSED(state);
	listen_many(&l, 1000); /* ~1000 * 200 bytes with tcp_info: many skbs */
	nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, NULL, &err);
	assert_non_null(nl);
	assert_int_equal(nlg_nl_set_nonblock(nl, 1), 0);

	c = (struct diag_count){.port = l.port0, .stop_after = 3};
	assert_int_equal(
	    nlg_nl_dump_start(nl, diag_req(buf, 1 << (INET_DIAG_INFO - 1)), "tcp", &err), 0);
	while ((r = nlg_nl_dump_step(nl, on_diag, &c, &err)) == 1) {
		struct pollfd p = {.fd = nlg_nl_fd(nl), .events = POLLIN};
		assert_true(poll(&p, 1, 5000) == 1);
	}
	assert_int_equal(r, 0);
	assert_int_equal(c.msgs, 3);
	assert_int_equal(nlg_nl_dump_step(nl, on_diag, &c, &err), 0); /* stays finished */

	c = (struct diag_count){.port = l.port0};
	assert_int_equal(
	    nlg_nl_dump_start(nl, diag_req(buf, 1 << (INET_DIAG_INFO - 1)), "tcp", &err), 0);
	recvs_before = nlg_nl_stats(nl)->recvs; /* after the drain of the first */
	while ((r = nlg_nl_dump_step(nl, on_diag, &c, &err)) == 1) {
		struct pollfd p = {.fd = nlg_nl_fd(nl), .events = POLLIN};
		assert_true(poll(&p, 1, 5000) == 1);
	}
	if (r)
		fail_msg("second dump: %d %s", r, err.msg);
	assert_true(c.msgs >= 1000);
	assert_int_equal(c.found, 1);
	/* the second dump alone spanned several kernel skbs */
	assert_true(nlg_nl_stats(nl)->recvs - recvs_before > 3);
	nlg_nl_close(nl);
	close_all(&l);
}

/* A protocol no inet_diag handler serves: the kernel's NLMSG_ERROR ends the
 * dump at once, and the socket stays usable for the next one. */
static void test_live_kernel_error(void **state)
{
	static struct listeners l;
	struct nlg_err err = {{0}};
	struct diag_count c = {0};
	struct nlmsghdr *req;
	struct nlg_nl *nl;
	char buf[256];
	uint64_t t0;
	int r;

	NLG_UNUSED(state);
	nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, NULL, &err);
	assert_non_null(nl);
	req = diag_req(buf, 0);
	((struct inet_diag_req_v2 *)mnl_nlmsg_get_payload(req))->sdiag_protocol = 253;
	r = nlg_nl_dump_run(nl, req, "inet_diag (proto 253)", on_diag, &c, NULL, &err);
	assert_true(r < 0);
	assert_int_equal(c.msgs, 0);
	assert_non_null(strstr(err.msg, "inet_diag (proto 253)"));
	if (r == -ENOENT || r == -EOPNOTSUPP)
		assert_non_null(strstr(err.msg, "kernel lacks"));

	listen_many(&l, 1);
	c = (struct diag_count){.port = l.port0};
	t0 = nlg_now_ms();
	assert_int_equal(nlg_nl_dump_run(nl, diag_req(buf, 0), "tcp", on_diag, &c, NULL, &err), 0);
	assert_true(nlg_now_ms() - t0 < 500); /* nothing was left to drain */
	assert_int_equal(c.found, 1);
	nlg_nl_close(nl);
	close_all(&l);
}

static void test_netns_errors(void **state)
{
	struct nlg_err err = {{0}};

	NLG_UNUSED(state);
	assert_null(nlg_nl_open(NETLINK_SOCK_DIAG, 0, "nlg-test-no-such-ns-4711", &err));
	assert_non_null(strstr(err.msg, "network namespace 'nlg-test-no-such-ns-4711' not found"));
	assert_null(nlg_nl_open(NETLINK_SOCK_DIAG, 0, "../x", &err));
	assert_non_null(strstr(err.msg, "bad network namespace name"));
	assert_null(nlg_nl_open(1000, 0, NULL, &err));
	assert_true(err.msg[0] != '\0');
}

/* Root only: a namespace of our own, mounted under /run/netns like `ip netns
 * add` does. A dump opened there must not see our listener, and the thread
 * must be back home afterwards. */
static void test_live_netns(void **state)
{
	static struct listeners l;
	char name[64], path[128];
	struct nlg_err err = {{0}};
	struct diag_count c = {0};
	struct stat before, after;
	struct nlg_nl *nl;
	char buf[256];
	int home, fd, ok;

	NLG_UNUSED(state);
	if (geteuid() != 0) {
		skip();
		return;
	}
	snprintf(name, sizeof(name), "nlg-test-nl-%d", (int)getpid());
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	mkdir("/run/netns", 0755);
	home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_true(home >= 0);
	assert_int_equal(fstat(home, &before), 0);
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	assert_true(fd >= 0);
	close(fd);
	ok = unshare(CLONE_NEWNET) == 0 &&
	     mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) == 0;
	assert_int_equal(setns(home, CLONE_NEWNET), 0);
	if (!ok) {
		unlink(path);
		close(home);
		skip();
		return;
	}

	listen_many(&l, 1);
	nl = nlg_nl_open(NETLINK_SOCK_DIAG, 0, name, &err);
	assert_int_equal(stat("/proc/thread-self/ns/net", &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	if (nl) {
		c.port = l.port0;
		assert_int_equal(
		    nlg_nl_dump_run(nl, diag_req(buf, 0), "tcp", on_diag, &c, NULL, &err), 0);
		nlg_nl_close(nl);
	}
	close_all(&l);
	umount2(path, MNT_DETACH);
	unlink(path);
	close(home);
	if (!nl)
		fail_msg("%s", err.msg);
	assert_int_equal(c.msgs, 0); /* a fresh namespace has no sockets */
	assert_int_equal(c.found, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_multi_then_done, setup),
	    cmocka_unit_test_setup(test_more_data_across_buffers, setup),
	    cmocka_unit_test_setup(test_noop_skipped, setup),
	    cmocka_unit_test_setup(test_done_negative_payload, setup),
	    cmocka_unit_test_setup(test_error_zero_is_ack, setup),
	    cmocka_unit_test_setup(test_error_kernel_lacks, setup),
	    cmocka_unit_test_setup(test_error_other_errno, setup),
	    cmocka_unit_test_setup(test_error_mid_dump, setup),
	    cmocka_unit_test_setup(test_ext_ack_message, setup),
	    cmocka_unit_test_setup(test_overrun, setup),
	    cmocka_unit_test_setup(test_dump_intr, setup),
	    cmocka_unit_test_setup(test_foreign_seq_and_portid, setup),
	    cmocka_unit_test_setup(test_unknown_control_type, setup),
	    cmocka_unit_test_setup(test_truncated_header, setup),
	    cmocka_unit_test_setup(test_len_beyond_buffer, setup),
	    cmocka_unit_test_setup(test_garbled_length, setup),
	    cmocka_unit_test_setup(test_garbage_after_good_message, setup),
	    cmocka_unit_test_setup(test_zero_length_buffer, setup),
	    cmocka_unit_test_setup(test_callback_stop, setup),
	    cmocka_unit_test_setup(test_callback_error, setup),
	    cmocka_unit_test_setup(test_short_error_payload, setup),
	    cmocka_unit_test_setup(test_null_callback_discards, setup),
	    cmocka_unit_test(test_run_retries_interrupted_dump),
	    cmocka_unit_test(test_run_fresh_seq_each_attempt),
	    cmocka_unit_test(test_run_gives_up_after_retries),
	    cmocka_unit_test(test_run_enobufs_is_hard_error),
	    cmocka_unit_test(test_run_no_reply_times_out),
	    cmocka_unit_test(test_raw_recording),
	    cmocka_unit_test_setup(test_events, setup),
	    cmocka_unit_test_setup(test_events_batch, setup),
	    cmocka_unit_test(test_live_events_batch),
	    cmocka_unit_test(test_live_sock_diag),
	    cmocka_unit_test(test_live_nonblocking_stop_then_dump),
	    cmocka_unit_test(test_live_kernel_error),
	    cmocka_unit_test(test_netns_errors),
	    cmocka_unit_test(test_live_netns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
