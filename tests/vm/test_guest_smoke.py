"""The harness boots our i386 and x86_64 kernels with the Debian userland kexec-py needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from guest_paths import payload
from vmharness.guest import Guest
from vmharness.kernel import Variant, build_kernel

pytestmark = pytest.mark.vm
RUN_VM = Path(__file__).resolve().parents[2] / "qemu-harness" / "run-vm"


# uname -m and the kernel version each arch's guest runs
KERNELS = {"i386": ("i686", r"6\.1\.\d+"), "x86_64": ("x86_64", r"6\.12\.117")}
# what the x86_64 fragment adds to the common needs
ARCH_SYMBOLS = {"i386": ("HIGHMEM4G", "CRASH_DUMP", "PROC_VMCORE"),
                "x86_64": ("64BIT", "KEXEC_FILE", "RELOCATABLE", "CRYPTO_SHA256", "CRASH_DUMP", "PROC_VMCORE")}


def test_guest_runs_our_kernel(arch_guest: Guest, arch: str) -> None:
    machine, release = KERNELS[arch]
    assert arch_guest.check("uname -m").strip() == machine
    assert re.fullmatch(release, arch_guest.check("uname -r").strip())
    assert "console=ttyS0" in arch_guest.check("cat /proc/cmdline").split()


def test_kexec_interfaces_present(arch_guest: Guest) -> None:
    assert arch_guest.check("cat /sys/kernel/kexec_loaded").strip() == "0"
    entries = arch_guest.check("ls /sys/firmware/memmap").split()
    assert entries and all(e.isdigit() for e in entries)
    assert arch_guest.check("cat /sys/firmware/memmap/0/type").strip() == "System RAM"


def test_kernel_config_has_kexec_jump(arch: str) -> None:
    """The guest cannot read its own config (no IKCONFIG): check the cached build's."""
    config = build_kernel(Variant.PATCHED, arch).config.read_text()
    for symbol in ("KEXEC", "KEXEC_JUMP", "HIBERNATION", "FIRMWARE_MEMMAP", *ARCH_SYMBOLS[arch]):
        assert f"CONFIG_{symbol}=y\n" in config
    assert "CONFIG_IKCONFIG_PROC=y" not in config


def test_x86_64_has_no_unpatched_kernel() -> None:
    """6.12.117 has the upstream GDT-restore fix: its `patched` kernel is the plain one."""
    from vmharness.build import BuildError

    with pytest.raises(BuildError, match="needs no patch"):
        build_kernel(Variant.UNPATCHED, "x86_64")


def test_python_and_tools(arch_guest: Guest) -> None:
    arch_guest.check("python3 -c 'import _cffi_backend, elftools, pyroute2, kexec_py'")
    arch_guest.check("test -x /usr/sbin/kexec-tools && command -v setpriv")


def test_kexec_py_is_the_installed_deb(arch_guest: Guest) -> None:
    """The harness installs the .deb users get, not a copy of the sources."""
    guest = arch_guest
    assert "Status: install ok installed" in guest.check("dpkg -s kexec-py")
    assert guest.check("readlink -f /sbin/kexec").strip() == "/usr/sbin/kexec"
    assert "/usr/sbin/kexec" in guest.check("dpkg -L kexec-py").split()
    for arch in ("i386", "x86_64"):
        guest.check(f"test -f {payload(arch, 'phy_mode')} && test -f {payload(arch, 'entry_report')}")
    for arch, name in (("i386", "purgatory.ro"), ("x86_64", "purgatory64.ro")):
        purgatory = guest.check("python3 -c 'from kexec_py import arch, purgatory;"
                                f" print(purgatory.default_purgatory_path(arch.ARCHES[\"{arch}\"]))'")
        assert purgatory.strip() == f"/usr/lib/python3/dist-packages/kexec_py/data/{name}"
    assert guest.check("kexec --version").strip() == "kexec-py 0.1.0"


def test_run_vm_script_mode(tmp_path: Path, arch: str) -> None:
    """run-vm puts --add files in /root, runs the script there and exits with its status."""
    data = tmp_path / "data.txt"
    data.write_text("payload\n")
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nset -e\n[ \"$(pwd)\" = /root ]\n[ \"$(id -u)\" = 0 ]\n"
                      "cat data.txt\nexit 7\n")
    result = subprocess.run([sys.executable, RUN_VM, "--arch", arch, "--script", script, "--add", data],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 7, result.stdout[-3000:] + result.stderr[-3000:]
    assert "payload" in result.stdout


def test_kexec_runs_from_the_byte_compiled_modules(arch_guest: Guest) -> None:
    """dpkg byte-compiles the package (py3compile): every kexec_py module of a load comes
    from its .pyc, none is compiled from source at start-up (python3 -v names the file each
    code object came from)."""
    verbose = arch_guest.check("python3 -IS -v /usr/sbin/kexec --dry-run --load-preserve-context --args-none"
                               " phy_mode 2>&1 >/dev/null | grep 'code object from'")
    package = "/usr/lib/python3/dist-packages/kexec_py/"
    sources = re.findall(r"code object from '?(\S+?\.py)'?$", verbose, re.M)
    compiled = re.findall(rf"code object from '{re.escape(package)}(?:\S+/)?__pycache__/(\w+)\.cpython-\d+\.pyc'",
                          verbose)
    assert not [path for path in sources if path.startswith(package)], verbose
    assert {"cli", "options", "memmap", "machine_files", "planner", "elf_x86"} <= set(compiled), verbose
