#!/usr/bin/python3
"""A strict reader of an nlgate feed for test_hostile.sh. Connects to
SOCKET (retrying for 5 s) and writes to OUT, line-buffered:
  CONNECTED
  T <n> <monotonic seconds>       a "tick" frame and when it arrived
  F <tag> <record as JSON>        any other frame (bytes as {"$bin": hex},
                                  bytes keys as "$bin:hex"), cut at 2000 bytes
  BAD <why>                       a frame that is not [str, Timestamp, value]
                                  or does not decode (python-msgpack,
                                  raw=False: strings must be UTF-8); it stops
  EOF                             the gateway closed the connection
Decoded with python3-msgpack, not with nlgate's code."""
import json
import socket
import sys
import time

import msgpack


def plain(x):
    if isinstance(x, (bytes, bytearray)):
        return {"$bin": bytes(x).hex()}
    if isinstance(x, dict):
        return {("$bin:" + k.hex() if isinstance(k, bytes) else str(k)): plain(v)
                for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, msgpack.Timestamp):
        return x.to_unix()
    return x


def main():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 5
    while True:
        try:
            s.connect(sys.argv[1])
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    out = open(sys.argv[2], "w", buffering=1)
    out.write("CONNECTED\n")
    u = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
    while True:
        data = s.recv(1 << 20)
        if not data:
            out.write("EOF\n")
            return
        u.feed(data)
        try:
            for frame in u:
                if (not isinstance(frame, list) or len(frame) != 3
                        or not isinstance(frame[0], str)
                        or not isinstance(frame[1], msgpack.Timestamp)):
                    out.write("BAD frame shape: %r\n" % (repr(frame)[:300],))
                    return
                tag, _t, rec = frame
                if tag == "tick":
                    if not isinstance(rec, dict) or not isinstance(rec.get("n"), int):
                        out.write("BAD tick record: %r\n" % (repr(rec)[:300],))
                        return
                    out.write("T %d %.6f\n" % (rec["n"], time.monotonic()))
                else:
                    out.write("F %s %s\n" % (tag, json.dumps(plain(rec), sort_keys=True, ensure_ascii=False)[:2000]))
        except Exception as e:  # a decode error: the stream is lost
            out.write("BAD decode: %s: %s\n" % (type(e).__name__, e))
            return


main()
