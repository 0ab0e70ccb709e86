"""The machine's physical memory map, read from sysfs or /proc/iomem.

Readers take a root directory so tests can feed them trees recorded on real
machines (tests/data/memmaps/).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kexec_py.errors import MemoryMapError
from kexec_py.ranges import PAGE_SIZE, Range, merge

SYSTEM_RAM = "System RAM"


@dataclass(frozen=True)
class MemoryRegion:
    range: Range
    type: str


@dataclass(frozen=True)
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
_ADDRESS_SPACE = 1 << 64
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,16})")
_IOMEM_LINE = re.compile(r"([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) : (.*)")
_MEMTOTAL = re.compile(r"MemTotal:\s+([0-9]{1,20}) kB")


def _unreadable(what: str) -> MemoryMapError:
    return MemoryMapError(f"cannot read the memory map: {what}")


def _read_text(path: str) -> str:
    """The file's text; MemoryMapError when it cannot be read or is not ASCII."""
    try:
        with open(path, "rb") as f:
            data = f.read()
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
    text = _read_text(path)
    match = _HEX.fullmatch(text.strip())
    if not match:
        raise _unreadable(f"{path}: {text.strip()[:40]!r} is not a 64-bit hexadecimal address")
    return int(match.group(1), 16)


def read_iomem(root: str = "/") -> list[MemoryRegion]:
    """Top-level entries of /proc/iomem."""
    path = os.path.join(root, "proc/iomem")
    regions = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line or line[0].isspace():
            continue  # nested entries describe parts of a top-level one
        match = _IOMEM_LINE.fullmatch(line)
        if not match:
            raise _unreadable(f"{path} line {number}: {line[:60]!r} is not START-END : NAME (64-bit hex)")
        start, end = int(match.group(1), 16), int(match.group(2), 16)
        regions.append(_region(f"{path} line {number}", start, end, match.group(3).strip()))
    if regions and all(r.range.start == 0 and r.range.size == 1 for r in regions):
        raise MemoryMapError(f"{path} hides its addresses from non-root users; run as root")
    return regions


def read_total_ram(root: str = "/") -> int:
    path = os.path.join(root, "proc/meminfo")
    for line in _read_text(path).splitlines():
        if line.startswith("MemTotal:"):
            match = _MEMTOTAL.fullmatch(line.rstrip())
            if not match:
                raise _unreadable(f"{path}: {line[:60]!r} is not MemTotal: N kB")
            return int(match.group(1)) * 1024
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
