"""kexec(8): one action per invocation, on the command line kexec_py.options reads.

Imports stay inside the actions: `kexec -e` must not pay for pyelftools or
pyroute2 (start-up time is part of the product).
"""

from __future__ import annotations

import sys

from kexec_py.errors import KexecError, NothingLoaded, UsageError
from kexec_py.options import PROG, Args, parse

TYPE_CHECKING = False  # as in kexec_py.kernel: annotations only, `kexec -e` imports no typing
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

    from kexec_py.backend import Route, SyscallChoice
    from kexec_py.crash import CrashLayout
    from kexec_py.file_load import FileLoad
    from kexec_py.image_file import ImageFile
    from kexec_py.memmap import MemoryMap
    from kexec_py.arch import Arch
    from kexec_py.kernel import LinuxKernel
    from kexec_py.segments import KexecPlan
    from kexec_py.shim import ShimKernel


def main(argv: list[str] | None = None, kernel_factory: Callable[[Args], LinuxKernel] | None = None,
         shim_factory: Callable[[Args], ShimKernel] | None = None) -> int:
    """Run one kexec command. kernel_factory(args) builds the kernel interface,
    shim_factory(args) the same interface over /dev/kexec_jump (tests pass
    recording fakes); each is called only by actions that need it."""
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args, _Backends(args, kernel_factory or _linux_kernel, shim_factory or _shim_kernel))
    except KexecError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def _linux_kernel(args: Args) -> LinuxKernel:
    from kexec_py.kernel import LinuxKernel

    return LinuxKernel(args.machine_root)


def _shim_kernel(args: Args) -> ShimKernel:
    from kexec_py.shim import ShimKernel

    return ShimKernel(args.machine_root)


class _Backends:
    """The two kernel interfaces, each built on first use. The real shim's presence,
    and whether it is out of reach, are read from the machine's files, so that a
    command on a machine without the module (no /dev/kexec_jump) never imports
    kexec_py.shim; tests' fake shims answer for themselves."""

    _built: dict[str, Any]

    def __init__(self, args: Args, kernel_factory: Callable[[Args], LinuxKernel],
                 shim_factory: Callable[[Args], ShimKernel]) -> None:
        self._args, self._factories, self._built = args, {"kernel": kernel_factory, "shim": shim_factory}, {}
        self._ask_files = shim_factory is _shim_kernel

    def shim_present(self) -> bool:
        """/dev/kexec_jump exists: the shim may hold an image."""
        if self._ask_files:
            from kexec_py.machine_files import shim_present

            return shim_present(self._args.machine_root)
        return self.shim.present()

    def shim_loaded(self) -> bool:
        """The shim holds an image (never loads the module)."""
        return self.shim_present() and self.shim.kexec_loaded()

    def shim_available(self) -> bool:
        """The shim is there, or modprobe loads it (ShimKernel.available()); when
        backend.shim_ruled_out() says no from the files, without kexec_py.shim."""
        if not self._ask_files:
            return self.shim.available()
        from kexec_py.backend import shim_ruled_out

        return not shim_ruled_out(self._args.machine_root) and self.shim.available(ruled_out=False)

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


def _run(args: Args, backends: _Backends) -> int:
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
        choice = _choose_syscall(args.syscall, arch, jump_back=True)
        entry, source = _jump_back_entry(args)  # refused before routing, which may modprobe
        route = _route(args, True, backends)
        plan = _plan_jump_back(args, entry, source, entry_mapped=route.backend == "shim")
    elif not args.image:
        raise UsageError("no image given")
    else:
        preserve = action == "load-preserve-context"
        if crash:
            from kexec_py.crash import crash_reservation

            crash_reservation(args.machine_root)  # none: one line, as kexec-tools refuses
        choice, probed = _load_syscall(args, arch, preserve)
        if choice.first == "kexec_file_load":
            return _file_load(args, action, choice, backends, probed)
        plan = _plan_load(args, preserve_context=preserve, crash=crash)
        route = _route(args, preserve, backends)
    if args.dry_run:
        _print_plan(plan, route, args.json, choice)
        return 0
    if args.debug:
        sys.stderr.write(plan.describe(choice.describe() + "\n" + route.describe()) + "\n")
    target = _load(args, plan, route, backends, replaces=not crash)
    return _after_load(args, action, target, backends)


