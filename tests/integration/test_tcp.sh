#!/usr/bin/env bash
# The TCP output (issue 9): every record in order to a collector, across a
# collector that starts late; a consumer that stops reading (bounded memory,
# another output keeps flowing, the gap announced); a peer that vanishes
# (packets dropped in its namespace) noticed within the write timeout, and
# an idle one within the keepalive; listen mode read by `nlgate tail
# tcp://`; bad options, refused and garbage-talking peers.
. "$(dirname "$0")/lib.sh"
nlg_require_nlgate
nlg_require_msgpack
nlg_tmpdir
D=$NLG_SRC/tests/integration/tcp
PY=$NLG_PY

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# run_sender LOG ENV...: nlgate run send.lua in the background; pid in SENDER
run_sender() {
	local log=$1
	shift
	nlg_spawn SENDER env "$@" "$NLGATE" run "$D/send.lua" 2>"$log"
}
last_stat() { grep -o "stats .*" "$1" | tail -1; }

# ---- 1. in order, exactly once, to a collector that starts 1 s late ------------
P=$(free_port)
run_sender "$NLG_TMP/1.log" N=20000 BURST=500 NLGT_TCP="{connect='127.0.0.1:$P'}"
sleep 1
nlg_spawn R1 "$PY" "$D/recv.py" "127.0.0.1:$P" "$NLG_TMP/1.out"
nlg_wait_exit "$SENDER" 30 || nlg_fail "sender did not finish: $(tail -3 "$NLG_TMP/1.log")"
grep -q "Connection refused; reconnecting" "$NLG_TMP/1.log" ||
	nlg_fail "no retry was logged while the collector was down"
nlg_wait_for 10 "20000 records at the collector" \
	sh -c "[ \$($PY $D/check.py $NLG_TMP/1.out count) -ge 20000 ]"
"$PY" "$D/check.py" "$NLG_TMP/1.out" exact 20000 || nlg_fail "late collector"
nlg_log "late collector: $(last_stat "$NLG_TMP/1.log")"

# ---- 2. a consumer that stops reading -------------------------------------------
P=$(free_port)
nlg_spawn R2 "$PY" "$D/recv.py" "127.0.0.1:$P" "$NLG_TMP/2.out" --pause 2000:4
nlg_wait_for 5 "collector 2" sh -c "$PY -c \"import socket; socket.create_connection(('127.0.0.1',$P)).close()\" 2>/dev/null"
FEED=$NLG_TMP/feed.sock
run_sender "$NLG_TMP/2.log" N=200000 BURST=500 PAD=200 HOLD=1 NLGT_FEED="$FEED" \
	NLGT_TCP="{connect='127.0.0.1:$P', queue='256k'}"
nlg_wait_socket "$FEED" 5
"$NLGATE" tail -t seq -n 200000 "$FEED" >"$NLG_TMP/2.feed" &
TAILPID=$!
nlg_wait_exit "$TAILPID" 30 || nlg_fail "the unix feed beside the stalled consumer stopped: $(wc -l <"$NLG_TMP/2.feed") of 200000"
nlg_wait_for 30 "collector 2 to catch up" \
	grep -Eq '"i": 200000[,}]' "$NLG_TMP/2.out"
