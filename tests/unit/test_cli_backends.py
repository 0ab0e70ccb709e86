"""The tool picks the backend: kexec_py.cli with recording fakes of both kernel
interfaces (the kernel's kexec_load and the kexec_jump module's /dev/kexec_jump)
sharing one call log, on machine trees that say which kernel runs (--machine-root):
where loads go, the fallback on EINVAL, the install line, a new load replacing
the other backend's image only once it succeeded, -e/-u/-S following the loaded
image, and -e through the real ShimKernel (freeze, KJ_EXEC, thaw; never a word
while user space is frozen)."""

import errno
import gzip
import json
import os
import shutil
import sys

import pytest

from kexec_py import shim
from kexec_py.segments import KexecPlan, Segment
from unit_support import HOST_TREE, FakeDevice, FakeKernel, FakeShim, SavedInterfaces

PRESERVE_X86_64, PLAIN_X86_64 = 0x3E0002, 0x3E0000
INSTALL = ("kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is"
           " not installed: install kexec-py-dkms (and linux-headers-{release})\n")
KERNELS = {
    # name: (uname -r, /proc/config.gz or None for unknown)
    "debian": ("6.1.0-57-amd64", "CONFIG_KEXEC=y\n# CONFIG_KEXEC_JUMP is not set\n"),
    "fixed": ("6.12.117", "CONFIG_KEXEC=y\nCONFIG_KEXEC_JUMP=y\n"),
    "broken": ("6.1.192", "CONFIG_KEXEC=y\nCONFIG_KEXEC_JUMP=y\n"),  # x86_64 6.1: no GDT fix
    "unknown": ("6.12.117", None),
}
OLD = KexecPlan(0x2000000, PRESERVE_X86_64, (Segment(0x2000000, 0x1000, b"old", "old"),))


@pytest.fixture
def tree(tmp_path):
    """tree(kernel, device=False, module=False): the recorded host's memory map plus what
    says which kernel runs, whether /dev/kexec_jump exists and whether the module is installed."""

    def make(name, device=False, module=False, lockdown=None):
        root = tmp_path / name
        shutil.copytree(HOST_TREE, root)
        release, config = KERNELS[name]
        (root / "proc/sys/kernel").mkdir(parents=True)
        (root / "proc/sys/kernel/osrelease").write_text(release + "\n")
        if config is not None:
            with gzip.open(root / "proc/config.gz", "wt") as f:
                f.write(config)
        if device:
            (root / "dev").mkdir()
            (root / "dev/kexec_jump").write_text("")
        if lockdown:
            (root / "sys/kernel/security").mkdir(parents=True)
            (root / "sys/kernel/security/lockdown").write_text(lockdown + "\n")
        if module:
            (root / "lib/modules" / release).mkdir(parents=True)
            (root / "lib/modules" / release / "modules.dep").write_text("updates/dkms/kexec_jump.ko.xz:\n")
        return str(root)

    return make


@pytest.mark.parametrize("module, built", [(True, True), (False, False)])
def test_shim_available_reads_modules_dep_once(tree, monkeypatch, module, built):
    """The real shim, no /dev/kexec_jump (a stock machine's first load): the CLI reads
    modules.dep once; the module installed, ShimKernel takes that reading (and, on
    another root than /, runs no modprobe); not installed, kexec_py.shim is not used."""
    from kexec_py import backend, cli

    root = tree("debian", module=module)
    reads = []
    real = backend.module_installed
    monkeypatch.setattr(backend, "module_installed", lambda *a: reads.append(a) or real(*a))
    backends_ = cli._Backends(cli.parse(["--machine-root", root, "-e"]), cli._linux_kernel, cli._shim_kernel)
    assert backends_.shim_available() is False
    assert reads == [(root, "6.1.0-57-amd64")]
    assert ("shim" in backends_._built) is built


