"""elf-x86: ELF32/ELF64 executables placed by their PT_LOAD physical addresses.

With --args-none the image gets no boot arguments and no purgatory: the kernel
calls e_entry directly (for a preserve-context load: in physical mode, with the
C calling convention).

With --args-linux the image is a Linux vmlinux: its PT_LOADs go where they were
linked and it is booted like a bzImage (linux_boot: zero page, initrd,
purgatory), entered at e_entry (startup_32 or startup_64) with esi/rsi = zero page.

The type is elf-x86 on i386 and elf-x86_64 on x86_64 (kexec-tools' names): either
way the image must be what the running kernel enters, Arch.elf_machine.
"""

from __future__ import annotations

from dataclasses import replace

from kexec_py.errors import ImageError, UsageError
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest, Target
from kexec_py.planner import limits_window
from kexec_py.ranges import PAGE_SIZE, align_up
from kexec_py.segments import LoadedImage, Segment

ELF_MAGIC = b"\x7fELF"


class ElfX86Loader:
    def __init__(self, name: str) -> None:
        self.name = name

    def probe(self, data: memoryview) -> bool:
        return bytes(data[:4]) == ELF_MAGIC

    def load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage:
        if request.args_style not in ("none", "linux"):
            raise UsageError(
                f"{self.name}: say --args-none (a physical-mode payload, called directly) or"
                " --args-linux (a Linux vmlinux, booted through purgatory); --args-elf is not implemented"
            )
        linux = request.args_style == "linux"
        if linux:
            if request.entry is not None:
                raise UsageError(f"{self.name} --args-linux: --entry does not apply (the kernel is entered at e_entry)")
        else:
            _check_args_none_request(self.name, request)
        from elftools.common.exceptions import ELFError

        try:
            loaded = self._load(image, request, target)
        except (ELFError, ValueError, IndexError) as e:  # what pyelftools raises on damaged headers
            raise ImageError(f"{image.path}: truncated or damaged ELF ({e})") from None
        if linux:
            return _boot_vmlinux(image.path, loaded, request, target)
        if request.preserve_context:
            window = limits_window(target.memory, request.mem_min, request.mem_max)
            if window is not None:
                return replace(loaded, backup_window=(window,))
        return loaded

    def _load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage:
        from elftools.elf.elffile import ELFFile

        path, data = image.path, image.data
        if not self.probe(data):
            raise ImageError(f"{path}: not an ELF file")
        header_size = 64 if len(data) > 4 and data[4] == 2 else 52  # ELFCLASS64, else ELF32's
        if len(data) < header_size:
            raise ImageError(f"{path}: truncated or damaged ELF ({len(data)} bytes, the ELF header alone"
                             f" takes {header_size})")
        elf = ELFFile(image.stream)  # headers only; segment data is sliced from the map
        if elf["e_type"] != "ET_EXEC":
            raise ImageError(f"{path}: ELF type {elf['e_type']}, need an executable (ET_EXEC)")
        machine = elf["e_machine"]
        if machine not in ("EM_386", "EM_X86_64"):
            raise ImageError(f"{path}: ELF machine {machine} is not x86")
        if machine != target.arch.elf_machine:
            raise ImageError(
                f"{path}: {machine} image, but {target.arch.name} kernels enter"
                f" {target.arch.elf_machine} images (--arch plans for another machine)"
            )
        _check_program_headers(path, elf, len(data))
        segments = []
        for index, phdr in enumerate(elf.iter_segments("PT_LOAD")):
            if phdr["p_memsz"]:
                segments.append(self._segment(path, len(data), data, index, phdr.header))
        if not segments:
            raise ImageError(f"{path}: no PT_LOAD segment")
        entry = elf["e_entry"] if request.entry is None else request.entry
        if not any(s.range.contains_address(entry) for s in segments):
            raise ImageError(f"{path}: entry {entry:#x} is outside every loaded segment")
        return LoadedImage(entry, tuple(segments))

    @staticmethod
    def _segment(path: str, size: int, data: memoryview, index: int, ph) -> Segment:
        where = f"PT_LOAD[{index}] at {ph.p_paddr:#x}"
        if ph.p_paddr % PAGE_SIZE:
            raise ImageError(f"{path}: {where} is not page-aligned (link it at a 4 KiB boundary)")
        if ph.p_filesz > ph.p_memsz:
            raise ImageError(f"{path}: {where} has p_filesz > p_memsz")
        if ph.p_offset + ph.p_filesz > size:
            raise ImageError(f"{path}: truncated: {where} needs bytes up to {ph.p_offset + ph.p_filesz:#x}, file has {size:#x}")
        buf = data[ph.p_offset : ph.p_offset + ph.p_filesz]
        return Segment(ph.p_paddr, align_up(ph.p_memsz), buf, f"{path} {where}")


def _check_program_headers(path: str, elf, size: int) -> None:
    """The program header table lies inside the file with entries of its class's size:
    pyelftools would otherwise read past the end of the file (a phnum overflow parses
    garbage as program headers) or fail with a bare struct error."""
    phoff, phnum, phentsize = elf["e_phoff"], elf.num_segments(), elf["e_phentsize"]
    expected = elf.structs.Elf_Phdr.sizeof()
    if phnum and phentsize != expected:
        raise ImageError(f"{path}: truncated or damaged ELF (e_phentsize is {phentsize}, ELF{elf.elfclass}"
                         f" program headers take {expected} bytes)")
    if phoff + phnum * phentsize > size:
        raise ImageError(f"{path}: truncated or damaged ELF (the program header table, {phnum} entries at"
                         f" {phoff:#x}, runs past the end of the file, {size:#x} bytes)")


def _check_args_none_request(name: str, request: LoadRequest) -> None:
    linux_only = request.linux_options
    if linux_only:
        raise UsageError(
            f"{name} --args-none: {', '.join(linux_only)} need a Linux kernel"
            " (a bzImage, or an ELF vmlinux with --args-linux)"
        )
    if not request.preserve_context and (request.mem_min is not None or request.mem_max is not None):
        raise UsageError("--mem-min/--mem-max set the backup window of --load-preserve-context")


def _boot_vmlinux(path: str, loaded: LoadedImage, request: LoadRequest, target: Target) -> LoadedImage:
    """A vmlinux carries no setup header: the zero page gets a synthetic one.
    Its PT_LOADs (bss included) are all it touches before reading e820; e_entry is
    the arch's entry (startup_32, startup_64) at its physical address."""
    from kexec_py.bootparams import synthetic_header
    from kexec_py.linux_boot import PlacedKernel, boot_linux, placement_limits

    limits = placement_limits(target.memory, request.mem_min, request.mem_max, request.preserve_context)
    start = min(s.mem for s in loaded.segments)
    footprint = tuple(s.range for s in loaded.segments)
    kernel = PlacedKernel(path, synthetic_header(), loaded.segments, footprint, start, loaded.entry)
    return boot_linux(kernel, request, target, limits)


def loader(type_name: str) -> ElfX86Loader:
    return ElfX86Loader(type_name)
