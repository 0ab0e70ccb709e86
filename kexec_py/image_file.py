"""An image file mapped read-only: loaders slice it without copying."""

from __future__ import annotations

import mmap
import os
import stat

from kexec_py.errors import ImageError
from kexec_py.value import frozen

# What a path that is no regular file is, for the one-line refusal.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@frozen
class ImageFile:
    path: str
    data: memoryview  # the whole file, mapped

    @classmethod
    def open(cls, path: str) -> ImageFile:
        """The file at path, mapped; ImageError (one line) for anything that is not a
        non-empty regular file that can be read. O_NONBLOCK: opening a FIFO must not wait
        for a writer (it is refused right after the open, as every non-regular file is)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise ImageError(f"cannot open {path}: {e.strerror}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
                raise ImageError(f"{path}: is {kind}, not an image")
            mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except ValueError:  # mmap of an empty file
            raise ImageError(f"{path}: empty file") from None
        except OSError as e:  # a regular file that cannot be mapped: /proc, /sys, some FUSE files
            raise ImageError(f"{path}: cannot map the file ({e.strerror}): not an image") from None
        finally:
            os.close(fd)
        return cls(path, memoryview(mapped))