@pytest.fixture(autouse=True)
def as_root(monkeypatch):
    """The install line is for root (a user is told to be root); the tests may run as anyone."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def backends(kernel_loaded=False, shim_present=False, shim_loaded=False, modprobe=False, kernel_fail=None,
             shim_fail=None):
    log = []
    kernel = FakeKernel(loaded=kernel_loaded, calls=log, fail=kernel_fail or {},
                        plans=[OLD] if kernel_loaded else [])
    shim_ = FakeShim(loaded=shim_loaded, calls=log, present_=shim_present, modprobe=modprobe, fail=shim_fail or {},
                     plans=[OLD] if shim_loaded else [])
    return kernel, shim_, log


def load_argv(root, *action):
    return ["--arch", "x86_64", "--machine-root", root, *(action or ("--load-preserve-context",)), "--args-none"]


# --- where a load goes -----------------------------------------------------------------------------

LOADS = [
    # id, kernel tree, fake state (backends() keywords), extra argv, exit code, calls (one log, "shim." the
    # module's), which holds an image afterwards (kernel, shim)
    ("no-jump-shim-present", "debian", dict(shim_present=True), [], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded"], (False, True)),
    ("no-jump-modprobe", "debian", dict(modprobe=True), [], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded"], (False, True)),
    ("no-jump-replaces-kernel-image", "debian", dict(shim_present=True, kernel_loaded=True), [], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded", "kexec_unload"], (False, True)),
    ("no-jump-shim-reloads", "debian", dict(shim_present=True, shim_loaded=True), [], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded"], (False, True)),
    ("fixed-kernel", "fixed", dict(), [], 0, ["kexec_load"], (True, False)),
    ("fixed-kernel-replaces-shim-image", "fixed", dict(shim_present=True, shim_loaded=True), [], 0,
     ["kexec_load", "shim.kexec_loaded", "shim.kexec_unload"], (True, False)),
    ("broken-return-shim", "broken", dict(shim_present=True), [], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded"], (False, True)),
    ("broken-return-no-shim-as-before", "broken", dict(), [], 0, ["shim.available", "kexec_load"], (True, False)),
    ("unknown-kernel-works", "unknown", dict(shim_present=True), [], 0,
     ["kexec_load", "shim.kexec_loaded"], (True, False)),
    ("unknown-einval-falls-back", "unknown", dict(modprobe=True, kernel_loaded=True,
                                                  kernel_fail={"kexec_load": errno.EINVAL}), [], 0,
     ["kexec_load", "shim.available", "shim.kexec_load", "kexec_loaded", "kexec_unload"], (False, True)),
    ("unknown-ebusy-no-fallback", "unknown", dict(shim_present=True, kernel_fail={"kexec_load": errno.EBUSY}), [],
     255, ["kexec_load"], (False, False)),
    ("plain-never-asks-the-shim", "debian", dict(modprobe=True), ["-l"], 0, ["kexec_load"], (True, False)),
    ("plain-replaces-shim-image", "debian", dict(shim_present=True, shim_loaded=True), ["-l"], 0,
     ["kexec_load", "shim.kexec_loaded", "shim.kexec_unload"], (True, False)),
    ("backend-kernel", "debian", dict(shim_present=True), ["--backend", "kernel"], 0,
     ["kexec_load", "shim.kexec_loaded"], (True, False)),
    ("backend-shim", "fixed", dict(shim_present=True), ["--backend", "shim"], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded"], (False, True)),
    ("jump-back-helper", "debian", dict(shim_present=True), ["--load-jump-back-helper", "--entry", "0x9f000"], 0,
     ["shim.available", "shim.kexec_load", "kexec_loaded"], (False, True)),
    # refused before the route is chosen: no modprobe for a command that fails anyway
    ("jump-back-helper-bad-entry", "debian", dict(modprobe=True), ["--load-jump-back-helper", "--entry", "0"], 255,
     [], (False, False)),
    ("jump-back-helper-bad-option", "debian", dict(modprobe=True),
     ["--load-jump-back-helper", "--entry", "0x9f000", "--initrd", "x"], 1, [], (False, False)),
]


@pytest.mark.parametrize("name, state, extra, code, calls, holders", [c[1:] for c in LOADS], ids=[c[0] for c in LOADS])
def test_load_goes_to(run_cli, tree, tiny_elf64, name, state, extra, code, calls, holders):
    kernel, shim_, log = backends(**state)
    if extra[:1] == ["--load-jump-back-helper"]:
        argv = ["--arch", "x86_64", "--machine-root", tree(name), *extra]
    elif extra[:1] == ["-l"]:
        argv = [*load_argv(tree(name), "-l"), tiny_elf64]
    else:
        argv = [*load_argv(tree(name)), *extra, tiny_elf64]
    result = run_cli(argv, kernel, shim_)
    assert (result.code, log, result.out) == (code, calls, ""), result.err
    assert (result.err == "") == (code == 0)
    assert (kernel.loaded, shim_.loaded) == holders
    if code == 0:
        new = (shim_ if holders[1] else kernel).plans[-1]
        assert new is not OLD and new.flags & 0x2 == (0 if extra[:1] == ["-l"] else 2)


def test_unload_of_the_other_image_names_the_arch(run_cli, tree, tiny_elf64):
    kernel, shim_, _ = backends(shim_present=True, kernel_loaded=True)
    assert run_cli([*load_argv(tree("debian")), tiny_elf64], kernel, shim_).code == 0
    assert kernel.unload_flags == [PLAIN_X86_64]


NOWHERE = [
    # id, kernel tree, fake state, tree extras, extra argv, message, calls
    ("no-jump-no-module", "debian", dict(), dict(), [], INSTALL.format(release="6.1.0-57-amd64"),
     ["shim.available"]),
    ("unknown-einval-no-module", "unknown", dict(kernel_fail={"kexec_load": errno.EINVAL}), dict(), [],
     INSTALL.format(release="6.12.117"), ["kexec_load", "shim.available"]),
    ("module-does-not-load", "debian", dict(), dict(module=True), [],
     "kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is"
     " installed but does not load (see dmesg after modprobe kexec_jump; under lockdown or Secure Boot it must"
     " be signed)\n", ["shim.available"]),
    ("module-refused-by-lockdown", "debian", dict(), dict(module=True, lockdown="none [integrity] confidentiality"),
     [], "kexec: kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module does"
     " not load: the kernel is in lockdown mode (integrity), which refuses modules not signed by a key it trusts\n",
     ["shim.available"]),
    ("backend-shim-missing", "fixed", dict(), dict(), ["--backend", "shim"],
     "kexec: --backend shim: the kexec_jump module is not installed: install kexec-py-dkms"
     " (and linux-headers-6.12.117)\n", ["shim.available"]),
]


@pytest.mark.parametrize("name, state, extras, extra, err, calls", [n[1:] for n in NOWHERE], ids=[n[0] for n in NOWHERE])
@pytest.mark.parametrize("before", ["nothing-loaded", "kernel-image-loaded"])
def test_nowhere_to_load_says_what_to_install(run_cli, tree, tiny_elf64, name, state, extras, extra, err, calls,
                                              before):
    kernel, shim_, log = backends(kernel_loaded=before == "kernel-image-loaded", **state)
    result = run_cli([*load_argv(tree(name, **extras)), *extra, tiny_elf64], kernel, shim_)
    assert (result.code, result.out, result.err, log) == (255, "", err, calls)
    assert kernel.loaded == (before == "kernel-image-loaded") and kernel.plans == ([OLD] if kernel.loaded else [])


def test_a_user_is_told_to_be_root(run_cli, tree, tiny_elf64, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    kernel, shim_, _ = backends()
    result = run_cli([*load_argv(tree("debian")), tiny_elf64], kernel, shim_)
    assert (result.code, result.err) == (255, "kexec: kexec_load failed: permission denied: kexec needs root"
                                              " (CAP_SYS_BOOT)\n")


FAILED_LOADS = [
    # id, kernel tree, fake state: the failing load leaves the other backend's image alone
    ("shim-fails-kernel-image-stays", "debian",
     dict(shim_present=True, kernel_loaded=True, shim_fail={"kexec_load": errno.EBUSY}),
     ["shim.available", "shim.kexec_load"], "kexec: shim.kexec_load failed: Device or resource busy\n"),
    ("kernel-fails-shim-image-stays", "fixed",
     dict(shim_present=True, shim_loaded=True, kernel_fail={"kexec_load": errno.EADDRNOTAVAIL}),
     ["kexec_load"], "kexec: kexec_load failed: Cannot assign requested address\n"),
    ("fallback-fails-kernel-image-stays", "unknown",
     dict(modprobe=True, kernel_loaded=True, kernel_fail={"kexec_load": errno.EINVAL},
          shim_fail={"kexec_load": errno.ENOMEM}),
     ["kexec_load", "shim.available", "shim.kexec_load"], "kexec: shim.kexec_load failed: Cannot allocate memory\n"),
]


@pytest.mark.parametrize("name, state, calls, err", [f[1:] for f in FAILED_LOADS], ids=[f[0] for f in FAILED_LOADS])
def test_failed_load_leaves_the_other_image(run_cli, tree, tiny_elf64, name, state, calls, err):
    kernel, shim_, log = backends(**state)
    before = (kernel.loaded, list(kernel.plans), shim_.loaded, list(shim_.plans))
    result = run_cli([*load_argv(tree(name)), tiny_elf64], kernel, shim_)
    assert (result.code, result.err, log) == (255, err, calls)
    assert (kernel.loaded, kernel.plans, shim_.loaded, shim_.plans) == before


def test_replacing_fails_in_one_line(run_cli, tree, tiny_elf64):
    kernel, shim_, log = backends(shim_present=True, kernel_loaded=True, kernel_fail={"kexec_unload": errno.EPERM})
    result = run_cli([*load_argv(tree("debian")), tiny_elf64], kernel, shim_)
    assert (result.code, result.err) == (255, "kexec: the new image is loaded (kexec_jump module), but the one loaded"
                                              " before (kernel) is still there: kexec_unload failed: Operation not"
                                              " permitted\n")


def test_force_is_a_plain_load_and_jumps_through_the_kernel(run_cli, tree, tiny_elf64):
    kernel, shim_, log = backends(shim_present=True)
    assert run_cli([*load_argv(tree("debian"), "-f"), tiny_elf64], kernel, shim_).code == 0
    assert log == ["kexec_load", "shim.kexec_loaded", "shim.kexec_loaded", "kexec_loaded", "sync", "interfaces_down",
                   "reboot_kexec", "interfaces_restore"]


def test_debug_names_the_backend_before_loading(run_cli, tree, tiny_elf64):
    kernel, shim_, log = backends(shim_present=True)
    result = run_cli([*load_argv(tree("debian")), "-d", tiny_elf64], kernel, shim_)
    assert result.code == 0
    assert "backend: shim (/dev/kexec_jump): this kernel was built without CONFIG_KEXEC_JUMP" in result.err.splitlines()


# --- -e, -u, -S follow the loaded image -------------------------------------------------------------

FOLLOW = [
    # id, argv, fake state, exit code, calls, stderr
    ("exec-shim-image", ["-e"], dict(shim_present=True, shim_loaded=True), 0,
     ["shim.kexec_loaded", "shim.sync", "shim.interfaces_down", "shim.reboot_kexec", "shim.interfaces_restore"], ""),
    ("exec-kernel-image", ["-e"], dict(shim_present=True, kernel_loaded=True), 0,
     ["shim.kexec_loaded", "kexec_loaded", "sync", "interfaces_down", "reboot_kexec", "interfaces_restore"], ""),
    ("exec-no-shim", ["-e"], dict(kernel_loaded=True), 0,
     ["kexec_loaded", "sync", "interfaces_down", "reboot_kexec", "interfaces_restore"], ""),
    ("exec-nothing", ["-e"], dict(shim_present=True), 1, ["shim.kexec_loaded", "kexec_loaded"],
     "kexec: Nothing has been loaded!\n"),
    ("exec-shim-fails", ["-e"], dict(shim_present=True, shim_loaded=True, shim_fail={"reboot_kexec": errno.EBUSY}),
     255, ["shim.kexec_loaded", "shim.sync", "shim.interfaces_down", "shim.reboot_kexec", "shim.interfaces_restore"],
     "kexec: shim.reboot_kexec failed: Device or resource busy\n"),
    ("status-shim", ["-S", "-l"], dict(shim_present=True, shim_loaded=True), 1, ["shim.kexec_loaded"], ""),
    ("status-kernel", ["-S", "-l"], dict(shim_present=True, kernel_loaded=True), 1,
     ["shim.kexec_loaded", "kexec_loaded"], ""),
    ("status-none", ["-S", "-l"], dict(shim_present=True), 0, ["shim.kexec_loaded", "kexec_loaded"], ""),
    ("status-no-shim", ["-S", "-l"], dict(), 0, ["kexec_loaded"], ""),
    ("status-crash", ["-S"], dict(shim_present=True, shim_loaded=True), 0, ["kexec_crash_loaded"], ""),
    # x86_64's default -u: kexec_file_load's KEXEC_FILE_UNLOAD (lockdown forbids kexec_load), as kexec-tools
    ("unload-both", ["-u"], dict(shim_present=True, shim_loaded=True, kernel_loaded=True), 0,
     ["shim.kexec_unload", "kexec_file_unload"], ""),
    ("unload-no-shim", ["-u"], dict(kernel_loaded=True), 0, ["kexec_file_unload"], ""),
    ("unload-no-file-syscall", ["-u"], dict(kernel_loaded=True, kernel_fail={"kexec_file_unload": errno.ENOSYS}), 0,
     ["kexec_file_unload", "kexec_unload"], ""),
    ("unload-file-refused", ["-u"], dict(kernel_loaded=True, kernel_fail={"kexec_file_unload": errno.EPERM}), 255,
     ["kexec_file_unload"], "kexec: kexec_file_unload failed: Operation not permitted\n"),
    ("unload-c", ["-u", "-c"], dict(kernel_loaded=True), 0, ["kexec_unload"], ""),
    ("unload-crash", ["-u", "-p"], dict(shim_present=True, shim_loaded=True, kernel_loaded=True), 0,
     ["kexec_file_unload"], ""),
    ("unload-shim-fails", ["-u"], dict(shim_present=True, shim_fail={"kexec_unload": errno.EPERM}), 255,
     ["shim.kexec_unload"], "kexec: shim.kexec_unload failed: Operation not permitted\n"),
]


@pytest.mark.parametrize("argv, state, code, calls, err", [f[1:] for f in FOLLOW], ids=[f[0] for f in FOLLOW])
def test_exec_unload_status_follow_the_image(run_cli, argv, state, code, calls, err):
    kernel, shim_, log = backends(**state)
    result = run_cli(["--arch", "x86_64", *argv], kernel, shim_)
    assert (result.code, log, result.err, result.out) == (code, calls, err, "")
    if argv == ["-u"] and code == 0:
        assert not kernel.loaded and not shim_.loaded


@pytest.mark.parametrize("action", ["-e", "-u", "-S"])
@pytest.mark.parametrize("choice", ["kernel", "shim"])
def test_backend_is_for_loads(run_cli, action, choice):
    kernel, shim_, log = backends(shim_present=True, shim_loaded=True)
    result = run_cli([action, "--backend", choice], kernel, shim_)
    assert (result.code, log) == (1, [])
    assert result.err == f"kexec: --backend chooses where a load goes; --{ {'-e': 'exec', '-u': 'unload', '-S': 'status'}[action]} follows the loaded image\n"


def test_plain_load_with_backend_shim(run_cli, tree, tiny_elf64):
    kernel, shim_, log = backends(shim_present=True)
    result = run_cli([*load_argv(tree("debian"), "-l"), "--backend", "shim", tiny_elf64], kernel, shim_)
    assert (result.code, log) == (1, [])
    assert result.err.startswith("kexec: --backend shim: plain loads (-l, -f, the default) always use kexec_load")


# --- --dry-run says which backend, from files only -------------------------------------------------

DRY_RUNS = [
    # id, kernel tree, tree extras, extra argv, backend, the text's backend line
    ("no-jump-device", "debian", dict(device=True), [], "shim",
     "backend: shim (/dev/kexec_jump): this kernel was built without CONFIG_KEXEC_JUMP"),
    ("no-jump-module-installed", "debian", dict(module=True), [], "shim",
     "backend: shim (/dev/kexec_jump): this kernel was built without CONFIG_KEXEC_JUMP"),
    ("no-jump-nothing", "debian", dict(), [], "shim",
     "backend: shim (/dev/kexec_jump): this kernel was built without CONFIG_KEXEC_JUMP; the kexec_jump module is"
     " not available here (kexec-py-dkms)"),
    ("fixed", "fixed", dict(device=True), [], "kernel", "backend: kernel (kexec_load): the kernel has CONFIG_KEXEC_JUMP"),
    ("broken-device", "broken", dict(device=True), [], "shim",
     'backend: shim (/dev/kexec_jump): Linux 6.1.192 lacks "x86/kexec: Restore GDT on return from'
     ' ::preserve_context kexec" (6.13, 6.12.117)'),
    ("unknown", "unknown", dict(), [], "kernel",
     "backend: kernel (kexec_load): CONFIG_KEXEC_JUMP unknown: kexec_load first, the kexec_jump module if the"
     " kernel refuses (EINVAL)"),
    ("plain", "debian", dict(device=True), ["-l"], "kernel", "backend: kernel (kexec_load): plain loads always use kexec_load"),
    ("backend-kernel", "debian", dict(device=True), ["--backend", "kernel"], "kernel",
     "backend: kernel (kexec_load): --backend kernel"),
    ("backend-shim", "fixed", dict(device=True), ["--backend", "shim"], "shim",
     "backend: shim (/dev/kexec_jump): --backend shim"),
]


@pytest.mark.parametrize("name, extras, extra, chosen, line", [d[1:] for d in DRY_RUNS], ids=[d[0] for d in DRY_RUNS])
def test_dry_run_shows_the_backend(run_cli, tree, tiny_elf64, name, extras, extra, chosen, line):
    root = tree(name, **extras)
    action = ("-l",) if extra[:1] == ["-l"] else ()
    extra = [] if action else extra
    as_json = run_cli([*load_argv(root, *action), *extra, "--dry-run", "--json", tiny_elf64])  # no kernel: none needed
    assert (as_json.code, as_json.err) == (0, "")
    plan = json.loads(as_json.out)
    assert plan["backend"] == chosen and plan["flags"] == (PLAIN_X86_64 if action else PRESERVE_X86_64)
    text = run_cli([*load_argv(root, *action), *extra, "--dry-run", tiny_elf64])
    assert text.code == 0 and text.out.splitlines()[-1] == line


# --- -e through the real ShimKernel: freeze, KJ_EXEC, thaw, network around it ------------------------

class RecordingShim(shim.ShimKernel):
    """The real ShimKernel on a FakeDevice; the host actions are recorded, not done."""

    def sync(self):
        self._calls.log.append(("sync",))

    def interfaces_down(self):
        self._calls.log.append(("interfaces_down",))
        return SavedInterfaces()

    def interfaces_restore(self, saved):
        self._calls.log.append(("interfaces_restore",))


class FrozenGuard:
    """sys.stdout / sys.stderr while the CLI runs: records any write made while user space is frozen."""

    def __init__(self, stream, device, violations):
        self.stream, self.device, self.violations = stream, device, violations

    def write(self, text):
        if self.device.frozen:
            self.violations.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


@pytest.fixture
def shim_root(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kexec_jump").write_text("")
    (tmp_path / "sys/class/misc/kexec_jump").mkdir(parents=True)
    (tmp_path / "sys/class/misc/kexec_jump/loaded").write_text("1\n")
    return tmp_path


FREEZE_ORDER = [("sync",), ("interfaces_down",), ("open", "kexec_jump", "O_RDWR"), ("open", "snapshot", "O_WRONLY"),
                ("ioctl", "FREEZE"), ("ioctl", "KJ_EXEC"), ("ioctl", "UNFREEZE"), ("close", "snapshot"),
                ("close", "kexec_jump"), ("interfaces_restore",)]

EXEC_PATHS = [
    # id, failing device call, errno, exit code, the one line on stderr, calls
    ("returns", None, None, 0, "", FREEZE_ORDER),
    ("no-snapshot-dev", ("open", "snapshot"), errno.ENOENT, 255,
     "kexec: kexec failed: {root}/dev/snapshot is missing: this kernel was built without"
     " CONFIG_HIBERNATION_SNAPSHOT_DEV, which the kexec_jump module needs to freeze user space\n",
     FREEZE_ORDER[:4] + FREEZE_ORDER[-2:]),
    ("freeze-busy", ("ioctl", "FREEZE"), errno.EBUSY, 255,
     "kexec: kexec failed: could not freeze user space (EBUSY): a task refused to freeze (see dmesg)\n",
     FREEZE_ORDER[:5] + FREEZE_ORDER[-3:]),
    ("exec-busy", ("ioctl", "KJ_EXEC"), errno.EBUSY, 255,
     "kexec: kexec failed: the kexec_jump module is busy (EBUSY): another load or jump is in progress, or a CPU"
     " could not be taken offline\n", FREEZE_ORDER),
    ("exec-nothing-loaded", ("ioctl", "KJ_EXEC"), errno.EINVAL, 255, "kexec: kexec failed: no kexec image is loaded\n",
     FREEZE_ORDER),
    ("exec-device-fails", ("ioctl", "KJ_EXEC"), errno.EIO, 255,
     "kexec: kexec failed: Input/output error: suspending devices or taking the other CPUs offline failed"
     " (see dmesg)\n", FREEZE_ORDER),
    ("device-gone", ("open", "kexec_jump"), errno.ENOENT, 255,
     "kexec: {root}/dev/kexec_jump: the kexec_jump module is not loaded (modprobe kexec_jump)\n",
     FREEZE_ORDER[:3] + FREEZE_ORDER[-1:]),
]


@pytest.mark.parametrize("key, err, code, message, calls", [e[1:] for e in EXEC_PATHS], ids=[e[0] for e in EXEC_PATHS])
def test_exec_through_the_module(run_cli, shim_root, monkeypatch, key, err, code, message, calls):
    device = FakeDevice(fail={key: err} if key else {})
    violations = []
    monkeypatch.setattr(sys, "stdout", FrozenGuard(sys.stdout, device, violations))
    monkeypatch.setattr(sys, "stderr", FrozenGuard(sys.stderr, device, violations))
    kernel = FakeKernel(loaded=True)
    result = run_cli(["--machine-root", shim_root, "-d", "-e"], kernel, RecordingShim(str(shim_root), calls=device))
    assert (result.code, device.log, kernel.calls) == (code, calls, [])
    assert result.err.splitlines()[1:] == message.format(root=shim_root).splitlines()  # after -d's ifdown line
    assert violations == [] and not device.frozen and device.fds == {}


def test_exec_through_the_module_interrupted(run_cli, shim_root, monkeypatch):
    device = FakeDevice()
    real_ioctl = device.ioctl

    def ioctl(fd, request, arg=0):
        real_ioctl(fd, request, arg)
        if request == shim.KJ_EXEC:
            raise KeyboardInterrupt

    device.ioctl = ioctl
    result = run_cli(["--machine-root", shim_root, "-e"], FakeKernel(), RecordingShim(str(shim_root), calls=device))
    assert (result.code, device.log) == (130, FREEZE_ORDER)
    assert not device.frozen and device.fds == {}


def test_load_through_the_module(run_cli, shim_root, tree, tiny_elf64):
    """A whole load: the plan reaches KJ_LOAD byte for byte (FakeDevice decodes it)."""
    root = tree("debian", device=True)
    device = FakeDevice()
    kernel = FakeKernel()
    result = run_cli([*load_argv(root), tiny_elf64], kernel, RecordingShim(root, calls=device))
    assert (result.code, result.err) == (0, "")
    assert device.loads == [(0x1000000, 2, PRESERVE_X86_64, [(b"\xeb\xfe", 2, 0x1000000, 0x1000),
                                                              (b"\x05\0\0\0", 4, 0x1001000, 0x3000)])]
    assert kernel.calls == ["kexec_loaded"]
