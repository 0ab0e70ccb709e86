"""Planning a kexec_load: backup windows, the checks the kernel would make, the plan."""

import pytest

from kexec_py.errors import PlanError
from kexec_py.planner import KEXEC_SEGMENT_MAX, backup_segments, check_segments, make_plan
from kexec_py.ranges import Range
from kexec_py.segments import KexecPlan, LoadedImage, Segment, describe_flags
from unit_support import ram_map

# A QEMU -m 512 machine: RAM 0x0-0x9fbff and 0x100000-0x1ffdffff; MemTotal 512000 kB,
# so the kernel's half-of-RAM limit is 256000 KiB (0xfa00000 bytes).
MEMORY = ram_map((0x0, 0x9FC00), (0x100000, 0x1FFE0000), reserved=[(0x9FC00, 0x100000)],
                 total_ram=512000 * 1024)
HALF = 512000 * 1024 // 2
RAM_TEXT = "test map has 0x1000-0x9efff, 0x100000-0x1ffdffff"
NARROW = "narrow --mem-min/--mem-max"


def seg(mem, memsz, bufsz=0, source="seg"):
    return Segment(mem, memsz, b"\x90" * bufsz, source)


# An image with a hole: one page at 16 MiB, one page at 16 MiB + 12 KiB.
IMAGE = LoadedImage(0x1000000, (seg(0x1000000, 0x1000, 16, "text"), seg(0x1003000, 0x1000, 0, "bss")))


def spans(segments):
    return [(s.mem, s.mem + s.memsz) for s in segments]


# --- backup_segments -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "window, backup",
    [
        # the hole between the image's segments and the rest of the window
        (Range(0x1000000, 0x1800000), [(0x1001000, 0x1003000), (0x1004000, 0x1800000)]),
        # from 0: page 0 and the reserved 0x9fc00-0xfffff stay out
        (Range(0x0, 0x2000000),
         [(0x1000, 0x9F000), (0x100000, 0x1000000), (0x1001000, 0x1003000), (0x1004000, 0x2000000)]),
        # unaligned window edges clamp inward to whole pages
        (Range(0x800, 0x100800), [(0x1000, 0x9F000)]),
        (Range(0x1000000, 0x1004800), [(0x1001000, 0x1003000)]),
        # a window past the end of RAM stops at the end of RAM
        (Range(0x1000000, 0x40000000), [(0x1001000, 0x1003000), (0x1004000, 0x1FFE0000)]),
        # no RAM in the window, or no RAM the image leaves free
        (Range(0xA0000, 0x100000), []),
        (Range(0x1000000, 0x1001000), []),
    ],
    ids=["hole-and-rest", "from-zero", "unaligned-low", "unaligned-high", "past-ram", "reserved", "image-only"],
)
def test_backup_segments(window, backup):
    segments = backup_segments(IMAGE, MEMORY, window)
    assert spans(segments) == backup
    assert all(s.bufsz == 0 and s.source == "backup (zero-filled scratch)" for s in segments)


# --- check_segments ------------------------------------------------------------------------------

