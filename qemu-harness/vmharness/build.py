"""Helpers shared by the cached builds: cache location, keys, locking, logged commands."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = HARNESS_DIR.parent


class BuildError(RuntimeError):
    """A build step failed; the message carries the tail of its log."""


def cache_root() -> Path:
    """Builds live outside the repository so that a fresh clone reuses them."""
    if env := os.environ.get("KEXEC_PY_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kexec-py"


def digest(*parts: str | bytes) -> str:
    """sha256 over length-prefixed parts, so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise builds of one cache area between concurrent test sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def progress(message: str) -> None:
    print(f"vmharness: {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_logged(argv: Sequence[str | os.PathLike[str]], log: Path, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> None:
    """Run a build command with its output appended to log; fail with the log's tail."""
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(map(str, argv))}\n")
        out.flush()
        result = subprocess.run(list(map(str, argv)), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(map(str, argv))} failed (exit {result.returncode}); "
                         f"log {log}:\n{tail(log)}")


def publish(staging: Path, final: Path) -> None:
    """Make a finished build visible in one rename: a half-built entry is never a cache hit."""
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
