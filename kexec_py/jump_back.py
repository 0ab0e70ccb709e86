"""--load-jump-back-helper: in a kernel started by a preserve-context kexec,
load the way back to the kernel that jumped here.

Purgatory appended ` kexec_jump_back_entry=0x...` (the caller kernel's
re-entry point) to this kernel's command line. Loading that address as the
entry of a preserve-context image makes the next `kexec -e` return to the
first kernel, whose own `kexec -e` then returns 0; the first kernel keeps our
re-entry point, so its next `kexec -e` resumes us.

On x86_64 the kernel calls that entry on an identity map of only its own RAM
and the image's segments, and the caller's re-entry page is in neither: the
x86_64 purgatory saved a copy of that page (a SETUP_JUMP_BACK_PAGE setup_data
node, /sys/kernel/boot_params/setup_data), and the helper loads it as its one
segment. kexec_load maps it; the jump swaps in the very bytes the page holds,
and the way back swaps them out again. The kexec_jump module maps the entry
itself (the page is not RAM of this kernel, and the module swaps only RAM), so
through it the helper is the empty segment, as on i386.
"""

from __future__ import annotations

import os
import re

from kexec_py.errors import KexecError
from kexec_py.arch import Arch
from kexec_py.machine_files import read_bytes, read_text
from kexec_py.segments import KexecFlags, KexecPlan, Segment

JUMP_BACK_KEY = "kexec_jump_back_entry"
_JUMP_BACK = re.compile(r"(?:^|\s)" + JUMP_BACK_KEY + r"=(\S*)")



def empty_segment(arch: Arch) -> Segment:
    """kexec_load with nr_segments == 0 means "unload", so the helper passes one
    segment that describes nothing: buf NULL, bufsz 0, memsz 0, at Arch.empty_segment_mem
    (kexec-tools puts it at 0, which Linux 6.12 refuses)."""
    return Segment(arch.empty_segment_mem, 0, b"",
                   "empty (nr_segments 0 would unload; this one carries nothing)")


class NothingToJumpBack(KexecError):
    """This kernel was not started by a preserve-context kexec (or --entry is wrong)."""


def entry_from_cmdline(cmdline: str, source: str = "/proc/cmdline") -> int:
    """The last kexec_jump_back_entry= on cmdline (purgatory appends it at the end)."""
    values = _JUMP_BACK.findall(cmdline)
    if not values:
        raise NothingToJumpBack(
            f"nothing to jump back to: {source} has no {JUMP_BACK_KEY}= (this kernel was not started"
            " by a preserve-context kexec; --entry=ADDR names the return address)"
        )
    text = values[-1]
    try:
        entry = int(text, 16) if text[:2].lower() == "0x" else int(text, 0)
    except ValueError:
        raise NothingToJumpBack(
            f"nothing to jump back to: {source} has {JUMP_BACK_KEY}={text!r}, not an address"
        ) from None
    return _checked(entry, f"{source} {JUMP_BACK_KEY}={text}")


def _checked(entry: int, what: str) -> int:
    if entry == 0:
        raise NothingToJumpBack(f"nothing to jump back to: {what} is 0")
    return entry


SETUP_DATA_DIR = "sys/kernel/boot_params/setup_data"  # below the machine root
PAGE_SIZE = 4096


def read_jump_back_page(root: str = "/") -> tuple[int, bytes] | None:
    """(address, bytes) of purgatory's copy of the re-entry page, None when this kernel's
    zero page has none (i386, or not started by kexec-py's x86_64 purgatory)."""
    from kexec_py.bootparams import JUMP_BACK_PAGE, SETUP_JUMP_BACK_PAGE

    directory = os.path.join(root, SETUP_DATA_DIR)
    try:
        nodes = sorted(os.listdir(directory))
    except OSError:
        return None
    for node in nodes:
        try:
            kind = int(read_text(os.path.join(directory, node, "type")).strip(), 0)
            if kind != SETUP_JUMP_BACK_PAGE:
                continue
            data = read_bytes(os.path.join(directory, node, "data"), JUMP_BACK_PAGE.size + 1)
        except (OSError, ValueError):
            continue
        if len(data) == JUMP_BACK_PAGE.size:
            address, page = JUMP_BACK_PAGE.unpack(data)
            return address, page
    return None


def checked_entry(entry: int, arch: Arch, source: str) -> int:
    """entry, if an arch kernel can return there; NothingToJumpBack (one line) if not."""
    _checked(entry, source)
    if entry >> arch.address_bits:
        raise NothingToJumpBack(f"nothing to jump back to: {entry:#x} ({source}) is beyond the"
                                f" {arch.address_bits}-bit address space of an {arch.name} kernel")
    return entry


def jump_back_plan(entry: int, arch: Arch, source: str, saved_page: tuple[int, bytes] | None = None,
                   entry_mapped: bool = False) -> KexecPlan:
    """Exactly the kexec_load of kexec-tools' --load-jump-back-helper.

    Built here rather than through planner.make_plan on purpose: its one
    segment has no memory, outside RAM, which the planner's RAM checks would
    (rightly, for any other load) refuse. The kernel accepts it: a zero-sized
    segment loads nothing. Where the arch needs the re-entry page mapped
    (Arch.jump_back_page_copy) and the backend does not map the entry itself
    (entry_mapped), the segment is that page instead, from saved_page
    (read_jump_back_page) when it is the entry's.
    """
    checked_entry(entry, arch, source)
    notes = [f"jump-back helper: kexec -e returns to {entry:#x} ({source}), the kernel that jumped here"]
    segment = empty_segment(arch)
    if arch.jump_back_page_copy and not entry_mapped:
        page_at = entry & ~(PAGE_SIZE - 1)
        if saved_page is not None and saved_page[0] == page_at:
            segment = Segment(page_at, PAGE_SIZE, saved_page[1],
                              "the re-entry page as purgatory saved it (mapped for the jump, the same bytes)")
        else:
            notes.append(f"no copy of the page at {page_at:#x} from kexec-py's purgatory"
                         f" ({SETUP_DATA_DIR}): an {arch.name} kernel maps only its own RAM and the"
                         " image's segments for the jump, so the return faults unless that page is one")
    return KexecPlan(entry, int(KexecFlags.PRESERVE_CONTEXT) | arch.kexec_arch, (segment,), tuple(notes))
