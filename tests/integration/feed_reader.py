#!/usr/bin/python3
"""Independent reader of an nlgate unix feed, for test_pipeline.sh.

Decodes the stream with python3-msgpack (not nlgate's code): a sequence of
msgpack arrays [tag, time, record], time the timestamp ext -1 (decoded to
msgpack.Timestamp), record a map keyed by field name. It checks the stream
that tests/integration/pipeline.lua produces:

  "sock"  one per socket per poll (the view sent as is)
  "dump"  one per poll, after that poll's records: {poll, n, seen, errors,
          src = batch:stats(), feed = gw.stats().unix[1], ...}
  "tick"  from a gw.every timer

Checks: frame shape and types; timestamps near now; each poll's "sock"
records match the poll's count and, as (proto, family, src, sport, dst,
dport, state), exactly the sockets the test opened (--expect); records carry
the schema fields (TCP ones tcp_info and cong); polls keep coming after the
handlers raised (errors counted); and extra clients that connect, read a
little or nothing, and leave cost the main client nothing: no gap, no
missed poll, the feed's client count back to 1.
Prints a one-line JSON summary; exits 1 with the reasons on failure.
Use --frames N to just print the first N frames as JSON (debugging).
"""
import argparse
import ipaddress
import json
import socket
import sys
import time

import msgpack

BASE_FIELDS = ("family", "proto", "state", "src", "sport", "dst", "dport", "uid", "inode",
               "cookie")
TCP_INFO_FIELDS = ("rtt_us", "snd_cwnd", "total_retrans", "rto_us", "snd_mss")


class Fail(Exception):
    pass


def canon(a):
    return ipaddress.ip_address(a).compressed


def key_of(r):
    return (r["proto"], r["family"], canon(r["src"]), int(r["sport"]), canon(r["dst"]),
            int(r["dport"]), r["state"])


