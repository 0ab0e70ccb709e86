"""Booting Linux through purgatory, shared by the bzImage and ELF loaders (--args-linux).

A loader places the kernel itself (PlacedKernel); this module adds the rest of
a boot-protocol load: the initrd (high), the "setup" segment (zero page,
command line, extra e820 entries; low) and the arch's purgatory (low, linked
last so its SHA-256 covers every other segment), which enters the kernel the
way the arch's boot protocol asks (i386: 32-bit entry, x86_64: 64-bit entry,
esi/rsi = zero page).

With --load-preserve-context the second kernel must not write a page the first
one did not back up. So the load gets a *backup window*: every RAM page in it
becomes a segment (the image's own, or a zero-filled backup one), and the zero
page's e820 table lists only the window's RAM as usable, the rest of RAM as
reserved. The window always holds the RAM below 1 MiB: an i386 kernel needs it
for its real-mode trampoline and panics without it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs a Linux load
if TYPE_CHECKING:
    from typing import Sequence

from kexec_py.arch import Arch
from kexec_py.bootparams import (
    E820_ENTRY,
    E820_MAX_ENTRIES_ZEROPAGE,
    JUMP_BACK_PAGE,
    SETUP_DATA_HEADER,
    SETUP_E820_EXT,
    SETUP_JUMP_BACK_PAGE,
    E820Entry,
    ZERO_PAGE_SIZE,
    SetupHeader,
    build_zero_page,
    e820_from_memory_map,
    read_running_boot_params,
    restrict_ram,
    setup_data_node,
)
from kexec_py.errors import ImageError, PlanError
from kexec_py.holes import available, find_space, ram_size, ram_top_for_budget
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest, Target
from kexec_py.memmap import MemoryMap
from kexec_py.ranges import PAGE_SIZE, Range, align_down, align_up, merge, subtract
from kexec_py.segments import LoadedImage, Segment
from kexec_py.value import frozen

MiB = 1 << 20
LOW_MEMORY_END = 0x100000
# Setup and purgatory stay clear of the first 64 KiB: BIOS data, and what the
# next kernel touches there before it has read its parameters.
LOW_SEGMENT_FLOOR = 0x10000

# The default preserve-context window: RAM from 0 up to the kernel's end plus
# the initrd plus room for the second kernel to run in (an initramfs unpacks to
# three or four times its gzip/zstd size into tmpfs; 64 MiB for the kernel and
# user space).
DEFAULT_ROOM = 64 * MiB
INITRD_ROOM_FACTOR = 4
MIN_ROOM = 16 * MiB
CMDLINE_OFFSET = ZERO_PAGE_SIZE  # in the setup segment, right after the zero page


@frozen
class PlacedKernel:
    """A kernel image a loader has put in memory, ready for boot parameters."""

    path: str
    header: SetupHeader  # copied into the zero page; its limits apply
    segments: tuple[Segment, ...]
    footprint: tuple[Range, ...]  # all it touches before reading e820 (init_size)
    start: int  # the protected-mode kernel's address (code32_start)
    entry: int  # where purgatory jumps, esi/rsi = zero page (Arch.linux_entry_offset from start)

    @property
    def end(self) -> int:
        return max(r.end for r in self.footprint)


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


def boot_linux(kernel: PlacedKernel, request: LoadRequest, target: Target, limits: tuple[Range, ...] | None) -> LoadedImage:
    """The zero page, initrd and purgatory around a placed kernel, as request asks."""
    arch, memory, preserve = target.arch, target.memory, request.preserve_context
    cmdline = _command_line(kernel.path, kernel.header, request.command_line, _jump_back_room(arch, preserve))
    initrd = _open_initrd(request.initrd)
    notes: list[str] = []
    if preserve:
        limits, note = _backup_window(memory, kernel, len(initrd.data) if initrd else 0, limits)
        notes.append(note)
    _check_footprint(kernel, memory.ram(), limits)
    layout = _Layout(memory.ram(), limits, arch, [*kernel.footprint, *(s.range for s in kernel.segments)])
    segments = list(kernel.segments)
    initrd_range = None
    if initrd is not None:
        segments.append(layout.add(_initrd_segment(initrd, kernel.header, layout)))
        initrd_range = Range.sized(segments[-1].mem, len(initrd.data))
    e820 = e820_from_memory_map(memory)
    if request.usable_ram is not None:
        e820 = restrict_ram(e820, request.usable_ram)
        notes.append(f"the new kernel's e820 lists only {_ranges_text(request.usable_ram)} as usable RAM")
    elif limits is not None and preserve:  # the window: _backup_window set the limits
        e820, note = _window_e820(e820, memory, limits)
        notes.append(note)
    setup, jump_back_copy = _setup_segment(kernel, cmdline, _jump_back_room(arch, preserve), e820, initrd_range,
                                           layout, _running_boot_params(target), preserve and arch.jump_back_page_copy)
    segments.append(layout.add(setup))
    entry, purgatory = _link_purgatory(
        request, arch, layout, segments,
        kernel_entry=kernel.entry, zero_page=setup.mem,
        cmdline_end=setup.mem + CMDLINE_OFFSET + len(cmdline) if preserve else 0,
        jump_back_copy=jump_back_copy,
    )
    return LoadedImage(
        entry,
        (*segments, purgatory),
        backup_window=limits if preserve else None,
        notes=tuple(notes),
    )


@frozen
class _Layout:
    """Where the next segment may go: RAM within the limits, less what is taken."""

    ram: list[Range]
    limits: tuple[Range, ...] | None
    arch: Arch  # its linux_high bounds every segment
    taken: list[Range]

    def free(self) -> list[Range]:
        return available(self.ram, self.taken, self.limits)

    def add(self, segment: Segment) -> Segment:
        self.taken.append(segment.range)
        return segment

    def low_space(self, size: int, align: int) -> Range | None:
        """Below 1 MiB when there is room (as kexec-tools does), else the lowest fit below
        the arch's bound."""
        free = self.free()
        return find_space(free, size, align=align, low=LOW_SEGMENT_FLOOR, high=LOW_MEMORY_END) or find_space(
            free, size, align=align, low=LOW_MEMORY_END, high=self.arch.linux_high
        )

    def where(self) -> str:
        return describe_limits(self.limits)


