#!/usr/bin/env python3
"""Load a tiny eBPF socket-filter program that returns RET, then run a command
with it: `ebpf.py RET fd CMD...` replaces "{fd}" in CMD's words by the
program's fd (inherited); `ebpf.py RET pin PATH` pins it at PATH (a bpffs
mount) and exits. For the fanout's ebpf mode: the kernel sends each packet
to worker RET % workers."""
import ctypes
import os
import struct
import sys

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD, BPF_OBJ_PIN = 5, 6
BPF_PROG_TYPE_SOCKET_FILTER = 1

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        e = ctypes.get_errno()
        sys.exit("bpf(%d): %s" % (cmd, os.strerror(e)))
    return r


def load(ret):
    insns = struct.pack("<BBhi", 0xb7, 0, 0, ret) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    prog = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_SOCKET_FILTER, 2, ctypes.addressof(prog),
                       ctypes.addressof(lic), 1, 4096, ctypes.addressof(log))
    fd = bpf(BPF_PROG_LOAD, attr)
    return fd


def main():
    ret, how = int(sys.argv[1]), sys.argv[2]
    fd = load(ret)
    if how == "pin":
        path = ctypes.create_string_buffer(sys.argv[3].encode())
        bpf(BPF_OBJ_PIN, struct.pack("<QI", ctypes.addressof(path), fd))
        return
    os.set_inheritable(fd, True)
    args = [a.replace("{fd}", str(fd)) for a in sys.argv[3:]]
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
