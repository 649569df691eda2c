#!/usr/bin/python3
"""A Fluentd Forward protocol v1 server for the tests, written from the
specification (github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1)
with python3-msgpack: an independent decoder of what nlgate sends.

One connection at a time (nlgate keeps one). With --key it speaks first:
HELO with a random nonce, checks the client's PING digest
sha512(salt + client_hostname + nonce + key), answers PONG with its own
digest sha512(salt + server_hostname + nonce + key), or PONG false and a
reason. Messages may be Message, Forward or PackedForward (entries as bin or
str); EventTime is ext type 0 (4-byte big-endian seconds, 4-byte
nanoseconds). Every message with a "chunk" option is answered {"ack": chunk}.

Writes one JSON line per event to --out:
  {"c": conn, "tag": t, "sec": s, "nsec": ns, "rec": {...}}
one per acknowledged message: {"c": conn, "ack": id, "size": n}
and one per thing it found wrong: {"c": conn, "error": "..."}.
--count skips the per-event lines (benchmarks): only acks and a final
{"events": n, "bytes": b, "secs": s, "cpu": c} at SIGTERM or EOF of the last.

Misbehaviour on demand: --drop K[,K...] closes the connection right after
the K-th message (counted over the whole run), without acknowledging it;
--garbage N and --close N make the first N connections get garbage bytes
then a close, or a close at once; --bad-digest answers PONG with a digest
made from another key; --no-ack N leaves the first N connections'
messages unacknowledged.
"""
import argparse
import hashlib
import json
import os
import resource
import signal
import socket
import struct
import sys
import time

import msgpack


def sha512_hex(*parts):
    h = hashlib.sha512()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
    return h.hexdigest()


def as_bytes(v):
    return v if isinstance(v, bytes) else str(v).encode()


