#!/bin/bash
# Bad input at the command line and in scripts:
#  - a syntax error: `nlgate check` and `nlgate run` exit non-zero naming file:line;
#  - a script that raises while loading: `nlgate run` exits non-zero, file:line;
#  - handlers that raise (a timer, a socket :each): each error logged with a
#    traceback and counted in gw.stats().script.errors, handlers keep being
#    called, and gw.stop() still ends `nlgate run` with exit 0;
#  - an unknown command, option or argument: one clear line on stderr, non-zero;
#  - --help for every command: exit 0, usage on stdout.
# Runs without root (the socket source then polls this namespace read-only);
# as root it polls a fresh namespace holding one listener.
. "$(dirname "$0")/lib.sh"

nlg_require_nlgate
nlg_tmpdir
T=$NLG_TMP

# ---- syntax errors ----------------------------------------------------------------
cat >"$T/syntax.lua" <<'EOF'
local gw = require "nlgate"
local x = 1
local y = = 2
EOF
cat >"$T/good.lua" <<'EOF'
local gw = require "nlgate"
gw.every("1s", function(now) gw.log("tick", now) end)
EOF
cat >"$T/loadraise.lua" <<'EOF'
local gw = require "nlgate"
local t = {}
local n = t.missing.field
EOF

if "$NLGATE" check "$T/syntax.lua" >"$T/out" 2>"$T/err"; then
	nlg_fail "nlgate check accepted a syntax error"
fi
grep -q "syntax.lua:3:" "$T/err" || nlg_fail "nlgate check did not name syntax.lua:3: $(cat "$T/err")"
if "$NLGATE" run "$T/syntax.lua" >"$T/out" 2>"$T/err" </dev/null; then
	nlg_fail "nlgate run started a script with a syntax error"
fi
grep -q "syntax.lua:3:" "$T/err" || nlg_fail "nlgate run did not name syntax.lua:3: $(cat "$T/err")"
"$NLGATE" check "$T/good.lua" >"$T/out" 2>"$T/err" ||
	nlg_fail "nlgate check refused a good script: $(cat "$T/err")"
timeout 10 "$NLGATE" run "$T/loadraise.lua" >"$T/out" 2>"$T/err" </dev/null
rc=$?
[ "$rc" -ne 124 ] || nlg_fail "nlgate run went on after the script raised while loading"
[ "$rc" -ne 0 ] || nlg_fail "nlgate run exited 0 after the script raised while loading"
grep -q "loadraise.lua:3:" "$T/err" ||
	nlg_fail "the load-time error does not name loadraise.lua:3: $(cat "$T/err")"

# ---- handlers that raise ------------------------------------------------------------
NS=
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
	nlg_netns_create NS
	ip netns exec "$NS" python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 7401)); s.listen(1)
open(sys.argv[1], "w").write("up\n")
time.sleep(3600)' "$T/holder.up" &
	nlg_on_exit "kill $!"
	nlg_wait_file "$T/holder.up" 10 $!
fi
# Every raise is counted by the script itself (`raised`) just before it
# raises, so the gateway's own count must come out equal.
cat >"$T/raise.lua" <<'EOF'
local gw = require "nlgate"
local ns = os.getenv("NLGT_NETNS")
if ns == "" then ns = nil end
local raised, ticks, polls, each_raised = 0, 0, 0, 0
local function boom(msg)
	raised = raised + 1
	error(msg)
end
local socks = gw.sockets { every = "100ms", proto = "tcp", netns = ns }
socks:each(function(s)
	if polls == 0 then
		each_raised = each_raised + 1
		boom("deliberate failure in :each on port " .. s.sport)
	end
end)
socks:dump(function(batch) polls = polls + 1 end)
gw.every("50ms", function()
	ticks = ticks + 1
	if ticks <= 3 then boom("deliberate failure in a timer, tick " .. ticks) end
	if ticks >= 8 and polls >= 3 then
		local st = gw.stats()
		gw.log(string.format("RESULT errors=%d raised=%d each_errors=%d each_raised=%d ticks=%d polls=%d",
			st.script.errors, raised, st.sockets[1].handler_errors, each_raised, ticks, polls))
		gw.stop()
	end
end)
EOF
"$NLGATE" check "$T/raise.lua" >/dev/null 2>"$T/err" || nlg_fail "check raise.lua: $(cat "$T/err")"
NLGT_NETNS=$NS timeout 30 "$NLGATE" run "$T/raise.lua" >"$T/out" 2>"$T/err" </dev/null
rc=$?
[ "$rc" -ne 124 ] || nlg_fail "nlgate run did not stop (gw.stop) within 30s: $(tail -n 5 "$T/err")"
[ "$rc" -eq 0 ] || nlg_fail "nlgate run exited $rc after gw.stop(): $(tail -n 5 "$T/err")"
result=$(grep -o 'RESULT .*' "$T/err") || nlg_fail "the script never reported: $(tail -n 20 "$T/err")"
nlg_log "$result"
read -r errors raised each_errors each_raised <<<"$(sed -E \
	's/RESULT errors=([0-9]+) raised=([0-9]+) each_errors=([0-9]+) each_raised=([0-9]+).*/\1 \2 \3 \4/' \
	<<<"$result")"
