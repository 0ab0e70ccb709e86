"""--load-jump-back-helper: in a kernel started by a preserve-context kexec,
load the way back to the kernel that jumped here.

Purgatory appended ` kexec_jump_back_entry=0x...` (the caller kernel's
re-entry point) to this kernel's command line. Loading that address as the
entry of a preserve-context image makes the next `kexec -e` return to the
first kernel, whose own `kexec -e` then returns 0; the first kernel keeps our
re-entry point, so its next `kexec -e` resumes us.
"""

from __future__ import annotations

import re

from kexec_py.errors import KexecError
from kexec_py.flags import Arch, KexecFlags
from kexec_py.segments import KexecPlan, Segment

JUMP_BACK_KEY = "kexec_jump_back_entry"
_JUMP_BACK = re.compile(r"(?:^|\s)" + JUMP_BACK_KEY + r"=(\S*)")

# kexec_load with nr_segments == 0 means "unload", so the helper passes one
# segment that describes nothing: buf NULL, bufsz 0, mem 0, memsz 0.
EMPTY_SEGMENT = Segment(0, 0, b"", "empty (nr_segments 0 would unload; this one carries nothing)")


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


def jump_back_plan(entry: int, arch: Arch, source: str) -> KexecPlan:
    """Exactly the kexec_load of kexec-tools' --load-jump-back-helper.

    Built here rather than through planner.make_plan on purpose: its one
    segment is at address 0 with no memory, which the planner's RAM and
    alignment checks would (rightly, for any other load) refuse. The kernel
    accepts it: a zero-sized segment loads nothing.
    """
    _checked(entry, source)
    if entry >> arch.address_bits:
        raise NothingToJumpBack(f"nothing to jump back to: {entry:#x} ({source}) is beyond the"
                                f" {arch.address_bits}-bit address space of an {arch.value} kernel")
    return KexecPlan(
        entry,
        int(KexecFlags.PRESERVE_CONTEXT) | arch.kexec_arch,
        (EMPTY_SEGMENT,),
        (f"jump-back helper: kexec -e returns to {entry:#x} ({source}), the kernel that jumped here",),
    )
