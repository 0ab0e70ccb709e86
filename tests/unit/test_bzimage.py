"""bzImage and elf-x86 --args-linux: Linux kernels booted through purgatory.

Images are crafted here (a boot sector + setup sectors carrying a setup header
at the offsets boot.rst gives, then a payload blob); purgatory is the real one,
built from csrc/purgatory with the system gcc.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

from kexec_py.errors import ImageError, PlanError, UsageError
from kexec_py.arch import I386, X86_64
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest, Target, choose_loader
from kexec_py.loaders.bzimage import loader as bzimage_loader
from kexec_py.loaders.elf_x86 import loader as elf_loader
from kexec_py.memmap import MemoryMap, MemoryRegion
from kexec_py.planner import make_plan
from kexec_py.purgatory import SHIPPED_SUFFIX, entry_regs, sha256_params, shipped_form
from kexec_py.ranges import Range
from kexec_py.bootparams import SetupHeader
from kexec_py.value import replace
from unit_support import FakeKernel, write_tree

MiB = 1 << 20
PAYLOAD = bytes(range(256)) * 48  # 0x3000 bytes of "protected-mode kernel"

# --- machines ----------------------------------------------------------------------------------

# QEMU -m 512 (SeaBIOS) as /sys/firmware/memmap shows it; MemTotal as an i386 guest reports it.
QEMU_512 = [
    (0x0, 0x9FBFF, "System RAM"), (0x9FC00, 0x9FFFF, "Reserved"), (0xF0000, 0xFFFFF, "Reserved"),
    (0x100000, 0x1FFDFFFF, "System RAM"), (0x1FFE0000, 0x1FFFFFFF, "Reserved"),
    (0xFFFC0000, 0xFFFFFFFF, "Reserved"),
]
QEMU_512_MEMTOTAL_KB = 503612
QEMU_2G = [(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x7FFDFFFF, "System RAM")]


def machine(regions=QEMU_512, memtotal_kb=QEMU_512_MEMTOTAL_KB) -> MemoryMap:
    return MemoryMap(
        tuple(MemoryRegion(Range(s, e + 1), t) for s, e, t in regions), memtotal_kb * 1024, "test map"
    )


# --- images --------------------------------------------------------------------------------------

def bzimage_bytes(
    *,
    version=0x020F,
    setup_sects=4,
    loadflags=0x01,
    relocatable=0,
    kernel_alignment=0x200000,
    pref_address=0x1000000,
    init_size=0x400000,
    cmdline_size=2047,
    initrd_addr_max=0x7FFFFFFF,
    xloadflags=0,
    boot_flag=0xAA55,
    magic=b"HdrS",
    payload=PAYLOAD,
) -> bytes:
    """A bzImage-shaped file: boot sector + setup sectors with a setup header, then payload."""
    setup = bytearray(((setup_sects or 4) + 1) * 512)
    setup[0x1F1] = setup_sects
    struct.pack_into("<H", setup, 0x1FE, boot_flag)
    setup[0x200:0x202] = bytes([0xEB, 0x6A])  # jmp: the header ends at 0x26c
    setup[0x202:0x206] = magic
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, 0x100000)  # code32_start
    struct.pack_into("<I", setup, 0x22C, initrd_addr_max)
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = relocatable
    setup[0x235] = 13
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, init_size)
    return bytes(setup) + payload


@pytest.fixture
def bzimage(tmp_path):
    """bzimage(**header fields) -> path of a crafted bzImage."""
    count = [0]

    def make(**fields) -> str:
        count[0] += 1
        path = tmp_path / f"bzImage-{count[0]}"
        path.write_bytes(bzimage_bytes(**fields))
        return str(path)

    return make


@pytest.fixture
def initrd(tmp_path):
    def make(size: int, name="initrd.img") -> str:
        path = tmp_path / name
        with open(path, "wb") as f:
            f.write(b"\x1f\x8b" + bytes(min(size, 4096) - 2))
            f.truncate(size)  # sparse: large initrds cost nothing
        return str(path)

    return make


def load(path, purgatory_ro, memory=None, arch=I386, loader=None, **request):
    request.setdefault("purgatory", purgatory_ro)
    loader = loader or bzimage_loader("bzImage" if arch is I386 else "bzImage64")
    return loader.load(ImageFile.open(path), LoadRequest(**request), Target(arch, memory or machine()))


def by_source(loaded, prefix):
    found = [s for s in loaded.segments if s.source.startswith(prefix)]
    assert len(found) == 1, [s.source for s in loaded.segments]
    return found[0]


def zero_page_of(loaded):
    return bytes(by_source(loaded, "zero page").buf[:4096])


def u32(buf, offset):
    return struct.unpack_from("<I", buf, offset)[0]


# --- the setup header ----------------------------------------------------------------------------

def test_parse_crafted_header():
    header = SetupHeader.parse(bzimage_bytes(relocatable=1))
    assert (header.version, header.protocol_text, header.setup_sects, header.setup_size) == (0x020F, "2.15", 4, 0xA00)
    assert (header.loadflags, header.relocatable, header.kernel_alignment) == (1, True, 0x200000)
    assert (header.preferred_address, header.init_size, header.max_cmdline) == (0x1000000, 0x400000, 2047)
    assert header.initrd_end_max == 0x80000000
    assert header.raw == bzimage_bytes(relocatable=1)[0x1F1:0x26C]
    assert header.memory_footprint(len(PAYLOAD)) == 0x400000


@pytest.mark.parametrize(
    "fields, attribute, value",
    [
        ({"setup_sects": 0}, "setup_size", 5 * 512),  # 0 means 4
        ({"setup_sects": 30}, "setup_size", 31 * 512),
        ({"relocatable": 1, "version": 0x0204}, "relocatable", False),  # relocatable_kernel is 2.05+
        ({"relocatable": 1, "version": 0x0205}, "relocatable", True),
        ({"cmdline_size": 4096, "version": 0x0205}, "max_cmdline", 255),  # cmdline_size is 2.06+
        ({"version": 0x0209}, "preferred_address", 0x100000),  # pref_address is 2.10+
        ({"pref_address": 0}, "preferred_address", 0x100000),
        ({"version": 0x0209}, "memory_footprint", 4 * len(PAYLOAD)),  # no init_size before 2.10
        ({"init_size": 0x1000}, "memory_footprint", len(PAYLOAD)),  # never less than the file
    ],
)
def test_header_version_rules(fields, attribute, value):
    version = fields.get("version", 0x020F)
    header = SetupHeader.parse(bzimage_bytes(**dict(fields, version=max(version, 0x0206))))
    header = replace(header, version=version)  # parse() refuses protocols before 2.06: the rules still hold
    got = getattr(header, attribute)
    assert (got(len(PAYLOAD)) if callable(got) else got) == value


BAD_HEADERS = [
        ("no-HdrS", bzimage_bytes(magic=b"HdrX"), r'not a bzImage \(no 0xAA55 boot flag at 0x1fe and "HdrS" at 0x202\)'),
        ("no-boot-flag", bzimage_bytes(boot_flag=0x55AA), r"not a bzImage"),
        ("elf", b"\x7fELF" + bytes(2000), r"not a bzImage"),
        ("short", bzimage_bytes()[:1000], r"not a bzImage \(only 1000 bytes, a setup header needs 1024\)"),
        ("protocol-2.05", bzimage_bytes(version=0x0205), r"boot protocol 2\.05 is too old: kexec-py loads 2\.06 and later"),
        ("protocol-2.00", bzimage_bytes(version=0x0200), r"boot protocol 2\.00 is too old"),
        ("zImage", bzimage_bytes(loadflags=0), r"a zImage \(LOADED_HIGH clear\)"),
        ("no-payload", bzimage_bytes(payload=b""), r"truncated bzImage: 0xa00 bytes, the setup alone takes 0xa00"),
        ("cut-setup", bzimage_bytes(setup_sects=30)[:0x1000], r"truncated bzImage: 0x1000 bytes, the setup alone takes 0x3e00"),
        ("alignment-3M", bzimage_bytes(relocatable=1, kernel_alignment=0x300000), r"kernel_alignment 0x300000 is not a power of two"),
        ("alignment-0", bzimage_bytes(relocatable=1, kernel_alignment=0), r"kernel_alignment 0x0 is not a power of two"),
]


@pytest.mark.parametrize("data, message", [b[1:] for b in BAD_HEADERS], ids=[b[0] for b in BAD_HEADERS])
def test_bad_header(data, message):
    with pytest.raises(ImageError, match=r"^kernel: " + message):
        SetupHeader.parse(data, "kernel")


REAL_BZIMAGES = sorted(glob.glob(os.path.expanduser("~/.cache/kexec-py/kernel/*/bzImage")))


@pytest.mark.skipif(not REAL_BZIMAGES, reason="no harness-built kernel in ~/.cache/kexec-py/kernel")
def test_parse_a_real_bzimage():
    with open(REAL_BZIMAGES[0], "rb") as f:
        data = f.read()
    header = SetupHeader.parse(data, REAL_BZIMAGES[0])
    assert header.version >= 0x020A and header.loadflags & 1
    assert header.boot_flag == 0xAA55 and header.header == b"HdrS"
    assert header.setup_size < len(data) and header.init_size >= len(data) - header.setup_size
    assert header.cmdline_size >= 255 and header.kernel_alignment & (header.kernel_alignment - 1) == 0
    assert header.raw == data[0x1F1 : 0x202 + data[0x201]]
    assert bzimage_loader("bzImage").probe(memoryview(data))


def test_probe(bzimage, tiny_elf32, tmp_path):
    assert choose_loader(ImageFile.open(bzimage()), None, I386).name == "bzImage"
    assert choose_loader(ImageFile.open(tiny_elf32), None, I386).name == "elf-x86"  # elf-x86 first
    # an old kernel is still recognised, so the load can say why it refuses
    assert choose_loader(ImageFile.open(bzimage(version=0x0201)), None, I386).name == "bzImage"
    other = tmp_path / "other"
    other.write_bytes(bzimage_bytes(magic=b"MZ\0\0"))
    with pytest.raises(ImageError, match=r"cannot determine the file type \(known: elf-x86, bzImage\)"):
        choose_loader(ImageFile.open(str(other)), None, I386)


# --- a plain load: layout ------------------------------------------------------------------------

def test_plain_load_layout(bzimage, purgatory_ro, purgatory):
    path = bzimage()
    loaded = load(path, purgatory_ro, command_line="console=ttyS0")
    purgatory_at = 0x12000
    assert [(s.mem, s.memsz, s.bufsz) for s in loaded.segments] == [
        (0x1000000, 0x3000, 0x3000),  # the protected-mode kernel at pref_address
        (0x10000, 0x2000, 0x1000 + len("console=ttyS0") + 1),  # zero page + command line, low
        (purgatory_at, purgatory.size, by_source(loaded, "purgatory").bufsz),  # purgatory above it
    ]
    kernel = by_source(loaded, path)
    assert bytes(kernel.buf) == PAYLOAD and isinstance(kernel.buf, memoryview)  # sliced from the map
    assert loaded.entry == purgatory.link(purgatory_at, {}).entry
    assert loaded.backup_window is None and loaded.notes == ()
    setup = by_source(loaded, "zero page")
    assert bytes(setup.buf[0x1000:]) == b"console=ttyS0\0"
    page = zero_page_of(loaded)
    assert (u32(page, 0x228), u32(page, 0x214), page[0x210], page[0x211]) == (0x11000, 0x1000000, 0xFF, 0x01)
    assert (u32(page, 0x218), u32(page, 0x21C)) == (0, 0)
    assert page[0x1E8] == 6  # the machine's e820 map, unchanged
    assert struct.unpack_from("<QQI", page, 0x2D0 + 3 * 20) == (0x100000, 0x1FEE0000, 1)


def test_purgatory_parameters(bzimage, initrd, purgatory_ro):
    loaded = load(bzimage(), purgatory_ro, command_line="quiet", initrd=initrd(0x123456))
    blob = bytes(by_source(loaded, "purgatory").buf)
    # esi = zero page, eip = the kernel's 32-bit entry, ebx = edi = ebp = 0 (boot.rst)
    assert entry_regs("I", ip=0x1000000, si=0x10000) in blob
    checked = [s for s in loaded.segments if not s.source.startswith("purgatory")]
    params = sha256_params(checked, skip_checks=False)
    assert params["purgatory_sha256_regions"] in blob
    assert params["purgatory_sha256_digest"] in blob
    digest = hashlib.sha256(b"".join(bytes(s.buf) for s in checked)).digest()
    assert digest == params["purgatory_sha256_digest"]


def test_no_checks(bzimage, purgatory_ro):
    loaded = load(bzimage(), purgatory_ro, no_checks=True)
    blob = bytes(by_source(loaded, "purgatory").buf)
    checked = [s for s in loaded.segments if not s.source.startswith("purgatory")]
    assert sha256_params(checked, skip_checks=False)["purgatory_sha256_digest"] not in blob
    assert bytes(8 * 16 + 32) in blob  # regions and digest all zero: purgatory hashes nothing


def test_plain_load_leaves_cmdline_end_alone(bzimage, purgatory_ro):
    loaded = load(bzimage(), purgatory_ro, command_line="quiet")
    blob = bytes(by_source(loaded, "purgatory").buf)
    assert struct.pack("<I", 0x11000 + len("quiet")) not in blob


# --- where the kernel goes -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "fields, limits, regions, kernel_at",
    [
        ({}, {}, QEMU_512, 0x1000000),  # non-relocatable: pref_address
        ({"relocatable": 1}, {}, QEMU_512, 0x1000000),  # relocatable: pref_address when free
        # relocatable, pref_address outside --mem-min: the next kernel_alignment boundary
        ({"relocatable": 1}, {"mem_min": 0x1100000}, QEMU_512, 0x1200000),
        ({"relocatable": 1, "kernel_alignment": 0x1000000}, {"mem_min": 0x1100000}, QEMU_512, 0x2000000),
        # relocatable, a hole in RAM at pref_address
        ({"relocatable": 1}, {}, [(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x10FFFFF, "System RAM"),
                                  (0x1100000, 0x1FFFFFF, "Reserved"), (0x2000000, 0x1FFDFFFF, "System RAM")],
         0x2000000),
        # before protocol 2.10 there is no pref_address: the traditional 1 MiB
        ({"version": 0x0209}, {}, QEMU_512, 0x100000),
    ],
    ids=["fixed", "reloc-pref", "reloc-mem-min", "reloc-16M-aligned", "reloc-hole", "old-protocol"],
)
def test_kernel_placement(bzimage, purgatory_ro, fields, limits, regions, kernel_at):
    loaded = load(bzimage(**fields), purgatory_ro, memory=machine(regions), **limits)
    assert loaded.segments[0].mem == kernel_at
    assert u32(zero_page_of(loaded), 0x214) == kernel_at
    assert entry_regs("I", ip=kernel_at, si=by_source(loaded, "zero page").mem) in bytes(
        by_source(loaded, "purgatory").buf)


@pytest.mark.parametrize(
    "fields, limits, regions, message",
    [
        ({}, {"mem_min": 0x1100000}, QEMU_512,
         r"the kernel is not relocatable and needs 0x1000000-0x13fffff \(4096 KiB, init_size\), which is not"
         r" all free RAM in 0x1100000-0x1ffdffff$"),
        ({}, {}, [(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x11FFFFF, "System RAM")],
         r"the kernel is not relocatable and needs 0x1000000-0x13fffff"),
        ({"relocatable": 1}, {"mem_max": 0xFFFFFF}, QEMU_512,
         r"no room for the kernel: it needs 4096 KiB \(init_size\) of free RAM at or above 0x1000000,"
         r" 0x200000-aligned in 0x0-0xffffff$"),
    ],
)
def test_kernel_that_cannot_fit(bzimage, purgatory_ro, fields, limits, regions, message):
    path = bzimage(**fields)
    with pytest.raises(ImageError, match=f"^{path}: {message}"):
        load(path, purgatory_ro, memory=machine(regions), **limits)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, r"xloadflags 0x0 lacks 0x1: no 64-bit entry \(startup_64\), which x86_64 kernels enter"),
        ({"version": 0x020B, "xloadflags": 1},
         r"boot protocol 2\.11 has no 64-bit entry \(startup_64\), which x86_64 kernels enter: it needs 2\.12$"),
    ],
    ids=["no-XLF_KERNEL_64", "protocol-2.11"],
)
def test_bzimage64_needs_the_64_bit_entry(bzimage, purgatory64_ro, fields, message):
    path = bzimage(**fields)
    with pytest.raises(ImageError, match=f"^{path}: {message}"):
        load(path, purgatory64_ro, arch=X86_64)


@pytest.mark.parametrize("preserve_context", [False, True])
def test_bzimage64_enters_startup_64_through_the_64_bit_purgatory(bzimage, initrd, purgatory64_ro, preserve_context):
    """Purgatory64 jumps to the kernel + 0x200 with rsi = zero page; the regions and the
    jump-back entry's address are 64-bit words; code32_start still says where the kernel is."""
    loaded = load(bzimage(xloadflags=1), purgatory64_ro, arch=X86_64, command_line="quiet",
                  initrd=initrd(0x3000), preserve_context=preserve_context)
    kernel_at = loaded.segments[0].mem
    zero = by_source(loaded, "zero page")
    assert u32(zero_page_of(loaded), 0x214) == kernel_at
    blob = bytes(by_source(loaded, "purgatory").buf)
    assert entry_regs("Q", ip=kernel_at + 0x200, si=zero.mem) in blob
    checked = [s for s in loaded.segments if not s.source.startswith("purgatory")]
    assert sha256_params(checked, False, "Q")["purgatory_sha256_regions"] in blob
    cmdline_end = struct.pack("<Q", zero.mem + 0x1000 + len("quiet"))
    assert (cmdline_end in blob) == preserve_context


