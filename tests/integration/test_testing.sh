#!/bin/bash
# The pipelines tests/spec/testing_spec.lua drives dry with require
# "nlgate.testing" run unchanged under the real `nlgate run`, on loopback:
#  - testing_slow.lua (MAX_RTT_MS=0): a loopback TCP connection with data
#    exchanged has an rtt, so its sockets send alert.slow frames to the feed;
#  - testing_batch.lua: a listener on loopback; one listen.summary frame per
#    poll, counting it;
#  - testing_timers.lua: starts, runs a second, stops cleanly on INT.
# No root needed: the sockets source reads this namespace's inet_diag.
. "$(dirname "$0")/lib.sh"

nlg_require_nlgate
nlg_require_cmd python3
nlg_tmpdir
T=$NLG_TMP
SRC=${NLGATE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
P=$SRC/tests/spec/pipelines

# A listener and one connection on 127.0.0.1, 1000 bytes each way, held.
cat >"$T/hold.py" <<'PY'
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
c.sendall(b"x" * 1000); a.recv(1000); a.sendall(b"y" * 1000); c.recv(1000)
open(sys.argv[1], "w").write("%d\n" % l.getsockname()[1])
time.sleep(3600)
PY
nlg_spawn HOLD python3 "$T/hold.py" "$T/port"
nlg_wait_file "$T/port" 10 "$HOLD"
PORT=$(cat "$T/port")

# run_pipeline NAME TAG: run it with its feed at $T/NAME.sock, take the
# first frame tagged TAG (JSON) into $T/NAME.json, stop it with INT.
run_pipeline() {
	local name=$1 tag=$2 pid tpid rc
	FEED=$T/$name.sock MAX_RTT_MS=0 "$NLGATE" run "$P/$name.lua" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
	pid=$!
	nlg_on_exit "kill -9 $pid"
	nlg_wait_for 10 "$name's feed" test -S "$T/$name.sock"
	if [ -n "$tag" ]; then
		timeout 10 "$NLGATE" tail -n 1 -t "$tag" "$T/$name.sock" >"$T/$name.json" 2>"$T/$name.tail" ||
			nlg_fail "$name: no $tag frame within 10 s: $(cat "$T/$name.tail" "$T/$name.err")"
	else
		sleep 1
	fi
	nlg_alive "$pid" || nlg_fail "$name exited early: $(cat "$T/$name.err")"
	kill -INT "$pid"
	nlg_wait_exit "$pid" 10
	rc=$?
	[ "$rc" -eq 0 ] || nlg_fail "$name: nlgate run exited $rc: $(tail -n 5 "$T/$name.err")"
	! grep -q "error in" "$T/$name.err" || nlg_fail "$name: handler errors: $(cat "$T/$name.err")"
	nlg_log "$name: $(head -c 300 "$T/$name.json" 2>/dev/null)"
}

run_pipeline testing_slow alert.slow
grep -q '"tag":"alert.slow"' "$T/testing_slow.json" || nlg_fail "no alert.slow frame"
grep -q '"src":"127.0.0.1"' "$T/testing_slow.json" || nlg_fail "alert.slow not about loopback"
grep -Eq '"rtt_ms":[0-9]+' "$T/testing_slow.json" || nlg_fail "alert.slow without rtt_ms"

run_pipeline testing_batch listen.summary
grep -Eq '"listeners":[1-9]' "$T/testing_batch.json" ||
	nlg_fail "listen.summary counts no listener (ours is on $PORT)"

run_pipeline testing_timers ""
exit 0
