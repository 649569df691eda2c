#!/usr/bin/env bash
# gw.packets under `nlgate run`, in a namespace of its own: flows declared
# with a nested table reach a Lua handler when they end, and at SIGTERM the
# flows still open are handed to the handlers before the state closes (reason
# shutdown), with both directions counted; a pkt source beside it sees every
# packet, and gw.stats() has both sources' counters.
. "$(dirname "$0")/lib.sh"
nlg_require_root
nlg_require_cmd python3
nlg_require_nlgate
nlg_tmpdir
nlg_netns_create NS
ip -n "$NS" link set lo up || nlg_fail "lo up in $NS"

script="$NLG_TMP/flows.lua"
log="$NLG_TMP/run.log"
cat >"$script" <<LUA
local gw = require "nlgate"
local flows = gw.packets { netns = "$NS", iface = "lo", workers = 2, filter = "udp port 9100",
                           flows = { idle = "1h", max = 100 }, quiet = true }
local pkts = gw.packets { netns = "$NS", iface = "lo", workers = 1, filter = "udp port 9100",
                          quiet = true }
local n = 0
pkts:batch(function(b) n = n + #b end)
flows:each(function(f)
  gw.log(string.format("flow %s %s:%d>%s:%d %d/%d %d/%d %s", f.proto, f.src, f.sport, f.dst,
    f.dport, f.fwd_packets, f.fwd_bytes, f.rev_packets, f.rev_bytes, f.end_reason))
end)
gw.every("100ms", function()
  local s = gw.stats().packets
  gw.log(string.format("pkts %d sources %d", n, #s))
end)
LUA
nlg_spawn P "$NLGATE" run "$script" 2>"$log"
ready() { nlg_alive "$P" || nlg_fail "nlgate exited: $(tail -5 "$log")"; grep -q "pkts 0 sources 2" "$log"; }
nlg_wait_for 10 "the pipeline" ready
# 5 datagrams from 9100 to 9101 and 3 answers: on lo each is seen going out
# and coming in, so the flow counts 10 one way and 6 the other.
ip netns exec "$NS" python3 - <<'PY' || nlg_fail "traffic"
import socket
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 9100))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", 9101))
for i in range(5): a.sendto(b"x" * 100, ("127.0.0.1", 9101))
for i in range(3): b.sendto(b"y" * 50, ("127.0.0.1", 9100))
PY
seen() { grep -q "pkts 16 sources 2" "$log"; }
nlg_wait_for 10 "16 packets in the pkt source" seen
grep -q "^.* flow " "$log" && nlg_fail "a flow ended before the shutdown: $(grep ' flow ' "$log")"
kill -TERM "$P"
nlg_wait_exit "$P" 10 || nlg_fail "nlgate exited $? on SIGTERM: $(tail -5 "$log")"
# 100-byte payloads: 14 + 20 + 8 + 100 = 142 on the wire; 50: 92
want="flow udp 127.0.0.1:9100>127.0.0.1:9101 10/1420 6/552 shutdown"
got=$(grep -o 'flow .*' "$log")
[ "$got" = "$want" ] || nlg_fail "the flows at shutdown: got
$got
want
$want"
echo "PASS [$NLG_TEST]"
