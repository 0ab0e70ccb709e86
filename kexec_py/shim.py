"""The kernel interface over the kexec_jump module's /dev/kexec_jump (the
"shim", csrc/shim/uapi/kexec_jump.h): kexec jump on kernels built without
CONFIG_KEXEC_JUMP, or whose own return path is broken.

ShimKernel answers the same calls as kexec_py.kernel.LinuxKernel and shares
its HostActions (sync, network, shutdown) and errno tables: KJ_LOAD validates
and fails as kexec_load does. What differs is the jump: the module needs user
space frozen by its caller, so reboot_kexec() freezes it through /dev/snapshot
(opened O_WRONLY: O_RDONLY would disable CPU hotplug and the module could not
take the other CPUs offline), calls KJ_EXEC, and thaws on every path. Nothing
is printed while user space is frozen (the reader of our pipe may be frozen):
errors are raised after the thaw.

Imported by `kexec -e`: only os, errno and struct at import time; fcntl when
the device exists, cffi when a load needs buffer addresses.
"""

from __future__ import annotations

import errno as E
import os
import struct

from kexec_py.errors import KernelError
from kexec_py.kernel import LOAD_ERRORS, REBOOT_ERRORS, HostActions, permission_message
from kexec_py.machine_files import SHIM_DEVICE, read_text, shim_present

TYPE_CHECKING = False  # as in kexec_py.kernel: annotations only, typing is not imported
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from kexec_py.segments import Buffer, KexecPlan, Segment

LOADED_ATTR = "sys/class/misc/kexec_jump/loaded"  # "1\n" while an image is loaded (world-readable)
SNAPSHOT = "dev/snapshot"
MODULE = "kexec_jump"
KJ_MAX_SEGMENTS = 16

# ioctl numbers as the uapi header's _IOW/_IO/_IOR make them (magic 0xB4, '3' for
# /dev/snapshot); written out so the tests can check them against the formula.
KJ_LOAD = 0x4018B401  # _IOW(0xB4, 1, struct kj_load)
KJ_EXEC = 0xB402  # _IO(0xB4, 2)
KJ_UNLOAD = 0xB403  # _IO(0xB4, 3)
KJ_STATUS = 0x8020B404  # _IOR(0xB4, 4, struct kj_status)
SNAPSHOT_FREEZE = 0x3301  # _IO('3', 1), include/uapi/linux/suspend_ioctls.h
SNAPSHOT_UNFREEZE = 0x3302  # _IO('3', 2)

# The uapi structs, fixed width so that 32- and 64-bit processes share them (x86: little-endian).
KJ_SEGMENT = struct.Struct("<QQQQ")  # buf, bufsz, mem, memsz
KJ_LOAD_ARG = struct.Struct("<QQII")  # entry, segments, nr_segments, flags
KJ_STATUS_ARG = struct.Struct("<IIQIIQ")  # loaded, flags, entry, nr_segments, nr_pages, jumps


class ShimStatus:
    """struct kj_status. A plain class: `kexec -e` imports this module, and a
    NamedTuple (typing) or dataclass would cost it more than the rest of it."""

    __slots__ = ("loaded", "flags", "entry", "nr_segments", "nr_pages", "jumps")
    loaded: int
    flags: int
    entry: int
    nr_segments: int
    nr_pages: int
    jumps: int

    def __init__(self, data: bytes) -> None:
        for name, value in zip(self.__slots__, KJ_STATUS_ARG.unpack(data)):
            setattr(self, name, value)


def pack_segments(segments: Iterable[Segment], addresses: Iterable[int]) -> bytes:
    """struct kj_segment[]: each segment with the user address of its data."""
    return b"".join(KJ_SEGMENT.pack(address, s.bufsz, s.mem, s.memsz) for s, address in zip(segments, addresses))


def pack_load(entry: int, segments_address: int, nr_segments: int, flags: int) -> bytes:
    """struct kj_load."""
    return KJ_LOAD_ARG.pack(entry, segments_address, nr_segments, flags)


# --- errno -> message: what each step's failure means ---------------------------------------

