"""The Linux/x86 boot protocol as data: the setup header a kernel image carries,
the e820 table, and the zero page (struct boot_params) a loader hands over.

Offsets and layouts follow arch/x86/include/uapi/asm/bootparam.h and
Documentation/x86/boot.rst; nothing here reads the machine but
read_running_boot_params(), the running kernel's own zero page.
"""

from __future__ import annotations

import struct

from kexec_py.errors import ImageError
from kexec_py.memmap import MemoryMap
from kexec_py.ranges import Range
from kexec_py.value import field, fields, frozen, replace

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Any, Iterable, Sequence

ZERO_PAGE_SIZE = 0x1000
SECTOR = 512
HDRS_MAGIC = b"HdrS"
BOOT_FLAG = 0xAA55
MIN_PROTOCOL = 0x0206  # 2.06: the first with cmdline_size; older ones are refused

# struct boot_params offsets (bootparam.h, screen_info.h).
EXT_MEM_K = 0x002  # screen_info.ext_mem_k (u16)
ALT_MEM_K = 0x1E0  # u32
E820_ENTRIES = 0x1E8  # u8
SENTINEL = 0x1EF  # must be 0: "the loader gave a clean boot_params"
HDR = 0x1F1  # struct setup_header (SetupHeader)
HDR_LIMIT = 0x290  # edd_mbr_sig_buffer: the header copy must stop before it
E820_TABLE = 0x2D0
E820_MAX_ENTRIES_ZEROPAGE = 128
BOOT_PARAMS_FILE = "sys/kernel/boot_params/data"  # below the machine root

# What firmware and the first boot loader found, which no kexec load can find again:
# the next kernel's zero page starts with these from the running kernel's (as
# kexec-tools and u-root do), so it finds the console, ACPI and the disks on real
# machines. (name, offset, size) in struct boot_params. efi_info is not carried: without
# the EFI memory map and runtime mappings (SETUP_EFI) it would make the kernel use EFI
# runtime services it cannot reach; the kernel finds ACPI through acpi_rsdp_addr.
CARRIED_OVER = (
    ("screen_info", 0x000, 0x40),
    ("apm_bios_info", 0x040, 0x14),
    ("ist_info", 0x060, 0x10),
    ("acpi_rsdp_addr", 0x070, 8),
    ("edid_info", 0x140, 0x80),
    ("eddbuf_entries", 0x1E9, 1),
    ("edd_mbr_sig_buf_entries", 0x1EA, 1),
    ("edd_mbr_sig_buffer", 0x290, 0x40),  # u32[EDD_MBR_SIG_MAX]
    ("eddbuf", 0xD00, 0x1EC),  # struct edd_info[EDDMAXNR]
)

# loadflags
LOADED_HIGH = 1 << 0
CAN_USE_HEAP = 1 << 7

TYPE_OF_LOADER_UNDEFINED = 0xFF  # boot.rst: "otherwise, enter 0xFF here"
SETUP_E820_EXT = 1
# kexec-py's own setup_data type, outside the kernel's SETUP_* numbers (the kernel skips
# types it does not know, keeps them reserved and lists them in
# /sys/kernel/boot_params/setup_data): purgatory's copy of the caller kernel's re-entry
# page, struct purgatory_jump_back_page (csrc/purgatory/purgatory.h): address, bytes.
SETUP_JUMP_BACK_PAGE = 0x4B4A4250  # "PBJK"
JUMP_BACK_PAGE = struct.Struct("<Q4096s")
SETUP_DATA_HEADER = struct.Struct("<QII")  # struct setup_data: next, type, len
E820_ENTRY = struct.Struct("<QQI")  # struct boot_e820_entry, packed: 20 bytes

# E820 types (arch/x86/include/asm/e820/types.h)
E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_NVS = 4
E820_UNUSABLE = 5
E820_PMEM = 7
E820_PRAM = 12
E820_SOFT_RESERVED = 0xEFFFFFFF

# Region names as /sys/firmware/memmap/*/type and /proc/iomem spell them
# (the kernel's e820_type_to_string); anything else (PCI windows, ROMs, APICs
# in /proc/iomem) is not memory and stays out of the table, as in kexec-tools.
E820_TYPE_BY_NAME = {
    "system ram": E820_RAM,
    "reserved": E820_RESERVED,
    "acpi tables": E820_ACPI,
    "acpi non-volatile storage": E820_NVS,
    "unusable memory": E820_UNUSABLE,
    "persistent memory": E820_PMEM,
    "persistent memory (legacy)": E820_PRAM,
    "soft reserved": E820_SOFT_RESERVED,
}

def _field(fmt: str) -> Any:
    """A setup_header field: its struct format; the order of the fields is the layout."""
    return field(metadata={"fmt": fmt})


