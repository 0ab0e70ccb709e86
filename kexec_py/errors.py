"""Errors the CLI turns into one line on stderr and an exit code.

Exit codes follow kexec-tools: 1 for command-line mistakes, 255 for a load or
exec that failed.
"""

from __future__ import annotations

EXIT_USAGE = 1
EXIT_FAILURE = 255


class KexecError(Exception):
    """A failure with a message meant for the user."""

    exit_code = EXIT_FAILURE


class UsageError(KexecError):
    exit_code = EXIT_USAGE


class ImageError(KexecError):
    """The image file is not what its loader needs."""


class PlanError(KexecError):
    """The segment list would be refused by the kernel or would hurt the system."""


class MemoryMapError(KexecError):
    """The machine's memory map cannot be read."""


class NothingLoaded(KexecError):
    exit_code = EXIT_USAGE  # kexec-tools dies with 1 here


class KernelError(KexecError):
    """A syscall failed; carries the errno (None: an OSError without one) and what
    the user can do about it."""

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message)
        self.errno = errno
