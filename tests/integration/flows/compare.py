"""Checks for test_capture_flows.sh: an independent pcap reader, the flows it
counts, and their comparison with nlgate's flow records and tshark's
conversation tables. Each subcommand prints what it found and exits 1 with
the differences when a check fails.

    compare.py flows PCAP MANIFEST LIVE_JSON FILE_JSON IFINDEX [TSHARK_UDP TSHARK_TCP]
    compare.py times NLGATE_JSON TCPDUMP_TEXT      (filters: the same packets)
    compare.py breakdown NLGATE_JSON PCAP          (what two live captures hold)

The reference flows (read here from the pcap, nothing shared with nlgate):
  key     proto, family, vlan (outer tag, or none) and the two endpoints
          (address, port) in either order: direction-insensitive
  src     the endpoint that sent the flow's first packet
  packets frames, bytes their pcap orig_len (the length on the wire)
  frags   a fragment at offset 0 carries the ports: the datagram (family,
          proto, src, dst, IP id) is noted, and the later fragments count in
          its flow; a later fragment whose first was not seen counts in a flow
          of the two addresses without ports
"""
import ipaddress
import json
import re
import struct
import sys

ETH_VLAN = (0x8100, 0x88a8, 0x9100)
PROTO = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 136: "udplite", 132: "sctp", 33: "dccp"}
FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]
errors = []


def fail(msg):
    errors.append(msg)


def done(what):
    if errors:
        print("FAILED (%s): %d difference(s)" % (what, len(errors)), file=sys.stderr)
        for e in errors[:40]:
            print("  " + e, file=sys.stderr)
        sys.exit(1)


# ---- pcap -----------------------------------------------------------------------

def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    table = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
             b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
    if magic not in table:
        raise SystemExit("%s: not a pcap file (magic %r)" % (path, magic))
    e, mult = table[magic]
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xffff
    if linktype != 1:
        raise SystemExit("%s: link type %d, not Ethernet" % (path, linktype))
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        out.append((sec * 1000000000 + frac * mult, origlen, data[off:off + caplen]))
        off += caplen
    return out


def ip_str(b):
    return str(ipaddress.ip_address(b))


def canon(a):
    """An address as ip_str spells it."""
    return str(ipaddress.ip_address(a))


def decode(frame):
    """The fields a flow needs, or None for a frame without IP."""
    if len(frame) < 14:
        return None
    et, off, vlan = struct.unpack("!H", frame[12:14])[0], 14, None
    while et in ETH_VLAN:
        tci, et = struct.unpack("!HH", frame[off:off + 4])
        if vlan is None:
            vlan = tci & 0xfff
        off += 4
    p = dict(vlan=vlan, sport=None, dport=None, frag=None, flags=0, payload=0)
    if et == 0x0800:
        ihl = (frame[off] & 15) * 4
        tot, ipid, fo, proto = struct.unpack("!HHHxB", frame[off + 2:off + 10])
        p.update(family="inet", proto=proto, src=ip_str(frame[off + 12:off + 16]),
                 dst=ip_str(frame[off + 16:off + 20]))
        end = off + tot
        if fo & 0x3fff:
            p["frag"] = (ipid, (fo & 0x1fff) * 8, bool(fo & 0x2000))
        off += ihl
    elif et == 0x86dd:
        plen, nh = struct.unpack("!HB", frame[off + 4:off + 7])
        p.update(family="inet6", src=ip_str(frame[off + 8:off + 24]),
                 dst=ip_str(frame[off + 24:off + 40]))
        end = off + 40 + plen
        off += 40
        while True:
            if nh in (0, 43, 60):
                nh, n = frame[off], (frame[off + 1] + 1) * 8
                off += n
            elif nh == 51:
                nh, n = frame[off], (frame[off + 1] + 2) * 4
                off += n
            elif nh == 44:
                fo, ident = struct.unpack("!HI", frame[off + 2:off + 8])
                p["frag"] = (ident, fo & 0xfff8, bool(fo & 1))
                nh = frame[off]
                off += 8
            else:
                break
        p["proto"] = nh
    else:
        return None
    if p["frag"] and p["frag"][1]:
        return p  # a later fragment: no transport header
    if p["proto"] in (6, 17, 136, 132, 33):
        p["sport"], p["dport"] = struct.unpack("!HH", frame[off:off + 4])
    if p["proto"] == 6:
        thl = (frame[off + 12] >> 4) * 4
        p["flags"] = frame[off + 13]
        p["payload"] = end - off - thl
    elif p["proto"] == 17:
        p["payload"] = struct.unpack("!H", frame[off + 4:off + 6])[0] - 8
    return p


