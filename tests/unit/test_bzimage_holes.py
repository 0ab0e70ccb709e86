"""Where segments fit: free RAM and hole finding (kexec_py.holes), as tables."""

import pytest

from kexec_py.holes import available, find_space, ram_size, ram_top_for_budget
from kexec_py.ranges import Range

MiB = 1 << 20
# A QEMU -m 512 machine's page-aligned RAM (MemoryMap.ram()).
RAM = [Range(0x1000, 0x9F000), Range(0x100000, 0x1FFE0000)]


def r(start, end):
    return Range(start, end)


@pytest.mark.parametrize(
    "taken, limits, free",
    [
        ([], None, RAM),
        # a segment splits a range; one at a range's edge trims it
        ([r(0x1000000, 0x1200000)], None,
         [r(0x1000, 0x9F000), r(0x100000, 0x1000000), r(0x1200000, 0x1FFE0000)]),
        ([r(0x1000, 0x10000)], None, [r(0x10000, 0x9F000), r(0x100000, 0x1FFE0000)]),
        # limits clamp (--mem-min/--mem-max), several limits at once (a window with low RAM)
        ([], [r(0x2000000, 0x3000000)], [r(0x2000000, 0x3000000)]),
        ([], [r(0, 0x100000), r(0x2000000, 0x3000000)], [r(0x1000, 0x9F000), r(0x2000000, 0x3000000)]),
        ([r(0x2800000, 0x2900000)], [r(0x2000000, 0x3000000)],
         [r(0x2000000, 0x2800000), r(0x2900000, 0x3000000)]),
        # limits outside RAM: nothing
        ([], [r(0xA0000, 0x100000)], []),
        ([], [r(0x40000000, 0x50000000)], []),
    ],
    ids=["all", "split", "edge", "limits", "two-limits", "limits-and-taken", "hole", "beyond"],
)
def test_available(taken, limits, free):
    assert available(RAM, taken, limits) == free


@pytest.mark.parametrize(
    "size, options, found",
    [
        # lowest fit: the first range with room
        (0x1000, {}, r(0x1000, 0x2000)),
        (0x9E000, {}, r(0x1000, 0x9F000)),
        (0x9F000, {}, r(0x100000, 0x19F000)),
        # alignment of the start address
        (0x1000, {"align": 0x200000}, r(0x200000, 0x201000)),
        (0x1000, {"align": 0x10000, "low": 0x10001}, r(0x20000, 0x21000)),
        # low/high bounds
        (0x1000, {"low": 0x10000, "high": 0x100000}, r(0x10000, 0x11000)),
        (0x1000, {"low": 0x9E000, "high": 0x100000}, r(0x9E000, 0x9F000)),
        (0x2000, {"low": 0x9E000, "high": 0x100000}, None),
        (16 * MiB, {"low": 0x1000000, "align": 0x200000}, r(0x1000000, 0x2000000)),
        # top-down: the highest fit, aligned down
        (0x1000, {"top_down": True}, r(0x1FFDF000, 0x1FFE0000)),
        (0x1800, {"top_down": True}, r(0x1FFDE000, 0x1FFDF800)),
        (0x1000, {"top_down": True, "high": 0x38000000}, r(0x1FFDF000, 0x1FFE0000)),
        (0x1000, {"top_down": True, "high": 0x10000000}, r(0xFFFF000, 0x10000000)),
        (0x1000, {"top_down": True, "high": 0x100000}, r(0x9E000, 0x9F000)),
        (0x1000, {"top_down": True, "high": 0x1000}, None),
        # nothing big enough
        (0x20000000, {}, None),
        (0x20000000, {"top_down": True}, None),
    ],
)
def test_find_space(size, options, found):
    assert find_space(RAM, size, **options) == found


def test_find_space_refuses_nothing():
    with pytest.raises(ValueError):
        find_space(RAM, 0)


@pytest.mark.parametrize(
    "budget, start, top",
    [
        (0x1000, 0, 0x2000),  # the first page of RAM is 0x1000
        (0x9D000, 0, 0x9E000),
        # all low RAM: the hole up to 1 MiB costs nothing, so the top is the next RAM
        (0x9E000, 0, 0x100000),
        (0x9E000 + 0x800, 0, 0x100000),  # less than a page more: page-aligned down
        (0x9E000 + 1 * MiB, 0, 0x200000),  # then continues above 1 MiB
        (1 << 40, 0, 0x1FFE0000),  # all of RAM fits: its end
        (16 * MiB, 0x1000000, 0x2000000),
    ],
)
def test_ram_top_for_budget(budget, start, top):
    assert ram_top_for_budget(RAM, budget, start) == top


@pytest.mark.parametrize(
    "window, size",
    [
        ([r(0, 0x200000)], 0x9E000 + MiB),
        ([r(0xA0000, 0x100000)], 0),
        ([r(0, 0x100000), r(0x1000000, 0x2000000)], 0x9E000 + 16 * MiB),
    ],
)
def test_ram_size(window, size):
    assert ram_size(RAM, window) == size
