#!/bin/bash
# gw.conntrack end to end: `nlgate run` with a script that follows conntrack
# in a fresh namespace (an nft ct rule turns tracking on there) and sends each
# event to a unix feed as ct.<event>; an independent reader (python3-msgpack)
# records the feed. Known UDP flows (IPv4 and IPv6 on the namespace's
# loopback) are made, listed with `conntrack -L`, then flushed: every one must
# reach the feed as ct.new and ct.destroy with the kernel's conntrack id and
# its tuple; flows the script filter drops must not, and are counted.
. "$(dirname "$0")/lib.sh"

nlg_require_root
nlg_require_cmd nft conntrack python3
nlg_require_msgpack
nlg_require_nlgate
nlg_tmpdir
nlg_netns_create NS

ip netns exec "$NS" nft -f - <<'EOF' || nlg_fail "nft ruleset in $NS"
table inet nlgtest {
	chain out { type filter hook output priority 0; policy accept; ct state new counter; }
}
EOF
# every flow reports its end, not only those created while a listener exists
ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_events=1 ||
	nlg_fail "setting nf_conntrack_events in $NS"

cat >"$NLG_TMP/ct.lua" <<'EOF'
local gw = require "nlgate"
local feed = gw.unix { path = os.getenv("NLGT_FEED") }
local ct = gw.conntrack {
	netns = os.getenv("NLGT_NETNS"), events = { "new", "destroy" }, proto = "udp",
	filter = function(e) return e.orig_dport ~= 9 end, -- the discard port: not wanted
}
ct:each(function(e) feed:send("ct." .. e.event, e) end)
gw.every("100ms", function() feed:send("ct.stats", ct:stats()) end)
EOF

FEED=$NLG_TMP/feed.sock
NLGT_NETNS=$NS NLGT_FEED=$FEED "$NLGATE" run "$NLG_TMP/ct.lua" >"$NLG_TMP/run.out" \
	2>"$NLG_TMP/run.err" &
GW=$!
nlg_on_exit "kill $GW"
feed_up() {
	nlg_alive "$GW" || nlg_fail "nlgate run exited early: $(head -c 1000 "$NLG_TMP/run.err")"
	test -S "$FEED"
}
nlg_wait_for 10 "the feed socket $FEED" feed_up

# The reader: every frame checked for shape (feed_reader.check_frame) and
# written as a JSON line, until killed.
cat >"$NLG_TMP/reader.py" <<'EOF'
import json, sys, time
sys.path.insert(0, sys.argv[1])
from feed_reader import Feed, Fail, check_frame
out = open(sys.argv[3], "w")
try:
    for obj in Feed(sys.argv[2], 60).frames():
        tag, t, rec = check_frame(obj, time.time())
        out.write(json.dumps({"tag": tag, "time": t.to_unix(), "rec": rec}) + "\n")
        out.flush()
except Exception as e:
    print("reader: FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(1)
EOF
"$NLG_PY" "$NLG_TMP/reader.py" "$NLG_SRC/tests/integration" "$FEED" "$NLG_TMP/frames.jsonl" \
	2>"$NLG_TMP/reader.err" &
READER=$!
nlg_on_exit "kill $READER"

# Subscribed and the start-up dump done: a stats frame says syncing=false.
synced() {
	nlg_alive "$READER" || nlg_fail "reader: $(cat "$NLG_TMP/reader.err")"
	grep -q '"tag": "ct.stats".*"syncing": false' "$NLG_TMP/frames.jsonl" 2>/dev/null
}
nlg_wait_for 10 "the conntrack source to be ready" synced

# Flows: 8 IPv4 and 4 IPv6 wanted, 3 to port 9 (filtered by the script).
ip netns exec "$NS" python3 - <<'EOF' || nlg_fail "making flows in $NS"
import socket
def flow(fam, addr, sport, dport):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, sport))
    s.sendto(b"x", (addr, dport))
    s.close()
for i in range(8):
    flow(socket.AF_INET, "127.0.0.1", 41000 + i, 42000 + i)
for i in range(4):
    flow(socket.AF_INET6, "::1", 43000 + i, 44000 + i)
for i in range(3):
    flow(socket.AF_INET, "127.0.0.1", 45000 + i, 9)
EOF
ip netns exec "$NS" conntrack -L -p udp -o id >"$NLG_TMP/kernel.txt" 2>/dev/null
[ "$(grep -c 'id=' "$NLG_TMP/kernel.txt")" -eq 15 ] ||
	nlg_fail "conntrack -L in $NS lists $(grep -c 'id=' "$NLG_TMP/kernel.txt") flows, not 15: $(cat "$NLG_TMP/kernel.txt")"

