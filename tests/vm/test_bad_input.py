"""Bad input, in the guest, table-driven: every row of BAD_INPUT is a kexec command that
must fail with exactly one line on stderr (`kexec: ...`, matching the row's regex), the
row's exit code (kexec-tools': 1 usage, 255 failure), no traceback and nothing on stdout,
and leave `kexec -S -l`, /sys/kernel/kexec_loaded and /sys/class/misc/kexec_jump/loaded as
they were. Before the rows, each guest loads phy_mode with --load-preserve-context and
jumps once (call counter 1); after all of them, `kexec -e` must print call 2: the image
loaded before the bad input is the same image, in the same state.

Guests (one per kernel, shared by all its rows): our patched i386 (6.1) and x86_64
(6.12.117) kernels, which use the kernel's own kexec jump; Debian's stock amd64 kernel
through the kernel driver shim; the same stock kernel booted with lockdown=integrity
(nothing can be loaded: nothing is, before and after) and without the shim (its kernel
lacks CONFIG_KEXEC_JUMP: a plain `kexec -l` of phy_mode is what must stay loaded), for the
rows about those. The guests boot PARALLEL_GUESTS at a time.
Each guest runs its rows one after the other in one module-scoped fixture (through
guest_bad_input.py, which forks a pre-imported kexec for most rows and execs the real
/usr/sbin/kexec for the rows marked `binary` and for those run as nobody); every row is its
own test id, which checks the recorded result.

The bad files are made in the guest by bad_files.py from the .deb's own phy_mode. Rows
that need no kernel also run on the host, from tests/unit/test_bad_input_host.py, with
--dry-run against the recorded machine trees of tests/data/memmaps: this file is the one
table of both. Standard library and pytest only at import time (the unit test imports it).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.vm

BAD_FILES = Path(__file__).with_name("bad_files.py")
RUNNER = Path(__file__).with_name("guest_bad_input.py")
GUEST_BAD = "/tmp/bad"  # the bad files in the guest (bad_files.py makes it world-readable)
GREETING = "phy_mode: hello from physical mode, call {}"
ROW_TIMEOUT = 30  # seconds a row may take in the guest before it is killed (a hang)
HUNG = 124  # the status of a killed row, as timeout(1) exits

# The guests, by kernel: (arch, GuestFactory keyword arguments).
AMD64 = "debian:linux-image-amd64"
KERNELS = {
    "i386": ("i386", {}),
    "x86_64": ("x86_64", {}),
    "amd64": ("x86_64", {"kernel": AMD64}),
    "amd64-lockdown": ("x86_64", {"kernel": AMD64, "append": "lockdown=integrity"}),
    "amd64-no-shim": ("x86_64", {"kernel": AMD64, "shim": False}),
}
JUMPING = ("i386", "x86_64", "amd64")  # kernels that load phy_mode and jump before the rows
LOAD = "--load-preserve-context --args-none"
CMDLINE_SIZE = 2047  # bad_files.CMDLINE_SIZE: the cmdline_size of its bz-good
BZIMAGE_TYPE = {"i386": "bzImage", "x86_64": "bzImage64"}  # -t, kexec-tools' per-arch names
KNOWN_TYPES = r"\(known: (elf-x86, bzImage|elf-x86_64, bzImage64)\)"
JUMP_BACK_ROOM = len(" kexec_jump_back_entry=0x00000000")  # what purgatory appends to a second kernel's


@dataclass(frozen=True)
class Row:
    """One bad input. argv: what follows `kexec`, shell words with {load} (LOAD), {bad} (the
    bad files' directory), {payload} (phy_mode for the kernel's arch), {other} (phy_mode
    for the other arch), {bz} (the arch's bzImage type), {too_long} and {no_room} (command
    lines of CMDLINE_SIZE + 1 and CMDLINE_SIZE bytes) in it. message: a regex searched in
    the one line on stderr."""

    name: str
    argv: str
    code: int
    message: str
    kernels: tuple[str, ...] = JUMPING
    user: bool = False  # run as nobody (setpriv), not as root; always through the real binary
    binary: bool = False  # in the guest, exec /usr/sbin/kexec (else: a fork of a pre-imported kexec)
    load_disabled: bool = False  # after `sysctl kernel.kexec_load_disabled=1` (these rows come last)
    host: bool = True  # also checked on the host (--dry-run, recorded machine trees)
    dry_run: bool = True  # on the host, with --dry-run (False: the row is about its absence)

    def command(self, arch: str, bad: str, payload, dry_run: bool = False) -> list[str]:
        """The argv after `kexec` for an `arch` kernel; payload(arch) is phy_mode's path."""
        other = "x86_64" if arch == "i386" else "i386"
        words = shlex.split(self.argv.format(load=LOAD, bad=bad, payload=payload(arch), other=payload(other),
                                             bz=BZIMAGE_TYPE[arch], too_long="x" * (CMDLINE_SIZE + 1),
                                             no_room="x" * CMDLINE_SIZE))
        return (["--dry-run"] if dry_run and self.dry_run else []) + words


