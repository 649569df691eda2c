# Shared helpers for the integration tests: skip rules, where nlgate is,
# network namespaces and background processes that a trap cleans up even on
# failure, and waiting on state instead of sleeping.
# Use: . "$(dirname "$0")/lib.sh" at the top of a test_*.sh (bash).

set -u
set -o pipefail

NLG_SRC=${NLGATE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
NLGATE=${NLGATE:-$NLG_SRC/build/nlgate}
# python3 on PATH may lack the Debian modules; python3-msgpack is for this one.
NLG_PY=/usr/bin/python3
NLG_TEST=$(basename "$0" .sh)

nlg_log() { echo "[$NLG_TEST] $*" >&2; }
nlg_skip() {
	echo "SKIP [$NLG_TEST]: $*" >&2
	exit 77
}
nlg_fail() {
	echo "FAIL [$NLG_TEST]: $*" >&2
	exit 1
}

# ---- cleanup: a stack of shell commands run in reverse order on any exit ----
NLG_CLEANUP=()
nlg_on_exit() { NLG_CLEANUP+=("$*"); }
_nlg_cleanup() {
	local rc=$? i
	trap - EXIT
	set +e
	for ((i = ${#NLG_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${NLG_CLEANUP[i]}" >/dev/null 2>&1
	done
	exit "$rc"
}
trap _nlg_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- requirements -------------------------------------------------------------
nlg_require_root() {
	[ "$(id -u)" -eq 0 ] || nlg_skip "needs root (creates network namespaces); run as root"
	command -v ip >/dev/null || nlg_skip "needs ip (iproute2)"
}
nlg_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || nlg_skip "needs $c"
	done
}
nlg_require_nlgate() {
	[ -x "$NLGATE" ] || nlg_fail "no nlgate binary at $NLGATE (set NLGATE, or make build)"
}
nlg_require_msgpack() {
	"$NLG_PY" -c 'import msgpack' 2>/dev/null ||
		nlg_skip "needs $NLG_PY with msgpack (apt-get install python3-msgpack)"
}

# ---- temporary directory --------------------------------------------------------
# nlg_tmpdir: sets NLG_TMP to a fresh directory removed on exit.
nlg_tmpdir() {
	NLG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/nlgt-$NLG_TEST.XXXXXX") || nlg_fail "mktemp"
	nlg_on_exit "rm -rf '$NLG_TMP'"
}

# ---- network namespaces ---------------------------------------------------------
# nlg_netns_create VAR: a fresh namespace with lo up, its name stored in VAR.
# On exit every process still inside it is killed, then it is deleted.
nlg_netns_create() {
	local var=$1 name
	name="nlgt-${NLG_TEST#test_}-$$-$RANDOM"
	name=${name//_/-}
	ip netns add "$name" || nlg_fail "ip netns add $name"
	nlg_on_exit "nlg_netns_destroy '$name'"
	ip -n "$name" link set lo up || nlg_fail "lo up in $name"
	printf -v "$var" %s "$name"
}
nlg_netns_destroy() {
	local pids
	pids=$(ip netns pids "$1" 2>/dev/null)
	# only processes inside our own namespace: they are ours
	[ -n "$pids" ] && kill -9 $pids 2>/dev/null
	ip netns del "$1" 2>/dev/null
}

# ---- background processes -------------------------------------------------------
# nlg_spawn VAR cmd...: run cmd in the background, its pid in VAR; killed on exit.
nlg_spawn() {
	local var=$1
	shift
	"$@" &
	local pid=$!
	nlg_on_exit "kill $pid; sleep 0.1; kill -9 $pid"
	printf -v "$var" %s "$pid"
}
nlg_alive() { kill -0 "$1" 2>/dev/null; }

# nlg_wait_exit PID SECONDS: wait for PID (a child of this shell) to end; its
# exit status is the return value, 124 on timeout.
nlg_wait_exit() {
	local pid=$1 secs=$2 deadline
	deadline=$((SECONDS + secs))
	while nlg_alive "$pid"; do
		((SECONDS < deadline)) || return 124
		sleep 0.05
	done
	wait "$pid"
}

# ---- waiting on state -----------------------------------------------------------
# nlg_wait_for SECONDS DESCRIPTION cmd...: poll cmd until it succeeds; fail with
# DESCRIPTION when it has not within SECONDS.
nlg_wait_for() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@"; do
		((SECONDS < deadline)) || nlg_fail "timed out after ${secs}s waiting for $what"
		sleep 0.05
	done
}
# nlg_wait_file FILE SECONDS [PID]: wait for FILE to exist (non-empty); when PID
# is given and exits first, fail at once instead of waiting out the timeout.
nlg_wait_file() {
	local f=$1 secs=$2 pid=${3:-} deadline
	deadline=$((SECONDS + secs))
	until [ -s "$f" ]; do
		[ -z "$pid" ] || nlg_alive "$pid" || nlg_fail "process $pid exited before writing $f"
		((SECONDS < deadline)) || nlg_fail "timed out after ${secs}s waiting for $f"
		sleep 0.05
	done
}
nlg_wait_socket() { nlg_wait_for "$2" "unix socket $1" test -S "$1"; }
