"""The machine's physical memory map, read from sysfs or /proc/iomem.

Readers take a root directory so tests can feed them trees recorded on real
machines (tests/data/memmaps/).
"""

from __future__ import annotations

import os
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


def _read_text(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def read_sysfs_memmap(root: str = "/") -> list[MemoryRegion]:
    """Entries of /sys/firmware/memmap (the firmware's map, before the kernel trims it)."""
    base = os.path.join(root, "sys/firmware/memmap")
    regions = []
    for entry in sorted(os.listdir(base), key=lambda name: int(name) if name.isdigit() else -1):
        directory = os.path.join(base, entry)
        start = int(_read_text(os.path.join(directory, "start")), 16)
        end = int(_read_text(os.path.join(directory, "end")), 16)  # inclusive
        kind = _read_text(os.path.join(directory, "type")).strip()
        regions.append(MemoryRegion(Range(start, end + 1), kind))
    return regions


def read_iomem(root: str = "/") -> list[MemoryRegion]:
    """Top-level entries of /proc/iomem."""
    path = os.path.join(root, "proc/iomem")
    regions = []
    for line in _read_text(path).splitlines():
        if not line or line[0].isspace():
            continue  # nested entries describe parts of a top-level one
        span, _, kind = line.partition(" : ")
        start, _, end = span.partition("-")
        regions.append(MemoryRegion(Range(int(start, 16), int(end, 16) + 1), kind.strip()))
    if regions and all(r.range.start == 0 and r.range.size == 1 for r in regions):
        raise MemoryMapError(f"{path} hides its addresses from non-root users; run as root")
    return regions


def read_total_ram(root: str = "/") -> int:
    path = os.path.join(root, "proc/meminfo")
    for line in _read_text(path).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise MemoryMapError(f"{path} has no MemTotal line")


def read_memory_map(root: str = "/") -> MemoryMap:
    """The firmware map from sysfs when the kernel exports it, else /proc/iomem."""
    sysfs = os.path.join(root, "sys/firmware/memmap")
    try:
        if os.path.isdir(sysfs) and os.listdir(sysfs):  # present but empty: use iomem
            regions, source = read_sysfs_memmap(root), sysfs
        else:
            regions, source = read_iomem(root), os.path.join(root, "proc/iomem")
        total = read_total_ram(root)
    except (OSError, ValueError) as e:
        raise MemoryMapError(f"cannot read the memory map: {e}") from e
    if not any(r.type == SYSTEM_RAM for r in regions):
        raise MemoryMapError(f"no System RAM in {source}")
    return MemoryMap(tuple(regions), total, source)
