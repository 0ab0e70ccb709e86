"""The kernel interface: errno -> message tables, /sys/kernel/kexec_*loaded, and one
honest call of the real cffi binding without privileges."""

import errno as E
import importlib.util
import os
import struct
import subprocess
import sys
import textwrap

import pytest

from kexec_py import kernel
from kexec_py.errors import KernelError, KexecError
from kexec_py.kernel import REBOOT_ERRORS, SYSCALL_NUMBERS, load_error_message
from unit_support import REPO

PRESERVE_386 = 0x30002
PLAIN_386 = 0x30000


@pytest.mark.parametrize(
    "err, flags, words",
    [
        # a preserve-context load refused with EINVAL: the kernel lacks KEXEC_JUMP
        (E.EINVAL, PRESERVE_386, ["CONFIG_KEXEC_JUMP", "--load-preserve-context", "EINVAL"]),
        (E.EINVAL, 0x2, ["CONFIG_KEXEC_JUMP"]),
        (E.EINVAL, PLAIN_386, ["rejected the segment list", "EINVAL"]),
        (E.EPERM, PRESERVE_386, ["root", "CAP_SYS_BOOT", "kexec_load_disabled", "lockdown"]),
        (E.EACCES, PLAIN_386, ["IMA", "secure boot"]),
        (E.EADDRNOTAVAIL, PLAIN_386, ["destination"]),
        (E.EBUSY, PRESERVE_386, ["in progress", "try again"]),
        (E.ENOMEM, PLAIN_386, ["could not allocate pages"]),
        (E.EFAULT, PLAIN_386, ["kexec-py bug"]),
        (E.ENOSYS, PRESERVE_386, ["no kexec_load", "CONFIG_KEXEC)"]),
        (E.E2BIG, PLAIN_386, [os.strerror(E.E2BIG)]),  # anything else: the C library's words
    ],
)
def test_load_error_message(err, flags, words):
    message = load_error_message(err, flags)
    for word in words:
        assert word in message


def test_only_preserve_context_einval_blames_kexec_jump():
    assert "KEXEC_JUMP" not in load_error_message(E.EINVAL, PLAIN_386)
    assert "KEXEC_JUMP" not in load_error_message(E.EINVAL, PLAIN_386 | 0x1)  # KEXEC_ON_CRASH
    assert all("KEXEC_JUMP" not in load_error_message(err, PRESERVE_386)
               for err in (E.EPERM, E.EBUSY, E.ENOMEM, E.EADDRNOTAVAIL, E.ENOSYS))


@pytest.mark.parametrize(
    "err, words",
    [
        (E.EPERM, ["root", "kexec_load_disabled", "lockdown"]),
        (E.EINVAL, ["no kexec image is loaded"]),
        (E.EBUSY, ["could not freeze"]),
    ],
)
def test_reboot_errors(err, words):
    for word in words:
        assert word in REBOOT_ERRORS[err]


@pytest.mark.parametrize(
    "bits, numbers",
    [(32, {"kexec_load": 283, "reboot": 88}), (64, {"kexec_load": 246, "reboot": 169, "kexec_file_load": 320})],
)
def test_syscall_numbers(bits, numbers):
    assert SYSCALL_NUMBERS[bits] == numbers  # i386 and x86_64 tables (arch/x86/entry/syscalls)


# --- /sys/kernel/kexec_loaded, read by the real class (no syscall) ------------------------------

def _linux_kernel(root):
    try:
        return kernel.LinuxKernel(str(root))
    except ImportError:
        pytest.fail(BUILD_HINT)


@pytest.mark.parametrize(
    "files, crash, loaded",
    [
        ({"kexec_loaded": "1\n", "kexec_crash_loaded": "0\n"}, False, True),
        ({"kexec_loaded": "0\n", "kexec_crash_loaded": "1\n"}, False, False),
        ({"kexec_loaded": "0\n", "kexec_crash_loaded": "1\n"}, True, True),
    ],
)
def test_kexec_loaded_reads_sysfs(tmp_path, files, crash, loaded):
    (tmp_path / "sys" / "kernel").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "sys" / "kernel" / name).write_text(text)
    assert _linux_kernel(tmp_path).kexec_loaded(crash=crash) is loaded


def test_kexec_loaded_without_kexec_support(tmp_path):
    with pytest.raises(KernelError, match=r"cannot read .*kernel/kexec_loaded: No such file or directory"
                                          r" \(no kexec support\?\)") as failed:
        _linux_kernel(tmp_path).kexec_loaded()
    assert failed.value.errno == E.ENOENT


# --- the real binding ---------------------------------------------------------------------------

