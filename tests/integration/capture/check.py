"""Checks for test_capture.sh: reads what `nlgate capture` printed (JSON lines
on stdout, the summary line and the --stats object on stderr) and asserts on
it. One subcommand per kind of run; prints the figures it saw on success,
the reason on failure (exit status 1).

  check.py udp OUT ERR N SELECT MODE
      trafgen's N UDP packets (see udp_expected), read by 2 workers in
      dispatch MODE; SELECT: hash, lb, port:P (cbpf expression: dport P on
      worker 1, the rest on 0) or parity (the -ddd program: worker = dport & 1)
  check.py tcp OUT ERR CONNS PORT
      CONNS connections to PORT, each seen both ways, on one worker
  check.py file OUT ERR N ENDED
      N packets read from a pcap, in trafgen's order; ENDED: true if read to
      its end, false if it stopped on an error
"""
import collections
import json
import re
import sys

SRC, DST = "10.99.1.1", "10.99.1.2"
# trafgen's packet: 14 Ethernet + 20 IPv4 + 8 UDP + 32 payload bytes
WIRE_LEN = 74
# trafgen.cfg: udp(sp=dinc(10000, 10999), dp=dinc(20000, 20099)), one packet
# definition, one CPU: packet i has these ports.
SPORT0, NSPORT, DPORT0, NDPORT = 10000, 1000, 20000, 100


class Fail(Exception):
    pass


def check(cond, fmt, *args):
    if not cond:
        raise Fail(fmt % args)


def udp_expected(n):
    return collections.Counter(
        (SPORT0 + i % NSPORT, DPORT0 + i % NDPORT) for i in range(n))


def load(out_path, err_path):
    """The records, the --stats object and the summary's five figures."""
    recs = []
    for no, line in enumerate(open(out_path), 1):
        try:
            recs.append(json.loads(line))
        except ValueError as e:
            raise Fail("%s line %d is not JSON (%s): %r" % (out_path, no, e, line[:200]))
    err = open(err_path).read()
    check("Sanitizer" not in err and "runtime error" not in err,
          "a sanitizer report on stderr:\n%s", err[-3000:])
    objs = [l for l in err.splitlines() if l.startswith("{")]
    check(len(objs) == 1, "not one --stats object on stderr:\n%s", err[-2000:])
    stats = json.loads(objs[0])
    # The summary says what --stats says. Live: "R packets captured, P seen by
    # the kernel, D dropped by the kernel, T dropped between threads, F flows";
    # a file: "R packets read, T dropped between threads, F flows".
    live = re.findall(r"^nlgate: capture: (\d+) packets captured, (\d+) seen by the kernel, "
                      r"(\d+) dropped by the kernel, (\d+) dropped between threads, (\d+) flows$",
                      err, re.M)
    read = re.findall(r"^nlgate: capture: (\d+) packets read, (\d+) dropped between threads, "
                      r"(\d+) flows$", err, re.M)
    if stats["mode"] == "file":
        check(len(read) == 1 and not live, "not one file summary line on stderr:\n%s",
              err[-2000:])
        summary = tuple(int(x) for x in read[0])
        want = (stats["received"], stats["ring_drops"], stats["flows"])
        names = "(received, ring_drops, flows)"
    else:
        check(len(live) == 1 and not read, "not one summary line on stderr:\n%s", err[-2000:])
        summary = tuple(int(x) for x in live[0])
        want = (stats["received"], stats["packets"], stats["kernel_drops"], stats["ring_drops"],
                stats["flows"])
        names = "(received, packets, kernel_drops, ring_drops, flows)"
    check(summary == want, "summary %r but stats %s %r", summary, names, want)
    return recs, stats


def counts_exact(recs, stats, n, what):
    """received + kernel drops = n, nothing lost between threads, one line per
    packet read. Returns the number of kernel drops."""
    drops = stats["kernel_drops"]
    check(stats["packets"] == n, "%s: the kernel saw %d packets, trafgen sent %d: %r",
          what, stats["packets"], n, stats)
    check(stats["received"] + drops == n, "%s: received %d + kernel_drops %d != %d sent: %r",
          what, stats["received"], drops, n, stats)
    check(stats["ring_drops"] == 0, "%s: %d records dropped between threads: %r",
          what, stats["ring_drops"], stats)
    check(stats["records"] == stats["received"], "%s: records %d != received %d",
          what, stats["records"], stats["received"])
    check(len(recs) == stats["received"], "%s: %d lines on stdout, %d received",
          what, len(recs), stats["received"])
    return drops


