"""elf-x86 --args-none: ELF executables placed by their PT_LOAD physical addresses.

Good images are built with the system gcc; broken ones are gcc output patched with struct.
"""

import re

import pytest
from elftools.elf.elffile import ELFFile

from kexec_py.errors import ImageError, KexecError, UsageError
from kexec_py.arch import I386, X86_64
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest, Target, choose_loader
from kexec_py.loaders.elf_x86 import loader
from kexec_py.ranges import align_up
from unit_support import PHYS, TINY_SEGMENTS, ElfPatcher, ram_map

MEMORY = ram_map((0x1000, 0x9F000), (0x100000, 0x1FFE0000), total_ram=512000 * 1024)
PT_NULL, PT_NOTE = 0, 4
EM_ARM = 40


def load(path, arch=I386, entry=None, args_style="none"):
    return loader("elf-x86" if arch is I386 else "elf-x86_64").load(ImageFile.open(str(path)), LoadRequest(args_style, entry), Target(arch, MEMORY))


def layout(loaded):
    return [(s.mem, s.memsz, bytes(s.buf)) for s in loaded.segments]


# --- good images ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, arch", [(32, I386), (64, X86_64)])
def test_tiny_image(request, bits, arch):
    path = request.getfixturevalue(f"tiny_elf{bits}")
    loaded = load(path, arch)
    assert loaded.entry == PHYS
    # .data (4 bytes) + .bss (0x2000) = 0x2004 bytes of memory -> 3 whole pages, 4 bytes of data
    assert layout(loaded) == TINY_SEGMENTS
    assert [s.source for s in loaded.segments] == [
        f"{path} PT_LOAD[0] at 0x1000000",
        f"{path} PT_LOAD[1] at 0x1001000",
    ]


def test_probe_picks_elf_x86(tiny_elf32, tmp_path):
    assert choose_loader(ImageFile.open(tiny_elf32), None, I386).name == "elf-x86"
    other = tmp_path / "kernel.img"
    other.write_bytes(b"MZ" + bytes(510))
    with pytest.raises(ImageError, match=rf"^{other}: cannot determine the file type \(known: elf-x86, .*\)$"):
        choose_loader(ImageFile.open(str(other)), None, I386)


@pytest.mark.parametrize(
    "entry",
    [
        0x1000000,  # the image's own
        0x1001000,  # in the data segment
        0x1003FFC,  # past p_memsz (0x1003004) but inside the page-rounded segment
    ],
)
def test_entry_override(tiny_elf32, entry):
    loaded = load(tiny_elf32, entry=entry)
    assert loaded.entry == entry
    assert layout(loaded) == TINY_SEGMENTS  # the override moves nothing


@pytest.mark.parametrize("entry", [0xFFF000, 0x1004000, 0x0])
def test_entry_override_outside_the_image(tiny_elf32, entry):
    with pytest.raises(ImageError, match=rf"^{tiny_elf32}: entry {entry:#x} is outside every loaded segment$"):
        load(tiny_elf32, entry=entry)


def test_segments_go_to_a_custom_physical_address(elf_builder):
    path = elf_builder.tiny(32, phys=0x2400000)
    loaded = load(path)
    assert loaded.entry == 0x2400000
    assert [(s.mem, s.memsz) for s in loaded.segments] == [(0x2400000, 0x1000), (0x2401000, 0x3000)]


def test_physical_not_virtual_addresses(elf_builder):
    # linked to run at 0xc1000000 (virtual), loaded at 16 MiB (physical, AT())
    path = elf_builder.tiny(32, phys=PHYS, virt=0xC1000000)
    with pytest.raises(ImageError, match=r"entry 0xc1000000 is outside every loaded segment"):
        load(path)  # e_entry is virtual: no use to a physical-mode jump
    assert layout(load(path, entry=PHYS)) == TINY_SEGMENTS


C_PAYLOAD = """\
int counter = 5;           /* .data */
char scratch[10000];       /* .bss: in p_memsz, not in the file */
const char banner[] = "x"; /* .rodata */
void _start(void) { scratch[0] = counter + banner[0]; for (;;) ; }
"""