def test_bzimage64_refuses_the_i386_purgatory(bzimage, purgatory_ro):
    with pytest.raises(ImageError, match=r"purgatory\.ro: an ELF32 i386 object, but x86_64 kernels enter ELF64"
                                         r" x86_64 objects \(purgatory64\.ro\)$"):
        load(bzimage(xloadflags=1), purgatory_ro, arch=X86_64)


def test_x86_64_command_line_leaves_room_for_a_64_bit_jump_back_entry(bzimage, purgatory64_ro):
    room = len(" kexec_jump_back_entry=0x") + 16
    path = bzimage(xloadflags=1, cmdline_size=100)
    load(path, purgatory64_ro, arch=X86_64, preserve_context=True, command_line="x" * (100 - room))
    with pytest.raises(ImageError, match=rf"takes at most {100 - room} \(cmdline_size 100 less {room} for"):
        load(path, purgatory64_ro, arch=X86_64, preserve_context=True, command_line="x" * (101 - room))


@pytest.mark.parametrize(
    "request_fields, error, message",
    [
        ({"args_style": "none"}, UsageError, r"^bzImage: --args-none is for ELF images$"),
        ({"args_style": "elf"}, UsageError, r"^bzImage: --args-elf is for ELF images$"),
        ({"entry": 0x1000000}, UsageError, r"^bzImage: --entry does not apply"),
    ],
)
def test_options_that_do_not_apply(bzimage, purgatory_ro, request_fields, error, message):
    with pytest.raises(error, match=message):
        load(bzimage(), purgatory_ro, **request_fields)


