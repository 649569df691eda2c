#!/bin/bash
# `nlgate check SCRIPT`: the script's top level runs against a dry gateway
# in the sandbox of `nlgate run`.
#  - refused, exit non-zero, one line naming file:line: a syntax error, a
#    raise while loading, a bad option value and an unknown option name
#    (the line is the script's call, not a C location); `nlgate run` names
#    the same file:line for a bad option;
#  - accepted with "SCRIPT: ok": scripts/default.lua, the pipelines the
#    busted specs drive (tests/spec/pipelines/testing_*.lua), every
#    examples/*.lua, and a script whose sources and outputs could not open
#    for real (check opens nothing) and whose timers would raise (none fires).
# No root needed.
. "$(dirname "$0")/lib.sh"

nlg_require_nlgate
nlg_tmpdir
T=$NLG_TMP
SRC=${NLGATE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

# refuse FILE LINE PATTERN: check exits non-zero with one line on stderr
# naming FILE:LINE: and matching PATTERN.
refuse() {
	local file=$1 line=$2 pattern=$3 rc
	"$NLGATE" check "$T/$file" >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" -ne 0 ] || nlg_fail "nlgate check accepted $file"
	[ "$(grep -c . "$T/err")" -eq 1 ] || nlg_fail "check $file: want one line: $(cat "$T/err")"
	grep -q "$file:$line: .*$pattern" "$T/err" ||
		nlg_fail "check $file: want $file:$line: ...$pattern, got: $(cat "$T/err")"
	[ ! -s "$T/out" ] || nlg_fail "check $file printed on stdout: $(cat "$T/out")"
	nlg_log "check $file → $rc: $(cat "$T/err")"
}

cat >"$T/syntax.lua" <<'LUA'
local gw = require "nlgate"
local x = 1
local y = = 2
LUA
cat >"$T/boom.lua" <<'LUA'
local gw = require "nlgate"
local feed = gw.unix "boom.sock"

error("boom")
LUA
cat >"$T/badvalue.lua" <<'LUA'
local gw = require "nlgate"
local feed = gw.unix "x.sock"
local socks = gw.sockets {
  every = "1s",
  proto = "tcpx" }
LUA
cat >"$T/unknown.lua" <<'LUA'
local gw = require "nlgate"
local function make()
  return gw.sockets { every = "1s", prto = "tcp" }
end
local s = make()
LUA
cat >"$T/badoutput.lua" <<'LUA'
local gw = require "nlgate"
local t = gw.tcp { connect = "127.0.0.1:1", queue = "lots" }
LUA
refuse syntax.lua 3 "unexpected symbol near '='"
refuse boom.lua 4 "boom$"
refuse badvalue.lua 3 "gw.sockets: bad proto 'tcpx'"
refuse unknown.lua 3 "gw.sockets: unknown option 'prto'"
refuse badoutput.lua 2 "gw.tcp: .*queue"

# run reports a bad option the same way (and stops at once)
timeout 10 "$NLGATE" run "$T/unknown.lua" >"$T/out" 2>"$T/err" </dev/null
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || nlg_fail "nlgate run unknown.lua exited $rc"
grep -q "unknown.lua:3: gw.sockets: unknown option 'prto'" "$T/err" ||
	nlg_fail "nlgate run does not name unknown.lua:3: $(cat "$T/err")"

# dry: nothing opens (a feed in a directory that does not exist, a peer no
# one listens on, a namespace that does not exist), no timer fires
cat >"$T/dry.lua" <<LUA
local gw = require "nlgate"
local feed = gw.unix { path = "$T/no/such/dir/feed.sock" }
local fwd = gw.forward { host = "127.0.0.1", port = 1 }
local socks = gw.sockets { every = "10ms", netns = "nlgt-no-such-netns-$$" }
socks:each(function(s) feed:send("sock", s) end)
gw.after(0, function() error("a timer fired under check") end)
gw.every("10ms", function() error("a timer fired under check") end)
assert(socks:stats().open == true)
LUA
"$NLGATE" check "$T/dry.lua" >"$T/out" 2>"$T/err" || nlg_fail "check dry.lua: $(cat "$T/err")"
grep -qx "$T/dry.lua: ok" "$T/out" || nlg_fail "check dry.lua said: $(cat "$T/out")"
! grep -q "fired" "$T/err" || nlg_fail "a timer fired under check: $(cat "$T/err")"
[ ! -e "$T/no" ] || nlg_fail "check created $T/no"

# accepted: the default pipeline, the specs' pipelines, the examples
accept() {
	"$NLGATE" check "$1" >"$T/out" 2>"$T/err" || nlg_fail "nlgate check refused $1: $(cat "$T/err")"
	grep -qx "$1: ok" "$T/out" || nlg_fail "check $1 said: $(cat "$T/out")"
	nlg_log "check $1: ok"
}
accept "$SRC/scripts/default.lua"
for f in "$SRC"/tests/spec/pipelines/testing_*.lua; do accept "$f"; done
if [ -d "$SRC/examples" ]; then
	for f in "$SRC"/examples/*.lua; do
		[ -e "$f" ] && accept "$f"
	done
fi
exit 0
