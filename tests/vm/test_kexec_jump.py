"""Real kexec jumps on our kernels (i386: 6.1 with our patch; x86_64: plain 6.12.117):
load a physical-mode payload with KEXEC_PRESERVE_CONTEXT, jump to it with kexec -e and
come back to the same Linux. Tests taking `arch_guest` or `arch` run on both."""

from __future__ import annotations

import re

import pytest

from guest_paths import KEXEC_TOOLS, NOBODY, PHY_MODE, payload
from vmharness.guest import Guest, GuestDied
from vmharness.kernel import Variant

pytestmark = pytest.mark.vm

GREETING = "phy_mode: hello from physical mode, call {}"
JUMP_TIMEOUT = 60


@pytest.fixture
def clean_guest(arch_guest: Guest) -> Guest:
    """The arch's shared guest, with nothing loaded before and after the test."""
    arch_guest.check("kexec -u")
    yield arch_guest
    arch_guest.run("kexec -u")


@pytest.fixture
def phy_mode(arch: str) -> str:
    return payload(arch, "phy_mode")


def loaded(guest: Guest) -> str:
    return guest.check("cat /sys/kernel/kexec_loaded").strip()


def test_seed_scenario_five_round_trips(clean_guest: Guest) -> None:
    g = clean_guest
    g.check("sleep 100000 & echo $! > /tmp/sleeper")
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum",
            timeout=120)

    g.check("(cd /tmp && kexec --load-preserve-context --args-none phy_mode)")  # as users type it
    assert loaded(g) == "1"
    for call in range(1, 6):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        assert GREETING.format(call) in output
        assert "kexec failed" not in output

    assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0, "a process started before the jumps died"
    g.check("sha256sum -c /tmp/big.sum", timeout=120)  # 64 MiB of tmpfs came back intact
    assert loaded(g) == "1"

    g.check("kexec -u")
    rc, output = g.run("kexec -e")
    assert rc == 1
    assert output.strip().splitlines()[-1] == "kexec: Nothing has been loaded!"
    g.check("kill $(cat /tmp/sleeper); rm -f /tmp/big /tmp/big.sum")


# entry_report prints registers at their width: 8 hex digits on i386, 16 on x86_64
REGISTER_DIGITS = {"i386": 8, "x86_64": 16}


def entry_state(output: str, call: int, arch: str = "i386") -> dict[str, int]:
    assert f"entry_report: begin call {call}" in output, output
    block = output.split(f"entry_report: begin call {call}", 1)[1].split("entry_report: end", 1)[0]
    register = re.compile(rf"entry_report: (\w+)=0x([0-9a-f]{{{REGISTER_DIGITS[arch]}}})\n")
    state = {name: int(value, 16) for name, value in register.findall(block)}
    assert "ret" in state and "stack_page" in state, block
    return state


def test_entry_state_matches_the_documented_contract(clean_guest: Guest, arch: str) -> None:
    g = clean_guest
    g.check(f"kexec --load-preserve-context --args-none {payload(arch, 'entry_report')}")
    for call in (1, 2):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        CONTRACT[arch](entry_state(output, call, arch))


def check_i386_entry(state: dict[str, int]) -> None:
    """relocate_kernel_32.S: 32-bit protected mode, paging off."""
    assert state["cr0"] & 0x1, "protected mode"
    assert not state["cr0"] & 0x80000000, "paging must be off"
    assert state["cr4"] == 0, "CR4 cleared (no PAE, PSE, SSE)"
    assert not state["eflags"] & 0x200, "interrupts off"
    assert not state["eflags"] & 0x400, "direction flag clear"
    assert state["cs"] == 0x60
    assert state["ds"] == state["es"] == state["ss"] == 0x68
    assert (state["gdtr_base"], state["gdtr_limit"]) == (0, 0), "GDTR invalidated by the kernel"
    assert (state["idtr_base"], state["idtr_limit"]) == (0, 0), "IDTR invalidated by the kernel"
    assert state["esp"] & 0xFFF == 0xFFC, "ESP = swap page + 0xffc"
    assert state["stack_page"] == state["esp"] & ~0xFFF
    assert state["ret"] != 0


RAM_512M = 512 << 20


def check_x86_64_entry(state: dict[str, int]) -> None:
    """relocate_kernel_64.S (6.12), identity_mapped: 64-bit mode on the kexec page table."""
    assert state["cr0"] & 0x80000001 == 0x80000001, "paging and protected mode on (long mode)"
    assert not state["cr0"] & 0x10000, "CR0.WP cleared by identity_mapped"
    # the kexec page table, a page of RAM; identity: the payload runs at its physical
    # address and the return address and stack are physical addresses below the RAM top
    assert state["cr3"] % 0x1000 == 0 and 0 < state["cr3"] < RAM_512M
    assert 0 < state["ret"] < RAM_512M and 0 < state["rsp"] < RAM_512M
    assert state["cr4"] & 0x20, "CR4.PAE (long mode)"
    assert not state["cr4"] & 0x200, "CR4.OSFXSR clear: no SSE"
    assert not state["rflags"] & 0x200, "interrupts off"
    assert not state["rflags"] & 0x400, "direction flag clear"
    assert state["cs"] == 0x10
    assert state["ds"] == state["es"] == state["ss"] == 0x18
    assert (state["gdtr_base"], state["gdtr_limit"]) == (0, 0), "GDTR invalidated by the kernel"
    assert (state["idtr_base"], state["idtr_limit"]) == (0, 0), "IDTR invalidated by the kernel"
    assert state["rsp"] & 0xFFF == 0xFF8, "RSP = swap page + 0xff8"
    assert state["stack_page"] == state["rsp"] & ~0xFFF