def _backup_window(
    memory: MemoryMap, kernel: PlacedKernel, initrd_size: int, limits: tuple[Range, ...] | None
) -> tuple[tuple[Range, ...], str]:
    """The preserve-context window: --mem-min/--mem-max's, else the default one."""
    if limits is not None:
        return limits, f"backup window {_ranges_text(limits)} (--mem-min/--mem-max, plus the RAM below 1 MiB)"
    window, how = default_window(memory.ram(), memory.total_ram, kernel.end, initrd_size)
    return window, f"backup window {_ranges_text(window)} (default: {how}; --mem-min/--mem-max choose another)"


def _check_footprint(kernel: PlacedKernel, ram: list[Range], limits: tuple[Range, ...] | None) -> None:
    outside = subtract(kernel.footprint, available(ram, (), limits))
    if outside:
        raise PlanError(
            f"{kernel.path}: the kernel needs {', '.join(str(r) for r in outside)} (init_size from its"
            f" load address), which is not free RAM{describe_limits(limits)}"
        )


def _initrd_segment(initrd: ImageFile, header: SetupHeader, layout: _Layout) -> Segment:
    """The initrd as high as it may go: below initrd_addr_max and the arch's bound."""
    size = len(initrd.data)
    arch = layout.arch
    high = min(header.initrd_end_max, arch.linux_high)
    spot = find_space(layout.free(), align_up(size), top_down=True, high=high)
    if spot is None:
        raise PlanError(
            f"initrd {initrd.path} ({size >> 10} KiB) does not fit in free RAM below {high:#x}"
            f" (initrd_addr_max {header.initrd_end_max - 1:#x}, {arch.linux_high_name} {arch.linux_high:#x})"
            + layout.where()
        )
    return Segment(spot.start, spot.size, initrd.data, f"{initrd.path} initrd")


def _window_e820(e820: list[E820Entry], memory: MemoryMap, limits: tuple[Range, ...]) -> tuple[list[E820Entry], str]:
    """The second kernel's e820: only the window's RAM is usable."""
    ram = memory.ram()
    window_ram = available(ram, (), limits)
    note = (
        f"the second kernel's e820 lists only the window's RAM as usable ({ram_size(ram, limits) >> 10} KiB:"
        f" {_ranges_text(window_ram)}); all other RAM is reserved, so it writes nowhere the jump does"
        " not back up"
    )
    return restrict_ram(e820, window_ram), note


