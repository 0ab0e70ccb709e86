#!/usr/bin/python3
"""Runs inside the guest (see ./bench): kexec-py and kexec-tools side by side on
the same payload, same kernel. Prints one table; TCG timings are only relative."""

import os
import statistics
import sys
import time

PAYLOAD = sys.argv[1]
KEXEC_TOOLS = sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 10


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


def measure(name: str, load: list[str], exec_: list[str]) -> dict:
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
    base = rows[0]
    print(f"\nkexec jump benchmark: {ROUNDS} rounds each, medians; payload {os.path.basename(PAYLOAD)}")
    print(f"{'tool':36} {'load s':>8} {'x':>6} {'load RSS KiB':>13} {'-e s':>8} {'x':>6} {'-e RSS KiB':>11}  -e exit")
    for row in rows:
        print(f"{row['name']:36} {row['load_s']:8.3f} {row['load_s'] / base['load_s']:6.2f}"
              f" {row['load_rss_kib']:13d} {row['exec_s']:8.3f} {row['exec_s'] / base['exec_s']:6.2f}"
              f" {row['exec_rss_kib']:11d}  {','.join(map(str, row['exec_rc']))}")


if __name__ == "__main__":
    main()