@pytest.mark.parametrize("bits, arch", [(32, I386), (64, X86_64)])
def test_gcc_default_layout(elf_builder, bits, arch):
    """gcc's own linker script (headers, text, rodata, data+bss in separate PT_LOADs):
    one segment per PT_LOAD at p_paddr, memsz page-rounded, file bytes as data."""
    path = elf_builder.gcc(f"c{bits}", C_PAYLOAD, ".c", bits, "-nostdlib", "-static", "-no-pie",
                           "-fno-pic", "-ffreestanding", "-O1", "-Wl,-Ttext=0x1000000", "-Wl,--build-id=none")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        phdrs = [p.header for p in elf.iter_segments() if p["p_type"] == "PT_LOAD"]
        start = elf.get_section_by_name(".symtab").get_symbol_by_name("_start")[0]["st_value"]
        with open(path, "rb") as g:
            raw = g.read()
    expected = [(p.p_paddr, align_up(p.p_memsz), raw[p.p_offset:p.p_offset + p.p_filesz]) for p in phdrs]
    loaded = load(path, arch)
    assert len(phdrs) >= 3 and layout(loaded) == expected
    assert loaded.entry == start == 0x1000000
    data = loaded.segments[-1]  # .data and .bss
    assert data.memsz >= align_up(4 + 10000) and data.bufsz < data.memsz


def test_empty_pt_load_is_left_out(tiny_elf32, tmp_path):
    patched = ElfPatcher(tiny_elf32).set_phdr(1, "p_filesz", 0).set_phdr(1, "p_memsz", 0)
    loaded = load(patched.write(tmp_path / "empty-load"))
    assert layout(loaded) == TINY_SEGMENTS[:1]


# --- bad images ----------------------------------------------------------------------------------

def _truncated(length):
    def make(tiny, tmp_path):
        with open(tiny, "rb") as f:
            data = f.read()[:length]
        path = tmp_path / f"cut-at-{length:#x}"
        path.write_bytes(data)
        return str(path)
    return make


def _patched(*changes):
    """changes: ("e_field", value) or (phdr index, "p_field", value)."""
    def make(tiny, tmp_path):
        patcher = ElfPatcher(tiny)
        for change in changes:
            if isinstance(change[0], int):
                patcher.set_phdr(*change)
            else:
                patcher.set(*change)
        return patcher.write(tmp_path / "patched")
    return make


def _bad_class(tiny, tmp_path):
    patcher = ElfPatcher(tiny)
    patcher.data[4] = 3  # e_ident[EI_CLASS]: neither ELFCLASS32 nor ELFCLASS64
    return patcher.write(tmp_path / "bad-class")


def _bytes(data):
    def make(tiny, tmp_path):
        path = tmp_path / "file"
        path.write_bytes(data)
        return str(path)
    return make


BAD = [
    # id, make(tiny ELF32 path, tmp_path) -> image path, message (regex, after "<path>: ")
    ("not-elf", _bytes(b"MZ\x90\x00" + bytes(200)), "not an ELF file"),
    ("empty", _bytes(b""), "empty file"),
    ("elf-magic-only", _bytes(b"\x7fELF"), r"truncated or damaged ELF \(.+\)"),
    ("truncated-header", _truncated(0x20), r"truncated or damaged ELF \(.+\)"),
    ("truncated-phdrs", _truncated(0x40), r"truncated or damaged ELF \(.+\)"),
    ("truncated-data", _truncated(0x2002),
     r"truncated: PT_LOAD\[1\] at 0x1001000 needs bytes up to 0x2004, file has 0x2002"),
    ("bad-class", _bad_class, r"truncated or damaged ELF \(EI_CLASS 3 is neither ELFCLASS32 nor ELFCLASS64\)"),
    ("et-rel", _patched(("e_type", 1)), r"ELF type ET_REL, need an executable \(ET_EXEC\)"),
    ("et-dyn", _patched(("e_type", 3)), r"ELF type ET_DYN, need an executable \(ET_EXEC\)"),
    ("et-core", _patched(("e_type", 4)), r"ELF type ET_CORE, need an executable \(ET_EXEC\)"),
    ("arm", _patched(("e_machine", EM_ARM)), "ELF machine EM_ARM is not x86"),
    ("unknown-machine", _patched(("e_machine", 0xBEEF)), "ELF machine 48879 is not x86"),
    ("no-pt-load", _patched((0, "p_type", PT_NOTE), (1, "p_type", PT_NULL)), "no PT_LOAD segment"),
    ("unaligned-paddr", _patched((1, "p_paddr", 0x1001010)),
     r"PT_LOAD\[1\] at 0x1001010 is not page-aligned \(link it at a 4 KiB boundary\)"),
    ("filesz>memsz", _patched((1, "p_filesz", 0x3000)), r"PT_LOAD\[1\] at 0x1001000 has p_filesz > p_memsz"),
    ("data-past-eof", _patched((1, "p_offset", 0x100000)),
     r"truncated: PT_LOAD\[1\] at 0x1001000 needs bytes up to 0x100004, file has 0x[0-9a-f]+"),
    ("entry-outside", _patched(("e_entry", 0x2000000)), "entry 0x2000000 is outside every loaded segment"),
]