# --- the initrd ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "initrd_addr_max, regions, start",
    [
        (0x7FFFFFFF, QEMU_512, 0x1FFE0000 - 0x124000),  # as high as RAM goes
        (0x0FFFFFFF, QEMU_512, 0x10000000 - 0x124000),  # initrd_addr_max is the last byte it may use
        (0x0FFFFFFE, QEMU_512, 0x10000000 - 0x125000),  # ... page-aligned down
        (0x7FFFFFFF, QEMU_2G, 0x38000000 - 0x124000),  # i386 lowmem: below 896 MiB
        (0x37FFFFFF, QEMU_2G, 0x38000000 - 0x124000),
    ],
)
def test_initrd_goes_high(bzimage, initrd, purgatory_ro, initrd_addr_max, regions, start):
    loaded = load(bzimage(initrd_addr_max=initrd_addr_max), purgatory_ro, memory=machine(regions),
                  initrd=initrd(0x123456))
    ramdisk = by_source(loaded, os.path.dirname(loaded.segments[0].source.split()[0]) + "/initrd.img")
    assert (ramdisk.mem, ramdisk.memsz, ramdisk.bufsz) == (start, 0x124000, 0x123456)
    assert isinstance(ramdisk.buf, memoryview)
    page = zero_page_of(loaded)
    assert (u32(page, 0x218), u32(page, 0x21C)) == (start, 0x123456)