def is_bzimage(data: memoryview | bytes) -> bool:
    """The boot sector's 0xAA55 and the setup header's "HdrS" (boot.rst): a bzImage, whose
    version and loadflags SetupHeader.parse checks."""
    return (len(data) >= 2 * SECTOR and struct.unpack_from("<H", data, 0x1FE)[0] == BOOT_FLAG
            and bytes(data[0x202:0x206]) == HDRS_MAGIC)


@frozen
class SetupHeader:
    """struct setup_header as the image carries it. Fields a protocol version
    does not define hold whatever bytes are there: read them through the
    properties below, which apply the version rules of boot.rst."""

    setup_sects: int = _field("B")  # 0x1f1
    root_flags: int = _field("H")  # 0x1f2
    syssize: int = _field("I")  # 0x1f4
    ram_size: int = _field("H")  # 0x1f8
    vid_mode: int = _field("H")  # 0x1fa
    root_dev: int = _field("H")  # 0x1fc
    boot_flag: int = _field("H")  # 0x1fe
    jump: int = _field("H")  # 0x200
    header: bytes = _field("4s")  # 0x202
    version: int = _field("H")  # 0x206
    realmode_swtch: int = _field("I")  # 0x208
    start_sys_seg: int = _field("H")  # 0x20c
    kernel_version: int = _field("H")  # 0x20e
    type_of_loader: int = _field("B")  # 0x210
    loadflags: int = _field("B")  # 0x211
    setup_move_size: int = _field("H")  # 0x212
    code32_start: int = _field("I")  # 0x214
    ramdisk_image: int = _field("I")  # 0x218
    ramdisk_size: int = _field("I")  # 0x21c
    bootsect_kludge: int = _field("I")  # 0x220
    heap_end_ptr: int = _field("H")  # 0x224
    ext_loader_ver: int = _field("B")  # 0x226
    ext_loader_type: int = _field("B")  # 0x227
    cmd_line_ptr: int = _field("I")  # 0x228
    initrd_addr_max: int = _field("I")  # 0x22c
    kernel_alignment: int = _field("I")  # 0x230
    relocatable_kernel: int = _field("B")  # 0x234
    min_alignment: int = _field("B")  # 0x235
    xloadflags: int = _field("H")  # 0x236
    cmdline_size: int = _field("I")  # 0x238
    hardware_subarch: int = _field("I")  # 0x23c
    hardware_subarch_data: int = _field("Q")  # 0x240
    payload_offset: int = _field("I")  # 0x248
    payload_length: int = _field("I")  # 0x24c
    setup_data: int = _field("Q")  # 0x250
    pref_address: int = _field("Q")  # 0x258
    init_size: int = _field("I")  # 0x260
    handover_offset: int = _field("I")  # 0x264
    kernel_info_offset: int = _field("I")  # 0x268
    raw: bytes = field(default=b"", repr=False, compare=False)  # what a loader copies to 0x1f1

    @classmethod
    def parse(cls, data: memoryview | bytes, path: str = "image") -> SetupHeader:
        """The header of a bzImage, validated; ImageError says what is wrong."""
        if len(data) < 2 * SECTOR:
            raise ImageError(f"{path}: not a bzImage (only {len(data)} bytes, a setup header needs {2 * SECTOR})")
        if not is_bzimage(data):
            raise ImageError(f"{path}: not a bzImage (no 0xAA55 boot flag at 0x1fe and \"HdrS\" at 0x202)")
        values = SETUP_HEADER.unpack_from(bytes(data[HDR : HDR + SETUP_HEADER.size]))
        # The jump at 0x200 doubles as the header's length: it ends at 0x202 + data[0x201].
        end = min(0x202 + data[0x201], HDR_LIMIT)
        fields_by_name: dict[str, Any] = dict(zip((name for name, _ in _HEADER_FIELDS), values))
        header = cls(**fields_by_name, raw=bytes(data[HDR:end]))
        header.validate(path, len(data))
        return header

    def validate(self, path: str, file_size: int) -> None:
        if self.version < MIN_PROTOCOL:
            raise ImageError(
                f"{path}: boot protocol {self.protocol_text} is too old: kexec-py loads {MIN_PROTOCOL >> 8}."
                f"{MIN_PROTOCOL & 0xFF:02d} and later (Linux 2.6.22+)"
            )
        if not self.loadflags & LOADED_HIGH:
            raise ImageError(f"{path}: a zImage (LOADED_HIGH clear): only bzImage kernels load high")
        if file_size <= self.setup_size:
            raise ImageError(
                f"{path}: truncated bzImage: {file_size:#x} bytes, the setup alone takes {self.setup_size:#x}"
            )
        if self.relocatable and (self.kernel_alignment & (self.kernel_alignment - 1) or not self.kernel_alignment):
            raise ImageError(f"{path}: kernel_alignment {self.kernel_alignment:#x} is not a power of two")

    @property
    def protocol_text(self) -> str:
        return f"{self.version >> 8}.{self.version & 0xFF:02d}"

    @property
    def setup_size(self) -> int:
        """Bytes of boot sector + real-mode setup before the protected-mode kernel."""
        return ((self.setup_sects or 4) + 1) * SECTOR

    @property
    def relocatable(self) -> bool:
        return self.version >= 0x0205 and bool(self.relocatable_kernel)

    @property
    def preferred_address(self) -> int:
        """Where the protected-mode kernel wants to be (pref_address, 2.10+),
        else the traditional bzImage address."""
        if self.version >= 0x020A and self.pref_address:
            return self.pref_address
        return 0x100000

    @property
    def max_cmdline(self) -> int:
        """Longest command line the kernel takes, without its NUL."""
        return self.cmdline_size if self.version >= 0x0206 else 255

    @property
    def initrd_end_max(self) -> int:
        """First byte the initrd must not reach (initrd_addr_max is inclusive)."""
        return (self.initrd_addr_max if self.version >= 0x0203 else 0x37FFFFFF) + 1

    def memory_footprint(self, payload_size: int) -> int:
        """Bytes the kernel needs from its runtime start before it reads the
        memory map (init_size, 2.10+); older kernels get a generous guess."""
        if self.version >= 0x020A and self.init_size:
            return max(self.init_size, payload_size)
        return 4 * payload_size

    def pack(self) -> bytes:
        """The header bytes from 0x1f1 (for synthetic headers; parse() keeps raw)."""
        return SETUP_HEADER.pack(*(getattr(self, name) for name, _ in _HEADER_FIELDS))


