"""Reading the machine's memory map: sysfs memmap, /proc/iomem, /proc/meminfo,
on trees built here and on trees recorded from real machines."""

import os

import pytest

from unit_support import HOST_TREE, recorded_tree, write_tree
from kexec_py.errors import MemoryMapError
from kexec_py.memmap import (
    MemoryMap,
    MemoryRegion,
    read_iomem,
    read_memory_map,
    read_sysfs_memmap,
    read_total_ram,
)
from kexec_py.ranges import Range

RAM, RESERVED = "System RAM", "Reserved"

# A QEMU-like firmware map (-m 512): inclusive ends, as sysfs prints them.
QEMU_LIKE_SYSFS = [
    (0x0, 0x9FBFF, RAM),
    (0x9FC00, 0x9FFFF, RESERVED),
    (0xF0000, 0xFFFFF, RESERVED),
    (0x100000, 0x1FFDFFFF, RAM),
    (0x1FFE0000, 0x1FFFFFFF, RESERVED),
    (0xFFFC0000, 0xFFFFFFFF, RESERVED),
]
QEMU_LIKE_REGIONS = [
    MemoryRegion(Range(0x0, 0x9FC00), RAM),
    MemoryRegion(Range(0x9FC00, 0xA0000), RESERVED),
    MemoryRegion(Range(0xF0000, 0x100000), RESERVED),
    MemoryRegion(Range(0x100000, 0x1FFE0000), RAM),
    MemoryRegion(Range(0x1FFE0000, 0x20000000), RESERVED),
    MemoryRegion(Range(0xFFFC0000, 0x100000000), RESERVED),
]

# The same machine as root reads /proc/iomem: nested lines are parts of a top-level one.
QEMU_LIKE_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-1ffdffff : System RAM
  01000000-01a0ffff : Kernel code
  01a10000-01c3ffff : Kernel data
1ffe0000-1fffffff : Reserved
fec00000-fec003ff : IOAPIC 0
fffc0000-ffffffff : Reserved
"""
QEMU_LIKE_IOMEM_REGIONS = [
    MemoryRegion(Range(0x0, 0x1000), RESERVED),
    MemoryRegion(Range(0x1000, 0x9FC00), RAM),
    MemoryRegion(Range(0x9FC00, 0xA0000), RESERVED),
    MemoryRegion(Range(0xA0000, 0xC0000), "PCI Bus 0000:00"),
    MemoryRegion(Range(0xF0000, 0x100000), RESERVED),
    MemoryRegion(Range(0x100000, 0x1FFE0000), RAM),
    MemoryRegion(Range(0x1FFE0000, 0x20000000), RESERVED),
    MemoryRegion(Range(0xFEC00000, 0xFEC00400), "IOAPIC 0"),
    MemoryRegion(Range(0xFFFC0000, 0x100000000), RESERVED),
]
# What a non-root user reads: every address zeroed.
HIDDEN_IOMEM = """\
00000000-00000000 : Reserved
00000000-00000000 : System RAM
00000000-00000000 : Reserved
00000000-00000000 : System RAM
  00000000-00000000 : Kernel code
