"""kexec(8)'s command line, declared once: OPTIONS.

build_parser() makes the argparse parser from the table: `--help`, the man page
(man/kexec_manpage.py) and every error message come from it. parse() reads argv
with the table alone for the forms people and scripts type (exact option names,
a value as the next word or after `=`, at most one IMAGE) and hands anything else
(help, version, abbreviations, clustered short options, anything argparse would
refuse) to argparse: importing argparse alone costs more in a small guest than a
payload load's whole start-up budget (README, "Where the time goes"). Both give
the same Args for every argv the table's reader accepts (tests/unit/test_options.py).
"""

from __future__ import annotations

import sys

from kexec_py import __version__
from kexec_py.errors import EXIT_USAGE
from kexec_py.value import frozen

TYPE_CHECKING = False  # annotations only: `kexec -e` imports no typing
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable, Container, Iterator, NoReturn

PROG = "kexec"
ADDRESS_MAX = (1 << 64) - 1  # strtoul's range on a 64-bit kernel; kexec_load takes unsigned long
_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def parse_address(text: str) -> int:
    """Numbers as kexec-tools' strtoul(..., 0) reads them: 0x hex, 0 octal, else decimal
    (not Python's 0b, 0o or 1_000). ValueError with the reason."""
    body = text[1:] if text.startswith("-") else text
    if body[:2] in ("0x", "0X"):
        base, digits = 16, body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits = 8, body[1:]
    else:
        base, digits = 10, body
    if not digits or not all(c in _DIGITS[base] for c in digits):
        raise ValueError(f"bad number {text!r}")
    if body is not text and int(digits, base):
        raise ValueError(f"negative address {text!r}")
    value = int(digits, base)
    if value > ADDRESS_MAX:
        raise ValueError(f"address {text!r} does not fit in 64 bits")
    return value


class _ArchNames:
    """--arch's choices, from kexec_py.arch when first asked (a given --arch, --help):
    `kexec -e` never imports kexec_py.arch."""

    def _names(self) -> list[str]:
        from kexec_py.arch import ARCHES

        return list(ARCHES)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


# kexec_py.arch's tables, as --help shows them (tests/unit/test_cli.py holds them equal).
IMAGE_TYPES_HELP = "i386: elf-x86, bzImage; x86_64: elf-x86_64, bzImage64"


@frozen
class Option:
    """One row of the command line. kind: "flag" (store_true), "const" (store const in
    dest), "value" (the next word, or after =; converted by convert, checked against
    choices), "append" (a value, repeatable), "positional", "help", "version"."""

    names: tuple[str, ...]
    dest: str
    kind: str
    group: str  # the --help section
    help: str
    const: object = None
    metavar: str | None = None
    default: object = None
    convert: Callable[[str], Any] | None = None
    choices: Container[str] | None = None
    exclusive: str | None = None  # options sharing it exclude one another


_ACTIONS = "actions (one at most; default: load, then shutdown -r now)"
_IMAGE, _LINUX, _CRASH = "image", "Linux kernels (bzImage, or ELF with --args-linux)", "crash kernel (-p)"
_MEMORY, _EXECUTION, _OUTPUT = "memory", "execution", "output"
_CALLING, _PLANNING = "calling a payload (--call)", "planning for another machine"


def _action(names: tuple[str, ...], const: str, help: str) -> Option:
    return Option(names, "action", "const", _ACTIONS, help, const=const, exclusive="action")


