"""Everything a guest boots from: a kernel (built by the harness, a stock Debian package, or
the user's bzImage), the cached base rootfs, a stock kernel's modules and the per-run overlay."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

from .arch import I386, GuestArch, guest_arch
from .build import BuildError
from .guest import NIC_DEVICES, BootSpec
from .kernel import Variant, build_kernel
from .overlay import RunSpec, build_overlay
from .rootfs import build_dkms_rootfs, build_rootfs
from .stock import DEBIAN_PREFIX, DEFAULT_SMP, SHIM_SOURCE, fetch_header_debs, prepare_stock

HARNESS_KERNEL_SMP = 1
# The dkms rootfs unpacks to 290 MB of ramfs (80 MB of initrd beside it while the kernel
# unpacks it); a DKMS build of kexec_jump.ko needs about 130 MB more. Measured with 768
# MiB: 290 MB available after boot, 167 MB at the build's peak.
DKMS_MEM_MB = 1024
# run-vm --disk: the scratch image's name in the run's directory; guest/init formats it
# (ext4) and mounts it there
DISK_IMAGE = "disk.img"
GUEST_DISK_MOUNT = "/mnt/disk"


def stock_package(kernel: str | None) -> str | None:
    """`debian:PACKAGE` -> PACKAGE; None for any other --kernel value."""
    return kernel[len(DEBIAN_PREFIX):] if kernel and kernel.startswith(DEBIAN_PREFIX) else None


def parse_size(text: str | int) -> int:
    """A disk size in bytes: `64M`, `1G`, `512K` (binary units) or a plain number of bytes."""
    if isinstance(text, int):
        size = text
    elif m := re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.I):
        size = int(m[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2].upper()]
    else:
        raise ValueError(f"{text!r}: not a size (e.g. 64M, 1G)")
    # mkfs.ext4 wants some room; QEMU's virtio-blk counts whole 512-byte sectors
    if size < 4 << 20 or size % 512:
        raise ValueError(f"{text}: a disk must be at least 4M and a multiple of 512 bytes")
    return size


def prepare(workdir: Path, run: RunSpec = RunSpec(), variant: Variant = Variant.PATCHED,
            mem_mb: int = 512, append: str = "", arch: GuestArch | str = I386,
            kernel: str | None = None, smp: int | None = None, shim: bool = True,
            shim_source: Path = SHIM_SOURCE, dkms: bool = False, disk: str | int | None = None,
            nics: tuple[str, ...] = (), vga: bool = False, kdump: bool = False) -> BootSpec:
    """Build (or take from the cache) the guest's kernel and base rootfs, write this run's
    initramfs into workdir and return how to boot it.

    kernel: None for the harness's own build of `variant` (-cpu of the arch, 1 CPU by
    default; `modules` also puts the kexec_jump.ko built against it in /root); `debian:PACKAGE` for a stock Debian kernel with its modules tree and, if
    `shim`, our kexec_jump module built from `shim_source`; else the path of a bzImage
    (no modules). Both of the latter run on `-cpu max` with 2 CPUs by default.
    dkms: a stock kernel's guest boots the dkms rootfs (rootfs.build_dkms_rootfs: apt, dkms,
    gcc and the kernel's own headers) instead of the base rootfs.
    disk: the size (parse_size) of a blank virtio-blk disk, a sparse file in workdir, which
    the guest's /init formats (ext4) and mounts on /mnt/disk. nics: NIC models (`virtio-net`,
    `e1000`), joined by a QEMU hub to each other only; MAC addresses guest.nic_mac(index).
    vga: QEMU's std VGA card (its video BIOS answers VBE calls; nothing is displayed).
    kdump: the kdump rootfs (rootfs.KDUMP_PACKAGES: kdump-tools and makedumpfile installed,
    with kexec-tools, which /init's dpkg -i of our .deb replaces) instead of the base rootfs.
    """
    arch = guest_arch(arch)
    if unknown := [model for model in nics if model not in NIC_DEVICES]:
        raise BuildError(f"unknown NIC model {unknown[0]!r} (known: {', '.join(NIC_DEVICES)})")
    try:
        disk_bytes = parse_size(disk) if disk is not None else None
    except ValueError as error:
        raise BuildError(f"disk: {error}") from None
    if dkms and not stock_package(kernel):
        raise BuildError("the dkms rootfs carries a stock kernel's headers: it needs kernel=debian:PACKAGE")
    if dkms and kdump:
        raise BuildError("the dkms and kdump rootfs are two different machines: choose one")
    archives: list[Path] = []
    rootfs = None
    if kernel is None:
        built = build_kernel(variant, arch)
        image, cpu, default_smp = built.bzimage, arch.qemu_cpu, HARNESS_KERNEL_SMP
        if built.shim is not None:  # the kexec_jump module built against it, in /root to insmod
            run = dataclasses.replace(run, adds=(*run.adds, built.shim))
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
    archives.insert(0, rootfs or build_rootfs(arch, kdump))
    archives.append(build_overlay(run, workdir))
    initrd = workdir / "initrd.img"
    concatenate(archives, initrd)
    disk_image = None
    if disk_bytes:
        disk_image = workdir / DISK_IMAGE
        with open(disk_image, "wb") as scratch:
            os.truncate(scratch.fileno(), disk_bytes)   # sparse: only what the guest writes
    return BootSpec(image, initrd, mem_mb, append, arch.qemu, cpu, smp or default_smp,
                    disk_image, tuple(nics), vga)


def concatenate(archives: list[Path], out: Path) -> None:
    """One initramfs of several cpio archives (compressed or not); the kernel unpacks them in
    order, later files replacing earlier ones."""
    with open(out, "wb") as dest:
        for archive in archives:
            # each archive must start 4-byte aligned; the kernel skips the zero padding
            dest.write(b"\0" * (-dest.tell() % 4))
            with open(archive, "rb") as src:
                shutil.copyfileobj(src, dest)
