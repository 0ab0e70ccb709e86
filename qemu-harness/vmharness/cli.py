"""run-vm: boot a test guest, run a script (or a shell) in it, exit with the script's status."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .arch import ARCHES
from .artifacts import (DKMS_MEM_MB, GUEST_DISK_MOUNT, HARNESS_KERNEL_SMP, parse_size, prepare,
                        stock_package)
from .build import BuildError, progress
from .guest import BOOT_TIMEOUT, NIC_DEVICES, Guest, GuestDied, GuestTimeout
from .kernel import Variant, variants
from .overlay import RunSpec
from .stock import DEFAULT_SMP, SHIM_SOURCE

EXIT_TIMEOUT = 124   # as timeout(1)
EXIT_GUEST_DIED = 125
EXIT_BUILD_FAILED = 126
DEFAULT_MEM_MB = 512


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-vm", description=__doc__)
    parser.add_argument("--arch", choices=list(ARCHES), default="i386")
    parser.add_argument("--add", metavar="FILE", type=Path, action="append", default=[],
                        help="copy FILE into the guest's working directory (/root)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--script", metavar="FILE", type=Path,
                      help="run FILE as root in /root and exit with its status")
    mode.add_argument("--shell", action="store_true", help="an interactive root shell")
    parser.add_argument("--mem", metavar="MB", type=int,
                        help=f"guest RAM (default {DEFAULT_MEM_MB}, {DKMS_MEM_MB} with --dkms)")
    parser.add_argument("--append", metavar="ARGS", default="",
                        help="extra kernel command line arguments")
    parser.add_argument("--kernel-variant", type=Variant, choices=list(Variant),
                        metavar="|".join(v.value for v in Variant),
                        help="which kernel the harness builds (default patched; x86_64 has no "
                        "unpatched kernel: 6.12.117 needs no patch)")
    parser.add_argument("--kernel", metavar="debian:PACKAGE|PATH",
                        help="boot a stock Debian bookworm kernel instead (a linux-image-* "
                        "package, e.g. debian:linux-image-amd64; i386 flavours with --arch "
                        "i386) with our kexec_jump module, or your own bzImage (no modules); "
                        "both on -cpu max")
    parser.add_argument("--smp", metavar="N", type=_positive,
                        help=f"CPUs (default {HARNESS_KERNEL_SMP} for the harness's kernels, "
                        f"{DEFAULT_SMP} for --kernel)")
    parser.add_argument("--no-shim", dest="shim", action="store_false",
                        help="--kernel debian:...: boot without our kexec_jump module")
    parser.add_argument("--shim-source", metavar="DIR", type=Path, default=SHIM_SOURCE,
                        help="--kernel debian:...: build kexec_jump.ko from DIR "
                        "(default: %(default)s)")
    parser.add_argument("--dkms", action="store_true",
                        help="--kernel debian:...: a user's machine that builds the module itself: "
                        "a rootfs with apt, dkms, gcc and the kernel's headers, no kexec_jump.ko "
                        "of ours, kexec-py not installed but its two .debs in /root (`apt install "
                        "./kexec-py_*.deb ./kexec-py-dkms_*.deb` works offline)")
    parser.add_argument("--kdump", action="store_true",
                        help="Debian's kdump service installed: kdump-tools and makedumpfile, with "
                        "kexec-tools, which the guest's dpkg -i of kexec-py replaces (not with --dkms)")
    parser.add_argument("--disk", metavar="SIZE", type=_size,
                        help="a blank virtio-blk disk of SIZE (64M, 1G), a scratch file of the "
                        f"run; the guest's /init formats it ext4 and mounts it on {GUEST_DISK_MOUNT}")
    parser.add_argument("--nic", metavar="MODEL", dest="nics", action="append", default=[],
                        choices=list(NIC_DEVICES),
                        help=f"a network card ({', '.join(NIC_DEVICES)}); repeat for more. All "
                        "of them are joined by one QEMU hub, to each other and to nothing else")
    parser.add_argument("--vga", action="store_true",
                        help="QEMU's std VGA card, for payloads that call its video BIOS (VBE); "
                        "nothing is displayed")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=600.0,
                        help="longest the script may run (default %(default)s)")
    args = parser.parse_args(argv)
    if args.kernel and args.kernel_variant:
        parser.error("--kernel-variant chooses among the harness's kernels; --kernel boots another")
    if not stock_package(args.kernel) and (not args.shim or args.shim_source != SHIM_SOURCE
                                           or args.dkms):
        parser.error("--no-shim, --shim-source and --dkms go with --kernel debian:PACKAGE")
    if args.dkms and args.kdump:
        parser.error("--dkms and --kdump are two different machines: choose one")
    if args.dkms and args.shim_source != SHIM_SOURCE:
        parser.error("--dkms boots without our kexec_jump.ko: DKMS builds it from the .deb")
    args.mem = args.mem or (DKMS_MEM_MB if args.dkms else DEFAULT_MEM_MB)
    args.kernel_variant = args.kernel_variant or Variant.PATCHED
    if args.kernel_variant not in variants(ARCHES[args.arch]):
        parser.error(f"--kernel-variant {args.kernel_variant.value}: the {args.arch} variants are "
                     + ", ".join(v.value for v in variants(ARCHES[args.arch])))
    return args


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="run-vm-") as tmp:
        try:
            boot = prepare(Path(tmp), RunSpec(args.script, tuple(args.add), debs_in_root=args.dkms),
                           args.kernel_variant, args.mem, args.append, args.arch, args.kernel,
                           args.smp, args.shim and not args.dkms, args.shim_source, args.dkms,
                           args.disk, tuple(args.nics), args.vga, args.kdump)
        except BuildError as error:
            print(f"run-vm: {error}", file=sys.stderr)
            return EXIT_BUILD_FAILED
        kernel = args.kernel or f"the {args.arch} {args.kernel_variant.value} kernel"
        progress(f"booting {kernel} ({boot.kernel}) with {args.mem} MiB, {boot.smp} CPU(s), "
                 f"-cpu {boot.cpu} (TCG)")
        if args.shell:
            # the user's terminal talks to the serial console directly; `exit` powers off
            return subprocess.run(boot.argv(interactive=True)).returncode
        return _run_script(Guest(boot, echo=sys.stdout), args.timeout)


def _run_script(guest: Guest, timeout: float) -> int:
    started = time.monotonic()
    with guest:
        try:
            rc = guest.wait_for_exit(BOOT_TIMEOUT + timeout)
        except GuestDied as error:
            print(f"\nrun-vm: {error}", file=sys.stderr)
            return EXIT_GUEST_DIED
        except GuestTimeout as error:
            print(f"\nrun-vm: {error}", file=sys.stderr)
            return EXIT_TIMEOUT
    progress(f"script exited {rc} after {time.monotonic() - started:.1f} s")
    return rc
