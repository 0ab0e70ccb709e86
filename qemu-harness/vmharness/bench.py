"""kexec-py against kexec-tools in QEMU guests (qemu-harness/bench/bench): boot each guest
with the bench script and what it loads, run bench/guest_bench.py there, and turn the
figures into one table and the issue-12 goals. The guests (`--part`):

  i386      our patched i386 kernel, 512 MiB: payload load and -e, bzImage + initrd load
  trip      the same kernel with 768 MiB: a second kernel, kexec-py's default window
            against kexec-tools' --mem-max of half of RAM (plus mem=) and against
            kexec-tools in kexec-py's window; timed round trips
  shim      Debian's stock 686-pae kernel, 512 MiB, 1 CPU: the payload -e through the shim
  backends  our patched i386 kernel with modules, 512 MiB: the payload -e through the shim
            and through the kernel's own KEXEC_JUMP, in one guest
  x86_64    our x86_64 kernel, 512 MiB: bzImage + initrd load, kexec_file_load against kexec-tools

TCG makes absolute times meaningless across machines: the goals compare figures of the
same run (ours against kexec-tools', or against `python3 -c pass`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .arch import I386, X86_64
from .artifacts import prepare
from .build import HARNESS_DIR
from .guest import BootSpec, Guest
from .kernel import Variant, build_kernel
from .overlay import RunSpec

GUEST_BENCH = HARNESS_DIR / "bench" / "guest_bench.py"
PAYLOAD = "/usr/lib/kexec-py/i386/phy_mode"
MEM_MB = 512
TRIP_MEM_MB = 768   # the first kernel holds a second one's window on top of its ramfs root
STOCK_686_PAE = "debian:linux-image-686-pae"
PASS, LOAD, JUMP, BIG = "python3 -c pass", "payload load", "payload -e round trip", "bzImage + 64 MiB initrd load"
BIG_UNCHECKED = "bzImage + initrd load, -i"  # --no-checks: what is left without the SHA-256 for purgatory
ISOLATED, STDLIB = "python3 -IS -c pass", "python3 -IS, load's libraries"
TRIP, SHIM_JUMP, BIG_64 = "kernel round trip", "payload -e, stock + shim", "x86_64 bzImage + initrd"
LOAD_BY, JUMP_BY = "payload load, one kernel", "payload -e, one kernel"
BY_SHIM, BY_KERNEL = "shim", "KEXEC_JUMP"
OURS, THEIRS, THEIRS_FILE = "kexec-py", "kexec-tools", "kexec-tools -s"
THEIRS_NARROW = "kexec-tools*"   # kexec-tools in kexec-py's window
KEXEC, KEXEC_TOOLS = "/usr/sbin/kexec", "/usr/sbin/kexec-tools"
TOOLS = {PASS: ("python3",), ISOLATED: ("python3",), STDLIB: ("python3",), LOAD: (OURS, THEIRS),
         JUMP: (OURS, THEIRS), BIG: (OURS, THEIRS), BIG_UNCHECKED: (OURS, THEIRS), TRIP: (OURS, THEIRS, THEIRS_NARROW), SHIM_JUMP: (OURS,),
         BIG_64: (OURS, THEIRS, THEIRS_FILE), LOAD_BY: (BY_SHIM, BY_KERNEL), JUMP_BY: (BY_SHIM, BY_KERNEL)}
PARTS = {"i386": (PASS, ISOLATED, STDLIB, LOAD, JUMP, BIG, BIG_UNCHECKED), "trip": (TRIP,), "shim": (SHIM_JUMP,),
         "backends": (LOAD_BY, JUMP_BY), "x86_64": (BIG_64,)}
LOAD_OVER_PASS = 0.08  # s: a payload load within this of the bare interpreter's start
TRIP_RATIO, SHIM_RATIO, RSS_64_RATIO = 0.5, 1.1, 0.5
# the second kernel: the harness's own kernel and initramfs, booted again
SECOND_KERNEL, SECOND_INITRD = "/root/bzImage", "/root/initrd.img"
BOOT_MESSAGE = re.compile(r"Linux version \d+\.\d+\.\d+")
TRIP_LOAD_TIMEOUT = 180.0  # planning + copying a 25 MB initrd under TCG: ~5 s unloaded
JUMP_TIMEOUT = 120.0       # kexec -e to the second kernel's first message
# kexec-tools' helper wants the entry purgatory put on the second kernel's command line by hand
JUMP_BACK_ENTRY = "$(sed -n 's/.* kexec_jump_back_entry=\\(0x[0-9a-f]*\\).*/\\1/p' /proc/cmdline)"


def bench_in(boot: BootSpec, command: str, rounds: int, echo: TextIO | None,
             timeout_per_round: float, setup: str | None = None) -> dict[str, Any]:
    """Boot `boot`, run `setup` then guest_bench.py `command` ROUNDS; its JSON."""
    with Guest(boot, echo) as guest:
        guest.wait_for_shell()
        if setup:
            guest.check(setup)
        output = guest.check(f"python3 /root/{GUEST_BENCH.name} {command} {rounds}",
                             timeout=60 + timeout_per_round * rounds)
    return json.loads(output.strip().splitlines()[-1])


def run_i386(rounds: int, echo: TextIO | None, tmp: Path) -> dict[str, Any]:
    kernel = build_kernel(Variant.PATCHED, I386).bzimage
    boot = prepare(tmp, RunSpec(adds=(GUEST_BENCH, kernel)), Variant.PATCHED, MEM_MB, arch=I386)
    return bench_in(boot, f"i386 {PAYLOAD} /root/{kernel.name}", rounds, echo, 120.0)


def run_shim(rounds: int, echo: TextIO | None, tmp: Path) -> dict[str, Any]:
    """kexec-py's payload -e on a stock kernel, through the shim; one CPU as our kernel has."""
    boot = prepare(tmp, RunSpec(adds=(GUEST_BENCH,)), Variant.PATCHED, MEM_MB, arch=I386,
                   kernel=STOCK_686_PAE, smp=1)
    result = bench_in(boot, f"jump {PAYLOAD}", rounds, echo, 60.0)
    return {**result, "rows": {SHIM_JUMP: result["rows"][JUMP]}}


