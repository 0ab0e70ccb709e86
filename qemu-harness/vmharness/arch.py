"""The guest architectures: everything that differs between an i386 and an x86_64 guest.

One value per architecture; the kernel, rootfs and QEMU code take it as a parameter
instead of keeping copies of their logic per architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .build import HARNESS_DIR

KERNEL_DIR = HARNESS_DIR / "kernel"


@dataclass(frozen=True)
class GuestArch:
    name: str                 # as `run-vm --arch` and `kexec --arch` spell it
    kernel_arch: str          # make ARCH=
    source_package: str       # Debian's linux-source-X.Y
    patch_dir: Path | None    # patches of the `patched` variant (None: the kernel needs none)
    debian_arch: str          # mmdebstrap --arch
    multiarch: str            # /usr/lib/<multiarch>, for the rootfs trimming
    qemu: str
    qemu_cpu: str             # for the harness's tinyconfig kernels
    stock_qemu_cpu: str       # for distribution kernels (--kernel): a CPU they expect

    @property
    def fragment(self) -> Path:
        """Merged over tinyconfig."""
        return KERNEL_DIR / f"{self.name}.config"

    def patches(self) -> list[Path]:
        return sorted(self.patch_dir.glob("*.patch")) if self.patch_dir else []


I386 = GuestArch(
    name="i386", kernel_arch="i386", source_package="linux-source-6.1",
    # Linux 6.1 and 6.12 triple-fault on the return of a 32-bit preserve-context jump
    patch_dir=KERNEL_DIR / "patches",
    debian_arch="i386", multiarch="i386-linux-gnu",
    qemu="qemu-system-i386", qemu_cpu="qemu32",
    # TCG's `max` with PAE and NX (686-pae needs them), but Intel's vendor string: as
    # AuthenticAMD a 32-bit kernel warns at boot that the CPUs are "not suitable for SMP"
    stock_qemu_cpu="max,vendor=GenuineIntel",
)
X86_64 = GuestArch(
    name="x86_64", kernel_arch="x86_64", source_package="linux-source-6.12",
    # 6.12.117 carries the upstream 64-bit fix ("x86/kexec: Restore GDT on return from
    # ::preserve_context kexec"): the plain kernel is the one the tests use
    patch_dir=None,
    debian_arch="amd64", multiarch="x86_64-linux-gnu",
    qemu="qemu-system-x86_64", qemu_cpu="qemu64",
    # TCG's `max` has LA57: the amd64 kernel runs 5-level paging unless booted with no5lvl
    stock_qemu_cpu="max",
)
ARCHES = {arch.name: arch for arch in (I386, X86_64)}


def guest_arch(name: str | GuestArch) -> GuestArch:
    if isinstance(name, GuestArch):
        return name
    try:
        return ARCHES[name]
    except KeyError:
        raise ValueError(f"unknown guest architecture {name!r} (known: {', '.join(ARCHES)})") from None
