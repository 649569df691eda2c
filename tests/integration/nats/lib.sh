# Helpers for the NATS output's tests, on top of ../lib.sh: a nats-server
# with JetStream on free loopback ports and a store in the test's temporary
# directory, killed on exit; natsctl.py (a client written from the protocol)
# to make streams and read them back.
# Use: . "$(dirname "$0")/nats/lib.sh" after ../lib.sh; nlg_tmpdir, then nats_require.

NATSCTL="$NLG_SRC/tests/integration/nats/natsctl.py"
NATS_SEND="$NLG_SRC/tests/integration/nats/send.lua"

nats_require() {
	command -v nats-server >/dev/null || nlg_skip "needs nats-server (apt-get install nats-server)"
	nlg_require_msgpack
	printf 'local gw = require "nlgate"\ngw.nats { url = "nats://127.0.0.1:9" }\ngw.stop()\n' \
		>"$NLG_TMP/probe.lua"
	case $("$NLGATE" run --drain 0 "$NLG_TMP/probe.lua" 2>&1) in
	*"built without NATS"*) nlg_skip "nlgate was built without NATS support (libnats-dev)" ;;
	esac
}

# A free TCP port on loopback (the kernel's pick, released at once).
nats_free_port() {
	"$NLG_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nats_start: NATS_PORT, NATS_MPORT (monitoring) and NATS_STORE are set on
# the first call and kept, so a restart finds its store again; NATS_PID.
nats_start() {
	NATS_PORT=${NATS_PORT:-$(nats_free_port)}
	NATS_MPORT=${NATS_MPORT:-$(nats_free_port)}
	NATS_STORE=${NATS_STORE:-$NLG_TMP/store}
	NATS_URL="nats://127.0.0.1:$NATS_PORT"
	nlg_spawn NATS_PID nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MPORT" \
		-sd "$NATS_STORE" -l "$NLG_TMP/nats-server.log"
	nlg_wait_for 10 "nats-server on port $NATS_PORT" nats_answers
}
nats_answers() {
	"$NLG_PY" - "$NATS_PORT" <<'PY' 2>/dev/null
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
PY
}
nats_kill9() {
	kill -9 "$NATS_PID" 2>/dev/null
	wait "$NATS_PID" 2>/dev/null
}

natsctl() { "$NLG_PY" "$NATSCTL" "$NATS_PORT" "$@"; }

# The stream's message count from the monitoring endpoint (/jsz).
nats_jsz_messages() {
	"$NLG_PY" - "$NATS_MPORT" "$1" <<'PY'
import json, sys, urllib.request
j = json.load(urllib.request.urlopen("http://127.0.0.1:%s/jsz?streams=1" % sys.argv[1], timeout=5))
for acc in j.get("account_details", []):
    for st in acc.get("stream_detail", []):
        if st["name"] == sys.argv[2]:
            print(st["state"]["messages"])
            sys.exit(0)
print("none")
PY
}

# A field of check's summary line: nats_field LINE NAME.
nats_field() { sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" <<<"$1"; }
