"""The kexec command line, through kexec_py.cli.main with a recording fake kernel
and a recorded machine tree (--machine-root), planning for i386 (--arch)."""

import errno
import json
import os
import subprocess
import sys

import pytest

from kexec_py.segments import KexecPlan, Segment
from unit_support import HOST_TREE, REPO, FakeKernel, recorded_tree

I386 = ["--arch", "i386", "--machine-root", HOST_TREE]
KEXEC_ARCH_386, KEXEC_ARCH_X86_64 = 0x30000, 0x3E0000
PRESERVE = 0x2
ON_CRASH = 0x1
BACKUP = "backup (zero-filled scratch)"


@pytest.fixture
def img(tiny_elf32):
    return tiny_elf32


def with_image(argv, image):
    return [image if a == "IMG" else a for a in argv]


def image_segments(image):
    """The tiny ELF32's two PT_LOADs as --dry-run --json prints them."""
    return [
        {"mem": 0x1000000, "memsz": 0x1000, "bufsz": 2, "source": f"{image} PT_LOAD[0] at 0x1000000"},
        {"mem": 0x1001000, "memsz": 0x3000, "bufsz": 4, "source": f"{image} PT_LOAD[1] at 0x1001000"},
    ]


def backup(start, end):
    return {"mem": start, "memsz": end - start, "bufsz": 0, "source": BACKUP}


def assert_one_line_error(result, code, message):
    assert result.code == code
    assert result.out == ""
    assert result.err.count("\n") == 1 and result.err.endswith("\n"), result.err
    assert result.err.startswith("kexec: ")
    assert "Traceback" not in result.err
    assert message in result.err, result.err


# --- actions and their exit codes -----------------------------------------------------------------

JUMP = ["interfaces_down", "reboot_kexec", "interfaces_restore"]  # -e's jump, network around it

ACTIONS = [
    # id, argv (IMG: the tiny ELF32), loaded before, exit code, kernel calls, stderr
    # -S asks about the crash kernel unless -l or --load-preserve-context say the kexec -e image
    ("status-not-loaded", ["-S", "-l"], False, 0, ["kexec_loaded"], ""),
    ("status-loaded", ["-S", "-l"], True, 1, ["kexec_loaded"], ""),
    ("status-preserve-context", ["-S", "--load-preserve-context"], True, 1, ["kexec_loaded"], ""),
    ("status-crash-by-default", ["-S"], True, 0, ["kexec_crash_loaded"], ""),
    ("status-crash", ["-S", "-p"], True, 0, ["kexec_crash_loaded"], ""),
    ("unload-crash", ["-u", "-p"], True, 0, ["kexec_unload"], ""),
    ("exec-nothing-loaded", ["-e"], False, 1, ["kexec_loaded"], "kexec: Nothing has been loaded!\n"),
    ("exec-returns", ["-e"], True, 0, ["kexec_loaded", "sync", *JUMP], ""),
    ("exec-no-sync", ["-e", "-y"], True, 0, ["kexec_loaded", *JUMP], ""),
    ("exec-no-ifdown", ["--exec", "-x"], True, 0, ["kexec_loaded", "sync", "reboot_kexec"], ""),
    ("exec-no-sync-no-ifdown", ["-e", "-x", "-y"], True, 0, ["kexec_loaded", "reboot_kexec"], ""),
    ("unload", ["-u"], True, 0, ["kexec_unload"], ""),
    ("load", ["-l", "--args-none", "IMG"], False, 0, ["kexec_load"], ""),
    ("load-preserve-context", ["--load-preserve-context", "--args-none", "IMG"], False, 0, ["kexec_load"], ""),
    ("default-loads-then-shutdown", ["--args-none", "IMG"], False, 0, ["kexec_load", "shutdown_reboot"], ""),
    ("force", ["-f", "--args-none", "IMG"], False, 0, ["kexec_load", "kexec_loaded", "sync", *JUMP], ""),
    ("force-no-sync", ["-f", "-y", "--args-none", "IMG"], False, 0, ["kexec_load", "kexec_loaded", *JUMP], ""),
]


