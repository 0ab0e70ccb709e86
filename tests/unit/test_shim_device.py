"""/dev/kexec_jump (kexec_py.shim): the ioctl numbers and structs against the uapi
header (the _IOC formula, and byte for byte what gcc makes of the header for i386
and x86_64), and ShimKernel driving a recording fake of its system calls: what a
load passes, the freeze / KJ_EXEC / thaw order, every failure path thawing, and
the errno -> message tables."""

import errno as E
import os
import struct
import subprocess
import sys

import pytest

from kexec_py import kernel, shim
from kexec_py.errors import KernelError
from kexec_py.machine_files import SHIM_DEVICE
from kexec_py.segments import KexecPlan, Segment
from unit_support import NO_DEPMOD, NO_TREE, REPO, FakeDevice, write_module_tree

UAPI = os.path.join(REPO, "csrc", "shim", "uapi")
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _ioc(direction, kind, nr, size):
    """include/uapi/asm-generic/ioctl.h: dir 2 bits | size 14 bits | type 8 bits | nr 8 bits."""
    kind = ord(kind) if isinstance(kind, str) else kind
    return direction << 30 | size << 16 | kind << 8 | nr


@pytest.mark.parametrize("constant, number", [
    (shim.KJ_LOAD, _ioc(_IOC_WRITE, 0xB4, 1, 24)),  # _IOW(KJ_IOC_MAGIC, 1, struct kj_load)
    (shim.KJ_EXEC, _ioc(_IOC_NONE, 0xB4, 2, 0)),
    (shim.KJ_UNLOAD, _ioc(_IOC_NONE, 0xB4, 3, 0)),
    (shim.KJ_STATUS, _ioc(_IOC_READ, 0xB4, 4, 32)),  # _IOR(KJ_IOC_MAGIC, 4, struct kj_status)
    (shim.SNAPSHOT_FREEZE, _ioc(_IOC_NONE, "3", 1, 0)),  # SNAPSHOT_IOC_MAGIC '3'
    (shim.SNAPSHOT_UNFREEZE, _ioc(_IOC_NONE, "3", 2, 0)),
], ids=["KJ_LOAD", "KJ_EXEC", "KJ_UNLOAD", "KJ_STATUS", "SNAPSHOT_FREEZE", "SNAPSHOT_UNFREEZE"])
def test_ioctl_numbers_follow_the_formula(constant, number):
    assert constant == number


def test_ioctl_numbers_as_the_brief_spells_them():
    assert (shim.KJ_LOAD, shim.KJ_EXEC, shim.KJ_UNLOAD, shim.KJ_STATUS) == (0x4018B401, 0xB402, 0xB403, 0x8020B404)
    assert (shim.SNAPSHOT_FREEZE, shim.SNAPSHOT_UNFREEZE) == (0x3301, 0x3302)
    assert (shim.KJ_SEGMENT.size, shim.KJ_LOAD_ARG.size, shim.KJ_STATUS_ARG.size) == (32, 24, 32)


# --- byte for byte what the header means, built with gcc for both ABIs ------------------------

UAPI_PROBE = r"""
#include <stdio.h>
#include <string.h>
#include <linux/suspend_ioctls.h>
#include "kexec_jump.h"

static void dump(const char *name, const void *p, size_t n)
{
	const unsigned char *b = p;
	printf("%s ", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

int main(void)
{
	struct kj_segment seg;
	struct kj_load load;
	struct kj_status st;

	memset(&seg, 0xee, sizeof(seg));
	memset(&load, 0xee, sizeof(load));
	memset(&st, 0xee, sizeof(st));
	seg.buf = 0x1122334455667788ull; seg.bufsz = 0x1002; seg.mem = 0x1000000; seg.memsz = 0x3000;
	load.entry = 0x1000000; load.segments = 0xf7f0a0b0c0d0e0f0ull; load.nr_segments = 3;
	load.flags = 0x3e0002;
	st.loaded = 1; st.flags = 0x30002; st.entry = 0x100abcd; st.nr_segments = 2; st.nr_pages = 4;
	st.jumps = 0x0102030405060708ull;
	dump("kj_segment", &seg, sizeof(seg));
	dump("kj_load", &load, sizeof(load));
	dump("kj_status", &st, sizeof(st));
	printf("numbers %#lx %#lx %#lx %#lx %#lx %#lx %d\n", (unsigned long)KJ_LOAD, (unsigned long)KJ_EXEC,
	       (unsigned long)KJ_UNLOAD, (unsigned long)KJ_STATUS, (unsigned long)SNAPSHOT_FREEZE,
	       (unsigned long)SNAPSHOT_UNFREEZE, KJ_MAX_SEGMENTS);
	printf("device %s\n", KJ_DEVICE);
	return 0;
}
"""


