#!/usr/bin/python3
"""A sequence-numbered UDP flow for the lab: `send DST PORT PPS SECONDS` sends datagrams carrying
(sequence, send time); `recv PORT SECONDS OUT` writes one line per datagram received: sequence and
arrival time (CLOCK_MONOTONIC, comparable between hosts of one machine). Standard library only."""
import socket
import struct
import sys
import time

FMT = "!Qd"


def send(dst, port, pps, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    interval = 1.0 / pps
    start = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = start + seq * interval
        if now < due:
            time.sleep(due - now)
            continue
        try:
            s.sendto(struct.pack(FMT, seq, time.monotonic()) + b"\0" * 48, (dst, port))
        except OSError:
            pass  # no route for a moment: the datagram is lost, as on a real host
        seq += 1
    print(seq)


def recv(port, seconds, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)
    end = time.monotonic() + seconds
    with open(out, "w") as f:
        while time.monotonic() < end:
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                continue
            if len(data) < struct.calcsize(FMT):
                continue
            seq, _sent = struct.unpack_from(FMT, data)
            f.write("%d %.6f\n" % (seq, time.monotonic()))
            f.flush()


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        recv(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