def test_initrd_too_large(bzimage, initrd, purgatory_ro):
    big = initrd(20 * MiB)
    with pytest.raises(PlanError, match=rf"^initrd {big} \(20480 KiB\) does not fit in free RAM below 0x2000000"
                                        r" \(initrd_addr_max 0x1ffffff, i386 lowmem 0x38000000\)$"):
        load(bzimage(initrd_addr_max=0x1FFFFFF), purgatory_ro, initrd=big)


def test_initrd_above_initrd_addr_max(bzimage, initrd, purgatory_ro):
    """A window entirely above initrd_addr_max leaves no legal place."""
    with pytest.raises(PlanError, match=r"does not fit in free RAM below 0x2000000 .* in 0x0-0xfffff, 0x2000000-0x3ffffff$"):
        load(bzimage(initrd_addr_max=0x1FFFFFF, relocatable=1), purgatory_ro, initrd=initrd(MiB),
             preserve_context=True, mem_min=0x2000000, mem_max=0x3FFFFFF)


def test_missing_and_empty_initrd(bzimage, purgatory_ro, tmp_path):
    with pytest.raises(ImageError, match=rf"^initrd: cannot open {tmp_path}/nope: No such file or directory$"):
        load(bzimage(), purgatory_ro, initrd=str(tmp_path / "nope"))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ImageError, match=rf"^initrd: {tmp_path}/empty: empty file$"):
        load(bzimage(), purgatory_ro, initrd=str(tmp_path / "empty"))


