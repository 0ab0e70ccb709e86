"""mypy over kexec_py and the QEMU harness, with the repository's mypy.ini (which
files, how strict), so that the test command fails on a type error."""

import os
import subprocess
import sys

from unit_support import REPO


def test_mypy_finds_no_type_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.path.join(REPO, "mypy.ini")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"mypy exited {done.returncode}:\n{done.stdout}{done.stderr}"
