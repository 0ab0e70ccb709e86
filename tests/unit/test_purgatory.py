"""The purgatories (csrc/purgatory: purgatory.ro for i386, purgatory64.ro for x86_64)
and their loader (kexec_py/purgatory.py).

Built with the system gcc into tmp.  The linker is checked against GNU ld
linking the same object at the same address, for both; the C SHA-256 and
purgatory_main itself run in a hosted 32-bit process, so hashing, the refusal
of corrupt memory and the jump-back command line are proven without a VM.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest

from kexec_py.errors import ImageError, PlanError
from kexec_py.purgatory import (
    JUMP_BACK_ENTRY_ROOM,
    SHIPPED_SUFFIX,
    Purgatory,
    default_purgatory_path,
    entry_regs,
    sha256_params,
    shipped_form,
)
from kexec_py.arch import I386
from kexec_py.ranges import PAGE_SIZE
from kexec_py.segments import Segment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PURGATORY_SRC = os.path.join(REPO, "csrc", "purgatory")
R_386_32, R_386_PC32 = 1, 2


def params(word: int) -> dict[str, int]:
    """symbol -> size, the contract with csrc/purgatory/purgatory.h (word: unsigned long's size)."""
    return {
        "purgatory_entry_regs": 9 * word,
        "purgatory_sha256_regions": 2 * 16 * word,
        "purgatory_sha256_digest": 32,
        "purgatory_cmdline_end": word,
        "purgatory_serial_port": 2,
    }


PARAMS = params(4)  # i386's


@dataclass(frozen=True)
class Built:
    """One of the two purgatories as built, and how GNU ld links it."""

    path: str
    purgatory: Purgatory
    emulation: str  # ld -m

    @property
    def params(self) -> dict[str, int]:
        return params(self.purgatory.format.word_size)


@pytest.fixture(scope="module", params=["i386", "x86_64"])
def built(request, purgatory_ro, purgatory64_ro) -> Built:
    path, emulation = {"i386": (purgatory_ro, "elf_i386"), "x86_64": (purgatory64_ro, "elf_x86_64")}[request.param]
    return Built(path, Purgatory.from_file(path), emulation)


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, **kwargs)
    if result.returncode:
        pytest.fail(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                    f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}")
    return result


def ld_quiet() -> list[str]:
    """ld >= 2.39 warns about the (intended) RWX segment; older ld lacks the option."""
    r = subprocess.run(["ld", "--help"], capture_output=True, text=True)
    return ["--no-warn-rwx-segments"] if "--no-warn-rwx-segments" in r.stdout else []


def can_build_hosted_m32(tmp_path) -> bool:
    src = tmp_path / "m32.c"
    src.write_text("int main(void) { return 0; }\n")
    r = subprocess.run(["gcc", "-m32", "-o", str(tmp_path / "m32"), str(src)], capture_output=True)
    return r.returncode == 0


# --- the object ----------------------------------------------------------------------------

def test_object_shape(built):
    purgatory = built.purgatory
    assert purgatory.alignment == PAGE_SIZE
    assert purgatory.size % PAGE_SIZE == 0 and 0 < purgatory.size <= 3 * PAGE_SIZE
    linked = purgatory.link(0x90000, {})
    seg = linked.segment
    assert (seg.mem, seg.memsz, seg.source) == (0x90000, purgatory.size, "purgatory")
    assert 0 < seg.bufsz < seg.memsz  # .bss (the stack) is zero fill, not data
    assert seg.range.contains_address(linked.entry)



