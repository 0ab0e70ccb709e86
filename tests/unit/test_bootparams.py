"""The boot protocol as data (kexec_py.bootparams): offsets against bootparam.h,
the zero page, e820 tables and the SETUP_E820_EXT node."""

import struct

import pytest

from kexec_py import bootparams as bp
from kexec_py.errors import ImageError
from kexec_py.bootparams import E820Entry, build_zero_page, e820_ext_node, e820_from_memory_map, restrict_ram
from kexec_py.memmap import MemoryMap, MemoryRegion
from kexec_py.ranges import Range

# --- offsets, as arch/x86/include/uapi/asm/bootparam.h and Documentation/x86/boot.rst say -----

HEADER_OFFSETS = [
    ("setup_sects", 0x1F1), ("root_flags", 0x1F2), ("syssize", 0x1F4), ("ram_size", 0x1F8),
    ("vid_mode", 0x1FA), ("root_dev", 0x1FC), ("boot_flag", 0x1FE), ("jump", 0x200),
    ("header", 0x202), ("version", 0x206), ("realmode_swtch", 0x208), ("start_sys_seg", 0x20C),
    ("kernel_version", 0x20E), ("type_of_loader", 0x210), ("loadflags", 0x211),
    ("setup_move_size", 0x212), ("code32_start", 0x214), ("ramdisk_image", 0x218),
    ("ramdisk_size", 0x21C), ("bootsect_kludge", 0x220), ("heap_end_ptr", 0x224),
    ("ext_loader_ver", 0x226), ("ext_loader_type", 0x227), ("cmd_line_ptr", 0x228),
    ("initrd_addr_max", 0x22C), ("kernel_alignment", 0x230), ("relocatable_kernel", 0x234),
    ("min_alignment", 0x235), ("xloadflags", 0x236), ("cmdline_size", 0x238),
    ("hardware_subarch", 0x23C), ("hardware_subarch_data", 0x240), ("payload_offset", 0x248),
    ("payload_length", 0x24C), ("setup_data", 0x250), ("pref_address", 0x258), ("init_size", 0x260),
    ("handover_offset", 0x264), ("kernel_info_offset", 0x268),
]


@pytest.mark.parametrize("name, offset", HEADER_OFFSETS, ids=[n for n, _ in HEADER_OFFSETS])
def test_setup_header_offsets(name, offset):
    assert bp.header_offset(name) == offset


@pytest.mark.parametrize(
    "constant, offset",
    [
        (bp.EXT_MEM_K, 0x002), (bp.ALT_MEM_K, 0x1E0), (bp.E820_ENTRIES, 0x1E8), (bp.SENTINEL, 0x1EF),
        (bp.HDR, 0x1F1), (bp.TYPE_OF_LOADER, 0x210), (bp.LOADFLAGS, 0x211), (bp.CODE32_START, 0x214),
        (bp.RAMDISK_IMAGE, 0x218), (bp.RAMDISK_SIZE, 0x21C), (bp.HEAP_END_PTR, 0x224),
        (bp.CMD_LINE_PTR, 0x228), (bp.SETUP_DATA, 0x250), (bp.E820_TABLE, 0x2D0),
    ],
)
def test_boot_params_offsets(constant, offset):
    assert constant == offset


def test_sizes():
    assert bp.SETUP_HEADER.size == 0x26C - 0x1F1  # struct setup_header, packed
    assert bp.E820_ENTRY.size == 20  # struct boot_e820_entry, packed
    assert bp.SETUP_DATA_HEADER.size == 16  # struct setup_data without data[]
    assert bp.E820_TABLE + bp.E820_MAX_ENTRIES_ZEROPAGE * bp.E820_ENTRY.size == 0xCD0  # then _pad8
    assert bp.ZERO_PAGE_SIZE == 4096


# --- the zero page -----------------------------------------------------------------------------

E820 = [E820Entry(0, 0x9FC00, 1), E820Entry(0x9FC00, 0x400, 2), E820Entry(0x100000, 0x1FEE0000, 1)]


def zero_page(**overrides):
    header = bp.synthetic_header()
    args = dict(kernel_start=0x1000000, cmd_line_ptr=0x11000, initrd=Range(0x1E000000, 0x1E123456),
                e820=E820, setup_data=0)
    args.update(overrides)
    return bytes(build_zero_page(header, **args))


