"""Everything a guest boots from: the cached kernel and base rootfs plus the per-run overlay."""

from __future__ import annotations

import shutil
from pathlib import Path

from .arch import I386, GuestArch, guest_arch
from .guest import BootSpec
from .kernel import Variant, build_kernel
from .overlay import RunSpec, build_overlay
from .rootfs import build_rootfs


def prepare(workdir: Path, run: RunSpec = RunSpec(), variant: Variant = Variant.PATCHED,
            mem_mb: int = 512, append: str = "", arch: GuestArch | str = I386) -> BootSpec:
    """Build (or take from the cache) the arch's kernel and base rootfs, write this run's
    initramfs into workdir and return how to boot it."""
    arch = guest_arch(arch)
    kernel = build_kernel(variant, arch)
    base = build_rootfs(arch)
    overlay = build_overlay(run, workdir)
    initrd = workdir / "initrd.img"
    with open(initrd, "wb") as out:
        with open(base, "rb") as src:
            shutil.copyfileobj(src, out)
        # the next archive must start 4-byte aligned; the kernel skips the zero padding
        out.write(b"\0" * (-out.tell() % 4))
        with open(overlay, "rb") as src:
            shutil.copyfileobj(src, out)
    return BootSpec(kernel.bzimage, initrd, mem_mb, append, arch.qemu, arch.qemu_cpu)