def _link_purgatory(
    request: LoadRequest,
    arch: Arch,
    layout: _Layout,
    checked: list[Segment],
    *,
    kernel_entry: int,
    zero_page: int,
    cmdline_end: int,
    jump_back_copy: int,
) -> tuple[int, Segment]:
    """The arch's purgatory, low, linked last so its SHA-256 covers every other segment.
    Returns its entry and its segment."""
    from kexec_py import purgatory as purgatory_module

    path = request.purgatory or purgatory_module.default_purgatory_path(arch)
    purgatory = purgatory_module.Purgatory.from_file(path)
    purgatory.require_arch(arch)
    spot = layout.low_space(purgatory.size, purgatory.alignment)
    if spot is None:
        raise PlanError(f"no free RAM for purgatory ({purgatory.size >> 10} KiB){layout.where()}")
    params = purgatory.boot_params(
        entry=kernel_entry, zero_page=zero_page, cmdline_end=cmdline_end, jump_back_copy=jump_back_copy,
        checked=checked, no_checks=request.no_checks,
    )
    linked = purgatory.link(spot.start, params)
    segment = linked.segment
    return linked.entry, Segment(segment.mem, segment.memsz, segment.buf, f"purgatory ({purgatory.path})")


def _setup_segment(
    kernel: PlacedKernel,
    cmdline: bytes,
    room: int,
    e820: list[E820Entry],
    initrd: Range | None,
    layout: _Layout,
    running: bytes | None,
    jump_back_copy: bool,
) -> tuple[Segment, int]:
    """The "setup" segment, low: zero page, then the command line with room
    for purgatory's addition, then the setup_data nodes: the e820 entries the
    zero page has no room for (SETUP_E820_EXT) and, if jump_back_copy, room for
    purgatory's copy of the caller's re-entry page (SETUP_JUMP_BACK_PAGE).
    Returns the segment and where that copy goes (0: nowhere)."""
    extra = e820[E820_MAX_ENTRIES_ZEROPAGE:]
    nodes = []  # (setup_data type, payload, what)
    if extra:
        nodes.append((SETUP_E820_EXT, b"".join(e.pack() for e in extra),
                      f"{len(extra)} e820 entries (SETUP_E820_EXT)"))
    if jump_back_copy:
        nodes.append((SETUP_JUMP_BACK_PAGE, bytes(JUMP_BACK_PAGE.size), "the re-entry page's copy (SETUP_JUMP_BACK_PAGE)"))
    offsets = []
    end = CMDLINE_OFFSET + len(cmdline) + 1 + room
    for _, payload, _ in nodes:
        offsets.append(align_up(end, 16))
        end = offsets[-1] + SETUP_DATA_HEADER.size + len(payload)
    spot = layout.low_space(align_up(end), PAGE_SIZE)
    if spot is None:
        raise PlanError(f"no free RAM for the zero page and command line{layout.where()}")
    base = spot.start
    setup = bytearray(end if nodes else CMDLINE_OFFSET + len(cmdline) + 1)
    setup[:ZERO_PAGE_SIZE] = build_zero_page(
        kernel.header,
        kernel_start=kernel.start,
        cmd_line_ptr=base + CMDLINE_OFFSET,
        initrd=initrd,
        e820=e820,
        setup_data=base + offsets[0] if nodes else 0,
        running=running,
    )
    setup[CMDLINE_OFFSET : CMDLINE_OFFSET + len(cmdline)] = cmdline
    header = kernel.header
    chained = header.setup_data if header.version >= 0x0209 else 0  # the image's own nodes, after ours
    for i, ((kind, payload, _), offset) in enumerate(zip(nodes, offsets)):
        node = setup_data_node(kind, payload, base + offsets[i + 1] if i + 1 < len(nodes) else chained)
        setup[offset : offset + len(node)] = node
    source = " + ".join(["zero page (boot_params) + command line", *(what for *_, what in nodes)])
    copy_at = base + offsets[-1] + SETUP_DATA_HEADER.size if jump_back_copy else 0
    return Segment(base, spot.size, bytes(setup), source), copy_at


def _running_boot_params(target: Target) -> bytes | None:
    return None if target.root is None else read_running_boot_params(target.root)


def _jump_back_room(arch: Arch, preserve_context: bool) -> int:
    if not preserve_context:
        return 0
    from kexec_py.purgatory import jump_back_entry_room

    return jump_back_entry_room(arch.address_bits)


def _command_line(path: str, header: SetupHeader, text: str | None, room: int) -> bytes:
    data = (text or "").encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ImageError("the command line contains a NUL byte")
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


def _ranges_text(ranges: Sequence[Range]) -> str:
    return ", ".join(str(r) for r in ranges)
