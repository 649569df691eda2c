#!/bin/bash
# nlgate dump sockets against ss: in a fresh namespace a helper opens a known
# set of sockets (listeners, established, SYN-SENT, TIME-WAIT, UDP bound and
# connected, IPv4, IPv6 and v4-mapped, some bound to lo), and the set of
# (proto, src, sport, dst, dport, state, dev) must be the same from
# `nlgate dump sockets --netns NS`, `ss -tuanH` in NS, and the helper itself.
#
# Normalising ss's text (done in compare.py below):
#   local/peer column  "ADDR[%DEV]:PORT"; split at the LAST ':' (IPv6 has more)
#   "%DEV"             interface the socket is bound to (local column only);
#                      kept as the dev name, compared with nlgate's ifindex
#                      mapped to its name in NS (0 = no device)
#   "[...]"            brackets around IPv6 addresses are dropped
#   "*" address        the IPv6 wildcard of a dual-stack (not v6only) socket
#                      ss prints "*" instead of "[::]"; it is "::" here
#   "*" port           port 0 (listeners' and unconnected sockets' peers)
#   addresses          parsed and re-printed by Python's ipaddress module, so
#                      "::ffff:127.0.0.1" (v4-mapped) and "0.0.0.0" compare in
#                      one canonical spelling on both sides
#   family             ss does not print it: an address containing ':' (or
#                      "*") is inet6, else inet; nlgate's "family" must agree
# Then, per socket, nlgate's inode and cookie must equal ss -e's ino: and sk:.
. "$(dirname "$0")/lib.sh"

nlg_require_root
nlg_require_cmd ss python3
nlg_require_nlgate
nlg_tmpdir
nlg_netns_create NS

# ---- the helper: opens the sockets, says what it expects, holds them --------
cat >"$NLG_TMP/holder.py" <<'EOF'
import json, os, socket, sys, time

ready = sys.argv[1]
A4, A6 = socket.AF_INET, socket.AF_INET6
TCP, UDP = socket.SOCK_STREAM, socket.SOCK_DGRAM
keep, expect = [], []

def sock(fam, typ, addr=None, v6only=None, dev=None, reuse=False):
    s = socket.socket(fam, typ)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    if dev:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
    if addr:
        s.bind(addr)
    keep.append(s)
    return s

def note(s, proto, state, dev="", peer=None):
    fam = "inet6" if s.family == A6 else "inet"
    src = s.getsockname()
    if peer is None:
        try:
            peer = s.getpeername()
        except OSError:
            peer = ("::" if s.family == A6 else "0.0.0.0", 0)
    expect.append(dict(proto=proto, family=fam, src=src[0], sport=src[1],
                       dst=peer[0], dport=peer[1], state=state, dev=dev))

def listener(fam, addr, v6only=None, dev=None, backlog=16):
    s = sock(fam, TCP, addr, v6only, dev, reuse=True)
    s.listen(backlog)
    note(s, "tcp", "LISTEN", dev or "")
    return s

def connect(fam, to, frm=None):
    c = sock(fam, TCP, frm)
    c.connect(to)
    return c

def pair(lst, fam, to, frm=None):
    c = connect(fam, to, frm)
    a, _ = lst.accept()
    keep.append(a)
    note(c, "tcp", "ESTAB")
    note(a, "tcp", "ESTAB")
    return c, a

l1 = listener(A4, ("127.0.0.1", 7001))
l2 = listener(A6, ("::1", 7002))
l3 = listener(A4, ("0.0.0.0", 7003))
listener(A6, ("::", 7004), v6only=True)         # ss: [::]:7004
l5 = listener(A6, ("::", 7005), v6only=False)   # ss: *:7005
listener(A6, ("::", 7007), v6only=False, dev="lo")  # ss: *%lo:7007
listener(A4, ("127.0.0.1", 7008), dev="lo")     # ss: 127.0.0.1%lo:7008
pair(l1, A4, ("127.0.0.1", 7001))
pair(l2, A6, ("::1", 7002))
pair(l1, A4, ("127.0.0.1", 7001), ("127.0.0.3", 0))
pair(l5, A4, ("127.0.0.1", 7005))               # accepted side is v4-mapped inet6
pair(l5, A6, ("::1", 7005))

