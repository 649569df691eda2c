#!/bin/bash
# nlgate capture against tcpdump (and tshark): known traffic between two
# namespaces over a veth pair, captured live on A's end by
# `nlgate capture --flows` and by `tcpdump -w` at the same time.
#
#   ns A  nlgfa 10.98.0.1/24 fd98::1/64 ══ veth ══ nlgfb 10.98.0.2/24 fd98::2/64  ns B
#         client                                    server: TCP 5001, UDP echo 5353, 6000
#         captures: nlgate ×10, tcpdump ×10         (raw VLAN frames from both ends)
#
# Traffic (flows/traffic.py, which writes down what it made): TCP
# connections of known sizes each way (IPv4, IPv6; FIN both ways), UDP
# echoes, 4000-byte UDP datagrams that leave as fragments (IPv4, IPv6),
# and VLAN 42 frames made by hand with AF_PACKET (UDP v4/v6, a whole TCP
# connection, a flow with the same addresses and ports as an untagged one,
# and a one-way flow from A's end). By hand, because this kernel may lack
# 802.1Q (CONFIG_VLAN_8021Q: no vethX.42 devices). Tagged frames that reach
# A's receive path have their tag moved into metadata by the kernel; those
# sent from A's end keep it in the frame on A's transmit tap (traffic.py
# says why only one flow goes that way). No ARP or ND (permanent
# neighbours), no link-local addresses: the only frames are the ones made.
#
# Checks (flows/compare.py):
#  1. the pcap holds what was made: per flow the payload bytes each way, the
#     datagrams or fragments, SYN/ACK/FIN each way for TCP
#  2. per flow (proto, endpoints in either order, vlan) nlgate's live records
#     and `nlgate capture --flows -r pcap` equal a flow count of the pcap done
#     by a small reader of its own: packets, bytes, each way, TCP flags,
#     end_reason (fin for TCP), first/last time (exact from the file); later
#     fragments count in their datagram's flow; and tshark's `-z conv,tcp`,
#     `conv,udp` tables agree (if tshark is installed)
#  3. tcpdump filters on the pcap: `nlgate capture -r pcap EXPR` passes the
#     packets `tcpdump -r pcap EXPR` passes, the same timestamps in order
#  4. the same filters live: nlgate and tcpdump pass as many packets
. "$(dirname "$0")/lib.sh"

nlg_require_root
nlg_require_cmd tcpdump python3
nlg_require_nlgate
nlg_tmpdir
# NLGT_KEEP=DIR: keep the captures and outputs there (debugging)
[ -z "${NLGT_KEEP:-}" ] || nlg_on_exit "rm -rf '$NLGT_KEEP'; cp -a '$NLG_TMP' '$NLGT_KEEP'"
HELP=$NLG_SRC/tests/integration/flows
HAVE_TSHARK=1
command -v tshark >/dev/null || HAVE_TSHARK=0

FILTERS=(
	"tcp"
	"udp and port 5353"
	"vlan 42"
	"ip6"
	"tcp[tcpflags] & tcp-syn != 0"
	"ip[6:2] & 0x1fff != 0 or ip[6] & 0x20 != 0"
	"ip6[6] == 44" # IPv6 fragments
	"ip6 and udp"
	"udp and not vlan" # (after: "vlan" moves the offsets of what follows it)
)

# ---- the namespaces -----------------------------------------------------------
NSA=nlgflow-a-$$
NSB=nlgflow-b-$$
for ns in "$NSA" "$NSB"; do
	ip netns add "$ns" || nlg_fail "ip netns add $ns"
	nlg_on_exit "nlg_netns_destroy $ns"
	ip -n "$ns" link set lo up || nlg_fail "lo up in $ns"
done
IFA=nlgfa
IFB=nlgfb
ip link add "$IFA" netns "$NSA" type veth peer name "$IFB" netns "$NSB" ||
	nlg_fail "veth pair"
for side in "$NSA $IFA 1" "$NSB $IFB 2"; do
	set -- $side
	# no link-local address: no DAD, router solicitations or their MLD
	ip -n "$1" link set "$2" addrgenmode none mtu 1500 up || nlg_fail "$2 up"
	ip -n "$1" addr add "10.98.0.$3/24" dev "$2" || nlg_fail "address on $2"
	ip -n "$1" addr add "fd98::$3/64" dev "$2" nodad || nlg_fail "IPv6 address on $2"
done
mac() { ip -n "$1" -br link show dev "$2" | awk '{print $3}'; }
MACA=$(mac "$NSA" "$IFA")
MACB=$(mac "$NSB" "$IFB")
ip -n "$NSA" neigh replace 10.98.0.2 lladdr "$MACB" dev "$IFA" nud permanent &&
	ip -n "$NSA" neigh replace fd98::2 lladdr "$MACB" dev "$IFA" nud permanent &&
	ip -n "$NSB" neigh replace 10.98.0.1 lladdr "$MACA" dev "$IFB" nud permanent &&
	ip -n "$NSB" neigh replace fd98::1 lladdr "$MACA" dev "$IFB" nud permanent ||
	nlg_fail "permanent neighbours"
