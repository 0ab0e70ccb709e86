"""Fixtures for tests that boot QEMU guests (see qemu-harness/).

`guest`: one shell-mode guest on the patched kernel, shared by the session; for tests
that leave it usable. `guest_factory`: fresh guests (kernel variant, memory, command
line, script) for tests that crash or reboot them. A failing test's report carries the
console of every guest it used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "qemu-harness"))

from vmharness.artifacts import prepare  # noqa: E402
from vmharness.guest import Guest  # noqa: E402
from vmharness.kernel import Variant  # noqa: E402
from vmharness.overlay import RunSpec  # noqa: E402

CONSOLE_LINES_IN_REPORT = 500


class GuestFactory:
    """Boots fresh guests and stops them all at teardown."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self._tmp = tmp_path_factory
        self.guests: list[Guest] = []

    def __call__(self, variant: Variant = Variant.PATCHED, mem_mb: int = 512, append: str = "",
                 run: RunSpec = RunSpec()) -> Guest:
        """A started guest; in shell mode (no run.script) its shell is ready for run()."""
        boot = prepare(self._tmp.mktemp("guest"), run, variant, mem_mb, append)
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


@pytest.fixture(scope="session")
def guest(_session_factory: GuestFactory) -> Guest:
    return _session_factory()


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
        guests = value.guests if isinstance(value, GuestFactory) else [value]
        for index, guest in enumerate(g for g in guests if isinstance(g, Guest)):
            lines = guest.console.splitlines()[-CONSOLE_LINES_IN_REPORT:]
            report.sections.append((f"guest console ({name} #{index})", "\n".join(lines)))