@pytest.fixture(scope="module", params=[32, 64], ids=["i386", "x86_64"])
def uapi(request, tmp_path_factory):
    """What gcc -m32/-m64 makes of csrc/shim/uapi/kexec_jump.h: {name: bytes or words}."""
    out = tmp_path_factory.mktemp(f"uapi{request.param}")
    src = out / "probe.c"
    src.write_text(UAPI_PROBE)
    cmd = ["gcc", f"-m{request.param}", "-std=gnu99", "-Wall", "-Werror", "-I", UAPI, "-o", str(out / "probe"), str(src)]
    try:
        built = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        pytest.fail("the uapi test needs the system gcc (apt-get install build-essential)")
    if built.returncode:
        pytest.fail(f"{' '.join(cmd)} failed:\n{built.stderr}")
    lines = subprocess.run([str(out / "probe")], capture_output=True, text=True, check=True).stdout.splitlines()
    facts = dict(line.split(" ", 1) for line in lines)
    return {name: bytes.fromhex(facts[name]) for name in ("kj_segment", "kj_load", "kj_status")} | {
        "numbers": [int(n, 0) for n in facts["numbers"].split()], "device": facts["device"]}


def test_kj_segment_bytes(uapi):
    seg = Segment(0x1000000, 0x3000, b"\0" * 0x1002)
    assert shim.pack_segments([seg], [0x1122334455667788]) == uapi["kj_segment"]


def test_kj_load_bytes(uapi):
    assert shim.pack_load(0x1000000, 0xF7F0A0B0C0D0E0F0, 3, 0x3E0002) == uapi["kj_load"]


def test_kj_status_bytes(uapi):
    status = shim.ShimStatus(uapi["kj_status"])
    assert (status.loaded, status.flags, status.entry, status.nr_segments, status.nr_pages, status.jumps) == (
        1, 0x30002, 0x100ABCD, 2, 4, 0x0102030405060708)


def test_numbers_and_device_match_the_header(uapi):
    assert uapi["numbers"] == [shim.KJ_LOAD, shim.KJ_EXEC, shim.KJ_UNLOAD, shim.KJ_STATUS, shim.SNAPSHOT_FREEZE,
                               shim.SNAPSHOT_UNFREEZE, shim.KJ_MAX_SEGMENTS]
    assert uapi["device"] == "/" + SHIM_DEVICE


def test_segment_table_is_packed_in_order():
    segments = [Segment(0x1000000, 0x1000, b"ab"), Segment(0x2000000, 0x2000, b""), Segment(0, 0, b"")]
    table = shim.pack_segments(segments, [0x7000, 0, 0])
    assert table == struct.pack("<4Q", 0x7000, 2, 0x1000000, 0x1000) + struct.pack("<4Q", 0, 0, 0x2000000, 0x2000) \
        + bytes(32)


# --- ShimKernel over a recording fake of its system calls ---------------------------------------

