"""An image file mapped read-only: loaders slice it without copying."""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import BinaryIO

from kexec_py.errors import ImageError


@dataclass
class ImageFile:
    path: str
    data: memoryview  # the whole file, mapped
    stream: BinaryIO  # for parsers that read headers (pyelftools)

    @classmethod
    def open(cls, path: str) -> ImageFile:
        try:
            stream = open(path, "rb")
        except IsADirectoryError:
            raise ImageError(f"{path}: is a directory, not an image") from None
        except OSError as e:
            raise ImageError(f"cannot open {path}: {e.strerror}") from None
        try:
            mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # mmap of an empty file
            stream.close()
            raise ImageError(f"{path}: empty file") from None
        return cls(path, memoryview(mapped), stream)