SHIM_LOAD_ERRORS = {  # EPERM and EACCES: permission_message(), as for every device call
    **{err: text for err, text in LOAD_ERRORS.items() if err not in (E.EPERM, E.EACCES)},
    E.EINVAL: "the kexec_jump module rejected the segment list or flags (EINVAL)",
    E.ENOTTY: "not the kexec_jump device this kexec-py knows (ENOTTY): module and tool versions differ?",
}
EXEC_ERRORS = {
    E.EINVAL: REBOOT_ERRORS[E.EINVAL],
    E.EBUSY: (
        "the kexec_jump module is busy (EBUSY): another load or jump is in progress,"
        " or a CPU could not be taken offline"
    ),
    E.ENOMEM: "the kernel ran out of memory preparing the jump (ENOMEM)",
    E.ENOTTY: SHIM_LOAD_ERRORS[E.ENOTTY],
}
EXEC_OTHER = "{reason}: suspending devices or taking the other CPUs offline failed (see dmesg)"
_NOT_LOADED = "the kexec_jump module is not loaded (modprobe kexec_jump)"
DEVICE_OPEN_ERRORS = {E.ENOENT: _NOT_LOADED, E.ENODEV: _NOT_LOADED, E.ENXIO: _NOT_LOADED}
SNAPSHOT_OPEN_ERRORS = {
    E.ENOENT: (
        "{path} is missing: this kernel was built without CONFIG_HIBERNATION_SNAPSHOT_DEV,"
        " which the kexec_jump module needs to freeze user space"
    ),
    E.EPERM: (
        "{path} refused (EPERM): hibernation is unavailable (kernel lockdown or the nohibernate"
        " boot option), so user space cannot be frozen for the jump"
    ),
    E.EBUSY: "{path} is busy: a hibernation is in progress or another program has it open",
}
FREEZE_ERRORS = {
    E.EBUSY: "could not freeze user space (EBUSY): a task refused to freeze (see dmesg)",
    E.ENOMEM: "could not freeze user space: out of memory (ENOMEM)",
}


def _message(table: Mapping[int, str], err: int | None, root: str, **names: str) -> str:
    """EPERM/EACCES told apart by cause, else the table's text for err, else the C library's words."""
    if err is None:  # an OSError that no system call raised
        return "unknown error"
    if err in (E.EPERM, E.EACCES) and err not in table:
        return permission_message(root)
    if err in table:
        return table[err].format(**names)
    return os.strerror(err)