FILES = [
    Row("empty file", "{load} {bad}/empty", 255, r"/empty: empty file$"),
    Row("text file", "{load} {bad}/text", 255, r"/text: cannot determine the file type " + KNOWN_TYPES + "$"),
    Row("ELF cut in e_ident", "{load} {bad}/elf-cut-in-ident", 255,
        r"truncated or damaged ELF \(10 bytes, the ELF header alone takes (52|64)\)$"),
    Row("ELF cut in the ELF header", "{load} {bad}/elf-cut-in-ehdr", 255,
        r"truncated or damaged ELF \((44|56) bytes, the ELF header alone takes (52|64)\)$"),
    Row("ELF cut in the program headers", "{load} {bad}/elf-cut-in-phdrs", 255,
        r"truncated or damaged ELF \(the program header table, \d+ entries at 0x[0-9a-f]+, runs past the end"
        r" of the file, 0x[0-9a-f]+ bytes\)$"),
    Row("ELF cut in the segment data", "{load} {bad}/elf-cut-in-data", 255,
        r"truncated: PT_LOAD\[\d+\] at 0x[0-9a-f]+ needs bytes up to 0x[0-9a-f]+, file has 0x[0-9a-f]+$"),
    Row("ELF bad class", "{load} {bad}/elf-bad-class", 255, r"truncated or damaged ELF \(EI_CLASS 7 is neither ELFCLASS32 nor ELFCLASS64\)$"),
    Row("ELF e_phoff past the end", "{load} {bad}/elf-bad-phoff", 255,
        r"the program header table, \d+ entries at 0x[0-9a-f]+, runs past the end of the file"),
    Row("ELF e_phnum overflow", "{load} {bad}/elf-phnum-overflow", 255,
        r"the program header table, 65520 entries at 0x[0-9a-f]+, runs past the end of the file"),
    Row("ELF segment beyond the file", "{load} {bad}/elf-segment-beyond-file", 255,
        r"truncated: PT_LOAD\[\d+\] at 0x[0-9a-f]+ needs bytes up to 0x[0-9a-f]+, file has 0x[0-9a-f]+$"),
    Row("ELF p_filesz over p_memsz", "{load} {bad}/elf-filesz-over-memsz", 255, r"has p_filesz > p_memsz$"),
    Row("ELF for ARM", "{load} {bad}/elf-arm", 255, r"/elf-arm: ELF machine EM_ARM is not x86$"),
    Row("ELF relocatable object", "{load} {bad}/elf-relocatable", 255,
        r"ELF type ET_REL, need an executable \(ET_EXEC\)$"),
    Row("ELF without PT_LOAD", "{load} {bad}/elf-no-pt-load", 255, r"/elf-no-pt-load: no PT_LOAD segment$"),
    Row("ELF segment not page-aligned", "{load} {bad}/elf-unaligned", 255,
        r"PT_LOAD\[\d+\] at 0x[0-9a-f]+10 is not page-aligned"),
    Row("ELF outside RAM", "{load} {bad}/elf-outside-ram", 255,
        r"^kexec: segment 0xf0000000-0x[0-9a-f]+ \(.*\) is not inside RAM \("),
    Row("bzImage cut in the setup", "--load-preserve-context {bad}/bz-cut-in-setup", 255,
        r"truncated bzImage: 0x1000 bytes, the setup alone takes 0x3e00$"),
    Row("bzImage without a kernel", "--load-preserve-context {bad}/bz-no-kernel", 255,
        r"truncated bzImage: 0xa00 bytes, the setup alone takes 0xa00$"),
    Row("bzImage shorter than its header", "-l -t {bz} {bad}/bz-too-short", 255,
        r"not a bzImage \(only 768 bytes, a setup header needs 1024\)$"),
    Row("bzImage boot protocol 2.01", "-l {bad}/bz-old-protocol", 255, r"boot protocol 2\.01 is too old"),
    Row("zImage", "-l {bad}/bz-zimage", 255, r"a zImage \(LOADED_HIGH clear\): only bzImage kernels load high$"),
    Row("bzImage kernel_alignment", "-l {bad}/bz-bad-alignment", 255,
        r"kernel_alignment 0x3000 is not a power of two$"),
    Row("payload of the other arch", "{load} {other}", 255,
        r"(EM_386 image, but x86_64 kernels enter EM_X86_64|EM_X86_64 image, but i386 kernels enter EM_386) images"),
    Row("directory", "{load} {bad}/dir", 255, r"/dir: is a directory, not an image$"),
    Row("/dev/null", "{load} /dev/null", 255, r"^kexec: /dev/null: is a character device, not an image$",
        binary=True),
    Row("FIFO", "{load} {bad}/fifo", 255, r"/fifo: is a FIFO \(named pipe\), not an image$", binary=True),
    Row("no such file", "{load} {bad}/nonesuch", 255,
        r"^kexec: cannot open \S+/nonesuch: No such file or directory$", binary=True),
    Row("symlink loop", "{load} {bad}/loop-a", 255, r"cannot open \S+/loop-a: Too many levels of symbolic links$"),
    Row("sysfs file", "{load} /sys/kernel/kexec_loaded", 255,
        r"^kexec: /sys/kernel/kexec_loaded: cannot map the file \(No such device\): not an image$", host=False),
    Row("force with a directory", "-f --args-none {bad}/dir", 255, r"/dir: is a directory, not an image$"),
]

