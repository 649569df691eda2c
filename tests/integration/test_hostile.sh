#!/usr/bin/env bash
# Hostile pipeline scripts. nlgate runs users' Lua as root, so a script must
# not be able to harm the host or the gateway. Every case runs its own
# gateway (--mem-limit 64) on a script in hostile/ whose hlib.lua keeps a
# 20 ms timer sending a numbered "tick" to a unix feed, read by a strict
# python-msgpack reader (hostile/reader.py), with a canary directory as the
# gateway's working directory and every attack's target. Each case asserts
# that the attack fails with a logged error (FILE:LINE and a traceback), that
# the gateway stays up and its feed keeps delivering the ticks in sequence
# with no stall over 1 s, that no file was written or removed, that peak RSS
# (VmHWM) stays under 300 MiB, and that SIGTERM then ends it cleanly (exit 0;
# in the ASan build no sanitizer report).
#
#  1   sandbox      io.open/lines/popen/..., os.remove/rename/tmpname/exit/
#                   execute/setlocale, dofile, loadfile, package.loadlib, C
#                   modules (lfs.so), string.dump: refused at the top level
#                   and in a handler; io.write, io.stderr:write, os.time/
#                   clock/date/getenv, string/table/math/utf8/coroutine work;
#                   an unprotected os.execute at the top level stops the
#                   start; scripts/default.lua still writes its summary
#  2   load         load(string.dump(f)), binary chunks (any mode, a reader,
#                   require of a bytecode file) refused; text load works and
#                   sees the script's globals
#  3   debug        no debug library anywhere: the budget cannot be lifted
#  4   budget       (--budget 1000000) loops behind pcall, coroutines,
#                   xpcall, __close, __tostring, callbacks from C: stopped,
#                   counted in gw.stats().script.budget_kills (and the
#                   watchdog armed the hook: budget_armed); a looping top
#                   level is refused
#  4b-4f            the same for code Lua runs with hooks off: a looping
#                   __gc finalizer (plain, or planted in the metatable by its
#                   own __index while setmetatable checks it); xpcall's
#                   message handler called for the budget's own error; a
#                   looping __close in a coroutine the budget killed (closed
#                   by coroutine.wrap, or later by coroutine.close)
#  4g, 4h           a looping __gc run when the state closes: SIGTERM still
#                   ends the gateway within 2 s; a SIGHUP reload completes
#  5   metatables   getmetatable of a feed, source, timer, record view, batch
#                   is false (__gc unreachable); wrong self raises cleanly
#  6   lifetimes    a source closed in its own :each/:batch/filter, a timer
#                   cancelled and collected in its own handler, src:poll()
#                   from a dropped coroutine, views and batches kept past
#                   their handler, objects made by a __gc at reload and exit
#                   (if a finalizer can be made at all: hostile/hgc.lua)
#  7   size         a DAG of 2^26 nodes, deep and cyclic tables, a 20 MiB
#                   string, 1.1M values: refused quickly; memory bombs stop
#                   at the limit
#  8   keys         keys that are tables (with __tostring), functions,
#                   userdata refused; metamethods do not change what is sent;
#                   non-UTF-8 strings go out as bin; every frame decodes
#  8b, 8c           a table whose entries vanish while it is encoded (a
#                   finalizer removes them; weak values are collected)
#  9, 9b            a handler stuck in C (a pattern match), or in Lua with
#                   --budget 0: the watchdog names it; SIGTERM ends the
#                   gateway within 2 s with a line naming the handler
#  10  failing      a handler (timer, :each) failing 100 times in a row is
#                   disabled with one line and listed in
#                   gw.stats().script.disabled; a flaky one is not
#
# Needs no root (socket dumps of this namespace, a loopback listener).
# Every case runs, one line each, even when one fails; the test fails if any
# did. NLGT_CASES="1 6" runs some; NLGT_KEEP=1 keeps the logs in /tmp.
. "$(dirname "$0")/lib.sh"
nlg_require_nlgate
nlg_require_msgpack
nlg_tmpdir

HDIR=$NLG_SRC/tests/integration/hostile
MEM_MIB=64                  # --mem-limit for the cases
RSS_LIMIT_KB=$((300 * 1024)) # peak RSS (VmHWM) any case may reach
MAX_GAP=1.0                 # seconds between two ticks at the reader
if grep -qa __asan_init "$NLGATE"; then
	# ASan's quarantine holds up to 256 MiB of freed memory before reuse
	RSS_LIMIT_KB=$((RSS_LIMIT_KB + 256 * 1024))
