"""Image formats, probed in order like kexec-tools' per-arch file-type tables
(Arch.image_types: i386 elf-x86, bzImage; x86_64 elf-x86_64, bzImage64).

Each loader module provides loader(type_name): an object with `name`, `probe(data)`
(cheap, imports nothing heavy) and `load(image, request, target)` -> LoadedImage.
One module serves a format on every arch; target.arch says how the image is entered.
"""

from __future__ import annotations

from kexec_py.errors import ImageError, UsageError
from kexec_py.arch import ARCHES, Arch
from kexec_py.image_file import ImageFile
from kexec_py.memmap import MemoryMap
from kexec_py.ranges import Range
from kexec_py.segments import LoadedImage
from kexec_py.value import frozen

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Protocol

    class ImageLoader(Protocol):
        name: str

        def probe(self, data: memoryview) -> bool: ...

        def load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage: ...


@frozen
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
    usable_ram: tuple[Range, ...] | None = None  # a crash kernel's only RAM (its e820); None: all, or the window

    @property
    def linux_options(self) -> list[str]:
        """The Linux-only options given, spelled as on the command line."""
        return [name for name, given in (("--command-line/--append/--reuse-cmdline", self.command_line is not None),
                                         ("--initrd", self.initrd is not None),
                                         ("--no-checks", self.no_checks)) if given]


@frozen
class Target:
    """The machine the image will run on."""

    arch: Arch
    memory: MemoryMap
    # The machine's root directory (--machine-root): a Linux load reads the running
    # kernel's zero page below it and carries its firmware findings over (a payload
    # load does not even import that code); None: no zero page to start from.
    root: str | None = None


def _loader(arch: Arch, type_name: str) -> ImageLoader:
    """The loader for one of arch's types: its module is imported only when its turn
    comes, so loading an ELF payload never imports the bzImage machinery (nor importlib:
    the import statement's own function suffices)."""
    module = dict(arch.image_types)[type_name]
    return __import__(f"kexec_py.loaders.{module}", fromlist=["loader"]).loader(type_name)


def choose_loader(image: ImageFile, type_name: str | None, arch: Arch) -> ImageLoader:
    """The loader named by -t, else the first of arch's whose probe accepts the file."""
    known = ", ".join(arch.image_type_names())
    if type_name is not None:
        if type_name not in arch.image_type_names():
            other = next((a.name for a in ARCHES.values() if type_name in a.image_type_names()), None)
            if other:
                raise UsageError(f"image type {type_name!r} is {other}'s; {arch.name} kernels load {known}")
            raise UsageError(f"unknown image type {type_name!r} (known: {known})")
        return _loader(arch, type_name)
    for name in arch.image_type_names():
        loader = _loader(arch, name)
        if loader.probe(image.data):
            return loader
    raise ImageError(f"{image.path}: cannot determine the file type (known: {known})")
