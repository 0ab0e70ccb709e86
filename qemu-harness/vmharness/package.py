"""kexec-py as users get it: the .debs from debian/build-deb.sh (kexec-py and
kexec-py-dkms, the kernel driver shim's DKMS package), cached by the content of
the source tree so consecutive guests of one test run share a build."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .build import REPO_DIR, BuildError, cache_root, digest, locked, progress, tail

BUILD_DEB = REPO_DIR / "debian" / "build-deb.sh"


def source_files() -> list[Path]:
    """What build-deb.sh copies: tracked and untracked-but-not-ignored files that exist."""
    listed = subprocess.run(["git", "-C", REPO_DIR, "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], check=True, capture_output=True).stdout
    return sorted(p for p in (REPO_DIR / n.decode() for n in listed.split(b"\0") if n) if p.is_file())


def tree_key() -> str:
    parts: list[str | bytes] = []
    for path in source_files():
        parts += [str(path.relative_to(REPO_DIR)), path.read_bytes(), str(path.stat().st_mode & 0o111)]
    return digest(*parts)


def build_debs() -> tuple[Path, Path]:
    """(kexec-py .deb, kexec-py-dkms .deb) for the source tree as it is now, both from one
    build-deb.sh run, building them on a miss."""
    out = cache_root() / "deb" / tree_key()
    with locked(cache_root() / "deb" / ".lock"):
        debs = _debs_in(out)
        if debs:
            return debs
        out.mkdir(parents=True, exist_ok=True)
        log = out / "build.log"
        progress(f"building the kexec-py and kexec-py-dkms .debs (log {log})")
        with open(log, "w") as err:
            result = subprocess.run([BUILD_DEB, out], stdout=subprocess.PIPE, stderr=err, text=True)
        if result.returncode != 0:
            raise BuildError(f"{BUILD_DEB} failed (exit {result.returncode}); log {log}:\n{tail(log)}")
        debs = _debs_in(out)
        printed = [Path(line).name for line in result.stdout.splitlines()]
        if not debs or printed != [deb.name for deb in debs]:
            raise BuildError(f"{BUILD_DEB} printed {result.stdout!r}, expected the two .debs in {out}")
        return debs


def build_deb() -> Path:
    """Path of the kexec-py .deb for the source tree as it is now, building it on a miss."""
    return build_debs()[0]


def build_dkms_deb() -> Path:
    """Path of the kexec-py-dkms .deb (kexec_jump.ko's source and dkms.conf) from the same build."""
    return build_debs()[1]


def _debs_in(out: Path) -> tuple[Path, Path] | None:
    """Both .debs of a finished build in out (a cache entry from before kexec-py-dkms has one)."""
    main, dkms = sorted(out.glob("kexec-py_*.deb")), sorted(out.glob("kexec-py-dkms_*.deb"))
    return (main[0], dkms[0]) if len(main) == 1 and len(dkms) == 1 else None