fi
# A real C module of this host, for package.loadlib / require to refuse.
CMOD=$(ls /usr/lib/*/lua/5.4/lfs.so /usr/local/lib/lua/5.4/lfs.so 2>/dev/null | head -n 1)

# ---- per-case plumbing ------------------------------------------------------------
# case_setup N: a fresh directory for case N: $S the scripts (a copy of
# hostile/*.lua, so the case may add modules beside them), $CAN the canary
# directory (the gateway's working directory and every attack's target).
case_setup() {
	CASE=$1
	CD=$NLG_TMP/c$CASE
	S=$CD/s
	CAN=$CD/canary
	FEED=$CD/feed.sock
	LOG=$CD/gw.log
	OUT=$CD/gw.out
	FR=$CD/frames
	mkdir -p "$S" "$CAN" || nlg_fail "mkdir $CD"
	cp "$HDIR"/*.lua "$S/" || nlg_fail "copy the case scripts"
	echo "canary of case $CASE: $RANDOM$RANDOM" >"$CAN/canary.txt"
	mkdir "$CAN/sub"
	echo "second canary" >"$CAN/sub/keep.txt"
	CANARY_BEFORE=$(canary_state)
	TMPNAMES_BEFORE=$(tmpnames)
}
canary_state() { (cd "$CAN" && find . -printf '%y %m %s %T@ %p\n' | sort && cat canary.txt sub/keep.txt) 2>&1; }
tmpnames() { ls -d /tmp/lua_* 2>/dev/null | sort; }

# gw_start SCRIPT [run options...]: the gateway on $S/SCRIPT, its pid in GW,
# and the reader on its feed, its pid in RD.
gw_start() {
	local script=$1
	shift
	nlg_spawn GW env -C "$CAN" NLGT_DIR="$CAN" NLGT_FEED="$FEED" NLGT_CMOD="$CMOD" \
		NLGT_PORT="${PORT:-0}" NLGT_VARIANT="${VARIANT:-}" "$NLGATE" run --mem-limit "$MEM_MIB" "$@" "$S/$script" \
		>"$OUT" 2>"$LOG" </dev/null
	nlg_wait_for 5 "the feed socket of case $CASE ($(tail -n 3 "$LOG" 2>/dev/null))" gw_socket_or_dead
	nlg_alive "$GW" || nlg_fail "the gateway exited at start: $(cat "$LOG")"
	nlg_spawn RD "$NLG_PY" "$HDIR/reader.py" "$FEED" "$FR"
	nlg_wait_for 5 "the reader to connect" grep -qs CONNECTED "$FR"
}
gw_socket_or_dead() { [ -S "$FEED" ] || ! nlg_alive "$GW"; }

# gw_stop: SIGTERM; the gateway must end with 0 within 5 s (feeds drained).
gw_stop() {
	local rc
	nlg_alive "$GW" || nlg_fail "the gateway died: $(tail -n 20 "$LOG")"
	check_rss
	kill -TERM "$GW"
	nlg_wait_exit "$GW" 5
	rc=$?
	[ "$rc" -ne 124 ] || nlg_fail "the gateway did not stop within 5 s of SIGTERM"
	check_sanitizer
	[ "$rc" -eq 0 ] || nlg_fail "exit status $rc after SIGTERM: $(tail -n 20 "$LOG")"
	nlg_wait_for 5 "the reader to see the end of the feed" reader_done
}
reader_done() { grep -q '^EOF\|^BAD' "$FR"; }

last_tick() { awk '$1 == "T" { n = $2 } END { print n + 0 }' "$FR"; }
ticks_past() { [ "$(last_tick)" -gt "$1" ]; }
# check_ticking: the feed's timer still delivers: half a second of ticks more.
check_ticking() {
	local n
	nlg_alive "$GW" || nlg_fail "the gateway died: $(tail -n 20 "$LOG")"
	check_stream
	n=$(last_tick)
	nlg_wait_for 3 "ticks past $n on the feed (stalled? $(tail -n 3 "$LOG"))" ticks_past $((n + 25))
}
# check_stream: every frame decoded strictly, ticks in sequence without a
# gap, none more than MAX_GAP apart.
check_stream() {
	local bad
	bad=$(grep -m 1 '^BAD' "$FR") && nlg_fail "the reader could not decode the feed: $bad"
	bad=$(awk -v max="$MAX_GAP" '$1 == "T" {
		if (seen && $2 != n + 1) { printf "tick %d after tick %d\n", $2, n; exit 1 }
		if (seen && $3 - t > max) { printf "%.3f s without a tick (after tick %d)\n", $3 - t, n; exit 1 }
		n = $2; t = $3; seen = 1 }
		END { if (!seen) { print "no tick at all"; exit 1 } }' "$FR") ||
		nlg_fail "the feed stalled or lost ticks: $bad"
}
check_rss() {
	local hwm rss
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$GW/status" 2>/dev/null)
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$GW/status" 2>/dev/null)
	[ -n "$hwm" ] || nlg_fail "no VmHWM for the gateway (pid $GW)"
	[ "$hwm" -le "$RSS_LIMIT_KB" ] ||
		nlg_fail "peak RSS ${hwm} kB over the bound of ${RSS_LIMIT_KB} kB (now ${rss} kB)"
	PEAK_KB=$hwm
}
check_canary() {
	local now
	now=$(canary_state)
	[ "$now" = "$CANARY_BEFORE" ] ||
		nlg_fail "the canary directory changed: $(diff <(echo "$CANARY_BEFORE") <(echo "$now"))"
	[ "$(tmpnames)" = "$TMPNAMES_BEFORE" ] || nlg_fail "a /tmp/lua_* file appeared (os.tmpname)"
}
check_sanitizer() { # [FILE]: the gateway's log by default
	local r
	r=$(grep -m 3 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|Lua panic|SUMMARY: ' "${1:-$LOG}") &&
		nlg_fail "sanitizer report or panic: $r"
	return 0
}
log_has() { grep -q -- "$1" "$LOG"; }
# wait_log SECONDS PATTERN: the log gets a line matching PATTERN (grep -E).
wait_log() {
	nlg_wait_for "$1" "'$2' in the log (log: $(tail -n 5 "$LOG" | tr '\n' '|'))" grep -Eq -- "$2" "$LOG"
}
# check_attacks FILE: each "ATTACK name :: expected" line is followed by an
# "error in timer handler: .../FILE:LINE: ...expected..." line (one of the
# alternatives "a || b"; the position may also be hlib.lua's, the caller,
# as for a budget kill, or a chunk the script loaded) and a traceback; and
# no attack returned. The count of them in ATTACKS_OK.
check_attacks() {
	local file=$1 r
	r=$(awk -v file="$file" '
		function judge() {
			if (!match(msg, "(/" file "|/hlib\\.lua|\\[string \"[^\"]*\"\\]):[0-9]+: ")) {
				print cur ": the error does not name " file ":LINE: " msg; failed = 1; exit 1 }
			nw = split(want, alt, " [|][|] "); found = 0
			for (k = 1; k <= nw; k++) if (index(msg, alt[k])) found = 1
			if (!found) { print cur ": want \"" want "\", got: " msg; failed = 1; exit 1 }
			ok++; cur = "" }
		/^stack traceback:/ { if (cur != "") judge(); next }
		/ nlgate: / && cur != "" { print cur ": no traceback after the error"; failed = 1; exit 1 }
		/ nlgate: ATTACK / { if (p != "") { print "no error logged for: " p; failed = 1; exit 1 }
			s = substr($0, index($0, "ATTACK ") + 7); i = index(s, " :: ")
			p = substr(s, 1, i - 1); want = substr(s, i + 4); n++; next }
		/ nlgate: SURVIVED / { print "not refused: " substr($0, index($0, "SURVIVED ") + 9); failed = 1; exit 1 }
		/ nlgate: error in timer handler: / { if (p != "") { cur = p; msg = $0; p = "" } next }
		cur != "" { msg = msg "\n" $0 }
		END { if (failed) exit 1
			if (p != "") { print "no error logged for: " p; exit 1 }
			if (cur != "") { print cur ": no traceback after the error"; exit 1 }
			if (!n) { print "no attack ran"; exit 1 }
			print ok }' "$LOG") || nlg_fail "$r"
	ATTACKS_OK=$r
}
# check_probe LABEL: the attacks H.probe ran under LABEL were all refused as
# expected; their count in PROBE_OK.
check_probe() {
	local r
	r=$(grep -E -m 3 " nlgate: $1 (ALLOWED|MISMATCH)" "$LOG") && nlg_fail "$1: $r"
	log_has " nlgate: $1 DONE" || nlg_fail "the $1 attacks did not finish: $(tail -n 5 "$LOG")"
	PROBE_OK=$(grep -c " nlgate: $1 refused" "$LOG")
}
check_top() {
	check_probe TOP
	TOP_OK=$PROBE_OK
}
# start_listener: a TCP listener on loopback for a socket source to find;
# its port in PORT.
start_listener() {
	nlg_spawn LST "$NLG_PY" -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1] + ".tmp", "w").write("%d\n" % s.getsockname()[1])
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept(); time.sleep(0.01)' "$CD/port"
	nlg_wait_file "$CD/port" 5 "$LST"
	PORT=$(cat "$CD/port")
}
result() { grep -o "RESULT $1.*" "$LOG" | tail -n 1; }

# ---- the cases ---------------------------------------------------------------------
case_sandbox() {
	case_setup 1
	gw_start case_sandbox.lua
	wait_log 10 'RESULT ERRORS|SURVIVED'
	check_top
	check_attacks case_sandbox.lua
	[ "$(result "WORKS top")" = "RESULT WORKS top true" ] || nlg_fail "the safe libraries at the top level: $(result WORKS)"
	[ "$(result "WORKS timer")" = "RESULT WORKS timer true" ] || nlg_fail "the safe libraries in a handler: $(grep WORKS "$LOG")"
	check_ticking
	check_canary
	gw_stop
	check_stream
	for m in IOWRITE-OK STDOUT-OK PRINT-OK; do
		[ "$(grep -c "^$m\$" "$OUT")" -eq 2 ] || nlg_fail "$m not written twice on stdout: $(head -c 300 "$OUT")"
	done
	[ "$(grep -c '^STDERR-OK$' "$LOG")" -eq 2 ] || nlg_fail "io.stderr:write did not reach stderr twice"

	# an unprotected attack at the top level: the script does not start,
	# the error names file:line, nothing is written
	printf 'local gw = require "nlgate"\nos.execute("touch %s/new-top")\n' "$CAN" >"$S/toplevel.lua"
	timeout 10 env -C "$CAN" "$NLGATE" run --mem-limit "$MEM_MIB" "$S/toplevel.lua" >"$CD/top.out" 2>"$CD/top.err" </dev/null
	rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || nlg_fail "a top level calling os.execute: exit $rc"
	grep -q "toplevel.lua:2: attempt to call a nil value (field 'execute')" "$CD/top.err" ||
		nlg_fail "the top-level os.execute error does not name toplevel.lua:2: $(cat "$CD/top.err")"
	check_sanitizer "$CD/top.err"
	check_canary

	# the default pipeline runs in this sandbox: a summary on stdout, frames on its feed
	local dfeed=$CD/default.sock
	nlg_spawn DGW env -C "$CAN" NLGATE_FEED="$dfeed" NLGATE_EVERY=200ms NLGATE_CT=off NLGATE_PLAIN=1 \
		TERM=dumb "$NLGATE" run --mem-limit "$MEM_MIB" "$NLG_SRC/scripts/default.lua" \
		>"$CD/default.out" 2>"$CD/default.err" </dev/null
	nlg_wait_for 10 "the default pipeline's summary ($(tail -n 3 "$CD/default.err"))" \
		grep -q 'flagged:' "$CD/default.out"
	grep -Eq '^nlgate  [0-9:]+  [0-9]+ sockets' "$CD/default.out" ||
		nlg_fail "the default pipeline's summary: $(head -n 5 "$CD/default.out")"
	[ -S "$dfeed" ] || nlg_fail "the default pipeline made no feed at $dfeed"
	kill -TERM "$DGW"
	nlg_wait_exit "$DGW" 5 || nlg_fail "the default pipeline exited $? on SIGTERM: $(tail -n 5 "$CD/default.err")"
	check_sanitizer "$CD/default.err"
	grep -q 'error in' "$CD/default.err" && nlg_fail "the default pipeline logged errors: $(grep -A3 'error in' "$CD/default.err" | head)"
	rm -f "$dfeed"
	check_canary
	CASE_INFO="$TOP_OK refused at the top level, $ATTACKS_OK in a handler; default pipeline ok; peak RSS $((PEAK_KB / 1024)) MiB"
}

case_load() {
	case_setup 2
	printf '\033LuaT\000\031\223\r\n\032\n\004\010\010xV\000\000\000\000\000\000\000\000' >"$S/bytecode_mod.lua"
	gw_start case_load.lua
	wait_log 10 'RESULT LOAD timer|SURVIVED'
	check_top
	check_attacks case_load.lua
	[ "$(result "LOAD top")" = "RESULT LOAD top true" ] || nlg_fail "text load at the top level: $(result LOAD)"
	[ "$(result "LOAD timer")" = "RESULT LOAD timer true" ] || nlg_fail "text load in a handler: $(grep LOAD "$LOG" | tail -n 3)"
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="$TOP_OK refused at the top level, $ATTACKS_OK in a handler; text load works"
}

case_debug() {
	case_setup 3
	gw_start case_debug.lua --budget 1000000
	wait_log 10 'RESULT KILLS|SURVIVED'
	check_top
	check_attacks case_debug.lua
	[ "$(result KILLS)" = "RESULT KILLS 1" ] || nlg_fail "the loop after the sethook attempts: $(result KILLS)"
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="$TOP_OK refused at the top level, $ATTACKS_OK in a handler; the budget still stopped a loop"
}

case_budget() {
	local n_att rc
	case_setup 4
	gw_start case_budget.lua --budget 1000000
	wait_log 15 'RESULT AFTER|SURVIVED'
	check_attacks case_budget.lua
	n_att=$(grep -c ' nlgate: ATTACK ' "$LOG")
	[ "$(result KILLS)" = "RESULT KILLS $n_att $n_att" ] ||
		nlg_fail "gw.stats().script.budget_kills after $n_att loops: $(result KILLS)"
	[ "$(result AFTER)" = "RESULT AFTER 5000050000" ] || nlg_fail "the handler after the kills: $(result AFTER)"
	[ "$(result ARMED)" = "RESULT ARMED true" ] ||
		nlg_fail "the watchdog never armed the budget's hook: $(result ARMED)"
	check_ticking
	check_canary
	gw_stop
	check_stream

	# a top level that loops behind pcall: refused, the script does not start
	printf 'local gw = require "nlgate"
while true do pcall(function() while true do end end) end
' >"$S/toploop.lua"
	timeout 10 env -C "$CAN" "$NLGATE" run --budget 1000000 --mem-limit "$MEM_MIB" "$S/toploop.lua" \
		>"$CD/top.out" 2>"$CD/top.err" </dev/null
	rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || nlg_fail "a looping top level: exit $rc: $(head -c 300 "$CD/top.err")"
	# (the budget's error names the caller's line, none for a main chunk;
	# the traceback names the loop)
	grep -Eq 'instruction budget exceeded|handler stopped' "$CD/top.err" &&
		grep -q 'toploop.lua:2: in main chunk' "$CD/top.err" ||
		nlg_fail "a looping top level: $(head -c 300 "$CD/top.err")"
	check_sanitizer "$CD/top.err"
	check_canary
	CASE_INFO="$ATTACKS_OK loops stopped and counted; a looping top level refused"
}

# case_escape VARIANT: code Lua runs with hooks off (see
# hostile/case_escape.lua) is stopped like any other, or refused.
case_escape() {
	case_setup "4-$1"
	VARIANT=$1 gw_start case_escape.lua --budget 1000000
	wait_log 5 ' nlgate: ATTACK '
	if ! nlg_wait_for_quiet 3 attacks_over; then
		nlg_fail "$(grep -o 'ATTACK .* ::' "$LOG" | tail -n 1 | sed 's/ ::$//'): not stopped, the loop" \
			"is held (no tick for $(tick_age) s); log:" \
			"$(grep -E ' nlgate: (ATTACK|error|watchdog)' "$LOG" | cut -c1-200 | tr '\n' '|')"
	fi
	check_attacks case_escape.lua
	check_ticking
	wait_log 5 'RESULT ESCAPE AFTER'
	check_canary
	gw_stop
	check_stream
	CASE_INFO="$(grep -m 1 -o 'error in timer handler: .*' "$LOG" | sed 's|/[^ ]*/||' | cut -c25-110)"
}
attacks_over() { log_has 'ATTACKS DONE' || log_has 'SURVIVED'; }
# nlg_wait_for_quiet SECONDS cmd...: like nlg_wait_for, but returns 1 on
# timeout instead of failing.
nlg_wait_for_quiet() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

