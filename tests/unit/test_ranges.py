"""Range algebra: half-open [start, end) physical ranges."""

import pytest

from kexec_py.ranges import PAGE_SIZE, Range, align_down, align_up, covered_by, merge, subtract

R = Range


@pytest.mark.parametrize(
    "value, alignment, down, up",
    [
        (0, PAGE_SIZE, 0, 0),
        (1, PAGE_SIZE, 0, 0x1000),
        (0xFFF, PAGE_SIZE, 0, 0x1000),
        (0x1000, PAGE_SIZE, 0x1000, 0x1000),
        (0x1001, PAGE_SIZE, 0x1000, 0x2000),
        (0x9FC00, PAGE_SIZE, 0x9F000, 0xA0000),
        (0x1FFE0000, 0x200000, 0x1FE00000, 0x20000000),
        (17, 8, 16, 24),
    ],
)
def test_align(value, alignment, down, up):
    assert align_down(value, alignment) == down
    assert align_up(value, alignment) == up


def test_align_default_is_a_page():
    assert (align_down(0x1234), align_up(0x1234)) == (0x1000, 0x2000)


@pytest.mark.parametrize("start, end", [(-1, 0), (0x2000, 0x1000), (1, 0)])
def test_bad_range_is_refused(start, end):
    with pytest.raises(ValueError, match="bad range"):
        Range(start, end)


def test_range_basics():
    r = Range.sized(0x1000, 0x2000)
    assert r == R(0x1000, 0x3000)
    assert r.size == 0x2000
    assert bool(r) and not bool(R(5, 5))
    assert str(r) == "0x1000-0x2fff"  # printed with an inclusive end, like /proc/iomem
    assert R(0, 1) < R(0, 2) < R(1, 1)  # ordered by start, then end


@pytest.mark.parametrize(
    "a, b, overlaps",
    [
        (R(0, 10), R(20, 30), False),  # disjoint
        (R(0, 10), R(10, 20), False),  # touching: end is exclusive
        (R(0, 10), R(9, 20), True),  # one byte shared
        (R(0, 10), R(2, 5), True),  # nested
        (R(0, 10), R(0, 10), True),  # identical
        (R(0, 10), R(10, 10), False),  # empty, at the end
        (R(0, 10), R(0, 0), False),  # empty, at the start
        # An empty range strictly inside another overlaps it: the same test as the
        # kernel's sanity_check_segment_list (mend > pstart && mstart < pend).
        (R(0, 10), R(5, 5), True),
    ],
)
def test_overlaps_is_symmetric(a, b, overlaps):
    assert a.overlaps(b) is overlaps
    assert b.overlaps(a) is overlaps


@pytest.mark.parametrize(
    "a, b, intersection",
    [
        (R(0, 10), R(20, 30), None),
        (R(0, 10), R(10, 20), None),  # touching
        (R(0, 10), R(5, 20), R(5, 10)),
        (R(0, 10), R(2, 5), R(2, 5)),  # nested
        (R(0, 10), R(0, 10), R(0, 10)),
        (R(0, 10), R(5, 5), None),  # empty
    ],
)
def test_intersect_is_symmetric(a, b, intersection):
    assert a.intersect(b) == intersection
    assert b.intersect(a) == intersection


@pytest.mark.parametrize(
    "outer, inner, contains",
    [
        (R(0, 10), R(2, 5), True),
        (R(0, 10), R(0, 10), True),
        (R(0, 10), R(5, 11), False),  # sticks out at the end
        (R(5, 10), R(4, 6), False),  # sticks out at the start
        (R(0, 10), R(10, 10), True),  # empty, at the end boundary
        (R(0, 10), R(20, 30), False),
    ],
)
def test_contains(outer, inner, contains):
    assert outer.contains(inner) is contains


@pytest.mark.parametrize("address, inside", [(0x0FFF, False), (0x1000, True), (0x1FFF, True), (0x2000, False)])
def test_contains_address(address, inside):
    assert R(0x1000, 0x2000).contains_address(address) is inside