def cmd_udp(out_path, err_path, n, select, mode):
    n = int(n)
    recs, stats = load(out_path, err_path)
    what = "udp/%s/%s" % (select, mode)
    check(stats["workers"] == 2, "%s: workers %r", what, stats.get("workers"))
    check(stats["mode"] == mode, "%s: --stats says mode %r", what, stats.get("mode"))
    drops = counts_exact(recs, stats, n, what)
    for r in recs:
        check((r.get("src"), r.get("dst"), r.get("proto"), r.get("family")) ==
              (SRC, DST, "udp", "inet") and r.get("wire_len") == WIRE_LEN and
              r.get("cap_len") == WIRE_LEN and r.get("direction") == "host" and
              r.get("worker") in (0, 1),
              "%s: a record that is not one of trafgen's: %r", what, r)
    got = collections.Counter((r["sport"], r["dport"]) for r in recs)
    want = udp_expected(n)
    if drops == 0:
        if got != want:
            extra, missing = got - want, want - got
            raise Fail("%s: the (sport, dport) multiset differs from trafgen's: %d extra %s, "
                       "%d missing %s" % (what, sum(extra.values()), list(extra.items())[:5],
                                          sum(missing.values()), list(missing.items())[:5]))
    else:
        over = got - want
        check(not over, "%s: packets trafgen did not send (or twice): %r", what,
              list(over.items())[:5])
        seen = collections.Counter((r["time_ns"], r["sport"], r["dport"]) for r in recs)
        dup = [k for k, c in seen.items() if c > 1]
        check(not dup, "%s: records repeated: %r", what, dup[:5])

    per_worker = collections.Counter(r["worker"] for r in recs)
    figures = "%d packets, %d kernel drops, worker split %d/%d, mode %s" % (
        len(recs), drops, per_worker[0], per_worker[1], stats["mode"])
    if select == "hash":
        by_tuple = collections.defaultdict(set)
        for r in recs:
            by_tuple[(r["src"], r["sport"], r["dst"], r["dport"], r["proto"])].add(r["worker"])
        split = [k for k, w in by_tuple.items() if len(w) != 1]
        check(not split, "%s: %d of %d 5-tuples on more than one worker, e.g. %r", what,
              len(split), len(by_tuple), split[:3])
        tuples = collections.Counter(next(iter(w)) for w in by_tuple.values())
        # 1000 tuples hashed over 2 workers: both have some (else the check
        # above proves nothing)
        check(tuples[0] > 0 and tuples[1] > 0, "%s: every 5-tuple on one worker: %r", what,
              tuples)
        figures += ", %d 5-tuples each on one worker (%d/%d)" % (len(by_tuple), tuples[0],
                                                                 tuples[1])
    elif select == "lb":
        diff = abs(per_worker[0] - per_worker[1])
        check(diff <= len(recs) / 10,
              "%s: lb split %d/%d is not even within 10%%", what, per_worker[0], per_worker[1])
    elif select.startswith("port:"):
        port = int(select[5:])
        bad = [r for r in recs if r["worker"] != (1 if r["dport"] == port else 0)]
        check(not bad, "%s: %d packets on the wrong worker (dport %d → 1, else 0), e.g. %r",
              what, len(bad), port, [(r["dport"], r["worker"]) for r in bad[:5]])
        on1 = sum(1 for r in recs if r["dport"] == port)
        check(on1 > 0, "%s: no packet to port %d at all", what, port)
        figures += ", %d to port %d" % (on1, port)
    elif select.startswith("all:"):
        k = int(select[4:])
        bad = [r for r in recs if r["worker"] != k]
        check(not bad, "%s: %d packets not on worker %d, e.g. %r", what, len(bad), k,
              [(r["dport"], r["worker"]) for r in bad[:5]])
    elif select == "parity":
        bad = [r for r in recs if r["worker"] != r["dport"] & 1]
        check(not bad, "%s: %d packets not on worker dport & 1, e.g. %r", what, len(bad),
              [(r["dport"], r["worker"]) for r in bad[:5]])
    else:
        raise Fail("unknown selection %r" % select)
    print("%s: %s" % (what, figures))