"""
QEMU_LIKE_RAM = [Range(0x1000, 0x9F000), Range(0x100000, 0x1FFE0000)]


# --- the readers -------------------------------------------------------------------------------

def test_read_sysfs_memmap_exact(tmp_path):
    root = write_tree(tmp_path, sysfs=QEMU_LIKE_SYSFS)
    assert read_sysfs_memmap(root) == QEMU_LIKE_REGIONS


def test_read_sysfs_memmap_orders_entries_numerically(tmp_path):
    entries = [(n * 0x100000, n * 0x100000 + 0xFFFFF, RAM if n % 2 else RESERVED) for n in range(12)]
    root = write_tree(tmp_path, sysfs=entries)
    starts = [r.range.start for r in read_sysfs_memmap(root)]
    assert starts == [n * 0x100000 for n in range(12)]  # 10 and 11 after 9, not after 1


def test_read_iomem_keeps_top_level_entries_only(tmp_path):
    root = write_tree(tmp_path, iomem=QEMU_LIKE_IOMEM)
    assert read_iomem(root) == QEMU_LIKE_IOMEM_REGIONS


def test_read_iomem_with_hidden_addresses_says_run_as_root(tmp_path):
    root = write_tree(tmp_path, iomem=HIDDEN_IOMEM)
    with pytest.raises(MemoryMapError, match=r"proc/iomem hides its addresses from non-root users; run as root"):
        read_iomem(root)


@pytest.mark.parametrize("kb, total", [(515992, 515992 * 1024), (24684084, 24684084 * 1024), (0, 0)])
def test_read_total_ram_is_memtotal_in_bytes(tmp_path, kb, total):
    assert read_total_ram(write_tree(tmp_path, meminfo_kb=kb)) == total


def test_read_total_ram_without_memtotal(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemFree:  1024 kB\n")
    with pytest.raises(MemoryMapError, match="proc/meminfo has no MemTotal line"):
        read_total_ram(str(tmp_path))


# --- read_memory_map: the source it picks and how it fails ------------------------------------

def test_sysfs_is_preferred_over_iomem(tmp_path):
    # iomem disagrees on purpose: the map must come from sysfs
    root = write_tree(tmp_path, sysfs=QEMU_LIKE_SYSFS, iomem="00000000-0fffffff : System RAM\n",
                      meminfo_kb=515992)
    memory = read_memory_map(root)
    assert memory.source == os.path.join(root, "sys/firmware/memmap")
    assert list(memory.regions) == QEMU_LIKE_REGIONS
    assert memory.total_ram == 515992 * 1024


def test_iomem_when_there_is_no_sysfs_memmap(tmp_path):
    root = write_tree(tmp_path, iomem=QEMU_LIKE_IOMEM, meminfo_kb=515992)
    memory = read_memory_map(root)
    assert memory.source == os.path.join(root, "proc/iomem")
    assert list(memory.regions) == QEMU_LIKE_IOMEM_REGIONS
    assert memory.ram() == QEMU_LIKE_RAM


def test_iomem_when_the_sysfs_memmap_is_empty(tmp_path):
    root = write_tree(tmp_path, iomem=QEMU_LIKE_IOMEM, meminfo_kb=515992)
    os.makedirs(os.path.join(root, "sys/firmware/memmap"))
    memory = read_memory_map(root)
    assert memory.source == os.path.join(root, "proc/iomem")
    assert memory.ram() == QEMU_LIKE_RAM


def test_both_sources_give_the_same_usable_ram(tmp_path):
    sysfs = read_memory_map(write_tree(tmp_path / "a", sysfs=QEMU_LIKE_SYSFS, meminfo_kb=1))
    iomem = read_memory_map(write_tree(tmp_path / "b", iomem=QEMU_LIKE_IOMEM, meminfo_kb=1))
    assert sysfs.ram() == iomem.ram() == QEMU_LIKE_RAM


@pytest.mark.parametrize(
    "tree, message",
    [
        (dict(iomem=HIDDEN_IOMEM, meminfo_kb=515992), "hides its addresses from non-root users; run as root"),
        (dict(), r"cannot read the memory map: .*No such file or directory: .*proc/iomem"),
        (dict(sysfs=QEMU_LIKE_SYSFS), r"cannot read the memory map: .*proc/meminfo"),
        (dict(iomem="00000000-0009ffff : Reserved\n", meminfo_kb=1), r"no System RAM in .*proc/iomem"),
        (dict(sysfs=[(0, 0xFFFF, RESERVED)], meminfo_kb=1), r"no System RAM in .*sys/firmware/memmap"),
        (dict(iomem="000zz000-00ffffff : System RAM\n", meminfo_kb=1),
         r"cannot read the memory map: .*proc/iomem line 1: '000zz000-00ffffff : System RAM' is not START-END : NAME"),
    ],
    ids=["iomem-hidden", "nothing", "no-meminfo", "iomem-no-ram", "sysfs-no-ram", "iomem-garbage"],
)
def test_read_memory_map_errors(tmp_path, tree, message):
    root = write_tree(tmp_path, **tree)
    with pytest.raises(MemoryMapError, match=message):
        read_memory_map(root)


def test_read_memory_map_on_unparsable_sysfs_entry(tmp_path):
    root = write_tree(tmp_path, sysfs=QEMU_LIKE_SYSFS, meminfo_kb=1)
    (tmp_path / "sys/firmware/memmap/3/end").write_text("end of RAM\n")
    with pytest.raises(MemoryMapError, match=r"cannot read the memory map: .*/sys/firmware/memmap/3/end:"
                                             r" 'end of RAM' is not a 64-bit hexadecimal address$"):
        read_memory_map(root)


# --- MemoryMap.ram(): what a segment may use ----------------------------------------------------

def memory_map(*regions):
    return MemoryMap(tuple(MemoryRegion(Range(s, e), kind) for s, e, kind in regions), 1 << 30, "test")


@pytest.mark.parametrize(
    "regions, ram",
    [
        # page 0 (real-mode IVT and BIOS data) is never offered; the end rounds down
        ([(0x0, 0x9FC00, RAM)], [Range(0x1000, 0x9F000)]),
        # unaligned RAM shrinks inward to whole pages
        ([(0x100800, 0x200800, RAM)], [Range(0x101000, 0x200000)]),
        # adjacent RAM entries become one range
        ([(0x100000, 0x200000, RAM), (0x200000, 0x300000, RAM)], [Range(0x100000, 0x300000)]),
        # ... and so do entries that meet only after page rounding
        ([(0x100000, 0x200800, RAM), (0x200800, 0x300000, RAM)], [Range(0x100000, 0x200000), Range(0x201000, 0x300000)]),
        # everything that is not System RAM is left out
        ([(0x0, 0x1000, RESERVED), (0x1000, 0x9FC00, RAM), (0x9FC00, 0x100000, RESERVED),
          (0x100000, 0x1FFE0000, RAM), (0x1FFE0000, 0x20000000, "ACPI Tables")], QEMU_LIKE_RAM),
        # RAM too small for one whole page, or only page 0
        ([(0x0, 0x1000, RAM), (0x2100, 0x2F00, RAM)], []),
        # an entry starting inside page 0 keeps what lies above it
        ([(0x400, 0x5000, RAM)], [Range(0x1000, 0x5000)]),
    ],
    ids=["page0", "unaligned", "adjacent", "gap-after-rounding", "types", "too-small", "page0-partial"],
)
def test_ram(regions, ram):
    assert memory_map(*regions).ram() == ram


# --- recorded machines -------------------------------------------------------------------------

HOST_RAM = [Range(0x1000, 0x9F000), Range(0x100000, 0xC0000000), Range(0x100000000, 0x640000000)]


def test_recorded_host_sysfs_memmap():
    assert read_sysfs_memmap(HOST_TREE) == [
        MemoryRegion(Range(0x0, 0x9FC00), RAM),
        MemoryRegion(Range(0x9FC00, 0x100000), RESERVED),
        MemoryRegion(Range(0x100000, 0xC0000000), RAM),
        MemoryRegion(Range(0xEEC00000, 0xFEC00000), RESERVED),
        MemoryRegion(Range(0x100000000, 0x640000000), RAM),
    ]


def test_recorded_host_memory_map():
    memory = read_memory_map(HOST_TREE)
    assert memory.source == os.path.join(HOST_TREE, "sys/firmware/memmap")
    assert memory.total_ram == 24684084 * 1024
    assert memory.ram() == HOST_RAM


def test_recorded_host_iomem_agrees_with_sysfs():
    regions = read_iomem(HOST_TREE)
    assert [r for r in regions if r.type == RAM] == [
        MemoryRegion(Range(0x1000, 0x9FC00), RAM),  # the kernel reserves page 0 in iomem
        MemoryRegion(Range(0x100000, 0xC0000000), RAM),
        MemoryRegion(Range(0x100000000, 0x640000000), RAM),
    ]
    assert len(regions) == 9  # top-level lines only (the file has 27)
    assert MemoryMap(tuple(regions), 0, "iomem").ram() == HOST_RAM


# QEMU's SeaBIOS e820 for the guests, recorded by qemu-harness (vmharness.memmaps):
# RAM 0x0-0x9fbff and 0x100000-(top - 128 KiB). MemTotal depends on the guest kernel's build.
# The x86_64 guest (-cpu qemu64, an AMD CPU model) also gets QEMU's reservation of the
# HyperTransport hole below 1 TiB.
HT_HOLE = MemoryRegion(Range(0xFD00000000, 0x10000000000), RESERVED)
QEMU_TREES = {
    "qemu-i386-512M": (0x1FFE0000, 515088, []),
    "qemu-i386-128M": (0x07FE0000, 125232, []),
    "qemu-x86_64-512M": (0x1FFE0000, 505836, [HT_HOLE]),
}


@pytest.mark.parametrize("name", QEMU_TREES)
def test_recorded_qemu_memory_map(name):
    ram_top, memtotal_kb, above_4g = QEMU_TREES[name]
    root = recorded_tree(name)
    memory = read_memory_map(root)
    assert memory.source == os.path.join(root, "sys/firmware/memmap")
    assert list(memory.regions) == [
        MemoryRegion(Range(0x0, 0x9FC00), RAM),
        MemoryRegion(Range(0x9FC00, 0xA0000), RESERVED),
        MemoryRegion(Range(0xF0000, 0x100000), RESERVED),
        MemoryRegion(Range(0x100000, ram_top), RAM),
        MemoryRegion(Range(ram_top, ram_top + 0x20000), RESERVED),
        MemoryRegion(Range(0xFFFC0000, 0x100000000), RESERVED),  # the BIOS below 4 GiB
        *above_4g,
    ]
    assert memory.total_ram == memtotal_kb * 1024
    assert memory.ram() == [Range(0x1000, 0x9F000), Range(0x100000, ram_top)]


@pytest.mark.parametrize("name", QEMU_TREES)
def test_recorded_qemu_iomem_agrees_with_sysfs(name):
    ram_top, _, _ = QEMU_TREES[name]
    regions = read_iomem(recorded_tree(name))
    assert [r for r in regions if r.type == RAM] == [
        MemoryRegion(Range(0x1000, 0x9FC00), RAM),
        MemoryRegion(Range(0x100000, ram_top), RAM),
    ]
    assert MemoryMap(tuple(regions), 0, "iomem").ram() == [Range(0x1000, 0x9F000), Range(0x100000, ram_top)]


# --- damaged files: one MemoryMapError from each reader (found by tests/unit/test_fuzz.py) ---------

SYSFS_ENTRY = [(0x0, 0x9FBFF, RAM), (0x100000, 0x1FFDFFFF, RAM)]


@pytest.mark.parametrize("file, text, message", [
    ("0/start", "", r"memmap/0/start: '' is not a 64-bit hexadecimal address$"),
    ("1/end", "end of RAM\n", r"memmap/1/end: 'end of RAM' is not a 64-bit hexadecimal address$"),
    ("1/end", "-0x1\n", r"memmap/1/end: '-0x1' is not a 64-bit hexadecimal address$"),
    ("1/start", "0x10000000000000000\n", r"'0x10000000000000000' is not a 64-bit hexadecimal address$"),
    ("1/end", "0xfffff\n", r"memmap/1: end 0xfffff is below start 0x100000$"),
    ("0/end", "0xffffffffffffffff\n", r"memmap/0: 0x0-0xffffffffffffffff is the whole 64-bit address space"),
    ("1/type", "System\xa0RAM\n", r"memmap/1/type: byte 6 is not ASCII \(0xc2\)$"),
], ids=["empty", "words", "negative", "past-64-bit", "end-below-start", "whole-space", "not-ascii"])
def test_damaged_sysfs_entry(tmp_path, file, text, message):
    root = write_tree(tmp_path, sysfs=SYSFS_ENTRY, meminfo_kb=1)
    (tmp_path / "sys/firmware/memmap" / file).write_text(text, encoding="utf-8")
    for read in (read_sysfs_memmap, read_memory_map):
        with pytest.raises(MemoryMapError, match=r"^cannot read the memory map: .*" + message):
            read(root)


def test_sysfs_entry_missing_a_file(tmp_path):
    root = write_tree(tmp_path, sysfs=SYSFS_ENTRY, meminfo_kb=1)
    os.remove(tmp_path / "sys/firmware/memmap/1/type")
    with pytest.raises(MemoryMapError, match=r"^cannot read the memory map: \[Errno 2\] No such file or directory:"
                                             r" '.*memmap/1/type'$"):
        read_sysfs_memmap(root)


@pytest.mark.parametrize("iomem, message", [
    ("00000000-0009ffff : Reserved\n0009zc00-0009ffff : Reserved\n",
     r"iomem line 2: '0009zc00-0009ffff : Reserved' is not START-END : NAME \(64-bit hex\)$"),
    ("00100000-1ffdffff System RAM\n", r"iomem line 1: '00100000-1ffdffff System RAM' is not START-END : NAME"),
    ("00100000 : System RAM\n", r"iomem line 1: '00100000 : System RAM' is not START-END : NAME"),
    ("00100000-000fffff : System RAM\n", r"iomem line 1: end 0xfffff is below start 0x100000$"),
    ("00100000-10000000000000000 : System RAM\n", r"iomem line 1: .* is not START-END : NAME \(64-bit hex\)$"),
    ("0000000000000000-ffffffffffffffff : System RAM\n", r"iomem line 1: 0x0-0xffffffffffffffff is the whole 64-bit"),
    ("00100000-1ffdffff : System R\xc3M\n", r"iomem: byte 28 is not ASCII \(0xc3\)$"),
], ids=["not-hex", "no-colon", "no-end", "end-below-start", "past-64-bit", "whole-space", "not-ascii"])
def test_damaged_iomem(tmp_path, iomem, message):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/iomem").write_bytes(iomem.encode("latin-1"))
    with pytest.raises(MemoryMapError, match=r"^cannot read the memory map: .*proc/" + message):
        read_iomem(str(tmp_path))


def test_iomem_missing(tmp_path):
    with pytest.raises(MemoryMapError, match=r"^cannot read the memory map: \[Errno 2\] No such file or directory"):
        read_iomem(str(tmp_path))


@pytest.mark.parametrize("meminfo, message", [
    ("MemTotal:\nMemFree: 1 kB\n", r"proc/meminfo: 'MemTotal:' is not MemTotal: N kB$"),
    ("MemTotal:    12x4 kB\n", r"proc/meminfo: 'MemTotal:    12x4 kB' is not MemTotal: N kB$"),
    ("MemTotal:    1234 MB\n", r"proc/meminfo: 'MemTotal:    1234 MB' is not MemTotal: N kB$"),
    ("MemTotal:    " + "9" * 5000 + " kB\n", r"proc/meminfo: 'MemTotal:    9{47}' is not MemTotal: N kB$"),
    ("MemTotal: \xff kB\n", r"proc/meminfo: byte 10 is not ASCII \(0xff\)$"),
], ids=["no-number", "not-a-number", "not-kb", "too-many-digits", "not-ascii"])
def test_damaged_meminfo(tmp_path, meminfo, message):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_bytes(meminfo.encode("latin-1"))
    with pytest.raises(MemoryMapError, match=r"^cannot read the memory map: .*" + message):
        read_total_ram(str(tmp_path))


def test_every_region_read_packs_into_the_zero_page(tmp_path):
    """The largest region a reader accepts still fits an e820 entry (u64 address and size)."""
    from kexec_py.bootparams import e820_from_memory_map

    root = write_tree(tmp_path, iomem="0000000000001000-ffffffffffffffff : System RAM\n", meminfo_kb=1)
    assert [e.pack() for e in e820_from_memory_map(read_memory_map(root))]
