"""kexec-py installed as a user installs it on Debian's own kernel: both .debs with apt, in a
guest whose rootfs carries apt, dkms, gcc and the running kernel's headers but no module of
ours and no network. DKMS builds kexec_jump.ko from kexec-py-dkms, and the seed's two
commands work as typed. About 2.5 minutes under TCG, most of it the module build."""

from __future__ import annotations

import json
import re

import pytest

from test_kexec_jump import GREETING, JUMP_TIMEOUT
from vmharness.guest import Guest

pytestmark = pytest.mark.vm

AMD64 = "debian:linux-image-amd64"
INSTALL = "apt install ./kexec-py_*.deb ./kexec-py-dkms_*.deb"
LOAD = "kexec --load-preserve-context --args-none phy_mode"
DRY_RUN = "kexec --dry-run --json --load-preserve-context --args-none phy_mode"
DKMS_MODULE = "kexec-py/0.1.0"
# apt runs DKMS, which builds the module under TCG: about 100 s on an idle 2-core host
INSTALL_TIMEOUT = 900
ALL_CPUS = "0-1"


def online(g: Guest) -> str:
    return g.check("cat /sys/devices/system/cpu/online").strip()


def test_apt_install_builds_the_module_with_dkms_and_the_seed_works(guest_factory) -> None:
    g = guest_factory(arch="x86_64", kernel=AMD64, smp=2, dkms=True)
    release = g.check("uname -r").strip()
    modules = f"/lib/modules/{release}"
    # before: the running kernel's headers, dkms, no kexec, no kexec_jump module, no package
    # lists (apt has only the installed packages and the two .debs to go by)
    g.check(f"test -e {modules}/build/Makefile && command -v dkms && command -v gcc && command -v make")
    assert g.run("command -v kexec").rc != 0
    assert g.run("modinfo kexec_jump").rc != 0
    assert g.check("ls /var/lib/apt/lists | grep -v -x -e lock -e partial || true").strip() == ""
    assert online(g) == ALL_CPUS

    rc, output = g.run(INSTALL, timeout=INSTALL_TIMEOUT)
    assert rc == 0, output
    status = g.check("dkms status")
    assert re.search(rf"^{re.escape(DKMS_MODULE)}, {re.escape(release)}, x86_64: installed$",
                     status, re.M), status
    built = g.check(f"ls {modules}/updates/dkms/").split()
    assert built and all(re.fullmatch(r"kexec_jump\.ko(\.\w+)?", name) for name in built), built
    assert g.check("modinfo -n kexec_jump").strip().startswith(f"{modules}/updates/dkms/kexec_jump.ko")

    # the seed, as typed
    rc, output = g.run(LOAD)
    assert rc == 0, output
    assert g.run("grep -q '^kexec_jump ' /proc/modules").rc == 0, "kexec loaded the DKMS-built module"
    for call in (1, 2):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output
        assert GREETING.format(call) in output
        assert online(g) == ALL_CPUS, f"a CPU stayed offline after jump {call}"

    plan = json.loads(g.check(DRY_RUN))
    assert plan["backend"] == "shim", plan
    assert not re.search(r"WARNING|BUG:|Oops", g.check("dmesg")), g.check("dmesg | tail -50")
