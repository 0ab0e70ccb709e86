"""kexec_file_load and the crash kernel (issue 10), on the harness's kernels.

- x86_64: `kexec -s -l` of the harness's own bzImage and initramfs with a random
  command-line tag, then `kexec -e`: the new kernel has the tag and runs the initramfs's
  userland.
- i386 and x86_64: `kexec -p` of the same bzImage with a tiny initramfs (crash_init.c)
  into a crashkernel= reservation (x86_64: the default -a, kexec_file_load with
  KEXEC_FILE_ON_CRASH, whose kernel writes the ELF core header, and -c, kexec_load;
  kexec_load with kexec-py's header, purgatory and a zero page whose e820 lists only the
  crash kernel's memory, on both arches); `echo c > /proc/sysrq-trigger`
  boots it, and it finds in /proc/vmcore a random marker that a process of the crashed
  kernel held in memory, and saves what it read on the guest's disk (a plain copy of the
  dump), where the host finds the marker too.

(Without crashkernel=, `kexec -p` failing with one line is a row of test_bad_input.py.)
"""

from __future__ import annotations

import gzip
import io
import json
import mmap
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from vmharness.artifacts import prepare
from vmharness.guest import BASE_CMDLINE, NEWLINE, BootSpec
from vmharness.kernel import Variant
from vmharness.overlay import RunSpec

pytestmark = pytest.mark.vm

KERNEL, INITRD, CRASH_INITRD = "/root/bzImage", "/root/initrd.img", "/root/crash-initrd.img"
CRASH_INIT = Path(__file__).with_name("crash_init.c")
RESERVED = "crashkernel=96M"  # the harness kernel and a 300 KiB initramfs boot in it
DISK = "512M"  # the crash kernel saves the dump (435 MB of a 512 MiB guest) on it
BOOT_MESSAGE = {"x86_64": re.compile(r"Linux version 6\.12\.\d+"), "i386": re.compile(r"Linux version 6\.1\.\d+")}
LOAD_TIMEOUT = 120
JUMP_TIMEOUT = 60
BOOT_TIMEOUT = 180
CAPTURE_TIMEOUT = 300  # crash, boot the crash kernel, read the 512 MiB vmcore under TCG


def images(tmp_path_factory: pytest.TempPathFactory, arch: str) -> BootSpec:
    """The kernel and initramfs the harness boots the guest with, to kexec."""
    boot = prepare(tmp_path_factory.mktemp("kexec-images"), RunSpec(), Variant.PATCHED, arch=arch)
    assert (boot.kernel.name, boot.initrd.name) == (Path(KERNEL).name, Path(INITRD).name)
    return boot


def newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio archive in the kernel's initramfs format (newc): (name, mode, data) each."""
    out = io.BytesIO()

    def pad() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
        pad()
        out.write(data)
        pad()
    return out.getvalue()


def crash_initrd(tmp_path_factory: pytest.TempPathFactory, arch: str) -> Path:
    """/init = crash_init.c, static; /proc and /dev to mount procfs and devtmpfs on."""
    directory = tmp_path_factory.mktemp("crash-initrd")
    init = directory / "init"
    bits = ["-m32"] if arch == "i386" else []
    subprocess.run(["gcc", *bits, "-static", "-O2", "-Wall", "-Werror", "-o", init, CRASH_INIT], check=True)
    path = directory / Path(CRASH_INITRD).name
    path.write_bytes(gzip.compress(newc([("proc", 0o40755, b""), ("dev", 0o40755, b""),
                                         ("init", 0o100755, init.read_bytes())])))
    return path


def tag(kind: str) -> str:
    return f"kexecpy.{kind}={secrets.token_hex(6)}"


def test_kexec_file_syscall_boots_the_kernel_and_its_initrd(guest_factory, tmp_path_factory) -> None:
    boot = images(tmp_path_factory, "x86_64")
    g = guest_factory(arch="x86_64", run=RunSpec(adds=(boot.kernel, boot.initrd)))
    marker = tag("plain")
    plan = g.check(f"kexec -s -l {KERNEL} --initrd={INITRD} --reuse-cmdline --append={marker} --dry-run --json")
    assert '"syscall": "kexec_file_load"' in plan and '"fallback": null' in plan, plan
    g.check(f"kexec -s -l {KERNEL} --initrd={INITRD} --reuse-cmdline --append={marker}", timeout=LOAD_TIMEOUT)
    assert g.check("cat /sys/kernel/kexec_loaded").strip() == "1"
    assert g.run("kexec -S").rc == 0 and g.run("kexec -S -l").rc == 1  # -S alone: the crash kernel
    g.send("kexec -e\n")
    g.expect(BOOT_MESSAGE["x86_64"], JUMP_TIMEOUT)
    g.wait_for_shell(BOOT_TIMEOUT)
    assert g.check("cat /proc/cmdline").split() == [*BASE_CMDLINE.split(), marker]
    g.check("test -x /usr/sbin/kexec && test ! -e /root/bzImage")  # the initramfs's userland


