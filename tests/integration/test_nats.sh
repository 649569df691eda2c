#!/usr/bin/env bash
# The NATS output end to end, against a nats-server -js this test starts
# on free loopback ports with a store in its temporary directory; streams
# are made and read back by nats/natsctl.py, a client written from the
# protocol (not libnats), frames decoded by python3-msgpack:
#  1. JetStream: N records from a script that stops right after its last
#     send, so the exit drain awaits the acknowledgements: the stream holds
#     exactly N (the monitoring endpoint's count), and reading every message
#     back finds each record once and each Nats-Msg-Id once.
#  2. batch = 50: the same, in about N/50 messages (Nlgate-Records matches
#     the frames in each).
#  3. The server killed with SIGKILL mid-stream and restarted on its store:
#     still exactly N records, no duplicate, no gap; nlgate reconnected and
#     what it resent after the reconnect was de-duplicated by the server.
#  4. The server stopped (SIGSTOP) for longer than ack_wait mid-stream: the
#     unacknowledged messages are resent with their ids while the first
#     copies are still queued in the server, which stores one of each:
#     exactly N again, and duplicates counted.
#  5. Core NATS (jetstream = false): a subscriber receives all N.
# Skips when nats-server is missing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats/lib.sh"
nlg_require_nlgate
nlg_tmpdir
nats_require
nats_start

# check STREAM N: the stream holds exactly N records, each once.
check_stream() {
	local name=$1 n=$2 line jsz
	jsz=$(nats_jsz_messages "$name")
	line=$(natsctl check "$name" "$n") || nlg_fail "natsctl check $name: $line"
	nlg_log "$name: monitoring says $jsz messages; read back: $line"
	[ "$(nats_field "$line" unique)" = "$n" ] || nlg_fail "$name: $line (want $n records)"
	[ "$(nats_field "$line" records)" = "$n" ] || nlg_fail "$name: duplicates: $line"
	[ "$(nats_field "$line" problems)" = 0 ] || nlg_fail "$name: $line"
	[ "$jsz" = "$(nats_field "$line" messages)" ] ||
		nlg_fail "$name: the monitoring endpoint says $jsz messages, the stream $line"
}

# ---- 1. JetStream, drained at exit ----------------------------------------------
N=20000
natsctl add-stream ONE 'one.>' >/dev/null || nlg_fail "cannot create stream ONE"
NATS_URL=$NATS_URL NATS_SUBJECT='one.{tag}' N=$N STOP=now \
	timeout 60 "$NLGATE" run --drain 20s "$NATS_SEND" 2>"$NLG_TMP/one.log" ||
	nlg_fail "nlgate failed (rc $?): $(cat "$NLG_TMP/one.log")"
grep -q "not delivered" "$NLG_TMP/one.log" && nlg_fail "the drain gave up: $(cat "$NLG_TMP/one.log")"
check_stream ONE $N
[ "$(nats_jsz_messages ONE)" = "$N" ] || nlg_fail "ONE holds $(nats_jsz_messages ONE) messages, want $N"

# ---- 2. batches -------------------------------------------------------------------
natsctl add-stream TWO 'two.>' >/dev/null || nlg_fail "cannot create stream TWO"
NATS_URL=$NATS_URL NATS_SUBJECT='two.{tag}' NATS_BATCH=50 N=$N \
	timeout 60 "$NLGATE" run "$NATS_SEND" 2>"$NLG_TMP/two.log" ||
	nlg_fail "nlgate failed (rc $?): $(cat "$NLG_TMP/two.log")"
nlg_log "batch 50: $(grep -o 'STATS.*' "$NLG_TMP/two.log")"
check_stream TWO $N
msgs=$(nats_jsz_messages TWO)
[ "$msgs" -ge $((N / 50)) ] && [ "$msgs" -le $((N / 10)) ] ||
	nlg_fail "batch 50: $N records in $msgs messages"

