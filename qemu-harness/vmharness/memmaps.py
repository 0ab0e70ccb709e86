"""Record real memory maps (sysfs memmap, /proc/iomem, /proc/meminfo) as test data.

The planner's unit tests read these trees instead of the running machine's. Paths are kept
relative to / (sys/firmware/memmap/N/start, proc/iomem, proc/meminfo).
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import shutil
import tempfile
from pathlib import Path

from .artifacts import prepare
from .build import REPO_DIR, progress
from .guest import Guest

DATA_DIR = REPO_DIR / "tests" / "data" / "memmaps"
# the planner's unit tests use these guests: i386 with -m 512 and -m 128, x86_64 with -m 512
GUEST_MEMORY_MB = {"i386": (512, 128), "x86_64": (512,)}


def collect() -> dict[str, str]:
    """{path relative to /: text} of the memory-map files. Self-contained: its source is also
    what the guest runs."""
    import glob
    paths = [f"{entry}/{field}" for entry in glob.glob("/sys/firmware/memmap/*")
             for field in ("start", "end", "type")] + ["/proc/iomem", "/proc/meminfo"]
    return {path[1:]: open(path).read() for path in paths}


def snapshot_guest(guest: Guest) -> dict[str, str]:
    program = inspect.getsource(collect) + "import json\nprint(json.dumps(collect()))\n"
    output = guest.check(f"python3 -c {shlex.quote(program)}")
    return json.loads(output.strip().splitlines()[-1])


def write_tree(files: dict[str, str], dest: Path) -> None:
    """Replace dest with the recorded files (a map with fewer entries leaves none behind)."""
    shutil.rmtree(dest, ignore_errors=True)
    for relative, text in sorted(files.items()):
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dest", type=Path, default=DATA_DIR)
    parser.add_argument("--arch", choices=list(GUEST_MEMORY_MB), action="append",
                        help="record only this guest architecture (repeatable; default: all"
                        " guests and this host)")
    args = parser.parse_args()
    for arch in args.arch or list(GUEST_MEMORY_MB):
        for mem_mb in GUEST_MEMORY_MB[arch]:
            with tempfile.TemporaryDirectory(prefix="memmaps-") as tmp:
                with Guest(prepare(Path(tmp), mem_mb=mem_mb, arch=arch)) as guest:
                    guest.wait_for_shell()
                    write_tree(snapshot_guest(guest), args.dest / f"qemu-{arch}-{mem_mb}M")
            progress(f"recorded qemu-{arch}-{mem_mb}M")
    if not args.arch:
        write_tree(collect(), args.dest / "host-x86_64")
        progress("recorded host-x86_64")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