case_meta() {
	case_setup 5
	start_listener
	gw_start case_meta.lua
	wait_log 10 'RESULT META|SURVIVED'
	check_probe VIEW
	local nview=$PROBE_OK
	check_probe BATCH
	local nbatch=$PROBE_OK
	grep -Eq "error in sockets:each handler: .*/case_meta.lua:[0-9]+: attempt to index a boolean value" "$LOG" ||
		nlg_fail "getmetatable(view).__gc(view) in :each was not logged as that handler's error"
	check_attacks case_meta.lua
	[ "$(result META)" = "RESULT META true true false false" ] || nlg_fail "objects after the attacks: $(result META)"
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="$nview on a record view, $nbatch on a batch, $ATTACKS_OK on feeds, sources, timers"
}

case_life() {
	local bombs early late
	case_setup 6
	start_listener
	gw_start case_life.lua
	wait_log 10 'RESULT KEPT|SURVIVED'
	check_attacks case_life.lua
	[ "$(result LIFE)" = "RESULT LIFE 1 true false 1 1 1 false false 1 1 true true true" ] ||
		nlg_fail "closing, cancelling, polling from a coroutine (want 1 true false 1 1 1 false false 1 1 true true true): $(result LIFE)"
	[ "$(result KEPT)" = "RESULT KEPT 0 true true" ] || nlg_fail "a kept batch and copy: $(result KEPT)"
	grep -q "error in sockets:each handler: .*attempt to yield across a C-call boundary" "$LOG" ||
		nlg_fail "a handler yielding out of a poll in a coroutine was not logged as an error"
	nlg_wait_for 3 "the owned copy on the feed" grep -q "^F copy .*\"sport\": ${PORT}[,}]" "$FR"
	check_ticking
	check_sanitizer
	# the finalizers: made (plain or planted, see hostile/hgc.lua), or refused
	bombs=$(grep -m 1 -o 'BOMBS .*' "$LOG")
	early=$(cut -d' ' -f2 <<<"$bombs")
	late=$(cut -d' ' -f3 <<<"$bombs")
	[ "$early" = none ] && [ "$late" = none ] && ! grep -q 'finalizers are not allowed' <<<"$bombs" &&
		nlg_fail "no finalizer could be made, but not for the reason expected: $bombs"

	# reload: the old state closes, its __gc tries to make objects
	kill -HUP "$GW"
	wait_log 5 'RESULT GEN 2'
	wait_log 5 'nlgate: reloaded'
	[ "$early" = none ] || wait_log 5 'GCLATE DONE'
	[ "$late" = none ] || check_gc_refused 1
	check_ticking
	check_sanitizer
	# exit: the new state closes the same way
	gw_stop
	[ "$late" = none ] || check_gc_refused 2
	grep -q 'GC TIMER FIRED' "$LOG" && nlg_fail "a timer made in a __gc fired"
	[ ! -e "$FEED.gc" ] || nlg_fail "a feed made in a __gc exists: $FEED.gc"
	[ "$early" = none ] || [ "$(grep -c 'GCLATE DONE' "$LOG")" -eq 2 ] ||
		nlg_fail "the early __gc did not finish at exit"
	check_stream
	check_canary
	if [ "$late" = none ]; then
		CASE_INFO="$ATTACKS_OK uses of kept views refused; no finalizer could be made"
	else
		CASE_INFO="$ATTACKS_OK uses of kept views refused; finalizers ($early, $late) made nothing at reload and exit"
	fi
}
# check_gc_refused N: N closes so far; each refused the four constructors.
check_gc_refused() {
	local c r
	r=$(grep -m 3 -E ' nlgate: GC .* ALLOWED' "$LOG") && nlg_fail "made in a __gc while the state closed: $r"
	for c in gw.every gw.after gw.unix gw.sockets; do
		[ "$(grep -c " nlgate: GC $c refused: .*nlgate is closing this script" "$LOG")" -eq "$1" ] ||
			nlg_fail "$c in a __gc at close $1: $(grep " nlgate: GC $c" "$LOG")"
	done
}

