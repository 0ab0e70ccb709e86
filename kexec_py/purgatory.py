"""The purgatories: relocatable objects linked at load time.

Purgatory runs between the kernels when a Linux kernel is loaded: it checks
the SHA-256 of the other segments, appends ` kexec_jump_back_entry=0x...` to
the next kernel's command line and enters that kernel the way the boot
protocol asks (csrc/purgatory/): i386's in 32-bit protected mode at its 32-bit
entry, x86_64's in 64-bit mode at startup_64. Each is built as one ET_REL
object (Arch.purgatory: purgatory.ro, purgatory64.ro); this module places its
allocated sections at a physical address, applies its relocations (R_386_32,
R_386_PC32; R_X86_64_64, _PC32, _PLT32, _32, _32S) and patches its parameters,
global symbols of exact size in .data (word = 4 bytes on i386, 8 on x86_64):

    purgatory_entry_regs        9 words  entry_regs(): ax..bp, ip
    purgatory_sha256_regions   32 words  } sha256_params()
    purgatory_sha256_digest    32 bytes  }
    purgatory_cmdline_end       1 word   address of the command line's NUL, 0 = leave it
    purgatory_jump_back_copy    1 word   where to save the jump-back entry's page, 0 = don't
    purgatory_serial_port       2 bytes  8250 port for error messages, 0 = silent

The segments purgatory verifies are the others: its own holds the digest.

pyelftools reads the object; importing it takes longer than the rest of a Linux
load's planning, so the build (setup.py) also ships each object's parse beside
it (shipped_form(): sections laid out, relocations, symbols, tied to the object's
SHA-256; marshal's format, which needs no import, unlike json's 50 ms) and
from_file() links from that when it describes these very bytes; any other object
(--purgatory, a source tree), or a form this Python cannot read, is parsed with
pyelftools.
"""

from __future__ import annotations

import io
import os
import struct
from types import MappingProxyType

# SHA-256 from CPython's own C code, built into the interpreter (3.11: _sha256; 3.12 on: _sha2).
# hashlib's is OpenSSL's: loading libcrypto alone takes 60 ms in the i386 guest, and it hashes a
# 64 MiB initrd no faster there (README, "Where the time goes").
try:
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment,unused-ignore]

from kexec_py.errors import ImageError, PlanError
from kexec_py.ranges import PAGE_SIZE, align_up
from kexec_py.segments import Segment
from kexec_py.value import field, frozen

TYPE_CHECKING = False  # annotations only: importing typing costs a Linux load
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

    from kexec_py.arch import Arch

ENTRY_SYMBOL = "purgatory_start"
SHA256_REGIONS = 16  # purgatory.h
JUMP_BACK_KEY = " kexec_jump_back_entry=0x"
REGISTERS = ("ax", "bx", "cx", "dx", "si", "di", "sp", "bp", "ip")
# The most memory a purgatory may take: it is placed below 1 MiB when there is room,
# and ours takes 8 KiB. Checked before the image is laid out, so a damaged object
# asks for no large allocation.
MAX_SIZE = 1 << 20
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
SHT_STRTAB, SHT_NOBITS = 3, 8
SHF_ALLOC, SHF_COMPRESSED = 0x2, 0x800
LINKED_TYPES = (2, 4, 5, 6, 9, 11)  # SHT_SYMTAB, RELA, HASH, DYNAMIC, REL, DYNSYM: sh_link is a section
_ENV_PATH = "KEXEC_PY_PURGATORY"
SHIPPED_SUFFIX = ".parse"  # the parse setup.py ships beside an object: purgatory.ro.parse
SHIPPED_VERSION = 1  # of the form's fields
MARSHAL_VERSION = 4  # Python 3.4's and every later one's


@frozen
class RelocationType:
    """How one relocation type computes and stores its value (psABI): S + A, minus P
    when pc_relative, stored in `size` bytes; `fits` says which values are right:
    "wrap" (i386: 32-bit arithmetic), "u32", "s32", "u64"."""

    name: str
    size: int
    pc_relative: bool
    fits: str

    def encode(self, value: int) -> bytes:
        ranges = {"u32": (0, 1 << 32), "s32": (-(1 << 31), 1 << 31), "u64": (0, 1 << 64)}
        if self.fits == "wrap":
            value &= 0xFFFFFFFF
        elif not ranges[self.fits][0] <= value < ranges[self.fits][1]:
            raise ValueError(f"{self.name} value {value:#x} does not fit: purgatory is too high in memory")
        return (value & ((1 << 8 * self.size) - 1)).to_bytes(self.size, "little")


