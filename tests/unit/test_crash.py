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


# --- i386 -p through kexec_load: the plan --------------------------------------------------------

RESERVATION = Range(0x15000000, 0x19000000)


@pytest.fixture
def crash_machine(tmp_path):
    """A 512 MiB i386 machine booted with crashkernel=64M: one CPU, vmcoreinfo, an ACPI table."""
    from unit_support import write_tree

    root = tmp_path / "machine"
    write_tree(root, sysfs=[(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x1FFDFFFF, "System RAM"),
                            (0x1FFE0000, 0x1FFFFFFF, "ACPI Tables")],
               iomem="00100000-1ffdffff : System RAM\n  15000000-18ffffff : Crash kernel\n", meminfo_kb=500000)
    (root / "proc/cmdline").write_text("console=ttyS0 crashkernel=64M panic=-1\n")
    cpu = root / "sys/devices/system/cpu/cpu0"
    cpu.mkdir(parents=True)
    (cpu / "crash_notes").write_text("1f5e3000\n")
    (cpu / "crash_notes_size").write_text("428\n")
    (root / "sys/kernel").mkdir(parents=True)
    (root / "sys/kernel/vmcoreinfo").write_text("2a81000 1000\n")
    return str(root)


def test_i386_crash_kernel_plan(run_cli, crash_machine, purgatory_ro, monkeypatch, tmp_path):
    import json

    from test_bzimage import bzimage_bytes

    monkeypatch.setenv("KEXEC_PY_PURGATORY", purgatory_ro)
    bz = tmp_path / "bzImage"
    bz.write_bytes(bzimage_bytes(relocatable=1, kernel_alignment=0x1000000))
    result = run_cli(["--arch", "i386", "--machine-root", crash_machine, "--dry-run", "--json", "-p", str(bz),
                      "--reuse-cmdline", "--append=kexecpy.tag=1"])
    assert (result.code, result.err) == (0, "")
    plan = json.loads(result.out)
    assert (plan["flags"], plan["syscall"]) == (0x30001, "kexec_load")  # KEXEC_ON_CRASH | KEXEC_ARCH_386
    segments = [Range.sized(s["mem"], s["memsz"]) for s in plan["segments"]]
    assert all(RESERVATION.contains(s) for s in segments), segments  # the kernel refuses anything else
    header = next(s for s in plan["segments"] if s["source"].startswith("ELF core header"))
    assert header["mem"] + header["memsz"] == RESERVATION.end
    assert any(s["source"].startswith("purgatory") for s in plan["segments"])


def test_crash_kernel_zero_page_lists_only_its_own_ram(run_cli, crash_machine, purgatory_ro, monkeypatch, tmp_path):
    """The crash kernel's e820 (zero page) has the low 640 KiB and the window below the core
    header as its only usable RAM, firmware entries kept: its decompressor picks a KASLR spot
    from that table alone, and with all of RAM there it landed in the crashed kernel's memory."""
    import struct

    from test_bzimage import bzimage_bytes
    from unit_support import FakeKernel

    monkeypatch.setenv("KEXEC_PY_PURGATORY", purgatory_ro)
    bz = tmp_path / "bzImage"
    bz.write_bytes(bzimage_bytes(relocatable=1, kernel_alignment=0x1000000))
    kernel = FakeKernel()
    result = run_cli(["--arch", "i386", "--machine-root", crash_machine, "-p", str(bz)], kernel)
    assert (result.code, result.err) == (0, "")
    segments = kernel.plans[0].segments
    [page] = [bytes(s.buf) for s in segments if s.source.startswith("zero page")]
    [header] = [s for s in segments if s.source.startswith("ELF core header")]
    e820 = [struct.unpack_from("<QQI", page, 0x2D0 + 20 * i) for i in range(page[0x1E8])]
    usable = [Range.sized(addr, size) for addr, size, kind in e820 if kind == 1]
    assert usable == [Range(0, 0x9FC00), Range(RESERVATION.start, header.mem)], e820
    assert (0x1FFE0000, 0x20000, 3) in e820, e820  # the firmware's ACPI tables, kept
    assert (0x100000, RESERVATION.start - 0x100000, 2) in e820, e820  # the crashed kernel's RAM: reserved
    assert "memmap=" not in page[page.index(b"elfcorehdr="):].split(b"\0")[0].decode()