case_size() {
	case_setup 7
	gw_start case_size.lua
	wait_log 20 'RESULT AFTER|SURVIVED'
	check_attacks case_size.lua
	result DAG | grep -q '^RESULT DAG false true .*value too large' ||
		nlg_fail "the timed DAG send (want refused in under 0.5 s): $(result DAG)"
	[ "$(grep -c "error in timer handler: not enough memory (the script's limit)" "$LOG")" -eq 2 ] ||
		nlg_fail "the memory bombs were not both stopped by the limit: $(grep -A1 BOMB "$LOG" | head)"
	[ "$(result AFTER)" = "RESULT AFTER 100000 2" ] || nlg_fail "after the memory bombs: $(result AFTER)"
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="$ATTACKS_OK refused; DAG in $(result DAG | cut -d' ' -f5) s; memory bombs stopped at $MEM_MIB MiB, peak RSS $((PEAK_KB / 1024)) MiB"
}

case_keys() {
	case_setup 8
	gw_start case_keys.lua
	wait_log 10 'RESULT GOOD sent|SURVIVED'
	check_attacks case_keys.lua
	nlg_wait_for 3 "the frames sent after the attacks" grep -q '^F bintag\|^BAD' "$FR"
	check_stream
	frame_is mixed '{"1": "a", "1.5": "c", "true": "d", "x": {"y": 1}}'
	frame_is lying '{"a": 1}'
	frame_is bin '{"s": {"$bin": "fffe00616263"}, "u": "é€"}'
	frame_is binkey '{"$bin:fffe": 1, "ok": "yes"}'
	frame_is holes '[1, null, 3]' '{"1": 1, "3": 3}'
	frame_is bintag '{"$bin": "ff"}'
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="$ATTACKS_OK keys or values refused; every frame decoded strictly"
}
# case_vanish gcmutate|weak: a table whose entries vanish while it is
# encoded still goes out as a map whose count matches its entries.
case_vanish() {
	local tag=$1 why
	case $tag in
	gcmutate) why="a table whose entries a __gc finalizer removed while it was sent" ;;
	weak) why="a weak-valued table whose values were collected while it was sent" ;;
	esac
	case_setup "8-$tag"
	VARIANT=$tag gw_start case_keys.lua
	wait_log 10 "RESULT ${tag^^} sent"
	nlg_wait_for 3 "the $tag frame" grep -q "^F $tag \|^BAD" "$FR"
	grep -q "^F $tag " "$FR" ||
		nlg_fail "the feed no longer decodes after the '$tag' frame ($why): $(grep -m 1 '^BAD' "$FR" | cut -c1-300)"
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="decoded: $(grep "^F $tag " "$FR" | tr -cd ':' | wc -c) entries"
}
# frame_is TAG JSON [JSON...]: the reader decoded the TAG frame as one of these.
frame_is() {
	local tag=$1 got want
	shift
	got=$(grep -m 1 "^F $tag " "$FR" | cut -d' ' -f3-)
	for want in "$@"; do
		[ "$got" = "$want" ] && return 0
	done
	nlg_fail "the '$tag' frame decoded as '$got', want '$1'"
}