def flag_names(v):
    return sorted(FLAGS[i] for i in range(8) if v & (1 << i))


def key_of(proto, family, vlan, a, b):
    return (proto, family, vlan) + tuple(sorted([a, b], key=lambda e: (str(e[0]), e[1] or 0)))


def ref_flows(pcap):
    flows, datagrams, nonip = {}, {}, 0
    for ts, wire, frame in read_pcap(pcap):
        p = decode(frame)
        if p is None:
            nonip += 1
            continue
        proto = PROTO.get(p["proto"], str(p["proto"]))
        ends = ((p["src"], p["sport"]), (p["dst"], p["dport"]))
        k = key_of(proto, p["family"], p["vlan"], *ends)
        fr = p["frag"]
        dg = (p["family"], p["proto"], p["src"], p["dst"], fr[0]) if fr else None
        if fr and fr[1]:
            k = datagrams.get(dg) or key_of(proto, p["family"], p["vlan"],
                                            (p["src"], None), (p["dst"], None))
        elif fr and fr[2]:
            datagrams[dg] = k
        f = flows.get(k)
        if f is None:
            f = flows[k] = dict(proto=proto, family=p["family"], vlan=p["vlan"], src=p["src"],
                                sport=p["sport"], dst=p["dst"], dport=p["dport"], packets=0,
                                bytes=0, fwd_packets=0, fwd_bytes=0, rev_packets=0, rev_bytes=0,
                                fwd_flags=0, rev_flags=0, fwd_payload=0, rev_payload=0,
                                first_ns=ts, last_ns=ts, nonfirst_frags=0, frag_frames=0,
                                first_frags=0)
        d = "fwd" if (p["src"], p["sport"]) == (f["src"], f["sport"]) else "rev"
        if fr and fr[1]:  # its datagram's direction
            d = "fwd" if p["src"] == f["src"] else "rev"
            f["nonfirst_frags"] += 1
        if fr:
            f["frag_frames"] += 1
            if not fr[1]:
                f["first_frags"] += 1
        f["packets"] += 1
        f["bytes"] += wire
        f[d + "_packets"] += 1
        f[d + "_bytes"] += wire
        f[d + "_flags"] |= p["flags"]
        f[d + "_payload"] += p["payload"]
        f["last_ns"] = max(f["last_ns"], ts)
    return flows, nonip


def load_nlgate_flows(path, what):
    out = {}
    for line in open(path):
        r = json.loads(line)
        ends = ((canon(r["src"]), r.get("sport")), (canon(r["dst"]), r.get("dport")))
        k = key_of(r["proto"], r["family"], r.get("vlan"), *ends)
        if k in out:
            fail("%s: two records for one flow %s: %s / %s" % (what, fmt_key(k), out[k], r))
        out[k] = r
    return out


def fmt_key(k):
    proto, fam, vlan, a, b = k
    def ep(e):
        return "%s:%s" % (("[%s]" % e[0]) if ":" in e[0] else e[0], "-" if e[1] is None else e[1])
    return "%s %s <-> %s%s" % (proto, ep(a), ep(b), "" if vlan is None else " vlan %d" % vlan)


def expect_end(f):
    fwd, rev = f["fwd_flags"], f["rev_flags"]
    if f["proto"] == "tcp" and (fwd | rev) & 0x04:
        return "rst"
    if f["proto"] == "tcp" and fwd & 0x01 and rev & 0x01:
        return "fin"
    return "shutdown"


