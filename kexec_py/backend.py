"""Where a load goes: the kernel's own kexec_load, the kexec_jump module's
/dev/kexec_jump (kexec_py.shim), or kexec_file_load (kexec_py.file_load).

choose() is the rule for the backend, a pure function of the target arch, the
running release, whether the kernel has CONFIG_KEXEC_JUMP (True, False or None:
unknown), whether the shim is available (asked lazily: on a real load that may run
modprobe) and the user's --backend. choose_syscall() is the rule for the system
call (-s, -c, -a), following kexec-tools' kexec.c: -a (the default) tries
kexec_file_load and falls back to kexec_load when the kernel says ENOSYS, EINVAL,
ENOEXEC or EOPNOTSUPP (its EFALLBACK cases); -s never falls back. The readers below
them take the machine's root directory, as the rest of kexec-py does (--machine-root).

Loads need this, and -u on x86_64 for its system call; `kexec -e` and -S follow
the loaded image and never import it.
"""

from __future__ import annotations

import errno as E
import os

from kexec_py.errors import UsageError
from kexec_py.machine_files import read_bytes, read_text, shim_present
from kexec_py.value import frozen

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Callable

KERNEL, SHIM = "kernel", "shim"
CHOICES = ("auto", KERNEL, SHIM)
PACKAGE = "kexec-py-dkms"
GDT_FIX = '"x86/kexec: Restore GDT on return from ::preserve_context kexec"'


@frozen
class Route:
    """Where a load goes and why."""

    backend: str  # KERNEL or SHIM: the first (or only) place the load goes
    reason: str  # for --dry-run and -d
    fallback: bool = False  # KERNEL first; if it says EINVAL (no KEXEC_JUMP after all), the shim
    missing: bool = False  # SHIM is needed but not available: nothing can load this

    def describe(self) -> str:
        where = "kexec_load" if self.backend == KERNEL else "/dev/kexec_jump"
        text = f"backend: {self.backend} ({where}): {self.reason}"
        return text + (f"; the kexec_jump module is not available here ({PACKAGE})" if self.missing else "")


def return_path_broken(arch: str, release: str | None) -> str | None:
    """Why the kernel's own return from a preserve-context jump is known to crash, or
    None when it is not known to (fixed, or the release is unknown)."""
    if arch == "i386":
        return "i386 kernels crash when a preserve-context jump returns (no upstream fix)"
    version = _version(release)
    # the fix is in 6.13 and was backported to 6.12.117: before 6.12.117 means broken
    if arch == "x86_64" and version is not None and version < (6, 12, 117):
        return f"Linux {release} lacks {GDT_FIX} (6.13, 6.12.117)"
    return None


def _version(release: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) from the start of a release ("6.1.0-50-686-pae", "6.12-rc1":
    patch 0), None without major.minor; without re, which a payload load does not import."""
    major, rest = _digits(release or "")
    if not major or rest[:1] != ".":
        return None
    minor, rest = _digits(rest[1:])
    if not minor:
        return None
    patch = _digits(rest[1:])[0] if rest[:1] == "." else ""
    return int(major), int(minor), int(patch or 0)


def _digits(text: str) -> tuple[str, str]:
    """text's leading ASCII digits, and the rest."""
    end = 0
    while end < len(text) and text[end] in "0123456789":
        end += 1
    return text[:end], text[end:]


