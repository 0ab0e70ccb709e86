#!/usr/bin/python3
"""Guest side of qemu-harness/bench/bench: kexec-py and kexec-tools side by side in this
guest, rounds interleaved (every round runs every row, ours then theirs), so that a
busy host slows both alike. Prints one JSON object: each row's wall times (s), peak
RSS (KiB) and exit statuses per tool, plus facts about the guest.

    guest_bench.py PAYLOAD BZIMAGE ROUNDS
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
# What a payload load imports from the standard library: the floor of its time while
# the CLI is argparse (which brings re, enum, gettext); the launcher runs python3 -IS
STDLIB = "argparse, mmap, struct"


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


def steps(payload: str, bzimage: str) -> list[tuple[str, str, list[str]]]:
    """One round: (row, tool, argv) in the order they run. Each -e comes right after its
    tool's own load, so every jump is the first one of a freshly loaded image."""
    low, high = image_window(payload)
    linux = ["-l", bzimage, f"--initrd={INITRD}", "--reuse-cmdline"]
    load, jump, big = "payload load", "payload -e round trip", "bzImage + 64 MiB initrd load"
    return [
        ("python3 -c pass", "python3", [sys.executable, "-c", "pass"]),
        ("python3 -IS -c pass", "python3", [sys.executable, "-IS", "-c", "pass"]),
        ("python3 -IS, load's stdlib", "python3", [sys.executable, "-IS", "-c", f"import {STDLIB}"]),
        (load, "kexec-py", [KEXEC, "--load-preserve-context", "--args-none", payload]),
        (jump, "kexec-py", [KEXEC, "-e"]),
        (load, "kexec-tools", [KEXEC_TOOLS, "-c", "--load-preserve-context", "--args-none",
                               f"--mem-min={low:#x}", f"--mem-max={high:#x}", payload]),
        (jump, "kexec-tools", [KEXEC_TOOLS, "-e"]),
        (big, "kexec-py", [KEXEC, *linux]),
        (big, "kexec-tools", [KEXEC_TOOLS, "-c", *linux]),
    ]


def measure(round_steps: list[tuple[str, str, list[str]]], rounds: int) -> dict[str, Any]:
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
    run([KEXEC, "-u"])
    return results


def guest_facts() -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"kernel": platform.release(), "machine": platform.machine(), "mem_total_kib": mem_kib,
            "cpus": os.cpu_count(), "python": platform.python_version()}


def main() -> None:
    payload, bzimage, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(INITRD, "wb") as f:
        f.write(os.urandom(64 << 20))
    try:
        results = measure(steps(payload, bzimage), rounds)
    finally:
        os.unlink(INITRD)
    print(json.dumps({"guest": guest_facts(), "rounds": rounds, "payload": os.path.basename(payload),
                      "rows": results}))


if __name__ == "__main__":
    main()