def u8(page, offset):
    return page[offset]


def u16(page, offset):
    return struct.unpack_from("<H", page, offset)[0]


def u32(page, offset):
    return struct.unpack_from("<I", page, offset)[0]


def u64(page, offset):
    return struct.unpack_from("<Q", page, offset)[0]


@pytest.mark.parametrize(
    "read, offset, value",
    [
        (u8, 0x210, 0xFF),  # type_of_loader: undefined
        (u8, 0x211, 0x01),  # loadflags: LOADED_HIGH only (no CAN_USE_HEAP, no real-mode setup ran)
        (u32, 0x214, 0x1000000),  # code32_start: where the kernel is
        (u32, 0x218, 0x1E000000),  # ramdisk_image
        (u32, 0x21C, 0x123456),  # ramdisk_size: the file's bytes, not page-rounded
        (u32, 0x228, 0x11000),  # cmd_line_ptr
        (u64, 0x250, 0),  # setup_data
        (u8, 0x1E8, 3),  # e820_entries
        (u16, 0x002, 0xFC00),  # screen_info.ext_mem_k: capped at 64 MiB
        (u32, 0x1E0, 0x1FEE0000 >> 10),  # alt_mem_k: KiB above 1 MiB
        (u8, 0x1EF, 0),  # sentinel: a clean boot_params
        (u16, 0x1FE, 0xAA55),  # the header copied in
        (u32, 0x202, 0x53726448),  # "HdrS"
        (u8, 0x00F, 0),  # screen_info.orig_video_isVGA: no console claimed
        (u8, 0x00E, 0),  # orig_video_lines
    ],
)
def test_zero_page_fields(read, offset, value):
    assert read(zero_page(), offset) == value


def test_zero_page_e820_table():
    page = zero_page()
    table = [struct.unpack_from("<QQI", page, 0x2D0 + 20 * i) for i in range(3)]
    assert table == [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0x100000, 0x1FEE0000, 1)]
    assert page[0x2D0 + 60 : 0xCD0] == bytes(0xCD0 - 0x2D0 - 60)


def test_zero_page_without_initrd():
    page = zero_page(initrd=None)
    assert (u32(page, 0x218), u32(page, 0x21C)) == (0, 0)


def test_zero_page_copies_only_the_setup_header():
    """Everything outside the header and the fields a loader owns stays zero, even
    when the image's bytes around the header are not."""
    raw = bytearray(0x290 - 0x1F1)
    struct.pack_into("<H", raw, 0x1FE - 0x1F1, 0xAA55)
    raw[0x201 - 0x1F1] = 0x3A  # a protocol 2.06 header: it ends at 0x23c, after cmdline_size
    raw[0x202 - 0x1F1 : 0x206 - 0x1F1] = b"HdrS"
    struct.pack_into("<H", raw, 0x206 - 0x1F1, 0x0206)
    raw[0x211 - 0x1F1] = 0x81
    struct.pack_into("<I", raw, 0x238 - 0x1F1, 2047)
    raw[0x23C - 0x1F1 :] = b"\xee" * (0x290 - 0x23C)  # past the header: must not be copied
    image = bytes(0x1F1) + bytes(raw) + bytes(1024 - 0x290) + b"\x90" * 512 * 4
    header = bp.SetupHeader.parse(image)
    assert header.raw == bytes(raw[: 0x23C - 0x1F1])
    page = bytes(build_zero_page(header, kernel_start=0x100000, cmd_line_ptr=0x11000, initrd=None, e820=[]))
    assert b"\xee" not in page
    assert page[:0x1E0] == bytes(0x1E0)


def test_synthetic_header():
    header = bp.synthetic_header(cmdline_size=2047)
    raw = header.raw
    assert len(raw) == 0x26C - 0x1F1
    assert struct.unpack_from("<H", raw, 0x1FE - 0x1F1)[0] == 0xAA55
    assert raw[0x200 - 0x1F1 : 0x202 - 0x1F1] == bytes([0xEB, 0x26C - 0x202])
    assert raw[0x202 - 0x1F1 : 0x206 - 0x1F1] == b"HdrS"
    assert (header.version, header.max_cmdline, header.initrd_end_max) == (0x0209, 2047, 0x38000000)
    assert bp.SetupHeader.parse(bytes(0x1F1) + raw + bytes(1024 - 0x26C) + b"\x90" * 2048).version == 0x0209


