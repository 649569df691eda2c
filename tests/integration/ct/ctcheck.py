#!/usr/bin/python3
"""Compare `nlgate watch conntrack` JSON lines with the flows that existed.

usage: ctcheck.py EVENTS.jsonl KEYS.txt STATS.json MODE
KEYS.txt: the flows that existed, as ct_keys in flood.sh prints them.
MODE: exact    every flow in KEYS has a real (not synthetic) NEW and DESTROY, and
               nlgate counted no loss
      destroy  every flow in KEYS has a real DESTROY (NEW may be repaired by resync)
      lossy    some flow in KEYS lacks a real DESTROY (the negative control), and
               nlgate counted the loss
Prints a one-line summary; exits 1 when the mode's condition fails."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctkey import key  # noqa: E402

events, idfile, statsfile, mode = sys.argv[1:5]
want = set(x.strip() for x in open(idfile) if x.strip())
new_real, destroy_real, destroy_syn, live = set(), set(), set(), set()
for line in open(events):
    r = json.loads(line)
    i = key(r)
    if r["event"] == "new":
        if not r["dump"]:
            new_real.add(i)
        live.add(i)
    elif r["event"] == "destroy":
        (destroy_syn if r["synthetic"] else destroy_real).add(i)
        live.discard(i)
stats = {}
for line in open(statsfile):
    line = line.strip()
    if line.startswith("{"):
        stats = json.loads(line)
missing_destroy = want - destroy_real
missing_new = want - new_real
print(f"flows={len(want)} new={len(new_real & want)} destroy={len(destroy_real & want)} "
      f"synthetic={len(destroy_syn & want)} missing_destroy={len(missing_destroy)} "
      f"missing_new={len(missing_new)} left_live={len(live)} lost={stats.get('lost')} "
      f"deferred={stats.get('deferred')} resyncs={stats.get('resyncs')}")
ok = True
if mode == "exact":
    ok = not missing_destroy and not missing_new and stats.get("lost") == 0
elif mode == "destroy":
    ok = not missing_destroy
elif mode == "lossy":
    ok = bool(missing_destroy) and stats.get("lost", 0) > 0
# whatever was lost, the repaired view must end empty like the table
ok = ok and not live
sys.exit(0 if ok else 1)
