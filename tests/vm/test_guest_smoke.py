"""The harness boots our i386 kernel with the Debian userland kexec-py needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from guest_paths import ENTRY_REPORT, PHY_MODE
from vmharness.guest import Guest
from vmharness.kernel import Variant, build_kernel

pytestmark = pytest.mark.vm
RUN_VM = Path(__file__).resolve().parents[2] / "qemu-harness" / "run-vm"


def test_guest_runs_our_i386_kernel(guest: Guest) -> None:
    assert guest.check("uname -m").strip() == "i686"
    assert re.fullmatch(r"6\.1\.\d+", guest.check("uname -r").strip())
    assert "console=ttyS0" in guest.check("cat /proc/cmdline").split()


def test_kexec_interfaces_present(guest: Guest) -> None:
    assert guest.check("cat /sys/kernel/kexec_loaded").strip() == "0"
    entries = guest.check("ls /sys/firmware/memmap").split()
    assert entries and all(e.isdigit() for e in entries)
    assert guest.check("cat /sys/firmware/memmap/0/type").strip() == "System RAM"


def test_kernel_config_has_kexec_jump() -> None:
    """The guest cannot read its own config (no IKCONFIG): check the cached build's."""
    config = build_kernel(Variant.PATCHED).config.read_text()
    for symbol in ("KEXEC", "KEXEC_JUMP", "HIBERNATION", "FIRMWARE_MEMMAP"):
        assert f"CONFIG_{symbol}=y\n" in config
    assert "CONFIG_IKCONFIG_PROC=y" not in config


def test_python_and_tools(guest: Guest) -> None:
    guest.check("python3 -c 'import _cffi_backend, elftools, pyroute2, kexec_py'")
    guest.check("test -x /usr/sbin/kexec-tools && command -v setpriv")


def test_kexec_py_is_the_installed_deb(guest: Guest) -> None:
    """The harness installs the .deb users get, not a copy of the sources."""
    assert "Status: install ok installed" in guest.check("dpkg -s kexec-py")
    assert guest.check("readlink -f /sbin/kexec").strip() == "/usr/sbin/kexec"
    assert "/usr/sbin/kexec" in guest.check("dpkg -L kexec-py").split()
    guest.check(f"test -f {PHY_MODE} && test -f {ENTRY_REPORT}")
    purgatory = guest.check("python3 -c 'from kexec_py import purgatory; print(purgatory.default_purgatory_path())'")
    assert purgatory.strip() == "/usr/lib/python3/dist-packages/kexec_py/data/purgatory.ro"
    assert guest.check("kexec --version").strip() == "kexec-py 0.1.0"


def test_run_vm_script_mode(tmp_path: Path) -> None:
    """run-vm puts --add files in /root, runs the script there and exits with its status."""
    data = tmp_path / "data.txt"
    data.write_text("payload\n")
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nset -e\n[ \"$(pwd)\" = /root ]\n[ \"$(id -u)\" = 0 ]\n"
                      "cat data.txt\nexit 7\n")
    result = subprocess.run([sys.executable, RUN_VM, "--script", script, "--add", data],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 7, result.stdout[-3000:] + result.stderr[-3000:]
    assert "payload" in result.stdout
