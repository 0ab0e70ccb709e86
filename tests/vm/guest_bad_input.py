#!/usr/bin/python3
"""Runs inside the test guest (test_bad_input.py adds it to /root):

    guest_bad_input.py ROWS.json

ROWS.json is a list of {"name", "argv" (after `kexec`), "user", "binary", "timeout"}. For
each row, in order, it runs the command and prints one line `@row {json}` with its exit
status, stdout, stderr and the state afterwards: the exit status of `kexec -S -l` and the
contents of /sys/kernel/kexec_loaded and /sys/class/misc/kexec_jump/loaded ("-" when
absent).

How a row runs: "binary" rows exec /usr/sbin/kexec itself, as nobody through setpriv when
"user" says so; the others run in a child forked from this process, which has imported
kexec_py and pyelftools once, and call kexec_py.cli.main(argv) exactly as the launcher
does (`raise SystemExit(main())`: an uncaught exception prints its traceback and exits 1).
Under TCG an interpreter start and the imports take one to three seconds per command; a
fork takes a tenth of that. The `kexec -S -l` of the state check runs the same way. A row
still running after its timeout is killed and reported with status 124, as timeout(1) does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

KEXEC = "/usr/sbin/kexec"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
HUNG = 124
OUT, ERR = "/tmp/row.out", "/tmp/row.err"
STATE_FILES = ("/sys/kernel/kexec_loaded", "/sys/class/misc/kexec_jump/loaded")


def preload() -> None:
    """What a load imports, imported once before the first fork."""
    import elftools.elf.elffile  # noqa: F401
    import kexec_py.backend  # noqa: F401
    import kexec_py.cli  # noqa: F401
    import kexec_py.kernel  # noqa: F401
    import kexec_py.loaders.bzimage  # noqa: F401
    import kexec_py.loaders.elf_x86  # noqa: F401
    import kexec_py.shim  # noqa: F401


def _child(argv: list[str], user: bool, binary: bool, out: str, err: str) -> None:
    """In the forked child: never returns."""
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        if binary or user:
            command = [*(NOBODY if user else []), KEXEC, *argv]
            os.execvp(command[0], command)
        from kexec_py.cli import main

        sys.argv = [KEXEC, *argv]
        try:
            code = main(argv)
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code & 0xFF)
    except BaseException:
        traceback.print_exc()
        os._exit(127)


def run(argv: list[str], user: bool = False, binary: bool = False, timeout: float = 30.0,
        out: str = OUT, err: str = ERR) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(argv, user, binary, out, err)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) & 0xFF
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return HUNG
        time.sleep(0.02)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return "-"


def state() -> list[str]:
    status = run(["-S", "-l"], out=os.devnull, err=os.devnull)  # -S alone: the crash kernel
    return [str(status), *(_read(path).strip() or "-" for path in STATE_FILES)]


def main(rows_file: str) -> int:
    with open(rows_file, encoding="utf-8") as f:
        rows = json.load(f)
    preload()
    for row in rows:
        start = time.monotonic()
        code = run(row["argv"], row["user"], row["binary"], row["timeout"])
        result = {"name": row["name"], "code": code, "stdout": _read(OUT), "stderr": _read(ERR),
                  "state": state(), "seconds": round(time.monotonic() - start, 2)}
        print("@row " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