# ---- 3. kill -9 and restart mid-stream ------------------------------------------
N=60000
natsctl add-stream THREE 'three.>' >/dev/null || nlg_fail "cannot create stream THREE"
NATS_URL=$NATS_URL NATS_SUBJECT='three.{tag}' N=$N RATE=10000 NATS_QUEUE=64M \
	nlg_spawn gwpid "$NLGATE" run "$NATS_SEND" 2>"$NLG_TMP/three.log"
stored() { [ "$(nats_jsz_messages THREE)" -ge "$1" ] 2>/dev/null; }
nlg_wait_for 30 "15000 records stored" stored 15000
nlg_log "stream THREE: $(natsctl info THREE); killing the server (SIGKILL)"
nats_kill9
sleep 1
nats_start
nlg_wait_exit "$gwpid" 90 || nlg_fail "nlgate did not finish (rc $?): $(cat "$NLG_TMP/three.log")"
stats=$(grep -o 'STATS.*' "$NLG_TMP/three.log") || nlg_fail "no STATS: $(cat "$NLG_TMP/three.log")"
nlg_log "kill -9: $stats"
[ "$(nats_field "$stats" reconnects)" -ge 1 ] || nlg_fail "no reconnect counted: $stats"
[ "$(nats_field "$stats" dropped)" = 0 ] || nlg_fail "records dropped: $stats"
[ "$(nats_field "$stats" acked)" = "$N" ] || nlg_fail "not every record acknowledged: $stats"
grep -q "reconnected to" "$NLG_TMP/three.log" || nlg_fail "no reconnect logged: $(cat "$NLG_TMP/three.log")"
check_stream THREE $N

# ---- 4. a server that stops answering for a while -----------------------------
N=40000
natsctl add-stream FOUR 'four.>' >/dev/null || nlg_fail "cannot create stream FOUR"
NATS_URL=$NATS_URL NATS_SUBJECT='four.{tag}' N=$N RATE=10000 NATS_QUEUE=64M \
	nlg_spawn gwpid "$NLGATE" run "$NATS_SEND" 2>"$NLG_TMP/four.log"
stored() { [ "$(nats_jsz_messages FOUR)" -ge "$1" ] 2>/dev/null; }
nlg_wait_for 30 "10000 records stored" stored 10000
kill -STOP "$NATS_PID"
sleep 3 # ack_wait is 2 s in send.lua
kill -CONT "$NATS_PID"
nlg_wait_exit "$gwpid" 90 || nlg_fail "nlgate did not finish (rc $?): $(cat "$NLG_TMP/four.log")"
stats=$(grep -o 'STATS.*' "$NLG_TMP/four.log") || nlg_fail "no STATS: $(cat "$NLG_TMP/four.log")"
nlg_log "stopped 3 s: $stats"
[ "$(nats_field "$stats" dups)" -ge 1 ] || nlg_fail "no resend was de-duplicated: $stats"
[ "$(nats_field "$stats" acked)" = "$N" ] || nlg_fail "not every record acknowledged: $stats"
check_stream FOUR $N

# ---- 5. core NATS -----------------------------------------------------------------
N=20000
nlg_spawn subpid "$NLG_PY" "$NATSCTL" "$NATS_PORT" sub 'five.>' $N 60 "$NLG_TMP/ready" \
	>"$NLG_TMP/sub.out"
nlg_wait_file "$NLG_TMP/ready" 10 "$subpid"
NATS_URL=$NATS_URL NATS_SUBJECT='five.{tag}' NATS_JS=false N=$N \
	timeout 60 "$NLGATE" run "$NATS_SEND" 2>"$NLG_TMP/five.log" ||
	nlg_fail "nlgate failed (rc $?): $(cat "$NLG_TMP/five.log")"
nlg_wait_exit "$subpid" 60 || nlg_fail "the subscriber failed: $(cat "$NLG_TMP/sub.out")"
nlg_log "core NATS: $(grep -o 'STATS.*' "$NLG_TMP/five.log"); subscriber: $(cat "$NLG_TMP/sub.out")"
[ "$(nats_field "$(cat "$NLG_TMP/sub.out")" unique)" = "$N" ] ||
	nlg_fail "core NATS: the subscriber got $(cat "$NLG_TMP/sub.out"), want $N"
nlg_log "ok"
