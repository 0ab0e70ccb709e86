"""The i386 purgatory: a relocatable object linked at load time.

Purgatory runs between the kernels when a Linux bzImage is loaded: it checks
the SHA-256 of the other segments, appends ` kexec_jump_back_entry=0x...` to
the next kernel's command line and enters that kernel the way the 32-bit boot
protocol asks (csrc/purgatory/).  It is built as one ET_REL object
(purgatory.ro); this module places its allocated sections at a physical
address, applies its relocations (R_386_32, R_386_PC32) and patches its
parameters, global symbols of exact size in .data:

    purgatory_entry32_regs    36 bytes  entry32_regs(): eax..ebp, eip
    purgatory_sha256_regions 128 bytes  } sha256_params()
    purgatory_sha256_digest   32 bytes  }
    purgatory_cmdline_end      4 bytes  address of the command line's NUL, 0 = leave it
    purgatory_serial_port      2 bytes  8250 port for error messages, 0 = silent

The segments purgatory verifies are the others: its own holds the digest.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

from kexec_py.errors import ImageError, PlanError
from kexec_py.ranges import PAGE_SIZE, align_up
from kexec_py.segments import Segment

ENTRY_SYMBOL = "purgatory_start"
SHA256_REGIONS = 16  # purgatory.h
# What purgatory writes at purgatory_cmdline_end, over the NUL, followed by a new
# NUL: the command line buffer needs this many bytes beyond the string's NUL.
JUMP_BACK_ENTRY_ROOM = len(" kexec_jump_back_entry=0x00000000")

REGISTERS = ("eax", "ebx", "ecx", "edx", "esi", "edi", "esp", "ebp", "eip")
R_386_32 = 1
R_386_PC32 = 2
_MASK32 = 0xFFFFFFFF
# The most memory a purgatory may take: it is placed below 1 MiB when there is room,
# and ours takes 8 KiB. Checked before the image is laid out, so a damaged object
# asks for no large allocation.
MAX_SIZE = 1 << 20
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
SHT_STRTAB, SHT_NOBITS = 3, 8
SHF_ALLOC, SHF_COMPRESSED = 0x2, 0x800
LINKED_TYPES = (2, 4, 5, 6, 9, 11)  # SHT_SYMTAB, RELA, HASH, DYNAMIC, REL, DYNSYM: sh_link is a section
# Elf32_Ehdr from e_ident to e_shstrndx, and Elf32_Shdr (sh_name, sh_type, sh_flags,
# sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize)
ELF32_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
ELF32_SHDR = struct.Struct("<10I")
_ENV_PATH = "KEXEC_PY_PURGATORY"


@dataclass(frozen=True)
class _Relocation:
    place: int  # offset of the 32-bit field in the image
    type: int  # R_386_32 or R_386_PC32
    target: int  # offset of the symbol in the image, or its value if absolute
    absolute: bool


@dataclass(frozen=True)
class _Parameter:
    offset: int  # in the image
    size: int


@dataclass(frozen=True)
class LinkedPurgatory:
    entry: int  # physical address of purgatory_start
    segment: Segment  # at load_addr, memsz page-rounded, source "purgatory"


@dataclass(frozen=True)
class Purgatory:
    """A purgatory object, parsed once and linkable at any suitable address."""

    path: str
    size: int  # bytes of memory it needs, page-rounded (.bss included)
    alignment: int  # what its load address must be a multiple of (>= a page)
    _image: bytes = field(repr=False)  # the PROGBITS part, before relocation
    _entry: int = field(repr=False)  # offset of purgatory_start
    _relocations: tuple[_Relocation, ...] = field(repr=False)
    _parameters: Mapping[str, _Parameter] = field(repr=False, compare=False)
    _nobits: Mapping[str, str] = field(repr=False, compare=False)  # symbol -> its NOBITS section

    @classmethod
    def from_file(cls, path: str) -> Purgatory:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ImageError(f"{path}: cannot read purgatory ({e.strerror})") from None
        return cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "purgatory") -> Purgatory:
        """Parse a purgatory object; ImageError (one line) says what is wrong with it."""
        from elftools.common.exceptions import ELFError

        try:
            return _parse(path, data)
        except (ELFError, ValueError, IndexError, struct.error) as e:
            raise ImageError(f"{path}: damaged purgatory object ({e})") from None

    def link(self, load_addr: int, params: Mapping[str, bytes]) -> LinkedPurgatory:
        """The image relocated for load_addr with params patched in by symbol name."""
        if load_addr < 0 or load_addr % self.alignment:
            raise ValueError(f"purgatory load address {load_addr:#x} is not {self.alignment:#x}-aligned")
        if load_addr + self.size > 1 << 32:
            raise ValueError(f"purgatory at {load_addr:#x} would end above 4 GiB (paging is off)")
        image = bytearray(self._image)
        for r in self._relocations:
            addend = struct.unpack_from("<I", image, r.place)[0]
            value = r.target if r.absolute else load_addr + r.target
            if r.type == R_386_PC32:
                value -= load_addr + r.place
            struct.pack_into("<I", image, r.place, (value + addend) & _MASK32)
        for name, data in params.items():
            p = self._parameter(name)
            if len(data) != p.size:
                raise ImageError(
                    f"{self.path}: parameter {name} is {p.size} bytes, got {len(data)}"
                )
            image[p.offset : p.offset + p.size] = data
        return LinkedPurgatory(
            entry=load_addr + self._entry,
            segment=Segment(load_addr, self.size, bytes(image), "purgatory"),
        )

    def _parameter(self, name: str) -> _Parameter:
        if name in self._parameters:
            return self._parameters[name]
        if name in self._nobits:
            raise ImageError(
                f"{self.path}: parameter {name} lies in {self._nobits[name]}, which has no bytes"
                " to patch (initialize it in .data)"
            )
        raise ImageError(f"{self.path}: no parameter {name} (a global data symbol)")


def _parse(path: str, data: bytes) -> Purgatory:
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile
    from elftools.elf.enums import ENUM_RELOC_TYPE_i386
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import Symbol, SymbolTableSection

    _check_layout(path, data)
    elf = ELFFile(io.BytesIO(data))
    if elf.elfclass != 32 or not elf.little_endian or elf["e_machine"] != "EM_386":
        raise ImageError(f"{path}: purgatory must be an ELF32 i386 object, not {elf['e_machine']}")
    if elf["e_type"] != "ET_REL":
        raise ImageError(f"{path}: ELF type {elf['e_type']}, purgatory must be relocatable (ET_REL)")

    sections = list(elf.iter_sections())
    # Layout: allocated sections with contents first, in file order, then the
    # NOBITS ones, so the segment's data ends where the zero fill begins.
    allocated = [
        i for i, s in enumerate(sections) if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"]
    ]
    allocated.sort(key=lambda i: sections[i]["sh_type"] == "SHT_NOBITS")
    offsets: dict[int, int] = {}
    image = bytearray()
    end, alignment = 0, 1
    for i in allocated:
        s = sections[i]
        align = max(s["sh_addralign"], 1)
        if align & (align - 1):
            raise ImageError(f"{path}: section {s.name or i} is aligned to {align:#x}, not a power of two")
        alignment = max(alignment, align)
        offsets[i] = align_up(end, align)
        end = offsets[i] + s["sh_size"]
        if end > MAX_SIZE or alignment > MAX_SIZE:
            raise ImageError(
                f"{path}: its sections take more than {MAX_SIZE >> 10} KiB laid out"
                f" ({s.name or i}: {s['sh_size']:#x} bytes, aligned to {align:#x}): not a purgatory"
            )
        if s["sh_type"] != "SHT_NOBITS":
            image += bytes(offsets[i] - len(image)) + s.data()
    size = align_up(max(end, 1))

    symtabs = [(i, s) for i, s in enumerate(sections) if isinstance(s, SymbolTableSection) and s.name == ".symtab"]
    if len(symtabs) != 1:
        raise ImageError(f"{path}: no symbol table (.symtab)")
    symtab_index, symtab = symtabs[0]
    symbols = list(symtab.iter_symbols())

    def check_defined(sym: Symbol) -> None:
        if sym["st_shndx"] == "SHN_UNDEF":
            raise ImageError(f"{path}: undefined symbol {sym.name} (purgatory must be self-contained)")
        if sym["st_shndx"] == "SHN_COMMON":
            raise ImageError(f"{path}: common symbol {sym.name} (build with -fno-common)")

    def resolve(index: int) -> tuple[int, bool]:
        """(image offset, False) or (absolute value, True) of symbol index."""
        sym = symbols[index]
        check_defined(sym)
        shndx = sym["st_shndx"]
        if shndx == "SHN_ABS":
            return sym["st_value"], True
        if isinstance(shndx, int) and shndx in offsets:
            return offsets[shndx] + sym["st_value"], False
        raise ImageError(
            f"{path}: relocation against symbol {sym.name or index} outside the loaded sections"
        )

    names = {v: k for k, v in ENUM_RELOC_TYPE_i386.items() if isinstance(v, int)}
    relocations = []
    for s in sections:
        if not isinstance(s, RelocationSection) or s["sh_info"] not in offsets:
            continue  # e.g. .rel.debug_info: not loaded, nothing to fix
        if s.is_RELA():
            raise ImageError(f"{path}: {s.name}: RELA relocations, i386 objects use REL")
        if s["sh_link"] != symtab_index:
            raise ImageError(f"{path}: {s.name} refers to another symbol table")
        target = sections[s["sh_info"]]
        base = offsets[s["sh_info"]]
        for rel in s.iter_relocations():
            kind = rel["r_info_type"]
            if kind not in (R_386_32, R_386_PC32):
                raise ImageError(
                    f"{path}: unsupported relocation {names.get(kind, kind)} in {s.name}"
                    " (only R_386_32 and R_386_PC32: build with -fno-pic)"
                )
            if target["sh_type"] == "SHT_NOBITS" or rel["r_offset"] + 4 > target["sh_size"]:
                raise ImageError(f"{path}: {s.name}: relocation at {rel['r_offset']:#x} outside {target.name}")
            if rel["r_info_sym"] >= len(symbols):
                raise ImageError(
                    f"{path}: {s.name}: relocation at {rel['r_offset']:#x} names symbol {rel['r_info_sym']},"
                    f" but .symtab has {len(symbols)}"
                )
            value, absolute = resolve(rel["r_info_sym"])
            relocations.append(_Relocation(base + rel["r_offset"], kind, value, absolute))

    for sym in symbols[1:]:  # [0] is the null symbol
        check_defined(sym)  # even unreferenced: the object was not built as one piece

    parameters: dict[str, _Parameter] = {}
    nobits: dict[str, str] = {}
    entry = None
    for sym in symbols:
        if not sym.name or sym["st_info"]["bind"] not in ("STB_GLOBAL", "STB_WEAK"):
            continue
        shndx = sym["st_shndx"]
        if not isinstance(shndx, int) or shndx not in offsets:
            continue
        if sym.name == ENTRY_SYMBOL:
            if sym["st_value"] >= sections[shndx]["sh_size"]:
                raise ImageError(f"{path}: {ENTRY_SYMBOL} lies outside its section {sections[shndx].name}")
            entry = offsets[shndx] + sym["st_value"]
        if sym["st_info"]["type"] != "STT_OBJECT":
            continue
        if sections[shndx]["sh_type"] == "SHT_NOBITS":
            nobits[sym.name] = sections[shndx].name
        elif sym["st_value"] + sym["st_size"] <= sections[shndx]["sh_size"]:
            parameters[sym.name] = _Parameter(offsets[shndx] + sym["st_value"], sym["st_size"])
    if entry is None:
        raise ImageError(f"{path}: no global symbol {ENTRY_SYMBOL} in a loaded section")

    return Purgatory(
        path=path,
        size=size,
        alignment=max(alignment, PAGE_SIZE),
        _image=bytes(image),
        _entry=entry,
        _relocations=tuple(relocations),
        _parameters=MappingProxyType(parameters),
        _nobits=MappingProxyType(nobits),
    )


def _check_layout(path: str, data: bytes) -> None:
    """What pyelftools would read past the end of the file for, checked on the raw
    bytes first: the ELF header, the section header table, every section's bytes and
    name. A damaged count, offset or size otherwise makes it parse garbage, fail with a
    bare "expected 4, found 2", or walk a symbol table of millions of entries."""
    if data[:4] != b"\x7fELF":
        raise ImageError(f"{path}: not an ELF file")
    if len(data) < 6 or data[4] not in (ELFCLASS32, ELFCLASS64) or data[5] not in (ELFDATA2LSB, ELFDATA2MSB):
        ident = ", ".join(f"{b:#04x}" for b in data[4:6])
        raise ImageError(f"{path}: damaged ELF identification (class and data encoding {ident or 'missing'})")
    if data[4] != ELFCLASS32 or data[5] != ELFDATA2LSB:
        if len(data) < 20:
            raise ImageError(f"{path}: truncated: {len(data)} bytes, not even an ELF header")
        machine = int.from_bytes(data[18:20], "little" if data[5] == ELFDATA2LSB else "big")
        raise ImageError(f"{path}: purgatory must be an ELF32 i386 object, not {_machine_name(machine)}")
    if len(data) < ELF32_EHDR.size:
        raise ImageError(f"{path}: truncated: {len(data)} bytes, an ELF32 header takes {ELF32_EHDR.size}")
    *_, shoff, _, _, _, _, shentsize, count, shstrndx = ELF32_EHDR.unpack_from(data)
    if not count:
        raise ImageError(f"{path}: no section headers")
    if shentsize != ELF32_SHDR.size:
        raise ImageError(f"{path}: e_shentsize is {shentsize}, ELF32 section headers take {ELF32_SHDR.size} bytes")
    if shoff + count * shentsize > len(data):
        raise ImageError(
            f"{path}: truncated: the section header table ({count} entries at {shoff:#x}) runs past"
            f" the end of the file ({len(data):#x} bytes)"
        )
    if shstrndx >= count:
        raise ImageError(f"{path}: e_shstrndx {shstrndx} is not one of its {count} sections")
    headers = [ELF32_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(count)]
    for index, (_, kind, flags, _, offset, size, link, *_) in enumerate(headers):
        if flags & SHF_COMPRESSED and (flags & SHF_ALLOC or kind in LINKED_TYPES + (SHT_STRTAB,)):
            raise ImageError(f"{path}: section {index} is compressed (SHF_COMPRESSED): link purgatory uncompressed")
        if kind != SHT_NOBITS and offset + size > len(data):
            raise ImageError(
                f"{path}: truncated: section {index} ({size:#x} bytes at {offset:#x}) runs past"
                f" the end of the file ({len(data):#x} bytes)"
            )
        if kind in LINKED_TYPES and link >= count:
            raise ImageError(f"{path}: section {index} links to section {link}, which does not exist")
    _, names_kind, _, _, names_offset, names_size, *_ = headers[shstrndx]
    for index, (name, *_) in enumerate(headers):
        if name and (names_kind == SHT_NOBITS or data.find(b"\0", names_offset + name, names_offset + names_size) < 0):
            raise ImageError(f"{path}: the name of section {index} is not in the section name table")


def _machine_name(machine: int) -> str:
    from elftools.elf.enums import ENUM_E_MACHINE

    return next((name for name, value in ENUM_E_MACHINE.items() if value == machine), f"machine {machine}")


def entry32_regs(*, eip: int, esi: int, esp: int = 0, **others: int) -> bytes:
    """purgatory_entry32_regs: the registers the next kernel starts with.

    esi = boot_params, eip = the kernel's 32-bit entry; esp = 0 keeps
    purgatory's own stack; eax, ebx, ecx, edx, edi, ebp default to 0 (the boot
    protocol wants ebx, edi and ebp zero).
    """
    unknown = sorted(set(others) - set(REGISTERS))
    if unknown:
        raise TypeError(f"entry32_regs: unknown register {', '.join(unknown)}")
    values = dict(others, eip=eip, esi=esi, esp=esp)
    for name, v in values.items():
        if not 0 <= v <= _MASK32:
            raise ValueError(f"entry32_regs: {name}={v:#x} does not fit 32 bits")
    return struct.pack("<9I", *(values.get(r, 0) for r in REGISTERS))


def sha256_params(segments: Sequence[Segment], skip_checks: bool) -> dict[str, bytes]:
    """purgatory_sha256_regions and _digest for segments, as purgatory checks them.

    Regions are (mem, bufsz) of every segment with data, in the given order; the
    digest is SHA-256 over their bytes concatenated in that order.  Pass the
    segments purgatory must verify, not purgatory's own.  skip_checks (-i)
    leaves every region empty: purgatory then hashes nothing.
    """
    empty = {
        "purgatory_sha256_regions": bytes(8 * SHA256_REGIONS),
        "purgatory_sha256_digest": bytes(32),
    }
    if skip_checks:
        return empty
    with_data = [s for s in segments if s.bufsz]
    if len(with_data) > SHA256_REGIONS:
        raise PlanError(
            f"{len(with_data)} segments with data, purgatory checks at most {SHA256_REGIONS}"
        )
    regions = bytearray()
    digest = hashlib.sha256()
    for s in with_data:
        if s.mem + s.bufsz > 1 << 32:
            raise PlanError(f"segment {s.range} ({s.source}) ends above 4 GiB: i386 purgatory cannot check it")
        regions += struct.pack("<II", s.mem, s.bufsz)
        digest.update(s.buf)
    regions += bytes(8 * SHA256_REGIONS - len(regions))
    return {"purgatory_sha256_regions": bytes(regions), "purgatory_sha256_digest": digest.digest()}


def _candidates() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.dirname(here)
    return [
        os.path.join(here, "data", "purgatory.ro"),  # installed: package data
        os.path.join(tree, "build", "payloads", "purgatory", "purgatory.ro"),  # setup.py build
        os.path.join(tree, "csrc", "build", "purgatory", "purgatory.ro"),  # make -C csrc/purgatory
    ]


def default_purgatory_path() -> str:
    """$KEXEC_PY_PURGATORY, else the installed package data, else the source tree's build."""
    override = os.environ.get(_ENV_PATH)
    if override:
        return override
    candidates = _candidates()
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ImageError(
        "no purgatory.ro (looked at " + ", ".join(candidates) + "): build it with"
        f" `make -C csrc/purgatory` or set {_ENV_PATH}"
    )
