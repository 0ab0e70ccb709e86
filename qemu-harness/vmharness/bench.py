"""kexec-py against kexec-tools in one i386 guest (qemu-harness/bench/bench): boot the
guest on our patched kernel with the bench script and that kernel's bzImage, run
bench/guest_bench.py, and turn its figures into one table and the issue-12 goals.

TCG makes absolute times meaningless across machines: the goals compare figures of the
same run (ours against kexec-tools', or against `python3 -c pass`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .arch import I386
from .artifacts import prepare
from .build import HARNESS_DIR
from .guest import Guest
from .kernel import Variant, build_kernel
from .overlay import RunSpec

GUEST_BENCH = HARNESS_DIR / "bench" / "guest_bench.py"
PAYLOAD = "/usr/lib/kexec-py/i386/phy_mode"
MEM_MB = 512
PASS, LOAD, JUMP, BIG = "python3 -c pass", "payload load", "payload -e round trip", "bzImage + 64 MiB initrd load"
ISOLATED, STDLIB = "python3 -IS -c pass", "python3 -IS, load's stdlib"
ROWS = (PASS, ISOLATED, STDLIB, LOAD, JUMP, BIG)
OURS, THEIRS = "kexec-py", "kexec-tools"
TOOLS = {row: ("python3",) if row.startswith("python3") else (OURS, THEIRS) for row in ROWS}
LOAD_OVER_PASS = 0.08  # s: a payload load within this of the bare interpreter's start


def run_in_guest(rounds: int, echo: TextIO | None = None, timeout_per_round: float = 120.0) -> dict[str, Any]:
    """guest_bench.py's JSON, with the date and the host added."""
    kernel = build_kernel(Variant.PATCHED, I386).bzimage
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        boot = prepare(Path(tmp), RunSpec(adds=(GUEST_BENCH, kernel)), Variant.PATCHED, MEM_MB, arch=I386)
        with Guest(boot, echo) as guest:
            guest.wait_for_shell()
            output = guest.check(f"python3 /root/{GUEST_BENCH.name} {PAYLOAD} /root/{kernel.name} {rounds}",
                                 timeout=60 + timeout_per_round * rounds)
    result = json.loads(output.strip().splitlines()[-1])
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["host"] = host_facts(boot.argv()[0])
    return result


def host_facts(qemu: str) -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"cpu": model, "cpus": os.cpu_count(), "qemu": version, "load_average": os.getloadavg()}


@dataclass(frozen=True)
class Stats:
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(min(values), statistics.median(values), max(values))


def wall(result: dict[str, Any], row: str, tool: str) -> Stats:
    return Stats.of(result["rows"][row][tool]["wall_s"])


def peak_rss(result: dict[str, Any], row: str, tool: str) -> int:
    return max(result["rows"][row][tool]["rss_kib"])


@dataclass(frozen=True)
class Goal:
    name: str
    met: bool
    detail: str


def goals(result: dict[str, Any]) -> list[Goal]:
    """The goals of issue 12 that this guest measures, on medians of the same run."""
    bare = wall(result, PASS, "python3").median
    load, their_load = wall(result, LOAD, OURS).median, wall(result, LOAD, THEIRS).median
    jump, their_jump = wall(result, JUMP, OURS).median, wall(result, JUMP, THEIRS).median
    big, their_big = wall(result, BIG, OURS).median, wall(result, BIG, THEIRS).median
    rss, their_rss = peak_rss(result, BIG, OURS), peak_rss(result, BIG, THEIRS)
    return [
        Goal("payload load within 0.08 s of python3 -c pass", load - bare <= LOAD_OVER_PASS,
             f"{load:.3f} - {bare:.3f} = {load - bare:+.3f} s (kexec-tools {their_load:.3f} s, x{load / their_load:.1f})"),
        Goal("-e round trip: ours - kexec-tools' <= python3 -c pass", jump - their_jump <= bare,
             f"{jump:.3f} - {their_jump:.3f} = {jump - their_jump:+.3f} s against {bare:.3f} s"
             f" (x{jump / their_jump:.2f})"),
        Goal("bzImage + initrd load wall <= 1.0x kexec-tools'", big <= their_big,
             f"{big:.3f} / {their_big:.3f} s = x{big / their_big:.2f}"),
        Goal("bzImage + initrd load peak RSS <= 1.0x kexec-tools' (i386)", rss <= their_rss,
             f"{rss} / {their_rss} KiB = x{rss / their_rss:.2f}"),
    ]


def table(result: dict[str, Any]) -> str:
    """The bench's table: one line per row and tool, then the goals."""
    guest, host = result["guest"], result["host"]
    lines = [
        f"{result['date']}; {result['rounds']} rounds, interleaved; payload {result['payload']}",
        f"guest: {guest['machine']} Linux {guest['kernel']}, {guest['mem_total_kib'] // 1024} MiB,"
        f" {guest['cpus']} CPU, Python {guest['python']}",
        f"host: {host['cpu']}, {host['cpus']} CPUs, {host['qemu']} (TCG), load average"
        f" {host['load_average'][0]:.1f} at the end",
        "",
        f"{'row':30} {'tool':12} {'min s':>7} {'median':>7} {'max s':>7} {'peak RSS KiB':>13}  exit",
    ]
    for row in ROWS:
        for tool in TOOLS[row]:
            figures = result["rows"][row][tool]
            stats = Stats.of(figures["wall_s"])
            exits = ",".join(str(code) for code in sorted(set(figures["exit"])))
            lines.append(f"{row:30} {tool:12} {stats.min:7.3f} {stats.median:7.3f} {stats.max:7.3f}"
                         f" {max(figures['rss_kib']):13d}  {exits}")
    lines.append("")
    lines += [f"{'met   ' if goal.met else 'MISSED'} {goal.name}: {goal.detail}" for goal in goals(result)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds (default 10)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument("--verbose", action="store_true", help="echo the guest's console")
    args = parser.parse_args(argv)
    result = run_in_guest(args.rounds, echo=sys.stderr if args.verbose else None)
    result["goals"] = [goal.__dict__ for goal in goals(result)]
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0