# --- e820 --------------------------------------------------------------------------------------

def memory(*regions):
    return MemoryMap(tuple(MemoryRegion(Range(s, e), t) for s, e, t in regions), 1 << 29, "test")


@pytest.mark.parametrize(
    "regions, entries",
    [
        # sysfs memmap names, every type the kernel writes
        ([(0, 0x9FC00, "System RAM"), (0x9FC00, 0xA0000, "Reserved"), (0xF0000, 0x100000, "Reserved"),
          (0x100000, 0x1FFE0000, "System RAM"), (0x1FFE0000, 0x20000000, "ACPI Tables"),
          (0x20000000, 0x20010000, "ACPI Non-volatile Storage"), (0x30000000, 0x30001000, "Unusable memory"),
          (0x40000000, 0x50000000, "Persistent Memory"), (0x50000000, 0x60000000, "Persistent Memory (legacy)"),
          (0x60000000, 0x70000000, "Soft Reserved")],
         [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0x100000, 0x1FEE0000, 1),
          (0x1FFE0000, 0x20000, 3), (0x20000000, 0x10000, 4), (0x30000000, 0x1000, 5),
          (0x40000000, 0x10000000, 7), (0x50000000, 0x10000000, 12), (0x60000000, 0x10000000, 0xEFFFFFFF)]),
        # /proc/iomem spellings: lower-case "reserved"; PCI windows, ROMs and APICs are no memory
        ([(0, 0x1000, "reserved"), (0x1000, 0x9FC00, "System RAM"), (0xC0000, 0xC8000, "Video ROM"),
          (0xFEC00000, 0xFEC01000, "IOAPIC 0"), (0xE0000000, 0xF0000000, "PCI Bus 0000:00")],
         [(0, 0x1000, 2), (0x1000, 0x9EC00, 1)]),
        # unsorted input, and touching entries of one type joined
        ([(0x100000, 0x200000, "System RAM"), (0, 0x9F000, "System RAM"), (0x200000, 0x300000, "System RAM")],
         [(0, 0x9F000, 1), (0x100000, 0x200000, 1)]),
    ],
    ids=["sysfs", "iomem", "join"],
)
def test_e820_from_memory_map(regions, entries):
    assert [(e.addr, e.size, e.type) for e in e820_from_memory_map(memory(*regions))] == entries


QEMU_E820 = [E820Entry(0, 0x9FC00, 1), E820Entry(0x9FC00, 0x400, 2), E820Entry(0xF0000, 0x10000, 2),
             E820Entry(0x100000, 0x1FEE0000, 1), E820Entry(0x1FFE0000, 0x20000, 2),
             E820Entry(0xFFFC0000, 0x40000, 2)]


@pytest.mark.parametrize(
    "usable, entries",
    [
        # the default preserve-context window of a 512 MiB guest: RAM below 0x5500000
        ([Range(0x1000, 0x9F000), Range(0x100000, 0x5500000)],
         [(0, 0x1000, 2), (0x1000, 0x9E000, 1), (0x9F000, 0x1000, 2), (0xF0000, 0x10000, 2),
          (0x100000, 0x5400000, 1), (0x5500000, 0x1AB00000, 2), (0xFFFC0000, 0x40000, 2)]),
        # a window in the middle of RAM: both sides reserved, the low RAM too if not in it
        ([Range(0x2000000, 0x3000000)],
         [(0, 0xA0000, 2), (0xF0000, 0x1F10000, 2), (0x2000000, 0x1000000, 1),
          (0x3000000, 0x1D000000, 2), (0xFFFC0000, 0x40000, 2)]),
        # everything usable: the map unchanged
        ([Range(0, 0x100000000)], [(e.addr, e.size, e.type) for e in QEMU_E820]),
    ],
)
def test_restrict_ram(usable, entries):
    restricted = restrict_ram(QEMU_E820, usable)
    assert [(e.addr, e.size, e.type) for e in restricted] == entries
    # no byte changes type except RAM -> reserved
    assert sum(e.size for e in restricted) == sum(e.size for e in QEMU_E820)


