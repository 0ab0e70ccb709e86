"""The kernel interface: kexec_load and reboot through libc's syscall(), and
/sys/kernel/kexec_*loaded. Everything else in kexec-py is plain values; the
CLI receives an object with this interface so tests can pass a recording fake.

kexec_py.shim.ShimKernel is the same interface over the kexec_jump module's
/dev/kexec_jump; what both do alike (sync, the network around a jump, the
default load's shutdown, libc through cffi, pinning segment buffers, the
errno -> message tables) lives here once."""

from __future__ import annotations

import errno as E
import os
import struct

from kexec_py.errors import KernelError, KexecError
from kexec_py.machine_files import read_text, read_value

# Types named in annotations only: importing them, or typing for its TYPE_CHECKING,
# would cost `kexec -e` start-up time for nothing; mypy takes this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from _cffi_backend import FFI

    from kexec_py.file_load import FileLoad
    from kexec_py.netif import Snapshot
    from kexec_py.segments import Buffer, KexecPlan, Segment


# Numbers follow the calling process's ABI (a 32-bit process on a 64-bit
# kernel goes through the compat entry points).
SYSCALL_NUMBERS = {
    32: {"kexec_load": 283, "reboot": 88},
    64: {"kexec_load": 246, "reboot": 169, "kexec_file_load": 320},  # i386 has no kexec_file_load
}
LINUX_REBOOT_MAGIC1 = 0xFEE1DEAD
LINUX_REBOOT_MAGIC2 = 672274793
LINUX_REBOOT_CMD_KEXEC = 0x45584543

_PERMISSION = (
    "permission denied: kexec needs root (CAP_SYS_BOOT); also check"
    " sysctl kernel.kexec_load_disabled and kernel lockdown"
)
# EPERM (and, on the devices, EACCES) told apart by permission_message(): not root, or
# "permission denied: " and each cause that holds (kexec_load_disabled and lockdown may both)
NOT_ROOT = "permission denied: kexec needs root (CAP_SYS_BOOT)"
LOAD_DISABLED = "sysctl kernel.kexec_load_disabled is 1 (it stays set until the next boot)"
LOCKED_DOWN = "the kernel is in lockdown mode ({mode}, as under Secure Boot), which forbids kexec_load"
NO_CAP_SYS_BOOT = "this process lacks CAP_SYS_BOOT (a container or a reduced capability set?)"
CAP_SYS_BOOT = 22
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
        from kexec_py.segments import KexecFlags  # a load's, so imported already; `kexec -e` never is

        if flags & KexecFlags.PRESERVE_CONTEXT:
            return NO_KEXEC_JUMP
        return "the kernel rejected the segment list (EINVAL)"
    return LOAD_ERRORS.get(err, os.strerror(err))


def permission_message(root: str = "/", euid: int | None = None, locked_down: str = LOCKED_DOWN) -> str:
    """Why the kernel said EPERM: not root; else each cause that holds of
    kexec_load_disabled, lockdown and a missing CAP_SYS_BOOT; else the list of
    what to check. Reads files below root only when called: on an error path,
    never at start-up. locked_down: what lockdown means for the call that failed."""
    if (os.geteuid() if euid is None else euid) != 0:
        return NOT_ROOT
    causes = []
    if _read(root, "proc/sys/kernel/kexec_load_disabled") == "1":
        causes.append(LOAD_DISABLED)
    mode = lockdown_mode(root)
    if mode:
        causes.append(locked_down.format(mode=mode))
    status = _read(root, "proc/self/status") or ""
    cap_eff = [line.split()[1:] for line in status.splitlines() if line.startswith("CapEff:")]
    if cap_eff and cap_eff[0] and all(c in "0123456789abcdefABCDEF" for c in cap_eff[0][0]):
        if not int(cap_eff[0][0], 16) & (1 << CAP_SYS_BOOT):
            causes.append(NO_CAP_SYS_BOOT)
    return "permission denied: " + "; ".join(causes) if causes else _PERMISSION


def lockdown_mode(root: str = "/") -> str | None:
    """The lockdown mode, integrity or confidentiality, or None when the kernel is
    not locked down: sys/kernel/security/lockdown reads e.g. "none [integrity]
    confidentiality"; without securityfs mounted, lockdown= on the command line."""
    text = _read(root, "sys/kernel/security/lockdown")
    if text is None:
        words = (_read(root, "proc/cmdline") or "").split()
        modes = [w[len("lockdown="):] for w in words if w.startswith("lockdown=")]
        mode = modes[-1] if modes else "none"
    else:
        start, end = text.find("["), text.find("]")
        mode = text[start + 1:end] if 0 <= start < end else "none"
    return mode if mode in ("integrity", "confidentiality") else None


def _read(root: str, path: str) -> str | None:
    return read_value(os.path.join(root, path))


_LIBC: tuple[FFI, Any] | None = None


def libc() -> tuple[FFI, Any]:
    """(ffi, libc), loaded once: the cffi module is generated at build time by _ffi_build."""
    global _LIBC
    if _LIBC is None:
        from kexec_py._kexec_ffi import ffi

        _LIBC = ffi, ffi.dlopen(None)
    return _LIBC


def pin_buffers(ffi: FFI, buffers: Iterable[Buffer]) -> list[FFI.CData]:
    """cffi pointers to each buffer (NULL for an empty one). A pointer keeps its
    buffer alive and in place: hold the list until the kernel has copied them."""
    return [ffi.from_buffer(buf) if len(buf) else ffi.NULL for buf in buffers]