# --- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cmdline_size, length, preserve, message",
    [
        (16, 16, False, None),
        (16, 17, False, r"the command line is 17 bytes, {path} takes at most 16 \(cmdline_size 16\)$"),
        (2047, 2047, False, None),
        (2047, 2048, False, r"the command line is 2048 bytes, {path} takes at most 2047"),
        # preserve-context: purgatory appends " kexec_jump_back_entry=0x%08x" (33 bytes)
        (2047, 2014, True, None),
        (2047, 2015, True, r"the command line is 2015 bytes, {path} takes at most 2014 \(cmdline_size 2047"
                           r" less 33 for the kexec_jump_back_entry= purgatory appends\)$"),
        (16, 0, True, r"the command line is 0 bytes, {path} takes at most 0"),
    ],
)
def test_command_line_length(bzimage, purgatory_ro, cmdline_size, length, preserve, message):
    path = bzimage(cmdline_size=cmdline_size)
    text = ("x" * length)
    if message is None:
        loaded = load(path, purgatory_ro, command_line=text, preserve_context=preserve)
        setup = by_source(loaded, "zero page")
        assert bytes(setup.buf[0x1000:]) == text.encode() + b"\0"
        if preserve:  # room for what purgatory appends, inside the segment
            assert setup.memsz >= 0x1000 + length + 1 + 33
    else:
        with pytest.raises(ImageError, match="^" + message.format(path=path)):
            load(path, purgatory_ro, command_line=text, preserve_context=preserve)


def test_command_line_with_a_nul(bzimage, purgatory_ro):
    with pytest.raises(ImageError, match="NUL"):
        load(bzimage(), purgatory_ro, command_line="a\0b")


# --- more than 128 e820 entries --------------------------------------------------------------------

def test_e820_beyond_the_zero_page_goes_to_setup_data(bzimage, purgatory_ro):
    regions = list(QEMU_512)
    # 150 reserved islands above 4 GiB: 156 entries in all
    island = 0x100010000
    regions += [(island + i * 0x20000, island + i * 0x20000 + 0xFFFF, "Reserved") for i in range(150)]
    loaded = load(bzimage(), purgatory_ro, memory=machine(regions))
    setup = by_source(loaded, "zero page")
    assert setup.source.endswith("+ 28 e820 entries (SETUP_E820_EXT)")
    page = bytes(setup.buf[:4096])
    assert page[0x1E8] == 128
    node_at = struct.unpack_from("<Q", page, 0x250)[0]
    assert setup.mem < node_at and node_at + 16 + 28 * 20 <= setup.mem + setup.bufsz and node_at % 16 == 0
    node = bytes(setup.buf[node_at - setup.mem :])
    assert struct.unpack_from("<QII", node) == (0, 1, 28 * 20)  # last node, SETUP_E820_EXT
    entries = [struct.unpack_from("<QQI", node, 16 + 20 * i) for i in range(28)]
    assert entries[0] == (island + 122 * 0x20000, 0x10000, 2)
    assert entries[-1] == (island + 149 * 0x20000, 0x10000, 2)


# --- preserve context: the backup window ---------------------------------------------------------

def test_preserve_context_default_window(bzimage, initrd, purgatory_ro, purgatory):
    """512 MiB guest, non-relocatable kernel at 16 MiB with init_size 4 MiB, a 0x123456-byte
    initrd: the window is RAM from 0 to kernel end + initrd + 64 MiB + 4 x initrd, MiB-rounded."""
    loaded = load(bzimage(), purgatory_ro, initrd=initrd(0x123456), command_line="console=ttyS0",
                  preserve_context=True)
    top = 0x5A00000  # align_up(0x1400000 + 0x124000 + 0x4000000 + 4 * 0x124000, 1 MiB)
    assert loaded.backup_window == (Range(0, top),)
    assert loaded.segments[0].mem == 0x1000000
    ramdisk = [s for s in loaded.segments if s.source.endswith(" initrd")][0]
    assert ramdisk.mem == top - 0x124000  # at the top of the window
    page = zero_page_of(loaded)
    e820 = [struct.unpack_from("<QQI", page, 0x2D0 + 20 * i) for i in range(page[0x1E8])]
    assert e820 == [
        (0x0, 0x1000, 2), (0x1000, 0x9E000, 1), (0x9F000, 0x1000, 2), (0xF0000, 0x10000, 2),
        (0x100000, top - 0x100000, 1), (top, 0x20000000 - top, 2), (0xFFFC0000, 0x40000, 2),
    ]
    assert struct.unpack_from("<I", page, 0x1E0)[0] == (top - 0x100000) >> 10  # alt_mem_k of the window
    # purgatory appends at the command line's NUL
    cmdline_end = 0x11000 + len("console=ttyS0")
    assert struct.pack("<I", cmdline_end) in bytes(by_source(loaded, "purgatory").buf)
    assert loaded.notes[0].startswith(
        f"backup window 0x0-{top - 1:#x} (default: kernel end 0x1400000 + initrd 1168 KiB + 68 MiB room;")
    assert "the second kernel's e820 lists only the window's RAM as usable" in loaded.notes[1]

    plan = make_plan(loaded, 0x30002, machine(), loaded.backup_window)
    purgatory_end = 0x12000 + purgatory.size
    backups = [(s.mem, s.mem + s.memsz) for s in plan.segments if s.source.startswith("backup")]
    assert backups == [(0x1000, 0x10000), (purgatory_end, 0x9F000), (0x100000, 0x1000000),
                       (0x1003000, top - 0x124000)]
    # every RAM page of the window is a segment: the second kernel can use nothing else
    assert sum(s.memsz for s in plan.segments) == (0x9F000 - 0x1000) + (top - 0x100000)
    assert plan.notes == loaded.notes


