#!/bin/bash
# `nlgate capture` end to end, between two fresh namespaces joined by a veth
# pair (10.99.1.1 on va in A, 10.99.1.2 on vb in B; IPv6 off, so no stray ND):
#  1. counts: trafgen sends N UDP packets from A with ports that follow a known
#     sequence; nlgate with 2 workers on vb (in B, -n) reports received +
#     kernel drops = N, and with no drop prints each packet exactly once (the
#     (sport, dport) multiset is trafgen's);
#  2. fanout: hash keeps each 5-tuple, and both directions of TCP connections
#     made between the namespaces, on one worker; lb splits evenly within 10%;
#     cbpf:EXPR puts matching packets on worker 1 and the rest on 0; a
#     `tcpdump -ddd`-style program picks the worker itself; two nlgate
#     instances on vb at once each see every packet; ebpf programs (one
#     passed by fd, one pinned in a bpffs mount) pick the worker;
#  3. dispatch: --dispatch recvmmsg gives the same counts; --stats says mode
#     recvmmsg (mmap by default);
#  4. bad input: unknown interface, a filter that does not compile, bad
#     --fanout, no CAP_NET_RAW, -r of a missing file, a file that is not a
#     capture, a real pcap cut mid-packet (the packets before the cut, then an
#     error) or at a packet boundary (a clean end), --ring-block not a power of
#     two: one clear line on stderr each and a non-zero exit, never a crash.
# The checks on the records: capture/check.py.
. "$(dirname "$0")/lib.sh"

nlg_require_root
nlg_require_cmd trafgen tcpdump setpriv python3
nlg_require_nlgate
nlg_tmpdir
CHECK="$NLG_PY $NLG_SRC/tests/integration/capture/check.py"
N=20000 # UDP packets per round
GAP=20us # between trafgen's packets: about 10-30k packets/s here, noisy or not
TCP_PORT=7100
CONNS=8

nlg_netns_create NA
nlg_netns_create NB
for ns in "$NA" "$NB"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 || nlg_fail "disabling IPv6 in $ns"
done
MAC_A=02:99:00:00:01:01
MAC_B=02:99:00:00:01:02
ip -n "$NA" link add va address $MAC_A type veth peer name vb address $MAC_B netns "$NB" ||
	nlg_fail "veth pair between $NA and $NB"
ip -n "$NA" addr add 10.99.1.1/24 dev va && ip -n "$NB" addr add 10.99.1.2/24 dev vb &&
	ip -n "$NA" link set va up && ip -n "$NB" link set vb up || nlg_fail "veth addresses"
carrier() { ip -n "$NB" link show vb | grep -q LOWER_UP && ip -n "$NA" link show va | grep -q LOWER_UP; }
nlg_wait_for 10 "the veth pair to come up" carrier

# trafgen's packet: packet i goes from port 10000 + i % 1000 to 20000 + i % 100
# (one definition, one CPU: check.py's udp_expected knows the sequence).
cat >"$NLG_TMP/udp.cfg" <<EOF
{
  eth(da=$MAC_B, sa=$MAC_A),
  ipv4(sa=10.99.1.1, da=10.99.1.2, ttl=64),
  udp(sp=dinc(10000, 10999), dp=dinc(20000, 20099)),
  fill(0x41, 32)
}
EOF
# send_udp COUNT: COUNT packets from va, all of them sent (trafgen says so)
send_udp() {
	ip netns exec "$NA" trafgen -o va --no-sock-mem -P 1 -n "$1" -t "$GAP" \
		-c "$NLG_TMP/udp.cfg" >"$NLG_TMP/trafgen.log" 2>&1 ||
		nlg_fail "trafgen: $(tail -5 "$NLG_TMP/trafgen.log")"
	grep -Eq "^[[:space:]]*$1 packets outgoing" "$NLG_TMP/trafgen.log" ||
		nlg_fail "trafgen did not send $1 packets: $(cat "$NLG_TMP/trafgen.log")"
	nlg_log "trafgen: $(grep -E 'usec on CPU' "$NLG_TMP/trafgen.log" | xargs)"
}