class DeviceCalls:
    """The system calls ShimKernel makes, one method each; the tests pass a recording
    fake. Failures raise OSError. pin() gives the user addresses of buffers and keeps
    them in place until unpin()."""

    def __init__(self) -> None:
        self._pins: list[object] = []

    def open(self, path: str, flags: int) -> int:
        return os.open(path, flags | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def ioctl(self, fd: int, request: int, arg: int | bytes | bytearray = 0) -> None:
        """arg: 0 (_IO), bytes the kernel reads (_IOW), or a bytearray it fills (_IOR)."""
        import fcntl

        if isinstance(arg, bytearray):
            fcntl.ioctl(fd, request, arg, True)
        else:
            fcntl.ioctl(fd, request, arg)

    def pin(self, buffers: Iterable[Buffer]) -> list[int]:
        from kexec_py.kernel import libc, pin_buffers

        ffi, _ = libc()
        pointers = pin_buffers(ffi, buffers)
        self._pins.extend(pointers)
        return [int(ffi.cast("uintptr_t", p)) for p in pointers]

    def unpin(self) -> None:
        self._pins.clear()


def run_modprobe() -> bool:
    """modprobe -q kexec_jump; True when it loaded (or already was)."""
    import subprocess

    try:
        done = subprocess.run(["modprobe", "-q", MODULE], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


class ShimKernel(HostActions):
    """/dev/kexec_jump. present() is cheap (does the node exist); available() may
    also load the module, so the CLI asks it only on a load that wants the shim."""

    name = "kexec_jump module"

    def __init__(self, root: str = "/", calls: DeviceCalls | None = None,
                 modprobe: Callable[[], bool] | None = None) -> None:
        super().__init__(root)
        self._calls = calls or DeviceCalls()
        self._modprobe = modprobe or (run_modprobe if root == "/" else (lambda: False))
        self._available: bool | None = None
        self.device = os.path.join(root, SHIM_DEVICE)
        self.snapshot = os.path.join(root, SNAPSHOT)

    def present(self) -> bool:
        return shim_present(self._root)

    def available(self, ruled_out: bool | None = None) -> bool:
        """The device exists, else modprobe loads the module and then it does. No
        modprobe when backend.shim_ruled_out() says modules.dep has no such module;
        ruled_out is its answer when the caller has read the files already."""
        if self._available is None:
            if ruled_out is None:
                from kexec_py.backend import shim_ruled_out

                ruled_out = shim_ruled_out(self._root)
            self._available = self.present() or (not ruled_out and self._modprobe() and self._wait_for_device())
        return self._available

    def _wait_for_device(self, tries: int = 20) -> bool:
        """devtmpfs makes the node before modprobe returns; a udev-only /dev may lag."""
        import time

        for _ in range(tries):
            if self.present():
                return True
            time.sleep(0.05)
        return self.present()

    # --- the kernel interface -------------------------------------------------------------

    def kexec_load(self, plan: KexecPlan) -> None:
        if len(plan.segments) > KJ_MAX_SEGMENTS:  # the module says EINVAL too; say why
            raise KernelError(f"{self.device}: load failed: {len(plan.segments)} segments, the module takes"
                              f" at most {KJ_MAX_SEGMENTS}", E.EINVAL)
        fd = self._open()
        try:
            addresses = self._calls.pin([s.buf for s in plan.segments])
            table = pack_segments(plan.segments, addresses)
            [table_address] = self._calls.pin([table])
            self._calls.ioctl(fd, KJ_LOAD, pack_load(plan.entry, table_address, len(plan.segments), plan.flags))
        except OSError as e:
            raise KernelError(f"{self.device}: load failed: {_message(SHIM_LOAD_ERRORS, e.errno, self._root)}",
                              e.errno) from None
        finally:
            self._calls.unpin()
            self._calls.close(fd)

    def kexec_unload(self, flags: int) -> None:
        fd = self._open()
        try:
            self._calls.ioctl(fd, KJ_UNLOAD)
        except OSError as e:
            raise KernelError(f"{self.device}: unload failed: {_message(EXEC_ERRORS, e.errno, self._root)}",
                              e.errno) from None
        finally:
            self._calls.close(fd)

    def status(self) -> ShimStatus:
        fd = self._open()
        try:
            buf = bytearray(KJ_STATUS_ARG.size)
            self._calls.ioctl(fd, KJ_STATUS, buf)
        except OSError as e:
            raise KernelError(f"{self.device}: status failed: {_message(EXEC_ERRORS, e.errno, self._root)}",
                              e.errno) from None
        finally:
            self._calls.close(fd)
        return ShimStatus(bytes(buf))

    def kexec_loaded(self, crash: bool = False) -> bool:
        """No device: nothing loaded here (never loads the module). No crash images.
        The module's sysfs attribute answers without root; KJ_STATUS if it is missing."""
        if crash or not self.present():
            return False
        try:
            return read_text(os.path.join(self._root, LOADED_ATTR)).strip() == "1"
        except OSError:
            return bool(self.status().loaded)

    def reboot_kexec(self) -> None:
        """Freeze user space, KJ_EXEC, thaw. Returns when the image came back."""
        fd = self._open()
        try:
            self._exec_frozen(fd)
        finally:
            self._calls.close(fd)

    def _exec_frozen(self, fd: int) -> None:
        try:
            snapshot = self._calls.open(self.snapshot, os.O_WRONLY)  # not O_RDONLY: see the module doc
        except OSError as e:
            raise KernelError(f"kexec failed: {_message(SNAPSHOT_OPEN_ERRORS, e.errno, self._root, path=self.snapshot)}",
                              e.errno) from None
        failed = None  # (errno, table): raised once user space is thawed
        try:
            try:
                self._calls.ioctl(snapshot, SNAPSHOT_FREEZE)
            except OSError as e:
                failed = e.errno, FREEZE_ERRORS  # the kernel thawed what it had frozen
            else:
                try:
                    self._calls.ioctl(fd, KJ_EXEC)
                except OSError as e:
                    failed = e.errno, EXEC_ERRORS
                finally:
                    self._thaw(snapshot)
        finally:
            self._calls.close(snapshot)  # closing thaws too, whatever happened above
        if failed:
            err, table = failed
            message = _message(table, err, self._root)
            if table is EXEC_ERRORS and err not in table and err not in (E.EPERM, E.EACCES):
                message = EXEC_OTHER.format(reason=message)
            raise KernelError(f"kexec failed: {message}", err)

    def _thaw(self, snapshot: int) -> None:
        try:
            self._calls.ioctl(snapshot, SNAPSHOT_UNFREEZE)
        except OSError:
            pass  # the close that follows thaws as well

    def _open(self) -> int:
        try:
            return self._calls.open(self.device, os.O_RDWR)
        except OSError as e:
            raise KernelError(f"{self.device}: {_message(DEVICE_OPEN_ERRORS, e.errno, self._root)}", e.errno) from None
