# Flood harness shared by the conntrack integration tests and tests/bench/conntrack.
# Source it, then: ct_setup; ct_listen_in CMD...; ct_flood N; ct_flush; ct_cleanup.
# Two namespaces joined by a veth pair: trafgen sends UDP with random ports from
# the generator side into the tracking side, where an nft ct rule turns on
# conntrack. Everything stays inside these namespaces.

CT_TAG=${CT_TAG:-ct$$}
CT_NS=nlgct-$CT_TAG     # namespace whose conntrack table we watch
CT_GEN=nlggen-$CT_TAG   # namespace trafgen sends from
CT_DIR=${CT_DIR:-$(mktemp -d /tmp/nlgate-ct.XXXXXX)}
CT_SAVED_MAX=
CT_SAVED_BACKLOG=
CT_PIDS=

ct_need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root (network namespaces, conntrack)" >&2
		exit 77
	fi
	for t in ip nft conntrack trafgen; do
		if ! command -v $t >/dev/null; then
			echo "SKIP: $t not installed" >&2
			exit 77
		fi
	done
}

ct_in() { ip netns exec "$CT_NS" "$@"; }

# ct_setup [MAX_FLOWS]: namespaces, veth, nft ruleset, sysctls.
ct_setup() {
	local want=${1:-1048576}
	ip netns add "$CT_NS" || return 1
	ip netns add "$CT_GEN" || return 1
	ip link add nlgct0 netns "$CT_GEN" type veth peer name nlgct1 netns "$CT_NS" || return 1
	ip -n "$CT_GEN" addr add 10.201.0.1/24 dev nlgct0
	ip -n "$CT_NS" addr add 10.201.0.2/24 dev nlgct1
	ip -n "$CT_GEN" link set nlgct0 up
	ip -n "$CT_NS" link set nlgct1 up
	ip -n "$CT_GEN" link set lo up
	ip -n "$CT_NS" link set lo up
	# The table must hold the whole flood; nf_conntrack_max is host-wide, so
	# raise it only if needed and put it back in ct_cleanup.
	local cur
	cur=$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo 0)
	if [ "$cur" -lt "$want" ]; then
		CT_SAVED_MAX=$cur
		echo "$want" >/proc/sys/net/netfilter/nf_conntrack_max
	fi
	cur=$(cat /proc/sys/net/core/netdev_max_backlog)
	if [ "$cur" -lt 100000 ]; then
		CT_SAVED_BACKLOG=$cur
		echo 100000 >/proc/sys/net/core/netdev_max_backlog
	fi
	ct_in nft -f - <<'NFT' || return 1