def test_preserve_context_window_shrinks_to_half_of_ram(bzimage, initrd, purgatory_ro):
    """A 60 MiB initrd on the 512 MiB guest: 16 + 4 + 60 + 64 + 240 MiB wanted, half of
    RAM (251806 KiB) allowed."""
    loaded = load(bzimage(), purgatory_ro, initrd=initrd(60 * MiB), preserve_context=True)
    (window,) = loaded.backup_window
    assert window == Range(0, 0xF600000)  # RAM below 246 MiB: 0x9e000 + 245 MiB <= 251806 KiB
    assert "(shrunk to half of RAM)" in loaded.notes[0]
    make_plan(loaded, 0x30002, machine(), loaded.backup_window)  # the kernel's limit holds


def test_preserve_context_no_room(bzimage, initrd, purgatory_ro):
    small = machine([(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x7FDFFFF, "System RAM")], 120000)
    with pytest.raises(PlanError, match=r"^no room for a preserve-context Linux: it needs RAM up to 0x5c00000"
                                        r" \(kernel to 0x1400000, initrd 57344 KiB, 16 MiB to run in\), but the"
                                        r" kernel backs up at most half of RAM \(60000 KiB, RAM up to 0x3afa000\)"):
        load(bzimage(), purgatory_ro, memory=small, initrd=initrd(56 * MiB), preserve_context=True)


def test_preserve_context_user_window(bzimage, initrd, purgatory_ro):
    loaded = load(bzimage(), purgatory_ro, initrd=initrd(MiB), preserve_context=True,
                  mem_min=0x1000000, mem_max=0x2FFFFFF)
    assert loaded.backup_window == (Range(0, 0x100000), Range(0x1000000, 0x3000000))
    assert loaded.notes[0] == ("backup window 0x0-0xfffff, 0x1000000-0x2ffffff (--mem-min/--mem-max,"
                               " plus the RAM below 1 MiB)")
    ramdisk = [s for s in loaded.segments if s.source.endswith(" initrd")][0]
    assert ramdisk.mem == 0x3000000 - MiB
    page = zero_page_of(loaded)
    ram = [struct.unpack_from("<QQI", page, 0x2D0 + 20 * i)[:2] for i in range(page[0x1E8])
           if struct.unpack_from("<QQI", page, 0x2D0 + 20 * i)[2] == 1]
    assert ram == [(0x1000, 0x9E000), (0x1000000, 0x2000000)]
    plan = make_plan(loaded, 0x30002, machine(), loaded.backup_window)
    assert all(any(w.contains(s.range) for w in loaded.backup_window) for s in plan.segments)


def test_preserve_context_user_window_misses_the_kernel(bzimage, purgatory_ro):
    path = bzimage()
    with pytest.raises(ImageError, match=r"not relocatable and needs 0x1000000-0x13fffff .* in 0x0-0xfffff,"
                                         r" 0x2000000-0x2ffffff$"):
        load(path, purgatory_ro, preserve_context=True, mem_min=0x2000000, mem_max=0x2FFFFFF)


# --- elf-x86 --args-linux: a vmlinux -----------------------------------------------------------------

def test_vmlinux_args_linux(tiny_elf32, initrd, purgatory_ro):
    loaded = load(tiny_elf32, purgatory_ro, loader=elf_loader("elf-x86"), args_style="linux",
                  command_line="console=ttyS0", initrd=initrd(0x5000))
    assert [(s.mem, s.memsz) for s in loaded.segments[:2]] == [(0x1000000, 0x1000), (0x1001000, 0x3000)]
    page = zero_page_of(loaded)
    assert page[0x202:0x206] == b"HdrS" and struct.unpack_from("<H", page, 0x206)[0] == 0x0209
    assert u32(page, 0x214) == 0x1000000
    assert (u32(page, 0x218), u32(page, 0x21C)) == (0x1FFE0000 - 0x5000, 0x5000)
    zero = by_source(loaded, "zero page")
    assert entry_regs("I", ip=0x1000000, si=zero.mem) in bytes(by_source(loaded, "purgatory").buf)


def test_vmlinux_on_x86_64_enters_e_entry_with_rsi(tiny_elf64, purgatory64_ro):
    loaded = load(tiny_elf64, purgatory64_ro, loader=elf_loader("elf-x86_64"), arch=X86_64, args_style="linux")
    zero = by_source(loaded, "zero page")
    entry = loaded.segments[0].mem  # tiny's e_entry: its first byte
    assert entry_regs("Q", ip=entry, si=zero.mem) in bytes(by_source(loaded, "purgatory").buf)


