"""The next kernel's command line: --command-line/--append and --reuse-cmdline."""

from __future__ import annotations

import os

from kexec_py.errors import KexecError
from kexec_py.machine_files import read_text

# One parameter: unquoted text and "quoted spans" (which may hold spaces) glued together.
# Compiled on first use (re's cache): a load without --reuse-cmdline never imports re.
_PARAMETER = r'(?:[^\s"]+|"[^"]*"?)+'

# Parameters that describe how *this* boot happened and would mislead the next kernel:
# BOOT_IMAGE= (the boot loader's note), kexec_jump_back_entry= (purgatory's note:
# stale in any later boot, and purgatory appends a fresh one when it applies).
NOT_REUSED = ("BOOT_IMAGE", "kexec_jump_back_entry")


def parameters(cmdline: str) -> list[str]:
    import re

    return re.findall(_PARAMETER, cmdline)


def parameter_name(parameter: str) -> str:
    return parameter.split("=", 1)[0]


def reusable(cmdline: str, crash: bool = False) -> str:
    """The running kernel's command line minus what belongs to this boot only; for
    a crash kernel (-p) also crashkernel=, as kexec-tools drops it: the crash kernel
    must not reserve memory again."""
    dropped = (*NOT_REUSED, "crashkernel") if crash else NOT_REUSED
    return " ".join(p for p in parameters(cmdline) if parameter_name(p) not in dropped)


def compose(reused: str | None, append: str | None) -> str | None:
    """kexec-tools' rule: the reused line first, then the --append text; None when neither was asked."""
    pieces = [p for p in (reused, append) if p]
    if reused is None and append is None:
        return None
    return " ".join(pieces)


def read_proc_cmdline(machine_root: str = "/") -> str:
    path = os.path.join(machine_root, "proc/cmdline")
    try:
        return read_text(path, "utf-8", "surrogateescape").rstrip("\n\0")
    except OSError as e:
        raise KexecError(f"cannot read {path}: {e.strerror}") from None
