#!/usr/bin/python3
"""A TCP collector for test_tcp.sh: accepts connections one after another,
decodes the [tag, time, record] stream with python3-msgpack (an independent
decoder) and appends one JSON line per frame to OUT: {"conn": n, "tag": ..,
"record": ..}. Options make it misbehave: --pause K:S stops reading for S
seconds after K frames; --close-first M closes the first M connections at
once; --garbage writes junk to every client."""
import argparse, json, socket, sys, time

import msgpack

ap = argparse.ArgumentParser()
ap.add_argument("addr")
ap.add_argument("out")
ap.add_argument("--pause", default="")
ap.add_argument("--close-first", type=int, default=0)
ap.add_argument("--garbage", action="store_true")
a = ap.parse_args()
host, port = a.addr.rsplit(":", 1)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
srv.bind((host, int(port)))
srv.listen(8)
out = open(a.out, "a", buffering=1)
pause_k, pause_s = (int(x) for x in a.pause.split(":")) if a.pause else (-1, 0)
conn, frames = 0, 0
while True:
    c, _ = srv.accept()
    conn += 1
    out.write(json.dumps({"conn": conn, "tag": "_accept"}) + "\n")
    if conn <= a.close_first:
        c.close()
        continue
    if a.garbage:
        c.sendall(b"\xc1\xc1garbage\x00\xff" * 100)
    u = msgpack.Unpacker(raw=False, timestamp=0)
    while True:
        try:
            d = c.recv(65536)
        except OSError:
            d = b""
        if not d:
            break
        u.feed(d)
        for f in u:
            frames += 1
            out.write(json.dumps({"conn": conn, "tag": f[0], "ns": f[1].to_unix_nano(),
                                  "record": f[2]}) + "\n")
            if frames == pause_k:
                time.sleep(pause_s)
    c.close()
    out.write(json.dumps({"conn": conn, "tag": "_closed"}) + "\n")
