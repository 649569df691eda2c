#!/usr/bin/python3
"""Read an nlgate feed across reloads (test_reload.sh): one connection, kept
for the whole test; each "tick" frame's record is written as one line
"n version gen" (flushed), any other tag as "TAG <tag>", and "EOF" when the
gateway closes the connection. Decoded with python3-msgpack, not nlgate."""
import socket
import sys

import msgpack

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
out = open(sys.argv[2], "w", buffering=1)
out.write("CONNECTED\n")
u = msgpack.Unpacker(raw=False)
while True:
    data = s.recv(65536)
    if not data:
        out.write("EOF\n")
        break
    u.feed(data)
    for tag, _t, rec in u:
        if tag == "tick":
            out.write("%d %s %d\n" % (rec["n"], rec["version"], rec["gen"]))
        else:
            out.write("TAG %s\n" % tag)