ACCEPTED = {
    "one-page": [seg(0x1000000, 0x1000, 0x1000)],
    "sixteen": [seg(0x1000000 + i * 0x2000, 0x1000) for i in range(KEXEC_SEGMENT_MAX)],
    "touching": [seg(0x1000000, 0x1000), seg(0x1001000, 0x1000)],
    "low-ram": [seg(0x1000, 0x9E000)],
    "last-page": [seg(0x1FFDF000, 0x1000)],
    "exactly-half": [seg(0x1000000, HALF)],
    "half-in-total": [seg(0x1000000, HALF // 2), seg(0x10000000, HALF // 2)],
}


@pytest.mark.parametrize("segments", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_check_segments_accepts(segments):
    check_segments(tuple(segments), MEMORY)  # raises on refusal


REFUSED = [
    ("seventeen", [seg(0x1000000 + i * 0x2000, 0x1000) for i in range(17)],
     f"17 segments, the kernel accepts at most 16 ({NARROW})"),
    ("unaligned-mem", [seg(0x1000800, 0x1000)], "segment 0x1000800-0x10017ff (seg) is not page-aligned"),
    ("unaligned-memsz", [seg(0x1000000, 0x800)], "segment 0x1000000-0x10007ff (seg) is not page-aligned"),
    ("bufsz>memsz", [seg(0x1000000, 0x1000, 0x1001)], "segment 0x1000000-0x1000fff (seg) has more data than memory"),
    ("overlap", [seg(0x1000000, 0x2000, 0, "a"), seg(0x1001000, 0x1000, 0, "b")],
     "segments overlap: 0x1000000-0x1001fff (a) and 0x1001000-0x1001fff (b)"),
    ("overlap-unsorted", [seg(0x1001000, 0x1000, 0, "b"), seg(0x1000000, 0x2000, 0, "a")],
     "segments overlap: 0x1000000-0x1001fff (a) and 0x1001000-0x1001fff (b)"),
    ("page-0", [seg(0x0, 0x1000)], f"segment 0x0-0xfff (seg) is not inside RAM ({RAM_TEXT})"),
    ("across-reserved", [seg(0x9E000, 0x2000)], f"segment 0x9e000-0x9ffff (seg) is not inside RAM ({RAM_TEXT})"),
    ("past-ram", [seg(0x1FFDF000, 0x2000)], f"segment 0x1ffdf000-0x1ffe0fff (seg) is not inside RAM ({RAM_TEXT})"),
    ("one-above-half", [seg(0x1000000, HALF + 0x1000)],
     "segment 0x1000000-0x10a00fff needs 256004 KiB but the kernel refuses (EINVAL) more than half"
     f" of RAM (256000 KiB of 512000 KiB): {NARROW}"),
    ("total-above-half", [seg(0x1000000, 0x8000000), seg(0x10000000, 0x8000000)],
     "the image with its backup needs 262144 KiB but the kernel refuses (EINVAL) more than half"
     f" of RAM (256000 KiB of 512000 KiB): {NARROW}"),
]


@pytest.mark.parametrize("segments, message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_check_segments_refuses(segments, message):
    with pytest.raises(PlanError) as refused:
        check_segments(tuple(segments), MEMORY)
    assert str(refused.value) == message


# --- make_plan -----------------------------------------------------------------------------------

def test_make_plan_without_window_is_the_image_sorted():
    image = LoadedImage(0x1003000, (seg(0x1003000, 0x1000, 0, "second"), seg(0x1000000, 0x1000, 4, "first")))
    plan = make_plan(image, 0x30002, MEMORY)
    assert isinstance(plan, KexecPlan)
    assert (plan.entry, plan.flags) == (0x1003000, 0x30002)
    assert [s.source for s in plan.segments] == ["first", "second"]
    assert [s.bufsz for s in plan.segments] == [4, 0]


def test_make_plan_with_window_adds_backup_in_address_order():
    plan = make_plan(IMAGE, 0x30002, MEMORY, Range(0x100000, 0x1800000))
    assert spans(plan.segments) == [
        (0x100000, 0x1000000), (0x1000000, 0x1001000), (0x1001000, 0x1003000),
        (0x1003000, 0x1004000), (0x1004000, 0x1800000),
    ]
    assert [s.source for s in plan.segments] == ["backup (zero-filled scratch)", "text",
                                                 "backup (zero-filled scratch)", "bss",
                                                 "backup (zero-filled scratch)"]


@pytest.mark.parametrize(
    "window, message",
    [
        (Range(0x2000000, 0x3000000),
         "segment 0x1000000-0x1000fff (text) lies outside --mem-min/--mem-max 0x2000000-0x2ffffff"),
        (Range(0x1000000, 0x1003800),  # the bss page sticks out
         "segment 0x1003000-0x1003fff (bss) lies outside --mem-min/--mem-max 0x1000000-0x10037ff"),
    ],
)
def test_make_plan_refuses_an_image_outside_the_window(window, message):
    with pytest.raises(PlanError) as refused:
        make_plan(IMAGE, 0x30002, MEMORY, window)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "window, message",
    [
        # every piece is below half of RAM, their sum is not
        (Range(0x100000, 0x10000000), "the image with its backup needs 261120 KiB"),
        # all of RAM: the piece above the image alone is more than half
        (Range(0x0, 0x20000000), "segment 0x1004000-0x1ffdffff needs 507760 KiB"),
    ],
)
def test_make_plan_checks_half_of_ram_with_the_backup(window, message):
    with pytest.raises(PlanError) as refused:
        make_plan(IMAGE, 0x30002, MEMORY, window)
    assert str(refused.value) == (
        f"{message} but the kernel refuses (EINVAL) more than half of RAM (256000 KiB of 512000 KiB): {NARROW}"
    )


def test_make_plan_refuses_an_image_outside_ram():
    image = LoadedImage(0xA0000, (seg(0xA0000, 0x1000, 4, "vga"),))
    with pytest.raises(PlanError, match=r"segment 0xa0000-0xa0fff \(vga\) is not inside RAM"):
        make_plan(image, 0x30002, MEMORY)


@pytest.mark.parametrize("flags, text", [
    (0x30002, "KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386"),
    (0x3E0001, "KEXEC_ON_CRASH|KEXEC_ARCH_X86_64"),
    (0x3E0000, "KEXEC_ARCH_X86_64"),
    (0x280003, "KEXEC_ON_CRASH|KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH(40)"),  # an arch kexec-py has no table for
])
def test_describe_flags(flags, text):
    """The plan's flags line (--dry-run, -d) names each flag and the arch as the kernel's headers do."""
    assert describe_flags(flags) == text