OPTIONS = [
    Row("-l with -e", "-l -e", 1,
        r"^kexec: argument -e/--exec: not allowed with argument -l/--load \(see kexec --help\)$"),
    Row("--load-preserve-context with -u", "--load-preserve-context -u {payload}", 1,
        r"argument -u/--unload: not allowed with argument --load-preserve-context"),
    Row("-S with -f", "-S -f {payload}", 1, r"^kexec: -S/--status goes with nothing, -p, -l or --load-preserve-context$"),
    Row("--json without --dry-run", "--json {load} {payload}", 1, r"^kexec: --json goes with --dry-run or --call$",
        dry_run=False),
    Row("-e with an image", "-e {payload}", 1, r"^kexec: --exec takes no image$"),
    Row("-u with an image", "-u {payload}", 1, r"^kexec: --unload takes no image$"),
    Row("-S with an image", "-S {payload}", 1, r"^kexec: --status takes no image$"),
    Row("--dry-run with -u", "--dry-run -u", 1, r"^kexec: --dry-run plans a load; it does not apply to --unload$"),
    Row("unknown -t type", "-t elf-arm {load} {payload}", 1,
        r"^kexec: unknown image type 'elf-arm' " + KNOWN_TYPES + "$"),
    Row("--mem-min above the top of RAM", "{load} --mem-min 0x40000000 {payload}", 255,
        r"^kexec: --mem-min 0x40000000 is above the top of RAM \(0x[0-9a-f]+ in \S+\): the window"
        r" \[--mem-min, --mem-max\] holds no RAM$", binary=True),
    Row("--mem-max above the top of RAM", "{load} --mem-max 0x40000000 {payload}", 255,
        r"more than half of RAM \(\d+ KiB of \d+ KiB\): narrow --mem-min/--mem-max$"),
    Row("--mem-max below --mem-min", "{load} --mem-min 0x2000000 --mem-max 0x1000000 {payload}", 1,
        r"^kexec: --mem-max 0x1000000 is below --mem-min 0x2000000$"),
    Row("window without the image", "{load} --mem-min 0x4000000 --mem-max 0x4ffffff {payload}", 255,
        r"lies outside --mem-min/--mem-max 0x4000000-0x4ffffff$"),
    Row("--mem-min outside a plain load", "-l --args-none --mem-min 0x1000000 {payload}", 1,
        r"^kexec: --mem-min/--mem-max set the backup window of --load-preserve-context$"),
    Row("number 0x", "{load} --mem-min 0x {payload}", 1, r"^kexec: argument --mem-min: bad number '0x'"),
    Row("number 12abc", "{load} --mem-max 12abc {payload}", 1, r"^kexec: argument --mem-max: bad number '12abc'"),
    Row("number -1", "{load} --mem-max=-1 {payload}", 1, r"^kexec: argument --mem-max: negative address '-1'"),
    Row("number 1e3", "{load} --entry 1e3 {payload}", 1, r"^kexec: argument --entry: bad number '1e3'"),
    Row("number over 64 bits", "{load} --entry 0x10000000000000000 {payload}", 1,
        r"^kexec: argument --entry: address '0x10000000000000000' does not fit in 64 bits"),
    Row("--entry outside the image", "{load} --entry 0x4000000 {payload}", 255,
        r"entry 0x4000000 is outside every loaded segment$"),
    Row("unknown option", "--bogus", 1, r"^kexec: unrecognized arguments: --bogus \(see kexec --help\)$", binary=True),
    Row("-p without crashkernel=", "-p {payload}", 1, r"^kexec: no memory is reserved for a crash kernel: boot this"
        r" kernel with crashkernel=SIZE \(e\.g\. crashkernel=256M\) before kexec -p$"),
    Row("-s on i386", "-s -l {payload}", 1, r"^kexec: -s: kexec_file_load exists on x86_64 only; an i386 kernel has"
        r" none \(use -c or -a\)$", kernels=("i386",)),
    Row("-s with --load-preserve-context", "-s --load-preserve-context {payload}", 1,
        r"^kexec: -s: kexec_file_load has no preserve-context flag; --load-preserve-context needs kexec_load or the"
        r" kexec_jump module \(drop -s\)$", kernels=("x86_64", "amd64")),
    Row("--mem-min without its value", "{load} {payload} --mem-min", 1,
        r"^kexec: argument --mem-min: expected one argument \(see kexec --help\)$"),
    Row("-t without its value", "{load} {payload} -t", 1, r"^kexec: argument -t/--type: expected one argument"),
    Row("no image", "{load}", 1, r"^kexec: no image given$"),
    Row("--backend shim for a plain load", "--backend shim -l --args-none {payload}", 1,
        r"^kexec: --backend shim: plain loads \(-l, -f, the default\) always use kexec_load"),
    Row("--backend with -e", "--backend kernel -e", 1,
        r"^kexec: --backend chooses where a load goes; --exec follows the loaded image$", dry_run=False),
    Row("unknown --backend", "--backend module {load} {payload}", 1, r"argument --backend: invalid choice: 'module'"),
    Row("--initrd with --args-none", "{load} --initrd={payload} {payload}", 1,
        r"^kexec: elf-x86(_64)? --args-none: --initrd need a Linux kernel"),
    Row("no --args-none", "--load-preserve-context {payload}", 1, r"^kexec: elf-x86(_64)?: say --args-none"),
    Row("not a bzImage", "-l -t {bz} {bad}/good", 255,
        r"/good: not a bzImage \(no 0xAA55 boot flag at 0x1fe and \"HdrS\" at 0x202\)$"),
    Row("bzImage without the 64-bit entry on x86_64", "-c -l {bad}/bz-good --reuse-cmdline", 255,
        r"/bz-good: xloadflags 0x0 lacks 0x1: no 64-bit entry \(startup_64\), which x86_64 kernels enter"
        r" \(an i386 kernel\? --arch i386 plans for an i386 machine\)$",
        kernels=("x86_64", "amd64")),
    Row("missing initrd", "-l {bad}/bz-good --initrd={bad}/nonesuch --reuse-cmdline", 255,
        r"^kexec: initrd: cannot open \S+/nonesuch: No such file or directory$", kernels=("i386",)),
    Row("/dev/null as the initrd", "-l {bad}/bz-good --initrd=/dev/null", 255,
        r"^kexec: initrd: /dev/null: is a character device, not an image$", kernels=("i386",)),
    Row("command line over cmdline_size", "-l {bad}/bz-good --append={too_long}", 255,
        rf"^kexec: the command line is {CMDLINE_SIZE + 1} bytes, \S+/bz-good takes at most {CMDLINE_SIZE}"
        rf" \(cmdline_size {CMDLINE_SIZE}\)$", kernels=("i386",)),
    Row("no room for kexec_jump_back_entry=", "--load-preserve-context {bad}/bz-good --append={no_room}", 255,
        rf"^kexec: the command line is {CMDLINE_SIZE} bytes, \S+/bz-good takes at most {CMDLINE_SIZE - JUMP_BACK_ROOM}"
        rf" \(cmdline_size {CMDLINE_SIZE} less {JUMP_BACK_ROOM} for the kexec_jump_back_entry= purgatory appends\)$",
        kernels=("i386",)),
    Row("--load-jump-back-helper with an image", "--load-jump-back-helper {payload}", 1,
        r"^kexec: --load-jump-back-helper takes no image$"),
    Row("--load-jump-back-helper in a first kernel", "--load-jump-back-helper", 255,
        r"^kexec: nothing to jump back to: \S*/proc/cmdline has no kexec_jump_back_entry="),
    Row("--load-jump-back-helper past 4 GiB", "--load-jump-back-helper --entry 0x100000000", 255,
        r"^kexec: nothing to jump back to: 0x100000000 \(--entry\) is beyond the 32-bit address space of an"
        r" i386 kernel$", kernels=("i386",)),
]

