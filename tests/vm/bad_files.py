#!/usr/bin/python3
"""The bad image files of the bad-input table (tests/vm/test_bad_input.py), made from a
good ELF payload. The same code runs on the host (tests/unit/test_bad_input_host.py, from
the tiny test ELFs) and in the guests (copied to /root, from the .deb's phy_mode):

    python3 bad_files.py DIR PAYLOAD

writes the files into DIR (DIR/nonesuch stays absent) and prints nothing.
Standard library only: the guests have python3 but no test dependencies.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys

# ELF header fields: name -> (offset in ELF32, offset in ELF64, size in ELF32, size in ELF64)
EHDR = {
    "e_type": (16, 16, 2, 2),
    "e_machine": (18, 18, 2, 2),
    "e_entry": (24, 24, 4, 8),
    "e_phoff": (28, 32, 4, 8),
    "e_ehsize": (40, 52, 2, 2),
    "e_phentsize": (42, 54, 2, 2),
    "e_phnum": (44, 56, 2, 2),
}
PHDR = {
    "p_type": (0, 0, 4, 4),
    "p_offset": (4, 8, 4, 8),
    "p_paddr": (12, 24, 4, 8),
    "p_filesz": (16, 32, 4, 8),
    "p_memsz": (20, 40, 4, 8),
}
FORMATS = {2: "<H", 4: "<I", 8: "<Q"}
PT_NULL, PT_LOAD = 0, 1
EM_ARM = 40
ET_REL = 1
NOT_RAM = 0xF0000000  # below 4 GiB and far above the guests' 512 MiB of RAM
SECTOR = 512
CMDLINE_SIZE = 2047  # the setup header's cmdline_size of bzimage()


class Elf:
    """A mutable copy of an ELF file, its header fields by name."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or data[4] not in (1, 2):
            raise SystemExit("bad_files: the payload must be an ELF32 or ELF64 file")
        self.data = bytearray(data)
        self.is64 = data[4] == 2

    def _where(self, table: dict, name: str, base: int = 0) -> tuple[int, str]:
        off32, off64, size32, size64 = table[name]
        offset, size = (off64, size64) if self.is64 else (off32, size32)
        return base + offset, FORMATS[size]

    def get(self, name: str, index: int | None = None) -> int:
        offset, fmt = self._where(EHDR if index is None else PHDR, name, self._phdr(index))
        return struct.unpack_from(fmt, self.data, offset)[0]

    def set(self, name: str, value: int, index: int | None = None) -> Elf:
        offset, fmt = self._where(EHDR if index is None else PHDR, name, self._phdr(index))
        struct.pack_into(fmt, self.data, offset, value)
        return self

    def _phdr(self, index: int | None) -> int:
        return 0 if index is None else self.get("e_phoff") + index * self.get("e_phentsize")

    def loads(self) -> list[int]:
        """Indices of the PT_LOAD program headers."""
        return [i for i in range(self.get("e_phnum")) if self.get("p_type", i) == PT_LOAD]

    def data_load(self) -> int:
        """The last PT_LOAD that has file bytes."""
        return [i for i in self.loads() if self.get("p_filesz", i)][-1]

    def copy(self) -> Elf:
        return Elf(bytes(self.data))


