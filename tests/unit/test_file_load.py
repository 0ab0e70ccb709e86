"""-s/-c/-a and -p through kexec_file_load: the choice of system call (a pure table,
kexec-tools' kexec.c rules), the values it gets, and the CLI around it with a fake kernel."""

import errno as E
import json
import os

import pytest

from kexec_py.backend import FILE, LOAD, LOAD_FALLBACK, UNLOAD_FALLBACK, choose_syscall
from kexec_py.errors import UsageError
from kexec_py.file_load import FileLoad, file_load
from test_bzimage import bzimage_bytes
from unit_support import FakeKernel, FakeShim, write_tree

QEMU_RAM = [(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x1FFDFFFF, "System RAM")]

CHOICES = [
    # id, option, arch, keywords: first syscall, errnos that fall back to kexec_load
    ("auto-bzimage", "auto", "x86_64", {}, FILE, LOAD_FALLBACK),
    ("auto-elf", "auto", "x86_64", dict(bzimage=False), LOAD, frozenset()),
    ("auto-preserve", "auto", "x86_64", dict(preserve_context=True), LOAD, frozenset()),
    ("auto-jump-back", "auto", "x86_64", dict(jump_back=True), LOAD, frozenset()),
    ("auto-unload", "auto", "x86_64", dict(unload=True), FILE, UNLOAD_FALLBACK),
    ("auto-i386", "auto", "i386", {}, LOAD, frozenset()),
    ("file", "file", "x86_64", {}, FILE, frozenset()),
    ("file-elf", "file", "x86_64", dict(bzimage=False), FILE, frozenset()),  # -s: the kernel says ENOEXEC
    ("file-unload", "file", "x86_64", dict(unload=True), FILE, frozenset()),
    ("load", "load", "x86_64", {}, LOAD, frozenset()),
    ("load-i386", "load", "i386", {}, LOAD, frozenset()),
    ("load-preserve", "load", "x86_64", dict(preserve_context=True), LOAD, frozenset()),
]


@pytest.mark.parametrize("option, arch, what, first, fallback", [c[1:] for c in CHOICES], ids=[c[0] for c in CHOICES])
def test_choose_syscall(option, arch, what, first, fallback):
    choice = choose_syscall(option, arch, **what)
    assert (choice.first, choice.fallback) == (first, fallback)


def test_fallback_errnos_are_kexec_tools_efallback():
    assert LOAD_FALLBACK == {E.ENOSYS, E.EINVAL, E.ENOEXEC, E.EOPNOTSUPP}
    assert UNLOAD_FALLBACK == {E.ENOSYS}


@pytest.mark.parametrize("arch, what, message", [
    ("i386", {}, "-s: kexec_file_load exists on x86_64 only; an i386 kernel has none (use -c or -a)"),
    ("i386", dict(unload=True), "-s: kexec_file_load exists on x86_64 only"),
    ("x86_64", dict(preserve_context=True), "-s: kexec_file_load has no preserve-context flag;"
     " --load-preserve-context needs kexec_load or the kexec_jump module (drop -s)"),
    ("x86_64", dict(jump_back=True), "-s: kexec_file_load has no preserve-context flag; --load-jump-back-helper"),
])
def test_file_syscall_refused(arch, what, message):
    with pytest.raises(UsageError) as refused:
        choose_syscall("file", arch, **what)
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("initrd, command_line, crash, expected", [
    ("/i", "a b", False, FileLoad("/k", "/i", b"a b\0", 0)),
    (None, "a", False, FileLoad("/k", None, b"a\0", 4)),  # KEXEC_FILE_NO_INITRAMFS
    ("/i", None, True, FileLoad("/k", "/i", b"\0", 2)),  # KEXEC_FILE_ON_CRASH
    (None, "\udcff", True, FileLoad("/k", None, b"\xff\0", 6)),  # bytes as given
])
def test_file_load_values(initrd, command_line, crash, expected):
    assert file_load("/k", initrd, command_line, crash) == expected


# --- the CLI ------------------------------------------------------------------------------------

