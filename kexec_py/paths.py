"""Where kexec-py's files outside the Python package are installed.

setup.py's data_files put them below the installation prefix (sys.prefix:
/usr for the Debian package, the venv for pip):

  <prefix>/lib/kexec-py/<arch>/   prebuilt example payloads, i386 and x86_64 (ELF: not /usr/share)
  <prefix>/share/kexec-py/kit/    the payload kit's sources, to build your own

The purgatory is package data instead (kexec_py/data/purgatory.ro; see
kexec_py.purgatory.default_purgatory_path), as it is part of the tool.
"""

from __future__ import annotations

import os
import sys

PAYLOAD_ROOT = os.path.join(sys.prefix, "lib", "kexec-py")
EXAMPLES = ("phy_mode", "entry_report", "bios-e820", "bios-memsize", "cpuid", "edd", "vbe-info")


def example_payload(name: str, arch: str, payload_root: str = PAYLOAD_ROOT) -> str | None:
    """The installed example payload called name for arch, if there is one: so
    `kexec --load-preserve-context --args-none phy_mode` works from any directory."""
    path = os.path.join(payload_root, arch, name)
    return path if name in EXAMPLES and os.path.isfile(path) else None
