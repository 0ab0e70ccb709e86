"""Booting Linux through purgatory, shared by bzImage and elf-x86 --args-linux.

A loader places the kernel itself (PlacedKernel); this module adds the rest of
a 32-bit boot-protocol load: the initrd (high), the "setup" segment (zero page,
command line, extra e820 entries; low) and purgatory (low, linked last so its
SHA-256 covers every other segment).

With --load-preserve-context the second kernel must not write a page the first
one did not back up. So the load gets a *backup window*: every RAM page in it
becomes a segment (the image's own, or a zero-filled backup one), and the zero
page's e820 table lists only the window's RAM as usable, the rest of RAM as
reserved. The window always holds the RAM below 1 MiB: an i386 kernel needs it
for its real-mode trampoline and panics without it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from kexec_py.bootparams import (
    E820_ENTRY,
    E820_MAX_ENTRIES_ZEROPAGE,
    SETUP_DATA_HEADER,
    ZERO_PAGE_SIZE,
    E820Entry,
    SetupHeader,
    build_zero_page,
    e820_ext_node,
    e820_from_memory_map,
    restrict_ram,
)
from kexec_py.errors import ImageError, PlanError
from kexec_py.flags import Arch
from kexec_py.holes import available, find_space, ram_size, ram_top_for_budget
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest
from kexec_py.memmap import MemoryMap
from kexec_py.ranges import PAGE_SIZE, Range, align_down, align_up, merge, subtract
from kexec_py.segments import LoadedImage, Segment

MiB = 1 << 20
LOW_MEMORY_END = 0x100000
# Setup and purgatory stay clear of the first 64 KiB: BIOS data, and what the
# next kernel touches there before it has read its parameters.
LOW_SEGMENT_FLOOR = 0x10000
# i386 lowmem: the next kernel reaches its initrd, zero page and itself through
# the direct map, which ends a little below 896 MiB (it copies an initrd that
# lies above, so the bound matters for memory, not for correctness).
LOWMEM_END = 0x38000000

# The default preserve-context window: RAM from 0 up to the kernel's end plus
# the initrd plus room for the second kernel to run in (an initramfs unpacks to
# three or four times its gzip/zstd size into tmpfs; 64 MiB for the kernel and
# user space).
DEFAULT_ROOM = 64 * MiB
INITRD_ROOM_FACTOR = 4
MIN_ROOM = 16 * MiB
CMDLINE_OFFSET = ZERO_PAGE_SIZE  # in the setup segment, right after the zero page


@dataclass(frozen=True)
class PlacedKernel:
    """A kernel image a loader has put in memory, ready for boot parameters."""

    path: str
    header: SetupHeader  # copied into the zero page; its limits apply
    segments: tuple[Segment, ...]
    footprint: tuple[Range, ...]  # all it touches before reading e820 (init_size)
    entry32: int  # where purgatory jumps, esi = zero page

    @property
    def end(self) -> int:
        return max(r.end for r in self.footprint)


def require_i386(target_arch: Arch, path: str) -> None:
    if target_arch is not Arch.I386:
        raise ImageError(
            f"{path}: Linux kernels are booted through kexec-py's 32-bit purgatory, which only an"
            f" i386 kernel can enter ({target_arch.value} enters images in 64-bit mode;"
            " --arch i386 plans for an i386 machine)"
        )


def placement_limits(
    memory: MemoryMap, mem_min: int | None, mem_max: int | None, preserve_context: bool
) -> tuple[Range, ...] | None:
    """Where a Linux load may put segments: [--mem-min, --mem-max] (plus the RAM
    below 1 MiB for a preserve-context load); None: anywhere in RAM, and for a
    preserve-context load the default window is chosen once the kernel is placed."""
    from kexec_py.planner import limits_window

    user = limits_window(memory, mem_min, mem_max)
    if user is None:
        return None
    if preserve_context:
        return tuple(merge([Range(0, LOW_MEMORY_END), user]))
    return (user,)


def describe_limits(limits: Sequence[Range] | None) -> str:
    return "" if limits is None else " in " + ", ".join(str(r) for r in limits)


def default_window(
    ram: Sequence[Range], total_ram: int, kernel_end: int, initrd_size: int
) -> tuple[tuple[Range, ...], str]:
    """The preserve-context window when --mem-min/--mem-max are not given:
    [0, top), top = kernel end + initrd + room, shrunk to the kernel's
    half-of-RAM limit on what one load may hold."""
    initrd_pages = align_up(initrd_size)
    room = DEFAULT_ROOM + INITRD_ROOM_FACTOR * initrd_pages
    wanted = align_up(kernel_end + initrd_pages + room, MiB)
    ram_end = max(r.end for r in ram)
    budget = total_ram // 2
    affordable = ram_top_for_budget(ram, budget)
    top = min(wanted, ram_end)
    if affordable < top:
        top = align_down(affordable, MiB)
    needed = kernel_end + initrd_pages + MIN_ROOM
    if top < needed:
        raise PlanError(
            f"no room for a preserve-context Linux: it needs RAM up to {needed:#x} (kernel to"
            f" {kernel_end:#x}, initrd {initrd_pages >> 10} KiB, {MIN_ROOM >> 20} MiB to run in), but"
            f" the kernel backs up at most half of RAM ({budget >> 10} KiB, RAM up to {affordable:#x}):"
            " a smaller initrd, or --mem-min/--mem-max"
        )
    room_left = top - kernel_end - initrd_pages
    how = f"kernel end {kernel_end:#x} + initrd {initrd_pages >> 10} KiB + {room_left >> 20} MiB room"
    if top < wanted:
        how += " (shrunk to half of RAM)"
    return (Range(0, top),), how


def boot_linux(
    kernel: PlacedKernel,
    request: LoadRequest,
    memory: MemoryMap,
    limits: tuple[Range, ...] | None,
) -> LoadedImage:
    """The zero page, initrd and purgatory around a placed kernel, as request asks."""
    command_line, initrd_path = request.command_line, request.initrd
    preserve_context, no_checks, purgatory_path = request.preserve_context, request.no_checks, request.purgatory
    ram = memory.ram()
    header = kernel.header
    cmdline = _command_line(kernel.path, header, command_line, preserve_context)
    initrd = _open_initrd(initrd_path)
    initrd_size = len(initrd.data) if initrd else 0

    notes: list[str] = []
    if preserve_context:
        if limits is None:
            limits, how = default_window(ram, memory.total_ram, kernel.end, initrd_size)
            notes.append(f"backup window {_ranges_text(limits)} (default: {how}; --mem-min/--mem-max choose another)")
        else:
            notes.append(f"backup window {_ranges_text(limits)} (--mem-min/--mem-max, plus the RAM below 1 MiB)")
    outside = subtract(kernel.footprint, available(ram, (), limits))
    if outside:
        raise PlanError(
            f"{kernel.path}: the kernel needs {', '.join(str(r) for r in outside)} (init_size from its"
            f" load address), which is not free RAM{describe_limits(limits)}"
        )

    segments = list(kernel.segments)
    taken = [*kernel.footprint, *(s.range for s in segments)]

    def free() -> list[Range]:
        return available(ram, taken, limits)

    initrd_range = None
    if initrd is not None:
        high = min(header.initrd_end_max, LOWMEM_END)
        spot = find_space(free(), align_up(initrd_size), top_down=True, high=high)
        if spot is None:
            raise PlanError(
                f"initrd {initrd.path} ({initrd_size >> 10} KiB) does not fit in free RAM below {high:#x}"
                f" (initrd_addr_max {header.initrd_end_max - 1:#x}, i386 lowmem {LOWMEM_END:#x})"
                + describe_limits(limits)
            )
        initrd_range = Range.sized(spot.start, initrd_size)
        segments.append(Segment(spot.start, spot.size, initrd.data, f"{initrd.path} initrd"))
        taken.append(spot)

    e820 = e820_from_memory_map(memory)
    if preserve_context:
        window_ram = available(ram, (), limits)
        e820 = restrict_ram(e820, window_ram)
        notes.append(
            f"the second kernel's e820 lists only the window's RAM as usable ({ram_size(ram, limits) >> 10} KiB:"
            f" {_ranges_text(window_ram)}); all other RAM is reserved, so it writes nowhere the jump does"
            " not back up"
        )

    setup = _setup_segment(kernel, cmdline, _jump_back_room(preserve_context), e820, initrd_range, free(), limits)
    segments.append(setup)
    taken.append(setup.range)
    base = setup.mem

    from kexec_py import purgatory as purgatory_module

    purgatory = purgatory_module.Purgatory.from_file(purgatory_path or purgatory_module.default_purgatory_path())
    spot = _low_space(free(), purgatory.size, purgatory.alignment)
    if spot is None:
        raise PlanError(f"no free RAM for purgatory ({purgatory.size >> 10} KiB){describe_limits(limits)}")
    params = {"purgatory_entry32_regs": purgatory_module.entry32_regs(eip=kernel.entry32, esi=base)}
    params.update(purgatory_module.sha256_params(segments, no_checks))
    if preserve_context:
        # purgatory writes " kexec_jump_back_entry=0x..." from the NUL on
        params["purgatory_cmdline_end"] = struct.pack("<I", base + CMDLINE_OFFSET + len(cmdline))
    linked = purgatory.link(spot.start, params)
    segments.append(
        Segment(linked.segment.mem, linked.segment.memsz, linked.segment.buf,
                f"purgatory ({purgatory.path})")
    )
    return LoadedImage(
        linked.entry,
        tuple(segments),
        backup_window=limits if preserve_context else None,
        notes=tuple(notes),
    )


def _setup_segment(
    kernel: PlacedKernel,
    cmdline: bytes,
    room: int,
    e820: list[E820Entry],
    initrd: Range | None,
    free: list[Range],
    limits: tuple[Range, ...] | None,
) -> Segment:
    """The "setup" segment, low: zero page, then the command line with room
    for purgatory's addition, then the e820 entries the zero page has no
    room for, as a SETUP_E820_EXT node."""
    extra = e820[E820_MAX_ENTRIES_ZEROPAGE:]
    ext_offset = align_up(CMDLINE_OFFSET + len(cmdline) + 1 + room, 16)
    size = ext_offset + (SETUP_DATA_HEADER.size + len(extra) * E820_ENTRY.size if extra else 0)
    spot = _low_space(free, align_up(size), PAGE_SIZE)
    if spot is None:
        raise PlanError(f"no free RAM for the zero page and command line{describe_limits(limits)}")
    base = spot.start
    setup = bytearray(size if extra else CMDLINE_OFFSET + len(cmdline) + 1)
    setup[:ZERO_PAGE_SIZE] = build_zero_page(
        kernel.header,
        kernel_start=kernel.entry32,
        cmd_line_ptr=base + CMDLINE_OFFSET,
        initrd=initrd,
        e820=e820,
        setup_data=base + ext_offset if extra else 0,
    )
    setup[CMDLINE_OFFSET : CMDLINE_OFFSET + len(cmdline)] = cmdline
    source = "zero page (boot_params) + command line"
    if extra:
        header = kernel.header
        node = e820_ext_node(extra, next_node=header.setup_data if header.version >= 0x0209 else 0)
        setup[ext_offset : ext_offset + len(node)] = node
        source += f" + {len(extra)} e820 entries (SETUP_E820_EXT)"
    return Segment(base, spot.size, bytes(setup), source)


def _jump_back_room(preserve_context: bool) -> int:
    if not preserve_context:
        return 0
    from kexec_py.purgatory import JUMP_BACK_ENTRY_ROOM

    return JUMP_BACK_ENTRY_ROOM


def _command_line(path: str, header: SetupHeader, text: str | None, preserve_context: bool) -> bytes:
    data = (text or "").encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ImageError("the command line contains a NUL byte")
    room = _jump_back_room(preserve_context)
    limit = header.max_cmdline - room
    if len(data) > limit:
        why = f"cmdline_size {header.max_cmdline}"
        if room:
            why += f" less {room} for the kexec_jump_back_entry= purgatory appends"
        raise ImageError(f"the command line is {len(data)} bytes, {path} takes at most {max(limit, 0)} ({why})")
    return data


def _open_initrd(path: str | None) -> ImageFile | None:
    if path is None:
        return None
    try:
        return ImageFile.open(path)
    except ImageError as e:
        raise ImageError(f"initrd: {e}") from None


def _low_space(free: list[Range], size: int, align: int) -> Range | None:
    """Below 1 MiB when there is room (as kexec-tools does), else the lowest fit in lowmem."""
    return find_space(free, size, align=align, low=LOW_SEGMENT_FLOOR, high=LOW_MEMORY_END) or find_space(
        free, size, align=align, low=LOW_MEMORY_END, high=LOWMEM_END
    )


def _ranges_text(ranges: Sequence[Range]) -> str:
    return ", ".join(str(r) for r in ranges)