CAP_WRAP= # a command to run nlgate through (ebpf.py, to hand it a program's fd)

# ---- captures in the background ---------------------------------------------
declare -A CAP_PID
# cap_start NAME ARGS...: `nlgate capture --stats ARGS...` in the background,
# stdout to NAME.out and stderr to NAME.err; returns once it is watching.
cap_start() {
	local name=$1 pid
	shift
	$CAP_WRAP "$NLGATE" capture --stats "$@" >"$NLG_TMP/$name.out" 2>"$NLG_TMP/$name.err" &
	pid=$!
	nlg_on_exit "kill -9 $pid"
	CAP_PID[$name]=$pid
	nlg_wait_for 30 "capture $name to start watching" cap_watching "$name"
}
cap_watching() {
	nlg_alive "${CAP_PID[$1]}" ||
		nlg_fail "capture $1 exited before watching: $(cat "$NLG_TMP/$1.err")"
	grep -qs '^nlgate: packets: watching$' "$NLG_TMP/$1.err"
}
# cap_stop NAME [LINES]: once NAME has printed LINES records (and a little
# more time for any extra), or its output has not grown for 3 s, SIGINT; it
# must exit 0. Waiting on the output, not a fixed time: on a busy machine
# packets can sit in a backlog for a while after trafgen is done.
cap_stop() {
	local name=$1 want=${2:-0} pid=${CAP_PID[$1]} n last=-1 still=0 rc
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
		n=$(wc -l <"$NLG_TMP/$name.out")
		if ((want > 0 && n >= want)); then
			sleep 0.5
			break
		fi
		if ((n == last)); then
			((++still >= 30)) && break
		else
			still=0 last=$n
		fi
		sleep 0.1
	done
	kill -INT "$pid"
	nlg_wait_exit "$pid" 30
	rc=$?
	[ "$rc" -eq 0 ] || nlg_fail "capture $name: exit status $rc after SIGINT: $(tail -c 3000 "$NLG_TMP/$name.err")"
}

# ---- 1, 2, 3: counts and fanout with UDP ----------------------------------------
# Round 1: the default (hash, mmap) and lb, both on vb at once.
cap_start hash -n "$NB" -i vb --workers 2 udp
cap_start lb -n "$NB" -i vb --workers 2 --fanout lb udp
send_udp $N
cap_stop hash $N
cap_stop lb $N
$CHECK udp "$NLG_TMP/hash.out" "$NLG_TMP/hash.err" $N hash mmap || nlg_fail "default (hash) capture"
$CHECK udp "$NLG_TMP/lb.out" "$NLG_TMP/lb.err" $N lb mmap || nlg_fail "lb capture"
nlg_log "two instances on vb at once (hash and lb): each saw all $N packets"

# Round 2: cbpf as an expression (udp dst port 20007: worker 1) and as
# `tcpdump -ddd` text that returns dport & 1, at once. The kernel runs the
# program on a received packet from its network header (so a program from
# `tcpdump -ddd -i <an Ethernet interface>` would read the wrong bytes):
#   ldxb 4*([0]&0xf); ldh [x + 2]; and #1; ret a
DDD=$'4\n177 0 0 0\n72 0 0 2\n84 0 0 1\n22 0 0 0'
cap_start cbpf -n "$NB" -i vb --workers 2 --fanout 'cbpf:udp dst port 20007' udp
cap_start ddd -n "$NB" -i vb --workers 2 --fanout "cbpf:$DDD" udp
send_udp $N
cap_stop cbpf $N
cap_stop ddd $N
$CHECK udp "$NLG_TMP/cbpf.out" "$NLG_TMP/cbpf.err" $N port:20007 mmap || nlg_fail "cbpf expression"
$CHECK udp "$NLG_TMP/ddd.out" "$NLG_TMP/ddd.err" $N parity mmap || nlg_fail "cbpf -ddd program"
nlg_log "two instances on vb at once (cbpf expression and program): each saw all $N packets"