# case_gcclose exit|reload: a finalizer that loops when the state closes
# must not hold the gateway: SIGTERM still ends it within 2 s; a reload
# still completes and the feed goes on.
case_gcclose() {
	local t0 ms rc
	case_setup "4-close-$1"
	VARIANT=gcclose gw_start case_escape.lua --budget 1000000
	wait_log 5 'RESULT ARMED'
	check_ticking
	if result ARMED | grep -q '^RESULT ARMED none'; then
		# no finalizer can be made: nothing to run at close
		log_has 'finalizers are not allowed' || nlg_fail "no finalizer, but why: $(result ARMED)"
	fi
	if [ "$1" = reload ]; then
		kill -HUP "$GW"
		nlg_wait_for_quiet 3 grep -q 'nlgate: reloaded\|reload failed' "$LOG" ||
			nlg_fail "a __gc ($(result ARMED | cut -d' ' -f3)) that loops when the old state closes:" \
				"the reload never finished, no tick for $(tick_age) s; the log says:" \
				"$(tail -n 3 "$LOG" | tr '\n' '|')"
		check_ticking
		gw_stop
		check_stream
		CASE_INFO="$(result ARMED | cut -d' ' -f2-4): the reload went on"
		return
	fi
	t0=$(date +%s%N)
	kill -TERM "$GW"
	nlg_wait_exit "$GW" 4
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$rc" -ne 124 ] || nlg_fail "a __gc ($(result ARMED | cut -d' ' -f3)) that loops when the state" \
		"closes at exit: still running 4 s after SIGTERM; the log says: $(tail -n 3 "$LOG" | tr '\n' '|')"
	[ "$ms" -le 2000 ] || nlg_fail "a __gc that loops at exit: SIGTERM took $ms ms (rc $rc)"
	check_sanitizer
	CASE_INFO="$(result ARMED | cut -d' ' -f2-4): SIGTERM ended it in $ms ms (exit $rc)"
}
tick_age() { awk -v now="$(awk '{ print $1 }' /proc/uptime)" '$1 == "T" { t = $3 } END { printf "%.1f", now - t }' "$FR"; }