@frozen
class ObjectFormat:
    """What a purgatory object for one architecture is."""

    arch: str  # Arch.name
    elfclass: int
    machine: str  # e_machine as pyelftools names it
    rela: bool  # RELA sections (addend in the entry), else REL (addend in place)
    relocations: Mapping[int, RelocationType]
    ehdr: struct.Struct  # Elf_Ehdr from e_ident to e_shstrndx
    shdr: struct.Struct  # Elf_Shdr: sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...
    word: str  # struct format of unsigned long

    @property
    def description(self) -> str:
        return f"ELF{32 * self.elfclass} {self.arch} object"

    @property
    def word_size(self) -> int:
        return struct.calcsize("<" + self.word)


FORMATS = {
    ELFCLASS32: ObjectFormat(
        "i386", ELFCLASS32, "EM_386", rela=False,
        relocations=MappingProxyType({
            1: RelocationType("R_386_32", 4, False, "wrap"),
            2: RelocationType("R_386_PC32", 4, True, "wrap"),
        }),
        ehdr=struct.Struct("<16sHHIIIIIHHHHHH"), shdr=struct.Struct("<10I"), word="I",
    ),
    ELFCLASS64: ObjectFormat(
        "x86_64", ELFCLASS64, "EM_X86_64", rela=True,
        relocations=MappingProxyType({
            1: RelocationType("R_X86_64_64", 8, False, "u64"),
            2: RelocationType("R_X86_64_PC32", 4, True, "s32"),
            4: RelocationType("R_X86_64_PLT32", 4, True, "s32"),  # no PLT: the function itself
            10: RelocationType("R_X86_64_32", 4, False, "u32"),
            11: RelocationType("R_X86_64_32S", 4, False, "s32"),
        }),
        ehdr=struct.Struct("<16sHHIQQQIHHHHHH"), shdr=struct.Struct("<IIQQQQIIQQ"), word="Q",
    ),
}


def jump_back_entry_room(address_bits: int) -> int:
    """What purgatory writes at purgatory_cmdline_end, over the NUL, followed by a new
    NUL: the command line buffer needs this many bytes beyond the string's NUL."""
    return len(JUMP_BACK_KEY) + address_bits // 4


JUMP_BACK_ENTRY_ROOM = jump_back_entry_room(32)  # i386's


@frozen
class _Relocation:
    place: int  # offset of the field in the image
    type: int  # the ELF relocation type (a key of ObjectFormat.relocations)
    target: int  # offset of the symbol in the image, or its value if absolute
    absolute: bool
    addend: int


@frozen
class _Parameter:
    offset: int  # in the image
    size: int


@frozen
class _Sections:
    """The allocated sections laid out: image offsets by section index."""

    image: bytes  # the PROGBITS part
    offsets: Mapping[int, int]
    size: int  # page-rounded, NOBITS included
    alignment: int


@frozen
class LinkedPurgatory:
    entry: int  # physical address of purgatory_start
    segment: Segment  # at load_addr, memsz page-rounded, source "purgatory"


