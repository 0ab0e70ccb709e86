"""The machine's physical memory map, read from sysfs or /proc/iomem.

Readers take a root directory so tests can feed them trees recorded on real
machines (tests/data/memmaps/).
"""

from __future__ import annotations

import os

from kexec_py.errors import MemoryMapError
from kexec_py.machine_files import read_bytes
from kexec_py.ranges import PAGE_SIZE, Range, merge
from kexec_py.value import frozen

SYSTEM_RAM = "System RAM"


@frozen
class MemoryRegion:
    range: Range
    type: str


@frozen
class MemoryMap:
    regions: tuple[MemoryRegion, ...]
    total_ram: int  # bytes the kernel manages (MemTotal): the base of its half-of-RAM rule
    source: str  # where the map was read from, for messages

    def ram(self) -> list[Range]:
        """Page-aligned System RAM a kexec segment may use.

        Page 0 is left out: it holds the real-mode interrupt vectors and BIOS data
        that physical-mode code calling the BIOS depends on.
        """
        usable = []
        for region in self.regions:
            if region.type != SYSTEM_RAM:
                continue
            aligned = region.range.page_aligned_inside()
            if aligned and aligned.end > PAGE_SIZE:
                usable.append(Range(max(aligned.start, PAGE_SIZE), aligned.end))
        return merge(usable)


# Physical addresses are 64-bit (the e820 table packs them as u64): at most 16 hex
# digits, with 0x in sysfs, without in /proc/iomem; a region's size must fit 64 bits too.
# Parsed with str methods, not re: compiling a pattern is a payload load's cost too.
_ADDRESS_SPACE = 1 << 64
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DECIMAL_DIGITS = frozenset("0123456789")


def _hex64(text: str) -> int | None:
    """1 to 16 hex digits (no sign, no 0x, no underscores) as a number, else None."""
    if 0 < len(text) <= 16 and _HEX_DIGITS.issuperset(text):
        return int(text, 16)
    return None


def _unreadable(what: str) -> MemoryMapError:
    return MemoryMapError(f"cannot read the memory map: {what}")


def _read_text(path: str) -> str:
    """The file's text; MemoryMapError when it cannot be read or is not ASCII."""
    try:
        data = read_bytes(path)
    except OSError as e:
        raise _unreadable(str(e)) from None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as e:
        raise _unreadable(f"{path}: byte {e.start} is not ASCII ({data[e.start]:#04x})") from None


def _region(where: str, start: int, end: int, kind: str) -> MemoryRegion:
    """[start, end] (inclusive, as both files give it) as a region."""
    if end < start:
        raise _unreadable(f"{where}: end {end:#x} is below start {start:#x}")
    if end - start >= _ADDRESS_SPACE - 1:
        raise _unreadable(f"{where}: {start:#x}-{end:#x} is the whole 64-bit address space, not a region")
    return MemoryRegion(Range(start, end + 1), kind)


def read_sysfs_memmap(root: str = "/") -> list[MemoryRegion]:
    """Entries of /sys/firmware/memmap (the firmware's map, before the kernel trims it)."""
    base = os.path.join(root, "sys/firmware/memmap")
    try:
        names = os.listdir(base)
    except OSError as e:
        raise _unreadable(str(e)) from None
    regions = []
    for entry in sorted(names, key=lambda name: int(name) if name.isdigit() else -1):
        directory = os.path.join(base, entry)
        start, end = (_sysfs_address(os.path.join(directory, name)) for name in ("start", "end"))
        kind = _read_text(os.path.join(directory, "type")).strip()
        regions.append(_region(directory, start, end, kind))
    return regions


def _sysfs_address(path: str) -> int:
    text = _read_text(path).strip()
    address = _hex64(text[2:] if text[:2] in ("0x", "0X") else text)
    if address is None:
        raise _unreadable(f"{path}: {text[:40]!r} is not a 64-bit hexadecimal address")
    return address


def read_iomem(root: str = "/") -> list[MemoryRegion]:
    """Top-level entries of /proc/iomem."""
    path = os.path.join(root, "proc/iomem")
    regions = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line or line[0].isspace():
            continue  # nested entries describe parts of a top-level one
        span, separator, name = line.partition(" : ")
        first, _, last = span.partition("-")
        start, end = _hex64(first), _hex64(last)
        if not separator or start is None or end is None:
            raise _unreadable(f"{path} line {number}: {line[:60]!r} is not START-END : NAME (64-bit hex)")
        regions.append(_region(f"{path} line {number}", start, end, name.strip()))
    if regions and all(r.range.start == 0 and r.range.size == 1 for r in regions):
        raise MemoryMapError(f"{path} hides its addresses from non-root users; run as root")
    return regions


def read_total_ram(root: str = "/") -> int:
    path = os.path.join(root, "proc/meminfo")
    for line in _read_text(path).splitlines():
        if line.startswith("MemTotal:"):
            value = line.rstrip()[len("MemTotal:"):]
            digits = value.lstrip()[:-len(" kB")]
            if (value == value.lstrip() or not value.endswith(" kB")
                    or not 0 < len(digits) <= 20 or not _DECIMAL_DIGITS.issuperset(digits)):
                raise _unreadable(f"{path}: {line[:60]!r} is not MemTotal: N kB")
            return int(digits) * 1024
    raise MemoryMapError(f"{path} has no MemTotal line")


def read_memory_map(root: str = "/") -> MemoryMap:
    """The firmware map from sysfs when the kernel exports it, else /proc/iomem."""
    sysfs = os.path.join(root, "sys/firmware/memmap")
    try:
        present = os.path.isdir(sysfs) and bool(os.listdir(sysfs))  # present but empty: use iomem
    except OSError as e:
        raise _unreadable(str(e)) from None
    if present:
        regions, source = read_sysfs_memmap(root), sysfs
    else:
        regions, source = read_iomem(root), os.path.join(root, "proc/iomem")
    total = read_total_ram(root)
    if not any(r.type == SYSTEM_RAM for r in regions):
        raise MemoryMapError(f"no System RAM in {source}")
    return MemoryMap(tuple(regions), total, source)
