"""A QEMU (TCG) i386 or x86_64 guest driven through its serial console with pexpect."""

from __future__ import annotations

import io
import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import pexpect

SHELL_READY = "vmharness-shell-ready"
SCRIPT_EXIT = re.compile(r"vmharness-script-exit: (\d+)\r*\n")
# the guest tty sends \r\n and the host pty under QEMU adds another \r
NEWLINE = re.compile(r"\r+\n")
BOOT_TIMEOUT = 180.0   # a boot to shell takes ~5 s under TCG; leave room for a loaded machine
TAIL_LINES = 60
# ramfs, not the default tmpfs root: tmpfs caps at half of RAM, too little for the
# rootfs with -m 128
BASE_CMDLINE = "console=ttyS0 panic=-1 rootfstype=ramfs"
# run-vm --nic MODEL: the QEMU device of each model
NIC_DEVICES = {"virtio-net": "virtio-net-pci", "e1000": "e1000"}


@dataclass(frozen=True)
class BootSpec:
    kernel: Path
    initrd: Path
    mem_mb: int = 512
    append: str = ""
    qemu: str = "qemu-system-i386"
    cpu: str = "qemu32"
    smp: int = 1
    disk: Path | None = None     # a raw image, the guest's virtio-blk /dev/vda
    nics: tuple[str, ...] = ()   # NIC models (NIC_DEVICES), in PCI order, on one QEMU hub
    vga: bool = False            # QEMU's std VGA, whose video BIOS has VBE (-display none all the same)

    def argv(self, interactive: bool = False) -> list[str]:
        # signal=off: in an interactive session ^C belongs to the guest, not to QEMU
        chardev = "stdio,id=console" + (",signal=off" if interactive else "")
        cmdline = " ".join(filter(None, [BASE_CMDLINE, self.append]))
        # one CPU a socket: SeaBIOS's MP table, all that our kernels (no ACPI) read, lists only
        # the first CPU of each package
        return [self.qemu, "-machine", "pc", "-accel", "tcg", "-cpu", self.cpu,
                "-smp", f"{self.smp},sockets={self.smp}", "-m", str(self.mem_mb),
                "-nodefaults", "-display", "none", "-no-reboot",
                "-chardev", chardev, "-serial", "chardev:console",
                "-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", cmdline,
                *self.device_args()]

    def device_args(self) -> list[str]:
        """The VGA card, the disk and the NICs. The NICs are joined to each other by a QEMU hub and to
        nothing else (no user-mode network, no tap): a frame leaves one NIC and reaches the
        others, never the host."""
        args = ["-device", "VGA"] if self.vga else []
        if self.disk:
            # cache=unsafe: the guest's flushes end in QEMU's page cache; the host never needs
            # the scratch file to survive a crash of its own
            args += ["-drive", f"file={self.disk},format=raw,if=none,id=disk0,cache=unsafe",
                     "-device", "virtio-blk-pci,drive=disk0"]
        for index, model in enumerate(self.nics):
            args += ["-netdev", f"hubport,id=nic{index},hubid=0",
                     "-device", f"{NIC_DEVICES[model]},netdev=nic{index},mac={nic_mac(index)}"]
        return args


def nic_mac(index: int) -> str:
    """The MAC address of the index-th --nic (locally administered, QEMU's 52:54:00 prefix)."""
    return f"52:54:00:00:00:{index + 1:02x}"


class CommandResult(NamedTuple):
    rc: int
    output: str


class GuestError(Exception):
    """Base of guest failures; the message ends with the console's tail."""

    def __init__(self, message: str, console: str):
        tail = "\n".join(console.splitlines()[-TAIL_LINES:])
        super().__init__(f"{message}\n--- console tail ---\n{tail}")
        self.console = console


class GuestDied(GuestError):
    """QEMU exited (reset, panic, power-off) while we waited for the guest."""


class GuestTimeout(GuestError):
    """The awaited output did not come in time."""


class Guest:
    """One QEMU process. Use as a context manager, or call start() and stop().

    In shell mode (booted without a script) run() executes commands in the guest's root
    shell; in script mode wait_for_exit() returns the script's exit status.
    """

    def __init__(self, boot: BootSpec, echo: TextIO | None = None):
        self.boot = boot
        self._log = io.StringIO()
        self._echo = echo
        self._child: pexpect.spawn[str] | None = None

    def __enter__(self) -> Guest:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def console(self) -> str:
        """Everything the guest printed so far, with plain \\n line ends."""
        return NEWLINE.sub("\n", self._log.getvalue())

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def start(self) -> None:
        argv = self.boot.argv()
        self._child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
                                    timeout=None, echo=False, dimensions=(50, 200))
        self._child.logfile_read = _Tee(self._log, self._echo)

    def stop(self) -> None:
        if self._child is not None:
            self._child.close(force=True)

    def expect(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait for a regular expression in the console output after the last match."""
        assert self._child is not None, "start() the guest first"
        try:
            self._child.expect(pattern, timeout=timeout)
        except pexpect.EOF:
            raise GuestDied(f"guest died while waiting for {_show(pattern)}", self.console) from None
        except pexpect.TIMEOUT:
            raise GuestTimeout(f"no {_show(pattern)} within {timeout:g} s", self.console) from None
        match = self._child.match
        assert isinstance(match, re.Match), match  # EOF and TIMEOUT raised above
        return match

    def wait_for_exit(self, timeout: float) -> int:
        """Script mode: the script's exit status, once the guest has printed it."""
        return int(self.expect(SCRIPT_EXIT, timeout)[1])

    def wait_for_shell(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Shell mode: wait for the console shell and make it machine-friendly: no echo, no
        prompts, so a command's output is exactly what it printed."""
        self.expect(SHELL_READY, timeout)
        self.send("stty -echo; PS1=''; PS2=''\n")  # not run(): stty needs the tty as stdin
        # kernel messages would land inside command output; the console log keeps boot messages
        self.run("echo 1 > /proc/sys/kernel/printk", timeout=30)

    def send(self, text: str) -> None:
        assert self._child is not None, "start() the guest first"
        self._child.send(text)

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        """Run shell code in the guest's root shell (stdin /dev/null); return its exit
        status and combined stdout/stderr. `cd` and variables persist between calls."""
        tag = secrets.token_hex(6)
        # markers are printed through printf formats, so an echoed command never matches them
        begin, end = f"vmh-begin-{tag}", f"vmh-end-{tag}"
        self.send(f"printf '%s\\n' vmh-begin-{tag}\n"
                  f"{{\n{cmd}\n}} </dev/null 2>&1; printf 'vmh-end-%s %d\\n' {tag} $?\n")
        self.expect(re.escape(begin) + NEWLINE.pattern, timeout)
        match = self.expect(re.escape(end) + r" (\d+)" + NEWLINE.pattern, timeout)
        output = NEWLINE.sub("\n", self._child.before or "") if self._child else ""
        return CommandResult(int(match[1]), output)

    def check(self, cmd: str, timeout: float = 60.0) -> str:
        """run() that raises on a non-zero exit status; returns the output."""
        rc, output = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError(f"{cmd!r} exited {rc}:\n{output}", self.console)
        return output


class _Tee:
    """pexpect logfile that keeps the whole console and optionally streams it."""

    def __init__(self, log: io.StringIO, echo: TextIO | None):
        self.log, self.echo = log, echo

    def write(self, data: str) -> None:
        self.log.write(data)
        if self.echo is not None:
            self.echo.write(data)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()


def _show(pattern: str | re.Pattern[str]) -> str:
    return shlex.quote(pattern.pattern if isinstance(pattern, re.Pattern) else pattern)
