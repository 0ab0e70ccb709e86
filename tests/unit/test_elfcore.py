"""The ELF core header encoder, read back with pyelftools (an independent decoder), and
the sysfs readers of crash_notes and vmcoreinfo."""

import io

import pytest
from elftools.elf.elffile import ELFFile

from kexec_py.elfcore import (
    ELFCLASS32,
    ELFCLASS64,
    EM_386,
    EM_X86_64,
    CoreLayout,
    core_class,
    encode,
    ram_ranges,
    read_cpu_notes,
    read_vmcoreinfo,
)
from kexec_py.errors import KexecError
from kexec_py.ranges import Range

NOTE0, NOTE1 = Range.sized(0x1F5E3000, 0x1AC), Range.sized(0x1F5F7000, 0x1AC)
VMCOREINFO = Range.sized(0x2A81000, 0x1000)
RAM = (Range(0x1000, 0x9F000), Range(0x100000, 0x15000000), Range(0x1D000000, 0x1FFE0000))

LAYOUTS = [
    # id, layout, (ELF class, e_machine), [(type, offset, paddr, vaddr, filesz, memsz, flags)]
    ("i386", CoreLayout(ELFCLASS32, EM_386, (NOTE0,), VMCOREINFO, RAM, 0xC0000000), ("ELFCLASS32", "EM_386"), [
        ("PT_NOTE", 0x1F5E3000, 0x1F5E3000, 0, 0x1AC, 0x1AC, 0),
        ("PT_NOTE", 0x2A81000, 0x2A81000, 0, 0x1000, 0x1000, 0),
        ("PT_LOAD", 0x1000, 0x1000, 0xC0001000, 0x9E000, 0x9E000, 7),
        ("PT_LOAD", 0x100000, 0x100000, 0xC0100000, 0x14F00000, 0x14F00000, 7),
        ("PT_LOAD", 0x1D000000, 0x1D000000, 0xDD000000, 0x2FE0000, 0x2FE0000, 7),
    ]),
    ("x86_64-two-cpus", CoreLayout(ELFCLASS64, EM_X86_64, (NOTE0, NOTE1), VMCOREINFO, RAM[:1]),
     ("ELFCLASS64", "EM_X86_64"), [
        ("PT_NOTE", 0x1F5E3000, 0x1F5E3000, 0, 0x1AC, 0x1AC, 0),
        ("PT_NOTE", 0x1F5F7000, 0x1F5F7000, 0, 0x1AC, 0x1AC, 0),
        ("PT_NOTE", 0x2A81000, 0x2A81000, 0, 0x1000, 0x1000, 0),
        ("PT_LOAD", 0x1000, 0x1000, 0, 0x9E000, 0x9E000, 7),
    ]),
    ("x86_64-above-4g-no-vmcoreinfo", CoreLayout(ELFCLASS64, EM_X86_64, (NOTE0,), None,
                                                  (Range(0x100000000, 0x140000000),)),
     ("ELFCLASS64", "EM_X86_64"), [
        ("PT_NOTE", 0x1F5E3000, 0x1F5E3000, 0, 0x1AC, 0x1AC, 0),
        ("PT_LOAD", 0x100000000, 0x100000000, 0, 0x40000000, 0x40000000, 7),
    ]),
]


@pytest.mark.parametrize("layout, identity, segments", [c[1:] for c in LAYOUTS], ids=[c[0] for c in LAYOUTS])
def test_encode(layout, identity, segments):
    data = encode(layout)
    elf = ELFFile(io.BytesIO(data))
    assert (elf.elfclass, elf["e_ident"]["EI_CLASS"], elf["e_machine"]) == (
        32 if layout.elf_class == ELFCLASS32 else 64, *identity)
    assert (elf["e_type"], elf["e_phoff"], elf["e_shnum"]) == ("ET_CORE", elf["e_ehsize"], 0)
    got = [(s["p_type"], s["p_offset"], s["p_paddr"], s["p_vaddr"], s["p_filesz"], s["p_memsz"], s["p_flags"])
           for s in elf.iter_segments()]
    assert got == segments
    assert len(data) == elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]  # nothing after the Phdrs


def test_a_32_bit_header_cannot_describe_ram_above_4g():
    with pytest.raises(KexecError, match="64-bit ELF core header"):
        encode(CoreLayout(ELFCLASS32, EM_386, (NOTE0,), None, (Range(0xFFFFF000, 0x100001000),)))


ABOVE_4G = (Range(0x100000, 0x1FFE0000), Range(0x100000000, 0x140000000))


@pytest.mark.parametrize("requested, arch_bits, ram, expected", [
    (None, 32, RAM, ELFCLASS32),  # kexec-tools' get_core_type(): i386 below 4 GiB
    (None, 32, ABOVE_4G, ELFCLASS64),  # an i386 PAE machine with RAM above 4 GiB
    (None, 64, RAM, ELFCLASS64),  # x86_64: always
    (64, 32, RAM, ELFCLASS64),  # --elf64-core-headers (kdump-tools' advice for i386 PAE)
    (32, 64, RAM, ELFCLASS32),  # --elf32-core-headers
    (32, 32, ABOVE_4G, ELFCLASS32),  # as asked: encode() then refuses, in one line
])
def test_core_class(requested, arch_bits, ram, expected):
    assert core_class(requested, arch_bits, ram) == expected


def test_ram_ranges_leave_out_the_reservation():
    assert ram_ranges([Range(0x1000, 0x9F000), Range(0x100000, 0x1FFE0000)], [Range(0x15000000, 0x1D000000)]) == RAM


def write_cpus(root, cpus):
    for n, note in cpus.items():
        d = root / f"sys/devices/system/cpu/cpu{n}"
        d.mkdir(parents=True)
        if note is not None:
            (d / "crash_notes").write_text(f"{note[0]:x}\n")
            (d / "crash_notes_size").write_text(f"{note[1]}\n")


@pytest.mark.parametrize("cpus, expected", [
    ({0: (0x1F5E3000, 428)}, (NOTE0,)),
    # CPU order is numeric (cpu10 after cpu2), a CPU without notes is left out
    ({0: (0x1000, 428), 2: (0x3000, 428), 10: (0xB000, 428), 1: None},
     (Range.sized(0x1000, 428), Range.sized(0x3000, 428), Range.sized(0xB000, 428))),
])
def test_read_cpu_notes(tmp_path, cpus, expected):
    write_cpus(tmp_path, cpus)
    assert read_cpu_notes(str(tmp_path)) == expected


def test_no_crash_notes_is_one_line(tmp_path):
    write_cpus(tmp_path, {0: None})
    with pytest.raises(KexecError, match=r"no CPU in \S+ has crash_notes \(a kernel without CONFIG_CRASH_DUMP\?\)$"):
        read_cpu_notes(str(tmp_path))


@pytest.mark.parametrize("text, expected", [("2a81000 1000\n", VMCOREINFO), (None, None)])
def test_read_vmcoreinfo(tmp_path, text, expected):
    if text is not None:
        (tmp_path / "sys/kernel").mkdir(parents=True)
        (tmp_path / "sys/kernel/vmcoreinfo").write_text(text)
    assert read_vmcoreinfo(str(tmp_path)) == expected
