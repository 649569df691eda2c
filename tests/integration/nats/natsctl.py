#!/usr/bin/env python3
"""A small NATS client for the NATS output's tests, written from the protocol
(https://docs.nats.io/reference/reference-protocols/nats-protocol) and the
JetStream API subjects, independent of libnats; frames are decoded with
python3-msgpack.

  natsctl.py PORT add-stream NAME SUBJECT...     a file stream (2 min dedup window)
  natsctl.py PORT info NAME                      "messages=M first=F last=L"
  natsctl.py PORT purge NAME                     empty the stream
  natsctl.py PORT check NAME N [TAG]             read every message back; check that the
                                                 records tagged TAG (default "t") carry
                                                 n = 1..N exactly once; one summary line
  natsctl.py PORT sub SUBJECT N SECONDS READY    core NATS: count records until N arrive
                                                 (READY is touched once subscribed)
"""
import base64
import json
import os
import socket
import sys
import time

import msgpack


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        self.buf = b""
        self.sid = 0
        line = self._line()
        if not line.startswith(b"INFO "):
            raise SystemExit("natsctl: not a NATS server: %r" % line[:80])
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                       b'"no_responders":true,"protocol":1,"name":"natsctl"}\r\nPING\r\n')
        while True:
            op = self.read()
            if op[0] == "PONG":
                break

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise SystemExit("natsctl: the server closed the connection")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """The next protocol message: (op, subject, sid, reply, headers, data)."""
        while True:
            line = self._line()
            parts = line.split()
            if not parts:
                continue
            op = parts[0].decode().upper()
            if op == "PING":
                self.s.sendall(b"PONG\r\n")
                continue
            if op in ("+OK", "INFO"):
                continue
            if op == "-ERR":
                raise SystemExit("natsctl: server error: %s" % line.decode())
            if op == "MSG":
                subj, sid = parts[1].decode(), parts[2].decode()
                reply = parts[3].decode() if len(parts) == 5 else None
                data = self._bytes(int(parts[-1]))
                return op, subj, sid, reply, {}, data
            if op == "HMSG":
                subj, sid = parts[1].decode(), parts[2].decode()
                reply = parts[3].decode() if len(parts) == 6 else None
                hlen, tlen = int(parts[-2]), int(parts[-1])
                raw = self._bytes(tlen)
                return op, subj, sid, reply, parse_headers(raw[:hlen]), raw[hlen:]
            return op, None, None, None, {}, b""

    def sub(self, subject):
        self.sid += 1
        self.s.sendall(b"SUB %s %d\r\n" % (subject.encode(), self.sid))
        return str(self.sid)

    def requests(self, subject_payloads):
        """Send every request at once, return the replies in order."""
        inbox = "_INBOX.natsctl%d" % os.getpid()
        sid = self.sub(inbox + ".*")
        out = []
        for i, (subj, payload) in enumerate(subject_payloads):
            out.append(b"PUB %s %s.%d %d\r\n%s\r\n" % (subj.encode(), inbox.encode(), i,
                                                        len(payload), payload))
        self.s.sendall(b"".join(out))
        replies = [None] * len(subject_payloads)
        left = len(replies)
        while left:
            op, subj, rsid, _, hdrs, data = self.read()
            if rsid != sid:
                continue
            i = int(subj.rsplit(".", 1)[1])
            if replies[i] is None:
                left -= 1
            replies[i] = (hdrs, data)
        self.s.sendall(b"UNSUB %s\r\n" % sid.encode())
        return replies

    def request(self, subject, payload):
        return self.requests([(subject, payload)])[0]


def parse_headers(raw):
    lines = raw.decode("utf-8", "replace").split("\r\n")
    h = {}
    if lines and lines[0].startswith("NATS/1.0"):
        status = lines[0][8:].strip()
        if status:
            h["Status"] = status
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            h[k.strip()] = v.strip()
    return h


def api(c, subject, req):
    hdrs, data = c.request(subject, json.dumps(req).encode())
    if hdrs.get("Status", "").startswith("503"):
        raise SystemExit("natsctl: no responders for %s (JetStream off?)" % subject)
    r = json.loads(data)
    if "error" in r:
        raise SystemExit("natsctl: %s: %s" % (subject, r["error"]))
    return r


def frames(data):
    unp = msgpack.Unpacker(raw=False, timestamp=0, strict_map_key=False)
    unp.feed(data)
    return list(unp)


