"""Linux kernels as kexec images, on our i386 (6.1, patched) and x86_64 (6.12.117) kernels:
a bzImage (bzImage64 on x86_64, entered at startup_64 by the 64-bit purgatory) and an
ELF vmlinux with an initrd booted for good (kexec -l; kexec -e), refused by purgatory
when a segment was corrupted after the load was planned, and started as a second kernel
that jumps back and forth with the first (--load-preserve-context,
--load-jump-back-helper).

The guests get the harness's own kernel and initramfs as /root/bzImage and
/root/initrd.img: the kexec'd kernel boots the same userland, whose /init prints
vmharness-shell-ready and gives a shell on the same serial console, so the test keeps
driving it.
"""

from __future__ import annotations

import json
import re
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from guest_paths import KEXEC_TOOLS
from vmharness.artifacts import prepare
from vmharness.guest import BASE_CMDLINE, BootSpec, Guest, GuestTimeout
from vmharness.kernel import Variant, build_kernel
from vmharness.overlay import RunSpec

pytestmark = pytest.mark.vm

KERNEL = "/root/bzImage"
INITRD = "/root/initrd.img"
CORRUPT_LOAD = Path(__file__).with_name("guest_corrupt_load.py")
BOOT_MESSAGE = re.compile(r"Linux version 6\.1(2)?\.\d+")
LOAD_TIMEOUT = 120   # planning + copying a 25 MB initrd into the kernel: ~5 s under TCG
JUMP_TIMEOUT = 60    # from kexec -e to the next kernel's first message: ~2-4 s
BOOT_TIMEOUT = 180   # from that message to the new shell (unpacking 25 MB of zstd): ~10 s
SILENCE = 5.0        # a kernel purgatory let through prints its banner well within this
# The preserve-context load holds the default window (~210 MiB: kernel, initrd, room)
# in the first kernel on top of its ~115 MiB ramfs root and a 64 MiB tmpfs file. 512 MiB
# also passes (~110 MiB left after load); 768 leaves room for the rootfs to grow.
PING_PONG_MEM_MB = 768
ROUND_TRIPS = 3
# purgatory writes the jump-back entry with all of a word's hex digits
JUMP_BACK_ENTRY = {"i386": re.compile(r" kexec_jump_back_entry=(0x[0-9a-f]{8})$"),
                   "x86_64": re.compile(r" kexec_jump_back_entry=(0x[0-9a-f]{16})$")}
KEXEC_ARCH = {"i386": 3 << 16, "x86_64": 62 << 16}  # KEXEC_ARCH_386, KEXEC_ARCH_X86_64
PRESERVE_CONTEXT = 0x2
I386_ONLY = pytest.mark.parametrize("images", ["i386"], indirect=True)


@dataclass(frozen=True)
class Images:
    arch: str
    boot: BootSpec  # its kernel and initrd are what the guests kexec

    @property
    def kernel(self) -> Path:
        return self.boot.kernel

    @property
    def initrd(self) -> Path:
        return self.boot.initrd