IFINDEX=$(ip netns exec "$NSA" cat "/sys/class/net/$IFA/ifindex")

# The address's MLD reports (sent on joining its solicited-node group, a
# few times in the first second) must be over before the captures begin.
quiet() {
	local n
	n=$(ip netns exec "$NSA" timeout 1.2 tcpdump -i "$IFA" -n -c 1 2>/dev/null | grep -c .)
	[ "$n" -eq 0 ]
}
nlg_wait_for 20 "$IFA to fall quiet" quiet

# ---- the captures ---------------------------------------------------------------
# listening: tcpdump says so once its filter is set, nlgate once its rings are
ready() { # FILE WORD PID
	nlg_alive "$3" || nlg_fail "capture $3 exited early: $(head -c 2000 "$1")"
	grep -q "$2" "$1" 2>/dev/null
}
CAPS=()     # nlgate pids
NLG_ERRS=() # and their stderr
TDS=()      # tcpdump pids
start_tcpdump() { # NAME [FILTER]
	# --immediate-mode: no packet waits in a ring block when it is stopped;
	# it makes a ring of snaplen-sized frames, hence -B (KiB): a burst of
	# 64 KiB GSO segments must not overrun it
	ip netns exec "$NSA" tcpdump -i "$IFA" -s 0 -B 32768 -U -n --immediate-mode \
		--time-stamp-precision=nano \
		-w "$NLG_TMP/$1.pcap" ${2:+"$2"} 2>"$NLG_TMP/$1.tcpdump.err" &
	local pid=$!
	nlg_on_exit "kill $pid"
	TDS+=("$pid")
	nlg_wait_for 20 "tcpdump $1 to listen" ready "$NLG_TMP/$1.tcpdump.err" "listening on" "$pid"
}
start_nlgate() { # NAME ARGS...
	local name=$1
	shift
	"$NLGATE" capture --fanout hash -i "$IFA" -n "$NSA" "$@" >"$NLG_TMP/$name.json" \
		2>"$NLG_TMP/$name.err" &
	local pid=$!
	nlg_on_exit "kill $pid"
	CAPS+=("$pid")
	NLG_ERRS+=("$NLG_TMP/$name.err")
	nlg_wait_for 30 "nlgate capture $name to watch" ready "$NLG_TMP/$name.err" \
		"nlgate: packets: watching" "$pid"
}

start_tcpdump all
start_nlgate flows --flows
for i in "${!FILTERS[@]}"; do
	start_tcpdump "live$i" "${FILTERS[i]}"
	start_nlgate "live$i" --workers 1 --ring-size 4M "${FILTERS[i]}"
done

# ---- the traffic ----------------------------------------------------------------
ip netns exec "$NSB" "$NLG_PY" "$HELP/traffic.py" server "$NLG_TMP/server.ready" \
	2>"$NLG_TMP/server.err" &
SERVER=$!
nlg_on_exit "kill $SERVER"
nlg_wait_file "$NLG_TMP/server.ready" 10 "$SERVER"
ip netns exec "$NSA" "$NLG_PY" "$HELP/traffic.py" client "$NLG_TMP/manifest.jsonl" \
	"$NSA" "$NSB" "$IFA" "$IFB" 2>"$NLG_TMP/client.err" ||
	nlg_fail "the traffic: $(cat "$NLG_TMP/client.err" "$NLG_TMP/server.err")"
kill "$SERVER"
nlg_log "traffic made: $(wc -l <"$NLG_TMP/manifest.jsonl") flows"

# Every ring hands its last block over within its timeout (10 ms); then stop
# nlgate's captures first (each must exit 0 and say what it saw), tcpdump's
# after: nothing more crosses the veth either way.
sleep 0.5
for pid in "${CAPS[@]}"; do
	kill -INT "$pid"
done
for pid in "${CAPS[@]}"; do
	nlg_wait_exit "$pid" 20
	rc=$?
	[ "$rc" -eq 0 ] || nlg_fail "nlgate capture (pid $pid) exited $rc on SIGINT"
done
for pid in "${TDS[@]}"; do
	kill -INT "$pid"
done
for pid in "${TDS[@]}"; do
	nlg_wait_exit "$pid" 20 || nlg_fail "tcpdump (pid $pid) did not exit cleanly"