def test_vmlinux_preserve_context(tiny_elf32, purgatory_ro):
    loaded = load(tiny_elf32, purgatory_ro, loader=elf_loader("elf-x86"), args_style="linux", preserve_context=True)
    assert loaded.backup_window == (Range(0, 0x5100000),)  # 0x1004000 + 64 MiB, MiB-rounded


@pytest.mark.parametrize(
    "request_fields, arch, error, message",
    [
        ({"entry": 0x1000000}, I386, UsageError, r"^elf-x86 --args-linux: --entry does not apply"),
        ({}, X86_64, ImageError, r"EM_386 image, but x86_64 kernels enter EM_X86_64 images"),
    ],
)
def test_vmlinux_refusals(tiny_elf32, purgatory_ro, request_fields, arch, error, message):
    with pytest.raises(error, match=message):
        load(tiny_elf32, purgatory_ro, loader=elf_loader("elf-x86"), arch=arch, args_style="linux", **request_fields)


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"command_line": "x"}, "--command-line/--append/--reuse-cmdline need a Linux kernel"),
        ({"initrd": "/x"}, "--initrd need a Linux kernel"),
        ({"no_checks": True}, "--no-checks need a Linux kernel"),
    ],
)
def test_args_none_refuses_linux_options(tiny_elf32, purgatory_ro, request_fields, message):
    with pytest.raises(UsageError, match="^elf-x86 --args-none: " + message):
        load(tiny_elf32, purgatory_ro, loader=elf_loader("elf-x86"), args_style="none", **request_fields)


# --- the command line tool -------------------------------------------------------------------------

@pytest.fixture
def machine_root(tmp_path):
    root = write_tree(tmp_path / "machine", sysfs=QEMU_512, meminfo_kb=QEMU_512_MEMTOTAL_KB)
    (tmp_path / "machine" / "proc" / "cmdline").write_text(
        'BOOT_IMAGE=/boot/vmlinuz root=/dev/vda ro console=ttyS0 kexec_jump_back_entry=0x0009f123\n')
    return root


@pytest.fixture
def cli_purgatory(purgatory_ro, monkeypatch):
    monkeypatch.setenv("KEXEC_PY_PURGATORY", purgatory_ro)
    return purgatory_ro


def test_a_linux_load_with_the_shipped_purgatory_imports_no_pyelftools(bzimage, initrd, machine_root, purgatory_ro,
                                                                       purgatory, tmp_path):
    """The .deb ships purgatory's parse beside it (setup.py), so a Linux load links it without
    importing pyelftools (0.5-0.9 s in the i386 guest) or typing, and hashes with the
    interpreter's own SHA-256, not hashlib's OpenSSL (libcrypto: 60 ms there): the plan of
    `kexec -l bzImage --initrd=...` in a fresh interpreter started as bin/kexec starts it (-IS)."""
    installed = str(tmp_path / "purgatory.ro")
    shutil.copy(purgatory_ro, installed)
    with open(installed + SHIPPED_SUFFIX, "wb") as f:
        f.write(shipped_form(purgatory, open(purgatory_ro, "rb").read()))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = ["--dry-run", "--json", "--arch", "i386", "--machine-root", machine_root, "-l", bzimage(),
            "--initrd", initrd(0x123456)]
    code = (f"import sys\nsys.path.insert(0, {repo!r})\nfrom kexec_py.cli import main\ncode = main({argv!r})\n"
            "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'elftools', 'typing', 'hashlib', '_hashlib'}))")
    result = subprocess.run([sys.executable, "-IS", "-c", code], cwd=repo, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, KEXEC_PY_PURGATORY=installed))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout
    plan = json.loads("\n".join(result.stdout.splitlines()[:-1]))
    linked = next(s for s in plan["segments"] if s["source"].startswith("purgatory"))
    assert linked["bufsz"] == purgatory.link(linked["mem"], {}).segment.bufsz


def test_cli_dry_run_json(run_cli, bzimage, initrd, machine_root, cli_purgatory, purgatory):
    path, ramdisk = bzimage(), initrd(0x123456)
    result = run_cli(["--arch", "i386", "--machine-root", machine_root, "--dry-run", "--json", "-l", path,
                      "--append=console=ttyS0", "--initrd", ramdisk])
    assert (result.code, result.err) == (0, "")
    plan = json.loads(result.out)
    purgatory_bufsz = purgatory.link(0x12000, {}).segment.bufsz
    assert plan == {
        "entry": purgatory.link(0x12000, {}).entry,
        "flags": 0x30000,
        "backend": "kernel",  # plain loads always use kexec_load
        "syscall": "kexec_load",  # i386 has no kexec_file_load
        "segments": [
            {"mem": 0x10000, "memsz": 0x2000, "bufsz": 0x100E, "source": "zero page (boot_params) + command line"},
            {"mem": 0x12000, "memsz": purgatory.size, "bufsz": purgatory_bufsz, "source": f"purgatory ({cli_purgatory})"},
            {"mem": 0x1000000, "memsz": 0x3000, "bufsz": 0x3000,
             "source": f"{path} protected-mode kernel (protocol 2.15, not relocatable, init_size 0x400000)"},
            {"mem": 0x1FEBC000, "memsz": 0x124000, "bufsz": 0x123456, "source": f"{ramdisk} initrd"},
        ],
    }


