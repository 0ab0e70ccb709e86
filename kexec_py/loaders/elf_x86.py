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

from kexec_py.value import replace

from kexec_py.arch import ARCHES
from kexec_py.elf_headers import (
    ELF_MAGIC,
    PT_LOAD,
    ElfFormatError,
    ProgramHeader,
    machine_name,
    program_headers,
    read_header,
    type_name,
)
from kexec_py.errors import ImageError, UsageError
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest, Target
from kexec_py.planner import limits_window
from kexec_py.ranges import PAGE_SIZE, align_up
from kexec_py.segments import LoadedImage, Segment

ET_EXEC = 2
X86_MACHINES = {arch.elf_machine for arch in ARCHES.values()}


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
        loaded = self._load(image, request, target)
        if linux:
            return _boot_vmlinux(image.path, loaded, request, target)
        if request.preserve_context:
            window = limits_window(target.memory, request.mem_min, request.mem_max)
            if window is not None:
                return replace(loaded, backup_window=(window,))
        return loaded

    def _load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage:
        path, data = image.path, image.data
        if not self.probe(data):
            raise ImageError(f"{path}: not an ELF file")
        try:
            header = read_header(data)
            phdrs = program_headers(data, header)
        except ElfFormatError as e:
            raise ImageError(f"{path}: truncated or damaged ELF ({e})") from None
        if header.e_type != ET_EXEC:
            raise ImageError(f"{path}: ELF type {type_name(header.e_type)}, need an executable (ET_EXEC)")
        machine = header.e_machine
        if machine not in X86_MACHINES:
            raise ImageError(f"{path}: ELF machine {machine_name(machine)} is not x86")
        if machine != target.arch.elf_machine:
            raise ImageError(
                f"{path}: {machine_name(machine)} image, but {target.arch.name} kernels enter"
                f" {machine_name(target.arch.elf_machine)} images (--arch plans for another machine)"
            )
        segments = []
        for index, phdr in enumerate(p for p in phdrs if p.p_type == PT_LOAD):
            if phdr.p_memsz:
                segments.append(self._segment(path, len(data), data, index, phdr))
        if not segments:
            raise ImageError(f"{path}: no PT_LOAD segment")
        entry = header.e_entry if request.entry is None else request.entry
        if not any(s.range.contains_address(entry) for s in segments):
            raise ImageError(f"{path}: entry {entry:#x} is outside every loaded segment")
        return LoadedImage(entry, tuple(segments))

    @staticmethod
    def _segment(path: str, size: int, data: memoryview, index: int, ph: ProgramHeader) -> Segment:
        where = f"PT_LOAD[{index}] at {ph.p_paddr:#x}"
        if ph.p_paddr % PAGE_SIZE:
            raise ImageError(f"{path}: {where} is not page-aligned (link it at a 4 KiB boundary)")
        if ph.p_filesz > ph.p_memsz:
            raise ImageError(f"{path}: {where} has p_filesz > p_memsz")
        if ph.p_offset + ph.p_filesz > size:
            raise ImageError(f"{path}: truncated: {where} needs bytes up to {ph.p_offset + ph.p_filesz:#x}, file has {size:#x}")
        buf = data[ph.p_offset : ph.p_offset + ph.p_filesz]
        return Segment(ph.p_paddr, align_up(ph.p_memsz), buf, f"{path} {where}")


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
