#!/usr/bin/python3
"""Checks a receiver.py output file against what send.lua sent.

  check.py OUT N [TAG]   records n = 1..N tagged TAG (default nlgate.seq)

Every record arrived at least once; within a connection the numbers only
grow (resends start a connection, oldest first); every EventTime has
nanoseconds below 10^9 and is within a second of the record's own t
(gw.now() when it was sent), and the nanoseconds are not all zero; the
receiver found nothing malformed; the distinct acknowledged messages hold
exactly N records plus the gap records; records missing are exactly what
nlgate.gap records announced. Prints one summary line; exit 1 on a failure.
"""
import json
import sys


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    tag = sys.argv[3] if len(sys.argv) > 3 else "nlgate.seq"
    gap_tag = tag.rsplit(".", 1)[0] + ".nlgate.gap" if "." in tag else "nlgate.gap"
    seen, last, acks, bad = {}, {}, {}, []
    events = missed = gaps = conns = 0
    nonzero_ns = 0
    for line in open(path):
        o = json.loads(line)
        c = o.get("c")
        if "connected" in o:
            conns += 1
        if "error" in o:
            bad.append(o["error"])
        if "ack" in o:
            acks[o["ack"]] = o["size"]
        if "tag" not in o:
            continue
        events += 1
        t = o["sec"] + o["nsec"] / 1e9
        if o["nsec"] >= 10**9:
            bad.append("nsec %d" % o["nsec"])
        if o["nsec"]:
            nonzero_ns += 1
        if o["tag"] == gap_tag:
            missed += o["rec"]["missed"]
            gaps += 1
            continue
        if o["tag"] != tag:
            bad.append("tag %r" % o["tag"])
            continue
        r = o["rec"]
        k = r["n"]
        if abs(t - r["t"]) > 1.0:
            bad.append("record %d: EventTime %.9f, sent at %.6f" % (k, t, r["t"]))
        if c in last and k <= last[c]:
            bad.append("connection %s: %d after %d" % (c, k, last[c]))
        last[c] = k
        seen[k] = seen.get(k, 0) + 1
    lost = [k for k in range(1, n + 1) if k not in seen]
    dups = sum(v - 1 for v in seen.values())
    acked = sum(acks.values())
    print("events=%d distinct=%d dups=%d lost=%d missed=%d gaps=%d conns=%d acked_msgs=%d "
          "acked_records=%d nonzero_ns=%d bad=%d %s" %
          (events, len(seen), dups, len(lost), missed, gaps, conns, len(acks), acked,
           nonzero_ns, len(bad), "; ".join(bad[:5])))
    ok = not bad and len(lost) == missed and nonzero_ns > 0
    if acks:
        ok = ok and acked == len(seen) + gaps
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