def add_stream(c, name, subjects):
    api(c, "$JS.API.STREAM.CREATE." + name, {
        "name": name, "subjects": subjects, "storage": "file", "retention": "limits",
        "duplicate_window": 120 * 10**9, "num_replicas": 1})
    print("stream %s on %s" % (name, ",".join(subjects)))


def info(c, name):
    st = api(c, "$JS.API.STREAM.INFO." + name, {})["state"]
    return st["messages"], st["first_seq"], st["last_seq"]


def check(c, name, n, tag):
    msgs, first, last = info(c, name)
    seen = {}
    ids = {}
    records = gaps = missed = bad = 0
    problems = []
    order_breaks = 0
    prev = 0
    seqs = list(range(first, last + 1)) if msgs else []
    for at in range(0, len(seqs), 500):
        chunk = seqs[at:at + 500]
        reps = c.requests([("$JS.API.STREAM.MSG.GET." + name, json.dumps({"seq": s}).encode())
                           for s in chunk])
        for s, (_, data) in zip(chunk, reps):
            r = json.loads(data)
            if "error" in r:
                problems.append("seq %d: %s" % (s, r["error"].get("description")))
                continue
            m = r["message"]
            hdrs = parse_headers(base64.b64decode(m.get("hdrs", "")))
            mid = hdrs.get("Nats-Msg-Id")
            if not mid:
                problems.append("seq %d: no Nats-Msg-Id" % s)
            elif mid in ids:
                problems.append("seq %d: id %s also at seq %d" % (s, mid, ids[mid]))
            else:
                ids[mid] = s
            fr = frames(base64.b64decode(m.get("data", "")))
            want = int(hdrs.get("Nlgate-Records", "1"))
            got = sum(1 for f in fr if f[0] != "nlgate.gap")
            if want != got:
                problems.append("seq %d: Nlgate-Records %d, %d records" % (s, want, got))
            for f in fr:
                if len(f) != 3:
                    bad += 1
                    continue
                ftag, _, rec = f
                if ftag == "nlgate.gap":
                    gaps += 1
                    missed += rec.get("missed", 0)
                    continue
                if ftag != tag:
                    continue
                records += 1
                k = rec.get("n")
                if k in seen:
                    problems.append("record %r at seq %d and %d" % (k, seen[k], s))
                else:
                    seen[k] = s
                if isinstance(k, int):
                    if k < prev:
                        order_breaks += 1
                    prev = k
    missing = [k for k in range(1, n + 1) if k not in seen]
    extra = [k for k in seen if not (isinstance(k, int) and 1 <= k <= n)]
    if missing:
        problems.append("%d missing (first %s)" % (len(missing), missing[:5]))
    if extra:
        problems.append("%d out of range (%s)" % (len(extra), extra[:5]))
    if bad:
        problems.append("%d frames not [tag, time, record]" % bad)
    print("messages=%d records=%d unique=%d gaps=%d missed=%d reordered=%d problems=%d %s" %
          (msgs, records, len(seen), gaps, missed, order_breaks, len(problems),
           "; ".join(problems[:5])))


def sub_count(c, subject, n, secs, ready):
    sid = c.sub(subject)
    c.s.sendall(b"PING\r\n")
    while c.read()[0] != "PONG":
        pass
    open(ready, "w").write("ready\n")
    deadline = time.time() + secs
    c.s.settimeout(0.5)
    records = msgs = gaps = 0
    nums = set()
    while records < n and time.time() < deadline:
        try:
            op, _, rsid, _, hdrs, data = c.read()
        except socket.timeout:
            continue
        if rsid != sid:
            continue
        msgs += 1
        for f in frames(data):
            if f[0] == "nlgate.gap":
                gaps += 1
            else:
                records += 1
                if isinstance(f[2], dict) and "n" in f[2]:
                    nums.add(f[2]["n"])
    print("messages=%d records=%d unique=%d gaps=%d" % (msgs, records, len(nums), gaps))


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    c = Conn(argv[1])
    cmd = argv[2]
    if cmd == "add-stream":
        add_stream(c, argv[3], argv[4:])
    elif cmd == "purge":
        api(c, "$JS.API.STREAM.PURGE." + argv[3], {})
    elif cmd == "info":
        print("messages=%d first=%d last=%d" % info(c, argv[3]))
    elif cmd == "check":
        check(c, argv[3], int(argv[4]), argv[5] if len(argv) > 5 else "t")
    elif cmd == "sub":
        sub_count(c, argv[3], int(argv[4]), float(argv[5]), argv[6])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
