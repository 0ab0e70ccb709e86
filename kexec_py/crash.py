"""The crash kernel (kexec -p): the memory the running kernel reserved for it
(crashkernel=), read from /proc/iomem as kexec-tools does.

Readers take the machine's root directory (--machine-root), like kexec_py.memmap.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from kexec_py.errors import EXIT_USAGE, KexecError
from kexec_py.machine_files import read_text
from kexec_py.ranges import Range, align_down
from kexec_py.segments import Segment
from kexec_py.value import frozen

CRASH_KERNEL = "Crash kernel"
# Nested /proc/iomem lines too: the reservation sits inside a System RAM entry.
_IOMEM_LINE = re.compile(r"\s*([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) : (.*)")

class NotReserved(KexecError):
    exit_code = EXIT_USAGE  # kexec-tools dies with 1 here


NOT_RESERVED = ("no memory is reserved for a crash kernel: boot this kernel with crashkernel=SIZE"
                " (e.g. crashkernel=256M) before kexec -p")


# What a crash kernel needs on top of the user's line (kdump-tools' KDUMP_CMDLINE_APPEND):
# one CPU (the others are stopped mid-flight), devices reset by their drivers before use,
# interrupts polled (the crashed kernel left controllers in any state). A parameter the
# line already has, by any of its names, is not added again.
CRASH_PARAMETERS = (("maxcpus=1", ("maxcpus", "nr_cpus")), ("reset_devices", ("reset_devices",)),
                    ("irqpoll", ("irqpoll",)))


def crash_command_line(line: str | None, elfcorehdr: int | None = None) -> str:
    """The crash kernel's command line: line (--reuse-cmdline without crashkernel=, then
    --append), then elfcorehdr=<KiB>K where kexec-py placed the ELF core header
    (kexec_load; kexec_file_load's kernel adds its own), then CRASH_PARAMETERS."""
    from kexec_py.cmdline import parameter_name, parameters

    words = parameters(line or "")
    names = {parameter_name(p) for p in words}
    if elfcorehdr is not None:
        words = [w for w in words if parameter_name(w) != "elfcorehdr"] + [f"elfcorehdr={elfcorehdr >> 10}K"]
    words += [text for text, aliases in CRASH_PARAMETERS if not names.intersection(aliases)]
    return " ".join(words)


def parse_crash_reservation(iomem: str) -> tuple[Range, ...]:
    """The "Crash kernel" ranges of /proc/iomem text, in order (end exclusive)."""
    found = []
    for line in iomem.splitlines():
        match = _IOMEM_LINE.fullmatch(line)
        if match and match[3].strip() == CRASH_KERNEL:
            start, end = int(match[1], 16), int(match[2], 16)
            if end >= start:
                found.append(Range(start, end + 1))
    return tuple(found)


def reserved_size(ranges: Sequence[Range]) -> int:
    """--print-ckr-size: from the first reservation's start to the last one's end, as
    kexec-tools' get_crash_kernel_load_range() spans them."""
    return ranges[-1].end - ranges[0].start if ranges else 0


def crash_reservation(root: str = "/") -> tuple[Range, ...]:
    """The crashkernel= reservation of the machine below root; KexecError (one line)
    when there is none, as kexec-tools' is_crashkernel_mem_reserved() refuses."""
    path = os.path.join(root, "proc/iomem")
    try:
        text = read_text(path, "ascii", "replace")
    except OSError as e:
        raise KexecError(f"cannot read {path}: {e.strerror}") from None
    ranges = parse_crash_reservation(text)
    if ranges and all(r.start == 0 for r in ranges):
        raise KexecError(f"{path} hides its addresses from non-root users; run as root")
    if not ranges:
        raise NotReserved(NOT_RESERVED)
    return ranges


# --- a crash kernel through kexec_load: kexec-py writes what kexec_file_load's kernel would --------

LOW_RAM = Range(0, 0xA0000)  # the 640 KiB below the VGA hole: an i386 kernel's trampoline needs it


@frozen
class CrashLayout:
    """Where a kexec_load crash kernel goes: the ELF core header at the top of the
    reservation, everything else (kernel, initrd, zero page, purgatory) below it."""

    header: Segment
    window: Range
    usable_ram: tuple[Range, ...]  # the only RAM its zero page's e820 lists as usable
    command_line: str  # with elfcorehdr=


def crash_layout(line: str | None, reservation: Range, header: bytes) -> CrashLayout:
    """Pure: the header placed, the RAM the crash kernel may use and its command line
    (crash_command_line()). The RAM is the low 640 KiB and the window, given in the
    zero page's e820 table (the rest of RAM reserved, firmware entries kept) as kexec-tools
    and kexec_file_load's kernel do: the decompressor picks a KASLR spot from that
    table alone (memmap= on the command line does not bind it), so with all of RAM
    listed it may land in the crashed kernel's memory the core header describes.
    kexec-tools backs the low 640 KiB up first; since Linux 5.13 ("x86/setup: always
    reserve the first 1M of RAM") the crashed kernel kept no data there, so kexec-py does not."""
    spot = Range(align_down(reservation.end - len(header)), reservation.end)
    window = Range(reservation.start, spot.start)
    if window.size < MIN_WINDOW:
        raise KexecError(f"the crashkernel= reservation {reservation} is too small for a crash kernel"
                         f" (at least {MIN_WINDOW >> 20} MiB)")
    return CrashLayout(Segment(spot.start, spot.size, header, "ELF core header (elfcorehdr=)"), window,
                       (LOW_RAM, window), crash_command_line(line, spot.start))


MIN_WINDOW = 16 << 20