@pytest.fixture
def device_root(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kexec_jump").write_text("")
    return tmp_path


def make(root, **kwargs):
    device = FakeDevice(**kwargs)
    return shim.ShimKernel(str(root), calls=device), device


PLAN = KexecPlan(0x1000000, 0x30002, (Segment(0x1000000, 0x1000, b"\xeb\xfe"),
                                       Segment(0x1001000, 0x3000, b"\x05\0\0\0"),
                                       Segment(0x1004000, 0x7FC000, b"")))


def test_load_passes_the_plan(device_root):
    kernel_, device = make(device_root)
    kernel_.kexec_load(PLAN)
    assert device.loads == [(0x1000000, 3, 0x30002, [(b"\xeb\xfe", 2, 0x1000000, 0x1000),
                                                     (b"\x05\0\0\0", 4, 0x1001000, 0x3000),
                                                     (b"", 0, 0x1004000, 0x7FC000)])]
    assert device.log == [("open", "kexec_jump", "O_RDWR"), ("ioctl", "KJ_LOAD"), ("unpin",), ("close", "kexec_jump")]


def test_jump_back_helper_plan_has_one_empty_segment(device_root):
    from kexec_py.arch import X86_64
    from kexec_py.jump_back import empty_segment

    kernel_, device = make(device_root)
    kernel_.kexec_load(KexecPlan(0x9F123, 0x3E0002, (empty_segment(X86_64),)))
    assert device.loads == [(0x9F123, 1, 0x3E0002, [(b"", 0, 0x3FFFFFFFF000, 0)])]


def test_more_than_16_segments_is_refused_before_the_ioctl(device_root):
    kernel_, device = make(device_root)
    plan = KexecPlan(0x1000000, 0x30002, tuple(Segment(0x1000000 + i * 0x1000, 0x1000) for i in range(17)))
    with pytest.raises(KernelError, match=r"load failed: 17 segments, the module takes at most 16$"):
        kernel_.kexec_load(plan)
    assert device.log == []


def test_unload_and_status(device_root):
    status = struct.pack("<IIQIIQ", 1, 0x30002, 0x1000abc, 2, 5, 7)
    kernel_, device = make(device_root, status=status)
    st = kernel_.status()
    assert (st.loaded, st.entry, st.nr_pages, st.jumps) == (1, 0x1000ABC, 5, 7)
    kernel_.kexec_unload(0x30000)
    assert device.log == [("open", "kexec_jump", "O_RDWR"), ("ioctl", "KJ_STATUS"), ("close", "kexec_jump"),
                          ("open", "kexec_jump", "O_RDWR"), ("ioctl", "KJ_UNLOAD"), ("close", "kexec_jump")]


@pytest.mark.parametrize("attr, status_loaded, loaded, asked", [
    ("1\n", 0, True, False),  # the module's sysfs attribute answers, no ioctl
    ("0\n", 1, False, False),
    (None, 1, True, True),  # no attribute: KJ_STATUS
    (None, 0, False, True),
])
def test_kexec_loaded(device_root, attr, status_loaded, loaded, asked):
    if attr is not None:
        (device_root / "sys/class/misc/kexec_jump").mkdir(parents=True)
        (device_root / "sys/class/misc/kexec_jump/loaded").write_text(attr)
    kernel_, device = make(device_root, status=struct.pack("<IIQIIQ", status_loaded, 0, 0, 0, 0, 0))
    assert kernel_.kexec_loaded() is loaded
    assert (("ioctl", "KJ_STATUS") in device.log) is asked
    assert kernel_.kexec_loaded(crash=True) is False


def test_no_device_no_image_no_calls(tmp_path):
    kernel_, device = make(tmp_path)
    assert (kernel_.present(), kernel_.kexec_loaded()) == (False, False)
    assert device.log == []


# --- availability: the node, else modprobe (only when asked, once) ------------------------------

@pytest.mark.parametrize("node, modules_dep, modprobe_makes_it, available, modprobes", [
    (True, NO_TREE, False, True, 0),  # there already: no modprobe
    (False, NO_DEPMOD, True, True, 1),  # cannot tell from modules.dep: modprobe decides
    (False, NO_DEPMOD, False, False, 1),
    (False, "updates/dkms/kexec_jump.ko.xz:\n", True, True, 1),
    (False, "kernel/fs/fat/fat.ko:\n", True, False, 0),  # not installed: no modprobe
    (False, NO_TREE, True, False, 0),  # a kernel without modules (the harness's): no modprobe
])
def test_available(tmp_path, node, modules_dep, modprobe_makes_it, available, modprobes):
    kernel_, runs = shim_on_a_machine(tmp_path, node, modules_dep, modprobe_makes_it)
    assert kernel_.available() is available and kernel_.available() is available
    assert len(runs) == modprobes


@pytest.mark.parametrize("modules_dep, ruled_out, modprobes", [
    ("updates/dkms/kexec_jump.ko.xz:\n", True, 0),
    (NO_TREE, False, 1),
])
def test_available_takes_the_callers_reading_of_the_files(tmp_path, modules_dep, ruled_out, modprobes):
    """The CLI reads backend.shim_ruled_out() before it imports this module, and hands
    its answer on: the files here say the opposite, and are not read again."""
    kernel_, runs = shim_on_a_machine(tmp_path, False, modules_dep, True)
    assert kernel_.available(ruled_out=ruled_out) is not ruled_out
    assert len(runs) == modprobes


def shim_on_a_machine(tmp_path, node, modules_dep, modprobe_makes_it):
    """A ShimKernel on a machine running 6.1.0-57-amd64, /dev/kexec_jump there or not,
    whose modprobe makes the node or not; and the list of modprobe runs."""
    (tmp_path / "dev").mkdir()
    if node:
        (tmp_path / "dev/kexec_jump").write_text("")
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.1.0-57-amd64\n")
    write_module_tree(tmp_path, "6.1.0-57-amd64", modules_dep)
    runs = []

    def modprobe():
        runs.append(1)
        if modprobe_makes_it:
            (tmp_path / "dev/kexec_jump").write_text("")
        return modprobe_makes_it

    kernel_ = shim.ShimKernel(str(tmp_path), calls=FakeDevice(), modprobe=modprobe)
    kernel_._wait_for_device = lambda tries=20: kernel_.present()  # no 1 s wait in the failing rows
    return kernel_, runs


def test_another_root_never_runs_modprobe(tmp_path):
    assert shim.ShimKernel(str(tmp_path))._modprobe() is False
    assert shim.ShimKernel("/")._modprobe is shim.run_modprobe


# --- the jump: freeze, KJ_EXEC, thaw; every failure thaws -----------------------------------------

JUMP = [("open", "kexec_jump", "O_RDWR"), ("open", "snapshot", "O_WRONLY"), ("ioctl", "FREEZE"),
        ("ioctl", "KJ_EXEC"), ("ioctl", "UNFREEZE"), ("close", "snapshot"), ("close", "kexec_jump")]


def test_jump_sequence(device_root):
    kernel_, device = make(device_root)
    kernel_.reboot_kexec()
    assert device.log == JUMP
    assert not device.frozen and device.fds == {}


JUMP_FAILURES = [
    # id, failing call, errno, message after "kexec: ", calls made
    ("device-gone", ("open", "kexec_jump"), E.ENOENT,
     "{root}/dev/kexec_jump: the kexec_jump module is not loaded (modprobe kexec_jump)", JUMP[:1]),
    ("no-snapshot-dev", ("open", "snapshot"), E.ENOENT,
     "kexec failed: {root}/dev/snapshot is missing: this kernel was built without CONFIG_HIBERNATION_SNAPSHOT_DEV,"
     " which the kexec_jump module needs to freeze user space", JUMP[:2] + JUMP[-1:]),
    ("hibernation-unavailable", ("open", "snapshot"), E.EPERM,
     "kexec failed: {root}/dev/snapshot refused (EPERM): hibernation is unavailable (kernel lockdown or the"
     " nohibernate boot option), so user space cannot be frozen for the jump", JUMP[:2] + JUMP[-1:]),
    ("snapshot-busy", ("open", "snapshot"), E.EBUSY,
     "kexec failed: {root}/dev/snapshot is busy: a hibernation is in progress or another program has it open",
     JUMP[:2] + JUMP[-1:]),
    ("freeze-busy", ("ioctl", "FREEZE"), E.EBUSY,
     "kexec failed: could not freeze user space (EBUSY): a task refused to freeze (see dmesg)",
     JUMP[:3] + JUMP[-2:]),
    ("freeze-nomem", ("ioctl", "FREEZE"), E.ENOMEM, "kexec failed: could not freeze user space: out of memory (ENOMEM)",
     JUMP[:3] + JUMP[-2:]),
    ("freeze-other", ("ioctl", "FREEZE"), E.EIO, "kexec failed: Input/output error", JUMP[:3] + JUMP[-2:]),
    ("exec-nothing-loaded", ("ioctl", "KJ_EXEC"), E.EINVAL, "kexec failed: no kexec image is loaded", JUMP),
    ("exec-busy", ("ioctl", "KJ_EXEC"), E.EBUSY,
     "kexec failed: the kexec_jump module is busy (EBUSY): another load or jump is in progress, or a CPU could"
     " not be taken offline", JUMP),
    ("exec-device-suspend", ("ioctl", "KJ_EXEC"), E.EIO,
     "kexec failed: Input/output error: suspending devices or taking the other CPUs offline failed (see dmesg)",
     JUMP),
    ("exec-nomem", ("ioctl", "KJ_EXEC"), E.ENOMEM,
     "kexec failed: the kernel ran out of memory preparing the jump (ENOMEM)", JUMP),
    ("unfreeze-fails", ("ioctl", "UNFREEZE"), E.EIO, None, JUMP),  # close thaws: the jump still succeeded
]


@pytest.mark.parametrize("key, err, message, calls", [f[1:] for f in JUMP_FAILURES], ids=[f[0] for f in JUMP_FAILURES])
def test_jump_failures_thaw_and_say_why(device_root, key, err, message, calls):
    kernel_, device = make(device_root, fail={key: err})
    if message is None:
        kernel_.reboot_kexec()
    else:
        with pytest.raises(KernelError) as failed:
            kernel_.reboot_kexec()
        assert str(failed.value) == message.format(root=device_root)
        assert failed.value.errno == err
    assert device.log == calls
    assert not device.frozen and device.fds == {}  # thawed, every descriptor closed


def test_interrupt_during_the_jump_thaws(device_root):
    kernel_, device = make(device_root)
    real_ioctl = device.ioctl

    def ioctl(fd, request, arg=0):
        real_ioctl(fd, request, arg)
        if request == shim.KJ_EXEC:
            raise KeyboardInterrupt

    device.ioctl = ioctl
    with pytest.raises(KeyboardInterrupt):
        kernel_.reboot_kexec()
    assert device.log == JUMP and not device.frozen and device.fds == {}


def test_errors_are_made_after_the_thaw(device_root, monkeypatch):
    """The refined EPERM text reads files: that happens once user space runs again."""
    kernel_, device = make(device_root, fail={("ioctl", "KJ_EXEC"): E.EPERM})
    states = []
    monkeypatch.setattr(shim, "permission_message", lambda root: states.append(device.frozen) or "denied")
    with pytest.raises(KernelError, match="^kexec failed: denied$"):
        kernel_.reboot_kexec()
    assert states == [False]


LOAD_FAILURES = [
    # errno of KJ_LOAD, message after "{device}: load failed: "
    (E.EINVAL, "the kexec_jump module rejected the segment list or flags (EINVAL)"),
    (E.EADDRNOTAVAIL, "a segment lies where the kernel does not accept a destination"),
    (E.EBUSY, "another kexec load or exec is in progress; try again"),
    (E.ENOMEM, "the kernel could not allocate pages for the image"),
    (E.EFAULT, "the kernel could not read a segment buffer (a kexec-py bug)"),
    (E.ENOTTY, "not the kexec_jump device this kexec-py knows (ENOTTY): module and tool versions differ?"),
    (E.E2BIG, os.strerror(E.E2BIG)),
]


@pytest.mark.parametrize("err, message", LOAD_FAILURES)
def test_load_failures(device_root, err, message):
    kernel_, device = make(device_root, fail={("ioctl", "KJ_LOAD"): err})
    with pytest.raises(KernelError) as failed:
        kernel_.kexec_load(PLAN)
    assert (str(failed.value), failed.value.errno) == (f"{device_root}/dev/kexec_jump: load failed: {message}", err)
    assert device.log[-2:] == [("unpin",), ("close", "kexec_jump")]


@pytest.mark.parametrize("call, step", [
    (lambda k: k.kexec_load(PLAN), "load failed: "),
    (lambda k: k.kexec_unload(0), "unload failed: "),
    (lambda k: k.reboot_kexec(), None),
])
@pytest.mark.parametrize("err", [E.EPERM, E.EACCES])
def test_permission_errors_name_the_cause(device_root, monkeypatch, call, step, err):
    request = {None: "KJ_EXEC", "load failed: ": "KJ_LOAD", "unload failed: ": "KJ_UNLOAD"}[step]
    kernel_, _ = make(device_root, fail={("ioctl", request): err})
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(KernelError) as failed:
        call(kernel_)
    prefix = "kexec failed: " if step is None else f"{device_root}/dev/kexec_jump: {step}"
    assert str(failed.value) == prefix + kernel.NOT_ROOT


def test_opening_the_device_as_a_user(device_root, monkeypatch):
    kernel_, _ = make(device_root, fail={("open", "kexec_jump"): E.EACCES})
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(KernelError, match=r"/dev/kexec_jump: permission denied: kexec needs root \(CAP_SYS_BOOT\)$"):
        kernel_.status()


# --- EPERM told apart (shared with the kernel backend) -------------------------------------------

def tree(tmp_path, disabled=None, lockdown=None, cap_eff=None):
    if disabled is not None:
        (tmp_path / "proc/sys/kernel").mkdir(parents=True)
        (tmp_path / "proc/sys/kernel/kexec_load_disabled").write_text(f"{disabled}\n")
    if lockdown is not None:
        (tmp_path / "sys/kernel/security").mkdir(parents=True)
        (tmp_path / "sys/kernel/security/lockdown").write_text(lockdown + "\n")
    if cap_eff is not None:
        (tmp_path / "proc/self").mkdir(parents=True)
        (tmp_path / "proc/self/status").write_text(f"Name:\tkexec\nCapEff:\t{cap_eff}\n")
    return str(tmp_path)


ALL_CAPS, NO_BOOT_CAP = "000001ffffffffff", "000001ffffbfffff"  # CapEff; bit 22 is CAP_SYS_BOOT
DISABLED = "permission denied: sysctl kernel.kexec_load_disabled is 1 (it stays set until the next boot)"
INTEGRITY = ("permission denied: the kernel is in lockdown mode (integrity, as under Secure Boot), which forbids"
             " kexec_load")

PERMISSION = [
    # id, euid, kexec_load_disabled, lockdown, CapEff -> message
    ("not-root", 1000, 1, "none integrity [confidentiality]", "0", "permission denied: kexec needs root (CAP_SYS_BOOT)"),
    ("disabled", 0, 1, "[none] integrity confidentiality", ALL_CAPS, DISABLED),
    ("integrity", 0, 0, "none [integrity] confidentiality", ALL_CAPS, INTEGRITY),
    ("confidentiality", 0, 0, "none integrity [confidentiality]", ALL_CAPS,
     "permission denied: the kernel is in lockdown mode (confidentiality, as under Secure Boot), which forbids"
     " kexec_load"),
    ("disabled-and-locked-down", 0, 1, "none [integrity] confidentiality", ALL_CAPS,
     DISABLED + "; " + INTEGRITY[len("permission denied: "):]),
    ("no-cap-sys-boot", 0, 0, "[none] integrity confidentiality", NO_BOOT_CAP,
     "permission denied: this process lacks CAP_SYS_BOOT (a container or a reduced capability set?)"),
    ("unknown-cause", 0, 0, "[none] integrity confidentiality", ALL_CAPS,
     "permission denied: kexec needs root (CAP_SYS_BOOT); also check sysctl kernel.kexec_load_disabled and"
     " kernel lockdown"),
    ("garbage-status", 0, 0, "[none] integrity confidentiality", "zz", kernel.LOAD_ERRORS[E.EPERM]),
    ("nothing-readable", 0, None, None, None, kernel.LOAD_ERRORS[E.EPERM]),
]


@pytest.mark.parametrize("euid, disabled, lockdown, cap_eff, message", [p[1:] for p in PERMISSION],
                         ids=[p[0] for p in PERMISSION])
def test_permission_message(tmp_path, euid, disabled, lockdown, cap_eff, message):
    assert kernel.permission_message(tree(tmp_path, disabled, lockdown, cap_eff), euid) == message


@pytest.mark.parametrize("text, cmdline, mode", [
    ("[none] integrity confidentiality", "lockdown=integrity", None),  # securityfs has the last word
    ("none [integrity] confidentiality", None, "integrity"),
    ("none integrity [confidentiality]", None, "confidentiality"),
    ("none integrity confidentiality", None, None),  # no brackets: cannot tell, not locked down
    (None, "console=ttyS0 lockdown=integrity quiet", "integrity"),  # securityfs not mounted: the command line
    (None, "lockdown=none lockdown=confidentiality", "confidentiality"),
    (None, "lockdown=bogus", None),
    (None, "console=ttyS0", None),
    (None, None, None),
])
def test_lockdown_mode(tmp_path, text, cmdline, mode):
    root = tree(tmp_path, lockdown=text)
    if cmdline is not None:
        (tmp_path / "proc").mkdir(exist_ok=True)
        (tmp_path / "proc/cmdline").write_text(cmdline + "\n")
    assert kernel.lockdown_mode(root) == mode


@pytest.mark.parametrize("device, shim_imported", [(False, []), (True, ["kexec_py.shim"])])
def test_kexec_e_imports_no_more_than_it_needs(tmp_path, device, shim_imported):
    """The -e path: with no /dev/kexec_jump, not even kexec_py.shim; with it, the shim
    (which finds nothing loaded here) but no cffi for it, no fcntl, no typing, no subprocess."""
    if device:
        (tmp_path / "dev").mkdir()
        (tmp_path / SHIM_DEVICE).write_text("")
        (tmp_path / shim.LOADED_ATTR).parent.mkdir(parents=True)
        (tmp_path / shim.LOADED_ATTR).write_text("0\n")
    probe = ("import sys; before = set(sys.modules); from kexec_py import cli\n"
             "class K:\n"
             "    def kexec_loaded(self, crash=False): return True\n"
             "    def sync(self): pass\n"
             "    def reboot_kexec(self): pass\n"
             "code = cli.main(['--machine-root', sys.argv[1], '-e', '-x'], kernel_factory=lambda a: K())\n"
             "print(code, *sorted(m for m in ('fcntl', 'typing', 'subprocess', 'gzip', 'kexec_py.backend',"
             " 'kexec_py._kexec_ffi', 'kexec_py.shim') if m in set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", *shim_imported]


# --- the real DeviceCalls, on files that are no device (ENOTTY): nothing reaches a kernel ---------

def test_pin_gives_the_addresses_of_the_data():
    from kexec_py.kernel import libc

    calls = shim.DeviceCalls()
    data, view = b"\xeb\xfe", memoryview(bytearray(b"\x05\0\0\0"))
    addresses = calls.pin([data, b"", view])
    ffi, _ = libc()
    assert addresses[1] == 0 and all(addresses[i] for i in (0, 2))
    assert ffi.buffer(ffi.cast("char *", addresses[0]), 2)[:] == data
    assert ffi.buffer(ffi.cast("char *", addresses[2]), 4)[:] == bytes(view)
    calls.unpin()


@pytest.mark.parametrize("call, message", [
    (lambda k: k.status(), "{root}/dev/kexec_jump: status failed: "),
    (lambda k: k.kexec_load(PLAN), "{root}/dev/kexec_jump: load failed: "),
    (lambda k: k.kexec_unload(0), "{root}/dev/kexec_jump: unload failed: "),
    (lambda k: k.reboot_kexec(), "kexec failed: "),  # FREEZE on the fake snapshot file: ENOTTY, nothing frozen
])
def test_real_calls_on_a_plain_file_say_enotty(tmp_path, call, message):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kexec_jump").write_text("")
    (tmp_path / "dev/snapshot").write_text("")
    kernel_ = shim.ShimKernel(str(tmp_path))
    with pytest.raises(KernelError) as failed:
        call(kernel_)
    assert failed.value.errno == E.ENOTTY
    assert str(failed.value).startswith(message.format(root=tmp_path))
