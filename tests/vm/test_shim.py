"""kexec jump on Debian's own kernels, which lack CONFIG_KEXEC_JUMP, through the kernel
driver shim (csrc/shim, kexec_jump.ko built against the package's headers): the seed
scenario, the entry contract, a stock kernel jumping to a second stock kernel and back,
the refusals, and what an unload or rmmod gives back. Stock guests run 2 CPUs."""

from __future__ import annotations

import json
import re
import secrets

import pytest

from guest_memory import free_kib
from guest_paths import NOBODY, payload
from test_kexec_jump import CONTRACT, GREETING, JUMP_TIMEOUT, entry_state
from vmharness.guest import Guest

pytestmark = pytest.mark.vm

AMD64 = "debian:linux-image-amd64"
PAE = "debian:linux-image-686-pae"
I686 = "debian:linux-image-686"
STOCK = {"amd64": ("x86_64", AMD64), "686-pae": ("i386", PAE), "686": ("i386", I686)}
ALL_CPUS = "0-1"
LOAD = "kexec --load-preserve-context --args-none phy_mode"
NOT_INSTALLED = "install kexec-py-dkms"


def shared(shared_guests, flavour: str) -> Guest:
    """The session's guest on that stock kernel with the module, nothing loaded."""
    g = shared_guests(*STOCK[flavour])
    g.check("kexec -u")
    return g


def online(g: Guest) -> str:
    return g.check("cat /sys/devices/system/cpu/online").strip()


def shim_loaded(g: Guest) -> str:
    return g.check("cat /sys/class/misc/kexec_jump/loaded").strip()


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("flavour", ["amd64", "686-pae", "686"])
def test_seed_scenario_five_jumps_through_the_shim(shared_guests, flavour: str) -> None:
    g = shared(shared_guests, flavour)
    arch = STOCK[flavour][0]
    assert g.check("nproc").strip() == "2" and online(g) == ALL_CPUS
    g.check("grep -qx '# CONFIG_KEXEC_JUMP is not set' /boot/config-$(uname -r) 2>/dev/null"
            " || ! test -e /boot/config-$(uname -r)")
    plan = json.loads(g.check(f"{LOAD} --dry-run --json"))
    assert plan["backend"] == "shim", plan
    g.check("sleep 100000 & echo $! > /tmp/sleeper")
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum",
            timeout=120)

    g.check(f"(cd /tmp && {LOAD})")  # the seed's line, verbatim: modprobe happens inside
    assert shim_loaded(g) == "1"
    assert g.check("cat /sys/kernel/kexec_loaded").strip() == "0", "the kernel's own kexec holds nothing"
    assert g.run("kexec -S -l").rc == 1
    for call in range(1, 6):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        assert GREETING.format(call) in output
        assert online(g) == ALL_CPUS, f"a CPU stayed offline after jump {call}"

    assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0, "a process started before the jumps died"
    g.check("sha256sum -c /tmp/big.sum", timeout=120)
    assert f"{arch}/phy_mode" in payload(arch, "phy_mode")
    g.check("kexec -u")
    assert shim_loaded(g) == "0" and g.run("kexec -S -l").rc == 0
    assert one_line(g.run("kexec -e").output) == "kexec: Nothing has been loaded!"
    g.check("kill $(cat /tmp/sleeper); rm -f /tmp/big /tmp/big.sum")
    assert not re.search(r"WARNING|BUG:|Oops", g.check("dmesg")), g.check("dmesg | tail -50")


# The image's own addresses (stack, return address, page table) are pages the backend
# allocates, and CR4.LA57 follows the paging mode the kernel runs: all else must match.
ADDRESSES = {"ret", "stack_page", "esp", "rsp", "cr3", "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp",
             "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
             "r14", "r15"}
LA57 = 0x1000


# i386: machine_kexec_32 reloads DS, ES and SS only; FS and GS keep whatever selectors the
# running kernel had (per-CPU data, user TLS), which differ between kernels
STALE_SELECTORS = {"i386": {"fs", "gs"}, "x86_64": set()}


def contract_fields(state: dict[str, int], arch: str) -> dict[str, int]:
    fields = {k: v for k, v in state.items() if k not in ADDRESSES | STALE_SELECTORS[arch]}
    fields["cr4"] &= ~LA57
    fields["stack_offset"] = state.get("esp", state.get("rsp", 0)) & 0xFFF
    return fields


def entry_states(g: Guest, arch: str) -> list[dict[str, int]]:
    g.check(f"kexec --load-preserve-context --args-none {payload(arch, 'entry_report')}")
    states = []
    for call in (1, 2):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        states.append(entry_state(output, call, arch))
    g.check("kexec -u")
    return states


