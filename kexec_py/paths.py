"""Where kexec-py's files outside the Python package are installed.

setup.py's data_files put them below the installation prefix (sys.prefix:
/usr for the Debian package, the venv for pip):

  <prefix>/lib/kexec-py/i386/     prebuilt i386 example payloads (ELF: not /usr/share)
  <prefix>/share/kexec-py/kit/    the payload kit's sources, to build your own

The purgatory is package data instead (kexec_py/data/purgatory.ro; see
kexec_py.purgatory.default_purgatory_path), as it is part of the tool.
"""

from __future__ import annotations

import os
import sys

PAYLOAD_DIR = os.path.join(sys.prefix, "lib", "kexec-py", "i386")
KIT_DIR = os.path.join(sys.prefix, "share", "kexec-py", "kit")
EXAMPLES = ("phy_mode", "entry_report")


def example_payload(name: str) -> str | None:
    """The installed example payload called name (e.g. "phy_mode"), if there is one."""
    path = os.path.join(PAYLOAD_DIR, name)
    return path if name in EXAMPLES and os.path.isfile(path) else None
