"""The harness's kdump guests (Debian's kdump-tools installed, with the kexec-tools our .deb
replaces): the rootfs's packages, its cache key beside the base rootfs's, run-vm --kdump."""

import pytest

from vmharness import cli
from vmharness.arch import I386, X86_64
from vmharness.artifacts import prepare
from vmharness.build import BuildError
from vmharness.rootfs import KDUMP_PACKAGES, PACKAGES, cache_key


def test_kdump_rootfs_is_the_base_with_kdump_tools() -> None:
    assert KDUMP_PACKAGES[:len(PACKAGES)] == PACKAGES
    assert {"kdump-tools", "makedumpfile", "kexec-tools"} <= set(KDUMP_PACKAGES)


def test_kdump_rootfs_has_its_own_cache_key() -> None:
    assert cache_key(X86_64) == cache_key(X86_64, kdump=False)
    assert cache_key(X86_64, kdump=True) not in {cache_key(X86_64), cache_key(I386), cache_key(I386, kdump=True)}


def test_run_vm_kdump() -> None:
    assert cli.parse_args(["--arch", "x86_64", "--kdump", "--shell"]).kdump
    assert not cli.parse_args(["--arch", "x86_64", "--shell"]).kdump


def test_run_vm_kdump_and_dkms_are_two_machines(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--arch", "x86_64", "--kernel", "debian:linux-image-amd64", "--dkms", "--kdump", "--shell"])
    assert "--dkms and --kdump are two different machines" in capsys.readouterr().err


def test_prepare_refuses_dkms_and_kdump(tmp_path) -> None:
    with pytest.raises(BuildError, match="choose one"):
        prepare(tmp_path, arch=X86_64, kernel="debian:linux-image-amd64", dkms=True, kdump=True)