def compare_records(what, ref, got, exact_time, ifindex):
    for k in sorted(set(ref) - set(got), key=str):
        f = ref[k]
        fail("%s: no record for %s (pcap: %d packets %d bytes)" % (what, fmt_key(k), f["packets"],
                                                                      f["bytes"]))
    for k in sorted(set(got) - set(ref), key=str):
        fail("%s: a record the pcap has no flow for: %s" % (what, json.dumps(got[k])))
    for k in sorted(set(ref) & set(got), key=str):
        f, r = ref[k], got[k]
        want = dict(src=f["src"], sport=f["sport"], dst=f["dst"], dport=f["dport"],
                    packets=f["packets"], bytes=f["bytes"], fwd_packets=f["fwd_packets"],
                    fwd_bytes=f["fwd_bytes"], rev_packets=f["rev_packets"],
                    rev_bytes=f["rev_bytes"], end_reason=expect_end(f))
        if f["proto"] == "tcp":
            want.update(tcp_flags=flag_names(f["fwd_flags"] | f["rev_flags"]),
                        fwd_tcp_flags=flag_names(f["fwd_flags"]),
                        rev_tcp_flags=flag_names(f["rev_flags"]))
        if exact_time:
            want.update(first_ns=f["first_ns"], last_ns=f["last_ns"])
        if ifindex is not None:
            want["ifindex"] = ifindex
        have = {}
        for n in want:
            v = r.get(n)
            if n.endswith("tcp_flags"):
                v = sorted(v) if isinstance(v, list) else flag_names(v or 0)
            if n in ("src", "dst") and v is not None:
                v = canon(v)
            have[n] = v
        bad = {n: (want[n], have[n]) for n in want if want[n] != have[n]}
        if not exact_time:
            # separate sockets stamp the same packet separately: close, not equal
            for n in ("first_ns", "last_ns"):
                if abs(r[n] - f[n]) > 500000000:
                    bad[n] = (f[n], r[n])
        if bad:
            fail("%s: %s differs from the pcap (field: pcap, nlgate): %s" %
                 (what, fmt_key(k), bad))