class HostActions:
    """What kexec does around the kernel interface, the same whichever backend
    loads and jumps: sync, the network around a jump, the default shutdown.
    root is the machine's / (--machine-root): sysfs and procfs are read below it."""

    def __init__(self, root: str = "/") -> None:
        self._root = root
        self._sysfs = os.path.join(root, "sys")

    def sync(self) -> None:
        os.sync()

    def interfaces_down(self) -> Snapshot | None:
        """Take every interface but lo down (rtnetlink); returns what to restore, or
        None when nothing but lo is up: then neither netif, rtnetlink nor pyroute2 is
        imported (over a second of start-up on a small machine)."""
        if not any_interface_up(os.path.join(self._sysfs, "class", "net")):
            return None
        from kexec_py import netif, rtnetlink

        return netif.take_down(rtnetlink.Rtnetlink)

    def interfaces_restore(self, saved: Snapshot) -> None:
        """Bring back what interfaces_down() took down, with addresses and routes."""
        from kexec_py import netif, rtnetlink

        netif.restore(saved, rtnetlink.Rtnetlink)

    def shutdown_reboot(self) -> None:
        """kexec-tools' default action: let init shut down, the kernel then kexecs."""
        import subprocess

        try:
            subprocess.run(["shutdown", "-r", "now"], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise KexecError(f"shutdown -r now failed: {e}") from None


class LinuxKernel(HostActions):
    """The real thing. Only constructed for commands that touch the kernel."""

    name = "kernel"

    def __init__(self, root: str = "/") -> None:
        super().__init__(root)
        self._ffi, self._libc = libc()
        self._numbers = SYSCALL_NUMBERS[struct.calcsize("P") * 8]

    def _syscall(self, name: str, *args: FFI.CData) -> int:
        ffi = self._ffi
        ffi.errno = 0
        result = self._libc.syscall(ffi.cast("long", self._numbers[name]), *args)
        return 0 if result == 0 else ffi.errno

    def kexec_load(self, plan: KexecPlan) -> None:
        self._kexec_load(plan.entry, plan.segments, plan.flags)

    def kexec_unload(self, flags: int) -> None:
        self._kexec_load(0, (), flags)  # nr_segments == 0 unloads

    def _kexec_load(self, entry: int, plan_segments: Sequence[Segment], flags: int) -> None:
        ffi = self._ffi
        segments = ffi.new("struct kexec_segment[]", max(len(plan_segments), 1))
        keep = pin_buffers(ffi, [seg.buf for seg in plan_segments])
        for cseg, seg, buf in zip(segments, plan_segments, keep):
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
            message = permission_message(self._root) if err == E.EPERM else load_error_message(err, flags)
            raise KernelError(f"kexec_load failed: {message}", err)

    def kexec_file_load(self, load: FileLoad) -> None:
        """kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags); the
        files are open only for the call."""
        fds: list[int] = []
        try:
            for path in (load.kernel, load.initrd):
                fds.append(-1 if path is None else _open_read_only(path))
            cmdline = self._ffi.new("char[]", load.cmdline)  # the kernel copies cmdline_len bytes
            self._kexec_file_load(fds[0], fds[1], len(load.cmdline), cmdline, load.flags)
        finally:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def kexec_file_unload(self, flags: int) -> None:
        self._kexec_file_load(-1, -1, 0, self._ffi.NULL, flags)

    def _kexec_file_load(self, kernel_fd: int, initrd_fd: int, cmdline_len: int, cmdline: Any, flags: int) -> None:
        from kexec_py.file_load import LOCKED_DOWN_FILE, file_load_error_message

        ffi = self._ffi
        if "kexec_file_load" not in self._numbers:  # a 32-bit process: the compat table has none
            err = E.ENOSYS
        else:
            err = self._syscall("kexec_file_load", ffi.cast("long", kernel_fd), ffi.cast("long", initrd_fd),
                                ffi.cast("unsigned long", cmdline_len), cmdline, ffi.cast("unsigned long", flags))
        if err:
            message = (permission_message(self._root, locked_down=LOCKED_DOWN_FILE) if err == E.EPERM
                       else file_load_error_message(err))
            raise KernelError(f"kexec_file_load failed: {message}", err)

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
            message = permission_message(self._root) if err == E.EPERM else REBOOT_ERRORS.get(err, os.strerror(err))
            raise KernelError(f"kexec failed: {message}", err)

    def kexec_loaded(self, crash: bool = False) -> bool:
        name = "kexec_crash_loaded" if crash else "kexec_loaded"
        try:
            return read_text(os.path.join(self._sysfs, "kernel", name)).strip() == "1"
        except OSError as e:
            raise KernelError(f"cannot read {e.filename}: {e.strerror} (no kexec support?)", e.errno) from e


def _open_read_only(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KexecError(f"cannot open {path}: {e.strerror}") from None


IFF_UP, IFF_LOOPBACK = 0x1, 0x8


def any_interface_up(sys_class_net: str) -> bool:
    """Whether anything but loopback is administratively up, read from sysfs."""
    try:
        names = os.listdir(sys_class_net)
    except OSError:
        return True  # no sysfs view: let rtnetlink decide
    for name in names:
        try:
            flags = int(read_text(os.path.join(sys_class_net, name, "flags")), 16)
        except (OSError, ValueError):
            return True
        if flags & IFF_UP and not flags & IFF_LOOPBACK:
            return True
    return False
