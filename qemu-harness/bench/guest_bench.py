#!/usr/bin/python3
"""Guest side of qemu-harness/bench/bench: kexec-py and kexec-tools side by side in this
guest, rounds interleaved (every round runs every row, ours then theirs), so that a
busy host slows both alike. Prints one JSON object: each row's wall times (s), peak
RSS (KiB) and exit statuses per tool, plus facts about the guest.

    guest_bench.py i386 PAYLOAD BZIMAGE ROUNDS   the i386 guest's rows
    guest_bench.py jump PAYLOAD ROUNDS           kexec-py's payload load and -e only (a stock kernel's shim)
    guest_bench.py backends PAYLOAD ROUNDS       kexec-py's payload load and -e through the shim and through
                                                 the kernel's own KEXEC_JUMP, on one kernel
    guest_bench.py x86_64 BZIMAGE ROUNDS         bzImage + initrd: kexec-py's default (kexec_file_load)
                                                 against kexec-tools' default and its -s
    guest_bench.py facts                         the guest's facts only
    guest_bench.py trips KEXEC ROUNDS            `KEXEC -e` (a path) from a first kernel to a second
                                                 kernel that jumps straight back
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

KEXEC, KEXEC_TOOLS = "/usr/sbin/kexec", "/usr/sbin/kexec-tools"
INITRD = "/tmp/bench-initrd-64M"
# What a payload load imports beyond the interpreter's start-up, as the launcher (python3 -IS,
# Debian's dist-packages appended) imports it: the standard library's modules and the cffi
# backend it needs, a floor of its time
LIBRARIES = ("import sys; sys.path.append('/usr/lib/python3/dist-packages');"
             " import os, errno, struct, mmap, zlib, _cffi_backend")


def run(argv: list[str]) -> tuple[float, int, int]:
    """Wall time (s), peak RSS (KiB) and exit status of one command, output discarded."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def image_window(payload: str) -> tuple[int, int]:
    """The payload's own pages, [first, last]: kexec-tools' tightest --mem-min/--mem-max,
    the same pages kexec-py backs up by default."""
    plan = json.loads(subprocess.run(
        [KEXEC, "--dry-run", "--json", "--load-preserve-context", "--args-none", payload],
        check=True, capture_output=True, text=True).stdout)
    segments = plan["segments"]
    return segments[0]["mem"], segments[-1]["mem"] + segments[-1]["memsz"] - 1


LOAD, JUMP, BIG = "payload load", "payload -e round trip", "bzImage + 64 MiB initrd load"
BIG_UNCHECKED = "bzImage + initrd load, -i"  # --no-checks: no SHA-256 of the segments for purgatory
LOAD_BY, JUMP_BY = "payload load, one kernel", "payload -e, one kernel"
Step = tuple[str, str, list[str]]


def linux(bzimage: str) -> list[str]:
    return ["-l", bzimage, f"--initrd={INITRD}", "--reuse-cmdline"]


def payload_steps(payload: str) -> list[Step]:
    """kexec-py's load of the payload, then its -e."""
    return [(LOAD, "kexec-py", [KEXEC, "--load-preserve-context", "--args-none", payload]),
            (JUMP, "kexec-py", [KEXEC, "-e"])]


def backend_steps(payload: str) -> list[Step]:
    """The payload through each backend of one kernel (--backend), each -e right after its load."""
    return [step for backend, tool in (("shim", "shim"), ("kernel", "KEXEC_JUMP"))
            for step in ((LOAD_BY, tool, [KEXEC, "--load-preserve-context", f"--backend={backend}", "--args-none",
                                          payload]),
                         (JUMP_BY, tool, [KEXEC, "-e"]))]


