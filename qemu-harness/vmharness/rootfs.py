"""The guest's base root filesystem: Debian (i386 or amd64) from mmdebstrap, packed as a newc cpio;
and the dkms rootfs, a user's machine that builds kernel modules (apt, dkms, a stock kernel's
headers), for guests that install the .debs with apt as users do.

Cached under a key of its inputs; the per-run overlay (overlay.py) is appended to it,
so changing the project's code never rebuilds this.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from .arch import I386, GuestArch, guest_arch
from .build import HARNESS_DIR, BuildError, cache_root, digest, locked, progress, publish, run_logged

SUITE = "bookworm"
VARIANT = "essential"  # Essential:yes + our packages; minbase would add apt and friends
PACKAGES = (
    "python3", "python3-cffi-backend", "python3-pyelftools", "python3-pyroute2",
    "busybox",        # reboot -f, small tools
    "util-linux",     # setpriv (non-root tests), setsid -c
    "mount",          # mount(8) left util-linux in bookworm
    "kexec-tools",    # side-by-side comparisons, as /usr/sbin/kexec-tools
    "iproute2",
    "kmod",           # modprobe, modinfo: stock kernels' modules and our kexec_jump.ko
    "e2fsprogs",      # mkfs.ext4, e2fsck: the run-vm --disk filesystem
    "iputils-ping",   # ping between the run-vm --nic cards
    "procps",         # ps, pgrep, sysctl
)
HOOK = HARNESS_DIR / "rootfs" / "customize.sh"
# merged /usr set up by mmdebstrap's own hook: otherwise apt satisfies init-system-helpers'
# dependency with usrmerge, which drags in 45 MB of perl
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
APT_DIR = Path("/etc/apt")
# Measured under TCG (85 MB rootfs): boot to shell 4.4 s with zstd, 3.3 s gzip, 6.7 s xz,
# 2.1 s uncompressed. The compressed initrd and its unpacked copy are in RAM together:
# only xz and zstd (23 MB against gzip's 33 MB) leave room to boot with -m 128.
# A 1 MiB window keeps the kernel's decompression buffer small.
ZSTD = "zstd -q -19 --zstd=wlog=20 -T0"
ARCHIVE = "rootfs.cpio.zst"
# The dkms rootfs (290 MB) at -19 takes 2 minutes to compress for 71 MB; -9 takes 6 s
# for 80 MB and boots as fast
DKMS_ZSTD = "zstd -q -9 --zstd=wlog=20 -T0"

# The dkms rootfs: the base's packages but kexec-tools (kexec-py's .deb conflicts with it,
# and the guest must have no kexec before apt installs one), plus apt and dkms (which pulls
# in gcc, make, dpkg-dev and perl) and the .debs of a stock kernel's headers
# (stock.fetch_header_debs), which mmdebstrap installs from their paths
DKMS_PACKAGES = (*(p for p in PACKAGES if p != "kexec-tools"), "apt", "dkms")
DKMS_HOOK = HARNESS_DIR / "rootfs" / "customize-dkms.sh"
# makes the .debs given by path visible inside the chroot, where dpkg runs
DEB_PATH_HOOKS = Path("/usr/share/mmdebstrap/hooks/file-mirror-automount")


def debian_mirror(apt_dir: Path = APT_DIR, suite: str = SUITE) -> str:
    """The URI of the machine's main Debian archive: the source that carries `suite` itself
    (the security archive only carries `<suite>-security`)."""
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = _deb822_fields(stanza)
            if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
                return fields["uris"].split()[0]
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise BuildError(f"no apt source for the Debian suite {suite!r} under {apt_dir}")


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.splitlines():
        if line.startswith("#"):
            continue
        if line[:1].isspace() and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


# The kdump rootfs: a machine set up for Debian's kdump service, the base's packages plus
# kdump-tools (which depends on kexec-tools) and makedumpfile; customize.sh's `kdump`
# keeps kexec-tools installed as a package, for the guest's dpkg -i of our .deb to replace.
# Its guest has 512 MiB: DKMS_ZSTD (-9) packs its 160 MB in seconds where -19 takes 2 minutes
KDUMP_PACKAGES = (*PACKAGES, "kdump-tools", "makedumpfile")


def cache_key(arch: GuestArch, kdump: bool = False) -> str:
    extra = ("kdump", ",".join(KDUMP_PACKAGES), DKMS_ZSTD) if kdump else ()
    return digest(SUITE, arch.debian_arch, VARIANT, ",".join(PACKAGES), HOOK.read_bytes(),
                  arch.multiarch, str(MERGED_USR_HOOKS), ZSTD, *extra)


def build_rootfs(arch: GuestArch | str = I386, kdump: bool = False) -> Path:
    """Path of the cached base initramfs (with kdump: the kdump rootfs), building it on a miss."""
    arch = guest_arch(arch)
    packages: tuple[str, ...]
    if kdump:
        packages, what, zstd, flavour = KDUMP_PACKAGES, "kdump rootfs", DKMS_ZSTD, " kdump"
    else:
        packages, what, zstd, flavour = PACKAGES, "rootfs", ZSTD, ""
    return _build_cached(cache_key(arch, kdump), arch, what, "about 2 minutes", zstd, [
        f"--include={','.join(packages)}", f"--hook-dir={MERGED_USR_HOOKS}",
        f"--customize-hook=sh {HOOK} \"$1\" {arch.multiarch}{flavour}"])


def dkms_cache_key(arch: GuestArch, header_debs: list[Path]) -> str:
    """Debian package versions never change content: the .debs' names stand for them."""
    return digest("dkms", SUITE, arch.debian_arch, VARIANT, ",".join(DKMS_PACKAGES),
                  DKMS_HOOK.read_bytes(), arch.multiarch, str(MERGED_USR_HOOKS),
                  str(DEB_PATH_HOOKS), DKMS_ZSTD, *(deb.name for deb in header_debs))