@pytest.mark.parametrize("argv, loaded, code, calls, err", [a[1:] for a in ACTIONS], ids=[a[0] for a in ACTIONS])
def test_action(run_cli, img, argv, loaded, code, calls, err):
    kernel = FakeKernel(loaded=loaded)
    result = run_cli(I386 + with_image(argv, img), kernel)
    assert (result.code, kernel.calls, result.err, result.out) == (code, calls, err, "")


@pytest.mark.parametrize(
    "argv, flags",
    [
        (["-l", "--args-none", "IMG"], KEXEC_ARCH_386),
        (["--load-preserve-context", "--args-none", "IMG"], KEXEC_ARCH_386 | PRESERVE),
        (["-f", "--args-none", "IMG"], KEXEC_ARCH_386),
    ],
)
def test_load_passes_the_plan(run_cli, img, argv, flags):
    kernel = FakeKernel()
    assert run_cli(I386 + with_image(argv, img), kernel).code == 0
    [plan] = kernel.plans
    assert (plan.entry, plan.flags) == (0x1000000, flags)
    assert [(s.mem, s.memsz, bytes(s.buf)) for s in plan.segments] == [
        (0x1000000, 0x1000, b"\xeb\xfe"), (0x1001000, 0x3000, b"\x05\x00\x00\x00")]


def test_x86_64_load_flags(run_cli, tiny_elf64):
    kernel = FakeKernel()
    argv = ["--arch", "x86_64", "--machine-root", HOST_TREE, "--load-preserve-context", "--args-none", tiny_elf64]
    assert run_cli(argv, kernel).code == 0
    assert kernel.plans[0].flags == KEXEC_ARCH_X86_64 | PRESERVE == 0x3E0002


@pytest.mark.parametrize("arch, argv, flags", [
    ("i386", [], KEXEC_ARCH_386),
    ("i386", ["-p"], KEXEC_ARCH_386 | ON_CRASH),
    ("x86_64", ["-c"], KEXEC_ARCH_X86_64),
    ("x86_64", ["-c", "-p"], KEXEC_ARCH_X86_64 | ON_CRASH),
])
def test_unload_names_the_kernel_arch(run_cli, arch, argv, flags):
    kernel = FakeKernel(loaded=True)
    assert run_cli(["--arch", arch, "-u", *argv], kernel).code == 0
    assert (kernel.calls, kernel.unload_flags, kernel.loaded) == (["kexec_unload"], [flags], False)


def test_debug_prints_the_segment_list_then_loads(run_cli, img):
    kernel = FakeKernel()
    result = run_cli(I386 + ["-d", "--load-preserve-context", "--args-none", img], kernel)
    assert result.code == 0 and kernel.calls == ["kexec_load"]
    assert result.err.splitlines()[:3] == [
        "entry       = 0x1000000",
        "flags       = 0x30002 (KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386)",
        "nr_segments = 2",
    ]


KERNEL_FAILURES = [
    # id, argv, fake kernel method that fails, loaded before, the calls made (nothing after the
    # failure but bringing the network back)
    ("load", ["-l", "--args-none", "IMG"], "kexec_load", False, ["kexec_load"]),
    ("exec", ["-e"], "reboot_kexec", True, ["kexec_loaded", "sync", *JUMP]),
    ("exec-no-ifdown", ["-e", "-x"], "reboot_kexec", True, ["kexec_loaded", "sync", "reboot_kexec"]),
    ("exec-ifdown", ["-e"], "interfaces_down", True, ["kexec_loaded", "sync", "interfaces_down"]),
    ("force-exec", ["-f", "--args-none", "IMG"], "reboot_kexec", False, ["kexec_load", "kexec_loaded", "sync", *JUMP]),
    ("unload", ["-u"], "kexec_unload", True, ["kexec_unload"]),
    ("status", ["-S", "-l"], "kexec_loaded", False, ["kexec_loaded"]),
    ("shutdown", ["--args-none", "IMG"], "shutdown_reboot", False, ["kexec_load", "shutdown_reboot"]),
]


@pytest.mark.parametrize("argv, method, loaded, calls", [k[1:] for k in KERNEL_FAILURES],
                         ids=[k[0] for k in KERNEL_FAILURES])
