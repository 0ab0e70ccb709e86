"""Debian's kdump service on kexec-py: the evidence for `Provides: kexec-tools`.

The guest is a machine set up for kdump as Debian sets it up (the harness's kdump rootfs:
kdump-tools and makedumpfile installed, with kexec-tools, which kdump-tools depends on),
booted with crashkernel= on the harness's x86_64 kernel. Its /init installs our .deb with
dpkg -i, as a user would: Conflicts + Replaces + Provides let dpkg remove kexec-tools with
kdump-tools' dependency still met, and without taking our /usr/sbin/kexec along (kexec-tools'
/sbin/kexec is the same file on merged /usr: debian/kexec-py.preinst). Then `kdump-config load` loads the crash kernel through
our /sbin/kexec, `kdump-config status` says it is ready, and `kdump-config unload` unloads it.

What Debian's linux-image and kdump-tools' kernel hook would have made is put in place by
hand: the running kernel as /boot/vmlinuz-$(uname -r), and as KDUMP_INITRD the tiny crash
initramfs of test_crash_kernel.py instead of the one mkinitramfs would build (the guest has
no initramfs-tools). That a loaded crash kernel boots and finds the crashed kernel's memory
in /proc/vmcore is test_crash_kernel.py's (same kernel, same loader). About 40 s under TCG.
"""

from __future__ import annotations

import pytest

from test_crash_kernel import CRASH_INITRD, KERNEL, LOAD_TIMEOUT, RESERVED, crash_initrd, images
from vmharness.overlay import RunSpec

pytestmark = pytest.mark.vm

DEFAULTS = "/etc/default/kdump-tools"
READY, NOT_READY = "current state   : ready to kdump", "current state   : Not ready to kdump"


def test_kdump_config_loads_and_unloads_the_crash_kernel_through_kexec_py(guest_factory, tmp_path_factory) -> None:
    boot = images(tmp_path_factory, "x86_64")
    initrd = crash_initrd(tmp_path_factory, "x86_64")
    g = guest_factory(arch="x86_64", append=RESERVED, kdump=True, run=RunSpec(adds=(boot.kernel, initrd)))
    assert "dpkg -i kexec-py.deb failed" not in g.console
    status = g.check("dpkg-query -W -f='${Package} ${db:Status-Status}\\n' kexec-py kdump-tools kexec-tools")
    # kexec-tools removed in favour of kexec-py (its conffiles stay), kdump-tools' dependency still met
    assert dict(line.split() for line in status.splitlines()) == {
        "kexec-py": "installed", "kdump-tools": "installed", "kexec-tools": "config-files"}, status
    assert g.check("dpkg -S /usr/sbin/kexec").strip() == "kexec-py: /usr/sbin/kexec"
    # kexec-tools' /sbin/kexec is our /usr/sbin/kexec (merged /usr): its removal left it there,
    # thanks to preinst's protective diversion, which postinst took away again
    assert g.check("/sbin/kexec --version").startswith("kexec-py ")  # kdump-config's KEXEC
    assert g.check("dpkg-divert --list '*kexec*'").strip() == ""

    g.check(f"cp {KERNEL} /boot/vmlinuz-$(uname -r)")
    g.check(f"printf 'USE_KDUMP=1\\nKDUMP_INITRD={CRASH_INITRD}\\n' >> {DEFAULTS}")
    assert NOT_READY in g.check("kdump-config status")
    rc, output = g.run("kdump-config load", timeout=LOAD_TIMEOUT)
    assert rc == 0 and "loaded kdump kernel" in output, output
    assert READY in g.check("kdump-config status")
    assert g.check("cat /sys/kernel/kexec_crash_loaded").strip() == "1"
    # the command kdump-config ran (its kexec_cmd record), with kdump-tools' crash kernel line
    command = g.check("cat /var/crash/kexec_cmd").strip()
    assert command.startswith("/sbin/kexec -p --command-line=") and command.endswith(
        f"--initrd={CRASH_INITRD} /var/lib/kdump/vmlinuz"), command
    assert "systemd.unit=kdump-tools-dump.service nr_cpus=1" in command and RESERVED not in command, command

    rc, output = g.run("kdump-config unload")
    assert rc == 0 and "unloaded kdump kernel" in output, output
    assert NOT_READY in g.check("kdump-config status")
    assert g.check("cat /sys/kernel/kexec_crash_loaded").strip() == "0"