@pytest.fixture(scope="module", params=["i386", "x86_64"])
def images(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Images:
    """The kernel and initramfs the guests kexec: the ones the harness boots them with."""
    arch = request.param
    boot = prepare(tmp_path_factory.mktemp(f"kexec-images-{arch}"), RunSpec(), Variant.PATCHED, arch=arch)
    assert (boot.kernel.name, boot.initrd.name) == (Path(KERNEL).name, Path(INITRD).name)
    return Images(arch, boot)


def guest_with_images(guest_factory, images: Images, mem_mb: int = 512,
                      extra: tuple[Path, ...] = ()) -> Guest:
    return guest_factory(arch=images.arch, mem_mb=mem_mb, run=RunSpec(adds=(images.kernel, images.initrd, *extra)))


def loaded(g: Guest) -> str:
    return g.check("cat /sys/kernel/kexec_loaded").strip()


def marker(kind: str) -> str:
    return f"kexecpy.marker={kind}-{secrets.token_hex(4)}"


def exec_into_new_kernel(g: Guest, command: str = "kexec -e") -> None:
    """Send `command` and wait for a new kernel to boot to its shell, then adopt that shell."""
    g.send(command + "\n")
    g.expect(BOOT_MESSAGE, JUMP_TIMEOUT)
    g.wait_for_shell(BOOT_TIMEOUT)


def cmdline_size(images: Images) -> int:
    """The bzImage's setup header field cmdline_size (boot protocol >= 2.06)."""
    return struct.unpack_from("<I", images.kernel.read_bytes(), 0x238)[0]


# --- 1. plain kexec -------------------------------------------------------------------


def plain_kexec(guest_factory, images: Images, load: str, execute: str,
                syscall: tuple[str, str | None] | None = None) -> None:
    """syscall: what --dry-run --json must say the load uses, (first, fallback)."""
    g = guest_with_images(guest_factory, images)
    tag = marker("plain")
    if syscall is not None:
        plan = json.loads(g.check(f"{load} {KERNEL} --initrd={INITRD} --reuse-cmdline --append={tag}"
                                  " --dry-run --json"))
        assert (plan["syscall"], plan.get("fallback")) == syscall, plan
    g.check(f"{load} {KERNEL} --initrd={INITRD} --reuse-cmdline --append={tag}", timeout=LOAD_TIMEOUT)
    assert loaded(g) == "1"

    exec_into_new_kernel(g, execute)
    assert g.check("cat /proc/cmdline").split() == [*BASE_CMDLINE.split(), tag]
    # the new kernel runs the initrd's userland: kexec-py is installed, the images the
    # first kernel had in /root are not, and nothing is loaded yet
    g.check("test -x /usr/sbin/kexec && test ! -e /root/bzImage")
    assert loaded(g) == "0"


# -a, the default: kexec_file_load first where the arch has it (x86_64), falling back to kexec_load
DEFAULT_SYSCALL = {"i386": ("kexec_load", None), "x86_64": ("kexec_file_load", "kexec_load")}


def test_plain_kexec_boots_the_kernel_and_its_initrd(guest_factory, images) -> None:
    plain_kexec(guest_factory, images, "kexec -l", "kexec -e", DEFAULT_SYSCALL[images.arch])


@pytest.mark.parametrize("images", ["x86_64"], indirect=True)
def test_kexec_syscall_boots_it_through_kexec_load_and_purgatory(guest_factory, images) -> None:
    """-c on x86_64: kexec_load with the 64-bit purgatory instead of the kernel's file loader
    (-s: test_crash_kernel.py)."""
    plain_kexec(guest_factory, images, "kexec -c -l", "kexec -e", ("kexec_load", None))


@I386_ONLY
def test_kexec_tools_boots_it_the_same_way(guest_factory, images) -> None:
    """The baseline the kexec-py row is held to."""
    plain_kexec(guest_factory, images, f"{KEXEC_TOOLS} -c -l", f"{KEXEC_TOOLS} -e")


def test_plain_kexec_of_an_elf_vmlinux(guest_factory, images) -> None:
    """The same kernel as a plain ELF: PT_LOADs at their physical addresses, booted
    through the same zero page and purgatory (--args-linux)."""
    vmlinux = build_kernel(Variant.PATCHED, images.arch).vmlinux
    g = guest_factory(arch=images.arch, run=RunSpec(adds=(vmlinux, images.initrd)))
    tag = marker("vmlinux")
    g.check(f"kexec -l --args-linux /root/vmlinux --initrd={INITRD} --reuse-cmdline --append={tag}",
            timeout=LOAD_TIMEOUT)
    exec_into_new_kernel(g)
    assert g.check("cat /proc/cmdline").split() == [*BASE_CMDLINE.split(), tag]
    g.check("test -x /usr/sbin/kexec")


# --- 2. purgatory's SHA-256 check -----------------------------------------------------------


def corrupt_load(g: Guest, tag: str, *options: str) -> str:
    """Load `kexec -l` of the kernel with `tag` on its command line, with the tag's last
    character changed to Z (tags are hex) in the setup segment after the digest was made;
    returns the corrupted tag."""
    corrupted = tag[:-1] + "Z"
    output = g.check(f"python3 /root/{CORRUPT_LOAD.name} {tag} {corrupted} {' '.join(options)}"
                     f" {KERNEL} --initrd={INITRD} --reuse-cmdline --append={tag}", timeout=LOAD_TIMEOUT)
    assert "zero page (boot_params) + command line" in output, output
    assert loaded(g) == "1"
    return corrupted


def test_purgatory_refuses_a_segment_corrupted_after_load(guest_factory, images) -> None:
    g = guest_with_images(guest_factory, images, extra=(CORRUPT_LOAD,))
    corrupt_load(g, marker("sha256"))
    g.send("kexec -e\n")
    g.expect("purgatory: sha256 mismatch", JUMP_TIMEOUT)
    g.expect("purgatory: refusing to boot corrupt memory", 10)
    expected = re.search(r"purgatory: expected ([0-9a-f]{64})", g.console)
    computed = re.search(r"purgatory: computed ([0-9a-f]{64})", g.console)
    assert expected and computed and expected[1] != computed[1]
    # purgatory halts the machine: no kernel boots, QEMU neither resets nor exits
    with pytest.raises(GuestTimeout):
        g.expect(BOOT_MESSAGE, SILENCE)
    assert g.alive


@I386_ONLY
def test_no_checks_boots_the_corrupted_segment(guest_factory, images) -> None:
    g = guest_with_images(guest_factory, images, extra=(CORRUPT_LOAD,))
    tag = marker("nocheck")
    corrupted = corrupt_load(g, tag, "--no-checks")
    exec_into_new_kernel(g)
    cmdline = g.check("cat /proc/cmdline").split()
    assert corrupted in cmdline and tag not in cmdline, "the check was skipped and the corruption real"
    assert "purgatory:" not in g.console


# --- 3. kernel to kernel and back ------------------------------------------------------------


def window_top(plan: dict) -> int:
    """End of the preserve-context window: its RAM is all segments (image or backup)."""
    return max(s["mem"] + s["memsz"] for s in plan["segments"])


def system_ram(iomem: str) -> list[tuple[int, int]]:
    spans = [line.split(" : ")[0] for line in iomem.splitlines()
             if not line.startswith(" ") and line.endswith(" : System RAM")]
    return [(int(a, 16), int(b, 16) + 1) for a, b in (span.split("-") for span in spans)]


def jump(g: Guest, kernel: str, tag: str, count: int) -> None:
    """Send `kexec -e` in `kernel` ("first" or "second"), then a marker with its exit status:
    the marker shows only when some later jump resumes that kernel."""
    g.send(f"kexec -e; printf '{kernel}-{tag}-%s-%s\\n' {count} $?\n")


def resumed(g: Guest, kernel: str, tag: str, count: int) -> int:
    """Wait until `kernel`'s `count`-th kexec -e returned; its exit status."""
    return int(g.expect(f"{kernel}-{tag}-{count}-(\\d+)", JUMP_TIMEOUT)[1])


def test_second_kernel_jumps_back_and_forth(guest_factory, images) -> None:
    g = guest_with_images(guest_factory, images, mem_mb=PING_PONG_MEM_MB)
    first_ram = system_ram(g.check("cat /proc/iomem"))
    g.check("sleep 100000 & echo $! > /tmp/sleeper")
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum",
            timeout=120)

    load = (f"kexec --load-preserve-context {KERNEL} --initrd={INITRD} --reuse-cmdline"
            " --append=kexecpy.role=second")
    plan = json.loads(g.check(f"{load} --dry-run --json", timeout=LOAD_TIMEOUT))
    top = window_top(plan)
    g.check(load, timeout=LOAD_TIMEOUT)
    assert loaded(g) == "1"

    # kexec -e returns only when the second kernel jumps back: its status comes then
    tag = secrets.token_hex(4)
    jump(g, "first", tag, 1)
    g.expect(BOOT_MESSAGE, JUMP_TIMEOUT)
    g.wait_for_shell(BOOT_TIMEOUT)

    cmdline = g.check("cat /proc/cmdline").strip()
    assert cmdline.startswith(f"{BASE_CMDLINE} kexecpy.role=second kexec_jump_back_entry="), cmdline
    entry = JUMP_BACK_ENTRY[images.arch].search(cmdline)
    assert entry, cmdline
    # the second kernel got only the window as RAM (its e820 reserves the rest)
    second_ram = system_ram(g.check("cat /proc/iomem"))
    assert second_ram and max(end for _, end in second_ram) == top < max(end for _, end in first_ram)

    helper = json.loads(g.check("kexec --load-jump-back-helper --dry-run --json"))
    assert helper["entry"] == int(entry[1], 16)
    assert helper["flags"] == PRESERVE_CONTEXT | KEXEC_ARCH[images.arch]
    # i386: one segment of no memory; x86_64: the caller's re-entry page as purgatory saved it,
    # which the kernel must map to jump there (it maps only its own RAM and the segments)
    page = (int(entry[1], 16) & ~0xFFF, 0x1000, 0x1000)
    assert [(s["mem"], s["memsz"], s["bufsz"]) for s in helper["segments"]] == (
        [page] if images.arch == "x86_64" else [(0xFFFFF000, 0, 0)])
    g.check("kexec --load-jump-back-helper")
    assert loaded(g) == "1"
    g.check("sleep 100000 & echo $! > /tmp/sleeper")
    g.check(f"echo second-{tag} > /tmp/second-was-here")

    for trip in range(1, ROUND_TRIPS + 1):
        # second -> first: the first kernel's kexec -e returns 0, its state is intact
        jump(g, "second", tag, trip)
        assert resumed(g, "first", tag, trip) == 0
        g.check("test ! -e /tmp/second-was-here")  # this is the first kernel's /tmp
        assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0, "a process of the first kernel died"
        g.check("sha256sum -c /tmp/big.sum", timeout=120)  # 64 MiB of tmpfs came back intact
        assert loaded(g) == "1"

        # first -> second: it resumes where it left off, without any new load
        jump(g, "first", tag, trip + 1)
        assert resumed(g, "second", tag, trip) == 0
        assert g.check("cat /tmp/second-was-here").strip() == f"second-{tag}"
        assert g.run("kill -0 $(cat /tmp/sleeper)").rc == 0, "a process of the second kernel died"
        assert g.check("cat /proc/cmdline").strip() == cmdline
        assert loaded(g) == "1"

    assert len(BOOT_MESSAGE.findall(g.console)) == 2, "each kernel booted once"