def cmd_tcp(out_path, err_path, conns, port):
    conns, port = int(conns), int(port)
    recs, stats = load(out_path, err_path)
    check(stats["kernel_drops"] == 0 and stats["ring_drops"] == 0,
          "tcp: drops: %r", stats)
    check(len(recs) == stats["received"] == stats["packets"],
          "tcp: %d lines, stats %r", len(recs), stats)
    flows = collections.defaultdict(lambda: {"workers": set(), "dirs": collections.Counter(),
                                             "flags": set()})
    for r in recs:
        check(r.get("proto") == "tcp" and port in (r.get("sport"), r.get("dport")),
              "tcp: a record not of the test's connections: %r", r)
        if r["dport"] == port:
            key, d = (r["src"], r["sport"], r["dst"], r["dport"]), "c2s"
        else:
            key, d = (r["dst"], r["dport"], r["src"], r["sport"]), "s2c"
        f = flows[key]
        f["workers"].add(r["worker"])
        f["dirs"][d] += 1
        f["flags"].add((d, tuple(sorted(r.get("tcp_flags", [])))))
    check(len(flows) == conns, "tcp: %d connections seen, %d made: %r", len(flows), conns,
          sorted(flows))
    for key, f in flows.items():
        check(f["dirs"]["c2s"] >= 5 and f["dirs"]["s2c"] >= 5,
              "tcp: connection %r not seen both ways: %r", key, f["dirs"])
        # the handshake and the close, each way
        for d, flags in (("c2s", ("SYN",)), ("s2c", ("ACK", "SYN")), ("c2s", "FIN"),
                         ("s2c", "FIN")):
            ok = (d, flags) in f["flags"] if isinstance(flags, tuple) else \
                any(x == d and flags in fl for x, fl in f["flags"])
            check(ok, "tcp: connection %r: no %s %s in %r", key, d, flags, sorted(f["flags"]))
        check(len(f["workers"]) == 1, "tcp: connection %r on workers %r (%r)", key,
              sorted(f["workers"]), f["dirs"])
    per = collections.Counter(next(iter(f["workers"])) for f in flows.values())
    print("tcp: %d connections, %d packets, each connection's both directions on one worker "
          "(connections per worker %d/%d)" % (len(flows), len(recs), per[0], per[1]))


def cmd_file(out_path, err_path, n, ended):
    n = int(n)
    recs, stats = load(out_path, err_path)
    check(stats["mode"] == "file" and stats["workers"] == 1, "file: stats %r", stats)
    check(len(recs) == stats["received"] == stats["packets"] == n,
          "file: %d lines, stats %r, %d expected", len(recs), stats, n)
    got = [(r["sport"], r["dport"]) for r in recs]
    want = [(SPORT0 + i % NSPORT, DPORT0 + i % NDPORT) for i in range(n)]
    check(got == want, "file: ports in file order differ: first %r, want %r", got[:5], want[:5])
    times = [r["time_ns"] for r in recs]
    check(times == sorted(times) and all(r["ifindex"] == 0 for r in recs),
          "file: time or ifindex off: %r", recs[:2])
    check(stats["ended"] == (ended == "true"), "file: ended %r, want %s: %r", stats["ended"],
          ended, stats)
    check(("last_error" in stats) == (ended != "true"), "file: last_error: %r", stats)
    print("file: %d packets in order, ended %s%s" % (len(recs), stats["ended"],
          ", last_error %r" % stats["last_error"] if "last_error" in stats else ""))


def main():
    cmds = {"udp": cmd_udp, "tcp": cmd_tcp, "file": cmd_file}
    try:
        cmds[sys.argv[1]](*sys.argv[2:])
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
