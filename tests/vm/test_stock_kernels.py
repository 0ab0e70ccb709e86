"""The harness boots stock Debian bookworm kernels (run-vm --kernel debian:PACKAGE) with 2 CPUs,
the kexec-py .deb and our kexec_jump module in the guest's modules tree (not loaded here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import pytest

from vmharness.arch import guest_arch
from vmharness.guest import Guest
from vmharness.stock import StockKernel, fetch_kernel

pytestmark = pytest.mark.vm


class StockCase(NamedTuple):
    arch: str
    package: str
    machine: str   # uname -m


STOCK_KERNELS = [
    pytest.param(StockCase("x86_64", "linux-image-amd64", "x86_64"), id="amd64"),
    pytest.param(StockCase("i386", "linux-image-686-pae", "i686"), id="686-pae"),
]


@pytest.fixture(scope="module", params=STOCK_KERNELS)
def case(request: pytest.FixtureRequest) -> StockCase:
    return request.param


@pytest.fixture(scope="module")
def stock_kernel(case: StockCase) -> StockKernel:
    """The versioned package the metapackage resolves to, downloaded and extracted."""
    return fetch_kernel(case.package, guest_arch(case.arch))


@pytest.fixture(scope="module")
def stock_guest(case: StockCase, shared_guests) -> Guest:
    """The session's shell guest on the stock kernel (2 CPUs) with our module."""
    return shared_guests(case.arch, f"debian:{case.package}")


def test_runs_the_resolved_release(stock_guest: Guest, stock_kernel: StockKernel,
                                   case: StockCase) -> None:
    assert stock_guest.check("uname -r").strip() == stock_kernel.release
    assert stock_guest.check("uname -m").strip() == case.machine
    assert stock_kernel.package.name == f"linux-image-{stock_kernel.release}"


def test_two_cpus_online(stock_guest: Guest) -> None:
    assert stock_guest.check("nproc").strip() == "2"
    assert stock_guest.check("cat /sys/devices/system/cpu/online").strip() == "0-1"


def test_kexec_py_deb_installed(stock_guest: Guest) -> None:
    assert stock_guest.check("kexec --version").startswith("kexec-py ")
    assert stock_guest.check("dpkg-query -W -f '${Status}' kexec-py").strip() == "install ok installed"


def test_shim_module_found_under_updates(stock_guest: Guest, stock_kernel: StockKernel) -> None:
    """modprobe finds our module by name, built for this release (the shared guest may
    have it loaded already: it is removed first)."""
    release = stock_kernel.release
    assert (stock_guest.check("modinfo -F filename kexec_jump").strip()
            == f"/lib/modules/{release}/updates/kexec_jump.ko")
    assert stock_guest.check("modinfo -F vermagic kexec_jump").split()[0] == release
    stock_guest.check("kexec -u && if grep -q '^kexec_jump ' /proc/modules; then rmmod kexec_jump; fi")
    assert "kexec_jump" not in stock_guest.check("cat /proc/modules")
    stock_guest.check("modprobe kexec_jump && grep -q '^kexec_jump ' /proc/modules")


def test_paging_mode(stock_guest: Guest, case: StockCase) -> None:
    """TCG's -cpu max has LA57, so amd64 runs 5-level paging (the kernel clears the flag
    when it does not); a 32-bit kernel never does."""
    has_la57 = "la57" in stock_guest.check("grep -m1 '^flags' /proc/cpuinfo").split()
    assert has_la57 == (case.arch == "x86_64")


@pytest.fixture(scope="module")
def plain_amd64_guest(_session_factory) -> Iterator[Guest]:
    """A stock amd64 guest with 4-level paging (no5lvl) and no kexec_jump module."""
    guest = _session_factory(arch="x86_64", kernel="debian:linux-image-amd64", append="no5lvl",
                             shim=False)
    yield guest
    guest.stop()


def test_no5lvl_boots_with_4_level_paging(plain_amd64_guest: Guest) -> None:
    assert "no5lvl" in plain_amd64_guest.check("cat /proc/cmdline").split()
    assert "la57" not in plain_amd64_guest.check("grep -m1 '^flags' /proc/cpuinfo").split()
    assert plain_amd64_guest.check("nproc").strip() == "2"


def test_without_shim_the_module_is_absent(plain_amd64_guest: Guest) -> None:
    rc, output = plain_amd64_guest.run("modinfo kexec_jump")
    assert rc != 0, output
    plain_amd64_guest.check("[ ! -e /lib/modules/$(uname -r)/updates ]")


def test_boots_a_kernel_file_without_modules(guest_factory) -> None:
    """--kernel PATH: the user's own bzImage (here the stock one), no modules tree; smp=1."""
    kernel = fetch_kernel("linux-image-amd64", guest_arch("x86_64"))
    guest = guest_factory(arch="x86_64", kernel=str(kernel.vmlinuz), smp=1)
    assert guest.check("uname -r").strip() == kernel.release
    assert guest.check("nproc").strip() == "1"
    guest.check("[ ! -e /lib/modules/$(uname -r) ]")