@frozen
class Purgatory:
    """A purgatory object, parsed once and linkable at any suitable address."""

    path: str
    format: ObjectFormat
    size: int  # bytes of memory it needs, page-rounded (.bss included)
    alignment: int  # what its load address must be a multiple of (>= a page)
    _image: bytes = field(repr=False)  # the PROGBITS part, before relocation
    _entry: int = field(repr=False)  # offset of purgatory_start
    _relocations: tuple[_Relocation, ...] = field(repr=False)
    _parameters: Mapping[str, _Parameter] = field(repr=False, compare=False)
    _nobits: Mapping[str, str] = field(repr=False, compare=False)  # symbol -> its NOBITS section

    @classmethod
    def from_file(cls, path: str) -> Purgatory:
        """The object at path: from its shipped parse (path + SHIPPED_SUFFIX) when that
        was made from these bytes, else parsed with pyelftools."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ImageError(f"{path}: cannot read purgatory ({e.strerror})") from None
        return _from_shipped(path, data) or cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "purgatory") -> Purgatory:
        """Parse a purgatory object; ImageError (one line) says what is wrong with it."""
        from elftools.common.exceptions import ELFError

        try:
            return _parse(path, data)
        except (ELFError, ValueError, IndexError, struct.error) as e:
            raise ImageError(f"{path}: damaged purgatory object ({e})") from None

    def require_arch(self, arch: Arch) -> None:
        if self.format.arch != arch.name:
            raise ImageError(
                f"{self.path}: an {self.format.description}, but {arch.name} kernels enter"
                f" {FORMATS[ELFCLASS64 if arch.address_bits == 64 else ELFCLASS32].description}s"
                f" ({arch.purgatory})"
            )

    def link(self, load_addr: int, params: Mapping[str, bytes]) -> LinkedPurgatory:
        """The image relocated for load_addr with params patched in by symbol name."""
        if load_addr < 0 or load_addr % self.alignment:
            raise ValueError(f"purgatory load address {load_addr:#x} is not {self.alignment:#x}-aligned")
        if load_addr + self.size > 1 << 32:
            raise ValueError(f"purgatory at {load_addr:#x} would end above 4 GiB (it runs from low memory)")
        image = bytearray(self._image)
        for r in self._relocations:
            kind = self.format.relocations[r.type]
            value = (r.target if r.absolute else load_addr + r.target) + r.addend
            if kind.pc_relative:
                value -= load_addr + r.place
            image[r.place : r.place + kind.size] = kind.encode(value)
        for name, patch in params.items():
            p = self._parameter(name)
            if len(patch) != p.size:
                raise ImageError(
                    f"{self.path}: parameter {name} is {p.size} bytes, got {len(patch)}"
                )
            image[p.offset : p.offset + p.size] = patch
        return LinkedPurgatory(
            entry=load_addr + self._entry,
            segment=Segment(load_addr, self.size, bytes(image), "purgatory"),
        )

    def boot_params(
        self,
        *,
        entry: int,
        zero_page: int,
        cmdline_end: int,
        jump_back_copy: int,
        checked: Sequence[Segment],
        no_checks: bool,
    ) -> dict[str, bytes]:
        """The parameters of a Linux boot: enter `entry` with si = zero_page after checking
        `checked` (unless no_checks); cmdline_end: where to append the jump-back entry,
        jump_back_copy: where to save its page (bootparams.JUMP_BACK_PAGE); 0: don't."""
        word = self.format.word
        params = {"purgatory_entry_regs": entry_regs(word, ip=entry, si=zero_page)}
        params.update(sha256_params(checked, no_checks, word))
        for name, value in (("purgatory_cmdline_end", cmdline_end), ("purgatory_jump_back_copy", jump_back_copy)):
            if value:
                params[name] = struct.pack("<" + word, value)
        return params

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
    """The steps, each refusing what it cannot use: the raw layout, the ELF header,
    the allocated sections, the symbol table, the relocations, the exported symbols."""
    from elftools.elf.elffile import ELFFile

    form = _check_layout(path, data)
    elf = ELFFile(io.BytesIO(data))
    _check_header(path, elf, form)
    sections = list(elf.iter_sections())
    laid_out = _lay_out(path, sections)
    symtab_index, symbols = _symbol_table(path, sections)
    relocations = _relocations(path, form, sections, laid_out.offsets, symtab_index, symbols)
    for sym in symbols[1:]:  # [0] is the null symbol
        _check_defined(path, sym)  # even unreferenced: the object was not built as one piece
    entry, parameters, nobits = _exports(path, sections, laid_out.offsets, symbols)
    return Purgatory(
        path=path,
        format=form,
        size=laid_out.size,
        alignment=max(laid_out.alignment, PAGE_SIZE),
        _image=laid_out.image,
        _entry=entry,
        _relocations=relocations,
        _parameters=MappingProxyType(parameters),
        _nobits=MappingProxyType(nobits),
    )