# --- 4. bad input -------------------------------------------------------------------------


def bad_inputs(size: int) -> dict[str, tuple[str, str]]:
    """Name -> (command, what its one line of stderr must say)."""
    too_long = f"\"$(head -c {size + 1} /dev/zero | tr '\\0' x)\""
    no_room = f"\"$(head -c {size} /dev/zero | tr '\\0' x)\""
    room = len(" kexec_jump_back_entry=0x00000000")  # what purgatory appends
    return {
        "jump-back helper in a first kernel": (
            "kexec --load-jump-back-helper",
            "nothing to jump back to: /proc/cmdline has no kexec_jump_back_entry=",
        ),
        "missing initrd": (
            f"kexec -l {KERNEL} --initrd=/root/nonesuch.img --reuse-cmdline",
            "initrd: cannot open /root/nonesuch.img: No such file or directory",
        ),
        "command line over cmdline_size": (
            f"kexec -l {KERNEL} --append={too_long}",
            f"the command line is {size + 1} bytes, {KERNEL} takes at most {size} (cmdline_size {size})",
        ),
        "no room for kexec_jump_back_entry=": (
            f"kexec --load-preserve-context {KERNEL} --append={no_room}",
            f"the command line is {size} bytes, {KERNEL} takes at most {size - room}"
            f" (cmdline_size {size} less {room} for the kexec_jump_back_entry= purgatory appends)",
        ),
        "not a bzImage": (
            "kexec -l -t bzImage /bin/sh",
            "/bin/sh: not a bzImage (no 0xAA55 boot flag at 0x1fe and \"HdrS\" at 0x202)",
        ),
    }


@I386_ONLY
def test_bad_input_is_one_line_and_changes_nothing(guest_factory, images) -> None:
    g = guest_with_images(guest_factory, images)
    cases = bad_inputs(cmdline_size(images))
    for state in ("0", "1"):
        if state == "1":
            g.check(f"kexec -l {KERNEL} --initrd={INITRD} --reuse-cmdline", timeout=LOAD_TIMEOUT)
        assert loaded(g) == state
        for name, (command, message) in cases.items():
            rc, output = g.run(command, timeout=LOAD_TIMEOUT)
            assert rc == 255, f"{name}: {output}"
            lines = output.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"kexec: {message}"), f"{name}: {output}"
            assert loaded(g) == state, f"{name} changed /sys/kernel/kexec_loaded"