# Round 3: recvmmsg instead of the ring: the same counts, hash the same way.
cap_start mmsg -n "$NB" -i vb --workers 2 --dispatch recvmmsg udp
send_udp $N
cap_stop mmsg $N
$CHECK udp "$NLG_TMP/mmsg.out" "$NLG_TMP/mmsg.err" $N hash recvmmsg || nlg_fail "recvmmsg capture"

# Round 4: ebpf, a program that sends everything to worker 1 handed over by
# fd, and one that sends everything to worker 0 pinned in a bpffs mount of
# our own, at once (hash would split them: round 1).
EBPF="$NLG_PY $NLG_SRC/tests/integration/capture/ebpf.py"
BPFFS="$NLG_TMP/bpffs"
mkdir -p "$BPFFS"
mount -t bpf bpf "$BPFFS" || nlg_fail "mounting a bpffs at $BPFFS"
nlg_on_exit "umount $BPFFS"
$EBPF 0 pin "$BPFFS/to0" || nlg_fail "loading and pinning an eBPF program"
CAP_WRAP="$EBPF 1 fd" cap_start ebpf1 -n "$NB" -i vb --workers 2 --fanout 'ebpf:fd={fd}' udp
cap_start ebpf0 -n "$NB" -i vb --workers 2 --fanout "ebpf:$BPFFS/to0" udp
send_udp $N
cap_stop ebpf1 $N
cap_stop ebpf0 $N
$CHECK udp "$NLG_TMP/ebpf1.out" "$NLG_TMP/ebpf1.err" $N all:1 mmap || nlg_fail "ebpf by fd"
$CHECK udp "$NLG_TMP/ebpf0.out" "$NLG_TMP/ebpf0.err" $N all:0 mmap || nlg_fail "ebpf pinned"
err=$("$NLGATE" capture -n "$NB" -i vb --fanout "ebpf:$BPFFS/nosuch" 2>&1) && nlg_fail "a missing eBPF object was taken"
echo "$err" | grep -q "nosuch" || nlg_fail "unclear error for a missing eBPF object: $err"