# The layout, from SetupHeader's fields in order: (name, struct format), the struct,
# and each field's offset in the image and in boot_params.
_HEADER_FIELDS = tuple((f.name, f.metadata["fmt"]) for f in fields(SetupHeader) if "fmt" in f.metadata)
SETUP_HEADER = struct.Struct("<" + "".join(fmt for _, fmt in _HEADER_FIELDS))
assert HDR + SETUP_HEADER.size == 0x26C


def header_offset(name: str) -> int:
    """Offset of a setup_header field inside the image and inside boot_params."""
    offset = HDR
    for field_name, fmt in _HEADER_FIELDS:
        if field_name == name:
            return offset
        offset += struct.calcsize("<" + fmt)
    raise KeyError(name)


# What a loader fills in (boot.rst: "write").
TYPE_OF_LOADER = header_offset("type_of_loader")
LOADFLAGS = header_offset("loadflags")
CODE32_START = header_offset("code32_start")
RAMDISK_IMAGE = header_offset("ramdisk_image")
RAMDISK_SIZE = header_offset("ramdisk_size")
HEAP_END_PTR = header_offset("heap_end_ptr")
CMD_LINE_PTR = header_offset("cmd_line_ptr")
SETUP_DATA = header_offset("setup_data")


def synthetic_header(*, cmdline_size: int = 2047, initrd_addr_max: int = 0x37FFFFFF) -> SetupHeader:
    """A header for kernels that carry none (an ELF vmlinux, --args-linux): the
    values kexec-tools assumes (protocol 2.09 so setup_data is honoured)."""
    zero: dict[str, Any] = {name: 0 for name, _ in _HEADER_FIELDS}
    zero.update(
        boot_flag=BOOT_FLAG,
        jump=0x00EB | ((0x26C - 0x202) << 8),
        header=HDRS_MAGIC,
        version=0x0209,
        loadflags=LOADED_HIGH,
        initrd_addr_max=initrd_addr_max,
        cmdline_size=cmdline_size,
    )
    header = SetupHeader(**zero)
    return replace(header, raw=header.pack())


# --- e820 --------------------------------------------------------------------


@frozen(order=True)
class E820Entry:
    addr: int
    size: int
    type: int

    @property
    def range(self) -> Range:
        return Range.sized(self.addr, self.size)

    def pack(self) -> bytes:
        return E820_ENTRY.pack(self.addr, self.size, self.type)


def e820_type(name: str) -> int | None:
    return E820_TYPE_BY_NAME.get(name.strip().lower())


def e820_from_memory_map(memory: MemoryMap) -> list[E820Entry]:
    """The machine's map as the next kernel should see it, sorted and with
    touching entries of one type joined."""
    entries = []
    for region in memory.regions:
        kind = e820_type(region.type)
        if kind is not None and region.range:
            entries.append(E820Entry(region.range.start, region.range.size, kind))
    return _normalise(entries)