BUILD_HINT = (
    "kexec_py/_kexec_ffi.py (the generated cffi module) is missing: build it with"
    " `python3 kexec_py/_ffi_build.py` from the repository root, or `pip install -e .`"
)

# The child imports everything first (the interpreter may live where nobody cannot read,
# e.g. /root/.pyenv), then gives up root for good, then makes the calls: kexec_load and
# the unload form of it. reboot_kexec is never called.
UNPRIVILEGED_CALL = textwrap.dedent(
    """
    import errno, os
    from kexec_py.errors import KernelError
    from kexec_py.kernel import LinuxKernel
    from kexec_py.segments import KexecPlan, Segment
    import kexec_py._kexec_ffi

    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)  # nobody: every capability is dropped
    with open("/proc/self/status") as f:
        cap_eff = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
    assert os.geteuid() != 0 and not cap_eff & (1 << 22), "still holds CAP_SYS_BOOT"

    kernel = LinuxKernel()
    payload = b"\\xeb\\xfe" + bytes(14)  # jmp .
    plan = KexecPlan(0x1000000, 0x30002, (Segment(0x1000000, 0x1000, payload, "tiny"),))
    for name, call in (("load", lambda: kernel.kexec_load(plan)), ("unload", lambda: kernel.kexec_unload(0x30000))):
        try:
            call()
        except KernelError as e:
            print(name, errno.errorcode.get(e.errno, e.errno), e, sep="|")
        else:
            print(name, "no error", sep="|")
    """
)


