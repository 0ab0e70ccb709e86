"""Which backend a load goes to (kexec_py.backend): the rule as a table, the
known-broken return paths, the one line when nothing can load, and the readers
of a machine tree (release, CONFIG_KEXEC_JUMP, the installed module)."""

import gzip

import pytest

from kexec_py import backend
from kexec_py.backend import KERNEL, SHIM, choose, no_backend_message, return_path_broken
from kexec_py.errors import UsageError
from unit_support import NO_DEPMOD, NO_TREE, write_module_tree

DEBIAN_AMD64 = "6.1.0-57-amd64"  # bookworm: KEXEC_JUMP not set, 6.1 lacks the GDT fix
DEBIAN_686 = "6.1.0-57-686-pae"
TRIXIE_AMD64 = "6.12.38+deb13-amd64"  # 6.12 before .117: no GDT fix either
OUR_X86_64 = "6.12.117"  # the harness's x86_64 kernel: has the fix
OUR_I386 = "6.1.192"  # the harness's i386 kernel: KEXEC_JUMP and our patch

SELECTION = [
    # id, arch, release, CONFIG_KEXEC_JUMP, shim available, --backend, preserve-context,
    # -> backend, fallback on EINVAL, missing (nothing can load), availability asked
    ("plain-always-kernel", "x86_64", DEBIAN_AMD64, False, True, "auto", False, KERNEL, False, False, False),
    ("plain-i386", "i386", OUR_I386, True, True, "auto", False, KERNEL, False, False, False),
    ("plain-backend-kernel", "x86_64", DEBIAN_AMD64, None, True, "kernel", False, KERNEL, False, False, False),
    # the kernel lacks KEXEC_JUMP: the shim, or nothing
    ("no-jump-shim", "x86_64", DEBIAN_AMD64, False, True, "auto", True, SHIM, False, False, True),
    ("no-jump-no-shim", "x86_64", DEBIAN_AMD64, False, False, "auto", True, SHIM, False, True, True),
    ("no-jump-i386-shim", "i386", DEBIAN_686, False, True, "auto", True, SHIM, False, False, True),
    ("no-jump-fixed-release", "x86_64", "6.18.2", False, True, "auto", True, SHIM, False, False, True),
    # the kernel has KEXEC_JUMP and a working return: its own syscall, the shim is not even asked
    ("jump-fixed-6.12.117", "x86_64", OUR_X86_64, True, True, "auto", True, KERNEL, False, False, False),
    ("jump-fixed-6.13", "x86_64", "6.13.0", True, True, "auto", True, KERNEL, False, False, False),
    ("jump-fixed-6.18", "x86_64", "6.18.44-fc-v769", True, False, "auto", True, KERNEL, False, False, False),
    # KEXEC_JUMP but a known-broken return: the shim when there is one, else as before
    ("jump-broken-x86_64-shim", "x86_64", TRIXIE_AMD64, True, True, "auto", True, SHIM, False, False, True),
    ("jump-broken-x86_64-no-shim", "x86_64", "6.1.192", True, False, "auto", True, KERNEL, False, False, True),
    ("jump-6.12.116-shim", "x86_64", "6.12.116", True, True, "auto", True, SHIM, False, False, True),
    ("jump-i386-shim", "i386", OUR_I386, True, True, "auto", True, SHIM, False, False, True),
    ("jump-i386-no-shim", "i386", OUR_I386, True, False, "auto", True, KERNEL, False, False, True),  # seed scenario
    # CONFIG_KEXEC_JUMP unknown: kexec_load first, the shim on EINVAL (asked then, by the CLI)
    ("unknown-fixed", "x86_64", OUR_X86_64, None, True, "auto", True, KERNEL, True, False, False),
    ("unknown-release-unknown", "x86_64", None, None, True, "auto", True, KERNEL, True, False, False),
    ("unknown-broken-shim", "i386", OUR_I386, None, True, "auto", True, SHIM, False, False, True),
    ("unknown-broken-no-shim", "x86_64", DEBIAN_AMD64, None, False, "auto", True, KERNEL, True, False, True),
    # --backend: the user's word, for tests
    ("backend-kernel-no-jump", "x86_64", DEBIAN_AMD64, False, True, "kernel", True, KERNEL, False, False, False),
    ("backend-kernel-broken", "i386", OUR_I386, True, True, "kernel", True, KERNEL, False, False, False),
    ("backend-shim-fixed", "x86_64", OUR_X86_64, True, True, "shim", True, SHIM, False, False, True),
    ("backend-shim-missing", "x86_64", OUR_X86_64, True, False, "shim", True, SHIM, False, True, True),
]