# SYN-SENT: a listener whose accept queue is full drops the next SYN.
l6 = listener(A4, ("127.0.0.1", 7006), backlog=0)
q = connect(A4, ("127.0.0.1", 7006))
note(q, "tcp", "ESTAB")
peer_of_q = q.getsockname()   # its server end waits, not accepted, in the queue
expect.append(dict(proto="tcp", family="inet", src="127.0.0.1", sport=7006,
                   dst=peer_of_q[0], dport=peer_of_q[1], state="ESTAB", dev=""))
s = sock(A4, TCP, ("127.0.0.4", 0))
s.setblocking(False)
try:
    s.connect(("127.0.0.1", 7006))
except BlockingIOError:
    pass
note(s, "tcp", "SYN-SENT", peer=("127.0.0.1", 7006))

# TIME-WAIT: the side that closes first keeps it; the other end goes away.
c = socket.socket(A4, TCP)
c.bind(("127.0.0.5", 0))
c.connect(("127.0.0.1", 7003))
a, _ = l3.accept()
tw = c.getsockname()
c.close()
a.recv(1)   # the FIN
a.close()
expect.append(dict(proto="tcp", family="inet", src=tw[0], sport=tw[1], dst="127.0.0.1",
                   dport=7003, state="TIME-WAIT", dev=""))

# UDP
u1 = sock(A4, UDP, ("127.0.0.1", 7101)); note(u1, "udp", "UNCONN")
u2 = sock(A6, UDP, ("::1", 7102)); note(u2, "udp", "UNCONN")
u3 = sock(A4, UDP, ("0.0.0.0", 7103)); note(u3, "udp", "UNCONN")
u4 = sock(A6, UDP, ("::", 7104), v6only=False); note(u4, "udp", "UNCONN")
u5 = sock(A6, UDP, ("::", 7109), v6only=True); note(u5, "udp", "UNCONN")
u6 = sock(A4, UDP, ("0.0.0.0", 7106), dev="lo"); note(u6, "udp", "UNCONN", "lo")
c4 = sock(A4, UDP, ("127.0.0.1", 7105)); c4.connect(("127.0.0.1", 7101))
note(c4, "udp", "ESTAB")
c6 = sock(A6, UDP, ("::1", 7107)); c6.connect(("::1", 7102))
note(c6, "udp", "ESTAB")

with open(ready + ".tmp", "w") as f:
    json.dump(expect, f)
os.rename(ready + ".tmp", ready)
while True:
    time.sleep(3600)
EOF

# ---- compare: the three views, normalised ----------------------------------
cat >"$NLG_TMP/compare.py" <<'EOF'
import ipaddress, json, sys

expect_f, ss_f, sse_f, nlg_f, links_f = sys.argv[1:6]
dev_of = {}
for line in open(links_f):             # "1: lo: <LOOPBACK,..." from ip -o link
    idx, name = line.split(":")[:2]
    dev_of[int(idx)] = name.strip().split("@")[0]

def canon(addr):
    return ipaddress.ip_address(addr).compressed

def fam_of(addr_text):
    return "inet6" if ":" in addr_text or addr_text == "*" else "inet"

def ss_endpoint(col):
    """'ADDR[%DEV]:PORT' -> (family, canonical address, port, dev)."""
    addr, port = col.rsplit(":", 1)
    dev = ""
    if "%" in addr:
        addr, dev = addr.split("%", 1)
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    fam = fam_of(addr)
    if addr == "*":
        addr = "::"
    return fam, canon(addr), 0 if port == "*" else int(port), dev

def ss_rows(path):
    rows = {}
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if len(f) < 6:
            sys.exit("unparsable ss line: %r" % line)
        fam, src, sport, dev = ss_endpoint(f[4])
        pfam, dst, dport, _ = ss_endpoint(f[5])
        key = (f[0], fam, src, sport, dst, dport, f[1], dev)
        extra = dict(t.split(":", 1) for t in f[6:] if ":" in t)
        if key in rows:
            sys.exit("ss printed %r twice" % (key,))
        rows[key] = extra
    return rows

ss = ss_rows(ss_f)
sse = ss_rows(sse_f)

