"""Known traffic between two network namespaces for test_capture_flows.sh.

    traffic.py server READY_FILE
        (in namespace B) TCP on 10.98.0.2:5001 and [fd98::2]:5001: each
        connection sends an 8-byte header (the reply size M, big endian)
        then data until EOF; the server reads all of it, sends M bytes back
        and closes. UDP echo on 5353 and 6000, IPv4 and IPv6. Writes
        READY_FILE once every socket listens; runs until killed.

    traffic.py client MANIFEST NETNS_A NETNS_B IF_A IF_B
        (in namespace A) makes the traffic below and writes MANIFEST: one JSON
        object per flow made, with what is known of it independently of any
        capture (payload bytes each way, datagram counts, VLAN id).

Besides the kernel's own traffic, VLAN-tagged frames (id 42) are written by
hand with AF_PACKET: this kernel may have no 802.1Q support
(CONFIG_VLAN_8021Q unset: no vethX.42 devices), and AF_PACKET does not
need it. The socket on B's side is made from this process with setns(2),
then the process goes back to A.

Both directions of a tagged flow are sent from B's end: they reach A's
receive path, where the kernel moves the tag into the skb's metadata (the
packet sockets' TP_STATUS_VLAN_VALID). Frames sent from A's own end keep the
tag in the frame on A's transmit tap, but there the kernel's fanout hash
of them is no flow hash: packet_snd() moves the network header past the tag
while skb->protocol stays 802.1Q, so the flow dissector reads the IP header
as a second tag and the hash follows the IP total length. Hence one flow of
in-frame tags only, sent from A, one way, frames of one size (one hash: one
capture worker).
"""
import ctypes
import json
import os
import socket
import struct
import sys
import threading
import time

V4A, V4B = "10.98.0.1", "10.98.0.2"
V6A, V6B = "fd98::1", "fd98::2"
VL4A, VL4B = "10.97.0.1", "10.97.0.2"
VL6A, VL6B = "fd97::1", "fd97::2"
TCP_PORT, UDP_PORT, FRAG_PORT = 5001, 5353, 6000
VLAN = 42


# ---- the server (namespace B) -------------------------------------------------

def serve_tcp(lst):
    while True:
        c, _ = lst.accept()
        threading.Thread(target=serve_conn, args=(c,), daemon=True).start()


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError("short header")
        b += x
    return b


def serve_conn(c):
    with c:
        m = struct.unpack("!Q", recv_exact(c, 8))[0]
        while c.recv(65536):
            pass
        c.sendall(b"r" * m)
        # close(): FIN after the data; the client closes its side first


def serve_udp(s):
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)