def test_cli_preserve_context_dry_run_text(run_cli, bzimage, machine_root, cli_purgatory):
    path = bzimage()
    result = run_cli(["--arch", "i386", "--machine-root", machine_root, "--dry-run", "--load-preserve-context",
                      "-t", "bzImage", path, "--reuse-cmdline"])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[1] == "flags       = 0x30002 (KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386)"
    assert lines[-2].startswith("note: backup window 0x0-0x53fffff (default: kernel end 0x1400000 + initrd 0 KiB"
                                " + 64 MiB room;")
    assert lines[-1].startswith("note: the second kernel's e820 lists only the window's RAM as usable")
    assert sum(1 for line in lines if line.endswith("backup (zero-filled scratch)")) == 4


def test_cli_reuse_cmdline_reaches_the_zero_page(run_cli, bzimage, machine_root, cli_purgatory):
    kernel = FakeKernel()
    result = run_cli(["--arch", "i386", "--machine-root", machine_root, "-l", bzimage(), "--reuse-cmdline",
                      "--command-line", "quiet"], kernel)
    assert result.code == 0, result.err
    (setup,) = [s for s in kernel.plans[0].segments if s.source.startswith("zero page")]
    assert bytes(setup.buf[0x1000:]) == b"root=/dev/vda ro console=ttyS0 quiet\0"


BAD_LINUX_INPUT = [
    # id, extra argv (IMG, OLD, BIG, NOTBZ: files made for the test), message
    ("not-a-bzimage", ["-t", "bzImage", "NOTBZ"], "{NOTBZ}: not a bzImage"),
    ("protocol-too-old", ["OLD"], "{OLD}: boot protocol 2.05 is too old"),
    ("cannot-fit", ["--mem-min", "0x1100000", "IMG"], "the kernel is not relocatable and needs 0x1000000-0x13fffff"),
    ("initrd-too-large", ["IMG", "--initrd", "BIG"], "does not fit in free RAM"),
    ("command-line-too-long", ["IMG", "--append", "x" * 2048], "the command line is 2048 bytes"),
    ("missing-initrd", ["IMG", "--ramdisk", "/nonexistent/initrd"],
     "initrd: cannot open /nonexistent/initrd: No such file or directory"),
    ("x86_64", ["--arch", "x86_64", "-c", "IMG"], "lacks 0x1: no 64-bit entry (startup_64), which x86_64 kernels enter"),
]


@pytest.mark.parametrize("argv, message", [b[1:] for b in BAD_LINUX_INPUT], ids=[b[0] for b in BAD_LINUX_INPUT])
def test_cli_bad_linux_input(run_cli, bzimage, initrd, machine_root, cli_purgatory, tmp_path, argv, message):
    files = {"IMG": bzimage(), "OLD": bzimage(version=0x0205), "BIG": initrd(600 * MiB),
             "NOTBZ": str(tmp_path / "notbz")}
    (tmp_path / "notbz").write_bytes(bytes(4096))
    argv = [files.get(a, a) for a in argv]
    message = message.format(**files)
    kernel = FakeKernel(loaded=True)
    result = run_cli(["--arch", "i386", "--machine-root", machine_root, "-l", *argv], kernel)
    assert result.code == 255, result.err
    assert result.out == "" and result.err.count("\n") == 1 and result.err.startswith("kexec: ")
    assert message in result.err
    assert kernel.calls == [] and kernel.plans == []


@pytest.mark.parametrize("pieces, node_count", [(10, 1), (140, 2)], ids=["zero-page-e820", "e820-ext-node-too"])
def test_x86_64_preserve_context_makes_room_for_the_re_entry_page(bzimage, purgatory64_ro, pieces, node_count):
    """The setup segment chains a SETUP_JUMP_BACK_PAGE node (after any SETUP_E820_EXT one) and
    purgatory gets its payload's address: it saves the caller's re-entry page there."""
    from kexec_py.bootparams import JUMP_BACK_PAGE, SETUP_DATA_HEADER, SETUP_JUMP_BACK_PAGE

    # pieces of RAM and reserved memory: e820 entries past 128 go into the SETUP_E820_EXT node
    regions = [(0, 0x9FBFF, "System RAM"), (0x100000, 0x7FFFFFF, "System RAM")] + [
        (0x8000000 + i * 0x1000, 0x8000FFF + i * 0x1000, "Reserved" if i % 2 == 0 else "System RAM")
        for i in range(pieces)]
    loaded = load(bzimage(xloadflags=1), purgatory64_ro, memory=machine(regions), arch=X86_64,
                  preserve_context=True, mem_max=0xFFFFFFF)
    setup = by_source(loaded, "zero page")
    buf = bytes(setup.buf)
    node, nodes = struct.unpack_from("<Q", buf, 0x250)[0], []
    while node:
        next_node, kind, length = SETUP_DATA_HEADER.unpack_from(buf, node - setup.mem)
        nodes.append((kind, length))
        payload = node + SETUP_DATA_HEADER.size
        node = next_node
    assert nodes[-1] == (SETUP_JUMP_BACK_PAGE, JUMP_BACK_PAGE.size)
    assert len(nodes) == node_count
    assert buf[payload - setup.mem :] == bytes(JUMP_BACK_PAGE.size)  # purgatory fills it in
    assert struct.pack("<Q", payload) in bytes(by_source(loaded, "purgatory").buf)
