#!/usr/bin/env bash
# The NATS output on bad input, never a crash or a blocked loop:
#  1. a bad url, subject or option, a missing or wrong creds file: gw.nats
#     raises one clear line and nlgate run exits 1;
#  2. nobody listening: open succeeds, the records wait in nlgate's queue
#     (the overflow dropped and counted), the loop keeps its 50 ms ticks
#     while libnats retries, and SIGTERM ends it within the drain time with
#     one line for what was not delivered;
#  3. a listener that answers garbage, and one that closes at once: logged,
#     retried, the loop ticking, a clean exit;
#  4. the server comes later, first without the stream (publishes refused:
#     resent every retry_wait), then the stream: every record is stored
#     exactly once.
# Skips when nats-server is missing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats/lib.sh"
nlg_require_nlgate
nlg_tmpdir
nats_require

# ---- 1. refused at once -----------------------------------------------------------
bad() {
	local want=$1 opts=$2 rc
	printf 'local gw = require "nlgate"\ngw.nats { %s }\ngw.after("3s", gw.stop)\n' "$opts" \
		>"$NLG_TMP/bad.lua"
	timeout 10 "$NLGATE" run "$NLG_TMP/bad.lua" 2>"$NLG_TMP/bad.log"
	rc=$?
	[ $rc -eq 1 ] || nlg_fail "gw.nats { $opts }: rc $rc, want 1: $(cat "$NLG_TMP/bad.log")"
	grep -q -- "$want" "$NLG_TMP/bad.log" ||
		nlg_fail "gw.nats { $opts }: no '$want' in: $(cat "$NLG_TMP/bad.log")"
	nlg_log "gw.nats { $opts }: $(head -1 "$NLG_TMP/bad.log" | sed 's/.*gw.nats: //')"
}
bad "bad url" 'url = "http://127.0.0.1:4222"'
bad "bad url" 'url = "nats://127.0.0.1:0"'
bad "bad url" 'url = "nats://127.0.0.1:4222/x"'
bad "bad subject" 'subject = "a.*.{tag}"'
bad "bad subject" 'subject = "a..{tag}"'
bad "unknown option" 'subjekt = "x"'
bad "batch" 'batch = 0'
bad "No such file" 'creds = "/nonexistent/user.creds"'
echo "not a creds file" >"$NLG_TMP/user.creds"
bad "not a NATS credentials file" "creds = \"$NLG_TMP/user.creds\""

# A script that sends N records at once, ticks every 50 ms, and logs its
# ticks and the output's counters every second.
cat >"$NLG_TMP/wait.lua" <<'LUA'
local gw = require "nlgate"
local out = gw.nats { url = os.getenv("NATS_URL"), subject = "w.{tag}",
	queue_records = 5000, reconnect_wait = "200ms", connect_timeout = "300ms" }
for i = 1, tonumber(os.getenv("N")) do out:send("t", { n = i }) end
local ticks, t0 = 0, gw.now()
gw.every("50ms", function() ticks = ticks + 1 end)
gw.every("1s", function()
	local st = out:stats()
	gw.log(string.format("TICK ticks=%d in %.1f s state=%s backlog=%d dropped=%d err=%s",
		ticks, gw.now() - t0, st.state, st.backlog, st.dropped, st.last_error))
end)
LUA

