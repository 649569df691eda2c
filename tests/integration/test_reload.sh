#!/usr/bin/env bash
# SIGHUP reloads the script: a new script that compiles replaces the old one;
# one with a syntax error is refused and the old one keeps running; SIGTERM
# stops the gateway with exit 0. Needs no root.
. "$(dirname "$0")/lib.sh"
nlg_require_nlgate
nlg_tmpdir

script=$NLG_TMP/pipe.lua
log=$NLG_TMP/out.log
gen() { # gen NAME: a script that writes its name to a file every 50ms
	cat >"$script" <<LUA
local gw = require "nlgate"
gw.every("50ms", function()
  local f = assert(io.open("$NLG_TMP/alive", "w")); f:write("$1"); f:close()
end)
LUA
}
alive_is() { [ "$(cat "$NLG_TMP/alive" 2>/dev/null)" = "$1" ]; }

gen first
nlg_spawn gwpid "$NLGATE" run "$script" 2>"$log"
nlg_wait_for 5 "the first script to run" alive_is first

gen second
kill -HUP "$gwpid"
nlg_wait_for 5 "the second script after SIGHUP" alive_is second
grep -q "reloaded" "$log" || nlg_fail "no 'reloaded' line in the log"

echo 'local gw = require "nlgate" gw.every(' >"$script" # syntax error
kill -HUP "$gwpid"
nlg_wait_for 5 "the refusal in the log" grep -q "reload refused" "$log"
grep -Eq "pipe\.lua:[0-9]+:" "$log" || nlg_fail "refusal does not name file:line: $(cat "$log")"
rm -f "$NLG_TMP/alive"
nlg_wait_for 5 "the second script to keep running" alive_is second

# a script that compiles but fails while starting: the previous one comes back
cat >"$script" <<'LUA'
error("refuses to start")
LUA
kill -HUP "$gwpid"
nlg_wait_for 5 "the failed start in the log" grep -q "reload failed" "$log"
rm -f "$NLG_TMP/alive"
nlg_wait_for 5 "the previous script to run again" alive_is second

kill -TERM "$gwpid"
nlg_wait_exit "$gwpid" 5
rc=$?
[ "$rc" -eq 0 ] || nlg_fail "exit status $rc after SIGTERM: $(cat "$log")"
echo "PASS [$NLG_TEST]"
