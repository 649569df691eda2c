#!/usr/bin/env bash
# `nlgate run --user nobody`: once the script has opened its sources the
# process runs as nobody holding exactly the capabilities they need, in the
# effective, permitted and bounding sets, with no-new-privs set:
#  (a) sockets only: none at all, and the source still polls; a reload of the
#      same script succeeds, one that adds a conntrack source (CAP_NET_ADMIN,
#      no longer held) is refused and counted, and the old script runs on;
#  (b) conntrack in a namespace: CAP_NET_ADMIN and CAP_SYS_ADMIN (netns =),
#      events keep arriving after the drop and after a reload of the same
#      script, which hands the source over without any privilege;
#  (c) an unknown user is one clear error;
#  (d) packet capture: CAP_NET_RAW only, in the capture workers too (they
#      start after the drop), and packets keep coming.
# Scripts are sandboxed (no io), so they report through gw.log (stderr) and
# the shell reads /proc/PID/status.
. "$(dirname "$0")/lib.sh"
nlg_require_root
nlg_require_cmd nft conntrack python3
nlg_require_nlgate
nlg_tmpdir
id nobody >/dev/null 2>&1 || nlg_skip "no user 'nobody'"
chmod 755 "$NLG_TMP"
NOBODY=$(id -u nobody)

CAP_NET_RAW=13
CAP_NET_ADMIN=12
CAP_SYS_ADMIN=21