@pytest.mark.parametrize("flavour,append", [("amd64", ""), ("amd64", "no5lvl"), ("686-pae", "")])
def test_entry_contract_matches_the_kernels_own_jump(shared_guests, guest_factory,
                                                    flavour: str, append: str) -> None:
    arch, kernel = STOCK[flavour]
    if append:
        g = guest_factory(arch=arch, kernel=kernel, append=append)
    else:
        g = shared(shared_guests, flavour)
    through_shim = entry_states(g, arch)
    for state in through_shim:
        CONTRACT[arch](state)
    if append == "no5lvl":
        assert all(s["cr4"] & LA57 == 0 for s in through_shim), "4-level paging"
    # the same payload through the kernel's own KEXEC_JUMP on our patched kernel
    reference = entry_states(shared_guests(arch), arch)
    assert [contract_fields(s, arch) for s in through_shim] == [contract_fields(s, arch) for s in reference]


# amd64 without the module: the "no shim" rows of tests/vm/test_bad_input.py
@pytest.mark.parametrize("flavour", ["686-pae"])
def test_without_the_module_one_line_names_the_package(guest_factory, flavour: str) -> None:
    arch, kernel = STOCK[flavour]
    g = guest_factory(arch=arch, kernel=kernel, shim=False)
    rc, output = g.run(LOAD)
    assert rc == 255
    assert NOT_INSTALLED in one_line(output)
    assert g.check("cat /sys/kernel/kexec_loaded").strip() == "0"
    assert g.run("kexec -S -l").rc == 0
    assert not g.run("test -e /dev/kexec_jump").rc == 0


def test_refusals_are_one_line_and_keep_the_loaded_image(guest_factory) -> None:
    """Non-root, kernel.kexec_load_disabled=1, lockdown: each refused in one line, and the
    image loaded before stays loaded and keeps its state (its call counter)."""
    g = guest_factory(arch="x86_64", kernel=AMD64)
    g.check(LOAD)
    assert GREETING.format(1) in g.check("kexec -e", timeout=JUMP_TIMEOUT)

    rc, output = g.run(f"{NOBODY} {LOAD}")
    assert rc == 255 and "needs root" in one_line(output), output
    rc, output = g.run(f"{NOBODY} kexec -e")
    assert rc == 255 and "needs root" in one_line(output), output

    g.check("echo 1 > /proc/sys/kernel/kexec_load_disabled")
    rc, output = g.run(LOAD)
    assert rc == 255 and "kexec_load_disabled" in one_line(output), output
    rc, output = g.run("kexec -u")
    assert rc == 255 and "kexec_load_disabled" in one_line(output), output
    assert GREETING.format(2) in g.check("kexec -e", timeout=JUMP_TIMEOUT), "a jump is still allowed"

    # lockdown also forbids hibernation, so /dev/snapshot cannot freeze user space: under
    # lockdown the module neither loads nor jumps (the kernel's own kexec_load is refused too)
    g.check("mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true;"
            " echo integrity > /sys/kernel/security/lockdown")
    rc, output = g.run(LOAD)
    assert rc == 255 and "lockdown" in one_line(output), output
    rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
    assert rc == 255 and "lockdown" in one_line(output), output
    assert shim_loaded(g) == "1", "the image loaded before the refusals is still there"
    assert GREETING.format(3) not in g.console


# Booted with lockdown=integrity (the unsigned module cannot load either): the rows
# "lockdown ..." of tests/vm/test_bad_input.py, on their own guest.


MEMFREE_SLACK_KIB = 1024
LOAD_UNLOAD_ROUNDS = 100
# One python process loads and unloads through kexec-py's own CLI entry point, so the
# rounds measure the module, not 200 interpreter start-ups under TCG.
ROUNDS_SCRIPT = f"""
import sys
from kexec_py import cli
args = sys.argv[1:]
for _ in range({LOAD_UNLOAD_ROUNDS}):
    assert cli.main(args) == 0
    assert cli.main(["-u"]) == 0
"""