# case_stuck c|lua: a handler that holds the loop; the watchdog names it and
# SIGTERM ends the gateway within 2 s, with a line naming the handler.
case_stuck() {
	local t0 ms rc opts=()
	case_setup "9-$1"
	[ "$1" = lua ] && opts=(--budget 0)
	VARIANT=$1 gw_start case_stuck.lua "${opts[@]}"
	wait_log 5 'ATTACK stuck'
	wait_log 5 'watchdog: the timer handler has held the loop for [0-9]+ ms'
	nlg_alive "$GW" || nlg_fail "the gateway died: $(tail -n 5 "$LOG")"
	check_rss
	t0=$(date +%s%N)
	kill -TERM "$GW"
	nlg_wait_exit "$GW" 5
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$rc" -ne 124 ] || nlg_fail "still running 5 s after SIGTERM"
	[ "$ms" -le 2000 ] || nlg_fail "SIGTERM took $ms ms to end the gateway (want ≤ 2000)"
	grep -Eq 'watchdog: .*the timer handler has held the loop for [0-9]+ ms.*exiting' "$LOG" ||
		nlg_fail "no exit line naming the handler: $(tail -n 3 "$LOG")"
	log_has 'SURVIVED stuck' && nlg_fail "the stuck handler returned"
	check_sanitizer
	grep -q '^BAD' "$FR" && nlg_fail "the feed did not decode: $(grep -m 1 BAD "$FR")"
	check_canary
	CASE_INFO="SIGTERM → exit $rc in $ms ms: $(grep -o 'watchdog: asked.*' "$LOG" | cut -c1-90)…"
}