def i386_steps(payload: str, bzimage: str) -> list[Step]:
    """One round: (row, tool, argv) in the order they run. Each -e comes right after its
    tool's own load, so every jump is the first one of a freshly loaded image."""
    low, high = image_window(payload)
    return [
        ("python3 -c pass", "python3", [sys.executable, "-c", "pass"]),
        ("python3 -IS -c pass", "python3", [sys.executable, "-IS", "-c", "pass"]),
        ("python3 -IS, load's libraries", "python3", [sys.executable, "-IS", "-c", LIBRARIES]),
        *payload_steps(payload),
        (LOAD, "kexec-tools", [KEXEC_TOOLS, "-c", "--load-preserve-context", "--args-none",
                               f"--mem-min={low:#x}", f"--mem-max={high:#x}", payload]),
        (JUMP, "kexec-tools", [KEXEC_TOOLS, "-e"]),
        (BIG, "kexec-py", [KEXEC, *linux(bzimage)]),
        (BIG, "kexec-tools", [KEXEC_TOOLS, "-c", *linux(bzimage)]),
        (BIG_UNCHECKED, "kexec-py", [KEXEC, "-i", *linux(bzimage)]),
        (BIG_UNCHECKED, "kexec-tools", [KEXEC_TOOLS, "-c", "-i", *linux(bzimage)]),
    ]


def x86_64_steps(bzimage: str) -> list[Step]:
    """kexec-py's default (-a: kexec_file_load here) against kexec-tools' default
    (kexec_load in bookworm's 2.0.25) and its kexec_file_load (-s)."""
    return [(BIG, "kexec-py", [KEXEC, *linux(bzimage)]),
            (BIG, "kexec-tools", [KEXEC_TOOLS, *linux(bzimage)]),
            (BIG, "kexec-tools -s", [KEXEC_TOOLS, "-s", *linux(bzimage)])]


def trip_steps(kexec: str) -> list[Step]:
    """The first kernel's -e: it returns when the second kernel jumps back. The host
    names the tool."""
    return [("kernel round trip", kexec, [kexec, "-e"])]


def measure(round_steps: list[Step], rounds: int) -> dict[str, Any]:
    """{row: {tool: {"wall_s": [...], "rss_kib": [...], "exit": [...]}}}, rows in the
    order of the round. A command that fails stops the run (exit 1, its argv and status):
    kexec-tools' -e may exit 255, which it does after every preserve-context round trip."""
    results: dict[str, Any] = {}
    for _ in range(rounds):
        for row, tool, argv in round_steps:
            wall, rss, status = run(argv)
            if status != 0 and not (status == 255 and argv == [KEXEC_TOOLS, "-e"]):
                sys.exit(f"guest_bench: {' '.join(argv)} exited {status}")
            entry = results.setdefault(row, {}).setdefault(tool, {"wall_s": [], "rss_kib": [], "exit": []})
            entry["wall_s"].append(round(wall, 4))
            entry["rss_kib"].append(rss)
            entry["exit"].append(status)
    return results


def guest_facts() -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    with open("/proc/version") as f:
        version = f.read().strip()
    return {"kernel": platform.release(), "version": version, "machine": platform.machine(),
            "mem_total_kib": mem_kib, "cpus": os.cpu_count(), "python": platform.python_version()}


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "facts":
        print(json.dumps(guest_facts()))
        return
    rounds = int(args[-1])
    round_steps = {"i386": lambda: i386_steps(args[0], args[1]), "jump": lambda: payload_steps(args[0]),
                   "backends": lambda: backend_steps(args[0]),
                   "x86_64": lambda: x86_64_steps(args[0]), "trips": lambda: trip_steps(args[0])}[mode]()
    initrd = mode in ("i386", "x86_64")
    if initrd:
        with open(INITRD, "wb") as f:
            f.write(os.urandom(64 << 20))
    try:
        results = measure(round_steps, rounds)
    finally:
        if initrd:
            os.unlink(INITRD)
    if mode != "trips":
        run([KEXEC, "-u"])
    print(json.dumps({"guest": guest_facts(), "rounds": rounds, "rows": results}))


if __name__ == "__main__":
    main()