@pytest.mark.parametrize("flavour", ["amd64", "686-pae"])
def test_unload_and_rmmod_give_every_page_back(shared_guests, flavour: str) -> None:
    g = shared(shared_guests, flavour)
    load_args = f"--load-preserve-context --args-none --mem-max=0x3ffffff {payload(STOCK[flavour][0], 'phy_mode')}"
    g.check(f"cat > /tmp/rounds.py <<'EOF'\n{ROUNDS_SCRIPT}\nEOF")
    g.check(f"kexec {load_args} && kexec -u")  # modprobe, first-use allocations
    before = free_kib(g)
    g.check(f"python3 /tmp/rounds.py {load_args}", timeout=600)
    after = free_kib(g)
    assert abs(before - after) < MEMFREE_SLACK_KIB, (before, after)

    # rmmod with an image loaded (~64 MiB of backup pages) frees it
    g.check(f"kexec {load_args}")
    loaded_free = free_kib(g)
    assert before - loaded_free > 32 << 10, (before, loaded_free)
    g.check("rmmod kexec_jump")
    assert g.run("test -e /dev/kexec_jump").rc != 0
    assert abs(before - free_kib(g)) < MEMFREE_SLACK_KIB
    assert g.run("kexec -S -l").rc == 0
    g.check("modprobe kexec_jump")
    assert not re.search(r"WARNING|BUG:|Oops", g.check("dmesg"))


# --- a stock kernel jumps to a second stock kernel and back --------------------------------

BOOT_MESSAGE = re.compile(r"Linux version 6\.1\.\d+")
FIRST_BACK = re.compile(r"first-back-(\w+) rc=(\d+)")
SECOND_BACK = re.compile(r"second-back-(\w+) rc=(\d+)")
KERNEL_TO_KERNEL_MEM_MB = 1024
ROUND_TRIPS = 3


@pytest.mark.parametrize("flavour", ["686-pae", "amd64"])
def test_stock_kernel_to_stock_kernel_and_back(tmp_path_factory, guest_factory, flavour: str) -> None:
    """A stock first kernel -> the same package as second kernel -> back, three round trips,
    the shim in both (the jump-back helper goes through it too). On x86_64 the way back
    enters the first kernel's re-entry page, which is not RAM of the second kernel: the
    module maps the entry itself, so the helper is the empty segment there too."""
    from vmharness.artifacts import prepare
    from vmharness.overlay import RunSpec

    arch, package = STOCK[flavour]
    images = prepare(tmp_path_factory.mktemp("stock-images"), RunSpec(), kernel=package, arch=arch)
    g = guest_factory(arch=arch, kernel=package, mem_mb=KERNEL_TO_KERNEL_MEM_MB,
                      run=RunSpec(adds=(images.kernel, images.initrd)))
    kernel = f"/root/{images.kernel.name}"
    g.check("sleep 100000 & echo $! > /tmp/sleeper")
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum",
            timeout=120)
    load = (f"kexec --load-preserve-context {kernel} --initrd=/root/initrd.img --reuse-cmdline"
            " --append=kexecpy.role=second")
    assert json.loads(g.check(f"{load} --dry-run --json", timeout=120))["backend"] == "shim"
    g.check(load, timeout=300)

    tag = secrets.token_hex(4)
    g.send(f"kexec -e; echo first-back-{tag} rc=$?\n")
    g.expect(BOOT_MESSAGE, JUMP_TIMEOUT)
    g.wait_for_shell(300)
    assert "kexecpy.role=second kexec_jump_back_entry=0x" in g.check("cat /proc/cmdline")
    assert online(g) == ALL_CPUS
    helper = json.loads(g.check("kexec --load-jump-back-helper --dry-run --json"))
    assert helper["backend"] == "shim"
    assert [s["memsz"] for s in helper["segments"]] == [0], helper  # nothing to swap: the entry is mapped
    g.check("kexec --load-jump-back-helper")
    g.check(f"echo second-{tag} > /tmp/second-was-here; sleep 100000 & echo $! > /tmp/sleeper")

    for trip in range(1, ROUND_TRIPS + 1):
        g.send(f"kexec -e; echo second-back-{tag} rc=$?\n")
        match = g.expect(FIRST_BACK, JUMP_TIMEOUT * 2)
        assert (match[1], match[2]) == (tag, "0"), "the first kernel's kexec -e returned 0"
        g.check("test ! -e /tmp/second-was-here")
        assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0
        g.check("sha256sum -c /tmp/big.sum", timeout=120)
        assert online(g) == ALL_CPUS

        g.send(f"kexec -e; echo first-back-{tag} rc=$?\n")
        match = g.expect(SECOND_BACK, JUMP_TIMEOUT * 2)
        assert (match[1], match[2]) == (tag, "0")
        assert g.check("cat /tmp/second-was-here").strip() == f"second-{tag}"
        assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0
        assert online(g) == ALL_CPUS

    assert len(BOOT_MESSAGE.findall(g.console)) == 2, "each kernel booted once"
    assert not re.search(r"WARNING|BUG:|Oops", g.console.split("Run /init", 1)[1])