def shipped_form(purgatory: Purgatory, data: bytes) -> bytes:
    """What the build ships beside the object `data` that purgatory was parsed from:
    the parse itself, which _from_shipped() turns back into an equal Purgatory."""
    import marshal

    return marshal.dumps({
        "version": SHIPPED_VERSION,
        "object_sha256": sha256(data).hexdigest(),
        "elfclass": purgatory.format.elfclass,
        "size": purgatory.size,
        "alignment": purgatory.alignment,
        "image": purgatory._image,
        "entry": purgatory._entry,
        "relocations": [[r.place, r.type, r.target, r.absolute, r.addend] for r in purgatory._relocations],
        "parameters": {name: [p.offset, p.size] for name, p in purgatory._parameters.items()},
        "nobits": dict(purgatory._nobits),
    }, MARSHAL_VERSION)


def _from_shipped(path: str, data: bytes) -> Purgatory | None:
    """The Purgatory that path's shipped parse describes; None when there is none, or
    it was made from other bytes (a rebuilt object) or by another version of this module."""
    import marshal

    try:
        with open(path + SHIPPED_SUFFIX, "rb") as f:
            shipped = marshal.load(f)
    except (OSError, ValueError, EOFError, TypeError):  # none, or not marshal data this Python reads
        return None
    if (not isinstance(shipped, dict) or shipped.get("version") != SHIPPED_VERSION
            or shipped.get("object_sha256") != sha256(data).hexdigest()):
        return None
    return Purgatory(
        path=path,
        format=FORMATS[shipped["elfclass"]],
        size=shipped["size"],
        alignment=shipped["alignment"],
        _image=shipped["image"],
        _entry=shipped["entry"],
        _relocations=tuple(_Relocation(*r) for r in shipped["relocations"]),
        _parameters=MappingProxyType({name: _Parameter(*p) for name, p in shipped["parameters"].items()}),
        _nobits=MappingProxyType(dict(shipped["nobits"])),
    )


def _check_header(path: str, elf: Any, form: ObjectFormat) -> None:
    if elf["e_machine"] != form.machine:
        raise ImageError(f"{path}: purgatory must be {_known_formats()}, not an ELF{elf.elfclass} {elf['e_machine']}")
    if elf["e_type"] != "ET_REL":
        raise ImageError(f"{path}: ELF type {elf['e_type']}, purgatory must be relocatable (ET_REL)")


