#!/usr/bin/env python3
"""Checksummed, fsync'd records for the data test (tests/vm/test_devices.py); runs in the guest.

    disk_writer.py write FILE ACKS   append records 1, 2, 3, ... to FILE, each fsync'd; once a
                                     record's fsync has returned, its number goes into ACKS (a
                                     file elsewhere, rewritten in place). SIGTERM: finish the
                                     record in hand, then exit 0.
    disk_writer.py verify FILE       print how many records FILE holds; exit 1 at the first one
                                     that is torn, out of order or does not verify

A record: magic, sequence number, payload length, payload (derived from the sequence number,
so a record that verifies is also the right one), SHA-256 of all of it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import sys
import time

MAGIC = b"KXJR"
HEADER = struct.Struct("<4sQI")
DIGEST = hashlib.sha256().digest_size
# about 100 records a second: enough to keep writes in flight across every jump, little
# enough that 100 jumps fill a few MB
PAUSE_S = 0.01


def payload(seq: int) -> bytes:
    return hashlib.shake_256(seq.to_bytes(8, "little")).digest(64 + seq * 7919 % 960)


def record(seq: int) -> bytes:
    body = HEADER.pack(MAGIC, seq, len(payload(seq))) + payload(seq)
    return body + hashlib.sha256(body).digest()


def write(path: str, acks: str) -> int:
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ack = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(ack, b"%12d\n" % 0, 0)
    seq = 0
    while not stop:
        seq += 1
        data = record(seq)
        if os.write(fd, data) != len(data):
            raise OSError(f"short write of record {seq}")
        os.fsync(fd)
        os.pwrite(ack, b"%12d\n" % seq, 0)
        time.sleep(PAUSE_S)
    os.close(fd)
    return 0


def verify(path: str) -> int:
    with open(path, "rb") as f:
        data = f.read()
    offset = seq = 0
    while offset < len(data):
        seq += 1
        want = record(seq)
        got = data[offset:offset + len(want)]
        if got != want:
            print(f"record {seq} at offset {offset} does not verify "
                  f"({len(got)} of {len(want)} bytes there)")
            print(seq - 1)
            return 1
        offset += len(want)
    print(seq)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "write":
        return write(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "verify":
        return verify(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