nlg = {}
for n, line in enumerate(open(nlg_f), 1):
    r = json.loads(line)
    try:
        dev = dev_of.get(r.get("ifindex", 0), "?%s" % r.get("ifindex")) if r.get("ifindex") else ""
        key = (r["proto"], r["family"], canon(r["src"]), int(r["sport"]), canon(r["dst"]),
               int(r["dport"]), r["state"], dev)
    except (KeyError, ValueError) as e:
        sys.exit("nlgate line %d: %s: %s" % (n, e, line.strip()))
    if key in nlg:
        sys.exit("nlgate printed %r twice" % (key,))
    if fam_of(r["src"]) != r["family"] and not (r["family"] == "inet6" and r["src"] == "::"):
        sys.exit("nlgate line %d: family %s but src %s" % (n, r["family"], r["src"]))
    nlg[key] = r

expect = set()
for e in json.load(open(expect_f)):
    expect.add((e["proto"], e["family"], canon(e["src"]), e["sport"], canon(e["dst"]),
                e["dport"], e["state"], e["dev"]))

def show(title, keys):
    print("%s (%d):" % (title, len(keys)))
    for k in sorted(keys):
        print("   ", " ".join(str(x) for x in k))

ok = True
if set(ss) != expect:
    ok = False
    print("the harness is off: ss does not show what the helper opened")
    show("  only in ss", set(ss) - expect)
    show("  only in the helper", expect - set(ss))
if set(nlg) != set(ss):
    ok = False
    print("nlgate dump sockets and ss -tuanH differ")
    show("  only in nlgate", set(nlg) - set(ss))
    show("  only in ss", set(ss) - set(nlg))
for key, r in nlg.items():
    e = sse.get(key)
    if e is None:
        continue
    if "ino" in e and int(e["ino"]) != int(r.get("inode", -1)):
        ok = False
        print("inode differs for %s: ss %s, nlgate %s" % (key, e["ino"], r.get("inode")))
    if "sk" in e and int(e["sk"], 16) != int(r.get("cookie", -1)):
        ok = False
        print("cookie differs for %s: ss %s, nlgate %s" % (key, e["sk"], r.get("cookie")))
if not ok:
    sys.exit(1)
states = sorted({k[6] for k in nlg})
print("same %d sockets in nlgate, ss and the helper; states %s" % (len(nlg), ",".join(states)))
EOF

ip netns exec "$NS" python3 "$NLG_TMP/holder.py" "$NLG_TMP/expect.json" &
HOLDER=$!
nlg_on_exit "kill $HOLDER"
nlg_wait_file "$NLG_TMP/expect.json" 20 "$HOLDER"

# FIN handshakes settle on loopback in microseconds; wait until no socket is
# between states so both views see the same picture.
settled() {
	[ -z "$(ip netns exec "$NS" ss -tanH state fin-wait-1 state fin-wait-2 \
		state close-wait state last-ack state closing)" ]
}
nlg_wait_for 10 "the TIME-WAIT handshake to settle" settled

ip -n "$NS" -o link show >"$NLG_TMP/links" || nlg_fail "ip link in $NS"
ip netns exec "$NS" ss -tuanH >"$NLG_TMP/ss.txt" || nlg_fail "ss -tuanH"
ip netns exec "$NS" ss -tuanHe >"$NLG_TMP/sse.txt" 2>/dev/null || nlg_fail "ss -tuanHe"
"$NLGATE" dump sockets --netns "$NS" >"$NLG_TMP/nlgate.json" 2>"$NLG_TMP/nlgate.err" ||
	nlg_fail "nlgate dump sockets --netns $NS exited $?: $(head -c 500 "$NLG_TMP/nlgate.err")"

python3 "$NLG_TMP/compare.py" "$NLG_TMP/expect.json" "$NLG_TMP/ss.txt" "$NLG_TMP/sse.txt" \
	"$NLG_TMP/nlgate.json" "$NLG_TMP/links" || {
	nlg_log "ss -tuanH:"
	cat "$NLG_TMP/ss.txt" >&2
	nlg_log "nlgate dump sockets (first lines):"
	head -n 50 "$NLG_TMP/nlgate.json" >&2
	nlg_fail "socket sets differ"
}

