"""Fixtures for the unit tests (helpers they use are in unit_support.py)."""

from __future__ import annotations

import pytest

from kexec_py import cli
from unit_support import CliResult, ElfBuilder, FakeKernel


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
    """run_cli(argv, kernel=None) -> CliResult: kexec_py.cli.main in-process, with a
    fake kernel; SystemExit (argparse errors) is turned into its exit code."""

    def run(argv, kernel: FakeKernel | None = None) -> CliResult:
        def factory(args):
            if kernel is None:
                raise AssertionError("this command must not need the kernel")
            return kernel

        capsys.readouterr()
        try:
            code = cli.main([str(a) for a in argv], kernel_factory=factory)
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run

