"""Free memory and where a new segment fits in it (modelled on u-root's
Ranges.FindSpace): pure functions over Range lists, so placement is tested
with tables and no machine."""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs a Linux load
if TYPE_CHECKING:
    from typing import Iterable, Sequence

from kexec_py.ranges import PAGE_SIZE, Range, align_down, align_up, merge, subtract


def available(
    ram: Iterable[Range],
    taken: Iterable[Range] = (),
    limits: Iterable[Range] | None = None,
) -> list[Range]:
    """RAM inside limits (all of it when limits is None) that nothing in taken occupies."""
    pool = merge(ram)
    if limits is not None:
        limits = list(limits)
        pool = merge(piece for r in pool for bound in limits if (piece := r.intersect(bound)))
    return subtract(pool, taken)


def find_space(
    free: Sequence[Range],
    size: int,
    *,
    align: int = PAGE_SIZE,
    low: int = 0,
    high: int | None = None,
    top_down: bool = False,
) -> Range | None:
    """The lowest (top_down: the highest) range of size bytes inside one of free
    that starts on an align boundary, at or above low and ends at or below high.
    None when nothing fits."""
    if size <= 0:
        raise ValueError(f"find_space: size {size} is not positive")
    pieces = sorted(free, reverse=top_down)
    for r in pieces:
        start = max(r.start, low)
        end = r.end if high is None else min(r.end, high)
        if end - start < size:
            continue
        if top_down:
            candidate = align_down(end - size, align)
            if candidate >= start:
                return Range.sized(candidate, size)
        else:
            candidate = align_up(start, align)
            if candidate + size <= end:
                return Range.sized(candidate, size)
    return None


def ram_size(ram: Iterable[Range], window: Iterable[Range] | None) -> int:
    """Bytes of ram inside window (all of it when window is None)."""
    return sum(r.size for r in available(ram, (), window))


def ram_top_for_budget(ram: Sequence[Range], budget: int, start: int = 0) -> int:
    """The highest address t such that ram inside [start, t) holds at most budget bytes
    (page-aligned); the end of RAM when all of it fits."""
    left = budget
    top = start
    for r in merge(ram):
        if r.end <= start:
            continue
        piece = Range(max(r.start, start), r.end)
        if piece.size > left:
            return align_down(piece.start + left)
        left -= piece.size
        top = piece.end
    return top