NOT_ROOT = r"^kexec: [^:]+( failed)?: permission denied: kexec needs root \(CAP_SYS_BOOT\)$"
LOAD_DISABLED = r"sysctl kernel\.kexec_load_disabled is 1"
SYSTEM_ROWS = [
    Row("non-root load", "{load} {payload}", 255, NOT_ROOT, user=True, host=False),
    Row("non-root plain load", "-l --args-none {payload}", 255, NOT_ROOT, user=True, host=False),
    Row("non-root -e", "-e", 255, NOT_ROOT, user=True, host=False),
    Row("non-root -u", "-u", 255, NOT_ROOT, user=True, host=False),
    Row("non-root unreadable file", "{load} {bad}/unreadable", 255,
        r"^kexec: cannot open \S+/unreadable: Permission denied$", user=True, host=False),
    Row("kexec_load_disabled load", "{load} {payload}", 255, LOAD_DISABLED, load_disabled=True, host=False),
    Row("kexec_load_disabled plain load", "-l --args-none {payload}", 255, LOAD_DISABLED, load_disabled=True,
        host=False),
    Row("kexec_load_disabled -u", "-u", 255, LOAD_DISABLED, load_disabled=True, host=False),
    Row("lockdown load", "{load} {payload}", 255, r"lockdown mode \(integrity", kernels=("amd64-lockdown",),
        host=False),
    Row("lockdown plain load", "-l --args-none {payload}", 255,
        r"^kexec: kexec_load failed: permission denied: the kernel is in lockdown mode \(integrity",
        kernels=("amd64-lockdown",), host=False),
    Row("lockdown -c -u", "-c -u", 255, r"lockdown mode \(integrity", kernels=("amd64-lockdown",), host=False),
    Row("lockdown --backend shim", "--backend shim {load} {payload}", 255,
        r"^kexec: --backend shim: the kexec_jump module does not load: the kernel is in lockdown mode \(integrity\)",
        kernels=("amd64-lockdown",), host=False),
    Row("no KEXEC_JUMP, no shim", "{load} {payload}", 255,
        r"^kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is"
        r" not installed: install kexec-py-dkms \(and linux-headers-\S+\)$", kernels=("amd64-no-shim",), host=False),
    Row("no shim, --backend shim", "--backend shim {load} {payload}", 255,
        r"^kexec: --backend shim: the kexec_jump module is not installed: install kexec-py-dkms",
        kernels=("amd64-no-shim",), host=False),
    Row("no KEXEC_JUMP, --backend kernel", "--backend kernel {load} {payload}", 255,
        r"^kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP: it refuses"
        r" --load-preserve-context \(EINVAL\)$", kernels=("amd64-no-shim",), host=False),
]

