#!/usr/bin/env bash
# The Fluentd Forward output (issue 9) against receiver.py, a Forward server
# written from the protocol specification with python3-msgpack: the shared-
# key handshake, acks, a receiver that drops the connection in the middle of
# the stream (twice) and comes back — every record at least once, in order
# per connection, the ack-tracked count exact, resends counted; the exit
# drain waits for acks; a wrong key (refused, and a server whose PONG digest
# is wrong, a wrong password) is one clear error and the state says
# "handshake failed", a user with the right password gets in; a
# receiver that is not there yet, closes at once or talks garbage: counted
# retries, no crash, everything delivered after; missing acks resent after
# the ack timeout; a full queue drops whole records and announces them; a
# stopped receiver noticed by the ack timeout; `watch --to forward://`; bad
# options. Needs no root.
. "$(dirname "$0")/lib.sh"
nlg_require_nlgate
nlg_require_msgpack
nlg_tmpdir
D=$NLG_SRC/tests/integration/forward
PY=$NLG_PY

# receiver NAME ARGS...: start receiver.py; its port in PORT, pid in RPID
receiver() {
	local name=$1
	shift
	rm -f "$NLG_TMP/$name.port"
	nlg_spawn RPID "$PY" "$D/receiver.py" --port-file "$NLG_TMP/$name.port" \
		--out "$NLG_TMP/$name.out" "$@"
	nlg_wait_file "$NLG_TMP/$name.port" 10 "$RPID"
	PORT=$(cat "$NLG_TMP/$name.port")
}
# sender NAME ENV...: nlgate run send.lua in the background, pid in SPID
sender() {
	local name=$1
	shift
	nlg_spawn SPID env "$@" "$NLGATE" run --drain 3s "$D/send.lua" 2>"$NLG_TMP/$name.log"
}
last_stat() { grep -o "stats .*" "$NLG_TMP/$1.log" | tail -1; }
stat_of() { last_stat "$1" | grep -o " $2=[^ ]*" | cut -d= -f2; }
stat_ge() { local v; v=$(stat_of "$1" "$2"); [ "${v:-0}" -ge "$3" ]; }
check() { "$PY" "$D/check.py" "$NLG_TMP/$1.out" "$2" ${3:+"$3"}; }
finish() { # NAME SECONDS: the sender exits 0 within SECONDS
	nlg_wait_exit "$SPID" "$2" || nlg_fail "$1: nlgate did not finish (rc $?): $(tail -5 "$NLG_TMP/$1.log")"
}

# ---- 1. handshake, two drops in mid-stream, at least once, exact acks -----------
N=20000
receiver drop --key s3cret --drop 7,25
sender drop N=$N BURST=200 NLGT_FWD="{port=$PORT, shared_key='s3cret', tag_prefix='nlgate', size=200, flush='20ms'}"
finish drop 60
grep -q "ACKED $N\$" "$NLG_TMP/drop.log" || nlg_fail "drop: no ACKED $N: $(tail -3 "$NLG_TMP/drop.log")"
sum=$(check drop $N) || nlg_fail "drop: $sum"
nlg_log "drop: receiver: $sum"
nlg_log "drop: $(last_stat drop)"
[ "$(stat_of drop acknowledged)" = $N ] || nlg_fail "drop: acknowledged is not $N"
[ "$(stat_of drop queued)" = $N ] || nlg_fail "drop: queued is not $N"
[ "$(stat_of drop dropped)" = 0 ] || nlg_fail "drop: records dropped"
[ "$(stat_of drop resent)" -gt 0 ] || nlg_fail "drop: nothing resent after the drops"
[ "$(stat_of drop reconnects)" -ge 2 ] || nlg_fail "drop: fewer than 2 reconnects"
[ "$(stat_of drop handshake_failures)" = 0 ] || nlg_fail "drop: handshake failures"
echo "$sum" | grep -q " dups=0 " && nlg_fail "drop: no record arrived twice: the drops resent nothing"
[ "$(grep -c '"handshake"' "$NLG_TMP/drop.out")" -ge 3 ] || nlg_fail "drop: fewer than 3 handshakes"
grep -q "closed: $N records queued, $N acknowledged, [0-9]* resent, 0 dropped" "$NLG_TMP/drop.log" ||
	nlg_fail "drop: the exit line: $(grep closed: "$NLG_TMP/drop.log")"