def server(ready):
    socks = []
    for fam, addr in ((socket.AF_INET, V4B), (socket.AF_INET6, V6B)):
        lst = socket.socket(fam, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((addr, TCP_PORT))
        lst.listen(64)
        socks.append(("tcp", lst))
        for port in (UDP_PORT, FRAG_PORT):
            u = socket.socket(fam, socket.SOCK_DGRAM)
            u.bind((addr, port))
            socks.append(("udp", u))
    for kind, s in socks:
        threading.Thread(target=serve_tcp if kind == "tcp" else serve_udp, args=(s,),
                         daemon=True).start()
    with open(ready + ".tmp", "w") as f:
        f.write("ready\n")
    os.rename(ready + ".tmp", ready)
    while True:
        time.sleep(3600)


# ---- the client (namespace A) -------------------------------------------------

manifest = []


def note(**kw):
    manifest.append(kw)


def fam_name(fam):
    return "inet6" if fam == socket.AF_INET6 else "inet"


def tcp_conn(fam, dst, up, down):
    """Send `up` payload bytes (an 8-byte header and up-8 of data) and get
    `down` back; the client shuts its side down first, the server closes
    after its reply: FIN both ways."""
    assert up >= 8
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(20)
    c.connect((dst, TCP_PORT))
    src, sport = c.getsockname()[:2]
    c.sendall(struct.pack("!Q", down) + b"u" * (up - 8))
    c.shutdown(socket.SHUT_WR)
    got = 0
    while True:
        x = c.recv(65536)
        if not x:
            break
        got += len(x)
    c.close()
    if got != down:
        raise SystemExit("tcp %s:%d -> %s: got %d bytes back, not %d" % (src, sport, dst, got, down))
    note(proto="tcp", family=fam_name(fam), src=src, sport=sport, dst=dst, dport=TCP_PORT,
         vlan=None, fwd_payload=up, rev_payload=down)


def udp_exchange(fam, src, sport, dst, dport, sizes, frag=False):
    """Each datagram sent and its echo awaited: 2 per size, or their
    fragments when frag."""
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.bind((src, sport))
    for i, n in enumerate(sizes):
        data = bytes([i & 0xff]) * n
        s.sendto(data, (dst, dport))
        back, _ = s.recvfrom(65536)
        if back != data:
            raise SystemExit("udp %s:%d: the echo differs" % (src, sport))
    s.close()
    note(proto="udp", family=fam_name(fam), src=src, sport=sport, dst=dst, dport=dport,
         vlan=None, fwd_payload=sum(sizes), rev_payload=sum(sizes), sizes=sizes,
         fwd_datagrams=len(sizes), rev_datagrams=len(sizes), fragmented=frag)


# -- hand-made frames (VLAN) --

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def l4_csum(fam, src, dst, proto, seg):
    a = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst)
    if fam == socket.AF_INET:
        pseudo = a + struct.pack("!BBH", 0, proto, len(seg))
    else:
        pseudo = a + struct.pack("!IxxxB", len(seg), proto)
    return csum(pseudo + seg)


ip_id = [0x4200]


def ip_packet(fam, src, dst, proto, seg):
    if fam == socket.AF_INET:
        ip_id[0] += 1
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), ip_id[0], 0x4000, 64, proto, 0,
                        socket.inet_aton(src), socket.inet_aton(dst))
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        return 0x0800, h + seg
    h = struct.pack("!IHBB16s16s", 6 << 28, len(seg), proto, 64,
                    socket.inet_pton(fam, src), socket.inet_pton(fam, dst))
    return 0x86dd, h + seg