BAD_INPUT = FILES + OPTIONS + SYSTEM_ROWS


def payload(arch: str) -> str:
    """The .deb's phy_mode for an `arch` kernel (guest_paths.payload, without importing it)."""
    return f"/usr/lib/kexec-py/{arch}/phy_mode"


# --- one line, the exit code, nothing changed ---------------------------------------------

def check_result(row: Row, code: int, stdout: str, stderr: str) -> None:
    """What every row must do, wherever it runs (the host test calls this too)."""
    assert code != HUNG, f"{row.name}: timed out after {ROW_TIMEOUT} s (a hang)"
    assert "Traceback" not in stderr, f"{row.name}: a traceback:\n{stderr}"
    assert code == row.code, f"{row.name}: exit {code}, expected {row.code}; stderr: {stderr!r}"
    assert stdout == "", f"{row.name}: printed on stdout: {stdout!r}"
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"{row.name}: not one line on stderr: {stderr!r}"
    assert stderr.startswith("kexec: "), f"{row.name}: no 'kexec: ' prefix: {stderr!r}"
    assert re.search(row.message, stderr.rstrip("\n")), f"{row.name}: {stderr!r} does not match {row.message!r}"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    state: tuple[str, str, str]  # kexec -S -l status, /sys/kernel/kexec_loaded, .../kexec_jump/loaded ("-": none)
    seconds: float = 0.0