kill "$RPID"

# ---- 2. the exit drain waits for the acks --------------------------------------------
N=5000
receiver drain
sender drain N=$N BURST=2500 END=stop NLGT_FWD="{port=$PORT, size=300, flush='1s'}"
finish drain 30
grep -q "closed: $N records queued, $N acknowledged, 0 resent, 0 dropped" "$NLG_TMP/drain.log" ||
	nlg_fail "drain: the exit line: $(tail -3 "$NLG_TMP/drain.log")"
sum=$(check drain $N nlgate.seq 2>&1) && nlg_fail "drain: tag_prefix unset, yet tags were prefixed"
sum=$(check drain $N seq) || nlg_fail "drain: $sum"
nlg_log "drain: receiver: $sum"
kill "$RPID"

# ---- 3. a wrong key: refused, one clear line, state handshake failed ---------------
N=300
receiver wrongkey --key right
sender wrongkey N=$N END=hold NLGT_FWD="{port=$PORT, shared_key='wrong', retry_min='50ms', retry_max='200ms'}"
nlg_wait_for 10 "handshake failed, retried" stat_ge wrongkey handshake_failures 3
last_stat wrongkey | grep -q "state=handshake failed" || nlg_fail "wrong key: state: $(last_stat wrongkey)"
msg="handshake failed: the server refused us: shared_key mismatch"
[ "$(grep -c "nlgate: forward 127.0.0.1:$PORT: $msg" "$NLG_TMP/wrongkey.log")" = 1 ] ||
	nlg_fail "wrong key: want the line '$msg' once: $(grep forward "$NLG_TMP/wrongkey.log" | head -5)"
kill -TERM "$SPID"
finish wrongkey 10
grep -q "closed: $N records queued, 0 acknowledged, 0 resent, $N dropped" "$NLG_TMP/wrongkey.log" ||
	nlg_fail "wrong key: the exit line: $(grep closed: "$NLG_TMP/wrongkey.log")"
grep -q '"tag"' "$NLG_TMP/wrongkey.out" && nlg_fail "wrong key: records got through"
nlg_log "wrong key: $(grep "nlgate: forward.*$msg" "$NLG_TMP/wrongkey.log" | cut -d' ' -f3-)"
kill "$RPID"

# ... a server that does not know the key (its PONG digest is wrong)
receiver baddigest --key k --bad-digest
sender baddigest N=100 END=hold NLGT_FWD="{port=$PORT, shared_key='k', retry_min='50ms', retry_max='100ms'}"
nlg_wait_for 10 "wrong PONG digest seen" grep -q "PONG digest is wrong: it does not know our shared_key" "$NLG_TMP/baddigest.log"
nlg_wait_for 5 "state handshake failed" sh -c "grep -o 'stats .*' $NLG_TMP/baddigest.log | tail -1 | grep -q 'state=handshake failed'"
kill -TERM "$SPID"
finish baddigest 10
kill "$RPID"

# ... and no key where the server wants one
receiver nokey --key k
sender nokey N=100 END=hold NLGT_FWD="{port=$PORT, retry_min='50ms', retry_max='100ms'}"
nlg_wait_for 10 "'wants a shared key'" grep -q "the server wants a shared key (it sent HELO); set shared_key" "$NLG_TMP/nokey.log"
kill -TERM "$SPID"
finish nokey 10
kill "$RPID"