def test_kernel_failure_exits_255(run_cli, img, argv, method, loaded, calls):
    kernel = FakeKernel(loaded=loaded, fail={method: errno.EINVAL})
    result = run_cli(I386 + with_image(argv, img), kernel)
    assert_one_line_error(result, 255, f"kexec: {method} failed: Invalid argument\n")
    assert kernel.calls == calls


def test_interrupt_exits_130(run_cli):
    class Interrupted(FakeKernel):
        def reboot_kexec(self):
            self._call("reboot_kexec")
            raise KeyboardInterrupt

    kernel = Interrupted(loaded=True)
    assert run_cli(I386 + ["-e"], kernel).code == 130
    assert kernel.calls == ["kexec_loaded", "sync", *JUMP]


# --- bad input: one line on stderr, kexec-tools' exit code, the loaded image untouched ----------

BAD_INPUT = [
    # id, argv (after --arch i386 --machine-root <host>), exit code, message
    ("load-and-exec", ["-l", "-e"], 1, "argument -e/--exec: not allowed with argument -l/--load"),
    ("exec-and-unload", ["-e", "-u"], 1, "not allowed with argument"),
    ("status-and-exec", ["-S", "-e"], 1, "kexec: -S/--status goes with nothing, -p, -l or --load-preserve-context\n"),
    ("status-with-image", ["-S", "-l", "IMG"], 1, "kexec: --status takes no image\n"),
    ("panic-and-exec", ["-p", "-e"], 1, "kexec: -p/--load-panic loads a crash kernel: it does not go with --exec\n"),
    ("two-arg-styles", ["-l", "--args-none", "--args-linux", "IMG"], 1, "not allowed with argument"),
    ("json-without-dry-run", ["--json", "-l", "--args-none", "IMG"], 1, "kexec: --json goes with --dry-run or --call\n"),
    ("exec-with-image", ["-e", "IMG"], 1, "kexec: --exec takes no image\n"),
    ("unload-with-image", ["-u", "IMG"], 1, "kexec: --unload takes no image\n"),
    ("status-with-image", ["-S", "IMG"], 1, "kexec: --status takes no image\n"),
    ("dry-run-exec", ["--dry-run", "-e"], 1, "kexec: --dry-run plans a load; it does not apply to --exec\n"),
    ("no-image", ["-l"], 1, "kexec: no image given\n"),
    ("dry-run-no-image", ["--dry-run", "--json"], 1, "kexec: no image given\n"),
    ("two-images", ["-l", "--args-none", "IMG", "IMG"], 1, "unrecognized arguments"),
    ("unknown-option", ["--bogus"], 1, "unrecognized arguments: --bogus (see kexec --help)\n"),
    ("unknown-arch", ["--arch", "sparc", "-S"], 1, "argument --arch: invalid choice: 'sparc'"),
    ("unknown-type", ["-t", "bogus", "-l", "--args-none", "IMG"], 1,
     "kexec: unknown image type 'bogus' (known: elf-x86, "),
    ("args-elf", ["-l", "--args-elf", "IMG"], 1, "kexec: elf-x86: say --args-none"),
    ("no-args-style", ["-l", "IMG"], 1, "kexec: elf-x86: say --args-none"),
    ("mem-min-without-preserve", ["-l", "--args-none", "--mem-min", "0x1000000", "IMG"], 1,
     "kexec: --mem-min/--mem-max set the backup window of --load-preserve-context\n"),
    ("mem-max-below-mem-min", ["--load-preserve-context", "--args-none", "--mem-min", "0x2000000",
                               "--mem-max", "0x1000000", "IMG"], 1,
     "kexec: --mem-max 0x1000000 is below --mem-min 0x2000000\n"),
    ("bad-hex", ["--entry", "0xzz", "-l", "--args-none", "IMG"], 1, "argument --entry: bad number '0xzz'"),
    ("bad-octal", ["--mem-min", "08", "-l", "--args-none", "IMG"], 1, "argument --mem-min: bad number '08'"),
    ("negative", ["--mem-max=-1", "-l", "--args-none", "IMG"], 1, "argument --mem-max: negative address '-1'"),
    ("empty-number", ["--entry=", "-l", "--args-none", "IMG"], 1, "argument --entry: bad number ''"),
    ("float", ["--entry", "1e6", "-l", "--args-none", "IMG"], 1, "bad number '1e6'"),
    # Python spellings strtoul(..., 0) does not read
    ("python-binary", ["--entry", "0b1", "-l", "--args-none", "IMG"], 1, "bad number '0b1'"),
    ("python-octal", ["--entry", "0o17", "-l", "--args-none", "IMG"], 1, "bad number '0o17'"),
    ("underscore", ["--entry", "16_777_216", "-l", "--args-none", "IMG"], 1, "bad number '16_777_216'"),
    ("spaces", ["--entry", " 0x1000000", "-l", "--args-none", "IMG"], 1, "bad number ' 0x1000000'"),
    # failures before the system call: 255
    ("missing-image", ["-l", "--args-none", "/nonexistent/payload"], 255,
     "kexec: cannot open /nonexistent/payload: No such file or directory\n"),
    ("directory-image", ["-l", "--args-none", "/"], 255, "kexec: /: is a directory, not an image\n"),
    ("not-an-image", ["-l", "--args-none", __file__], 255, f"kexec: {__file__}: cannot determine the file type"),
    ("entry-outside", ["--entry", "0x2000000", "-l", "--args-none", "IMG"], 255,
     "entry 0x2000000 is outside every loaded segment\n"),
    ("window-misses-image", ["--load-preserve-context", "--args-none", "--mem-min", "0x2000000",
                             "--mem-max", "0x2ffffff", "IMG"], 255,
     "kexec: segment 0x1000000-0x1000fff (IMG PT_LOAD[0] at 0x1000000) lies outside --mem-min/--mem-max"
     " 0x2000000-0x2ffffff\n"),
    ("half-of-ram", ["--load-preserve-context", "--args-none", "--mem-min", "0x1000000", "IMG"], 255,
     "more than half of RAM"),
]


