"""The kernel interface: errno -> message tables, /sys/kernel/kexec_*loaded, and one
honest call of the real cffi binding without privileges."""

import errno as E
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from kexec_py import kernel
from kexec_py.errors import KernelError
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
    [(32, {"kexec_load": 283, "reboot": 88}), (64, {"kexec_load": 246, "reboot": 169})],
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