@dataclass
class GuestRun:
    """All rows of one guest: the state before them, each row's outcome, what the final
    `kexec -e` printed, and the console (for failure reports)."""

    kernel: str
    before: tuple[str, str, str] | None = None
    after: tuple[str, str, str] | None = None  # the same, after all rows (/usr/sbin/kexec -S -l)
    outcomes: dict[str, Outcome] | None = None
    final: str | None = None
    error: str | None = None  # why the run stopped early (the guest died, timed out, ...)
    seconds: float = 0.0  # setup, rows and the final jump
    boot_seconds: float = 0.0
    console: str = ""


STATE = ("kexec -S -l >/dev/null 2>&1; s=$?;"
         " printf '@state %s %s %s\\n' $s \"$(cat /sys/kernel/kexec_loaded)\""
         " \"$(cat /sys/class/misc/kexec_jump/loaded 2>/dev/null || echo -)\"")
ROW_LINE = re.compile(r"^@row (\{.*\})$", re.M)


def rows_for(kernel: str) -> list[Row]:
    """The kernel's rows in the order they run: those after kexec_load_disabled=1 last."""
    mine = [row for row in BAD_INPUT if kernel in row.kernels]
    return [row for row in mine if not row.load_disabled] + [row for row in mine if row.load_disabled]