def check_manifest(ref, manifest):
    """What the traffic maker knows: the pcap saw all of it."""
    made = set()
    for m in manifest:
        k = key_of(m["proto"], m["family"], m["vlan"], (m["src"], m["sport"]),
                   (m["dst"], m["dport"]))
        made.add(k)
        f = ref.get(k)
        if f is None:
            fail("pcap: no flow for %s, which the traffic maker made" % fmt_key(k))
            continue
        if (f["src"], f["sport"]) != (m["src"], m["sport"]):
            fail("pcap: %s begins at %s:%s, not the client" % (fmt_key(k), f["src"], f["sport"]))
            continue
        if (f["fwd_payload"], f["rev_payload"]) != (m["fwd_payload"], m["rev_payload"]):
            fail("pcap: %s carries %d/%d payload bytes, the traffic maker %d/%d" %
                 (fmt_key(k), f["fwd_payload"], f["rev_payload"], m["fwd_payload"],
                  m["rev_payload"]))
        if m["proto"] == "udp":
            if m["fragmented"]:
                # fragment payloads: 1480 bytes over IPv4, 1448 (8-byte units
                # after a 40-byte header and an 8-byte fragment header) over IPv6
                per = 1480 if m["family"] == "inet" else 1448
                want_f = sum(-(-(8 + s) // per) for s in m["sizes"])
                if f["fwd_packets"] != want_f or f["rev_packets"] != want_f:
                    fail("pcap: %s has %d/%d frames, %d fragments each way were made" %
                         (fmt_key(k), f["fwd_packets"], f["rev_packets"], want_f))
                if f["first_frags"] != 2 * len(m["sizes"]) or \
                        f["nonfirst_frags"] != 2 * (want_f - len(m["sizes"])):
                    fail("pcap: %s: %d first and %d later fragments" %
                         (fmt_key(k), f["first_frags"], f["nonfirst_frags"]))
            elif (f["fwd_packets"], f["rev_packets"]) != (m["fwd_datagrams"],
                                                          m["rev_datagrams"]):
                fail("pcap: %s has %d/%d frames, %d/%d datagrams were made" %
                     (fmt_key(k), f["fwd_packets"], f["rev_packets"], m["fwd_datagrams"],
                      m["rev_datagrams"]))
        if m["proto"] == "tcp":
            if "fwd_segments" in m and (f["fwd_packets"], f["rev_packets"]) != \
                    (m["fwd_segments"], m["rev_segments"]):
                fail("pcap: %s has %d/%d segments, %d/%d were made" %
                     (fmt_key(k), f["fwd_packets"], f["rev_packets"], m["fwd_segments"],
                      m["rev_segments"]))
            for d in ("fwd", "rev"):
                if f[d + "_flags"] & 0x13 != 0x13:
                    fail("pcap: %s: %s flags %s, not SYN, ACK and FIN" %
                         (fmt_key(k), d, flag_names(f[d + "_flags"])))
    return made


# ---- tshark -z conv ---------------------------------------------------------------

SIZE = re.compile(r"(\d+)\s+([\d,]+)\s+(bytes|kB|MB|GB)")


def parse_conv(path):
    """tshark -q -z conv,tcp|udp: {(ep, ep): (frames a->b, bytes, frames b->a, bytes)}
    with bytes as (number, unit): tshark 4 prints sizes of 10000 and more in
    kB (floor of /1000), MB, ..."""
    out = {}
    for line in open(path):
        m = re.match(r"^(\S+)\s+<->\s+(\S+)\s+(.*)$", line.strip())
        if not m:
            continue
        sizes = SIZE.findall(m.group(3))
        if len(sizes) < 3:
            continue
        def ep(s):
            addr, port = s.rsplit(":", 1)
            return (canon(addr), int(port))
        a, b = ep(m.group(1)), ep(m.group(2))
        (rf, rb, ru), (lf, lb, lu) = sizes[0], sizes[1]  # "<-" then "->"
        out[tuple(sorted([a, b]))] = dict(
            a=a, b=b, a_to_b=(int(lf), int(lb.replace(",", "")), lu),
            b_to_a=(int(rf), int(rb.replace(",", "")), ru))
    return out


def size_ok(n, shown):
    v, unit = shown[1], shown[2]
    div = {"bytes": 1, "kB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9}[unit]
    return n // div == v


def compare_tshark(proto, path, got):
    """nlgate's records (summed over VLAN ids: tshark's conversations have
    none) against tshark's table, frames exact, bytes as tshark rounds them.
    tshark is run without IP reassembly: a later fragment is no UDP frame
    to it, so those are taken off nlgate's counts (from the pcap's reading)."""
    conv = parse_conv(path)
    sums = {}
    for k, r in got.items():
        if r["proto"] != proto or r.get("sport") is None:
            continue
        ends = tuple(sorted([(canon(r["src"]), r["sport"]), (canon(r["dst"]), r["dport"])]))
        s = sums.setdefault(ends, {})
        for (ep, n_p, n_b) in (((r["src"], r["sport"]), r["fwd_packets"], r["fwd_bytes"]),
                               ((r["dst"], r["dport"]), r["rev_packets"], r["rev_bytes"])):
            ep = (canon(ep[0]), ep[1])
            p0, b0 = s.get(ep, (0, 0))
            s[ep] = (p0 + n_p, b0 + n_b)
    for ends in sorted(set(sums) | set(conv), key=str):
        if ends not in conv:
            fail("tshark conv,%s: no conversation for %s <-> %s (nlgate: %s)" %
                 (proto, ends[0], ends[1], sums[ends]))
            continue
        if ends not in sums:
            fail("tshark conv,%s: a conversation nlgate has no flow for: %s" %
                 (proto, conv[ends]))
            continue
        c, s = conv[ends], sums[ends]
        for frm, shown in ((c["a"], c["a_to_b"]), (c["b"], c["b_to_a"])):
            n_p, n_b = s.get(frm, (0, 0))
            n_p -= later_frags.get((proto, frm, ends), (0, 0))[0]
            n_b -= later_frags.get((proto, frm, ends), (0, 0))[1]
            if n_p != shown[0] or not size_ok(n_b, shown):
                fail("tshark conv,%s: %s -> %s: tshark %d frames %d %s, nlgate %d packets "
                     "%d bytes (later fragments taken off)" %
                     (proto, frm, [e for e in ends if e != frm][0] if ends[0] != ends[1]
                      else frm, shown[0], shown[1], shown[2], n_p, n_b))
    return len(conv)


later_frags = {}


def note_later_frags(pcap):
    """(proto, sender endpoint, ends) → (frames, bytes) of later fragments,
    which tshark without reassembly does not count in the UDP conversation."""
    datagrams = {}
    for ts, wire, frame in read_pcap(pcap):
        p = decode(frame)
        if p is None or not p["frag"]:
            continue
        proto = PROTO.get(p["proto"], str(p["proto"]))
        dg = (p["family"], p["proto"], p["src"], p["dst"], p["frag"][0])
        if not p["frag"][1]:
            datagrams[dg] = (p["sport"], p["dport"])
            continue
        ports = datagrams.get(dg)
        if not ports:
            continue
        ends = tuple(sorted([(p["src"], ports[0]), (p["dst"], ports[1])]))
        k = (proto, (p["src"], ports[0]), ends)
        n, b = later_frags.get(k, (0, 0))
        later_frags[k] = (n + 1, b + wire)


# ---- subcommands -----------------------------------------------------------------

def cmd_flows(pcap, manifest_path, live_path, file_path, ifindex, ts_udp=None, ts_tcp=None):
    ref, nonip = ref_flows(pcap)
    manifest = [json.loads(l) for l in open(manifest_path)]
    made = check_manifest(ref, manifest)
    extra = [fmt_key(k) for k in ref if k not in made]
    if extra:
        fail("pcap: flows nobody made (stray traffic in the namespaces?): %s" % extra)
    if nonip:
        fail("pcap: %d frames without IP" % nonip)
    done("the pcap against the traffic maker")
    npk = sum(f["packets"] for f in ref.values())
    nfr = sum(f["nonfirst_frags"] for f in ref.values())
    print("pcap: %d flows, %d packets (%d later fragments counted in their datagram's flow)"
          " = the traffic made" % (len(ref), npk, nfr))

    live = load_nlgate_flows(live_path, "live")
    compare_records("live capture", ref, live, False, int(ifindex))
    done("nlgate's live flows against the pcap")
    print("live: %d flow records = the pcap's flows (packets, bytes, each way, flags, end)" %
          len(live))
    rfile = load_nlgate_flows(file_path, "-r")
    compare_records("capture -r", ref, rfile, True, 0)
    done("nlgate -r's flows against the pcap")
    print("-r:   %d flow records = the pcap's flows (and first_ns/last_ns exactly)" % len(rfile))

    if ts_udp:
        note_later_frags(pcap)
        n = compare_tshark("udp", ts_udp, rfile) + compare_tshark("tcp", ts_tcp, rfile)
        done("tshark's conversations against nlgate")
        print("tshark: %d conversations (tcp, udp) = nlgate's flows" % n)


def cmd_times(nlgate_json, tcpdump_text):
    got = [json.loads(l)["time_ns"] for l in open(nlgate_json)]
    want = []
    for line in open(tcpdump_text):
        s = line.split(" ", 1)[0]
        sec, frac = s.split(".")
        want.append(int(sec) * 10 ** 9 + int(frac.ljust(9, "0")))
    if got != want:
        first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
        fail("nlgate passed %d packets, tcpdump %d; first difference at #%s (%s / %s)" %
             (len(got), len(want), first, got[first] if first is not None else "-",
              want[first] if first is not None else "-"))
    done("the same packets")
    print(len(got))


def cmd_breakdown(nlgate_json, pcap):
    """Where a live filter's two captures differ: the packets of each by
    protocol, VLAN tag and direction (nlgate's) / tag (tcpdump's pcap)."""
    def tally(items):
        out = {}
        for k in items:
            out[k] = out.get(k, 0) + 1
        return ", ".join("%s: %d" % (k, n) for k, n in sorted(out.items()))
    got = []
    for line in open(nlgate_json):
        r = json.loads(line)
        got.append("%s %s%s" % (r["direction"], r.get("proto", "-"),
                                " vlan %d" % r["vlan"] if "vlan" in r else ""))
    want = []
    for ts, wire, frame in read_pcap(pcap):
        p = decode(frame) or {"proto": None, "vlan": None}
        want.append("%s%s" % (PROTO.get(p["proto"], p["proto"]),
                              "" if p["vlan"] is None else " vlan %d" % p["vlan"]))
    print("nlgate {%s}; tcpdump {%s}" % (tally(got), tally(want)))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "flows":
        cmd_flows(*sys.argv[2:])
    elif cmd == "times":
        cmd_times(*sys.argv[2:])
    elif cmd == "breakdown":
        cmd_breakdown(*sys.argv[2:])
    else:
        raise SystemExit("usage: compare.py flows|times|breakdown ...")
