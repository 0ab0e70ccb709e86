"""kexec(8) command line: one argparse parser, one action per invocation.

Imports stay inside the actions: `kexec -e` must not pay for pyelftools or
pyroute2 (start-up time is part of the product).
"""

from __future__ import annotations

import argparse
import re
import sys

from kexec_py import __version__
from kexec_py.errors import EXIT_USAGE, KexecError, NothingLoaded, UsageError

TYPE_CHECKING = False  # as in kexec_py.kernel: annotations only, `kexec -e` imports no typing
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, NoReturn

    from kexec_py.backend import Route
    from kexec_py.crash import CrashLayout
    from kexec_py.file_load import FileLoad, SyscallChoice
    from kexec_py.memmap import MemoryMap
    from kexec_py.arch import Arch
    from kexec_py.kernel import LinuxKernel
    from kexec_py.segments import KexecPlan
    from kexec_py.shim import ShimKernel

PROG = "kexec"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and kexec-tools' exit code, not argparse's 2
        sys.stderr.write(f"{PROG}: {message} (see {PROG} --help)\n")
        sys.exit(EXIT_USAGE)


_NUMBER = r"-?(0[xX][0-9a-fA-F]+|[0-9]+)"  # not Python's 0b, 0o, 1_000; compiled on first use
ADDRESS_MAX = (1 << 64) - 1  # strtoul's range on a 64-bit kernel; kexec_load takes unsigned long


def parse_address(text: str) -> int:
    """Numbers as kexec-tools' strtoul(..., 0) reads them: 0x hex, 0 octal, else decimal."""
    if not re.fullmatch(_NUMBER, text):
        raise argparse.ArgumentTypeError(f"bad number {text!r}")
    try:
        if len(text) > 1 and text[0] == "0" and text[1].isdigit():
            value = int(text, 8)
        else:
            value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative address {text!r}")
    if value > ADDRESS_MAX:
        raise argparse.ArgumentTypeError(f"address {text!r} does not fit in 64 bits")
    return value


# kexec_py.arch's tables, as --help shows them (tests/unit/test_cli.py holds them equal):
# `kexec -e` never imports kexec_py.arch.
IMAGE_TYPES_HELP = "i386: elf-x86, bzImage; x86_64: elf-x86_64, bzImage64"