def rows_file(directory: Path, kernel: str, load_disabled: bool) -> Path:
    """The JSON guest_bad_input.py reads: the kernel's rows before (or after) kexec_load_disabled=1."""
    arch = KERNELS[kernel][0]
    rows = [{"name": row.name, "argv": row.command(arch, GUEST_BAD, payload), "user": row.user,
             "binary": row.binary or kernel not in JUMPING, "timeout": ROW_TIMEOUT}
            for row in rows_for(kernel) if row.load_disabled == load_disabled]
    path = directory / f"rows-{'disabled' if load_disabled else 'enabled'}.json"
    path.write_text(json.dumps(rows, indent=1) + "\n")
    return path


def state_of(g) -> tuple[str, str, str]:
    match = re.search(r"@state (\S+) (\S+) (\S+)", g.check(STATE))
    return match[1], match[2], match[3]


def collect(run: GuestRun, text: str) -> None:
    for line in ROW_LINE.findall(text):
        row = json.loads(line)
        run.outcomes[row["name"]] = Outcome(row["code"], row["stdout"], row["stderr"], tuple(row["state"]),
                                            row["seconds"])


def run_guest(g, kernel: str) -> GuestRun:
    """Set the guest up, run its rows, then the final jump; never raises (a failure to get
    that far is recorded in .error; the rows that ran before it keep their outcomes)."""
    arch = KERNELS[kernel][0]
    run = GuestRun(kernel, outcomes={})
    start = time.monotonic()
    try:
        g.check(f"python3 /root/{BAD_FILES.name} {GUEST_BAD} {payload(arch)}")
        if kernel in JUMPING:
            g.check(f"kexec {LOAD} {payload(arch)}", timeout=120)
            output = g.check("kexec -e", timeout=60)
            assert GREETING.format(1) in output, output
        elif kernel == "amd64-no-shim":  # a plain load works there: the rows must leave it loaded
            g.check(f"kexec -l --args-none {payload(arch)}", timeout=120)
        run.before = state_of(g)
        for disabled in (False, True):
            count = sum(row.load_disabled == disabled for row in rows_for(kernel))
            if not count:
                continue
            if disabled:
                g.check("echo 1 > /proc/sys/kernel/kexec_load_disabled")
            name = f"rows-{'disabled' if disabled else 'enabled'}.json"
            collect(run, g.check(f"python3 /root/{RUNNER.name} /root/{name}", timeout=60 + count * ROW_TIMEOUT))
        run.after = state_of(g)
        if kernel in JUMPING:
            run.final = g.run("kexec -e", timeout=60).output
    except Exception as e:  # noqa: BLE001 - recorded for every test of this guest to report
        run.error = f"{type(e).__name__}: {e}"
        collect(run, g.console)
    run.seconds = time.monotonic() - start
    return run


EMPTY = SimpleNamespace(params={})  # the callspec of an unparametrized test
PARALLEL_GUESTS = 2  # guests booted and run at once (each a QEMU TCG process; stock ones have 2 CPUs)
MEM_MB = 512


def boot_and_run(boot, kernel: str, guests: list) -> GuestRun:
    """In a worker thread: boot the prepared guest, run all its rows, stop it."""
    from vmharness.guest import Guest

    start = time.monotonic()
    g = Guest(boot)
    guests.append(g)
    try:
        g.start()
        g.wait_for_shell()
    except Exception as e:  # noqa: BLE001
        run = GuestRun(kernel, error=f"the guest did not boot: {type(e).__name__}: {e}", console=g.console)
    else:
        run = run_guest(g, kernel)
        run.console = g.console
    finally:
        g.stop()
    run.boot_seconds = time.monotonic() - start - run.seconds
    return run