@pytest.mark.parametrize("argv, code, message", [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input_leaves_the_loaded_image_alone(run_cli, img, argv, code, message):
    previous = KexecPlan(0x2000000, KEXEC_ARCH_386 | PRESERVE, (Segment(0x2000000, 0x1000, b"old", "old"),))
    kernel = FakeKernel(loaded=True, plans=[previous])
    result = run_cli(I386 + with_image(argv, img), kernel)
    assert_one_line_error(result, code, message.replace("IMG", img))
    assert kernel.calls == [] and kernel.loaded and kernel.plans == [previous]


def test_other_machine_root_missing(run_cli, img, tmp_path):
    result = run_cli(["--arch", "i386", "--machine-root", tmp_path / "nothing", "--dry-run", "--args-none", img])
    assert_one_line_error(result, 255, "kexec: cannot read the memory map: [Errno 2] No such file or directory")


def test_image_of_the_other_arch(run_cli, tiny_elf64):
    result = run_cli(I386 + ["--dry-run", "--load-preserve-context", "--args-none", tiny_elf64])
    assert_one_line_error(result, 255, "EM_X86_64 image, but i386 kernels enter EM_386 images")


@pytest.mark.parametrize("option, output", [("--version", "kexec-py 0.1.0\n"), ("-v", "kexec-py 0.1.0\n")])
def test_version(run_cli, option, output):
    result = run_cli([option])
    assert (result.code, result.out) == (0, output)


def test_help(run_cli):
    result = run_cli(["--help"])
    assert result.code == 0 and result.out.startswith("usage: kexec") and "--load-preserve-context" in result.out
    assert "-h, --help" in result.out


def test_building_the_parser_imports_no_shutil():
    """argparse's HelpFormatter imports shutil (bz2, lzma), a tenth of `kexec -e` in a small
    guest: only --help may make one (-h is added to a group, not to the parser)."""
    code = (f"import sys\nsys.path.insert(0, {REPO!r})\nfrom kexec_py.options import build_parser\n"
            "build_parser().parse_args(['-e'])\nprint('shutil' in sys.modules)")
    # -IS, as the launcher: a site scan may import shutil itself (pyenv's does)
    result = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == "False\n", result.stderr


def test_help_names_each_arch_and_its_image_types():
    """cli keeps kexec_py.arch out of `kexec -e`'s start-up: its help text must still be the table."""
    from kexec_py.arch import ARCHES
    from kexec_py.options import IMAGE_TYPES_HELP

    assert IMAGE_TYPES_HELP == "; ".join(f"{a.name}: {', '.join(a.image_type_names())}" for a in ARCHES.values())


# --- numbers as strtoul(..., 0) reads them --------------------------------------------------------

@pytest.mark.parametrize("spelling", ["0x1001000", "0X1001000", "0x01001000", "16781312", "0100010000"])
def test_entry_spellings(run_cli, img, spelling):
    result = run_cli(I386 + ["--dry-run", "--json", "--entry", spelling, "--load-preserve-context",
                             "--args-none", img])
    assert result.code == 0, result.err
    assert json.loads(result.out)["entry"] == 0x1001000


@pytest.mark.parametrize(
    "mem_min, mem_max",
    [("0x1000000", "0x17fffff"), ("16777216", "25165823"), ("0100000000", "0137777777")],
)
def test_window_spellings(run_cli, img, mem_min, mem_max):
    result = run_cli(I386 + ["--dry-run", "--json", "--mem-min", mem_min, "--mem-max", mem_max,
                             "--load-preserve-context", "--args-none", img])
    assert result.code == 0, result.err
    assert json.loads(result.out)["segments"] == image_segments(img) + [backup(0x1004000, 0x1800000)]


# --- --dry-run: the plan, exactly -----------------------------------------------------------------

def test_dry_run_json_preserve_context(run_cli, img):
    result = run_cli(I386 + ["--dry-run", "--json", "--load-preserve-context", "--args-none", img])
    assert (result.code, result.err) == (0, "")
    assert result.out.count("\n") == 1  # one JSON object, one line
    assert json.loads(result.out) == {
        "entry": 0x1000000,
        "flags": 0x30002,  # KEXEC_PRESERVE_CONTEXT | KEXEC_ARCH_386
        "segments": image_segments(img),
        "backend": "kernel",  # no shim on the recorded host: the kernel's kexec_load, as before
        "syscall": "kexec_load",
    }


def test_dry_run_json_plain_load(run_cli, img):
    result = run_cli(I386 + ["--dry-run", "--json", "-l", "--args-none", img])
    assert json.loads(result.out)["flags"] == 0x30000


@pytest.mark.parametrize(
    "window, segments",
    [
        (["--mem-min", "0x1000000", "--mem-max", "0x17fffff"], lambda img: image_segments(img) + [backup(0x1004000, 0x1800000)]),
        # --mem-max alone: from 0, page 0 and the reserved 0x9fc00-0xfffff left out
        (["--mem-max", "0x1ffffff"], lambda img: [backup(0x1000, 0x9F000), backup(0x100000, 0x1000000),
                                                   *image_segments(img), backup(0x1004000, 0x2000000)]),
        # an unaligned --mem-max: the window clamps inward
        (["--mem-min", "0x1000000", "--mem-max", "0x1004fff"], lambda img: image_segments(img) + [backup(0x1004000, 0x1005000)]),
        (["--mem-min", "0x1000000", "--mem-max", "0x1004ffe"], image_segments),
    ],
    ids=["window", "mem-max-only", "one-page", "less-than-a-page"],
)
def test_dry_run_json_backup_segments(run_cli, img, window, segments):
    result = run_cli(I386 + ["--dry-run", "--json", *window, "--load-preserve-context", "--args-none", img])
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"entry": 0x1000000, "flags": 0x30002, "segments": segments(img),
                                      "backend": "kernel", "syscall": "kexec_load"}


HALF_OF_HOST = "but the kernel refuses (EINVAL) more than half of RAM (12342042 KiB of 24684084 KiB): narrow --mem-min/--mem-max"


@pytest.mark.parametrize(
    "mem_max, message",
    [
        # the backup above 4 GiB alone (0x100000000-0x63fffffff) is more than half of 24684084 KiB
        ("0x63fffffff", f"kexec: segment 0x100000000-0x63fffffff needs 22020096 KiB {HALF_OF_HOST}\n"),
        # each piece is below half, the sum (3129328 + 16 + 10485760 KiB) is not
        ("0x37fffffff", f"kexec: the image with its backup needs 13615104 KiB {HALF_OF_HOST}\n"),
    ],
)
def test_dry_run_explains_half_of_ram(run_cli, img, mem_max, message):
    result = run_cli(I386 + ["--dry-run", "--json", "--mem-min", "0x1000000", "--mem-max", mem_max,
                             "--load-preserve-context", "--args-none", img])
    assert_one_line_error(result, 255, message)
    assert result.err == message


# The QEMU guests the VM tests boot (recorded trees): kexec-tools' habit of --mem-max = top of
# RAM fails there with a bare 255; kexec-py says why and what to do.
QEMU_PLANS = [
    # id, tree, window, expected segments or the error after "kexec: "
    ("512M-48MiB", "qemu-i386-512M", ["--mem-min", "0x1000000", "--mem-max", "0x2ffffff"],
     lambda img: image_segments(img) + [backup(0x1004000, 0x3000000)]),
    ("512M-all-ram", "qemu-i386-512M", ["--mem-max", "0x1ffdffff"],
     "segment 0x1004000-0x1ffdffff needs 507760 KiB but the kernel refuses (EINVAL) more than half of RAM"
     " (257544 KiB of 515088 KiB): narrow --mem-min/--mem-max"),
    ("512M-sum", "qemu-i386-512M", ["--mem-max", "0xfffffff"],
     "the image with its backup needs 261752 KiB but the kernel refuses (EINVAL) more than half of RAM"
     " (257544 KiB of 515088 KiB): narrow --mem-min/--mem-max"),
    ("128M-48MiB", "qemu-i386-128M", ["--mem-max", "0x2ffffff"],
     lambda img: [backup(0x1000, 0x9F000), backup(0x100000, 0x1000000), *image_segments(img),
                  backup(0x1004000, 0x3000000)]),
    ("128M-all-ram", "qemu-i386-128M", ["--mem-max", "0x7fdffff"],
     "segment 0x1004000-0x7fdffff needs 114544 KiB but the kernel refuses (EINVAL) more than half of RAM"
     " (62616 KiB of 125232 KiB): narrow --mem-min/--mem-max"),
    ("128M-sum", "qemu-i386-128M", ["--mem-max", "0x47fffff"],
     "the image with its backup needs 73336 KiB but the kernel refuses (EINVAL) more than half of RAM"
     " (62616 KiB of 125232 KiB): narrow --mem-min/--mem-max"),
]


@pytest.mark.parametrize("tree, window, expected", [q[1:] for q in QEMU_PLANS], ids=[q[0] for q in QEMU_PLANS])
def test_dry_run_on_recorded_qemu_guests(run_cli, img, tree, window, expected):
    argv = ["--arch", "i386", "--machine-root", recorded_tree(tree), "--dry-run", "--json", *window,
            "--load-preserve-context", "--args-none", img]
    result = run_cli(argv)
    if isinstance(expected, str):
        assert_one_line_error(result, 255, expected)
        assert result.err == f"kexec: {expected}\n"
    else:
        assert (result.code, result.err) == (0, "")
        assert json.loads(result.out) == {"entry": 0x1000000, "flags": 0x30002, "segments": expected(img),
                                          "backend": "kernel", "syscall": "kexec_load"}


def test_dry_run_text(run_cli, img):
    result = run_cli(I386 + ["--dry-run", "--mem-min", "0x1000000", "--mem-max", "0x17fffff",
                             "--load-preserve-context", "--args-none", img])
    assert result.code == 0
    assert result.out == (
        "entry       = 0x1000000\n"
        "flags       = 0x30002 (KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386)\n"
        "nr_segments = 3\n"
        f"segment[0]: mem=0x01000000 memsz=0x1000 bufsz=0x2  (0x1000000-0x1000fff)  {img} PT_LOAD[0] at 0x1000000\n"
        f"segment[1]: mem=0x01001000 memsz=0x3000 bufsz=0x4  (0x1001000-0x1003fff)  {img} PT_LOAD[1] at 0x1001000\n"
        f"segment[2]: mem=0x01004000 memsz=0x7fc000 bufsz=0x0  (0x1004000-0x17fffff)  {BACKUP}\n"
        "syscall: kexec_load: i386 has no kexec_file_load\n"
        "backend: kernel (kexec_load): CONFIG_KEXEC_JUMP unknown: kexec_load first, the kexec_jump module if"
        " the kernel refuses (EINVAL)\n"
    )


# --- end to end: python3 -m kexec_py ---------------------------------------------------------------

@pytest.mark.parametrize(
    "argv, code",
    [
        (["--dry-run", "--json", "--load-preserve-context", "--args-none", "IMG"], 0),
        (["--dry-run", "--json", "--load-preserve-context", "--args-none", "/nonexistent/payload"], 255),
        (["--dry-run", "--entry", "0xzz", "--args-none", "IMG"], 1),
    ],
    ids=["plan", "missing-image", "bad-number"],
)
def test_python_m_kexec_py(img, argv, code):
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-m", "kexec_py", *I386, *with_image(argv, img)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    if code == 0:
        assert result.stderr == ""
        assert json.loads(result.stdout) == {"entry": 0x1000000, "flags": 0x30002, "segments": image_segments(img),
                                             "backend": "kernel", "syscall": "kexec_load"}
    else:
        assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("kexec: ")


# What a payload load imports of kexec_py, besides the kernel interface (kexec_py.kernel and
# its cffi module, faked here). Each module costs about 2 ms in the i386 bench guest before
# it does anything (README, "Where the time goes"): one more on this path must earn its place.
PAYLOAD_LOAD_MODULES = ["kexec_py", "kexec_py.arch", "kexec_py.backend", "kexec_py.cli", "kexec_py.elf_headers",
                        "kexec_py.errors", "kexec_py.image_file", "kexec_py.loaders", "kexec_py.loaders.elf_x86",
                        "kexec_py.machine_files", "kexec_py.memmap", "kexec_py.options", "kexec_py.planner",
                        "kexec_py.ranges", "kexec_py.segments", "kexec_py.value"]


def test_a_payload_load_imports_only_its_own_modules(img, tmp_path):
    """Start-up is part of the product. `kexec --load-preserve-context --args-none` on a
    machine without the kexec_jump module (no /dev/kexec_jump, no module tree for its
    release), in a fresh interpreter started as bin/kexec starts it (-IS), imports
    PAYLOAD_LOAD_MODULES of kexec_py (not the shim's, the syscall choice's or the command
    line's) and none of: pyelftools (0.5-0.8 s alone in a small guest: kexec_py.elf_headers
    reads payloads), pyroute2 (only `kexec -e` with interfaces up), dataclasses with
    inspect and typing (a fifth of a payload load there: kexec_py.value), argparse with
    re and gettext (more than the load's whole budget there: kexec_py.options reads the
    common forms itself)."""
    import shutil

    root = tmp_path / "machine"
    shutil.copytree(HOST_TREE, root)
    (root / "proc/sys/kernel").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.192\n")
    argv = ["--arch", "i386", "--machine-root", str(root), "--load-preserve-context", "--args-none", img]
    code = (f"import sys\nsys.path.insert(0, {REPO!r})\nfrom kexec_py.cli import main\n"
            "class K:\n"
            "    name = 'kexec_load'\n"
            "    def kexec_load(self, plan): print(hex(plan.flags), len(plan.segments))\n"
            f"code = main({argv!r}, kernel_factory=lambda a: K())\n"
            "print(sorted({m.split('.')[0] for m in sys.modules}"
            " & {'elftools', 'pyroute2', 'pr2modules', 'dataclasses', 'inspect', 'typing', 'argparse'}))\n"
            "print(code, *sorted(m for m in sys.modules if m.startswith('kexec_py')))")
    result = subprocess.run([sys.executable, "-IS", "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    loaded, others, imported = result.stdout.splitlines()[-3:]
    assert loaded == f"{KEXEC_ARCH_386 | PRESERVE:#x} 2"  # its two PT_LOADs
    assert others == "[]"
    assert imported.split() == ["0", *PAYLOAD_LOAD_MODULES]