class _ArchNames:
    """--arch's choices, from kexec_py.arch when argparse first asks (a given --arch, --help)."""

    def _names(self) -> list[str]:
        from kexec_py.arch import ARCHES

        return list(ARCHES)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Load a new kernel or physical-mode image and jump to it; with"
            " --load-preserve-context the image runs and returns to this Linux (kexec jump)."
        ),
        epilog=(
            "Example: kexec --load-preserve-context --args-none phy_mode; kexec -e"
            " (runs phy_mode in physical mode and comes back)."
        ),
        add_help=False,  # -h is in the output group: see there
    )
    actions = parser.add_argument_group("actions (one at most; default: load, then shutdown -r now)")
    action = actions.add_mutually_exclusive_group()
    add = action.add_argument
    add("-l", "--load", dest="action", action="store_const", const="load",
        help="load the image into memory for a later kexec -e")
    add("--load-preserve-context", dest="action", action="store_const", const="load-preserve-context",
        help="load the image with KEXEC_PRESERVE_CONTEXT: kexec -e calls it and it may return here;"
        " the pages it occupies are backed up and restored around every jump")
    add("-e", "--exec", dest="action", action="store_const", const="exec",
        help="jump to the loaded image now (after a preserve-context jump returns, exit 0)")
    add("-f", "--force", dest="action", action="store_const", const="force",
        help="load and jump at once, without shutdown")
    add("-u", "--unload", dest="action", action="store_const", const="unload",
        help="unload the loaded image (with -p: the crash kernel)")
    add("--load-jump-back-helper", dest="action", action="store_const", const="load-jump-back-helper",
        help="in a kernel started by a preserve-context kexec: load the way back, so that kexec -e"
        " returns to the kernel that jumped here (entry from --entry, else from"
        " kexec_jump_back_entry= on /proc/cmdline)")
    add("--call", dest="action", action="store_const", const="call",
        help="run the payload IMAGE once in physical mode and print what it reports: load it with"
        " --load-preserve-context, jump, read its answer through a result buffer pinned in this"
        " process, unload it (refused while an image is loaded). Exits 255 with one line if the"
        " payload faults or returns non-zero")
    add("--print-ckr-size", dest="action", action="store_const", const="print-ckr-size",
        help="print the size in bytes of the memory reserved for a crash kernel (crashkernel=),"
        " 0 if none, as kexec-tools does")

    actions.add_argument("-p", "--load-panic", action="store_true",
                         help="load a crash kernel, which a panic of this kernel boots (needs memory"
                         " reserved with crashkernel=); with -u: unload it; with -S: ask about it")
    actions.add_argument("-S", "--status", action="store_true",
                         help="exit 1 if an image is loaded, 0 if not (as kexec-tools): the crash kernel,"
                         " or with -l or --load-preserve-context the kexec -e image")

    image = parser.add_argument_group("image")
    image.add_argument("image", nargs="?", metavar="IMAGE",
                       help="the file to load; the name of an installed example payload (phy_mode,"
                       " entry_report, bios-e820, bios-memsize, cpuid, edd, vbe-info) works from any"
                       " directory")
    image.add_argument("-t", "--type", metavar="TYPE",
                       help="image type instead of probing, named as kexec-tools names them for the"
                       " kernel's arch (" + IMAGE_TYPES_HELP + ")")
    args_style = image.add_mutually_exclusive_group()
    args_style.add_argument("--args-none", dest="args_style", action="store_const", const="none",
                            help="ELF: pass no arguments; the kernel calls e_entry directly")
    args_style.add_argument("--args-linux", dest="args_style", action="store_const", const="linux",
                            help="ELF: the image is a Linux vmlinux; boot it like a bzImage (zero"
                            " page, command line, initrd, purgatory)")
    args_style.add_argument("--args-elf", dest="args_style", action="store_const", const="elf",
                            help="ELF: pass ELF boot notes (not implemented yet)")
    image.add_argument("--entry", metavar="ADDR", type=parse_address,
                       help="enter the image here instead of at its own entry point (--args-none);"
                       " with --load-jump-back-helper: the address to return to")

    linux = parser.add_argument_group("Linux kernels (bzImage, or ELF with --args-linux)")
    linux.add_argument("--command-line", "--append", dest="command_line", metavar="STRING",
                       help="the kernel command line (after the reused one with --reuse-cmdline)")
    linux.add_argument("--reuse-cmdline", action="store_true",
                       help="start from this kernel's /proc/cmdline, without BOOT_IMAGE= and"
                       " kexec_jump_back_entry=")
    linux.add_argument("--initrd", "--ramdisk", dest="initrd", metavar="FILE",
                       help="load FILE as the kernel's initial ramdisk")
    linux.add_argument("-i", "--no-checks", action="store_true",
                       help="purgatory skips the SHA-256 check of the loaded segments")

    crash = parser.add_argument_group("crash kernel (-p)")
    core_header = crash.add_mutually_exclusive_group()
    core_header.add_argument("--elf32-core-headers", dest="core_header_bits", action="store_const", const=32,
                             help="write the crash kernel's ELF core header as ELF32 (kexec_load only; default"
                             " on i386 unless RAM reaches above 4 GiB)")
    core_header.add_argument("--elf64-core-headers", dest="core_header_bits", action="store_const", const=64,
                             help="write it as ELF64 (default on x86_64, and the class of the header the kernel"
                             " writes itself for kexec_file_load)")

    memory = parser.add_argument_group("memory")
    memory.add_argument("--mem-min", metavar="ADDR", type=parse_address,
                        help="lowest address of the backup window (inclusive); for a Linux kernel"
                        " also the lowest address of its segments")
    memory.add_argument("--mem-max", metavar="ADDR", type=parse_address,
                        help="highest address of the backup window (inclusive); with"
                        " --load-preserve-context all RAM in [mem-min, mem-max] the image does not"
                        " occupy is also backed up, as scratch memory for the image."
                        " Not required: without it only the image's own pages are backed up."
                        " A preserve-context Linux kernel gets only this window (plus the RAM below"
                        " 1 MiB) as usable RAM; without the options it gets RAM from 0 to its end +"
                        " initrd + room (see --dry-run)")

    execution = parser.add_argument_group("execution")
    execution.add_argument("-x", "--no-ifdown", action="store_true",
                           help="with -e/-f: leave network interfaces alone. By default every"
                           " interface but lo that is up is taken down before the jump and, when a"
                           " preserve-context image returns (or the jump fails), brought back up"
                           " with its addresses and main-table routes")
    execution.add_argument("-y", "--no-sync", action="store_true",
                           help="do not sync filesystems before kexec -e")
    syscall = execution.add_mutually_exclusive_group()
    syscall.add_argument("-s", "--kexec-file-syscall", dest="syscall", action="store_const", const="file",
                         help="use kexec_file_load (x86_64): the kernel reads the image and initrd and"
                         " checks the image's signature, as lockdown (Secure Boot) requires")
    syscall.add_argument("-c", "--kexec-syscall", dest="syscall", action="store_const", const="load",
                         help="use kexec_load")
    syscall.add_argument("-a", "--kexec-syscall-auto", dest="syscall", action="store_const", const="auto",
                         help="(default) on x86_64, kexec_file_load for a bzImage, then kexec_load if the kernel"
                         " lacks it or refuses the image (ENOSYS, EINVAL, ENOEXEC, EOPNOTSUPP); kexec_load"
                         " for other images, for preserve-context loads (kexec_file_load has no such flag)"
                         " and on i386")
    parser.set_defaults(syscall="auto")
    execution.add_argument("--backend", choices=("auto", "kernel", "shim"), default="auto",
                           help="where a --load-preserve-context or --load-jump-back-helper load goes."
                           " kernel: kexec_load, which needs CONFIG_KEXEC_JUMP; shim: the kexec_jump"
                           " module's /dev/kexec_jump (package kexec-py-dkms; modprobe'd when needed);"
                           " auto (default): the kernel where its kexec jump works, the module where the"
                           " kernel lacks CONFIG_KEXEC_JUMP or its return path is known broken (i386,"
                           " x86_64 before 6.12.117) and the module is available. Plain loads always use"
                           " kexec_load; -e, -u and -S follow the loaded image")

    output = parser.add_argument_group("output")
    # In a group, not the parser's own -h: an option added to the parser itself makes a
    # HelpFormatter, which imports shutil for the terminal's width (bz2, lzma: a tenth of
    # `kexec -e` in a small guest); --help makes its own when it runs.
    output.add_argument("-h", "--help", action="help", help="show this help message and exit")
    output.add_argument("-d", "--debug", action="store_true",
                        help="print the segment list before loading")
    output.add_argument("--dry-run", action="store_true",
                        help="plan the load and print it, without any system call"
                        " (works as any user, on any machine)")
    output.add_argument("--json", action="store_true",
                        help="with --dry-run: print the plan as one JSON object; with --call: ask the"
                        " payload for one JSON object (the parameter json=1)")
    output.add_argument("-v", "--version", action="version", version=f"kexec-py {__version__}")

    calling = parser.add_argument_group("calling a payload (--call)")
    calling.add_argument("--param", dest="params", action="append", metavar="KEY=VALUE",
                         help="a parameter for the payload (kit_param() in the payload kit); repeatable")

    planning = parser.add_argument_group("planning for another machine")
    planning.add_argument("--arch", choices=_ArchNames(),
                          help="the kernel that will run the image (default: the running one)")
    planning.add_argument("--machine-root", metavar="DIR", default="/",
                          help="read sys/firmware/memmap, proc/iomem and proc/meminfo below DIR"
                          " (default /); with --dry-run, plans for a recorded machine")
    return parser


