"""bzImage (i386) and bzImage64 (x86_64): a Linux/x86 kernel as the boot protocol
packs it (Documentation/arch/x86/boot.rst).

The boot sector and real-mode setup (setup_sects + 1 sectors) are not loaded:
kexec-py uses the 32-bit entry on i386 and the 64-bit one (startup_64, 0x200
into the protected-mode kernel, protocol 2.12 and XLF_KERNEL_64) on x86_64, so
only the setup header is taken from them (into the zero page). The
protected-mode kernel, the rest of the file, is loaded where the kernel wants
to run; purgatory enters it with esi/rsi = zero page.
"""

from __future__ import annotations

from kexec_py.bootparams import SetupHeader, is_bzimage
from kexec_py.errors import ImageError, UsageError
from kexec_py.holes import available, find_space
from kexec_py.image_file import ImageFile
from kexec_py.arch import Arch
from kexec_py.linux_boot import PlacedKernel, boot_linux, describe_limits, placement_limits
from kexec_py.loaders import LoadRequest, Target
from kexec_py.ranges import Range, align_up, covered_by
from kexec_py.segments import LoadedImage, Segment


class BzImageLoader:
    def __init__(self, name: str) -> None:
        self.name = name

    def probe(self, data: memoryview) -> bool:
        # Version and loadflags are checked by load(): an old kernel gets told why.
        return is_bzimage(data)

    def load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage:
        path = image.path
        arch = target.arch
        if request.args_style not in (None, "linux"):
            raise UsageError(f"{self.name}: --args-{request.args_style} is for ELF images")
        if request.entry is not None:
            raise UsageError(f"{self.name}: --entry does not apply (purgatory enters the kernel at its"
                             f" {arch.linux_entry_name})")
        header = SetupHeader.parse(image.data, path)
        require_entry(path, header, arch)
        limits = placement_limits(target.memory, request.mem_min, request.mem_max, request.preserve_context)
        kernel = place_kernel(path, header, image.data[header.setup_size :], target.memory.ram(), limits, arch)
        return boot_linux(kernel, request, target, limits)


def require_entry(path: str, header: SetupHeader, arch: Arch) -> None:
    """The kernel has the entry arch's purgatory jumps to (boot.rst: the 64-bit entry
    is there from protocol 2.12 when xloadflags says XLF_KERNEL_64)."""
    if header.version < arch.linux_min_protocol:
        raise ImageError(
            f"{path}: boot protocol {header.protocol_text} has no {arch.linux_entry_name}, which {arch.name}"
            f" kernels enter: it needs {arch.linux_min_protocol >> 8}.{arch.linux_min_protocol & 0xFF:02d}"
        )
    missing = arch.linux_xloadflags & ~header.xloadflags
    if missing:
        raise ImageError(
            f"{path}: xloadflags {header.xloadflags:#x} lacks {missing:#x}: no {arch.linux_entry_name},"
            f" which {arch.name} kernels enter (an i386 kernel? --arch i386 plans for an i386 machine)"
        )


def place_kernel(
    path: str,
    header: SetupHeader,
    payload: memoryview,
    ram: list[Range],
    limits: tuple[Range, ...] | None,
    arch: Arch,
) -> PlacedKernel:
    """The protected-mode kernel at pref_address, or for a relocatable kernel the
    lowest kernel_alignment-aligned address above it with room for init_size.

    Not below pref_address: the decompressor never runs below LOAD_PHYSICAL_ADDR
    (= pref_address), so a lower load address would still use that memory.
    """
    footprint = align_up(header.memory_footprint(len(payload)))
    preferred = header.preferred_address
    free = available(ram, (), limits)
    if header.relocatable:
        spot = find_space(free, footprint, align=header.kernel_alignment, low=preferred, high=arch.linux_high)
        if spot is None:
            raise ImageError(
                f"{path}: no room for the kernel: it needs {footprint >> 10} KiB (init_size) of free RAM"
                f" at or above {preferred:#x}, {header.kernel_alignment:#x}-aligned{describe_limits(limits)}"
            )
    else:
        spot = Range.sized(preferred, footprint)
        if not covered_by(spot, free):
            raise ImageError(
                f"{path}: the kernel is not relocatable and needs {spot} ({footprint >> 10} KiB, init_size),"
                f" which is not all free RAM{describe_limits(limits)}"
            )
    kernel = Segment(
        spot.start,
        align_up(len(payload)),
        payload,
        f"{path} protected-mode kernel (protocol {header.protocol_text},"
        f" {'relocatable' if header.relocatable else 'not relocatable'}, init_size {footprint:#x})",
    )
    return PlacedKernel(path, header, (kernel,), (spot,), spot.start, spot.start + arch.linux_entry_offset)


def loader(type_name: str) -> BzImageLoader:
    return BzImageLoader(type_name)