# capsof STATUS: "Uid CapEff CapPrm CapBnd CapInh CapAmb NoNewPrivs" of a
# /proc/.../status, one line
capsof() {
	awk '/^Uid:/ {u = $2} /^CapEff:/ {e = $2} /^CapPrm:/ {p = $2} /^CapBnd:/ {b = $2}
	     /^CapInh:/ {i = $2} /^CapAmb:/ {a = $2} /^NoNewPrivs:/ {n = $2}
	     END {print u, e, p, b, i, a, n}' "$1"
}
# expect_caps PID MASK WHAT: in every thread (capabilities are per thread),
# nobody, CapEff = CapPrm = CapBnd = MASK, nothing inheritable or ambient,
# no-new-privs
expect_caps() {
	local want got st
	want=$(printf '%s %016x %016x %016x %016x %016x 1' "$NOBODY" "$2" "$2" "$2" 0 0)
	for st in /proc/"$1"/task/*/status; do
		got=$(capsof "$st")
		[ "$got" = "$want" ] || nlg_fail "$3: ${st%/status}: Uid CapEff CapPrm CapBnd CapInh CapAmb NoNewPrivs are
  $got, want
  $want"
	done
	nlg_log "$3: $(grep -E '^(Uid|CapEff|CapPrm|CapBnd|NoNewPrivs):' "/proc/$1/status" | tr -s '\t\n' '  ')"
}
# last_num LOG WORD: the number after the last "WORD" in LOG (0 if none)
last_num() { sed -n "s/.* $2 \([0-9]*\).*/\1/p" "$1" | tail -n 1 | grep . || echo 0; }
num_above() { [ "$(last_num "$1" "$2")" -gt "$3" ]; }
alive_or_fail() { nlg_alive "$1" || nlg_fail "nlgate exited: $(tail -n 5 "$2")"; }
logged() { # logged PID LOG PATTERN
	alive_or_fail "$1" "$2"
	grep -q -- "$3" "$2"
}
stop_gw() { # stop_gw PID LOG: SIGTERM must end it with 0
	local rc
	kill -TERM "$1"
	nlg_wait_exit "$1" 10
	rc=$?
	[ "$rc" -eq 0 ] || nlg_fail "nlgate exited $rc on SIGTERM: $(tail -n 5 "$2")"
}

# ---- (a) a sockets source: no capability at all ---------------------------------
a=$NLG_TMP/a.lua
alog=$NLG_TMP/a.log
cat >"$a" <<'LUA'
local gw = require "nlgate"
local socks = gw.sockets { every = "50ms", proto = "tcp" }
socks:each(function() end)
gw.every("50ms", function()
  gw.log("polls " .. socks:stats().polls .. " failures " .. gw.stats().script.reload_failures)
end)
LUA
nlg_spawn A "$NLGATE" run --user nobody "$a" 2>"$alog"
nlg_wait_for 10 "the drop in (a)" logged "$A" "$alog" "running as nobody"
expect_caps "$A" 0 "(a) sockets"
polls=$(last_num "$alog" polls)
nlg_wait_for 5 "polls after the drop" num_above "$alog" polls $((polls + 3))

# the same script: the source is handed over, so its poll count goes on
polls=$(last_num "$alog" polls)
kill -HUP "$A"
nlg_wait_for 5 "the reload of the same script" logged "$A" "$alog" "reloaded"
nlg_wait_for 5 "polls after the reload" num_above "$alog" polls $((polls + 3))
first=$(sed -n '/reloaded/,$s/.* polls \([0-9]*\).*/\1/p' "$alog" | head -n 1)
[ "$first" -ge "$polls" ] || nlg_fail "the sockets source was reopened: $polls polls before the reload, $first after"

# the same script plus conntrack in our namespace: needs CAP_NET_ADMIN
cp "$a" "$a.v1"
cat >>"$a" <<'LUA'
gw.conntrack { events = "new" }
LUA
kill -HUP "$A"
nlg_wait_for 5 "the refused reload" logged "$A" "$alog" "reload failed"
grep -q "reload failed: .*a\.lua:[0-9]*: gw.conntrack: .*CAP_NET_ADMIN" "$alog" ||
	nlg_fail "the refusal does not say why: $(grep -A3 'reload failed' "$alog")"
nlg_wait_for 5 "the failure counted by the old script" logged "$A" "$alog" "failures 1"
polls=$(last_num "$alog" polls)
nlg_wait_for 5 "polls after the refused reload" num_above "$alog" polls "$polls"
expect_caps "$A" 0 "(a) after the reloads"
stop_gw "$A" "$alog"

# ---- (b) conntrack in a namespace: CAP_NET_ADMIN + CAP_SYS_ADMIN ------------------
nlg_netns_create NS
ip netns exec "$NS" nft -f - <<'NFT' || nlg_fail "nft ruleset in $NS"
table inet nlgtest {
	chain out { type filter hook output priority 0; policy accept; ct state new counter; }
}
NFT
flows() { # flows FIRSTPORT N: N UDP flows in the namespace
	ip netns exec "$NS" "$NLG_PY" -c '
import socket, sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for p in range(first, first + n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", p)); s.sendto(b"x", ("127.0.0.1", p + 10000)); s.close()
' "$1" "$2" || nlg_fail "making flows in $NS"
}
b=$NLG_TMP/b.lua
blog=$NLG_TMP/b.log
cat >"$b" <<LUA
local gw = require "nlgate"
local ct = gw.conntrack { netns = "$NS", events = "new", proto = "udp", quiet = true }
ct:each(function(e) gw.log("ct " .. e.event .. " " .. e.orig_sport) end)
LUA
nlg_spawn B "$NLGATE" run --user nobody "$b" 2>"$blog"
nlg_wait_for 10 "the drop in (b)" logged "$B" "$blog" "running as nobody"
expect_caps "$B" $(((1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN))) "(b) conntrack, netns"
all_flows() { # all_flows FIRSTPORT N
	local p
	alive_or_fail "$B" "$blog"
	for ((p = $1; p < $1 + $2; p++)); do
		grep -q "ct new $p\$" "$blog" || return 1
	done
}
flows 31000 5
nlg_wait_for 10 "conntrack events after the drop" all_flows 31000 5

kill -HUP "$B"
nlg_wait_for 5 "the reload of the same script" logged "$B" "$blog" "reloaded"
grep -q "reload failed" "$blog" && nlg_fail "a reload failed: $(cat "$blog")"
flows 32000 5
nlg_wait_for 10 "conntrack events after the reload" all_flows 32000 5
expect_caps "$B" $(((1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN))) "(b) after the reload"
alive_or_fail "$B" "$blog"
stop_gw "$B" "$blog"

# ---- (c) an unknown user ---------------------------------------------------------
err=$("$NLGATE" run --user no-such-user-nlg "$NLG_TMP/a.lua.v1" 2>&1) && nlg_fail "unknown user accepted"
[ "$(echo "$err" | wc -l)" -eq 1 ] || nlg_fail "more than one line: $err"
echo "$err" | grep -q "no such user 'no-such-user-nlg'" || nlg_fail "unclear error: $err"

# ---- (d) packet capture: CAP_NET_RAW, in every worker --------------------------------
d="$NLG_TMP/d.lua"
dlog="$NLG_TMP/d.log"
cat >"$d" <<'LUA'
local gw = require "nlgate"
local n = 0
local p = gw.packets { iface = "lo", workers = 2, filter = "udp port 9931", quiet = true }
p:each(function() n = n + 1 end)
gw.every("100ms", function() gw.log("udp " .. n) end)
LUA
nlg_spawn D "$NLGATE" run --user nobody "$d" 2>"$dlog"
nlg_wait_for 10 "the drop in (d)" logged "$D" "$dlog" "running as nobody"
nlg_wait_for 10 "the capture workers" logged "$D" "$dlog" "udp 0"
[ "$(ls /proc/"$D"/task | wc -l)" -ge 3 ] || nlg_fail "(d): no worker threads: $(ls /proc/"$D"/task)"
expect_caps "$D" $((1 << CAP_NET_RAW)) "(d) capture"
udp_to_lo() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(10): s.sendto(b"x", ("127.0.0.1", 9931))'
}
udp_to_lo
# each datagram is seen twice on lo: going out and coming in
nlg_wait_for 10 "packets after the drop" num_above "$dlog" udp 19
stop_gw "$D" "$dlog"

echo "PASS [$NLG_TEST]"