def run_backends(rounds: int, echo: TextIO | None, tmp: Path) -> dict[str, Any]:
    """The shim against the kernel's own KEXEC_JUMP on one kernel: ours, with modules."""
    kernel = build_kernel(Variant.MODULES, I386)
    assert kernel.shim is not None
    boot = prepare(tmp, RunSpec(adds=(GUEST_BENCH,)), Variant.MODULES, MEM_MB, arch=I386)  # with the module
    return bench_in(boot, f"backends {PAYLOAD}", rounds, echo, 120.0, setup=f"insmod /root/{kernel.shim.name}")


def run_x86_64(rounds: int, echo: TextIO | None, tmp: Path) -> dict[str, Any]:
    kernel = build_kernel(Variant.PATCHED, X86_64).bzimage
    boot = prepare(tmp, RunSpec(adds=(GUEST_BENCH, kernel)), Variant.PATCHED, MEM_MB, arch=X86_64)
    result = bench_in(boot, f"x86_64 /root/{kernel.name}", rounds, echo, 120.0)
    return {**result, "rows": {BIG_64: result["rows"][BIG]}}


def system_ram(iomem: str) -> list[tuple[int, int]]:
    """/proc/iomem's top-level System RAM ranges, [start, end)."""
    spans = [line.split(" : ")[0] for line in iomem.splitlines()
             if not line.startswith(" ") and line.endswith(" : System RAM")]
    return [(int(a, 16), int(b, 16) + 1) for a, b in (span.split("-") for span in spans)]


def ram_below(ram: list[tuple[int, int]], top: int) -> int:
    """Bytes of RAM below `top`: what a window [0, top) backs up."""
    return sum(max(0, min(end, top) - start) for start, end in ram)


