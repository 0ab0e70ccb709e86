"""The .deb users install: built by debian/build-deb.sh (debhelper + pybuild),
lintian-clean, with the tool, man page, payloads, kit and purgatory where the
tool looks for them. The VM tests install this same .deb in every guest."""

from __future__ import annotations

import subprocess

import pytest

from vmharness.package import build_deb


@pytest.fixture(scope="module")
def deb():
    return build_deb()


def test_lintian_reports_no_errors_or_warnings(deb):
    result = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")], result.stdout


def test_control_fields(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Architecture", "Depends", "Conflicts",
                             "Replaces", "Provides"], check=True, capture_output=True, text=True).stdout
    assert "Package: kexec-py" in fields
    assert "Architecture: all" in fields
    for dependency in ("python3-cffi-backend", "python3-pyelftools", "python3-pyroute2"):
        assert dependency in fields
    assert "Conflicts: kexec-tools" in fields and "Replaces: kexec-tools" in fields
    assert "Provides" not in fields  # not a kdump replacement


def test_contents(deb):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for path in ("/usr/sbin/kexec", "/usr/share/man/man8/kexec.8.gz",
                 "/usr/lib/kexec-py/i386/phy_mode", "/usr/lib/kexec-py/i386/entry_report",
                 "/usr/lib/kexec-py/x86_64/phy_mode", "/usr/lib/kexec-py/x86_64/entry_report",
                 "/usr/lib/python3/dist-packages/kexec_py/cli.py",
                 "/usr/lib/python3/dist-packages/kexec_py/_kexec_ffi.py",
                 "/usr/lib/python3/dist-packages/kexec_py/data/purgatory.ro",
                 "/usr/share/kexec-py/kit/Makefile", "/usr/share/doc/kexec-py/README.Debian",
                 "/usr/share/doc/kexec-py/copyright"):
        assert path in paths, f"{path} missing from the .deb"
    launcher = subprocess.run(f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./usr/sbin/kexec", shell=True,
                              check=True, capture_output=True, text=True).stdout
    imports = [line for line in launcher.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from kexec_py.cli import main"], launcher  # no console_scripts wrapper