def _after_load(args: Args, action: str, target: LinuxKernel | ShimKernel, backends: _Backends) -> int:
    if action == "force":
        return _exec(args, backends)
    if action == "load-and-shutdown":
        target.shutdown_reboot()
    return 0


def _call(args: Args, backends: _Backends) -> int:
    from kexec_py import calling

    result = calling.run(args, backends)
    assert args.image is not None  # run() refuses a call without one
    sys.stdout.buffer.write(result.check(args.image))
    sys.stdout.flush()
    return 0


def _status_of(args: Args) -> str:
    """-S asks about the crash kernel unless -l or --load-preserve-context names the
    kexec -e image (kexec-tools: KEXEC_ON_CRASH when no load flag was given)."""
    if args.action not in (None, "load", "load-preserve-context") or (args.load_panic and args.action):
        raise UsageError("-S/--status goes with nothing, -p, -l or --load-preserve-context")
    return "status-panic" if args.action is None else "status"


def _panic_action(args: Args) -> str:
    if args.action in (None, "load"):  # kexec-tools takes -l -p as -p
        return "load-panic"
    if args.action == "unload":
        return "unload-panic"
    raise UsageError(f"-p/--load-panic loads a crash kernel: it does not go with --{args.action}")


def _choose_syscall(option: str, arch: str, **what: bool) -> SyscallChoice:
    from kexec_py.backend import choose_syscall

    return choose_syscall(option, arch, **what)


def _load_syscall(args: Args, arch: str, preserve: bool) -> tuple[SyscallChoice, ImageFile | None]:
    """-s/-c/-a for a load; for -a on x86_64, whether the image is a bzImage decides
    (and options only kexec_load knows: -t, --args-*, --entry). The image too when it
    was opened to tell, for kexec_file_load's checks."""
    image, bzimage = None, False
    if (args.syscall == "auto" and arch == "x86_64" and not preserve and args.core_header_bits != 32
            and args.type is None and args.args_style is None and args.entry is None):
        from kexec_py.bootparams import is_bzimage  # the bzImage loader's probe, without the loader's imports
        from kexec_py.image_file import ImageFile

        image = ImageFile.open(_image_path(args.image, arch))
        bzimage = is_bzimage(image.data)
    return _choose_syscall(args.syscall, arch, preserve_context=preserve, bzimage=bzimage), image


def _checked_bzimage(path: str, image: ImageFile | None) -> str:
    """path, after the checks kexec-tools makes before kexec_file_load: a file that
    probes as a bzImage must have a sound setup header (anything else is the kernel's
    to refuse). image: path's, if it is open already."""
    from kexec_py.bootparams import SetupHeader, is_bzimage
    from kexec_py.image_file import ImageFile

    if image is None:
        image = ImageFile.open(path)
    if is_bzimage(image.data):
        SetupHeader.parse(image.data, path)
    return path


def _file_load(args: Args, action: str, choice: SyscallChoice, backends: _Backends,
               image: ImageFile | None = None) -> int:
    """kexec_file_load; on the errors choice names, kexec_load of our own plan instead.
    image: the kernel image, if -a opened it to choose."""
    from kexec_py.errors import KernelError
    from kexec_py.file_load import file_load

    crash = action == "load-panic"
    if args.type is not None or args.args_style is not None or args.entry is not None:
        _refuse_for_file_load(args)
    if args.core_header_bits == 32:
        raise UsageError("with kexec_file_load the kernel writes the crash kernel's ELF core header, as ELF64:"
                         " --elf32-core-headers needs kexec_load (-c)")
    kernel = _checked_bzimage(_image_path(args.image, _target_arch(args).name), image)
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


def _refuse_for_file_load(args: Args) -> NoReturn:
    given = [name for name, value in (("-t", args.type), ("--args-*", args.args_style), ("--entry", args.entry))
             if value is not None]
    raise UsageError(f"kexec_file_load takes a bzImage as it is: {', '.join(given)} apply to kexec_load (-c)")


