#!/bin/bash
# The examples end to end (examples/README.md): every examples/*.lua passes
# `nlgate check`; then (as root) each pipeline with a feed runs under
# `nlgate run` inside its own network namespace and serves a unix feed that
# both example consumers read as real frames, examples/consumer.py (a plain
# python3-msgpack) and example_consumer (examples/consumer.c, msgpack-c).
#  - slow_peers.lua over loopback connections, with a threshold so low that
#    every established peer is slow: each new peer raises alert.slow_rtt;
#  - ct_pressure.lua with conntrack on in the namespace (an nft ct rule) and
#    ABOVE=0: alert.ct_pressure carries the kernel's nf_conntrack_max, which
#    the conntrack source reports.
. "$(dirname "$0")/lib.sh"

# every example pipeline passes `nlgate check` (no privilege needed)
nlg_require_nlgate
nlg_tmpdir
for f in "$NLG_SRC"/examples/*.lua; do
	"$NLGATE" check "$f" >/dev/null 2>"$NLG_TMP/check.err" ||
		nlg_fail "nlgate check $f: $(cat "$NLG_TMP/check.err")"
done

nlg_require_root
nlg_require_cmd nft
nlg_require_msgpack
CONSUMER=${NLGATE_BUILD:-$NLG_SRC/build}/example_consumer
[ -x "$CONSUMER" ] || nlg_fail "no $CONSUMER (the example_consumer target)"
nlg_netns_create NS
EX=$NLG_SRC/examples

# ---- slow peers ------------------------------------------------------------
FEED=$NLG_TMP/slow.sock
nlg_spawn GW ip netns exec "$NS" env FEED="$FEED" SLOW_MS=0.001 EVERY=200ms \
	"$NLGATE" run "$EX/slow_peers.lua" 2>"$NLG_TMP/slow.err"
nlg_wait_socket "$FEED" 10

nlg_spawn PY_OUT sh -c "exec timeout 30 '$NLG_PY' '$EX/consumer.py' '$FEED' --tag alert. --count 1 >'$NLG_TMP/slow.py'"
PY_WAIT=$PY_OUT
nlg_spawn C_OUT sh -c "exec timeout 30 '$CONSUMER' '$FEED' --tag alert. --count 1 >'$NLG_TMP/slow.c'"
C_WAIT=$C_OUT

# A new peer every 300 ms (127.0.0.N), data both ways so the kernel has an RTT:
# each is a new key, so a consumer that connected late still sees an alert.
nlg_spawn PEERS ip netns exec "$NS" "$NLG_PY" -c '
import socket, time
srv = socket.socket(); srv.bind(("0.0.0.0", 0)); srv.listen(64)
port, held = srv.getsockname()[1], []
for n in range(2, 200):
    c = socket.create_connection(("127.0.0.%d" % n, port)); a, _ = srv.accept()
    c.sendall(b"x" * 1000); a.recv(1000); a.sendall(b"y" * 1000); c.recv(1000)
    held += [c, a]
    time.sleep(0.3)
'
nlg_wait_exit "$PY_WAIT" 30 || nlg_fail "consumer.py got no alert: $(tail -n 3 "$NLG_TMP/slow.err")"
nlg_wait_exit "$C_WAIT" 30 || nlg_fail "example_consumer got no alert"
grep -q '"tag": "alert.slow_rtt"' "$NLG_TMP/slow.py" || nlg_fail "consumer.py: $(cat "$NLG_TMP/slow.py")"
grep -q '"state": "firing"' "$NLG_TMP/slow.py" || nlg_fail "consumer.py: not firing: $(cat "$NLG_TMP/slow.py")"
grep -Eq '"peer": "127\.0\.0\.[0-9]+"' "$NLG_TMP/slow.py" || nlg_fail "consumer.py: no peer: $(cat "$NLG_TMP/slow.py")"
grep -Eq '^alert\.slow_rtt [0-9]+\.[0-9]+ \{.*"state"=>"firing"' "$NLG_TMP/slow.c" ||
	nlg_fail "example_consumer: $(cat "$NLG_TMP/slow.c")"
kill -TERM "$GW"
nlg_wait_exit "$GW" 10 || nlg_fail "slow_peers.lua exited $? on SIGTERM: $(tail -n 5 "$NLG_TMP/slow.err")"
grep -q 'error in' "$NLG_TMP/slow.err" && nlg_fail "slow_peers.lua logged errors: $(cat "$NLG_TMP/slow.err")"
kill "$PEERS" 2>/dev/null

# ---- conntrack table pressure ----------------------------------------------
ip netns exec "$NS" nft -f - <<'NFT' || nlg_fail "nft ruleset in $NS"
table inet nlgtest {
	chain out { type filter hook output priority 0; policy accept; ct state new counter; }
}
NFT
FEED=$NLG_TMP/ct.sock
nlg_spawn GW ip netns exec "$NS" env FEED="$FEED" ABOVE=0 CLEAR=0 CHECK=200ms \
	"$NLGATE" run "$EX/ct_pressure.lua" 2>"$NLG_TMP/ct.err"
nlg_wait_socket "$FEED" 10
nlg_spawn PY_OUT sh -c "exec timeout 30 '$NLG_PY' '$EX/consumer.py' '$FEED' --tag alert. --count 1 >'$NLG_TMP/ct.py'"
PY_WAIT=$PY_OUT
nlg_spawn C_OUT sh -c "exec timeout 30 '$CONSUMER' '$FEED' --tag ct.usage --count 1 >'$NLG_TMP/ct.c'"
C_WAIT=$C_OUT
# nf_conntrack_max is host-wide and another test (ct/flood.sh) may change it
# meanwhile: the frames must carry its value from before or after
MAX0=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
# a UDP flow (conntrack keeps it 30 s) once the consumers had time to connect
sleep 0.5
ip netns exec "$NS" "$NLG_PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", ("127.0.0.1", 9))'
nlg_wait_exit "$PY_WAIT" 30 || nlg_fail "consumer.py got no ct_pressure alert: $(tail -n 3 "$NLG_TMP/ct.err")"
nlg_wait_exit "$C_WAIT" 30 || nlg_fail "example_consumer got no ct.usage"
MAX1=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
MAX="($MAX0|$MAX1)"
grep -q '"tag": "alert.ct_pressure"' "$NLG_TMP/ct.py" || nlg_fail "consumer.py: $(cat "$NLG_TMP/ct.py")"
grep -Eq "\"max\": $MAX[,}]" "$NLG_TMP/ct.py" || nlg_fail "consumer.py: max is not $MAX: $(cat "$NLG_TMP/ct.py")"
grep -Eq "^ct\.usage [0-9.]+ \{.*\"max\"=>$MAX[,}]" "$NLG_TMP/ct.c" ||
	nlg_fail "example_consumer: max is not $MAX: $(cat "$NLG_TMP/ct.c")"
kill -TERM "$GW"
nlg_wait_exit "$GW" 10 || nlg_fail "ct_pressure.lua exited $? on SIGTERM: $(tail -n 5 "$NLG_TMP/ct.err")"
grep -q 'error in' "$NLG_TMP/ct.err" && nlg_fail "ct_pressure.lua logged errors: $(cat "$NLG_TMP/ct.err")"
echo "ok: slow_peers and ct_pressure feeds read by consumer.py and example_consumer"