def half_of_ram_top(mem_total_kib: int) -> int:
    """kexec-tools' working --mem-max + 1 (and mem=): whole MiB, at most half of RAM (the
    kernel refuses segments over half of its pages)."""
    return ((mem_total_kib << 10) // 2) & ~((1 << 20) - 1)


@dataclass(frozen=True)
class TripForm:
    """How one tool loads a second kernel, and its jump-back helper there."""
    tool: str
    kexec: str
    load: str
    helper: str
    top: int   # the second kernel's RAM ends here: the window it is given


def round_trips(guest: Guest, form: TripForm, rounds: int) -> dict[str, Any]:
    """Load the second kernel, boot it, load its jump-back helper and leave it jumping
    back each time it is resumed; then time `rounds` round trips from the first kernel
    (guest_bench.py trips) and unload. The figures of the row."""
    execute = f"{form.kexec} -e"
    guest.check(form.load, timeout=TRIP_LOAD_TIMEOUT)
    guest.send(f"{execute}; printf '%s-back %s\\n' bench-first $?\n")
    guest.expect(BOOT_MESSAGE, JUMP_TIMEOUT)
    guest.wait_for_shell()
    guest.check(form.helper)
    # each pass of the loop is one jump back; the first one returns to the first kernel now
    guest.send(f"for i in $(seq {rounds + 1}); do {execute}; done\n")
    guest.expect(r"bench-first-back \d+", JUMP_TIMEOUT)
    # the second kernel's messages land on the console: the figures go through a file
    guest.check(f"python3 /root/{GUEST_BENCH.name} trips {form.kexec} {rounds} > /tmp/trips.json",
                timeout=60 + JUMP_TIMEOUT * rounds)
    figures = json.loads(guest.check("cat /tmp/trips.json").strip().splitlines()[-1])
    guest.check("kexec -u")
    return figures["rows"][TRIP][form.kexec]


def kexec_tools_form(tool: str, linux: str, top: int) -> TripForm:
    """kexec-tools' working form: every page below `top` backed up (--mem-max), the
    second kernel told by hand to stay there (mem=), its helper given the entry by hand."""
    return TripForm(tool, KEXEC_TOOLS, f"{KEXEC_TOOLS} -c --load-preserve-context --mem-max={top - 1:#x} {linux}"
                                       f" --append=mem={top >> 20}M",
                    f"{KEXEC_TOOLS} -c --load-jump-back-helper --entry={JUMP_BACK_ENTRY}", top)


def run_trip(rounds: int, echo: TextIO | None, tmp: Path) -> dict[str, Any]:
    """Kernel to kernel and back: kexec-py's default flags, kexec-tools' working form
    (half of RAM), and kexec-tools with kexec-py's window (what the window alone costs),
    each with a freshly booted second kernel."""
    images = prepare(tmp / "second", RunSpec(), Variant.PATCHED, arch=I386)
    boot = prepare(tmp / "first", RunSpec(adds=(GUEST_BENCH, images.kernel, images.initrd)),
                   Variant.PATCHED, TRIP_MEM_MB, arch=I386)
    linux = f"{SECOND_KERNEL} --initrd={SECOND_INITRD} --reuse-cmdline"
    ours_load = f"{KEXEC} --load-preserve-context {linux}"
    with Guest(boot, echo) as guest:
        guest.wait_for_shell()
        # kexec-py backs up exactly its segments (image and zero-filled backup), all below the top
        segments = json.loads(guest.check(f"{ours_load} --dry-run --json", timeout=TRIP_LOAD_TIMEOUT))["segments"]
        ours_top = max(s["mem"] + s["memsz"] for s in segments)
        ram = system_ram(guest.check("cat /proc/iomem"))
        facts = json.loads(guest.check(f"python3 /root/{GUEST_BENCH.name} facts"))
        forms = [TripForm(OURS, KEXEC, ours_load, f"{KEXEC} --load-jump-back-helper", ours_top),
                 kexec_tools_form(THEIRS, linux, half_of_ram_top(facts["mem_total_kib"])),
                 kexec_tools_form(THEIRS_NARROW, linux, ours_top)]
        rows = {form.tool: round_trips(guest, form, rounds) for form in forms}
    windows = {form.tool: {"top": form.top, "backed_up": ram_below(ram, form.top)} for form in forms}
    windows[OURS]["backed_up"] = sum(s["memsz"] for s in segments)
    return {"guest": facts, "windows": windows, "rows": {TRIP: rows}}


RUNS: dict[str, Callable[[int, TextIO | None, Path], dict[str, Any]]] = {
    "i386": run_i386, "trip": run_trip, "shim": run_shim, "backends": run_backends, "x86_64": run_x86_64}


def run_in_guests(rounds: int, parts: tuple[str, ...] = tuple(PARTS), echo: TextIO | None = None) -> dict[str, Any]:
    """Each part's guest in turn: {"parts": {part: its guest, rounds and windows}, "rows": all
    rows}, with the date and the host added."""
    result: dict[str, Any] = {"rounds": rounds, "payload": Path(PAYLOAD).name, "parts": {}, "rows": {}}
    for part in parts:
        with tempfile.TemporaryDirectory(prefix=f"bench-{part}-") as tmp:
            figures = RUNS[part](rounds, echo, Path(tmp))
        result["rows"].update(figures.pop("rows"))
        result["parts"][part] = {key: value for key, value in figures.items() if key != "rounds"}
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["host"] = host_facts(I386.qemu)
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
    """The goals of issue 12 that the parts run measured, on medians of the same run."""
    rows, found = result["rows"], []
    if PASS in rows:
        found += i386_goals(result)
    if TRIP in rows:
        ours, theirs = wall(result, TRIP, OURS).median, wall(result, TRIP, THEIRS).median
        narrow = wall(result, TRIP, THEIRS_NARROW).median
        windows = result["parts"]["trip"]["windows"]
        found.append(Goal(f"kernel round trip <= {TRIP_RATIO}x kexec-tools' --mem-max form", ours <= TRIP_RATIO * theirs,
                          f"{ours:.3f} / {theirs:.3f} s = x{ours / theirs:.2f}; backed up"
                          f" {windows[OURS]['backed_up'] >> 20} MiB against {windows[THEIRS]['backed_up'] >> 20} MiB;"
                          f" kexec-tools in kexec-py's window {narrow:.3f} s"))
    if SHIM_JUMP in rows and JUMP in rows:
        shim, own = wall(result, SHIM_JUMP, OURS).median, wall(result, JUMP, OURS).median
        found.append(Goal(f"-e round trip through the shim on stock 686-pae <= {SHIM_RATIO}x our patched kernel's"
                          " own KEXEC_JUMP", shim <= SHIM_RATIO * own, f"{shim:.3f} / {own:.3f} s = x{shim / own:.2f}"))
    if JUMP_BY in rows:
        shim, own = wall(result, JUMP_BY, BY_SHIM).median, wall(result, JUMP_BY, BY_KERNEL).median
        found.append(Goal(f"-e round trip through the shim <= {SHIM_RATIO}x the same kernel's own KEXEC_JUMP",
                          shim <= SHIM_RATIO * own, f"{shim:.3f} / {own:.3f} s = x{shim / own:.2f}"))
    if BIG_64 in rows:
        rss, their_rss = peak_rss(result, BIG_64, OURS), peak_rss(result, BIG_64, THEIRS)
        big, their_big = wall(result, BIG_64, OURS).median, wall(result, BIG_64, THEIRS).median
        found.append(Goal(f"x86_64 bzImage + initrd load peak RSS <= {RSS_64_RATIO}x kexec-tools'",
                          rss <= RSS_64_RATIO * their_rss,
                          f"{rss} / {their_rss} KiB = x{rss / their_rss:.2f} (wall {big:.3f} / {their_big:.3f} s"
                          f" = x{big / their_big:.2f})"))
    return found


def i386_goals(result: dict[str, Any]) -> list[Goal]:
    bare = wall(result, PASS, "python3").median
    load, their_load = wall(result, LOAD, OURS).median, wall(result, LOAD, THEIRS).median
    jump, their_jump = wall(result, JUMP, OURS).median, wall(result, JUMP, THEIRS).median
    big, their_big = wall(result, BIG, OURS).median, wall(result, BIG, THEIRS).median
    unchecked, their_unchecked = wall(result, BIG_UNCHECKED, OURS).median, wall(result, BIG_UNCHECKED, THEIRS).median
    isolated = wall(result, ISOLATED, "python3").median
    rss, their_rss = peak_rss(result, BIG, OURS), peak_rss(result, BIG, THEIRS)
    return [
        Goal("payload load within 0.08 s of python3 -c pass", load - bare <= LOAD_OVER_PASS,
             f"{load:.3f} - {bare:.3f} = {load - bare:+.3f} s (kexec-tools {their_load:.3f} s, x{load / their_load:.1f})"),
        Goal("-e round trip: ours - kexec-tools' <= python3 -c pass", jump - their_jump <= bare,
             f"{jump:.3f} - {their_jump:.3f} = {jump - their_jump:+.3f} s against {bare:.3f} s"
             f" (x{jump / their_jump:.2f})"),
        Goal("bzImage + initrd load wall <= 1.0x kexec-tools'", big <= their_big,
             f"{big:.3f} / {their_big:.3f} s = x{big / their_big:.2f}; the SHA-256 for purgatory"
             f" {big - unchecked:.3f} s against {their_big - their_unchecked:.3f} s, the rest (-i)"
             f" {unchecked:.3f} - {their_unchecked:.3f} = {unchecked - their_unchecked:+.3f} s"
             f" (python3 -IS -c pass {isolated:.3f} s)"),
        Goal("bzImage + initrd load peak RSS <= 1.0x kexec-tools' (i386)", rss <= their_rss,
             f"{rss} / {their_rss} KiB = x{rss / their_rss:.2f}"),
    ]


def guest_line(part: str, facts: dict[str, Any]) -> str:
    debian = re.search(r"#\d+ [^(]*\bDebian (\S+)", facts["version"])  # a Debian kernel's upstream version
    kernel = facts["kernel"] + (f" (Debian {debian[1]})" if debian else "")
    return (f"{part} guest: {facts['machine']} Linux {kernel}, {facts['mem_total_kib'] // 1024} MiB,"
            f" {facts['cpus']} CPU, Python {facts['python']}")


def table(result: dict[str, Any]) -> str:
    """The bench's table: the guests, one line per row and tool, then the goals."""
    host = result["host"]
    lines = [f"{result['date']}; {result['rounds']} rounds, interleaved; payload {result['payload']}",
             *(guest_line(part, figures["guest"]) for part, figures in result["parts"].items()),
             f"host: {host['cpu']}, {host['cpus']} CPUs, {host['qemu']} (TCG), load average"
             f" {host['load_average'][0]:.1f} at the end"]
    if "trip" in result["parts"]:
        windows = result["parts"]["trip"]["windows"]
        lines += [f"kernel round trip, {tool}: RAM below {window['top']:#x}, {window['backed_up'] >> 20} MiB backed up"
                  for tool, window in windows.items()]
        lines.append(f"{THEIRS_NARROW}: kexec-tools' form with kexec-py's window (--mem-max and mem= at its top)")
    lines += ["", f"{'row':30} {'tool':14} {'min s':>7} {'median':>7} {'max s':>7} {'peak RSS KiB':>13}  exit"]
    for row, tools in result["rows"].items():
        for tool, figures in tools.items():
            stats = Stats.of(figures["wall_s"])
            exits = ",".join(str(code) for code in sorted(set(figures["exit"])))
            lines.append(f"{row:30} {tool:14} {stats.min:7.3f} {stats.median:7.3f} {stats.max:7.3f}"
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
    parser.add_argument("--part", action="append", choices=list(PARTS),
                        help="run only this guest's rows (repeatable; default: all)")
    parser.add_argument("--verbose", action="store_true", help="echo the guest's console")
    args = parser.parse_args(argv)
    parts = tuple(part for part in PARTS if part in (args.part or PARTS))
    result = run_in_guests(args.rounds, parts, echo=sys.stderr if args.verbose else None)
    result["goals"] = [goal.__dict__ for goal in goals(result)]
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0
