"""The ELF file header and program headers of a little-endian ELF32/ELF64 file, read
with struct: all that the elf-x86 loader needs of a payload.

Not pyelftools here: importing elftools.elf.elffile (its construct library pulls in
pdb, logging.config and the DWARF readers) takes 0.5-0.8 s in a small guest, three
times the whole budget of a payload load. pyelftools stays the reader of everything
else (purgatory linking) and names e_type and e_machine values in error messages.
"""

from __future__ import annotations

import struct

from kexec_py.value import frozen

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Mapping

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
PT_LOAD = 1

# class -> (file header, program header) layouts (System V gABI, little-endian)
_EHDR = {ELFCLASS32: struct.Struct("<16sHHIIIIIHHHHHH"), ELFCLASS64: struct.Struct("<16sHHIQQQIHHHHHH")}
_PHDR = {ELFCLASS32: struct.Struct("<IIIIIIII"), ELFCLASS64: struct.Struct("<IIQQQQQQ")}


class ElfFormatError(ValueError):
    """The file is no well-formed ELF; the message says why, without the path."""


@frozen
class ElfHeader:
    """The file header fields the loader reads."""

    bits: int  # 32 or 64
    e_type: int
    e_machine: int
    e_entry: int
    e_phoff: int
    e_phentsize: int
    e_phnum: int


@frozen
class ProgramHeader:
    """The program header fields the loader reads."""

    p_type: int
    p_offset: int
    p_paddr: int
    p_filesz: int
    p_memsz: int


def read_header(data: memoryview) -> ElfHeader:
    """The file header; ElfFormatError for no magic, an unknown class or byte order, or
    a file shorter than the header of its class."""
    if bytes(data[:4]) != ELF_MAGIC:
        raise ElfFormatError("not an ELF file")
    elf_class = data[4] if len(data) > 4 else ELFCLASS32
    if len(data) > 4 and elf_class not in _EHDR:
        raise ElfFormatError(f"EI_CLASS {elf_class} is neither ELFCLASS32 nor ELFCLASS64")
    size = _EHDR[elf_class].size
    if len(data) < size:
        raise ElfFormatError(f"{len(data)} bytes, the ELF header alone takes {size}")
    if data[5] != ELFDATA2LSB:
        raise ElfFormatError(f"EI_DATA {data[5]} is not little-endian (ELFDATA2LSB), as x86 images are")
    _, e_type, e_machine, _, e_entry, e_phoff, _, _, _, e_phentsize, e_phnum, _, _, _ = \
        _EHDR[elf_class].unpack_from(data)
    return ElfHeader(32 if elf_class == ELFCLASS32 else 64, e_type, e_machine, e_entry, e_phoff, e_phentsize,
                     e_phnum)


def program_headers(data: memoryview, header: ElfHeader) -> list[ProgramHeader]:
    """Every program header, in file order; ElfFormatError when the table has entries
    of another size than its class's or runs past the end of the file."""
    elf_class = ELFCLASS32 if header.bits == 32 else ELFCLASS64
    layout, count, offset = _PHDR[elf_class], header.e_phnum, header.e_phoff
    if count and header.e_phentsize != layout.size:
        raise ElfFormatError(f"e_phentsize is {header.e_phentsize}, ELF{header.bits} program headers take"
                             f" {layout.size} bytes")
    if offset + count * layout.size > len(data):
        raise ElfFormatError(f"the program header table, {count} entries at {offset:#x}, runs past the end of"
                             f" the file, {len(data):#x} bytes")
    headers = []
    for fields in layout.iter_unpack(data[offset:offset + count * layout.size]):
        if elf_class == ELFCLASS32:
            p_type, p_offset, _, p_paddr, p_filesz, p_memsz, _, _ = fields
        else:
            p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz, _ = fields
        headers.append(ProgramHeader(p_type, p_offset, p_paddr, p_filesz, p_memsz))
    return headers


def type_name(e_type: int) -> str:
    """ET_EXEC and so on, as pyelftools names them (imported for error messages only)."""
    from elftools.elf.enums import ENUM_E_TYPE

    return _name(ENUM_E_TYPE, e_type)


def machine_name(e_machine: int) -> str:
    """EM_386 and so on, as pyelftools names them (imported for error messages only)."""
    from elftools.elf.enums import ENUM_E_MACHINE

    return _name(ENUM_E_MACHINE, e_machine)


def _name(enum: Mapping[str, int], value: int) -> str:
    names = [name for name, number in enum.items() if number == value and not name.startswith("_")]
    return names[0] if names else str(value)