OPTIONS: tuple[Option, ...] = (
    _action(("-l", "--load"), "load", "load the image into memory for a later kexec -e"),
    _action(("--load-preserve-context",), "load-preserve-context",
            "load the image with KEXEC_PRESERVE_CONTEXT: kexec -e calls it and it may return here;"
            " the pages it occupies are backed up and restored around every jump"),
    _action(("-e", "--exec"), "exec", "jump to the loaded image now (after a preserve-context jump returns, exit 0)"),
    _action(("-f", "--force"), "force", "load and jump at once, without shutdown"),
    _action(("-u", "--unload"), "unload", "unload the loaded image (with -p: the crash kernel)"),
    _action(("--load-jump-back-helper",), "load-jump-back-helper",
            "in a kernel started by a preserve-context kexec: load the way back, so that kexec -e"
            " returns to the kernel that jumped here (entry from --entry, else from"
            " kexec_jump_back_entry= on /proc/cmdline)"),
    _action(("--call",), "call",
            "run the payload IMAGE once in physical mode and print what it reports: load it with"
            " --load-preserve-context, jump, read its answer through a result buffer pinned in this"
            " process, unload it (refused while an image is loaded). Exits 255 with one line if the"
            " payload faults or returns non-zero"),
    _action(("--print-ckr-size",), "print-ckr-size",
            "print the size in bytes of the memory reserved for a crash kernel (crashkernel=),"
            " 0 if none, as kexec-tools does"),
    Option(("-p", "--load-panic"), "load_panic", "flag", _ACTIONS,
           "load a crash kernel, which a panic of this kernel boots (needs memory"
           " reserved with crashkernel=); with -u: unload it; with -S: ask about it"),
    Option(("-S", "--status"), "status", "flag", _ACTIONS,
           "exit 1 if an image is loaded, 0 if not (as kexec-tools): the crash kernel,"
           " or with -l or --load-preserve-context the kexec -e image"),

    Option(("image",), "image", "positional", _IMAGE,
           "the file to load; the name of an installed example payload (phy_mode,"
           " entry_report, bios-e820, bios-memsize, cpuid, edd, vbe-info) works from any directory",
           metavar="IMAGE"),
    Option(("-t", "--type"), "type", "value", _IMAGE,
           "image type instead of probing, named as kexec-tools names them for the"
           " kernel's arch (" + IMAGE_TYPES_HELP + ")", metavar="TYPE"),
    Option(("--args-none",), "args_style", "const", _IMAGE,
           "ELF: pass no arguments; the kernel calls e_entry directly", const="none", exclusive="args"),
    Option(("--args-linux",), "args_style", "const", _IMAGE,
           "ELF: the image is a Linux vmlinux; boot it like a bzImage (zero"
           " page, command line, initrd, purgatory)", const="linux", exclusive="args"),
    Option(("--args-elf",), "args_style", "const", _IMAGE,
           "ELF: pass ELF boot notes (not implemented yet)", const="elf", exclusive="args"),
    Option(("--entry",), "entry", "value", _IMAGE,
           "enter the image here instead of at its own entry point (--args-none);"
           " with --load-jump-back-helper: the address to return to", metavar="ADDR", convert=parse_address),

    Option(("--command-line", "--append"), "command_line", "value", _LINUX,
           "the kernel command line (after the reused one with --reuse-cmdline)", metavar="STRING"),
    Option(("--reuse-cmdline",), "reuse_cmdline", "flag", _LINUX,
           "start from this kernel's /proc/cmdline, without BOOT_IMAGE= and kexec_jump_back_entry="),
    Option(("--initrd", "--ramdisk"), "initrd", "value", _LINUX,
           "load FILE as the kernel's initial ramdisk", metavar="FILE"),
    Option(("-i", "--no-checks"), "no_checks", "flag", _LINUX,
           "purgatory skips the SHA-256 check of the loaded segments"),

    Option(("--elf32-core-headers",), "core_header_bits", "const", _CRASH,
           "write the crash kernel's ELF core header as ELF32 (kexec_load only; default"
           " on i386 unless RAM reaches above 4 GiB)", const=32, exclusive="core"),
    Option(("--elf64-core-headers",), "core_header_bits", "const", _CRASH,
           "write it as ELF64 (default on x86_64, and the class of the header the kernel"
           " writes itself for kexec_file_load)", const=64, exclusive="core"),

    Option(("--mem-min",), "mem_min", "value", _MEMORY,
           "lowest address of the backup window (inclusive); for a Linux kernel"
           " also the lowest address of its segments", metavar="ADDR", convert=parse_address),
    Option(("--mem-max",), "mem_max", "value", _MEMORY,
           "highest address of the backup window (inclusive); with"
           " --load-preserve-context all RAM in [mem-min, mem-max] the image does not"
           " occupy is also backed up, as scratch memory for the image."
           " Not required: without it only the image's own pages are backed up."
           " A preserve-context Linux kernel gets only this window (plus the RAM below"
           " 1 MiB) as usable RAM; without the options it gets RAM from 0 to its end +"
           " initrd + room (see --dry-run)", metavar="ADDR", convert=parse_address),

    Option(("-x", "--no-ifdown"), "no_ifdown", "flag", _EXECUTION,
           "with -e/-f: leave network interfaces alone. By default every"
           " interface but lo that is up is taken down before the jump and, when a"
           " preserve-context image returns (or the jump fails), brought back up"
           " with its addresses and main-table routes"),
    Option(("-y", "--no-sync"), "no_sync", "flag", _EXECUTION, "do not sync filesystems before kexec -e"),
    Option(("-s", "--kexec-file-syscall"), "syscall", "const", _EXECUTION,
           "use kexec_file_load (x86_64): the kernel reads the image and initrd and"
           " checks the image's signature, as lockdown (Secure Boot) requires", const="file", exclusive="syscall"),
    Option(("-c", "--kexec-syscall"), "syscall", "const", _EXECUTION, "use kexec_load", const="load",
           exclusive="syscall"),
    Option(("-a", "--kexec-syscall-auto"), "syscall", "const", _EXECUTION,
           "(default) on x86_64, kexec_file_load for a bzImage, then kexec_load if the kernel"
           " lacks it or refuses the image (ENOSYS, EINVAL, ENOEXEC, EOPNOTSUPP); kexec_load"
           " for other images, for preserve-context loads (kexec_file_load has no such flag)"
           " and on i386", const="auto", default="auto", exclusive="syscall"),
    Option(("--backend",), "backend", "value", _EXECUTION,
           "where a --load-preserve-context or --load-jump-back-helper load goes."
           " kernel: kexec_load, which needs CONFIG_KEXEC_JUMP; shim: the kexec_jump"
           " module's /dev/kexec_jump (package kexec-py-dkms; modprobe'd when needed);"
           " auto (default): the kernel where its kexec jump works, the module where the"
           " kernel lacks CONFIG_KEXEC_JUMP or its return path is known broken (i386,"
           " x86_64 before 6.12.117) and the module is available. Plain loads always use"
           " kexec_load; -e, -u and -S follow the loaded image",
           default="auto", choices=("auto", "kernel", "shim")),

    Option(("-h", "--help"), "help", "help", _OUTPUT, "show this help message and exit"),
    Option(("-d", "--debug"), "debug", "flag", _OUTPUT, "print the segment list before loading"),
    Option(("--dry-run",), "dry_run", "flag", _OUTPUT,
           "plan the load and print it, without any system call (works as any user, on any machine)"),
    Option(("--json",), "json", "flag", _OUTPUT,
           "with --dry-run: print the plan as one JSON object; with --call: ask the"
           " payload for one JSON object (the parameter json=1)"),
    Option(("-v", "--version"), "version", "version", _OUTPUT, "show program's version number and exit"),

    Option(("--param",), "params", "append", _CALLING,
           "a parameter for the payload (kit_param() in the payload kit); repeatable", metavar="KEY=VALUE"),

    Option(("--arch",), "arch", "value", _PLANNING, "the kernel that will run the image (default: the running one)",
           choices=_ArchNames()),
    Option(("--machine-root",), "machine_root", "value", _PLANNING,
           "read sys/firmware/memmap, proc/iomem and proc/meminfo below DIR"
           " (default /); with --dry-run, plans for a recorded machine", metavar="DIR", default="/"),
)


