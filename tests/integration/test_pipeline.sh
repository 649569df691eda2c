#!/bin/bash
# The whole path, kernel → records → Lua → msgpack feed → an independent
# decoder: `nlgate run tests/integration/pipeline.lua` polls a fresh namespace
# holding known sockets every 200ms and feeds a unix socket; feed_reader.py
# (python3-msgpack) decodes [tag, time, record] and checks tags, fields and
# that every poll carries exactly the known sockets; handlers that raise are
# logged with a traceback, counted, and the gateway goes on; extra clients
# that come and go cost the main client nothing; SIGTERM ends it cleanly.
. "$(dirname "$0")/lib.sh"

nlg_require_root
nlg_require_cmd python3
nlg_require_msgpack
nlg_require_nlgate
nlg_tmpdir
nlg_netns_create NS

cat >"$NLG_TMP/holder.py" <<'EOF'
import json, os, socket, sys, time
A4, A6, TCP, UDP = socket.AF_INET, socket.AF_INET6, socket.SOCK_STREAM, socket.SOCK_DGRAM
keep, expect = [], []

def note(s, proto, state, peer=None):
    src = s.getsockname()
    if peer is None:
        try:
            peer = s.getpeername()
        except OSError:
            peer = ("::" if s.family == A6 else "0.0.0.0", 0)
    expect.append(dict(proto=proto, family="inet6" if s.family == A6 else "inet",
                       src=src[0], sport=src[1], dst=peer[0], dport=peer[1], state=state))

def new(fam, typ, addr, v6only=None):
    s = socket.socket(fam, typ)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    s.bind(addr)
    keep.append(s)
    return s

def listener(fam, addr, v6only=None):
    s = new(fam, TCP, addr, v6only)
    s.listen(8)
    note(s, "tcp", "LISTEN")
    return s

def pair(lst, fam, to):
    c = socket.socket(fam, TCP)
    c.connect(to)
    a, _ = lst.accept()
    keep.extend((c, a))
    c.sendall(b"x" * 1000)     # some traffic, so tcp_info has an RTT sample
    a.recv(1000)
    note(c, "tcp", "ESTAB")
    note(a, "tcp", "ESTAB")

l4 = listener(A4, ("127.0.0.1", 7201))
l6 = listener(A6, ("::1", 7202))
ld = listener(A6, ("::", 7203), v6only=False)
pair(l4, A4, ("127.0.0.1", 7201))
pair(l6, A6, ("::1", 7202))
pair(ld, A4, ("127.0.0.1", 7203))
u4 = new(A4, UDP, ("127.0.0.1", 7301)); note(u4, "udp", "UNCONN")
u6 = new(A6, UDP, ("::", 7302), v6only=True); note(u6, "udp", "UNCONN")
uc = new(A4, UDP, ("127.0.0.1", 7303)); uc.connect(("127.0.0.1", 7301))
note(uc, "udp", "ESTAB")

with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(expect, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(3600)
EOF

ip netns exec "$NS" python3 "$NLG_TMP/holder.py" "$NLG_TMP/expect.json" &
HOLDER=$!
nlg_on_exit "kill $HOLDER"
nlg_wait_file "$NLG_TMP/expect.json" 20 "$HOLDER"
CONG=$(ip netns exec "$NS" cat /proc/sys/net/ipv4/tcp_congestion_control) ||
	nlg_fail "reading tcp_congestion_control in $NS"

FEED=$NLG_TMP/feed.sock
NLGT_NETNS=$NS NLGT_FEED=$FEED "$NLGATE" run "$NLG_SRC/tests/integration/pipeline.lua" \
	>"$NLG_TMP/run.out" 2>"$NLG_TMP/run.err" &
GW=$!
nlg_on_exit "kill $GW"
feed_up() {
	nlg_alive "$GW" || nlg_fail "nlgate run exited early: $(head -c 1000 "$NLG_TMP/run.err")"
	test -S "$FEED"
}
nlg_wait_for 10 "the feed socket $FEED" feed_up

mode=$(stat -c %a "$FEED")
[ "$mode" = 660 ] || nlg_fail "feed socket mode is $mode, the script asked for 0660"

"$NLG_PY" "$NLG_SRC/tests/integration/feed_reader.py" "$FEED" --expect "$NLG_TMP/expect.json" \
	--cong "$CONG" --min-polls 8 --extra --timeout 40 >"$NLG_TMP/reader.out" || {
	nlg_log "nlgate run stderr (tail):"
	tail -n 30 "$NLG_TMP/run.err" >&2
	nlg_fail "the feed did not check out (feed_reader.py, above)"
}
nlg_log "feed: $(cat "$NLG_TMP/reader.out")"

nlg_alive "$GW" || nlg_fail "nlgate run died: $(tail -n 20 "$NLG_TMP/run.err")"
# Both raises logged, each with a Lua traceback naming the script line.
for what in ":each, poll 3" ":dump, poll 5"; do
	grep -qF "deliberate failure in $what" "$NLG_TMP/run.err" ||
		nlg_fail "the raise in $what was not logged: $(head -c 800 "$NLG_TMP/run.err")"
done
[ "$(grep -c 'stack traceback:' "$NLG_TMP/run.err")" -ge 2 ] ||
	nlg_fail "no traceback logged with the errors: $(head -c 800 "$NLG_TMP/run.err")"
grep -q 'pipeline.lua:[0-9]*: deliberate failure' "$NLG_TMP/run.err" ||
	nlg_fail "the logged error does not name pipeline.lua:LINE"

# `nlgate tail` decodes the same feed as JSON lines {"tag","time","record"}.
timeout 10 "$NLGATE" tail "$FEED" 2>"$NLG_TMP/tail.err" | head -n 40 >"$NLG_TMP/tail.out"
"$NLG_PY" - "$NLG_TMP/tail.out" <<'EOF' || nlg_fail "nlgate tail output: $(head -c 500 "$NLG_TMP/tail.out") $(cat "$NLG_TMP/tail.err")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 40, "nlgate tail printed %d lines" % len(lines)
for l in lines:
    o = json.loads(l)
    assert set(o) >= {"tag", "time", "record"}, o
    assert o["tag"] in ("sock", "dump", "tick"), o
    assert isinstance(o["record"], dict), o
assert any(json.loads(l)["tag"] == "sock" for l in lines)
EOF

# SIGTERM: drain, exit 0, the socket path removed.
kill -TERM "$GW"
nlg_wait_exit "$GW" 10
rc=$?
[ "$rc" -eq 0 ] || nlg_fail "nlgate run exited $rc on SIGTERM: $(tail -n 5 "$NLG_TMP/run.err")"
[ ! -e "$FEED" ] || nlg_fail "the feed socket $FEED was left behind"
nlg_log "ok"
