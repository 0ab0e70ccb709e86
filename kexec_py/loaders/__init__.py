"""Image formats, probed in order like kexec-tools' file-type table.

Each loader module provides LOADER: an object with `name`, `probe(data)` (cheap,
imports nothing heavy) and `load(image, request, target)` -> LoadedImage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kexec_py.errors import ImageError, UsageError
from kexec_py.flags import Arch
from kexec_py.image_file import ImageFile
from kexec_py.memmap import MemoryMap
from kexec_py.segments import LoadedImage


@dataclass(frozen=True)
class LoadRequest:
    """What the command line asks of a loader."""

    args_style: str | None = None  # "none", "linux" or "elf" (--args-*), None when unsaid
    entry: int | None = None  # --entry overrides the image's own
    preserve_context: bool = False  # --load-preserve-context
    mem_min: int | None = None  # --mem-min/--mem-max: inclusive bounds (a backup window or placement limits)
    mem_max: int | None = None
    # Linux kernels (bzImage, elf-x86 --args-linux):
    command_line: str | None = None  # after --reuse-cmdline and --append; None when neither was given
    initrd: str | None = None  # --initrd/--ramdisk
    no_checks: bool = False  # -i: purgatory skips its SHA-256 check
    purgatory: str | None = None  # purgatory.ro; None: purgatory.default_purgatory_path()

    @property
    def linux_options(self) -> list[str]:
        """The Linux-only options given, spelled as on the command line."""
        return [name for name, given in (("--command-line/--append/--reuse-cmdline", self.command_line is not None),
                                         ("--initrd", self.initrd is not None),
                                         ("--no-checks", self.no_checks)) if given]


@dataclass(frozen=True)
class Target:
    """The machine the image will run on."""

    arch: Arch
    memory: MemoryMap


class ImageLoader(Protocol):
    name: str

    def probe(self, data: memoryview) -> bool: ...

    def load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage: ...


# Probe order and the module of each type: a module is imported only when its
# turn comes, so loading an ELF payload never imports the bzImage machinery.
LOADER_MODULES = {"elf-x86": "elf_x86", "bzImage": "bzimage"}


def _loader(type_name: str) -> ImageLoader:
    import importlib

    return importlib.import_module(f"kexec_py.loaders.{LOADER_MODULES[type_name]}").LOADER


def type_names() -> list[str]:
    return list(LOADER_MODULES)


def choose_loader(image: ImageFile, type_name: str | None) -> ImageLoader:
    """The loader named by -t, else the first whose probe accepts the file."""
    if type_name is not None:
        if type_name not in LOADER_MODULES:
            raise UsageError(f"unknown image type {type_name!r} (known: {', '.join(type_names())})")
        return _loader(type_name)
    for name in LOADER_MODULES:
        loader = _loader(name)
        if loader.probe(image.data):
            return loader
    raise ImageError(f"{image.path}: cannot determine the file type (known: {', '.join(type_names())})")
