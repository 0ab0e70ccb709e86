"""Real machines: several CPUs, and nothing lost across hundreds of jumps. On Debian's
stock kernels through the kernel driver shim, and on the kernels the harness builds
through the kernel's own KEXEC_JUMP."""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest

from guest_memory import free_kib
from guest_paths import payload
from test_kexec_jump import GREETING, JUMP_TIMEOUT
from vmharness.guest import Guest

pytestmark = [pytest.mark.vm, pytest.mark.slow]


class Machine(NamedTuple):
    arch: str
    kernel: str | None  # None: the harness's patched kernel


PATCHED_I386 = pytest.param(Machine("i386", None), id="patched-i386")
PATCHED_X86_64 = pytest.param(Machine("x86_64", None), id="patched-x86_64")
STOCK_AMD64 = pytest.param(Machine("x86_64", "debian:linux-image-amd64"), id="stock-amd64")
STOCK_686_PAE = pytest.param(Machine("i386", "debian:linux-image-686-pae"), id="stock-686-pae")

BAD_KERNEL_MESSAGES = re.compile(r"WARNING|BUG:|Oops|Call Trace")


def boot(guest_factory, machine: Machine, **kwargs) -> Guest:
    return guest_factory(arch=machine.arch, kernel=machine.kernel, **kwargs)


def kernel_log_is_clean(g: Guest) -> None:
    log = g.check("dmesg")
    assert not BAD_KERNEL_MESSAGES.search(log), log[-4000:]


# --- CPUs ------------------------------------------------------------------------------

CPU_JUMPS = 5
# the realtime clock may be stepped by nothing here (no NTP): it must advance with the
# monotonic clock, to within what two `date` calls under TCG can drift apart
CLOCK_SLACK_S = 2.0
CLOCKS = "python3 -c 'import time; print(time.monotonic(), time.time())'"
# the count is renamed into place: `echo > file` truncates before it writes, and a reader on
# another CPU between the two sees an empty file
PINNED_LOOP = ("while :; do n=$((n+1)); echo $n > /tmp/pinned.new; "
               "mv -f /tmp/pinned.new /tmp/pinned.count; sleep 0.2; done")


def clocks(g: Guest) -> tuple[float, float]:
    mono, real = g.check(CLOCKS).split()
    return float(mono), float(real)


def pinned_count(g: Guest) -> int:
    return int(g.check("cat /tmp/pinned.count").strip())


def cpus_come_back_across_jumps(g: Guest, arch: str, smp: int) -> None:
    """CPU_JUMPS jumps to phy_mode: every CPU online after each, a process pinned to the last
    CPU still running there, both clocks advancing together."""
    last = smp - 1
    every_cpu = f"0-{last}"
    assert g.check("cat /sys/devices/system/cpu/online").strip() == every_cpu
    g.check(f"taskset -c {last} sh -c '{PINNED_LOOP}' >/dev/null 2>&1 & echo $! > /tmp/pinned.pid")
    g.check("sleep 1")
    g.check(f"kexec --load-preserve-context --args-none {payload(arch, 'phy_mode')}")

    for call in range(1, CPU_JUMPS + 1):
        count, (mono, real) = pinned_count(g), clocks(g)
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0 and GREETING.format(call) in output, output
        assert g.check("cat /sys/devices/system/cpu/online").strip() == every_cpu, f"after jump {call}"
        mono_after, real_after = clocks(g)
        assert mono_after > mono, "CLOCK_MONOTONIC went backwards"
        assert abs((real_after - real) - (mono_after - mono)) < CLOCK_SLACK_S, (
            f"CLOCK_REALTIME advanced {real_after - real:.3f} s, CLOCK_MONOTONIC {mono_after - mono:.3f} s")
        g.check("sleep 1")
        assert pinned_count(g) > count, "the pinned process stopped running"
        allowed = g.check("grep Cpus_allowed_list /proc/$(cat /tmp/pinned.pid)/status").split()[-1]
        assert allowed == str(last), f"the pinned process lost its affinity: {allowed}"
        # field 39 of /proc/PID/stat: the CPU it last ran on
        assert g.check("cut -d' ' -f39 /proc/$(cat /tmp/pinned.pid)/stat").strip() == str(last)

    g.check("kill $(cat /tmp/pinned.pid); kexec -u")
    kernel_log_is_clean(g)


# 2 CPUs: the machines of tests/vm/test_devices.py (one guest with disk, cards and CPUs)
@pytest.mark.parametrize("machine", [PATCHED_I386, PATCHED_X86_64, STOCK_AMD64, STOCK_686_PAE])
def test_four_cpus_come_back_and_a_pinned_process_keeps_its_cpu(guest_factory,
                                                                machine: Machine) -> None:
    cpus_come_back_across_jumps(boot(guest_factory, machine, smp=4), machine.arch, 4)


# --- endurance ---------------------------------------------------------------------------

ROUND_TRIPS = 200
MEMFREE_DRIFT_KIB = 1024
ENDURANCE_TIMEOUT = 1200
# One python process runs `kexec -e` through kexec-py's own CLI entry point: every round
# trip is the real jump, without 199 interpreter start-ups (~0.5 s each under TCG)
JUMPS_SCRIPT = f"""
import sys
from kexec_py import cli
for call in range(2, {ROUND_TRIPS} + 1):
    if cli.main(["-e"]) != 0:
        sys.exit(f"kexec -e failed on call {{call}}")
"""



@pytest.mark.parametrize("machine", [PATCHED_I386, PATCHED_X86_64, STOCK_AMD64, STOCK_686_PAE])
def test_two_hundred_round_trips_lose_nothing(guest_factory, machine: Machine) -> None:
    g = boot(guest_factory, machine)
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum",
            timeout=120)
    g.check(f"kexec --load-preserve-context --args-none {payload(machine.arch, 'phy_mode')}")
    g.check("kexec -e", timeout=JUMP_TIMEOUT)  # first-use allocations (module, PM bitmaps)
    before = free_kib(g)

    g.check(f"cat > /tmp/jumps.py <<'EOF'\n{JUMPS_SCRIPT}\nEOF")
    rc, output = g.run("python3 /tmp/jumps.py", timeout=ENDURANCE_TIMEOUT)
    assert rc == 0, output[-2000:]
    calls = [int(n) for n in re.findall(r"hello from physical mode, call (\d+)", output)]
    assert calls == list(range(2, ROUND_TRIPS + 1)), "the payload counted every call, in order"

    g.check("sha256sum -c /tmp/big.sum", timeout=120)
    after = free_kib(g)
    assert abs(before - after) < MEMFREE_DRIFT_KIB, f"free memory {before} KiB before, {after} KiB after"
    g.check("kexec -u")
    kernel_log_is_clean(g)