class Feed:
    """One client connection: frames out of a byte stream."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False, timestamp=0, strict_map_key=False)

    def frames(self):
        while True:
            for obj in self.unpacker:
                yield obj
            data = self.sock.recv(65536)
            if not data:
                raise Fail("the feed closed the connection")
            self.unpacker.feed(data)

    def close(self):
        self.sock.close()


def check_frame(obj, now):
    if not isinstance(obj, list) or len(obj) != 3:
        raise Fail("frame is not a 3-element array: %r" % (obj,))
    tag, t, rec = obj
    if not isinstance(tag, str):
        raise Fail("tag is not a string: %r" % (tag,))
    if not isinstance(t, msgpack.Timestamp):
        raise Fail("time is not a msgpack timestamp (ext -1): %r" % (t,))
    if abs(t.to_unix() - now) > 60:
        raise Fail("time %.3f is more than a minute from now (%.3f)" % (t.to_unix(), now))
    if not isinstance(rec, dict):
        raise Fail("record of %s is not a map: %r" % (tag, rec))
    return tag, t, rec


def check_record(r, cong):
    missing = [f for f in BASE_FIELDS if f not in r]
    if missing:
        raise Fail("sock record lacks %s: %r" % (missing, r))
    if r["family"] not in ("inet", "inet6") or r["proto"] not in ("tcp", "udp"):
        raise Fail("bad family/proto: %r" % (r,))
    if r["uid"] != 0:
        raise Fail("uid %r, the helper runs as root: %r" % (r["uid"], r))
    if r["proto"] == "tcp" and r["state"] not in ("TIME-WAIT", "SYN-RECV"):
        miss = [f for f in TCP_INFO_FIELDS if f not in r]
        if miss:
            raise Fail("TCP record lacks tcp_info fields %s: %r" % (miss, r))
        if cong and r.get("cong") != cong:
            raise Fail("cong %r, the namespace's default is %r" % (r.get("cong"), cong))
        if not isinstance(r["inode"], int) or r["inode"] <= 0:
            raise Fail("inode %r: %r" % (r["inode"], r))
        if r["state"] == "ESTAB" and not r["rtt_us"] > 0:
            raise Fail("established TCP socket with rtt_us %r" % r["rtt_us"])
    if r["proto"] == "udp" and r.get("rtt_us") is not None:
        raise Fail("UDP record carries tcp_info (rtt_us=%r)" % r["rtt_us"])
    if not isinstance(r["cookie"], int) or r["cookie"] <= 0:
        raise Fail("cookie %r: %r" % (r["cookie"], r))


def extra_clients(path, timeout):
    """Connect and leave in three ways; return how many connections were made."""
    a = Feed(path, timeout)          # reads a few frames, then leaves
    it = a.frames()
    for _ in range(3):
        next(it)
    a.close()
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)   # connects, leaves at once
    b.connect(path)
    b.close()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)   # never reads, stays a while
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(path)
    return 3, c


def run(args):
    expect = None
    if args.expect:
        expect = {key_of(e) for e in json.load(open(args.expect))}
    feed = Feed(args.socket, args.timeout)
    deadline = time.time() + args.timeout
    tags = {}
    pending = []          # sock records since the last dump
    synced = False        # a dump seen: the next group is a whole poll
    polls = []            # dump records, in order
    complete = 0          # polls whose records matched the expectation
    extra_state = None    # None, then (poll after which they connected, count, lingering sock)
    after_extra = 0
    accepted_before = None
    for obj in feed.frames():
        now = time.time()
        if now > deadline:
            raise Fail("timed out: %d polls seen, %d complete; tags %r" %
                       (len(polls), complete, tags))
        tag, t, rec = check_frame(obj, now)
        tags[tag] = tags.get(tag, 0) + 1
        if tag == "nlgate.gap":
            raise Fail("the main client was sent a gap: %r" % (rec,))
        if tag == "sock":
            check_record(rec, args.cong)
            pending.append(rec)
            continue
        if tag == "tick":
            if not isinstance(rec.get("now"), (int, float)):
                raise Fail("tick without a time: %r" % (rec,))
            continue
        if tag != "dump":
            raise Fail("unexpected tag %r" % tag)
        if polls and rec["poll"] != polls[-1]["poll"] + 1:
            raise Fail("poll %d follows poll %d: a poll went missing" %
                       (rec["poll"], polls[-1]["poll"]))
        polls.append(rec)
        group, pending = pending, []
        if synced:
            if len(group) != rec["n"] or rec["seen"] != rec["n"]:
                raise Fail("poll %d: %d sock frames, batch of %d, handler saw %d" %
                           (rec["poll"], len(group), rec["n"], rec["seen"]))
            src = rec.get("src") or {}
            if src.get("last_records") != rec["n"]:
                raise Fail("poll %d: batch:stats().last_records is %r, the batch has %d" %
                           (rec["poll"], src.get("last_records"), rec["n"]))
            if expect is not None:
                got = {key_of(r) for r in group}
                if len(got) != len(group):
                    raise Fail("poll %d: a socket was sent twice" % rec["poll"])
                if got != expect:
                    raise Fail("poll %d: records differ from the sockets opened:\n"
                               "  only sent: %s\n  only opened: %s" %
                               (rec["poll"], sorted(got - expect), sorted(expect - got)))
            complete += 1
        synced = True
        # the raises in pipeline.lua: poll 3's :each, poll 5's :dump
        if rec["poll"] >= 4 and rec["errors"] < 1:
            raise Fail("poll %d: the :each handler raised in poll 3, errors=%r" %
                       (rec["poll"], rec["errors"]))
        if rec["poll"] >= 6 and rec["errors"] < 2:
            raise Fail("poll %d: the :dump handler raised in poll 5, errors=%r" %
                       (rec["poll"], rec["errors"]))
        fd = rec.get("feed") or {}
        if args.extra and extra_state is None and rec["poll"] >= 3:
            accepted_before = fd.get("accepted")
            n, lingering = extra_clients(args.socket, args.timeout)
            extra_state = (rec["poll"], n, lingering)
        elif extra_state is not None:
            after_extra += 1
            if after_extra == 3 and extra_state[2] is not None:
                extra_state[2].close()           # the silent client leaves
                extra_state = (rec["poll"], extra_state[1], None)
                after_extra = 0
            elif extra_state[2] is None and after_extra >= 3:
                if fd.get("clients") != 1:
                    raise Fail("the extra clients left, the feed still counts %r clients" %
                               fd.get("clients"))
                if accepted_before is not None and \
                        fd.get("accepted") != accepted_before + extra_state[1]:
                    raise Fail("feed accepted %r clients, expected %r" %
                               (fd.get("accepted"), accepted_before + extra_state[1]))
        done_extra = not args.extra or (extra_state is not None and extra_state[2] is None
                                        and after_extra >= 3)
        if complete >= args.min_polls and done_extra:
            break
    feed.close()
    return {"polls": len(polls), "complete": complete, "tags": tags,
            "last_poll": polls[-1]["poll"], "errors": polls[-1]["errors"],
            "feed": polls[-1].get("feed"), "maxrss_kb": polls[-1].get("maxrss_kb")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("socket")
    ap.add_argument("--expect", help="JSON list of the sockets opened (holder output)")
    ap.add_argument("--cong", help="congestion control every TCP record must name")
    ap.add_argument("--min-polls", type=int, default=6)
    ap.add_argument("--extra", action="store_true", help="exercise extra clients")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--frames", type=int, help="print N frames as JSON and exit")
    args = ap.parse_args()
    if args.frames:
        feed = Feed(args.socket, args.timeout)
        for i, (tag, t, rec) in enumerate(feed.frames()):
            print(json.dumps([tag, t.to_unix(), rec], default=repr))
            if i + 1 >= args.frames:
                break
        return 0
    try:
        summary = run(args)
    except Fail as e:
        print("feed_reader: FAIL: %s" % e, file=sys.stderr)
        return 1
    except (OSError, ValueError, msgpack.UnpackException) as e:
        print("feed_reader: FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print(json.dumps(summary, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
