#!/usr/bin/python3
"""A feed consumer with a plain msgpack library (Debian's python3-msgpack).

Connects to an nlgate unix feed and prints one JSON line per frame:
{"tag": ..., "time": seconds, "record": {...}}. The feed is a stream of
msgpack arrays [tag, time, record]: time is the msgpack timestamp extension,
record a map (or any value a script sent). Bytes that are not UTF-8 come as
msgpack bin and are printed as hex.

  consumer.py [SOCKET] [--tag PREFIX] [--count N]

--tag keeps the frames whose tag starts with PREFIX (e.g. "alert."), --count
stops after N of them (exit 0); the feed closing ends it too (exit 0).
"""
import argparse
import json
import socket
import sys

import msgpack


def plain(v):
    """msgpack values → what json can print."""
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, msgpack.Timestamp):
        return v.to_unix()
    raise TypeError(f"cannot print {type(v).__name__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("socket", nargs="?", default="nlgate.sock")
    ap.add_argument("--tag", default="", help="only frames whose tag starts with this")
    ap.add_argument("--count", type=int, default=0, help="stop after this many frames")
    a = ap.parse_args()

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.socket)
    # recv and feed: a file object's read(n) would wait for n bytes, so a
    # quiet feed's last frames would sit in its buffer
    unpacker = msgpack.Unpacker(raw=False)
    seen = 0
    while True:
        data = s.recv(65536)
        if not data:
            return 0  # the feed closed
        unpacker.feed(data)
        for tag, time, record in unpacker:
            if not tag.startswith(a.tag):
                continue
            line = {"tag": tag, "time": time.to_unix(), "record": record}
            print(json.dumps(line, default=plain), flush=True)
            seen += 1
            if a.count and seen >= a.count:
                return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
