"""The next kernel's command line: --command-line/--append, --reuse-cmdline (kexec_py.cmdline)."""

import pytest

from kexec_py.cmdline import compose, parameters, read_proc_cmdline, reusable
from kexec_py.errors import KexecError


@pytest.mark.parametrize(
    "cmdline, split",
    [
        ("", []),
        ("a b=c  d", ["a", "b=c", "d"]),
        ('x="a b" y', ['x="a b"', "y"]),
        ('init=/bin/sh -- "quoted arg"', ["init=/bin/sh", "--", '"quoted arg"']),
        ('dangling="a b', ['dangling="a b']),
    ],
)
def test_parameters(cmdline, split):
    assert parameters(cmdline) == split


@pytest.mark.parametrize(
    "cmdline, reused",
    [
        ("BOOT_IMAGE=/boot/vmlinuz-6.1 root=/dev/sda1 ro quiet", "root=/dev/sda1 ro quiet"),
        # only the parameter named BOOT_IMAGE, not look-alikes
        ("root=/dev/sda1 XBOOT_IMAGE=1 BOOT_IMAGE_X=2", "root=/dev/sda1 XBOOT_IMAGE=1 BOOT_IMAGE_X=2"),
        # a stale jump-back entry (this kernel was itself started by a jump) is dropped
        ("console=ttyS0 kexec_jump_back_entry=0x0012a000", "console=ttyS0"),
        # crashkernel= stays: kexec-py loads no crash kernels
        ("crashkernel=256M console=ttyS0", "crashkernel=256M console=ttyS0"),
        ('BOOT_IMAGE="/boot/my kernel" x="a b"', 'x="a b"'),
        ("", ""),
    ],
)
def test_reusable(cmdline, reused):
    assert reusable(cmdline) == reused


@pytest.mark.parametrize(
    "reused, append, line",
    [
        (None, None, None),
        (None, "console=ttyS0", "console=ttyS0"),
        ("root=/dev/sda1", None, "root=/dev/sda1"),
        ("root=/dev/sda1", "console=ttyS0", "root=/dev/sda1 console=ttyS0"),  # appended after
        ("", "x", "x"),
        ("", None, ""),  # --reuse-cmdline of an empty line: an empty command line, not "none given"
        (None, "", ""),
    ],
)
def test_compose(reused, append, line):
    assert compose(reused, append) == line


def test_read_proc_cmdline(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("console=ttyS0 quiet\n")
    assert read_proc_cmdline(str(tmp_path)) == "console=ttyS0 quiet"


def test_read_proc_cmdline_missing(tmp_path):
    with pytest.raises(KexecError, match=r"^cannot read .*/proc/cmdline: No such file or directory$"):
        read_proc_cmdline(str(tmp_path))