# ... and a server that asks for a user: the right password gets in, a wrong one not
receiver user --key k --user bob:pw
sender user N=500 NLGT_FWD="{port=$PORT, shared_key='k', username='bob', password='pw'}"
finish user 20
sum=$(check user 500 seq) || nlg_fail "user: $sum"
kill "$RPID"
receiver baduser --key k --user bob:pw
sender baduser N=100 END=hold NLGT_FWD="{port=$PORT, shared_key='k', username='bob', password='wrong', retry_min='50ms', retry_max='100ms'}"
nlg_wait_for 10 "a refused password" grep -q "refused us: username/password mismatch" "$NLG_TMP/baduser.log"
kill -TERM "$SPID"
finish baduser 10
kill "$RPID"

# ---- 4. not there yet, then closing at once, then garbage: retries, then all --------
N=5000
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sender garbage N=$N BURST=50 NLGT_FWD="{port=$PORT, retry_min='20ms', retry_max='100ms', size=100}"
sleep 0.7
nlg_alive "$SPID" || nlg_fail "garbage: nlgate died while the receiver was away: $(tail -3 "$NLG_TMP/garbage.log")"
grep -q "connect: Connection refused; retrying" "$NLG_TMP/garbage.log" || nlg_fail "garbage: no refused connect logged"
nlg_spawn RPID "$PY" "$D/receiver.py" --port "$PORT" --out "$NLG_TMP/garbage.out" --close 2 --garbage 5
finish garbage 60
sum=$(check garbage $N seq) || nlg_fail "garbage: $sum"
nlg_log "garbage: receiver: $sum"
nlg_log "garbage: $(last_stat garbage)"
[ "$(stat_of garbage protocol_errors)" -ge 3 ] || nlg_fail "garbage: protocol errors not counted"
[ "$(stat_of garbage connect_failures)" -ge 3 ] || nlg_fail "garbage: refused connects not counted"
[ "$(stat_of garbage link_failures)" -ge 5 ] || nlg_fail "garbage: broken links not counted"
grep -q "protocol error: the server sent something that is not Forward" "$NLG_TMP/garbage.log" ||
	nlg_fail "garbage: no protocol error logged"
n=$(grep -c "nlgate: forward.*protocol error" "$NLG_TMP/garbage.log")
[ "$n" -le 3 ] || nlg_fail "garbage: the same error logged again and again: $n lines"
kill "$RPID"

# ---- 5. acks that do not come: resent after the ack timeout --------------------------
N=2000
receiver noack --no-ack 1
sender noack N=$N BURST=100 NLGT_FWD="{port=$PORT, ack_timeout='400ms', retry_min='20ms', size=100}"
finish noack 30
sum=$(check noack $N seq) || nlg_fail "noack: $sum"
nlg_log "noack: receiver: $sum; $(last_stat noack)"
[ "$(stat_of noack ack_timeouts)" -ge 1 ] || nlg_fail "noack: no ack timeout counted"
[ "$(stat_of noack resent)" -gt 0 ] || nlg_fail "noack: nothing resent"
grep -q "ack timeout: a message unacknowledged after 400 ms" "$NLG_TMP/noack.log" || nlg_fail "noack: no line"
kill "$RPID"

# ---- 6. a full queue: whole records dropped, counted, announced ----------------------
N=6000
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sender full N=$N BURST=500 PAD=100 END=drained NLGT_FWD="{port=$PORT, tag_prefix='h1', queue='64k', retry_min='300ms', retry_max='300ms', size=100}"
sleep 0.6
nlg_spawn RPID "$PY" "$D/receiver.py" --port "$PORT" --out "$NLG_TMP/full.out"
finish full 30
sum=$(check full $N h1.seq) || nlg_fail "full queue: $sum"
nlg_log "full queue: receiver: $sum; $(last_stat full)"
missed=$(echo "$sum" | sed -n 's/.* missed=\([0-9]*\) .*/\1/p')
[ "$missed" -gt 0 ] || nlg_fail "full queue: nothing dropped: the bound went untested"
[ "$(stat_of full dropped)" = "$missed" ] || nlg_fail "full queue: dropped $(stat_of full dropped), announced $missed"
[ $(($(stat_of full queued) + missed)) = $N ] || nlg_fail "full queue: queued + dropped is not $N"
kill "$RPID"

