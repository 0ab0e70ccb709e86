"""kexec_file_load: the kernel reads the kernel image and initrd itself, checks
the image's signature where its policy asks, and builds the boot parameters (and
for a crash kernel the ELF core header) on its own. x86_64 only: i386 has no
such system call.

Which of the two system calls a command uses (-s, -c, -a) is
kexec_py.backend.choose_syscall().
"""

from __future__ import annotations

import errno as E

from kexec_py.errors import ImageError
from kexec_py.value import frozen

# include/uapi/linux/kexec.h
KEXEC_FILE_UNLOAD = 0x1
KEXEC_FILE_ON_CRASH = 0x2
KEXEC_FILE_NO_INITRAMFS = 0x4
_FLAG_NAMES = ((KEXEC_FILE_UNLOAD, "KEXEC_FILE_UNLOAD"), (KEXEC_FILE_ON_CRASH, "KEXEC_FILE_ON_CRASH"),
               (KEXEC_FILE_NO_INITRAMFS, "KEXEC_FILE_NO_INITRAMFS"))


@frozen
class FileLoad:
    """Exactly the arguments of one kexec_file_load call (paths, not yet fds)."""

    kernel: str
    initrd: str | None  # None: initrd_fd -1 and KEXEC_FILE_NO_INITRAMFS
    cmdline: bytes  # with its terminating NUL: cmdline_len counts it, the kernel checks it
    flags: int

    def as_dict(self) -> dict[str, object]:
        return {"syscall": "kexec_file_load", "kernel": self.kernel, "initrd": self.initrd,
                "cmdline": self.cmdline[:-1].decode("utf-8", "surrogateescape"),
                "cmdline_len": len(self.cmdline), "flags": self.flags}

    def describe(self) -> str:
        return "\n".join([
            "syscall     = kexec_file_load",
            f"kernel_fd   = {self.kernel}",
            f"initrd_fd   = {self.initrd if self.initrd is not None else -1}",
            f"cmdline     = {self.cmdline[:-1].decode('utf-8', 'surrogateescape')!r}"
            f" (cmdline_len {len(self.cmdline)}, with the NUL)",
            f"flags       = {self.flags:#x} ({describe_file_flags(self.flags)})",
        ])


def describe_file_flags(flags: int) -> str:
    return "|".join(name for bit, name in _FLAG_NAMES if flags & bit) or "0"


def file_load(kernel: str, initrd: str | None, command_line: str | None, crash: bool) -> FileLoad:
    data = (command_line or "").encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ImageError("the command line contains a NUL byte")
    flags = (KEXEC_FILE_ON_CRASH if crash else 0) | (KEXEC_FILE_NO_INITRAMFS if initrd is None else 0)
    return FileLoad(kernel, initrd, data + b"\0", flags)


def unload_flags(crash: bool) -> int:
    return KEXEC_FILE_UNLOAD | (KEXEC_FILE_ON_CRASH if crash else 0)


# What the kernel's kexec_file_load errors mean (kernel/kexec_file.c, the signature
# checks of kexec_image_verify_sig and the PE/PKCS#7 parsers).
_SIGNATURE = "the image's signature could not be verified: "
FILE_LOAD_ERRORS = {
    E.EKEYREJECTED: _SIGNATURE + "a trusted key rejected it (EKEYREJECTED: wrong key, or the image changed)",
    E.EBADMSG: _SIGNATURE + "it is malformed (EBADMSG)",
    E.ENOKEY: _SIGNATURE + "no trusted key (builtin, secondary, platform or MOK keyring) signed it (ENOKEY)",
    E.ENOPKG: _SIGNATURE + "the kernel lacks its hash or signature algorithm (ENOPKG)",
    E.ELIBBAD: _SIGNATURE + "its PE/PKCS#7 wrapper is damaged (ELIBBAD)",
    E.EMSGSIZE: _SIGNATURE + "its signature block has a bad size (EMSGSIZE)",
    E.ENODATA: "the image is not signed and this kernel takes only signed ones (ENODATA, CONFIG_KEXEC_SIG_FORCE)",
    E.ENOEXEC: "the kernel does not take this image (ENOEXEC): on x86_64 kexec_file_load loads bzImages"
               " with a 64-bit entry (boot protocol 2.12 or later)",
    E.EINVAL: "the kernel refused the arguments or the image (EINVAL)",
    E.EOPNOTSUPP: "the kernel does not support this image type (EOPNOTSUPP)",
    E.ENOSYS: "this kernel has no kexec_file_load (built without CONFIG_KEXEC_FILE; -c uses kexec_load)",
    E.EBUSY: "another kexec load or exec is in progress; try again",
    E.ENOMEM: "the kernel found no room for the image (for -p: is the crashkernel= reservation big enough?)",
    E.EFBIG: "the image or initrd is too big for the kernel to read",
}
LOCKED_DOWN_FILE = ("the kernel is in lockdown mode ({mode}, as under Secure Boot): kexec_file_load takes only"
                    " a kernel signed with a key it trusts")


def file_load_error_message(err: int) -> str:
    import os

    return FILE_LOAD_ERRORS.get(err, os.strerror(err))