class Probe:
    """shim_available as choose() receives it: counts the calls (each may be a modprobe)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def __call__(self):
        self.calls += 1
        return self.answer


@pytest.mark.parametrize("arch, release, kexec_jump, shim, choice, preserve, chosen, fallback, missing, asked",
                         [s[1:] for s in SELECTION], ids=[s[0] for s in SELECTION])
def test_selection(arch, release, kexec_jump, shim, choice, preserve, chosen, fallback, missing, asked):
    probe = Probe(shim)
    route = choose(arch, release, kexec_jump, probe, choice, preserve)
    assert (route.backend, route.fallback, route.missing) == (chosen, fallback, missing)
    assert probe.calls == (1 if asked else 0)  # at most once, and only when the answer matters


def test_plain_load_with_backend_shim_is_a_usage_error():
    with pytest.raises(UsageError, match=r"^--backend shim: plain loads \(-l, -f, the default\) always use"
                                         r" kexec_load; the kexec_jump module only loads preserve-context"):
        choose("x86_64", DEBIAN_AMD64, False, Probe(True), "shim", preserve_context=False)


BROKEN = [
    # arch, release, known broken
    ("i386", OUR_I386, True),
    ("i386", "6.18.0", True),  # no upstream fix on 32-bit
    ("i386", None, True),
    ("x86_64", DEBIAN_AMD64, True),
    ("x86_64", "5.10.0-30-amd64", True),
    ("x86_64", TRIXIE_AMD64, True),
    ("x86_64", "6.12.116", True),
    ("x86_64", "6.12", True),
    ("x86_64", "6.12.117", False),
    ("x86_64", "6.12.117-custom", False),
    ("x86_64", "6.12.200+deb13-amd64", False),
    ("x86_64", "6.13", False),
    ("x86_64", "6.13.0-rc1", False),
    ("x86_64", "6.18.44-fc-v769", False),
    ("x86_64", "7.0.1", False),
    ("x86_64", None, False),  # unknown is not known broken
    ("x86_64", "", False),
    ("x86_64", "custom-kernel", False),
    ("x86_64", "6.11-rc3", True),  # no patch level: .0
    ("x86_64", "6.12.", True),
    ("x86_64", "6.", False),  # no minor: unknown
    ("x86_64", "6x.12.200", False),
]


@pytest.mark.parametrize("arch, release, broken", BROKEN)
def test_return_path_broken(arch, release, broken):
    reason = return_path_broken(arch, release)
    assert (reason is not None) == broken
    if broken and arch == "x86_64":
        assert reason == (f'Linux {release} lacks "x86/kexec: Restore GDT on return from ::preserve_context kexec"'
                          " (6.13, 6.12.117)")


NO_BACKEND = [
    # release, module installed, euid, --backend shim, lockdown -> the line after "kexec: "
    (DEBIAN_AMD64, False, 0, False, None,
     "kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is not"
     " installed: install kexec-py-dkms (and linux-headers-6.1.0-57-amd64)"),
    (None, False, 0, False, None,
     "kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is not"
     " installed: install kexec-py-dkms (and the linux-headers package of this kernel)"),
    (DEBIAN_AMD64, False, 0, False, "integrity",  # not installed: installing comes first
     "kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is not"
     " installed: install kexec-py-dkms (and linux-headers-6.1.0-57-amd64)"),
    (DEBIAN_AMD64, True, 0, False, None,
     "kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module is"
     " installed but does not load (see dmesg after modprobe kexec_jump; under lockdown or Secure Boot it must"
     " be signed)"),
    (DEBIAN_AMD64, True, 0, False, "integrity",
     "kexec_load failed: this kernel was built without CONFIG_KEXEC_JUMP and the kexec_jump module does not"
     " load: the kernel is in lockdown mode (integrity), which refuses modules not signed by a key it trusts"),
    (DEBIAN_AMD64, False, 1000, False, None, "kexec_load failed: permission denied: kexec needs root (CAP_SYS_BOOT)"),
    (DEBIAN_AMD64, True, 1000, True, "integrity",
     "kexec_load failed: permission denied: kexec needs root (CAP_SYS_BOOT)"),
    (OUR_X86_64, False, 0, True, None,
     "--backend shim: the kexec_jump module is not installed: install kexec-py-dkms (and linux-headers-6.12.117)"),
]


@pytest.mark.parametrize("release, installed, euid, explicit, lockdown, message", NO_BACKEND)
def test_no_backend_message(release, installed, euid, explicit, lockdown, message):
    assert no_backend_message(release, installed, euid, explicit, lockdown) == message


def test_route_describe():
    assert choose("x86_64", DEBIAN_AMD64, False, Probe(False)).describe() == (
        "backend: shim (/dev/kexec_jump): this kernel was built without CONFIG_KEXEC_JUMP;"
        " the kexec_jump module is not available here (kexec-py-dkms)")
    assert choose("x86_64", OUR_X86_64, True, Probe(True)).describe() == (
        "backend: kernel (kexec_load): the kernel has CONFIG_KEXEC_JUMP")


# --- readers: a machine tree ------------------------------------------------------------------

CONFIG_ON = "# Linux/x86 6.1.0 Kernel Configuration\nCONFIG_KEXEC=y\nCONFIG_KEXEC_JUMP=y\nCONFIG_HIBERNATION=y\n"
CONFIG_OFF = "# Linux/x86 6.1.0 Kernel Configuration\nCONFIG_KEXEC=y\n# CONFIG_KEXEC_JUMP is not set\n"
CONFIG_NO_KEXEC = "# Linux/x86 6.1.0 Kernel Configuration\n# CONFIG_KEXEC is not set\nCONFIG_SWAP=y\n"
CONFIG_MODULE_TYPO = "CONFIG_KEXEC_JUMP=m\n"  # not a bool the kernel would write: not on


def machine(tmp_path, osrelease=None, proc_config=None, boot_config=None, modules_dep=None):
    """A machine tree: proc/sys/kernel/osrelease, proc/config.gz, boot/config-<release>,
    lib/modules/<release>/modules.dep."""
    if osrelease is not None:
        (tmp_path / "proc/sys/kernel").mkdir(parents=True)
        (tmp_path / "proc/sys/kernel/osrelease").write_text(osrelease + "\n")
    if proc_config is not None:
        (tmp_path / "proc").mkdir(exist_ok=True)
        with gzip.open(tmp_path / "proc/config.gz", "wt") as f:
            f.write(proc_config)
    if boot_config is not None:
        (tmp_path / "boot").mkdir()
        (tmp_path / "boot" / f"config-{osrelease}").write_text(boot_config)
    if modules_dep is not None:
        (tmp_path / "lib/modules" / osrelease).mkdir(parents=True)
        (tmp_path / "lib/modules" / osrelease / "modules.dep").write_text(modules_dep)
    return str(tmp_path)


CONFIGS = [
    # id, /proc/config.gz, /boot/config-<release>, CONFIG_KEXEC_JUMP
    ("proc-on", CONFIG_ON, None, True),
    ("proc-off", CONFIG_OFF, None, False),
    ("proc-no-kexec", CONFIG_NO_KEXEC, None, False),  # KEXEC off: KEXEC_JUMP is not even listed
    ("boot-on", None, CONFIG_ON, True),
    ("boot-off", None, CONFIG_OFF, False),
    ("proc-wins", CONFIG_OFF, CONFIG_ON, False),  # the running kernel's own config first
    ("proc-garbage-boot-on", "not a config\n", CONFIG_ON, True),
    ("module-typo", CONFIG_MODULE_TYPO, None, False),
    ("neither", None, None, None),
    ("garbage", None, "hello\n", None),
]


@pytest.mark.parametrize("proc_config, boot_config, known", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_kexec_jump_config(tmp_path, proc_config, boot_config, known):
    root = machine(tmp_path, DEBIAN_AMD64, proc_config, boot_config)
    assert backend.kexec_jump_config(root, backend.running_release(root)) is known


def test_boot_config_needs_the_release(tmp_path):
    root = machine(tmp_path, DEBIAN_AMD64, boot_config=CONFIG_ON)
    assert backend.kexec_jump_config(root, None) is None


def test_corrupt_config_gz_is_unknown(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/config.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert backend.kexec_jump_config(str(tmp_path), None) is None


def test_running_release(tmp_path):
    assert backend.running_release(machine(tmp_path, DEBIAN_AMD64)) == DEBIAN_AMD64
    assert backend.running_release(str(tmp_path / "recorded-without-proc")) is None


MODULES_DEP = [
    # modules.dep text, kexec_jump.ko installed
    ("updates/dkms/kexec_jump.ko.xz:\nkernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz\n", True),
    ("kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\nextra/kexec_jump.ko:\n", True),
    ("kernel/drivers/misc/kexec_jumper.ko:\n", False),
    ("kernel/fs/fat/fat.ko:\n", False),
    ("", False),
    ("kernel/a.ko: updates/dkms/kexec_jump.ko\n", False),  # a dependency, not an entry
    ("kernel/a.ko: updates/kexec_jump.ko\nkernel/b.ko:\nupdates/kexec_jump.ko: kernel/a.ko", True),
    ("kernel/misc/my_kexec_jump.ko:\n", False),
    ("kexec_jump.ko:\n", True),  # at the top of the tree
    ("kernel/kexec_jump.ko.d/fat.ko:\n", False),  # a directory of that name
]


@pytest.mark.parametrize("text, installed", MODULES_DEP)
def test_module_installed(tmp_path, text, installed):
    root = machine(tmp_path, DEBIAN_AMD64, modules_dep=text)
    assert backend.module_installed(root, DEBIAN_AMD64) is installed
    assert backend.module_installed(root, "6.2.0-other") is False  # no module tree for that kernel
    (tmp_path / "lib/modules/6.3.0-no-depmod").mkdir()
    assert backend.module_installed(root, "6.3.0-no-depmod") is None  # a tree without modules.dep: cannot tell
    assert backend.module_installed(root, None) is None


SHIM_RULED_OUT = [
    # /dev/kexec_jump, modules.dep (or NO_TREE, NO_DEPMOD), osrelease readable, ruled out
    (True, NO_TREE, True, False),  # the device is there, however the module was loaded
    (True, "kernel/fs/fat/fat.ko:\n", True, False),
    (False, NO_TREE, True, True),  # a kernel without modules (the harness's)
    (False, "kernel/fs/fat/fat.ko:\n", True, True),  # not installed: modprobe cannot load it
    (False, "updates/dkms/kexec_jump.ko.xz:\n", True, False),  # modprobe may load it
    (False, NO_DEPMOD, True, False),  # cannot tell: modprobe decides
    (False, NO_TREE, False, False),  # no release (a recorded tree without proc): cannot tell
]


@pytest.mark.parametrize("device, modules_dep, release, ruled_out", SHIM_RULED_OUT)
def test_shim_ruled_out(tmp_path, device, modules_dep, release, ruled_out):
    root = machine(tmp_path, DEBIAN_AMD64 if release else None)
    write_module_tree(root, DEBIAN_AMD64, modules_dep)
    if device:
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev/kexec_jump").symlink_to("/dev/null")  # a character device, as the module's
    assert backend.shim_ruled_out(root) is ruled_out