def main(argv: list[str] | None = None, kernel_factory: Callable[[argparse.Namespace], LinuxKernel] | None = None,
         shim_factory: Callable[[argparse.Namespace], ShimKernel] | None = None) -> int:
    """Run one kexec command. kernel_factory(args) builds the kernel interface,
    shim_factory(args) the same interface over /dev/kexec_jump (tests pass
    recording fakes); each is called only by actions that need it."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args, _Backends(args, kernel_factory or _linux_kernel, shim_factory or _shim_kernel))
    except KexecError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def _linux_kernel(args: argparse.Namespace) -> LinuxKernel:
    from kexec_py.kernel import LinuxKernel

    return LinuxKernel(args.machine_root)


def _shim_kernel(args: argparse.Namespace) -> ShimKernel:
    from kexec_py.shim import ShimKernel

    return ShimKernel(args.machine_root)


class _Backends:
    """The two kernel interfaces, each built on first use: `kexec -e` with nothing
    in the shim never needs more of it than a stat of /dev/kexec_jump."""

    _built: dict[str, Any]

    def __init__(self, args: argparse.Namespace, kernel_factory: Callable[[argparse.Namespace], LinuxKernel],
                 shim_factory: Callable[[argparse.Namespace], ShimKernel]) -> None:
        self._args, self._factories, self._built = args, {"kernel": kernel_factory, "shim": shim_factory}, {}

    def _get(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._factories[name](self._args)
        return self._built[name]

    @property
    def kernel(self) -> LinuxKernel:
        return self._get("kernel")

    @property
    def shim(self) -> ShimKernel:
        return self._get("shim")


def _run(args: argparse.Namespace, backends: _Backends) -> int:
    action = args.action or "load-and-shutdown"
    if args.params and action != "call":
        raise UsageError("--param goes with --call")
    if action == "call":
        return _call(args, backends)
    if action == "print-ckr-size":
        return _print_crash_size(args)
    if args.json and not args.dry_run:
        raise UsageError("--json goes with --dry-run or --call")
    if args.status:
        action = _status_of(args)
    elif args.load_panic:
        action = _panic_action(args)
    if args.core_header_bits and action != "load-panic":
        raise UsageError(f"--elf{args.core_header_bits}-core-headers shapes a crash kernel's ELF core header:"
                         " it goes with -p")
    if action in ("exec", "unload", "unload-panic", "status", "status-panic"):
        name = action.split("-")[0]
        if args.image:
            raise UsageError(f"--{name} takes no image")
        if args.dry_run:
            raise UsageError("--dry-run plans a load; it does not apply to --" + name)
        if args.backend != "auto":
            raise UsageError(f"--backend chooses where a load goes; --{name} follows the loaded image")
        if action in ("status", "status-panic"):
            return _status(args, backends, crash=action == "status-panic")
        if action == "exec":
            return _exec(args, backends)
        return _unload(args, backends, crash=action == "unload-panic")
    arch = _target_arch(args).name
    crash = action == "load-panic"
    if action == "load-jump-back-helper":
        if args.image:
            raise UsageError("--load-jump-back-helper takes no image")
        choice = file_load_choose(args.syscall, arch, jump_back=True)
        route = _route(args, True, backends)
        plan = _plan_jump_back(args, entry_mapped=route.backend == "shim")
    elif not args.image:
        raise UsageError("no image given")
    else:
        preserve = action == "load-preserve-context"
        if crash:
            from kexec_py.crash import crash_reservation

            crash_reservation(args.machine_root)  # none: one line, as kexec-tools refuses
        choice = _load_syscall(args, arch, preserve)
        if choice.first == "kexec_file_load":
            return _file_load(args, action, choice, backends)
        plan = _plan_load(args, preserve_context=preserve, crash=crash)
        route = _route(args, preserve, backends)
    if args.dry_run:
        _print_plan(plan, route, args.json, choice)
        return 0
    if args.debug:
        sys.stderr.write(plan.describe(choice.describe() + "\n" + route.describe()) + "\n")
    target = _load(args, plan, route, backends, replaces=not crash)
    return _after_load(args, action, target, backends)


def _after_load(args: argparse.Namespace, action: str, target: LinuxKernel | ShimKernel, backends: _Backends) -> int:
    if action == "force":
        return _exec(args, backends)
    if action == "load-and-shutdown":
        target.shutdown_reboot()
    return 0


def _call(args: argparse.Namespace, backends: _Backends) -> int:
    from kexec_py import calling

    sys.stdout.buffer.write(calling.run(args, backends).check(args.image))
    sys.stdout.flush()
    return 0


def _status_of(args: argparse.Namespace) -> str:
    """-S asks about the crash kernel unless -l or --load-preserve-context names the
    kexec -e image (kexec-tools: KEXEC_ON_CRASH when no load flag was given)."""
    if args.action not in (None, "load", "load-preserve-context") or (args.load_panic and args.action):
        raise UsageError("-S/--status goes with nothing, -p, -l or --load-preserve-context")
    return "status-panic" if args.action is None else "status"


def _panic_action(args: argparse.Namespace) -> str:
    if args.action in (None, "load"):  # kexec-tools takes -l -p as -p
        return "load-panic"
    if args.action == "unload":
        return "unload-panic"
    raise UsageError(f"-p/--load-panic loads a crash kernel: it does not go with --{args.action}")


def file_load_choose(option: str, arch: str, **what: bool) -> SyscallChoice:
    from kexec_py.file_load import choose

    return choose(option, arch, **what)


def _load_syscall(args: argparse.Namespace, arch: str, preserve: bool) -> SyscallChoice:
    """-s/-c/-a for a load; for -a on x86_64, whether the image is a bzImage decides
    (and options only kexec_load knows: -t, --args-*, --entry)."""
    bzimage = False
    if (args.syscall == "auto" and arch == "x86_64" and not preserve and args.core_header_bits != 32
            and args.type is None and args.args_style is None and args.entry is None):
        from kexec_py.bootparams import is_bzimage  # the bzImage loader's probe, without the loader's imports
        from kexec_py.image_file import ImageFile

        bzimage = is_bzimage(ImageFile.open(_image_path(args.image, arch)).data)
    return file_load_choose(args.syscall, arch, preserve_context=preserve, bzimage=bzimage)


def _checked_bzimage(path: str) -> str:
    """path, after the checks kexec-tools makes before kexec_file_load: a file that
    probes as a bzImage must have a sound setup header (anything else is the kernel's to refuse)."""
    from kexec_py.bootparams import SetupHeader, is_bzimage
    from kexec_py.image_file import ImageFile

    image = ImageFile.open(path)
    if is_bzimage(image.data):
        SetupHeader.parse(image.data, path)
    return path


def _file_load(args: argparse.Namespace, action: str, choice: SyscallChoice, backends: _Backends) -> int:
    """kexec_file_load; on the errors choice names, kexec_load of our own plan instead."""
    from kexec_py.errors import KernelError
    from kexec_py.file_load import file_load

    crash = action == "load-panic"
    if args.type is not None or args.args_style is not None or args.entry is not None:
        _refuse_for_file_load(args)
    if args.core_header_bits == 32:
        raise UsageError("with kexec_file_load the kernel writes the crash kernel's ELF core header, as ELF64:"
                         " --elf32-core-headers needs kexec_load (-c)")
    kernel = _checked_bzimage(_image_path(args.image, _target_arch(args).name))
    command_line = _command_line(args, crash)
    if crash:
        from kexec_py.crash import crash_command_line

        command_line = crash_command_line(command_line)  # the kernel adds elfcorehdr=
    load = file_load(kernel, args.initrd, command_line, crash)
    if args.dry_run:
        _print_file_load(load, choice, args.json)
        return 0
    if args.debug:
        sys.stderr.write(load.describe() + "\n" + choice.describe() + "\n")
    try:
        backends.kernel.kexec_file_load(load)
    except KernelError as e:
        if e.errno not in choice.fallback:
            raise
        try:
            plan = _plan_load(args, preserve_context=False, crash=crash)
            route = _route(args, False, backends)
            if args.debug:
                sys.stderr.write(f"{e}; kexec_load instead\n" + plan.describe(route.describe()) + "\n")
            target = _load(args, plan, route, backends, replaces=not crash)
        except KexecError as then:
            raise type(then)(f"{e}; kexec_load instead: {then}") from then
        return _after_load(args, action, target, backends)
    if not crash:
        _drop_other(args, backends.kernel, backends)
    return _after_load(args, action, backends.kernel, backends)


def _refuse_for_file_load(args: argparse.Namespace) -> NoReturn:
    given = [name for name, value in (("-t", args.type), ("--args-*", args.args_style), ("--entry", args.entry))
             if value is not None]
    raise UsageError(f"kexec_file_load takes a bzImage as it is: {', '.join(given)} apply to kexec_load (-c)")


def _route(args: argparse.Namespace, preserve: bool, backends: _Backends) -> Route:
    """backend.choose() on this machine's facts. A dry run asks only what files say
    (the device node, or the module installed for this release); a load may modprobe."""
    from kexec_py import backend

    root = args.machine_root
    release = backend.running_release(root)
    if args.dry_run:
        def available() -> bool:
            return backend.shim_present(root) or backend.module_installed(root, release) is True
    else:
        def available() -> bool:
            return backends.shim.available()
    kexec_jump = backend.kexec_jump_config(root, release) if preserve and args.backend == "auto" else None
    return backend.choose(_target_arch(args).name, release, kexec_jump, available, args.backend, preserve)


def _load(args: argparse.Namespace, plan: KexecPlan, route: Route, backends: _Backends,
          replaces: bool = True) -> LinuxKernel | ShimKernel:
    """Load where the route says (falling back to the shim if the kernel turns out to
    lack KEXEC_JUMP), then unload the other backend's image: a new load replaces the
    old one, and only once it succeeded (a crash kernel replaces none: replaces=False).
    Returns the backend that holds the image."""
    import errno

    from kexec_py.errors import KernelError

    if route.missing:
        _no_backend(args, explicit=args.backend == "shim")
    target = backends.shim if route.backend == "shim" else backends.kernel
    try:
        target.kexec_load(plan)
    except KernelError as e:
        if not (route.fallback and e.errno == errno.EINVAL):
            raise
        if not backends.shim.available():
            _no_backend(args)
        target = backends.shim
        target.kexec_load(plan)
    if replaces:
        _drop_other(args, target, backends)
    return target


def _drop_other(args: argparse.Namespace, target: LinuxKernel | ShimKernel, backends: _Backends) -> None:
    """Unload what the backend that did not take the new image holds."""
    from kexec_py.errors import KernelError

    other = backends.kernel if target is backends.shim else backends.shim
    try:
        if _loaded(other):
            other.kexec_unload(_target_arch(args).kexec_arch)
    except KernelError as e:
        raise KexecError(f"the new image is loaded ({target.name}), but the one loaded before"
                         f" ({other.name}) is still there: {e}") from e


def _no_backend(args: argparse.Namespace, explicit: bool = False) -> NoReturn:
    import os

    from kexec_py import backend

    from kexec_py.kernel import lockdown_mode

    root = args.machine_root
    release = backend.running_release(root)
    raise KexecError(backend.no_backend_message(release, backend.module_installed(root, release) is True,
                                                os.geteuid(), explicit, lockdown_mode(root)))


def _loaded(kernel: LinuxKernel | ShimKernel) -> bool:
    """Whether this backend holds an image; a kernel without kexec support (no
    /sys/kernel/kexec_loaded) holds none."""
    import errno

    from kexec_py.errors import KernelError

    try:
        return kernel.kexec_loaded()
    except KernelError as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def _target_arch(args: argparse.Namespace) -> Arch:
    from kexec_py.arch import arch_named, running_arch

    if args.arch:
        return arch_named(args.arch)
    try:
        return running_arch()
    except ValueError as e:
        raise KexecError(str(e)) from None


def _plan_load(args: argparse.Namespace, preserve_context: bool, crash: bool = False) -> KexecPlan:
    from kexec_py.bootparams import read_running_boot_params
    from kexec_py.flags import KexecFlags
    from kexec_py.image_file import ImageFile
    from kexec_py.loaders import LoadRequest, Target, choose_loader
    from kexec_py.memmap import read_memory_map
    from kexec_py.planner import make_plan

    arch = _target_arch(args)
    memory = read_memory_map(args.machine_root)
    if args.mem_min is not None and args.mem_max is not None and args.mem_max < args.mem_min:
        raise UsageError(f"--mem-max {args.mem_max:#x} is below --mem-min {args.mem_min:#x}")
    mem_min, mem_max, command_line = args.mem_min, args.mem_max, _command_line(args, crash)
    if crash:
        layout = _crash_layout(args, arch, memory, command_line)
        mem_min, mem_max, command_line = layout.window.start, layout.window.end - 1, layout.command_line
    request = LoadRequest(
        args.args_style,
        args.entry,
        preserve_context=preserve_context,
        mem_min=mem_min,
        mem_max=mem_max,
        command_line=command_line,
        initrd=args.initrd,
        no_checks=args.no_checks,
    )
    image = ImageFile.open(_image_path(args.image, arch.name))
    loader = choose_loader(image, args.type, arch)
    # The loader decides the backup window: a Linux kernel's shapes its e820 map.
    loaded = loader.load(image, request, Target(arch, memory, read_running_boot_params(args.machine_root)))
    flags = arch.kexec_arch
    if preserve_context:
        flags |= KexecFlags.PRESERVE_CONTEXT
    if crash:
        from kexec_py.value import replace

        flags |= KexecFlags.ON_CRASH
        loaded = replace(loaded, segments=(*loaded.segments, layout.header))
    return make_plan(loaded, int(flags), memory, loaded.backup_window)


def _crash_layout(args: argparse.Namespace, arch: Arch, memory: MemoryMap, command_line: str | None) -> CrashLayout:
    """kexec_load -p: the ELF core header of this machine (its CPUs' crash notes,
    vmcoreinfo, RAM outside the reservation) at the top of the largest reservation."""
    from kexec_py import crash, elfcore
    from kexec_py.memmap import SYSTEM_RAM

    if args.mem_min is not None or args.mem_max is not None:
        raise UsageError("-p places the crash kernel in the crashkernel= reservation: --mem-min/--mem-max do not apply")
    reservations = crash.crash_reservation(args.machine_root)
    reservation = max(reservations, key=lambda r: r.size)
    ram = elfcore.ram_ranges([r.range for r in memory.regions if r.type == SYSTEM_RAM], reservations)
    header = elfcore.encode(elfcore.CoreLayout(
        elfcore.core_class(args.core_header_bits, arch.address_bits, ram),
        elfcore.EM_X86_64 if arch.address_bits == 64 else elfcore.EM_386,
        elfcore.read_cpu_notes(args.machine_root), elfcore.read_vmcoreinfo(args.machine_root), ram))
    return crash.crash_layout(command_line, reservation, header, memory.regions)


def _image_path(name: str, arch: str) -> str:
    """name itself, or for a bare name that is no file here, the installed example of that name."""
    import os

    from kexec_py.paths import example_payload

    if os.sep in name or os.path.exists(name):
        return name
    return example_payload(name, arch) or name


def _command_line(args: argparse.Namespace, crash: bool = False) -> str | None:
    """--reuse-cmdline then --append, as kexec-tools joins them; None when neither is given.
    (A crash kernel's reuses this kernel's without crashkernel=.)"""
    from kexec_py.cmdline import compose, read_proc_cmdline, reusable

    reused = reusable(read_proc_cmdline(args.machine_root), crash) if args.reuse_cmdline else None
    return compose(reused, args.command_line)


def _plan_jump_back(args: argparse.Namespace, entry_mapped: bool) -> KexecPlan:
    """entry_mapped: the backend maps the entry itself (the shim), so no segment need."""
    import os

    from kexec_py.jump_back import entry_from_cmdline, jump_back_plan, read_jump_back_page

    for option, given in (("a type", args.type), ("--args-*", args.args_style),
                          ("--mem-min/--mem-max", args.mem_min is not None or args.mem_max is not None),
                          ("--command-line/--append/--reuse-cmdline",
                           args.command_line is not None or args.reuse_cmdline),
                          ("--initrd", args.initrd), ("--no-checks", args.no_checks)):
        if given:
            raise UsageError(f"--load-jump-back-helper loads no image: {option} does not apply")
    arch = _target_arch(args)
    saved_page = None if entry_mapped else read_jump_back_page(args.machine_root)
    if args.entry is not None:
        return jump_back_plan(args.entry, arch, "--entry", saved_page, entry_mapped)
    from kexec_py.cmdline import read_proc_cmdline

    source = os.path.join(args.machine_root, "proc/cmdline")
    return jump_back_plan(entry_from_cmdline(read_proc_cmdline(args.machine_root), source), arch, source,
                          saved_page, entry_mapped)


def _print_plan(plan: KexecPlan, route: Route, as_json: bool, choice: SyscallChoice) -> None:
    if as_json:
        import json

        print(json.dumps({**plan.as_dict(), "backend": route.backend, "syscall": choice.first}))
    else:
        print(plan.describe(choice.describe() + "\n" + route.describe()))


def _print_file_load(load: FileLoad, choice: SyscallChoice, as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps({**load.as_dict(), "fallback": "kexec_load" if choice.fallback else None}))
    else:
        print(load.describe() + "\n" + choice.describe())


def _holder(backends: _Backends) -> LinuxKernel | ShimKernel:
    """The backend that holds the loaded image: the shim's when /dev/kexec_jump has
    one, else the kernel's."""
    if backends.shim.kexec_loaded():
        return backends.shim
    if backends.kernel.kexec_loaded():
        return backends.kernel
    raise NothingLoaded("Nothing has been loaded!")


def _exec(args: argparse.Namespace, backends: _Backends) -> int:
    """sync, take the interfaces down, jump; when the jump returns (a
    preserve-context image came back) or fails, bring the interfaces back.
    Through the shim, the jump freezes user space around KJ_EXEC itself
    (ShimKernel.reboot_kexec) and thaws before any error is raised."""
    kernel = _holder(backends)
    if not args.no_sync:
        kernel.sync()
    saved = None if args.no_ifdown else kernel.interfaces_down()
    if args.debug and not args.no_ifdown:
        sys.stderr.write((saved.describe() if saved else "ifdown: no interface but lo is up") + "\n")
    try:
        kernel.reboot_kexec()
    except BaseException as jump_failed:  # KernelError, or an interrupt: the network comes back
        if saved is not None:
            try:
                kernel.interfaces_restore(saved)
            except KexecError as also:
                if isinstance(jump_failed, KexecError):
                    raise KexecError(f"{jump_failed}; {also}") from jump_failed
                raise
        raise
    if saved is not None:
        kernel.interfaces_restore(saved)
    return 0  # reboot() returned: a preserve-context image ran and came back


def _unload(args: argparse.Namespace, backends: _Backends, crash: bool) -> int:
    """Both: whichever holds an image, it goes (the crash kernel only the kernel
    holds). The kernel's through kexec_file_load where -s/-a choose it: under
    lockdown kexec_load cannot unload."""
    from kexec_py.errors import KernelError
    from kexec_py.file_load import unload_flags
    from kexec_py.flags import KexecFlags

    arch = _target_arch(args)
    if not crash and backends.shim.present():
        backends.shim.kexec_unload(arch.kexec_arch)
    choice = file_load_choose(args.syscall, arch.name, unload=True)
    if choice.first == "kexec_file_load":
        try:
            backends.kernel.kexec_file_unload(unload_flags(crash))
            return 0
        except KernelError as e:
            if e.errno not in choice.fallback:
                raise
    backends.kernel.kexec_unload(arch.kexec_arch | (KexecFlags.ON_CRASH if crash else 0))
    return 0


def _print_crash_size(args: argparse.Namespace) -> int:
    from kexec_py.crash import NotReserved, crash_reservation, reserved_size

    if args.image or args.load_panic or args.status:
        raise UsageError("--print-ckr-size takes no image and no other action")
    try:
        size = reserved_size(crash_reservation(args.machine_root))
    except NotReserved:
        size = 0
    print(size)
    return 0


def _status(args: argparse.Namespace, backends: _Backends, crash: bool) -> int:
    if crash:
        return 1 if backends.kernel.kexec_loaded(crash=True) else 0
    return 1 if backends.shim.kexec_loaded() or backends.kernel.kexec_loaded() else 0