case_failing() {
	local r
	case_setup 10
	start_listener
	gw_start case_failing.lua
	wait_log 30 'RESULT FAILING'
	r=$(result FAILING)
	[ "$r" = "RESULT FAILING 100 100 true true sockets:each,timer 100" ] ||
		nlg_fail "want 'RESULT FAILING 100 100 true true sockets:each,timer 100', got '$r'"
	[ "$(grep -c ' nlgate: timer handler disabled: it failed 100 times in a row' "$LOG")" -eq 1 ] ||
		nlg_fail "not one 'timer handler disabled' line: $(grep -c 'handler disabled' "$LOG")"
	[ "$(grep -c ' nlgate: sockets:each handler disabled: it failed 100 times in a row' "$LOG")" -eq 1 ] ||
		nlg_fail "not one 'sockets:each handler disabled' line"
	[ "$(grep -c 'error in timer handler: .*case_failing.lua:[0-9]*: always fails' "$LOG")" -eq 100 ] ||
		nlg_fail "the always-failing timer's errors logged: $(grep -c 'always fails' "$LOG"), want 100"
	grep -q 'error in timer handler: .*flaky fails 199' "$LOG" ||
		nlg_fail "the flaky timer stopped being called: $(grep -o 'flaky fails [0-9]*' "$LOG" | tail -n 1)"
	check_ticking
	check_canary
	gw_stop
	check_stream
	CASE_INFO="disabled: timer and sockets:each after 100 failures each; the flaky one and the others go on"
}