@pytest.mark.parametrize(
    "a, b, pieces",
    [
        (R(0, 10), R(20, 30), [R(0, 10)]),  # disjoint: untouched
        (R(0, 10), R(10, 20), [R(0, 10)]),  # touching: untouched
        (R(0, 10), R(3, 6), [R(0, 3), R(6, 10)]),  # hole in the middle: two pieces
        (R(0, 10), R(0, 4), [R(4, 10)]),  # front cut
        (R(0, 10), R(8, 12), [R(0, 8)]),  # back cut
        (R(0, 10), R(0, 10), []),  # all of it
        (R(2, 8), R(0, 10), []),  # covered
        (R(5, 5), R(20, 30), []),  # empty stays empty
    ],
)
def test_minus(a, b, pieces):
    assert a.minus(b) == pieces


@pytest.mark.parametrize(
    "r, aligned",
    [
        (R(0, 0x9FC00), R(0, 0x9F000)),  # QEMU's low RAM: end rounded down
        (R(0x100, 0x3000), R(0x1000, 0x3000)),  # start rounded up
        (R(0xFFF, 0x2001), R(0x1000, 0x2000)),  # both
        (R(0x1000, 0x2000), R(0x1000, 0x2000)),  # already aligned
        (R(0x100, 0xFFF), None),  # no whole page inside
        (R(0x800, 0x1800), None),  # straddles a boundary, still no whole page
        (R(0x1000, 0x1000), None),  # empty
    ],
)
def test_page_aligned_inside(r, aligned):
    assert r.page_aligned_inside() == aligned


@pytest.mark.parametrize(
    "ranges, merged",
    [
        ([], []),
        ([R(20, 30), R(0, 10)], [R(0, 10), R(20, 30)]),  # sorted, gap kept
        ([R(0, 10), R(10, 20)], [R(0, 20)]),  # touching joined
        ([R(0, 10), R(5, 20)], [R(0, 20)]),  # overlapping joined
        ([R(0, 30), R(5, 10)], [R(0, 30)]),  # nested swallowed
        ([R(10, 20), R(0, 5), R(5, 10), R(40, 50)], [R(0, 20), R(40, 50)]),
        ([R(0, 10), R(15, 15), R(3, 3)], [R(0, 10)]),  # empty ranges dropped
    ],
)
def test_merge(ranges, merged):
    assert merge(ranges) == merged


@pytest.mark.parametrize(
    "ranges, taken, remaining",
    [
        ([R(0, 100)], [], [R(0, 100)]),
        ([R(0, 100)], [R(10, 20), R(50, 60)], [R(0, 10), R(20, 50), R(60, 100)]),
        ([R(0, 100)], [R(50, 60), R(10, 20)], [R(0, 10), R(20, 50), R(60, 100)]),  # unsorted taken
        ([R(0, 10), R(20, 30)], [R(5, 25)], [R(0, 5), R(25, 30)]),  # one cut across two ranges
        ([R(0, 10), R(10, 20)], [R(5, 15)], [R(0, 5), R(15, 20)]),  # touching input merged first
        ([R(0, 10)], [R(0, 10)], []),
        ([R(0, 10)], [R(0, 100)], []),  # taken wider than the range
        ([R(0, 10)], [R(10, 20)], [R(0, 10)]),  # touching taken: nothing removed
    ],
)
def test_subtract(ranges, taken, remaining):
    assert subtract(ranges, taken) == remaining


@pytest.mark.parametrize(
    "r, ranges, covered",
    [
        (R(0, 10), [R(0, 10)], True),
        (R(2, 8), [R(0, 10)], True),
        (R(0, 20), [R(0, 10), R(10, 20)], True),  # across touching ranges
        (R(0, 20), [R(10, 20), R(0, 10)], True),
        (R(0, 20), [R(0, 10), R(11, 20)], False),  # one byte missing
        (R(0, 11), [R(0, 10)], False),
        (R(5, 5), [], True),  # nothing to cover
        (R(0, 1), [], False),
    ],
)
def test_covered_by(r, ranges, covered):
    assert covered_by(r, ranges) is covered