def test_real_binding_without_privileges_raises_kernel_error():
    if importlib.util.find_spec("kexec_py._kexec_ffi") is None:
        pytest.fail(BUILD_HINT)
    result = subprocess.run([sys.executable, "-c", UNPRIVILEGED_CALL], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"the child crashed:\n{result.stderr}"
    lines = [line.split("|") for line in result.stdout.splitlines()]
    assert [line[0] for line in lines] == ["load", "unload"]
    messages = {
        "EPERM": "kexec_load failed: " + kernel.NOT_ROOT,  # a kexec kernel: not root, so no CAP_SYS_BOOT
        "ENOSYS": "kexec_load failed: " + kernel.LOAD_ERRORS[E.ENOSYS],  # no CONFIG_KEXEC (as on the CI host)
    }
    for name, err, message in lines:
        assert err in messages, f"{name}: unexpected {err}: {message}"
        assert message == messages[err]


# --- the syscalls LinuxKernel makes, through a recording libc -----------------------------------

# include/uapi/linux/reboot.h, and arch/x86/entry/syscalls/syscall_{32,64}.tbl: written out
# here, not imported, so that a changed constant in kexec_py.kernel fails these tests.
UAPI_REBOOT = {"LINUX_REBOOT_MAGIC1": 0xFEE1DEAD, "LINUX_REBOOT_MAGIC2": 0x28121969,
               "LINUX_REBOOT_CMD_KEXEC": 0x45584543}
SYSCALLS = {32: {"kexec_load": 283, "reboot": 88}, 64: {"kexec_load": 246, "reboot": 169}}


@pytest.mark.parametrize("name, value", UAPI_REBOOT.items())
def test_reboot_constants_are_the_kernels(name, value):
    assert getattr(kernel, name) == value


class RecordingLibc:
    """libc's syscall(), recorded as plain integers and bytes; fails with errno err
    (0: succeeds). The kexec_load segment array is read while the call lasts, as the
    kernel would copy it."""

    def __init__(self, ffi, err=0):
        self.ffi, self.err, self.calls = ffi, err, []

    def syscall(self, number, *args):
        ffi = self.ffi
        values = [int(ffi.cast("uintptr_t", a)) for a in args]
        call = {"number": int(number), "args": values}
        if len(args) > 2 and ffi.typeof(args[2]).kind == "array":  # kexec_load's segments, not a number
            segments = args[2]
            call["segments"] = [
                (ffi.buffer(s.buf, s.bufsz)[:] if s.bufsz else b"", int(ffi.cast("uintptr_t", s.mem)), s.memsz)
                for s in (segments[i] for i in range(values[1]))
            ]
        if len(args) == 5 and ffi.typeof(args[3]).kind == "array":  # kexec_file_load: what the fds and cmdline are
            call["files"] = [os.readlink(f"/proc/self/fd/{fd}") if fd < 1 << 31 else int(ffi.cast("long", fd))
                             for fd in values[:2]]
            call["cmdline"] = ffi.buffer(args[3], values[2])[:]
        self.calls.append(call)
        ffi.errno = self.err
        return -1 if self.err else 0


@pytest.fixture
def recording_kernel(monkeypatch, tmp_path):
    """recording_kernel(err=0, bits=64) -> (LinuxKernel over a RecordingLibc, the libc).
    bits makes the kernel pick that ABI's syscall numbers; root is an empty tree, so an
    EPERM is explained by the list of what to check."""
    if importlib.util.find_spec("kexec_py._kexec_ffi") is None:
        pytest.fail(BUILD_HINT)
    from kexec_py._kexec_ffi import ffi

    def make(err=0, bits=64):
        libc = RecordingLibc(ffi, err)
        monkeypatch.setattr(kernel, "_LIBC", (ffi, libc))
        real = struct.calcsize
        with monkeypatch.context() as patched:  # only while LinuxKernel picks its table
            patched.setattr(kernel.struct, "calcsize", lambda fmt: bits // 8 if fmt == "P" else real(fmt))
            return kernel.LinuxKernel(str(tmp_path)), libc

    return make


@pytest.mark.parametrize("bits", [32, 64])
def test_reboot_kexec_is_the_reboot_syscall_with_the_kexec_command(recording_kernel, bits):
    linux, libc = recording_kernel(bits=bits)
    linux.reboot_kexec()
    assert libc.calls == [{"number": SYSCALLS[bits]["reboot"],
                           "args": [0xFEE1DEAD, 0x28121969, 0x45584543, 0]}]


@pytest.mark.parametrize("bits", [32, 64])
def test_kexec_load_passes_entry_segments_and_flags(recording_kernel, bits):
    from kexec_py.segments import KexecPlan, Segment

    linux, libc = recording_kernel(bits=bits)
    plan = KexecPlan(0x1000010, PRESERVE_386, (Segment(0x1000000, 0x2000, b"\xeb\xfe", "text"),
                                               Segment(0x3000000, 0x1000, b"", "backup")))
    linux.kexec_load(plan)
    assert libc.calls == [{"number": SYSCALLS[bits]["kexec_load"], "args": [0x1000010, 2, libc.calls[0]["args"][2],
                                                                            PRESERVE_386],
                           "segments": [(b"\xeb\xfe", 0x1000000, 0x2000), (b"", 0x3000000, 0x1000)]}]
    assert libc.calls[0]["args"][2] != 0


def test_kexec_unload_is_a_load_of_no_segments(recording_kernel):
    linux, libc = recording_kernel()
    linux.kexec_unload(PLAIN_386)
    assert libc.calls == [{"number": SYSCALLS[64]["kexec_load"], "args": [0, 0, 0, PLAIN_386]}]


# --- kexec_file_load ------------------------------------------------------------------------------

FILE_LOAD_CASES = [
    # id, initrd?, command line, crash: the files behind the fds, cmdline bytes (with the NUL), flags
    ("plain", True, "console=ttyS0 tag=1", False, ["kernel", "initrd"], b"console=ttyS0 tag=1\0", 0),
    ("no-initrd", False, "root=/dev/vda", False, ["kernel", -1], b"root=/dev/vda\0", 4),
    ("no-cmdline", True, None, False, ["kernel", "initrd"], b"\0", 0),
    ("crash", True, "irqpoll", True, ["kernel", "initrd"], b"irqpoll\0", 2),
    ("crash-no-initrd", False, "", True, ["kernel", -1], b"\0", 6),
]


@pytest.mark.parametrize("with_initrd, command_line, crash, files, cmdline, flags", [c[1:] for c in FILE_LOAD_CASES],
                         ids=[c[0] for c in FILE_LOAD_CASES])
def test_kexec_file_load_passes_fds_cmdline_and_flags(recording_kernel, tmp_path, with_initrd, command_line, crash,
                                                      files, cmdline, flags):
    from kexec_py.file_load import file_load

    for name in ("kernel", "initrd"):
        (tmp_path / name).write_bytes(name.encode())
    linux, libc = recording_kernel()
    load = file_load(str(tmp_path / "kernel"), str(tmp_path / "initrd") if with_initrd else None, command_line, crash)
    before = set(os.listdir("/proc/self/fd"))
    linux.kexec_file_load(load)
    [call] = libc.calls
    assert call["number"] == 320
    assert call["files"] == [str(tmp_path / f) if isinstance(f, str) else f for f in files]
    assert (call["args"][2], call["cmdline"], call["args"][4]) == (len(cmdline), cmdline, flags)
    assert set(os.listdir("/proc/self/fd")) == before  # the files are closed again


@pytest.mark.parametrize("crash, flags", [(False, 1), (True, 3)])
def test_kexec_file_unload(recording_kernel, crash, flags):
    from kexec_py.file_load import unload_flags

    linux, libc = recording_kernel()
    linux.kexec_file_unload(unload_flags(crash))
    assert [(c["number"], c["args"]) for c in libc.calls] == [(320, [(1 << 64) - 1, (1 << 64) - 1, 0, 0, flags])]


def test_kexec_file_load_in_a_32_bit_process_is_enosys(recording_kernel):
    linux, libc = recording_kernel(bits=32)
    with pytest.raises(KernelError) as failed:
        linux.kexec_file_unload(1)
    assert (failed.value.errno, libc.calls) == (E.ENOSYS, [])


@pytest.mark.parametrize("err, words", [
    (E.EKEYREJECTED, ["signature", "EKEYREJECTED"]),
    (E.EBADMSG, ["signature", "malformed", "EBADMSG"]),
    (E.ENOKEY, ["signature", "no trusted key", "ENOKEY"]),
    (E.ENOEXEC, ["does not take this image", "bzImage"]),
    (E.ENOSYS, ["CONFIG_KEXEC_FILE", "-c"]),
    (E.EPERM, ["root"]),
    (E.EIO, [os.strerror(E.EIO)]),
])
def test_kexec_file_load_errors(recording_kernel, tmp_path, err, words):
    from kexec_py.file_load import file_load

    (tmp_path / "kernel").write_bytes(b"k")
    linux, _ = recording_kernel(err=err)
    with pytest.raises(KernelError) as failed:
        linux.kexec_file_load(file_load(str(tmp_path / "kernel"), None, None, False))
    message = str(failed.value)
    assert message.startswith("kexec_file_load failed: ") and "\n" not in message and failed.value.errno == err
    assert all(w in message for w in words), message


def test_kexec_file_load_eperm_under_lockdown_names_the_signature(recording_kernel, tmp_path):
    (tmp_path / "sys/kernel/security").mkdir(parents=True)
    (tmp_path / "sys/kernel/security/lockdown").write_text("none [integrity] confidentiality\n")
    linux, _ = recording_kernel(err=E.EPERM)
    with pytest.raises(KernelError, match=r"^kexec_file_load failed: permission denied: the kernel is in lockdown"
                                          r" mode \(integrity, as under Secure Boot\): kexec_file_load takes only a"
                                          r" kernel signed with a key it trusts$"):
        linux.kexec_file_unload(1)


def test_kexec_file_load_of_a_missing_file(recording_kernel, tmp_path):
    from kexec_py.file_load import file_load

    (tmp_path / "kernel").write_bytes(b"k")
    linux, libc = recording_kernel()
    with pytest.raises(KexecError, match=r"^cannot open \S+/initrd: No such file or directory$"):
        linux.kexec_file_load(file_load(str(tmp_path / "kernel"), str(tmp_path / "initrd"), None, False))
    assert libc.calls == []


PERMISSION_LIST = kernel._PERMISSION  # what EPERM says when no cause can be found (root, empty tree)


@pytest.mark.parametrize("err, message", [
    (E.EINVAL, "kexec failed: no kexec image is loaded"),
    (E.EBUSY, "kexec failed: the kernel could not freeze tasks or devices for the jump"),
    (E.EPERM, "kexec failed: " + PERMISSION_LIST),
    (E.EIO, "kexec failed: " + os.strerror(E.EIO)),  # anything else: the C library's words
])
def test_reboot_kexec_errors(recording_kernel, err, message):
    linux, _ = recording_kernel(err=err)
    with pytest.raises(KernelError) as failed:
        linux.reboot_kexec()
    assert (str(failed.value), failed.value.errno) == (message, err)


def test_reboot_eperm_names_the_cause(recording_kernel, tmp_path):
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/kexec_load_disabled").write_text("1\n")
    linux, _ = recording_kernel(err=E.EPERM)
    with pytest.raises(KernelError, match=r"^kexec failed: permission denied: sysctl kernel.kexec_load_disabled is 1"):
        linux.reboot_kexec()


@pytest.mark.parametrize("err, flags, message", [
    (E.EINVAL, PRESERVE_386, "kexec_load failed: " + kernel.NO_KEXEC_JUMP),
    (E.EINVAL, PLAIN_386, "kexec_load failed: the kernel rejected the segment list (EINVAL)"),
    (E.EBUSY, PLAIN_386, "kexec_load failed: another kexec load or exec is in progress; try again"),
    (E.EPERM, PRESERVE_386, "kexec_load failed: " + PERMISSION_LIST),
])
def test_kexec_load_errors(recording_kernel, err, flags, message):
    from kexec_py.segments import KexecPlan, Segment

    linux, _ = recording_kernel(err=err)
    with pytest.raises(KernelError) as failed:
        linux.kexec_load(KexecPlan(0x1000000, flags, (Segment(0x1000000, 0x1000, b"x", "x"),)))
    assert (str(failed.value), failed.value.errno) == (message, err)