@pytest.mark.parametrize("arch, syscall, first", [("x86_64", "", "kexec_file_load"), ("x86_64", "-c", "kexec_load"),
                                                  ("i386", "", "kexec_load")], ids=["x86_64", "x86_64-c", "i386"])
def test_crash_kernel_finds_a_marker_in_vmcore(guest_factory, tmp_path_factory, arch, syscall, first) -> None:
    boot = images(tmp_path_factory, arch)
    initrd = crash_initrd(tmp_path_factory, arch)
    g = guest_factory(arch=arch, append=RESERVED, run=RunSpec(adds=(boot.kernel, initrd)), disk=DISK)
    iomem = g.check("cat /proc/iomem")
    assert "Crash kernel" in iomem
    # the marker exists forward only in this process's memory: it is built from its reverse
    secret = secrets.token_hex(8)
    marker, reverse = f"kexecpy-crash-marker-{secret}", f"kexecpy-crash-marker-{secret}"[::-1]
    g.check(f"python3 -c 'import sys, time; m = sys.argv[1][::-1].encode() * 4096; time.sleep(10**6)' {reverse} &"
            " sleep 2")
    load = f"kexec {syscall} -p {KERNEL} --initrd={CRASH_INITRD} --reuse-cmdline --append=kexecpy.find={reverse}"
    assert json.loads(g.check(f"{load} --dry-run --json", timeout=LOAD_TIMEOUT))["syscall"] == first
    g.check(load, timeout=LOAD_TIMEOUT)
    assert g.check("cat /sys/kernel/kexec_crash_loaded").strip() == "1"
    assert g.run("kexec -S").rc == 1 and g.run("kexec -S -l").rc == 0
    g.send("echo c > /proc/sysrq-trigger\n")
    g.expect(BOOT_MESSAGE[arch], JUMP_TIMEOUT)
    # a pattern ends at the line's end: the console arrives in pieces, and a match must not stop early
    cmdline = g.expect(r"crash-init: cmdline: ([^\r\n]*)" + NEWLINE.pattern, BOOT_TIMEOUT)[1].split()
    assert any(p.startswith("elfcorehdr=") for p in cmdline), cmdline  # the kernel's or kexec-py's ELF core header
    assert RESERVED not in cmdline, cmdline  # -p --reuse-cmdline drops crashkernel=
    found = g.expect(r"crash-init: vmcore (\d+) bytes, marker hits (\d+)" + NEWLINE.pattern, CAPTURE_TIMEOUT)
    assert int(found[1]) > 256 << 20, "the vmcore holds the crashed kernel's RAM"
    assert int(found[2]) >= 1, f"{marker} not in /proc/vmcore"
    # a plain copy saves it: the crash kernel wrote what it read to the disk, where the marker is
    saved = g.expect(r"crash-init: saved (\d+) bytes on /dev/vda" + NEWLINE.pattern, CAPTURE_TIMEOUT)
    assert int(saved[1]) == int(found[1])
    assert g.boot.disk is not None
    with open(g.boot.disk, "rb") as disk, mmap.mmap(disk.fileno(), 0, access=mmap.ACCESS_READ) as image:
        assert image.find(marker.encode(), 0, int(saved[1])) >= 0, f"{marker} not in the saved dump"
    # its RAM is the low 640 KiB and the reservation, in the e820 its decompressor (KASLR) reads
    # too; the kernel says so when the decompressor placed it outside that RAM
    reservation = [(int(a, 16), int(b, 16)) for a, b in re.findall(r"([0-9a-f]+)-([0-9a-f]+) : Crash kernel", iomem)]
    crash_boot = g.console[g.console.rindex("sysrq: Trigger a crash"):]
    usable = [(int(a, 16), int(b, 16)) for a, b in
              re.findall(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] usable", crash_boot)]  # inclusive
    assert usable and all(last < 0xA0000 or any(start <= first and last <= end for start, end in reservation)
                          for first, last in usable), crash_boot
    assert ".text .data .bss are not marked as E820_TYPE_RAM" not in crash_boot