@pytest.mark.parametrize("make, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_image(tiny_elf32, tmp_path, make, message):
    path = make(tiny_elf32, tmp_path)
    with pytest.raises(KexecError) as refused:
        load(path)
    assert type(refused.value) is ImageError
    assert refused.value.exit_code == 255
    assert refused.value.__cause__ is None  # no chained traceback material for the user
    text = str(refused.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert re.fullmatch(message, text[len(path) + 2:]), text


def test_directory(tmp_path):
    with pytest.raises(ImageError, match=rf"^{tmp_path}: is a directory, not an image$"):
        load(tmp_path)


def test_missing_file(tmp_path):
    path = tmp_path / "no-such-payload"
    with pytest.raises(ImageError, match=rf"^cannot open {path}: No such file or directory$"):
        load(path)


@pytest.mark.parametrize(
    "fixture, arch, message",
    [
        ("tiny_elf32", X86_64,
         "EM_386 image, but x86_64 kernels enter EM_X86_64 images (--arch plans for another machine)"),
        ("tiny_elf64", I386,
         "EM_X86_64 image, but i386 kernels enter EM_386 images (--arch plans for another machine)"),
    ],
)
def test_image_for_the_other_architecture(request, fixture, arch, message):
    path = request.getfixturevalue(fixture)
    with pytest.raises(ImageError) as refused:
        load(path, arch)
    assert str(refused.value) == f"{path}: {message}"


@pytest.mark.parametrize("bits", [32, 64])
def test_gcc_relocatable_and_shared_objects(elf_builder, bits):
    arch = I386 if bits == 32 else X86_64
    obj = elf_builder.gcc(f"rel{bits}.o", C_PAYLOAD, ".c", bits, "-c", "-ffreestanding")
    with pytest.raises(ImageError, match=r"ELF type ET_REL, need an executable \(ET_EXEC\)"):
        load(obj, arch)
    pie = elf_builder.gcc(f"pie{bits}", C_PAYLOAD, ".c", bits, "-nostdlib", "-static-pie", "-fpie",
                          "-ffreestanding")
    with pytest.raises(ImageError, match=r"ELF type ET_DYN, need an executable \(ET_EXEC\)"):
        load(pie, arch)


@pytest.mark.parametrize("args_style", [None, "elf"])
def test_args_none_or_linux_must_be_said(tiny_elf32, args_style):
    with pytest.raises(UsageError, match=r"^elf-x86: say --args-none \(a physical-mode payload, called directly\)"
                                         r" or --args-linux .*; --args-elf is not implemented$"):
        load(tiny_elf32, args_style=args_style)


@pytest.mark.parametrize("fixture", ["tiny_elf32", "tiny_elf64"])
def test_every_truncation_is_an_image_error(request, tmp_path, fixture):
    """Cut the file after every header byte and around the segment data: a load either
    fails with ImageError or, once all segment bytes are there, succeeds."""
    path = request.getfixturevalue(fixture)
    arch = I386 if fixture == "tiny_elf32" else X86_64
    with open(path, "rb") as f:
        data = f.read()
    data_end = 0x2004  # PT_LOAD[1]: p_offset 0x2000, p_filesz 4
    cut = tmp_path / "cut"
    for length in [*range(0x100), 0x1000, 0x1001, 0x1002, 0x2000, 0x2003, data_end, data_end + 1]:
        cut.write_bytes(data[:length])
        if length < data_end:
            with pytest.raises(ImageError):
                load(cut, arch)
        else:
            assert layout(load(cut, arch)) == TINY_SEGMENTS


@pytest.mark.parametrize("phoff", [1 << 63, (1 << 64) - 1])
def test_program_headers_past_any_file(tiny_elf64, tmp_path, phoff):
    """Found by tests/unit/test_fuzz.py: an ELF64 e_phoff of 2**63 or more made pyelftools
    raise OverflowError (seeking past what a file offset can be), not ImageError."""
    path = ElfPatcher(tiny_elf64).set("e_phoff", phoff).write(tmp_path / "far")
    with pytest.raises(ImageError, match=rf"program header table, 2 entries at {phoff:#x}, runs past the end"):
        load(path, X86_64)