table inet nlgct {
	chain pre {
		type filter hook prerouting priority 0; policy accept;
		ct state new counter
	}
	chain out {
		type filter hook output priority 0; policy accept;
		icmp type destination-unreachable drop
	}
}
NFT
	# Flows must outlive the test (no timeouts mid-count); checksums are not
	# what this test is about.
	ct_in sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600
	ct_in sysctl -qw net.netfilter.nf_conntrack_checksum=0
	ct_in sysctl -qw net.netfilter.nf_conntrack_events=1
	CT_DMAC=$(ip -n "$CT_NS" -o link show nlgct1 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	CT_SMAC=$(ip -n "$CT_GEN" -o link show nlgct0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	# Resolve neighbours once so nothing but the flood crosses the link.
	ip -n "$CT_GEN" neigh replace 10.201.0.2 lladdr "$CT_DMAC" dev nlgct0
}

ct_cleanup() {
	for p in $CT_PIDS; do kill "$p" 2>/dev/null; done
	ip netns del "$CT_GEN" 2>/dev/null
	ip netns del "$CT_NS" 2>/dev/null
	[ -n "$CT_SAVED_MAX" ] && echo "$CT_SAVED_MAX" >/proc/sys/net/netfilter/nf_conntrack_max
	[ -n "$CT_SAVED_BACKLOG" ] && echo "$CT_SAVED_BACKLOG" >/proc/sys/net/core/netdev_max_backlog
	[ -n "$CT_KEEP" ] || rm -rf "$CT_DIR"
	CT_SAVED_MAX= CT_SAVED_BACKLOG=
}

# Remember a background pid so ct_cleanup kills it.
ct_track() { CT_PIDS="$CT_PIDS $1"; }

# ct_spawn OUT ERR CMD...: run CMD in the namespace in the background, as a
# direct child (not a subshell) so $CT_PID can be signalled; tracked for cleanup.
ct_spawn() {
	local out=$1 err=$2
	shift 2
	ip netns exec "$CT_NS" "$@" >"$out" 2>"$err" &
	CT_PID=$!
	ct_track $CT_PID
}

ct_count() { ct_in cat /proc/sys/net/netfilter/nf_conntrack_count; }
ct_dying() { ct_in conntrack -L dying 2>/dev/null | wc -l; }

# ct_flood PACKETS: UDP with random source and destination ports, as fast as
# trafgen sends. Each packet is (almost surely) a new flow.
ct_flood() {
	local n=$1
	cat >"$CT_DIR/flood.cfg" <<CFG
{
  eth(da=$CT_DMAC, sa=$CT_SMAC),
  ipv4(sa=10.201.0.1, da=10.201.0.2, ttl=64),
  udp(sp=drnd(1024, 65535), dp=drnd(1024, 65535)),
  fill(0x41, 18)
}
CFG
	ip netns exec "$CT_GEN" trafgen -q -o nlgct0 -i "$CT_DIR/flood.cfg" -n "$n" -P 1 \
		>"$CT_DIR/trafgen.log" 2>&1
}

# ct_wait CMD...: poll until CMD succeeds (state, not a fixed sleep); about
# 60 s cap for quick checks ($CT_TRIES polls).
ct_wait() {
	local i
	for i in $(seq 1 "${CT_TRIES:-600}"); do
		"$@" && return 0
		sleep 0.1
	done
	echo "timeout waiting for: $*" >&2
	return 1
}

# The table stopped growing: two reads 200 ms apart agree.
ct_settled() {
	local a b
	a=$(ct_count)
	sleep 0.2
	b=$(ct_count)
	[ "$a" = "$b" ]
}
ct_empty() { [ "$(ct_count)" = 0 ] && [ "$(ct_dying)" = 0 ]; }
ct_empty_dying() { [ "$(ct_dying)" = 0 ]; }

# The flows in the table now, one key per line, sorted: "ID PROTO SRC DST
# SPORT DPORT" (original tuple; - for no ports). The id alone is no key: it is
# a 32-bit hash, and among 25,000 flows two share one in a few runs in a
# hundred (a flushed flow's synthetic DESTROY then seemed to end a live one).
# ct/ctkey.py makes the same key from nlgate's records; ct_keyof
# reads `conntrack -L/-E -o id` lines on stdin. The conntrack id is
# the last id= (ICMP tuples have an id= of their own).
ct_keyof() {
	awk '{
		p = 1
		while (p < NF && substr($p, 1, 1) == "[") p++ # [DESTROY], [timestamp]
		src = dst = sp = dp = id = "-"
		for (i = p + 1; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "src" && src == "-") src = kv[2]
			else if (kv[1] == "dst" && dst == "-") dst = kv[2]
			else if (kv[1] == "sport" && sp == "-") sp = kv[2]
			else if (kv[1] == "dport" && dp == "-") dp = kv[2]
			else if (kv[1] == "id") id = kv[2]
		}
		if (id != "-") print id, $p, src, dst, sp, dp
	}'
}
ct_keys() { ct_in conntrack -L -o id 2>/dev/null | ct_keyof | sort -u; }

ct_flush() { ct_in conntrack -F >/dev/null 2>&1; }
