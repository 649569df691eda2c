#!/usr/bin/env bash
# SIGHUP reloads the script without taking the house down:
#  - a feed client connected before the reload keeps its connection and gets
#    every frame, from the old script and then the new one, none missing
#    (the frames count on through gw.state, which the reload carries over);
#  - a source the new script declares with the same options is handed over,
#    not reopened (conntrack: its event count goes on, its dump count stays);
#  - a source the new script no longer declares is closed;
#  - a new script with a syntax error, or one that raises while starting, is
#    refused: the running script keeps running with its sources, the failure
#    is logged with file:line and counted (gw.stats().script.reload_failures);
#  - SIGTERM ends the gateway with exit 0.
# The conntrack part needs root (a namespace with conntrack on); without root
# the rest runs and the conntrack checks are skipped.
. "$(dirname "$0")/lib.sh"
nlg_require_nlgate
nlg_require_msgpack
nlg_tmpdir

script=$NLG_TMP/pipe.lua
log=$NLG_TMP/gw.log
feed=$NLG_TMP/feed.sock
frames=$NLG_TMP/frames

CT=false
if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null && command -v conntrack >/dev/null; then
	CT=true
	nlg_netns_create NS
	ip netns exec "$NS" nft -f - <<'NFT' || nlg_fail "nft in $NS"
table inet nlgt {
  chain out { type filter hook output priority 0; policy accept; ct state new counter; }
}
NFT
	ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_events=1
else
	NS=none
	nlg_log "not root (or no nft/conntrack): conntrack hand-over not checked"
fi

