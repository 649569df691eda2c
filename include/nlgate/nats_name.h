/* What NATS takes as names, for the NATS output (core/out_nats.c): a
 * subject made from a template and a record's tag, the server urls, a
 * credentials file, and the prefix that makes every Nats-Msg-Id unique.
 * Plain strings: no libnats, no loop, built with or without libnats.
 *
 *   "nlgate.{tag}" + "alert.retrans"  ─▶ "nlgate.alert.retrans"
 *   "nlgate.{tag}" + "a b*..c"        ─▶ "nlgate.a_b_._.c"   (no spaces, wildcards
 *                                                           or empty tokens)
 *   Nats-Msg-Id: host/boot id/pid.start ms (hex).instance/sequence */
#ifndef NLGATE_NATS_NAME_H
#define NLGATE_NATS_NAME_H

#include <stddef.h>
#include "common.h"

#define NLG_NATS_SUBJ_MAX 512 /* a subject, its NUL included */

/* tmpl with every "{tag}" replaced by tag[taglen], made a subject a publish
 * may use: a space, control byte, '*' or '>' becomes '_', and so does an
 * empty token (a tag "", or one with a dot at an end or two in a row).
 * Returns the length written to out[NLG_NATS_SUBJ_MAX], or -ENAMETOOLONG. */
int nlg_nats_subject(const char *tmpl, const char *tag, size_t taglen, char *out);

/* A template is whole tokens without spaces or wildcards ("nats: bad
 * subject ..."), 0 or -EINVAL. */
int nlg_nats_subject_check(const char *tmpl, struct nlg_err *err);

/* url: servers [nats://|tls://][user[:pass]@]host[:port], comma-separated
 * ("nats: bad url ..."). Checked before libnats sees it, for one clear line. */
int nlg_nats_url_check(const char *url, struct nlg_err *err);

/* A credentials file that is readable and holds a user JWT and an nkey
 * seed ("nats: creds PATH: ..."). The contents are wiped after the look. */
int nlg_nats_creds_check(const char *path, struct nlg_err *err);

/* "host/boot id/pid.start.instance/" into buf[cap] (truncated to fit): with
 * a sequence after it, an id no other message of this boot, process or
 * output instance has. Returns its length. */
size_t nlg_nats_id_prefix(char *buf, size_t cap);

#endif
