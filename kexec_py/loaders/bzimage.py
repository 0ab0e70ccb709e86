"""bzImage: a Linux/x86 kernel as the boot protocol packs it (Documentation/x86/boot.rst).

The boot sector and real-mode setup (setup_sects + 1 sectors) are not loaded:
kexec-py uses the 32-bit entry, so only the setup header is taken from them
(into the zero page). The protected-mode kernel, the rest of the file, is
loaded where the kernel wants to run; purgatory enters it with esi = zero page.
"""

from __future__ import annotations

import struct

from kexec_py.bootparams import BOOT_FLAG, HDRS_MAGIC, SECTOR, SetupHeader
from kexec_py.errors import ImageError, UsageError
from kexec_py.holes import available, find_space
from kexec_py.image_file import ImageFile
from kexec_py.linux_boot import (
    LOWMEM_END,
    PlacedKernel,
    boot_linux,
    describe_limits,
    placement_limits,
    require_i386,
)
from kexec_py.loaders import LoadRequest, Target
from kexec_py.ranges import Range, align_up, covered_by
from kexec_py.segments import LoadedImage, Segment


class BzImageLoader:
    name = "bzImage"

    def probe(self, data: memoryview) -> bool:
        # Version and loadflags are checked by load(): an old kernel gets told why.
        return (
            len(data) >= 2 * SECTOR
            and struct.unpack_from("<H", data, 0x1FE)[0] == BOOT_FLAG
            and bytes(data[0x202:0x206]) == HDRS_MAGIC
        )

    def load(self, image: ImageFile, request: LoadRequest, target: Target) -> LoadedImage:
        path = image.path
        if request.args_style not in (None, "linux"):
            raise UsageError(f"bzImage: --args-{request.args_style} is for ELF images")
        if request.entry is not None:
            raise UsageError("bzImage: --entry does not apply (purgatory enters the kernel at its 32-bit entry)")
        header = SetupHeader.parse(image.data, path)
        require_i386(target.arch, path)
        limits = placement_limits(target.memory, request.mem_min, request.mem_max, request.preserve_context)
        kernel = place_kernel(path, header, image.data[header.setup_size :], target.memory.ram(), limits)
        return boot_linux(kernel, request, target.memory, limits)


def place_kernel(
    path: str,
    header: SetupHeader,
    payload: memoryview,
    ram: list[Range],
    limits: tuple[Range, ...] | None,
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
        spot = find_space(free, footprint, align=header.kernel_alignment, low=preferred, high=LOWMEM_END)
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
    return PlacedKernel(path, header, (kernel,), (spot,), spot.start)


LOADER = BzImageLoader()