flows() { # flows FIRSTPORT N: N UDP flows in the namespace
	ip netns exec "$NS" /usr/bin/python3 -c '
import socket, sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for p in range(first, first + n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", p)); s.sendto(b"x", ("127.0.0.1", p + 10000)); s.close()
' "$1" "$2"
}

gen() { # gen VERSION WITH_SOCKETS
	cat >"$script" <<LUA
local gw = require "nlgate"
local feed = gw.unix { path = "$feed" }
gw.state.n = gw.state.n or 0
gw.state.gen = (gw.state.gen or 0) + 1
local socks = $2 and gw.sockets { every = "50ms", proto = "tcp" } or nil
local ct = $CT and gw.conntrack { netns = "$NS", events = "new", quiet = true } or nil
gw.every("10ms", function()
  gw.state.n = gw.state.n + 1
  feed:send("tick", { n = gw.state.n, version = "$1", gen = gw.state.gen })
end)
gw.every("50ms", function()
  local st, cs = gw.stats(), ct and ct:stats() or {}
  gw.log(string.format("STATUS version=%s gen=%d sockets=%d ct_received=%d ct_dumped=%d failures=%d handed=%d",
    "$1", gw.state.gen, #(st.sockets or {}), cs.received or 0, cs.dumped or 0,
    st.script.reload_failures, st.script.handed_over))
end)
LUA
}
# the script logs a STATUS line every 50 ms (scripts cannot write files)
last_status() { grep 'STATUS ' "$log" 2>/dev/null | tail -n 1 | sed 's/.*STATUS //'; }
field() { last_status | sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
status_has() { last_status | grep -q -- "$1"; }
ct_at_least() { [ "$(field ct_received)" -ge "$1" ]; }
ticks_past() { [ "$(tail -n 1 "$frames" | cut -d' ' -f1)" -gt "$1" ]; }
sockfds() { ls -l "/proc/$gwpid/fd" 2>/dev/null | grep -c 'socket:'; }

gen v1 true
nlg_spawn gwpid "$NLGATE" run "$script" 2>"$log"
nlg_wait_socket "$feed" 5
nlg_spawn rdpid "$NLG_PY" "$NLG_SRC/tests/integration/reload_reader.py" "$feed" "$frames"
nlg_wait_for 5 "the reader to connect" grep -q CONNECTED "$frames"
nlg_wait_for 5 "v1 ticks" grep -q " v1 1$" "$frames"
nlg_wait_for 5 "v1 status with a sockets source" status_has "version=v1 gen=1 sockets=1"
if $CT; then
	flows 21000 5
	nlg_wait_for 5 "conntrack events in v1" ct_at_least 5
fi
ct_dumped_v1=$(field ct_dumped)
ct_received_v1=$(field ct_received)
fds_v1=$(sockfds)

# v2: same feed, same conntrack options, no sockets source
gen v2 false
kill -HUP "$gwpid"
nlg_wait_for 5 "v2 ticks" grep -q " v2 2$" "$frames"
grep -q "reloaded" "$log" || nlg_fail "no 'reloaded' line in the log: $(cat "$log")"
nlg_wait_for 5 "v2 status" status_has "version=v2 gen=2 sockets=0"
[ "$(field handed)" -ge 1 ] || nlg_fail "the feed was not handed over: $(last_status)"
fds_v2=$(sockfds)
[ "$fds_v2" -eq $((fds_v1 - 1)) ] ||
	nlg_fail "the dropped sockets source was not closed: $fds_v1 socket fds before, $fds_v2 after"
if $CT; then
	[ "$(field handed)" -ge 2 ] || nlg_fail "conntrack was not handed over: $(last_status)"
	[ "$(field ct_dumped)" = "$ct_dumped_v1" ] ||
		nlg_fail "conntrack re-dumped on reload: dumped $ct_dumped_v1 → $(field ct_dumped)"
	flows 22000 3
	nlg_wait_for 5 "conntrack events after the reload" ct_at_least $((ct_received_v1 + 3))
fi

# a syntax error: refused, v2 keeps running with its feed and sources
echo 'local gw = require "nlgate" gw.every(' >"$script"
kill -HUP "$gwpid"
nlg_wait_for 5 "the refusal in the log" grep -q "reload failed" "$log"
grep -Eq "pipe\.lua:[0-9]+:" "$log" || nlg_fail "refusal does not name file:line: $(cat "$log")"
nlg_wait_for 5 "a counted failure" status_has "version=v2 gen=2 .*failures=1"
# a script that raises while starting after it declared the same feed: the
# feed stays with v2, nothing is lost
gen v3 false
echo 'error("refuses to start")' >>"$script"
kill -HUP "$gwpid"
nlg_wait_for 5 "a second counted failure" status_has "failures=2"
grep -q "refuses to start" "$log" || nlg_fail "the raise is not logged: $(cat "$log")"
if $CT; then
	flows 23000 2
	nlg_wait_for 5 "conntrack still delivering to v2" ct_at_least $((ct_received_v1 + 5))
fi
n_before=$(tail -n 1 "$frames" | cut -d' ' -f1)
nlg_wait_for 5 "v2 ticks after the failed reloads" ticks_past $((n_before + 5))

kill -TERM "$gwpid"
nlg_wait_exit "$gwpid" 5
rc=$?
[ "$rc" -eq 0 ] || nlg_fail "exit status $rc after SIGTERM: $(tail -n 5 "$log")"
nlg_wait_for 5 "the reader to see the end" grep -q EOF "$frames"

# one connection throughout; every tick once, in order, none missing
grep -q "^TAG nlgate.gap" "$frames" && nlg_fail "the client missed frames (gap): $(grep TAG "$frames")"
[ "$(grep -c CONNECTED "$frames")" -eq 1 ] || nlg_fail "the client reconnected"
awk '/^[0-9]/ { if (seen && $1 != prev + 1) { print "tick " prev + 1 " missing (got " $1 ")"; bad = 1 } prev = $1; seen = 1 }
     END { exit bad }' "$frames" || nlg_fail "ticks missing across the reload"
grep -q " v1 1$" "$frames" && grep -q " v2 2$" "$frames" || nlg_fail "ticks from both versions expected"
grep -q " v3 " "$frames" && nlg_fail "the failed v3 sent frames"
nlg_log "$(grep -c '^[0-9]' "$frames") ticks over one connection; $(last_status)"
echo "PASS [$NLG_TEST]"