sleep 0.3 # a stats line after the last send
"$PY" "$D/check.py" "$NLG_TMP/2.out" accounted 200000 || nlg_fail "stalled consumer: $(last_stat "$NLG_TMP/2.log")"
rss=$(last_stat "$NLG_TMP/2.log" | sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p')
# 46 MB went past the stalled consumer; its queue holds 256 KiB. (Not under
# ASan, whose quarantine keeps freed memory.)
ldd "$NLGATE" | grep -q libasan ||
	[ "${rss:-999999}" -lt 32768 ] || nlg_fail "memory not bounded behind a stalled consumer: maxrss ${rss} KiB"
nlg_log "stalled consumer: maxrss ${rss} KiB; $(last_stat "$NLG_TMP/2.log")"
kill -TERM "$SENDER"

# ---- 3. a peer that vanishes ------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null; then
	nlg_netns_create NS
	ip link add nlgt-tcp0 type veth peer name nlgt-tcp1 netns "$NS" || nlg_fail "veth"
	nlg_on_exit "ip link del nlgt-tcp0"
	ip addr add 10.231.77.1/24 dev nlgt-tcp0 && ip link set nlgt-tcp0 up
	ip -n "$NS" addr add 10.231.77.2/24 dev nlgt-tcp1 && ip -n "$NS" link set nlgt-tcp1 up
	nlg_spawn R3 ip netns exec "$NS" "$PY" "$D/recv.py" 10.231.77.2:7001 "$NLG_TMP/3a.out"
	nlg_spawn R4 ip netns exec "$NS" "$PY" "$D/recv.py" 10.231.77.2:7002 "$NLG_TMP/3b.out"
	sleep 0.5
	# busy: always something unacknowledged once the peer is gone
	run_sender "$NLG_TMP/3a.log" N=100000000 BURST=5 HOLD=1 \
		NLGT_TCP="{connect='10.231.77.2:7001', write_timeout='2s', keepalive='2s'}"
	S3=$SENDER
	# idle: connected, sends nothing
	run_sender "$NLG_TMP/3b.log" N=0 HOLD=1 \
		NLGT_TCP="{connect='10.231.77.2:7002', write_timeout='2s', keepalive='2s'}"
	S4=$SENDER
	nlg_wait_for 10 "both connections" sh -c "grep -q _accept $NLG_TMP/3a.out && grep -q _accept $NLG_TMP/3b.out && grep -q 'state=connected' $NLG_TMP/3b.log"
	sleep 1
	ip netns exec "$NS" nft "add table inet nlgt; \
		add chain inet nlgt in { type filter hook input priority 0; policy drop; }; \
		add chain inet nlgt out { type filter hook output priority 0; policy drop; }" ||
		nlg_fail "nft drop"
	t0=$SECONDS
	nlg_wait_for 8 "the busy sender to notice the dead peer (write_timeout 2s)" \
		grep -q "10.231.77.2:7001: Connection timed out" "$NLG_TMP/3a.log"
	t1=$SECONDS
	nlg_wait_for 12 "the idle sender to notice the dead peer (keepalive 2s, 3 probes)" \
		grep -q "10.231.77.2:7002: Connection timed out" "$NLG_TMP/3b.log"
	t2=$SECONDS
	nlg_log "dead peer noticed: busy after ~$((t1 - t0)) s, idle after ~$((t2 - t0)) s"
	kill -TERM "$S3" "$S4"
	nlg_wait_exit "$S3" 10 >/dev/null
	nlg_wait_exit "$S4" 10 >/dev/null
	grep -q "records not delivered after" "$NLG_TMP/3a.log" ||
		nlg_fail "the exit did not say what could not be delivered: $(tail -2 "$NLG_TMP/3a.log")"
else
	nlg_log "skipping the vanishing peer (needs root and nft)"
fi

# ---- 4. listen mode, read with nlgate tail tcp:// ----------------------------------
P=$(free_port)
run_sender "$NLG_TMP/4.log" N=1000000 BURST=50 HOLD=1 NLGT_TCP="{listen=':$P'}"
nlg_wait_for 5 "the listener" sh -c "$PY -c \"import socket; socket.create_connection(('127.0.0.1',$P)).close()\" 2>/dev/null"
timeout 10 "$NLGATE" tail -n 500 "tcp://127.0.0.1:$P" >"$NLG_TMP/4.out" || nlg_fail "tail tcp:// failed"
[ "$(wc -l <"$NLG_TMP/4.out")" -eq 500 ] || nlg_fail "tail tcp:// printed $(wc -l <"$NLG_TMP/4.out") lines, want 500"
"$PY" - "$NLG_TMP/4.out" <<-'PYEOF' || nlg_fail "listen mode stream"
	import json, sys
	i = [json.loads(l)["record"]["i"] for l in open(sys.argv[1])]
	assert i == list(range(i[0], i[0] + 500)), "not consecutive"
PYEOF
kill -TERM "$SENDER"

# ---- 5. bad options and misbehaving peers ---------------------------------------
bad() { # bad OPTS EXPECTED-MESSAGE
	local out
	out=$(NLGT_TCP="$1" N=1 "$NLGATE" run "$D/send.lua" 2>&1) && nlg_fail "gw.tcp$1 was accepted"
	grep -q "$2" <<<"$out" || nlg_fail "gw.tcp$1: want '$2', got: $out"
}
bad "{}" "give one of connect"
bad "{connect='127.0.0.1:1', listen=':2'}" "give one of connect"
bad "{connect='127.0.0.1'}" "want host:port"
bad "{connect='127.0.0.1:99999'}" "bad port"
bad "{connect='no-such-host.invalid:80'}" "cannot resolve"
bad "{connect='127.0.0.1:1', queue='1'}" "bad queue"
bad "{connect='127.0.0.1:1', bogus=1}" "bogus"

P=$(free_port)
nlg_spawn R5 "$PY" "$D/recv.py" "127.0.0.1:$P" "$NLG_TMP/5.out" --close-first 3 --garbage
sleep 0.3
run_sender "$NLG_TMP/5.log" N=5000 NLGT_TCP="{connect='127.0.0.1:$P', retry_min='10ms', retry_max='50ms'}"
nlg_wait_exit "$SENDER" 30 || nlg_fail "sender 5 did not finish: $(tail -3 "$NLG_TMP/5.log")"
last_stat "$NLG_TMP/5.log" | grep -Eq "reconnects=[3-9]" ||
	nlg_fail "connections closed at once were not counted as reconnects: $(last_stat "$NLG_TMP/5.log")"
nlg_wait_for 10 "5000 records past the closing, garbage-talking collector" \
	grep -Eq '"i": 5000[,}]' "$NLG_TMP/5.out"
"$PY" "$D/check.py" "$NLG_TMP/5.out" tail 5000 || nlg_fail "misbehaving collector"
nlg_log "ok"
