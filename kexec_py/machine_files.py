"""The running machine's small files (/proc, /sys, /boot, /lib/modules below the
machine root), read with os.open and os.read; and whether the kexec_jump module's
device is there, which every command asks and most answer without kexec_py.shim.

open() builds a file object, a buffer and in text mode a decoder, and the first text
file of an encoding imports its codec: in the i386 guest a sysfs file costs 0.25 ms
this way, 0.6 ms through open(f, "rb") and 0.75 ms (plus 6 ms for the codec, once) in
text mode, and a load reads two dozen of them (README, "Where the time goes").
"""

from __future__ import annotations

import os

_CHUNK = 1 << 16
SHIM_DEVICE = "dev/kexec_jump"  # the kexec_jump module's misc device (kexec_py.shim)


def shim_present(root: str) -> bool:
    return os.path.exists(os.path.join(root, SHIM_DEVICE))


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """The whole file (or its first limit bytes). OSError, with the file name, as
    open() raises it. procfs may return less than asked before the end: read to 0."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    chunks: list[bytes] = []
    size = 0
    try:
        while limit is None or size < limit:
            chunk = os.read(fd, _CHUNK if limit is None else min(_CHUNK, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:  # a directory opens, and read() says EISDIR: name it, as open() would
        e.filename = path
        raise
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path: str, encoding: str = "ascii", errors: str = "strict") -> str:
    """The whole file, decoded (UnicodeDecodeError, a ValueError, when it is not
    encoding and errors is strict)."""
    return read_bytes(path).decode(encoding, errors)


def read_value(path: str) -> str | None:
    """An ASCII file's text without surrounding whitespace (a sysfs or procfs value);
    None when it cannot be read or is not ASCII."""
    try:
        return read_text(path).strip()
    except (OSError, ValueError):
        return None