def test_stack_is_on_pages_of_its_own(purgatory_ro, purgatory):
    """Stores to a page that holds code are self-modifying code to QEMU's TCG (and
    costly on real CPUs): with the stack beside the code, the SHA-256 of a 25 MB initrd
    took ~100 s in the VM tests instead of ~1 s."""
    from elftools.elf.elffile import ELFFile

    with open(purgatory_ro, "rb") as f:
        bss = ELFFile(f).get_section_by_name(".bss")
        assert bss["sh_addralign"] == PAGE_SIZE
        bss_size = bss["sh_size"]
    seg = purgatory.link(0x90000, {}).segment
    first_bss_page = -(-seg.bufsz // PAGE_SIZE) * PAGE_SIZE
    assert seg.memsz - first_bss_page >= bss_size  # nothing with bytes shares its pages


def test_every_parameter_has_its_exact_size(built):
    purgatory = built.purgatory
    for name, size in built.params.items():
        purgatory.link(0x1000, {name: bytes(size)})
        for wrong in (size - 1, size + 1):
            with pytest.raises(ImageError, match=f"{name} is {size} bytes, got {wrong}"):
                purgatory.link(0x1000, {name: bytes(wrong)})


def test_unknown_parameter(purgatory):
    with pytest.raises(ImageError, match="no parameter purgatory_nonesuch"):
        purgatory.link(0x1000, {"purgatory_nonesuch": b"\0" * 4})


def test_bss_symbol_cannot_be_patched(purgatory):
    with pytest.raises(ImageError, match=r"purgatory_jump_back_entry lies in \.bss"):
        purgatory.link(0x1000, {"purgatory_jump_back_entry": b"\0" * 4})


def test_functions_are_not_parameters(purgatory):
    with pytest.raises(ImageError, match="no parameter purgatory_main"):
        purgatory.link(0x1000, {"purgatory_main": b"\0" * 4})


@pytest.mark.parametrize("load_addr", [0x800, 0x1001, -0x1000, 1 << 32])
def test_bad_load_address(purgatory, load_addr):
    with pytest.raises(ValueError):
        purgatory.link(load_addr, {})


def test_default_serial_port_is_com1(built, ld_symbols):
    """Unpatched parameters keep their .data values: 0x3f8, everything else 0."""
    purgatory = built.purgatory
    linked = purgatory.link(0x100000, {})
    symbols = ld_symbols(0x100000)
    buf = bytes(linked.segment.buf)

    def read(name):
        value, size = symbols[name]
        return buf[value - 0x100000 : value - 0x100000 + size]

    assert read("purgatory_serial_port") == struct.pack("<H", 0x3F8)
    for name in ("purgatory_entry_regs", "purgatory_sha256_regions", "purgatory_sha256_digest",
                 "purgatory_cmdline_end"):
        assert read(name) == bytes(built.params[name])


# --- relocation, against GNU ld -------------------------------------------------------------

def layout_script(path: str, load_addr: int) -> tuple[str, list[str]]:
    """A linker script placing the allocated sections as kexec_py lays them out:
    those with contents in file order, then NOBITS."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        sections = [
            (s.name, s["sh_type"] == "SHT_NOBITS")
            for s in ELFFile(f).iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"]
        ]
    ordered = [n for n, nobits in sections if not nobits] + [n for n, nobits in sections if nobits]
    body = "".join(f"  {n} : {{ *({n}) }}\n" for n in ordered)
    return f"SECTIONS {{\n  . = {load_addr:#x};\n{body}  /DISCARD/ : {{ *(*) }}\n}}\n", ordered


@pytest.fixture(scope="module")
def ld_link(built, tmp_path_factory):
    """ld_link(load_addr) -> (path of an ET_EXEC GNU ld made of `built`, its PROGBITS bytes)."""
    if not shutil.which("ld") or not shutil.which("objcopy"):
        pytest.skip("needs binutils")
    tmp = tmp_path_factory.mktemp("ld")
    purgatory_ro = built.path
    # ld would merge SHF_MERGE strings (moving them); purgatory.py copies sections
    # as they are, so the reference link must not merge either.
    plain = tmp / "plain.ro"
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with open(purgatory_ro, "rb") as f:
        merged = [s.name for s in ELFFile(f).iter_sections() if s["sh_flags"] & SH_FLAGS.SHF_MERGE
                  and s["sh_flags"] & SH_FLAGS.SHF_ALLOC]
    flags = [f"--set-section-flags={n}=alloc,load,readonly,data,contents" for n in merged]
    run(["objcopy", *flags, purgatory_ro, str(plain)])

    def link(load_addr: int):
        script, ordered = layout_script(purgatory_ro, load_addr)
        lds = tmp / f"at-{load_addr:x}.ld"
        lds.write_text(script)
        elf = tmp / f"at-{load_addr:x}.elf"
        run(["ld", "-m", built.emulation, *ld_quiet(), "-e", "purgatory_start",
             "-T", str(lds), "-o", str(elf), str(plain)])
        binary = tmp / f"at-{load_addr:x}.bin"
        keep = [arg for n in ordered for arg in ("-j", n)]
        run(["objcopy", "-O", "binary", *keep, str(elf), str(binary)])
        return str(elf), binary.read_bytes()

    return link


@pytest.fixture(scope="module")
def ld_symbols(ld_link):
    """ld_symbols(load_addr) -> {name: (address, size)} of the global symbols GNU ld placed."""
    from elftools.elf.elffile import ELFFile

    def symbols(load_addr: int):
        elf_path, _ = ld_link(load_addr)
        with open(elf_path, "rb") as f:
            elf = ELFFile(f)
            return {s.name: (s["st_value"], s["st_size"]) for s in elf.get_section_by_name(".symtab").iter_symbols()
                    if s["st_info"]["bind"] == "STB_GLOBAL"}

    return symbols


@pytest.mark.parametrize("load_addr", [0x1000, 0x9A000, 0x123000, 0x7FFF000])
def test_link_matches_gnu_ld(built, ld_link, load_addr):
    elf_path, reference = ld_link(load_addr)
    linked = built.purgatory.link(load_addr, {})
    assert bytes(linked.segment.buf) == reference
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as f:
        assert linked.entry == ELFFile(f)["e_entry"]


def test_patched_parameters_land_on_their_symbols(built, ld_symbols):
    purgatory = built.purgatory
    load = 0x234000
    values = {name: bytes((i * 7 + k) & 0xFF or 1 for k in range(size))
              for i, (name, size) in enumerate(built.params.items())}
    buf = bytes(purgatory.link(load, values).segment.buf)
    for name, (address, size) in ld_symbols(load).items():
        if name in values:
            assert size == built.params[name]
            assert buf[address - load : address - load + size] == values[name], name
    # and nothing else moved
    base = bytearray(purgatory.link(load, {}).segment.buf)
    for name, (address, size) in ld_symbols(load).items():
        if name in values:
            base[address - load : address - load + size] = values[name]
    assert bytes(base) == buf


def test_two_addresses_differ_by_the_delta_at_absolute_sites_only(built):
    purgatory = built.purgatory
    kinds = purgatory.format.relocations
    a, b = 0x100000, 0x3456000
    image_a = bytes(purgatory.link(a, {}).segment.buf)
    image_b = bytes(purgatory.link(b, {}).segment.buf)
    absolute = {r.place: kinds[r.type].size for r in purgatory._relocations
                if not kinds[r.type].pc_relative and not r.absolute}
    assert absolute and any(kinds[r.type].pc_relative for r in purgatory._relocations)
    for place, size in absolute.items():
        va, vb = (int.from_bytes(img[place : place + size], "little") for img in (image_a, image_b))
        assert vb - va == b - a
    mask = bytearray(image_a)
    other = bytearray(image_b)
    for place, size in absolute.items():
        mask[place : place + size] = other[place : place + size] = bytes(size)
    assert mask == other  # PC32 between purgatory's own sections does not move


def test_entry_saves_the_return_address_first(built, ld_symbols):
    """purgatory_start begins `mov (%esp),%eax; mov %eax,purgatory_jump_back_entry`
    (x86_64: `mov (%rsp),%rax; mov %rax,purgatory_jump_back_entry(%rip)`)."""
    load = 0x55000
    linked = built.purgatory.link(load, {})
    code = bytes(linked.segment.buf)[linked.entry - load :]
    saved_at = ld_symbols(load)["purgatory_jump_back_entry"][0]
    if built.purgatory.format.word_size == 4:
        assert code[:4] == b"\x8b\x04\x24\xa3"
        assert struct.unpack_from("<I", code, 4)[0] == saved_at
    else:
        assert code[:7] == b"\x48\x8b\x04\x24\x48\x89\x05"  # the second one's disp32 is from its end
        assert linked.entry + 4 + 7 + struct.unpack_from("<i", code, 7)[0] == saved_at


# --- objects purgatory.py must refuse --------------------------------------------------------

def compile_object(tmp_path, name: str, source: str, *flags: str) -> str:
    src = tmp_path / name
    src.write_text(source)
    obj = tmp_path / (name + ".o")
    run(["gcc", "-m32", "-ffreestanding", "-fno-asynchronous-unwind-tables", "-c", *flags,
         "-o", str(obj), str(src)])
    return str(obj)


PIC_C = """
int counter = 1;
void purgatory_start(void) { counter++; }
"""
ASM_PLT32 = """
	.text
	.globl purgatory_start
purgatory_start:
	call purgatory_start@PLT
"""
ASM_16 = """
	.text
	.globl purgatory_start
purgatory_start:
	.word purgatory_start
"""


@pytest.mark.parametrize(
    "name, source, flags, error",
    [
        ("pic.c", PIC_C, ("-fpic", "-O2"), r"unsupported relocation R_386_GOTPC in \.rel\.text .*-fno-pic"),
        ("plt.S", ASM_PLT32, (), r"unsupported relocation R_386_PLT32 in \.rel\.text"),
        ("r16.S", ASM_16, (), r"unsupported relocation R_386_16 in \.rel\.text"),
        ("undef.c", "void f(void);\nvoid purgatory_start(void) { f(); }\n", ("-fno-pic",),
         "undefined symbol f"),
        ("common.c", "int x;\nvoid purgatory_start(void) { x = 1; }\n", ("-fno-pic", "-fcommon"),
         "common symbol x"),
        ("noentry.c", "int x = 1;\n", ("-fno-pic",), "no global symbol purgatory_start"),
    ],
)
def test_refused_objects(tmp_path, name, source, flags, error):
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    obj = compile_object(tmp_path, name, source, *flags)
    with pytest.raises(ImageError, match=error) as caught:
        Purgatory.from_file(obj)
    assert "\n" not in str(caught.value)


def test_refuses_non_objects(tmp_path, purgatory_ro):
    text = tmp_path / "text"
    text.write_bytes(b"not an elf at all")
    with pytest.raises(ImageError, match="not an ELF file"):
        Purgatory.from_file(str(text))
    with pytest.raises(ImageError, match="cannot read purgatory"):
        Purgatory.from_file(str(tmp_path / "missing.ro"))
    exe = tmp_path / "exe"
    run(["ld", "-m", "elf_i386", *ld_quiet(), "-e", "purgatory_start", "-o", str(exe), purgatory_ro])
    with pytest.raises(ImageError, match="ET_EXEC, purgatory must be relocatable"):
        Purgatory.from_file(str(exe))
    x86_64 = Purgatory.from_file(compile_object(tmp_path, "x.c", "int purgatory_start = 1;\n", "-m64"))
    with pytest.raises(ImageError, match=r"an ELF64 x86_64 object, but i386 kernels enter ELF32 i386 objects"
                                         r" \(purgatory\.ro\)$"):
        x86_64.require_arch(I386)
    truncated = tmp_path / "truncated.ro"
    truncated.write_bytes(open(purgatory_ro, "rb").read()[:0x200])
    with pytest.raises(ImageError, match=r"truncated: the section header table \(\d+ entries at 0x[0-9a-f]+\)"
                                         r" runs past the end of the file \(0x200 bytes\)$"):
        Purgatory.from_file(str(truncated))


class Damaged:
    """purgatory.ro with header fields overwritten, for objects gcc will not make."""

    SHDR = {"sh_name": 0, "sh_type": 4, "sh_flags": 8, "sh_offset": 16, "sh_size": 20, "sh_link": 24,
            "sh_addralign": 32}
    EHDR = {"e_ident[EI_CLASS]": (4, "<B"), "e_ident[EI_DATA]": (5, "<B"), "e_shentsize": (46, "<H"),
            "e_shnum": (48, "<H"), "e_shstrndx": (50, "<H")}

    def __init__(self, purgatory_ro):
        from elftools.elf.elffile import ELFFile

        with open(purgatory_ro, "rb") as f:
            self.data = bytearray(f.read())
            elf = ELFFile(f)
            self.index = {s.name: i for i, s in enumerate(elf.iter_sections())}
            self.shoff = elf["e_shoff"]
            symtab = elf.get_section_by_name(".symtab")
            self.symbols = {s.name: symtab["sh_offset"] + i * 16 for i, s in enumerate(symtab.iter_symbols())}
            self.rel_text = elf.get_section_by_name(".rel.text")["sh_offset"]

    def section(self, name, field, value):
        struct.pack_into("<I", self.data, self.shoff + self.index[name] * 40 + self.SHDR[field], value)
        return self

    def header(self, field, value):
        offset, fmt = self.EHDR[field]
        struct.pack_into(fmt, self.data, offset, value)
        return self

    def symbol_value(self, name, value):
        struct.pack_into("<I", self.data, self.symbols[name] + 4, value)
        return self

    def first_relocation_symbol(self, index):
        r_info = struct.unpack_from("<I", self.data, self.rel_text + 4)[0]
        struct.pack_into("<I", self.data, self.rel_text + 4, (index << 8) | (r_info & 0xFF))
        return self


# Found by tests/unit/test_fuzz.py: each used to raise something else than ImageError (a
# bare IndexError or struct.error), say it in pyelftools' words ("expected 4, found 2",
# "Invalid EI_CLASS"), or take seconds and gigabytes before failing.
DAMAGED_OBJECTS = [
    ("huge-alignment", lambda d: d.section(".data", "sh_addralign", 0x80000000),
     r"its sections take more than 1024 KiB laid out \(\.data: 0x[0-9a-f]+ bytes, aligned to 0x80000000\):"
     r" not a purgatory$"),
    ("alignment-not-power-of-two", lambda d: d.section(".data", "sh_addralign", 24),
     r"section \.data is aligned to 0x18, not a power of two$"),
    ("symtab-past-the-end", lambda d: d.section(".symtab", "sh_size", 0x3E8000),
     r"truncated: section \d+ \(0x3e8000 bytes at 0x[0-9a-f]+\) runs past the end of the file \(0x[0-9a-f]+ bytes\)$"),
    ("text-past-the-end", lambda d: d.section(".text", "sh_offset", 0x7FFFF000),
     r"truncated: section \d+ \(0x[0-9a-f]+ bytes at 0x7ffff000\) runs past the end of the file"),
    ("relocation-of-no-symbol", lambda d: d.first_relocation_symbol(0xFFFF),
     r"\.rel\.text: relocation at 0x[0-9a-f]+ names symbol 65535, but \.symtab has \d+$"),
    ("entry-outside-its-section", lambda d: d.symbol_value("purgatory_start", 0x100000),
     r"purgatory_start lies outside its section \.text$"),
    ("elf-class-0", lambda d: d.header("e_ident[EI_CLASS]", 0),
     r"damaged ELF identification \(class and data encoding 0x00, 0x01\)$"),
    ("big-endian", lambda d: d.header("e_ident[EI_DATA]", 2),
     r"purgatory must be an ELF32 i386 object \(EM_386\) or an ELF64 x86_64 object \(EM_X86_64\), not a big-endian"
     r" machine 768$"),
    ("no-section-headers", lambda d: d.header("e_shnum", 0), r"no section headers$"),
    ("section-header-size", lambda d: d.header("e_shentsize", 41),
     r"e_shentsize is 41, ELF32 section headers take 40 bytes$"),
    ("names-in-no-section", lambda d: d.header("e_shstrndx", 99), r"e_shstrndx 99 is not one of its \d+ sections$"),
    ("name-outside-the-names", lambda d: d.section(".text", "sh_name", 0x10000),
     r"the name of section 1 is not in the section name table$"),
    ("link-to-no-section", lambda d: d.section(".symtab", "sh_link", 200),
     r"section \d+ links to section 200, which does not exist$"),
    ("compressed-text", lambda d: d.section(".text", "sh_flags", 0x806),
     r"section 1 is compressed \(SHF_COMPRESSED\): link purgatory uncompressed$"),
]


@pytest.mark.parametrize("damage, message", [d[1:] for d in DAMAGED_OBJECTS], ids=[d[0] for d in DAMAGED_OBJECTS])
def test_damaged_objects(purgatory_ro, damage, message):
    data = bytes(damage(Damaged(purgatory_ro)).data)
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"^damaged\.ro: " + message):
        Purgatory.from_bytes(data, "damaged.ro")
    assert time.monotonic() - started < 1  # the symbol table of 256,000 entries took 8 s


def test_truncated_header(purgatory_ro):
    with open(purgatory_ro, "rb") as f:
        head = f.read(40)
    with pytest.raises(ImageError, match=r"^p\.ro: truncated: 40 bytes, an ELF32 header takes 52$"):
        Purgatory.from_bytes(head, "p.ro")


# --- parameter values --------------------------------------------------------------------------

@pytest.mark.parametrize("word, size", [("I", 36), ("Q", 72)])
def test_entry_regs_layout(word, size):
    regs = entry_regs(word, ip=0x100000, si=0x90000, bx=3, bp=8)
    assert struct.unpack(f"<9{word}", regs) == (0, 3, 0, 0, 0x90000, 0, 0, 8, 0x100000)
    assert len(entry_regs(word, ip=1, si=2, sp=0x9F000)) == size


@pytest.mark.parametrize("word, too_big", [("I", 1 << 32), ("Q", 1 << 64)])
def test_entry_regs_refuses_nonsense(word, too_big):
    with pytest.raises(TypeError, match="unknown register eflags"):
        entry_regs(word, ip=0, si=0, eflags=2)
    with pytest.raises(ValueError, match="si"):
        entry_regs(word, ip=0, si=too_big)
    with pytest.raises(TypeError):
        entry_regs(word, si=0)  # ip is required


def segments_for_hashing():
    return [
        Segment(0x90000, 0x4000, b"setup+cmdline" * 100, "bzImage setup"),
        Segment(0x95000, 0x3000, b"", "backup (zero-filled scratch)"),  # no data: not a region
        Segment(0x100000, 0x200000, memoryview(bytes(range(256)) * 3000), "kernel"),
        Segment(0x1000000, 0x1000, bytearray(b"\xff" * 55), "initrd"),
    ]


def test_sha256_params_match_hashlib():
    segments = segments_for_hashing()
    params = sha256_params(segments, skip_checks=False)
    assert sorted(params) == ["purgatory_sha256_digest", "purgatory_sha256_regions"]
    regions = struct.unpack("<32I", params["purgatory_sha256_regions"])
    with_data = [s for s in segments if s.bufsz]
    expected = [v for s in with_data for v in (s.mem, s.bufsz)]
    assert list(regions) == expected + [0] * (32 - len(expected))
    assert params["purgatory_sha256_digest"] == hashlib.sha256(
        b"".join(bytes(s.buf) for s in with_data)).digest()


def test_sha256_params_skipped_checks_are_all_zero():
    params = sha256_params(segments_for_hashing(), skip_checks=True)
    assert params == {"purgatory_sha256_regions": bytes(128), "purgatory_sha256_digest": bytes(32)}


def test_sha256_params_at_most_16_regions():
    sixteen = [Segment(i * PAGE_SIZE, PAGE_SIZE, b"x") for i in range(16)]
    assert len(sha256_params(sixteen, False)["purgatory_sha256_regions"]) == 128
    with pytest.raises(PlanError, match="17 segments with data, purgatory checks at most 16"):
        sha256_params(sixteen + [Segment(0x100000, PAGE_SIZE, b"y")], False)
    # -i needs no regions, however many segments there are
    sha256_params(sixteen + [Segment(0x100000, PAGE_SIZE, b"y")], True)


def test_sha256_params_fit_the_patch(purgatory):
    purgatory.link(0x1000, sha256_params(segments_for_hashing(), False))


def test_default_path(monkeypatch, purgatory_ro):
    monkeypatch.setenv("KEXEC_PY_PURGATORY", purgatory_ro)
    assert default_purgatory_path(I386) == purgatory_ro
    monkeypatch.delenv("KEXEC_PY_PURGATORY")
    try:
        path = default_purgatory_path(I386)
    except ImageError as e:
        assert "no purgatory.ro" in str(e) and "make -C csrc/purgatory" in str(e)
    else:
        assert path.endswith("purgatory.ro") and os.path.isfile(path)


# --- the shipped parse (setup.py writes it beside the installed objects) -----------------------

def no_pyelftools(monkeypatch) -> None:
    """Any parse with pyelftools fails the test: a Purgatory can only come from the shipped form."""
    def parse(*_):
        raise AssertionError("parsed with pyelftools")

    monkeypatch.setattr(Purgatory, "from_bytes", classmethod(parse))


def ship(built: Built, tmp_path, shipped_from: Built | None = None) -> str:
    """A copy of built's object with the shipped form of shipped_from's (default: its own) beside it."""
    path = str(tmp_path / os.path.basename(built.path))
    shutil.copy(built.path, path)
    source = shipped_from or built
    with open(source.path, "rb") as f:
        form = shipped_form(source.purgatory, f.read())
    with open(path + SHIPPED_SUFFIX, "wb") as f:
        f.write(form)
    return path


def test_shipped_form_links_as_pyelftools_parse_does(built, tmp_path, monkeypatch):
    path = ship(built, tmp_path)
    parsed = Purgatory.from_bytes(open(path, "rb").read(), path)
    no_pyelftools(monkeypatch)
    shipped = Purgatory.from_file(path)
    assert shipped == parsed
    assert dict(shipped._parameters) == dict(parsed._parameters) and dict(shipped._nobits) == dict(parsed._nobits)
    values = {name: bytes((i * 5 + k) & 0xFF for k in range(size)) for i, (name, size) in enumerate(built.params.items())}
    for load_addr, patch in ((0x1000, {}), (0x9A000, values), (0x7FFF000, values)):
        ours, theirs = shipped.link(load_addr, patch), parsed.link(load_addr, patch)
        assert ours.entry == theirs.entry
        assert bytes(ours.segment.buf) == bytes(theirs.segment.buf)


@pytest.mark.parametrize("damage", ["made from other bytes", "another version", "cut short", "not marshal data"])
def test_shipped_form_not_made_from_the_object_is_ignored(built, purgatory_ro, purgatory64_ro, tmp_path, damage):
    """Beside the object: the other purgatory's shipped form, as it is (its object's digest),
    claiming this object's digest but another version of the form, cut short, or not marshal's."""
    other_path = purgatory64_ro if built.path == purgatory_ro else purgatory_ro
    other = Built(other_path, Purgatory.from_file(other_path), "")
    path = ship(built, tmp_path, shipped_from=other)
    sidecar = path + SHIPPED_SUFFIX
    form = open(sidecar, "rb").read()
    if damage == "another version":
        fields = marshal.loads(form)
        fields.update(object_sha256=hashlib.sha256(open(path, "rb").read()).hexdigest(), version=fields["version"] + 1)
        form = marshal.dumps(fields)
    elif damage == "cut short":
        form = form[: len(form) // 2]
    elif damage == "not marshal data":
        form = b"\xff" + form
    open(sidecar, "wb").write(form)
    purgatory = Purgatory.from_file(path)
    assert purgatory == Purgatory.from_bytes(open(path, "rb").read(), path)
    assert purgatory != other.purgatory


# --- the C code, run hosted ---------------------------------------------------------------------

SHA256_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "sha256.h"

/* argv[1] = chunk size for sha256_update; stdin = the message; prints the hex digest. */
int main(int argc, char **argv)
{
	static unsigned char buf[1 << 20];
	size_t len = fread(buf, 1, sizeof(buf), stdin), chunk = (size_t)atol(argv[1]), off;
	struct sha256_ctx ctx;
	unsigned char digest[SHA256_DIGEST_SIZE];
	int i;

	(void)argc;
	sha256_init(&ctx);
	for (off = 0; off < len; off += chunk)
		sha256_update(&ctx, buf + off, len - off < chunk ? len - off : chunk);
	sha256_final(&ctx, digest);
	for (i = 0; i < SHA256_DIGEST_SIZE; i++)
		printf("%02x", digest[i]);
	printf("\n");
	return 0;
}
"""