def choose(arch: str, release: str | None, kexec_jump: bool | None, shim_available: Callable[[], bool],
           choice: str = "auto", preserve_context: bool = True) -> Route:
    """The backend for one load. shim_available() is called at most once, and only
    when the answer matters (it may load the module)."""
    if not preserve_context:
        if choice == SHIM:
            raise UsageError("--backend shim: plain loads (-l, -f, the default) always use kexec_load;"
                             " the kexec_jump module only loads preserve-context images")
        return Route(KERNEL, "plain loads always use kexec_load")
    if choice == KERNEL:
        return Route(KERNEL, "--backend kernel")
    if choice == SHIM:
        return Route(SHIM, "--backend shim", missing=not shim_available())
    if kexec_jump is False:
        return Route(SHIM, "this kernel was built without CONFIG_KEXEC_JUMP", missing=not shim_available())
    broken = return_path_broken(arch, release)
    if broken and shim_available():
        return Route(SHIM, broken)
    if kexec_jump is None:
        return Route(KERNEL, "CONFIG_KEXEC_JUMP unknown: kexec_load first, the kexec_jump module if the kernel"
                     " refuses (EINVAL)", fallback=True)
    if broken:
        return Route(KERNEL, f"the kernel has CONFIG_KEXEC_JUMP; {broken} unless patched, and the kexec_jump"
                     " module is not available")
    return Route(KERNEL, "the kernel has CONFIG_KEXEC_JUMP")


def no_backend_message(release: str | None, installed: bool, euid: int, explicit: bool = False,
                       lockdown: str | None = None) -> str:
    """The one line when a preserve-context load has nowhere to go."""
    if euid != 0:
        from kexec_py.kernel import NOT_ROOT

        return f"kexec_load failed: {NOT_ROOT}"
    if installed and lockdown:
        module = (f"the kexec_jump module does not load: the kernel is in lockdown mode ({lockdown}), which"
                  " refuses modules not signed by a key it trusts")
    elif installed:
        module = ("the kexec_jump module is installed but does not load (see dmesg after modprobe kexec_jump;"
                  " under lockdown or Secure Boot it must be signed)")
    else:
        headers = f"linux-headers-{release}" if release else "the linux-headers package of this kernel"
        module = f"the kexec_jump module is not installed: install {PACKAGE} (and {headers})"
    if explicit:
        return f"--backend shim: {module}"
    return f"kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and {module}"


# --- the system call: kexec_file_load or kexec_load ----------------------------------------

FILE, LOAD = "kexec_file_load", "kexec_load"
# kexec-tools' EFALLBACK: the kernel lacks the call or does not understand the image
LOAD_FALLBACK = frozenset({E.ENOSYS, E.EINVAL, E.ENOEXEC, E.EOPNOTSUPP})
UNLOAD_FALLBACK = frozenset({E.ENOSYS})  # kexec-tools' kexec_file_unload() falls back only then


@frozen
class SyscallChoice:
    """The system call a command makes first, and the errnos after which it makes
    kexec_load instead (empty: none)."""

    first: str  # FILE or LOAD
    reason: str
    fallback: frozenset[int] = frozenset()

    def describe(self) -> str:
        then = f"; {LOAD} if the kernel refuses it ({_errno_names(self.fallback)})" if self.fallback else ""
        return f"syscall: {self.first}{then}: {self.reason}"


def _errno_names(errnos: frozenset[int]) -> str:
    return ", ".join(sorted(E.errorcode[e] for e in errnos))


NO_FILE_SYSCALL_I386 = "-s: kexec_file_load exists on x86_64 only; an i386 kernel has none (use -c or -a)"
NO_PRESERVE_CONTEXT = ("-s: kexec_file_load has no preserve-context flag; {what} needs kexec_load or the"
                       " kexec_jump module (drop -s)")


def choose_syscall(option: str, arch: str, *, preserve_context: bool = False, jump_back: bool = False,
                   bzimage: bool = True, unload: bool = False) -> SyscallChoice:
    """option: "file" (-s), "load" (-c) or "auto" (-a, the default); arch: the
    running kernel's. bzimage: whether the image is one kexec_file_load can take
    (x86_64 has only a bzImage loader for it): -a then skips a call that could only
    fail with ENOEXEC and fall back, which is what kexec-tools does in two calls."""
    if option == "load":
        return SyscallChoice(LOAD, "-c")
    what = ("--load-jump-back-helper" if jump_back else
            "--load-preserve-context" if preserve_context else None)
    if arch != "x86_64":
        if option == "file":
            raise UsageError(NO_FILE_SYSCALL_I386)
        return SyscallChoice(LOAD, f"{arch} has no kexec_file_load")
    if what is not None:
        if option == "file":
            raise UsageError(NO_PRESERVE_CONTEXT.format(what=what))
        return SyscallChoice(LOAD, f"{what}: kexec_file_load has no preserve-context flag")
    if option == "file":
        return SyscallChoice(FILE, "-s")
    if unload:
        return SyscallChoice(FILE, "-a (the default)", UNLOAD_FALLBACK)
    if not bzimage:
        return SyscallChoice(LOAD, "-a (the default): kexec_file_load takes only bzImages on x86_64")
    return SyscallChoice(FILE, "-a (the default)", LOAD_FALLBACK)