# ---- run every case -----------------------------------------------------------------
FAILED=()
run_case() { # run_case N NAME FUNCTION
	local n=$1 name=$2 fn=$3 t0=$SECONDS
	if (
		NLG_CLEANUP=()
		trap _nlg_cleanup EXIT
		CASE_INFO=
		$fn
		echo "$CASE_INFO" >"$NLG_TMP/info.$n"
	); then
		echo "case $n $name: ok ($((SECONDS - t0)) s) $(cat "$NLG_TMP/info.$n" 2>/dev/null)"
	else
		echo "case $n $name: FAILED"
		FAILED+=("$n $name")
	fi
}
if [ "${NLGT_KEEP:-0}" = 1 ]; then
	NLG_CLEANUP=() # keep the logs of a failed run
fi

CASES=${NLGT_CASES:-1 2 3 4 5 6 7 8 9 10}
for c in $CASES; do
	case $c in
	1) run_case 1 sandbox case_sandbox ;;
	2) run_case 2 load case_load ;;
	3) run_case 3 debug case_debug ;;
	4)
		run_case 4 budget case_budget
		run_case 4b finalizer "case_escape gc"
		run_case 4c finalizer-planted "case_escape gcplant"
		run_case 4d xpcall-handler "case_escape xpcall"
		run_case 4e close-in-wrap "case_escape wrapclose"
		run_case 4f close-later "case_escape closelater"
		run_case 4g finalizer-at-exit "case_gcclose exit"
		run_case 4h finalizer-at-reload "case_gcclose reload"
		;;
	5) run_case 5 metatables case_meta ;;
	6) run_case 6 lifetimes case_life ;;
	7) run_case 7 size case_size ;;
	8)
		run_case 8 keys case_keys
		run_case 8b keys-finalizer-removes "case_vanish gcmutate"
		run_case 8c keys-weak-values "case_vanish weak"
		;;
	9)
		run_case 9 stuck-in-C "case_stuck c"
		run_case 9b stuck-lua-no-budget "case_stuck lua"
		;;
	10) run_case 10 failing case_failing ;;
	esac
done
if [ ${#FAILED[@]} -gt 0 ]; then
	nlg_fail "${#FAILED[@]} case(s) failed: ${FAILED[*]}"
fi
echo "PASS [$NLG_TEST]"
