"""kexec_load flags (include/uapi/linux/kexec.h)."""

from __future__ import annotations

import enum

from kexec_py.arch import KEXEC_ARCH_MASK, arch_of_kexec_flags


class KexecFlags(enum.IntFlag):
    ON_CRASH = 0x1
    PRESERVE_CONTEXT = 0x2


def describe_flags(flags: int) -> str:
    """e.g. 'KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386'."""
    names = [f"KEXEC_{flag.name}" for flag in KexecFlags if flags & flag]
    arch = arch_of_kexec_flags(flags)
    names.append(arch.kexec_arch_name if arch else f"KEXEC_ARCH({(flags & KEXEC_ARCH_MASK) >> 16})")
    return "|".join(names)