@pytest.fixture(scope="module")
def guest_runs(request, tmp_path_factory):
    """kernel -> its GuestRun. At the first test, every kernel that a selected test of this
    module needs gets its guest prepared (one at a time: the harness's caches) and then
    booted and run, PARALLEL_GUESTS at a time, each stopped once its rows are done."""
    from concurrent.futures import ThreadPoolExecutor

    from vmharness.artifacts import prepare
    from vmharness.overlay import RunSpec

    wanted = {item.callspec.params["kernel"] for item in request.session.items
              if item.module is request.module and "kernel" in getattr(item, "callspec", EMPTY).params}
    guests: list = []
    futures = {}
    with ThreadPoolExecutor(max_workers=PARALLEL_GUESTS) as pool:
        try:
            for kernel in (k for k in KERNELS if k in wanted):
                arch, options = KERNELS[kernel]
                work = tmp_path_factory.mktemp(f"bad-input-{kernel}")
                adds = (BAD_FILES, RUNNER, rows_file(work, kernel, False), rows_file(work, kernel, True))
                try:
                    boot = prepare(work, RunSpec(adds=adds), mem_mb=MEM_MB, arch=arch, **options)
                except Exception as e:  # noqa: BLE001
                    futures[kernel] = pool.submit(GuestRun, kernel, error=f"no guest: {type(e).__name__}: {e}")
                else:
                    futures[kernel] = pool.submit(boot_and_run, boot, kernel, guests)
            yield lambda kernel: futures[kernel].result()
        finally:
            for future in futures.values():
                future.cancel()
            for g in guests:
                g.stop()


def cases() -> list:
    return [pytest.param(kernel, row, id=f"{kernel}-{row.name}")
            for kernel in KERNELS for row in rows_for(kernel)]


def report(run: GuestRun) -> str:
    tail = "\n".join(run.console.splitlines()[-60:])
    return f"\n--- {run.kernel} guest console tail ---\n{tail}"


@pytest.mark.parametrize("kernel, row", cases())
def test_bad_input(guest_runs, kernel: str, row: Row) -> None:
    run = guest_runs(kernel)
    if row.name not in (run.outcomes or {}):
        pytest.fail(f"{kernel}: the guest stopped before {row.name!r}: {run.error}{report(run)}")
    outcome = run.outcomes[row.name]
    check_result(row, outcome.code, outcome.stdout, outcome.stderr)
    assert outcome.state == run.before, (f"{row.name}: (kexec -S -l, kexec_loaded, kexec_jump/loaded) went from"
                                        f" {run.before} to {outcome.state}")


EXPECTED_STATE = {  # (kexec -S -l status, /sys/kernel/kexec_loaded, /sys/class/misc/kexec_jump/loaded)
    "i386": ("1", "1", "-"),
    "x86_64": ("1", "1", "-"),
    "amd64": ("1", "0", "1"),
    "amd64-lockdown": ("0", "0", "-"),
    "amd64-no-shim": ("1", "1", "-"),
}


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_the_image_loaded_before_is_unchanged(guest_runs, kernel: str) -> None:
    """The state all rows are compared with is the one the setup made; after all rows,
    phy_mode is still there with its call counter at 1: the next jump is call 2."""
    run = guest_runs(kernel)
    assert run.error is None, f"{kernel}: {run.error}{report(run)}"
    assert run.before == EXPECTED_STATE[kernel]
    assert run.after == run.before
    if kernel in JUMPING:
        assert GREETING.format(2) in run.final, f"{kernel}: the last kexec -e printed {run.final!r}"
        assert GREETING.format(1) not in run.final and GREETING.format(3) not in run.final
