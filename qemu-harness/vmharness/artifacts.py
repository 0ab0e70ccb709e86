"""Everything a guest boots from: a kernel (built by the harness, a stock Debian package, or
the user's bzImage), the cached base rootfs, a stock kernel's modules and the per-run overlay."""

from __future__ import annotations

import shutil
from pathlib import Path

from .arch import I386, GuestArch, guest_arch
from .build import BuildError
from .guest import BootSpec
from .kernel import Variant, build_kernel
from .overlay import RunSpec, build_overlay
from .rootfs import build_dkms_rootfs, build_rootfs
from .stock import DEBIAN_PREFIX, DEFAULT_SMP, SHIM_SOURCE, fetch_header_debs, prepare_stock

HARNESS_KERNEL_SMP = 1
# The dkms rootfs unpacks to 290 MB of ramfs (80 MB of initrd beside it while the kernel
# unpacks it); a DKMS build of kexec_jump.ko needs about 130 MB more. Measured with 768
# MiB: 290 MB available after boot, 167 MB at the build's peak.
DKMS_MEM_MB = 1024


def stock_package(kernel: str | None) -> str | None:
    """`debian:PACKAGE` -> PACKAGE; None for any other --kernel value."""
    return kernel[len(DEBIAN_PREFIX):] if kernel and kernel.startswith(DEBIAN_PREFIX) else None


def prepare(workdir: Path, run: RunSpec = RunSpec(), variant: Variant = Variant.PATCHED,
            mem_mb: int = 512, append: str = "", arch: GuestArch | str = I386,
            kernel: str | None = None, smp: int | None = None, shim: bool = True,
            shim_source: Path = SHIM_SOURCE, dkms: bool = False) -> BootSpec:
    """Build (or take from the cache) the guest's kernel and base rootfs, write this run's
    initramfs into workdir and return how to boot it.

    kernel: None for the harness's own build of `variant` (-cpu of the arch, 1 CPU by
    default); `debian:PACKAGE` for a stock Debian kernel with its modules tree and, if
    `shim`, our kexec_jump module built from `shim_source`; else the path of a bzImage
    (no modules). Both of the latter run on `-cpu max` with 2 CPUs by default.
    dkms: a stock kernel's guest boots the dkms rootfs (rootfs.build_dkms_rootfs: apt, dkms,
    gcc and the kernel's own headers) instead of the base rootfs.
    """
    arch = guest_arch(arch)
    if dkms and not stock_package(kernel):
        raise BuildError("the dkms rootfs carries a stock kernel's headers: it needs kernel=debian:PACKAGE")
    archives: list[Path] = []
    rootfs = None
    if kernel is None:
        image = build_kernel(variant, arch).bzimage
        cpu, default_smp = arch.qemu_cpu, HARNESS_KERNEL_SMP
    elif package := stock_package(kernel):
        stock = prepare_stock(package, arch, shim, shim_source)
        image, cpu, default_smp = stock.kernel.vmlinuz, arch.stock_qemu_cpu, DEFAULT_SMP
        archives.append(stock.modules_cpio)
        if dkms:
            rootfs = build_dkms_rootfs(arch, fetch_header_debs(stock.kernel))
    else:
        image, cpu, default_smp = Path(kernel), arch.stock_qemu_cpu, DEFAULT_SMP
        if not image.is_file():
            raise BuildError(f"--kernel {kernel}: no such file (or use debian:PACKAGE)")
    archives.insert(0, rootfs or build_rootfs(arch))
    archives.append(build_overlay(run, workdir))
    initrd = workdir / "initrd.img"
    concatenate(archives, initrd)
    return BootSpec(image, initrd, mem_mb, append, arch.qemu, cpu, smp or default_smp)


def concatenate(archives: list[Path], out: Path) -> None:
    """One initramfs of several cpio archives (compressed or not); the kernel unpacks them in
    order, later files replacing earlier ones."""
    with open(out, "wb") as dest:
        for archive in archives:
            # each archive must start 4-byte aligned; the kernel skips the zero padding
            dest.write(b"\0" * (-dest.tell() % 4))
            with open(archive, "rb") as src:
                shutil.copyfileobj(src, dest)
