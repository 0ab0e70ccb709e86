"""The per-run initramfs overlay: the project's files, the --add files, the script and /init.

Appended to the cached base rootfs (the kernel unpacks concatenated cpio archives in
order, later files replacing earlier ones), so a code change never rebuilds the base.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .build import HARNESS_DIR, BuildError
from .package import build_deb, build_debs
from .rootfs import pack_cpio

INIT = HARNESS_DIR / "guest" / "init"
GUEST_DEB = Path("var/cache/kexec-py/kexec-py.deb")  # installed by guest/init
GUEST_SCRIPT = Path("etc/vmharness/script")
GUEST_WORKDIR = Path("root")


@dataclass(frozen=True)
class RunSpec:
    """What a guest run gets besides the base rootfs. No script means a shell on the console.

    debs_in_root: both .debs (kexec-py and kexec-py-dkms) in /root under their own names,
    for the run to install (`apt install ./kexec-py_*.deb ./kexec-py-dkms_*.deb`), instead
    of the kexec-py .deb that /init installs.
    """
    script: Path | None = None
    adds: tuple[Path, ...] = ()
    debs_in_root: bool = False


def build_overlay(spec: RunSpec, workdir: Path) -> Path:
    """Write workdir/overlay.cpio for `spec`, using workdir for scratch files."""
    root = workdir / "overlay"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log = workdir / "overlay.log"
    project_files(root, spec.debs_in_root)
    for add in spec.adds:
        _install(add, root / GUEST_WORKDIR / add.name, 0o755 if add.stat().st_mode & 0o111 else 0o644)
    if spec.script:
        _install(spec.script, root / GUEST_SCRIPT, 0o755)
    _install(INIT, root / "init", 0o755)
    _normalise_dir_modes(root)
    out = workdir / "overlay.cpio"
    pack_cpio(root, out, log, owner="0:0")
    return out


def project_files(root: Path, debs_in_root: bool = False) -> None:
    """kexec-py the way a user gets it: the .deb, which the guest's /init installs with dpkg;
    or, debs_in_root, both .debs in /root, uninstalled."""
    if debs_in_root:
        for deb in build_debs():
            _install(deb, root / GUEST_WORKDIR / deb.name, 0o644)
    else:
        _install(build_deb(), root / GUEST_DEB, 0o644)


def _install(src: Path, dest: Path, mode: int) -> None:
    if not src.is_file():
        raise BuildError(f"{src}: not a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def _normalise_dir_modes(root: Path) -> None:
    """The kernel chmods directories that already exist in the base to the overlay's modes:
    give them Debian's (0755, /root 0700), not this host's umask or tmp dir's."""
    root.chmod(0o755)
    for directory in (p for p in root.rglob("*") if p.is_dir()):
        directory.chmod(0o755)
    if (root / GUEST_WORKDIR).is_dir():
        (root / GUEST_WORKDIR).chmod(0o700)