@pytest.mark.parametrize("option, elf_class", [
    ([], "ELFCLASS32"),  # kexec-tools' default on i386 below 4 GiB
    (["--elf32-core-headers"], "ELFCLASS32"),
    (["--elf64-core-headers"], "ELFCLASS64"),  # kdump-tools' KDUMP_KEXEC_ARGS for i386 PAE
])
def test_i386_core_header_class(run_cli, crash_machine, purgatory_ro, monkeypatch, tmp_path, option, elf_class):
    import io

    from elftools.elf.elffile import ELFFile

    from test_bzimage import bzimage_bytes
    from unit_support import FakeKernel

    monkeypatch.setenv("KEXEC_PY_PURGATORY", purgatory_ro)
    bz = tmp_path / "bzImage"
    bz.write_bytes(bzimage_bytes(relocatable=1, kernel_alignment=0x1000000))
    kernel = FakeKernel()
    result = run_cli(["--arch", "i386", "--machine-root", crash_machine, "-p", *option, str(bz)], kernel)
    assert (result.code, result.err, kernel.calls) == (0, "", ["kexec_load"])
    [header] = [s for s in kernel.plans[0].segments if s.source.startswith("ELF core header")]
    elf = ELFFile(io.BytesIO(bytes(header.buf)))
    assert (elf["e_ident"]["EI_CLASS"], elf["e_machine"], elf["e_type"]) == (elf_class, "EM_386", "ET_CORE")
    loads = [(s["p_paddr"], s["p_memsz"]) for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    assert loads == [(0, 0x9FC00), (0x100000, 0x14F00000), (0x19000000, 0x6FE0000)]  # either class, same RAM


def test_i386_crash_kernel_header_and_command_line(crash_machine):
    """The same load's header and command line, from the layout the CLI uses."""
    import io

    from elftools.elf.elffile import ELFFile

    from kexec_py.crash import crash_layout
    from kexec_py.elfcore import ELFCLASS32, EM_386, CoreLayout, encode, read_cpu_notes, read_vmcoreinfo
    from kexec_py.memmap import read_memory_map

    memory = read_memory_map(crash_machine)
    ram = ram_ranges_of(memory)
    header = encode(CoreLayout(ELFCLASS32, EM_386, read_cpu_notes(crash_machine), read_vmcoreinfo(crash_machine),
                               ram))
    layout = crash_layout("console=ttyS0 panic=-1", RESERVATION, header)
    loads = [(s["p_paddr"], s["p_memsz"]) for s in ELFFile(io.BytesIO(layout.header.buf)).iter_segments()
             if s["p_type"] == "PT_LOAD"]
    assert loads == [(0, 0x9FC00), (0x100000, 0x14F00000), (0x19000000, 0x6FE0000)]  # RAM but the reservation
    assert layout.command_line == "console=ttyS0 panic=-1 elfcorehdr=409596K maxcpus=1 reset_devices irqpoll"
    assert layout.window == Range(RESERVATION.start, layout.header.mem)
    assert layout.usable_ram == (Range(0, 0xA0000), layout.window)


def ram_ranges_of(memory):
    from kexec_py.elfcore import ram_ranges
    from kexec_py.memmap import SYSTEM_RAM

    return ram_ranges([r.range for r in memory.regions if r.type == SYSTEM_RAM], [RESERVATION])


@pytest.mark.parametrize("iomem, expected", [
    (IOMEM_X86_64, "134217728\n"),  # 0x15000000-0x1cffffff
    # crashkernel=X,high with its low part: the span from the first start to the last end
    ("  6f000000-7effffff : Crash kernel\n  170000000-17fffffff : Crash kernel\n", f"{0x180000000 - 0x6F000000}\n"),
    ("00100000-1ffdffff : System RAM\n", "0\n"),  # nothing reserved: 0, exit 0 (kexec-tools)
])
def test_print_crash_kernel_size(run_cli, tmp_path, iomem, expected):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/iomem").write_text(iomem)
    result = run_cli(["--machine-root", tmp_path, "--print-ckr-size"])
    assert (result.code, result.out, result.err) == (0, expected, "")


@pytest.mark.parametrize("argv", [["--print-ckr-size", "bzImage"], ["--print-ckr-size", "-p"],
                                  ["--print-ckr-size", "-S"], ["--print-ckr-size", "-l"]])
def test_print_crash_kernel_size_takes_nothing_else(run_cli, tmp_path, argv):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/iomem").write_text(IOMEM_X86_64)
    result = run_cli(["--machine-root", tmp_path, *argv])
    assert result.code == 1 and result.out == "" and len(result.err.splitlines()) == 1, result