class Args:
    """The parsed command line: one attribute per dest of OPTIONS."""

    action: str | None
    load_panic: bool
    status: bool
    image: str | None
    type: str | None
    args_style: str | None
    entry: int | None
    command_line: str | None
    reuse_cmdline: bool
    initrd: str | None
    no_checks: bool
    core_header_bits: int | None
    mem_min: int | None
    mem_max: int | None
    no_ifdown: bool
    no_sync: bool
    syscall: str
    backend: str
    debug: bool
    dry_run: bool
    json: bool
    params: list[str] | None
    arch: str | None
    machine_root: str

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


def defaults() -> dict[str, Any]:
    """Every dest's value when no option sets it."""
    found: dict[str, Any] = {}
    for o in OPTIONS:
        if o.kind in ("help", "version"):
            continue
        if o.default is not None or o.dest not in found:
            found[o.dest] = False if o.kind == "flag" else o.default
    return found


_BY_NAME = {name: o for o in OPTIONS if o.kind != "positional" for name in o.names}


def parse(argv: list[str]) -> Args:
    """argv as kexec reads it; usage errors exit as argparse's do, with one line."""
    return parse_common(argv) or Args(vars(build_parser().parse_args(argv)))


def parse_common(argv: list[str]) -> Args | None:
    """argv read with the table alone, or None for argparse to read (see the module's doc)."""
    values = defaults()
    seen_exclusive: set[str] = set()
    image_seen = False
    words = iter(argv)
    for word in words:
        if not word.startswith("-"):
            if image_seen:
                return None
            values["image"], image_seen = word, True
            continue
        name, equals, given = word.partition("=") if word.startswith("--") else (word, "", "")
        option = _BY_NAME.get(name)
        if option is None or option.kind in ("help", "version"):
            return None
        if option.exclusive is not None:
            if option.exclusive in seen_exclusive:
                return None
            seen_exclusive.add(option.exclusive)
        if option.kind in ("flag", "const"):
            if equals:
                return None
            values[option.dest] = True if option.kind == "flag" else option.const
            continue
        if not equals:
            given = next(words, "-")
            if given.startswith("-"):
                return None
        try:
            value = option.convert(given) if option.convert else given
        except ValueError:
            return None
        if option.choices is not None and value not in option.choices:
            return None
        if option.kind == "append":
            values[option.dest] = [*(values[option.dest] or ()), value]
        else:
            values[option.dest] = value
    return Args(values)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for OPTIONS: --help, the man page, and every error."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # one line and kexec-tools' exit code, not argparse's 2
            sys.stderr.write(f"{PROG}: {message} (see {PROG} --help)\n")
            sys.exit(EXIT_USAGE)

    def argparse_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
        def checked(text: str) -> Any:
            try:
                return convert(text)
            except ValueError as e:  # argparse shows an ArgumentTypeError's own words
                raise argparse.ArgumentTypeError(str(e)) from None
        return checked

    parser = Parser(
        prog=PROG,
        description=(
            "Load a new kernel or physical-mode image and jump to it; with"
            " --load-preserve-context the image runs and returns to this Linux (kexec jump)."
        ),
        epilog=(
            "Example: kexec --load-preserve-context --args-none phy_mode; kexec -e"
            " (runs phy_mode in physical mode and comes back)."
        ),
        # -h goes in the output group: an option added to the parser itself makes a
        # HelpFormatter, which imports shutil for the terminal's width (bz2, lzma: a
        # tenth of `kexec -e` in a small guest); --help makes its own when it runs.
        add_help=False,
    )
    groups: dict[str, Any] = {}
    for o in OPTIONS:
        group = groups.get(o.group) or groups.setdefault(o.group, parser.add_argument_group(o.group))
        if o.exclusive is not None:
            key = f"{o.group}/{o.exclusive}"
            group = groups.get(key) or groups.setdefault(key, group.add_mutually_exclusive_group())
        kwargs: dict[str, Any] = {"help": o.help}
        if o.kind == "positional":
            group.add_argument(o.dest, nargs="?", metavar=o.metavar, **kwargs)
            continue
        if o.kind == "help":
            kwargs["action"] = "help"
        elif o.kind == "version":
            kwargs.update(action="version", version=f"kexec-py {__version__}")
        else:
            kwargs["dest"] = o.dest
            if o.kind == "flag":
                kwargs["action"] = "store_true"
            elif o.kind == "const":
                kwargs.update(action="store_const", const=o.const)
            else:
                kwargs.update(metavar=o.metavar, choices=o.choices)
                if o.kind == "append":
                    kwargs["action"] = "append"
                if o.convert is not None:
                    kwargs["type"] = argparse_type(o.convert)
        group.add_argument(*o.names, **kwargs)
    parser.set_defaults(**defaults())
    return parser
