"""Fixtures for the unit tests (helpers they use are in unit_support.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from kexec_py import cli
from unit_support import REPO, CliResult, ElfBuilder, FakeKernel, FakeShim


@pytest.fixture(scope="session")
def elf_builder(tmp_path_factory) -> ElfBuilder:
    return ElfBuilder(tmp_path_factory.mktemp("elf"))


@pytest.fixture(scope="session")
def tiny_elf32(elf_builder) -> str:
    return elf_builder.tiny(32)


@pytest.fixture(scope="session")
def tiny_elf64(elf_builder) -> str:
    return elf_builder.tiny(64)


@pytest.fixture
def run_cli(capsys):
    """run_cli(argv, kernel=None, shim=None) -> CliResult: kexec_py.cli.main in-process,
    with a fake kernel and a fake /dev/kexec_jump (default: absent, not loadable);
    SystemExit (argparse errors) is turned into its exit code."""

    def run(argv, kernel: FakeKernel | None = None, shim: FakeShim | None = None) -> CliResult:
        def factory(args):
            if kernel is None:
                raise AssertionError("this command must not need the kernel")
            return kernel

        def shim_factory(args):
            if kernel is None and shim is None:
                raise AssertionError("this command must not need the kernel")
            return FakeShim() if shim is None else shim

        capsys.readouterr()
        try:
            code = cli.main([str(a) for a in argv], kernel_factory=factory, shim_factory=shim_factory)
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def purgatory_build(tmp_path_factory) -> str:
    """csrc/purgatory built once per session: the directory with purgatory.ro, purgatory64.ro
    and their objects."""
    out = tmp_path_factory.mktemp("purgatory-build")
    result = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "csrc", "purgatory"), f"O={out}"],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"building csrc/purgatory failed:\n{result.stdout}{result.stderr}")
    return str(out / "purgatory")


@pytest.fixture(scope="session")
def purgatory_ro(purgatory_build) -> str:
    return os.path.join(purgatory_build, "purgatory.ro")


@pytest.fixture(scope="session")
def purgatory64_ro(purgatory_build) -> str:
    return os.path.join(purgatory_build, "purgatory64.ro")


@pytest.fixture(scope="session")
def purgatory(purgatory_ro):
    from kexec_py.purgatory import Purgatory

    return Purgatory.from_file(purgatory_ro)
