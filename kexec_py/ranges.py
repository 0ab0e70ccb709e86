"""Half-open physical address ranges and the arithmetic planning needs."""

from __future__ import annotations

from kexec_py.value import frozen

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Iterable

PAGE_SIZE = 0x1000


def align_down(value: int, alignment: int = PAGE_SIZE) -> int:
    return value - value % alignment


def align_up(value: int, alignment: int = PAGE_SIZE) -> int:
    return align_down(value + alignment - 1, alignment)


@frozen(order=True)
class Range:
    """[start, end): end is exclusive, so adjacent ranges share a boundary."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"bad range {self.start:#x}-{self.end:#x}")

    @classmethod
    def sized(cls, start: int, size: int) -> Range:
        return cls(start, start + size)

    @property
    def size(self) -> int:
        return self.end - self.start

    def __bool__(self) -> bool:
        return self.size > 0

    def overlaps(self, other: Range) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Range) -> bool:
        return self.start <= other.start and other.end <= self.end

    def contains_address(self, address: int) -> bool:
        return self.start <= address < self.end

    def intersect(self, other: Range) -> Range | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Range(start, end) if start < end else None

    def minus(self, other: Range) -> list[Range]:
        """What remains of self once other is taken out (0, 1 or 2 pieces)."""
        if not self.overlaps(other):
            return [self] if self else []
        pieces = []
        if self.start < other.start:
            pieces.append(Range(self.start, other.start))
        if other.end < self.end:
            pieces.append(Range(other.end, self.end))
        return pieces

    def page_aligned_inside(self) -> Range | None:
        """The largest page-aligned range inside self."""
        start, end = align_up(self.start), align_down(self.end)
        return Range(start, end) if start < end else None

    def __str__(self) -> str:
        return f"{self.start:#x}-{self.end - 1:#x}"


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with overlapping or touching ranges joined."""
    merged: list[Range] = []
    for r in sorted(r for r in ranges if r):
        if merged and r.start <= merged[-1].end:
            merged[-1] = Range(merged[-1].start, max(merged[-1].end, r.end))
        else:
            merged.append(r)
    return merged


def subtract(ranges: Iterable[Range], taken: Iterable[Range]) -> list[Range]:
    """ranges with every range in taken removed."""
    remaining = merge(ranges)
    for t in taken:
        remaining = [piece for r in remaining for piece in r.minus(t)]
    return remaining


def covered_by(r: Range, ranges: Iterable[Range]) -> bool:
    """True when every byte of r lies in ranges."""
    return not subtract([r], ranges)