# run_and_stop URL SECONDS: nlgate on wait.lua for SECONDS, then SIGTERM;
# checks the loop ticked, the exit was clean and quick.
run_and_stop() {
	local url=$1 secs=$2 log=$NLG_TMP/wait.log ticks t0
	NATS_URL=$url N=6000 nlg_spawn gwpid "$NLGATE" run --drain 1s "$NLG_TMP/wait.lua" 2>"$log"
	sleep "$secs"
	nlg_alive "$gwpid" || nlg_fail "nlgate died: $(cat "$log")"
	kill -TERM "$gwpid"
	t0=$SECONDS
	nlg_wait_exit "$gwpid" 10 || nlg_fail "nlgate exited with $? after SIGTERM: $(cat "$log")"
	((SECONDS - t0 <= 4)) || nlg_fail "exit took $((SECONDS - t0)) s: $(cat "$log")"
	ticks=$(grep -o 'TICK ticks=[0-9]*' "$log" | tail -1 | cut -d= -f2)
	# 20 a second on an idle loop; half of that proves it was not held.
	[ -n "$ticks" ] && [ "$ticks" -ge $((secs * 10 - 10)) ] ||
		nlg_fail "the loop ticked ${ticks:-0} times in ${secs}s: $(cat "$log")"
	grep -q "TICK.*backlog=5000 dropped=1000" "$log" ||
		nlg_fail "want 5000 queued and 1000 dropped: $(cat "$log")"
	grep -q "5000 records not delivered" "$log" ||
		nlg_fail "no line for the undelivered records: $(cat "$log")"
	nlg_log "$url: $(grep TICK "$log" | tail -1 | sed 's/.*TICK //'); $(grep -o '[0-9]* records not delivered.*' "$log")"
}

# ---- 2. nobody listening ----------------------------------------------------------
port=$(nats_free_port)
run_and_stop "nats://127.0.0.1:$port" 3
grep -q "not connected yet" "$NLG_TMP/wait.log" || nlg_fail "no 'not connected yet': $(cat "$NLG_TMP/wait.log")"

# ---- 3. garbage, and a close at once ------------------------------------------------
cat >"$NLG_TMP/listener.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    c, _ = s.accept()
    if sys.argv[2] == "garbage":
        c.sendall(b"HELLO \x00\xff not nats\r\n-ERR 'what'\r\n" * 10)
    c.close()
PY
listening() { "$NLG_PY" -c "import socket; socket.create_connection(('127.0.0.1', $1)).close()" 2>/dev/null; }
for mode in garbage close; do
	port=$(nats_free_port)
	nlg_spawn srvpid "$NLG_PY" "$NLG_TMP/listener.py" "$port" "$mode"
	nlg_wait_for 5 "the $mode listener" listening "$port"
	run_and_stop "nats://127.0.0.1:$port" 3
	kill "$srvpid"
done

# ---- 4. the server later, the stream later still ----------------------------------
cat >"$NLG_TMP/later.lua" <<'LUA'
local gw = require "nlgate"
local out = gw.nats { url = os.getenv("NATS_URL"), subject = "l.{tag}",
	reconnect_wait = "100ms", retry_wait = "100ms", ack_wait = "1s" }
for i = 1, 2000 do out:send("t", { n = i }) end
gw.every("50ms", function()
	local st = out:stats()
	if st.acknowledged == 2000 and st.inflight == 0 then
		gw.log(string.format("DONE resent=%d ack_errors=%d err=%s", st.resent, st.ack_errors,
			st.last_error))
		gw.stop()
	end
end)
LUA
NATS_PORT=$(nats_free_port)
NATS_URL=nats://127.0.0.1:$NATS_PORT nlg_spawn gwpid "$NLGATE" run "$NLG_TMP/later.lua" 2>"$NLG_TMP/later.log"
sleep 1
nats_start
sleep 1
natsctl add-stream L 'l.>' >/dev/null || nlg_fail "cannot create stream L"
nlg_wait_exit "$gwpid" 30 || nlg_fail "nlgate did not finish (rc $?): $(cat "$NLG_TMP/later.log")"
done=$(grep -o 'DONE.*' "$NLG_TMP/later.log") || nlg_fail "no DONE: $(cat "$NLG_TMP/later.log")"
nlg_log "server later, stream later: $done"
[ "$(nats_field "$done" resent)" -ge 1 ] || nlg_fail "nothing was resent: $done"
line=$(natsctl check L 2000)
nlg_log "L: $line"
[ "$(nats_field "$line" records)" = 2000 ] && [ "$(nats_field "$line" unique)" = 2000 ] &&
	[ "$(nats_field "$line" problems)" = 0 ] || nlg_fail "stream L: $line"
nlg_log "ok"
