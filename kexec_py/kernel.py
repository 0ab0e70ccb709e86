"""The kernel interface: kexec_load and reboot through libc's syscall(), and
/sys/kernel/kexec_*loaded. Everything else in kexec-py is plain values; the
CLI receives an object with this interface so tests can pass a recording fake."""

from __future__ import annotations

import errno as E
import os
import struct

from kexec_py.errors import KernelError, KexecError

# KexecPlan (kexec_py.segments) is named in annotations only: importing it, or
# typing for TYPE_CHECKING, would cost `kexec -e` start-up time for nothing.

KEXEC_PRESERVE_CONTEXT = 0x2  # flags.KexecFlags, not imported: `kexec -e` stays lean

# Numbers follow the calling process's ABI (a 32-bit process on a 64-bit
# kernel goes through the compat entry points).
SYSCALL_NUMBERS = {
    32: {"kexec_load": 283, "reboot": 88},
    64: {"kexec_load": 246, "reboot": 169},
}
LINUX_REBOOT_MAGIC1 = 0xFEE1DEAD
LINUX_REBOOT_MAGIC2 = 672274793
LINUX_REBOOT_CMD_KEXEC = 0x45584543

_PERMISSION = (
    "permission denied: kexec needs root (CAP_SYS_BOOT); also check"
    " sysctl kernel.kexec_load_disabled and kernel lockdown"
)
LOAD_ERRORS = {
    E.EPERM: _PERMISSION,
    E.EACCES: "the kernel's integrity policy (IMA or secure boot) refused the image",
    E.EADDRNOTAVAIL: "a segment lies where the kernel does not accept a destination",
    E.EBUSY: "another kexec load or exec is in progress; try again",
    E.ENOMEM: "the kernel could not allocate pages for the image",
    E.EFAULT: "the kernel could not read a segment buffer (a kexec-py bug)",
    E.ENOSYS: "this kernel has no kexec_load (built without CONFIG_KEXEC)",
}
NO_KEXEC_JUMP = (
    "this kernel was built without CONFIG_KEXEC_JUMP: it refuses"
    " --load-preserve-context (EINVAL)"
)
REBOOT_ERRORS = {
    E.EPERM: _PERMISSION,
    E.EINVAL: "no kexec image is loaded",
    E.EBUSY: "the kernel could not freeze tasks or devices for the jump",
}


def load_error_message(err: int, flags: int) -> str:
    if err == E.EINVAL:
        if flags & KEXEC_PRESERVE_CONTEXT:
            return NO_KEXEC_JUMP
        return "the kernel rejected the segment list (EINVAL)"
    return LOAD_ERRORS.get(err, os.strerror(err))


class LinuxKernel:
    """The real thing. Only constructed for commands that touch the kernel."""

    def __init__(self, sysfs_root: str = "/sys") -> None:
        from kexec_py._kexec_ffi import ffi  # generated at build time by _ffi_build

        self._ffi = ffi
        self._libc = ffi.dlopen(None)
        self._numbers = SYSCALL_NUMBERS[struct.calcsize("P") * 8]
        self._sysfs = sysfs_root

    def _syscall(self, name: str, *args) -> int:
        ffi = self._ffi
        ffi.errno = 0
        result = self._libc.syscall(ffi.cast("long", self._numbers[name]), *args)
        return 0 if result == 0 else ffi.errno

    def kexec_load(self, plan: KexecPlan) -> None:
        self._kexec_load(plan.entry, plan.segments, plan.flags)

    def kexec_unload(self, flags: int) -> None:
        self._kexec_load(0, (), flags)  # nr_segments == 0 unloads

    def _kexec_load(self, entry: int, plan_segments, flags: int) -> None:
        ffi = self._ffi
        segments = ffi.new("struct kexec_segment[]", max(len(plan_segments), 1))
        keep = []  # cffi pointers are valid only while their buffers live
        for cseg, seg in zip(segments, plan_segments):
            buf = ffi.from_buffer(seg.buf) if seg.bufsz else ffi.NULL
            keep.append(buf)
            cseg.buf, cseg.bufsz = buf, seg.bufsz
            cseg.mem, cseg.memsz = ffi.cast("void *", seg.mem), seg.memsz
        err = self._syscall(
            "kexec_load",
            ffi.cast("unsigned long", entry),
            ffi.cast("unsigned long", len(plan_segments)),
            segments if plan_segments else ffi.NULL,
            ffi.cast("unsigned long", flags),
        )
        if err:
            raise KernelError(f"kexec_load failed: {load_error_message(err, flags)}", err)

    def reboot_kexec(self) -> None:
        """Jump to the loaded image. Returns only when a preserve-context image came back."""
        ffi = self._ffi
        err = self._syscall(
            "reboot",
            ffi.cast("unsigned long", LINUX_REBOOT_MAGIC1),
            ffi.cast("unsigned long", LINUX_REBOOT_MAGIC2),
            ffi.cast("unsigned long", LINUX_REBOOT_CMD_KEXEC),
            ffi.NULL,
        )
        if err:
            message = REBOOT_ERRORS.get(err, os.strerror(err))
            raise KernelError(f"kexec failed: {message}", err)

    def kexec_loaded(self, crash: bool = False) -> bool:
        name = "kexec_crash_loaded" if crash else "kexec_loaded"
        try:
            with open(os.path.join(self._sysfs, "kernel", name), encoding="ascii") as f:
                return f.read().strip() == "1"
        except OSError as e:
            raise KernelError(f"cannot read {e.filename}: {e.strerror} (no kexec support?)", e.errno) from e

    def sync(self) -> None:
        os.sync()

    def interfaces_down(self):
        """Take every interface but lo down (rtnetlink); returns what to restore, or
        None when nothing but lo is up: then neither netif nor pyroute2 is imported
        (over a second of start-up on a small machine)."""
        if not any_interface_up(os.path.join(self._sysfs, "class", "net")):
            return None
        from kexec_py import netif

        return netif.take_down()

    def interfaces_restore(self, saved) -> None:
        """Bring back what interfaces_down() took down, with addresses and routes."""
        from kexec_py import netif

        netif.restore(saved)

    def shutdown_reboot(self) -> None:
        """kexec-tools' default action: let init shut down, the kernel then kexecs."""
        import subprocess

        try:
            subprocess.run(["shutdown", "-r", "now"], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise KexecError(f"shutdown -r now failed: {e}") from None


IFF_UP, IFF_LOOPBACK = 0x1, 0x8


def any_interface_up(sys_class_net: str) -> bool:
    """Whether anything but loopback is administratively up, read from sysfs."""
    try:
        names = os.listdir(sys_class_net)
    except OSError:
        return True  # no sysfs view: let rtnetlink decide
    for name in names:
        try:
            with open(os.path.join(sys_class_net, name, "flags"), encoding="ascii") as f:
                flags = int(f.read(), 16)
        except (OSError, ValueError):
            return True
        if flags & IFF_UP and not flags & IFF_LOOPBACK:
            return True
    return False
