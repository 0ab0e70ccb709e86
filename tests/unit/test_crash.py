"""The crash kernel's pure parts: the crashkernel= reservation in /proc/iomem and the
crash kernel's command line."""

import pytest

from kexec_py.cmdline import reusable
from kexec_py.crash import NOT_RESERVED, NotReserved, crash_command_line, crash_reservation, parse_crash_reservation
from kexec_py.ranges import Range

IOMEM_X86_64 = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-1ffdffff : System RAM
  05000000-05ffffff : Kernel code
  15000000-1cffffff : Crash kernel
fd000000-fdffffff : PCI Bus 0000:00
"""


@pytest.mark.parametrize("iomem, expected", [
    (IOMEM_X86_64, (Range(0x15000000, 0x1D000000),)),
    ("00100000-1ffdffff : System RAM\n", ()),
    # crashkernel=X,high and its low part: two ranges, in file order
    ("100000000-17fffffff : System RAM\n  170000000-17fffffff : Crash kernel\n"
     "00100000-7ffdffff : System RAM\n  6f000000-7effffff : Crash kernel\n",
     (Range(0x170000000, 0x180000000), Range(0x6F000000, 0x7F000000))),
    ("00000000-00000000 : Crash kernel\n", (Range(0, 1),)),  # as non-root users see it
    ("  15000000-1cffffff : Crash kernels\n", ()),  # the name exactly
])
def test_parse_crash_reservation(iomem, expected):
    assert parse_crash_reservation(iomem) == expected


@pytest.mark.parametrize("iomem, error", [
    ("00100000-1ffdffff : System RAM\n", NOT_RESERVED),
    ("00000000-00000000 : System RAM\n  00000000-00000000 : Crash kernel\n", "hides its addresses"),
    (None, "cannot read"),
])
def test_crash_reservation_refusals(tmp_path, iomem, error):
    if iomem is not None:
        (tmp_path / "proc").mkdir()
        (tmp_path / "proc/iomem").write_text(iomem)
    with pytest.raises(Exception) as refused:
        crash_reservation(str(tmp_path))
    assert error in str(refused.value) and "\n" not in str(refused.value)
    if iomem and "System RAM\n" == iomem[-11:]:
        assert isinstance(refused.value, NotReserved) and refused.value.exit_code == 1  # kexec-tools' die()


def test_crash_reservation_found(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/iomem").write_text(IOMEM_X86_64)
    assert crash_reservation(str(tmp_path)) == (Range(0x15000000, 0x1D000000),)


@pytest.mark.parametrize("proc_cmdline, crash, expected", [
    ("BOOT_IMAGE=/vmlinuz root=/dev/vda crashkernel=256M quiet", True, "root=/dev/vda quiet"),
    ("root=/dev/vda crashkernel=256M", False, "root=/dev/vda crashkernel=256M"),
    ("crashkernel=512M-2G:64M,2G-:256M crashkernel=64M,low x", True, "x"),
])
def test_reuse_for_a_crash_kernel_drops_crashkernel(proc_cmdline, crash, expected):
    assert reusable(proc_cmdline, crash) == expected


@pytest.mark.parametrize("line, elfcorehdr, expected", [
    (None, None, "maxcpus=1 reset_devices irqpoll"),
    ("", 0x1F000000, "elfcorehdr=507904K maxcpus=1 reset_devices irqpoll"),
    ("console=ttyS0 root=/dev/vda", None, "console=ttyS0 root=/dev/vda maxcpus=1 reset_devices irqpoll"),
    # what the line says already is not said twice (nr_cpus= is the stronger maxcpus=)
    ("nr_cpus=1 irqpoll", None, "nr_cpus=1 irqpoll reset_devices"),
    ("maxcpus=2 reset_devices", None, "maxcpus=2 reset_devices irqpoll"),
    # a stale elfcorehdr= (a reused line of a crash kernel) gives way to where this one is
    ("elfcorehdr=1024K quiet", 0x2000000, "quiet elfcorehdr=32768K maxcpus=1 reset_devices irqpoll"),
    ('dyndbg="file x.c +p" a', None, 'dyndbg="file x.c +p" a maxcpus=1 reset_devices irqpoll'),
])
def test_crash_command_line(line, elfcorehdr, expected):
    assert crash_command_line(line, elfcorehdr) == expected
