#!/usr/bin/env python3
"""`kexec -e` again and again from one process, with a shell command after each jump; runs in
the guest (tests/vm/test_devices.py).

    guest_jumps.py N [CMD]

N jumps through kexec_py.cli.main(["-e"]), which is what /usr/sbin/kexec runs, without N
Python start-ups and imports (pyroute2's alone takes seconds under TCG). After each jump it
prints `guest_jumps: back from jump I`, then runs `sh -c CMD`. Exits with the status of the
first jump or command that fails.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    from kexec_py.cli import main as kexec

    for jump in range(1, int(argv[1]) + 1):
        if rc := kexec(["-e"]):
            return rc
        print(f"guest_jumps: back from jump {jump}", flush=True)
        if len(argv) == 3 and (rc := subprocess.run(["sh", "-c", argv[2]]).returncode):
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