def _route(args: Args, preserve: bool, backends: _Backends) -> Route:
    """backend.choose() on this machine's facts. A dry run asks only what files say
    (the device node, or the module installed for this release); a load may modprobe."""
    from kexec_py import backend
    from kexec_py.machine_files import shim_present

    root = args.machine_root
    release = backend.running_release(root)
    if args.dry_run:
        def available() -> bool:
            return shim_present(root) or backend.module_installed(root, release) is True
    else:
        available = backends.shim_available
    kexec_jump = backend.kexec_jump_config(root, release) if preserve and args.backend == "auto" else None
    return backend.choose(_target_arch(args).name, release, kexec_jump, available, args.backend, preserve)


def _load(args: Args, plan: KexecPlan, route: Route, backends: _Backends,
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
        if not backends.shim_available():
            _no_backend(args)
        target = backends.shim
        target.kexec_load(plan)
    if replaces:
        _drop_other(args, target, backends)
    return target


def _drop_other(args: Args, target: LinuxKernel | ShimKernel, backends: _Backends) -> None:
    """Unload what the backend that did not take the new image holds."""
    from kexec_py.errors import KernelError

    if target is backends.kernel:
        if not backends.shim_present():
            return  # no device: the shim holds nothing
        other: LinuxKernel | ShimKernel = backends.shim
    else:
        other = backends.kernel
    try:
        if _loaded(other):
            other.kexec_unload(_target_arch(args).kexec_arch)
    except KernelError as e:
        raise KexecError(f"the new image is loaded ({target.name}), but the one loaded before"
                         f" ({other.name}) is still there: {e}") from e


def _no_backend(args: Args, explicit: bool = False) -> NoReturn:
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


def _target_arch(args: Args) -> Arch:
    from kexec_py.arch import arch_named, running_arch

    if args.arch:
        return arch_named(args.arch)
    try:
        return running_arch()
    except ValueError as e:
        raise KexecError(str(e)) from None


def _plan_load(args: Args, preserve_context: bool, crash: bool = False) -> KexecPlan:
    from kexec_py.segments import KexecFlags
    from kexec_py.image_file import ImageFile
    from kexec_py.loaders import LoadRequest, Target, choose_loader
    from kexec_py.memmap import read_memory_map
    from kexec_py.planner import make_plan

    arch = _target_arch(args)
    memory = read_memory_map(args.machine_root)
    if args.mem_min is not None and args.mem_max is not None and args.mem_max < args.mem_min:
        raise UsageError(f"--mem-max {args.mem_max:#x} is below --mem-min {args.mem_min:#x}")
    mem_min, mem_max, command_line = args.mem_min, args.mem_max, _command_line(args, crash)
    usable_ram = None
    if crash:
        layout = _crash_layout(args, arch, memory, command_line)
        mem_min, mem_max, command_line = layout.window.start, layout.window.end - 1, layout.command_line
        usable_ram = layout.usable_ram
    request = LoadRequest(
        args.args_style,
        args.entry,
        preserve_context=preserve_context,
        mem_min=mem_min,
        mem_max=mem_max,
        command_line=command_line,
        initrd=args.initrd,
        no_checks=args.no_checks,
        usable_ram=usable_ram,
    )
    image = ImageFile.open(_image_path(args.image, arch.name))
    loader = choose_loader(image, args.type, arch)
    # The loader decides the backup window: a Linux kernel's shapes its e820 map.
    loaded = loader.load(image, request, Target(arch, memory, args.machine_root))
    flags = arch.kexec_arch
    if preserve_context:
        flags |= KexecFlags.PRESERVE_CONTEXT
    if crash:
        from kexec_py.value import replace

        flags |= KexecFlags.ON_CRASH
        loaded = replace(loaded, segments=(*loaded.segments, layout.header))
    return make_plan(loaded, int(flags), memory, loaded.backup_window)


def _crash_layout(args: Args, arch: Arch, memory: MemoryMap, command_line: str | None) -> CrashLayout:
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
    return crash.crash_layout(command_line, reservation, header)


def _image_path(name: str | None, arch: str) -> str:
    """name itself, or for a bare name that is no file here, the installed example of that name."""
    import os

    if not name:
        raise UsageError("no image given")
    if os.sep in name or os.path.exists(name):
        return name
    from kexec_py.paths import example_payload

    return example_payload(name, arch) or name


def _command_line(args: Args, crash: bool = False) -> str | None:
    """--reuse-cmdline then --append, as kexec-tools joins them; None when neither is given.
    (A crash kernel's reuses this kernel's without crashkernel=.)"""
    if not args.reuse_cmdline and args.command_line is None:
        return None  # a payload's load: kexec_py.cmdline is not imported
    from kexec_py.cmdline import compose, read_proc_cmdline, reusable

    reused = reusable(read_proc_cmdline(args.machine_root), crash) if args.reuse_cmdline else None
    return compose(reused, args.command_line)


def _jump_back_entry(args: Args) -> tuple[int, str]:
    """Where --load-jump-back-helper returns to, checked, and where that was read: --entry,
    else kexec_jump_back_entry= on /proc/cmdline."""
    import os

    from kexec_py.jump_back import checked_entry, entry_from_cmdline

    for option, given in (("a type", args.type), ("--args-*", args.args_style),
                          ("--mem-min/--mem-max", args.mem_min is not None or args.mem_max is not None),
                          ("--command-line/--append/--reuse-cmdline",
                           args.command_line is not None or args.reuse_cmdline),
                          ("--initrd", args.initrd), ("--no-checks", args.no_checks)):
        if given:
            raise UsageError(f"--load-jump-back-helper loads no image: {option} does not apply")
    if args.entry is not None:
        entry, source = args.entry, "--entry"
    else:
        from kexec_py.cmdline import read_proc_cmdline

        source = os.path.join(args.machine_root, "proc/cmdline")
        entry = entry_from_cmdline(read_proc_cmdline(args.machine_root), source)
    return checked_entry(entry, _target_arch(args), source), source


def _plan_jump_back(args: Args, entry: int, source: str, entry_mapped: bool) -> KexecPlan:
    """entry_mapped: the backend maps the entry itself (the shim), so no segment need."""
    from kexec_py.jump_back import jump_back_plan, read_jump_back_page

    saved_page = None if entry_mapped else read_jump_back_page(args.machine_root)
    return jump_back_plan(entry, _target_arch(args), source, saved_page, entry_mapped)


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
    if backends.shim_loaded():
        return backends.shim
    if backends.kernel.kexec_loaded():
        return backends.kernel
    raise NothingLoaded("Nothing has been loaded!")


def _exec(args: Args, backends: _Backends) -> int:
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


def _unload(args: Args, backends: _Backends, crash: bool) -> int:
    """Both: whichever holds an image, it goes (the crash kernel only the kernel
    holds). The kernel's through kexec_file_load where -s/-a choose it: under
    lockdown kexec_load cannot unload."""
    from kexec_py.errors import KernelError
    from kexec_py.file_load import unload_flags
    from kexec_py.segments import KexecFlags

    arch = _target_arch(args)
    if not crash and backends.shim_present():
        backends.shim.kexec_unload(arch.kexec_arch)
    choice = _choose_syscall(args.syscall, arch.name, unload=True)
    if choice.first == "kexec_file_load":
        try:
            backends.kernel.kexec_file_unload(unload_flags(crash))
            return 0
        except KernelError as e:
            if e.errno not in choice.fallback:
                raise
    backends.kernel.kexec_unload(arch.kexec_arch | (KexecFlags.ON_CRASH if crash else 0))
    return 0


def _print_crash_size(args: Args) -> int:
    from kexec_py.crash import NotReserved, crash_reservation, reserved_size

    if args.image or args.load_panic or args.status:
        raise UsageError("--print-ckr-size takes no image and no other action")
    try:
        size = reserved_size(crash_reservation(args.machine_root))
    except NotReserved:
        size = 0
    print(size)
    return 0


def _status(args: Args, backends: _Backends, crash: bool) -> int:
    if crash:
        return 1 if backends.kernel.kexec_loaded(crash=True) else 0
    return 1 if backends.shim_loaded() or backends.kernel.kexec_loaded() else 0
