"""The ELF core header a crash kernel finds at elfcorehdr=: how /proc/vmcore is laid
out over the crashed kernel's memory. One PT_NOTE per CPU (its crash_notes buffer,
which the crashing kernel fills with the registers), one for vmcoreinfo, one PT_LOAD
per range of the crashed kernel's RAM (p_offset = p_paddr: vmcore reads physical
memory). kexec_file_load's kernel builds its own (crash_prepare_elf64_headers);
kexec_load needs ours, as kexec-tools' crashdump-elf.c writes it.

encode() is pure; the readers below it take the machine's root directory.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Sequence

from kexec_py.errors import KexecError
from kexec_py.machine_files import read_value
from kexec_py.ranges import Range
from kexec_py.value import frozen

ELFCLASS32, ELFCLASS64 = 1, 2
EM_386, EM_X86_64 = 3, 62
ET_CORE, EV_CURRENT, ELFDATA2LSB = 4, 1, 1
PT_LOAD, PT_NOTE = 1, 4
PF_RWX = 7

# (Ehdr, Phdr) per class; Phdr field order differs: p_flags comes second in ELF64.
_EHDR = {ELFCLASS32: struct.Struct("<16sHHIIIIIHHHHHH"), ELFCLASS64: struct.Struct("<16sHHIQQQIHHHHHH")}
_PHDR = {ELFCLASS32: struct.Struct("<IIIIIIII"), ELFCLASS64: struct.Struct("<IIQQQQQQ")}


@frozen
class CoreLayout:
    """What the header describes: where the notes are, which RAM was the crashed kernel's."""

    elf_class: int  # ELFCLASS32 or ELFCLASS64
    machine: int  # EM_386 or EM_X86_64
    cpu_notes: tuple[Range, ...]  # each CPU's crash_notes buffer
    vmcoreinfo: Range | None
    ram: tuple[Range, ...]
    page_offset: int = 0  # p_vaddr = page_offset + p_paddr (0: not given)


def encode(layout: CoreLayout) -> bytes:
    """The header: Ehdr, then the Phdrs (notes first, as the kernel and kexec-tools order them)."""
    ehdr, phdr = _EHDR[layout.elf_class], _PHDR[layout.elf_class]
    notes = [*layout.cpu_notes, *([layout.vmcoreinfo] if layout.vmcoreinfo else [])]
    limit = 1 << (32 if layout.elf_class == ELFCLASS32 else 64)
    if any(r.end > limit for r in (*notes, *layout.ram)):
        raise KexecError("RAM above 4 GiB needs a 64-bit ELF core header")
    headers = [(PT_NOTE, 0, r.start, 0, r.size) for r in notes]
    headers += [(PT_LOAD, PF_RWX, r.start, layout.page_offset + r.start if layout.page_offset else 0, r.size)
                for r in layout.ram]
    ident = b"\x7fELF" + bytes([layout.elf_class, ELFDATA2LSB, EV_CURRENT]) + bytes(9)
    out = bytearray(ehdr.pack(ident, ET_CORE, layout.machine, EV_CURRENT, 0, ehdr.size, 0, 0, ehdr.size,
                              phdr.size, len(headers), 0, 0, 0))
    for kind, flags, paddr, vaddr, size in headers:
        if layout.elf_class == ELFCLASS32:
            out += phdr.pack(kind, paddr, vaddr, paddr, size, size, flags, 0)
        else:
            out += phdr.pack(kind, flags, paddr, vaddr, paddr, size, size, 0)
    return bytes(out)


def core_class(requested_bits: int | None, arch_bits: int, ram: Sequence[Range]) -> int:
    """The header's class as kexec-tools chooses it: --elf32/--elf64-core-headers if given,
    else ELF64 for a 64-bit kernel or RAM reaching above 4 GiB (an i386 PAE machine), else ELF32."""
    if requested_bits is not None:
        return ELFCLASS64 if requested_bits == 64 else ELFCLASS32
    return ELFCLASS64 if arch_bits == 64 or any(r.end > 1 << 32 for r in ram) else ELFCLASS32


_CPU_DIR = re.compile(r"cpu[0-9]+")


def read_cpu_notes(root: str = "/") -> tuple[Range, ...]:
    """Each present CPU's crash_notes (hex address) and crash_notes_size (decimal), in CPU order."""
    base = os.path.join(root, "sys/devices/system/cpu")
    try:
        cpus = sorted((n for n in os.listdir(base) if _CPU_DIR.fullmatch(n)), key=lambda n: int(n[3:]))
    except OSError as e:
        raise KexecError(f"cannot read {base}: {e.strerror}") from None
    notes = []
    for cpu in cpus:
        address = read_value(os.path.join(base, cpu, "crash_notes"))
        if address is None:
            continue  # offline or never brought up: no notes
        size = read_value(os.path.join(base, cpu, "crash_notes_size"))
        notes.append(Range.sized(_number(address, 16, base), _number(size or "", 10, base)))
    if not notes:
        raise KexecError(f"no CPU in {base} has crash_notes (a kernel without CONFIG_CRASH_DUMP?)")
    return tuple(notes)


def read_vmcoreinfo(root: str = "/") -> Range | None:
    """/sys/kernel/vmcoreinfo: "ADDRESS SIZE", both hex; None without it."""
    path = os.path.join(root, "sys/kernel/vmcoreinfo")
    text = read_value(path)
    if text is None:
        return None
    words = text.split()
    if len(words) != 2:
        raise KexecError(f"{path}: {text[:40]!r} is not ADDRESS SIZE")
    return Range.sized(_number(words[0], 16, path), _number(words[1], 16, path))


def _number(text: str, base: int, where: str) -> int:
    try:
        return int(text, base)
    except ValueError:
        raise KexecError(f"{where}: {text[:40]!r} is not a number") from None


def ram_ranges(system_ram: Sequence[Range], reserved: Sequence[Range]) -> tuple[Range, ...]:
    """The crashed kernel's RAM: System RAM without the crash reservation (the crash
    kernel's own, which /proc/vmcore must not present as the crashed kernel's)."""
    from kexec_py.ranges import subtract

    return tuple(subtract(system_ram, reserved))
