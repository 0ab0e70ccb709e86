"""Free memory of a guest, measured so that a leak shows and noise does not."""

from __future__ import annotations

import re

from vmharness.guest import Guest

PAGE_KIB = 4
# MemFree leaves out the free pages parked on per-CPU lists, which come and go by
# megabytes as the lists fill and drain (seen: MemFree moving 8 MiB across kexec jumps
# while MemFree + the per-CPU lists stayed within 128 KiB): count those too
FREE_KIB = (
    "sync; echo 3 > /proc/sys/vm/drop_caches;"
    " grep '^MemFree:' /proc/meminfo; grep -E '^ +count: +[0-9]+$' /proc/zoneinfo"
)


def free_kib(g: Guest) -> int:
    """MemFree plus the per-CPU free page lists, in KiB, after dropping clean caches."""
    output = g.check(FREE_KIB)
    memfree = int(re.search(r"^MemFree:\s+(\d+) kB$", output, re.M)[1])
    per_cpu = sum(int(n) for n in re.findall(r"^\s+count:\s+(\d+)$", output, re.M))
    return memfree + per_cpu * PAGE_KIB
