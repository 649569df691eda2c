#!/usr/bin/python3
"""Print the ids of the flows `nlgate watch conntrack` output says are live
(new, including dumped and resync-found flows, minus destroy, including
synthetic), sorted. A partial last line (the writer is still running) is
ignored."""
import json
import sys

live = set()
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r["event"] == "destroy":
        live.discard(r["id"])
    else:
        live.add(r["id"])
for i in sorted(live, key=str):
    print(i)
