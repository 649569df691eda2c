#!/usr/bin/env bash
# `nlgate run --user nobody`: after the script opened its sources the process
# runs as nobody with only CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN, and
# its socket source still polls. An unknown user is one clear error.
. "$(dirname "$0")/lib.sh"
nlg_require_root
nlg_require_nlgate
nlg_tmpdir
id nobody >/dev/null 2>&1 || nlg_skip "no user 'nobody'"
chmod 755 "$NLG_TMP"

cat >"$NLG_TMP/u.lua" <<LUA
local gw = require "nlgate"
local socks = gw.sockets { every = "50ms", proto = "tcp" }
local polls = 0
socks:dump(function() polls = polls + 1 end)
gw.every("20ms", function()
  if polls < 3 then return end
  local f = assert(io.open("/proc/self/status"))
  local out = {}
  for l in f:lines() do
    if l:match("^Uid:") or l:match("^CapEff:") then out[#out + 1] = l end
  end
  f:close()
  print(table.concat(out, "\n"))
  gw.stop()
end)
LUA
out=$(timeout 10 "$NLGATE" run --user nobody "$NLG_TMP/u.lua") || nlg_fail "run --user failed: $out"
uid=$(id -u nobody)
echo "$out" | grep -Eq "^Uid:[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid" ||
	nlg_fail "not running as nobody: $out"
capeff=$(echo "$out" | awk '/^CapEff:/ {print $2}')
want=$(printf '%016x' $(((1 << 12) | (1 << 13) | (1 << 21))))
[ "$capeff" = "$want" ] || nlg_fail "CapEff $capeff, want $want"

err=$("$NLGATE" run --user no-such-user-nlg "$NLG_TMP/u.lua" 2>&1) && nlg_fail "unknown user accepted"
echo "$err" | grep -q "no such user 'no-such-user-nlg'" || nlg_fail "unclear error: $err"
echo "PASS [$NLG_TEST]"