done
# every packet the kernel passed was written, none dropped
for f in "$NLG_TMP"/*.tcpdump.err; do
	c=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$f")
	r=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter$/\1/p' "$f")
	[ -n "$c" ] && [ "$c" = "$r" ] && grep -q "^0 packets dropped by kernel" "$f" ||
		nlg_fail "tcpdump missed packets: $(cat "$f")"
done
for f in "${NLG_ERRS[@]}"; do
	grep -q " 0 dropped by the kernel, 0 dropped between threads" "$f" ||
		nlg_fail "nlgate's live capture dropped packets: $(tail -n 2 "$f")"
done

# ---- 1, 2: flows ----------------------------------------------------------------
PCAP=$NLG_TMP/all.pcap
"$NLGATE" capture --flows -r "$PCAP" >"$NLG_TMP/file_flows.json" 2>"$NLG_TMP/file_flows.err" ||
	nlg_fail "nlgate capture --flows -r: $(cat "$NLG_TMP/file_flows.err")"
TOTAL=$(tcpdump -r "$PCAP" -n 2>/dev/null | wc -l)
# "nlgate: capture: N packets captured, ... F flows": N is tcpdump's count,
# F the records printed
for f in flows file_flows; do
	grep -Eq "nlgate: capture: $TOTAL packets (captured|read)," "$NLG_TMP/$f.err" ||
		nlg_fail "$f: tcpdump has $TOTAL packets, nlgate says: $(grep 'nlgate: capture' "$NLG_TMP/$f.err")"
	n=$(wc -l <"$NLG_TMP/$f.json")
	grep -Eq "nlgate: capture: [0-9]+ packets (captured|read).*[ ,]$n flows$" "$NLG_TMP/$f.err" ||
		nlg_fail "$f: $n flow records, but stderr says: $(grep 'nlgate: capture' "$NLG_TMP/$f.err")"
done
TS=()
if [ "$HAVE_TSHARK" = 1 ]; then
	# no reassembly: a later fragment is then no UDP frame to tshark
	for p in udp tcp; do
		tshark -r "$PCAP" -o ip.defragment:FALSE -o ipv6.defragment:FALSE -q -z "conv,$p" \
			>"$NLG_TMP/conv_$p.txt" 2>"$NLG_TMP/conv_$p.err" ||
			nlg_fail "tshark -z conv,$p: $(cat "$NLG_TMP/conv_$p.err")"
	done
	TS=("$NLG_TMP/conv_udp.txt" "$NLG_TMP/conv_tcp.txt")
else
	nlg_log "tshark not installed: its conversation tables are not compared"
fi
"$NLG_PY" "$HELP/compare.py" flows "$PCAP" "$NLG_TMP/manifest.jsonl" "$NLG_TMP/flows.json" \
	"$NLG_TMP/file_flows.json" "$IFINDEX" "${TS[@]}" >"$NLG_TMP/flows.out" ||
	nlg_fail "flows differ (above)"
while read -r line; do nlg_log "$line"; done <"$NLG_TMP/flows.out"

# ---- 3: filters on the pcap -----------------------------------------------------
for expr in "${FILTERS[@]}"; do
	tcpdump -r "$PCAP" -n -tt --time-stamp-precision=nano "$expr" >"$NLG_TMP/f.tcpdump" \
		2>"$NLG_TMP/f.err" || nlg_fail "tcpdump -r '$expr': $(cat "$NLG_TMP/f.err")"
	"$NLGATE" capture -r "$PCAP" "$expr" >"$NLG_TMP/f.json" 2>"$NLG_TMP/f.err" ||
		nlg_fail "nlgate capture -r '$expr': $(cat "$NLG_TMP/f.err")"
	n=$("$NLG_PY" "$HELP/compare.py" times "$NLG_TMP/f.json" "$NLG_TMP/f.tcpdump") ||
		nlg_fail "filter '$expr' on the pcap: nlgate and tcpdump pass different packets"
	# a filter that passes nothing or everything would prove little
	[ "$n" -gt 0 ] && [ "$n" -lt "$TOTAL" ] ||
		nlg_fail "filter '$expr' passes $n of $TOTAL packets: the traffic does not test it"
	nlg_log "-r '$expr': $n of $TOTAL packets, the same as tcpdump's (timestamps too)"
done

# ---- 4: the same filters live ---------------------------------------------------
bad=0
for i in "${!FILTERS[@]}"; do
	want=$(tcpdump -r "$NLG_TMP/live$i.pcap" -n 2>/dev/null | wc -l)
	got=$(wc -l <"$NLG_TMP/live$i.json")
	if [ "$got" -ne "$want" ]; then
		nlg_log "live '${FILTERS[i]}': nlgate passed $got packets, tcpdump $want:" \
			"$("$NLG_PY" "$HELP/compare.py" breakdown "$NLG_TMP/live$i.json" \
				"$NLG_TMP/live$i.pcap")"
		bad=1
	else
		nlg_log "live '${FILTERS[i]}': $got packets, the same as tcpdump's"
	fi
done
[ "$bad" = 0 ] || nlg_fail "live filters pass other packets than tcpdump's (above)"
nlg_log "ok"
