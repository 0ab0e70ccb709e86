"""kexec-py as users get it: the .deb from debian/build-deb.sh, cached by the
content of the source tree so consecutive guests of one test run share a build."""

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


def build_deb() -> Path:
    """Path of the kexec-py .deb for the source tree as it is now, building it on a miss."""
    out = cache_root() / "deb" / tree_key()
    with locked(cache_root() / "deb" / ".lock"):
        debs = sorted(out.glob("kexec-py_*.deb"))
        if debs:
            return debs[0]
        out.mkdir(parents=True, exist_ok=True)
        log = out / "build.log"
        progress(f"building the kexec-py .deb (log {log})")
        with open(log, "w") as err:
            result = subprocess.run([BUILD_DEB, out], stdout=subprocess.PIPE, stderr=err, text=True)
        if result.returncode != 0:
            raise BuildError(f"{BUILD_DEB} failed (exit {result.returncode}); log {log}:\n{tail(log)}")
        return Path(result.stdout.strip())