# The same through the filters: -t -4 must give exactly ss -t4's subset.
ip netns exec "$NS" ss -t4anH >"$NLG_TMP/ss4.txt" || nlg_fail "ss -t4anH"
ip netns exec "$NS" ss -t4anHe >"$NLG_TMP/ss4e.txt" 2>/dev/null || nlg_fail "ss -t4anHe"
"$NLGATE" dump sockets --netns "$NS" -t -4 >"$NLG_TMP/nlgate4.json" 2>"$NLG_TMP/nlgate.err" ||
	nlg_fail "nlgate dump sockets -t -4 exited $?: $(head -c 500 "$NLG_TMP/nlgate.err")"
# ss -t prints no Netid column: put it back so one parser reads both.
sed -i 's/^/tcp /' "$NLG_TMP/ss4.txt" "$NLG_TMP/ss4e.txt"
"$NLG_PY" - "$NLG_TMP" <<'EOF' || nlg_fail "filtered dump (-t -4) differs from ss -t4anH"
import json, sys
d = sys.argv[1]
exp = json.load(open(d + "/expect.json"))
json.dump([e for e in exp if e["proto"] == "tcp" and e["family"] == "inet"],
          open(d + "/expect4.json", "w"))
EOF
python3 "$NLG_TMP/compare.py" "$NLG_TMP/expect4.json" "$NLG_TMP/ss4.txt" "$NLG_TMP/ss4e.txt" \
	"$NLG_TMP/nlgate4.json" "$NLG_TMP/links" || nlg_fail "filtered sets differ"

# --state and --sport reach the kernel filter: listeners only, then one port.
"$NLGATE" dump sockets --netns "$NS" -t --state listen >"$NLG_TMP/listen.json" ||
	nlg_fail "nlgate dump sockets --state listen"
n_listen=$(grep -c . "$NLG_TMP/listen.json")
n_ss_listen=$(ip netns exec "$NS" ss -tlnH | grep -c .)
[ "$n_listen" -eq "$n_ss_listen" ] && ! grep -qv '"state":"LISTEN"' "$NLG_TMP/listen.json" ||
	nlg_fail "--state listen: $n_listen records (ss: $n_ss_listen), or a non-LISTEN record"
"$NLGATE" dump sockets --netns "$NS" -t --sport 7001 >"$NLG_TMP/sport.json" ||
	nlg_fail "nlgate dump sockets --sport 7001"
n_sport=$(grep -c . "$NLG_TMP/sport.json")
n_ss_sport=$(ip netns exec "$NS" ss -tanH 'sport = :7001' | grep -c .)
[ "$n_sport" -eq "$n_ss_sport" ] && [ "$n_sport" -gt 0 ] ||
	nlg_fail "--sport 7001: $n_sport records, ss has $n_ss_sport"

# --msgpack: back-to-back maps, the same records under the same keys as the
# JSON lines (values that tick, like last_data_recv_ms, are not compared).
if "$NLG_PY" -c 'import msgpack' 2>/dev/null; then
	"$NLGATE" dump sockets --netns "$NS" --msgpack >"$NLG_TMP/nlgate.mp" ||
		nlg_fail "nlgate dump sockets --msgpack"
	"$NLGATE" dump sockets --netns "$NS" >"$NLG_TMP/nlgate2.json" || nlg_fail "nlgate dump sockets"
	"$NLG_PY" - "$NLG_TMP/nlgate.mp" "$NLG_TMP/nlgate2.json" <<'EOF' || nlg_fail "--msgpack and JSON disagree"
import json, sys, msgpack
mp = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
js = [json.loads(l) for l in open(sys.argv[2])]
assert all(isinstance(m, dict) for m in mp), "a msgpack item is not a map"
by_cookie = lambda rs: {r["cookie"]: r for r in rs}
m, j = by_cookie(mp), by_cookie(js)
assert len(m) == len(mp) and len(j) == len(js), "cookies repeat"
assert set(m) == set(j), "different sockets: %d msgpack, %d JSON" % (len(m), len(j))
stable = ("family", "proto", "state", "src", "sport", "dst", "dport", "uid", "inode", "ifindex", "cong")
for c in m:
    assert set(m[c]) == set(j[c]), "keys differ for cookie %d: %s" % (c, set(m[c]) ^ set(j[c]))
    for k in stable:
        assert m[c].get(k) == j[c].get(k), "%s differs for cookie %d: %r vs %r" % (k, c, m[c].get(k), j[c].get(k))
print("msgpack and JSON agree on %d records" % len(m))
EOF
fi

nlg_log "ok"