def bzimage(*, version: int = 0x020F, setup_sects: int = 4, loadflags: int = 0x01,
            relocatable: int = 0, kernel_alignment: int = 0x200000, payload: bytes = bytes(0x3000)) -> bytes:
    """A bzImage-shaped file (boot sector and setup sectors with a setup header, then the
    protected-mode kernel), as Documentation/arch/x86/boot.rst lays it out."""
    setup = bytearray((setup_sects + 1) * SECTOR)
    setup[0x1F1] = setup_sects
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = bytes([0xEB, 0x6A])  # jmp: the header ends at 0x26c
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, 0x100000)  # code32_start
    struct.pack_into("<I", setup, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = relocatable
    struct.pack_into("<I", setup, 0x238, CMDLINE_SIZE)
    struct.pack_into("<Q", setup, 0x258, 0x1000000)  # pref_address
    struct.pack_into("<I", setup, 0x260, 0x400000)  # init_size
    return bytes(setup) + payload


def elf_files(elf: Elf) -> dict[str, bytes]:
    """name -> the bytes of each damaged ELF."""
    data = bytes(elf.data)
    phoff, phentsize = elf.get("e_phoff"), elf.get("e_phentsize")
    last = elf.data_load()
    data_end = elf.get("p_offset", last) + elf.get("p_filesz", last)

    def patched(*changes) -> bytes:
        copy = elf.copy()
        for change in changes:
            copy.set(*change)
        return bytes(copy.data)

    no_loads = elf.copy()
    for index in elf.loads():
        no_loads.set("p_type", PT_NULL, index)
    moved = elf.copy().set("e_entry", elf.get("e_entry") - elf.get("p_paddr", elf.loads()[0]) + NOT_RAM)
    for index in elf.loads():
        moved.set("p_paddr", elf.get("p_paddr", index) - elf.get("p_paddr", elf.loads()[0]) + NOT_RAM, index)
    bad_class = bytearray(data)
    bad_class[4] = 7  # e_ident[EI_CLASS]: neither ELFCLASS32 nor ELFCLASS64
    return {
        "elf-cut-in-ident": data[:10],
        "elf-cut-in-ehdr": data[:elf.get("e_ehsize") - 8],
        "elf-cut-in-phdrs": data[:phoff + (elf.get("e_phnum") - 1) * phentsize + phentsize // 2],
        "elf-cut-in-data": data[:data_end - 1],
        "elf-bad-class": bytes(bad_class),
        "elf-bad-phoff": patched(("e_phoff", len(data) + 0x10000)),
        "elf-phnum-overflow": patched(("e_phnum", 0xFFF0)),
        "elf-segment-beyond-file": patched(("p_offset", len(data) + 0x1000, last)),
        "elf-filesz-over-memsz": patched(("p_filesz", elf.get("p_memsz", last) + 0x1000, last)),
        "elf-arm": patched(("e_machine", EM_ARM)),
        "elf-relocatable": patched(("e_type", ET_REL)),
        "elf-no-pt-load": bytes(no_loads.data),
        "elf-unaligned": patched(("p_paddr", elf.get("p_paddr", last) + 0x10, last)),
        "elf-outside-ram": bytes(moved.data),
    }


def bzimage_files() -> dict[str, bytes]:
    return {
        "bz-good": bzimage(),  # well-formed (cmdline_size CMDLINE_SIZE): for the option rows
        "bz-cut-in-setup": bzimage(setup_sects=30)[:0x1000],
        "bz-no-kernel": bzimage(payload=b""),
        "bz-too-short": bzimage()[:0x300],
        "bz-old-protocol": bzimage(version=0x0201),
        "bz-zimage": bzimage(loadflags=0),
        "bz-bad-alignment": bzimage(relocatable=1, kernel_alignment=0x3000),
    }


def make(directory: str, payload: str) -> None:
    """All the files below directory (made afresh)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    os.chmod(directory, 0o755)  # others (setpriv --reuid=65534) must reach the files
    with open(payload, "rb") as f:
        good = f.read()
    files = {"empty": b"", "text": b"#!/bin/sh\necho not an image\n", "good": good,
             **elf_files(Elf(good)), **bzimage_files()}
    for name, data in files.items():
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
    unreadable = os.path.join(directory, "unreadable")
    shutil.copyfile(payload, unreadable)
    os.chmod(unreadable, 0)
    os.mkdir(os.path.join(directory, "dir"))
    os.mkfifo(os.path.join(directory, "fifo"))
    os.symlink("loop-b", os.path.join(directory, "loop-a"))
    os.symlink("loop-a", os.path.join(directory, "loop-b"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    make(sys.argv[1], sys.argv[2])