def _lay_out(path: str, sections: list[Any]) -> _Sections:
    """Allocated sections with contents first, in file order, then the NOBITS ones,
    so the segment's data ends where the zero fill begins."""
    from elftools.elf.constants import SH_FLAGS

    allocated = [i for i, s in enumerate(sections) if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"]]
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
    return _Sections(bytes(image), MappingProxyType(offsets), align_up(max(end, 1)), alignment)


def _symbol_table(path: str, sections: list[Any]) -> tuple[int, list[Any]]:
    from elftools.elf.sections import SymbolTableSection

    symtabs = [i for i, s in enumerate(sections) if isinstance(s, SymbolTableSection) and s.name == ".symtab"]
    if len(symtabs) != 1:
        raise ImageError(f"{path}: no symbol table (.symtab)")
    return symtabs[0], list(sections[symtabs[0]].iter_symbols())


def _check_defined(path: str, sym: Any) -> None:
    if sym["st_shndx"] == "SHN_UNDEF":
        raise ImageError(f"{path}: undefined symbol {sym.name} (purgatory must be self-contained)")
    if sym["st_shndx"] == "SHN_COMMON":
        raise ImageError(f"{path}: common symbol {sym.name} (build with -fno-common)")


def _resolve(path: str, sym: Any, index: int, offsets: Mapping[int, int]) -> tuple[int, bool]:
    """(image offset, False) or (absolute value, True) of a symbol."""
    _check_defined(path, sym)
    shndx = sym["st_shndx"]
    if shndx == "SHN_ABS":
        return sym["st_value"], True
    if isinstance(shndx, int) and shndx in offsets:
        return offsets[shndx] + sym["st_value"], False
    raise ImageError(f"{path}: relocation against symbol {sym.name or index} outside the loaded sections")


def _relocations(
    path: str, form: ObjectFormat, sections: list[Any], offsets: Mapping[int, int], symtab_index: int, symbols: list[Any]
) -> tuple[_Relocation, ...]:
    from elftools.elf.enums import ENUM_RELOC_TYPE_i386, ENUM_RELOC_TYPE_x64
    from elftools.elf.relocation import RelocationSection

    enum = ENUM_RELOC_TYPE_x64 if form.elfclass == ELFCLASS64 else ENUM_RELOC_TYPE_i386
    names = {v: k for k, v in enum.items() if isinstance(v, int)}
    supported = " and ".join(kind.name for kind in form.relocations.values())
    relocations = []
    for s in sections:
        if not isinstance(s, RelocationSection) or s["sh_info"] not in offsets:
            continue  # e.g. .rel.debug_info: not loaded, nothing to fix
        if s.is_RELA() != form.rela:
            raise ImageError(f"{path}: {s.name}: {'RELA' if s.is_RELA() else 'REL'} relocations,"
                             f" {form.arch} objects use {'RELA' if form.rela else 'REL'}")
        if s["sh_link"] != symtab_index:
            raise ImageError(f"{path}: {s.name} refers to another symbol table")
        target = sections[s["sh_info"]]
        base = offsets[s["sh_info"]]
        for rel in s.iter_relocations():
            kind = form.relocations.get(rel["r_info_type"])
            if kind is None:
                raise ImageError(
                    f"{path}: unsupported relocation {names.get(rel['r_info_type'], rel['r_info_type'])} in"
                    f" {s.name} (only {supported}: build with -fno-pic)"
                )
            if target["sh_type"] == "SHT_NOBITS" or rel["r_offset"] + kind.size > target["sh_size"]:
                raise ImageError(f"{path}: {s.name}: relocation at {rel['r_offset']:#x} outside {target.name}")
            if rel["r_info_sym"] >= len(symbols):
                raise ImageError(
                    f"{path}: {s.name}: relocation at {rel['r_offset']:#x} names symbol {rel['r_info_sym']},"
                    f" but .symtab has {len(symbols)}"
                )
            value, absolute = _resolve(path, symbols[rel["r_info_sym"]], rel["r_info_sym"], offsets)
            if form.rela:
                addend = rel["r_addend"]
            else:
                addend = int.from_bytes(target.data()[rel["r_offset"] : rel["r_offset"] + kind.size], "little")
            relocations.append(_Relocation(base + rel["r_offset"], rel["r_info_type"], value, absolute, addend))
    return tuple(relocations)


def _exports(
    path: str, sections: list[Any], offsets: Mapping[int, int], symbols: list[Any]
) -> tuple[int, dict[str, _Parameter], dict[str, str]]:
    """The entry's offset, the patchable parameters, and the global objects without bytes."""
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
    return entry, parameters, nobits


def _known_formats() -> str:
    return " or ".join(f"an {f.description} ({f.machine})" for f in FORMATS.values())


def _check_layout(path: str, data: bytes) -> ObjectFormat:
    """What pyelftools would read past the end of the file for, checked on the raw
    bytes first: the ELF header, the section header table, every section's bytes and
    name. A damaged count, offset or size otherwise makes it parse garbage, fail with a
    bare "expected 4, found 2", or walk a symbol table of millions of entries."""
    if data[:4] != b"\x7fELF":
        raise ImageError(f"{path}: not an ELF file")
    if len(data) < 6 or data[4] not in (ELFCLASS32, ELFCLASS64) or data[5] not in (ELFDATA2LSB, ELFDATA2MSB):
        ident = ", ".join(f"{b:#04x}" for b in data[4:6])
        raise ImageError(f"{path}: damaged ELF identification (class and data encoding {ident or 'missing'})")
    if data[5] != ELFDATA2LSB:
        if len(data) < 20:
            raise ImageError(f"{path}: truncated: {len(data)} bytes, not even an ELF header")
        machine = int.from_bytes(data[18:20], "big")
        raise ImageError(f"{path}: purgatory must be {_known_formats()}, not a big-endian {_machine_name(machine)}")
    form = FORMATS[data[4]]
    bits = 32 * form.elfclass
    if len(data) < form.ehdr.size:
        raise ImageError(f"{path}: truncated: {len(data)} bytes, an ELF{bits} header takes {form.ehdr.size}")
    *_, shoff, _, _, _, _, shentsize, count, shstrndx = form.ehdr.unpack_from(data)
    if not count:
        raise ImageError(f"{path}: no section headers")
    if shentsize != form.shdr.size:
        raise ImageError(f"{path}: e_shentsize is {shentsize}, ELF{bits} section headers take {form.shdr.size} bytes")
    if shoff + count * shentsize > len(data):
        raise ImageError(
            f"{path}: truncated: the section header table ({count} entries at {shoff:#x}) runs past"
            f" the end of the file ({len(data):#x} bytes)"
        )
    if shstrndx >= count:
        raise ImageError(f"{path}: e_shstrndx {shstrndx} is not one of its {count} sections")
    headers = [form.shdr.unpack_from(data, shoff + i * shentsize) for i in range(count)]
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
    return form


def _machine_name(machine: int) -> str:
    from elftools.elf.enums import ENUM_E_MACHINE

    return next((name for name, value in ENUM_E_MACHINE.items() if value == machine), f"machine {machine}")


def entry_regs(word: str, *, ip: int, si: int, sp: int = 0, **others: int) -> bytes:
    """purgatory_entry_regs: the registers the next kernel starts with, one `word`
    (struct format: "I" on i386, "Q" on x86_64) each.

    si = boot_params, ip = the kernel's entry; sp = 0 keeps purgatory's own
    stack; ax, bx, cx, dx, di, bp default to 0 (the boot protocol wants bx, di
    and bp zero).
    """
    unknown = sorted(set(others) - set(REGISTERS))
    if unknown:
        raise TypeError(f"entry_regs: unknown register {', '.join(unknown)}")
    values = dict(others, ip=ip, si=si, sp=sp)
    bits = 8 * struct.calcsize("<" + word)
    for name, v in values.items():
        if not 0 <= v < 1 << bits:
            raise ValueError(f"entry_regs: {name}={v:#x} does not fit {bits} bits")
    return struct.pack(f"<9{word}", *(values.get(r, 0) for r in REGISTERS))


def sha256_params(segments: Sequence[Segment], skip_checks: bool, word: str = "I") -> dict[str, bytes]:
    """purgatory_sha256_regions and _digest for segments, as purgatory checks them.

    Regions are (mem, bufsz) of every segment with data, in the given order, as two
    `word`s ("I" on i386, "Q" on x86_64); the digest is SHA-256 over their bytes
    concatenated in that order.  Pass the segments purgatory must verify, not
    purgatory's own.  skip_checks (-i) leaves every region empty: purgatory then
    hashes nothing.
    """
    region = struct.Struct(f"<2{word}")
    empty = {
        "purgatory_sha256_regions": bytes(region.size * SHA256_REGIONS),
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
    digest = sha256()
    for s in with_data:
        if s.mem + s.bufsz > 1 << 8 * region.size // 2:
            raise PlanError(f"segment {s.range} ({s.source}) ends above 4 GiB: i386 purgatory cannot check it")
        regions += region.pack(s.mem, s.bufsz)
        digest.update(s.buf)
    regions += bytes(region.size * SHA256_REGIONS - len(regions))
    return {"purgatory_sha256_regions": bytes(regions), "purgatory_sha256_digest": digest.digest()}


def _candidates(name: str) -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.dirname(here)
    return [
        os.path.join(here, "data", name),  # installed: package data
        os.path.join(tree, "build", "payloads", "purgatory", name),  # setup.py build
        os.path.join(tree, "csrc", "build", "purgatory", name),  # make -C csrc/purgatory
    ]


def default_purgatory_path(arch: Arch) -> str:
    """$KEXEC_PY_PURGATORY, else arch's purgatory as installed package data, else the
    source tree's build."""
    override = os.environ.get(_ENV_PATH)
    if override:
        return override
    candidates = _candidates(arch.purgatory)
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ImageError(
        f"no {arch.purgatory} (looked at " + ", ".join(candidates) + "): build it with"
        f" `make -C csrc/purgatory` or set {_ENV_PATH}"
    )