def build_dkms_rootfs(arch: GuestArch | str, header_debs: list[Path]) -> Path:
    """Path of the cached dkms initramfs (apt, dkms, gcc and the kernel headers of
    `header_debs`, stock.fetch_header_debs), building it on a miss."""
    arch = guest_arch(arch)
    # the hook removes the mount points of the .debs (named like the host's cache)
    hook_args = " ".join(shlex.quote(str(deb)) for deb in header_debs)
    options = [f"--include={','.join(DKMS_PACKAGES)}", *(f"--include={deb}" for deb in header_debs),
               f"--hook-dir={MERGED_USR_HOOKS}", f"--hook-dir={DEB_PATH_HOOKS}",
               f"--customize-hook=sh {DKMS_HOOK} \"$1\" {arch.multiarch} {hook_args}"]
    return _build_cached(dkms_cache_key(arch, header_debs), arch, "dkms rootfs", "about 1 minute",
                         DKMS_ZSTD, options)


def _build_cached(key: str, arch: GuestArch, what: str, duration: str, zstd: str,
                  options: list[str]) -> Path:
    """The cached cpio.zst under `key`; on a miss mmdebstrap builds the tree with `options`."""
    cache = cache_root() / "rootfs"
    final = cache / key
    archive = final / ARCHIVE
    if archive.exists():
        return archive
    with locked(cache / ".lock"):
        if archive.exists():
            return archive
        staging = final.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = staging / "build.log"
        tree = staging / "tree"
        mirror = debian_mirror()
        progress(f"building the Debian {SUITE} {arch.debian_arch} {what} from {mirror} (log {log}; "
                 f"first time only, {duration})")
        run_logged(["mmdebstrap", f"--arch={arch.debian_arch}", f"--variant={VARIANT}", *options,
                    SUITE, tree, mirror], log)
        pack_cpio(tree, staging / ARCHIVE, log, zstd=zstd)
        shutil.rmtree(tree)
        publish(staging, final)
    return archive


def pack_cpio(tree: Path, out: Path, log: Path, owner: str | None = None, zstd: str = ZSTD) -> None:
    """newc archive of `tree`, sorted for stable output; compressed by `zstd` when `out` ends
    in .zst."""
    owner_args = f"-R {owner}" if owner else ""
    compress = f"| {zstd}" if out.suffix == ".zst" else ""
    script = (f"find . -print0 | LC_ALL=C sort -z | cpio --null --quiet -o -H newc {owner_args} "
              f'{compress} > "$1"')
    run_logged(["bash", "-o", "pipefail", "-c", script, "pack_cpio", out.resolve()], log, cwd=tree)
