"""kexec_py.elf_headers reads what pyelftools reads: every field the elf-x86 loader
uses, on gcc's output and the kit's payloads, ELF32 and ELF64."""

import pytest
from elftools.elf.elffile import ELFFile

from kexec_py.elf_headers import ElfFormatError, machine_name, program_headers, read_header, type_name
from kexec_py.image_file import ImageFile
from test_elf_loader import C_PAYLOAD
from unit_support import ElfPatcher

EHDR_FIELDS = ("e_type", "e_machine", "e_entry", "e_phoff", "e_phentsize", "e_phnum")
PHDR_FIELDS = ("p_type", "p_offset", "p_paddr", "p_filesz", "p_memsz")


def by_pyelftools(path):
    """(class, file header fields, program header fields) by pyelftools, in numbers."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        fields = tuple(_number(elf.header[k]) for k in EHDR_FIELDS)
        phdrs = [tuple(_number(seg.header[k]) for k in PHDR_FIELDS) for seg in elf.iter_segments()]
        return elf.elfclass, fields, phdrs


def _number(value):
    """pyelftools names the values it knows (ET_EXEC, EM_386, PT_LOAD): back to numbers."""
    from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE, ENUM_P_TYPE_BASE

    for enum in (ENUM_E_TYPE, ENUM_E_MACHINE, ENUM_P_TYPE_BASE):
        if isinstance(value, str) and value in enum:
            return enum[value]
    return value


@pytest.fixture(scope="module", params=[32, 64])
def gcc_images(request, elf_builder):
    bits = request.param
    default = elf_builder.gcc(f"headers{bits}", C_PAYLOAD, ".c", bits, "-nostdlib", "-static", "-no-pie",
                              "-fno-pic", "-ffreestanding", "-O1", "-Wl,-Ttext=0x1000000")
    relocatable = elf_builder.gcc(f"headers-rel{bits}.o", C_PAYLOAD, ".c", bits, "-c", "-ffreestanding")
    return [elf_builder.tiny(bits), default, relocatable]


def test_agrees_with_pyelftools(gcc_images):
    for path in gcc_images:
        header = read_header(ImageFile.open(path).data)
        bits, fields, phdrs = by_pyelftools(path)
        assert header.bits == bits
        assert tuple(getattr(header, k) for k in EHDR_FIELDS) == fields, path
        assert [tuple(getattr(p, k) for k in PHDR_FIELDS)
                for p in program_headers(ImageFile.open(path).data, header)] == phdrs, path


def test_big_endian_is_refused(tiny_elf32, tmp_path):
    patcher = ElfPatcher(tiny_elf32)
    patcher.data[5] = 2  # ELFDATA2MSB
    data = ImageFile.open(patcher.write(tmp_path / "msb")).data
    with pytest.raises(ElfFormatError, match=r"^EI_DATA 2 is not little-endian \(ELFDATA2LSB\), as x86 images are$"):
        read_header(data)


@pytest.mark.parametrize("function, value, name", [
    (type_name, 1, "ET_REL"), (type_name, 2, "ET_EXEC"), (type_name, 0x1234, "4660"),
    (machine_name, 3, "EM_386"), (machine_name, 62, "EM_X86_64"), (machine_name, 40, "EM_ARM"),
    (machine_name, 0xBEEF, "48879"),
])
def test_names_are_pyelftools(function, value, name):
    assert function(value) == name
