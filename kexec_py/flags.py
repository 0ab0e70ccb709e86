"""kexec_load flags (include/uapi/linux/kexec.h)."""

from __future__ import annotations

from kexec_py.arch import KEXEC_ARCH_MASK, arch_of_kexec_flags


class KexecFlags:
    """The flag bits, as plain ints: an enum.IntFlag class takes longer to define than
    the rest of this module to import, on every load."""

    ON_CRASH = 0x1
    PRESERVE_CONTEXT = 0x2


_NAMES = ((KexecFlags.ON_CRASH, "KEXEC_ON_CRASH"), (KexecFlags.PRESERVE_CONTEXT, "KEXEC_PRESERVE_CONTEXT"))


def describe_flags(flags: int) -> str:
    """e.g. 'KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386'."""
    names = [name for bit, name in _NAMES if flags & bit]
    arch = arch_of_kexec_flags(flags)
    names.append(arch.kexec_arch_name if arch else f"KEXEC_ARCH({(flags & KEXEC_ARCH_MASK) >> 16})")
    return "|".join(names)