# ... and without acks (the gap goes in once writes make room)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sender fullnoack N=$N BURST=500 PAD=100 END=drained NLGT_FWD="{port=$PORT, ack=false, queue='64k', retry_min='300ms', retry_max='300ms', size=100}"
sleep 0.6
nlg_spawn RPID "$PY" "$D/receiver.py" --port "$PORT" --out "$NLG_TMP/fullnoack.out"
finish fullnoack 30
sleep 0.3 # written is not yet read
sum=$(check fullnoack $N seq) || nlg_fail "full queue without acks: $sum"
nlg_log "full queue, no acks: receiver: $sum"
missed=$(echo "$sum" | sed -n 's/.* missed=\([0-9]*\) .*/\1/p')
[ "$missed" -gt 0 ] && [ "$(stat_of fullnoack dropped)" = "$missed" ] ||
	nlg_fail "full queue without acks: dropped $(stat_of fullnoack dropped), announced $missed"
kill "$RPID"

# ---- 7. a receiver that stops (SIGSTOP): noticed by the ack timeout, then resumes ----
N=3000
receiver stopped
sender stopped N=$N BURST=20 NLGT_FWD="{port=$PORT, ack_timeout='500ms', connect_timeout='500ms', retry_min='50ms', retry_max='200ms', size=50, flush='10ms'}"
nlg_wait_for 10 "the first acks" grep -q '"ack"' "$NLG_TMP/stopped.out"
kill -STOP "$RPID"
nlg_wait_for 10 "the stopped receiver noticed" grep -q "ack timeout" "$NLG_TMP/stopped.log"
sleep 0.5
kill -CONT "$RPID"
finish stopped 60
sum=$(check stopped $N seq) || nlg_fail "stopped: $sum"
nlg_log "stopped: receiver: $sum; $(last_stat stopped)"
kill "$RPID"

# ---- 8. from the command line: watch --to forward://, options in the URL -----------
receiver cli --key k
timeout -s INT 3 "$NLGATE" watch sockets --every 200ms \
	--to "forward://127.0.0.1:$PORT?shared_key=k&tag_prefix=host1" >/dev/null 2>"$NLG_TMP/cli.log"
grep -Eq "closed: ([0-9]+) records queued, \1 acknowledged, 0 resent, 0 dropped" "$NLG_TMP/cli.log" ||
	nlg_fail "watch --to forward://: $(cat "$NLG_TMP/cli.log")"
grep -q '"tag":"host1.sock"' "$NLG_TMP/cli.out" || nlg_fail "watch --to forward://: no host1.sock records"
nlg_log "watch --to forward://: $(grep closed: "$NLG_TMP/cli.log" | cut -d' ' -f3-)"
kill "$RPID"

# ---- 9. bad options --------------------------------------------------------------
bad() { # LUA-OPTIONS EXPECTED-MESSAGE
	echo "local gw = require 'nlgate'; gw.forward $1" >"$NLG_TMP/bad.lua"
	"$NLGATE" run "$NLG_TMP/bad.lua" 2>"$NLG_TMP/bad.log" && nlg_fail "bad option $1 accepted"
	grep -q "$2" "$NLG_TMP/bad.log" || nlg_fail "bad option $1: want '$2': $(cat "$NLG_TMP/bad.log")"
}
bad "{port = 0}" "gw.forward: bad port '0'"
bad "{prot = 1}" "unknown option 'prot'"
bad "{host = 'no.such.host.invalid'}" "cannot resolve 'no.such.host.invalid'"
bad "{username = 'u'}" "username and password go together"
bad "{retry_min = '5s', retry_max = '1s'}" "retry_min (5000 ms) is over retry_max (1000 ms)"
bad "{flush = 'soon'}" "bad flush 'soon'"
nlg_log "ok"
