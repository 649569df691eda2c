#!/usr/bin/python3
"""Print the flows `nlgate watch conntrack` output says are live (new,
including dumped and resync-found flows, minus destroy, including synthetic),
one key per line as ct_keys prints them (ctkey.py), sorted. A partial last
line (the writer is still running) is ignored.

usage: ctview.py EVENTS.jsonl [--double]
--double: print instead the keys that got both a synthetic and a real
DESTROY (in reliable mode there must be none)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctkey import key  # noqa: E402

live, syn, real = set(), set(), set()
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    k = key(r)
    if r["event"] == "destroy":
        live.discard(k)
        (syn if r["synthetic"] else real).add(k)
    else:
        live.add(k)
out = (syn & real) if sys.argv[2:] == ["--double"] else live
for k in sorted(out):
    print(k)
