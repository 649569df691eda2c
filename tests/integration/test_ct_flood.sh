#!/bin/bash
# Conntrack under flood: >= 100,000 UDP flows from trafgen, then `conntrack -F`.
# nlgate must deliver a real DESTROY for every flow that existed (by conntrack
# id), with a roomy buffer and with a tiny one (the kernel holds and re-sends
# DESTROY events: reliable mode). Negative controls prove the flood was real:
# `conntrack -E` with the same buffer loses events, and nlgate with reliable
# mode off and the tiny buffer loses some (counted, then repaired by resync).
. "$(dirname "$0")/ct/flood.sh"
ct_need_root
[ -x "$NLGATE" ] || { echo "NLGATE not set" >&2; exit 1; }
FLOWS=${CT_FLOWS:-150000}
trap ct_cleanup EXIT
ct_setup || exit 1
CHECK=$(dirname "$0")/ct/ctcheck.py
fail=0

# run NAME MODE NLGATE-OPTIONS...: one flood with nlgate watching.
run() {
	local name=$1 mode=$2 ev
	shift 2
	ct_spawn "$CT_DIR/$name.jsonl" "$CT_DIR/$name.err" "$NLGATE" watch conntrack --stats -q "$@"
	local pid=$CT_PID
	ct_wait grep -q watching "$CT_DIR/$name.err" || return 1
	if [ "$name" = roomy ]; then
		# the negative control on the same flood: conntrack -E, same buffer
		ip netns exec "$CT_NS" conntrack -E -e DESTROY -o id -b 268435456 \
			>"$CT_DIR/ctE.out" 2>"$CT_DIR/ctE.err" &
		CTE=$!
		ct_track $CTE
		sleep 0.5 # conntrack -E prints nothing when it is ready
	fi
	ct_flood "$FLOWS"
	ct_wait ct_settled || return 1
	ct_keys >"$CT_DIR/$name.ids"
	echo "$name: $(wc -l <"$CT_DIR/$name.ids") flows in the table"
	ct_flush
	# state, not time: the table and the dying list (events the kernel still
	# holds for a reliable listener) are empty
	ct_wait ct_empty || return 1
	kill -TERM "$pid"
	wait "$pid"
	if [ "$name" = roomy ]; then
		kill -TERM $CTE
		wait $CTE
		local got
		got=$(ct_keyof <"$CT_DIR/ctE.out" | sort -u | comm -12 - "$CT_DIR/$name.ids" | wc -l)
		echo "conntrack -E (same 256 MiB buffer): $got of $(wc -l <"$CT_DIR/$name.ids") destroys"
		if [ "$got" -ge "$(wc -l <"$CT_DIR/$name.ids")" ]; then
			echo "FAIL: conntrack -E lost nothing: the flood was too gentle to prove anything"
			fail=1
		fi
	fi
	if ! /usr/bin/python3 "$CHECK" "$CT_DIR/$name.jsonl" "$CT_DIR/$name.ids" "$CT_DIR/$name.err" "$mode"; then
		echo "FAIL: $name ($mode)"
		tail -3 "$CT_DIR/$name.err"
		fail=1
	fi
	rm -f "$CT_DIR/$name.jsonl"
}

run roomy exact || fail=1
run tiny destroy --rcvbuf 262144 || fail=1
run unreliable lossy --rcvbuf 262144 --reliable off || fail=1
[ $fail = 0 ] && echo PASS
exit $fail
