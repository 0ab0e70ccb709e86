"""kexec_load flags (include/uapi/linux/kexec.h) and the architectures we drive."""

from __future__ import annotations

import enum
import os


class KexecFlags(enum.IntFlag):
    ON_CRASH = 0x1
    PRESERVE_CONTEXT = 0x2


class Arch(enum.Enum):
    """The running kernel's architecture: it decides how an image is entered."""

    I386 = "i386"
    X86_64 = "x86_64"

    @property
    def kexec_arch(self) -> int:
        """The KEXEC_ARCH_* field of the flags word, named by the kernel's arch
        (a 32-bit process on a 64-bit kernel must still say X86_64)."""
        return {Arch.I386: 3 << 16, Arch.X86_64: 62 << 16}[self]

    @property
    def address_bits(self) -> int:
        """The width of the kernel's unsigned long: an entry point or address must fit."""
        return 32 if self is Arch.I386 else 64

    @classmethod
    def running(cls) -> Arch:
        machine = os.uname().machine
        if machine == "x86_64":
            return cls.X86_64
        if machine in ("i386", "i486", "i586", "i686"):
            return cls.I386
        raise ValueError(f"unsupported machine {machine!r} (kexec-py supports i386 and x86_64)")


KEXEC_ARCH_MASK = 0xFFFF0000


def describe_flags(flags: int) -> str:
    """e.g. 'KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386'."""
    names = [f"KEXEC_{flag.name}" for flag in KexecFlags if flags & flag]
    arch_field = flags & KEXEC_ARCH_MASK
    arch_names = {a.kexec_arch: "KEXEC_ARCH_" + ("386" if a is Arch.I386 else "X86_64") for a in Arch}
    names.append(arch_names.get(arch_field, f"KEXEC_ARCH({arch_field >> 16})"))
    return "|".join(names)
