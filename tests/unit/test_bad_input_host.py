"""The bad-input table of tests/vm/test_bad_input.py, on the host: every row that needs no
kernel (host=True), for each arch it runs on, through kexec_py.cli.main with --dry-run
against a recorded QEMU guest (tests/data/memmaps, plus the guest's /proc/cmdline) and a
fake kernel and /dev/kexec_jump that must not be touched. The bad files are made by the
same bad_files.py as in the guests, from the tiny test ELFs instead of phy_mode.
The same checks as in the guest: one line on stderr, the exit code, no traceback, nothing
on stdout, no hang (a watchdog interrupts a row after ROW_SECONDS)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from unit_support import REPO, FakeKernel, FakeShim, recorded_tree

VM_TESTS = Path(REPO) / "tests" / "vm"
ROW_SECONDS = 10
GUEST_CMDLINE = "console=ttyS0 panic=-1 rootfstype=ramfs"  # vmharness.guest.BASE_CMDLINE
# The guests' archs: where each kernel's rows run on the host
HOST_ARCH = {"i386": "i386", "x86_64": "x86_64", "amd64": "x86_64"}


def _load(name: str):
    """A module of tests/vm by path: the unit tests do not put tests/vm on sys.path."""
    spec = importlib.util.spec_from_file_location(f"bad_input_{name}", VM_TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


table = _load("test_bad_input")
bad_files = _load("bad_files")


def host_cases() -> list:
    cases = []
    for row in table.BAD_INPUT:
        archs = sorted({HOST_ARCH[k] for k in row.kernels if k in HOST_ARCH})
        if row.host:
            cases += [pytest.param(arch, row, id=f"{arch}-{row.name}") for arch in archs]
    return cases


@pytest.fixture(scope="module")
def host(tmp_path_factory, elf_builder):
    """arch -> (machine root, bad files directory, payload(arch) -> tiny ELF path)."""
    tiny = {"i386": elf_builder.tiny(32), "x86_64": elf_builder.tiny(64)}
    setups = {}
    for arch in tiny:
        root = tmp_path_factory.mktemp(f"machine-{arch}")
        shutil.copytree(recorded_tree(f"qemu-{arch}-512M"), root, dirs_exist_ok=True)
        (root / "proc" / "cmdline").write_text(GUEST_CMDLINE + "\n")
        bad = tmp_path_factory.mktemp(f"bad-{arch}") / "bad"
        bad_files.make(str(bad), tiny[arch])
        setups[arch] = (str(root), str(bad))
    return setups, tiny.__getitem__


class Hung(Exception):
    pass


def _watchdog(signum, frame):
    raise Hung(f"no answer within {ROW_SECONDS} s")


@pytest.fixture
def watchdog():
    previous = signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(ROW_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_the_table_is_big_enough():
    rows = table.BAD_INPUT
    assert len({row.name for row in rows}) == len(rows), "row names must be unique (they are test ids)"
    assert len(rows) >= 40
    assert sum(row.host for row in rows) >= 40


@pytest.mark.parametrize("arch, row", host_cases())
def test_bad_input_on_the_host(run_cli, host, watchdog, arch, row):
    setups, payload = host
    root, bad = setups[arch]
    kernel, shim = FakeKernel(loaded=True), FakeShim()
    argv = ["--arch", arch, "--machine-root", root, *row.command(arch, bad, payload, dry_run=True)]
    try:
        result = run_cli(argv, kernel, shim)
    except Hung:
        pytest.fail(f"{row.name}: kexec {' '.join(argv)} hung")
    table.check_result(row, result.code, result.out, result.err)
    assert kernel.calls == [] and shim.calls == [], "a bad input reached the kernel interface"
    assert kernel.loaded
