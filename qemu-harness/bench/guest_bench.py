#!/usr/bin/python3
"""Runs inside the guest (see ./bench): kexec-py and kexec-tools side by side on
the same payload, same kernel. Prints one table; TCG timings are only relative."""

import os
import statistics
import sys
import time
from typing import Any

PAYLOAD = sys.argv[1]
KEXEC_TOOLS = sys.argv[2]
BZIMAGE = sys.argv[3]
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 10


def run(argv: list[str]) -> tuple[float, int, int]:
    """Wall time (s), peak RSS (KiB) and exit status of one command."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def measure(name: str, load: list[str], exec_: list[str]) -> dict[str, Any]:
    loads = [run(load) for _ in range(ROUNDS)]
    jumps = [run(exec_) for _ in range(ROUNDS)]
    run(exec_[:1] + ["-u"])
    return {
        "name": name,
        "load_s": statistics.median(t for t, _, _ in loads),
        "load_rss_kib": max(r for _, r, _ in loads),
        "exec_s": statistics.median(t for t, _, _ in jumps),
        "exec_rss_kib": max(r for _, r, _ in jumps),
        "exec_rc": sorted({rc for _, _, rc in jumps}),
    }


def image_window(payload: str) -> tuple[int, int]:
    import json
    import subprocess

    plan = json.loads(subprocess.run(
        ["kexec", "--dry-run", "--json", "--load-preserve-context", "--args-none", payload],
        check=True, capture_output=True, text=True).stdout)
    segments = plan["segments"]
    return segments[0]["mem"], segments[-1]["mem"] + segments[-1]["memsz"] - 1


def measure_load(name: str, load: list[str]) -> dict[str, Any]:
    loads = [run(load) for _ in range(ROUNDS)]
    run(load[:1] + ["-u"])
    assert {rc for _, _, rc in loads} == {0}, f"{name}: load failed"
    return {"name": name, "load_s": statistics.median(t for t, _, _ in loads),
            "load_rss_kib": max(r for _, r, _ in loads)}


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    print(f"\n{title}")
    print(f"{'tool':36} {'load s':>8} {'x':>6} {'load RSS KiB':>13} {'-e s':>8} {'x':>6} {'-e RSS KiB':>11}  -e exit")
    for row in rows:
        line = f"{row['name']:36} {row['load_s']:8.3f} {row['load_s'] / base['load_s']:6.2f} {row['load_rss_kib']:13d}"
        if "exec_s" in row:
            line += (f" {row['exec_s']:8.3f} {row['exec_s'] / base['exec_s']:6.2f}"
                     f" {row['exec_rss_kib']:11d}  {','.join(map(str, row['exec_rc']))}")
        print(line)


def linux_rows() -> list[dict[str, Any]]:
    """Loading a bzImage with a 64 MiB initrd: buffers go to the kernel without copies."""
    with open("/tmp/initrd-64M", "wb") as f:
        f.write(os.urandom(64 << 20))
    args = ["-l", BZIMAGE, "--initrd=/tmp/initrd-64M", "--reuse-cmdline"]
    rows = [measure_load("kexec-py", ["kexec", *args]),
            measure_load("kexec-tools", [KEXEC_TOOLS, "-c", *args])]
    os.unlink("/tmp/initrd-64M")
    return rows


def main() -> None:
    low, high = image_window(PAYLOAD)
    rows = [
        measure("kexec-py", ["kexec", "--load-preserve-context", "--args-none", PAYLOAD],
                ["kexec", "-e"]),
        measure("kexec-tools --mem-max=0x2ffffff",
                [KEXEC_TOOLS, "-c", "--load-preserve-context", "--args-none", "--mem-max=0x2ffffff", PAYLOAD],
                [KEXEC_TOOLS, "-e"]),
        measure("kexec-tools --mem-min/max tight",
                [KEXEC_TOOLS, "-c", "--load-preserve-context", "--args-none",
                 f"--mem-min={low:#x}", f"--mem-max={high:#x}", PAYLOAD],
                [KEXEC_TOOLS, "-e"]),
    ]
    print_table(f"kexec jump, {ROUNDS} rounds each, medians; payload {os.path.basename(PAYLOAD)}", rows)
    print_table(f"bzImage + 64 MiB initrd, -l, {ROUNDS} rounds each, medians", linux_rows())

if __name__ == "__main__":
    main()
