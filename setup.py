"""kexec-py: build the Python tool, its cffi binding and the csrc payload kit."""

import os
import shutil
import subprocess

from setuptools import find_packages, setup
from setuptools.command.build import build

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOAD_BUILD = os.path.join("build", "payloads")
EXAMPLES = ("phy_mode", "entry_report", "bios-e820", "bios-memsize", "cpuid", "edd", "vbe-info")
PAYLOAD_ARCHES = ("i386", "x86_64")


class BuildWithPayloads(build):
    """Also build the freestanding i386 and x86_64 payload examples with the system gcc."""

    def run(self):
        subprocess.run(["make", "-s", "-C", "csrc", f"O={os.path.join(HERE, PAYLOAD_BUILD)}"],
                       cwd=HERE, check=True)
        super().run()
        # the purgatories are package data: kexec_py.purgatory.default_purgatory_path() finds them there,
        # each with its parse (pyelftools' work done here, not on every Linux load)
        from kexec_py.purgatory import SHIPPED_SUFFIX, Purgatory, shipped_form

        data = os.path.join(self.build_lib, "kexec_py", "data")
        os.makedirs(data, exist_ok=True)
        for name in ("purgatory.ro", "purgatory64.ro"):
            built = os.path.join(PAYLOAD_BUILD, "purgatory", name)
            shutil.copy2(built, data)
            with open(built, "rb") as f:
                obj = f.read()
            with open(os.path.join(data, name + SHIPPED_SUFFIX), "wb") as f:
                f.write(shipped_form(Purgatory.from_bytes(obj, name), obj))


def kit_sources():
    """(install dir, files) for csrc/, so users can build their own payloads."""
    entries = []
    for directory, _, files in os.walk("csrc"):
        # csrc/shim is the kernel module's source: the kexec-py-dkms package has it
        if directory.startswith((os.path.join("csrc", "build"), os.path.join("csrc", "shim"))):
            continue
        target = os.path.join("share", "kexec-py", "kit", os.path.relpath(directory, "csrc"))
        entries.append((os.path.normpath(target), [os.path.join(directory, f) for f in sorted(files)]))
    return entries


setup(
    name="kexec-py",
    version="0.1.0",
    description="kexec(8) in Python, built around kexec jump (KEXEC_PRESERVE_CONTEXT)",
    license="GPL-2.0-or-later",
    packages=find_packages(include=["kexec_py", "kexec_py.*"]),
    python_requires=">=3.9",
    setup_requires=["cffi>=1.15", "pyelftools>=0.29"],  # pyelftools: the build parses purgatory
    install_requires=["cffi>=1.15", "pyelftools>=0.29", "pyroute2>=0.7"],
    cffi_modules=["kexec_py/_ffi_build.py:ffibuilder"],
    scripts=["bin/kexec"],
    cmdclass={"build": BuildWithPayloads},
    data_files=[
        # ELF payloads are not data for /usr/share (FHS; lintian arch-dependent-file-in-usr-share)
        *((f"lib/kexec-py/{arch}", [os.path.join(PAYLOAD_BUILD, arch, n) for n in EXAMPLES])
          for arch in PAYLOAD_ARCHES),
        *kit_sources(),
    ],
)
