"""A bare example name finds the installed payload, so the seed's command line
`kexec --load-preserve-context --args-none phy_mode` works from any directory."""

import os

import pytest

from kexec_py import cli
from kexec_py.paths import example_payload


@pytest.fixture
def installed(tmp_path):
    root = tmp_path / "lib" / "kexec-py"
    (root / "i386").mkdir(parents=True)
    (root / "i386" / "phy_mode").write_bytes(b"\x7fELF")
    return str(root)


@pytest.mark.parametrize("name, arch, found", [
    ("phy_mode", "i386", True),
    ("phy_mode", "x86_64", False),       # no x86_64 build installed here
    ("entry_report", "i386", False),     # an example, but not installed here
    ("vmlinuz", "i386", False),          # not an example name
])
def test_example_payload(installed, name, arch, found):
    expected = os.path.join(installed, arch, name) if found else None
    assert example_payload(name, arch, installed) == expected


def test_a_file_in_the_current_directory_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "phy_mode").write_bytes(b"mine")
    assert cli._image_path("phy_mode", "i386") == "phy_mode"


def test_paths_with_a_directory_are_taken_as_given(tmp_path):
    assert cli._image_path(str(tmp_path / "phy_mode"), "i386") == str(tmp_path / "phy_mode")
