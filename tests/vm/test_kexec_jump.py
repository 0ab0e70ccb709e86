"""Real kexec jumps on our patched i386 kernel: load a physical-mode payload with
KEXEC_PRESERVE_CONTEXT, jump to it with kexec -e and come back to the same Linux."""

from __future__ import annotations

import re

import pytest

from guest_paths import ENTRY_REPORT, KEXEC_TOOLS, NOBODY, PHY_MODE
from vmharness.guest import Guest, GuestDied
from vmharness.kernel import Variant

pytestmark = pytest.mark.vm

GREETING = "phy_mode: hello from physical mode, call {}"
JUMP_TIMEOUT = 60


@pytest.fixture
def clean_guest(guest: Guest) -> Guest:
    """The shared guest, with nothing loaded before and after the test."""
    guest.check("kexec -u")
    yield guest
    guest.run("kexec -u")


def loaded(guest: Guest) -> str:
    return guest.check("cat /sys/kernel/kexec_loaded").strip()


def test_seed_scenario_five_round_trips(clean_guest: Guest) -> None:
    g = clean_guest
    g.check("sleep 100000 & echo $! > /tmp/sleeper")
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum")

    g.check("(cd /tmp && kexec --load-preserve-context --args-none phy_mode)")  # as users type it
    assert loaded(g) == "1"
    for call in range(1, 6):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        assert GREETING.format(call) in output
        assert "kexec failed" not in output

    assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0, "a process started before the jumps died"
    g.check("sha256sum -c /tmp/big.sum")  # 64 MiB of tmpfs came back intact
    assert loaded(g) == "1"

    g.check("kexec -u")
    rc, output = g.run("kexec -e")
    assert rc == 1
    assert output.strip().splitlines()[-1] == "kexec: Nothing has been loaded!"
    g.check("kill $(cat /tmp/sleeper); rm -f /tmp/big /tmp/big.sum")


REGISTER = re.compile(r"entry_report: (\w+)=0x([0-9a-f]{8})")


def entry_state(output: str, call: int) -> dict[str, int]:
    assert f"entry_report: begin call {call}" in output, output
    block = output.split(f"entry_report: begin call {call}", 1)[1].split("entry_report: end", 1)[0]
    return {name: int(value, 16) for name, value in REGISTER.findall(block)}


def test_entry_state_matches_the_documented_contract(clean_guest: Guest) -> None:
    g = clean_guest
    g.check(f"kexec --load-preserve-context --args-none {ENTRY_REPORT}")
    for call in (1, 2):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        state = entry_state(output, call)
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


def test_unpatched_kernel_resets_on_the_first_return(guest_factory) -> None:
    """Without our GDT-restore patch the jump runs the payload and the return triple-faults:
    the patch is what makes coming back work."""
    g = guest_factory(variant=Variant.UNPATCHED)
    g.check(f"kexec --load-preserve-context --args-none {PHY_MODE}")
    with pytest.raises(GuestDied):
        g.run("kexec -e; echo returned-to-linux", timeout=JUMP_TIMEOUT)
    assert GREETING.format(1) in g.console
    assert "returned-to-linux" not in g.console


def test_kernel_without_kexec_jump_is_named(guest_factory) -> None:
    g = guest_factory(variant=Variant.NOJUMP)
    rc, output = g.run(f"kexec --load-preserve-context --args-none {PHY_MODE}")
    assert rc == 255
    assert output.strip() == (
        "kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP:"
        " it refuses --load-preserve-context (EINVAL)"
    )
    assert loaded(g) == "0"


def test_non_root_gets_the_permission_message(clean_guest: Guest) -> None:
    g = clean_guest
    for command in (f"kexec --load-preserve-context --args-none {PHY_MODE}", "kexec -u"):
        rc, output = g.run(f"{NOBODY} {command}")
        assert rc == 255, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and "needs root (CAP_SYS_BOOT)" in lines[0], output
    assert loaded(g) == "0"


def test_bad_load_leaves_the_loaded_image_untouched(clean_guest: Guest) -> None:
    g = clean_guest
    g.check(f"kexec --load-preserve-context --args-none {PHY_MODE}")
    assert GREETING.format(1) in g.check("kexec -e", timeout=JUMP_TIMEOUT)

    rc, output = g.run(f"kexec --load-preserve-context --args-none --mem-max=0x1fffffff {PHY_MODE}")
    assert rc == 255
    assert "more than half of RAM" in output and "--mem-max" in output, output
    assert len(output.strip().splitlines()) == 1

    g.check("head -c 100 /bin/sh > /tmp/truncated")
    rc, output = g.run("kexec --load-preserve-context --args-none /tmp/truncated")
    assert rc == 255 and len(output.strip().splitlines()) == 1, output

    # the first image is still loaded, with the counter it had
    assert GREETING.format(2) in g.check("kexec -e", timeout=JUMP_TIMEOUT)


def test_kexec_tools_side_by_side(clean_guest: Guest) -> None:
    """Same payload, same kernel: kexec-tools needs --mem-max and reports a successful
    round trip as a failure (exit 255); kexec-py needs neither."""
    g = clean_guest
    rc, output = g.run(f"{KEXEC_TOOLS} -c --load-preserve-context --args-none {PHY_MODE}")
    assert rc != 0 and "--mem-max" in output, output

    g.check(f"{KEXEC_TOOLS} -c --load-preserve-context --args-none --mem-max=0x2ffffff {PHY_MODE}")
    rc, output = g.run(f"{KEXEC_TOOLS} -e", timeout=JUMP_TIMEOUT)
    assert GREETING.format(1) in output, "kexec-tools' jump ran the payload"
    assert rc == 255 and "kexec failed" in output, "kexec-tools calls the successful return a failure"

    g.check(f"kexec --load-preserve-context --args-none {PHY_MODE}")
    rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
    assert rc == 0 and GREETING.format(1) in output and "failed" not in output