@pytest.mark.parametrize(
    "entries, kib",
    [
        (QEMU_E820, 0x1FEE0000 >> 10),
        ([E820Entry(0, 0x9F000, 1)], 0),  # nothing above 1 MiB
        ([E820Entry(0x100000, 0x100000, 2), E820Entry(0x200000, 0x100000, 1)], 0),  # not contiguous from 1 MiB
        ([E820Entry(0, 0x300000, 1)], 0x200000 >> 10),  # one entry across 1 MiB
    ],
)
def test_extended_memory_k(entries, kib):
    assert bp.extended_memory_k(entries) == kib


def test_e820_ext_node():
    entries = [E820Entry(0x100000000 + i * 0x2000, 0x1000, 1 + i % 2) for i in range(3)]
    node = e820_ext_node(entries, next_node=0x12345678)
    assert struct.unpack_from("<QII", node) == (0x12345678, 1, 60)  # next, SETUP_E820_EXT, len
    assert [struct.unpack_from("<QQI", node, 16 + 20 * i) for i in range(3)] == [
        (e.addr, e.size, e.type) for e in entries
    ]
    assert len(node) == 16 + 60


def test_zero_page_holds_the_first_128_entries():
    entries = [E820Entry(i * 0x10000, 0x8000, 1) for i in range(130)]
    page = zero_page(e820=entries, setup_data=0x13000)
    assert page[0x1E8] == 128
    assert struct.unpack_from("<QQI", page, 0x2D0 + 127 * 20) == (127 * 0x10000, 0x8000, 1)
    assert u64(page, 0x250) == 0x13000


# --- the running kernel's zero page ------------------------------------------------------------

RUNNING = bytes((i * 37 + 11) & 0xFF or 1 for i in range(4096))  # no zero byte: every copy shows


@pytest.mark.parametrize(
    "offset, size, carried",
    [
        (0x000, 2, True),  # screen_info (orig_x, orig_y)
        (0x004, 0x3C, True),  # the rest of screen_info, past ext_mem_k
        (0x040, 0x14, True),  # apm_bios_info
        (0x060, 0x10, True),  # ist_info
        (0x070, 8, True),  # acpi_rsdp_addr
        (0x140, 0x80, True),  # edid_info
        (0x1E9, 2, True),  # eddbuf_entries, edd_mbr_sig_buf_entries
        (0x290, 0x40, True),  # edd_mbr_sig_buffer
        (0xD00, 0x1EC, True),  # eddbuf
        (0x058, 8, False),  # tboot_addr
        (0x0C0, 0x10, False),  # ext_ramdisk_image, ext_ramdisk_size, ext_cmd_line_ptr: the loader's
        (0x1C0, 0x20, False),  # efi_info: no EFI memory map or runtime mappings come with it
        (0x1EF, 1, False),  # sentinel
        (0xEEC, 0x1000 - 0xEEC, False),  # after eddbuf
    ],
)
def test_zero_page_carries_over_what_firmware_found(offset, size, carried):
    page = zero_page(running=RUNNING)
    expected = RUNNING[offset : offset + size] if carried else bytes(size)
    assert page[offset : offset + size] == expected


def test_zero_page_over_the_running_one_keeps_the_loaders_fields():
    """Header, e820, ext_mem_k, initrd and command line are this load's, whatever the running page says."""
    fields = [(0x002, 2), (0x1E0, 4), (0x1E8, 1), (0x1F1, 0x290 - 0x1F1), (0x2D0, 3 * 20)]
    over, fresh = zero_page(running=RUNNING), zero_page()
    assert [over[o : o + n] for o, n in fields] == [fresh[o : o + n] for o, n in fields]


@pytest.mark.parametrize(
    "content, result",
    [(None, None), (RUNNING, RUNNING), (RUNNING[:100], r"100 bytes, not a zero page \(4096\)$"),
     (RUNNING + b"x", r"4097 bytes, not a zero page \(4096\)$")],
    ids=["absent", "a page", "short", "long"],
)
def test_read_running_boot_params(tmp_path, content, result):
    if content is not None:
        path = tmp_path / "sys" / "kernel" / "boot_params" / "data"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    if isinstance(result, str):
        with pytest.raises(ImageError, match=result):
            bp.read_running_boot_params(str(tmp_path))
    else:
        assert bp.read_running_boot_params(str(tmp_path)) == result
