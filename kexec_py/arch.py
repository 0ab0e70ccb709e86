"""The architectures kexec-py drives: one value each, holding everything that differs.

Adding an architecture is adding one Arch value (and the loader modules and
purgatory it names). The running kernel's architecture decides how an image is
entered: an i386 kernel calls it in 32-bit protected mode, an x86_64 kernel in
64-bit mode on its identity map, so every fact below is about the kernel that
will run the image, not about this process (a 32-bit python on a 64-bit kernel
still plans for x86_64).
"""

from __future__ import annotations

import os

from kexec_py.value import frozen

GiB = 1 << 30
KEXEC_ARCH_MASK = 0xFFFF0000


@frozen
class Arch:
    name: str  # as `kexec --arch`, uname -m of its kernel and the installed payload directory spell it
    machines: tuple[str, ...]  # uname -m values of its kernels
    kexec_arch: int  # the KEXEC_ARCH_* field of kexec_load's flags (include/uapi/linux/kexec.h)
    kexec_arch_name: str
    address_bits: int  # the kernel's unsigned long: an entry point or address must fit
    elf_machine: int  # e_machine of the images its kernel calls directly (EM_386, EM_X86_64)
    # -t names in probe order, each -> its module in kexec_py.loaders (kexec-tools' per-arch table)
    image_types: tuple[tuple[str, str], ...]
    # Linux boot (bzImage, vmlinux), through purgatory:
    purgatory: str  # the purgatory object's file name (csrc/purgatory builds both)
    linux_entry_offset: int  # the entry purgatory jumps to, from the protected-mode kernel's start
    linux_entry_name: str  # for messages and plans
    linux_min_protocol: int  # the boot protocol that defines that entry
    linux_xloadflags: int  # xloadflags bits the kernel must set (boot.rst)
    # Kernel, initrd and zero page stay below this: the i386 kernel's direct map
    # ends a little below 896 MiB (it copies an initrd that lies above, so the bound
    # matters for memory, not correctness); on x86_64 the zero page's 32-bit fields
    # (ramdisk_image, cmd_line_ptr) do.
    linux_high: int
    linux_high_name: str  # what that bound is, for messages
    # Where --load-jump-back-helper's segment of no memory goes: the last page below
    # KEXEC_DESTINATION_MEMORY_LIMIT. Linux 6.12 takes an empty segment at mem to reach
    # up to mem - 1 (kimage_is_destination_range: mem + memsz - 1), so at 0 it claims
    # every page and kexec_load fails with ENOMEM; at the top it claims none.
    empty_segment_mem: int
    # The kernel enters kexec images on an identity map of its RAM and the image's
    # segments only (x86_64), so a second kernel's way back must load the caller's
    # re-entry page as a segment: purgatory saves a copy of it for that
    # (bootparams.SETUP_JUMP_BACK_PAGE). i386 enters with paging off.
    jump_back_page_copy: bool

    def image_type_names(self) -> list[str]:
        return [name for name, _ in self.image_types]


XLF_KERNEL_64 = 1 << 0  # bootparam.h: the kernel has the 64-bit entry at +0x200

I386 = Arch(
    name="i386",
    machines=("i386", "i486", "i586", "i686"),
    kexec_arch=3 << 16,
    kexec_arch_name="KEXEC_ARCH_386",
    address_bits=32,
    elf_machine=3,  # EM_386
    image_types=(("elf-x86", "elf_x86"), ("bzImage", "bzimage")),
    purgatory="purgatory.ro",
    linux_entry_offset=0,
    linux_entry_name="32-bit entry (code32_start)",
    linux_min_protocol=0x0206,  # the first with cmdline_size
    linux_xloadflags=0,
    linux_high=0x38000000,
    linux_high_name="i386 lowmem",
    empty_segment_mem=0xFFFFF000,  # the limit is -1UL
    jump_back_page_copy=False,
)
X86_64 = Arch(
    name="x86_64",
    machines=("x86_64",),
    kexec_arch=62 << 16,
    kexec_arch_name="KEXEC_ARCH_X86_64",
    address_bits=64,
    elf_machine=62,  # EM_X86_64
    image_types=(("elf-x86_64", "elf_x86"), ("bzImage64", "bzimage")),
    purgatory="purgatory64.ro",
    linux_entry_offset=0x200,
    linux_entry_name="64-bit entry (startup_64)",
    linux_min_protocol=0x020C,  # 2.12: xloadflags, XLF_KERNEL_64
    linux_xloadflags=XLF_KERNEL_64,
    linux_high=4 * GiB,
    linux_high_name="x86_64 zero page's 32-bit addresses",
    empty_segment_mem=(1 << 46) - 0x1000,  # the limit is MAXMEM - 1, MAXMEM 2^46 with 4-level paging (2^52: 5)
    jump_back_page_copy=True,
)
ARCHES = {arch.name: arch for arch in (I386, X86_64)}


def arch_named(name: str) -> Arch:
    try:
        return ARCHES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r} (kexec-py supports {', '.join(ARCHES)})") from None


def running_arch() -> Arch:
    machine = os.uname().machine
    for arch in ARCHES.values():
        if machine in arch.machines:
            return arch
    raise ValueError(f"unsupported machine {machine!r} (kexec-py supports {' and '.join(ARCHES)})")


def arch_of_kexec_flags(flags: int) -> Arch | None:
    return next((a for a in ARCHES.values() if a.kexec_arch == flags & KEXEC_ARCH_MASK), None)