def restrict_ram(entries: Iterable[E820Entry], usable: Sequence[Range]) -> list[E820Entry]:
    """entries with every RAM byte outside usable turned into reserved: the
    next kernel then allocates only from usable (a preserve-context window)."""
    result = []
    for e in entries:
        if e.type != E820_RAM:
            result.append(e)
            continue
        rest = [e.range]
        for u in usable:
            inside = e.range.intersect(u)
            if inside:
                result.append(E820Entry(inside.start, inside.size, E820_RAM))
                rest = [piece for r in rest for piece in r.minus(inside)]
        result.extend(E820Entry(r.start, r.size, E820_RESERVED) for r in rest)
    return _normalise(result)


def _normalise(entries: Iterable[E820Entry]) -> list[E820Entry]:
    joined: list[E820Entry] = []
    for e in sorted(entries):
        if not e.size:
            continue
        last = joined[-1] if joined else None
        if last and last.type == e.type and last.addr + last.size == e.addr:
            joined[-1] = E820Entry(last.addr, last.size + e.size, e.type)
        else:
            joined.append(e)
    return joined


def extended_memory_k(entries: Iterable[E820Entry]) -> int:
    """KiB of RAM contiguous from 1 MiB (what BIOS e801/88h would report); the
    kernel uses it only when the e820 table is unusable."""
    for e in entries:
        if e.type == E820_RAM and e.addr <= 0x100000 < e.addr + e.size:
            return (e.addr + e.size - 0x100000) >> 10
    return 0


def setup_data_node(kind: int, payload: bytes, next_node: int = 0) -> bytes:
    """struct setup_data: next, type, len, then the payload."""
    return SETUP_DATA_HEADER.pack(next_node, kind, len(payload)) + payload


def e820_ext_node(entries: Sequence[E820Entry], next_node: int = 0) -> bytes:
    """A SETUP_E820_EXT setup_data node carrying entries past the zero page's 128."""
    return setup_data_node(SETUP_E820_EXT, b"".join(e.pack() for e in entries), next_node)


# --- the zero page ------------------------------------------------------------


def read_running_boot_params(root: str = "/") -> bytes | None:
    """The running kernel's zero page as it was booted with (x86 sysfs), None where there
    is none (another arch, a recorded machine tree); ImageError if it is not one."""
    import os

    from kexec_py.machine_files import read_bytes

    path = os.path.join(root, BOOT_PARAMS_FILE)
    try:
        data = read_bytes(path, ZERO_PAGE_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror}") from None
    if len(data) != ZERO_PAGE_SIZE:
        raise ImageError(f"{path}: {len(data)} bytes, not a zero page ({ZERO_PAGE_SIZE})")
    return data


def build_zero_page(
    header: SetupHeader,
    *,
    kernel_start: int,
    cmd_line_ptr: int,
    initrd: Range | None,
    e820: Sequence[E820Entry],
    setup_data: int = 0,
    running: bytes | None = None,
) -> bytearray:
    """struct boot_params for the 32-bit and 64-bit boot protocols: zeroed, the
    CARRIED_OVER fields of the running kernel's zero page copied in (when given),
    the image's setup header, then what the loader owns filled in. At most 128
    e820 entries fit; the caller chains the rest with setup_data."""
    page = bytearray(ZERO_PAGE_SIZE)
    if running is not None:
        for _, offset, size in CARRIED_OVER:
            page[offset : offset + size] = running[offset : offset + size]
    raw = header.raw or header.pack()
    page[HDR : HDR + len(raw)] = raw
    page[TYPE_OF_LOADER] = TYPE_OF_LOADER_UNDEFINED
    # No real-mode setup runs (32-bit entry), so there is no heap to offer.
    page[LOADFLAGS] = header.loadflags & LOADED_HIGH
    struct.pack_into("<H", page, HEAP_END_PTR, 0)
    struct.pack_into("<I", page, CODE32_START, kernel_start)
    struct.pack_into("<I", page, RAMDISK_IMAGE, initrd.start if initrd else 0)
    struct.pack_into("<I", page, RAMDISK_SIZE, initrd.size if initrd else 0)
    struct.pack_into("<I", page, CMD_LINE_PTR, cmd_line_ptr)
    struct.pack_into("<Q", page, SETUP_DATA, setup_data)
    first = e820[:E820_MAX_ENTRIES_ZEROPAGE]
    page[E820_ENTRIES] = len(first)
    for i, e in enumerate(first):
        E820_ENTRY.pack_into(page, E820_TABLE + i * E820_ENTRY.size, e.addr, e.size, e.type)
    mem_k = extended_memory_k(e820)
    struct.pack_into("<H", page, EXT_MEM_K, min(mem_k, 0xFC00))
    struct.pack_into("<I", page, ALT_MEM_K, min(mem_k, 0xFFFFFFFF))
    return page