[ "$errors" -eq "$raised" ] || nlg_fail "gw.stats().script.errors=$errors, the script raised $raised times"
[ "$each_errors" -eq "$each_raised" ] ||
	nlg_fail "sockets handler_errors=$each_errors, the :each handler raised $each_raised times"
if [ -n "$NS" ]; then
	[ "$each_raised" -ge 1 ] || nlg_fail "the :each handler never ran in $NS (listener on 7401)"
	grep -q "deliberate failure in :each on port 7401" "$T/err" ||
		nlg_fail "the :each raise was not logged"
fi
n_logged=$(grep -c 'deliberate failure in' "$T/err")
[ "$n_logged" -eq "$raised" ] || nlg_fail "$raised raises, $n_logged logged"
n_tb=$(grep -c 'stack traceback:' "$T/err")
[ "$n_tb" -eq "$raised" ] || nlg_fail "$raised raises, $n_tb tracebacks logged"
grep -q 'raise.lua:[0-9]*: deliberate failure in a timer, tick 1' "$T/err" ||
	nlg_fail "the logged error does not name raise.lua:LINE: $(head -n 5 "$T/err")"

# ---- the command line ---------------------------------------------------------------
# expect_error ARGS...: non-zero exit, exactly one non-empty line on stderr,
# nothing on stdout.
expect_error() {
	local rc lines
	timeout 10 "$NLGATE" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	[ "$rc" -ne 0 ] || nlg_fail "nlgate $* exited 0"
	[ "$rc" -ne 124 ] || nlg_fail "nlgate $* hung"
	lines=$(grep -c . "$T/err")
	[ "$lines" -eq 1 ] ||
		nlg_fail "nlgate $*: want one line on stderr, got $lines: $(head -c 600 "$T/err")"
	[ ! -s "$T/out" ] || nlg_fail "nlgate $*: printed on stdout: $(head -c 300 "$T/out")"
	nlg_log "nlgate $* → $rc: $(cat "$T/err")"
}
expect_error frobnicate
expect_error --frobnicate
expect_error run --frobnicate
expect_error run "$T/no-such-script.lua"
expect_error run "$T/good.lua" "$T/good.lua"
expect_error check "$T/no-such-script.lua"
expect_error check --frobnicate
expect_error dump frobnicate
expect_error dump sockets --frobnicate
expect_error dump sockets -Z
expect_error dump sockets extra-argument
expect_error dump sockets --state no-such-state
expect_error dump sockets --info no-such-info
expect_error dump sockets --sport 99999
expect_error dump sockets --netns "nlgt-no-such-netns-$$"
expect_error tail --frobnicate
expect_error tail "$T/no-such-feed.sock"
expect_error dump conntrack --frobnicate
expect_error watch conntrack --frobnicate
expect_error watch conntrack -p
expect_error watch conntrack --reliable sometimes
expect_error watch frobnicate
expect_error fields no-such-kind
expect_error fields --frobnicate

# expect_help ARGS...: exit 0, a usage text on stdout.
expect_help() {
	"$NLGATE" "$@" >"$T/out" 2>"$T/err" </dev/null ||
		nlg_fail "nlgate $* exited $?: $(head -c 300 "$T/err")"
	grep -qi usage "$T/out" || nlg_fail "nlgate $*: no usage on stdout: $(head -c 300 "$T/out")"
}
expect_help --help
expect_help -h
for cmd in run check tail fields; do
	expect_help $cmd --help
done
expect_help dump --help
expect_help dump sockets --help
expect_help dump sockets -h
expect_help dump conntrack --help
expect_help watch conntrack --help
"$NLGATE" fields sock >"$T/out" 2>"$T/err" || nlg_fail "nlgate fields sock: $(cat "$T/err")"
for f in family proto state src sport dst dport uid inode cookie rtt_us total_retrans snd_cwnd cong; do
	grep -qw -- "$f" "$T/out" || nlg_fail "nlgate fields sock does not list $f"
done
nlg_log "ok"