# --- readers: the machine below root ---------------------------------------------------------

def running_release(root: str = "/") -> str | None:
    """uname -r of the machine: proc/sys/kernel/osrelease below root (None when a
    recorded machine has none)."""
    try:
        return read_text(os.path.join(root, "proc/sys/kernel/osrelease")).strip() or None
    except (OSError, ValueError):
        return os.uname().release if os.path.realpath(root) == "/" else None


def kexec_jump_config(root: str, release: str | None) -> bool | None:
    """CONFIG_KEXEC_JUMP of the running kernel from proc/config.gz (the kernel's own),
    else boot/config-<release>; None when neither is readable."""
    import zlib  # gzip's module would bring _compression and io's stream classes for one read

    sources = [os.path.join(root, "proc/config.gz")]
    if release:
        sources.append(os.path.join(root, "boot", f"config-{release}"))
    for path in sources:
        try:
            data = read_bytes(path)
            if path.endswith(".gz"):
                data = zlib.decompress(data, 16 + zlib.MAX_WBITS)  # a gzip member
        except (OSError, zlib.error):
            continue
        known = parse_kexec_jump(data.decode("utf-8", errors="replace"))
        if known is not None:
            return known
    return None


def parse_kexec_jump(config: str) -> bool | None:
    """True for CONFIG_KEXEC_JUMP=y; False for any other kernel config (not set, or
    absent because KEXEC or HIBERNATION is off); None if this is no kernel config."""
    lines = config.splitlines()
    if not any(line.startswith(("CONFIG_", "# CONFIG_")) for line in lines):
        return None
    return "CONFIG_KEXEC_JUMP=y" in lines


def module_installed(root: str, release: str | None) -> bool | None:
    """Whether kexec_jump.ko is installed for release, as modprobe sees it
    (lib/modules/<release>/modules.dep): False also when the kernel has no module
    tree at all; None when that cannot be told."""
    if not release:
        return None
    modules = os.path.join(root, "lib/modules", release)
    try:
        modules_dep = read_bytes(os.path.join(modules, "modules.dep"))
    except OSError:
        return False if not os.path.isdir(modules) else None
    return lists_module(modules_dep, b"kexec_jump.ko")


def lists_module(modules_dep: bytes, name: bytes) -> bool:
    """Whether a line of modules.dep is the entry of a module file named name (any
    compression suffix): its path before the colon, not a dependency after it. Bytes,
    and only the lines name occurs on: decoding Debian's 545 KB and looping over its
    4,000 lines cost 41 ms in the TCG 686-pae guest (8 ms this way), on a load meant to
    cost 80 ms."""
    at = modules_dep.find(name)
    while at >= 0:
        start = modules_dep.rfind(b"\n", 0, at) + 1
        end = modules_dep.find(b"\n", at)
        end = len(modules_dep) if end < 0 else end
        if os.path.basename(modules_dep[start:end].split(b":", 1)[0]).startswith(name):
            return True
        at = modules_dep.find(name, end)
    return False


def shim_ruled_out(root: str) -> bool:
    """No /dev/kexec_jump, and modprobe could not make one: modules.dep, or the lack of
    a module tree, says kexec_jump.ko is not installed for the running kernel. Read
    from the files alone, so that a command can say so without importing kexec_py.shim."""
    return not shim_present(root) and module_installed(root, running_release(root)) is False