@pytest.fixture
def machine(tmp_path):
    """A recorded x86_64 machine: RAM, a command line, and (crash=True) a crashkernel= reservation."""
    def make(crash=False):
        iomem = "00000000-00000fff : Reserved\n00100000-1ffdffff : System RAM\n"
        if crash:
            iomem += "  15000000-1cffffff : Crash kernel\n"
        root = write_tree(tmp_path / ("crash" if crash else "plain"), sysfs=QEMU_RAM, iomem=iomem,
                          meminfo_kb=512 * 1024)
        (tmp_path / ("crash" if crash else "plain") / "proc/cmdline").write_text(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 crashkernel=128M\n")
        return root
    return make


@pytest.fixture
def bz(tmp_path):
    path = tmp_path / "bzImage"
    path.write_bytes(bzimage_bytes(version=0x020F))
    return str(path)


def x86_64(root, *argv):
    return ["--arch", "x86_64", "--machine-root", root, *argv]


@pytest.mark.parametrize("argv, crash, flags", [
    (["-l", "--initrd", "INITRD", "--append", "tag=42"], False, 0),
    (["-s", "-l", "--append", "tag=42"], False, 4),
    (["-p", "--initrd", "INITRD", "--append", "tag=42"], True, 2),
    (["-s", "-p", "--append", "tag=42"], True, 6),
    (["-l", "-p", "--append", "tag=42"], True, 6),
])
def test_bzimage_goes_to_kexec_file_load(run_cli, machine, bz, tmp_path, argv, crash, flags):
    (tmp_path / "initrd").write_bytes(b"initrd")
    kernel = FakeKernel()
    argv = [str(tmp_path / "initrd") if a == "INITRD" else a for a in argv]
    result = run_cli(x86_64(machine(crash=crash), *argv, bz), kernel)
    assert (result.code, result.err, kernel.calls) == (0, "", ["kexec_file_load"])
    [load] = kernel.plans
    cmdline = b"tag=42 maxcpus=1 reset_devices irqpoll\0" if crash else b"tag=42\0"  # crash.crash_command_line
    assert load == FileLoad(bz, str(tmp_path / "initrd") if flags in (0, 2) else None, cmdline, flags)


@pytest.mark.parametrize("option", [[], ["-s"]])
def test_kexec_file_load_opens_the_image_once(run_cli, machine, bz, monkeypatch, option):
    """-a probes the image to choose the system call; the setup header check before
    kexec_file_load reads the same mapping."""
    from kexec_py.image_file import ImageFile

    opened = []
    real_open = ImageFile.open.__func__
    monkeypatch.setattr(ImageFile, "open", classmethod(lambda cls, path: opened.append(path) or real_open(cls, path)))
    kernel = FakeKernel()
    assert run_cli(x86_64(machine(), *option, "-l", bz), kernel).code == 0
    assert (kernel.calls, opened) == (["kexec_file_load"], [bz])


def test_a_new_kexec_file_load_replaces_the_shims_image(run_cli, machine, bz):
    log = []
    kernel, shim = FakeKernel(calls=log), FakeShim(loaded=True, present_=True, calls=log)
    assert run_cli(x86_64(machine(), "-l", bz), kernel, shim).code == 0
    assert log == ["kexec_file_load", "shim.kexec_loaded", "shim.kexec_unload"]


def test_a_crash_kernel_leaves_the_shims_image_alone(run_cli, machine, bz):
    log = []
    kernel, shim = FakeKernel(calls=log), FakeShim(loaded=True, present_=True, calls=log)
    assert run_cli(x86_64(machine(crash=True), "-p", bz), kernel, shim).code == 0
    assert log == ["kexec_file_load"]


@pytest.mark.parametrize("option", ["-a", "-s"])
@pytest.mark.parametrize("err, falls_back", [(E.ENOSYS, True), (E.ENOEXEC, True), (E.EINVAL, True),
                                             (E.EOPNOTSUPP, True), (E.EKEYREJECTED, False), (E.EPERM, False)])
def test_auto_falls_back_as_kexec_tools(run_cli, machine, bz, option, err, falls_back):
    """-a: on kexec-tools' EFALLBACK errnos, kexec_load of our own plan (which on x86_64 refuses a
    bzImage until kexec-py has a 64-bit purgatory: the one line says both); -s: never."""
    kernel = FakeKernel(fail={"kexec_file_load": err})
    result = run_cli(x86_64(machine(), option, "-l", bz), kernel)
    assert (result.code, result.err.count("\n"), kernel.calls) == (255, 1, ["kexec_file_load"])
    assert result.err.startswith(f"kexec: kexec_file_load failed: {os.strerror(err)}"), result.err
    assert ("; kexec_load instead: " in result.err) == (falls_back and option == "-a"), result.err


def test_without_crashkernel_p_fails_with_one_line(run_cli, machine, bz):
    kernel = FakeKernel()
    result = run_cli(x86_64(machine(), "-p", bz), kernel)
    assert (result.code, kernel.calls) == (1, [])
    assert result.err == ("kexec: no memory is reserved for a crash kernel: boot this kernel with crashkernel=SIZE"
                          " (e.g. crashkernel=256M) before kexec -p\n")


@pytest.mark.parametrize("argv, expected", [
    (["-l"], {"syscall": FILE, "fallback": "kexec_load", "flags": 4, "cmdline": "console=ttyS0 crashkernel=128M"}),
    (["-s", "-l"], {"syscall": FILE, "fallback": None, "flags": 4, "cmdline": "console=ttyS0 crashkernel=128M"}),
    # a crash kernel: without crashkernel=, with what kdump needs; the kernel adds elfcorehdr=
    (["-p"], {"syscall": FILE, "fallback": "kexec_load", "flags": 6,
              "cmdline": "console=ttyS0 maxcpus=1 reset_devices irqpoll"}),
])
def test_dry_run_json_names_the_syscall(run_cli, machine, bz, argv, expected):
    result = run_cli(x86_64(machine(crash=True), "--dry-run", "--json", "--reuse-cmdline", *argv, bz))
    assert (result.code, result.err) == (0, "")
    plan = json.loads(result.out)
    assert {k: plan[k] for k in expected} == expected
    assert (plan["kernel"], plan["initrd"], plan["cmdline_len"]) == (bz, None, len(plan["cmdline"]) + 1)


def test_dry_run_json_c_is_kexec_load(run_cli, machine, tiny_elf64):
    result = run_cli(x86_64(machine(), "--dry-run", "--json", "-l", "--args-none", tiny_elf64))
    assert json.loads(result.out)["syscall"] == LOAD


@pytest.mark.parametrize("argv, message", [
    (["-s", "-t", "bzImage"], "kexec: kexec_file_load takes a bzImage as it is: -t apply to kexec_load (-c)\n"),
    (["-s", "--load-preserve-context"], "kexec: -s: kexec_file_load has no preserve-context flag;"
     " --load-preserve-context needs kexec_load or the kexec_jump module (drop -s)\n"),
    (["-s", "-c"], "argument -c/--kexec-syscall: not allowed with argument -s/--kexec-file-syscall"),
])
def test_file_syscall_usage_errors(run_cli, machine, bz, argv, message):
    kernel = FakeKernel()
    result = run_cli(x86_64(machine(), *argv, bz), kernel)
    assert (result.code, kernel.calls) == (1, [])
    assert message in result.err and result.err.count("\n") == 1


def test_i386_s_is_one_line(run_cli, bz, tmp_path):
    root = write_tree(tmp_path / "m", sysfs=QEMU_RAM, meminfo_kb=512 * 1024)
    result = run_cli(["--arch", "i386", "--machine-root", root, "-s", "-l", bz], FakeKernel())
    assert (result.code, result.err) == (1, "kexec: -s: kexec_file_load exists on x86_64 only; an i386 kernel has"
                                            " none (use -c or -a)\n")


def test_bad_bzimage_is_refused_before_the_kernel_sees_it(run_cli, machine, tmp_path):
    path = tmp_path / "old"
    path.write_bytes(bzimage_bytes(version=0x0204))
    kernel = FakeKernel()
    result = run_cli(x86_64(machine(), "-l", str(path)), kernel)
    assert (result.code, kernel.calls) == (255, []) and "protocol" in result.err and result.err.count("\n") == 1


# --- kdump-tools: what kdump-config (1.8.1, Debian bookworm) runs -------------------------------

# its --command-line: /proc/cmdline without crashkernel= (its own sed), then KDUMP_CMDLINE_APPEND's default
KDUMP_LINE = ("BOOT_IMAGE=/vmlinuz console=ttyS0 "
              "reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb")
KDUMP_LOAD = ["-p", f"--command-line={KDUMP_LINE}", "--initrd=INITRD"]


@pytest.mark.parametrize("argv", [
    KDUMP_LOAD,  # kdump-config load
    ["-s", *KDUMP_LOAD],  # under Secure Boot or securelevel
    ["-p", "--elf64-core-headers", *KDUMP_LOAD[1:]],  # KDUMP_KEXEC_ARGS, kdump-tools' x86 example
], ids=["load", "load-secure-boot", "load-kdump-kexec-args"])
def test_kdump_config_load(run_cli, machine, bz, tmp_path, argv):
    """The line goes to the kernel as given: it already has what a crash kernel needs (nr_cpus=1
    stands for maxcpus=1), and the kernel adds elfcorehdr=."""
    (tmp_path / "initrd").write_bytes(b"initrd")
    kernel = FakeKernel()
    argv = [f"--initrd={tmp_path / 'initrd'}" if a == "--initrd=INITRD" else a for a in argv]
    result = run_cli(x86_64(machine(crash=True), *argv, bz), kernel)
    assert (result.code, result.err, kernel.calls) == (0, "", ["kexec_file_load"])
    assert kernel.plans == [FileLoad(bz, str(tmp_path / "initrd"), KDUMP_LINE.encode() + b"\0", 2)]


@pytest.mark.parametrize("argv", [["-p", "-u"], ["-s", "-p", "-u"]], ids=["unload", "unload-secure-boot"])
def test_kdump_config_unload(run_cli, argv):
    kernel = FakeKernel(crash_loaded=True)
    result = run_cli(["--arch", "x86_64", *argv], kernel)
    assert (result.code, result.err, kernel.calls) == (0, "", ["kexec_file_unload"])
    assert kernel.unload_flags == [3]  # KEXEC_FILE_UNLOAD | KEXEC_FILE_ON_CRASH


def test_elf32_core_headers_take_kexec_load(run_cli, machine, tmp_path, purgatory64_ro, monkeypatch):
    """-a: the kernel's own header (kexec_file_load) is ELF64, so ELF32 is kexec-py's, through kexec_load."""
    monkeypatch.setenv("KEXEC_PY_PURGATORY", purgatory64_ro)
    bz = tmp_path / "bzImage64"
    bz.write_bytes(bzimage_bytes(xloadflags=1, relocatable=1, kernel_alignment=0x1000000))
    root = machine(crash=True)
    cpu = os.path.join(root, "sys/devices/system/cpu/cpu0")
    os.makedirs(cpu)
    for name, value in (("crash_notes", "1f5e3000"), ("crash_notes_size", "428")):
        with open(os.path.join(cpu, name), "w") as f:
            f.write(value + "\n")
    result = run_cli(x86_64(root, "--dry-run", "--json", "-p", "--elf32-core-headers", str(bz)))
    assert (result.code, result.err) == (0, "")
    assert json.loads(result.out)["syscall"] == LOAD


@pytest.mark.parametrize("argv, message", [
    (["-s", "-p", "--elf32-core-headers"], "kexec: with kexec_file_load the kernel writes the crash kernel's ELF"
     " core header, as ELF64: --elf32-core-headers needs kexec_load (-c)\n"),
    (["-l", "--elf64-core-headers"], "kexec: --elf64-core-headers shapes a crash kernel's ELF core header:"
     " it goes with -p\n"),
    (["-p", "-u", "--elf32-core-headers"], "kexec: --elf32-core-headers shapes a crash kernel's ELF core header:"
     " it goes with -p\n"),
    (["-p", "--elf32-core-headers", "--elf64-core-headers"],
     "argument --elf64-core-headers: not allowed with argument --elf32-core-headers"),
])
def test_core_header_usage_errors(run_cli, machine, bz, argv, message):
    kernel = FakeKernel()
    result = run_cli(x86_64(machine(crash=True), *argv, bz), kernel)
    assert (result.code, kernel.calls) == (1, [])
    assert message in result.err and result.err.count("\n") == 1