def udp_seg(fam, src, dst, sport, dport, payload):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4_csum(fam, src, dst, 17, seg) or 0xffff
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def tcp_seg(fam, src, dst, sport, dport, seq, ack, flags, payload=b""):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    c = l4_csum(fam, src, dst, 6, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


class Wire:
    """Raw sockets on both ends of the veth pair."""

    def __init__(self, ns_a, ns_b, if_a, if_b):
        libc = ctypes.CDLL(None, use_errno=True)
        here = os.open("/run/netns/" + ns_a, os.O_RDONLY)
        there = os.open("/run/netns/" + ns_b, os.O_RDONLY)
        self.a = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.a.bind((if_a, 0))  # protocol 0: it receives nothing
        if libc.setns(there, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns " + ns_b)
        self.b = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.b.bind((if_b, 0))
        self.mac_b = self.b.getsockname()[4]
        if libc.setns(here, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns " + ns_a)
        os.close(here)
        os.close(there)
        self.mac_a = self.a.getsockname()[4]

    def send(self, from_a_end, fam, src, dst, proto, seg, vlan=VLAN):
        """A tagged frame into the wire at A's end (to B) or B's (to A)."""
        et, pkt = ip_packet(fam, src, dst, proto, seg)
        s, smac, dmac = (self.a, self.mac_a, self.mac_b) if from_a_end else \
            (self.b, self.mac_b, self.mac_a)
        s.send(dmac + smac + struct.pack("!HHH", 0x8100, vlan, et) + pkt)


def vlan_udp(w, fam, src, sport, dst, dport, fwd, rev, from_a_end=False):
    """fwd datagrams src→dst, then rev dst→src, each of a known size."""
    for i, n in enumerate(fwd):
        w.send(from_a_end, fam, src, dst, 17, udp_seg(fam, src, dst, sport, dport, bytes([i]) * n))
    for i, n in enumerate(rev):
        w.send(from_a_end, fam, dst, src, 17, udp_seg(fam, dst, src, dport, sport, bytes([i]) * n))
    note(proto="udp", family=fam_name(fam), src=src, sport=sport, dst=dst, dport=dport,
         vlan=VLAN, fwd_payload=sum(fwd), rev_payload=sum(rev), fwd_datagrams=len(fwd),
         rev_datagrams=len(rev), fragmented=False)


def vlan_tcp(w, fam, src, sport, dst, dport, up, down):
    """A whole connection by hand: handshake, data each way, FIN both ways,
    the last ACK. 9 segments, 6 from src."""
    SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08
    a, b = 1000, 5000
    segs = [
        (True, a, 0, SYN, b""),
        (False, b, a + 1, SYN | ACK, b""),
        (True, a + 1, b + 1, ACK, b""),
        (True, a + 1, b + 1, PSH | ACK, b"q" * up),
        (False, b + 1, a + 1 + up, PSH | ACK, b"s" * down),
        (True, a + 1 + up, b + 1 + down, ACK, b""),
        (True, a + 1 + up, b + 1 + down, FIN | ACK, b""),
        (False, b + 1 + down, a + 2 + up, FIN | ACK, b""),
        (True, a + 2 + up, b + 2 + down, ACK, b""),
    ]
    for fwd, seq, ack, fl, pl in segs:
        s, d, sp, dp = (src, dst, sport, dport) if fwd else (dst, src, dport, sport)
        w.send(False, fam, s, d, 6, tcp_seg(fam, s, d, sp, dp, seq, ack, fl, pl))
    note(proto="tcp", family=fam_name(fam), src=src, sport=sport, dst=dst, dport=dport,
         vlan=VLAN, fwd_payload=up, rev_payload=down, fwd_segments=6, rev_segments=3)


def client(out, ns_a, ns_b, if_a, if_b):
    A4, A6 = socket.AF_INET, socket.AF_INET6
    # TCP: several connections of known sizes each way, IPv4 and IPv6
    for up, down in ((1000, 50000), (200000, 10), (8, 8), (64 * 1024 + 7, 1)):
        tcp_conn(A4, V4B, up, down)
    for up, down in ((30000, 70000), (9, 1)):
        tcp_conn(A6, V6B, up, down)
    # UDP exchanges: each datagram echoed
    udp_exchange(A4, V4A, 45353, V4B, UDP_PORT, [100, 200, 300, 1, 1400])
    udp_exchange(A4, V4A, 45354, V4B, UDP_PORT, [50] * 3)
    udp_exchange(A6, V6A, 45355, V6B, UDP_PORT, [64, 1000, 7])
    # Fragmented UDP: 4000-byte datagrams over the 1500-byte MTU, both ways
    udp_exchange(A4, V4A, 46000, V4B, FRAG_PORT, [4000], frag=True)
    udp_exchange(A4, V4A, 46001, V4B, FRAG_PORT, [4000, 3000], frag=True)
    udp_exchange(A6, V6A, 46002, V6B, FRAG_PORT, [4000], frag=True)
    # VLAN 42, by hand
    w = Wire(ns_a, ns_b, if_a, if_b)
    vlan_udp(w, A4, VL4A, 47000, VL4B, 7101, [100, 100, 100], [200, 200])
    # the same addresses and ports as an untagged flow above: another flow
    vlan_udp(w, A4, V4A, 45353, V4B, UDP_PORT, [33, 44], [55])
    vlan_udp(w, A6, VL6A, 47001, VL6B, 7102, [10], [20, 30])
    vlan_tcp(w, A4, VL4A, 47002, VL4B, 7103, 300, 700)
    # in-frame tags on A's transmit tap: one way, one size (see the top)
    vlan_udp(w, A4, VL4A, 47003, VL4B, 7104, [120] * 4, [], from_a_end=True)
    with open(out + ".tmp", "w") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2])
    elif sys.argv[1] == "client":
        client(*sys.argv[2:7])
    else:
        raise SystemExit("usage: traffic.py server READY | client MANIFEST NS_A NS_B IF_A IF_B")
