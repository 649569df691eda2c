#!/bin/bash
# Resync: stall nlgate (SIGSTOP) while flows come and go until the kernel has
# certainly dropped events for it (the Drops column of /proc/net/netlink), let
# it go, and require that its view of live flows becomes exactly what
# `conntrack -L` lists, with the loss counted. Run with DESTROY reliable (the
# default) and with reliability off (the view then needs synthetic DESTROYs).
# In reliable mode the DESTROYs the kernel held (its dying list) arrive after
# the resync: no flow may then get a synthetic DESTROY besides the real one.
# Flows are compared by (id, original tuple): ids alone collide (flood.sh).
. "$(dirname "$0")/ct/flood.sh"
ct_need_root
[ -x "$NLGATE" ] || { echo "NLGATE not set" >&2; exit 1; }
trap ct_cleanup EXIT
ct_setup || exit 1
VIEW=$(dirname "$0")/ct/ctview.py
fail=0

dropped() { ct_in awk 'NR > 1 && $2 == 12 && $9 > 0 { n++ } END { exit n ? 0 : 1 }' /proc/net/netlink; }
in_sync() {
	ct_keys >"$CT_DIR/kernel.ids"
	/usr/bin/python3 "$VIEW" "$CT_DIR/view.jsonl" | sort >"$CT_DIR/view.ids"
	cmp -s "$CT_DIR/kernel.ids" "$CT_DIR/view.ids"
}

for mode in destroy off; do
	ct_flush
	ct_spawn "$CT_DIR/view.jsonl" "$CT_DIR/view.err" "$NLGATE" watch conntrack --stats -q \
		--rcvbuf 65536 --reliable "$mode"
	pid=$CT_PID
	ct_wait grep -q watching "$CT_DIR/view.err" || exit 1
	ct_flood 5000
	ct_wait ct_settled || exit 1
	kill -STOP $pid
	ct_flush # 5000 DESTROYs nobody reads
	ct_flood 20000
	ct_wait dropped || { echo "FAIL: no drop while stalled"; exit 1; }
	kill -CONT $pid
	if ! CT_TRIES=60 ct_wait in_sync; then
		echo "FAIL ($mode): view differs from conntrack -L:"
		diff "$CT_DIR/kernel.ids" "$CT_DIR/view.ids" | head -5
		fail=1
	fi
	# the held DESTROYs have all been delivered, and nlgate has read them
	ct_wait ct_empty_dying || fail=1
	ct_wait in_sync || fail=1
	kill -TERM $pid
	wait $pid
	stats=$(grep '^{' "$CT_DIR/view.err")
	echo "$mode: kernel $(wc -l <"$CT_DIR/kernel.ids") flows, view $(wc -l <"$CT_DIR/view.ids"): $stats"
	case "$stats" in
	*'"lost":0,'* | *'"resyncs":0,'*)
		echo "FAIL ($mode): the loss was not counted or not repaired by a resync"
		fail=1
		;;
	esac
	double=$(/usr/bin/python3 "$VIEW" "$CT_DIR/view.jsonl" --double | wc -l)
	if [ $mode = destroy ] && [ "$double" != 0 ]; then
		echo "FAIL (destroy): $double flows got a synthetic and a real DESTROY"
		fail=1
	fi
	if [ $mode = off ] && ! grep -q '"synthetic":true' "$CT_DIR/view.jsonl"; then
		echo "FAIL (off): no synthetic DESTROY for flows flushed while stalled"
		fail=1
	fi
done
[ $fail = 0 ] && echo PASS
exit $fail