count() { grep -c "\"tag\": \"ct.$1\"" "$NLG_TMP/frames.jsonl"; }
news() { [ "$(count new)" -ge 12 ]; }
nlg_wait_for 10 "12 ct.new frames" news
ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || nlg_fail "conntrack -F in $NS"
destroys() { [ "$(count destroy)" -ge 12 ]; }
nlg_wait_for 10 "12 ct.destroy frames" destroys
# one more stats frame after the last event
last=$(wc -l <"$NLG_TMP/frames.jsonl")
stats_after() { tail -n +"$((last + 1))" "$NLG_TMP/frames.jsonl" | grep -q '"ct.stats"'; }
nlg_wait_for 5 "a stats frame after the events" stats_after

"$NLG_PY" - "$NLG_TMP/kernel.txt" "$NLG_TMP/frames.jsonl" <<'EOF' ||
import ipaddress, json, re, sys
kernel = {}   # (family, sport, dport) → id, from `conntrack -L -o id`
for line in open(sys.argv[1]):
    m = re.search(r"src=(\S+) dst=\S+ sport=(\d+) dport=(\d+) .* id=(\d+)", line)
    if m:
        fam = "inet6" if ":" in m.group(1) else "inet"
        kernel[(fam, int(m.group(2)), int(m.group(3)))] = int(m.group(4))
wanted = {k: v for k, v in kernel.items() if k[2] != 9}
frames = [json.loads(l) for l in open(sys.argv[2])]
got = {"new": {}, "destroy": {}}
for f in frames:
    tag, r = f["tag"], f["rec"]
    if tag == "ct.stats":
        continue
    ev = tag[3:]
    assert tag in ("ct.new", "ct.destroy"), "unexpected tag %r" % tag
    assert r["event"] == ev, "tag %s carries event %r" % (tag, r["event"])
    assert r["proto"] == "udp" and r["family"] in ("inet", "inet6"), r
    assert r["orig_dport"] != 9, "the script filter let a port-9 flow through: %r" % r
    assert not r["synthetic"] and not r["dump"], "an event marked synthetic/dump: %r" % r
    lo = "::1" if r["family"] == "inet6" else "127.0.0.1"
    for a in ("orig_src", "orig_dst", "reply_src", "reply_dst"):
        assert ipaddress.ip_address(r[a]) == ipaddress.ip_address(lo), (a, r)
    assert (r["reply_sport"], r["reply_dport"]) == (r["orig_dport"], r["orig_sport"]), r
    k = (r["family"], r["orig_sport"], r["orig_dport"])
    assert k not in got[ev], "%s twice for %r" % (ev, k)
    got[ev][k] = r["id"]
for ev in ("new", "destroy"):
    if got[ev] != wanted:
        print("ct.%s differs from conntrack -L:\n  only in the feed: %s\n  only in the kernel: %s"
              % (ev, sorted(set(got[ev].items()) - set(wanted.items())),
                 sorted(set(wanted.items()) - set(got[ev].items()))), file=sys.stderr)
        sys.exit(1)
st = [f["rec"] for f in frames if f["tag"] == "ct.stats"][-1]
checks = {"lost": st["lost"] == 0, "handler_errors": st["handler_errors"] == 0,
          "script_filtered": st["script_filtered"] == 6,     # port 9: 3 NEW + 3 DESTROY
          "delivered": st["delivered"] == 24, "new": st["new"] >= 15,
          "destroy": st["destroy"] >= 15, "synthetic": st["synthetic"] == 0}
bad = [k for k, ok in checks.items() if not ok]
if bad:
    print("stats wrong in %s: %r" % (bad, st), file=sys.stderr)
    sys.exit(1)
print("ids match: %d flows new and destroyed; stats %s" % (len(wanted),
      {k: st[k] for k in ("received", "delivered", "script_filtered", "lost")}))
EOF
	nlg_fail "the feed does not match conntrack -L (above); nlgate stderr: $(tail -n 5 "$NLG_TMP/run.err")"

kill -TERM "$GW"
nlg_wait_exit "$GW" 10
rc=$?
[ "$rc" -eq 0 ] || nlg_fail "nlgate run exited $rc on SIGTERM: $(tail -n 5 "$NLG_TMP/run.err")"
nlg_log "ok"
