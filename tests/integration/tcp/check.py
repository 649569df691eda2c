#!/usr/bin/python3
"""Checks for test_tcp.sh over recv.py's output file.
  check.py OUT exact N         every seq 1..N exactly once, in order
  check.py OUT accounted N     in order, and received + missed (gap frames) == N
  check.py OUT tail N          in order, no repeats, and the last connection got
                               every record from its first to N (what went to
                               connections the collector closed unread is lost:
                               plain TCP has no acknowledgements)
  check.py OUT count           prints the number of seq frames received"""
import json, sys

out, what = sys.argv[1], sys.argv[2]
seqs, missed, conns, byconn = [], 0, set(), {}
for line in open(out):
    f = json.loads(line)
    if f["tag"] == "seq":
        seqs.append(f["record"]["i"])
        conns.add(f["conn"])
        byconn.setdefault(f["conn"], []).append(f["record"]["i"])
    elif f["tag"] == "nlgate.gap":
        missed += f["record"]["missed"]
if what == "count":
    print(len(seqs))
    sys.exit(0)
n = int(sys.argv[3])
if any(b <= a for a, b in zip(seqs, seqs[1:])):
    bad = next(i for i, (a, b) in enumerate(zip(seqs, seqs[1:])) if b <= a)
    sys.exit(f"out of order or repeated at {bad}: {seqs[bad:bad + 2]}")
if what == "exact":
    if seqs != list(range(1, n + 1)):
        sys.exit(f"got {len(seqs)} records, want 1..{n} exactly once"
                 f" (first missing: {next((i for i in range(1, n + 1) if i not in set(seqs)), None)})")
elif what == "tail":
    last = byconn[max(byconn)]
    if last != list(range(last[0], n + 1)):
        sys.exit(f"the last connection got {len(last)} records, not {last[0]}..{n}")
elif what == "accounted":
    if len(seqs) + missed != n:
        sys.exit(f"received {len(seqs)} + announced missing {missed} != sent {n}")
    if not missed:
        sys.exit("no gap was announced: the consumer never fell behind")
print(f"ok: {len(seqs)} received, {missed} announced missing, {len(conns)} connection(s)")