# ---- 2: both directions of TCP connections on one worker -------------------------
cat >"$NLG_TMP/tcp.py" <<'EOF'
import socket, sys
role, port, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if role == "server":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.99.1.2", port))
    s.listen(16)
    open(sys.argv[4], "w").write("listening\n")
    for _ in range(conns):
        c, _ = s.accept()
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.close()
else:
    for i in range(conns):
        c = socket.create_connection(("10.99.1.2", port), timeout=10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for j in range(10):
            msg = b"%03d-%03d " % (i, j) * 20
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = c.recv(65536)
                if not d:
                    sys.exit("connection %d: closed early" % i)
                got += d
            if got != msg:
                sys.exit("connection %d: echo differs" % i)
        c.close()
EOF
cap_start tcp -n "$NB" -i vb --workers 2 tcp port $TCP_PORT
nlg_spawn SERVER ip netns exec "$NB" "$NLG_PY" "$NLG_TMP/tcp.py" server $TCP_PORT $CONNS "$NLG_TMP/server.ready"
nlg_wait_file "$NLG_TMP/server.ready" 10 "$SERVER"
ip netns exec "$NA" "$NLG_PY" "$NLG_TMP/tcp.py" client $TCP_PORT $CONNS ||
	nlg_fail "the TCP client in $NA"
nlg_wait_exit "$SERVER" 10 || nlg_fail "the TCP server in $NB did not end cleanly"
cap_stop tcp
$CHECK tcp "$NLG_TMP/tcp.out" "$NLG_TMP/tcp.err" $CONNS $TCP_PORT || nlg_fail "TCP connections"

# ---- 4: bad input ------------------------------------------------------------------
# expect_error WHAT STATUSES REGEX CMD...: CMD exits with one of STATUSES,
# prints nothing on stdout and exactly one line on stderr, matching REGEX.
expect_error() {
	local what=$1 statuses=$2 re=$3 rc
	shift 3
	timeout 30 "$@" </dev/null >"$NLG_TMP/e.out" 2>"$NLG_TMP/e.err"
	rc=$?
	[[ " $statuses " == *" $rc "* ]] ||
		nlg_fail "$what: exit status $rc, want $statuses: $(head -c 3000 "$NLG_TMP/e.err")"
	[ "$(wc -l <"$NLG_TMP/e.err")" -eq 1 ] ||
		nlg_fail "$what: not one line on stderr: $(head -c 3000 "$NLG_TMP/e.err")"
	grep -Eq "$re" "$NLG_TMP/e.err" ||
		nlg_fail "$what: stderr does not match /$re/: $(cat "$NLG_TMP/e.err")"
	[ ! -s "$NLG_TMP/e.out" ] || nlg_fail "$what: output on stdout: $(head -c 500 "$NLG_TMP/e.out")"
	nlg_log "$what: $(cat "$NLG_TMP/e.err") (exit $rc)"
}
C='^nlgate: capture: '
expect_error "unknown interface" 1 "${C}no interface 'nosuch0' in network namespace $NB\$" \
	"$NLGATE" capture -n "$NB" -i nosuch0
expect_error "filter that does not compile" 1 "${C}filter 'udp and and': .*syntax error" \
	"$NLGATE" capture -n "$NB" -i vb udp and and
expect_error "unknown fanout mode" "1 2" "${C}bad fanout 'bogus'" \
	"$NLGATE" capture -n "$NB" -i vb --fanout bogus
expect_error "fanout flag without a mode it fits" "1 2" "${C}fanout 'rollover,rollover'" \
	"$NLGATE" capture -n "$NB" -i vb --fanout rollover,rollover
expect_error "cbpf program that is not -ddd text" "1 2" "${C}bad BPF program" \
	"$NLGATE" capture -n "$NB" -i vb --fanout 'cbpf:3,1 2 3'
expect_error "cbpf expression that does not compile" "1 2" "${C}.*'udp port': .*syntax error" \
	"$NLGATE" capture -n "$NB" -i vb --fanout 'cbpf:udp port'
expect_error "--ring-block not a power of two" "1 2" "${C}bad ring.block 12345 \(a power of two" \
	"$NLGATE" capture -n "$NB" -i vb --ring-block 12345

# No CAP_NET_RAW: nobody, inside B already (entering it would need
# CAP_SYS_ADMIN, a different message). nobody must be able to run the binary.
BIN=$NLGATE
if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$NLGATE"; then
	BIN=$(mktemp -d "${TMPDIR:-/tmp}/nlgt-capture-bin.XXXXXX") || nlg_fail "mktemp"
	nlg_on_exit "rm -rf '$BIN'"
	chmod 755 "$BIN" && cp "$NLGATE" "$BIN/nlgate" && BIN=$BIN/nlgate || nlg_fail "copying nlgate"
fi
expect_error "no CAP_NET_RAW" 1 "${C}.*vb.*needs CAP_NET_RAW\$" \
	ip netns exec "$NB" setpriv --reuid=nobody --regid=nogroup --clear-groups "$BIN" capture -i vb

expect_error "-r of a missing file" 1 "${C}cannot read $NLG_TMP/nosuch.pcap: No such file or directory\$" \
	"$NLGATE" capture -r "$NLG_TMP/nosuch.pcap"
printf 'not a capture, just some text\n%.0s' {1..20} >"$NLG_TMP/text.pcap"
expect_error "-r of a file that is not a capture" 1 "${C}cannot read $NLG_TMP/text.pcap: .*format" \
	"$NLGATE" capture -r "$NLG_TMP/text.pcap"

# A real pcap: tcpdump on vb while trafgen sends 100 packets.
ip netns exec "$NB" tcpdump -Z root -i vb -n -U -c 100 -w "$NLG_TMP/real.pcap" udp \
	2>"$NLG_TMP/tcpdump.err" &
TD=$!
nlg_on_exit "kill -9 $TD"
td_listening() {
	nlg_alive $TD || nlg_fail "tcpdump: $(cat "$NLG_TMP/tcpdump.err")"
	grep -qs 'listening on vb' "$NLG_TMP/tcpdump.err"
}
nlg_wait_for 10 "tcpdump to listen" td_listening
GAP=1ms send_udp 100
nlg_wait_exit $TD 30 || nlg_fail "tcpdump did not get 100 packets: $(cat "$NLG_TMP/tcpdump.err")"

read_file() { # NAME FILE: nlgate capture --stats -r FILE, exit status in RC
	"$NLGATE" capture --stats -r "$2" >"$NLG_TMP/$1.out" 2>"$NLG_TMP/$1.err"
	RC=$?
}
read_file full "$NLG_TMP/real.pcap"
[ $RC -eq 0 ] || nlg_fail "-r of tcpdump's pcap: exit status $RC: $(cat "$NLG_TMP/full.err")"
$CHECK file "$NLG_TMP/full.out" "$NLG_TMP/full.err" 100 true || nlg_fail "-r of tcpdump's pcap"

# Cut inside packet 41 (its header whole, half its data), and at the end of
# packet 40.
read -r MID END < <("$NLG_PY" - "$NLG_TMP/real.pcap" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
end = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
       b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}[b[:4]]
off = 24
for _ in range(40):
    off += 16 + struct.unpack(end + "I", b[off + 8:off + 12])[0]
incl = struct.unpack(end + "I", b[off + 8:off + 12])[0]
print(off + 16 + incl // 2, off)
EOF
)
[ -n "$END" ] || nlg_fail "reading tcpdump's pcap"
head -c "$MID" "$NLG_TMP/real.pcap" >"$NLG_TMP/cut.pcap"
head -c "$END" "$NLG_TMP/real.pcap" >"$NLG_TMP/cut40.pcap"

read_file cut "$NLG_TMP/cut.pcap"
[ $RC -eq 1 ] || nlg_fail "-r of a pcap cut mid-packet: exit status $RC, want 1: $(cat "$NLG_TMP/cut.err")"
$CHECK file "$NLG_TMP/cut.out" "$NLG_TMP/cut.err" 40 false || nlg_fail "-r of a pcap cut mid-packet"
# One error line naming the file and the cut. (Its prefix is `watch packets`,
# the command `capture` stands for, where other errors say `capture`.)
errs=$(grep -Ev -e '^nlgate: packets: watching$' -e '^nlgate: capture: [0-9]+ packets (read|captured)' \
	-e '^\{' "$NLG_TMP/cut.err")
[ "$(printf '%s\n' "$errs" | wc -l)" -eq 1 ] &&
	grep -Eq "^nlgate: (capture|watch packets): reading $NLG_TMP/cut.pcap: truncated dump file" <<<"$errs" ||
	nlg_fail "-r of a pcap cut mid-packet: not one clear error line: $(cat "$NLG_TMP/cut.err")"
nlg_log "cut mid-packet: $errs"

read_file cut40 "$NLG_TMP/cut40.pcap"
[ $RC -eq 0 ] || nlg_fail "-r of a pcap cut between packets: exit status $RC: $(cat "$NLG_TMP/cut40.err")"
$CHECK file "$NLG_TMP/cut40.out" "$NLG_TMP/cut40.err" 40 true || nlg_fail "-r of a pcap cut between packets"

echo "PASS [$NLG_TEST]"
