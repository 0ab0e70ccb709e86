"""The harness's dkms guests (a user's machine that builds kexec_jump.ko with DKMS): which
header packages its rootfs gets, its cache key beside the base rootfs's, run-vm --dkms."""

from pathlib import Path

import pytest

from vmharness import cli
from vmharness.arch import I386, X86_64
from vmharness.artifacts import DKMS_MEM_MB
from vmharness.rootfs import DKMS_PACKAGES, PACKAGES, cache_key, dkms_cache_key
from vmharness.stock import guest_header_packages

HEADERS_AMD64 = """linux-headers-6.1.0-57-amd64
  Depends: linux-headers-6.1.0-57-common
  Depends: linux-kbuild-6.1
  Depends: linux-compiler-gcc-12-x86
    linux-compiler-gcc-12-x86:i386
"""
HEADERS_686_PAE = """linux-headers-6.1.0-50-686-pae:i386
  Depends: <linux-headers-6.1.0-50-common:i386>
    linux-headers-6.1.0-50-common
  Depends: linux-kbuild-6.1:i386
    linux-kbuild-6.1
  Depends: linux-compiler-gcc-12-x86:i386
    linux-compiler-gcc-12-x86
"""
DEBS = [Path("/c/linux-headers-6.1.0-57-amd64_6.1.192-3_amd64.deb"),
        Path("/c/linux-headers-6.1.0-57-common_6.1.192-3_all.deb")]


@pytest.mark.parametrize("output, packages", [
    (HEADERS_AMD64, ["linux-headers-6.1.0-57-common", "linux-kbuild-6.1", "linux-compiler-gcc-12-x86"]),
    (HEADERS_686_PAE, ["linux-headers-6.1.0-50-common", "linux-kbuild-6.1", "linux-compiler-gcc-12-x86"]),
])
def test_guest_header_packages_include_the_compiler(output: str, packages: list[str]) -> None:
    assert guest_header_packages(output) == packages


def test_dkms_rootfs_has_apt_and_dkms_but_no_kexec() -> None:
    assert {"apt", "dkms"} <= set(DKMS_PACKAGES)
    assert "kexec-tools" in PACKAGES and "kexec-tools" not in DKMS_PACKAGES


def test_dkms_rootfs_key_follows_the_headers_and_differs_from_the_base() -> None:
    key = dkms_cache_key(X86_64, DEBS)
    assert key == dkms_cache_key(X86_64, [Path("/elsewhere") / deb.name for deb in DEBS])
    assert key != dkms_cache_key(X86_64, DEBS[:1])
    assert key != dkms_cache_key(I386, DEBS)
    assert key not in {cache_key(X86_64), cache_key(I386)}


def test_run_vm_dkms_needs_a_stock_kernel_and_gets_more_memory(capsys) -> None:
    args = cli.parse_args(["--arch", "x86_64", "--kernel", "debian:linux-image-amd64", "--dkms",
                           "--shell"])
    assert args.dkms and args.mem == DKMS_MEM_MB
    assert cli.parse_args(["--arch", "x86_64", "--kernel", "debian:linux-image-amd64",
                           "--shell"]).mem == 512
    assert cli.parse_args(["--arch", "x86_64", "--kernel", "debian:linux-image-amd64", "--dkms",
                           "--mem", "2048", "--shell"]).mem == 2048
    for argv in (["--dkms", "--shell"],
                 ["--kernel", "debian:linux-image-amd64", "--dkms", "--shim-source", "/x", "--shell"]):
        with pytest.raises(SystemExit):
            cli.parse_args(argv)
    assert "--dkms" in capsys.readouterr().err