@pytest.fixture(scope="module", params=["-m64", "-m32"])
def sha256_tool(request, tmp_path_factory):
    """sha256.c compiled for the host (64- and 32-bit: purgatory runs the latter)."""
    tmp = tmp_path_factory.mktemp("sha" + request.param)
    if request.param == "-m32" and not can_build_hosted_m32(tmp):
        pytest.skip("no 32-bit libc for a hosted -m32 build")
    (tmp / "main.c").write_text(SHA256_MAIN)
    tool = tmp / "sha256"
    run(["gcc", request.param, "-O2", "-Wall", "-Wextra", "-Werror", "-I", PURGATORY_SRC,
         "-o", str(tool), str(tmp / "main.c"), os.path.join(PURGATORY_SRC, "sha256.c")])
    return str(tool)


MESSAGES = {
    "empty": b"",
    "abc": b"abc",
    "55": bytes(range(55)),  # the longest that pads in one block
    "56": bytes(range(56)),  # needs a second block for the length
    "63": b"a" * 63,
    "64": bytes(range(64)),
    "65": b"b" * 65,
    "119/120": b"c" * 119 + b"d",
    "1000": bytes((i * 31) & 0xFF for i in range(1000)),
    "300k": os.urandom(300_000),
}


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("name", list(MESSAGES))
def test_c_sha256_matches_hashlib(sha256_tool, name, chunk):
    message = MESSAGES[name]
    out = run([sha256_tool, str(chunk)], input=message).stdout.decode().strip()
    assert out == hashlib.sha256(message).hexdigest()


