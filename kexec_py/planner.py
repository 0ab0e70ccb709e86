"""Pure planning: backup windows and every check the kernel would make, made
first, so a bad request fails with a reason and the loaded image stays as it was."""

from __future__ import annotations

from kexec_py.errors import PlanError
from kexec_py.memmap import MemoryMap
from kexec_py.ranges import PAGE_SIZE, Range, subtract
from kexec_py.segments import KexecPlan, LoadedImage, Segment

KEXEC_SEGMENT_MAX = 16  # include/uapi/linux/kexec.h

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Sequence, Union

    Window = Union[Range, Sequence[Range]]


def _window_ranges(window: Window) -> list[Range]:
    return [window] if isinstance(window, Range) else list(window)


def limits_window(memory: MemoryMap, mem_min: int | None, mem_max: int | None) -> Range | None:
    """[--mem-min, --mem-max] as a half-open range (None when neither is given):
    from 0 and to the end of RAM by default."""
    if mem_min is None and mem_max is None:
        return None
    top = max(r.end for r in memory.ram()) - 1
    if mem_min is not None and mem_min > top:
        raise PlanError(f"--mem-min {mem_min:#x} is above the top of RAM ({top:#x} in {memory.source}):"
                        " the window [--mem-min, --mem-max] holds no RAM")
    if mem_max is not None and mem_min is not None and mem_max < mem_min:
        raise PlanError(f"--mem-max {mem_max:#x} is below --mem-min {mem_min:#x}")
    return Range(mem_min or 0, (top if mem_max is None else mem_max) + 1)


def backup_segments(image: LoadedImage, memory: MemoryMap, window: Window) -> list[Segment]:
    """Zero-data segments over all RAM in window that the image does not occupy.

    A preserve-context jump swaps every destination page with a shadow page and
    back, so these give the callee scratch memory the running kernel gets back
    intact (kexec-tools' --mem-min/--mem-max behaviour).
    """
    in_window = [
        w.page_aligned_inside() for r in memory.ram() for part in _window_ranges(window) if (w := r.intersect(part))
    ]
    free = subtract([w for w in in_window if w], [s.range for s in image.segments])
    return [Segment(r.start, r.size, b"", "backup (zero-filled scratch)") for r in free]


def check_segments(segments: tuple[Segment, ...], memory: MemoryMap) -> None:
    """Raise PlanError for anything the kernel would refuse or that would land outside RAM."""
    if len(segments) > KEXEC_SEGMENT_MAX:
        raise PlanError(
            f"{len(segments)} segments, the kernel accepts at most {KEXEC_SEGMENT_MAX}"
            " (narrow --mem-min/--mem-max)"
        )
    for s in segments:
        if s.mem % PAGE_SIZE or s.memsz % PAGE_SIZE:
            raise PlanError(f"segment {s.range} ({s.source}) is not page-aligned")
        if s.bufsz > s.memsz:
            raise PlanError(f"segment {s.range} ({s.source}) has more data than memory")
    ordered = sorted(segments, key=lambda s: s.mem)
    for a, b in zip(ordered, ordered[1:]):
        if a.range.overlaps(b.range):
            raise PlanError(f"segments overlap: {a.range} ({a.source}) and {b.range} ({b.source})")
    ram = memory.ram()
    for s in segments:
        if subtract([s.range], ram):
            raise PlanError(
                f"segment {s.range} ({s.source}) is not inside RAM ({memory.source} has "
                + ", ".join(str(r) for r in ram)
                + ")"
            )
    limit = memory.total_ram // 2
    for s in segments:
        if s.memsz > limit:
            raise PlanError(_half_of_ram(f"segment {s.range}", s.memsz, memory.total_ram))
    total = sum(s.memsz for s in segments)
    if total > limit:
        raise PlanError(_half_of_ram("the image with its backup", total, memory.total_ram))


def _half_of_ram(what: str, size: int, total_ram: int) -> str:
    return (
        f"{what} needs {size >> 10} KiB but the kernel refuses (EINVAL) more than half of RAM"
        f" ({total_ram >> 11} KiB of {total_ram >> 10} KiB): narrow --mem-min/--mem-max"
    )


def make_plan(
    image: LoadedImage,
    flags: int,
    memory: MemoryMap,
    backup_window: Window | None = None,
) -> KexecPlan:
    segments = list(image.segments)
    if backup_window is not None:
        parts = _window_ranges(backup_window)
        for s in segments:
            if subtract([s.range], parts):
                raise PlanError(
                    f"segment {s.range} ({s.source}) lies outside --mem-min/--mem-max"
                    f" {', '.join(str(p) for p in parts)}"
                )
        segments += backup_segments(image, memory, parts)
    segments.sort(key=lambda s: s.mem)
    plan = KexecPlan(image.entry, flags, tuple(segments), image.notes)
    check_segments(plan.segments, memory)
    return plan
