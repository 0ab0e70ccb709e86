"""The per-run initramfs overlay: the project's files, the --add files, the script and /init.

Appended to the cached base rootfs (the kernel unpacks concatenated cpio archives in
order, later files replacing earlier ones), so a code change never rebuilds the base.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .build import HARNESS_DIR, REPO_DIR, BuildError, run_logged
from .rootfs import pack_cpio

INIT = HARNESS_DIR / "guest" / "init"
GUEST_SITE = Path("usr/lib/python3/dist-packages")
GUEST_PAYLOADS = Path("usr/share/kexec-py/payloads")
GUEST_SCRIPT = Path("etc/vmharness/script")
GUEST_WORKDIR = Path("root")
LAUNCHER = "#!/usr/bin/python3\nfrom kexec_py.cli import main\nraise SystemExit(main())\n"
OBJECT_SUFFIXES = {".o", ".d", ".cmd"}


@dataclass(frozen=True)
class RunSpec:
    """What a guest run gets besides the base rootfs. No script means a shell on the console."""
    script: Path | None = None
    adds: tuple[Path, ...] = ()


def build_overlay(spec: RunSpec, workdir: Path) -> Path:
    """Write workdir/overlay.cpio for `spec`, using workdir for scratch files."""
    root = workdir / "overlay"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log = workdir / "overlay.log"
    project_files(root, workdir / "build", log)
    for add in spec.adds:
        _install(add, root / GUEST_WORKDIR / add.name, 0o755 if add.stat().st_mode & 0o111 else 0o644)
    if spec.script:
        _install(spec.script, root / GUEST_SCRIPT, 0o755)
    _install(INIT, root / "init", 0o755)
    _normalise_dir_modes(root)
    out = workdir / "overlay.cpio"
    pack_cpio(root, out, log, owner="0:0")
    return out


def project_files(root: Path, scratch: Path, log: Path) -> None:
    """Install kexec-py into the guest tree `root` the way a user would get it: the package as
    setup.py builds it (byte-compiled), the /usr/sbin/kexec launcher and the payload kit."""
    build_base = scratch / "setup"
    run_logged([sys.executable, "setup.py", "-q", "build", "--build-base", build_base], log,
               cwd=REPO_DIR)
    package = root / GUEST_SITE / "kexec_py"
    shutil.copytree(build_base / "lib" / "kexec_py", package)
    # checked-hash .pycs stay valid whatever mtime the files get; a host python of another
    # version writes them under another cache tag, which the guest ignores
    run_logged([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash",
                "-d", f"/{GUEST_SITE}/kexec_py", package], log)

    launcher = root / "usr/sbin/kexec"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)

    if (REPO_DIR / "csrc" / "Makefile").exists():
        payloads = scratch / "payloads"
        run_logged(["make", "-C", REPO_DIR / "csrc", f"O={payloads}"], log)
        for built in sorted(p for p in payloads.rglob("*") if p.is_file()):
            if built.suffix not in OBJECT_SUFFIXES and not built.name.startswith("."):
                _install(built, root / GUEST_PAYLOADS / built.relative_to(payloads),
                         built.stat().st_mode & 0o777)


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