PURGATORY_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "purgatory.h"

/* The real ones: cli; hlt (entry32.S) and the kit's 8250 console (lib/console.c);
 * printf.o is the kit's own. */
uint16_t kit_console_port;

void purgatory_halt(void)
{
	fflush(stdout);
	_exit(3);
}

void kit_putc(char c)
{
	if (c == '\n')
		putchar('\r');
	putchar(c);
}

void kit_puts(const char *s)
{
	while (*s)
		kit_putc(*s++);
}

static unsigned hexval(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

/*
 * argv[1] = expected digest (hex), argv[2..] = region lengths, regions read
 * from stdin in order into separate buffers.  Prints the command line after
 * purgatory_main() ran on "console=ttyS0".
 */
/* argv[1] = "copy": copy_jump_back_page() of a page of this process, its address and
 * whether the bytes match printed. */
static int copy_mode(void)
{
	static uint8_t page[JUMP_BACK_PAGE_SIZE] __attribute__((aligned(JUMP_BACK_PAGE_SIZE)));
	static struct purgatory_jump_back_page copy;
	unsigned i;

	for (i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 7 + 3);
	purgatory_jump_back_entry = (unsigned long)page + 0xf2;
	purgatory_jump_back_copy = (unsigned long)&copy;
	purgatory_main();
	printf("%d %d\n", copy.addr == (unsigned long)page, !memcmp(copy.bytes, page, sizeof(page)));
	return 0;
}

int main(int argc, char **argv)
{
	static char cmdline[256] = "console=ttyS0";
	int i;

	if (argc == 2 && !strcmp(argv[1], "copy"))
		return copy_mode();

	for (i = 0; i < 32; i++)
		purgatory_sha256_digest[i] = (uint8_t)(hexval(argv[1][2 * i]) << 4 | hexval(argv[1][2 * i + 1]));
	for (i = 2; i < argc; i++) {
		size_t len = (size_t)atol(argv[i]);
		char *buf = malloc(len + 1);

		if (fread(buf, 1, len, stdin) != len)
			return 2;
		purgatory_sha256_regions[i - 2].start = (uint32_t)(uintptr_t)buf;
		purgatory_sha256_regions[i - 2].len = (uint32_t)len;
	}
	purgatory_cmdline_end = (uint32_t)(uintptr_t)(cmdline + strlen(cmdline));
	purgatory_jump_back_entry = 0x1234abcd;
	purgatory_main();
	printf("cmdline: %s\n", cmdline);
	return 0;
}
"""


@pytest.fixture(scope="module")
def hosted_purgatory(purgatory_build, tmp_path_factory):
    """purgatory.o, sha256.o and the kit's printf.o exactly as built for purgatory.ro,
    linked into a 32-bit user program that plays the kernel's part and the serial port's."""
    tmp = tmp_path_factory.mktemp("hosted")
    if not can_build_hosted_m32(tmp):
        pytest.skip("no 32-bit libc for a hosted -m32 build")
    (tmp / "main.c").write_text(PURGATORY_MAIN)
    tool = tmp / "purgatory"
    run(["gcc", "-m32", "-no-pie", "-O2", "-Wall", "-Werror", "-I", PURGATORY_SRC, "-o", str(tool),
         str(tmp / "main.c"), *(os.path.join(purgatory_build, o) for o in ("purgatory.o", "sha256.o", "printf.o"))])
    return str(tool)


def run_purgatory(tool, digest: bytes, regions: list[bytes]) -> subprocess.CompletedProcess:
    argv = [tool, digest.hex(), *(str(len(r)) for r in regions)]
    return subprocess.run(argv, input=b"".join(regions), capture_output=True)


def test_purgatory_main_accepts_intact_memory_and_appends_the_jump_back_entry(hosted_purgatory):
    regions = [b"setup" * 999, b"", os.urandom(100_000), b"x" * 56]
    segments = [Segment(i * 0x100000, 0x100000, r) for i, r in enumerate(regions)]
    digest = sha256_params(segments, skip_checks=False)["purgatory_sha256_digest"]
    result = run_purgatory(hosted_purgatory, digest, regions)
    assert result.returncode == 0, result.stderr
    # nothing on the console when all is well
    assert result.stdout.decode() == "cmdline: console=ttyS0 kexec_jump_back_entry=0x1234abcd\n"
    assert len(" kexec_jump_back_entry=0x1234abcd") == JUMP_BACK_ENTRY_ROOM


def test_purgatory_main_refuses_corrupt_memory(hosted_purgatory):
    regions = [b"kernel" * 1000, b"initrd" * 10]
    digest = hashlib.sha256(b"".join(regions)).digest()
    corrupt = [regions[0], b"initrD" + regions[1][6:]]
    result = run_purgatory(hosted_purgatory, digest, corrupt)
    assert result.returncode == 3  # halted, the command line untouched and unprinted
    lines = result.stdout.decode().split("\r\n")
    assert lines[0] == "purgatory: sha256 mismatch in regions 0-1 (one digest covers them all)"
    assert re.fullmatch(r"purgatory: region 0 \(start=0x[0-9a-f]{8}, len=0x00001770\)", lines[1])
    assert re.fullmatch(r"purgatory: region 1 \(start=0x[0-9a-f]{8}, len=0x0000003c\)", lines[2])
    assert lines[3] == "purgatory: expected " + digest.hex()
    assert lines[4] == "purgatory: computed " + hashlib.sha256(b"".join(corrupt)).hexdigest()
    assert lines[5:] == ["purgatory: refusing to boot corrupt memory", ""]
    assert run_purgatory(hosted_purgatory, digest, regions).returncode == 0


def test_purgatory_main_names_a_single_region(hosted_purgatory):
    result = run_purgatory(hosted_purgatory, bytes(32), [b"kernel"])
    assert result.returncode == 3
    assert result.stdout.decode().startswith(
        "purgatory: sha256 mismatch in region 0\r\npurgatory: region 0 (start=0x")


def test_purgatory_main_saves_the_re_entry_page(hosted_purgatory):
    """purgatory_jump_back_copy set: the page holding the jump-back entry, address and bytes."""
    result = subprocess.run([hosted_purgatory, "copy"], capture_output=True)
    assert (result.returncode, result.stdout) == (0, b"1 1\n")


def test_purgatory_main_without_regions_checks_nothing(hosted_purgatory):
    """-i: all regions empty, whatever the digest says."""
    result = run_purgatory(hosted_purgatory, b"\x5a" * 32, [])
    assert result.returncode == 0