CONTRACT = {"i386": check_i386_entry, "x86_64": check_x86_64_entry}


def test_unpatched_kernel_resets_on_the_first_return(guest_factory) -> None:
    """i386: without our GDT-restore patch the jump runs the payload and the return
    triple-faults: the patch is what makes coming back work. (x86_64 6.12.117 has the
    upstream fix: it has no unpatched variant.)"""
    g = guest_factory(variant=Variant.UNPATCHED)
    g.check(f"kexec --load-preserve-context --args-none {PHY_MODE}")
    with pytest.raises(GuestDied):
        g.run("kexec -e; echo returned-to-linux", timeout=JUMP_TIMEOUT)
    assert GREETING.format(1) in g.console
    assert "returned-to-linux" not in g.console


def test_kernel_without_kexec_jump_is_named(guest_factory, arch: str, phy_mode: str) -> None:
    g = guest_factory(variant=Variant.NOJUMP, arch=arch)
    rc, output = g.run(f"kexec --load-preserve-context --args-none {phy_mode}")
    assert rc == 255
    # our tinyconfig kernels have no modules, so no kexec_jump module either
    assert output.strip() == (
        "kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the"
        f" kexec_jump module is not installed: install kexec-py-dkms (and linux-headers-{release(g)})"
    )
    assert loaded(g) == "0"
    rc, output = g.run(f"kexec --backend kernel --load-preserve-context --args-none {phy_mode}")
    assert (rc, output.strip()) == (255, "kexec: kexec_load failed: this kernel was built without"
                                    " CONFIG_KEXEC_JUMP: it refuses --load-preserve-context (EINVAL)")
    assert loaded(g) == "0"


def release(g: Guest) -> str:
    return g.check("uname -r").strip()


def test_non_root_gets_the_permission_message(clean_guest: Guest, phy_mode: str) -> None:
    g = clean_guest
    for command in (f"kexec --load-preserve-context --args-none {phy_mode}", "kexec -u"):
        rc, output = g.run(f"{NOBODY} {command}")
        assert rc == 255, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and "needs root (CAP_SYS_BOOT)" in lines[0], output
    assert loaded(g) == "0"


def test_bad_load_leaves_the_loaded_image_untouched(clean_guest: Guest, phy_mode: str) -> None:
    g = clean_guest
    g.check(f"kexec --load-preserve-context --args-none {phy_mode}")
    assert GREETING.format(1) in g.check("kexec -e", timeout=JUMP_TIMEOUT)

    rc, output = g.run(f"kexec --load-preserve-context --args-none --mem-max=0x1fffffff {phy_mode}")
    assert rc == 255
    assert "more than half of RAM" in output and "--mem-max" in output, output
    assert len(output.strip().splitlines()) == 1

    g.check("head -c 100 /bin/sh > /tmp/truncated")
    rc, output = g.run("kexec --load-preserve-context --args-none /tmp/truncated")
    assert rc == 255 and len(output.strip().splitlines()) == 1, output

    # the first image is still loaded, with the counter it had
    assert GREETING.format(2) in g.check("kexec -e", timeout=JUMP_TIMEOUT)


def test_kexec_tools_side_by_side(clean_guest: Guest, phy_mode: str) -> None:
    """Same payload, same kernel: kexec-tools needs --mem-max (and -c: on x86_64 it would
    use kexec_file_load, which has no preserve-context) and reports a successful round
    trip as a failure (exit 255); kexec-py needs neither."""
    g = clean_guest
    rc, output = g.run(f"{KEXEC_TOOLS} -c --load-preserve-context --args-none {phy_mode}")
    assert rc != 0 and "--mem-max" in output, output

    g.check(f"{KEXEC_TOOLS} -c --load-preserve-context --args-none --mem-max=0x2ffffff {phy_mode}")
    rc, output = g.run(f"{KEXEC_TOOLS} -e", timeout=JUMP_TIMEOUT)
    assert GREETING.format(1) in output, "kexec-tools' jump ran the payload"
    assert rc == 255 and "kexec failed" in output, "kexec-tools calls the successful return a failure"

    g.check(f"kexec --load-preserve-context --args-none {phy_mode}")
    rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
    assert rc == 0 and GREETING.format(1) in output and "failed" not in output
