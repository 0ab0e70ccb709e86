"""Fixtures for tests that boot QEMU guests (see qemu-harness/).

`guest`: one shell-mode i386 guest on the patched kernel, shared by the session; for
tests that leave it usable. `arch_guest`: the same for each guest architecture (a test
that takes it runs once per arch; `arch` names the one). `shared_guests(arch, kernel)`:
the session's shared guest on any kernel (Debian's too), booted on first use. `guest_factory`: fresh guests
(arch, kernel variant or stock Debian kernel, CPUs, memory, command line, script, a user's
machine that installs the .debs itself, a disk, network cards) for tests that crash or
reboot them. A failing test's report carries the console of every guest it used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "qemu-harness"))

from vmharness.arch import ARCHES  # noqa: E402
from vmharness.artifacts import DKMS_MEM_MB, prepare  # noqa: E402
from vmharness.guest import Guest  # noqa: E402
from vmharness.kernel import Variant  # noqa: E402
from vmharness.overlay import RunSpec  # noqa: E402

CONSOLE_LINES_IN_REPORT = 500
DEFAULT_MEM_MB = 512


class GuestFactory:
    """Boots fresh guests and stops them all at teardown."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self._tmp = tmp_path_factory
        self.guests: list[Guest] = []

    def __call__(self, variant: Variant = Variant.PATCHED, mem_mb: int | None = None,
                 append: str = "", run: RunSpec = RunSpec(), arch: str = "i386",
                 kernel: str | None = None, smp: int | None = None, shim: bool = True,
                 dkms: bool = False, disk: str | None = None, nics: tuple[str, ...] = (),
                 vga: bool = False, kdump: bool = False) -> Guest:
        """A started guest; in shell mode (no run.script) its shell is ready for run().

        kernel: None for the harness's build of `variant`, "debian:linux-image-amd64" (any
        Debian linux-image-* package of `arch`) for a stock kernel with our kexec_jump module
        (without it if not `shim`), or a bzImage path; smp: CPUs (default 1 for the
        harness's kernels, 2 for the others); mem_mb: default 512 (DKMS_MEM_MB with dkms).
        dkms: with a stock `kernel`, a user's machine: the dkms rootfs (apt, dkms, gcc, the
        kernel's headers), no host-built module (whatever `shim` says), and both .debs in
        /root, not installed (`apt install ./kexec-py_*.deb ./kexec-py-dkms_*.deb`).
        disk: a blank virtio-blk disk of this size ("64M"), ext4 on /mnt/disk when the shell
        is ready; nics: network cards ("virtio-net", "e1000") joined by a QEMU hub, to each
        other only (run-vm --disk, --nic); vga: QEMU's std VGA card (run-vm --vga).
        kdump: the kdump rootfs, Debian's kdump-tools installed (run-vm --kdump).
        """
        if dkms:
            run, shim = replace(run, debs_in_root=True), False
        mem_mb = mem_mb or (DKMS_MEM_MB if dkms else DEFAULT_MEM_MB)
        boot = prepare(self._tmp.mktemp("guest"), run, variant, mem_mb, append, arch, kernel,
                       smp, shim, dkms=dkms, disk=disk, nics=nics, vga=vga, kdump=kdump)
        guest = Guest(boot)
        self.guests.append(guest)
        guest.start()
        if run.script is None:
            guest.wait_for_shell()
        return guest

    def stop_all(self) -> None:
        for guest in self.guests:
            guest.stop()


@pytest.fixture(scope="session")
def _session_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestFactory]:
    factory = GuestFactory(tmp_path_factory)
    yield factory
    factory.stop_all()


class SharedGuests:
    """The session's shell guests, one per (arch, kernel), each booted on first use;
    kernel as GuestFactory takes it (None: the harness's build). For tests that leave
    a guest usable: nothing loaded, nothing locked down, the kexec_jump module loadable."""

    def __init__(self, factory: GuestFactory):
        self._factory = factory
        self._guests: dict[tuple[str, str | None], Guest] = {}

    def __call__(self, arch: str, kernel: str | None = None) -> Guest:
        guest = self._guests.get((arch, kernel))
        if guest is None or not guest.alive:
            guest = self._guests[(arch, kernel)] = self._factory(arch=arch, kernel=kernel)
        return guest

    @property
    def guests(self) -> list[Guest]:
        return list(self._guests.values())


@pytest.fixture(scope="session")
def shared_guests(_session_factory: GuestFactory) -> SharedGuests:
    return SharedGuests(_session_factory)


@pytest.fixture(scope="session")
def guest(shared_guests: SharedGuests) -> Guest:
    return shared_guests("i386")


@pytest.fixture(params=list(ARCHES))
def arch(request: pytest.FixtureRequest) -> str:
    """Each guest architecture in turn."""
    return request.param


@pytest.fixture
def arch_guest(arch: str, shared_guests: SharedGuests) -> Guest:
    return shared_guests(arch)


@pytest.fixture
def guest_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestFactory]:
    factory = GuestFactory(tmp_path_factory)
    yield factory
    factory.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        guests = value.guests if isinstance(value, (GuestFactory, SharedGuests)) else [value]
        for index, guest in enumerate(g for g in guests if isinstance(g, Guest)):
            lines = guest.console.splitlines()[-CONSOLE_LINES_IN_REPORT:]
            report.sections.append((f"guest console ({name} #{index})", "\n".join(lines)))
