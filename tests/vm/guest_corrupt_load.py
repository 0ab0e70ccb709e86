#!/usr/bin/python3
"""Runs inside the test guest (test_linux_images.py adds it to /root).

    guest_corrupt_load.py OLD NEW [KEXEC OPTIONS...] IMAGE

Plans `kexec -l [KEXEC OPTIONS...] IMAGE` exactly as the kexec command does, then
replaces the text OLD by NEW (same length) in the one segment that holds it: after
the plan was made, so after the SHA-256 that purgatory checks was computed. Then
calls kexec_load with the corrupted plan. The product has no hook for this: the test
goes through kexec_py's own planning API and kernel interface.
"""

from __future__ import annotations

import sys
from kexec_py.value import replace

from kexec_py.cli import _plan_load
from kexec_py.options import parse
from kexec_py.kernel import LinuxKernel


def corrupt(plan, old: bytes, new: bytes):
    holders = [i for i, s in enumerate(plan.segments) if bytes(s.buf).count(old)]
    if len(holders) != 1 or bytes(plan.segments[holders[0]].buf).count(old) != 1:
        raise SystemExit(f"corrupt_load: {old!r} must occur exactly once in the segments"
                         f" (segments holding it: {holders})")
    index = holders[0]
    segment = plan.segments[index]
    buf = bytearray(segment.buf)  # segments may be read-only views of the image file
    at = buf.index(old)
    buf[at:at + len(old)] = new
    print(f"corrupt_load: segment {index} ({segment.source}) at {segment.mem + at:#x}:"
          f" {old.decode()} -> {new.decode()}")
    segments = list(plan.segments)
    segments[index] = replace(segment, buf=bytes(buf))
    return replace(plan, segments=tuple(segments))


def main(argv: list[str]) -> int:
    old, new, *kexec_args = argv
    if len(old) != len(new) or old == new:
        raise SystemExit("corrupt_load: OLD and NEW must differ and have the same length")
    args = parse(["--load", *kexec_args])
    plan = _plan_load(args, preserve_context=False)  # what `kexec -l` loads
    LinuxKernel().kexec_load(corrupt(plan, old.encode(), new.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