class Conn:
    def __init__(self, sock, n, args, out):
        self.s, self.n, self.a, self.out = sock, n, args, out
        self.unp = msgpack.Unpacker(raw=False, strict_map_key=False)

    def emit(self, obj):
        if self.out:
            self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self.out.flush()

    def error(self, msg):
        self.emit({"c": self.n, "error": msg})

    def next_obj(self):
        """The next msgpack object, None at EOF."""
        while True:
            try:
                return next(self.unp)
            except StopIteration:
                pass
            data = self.s.recv(1 << 16)
            if not data:
                return None
            Server.bytes += len(data)
            self.unp.feed(data)

    def handshake(self):
        a = self.a
        nonce = os.urandom(16)
        auth = os.urandom(16) if a.user else b""
        self.s.sendall(msgpack.packb(["HELO", {"nonce": nonce, "auth": auth, "keepalive": True}],
                                     use_bin_type=True))
        ping = self.next_obj()
        if ping is None:
            return False
        if not (isinstance(ping, list) and len(ping) == 6 and ping[0] == "PING"):
            self.error("bad PING %r" % (ping,))
            return False
        _, host, salt, digest, user, pwdigest = ping
        reason = None
        if digest != sha512_hex(as_bytes(salt), as_bytes(host), nonce, a.key):
            reason = "shared_key mismatch"
        elif a.user:
            u, p = a.user.split(":", 1)
            if user != u or pwdigest != sha512_hex(auth, u, p):
                reason = "username/password mismatch"
        if reason:
            self.s.sendall(msgpack.packb(["PONG", False, reason, "", ""]))
            self.emit({"c": self.n, "refused": reason, "client": host})
            return False
        key = "not-" + a.key if a.bad_digest else a.key
        self.s.sendall(msgpack.packb(
            ["PONG", True, "", a.hostname, sha512_hex(as_bytes(salt), a.hostname, nonce, key)]))
        self.emit({"c": self.n, "handshake": host})
        return True

    def event(self, tag, t, rec):
        if isinstance(t, msgpack.ExtType):
            if t.code != 0 or len(t.data) != 8:
                self.error("time ext %d of %d bytes" % (t.code, len(t.data)))
                return
            sec, nsec = struct.unpack(">II", t.data)
            if nsec >= 10**9:
                self.error("nanoseconds %d" % nsec)
        elif isinstance(t, int):
            sec, nsec = t, 0
        else:
            self.error("time %r" % (t,))
            return
        Server.events += 1
        if not self.a.count:
            self.emit({"c": self.n, "tag": tag, "sec": sec, "nsec": nsec, "rec": rec})

    def message(self, m):
        """One event message; returns its option map (or None)."""
        if not (isinstance(m, list) and len(m) in (2, 3, 4) and isinstance(m[0], str)):
            self.error("not a Forward message: %r" % (m,))
            return None
        tag, second = m[0], m[1]
        if isinstance(second, (bytes, str)):  # PackedForward
            opt = m[2] if len(m) > 2 else {}
            raw = second if isinstance(second, bytes) else second.encode("utf-8", "surrogateescape")
            n = 0
            if self.a.count:
                n = opt.get("size", 0)
                Server.events += n
            else:
                for e in self.entries(raw):
                    if not (isinstance(e, list) and len(e) == 2):
                        self.error("entry %r" % (e,))
                        continue
                    self.event(tag, e[0], e[1])
                    n += 1
                if opt.get("size", n) != n:
                    self.error("size %r but %d entries" % (opt.get("size"), n))
            return opt
        if isinstance(second, list):  # Forward
            for e in second:
                self.event(tag, e[0], e[1])
            return m[2] if len(m) > 2 else None
        self.event(tag, second, m[2] if len(m) > 2 else None)  # Message
        return m[3] if len(m) > 3 else None

    @staticmethod
    def entries(raw):
        u = msgpack.Unpacker(raw=False, strict_map_key=False)
        u.feed(raw)
        return list(u)

    def serve(self):
        a = self.a
        if self.n <= a.close:
            return
        if self.n <= a.garbage:
            self.s.sendall(b"\xc1\xff\x00garbage\x93\x00" * 8)
            return
        if a.key and not self.handshake():
            return
        while True:
            m = self.next_obj()
            if m is None:
                return
            Server.messages += 1
            opt = self.message(m)
            if Server.messages in a.drop:
                self.emit({"c": self.n, "dropped_at": Server.messages})
                return
            if isinstance(opt, dict) and "chunk" in opt and self.n > a.no_ack:
                self.s.sendall(msgpack.packb({"ack": opt["chunk"]}))
                self.emit({"c": self.n, "ack": opt["chunk"], "size": opt.get("size")})


class Server:
    events = messages = bytes = 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--out")
    p.add_argument("--key", default="")
    p.add_argument("--hostname", default="receiver.test")
    p.add_argument("--user", default="", help="USER:PASSWORD to require")
    p.add_argument("--drop", default="")
    p.add_argument("--garbage", type=int, default=0)
    p.add_argument("--close", type=int, default=0)
    p.add_argument("--bad-digest", action="store_true")
    p.add_argument("--no-ack", type=int, default=0, help="the first N connections get no acks")
    p.add_argument("--count", action="store_true")
    a = p.parse_args()
    a.drop = {int(x) for x in a.drop.split(",") if x}

    out = open(a.out, "w") if a.out else None
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(16)
    t0 = None

    def summary(*_):
        if out:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            out.write(json.dumps({"events": Server.events, "messages": Server.messages,
                                  "bytes": Server.bytes,
                                  "secs": time.monotonic() - t0 if t0 else 0,
                                  "cpu": ru.ru_utime + ru.ru_stime}) + "\n")
            out.flush()
        sys.exit(0)

    signal.signal(signal.SIGTERM, summary)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % ls.getsockname()[1])
        os.rename(a.port_file + ".tmp", a.port_file)
    n = 0
    while True:
        s, _ = ls.accept()
        # acks are small and come one by one: Nagle would hold each behind the last
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t0 is None:
            t0 = time.monotonic()
        n += 1
        if out:
            out.write(json.dumps({"c": n, "connected": True}) + "\n")
            out.flush()
        try:
            Conn(s, n, a, out).serve()
        except (ConnectionError, OSError) as e:
            if out:
                out.write(json.dumps({"c": n, "reset": str(e)}) + "\n")
        finally:
            s.close()


if __name__ == "__main__":
    main()
