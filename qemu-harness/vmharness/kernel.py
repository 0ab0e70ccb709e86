"""Guest kernels: Debian's linux-source-6.1, tinyconfig + our fragment, our patches.

All variants share one extracted tree and are built incrementally in it; each
variant's bzImage is cached under a key of everything that went into it.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .build import (HARNESS_DIR, BuildError, cache_root, digest, locked, progress, publish,
                    run_logged)

SOURCE_PACKAGE = "linux-source-6.1"
KERNEL_DIR = HARNESS_DIR / "kernel"
FRAGMENT = KERNEL_DIR / "i386.config"
PATCH_DIR = KERNEL_DIR / "patches"
MAKE = ["make", "ARCH=i386", f"-j{(os.cpu_count() or 1) + 1}"]


class Variant(str, enum.Enum):
    PATCHED = "patched"        # the kernel the tests use
    UNPATCHED = "unpatched"    # proves the 32-bit return bug: resets on the first return
    NOJUMP = "nojump"          # KEXEC_JUMP off: preserve-context loads must get EINVAL

    @property
    def applies_patches(self) -> bool:
        return self is Variant.PATCHED

    @property
    def config_override(self) -> str:
        return "# CONFIG_KEXEC_JUMP is not set\n" if self is Variant.NOJUMP else ""


@dataclass(frozen=True)
class Kernel:
    variant: Variant
    bzimage: Path
    vmlinux: Path  # the same kernel as a plain ELF, for kexec --args-linux
    config: Path

    @property
    def built(self) -> bool:
        return self.bzimage.exists() and self.vmlinux.exists()


@dataclass(frozen=True)
class KernelSource:
    version: str
    tarball: Path


def find_source(cache: Path) -> KernelSource:
    """The installed linux-source package, else the same package unpacked into the cache."""
    query = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", SOURCE_PACKAGE],
                           capture_output=True, text=True)
    tarball = Path(f"/usr/src/{SOURCE_PACKAGE}.tar.xz")
    if query.returncode == 0 and query.stdout.startswith("install ok installed") and tarball.exists():
        return KernelSource(query.stdout.split("\t")[1], tarball)

    deb_dir = cache / "deb"
    unpacked = deb_dir / "root" / "usr" / "src" / f"{SOURCE_PACKAGE}.tar.xz"
    debs = sorted(deb_dir.glob(f"{SOURCE_PACKAGE}_*.deb"))
    if not debs:
        progress(f"{SOURCE_PACKAGE} is not installed: downloading it into {deb_dir}")
        deb_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", SOURCE_PACKAGE], cwd=deb_dir, check=True)
        debs = sorted(deb_dir.glob(f"{SOURCE_PACKAGE}_*.deb"))
    if not unpacked.exists():
        subprocess.run(["dpkg-deb", "-x", debs[-1], deb_dir / "root"], check=True)
    version = subprocess.run(["dpkg-deb", "-f", debs[-1], "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    return KernelSource(version, unpacked)


def patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def cache_key(source: KernelSource, variant: Variant) -> str:
    parts: list[str | bytes] = [source.version, FRAGMENT.read_bytes(), variant.value]
    for patch in patches():
        parts += [patch.name, patch.read_bytes()]
    return digest(*parts)


def required_settings(variant: Variant) -> dict[str, str]:
    """Symbol -> 'y' or 'n' for every line of the fragment and the variant's override."""
    wanted: dict[str, str] = {}
    for line in (FRAGMENT.read_text() + variant.config_override).splitlines():
        if m := re.fullmatch(r"(CONFIG_\w+)=y", line):
            wanted[m[1]] = "y"
        elif m := re.fullmatch(r"# (CONFIG_\w+) is not set", line):
            wanted[m[1]] = "n"
    return wanted


def check_config(config: Path, variant: Variant) -> None:
    """olddefconfig silently drops symbols whose dependencies are off: refuse such a kernel."""
    text = config.read_text()
    actual = {m[1]: m[2] for m in re.finditer(r"^(CONFIG_\w+)=(.*)$", text, re.M)}
    wrong = [f"{sym} wanted {want}, got {actual.get(sym, 'n')}"
             for sym, want in required_settings(variant).items() if actual.get(sym, "n") != want]
    if wrong:
        raise BuildError(f"{config}: olddefconfig did not keep the fragment:\n  " + "\n  ".join(wrong))


def build_kernel(variant: Variant) -> Kernel:
    cache = cache_root() / "kernel"
    source = find_source(cache)
    final = cache / cache_key(source, variant)
    kernel = Kernel(variant, final / "bzImage", final / "vmlinux", final / "config")
    if kernel.built:
        return kernel
    with locked(cache / ".lock"):
        if kernel.built:
            return kernel
        staging = final.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = staging / "build.log"
        tree = _extracted_tree(cache, source, log)
        progress(f"building the {variant.value} kernel in {tree} (log {log}; a first build "
                 "takes about 5 minutes, later variants rebuild little)")
        _set_patches(tree, patches() if variant.applies_patches else [], log)
        _configure(tree, variant, log)
        run_logged([*MAKE, "bzImage"], log, cwd=tree)
        check_config(tree / ".config", variant)
        shutil.copy2(tree / "arch/x86/boot/bzImage", staging / "bzImage")
        shutil.copy2(tree / "vmlinux", staging / "vmlinux")
        shutil.copy2(tree / ".config", staging / "config")
        publish(staging, final)
    return kernel


def _extracted_tree(cache: Path, source: KernelSource, log: Path) -> Path:
    root = cache / "src" / source.version
    tree = root / SOURCE_PACKAGE
    done = root / ".extracted"
    if not done.exists():
        progress(f"extracting {source.tarball}")
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        run_logged(["tar", "-xf", source.tarball, "-C", root], log)
        done.touch()
    return tree


def _set_patches(tree: Path, wanted: list[Path], log: Path) -> None:
    """Bring the tree to exactly `wanted` applied, reverting whatever a previous build applied.

    Copies of the applied patches are kept in the tree, so a patch edited in the repo is
    still reverted with the text that was applied.
    """
    applied_dir = tree / ".vmharness-applied"
    applied_dir.mkdir(exist_ok=True)
    applied = sorted(applied_dir.glob("*.patch"))
    if [p.read_bytes() for p in applied] == [p.read_bytes() for p in wanted]:
        return
    for patch in reversed(applied):
        run_logged(["patch", "-p1", "-R", "--batch", "--no-backup-if-mismatch", "-i", patch], log,
                   cwd=tree)
        patch.unlink()
    for index, patch in enumerate(wanted):
        run_logged(["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-i", patch],
                   log, cwd=tree)
        shutil.copy2(patch, applied_dir / f"{index:04d}-{patch.name}")


def _configure(tree: Path, variant: Variant, log: Path) -> None:
    """tinyconfig + fragment (+ variant override) + olddefconfig.

    Regenerating .config from scratch every time keeps variants independent; Kconfig only
    touches the headers of symbols that changed, so make rebuilds little.
    """
    override = tree / ".vmharness-override.config"
    override.write_text(variant.config_override)
    run_logged([*MAKE, "tinyconfig"], log, cwd=tree)
    run_logged(["scripts/kconfig/merge_config.sh", "-m", "-O", ".", ".config", FRAGMENT, override],
               log, cwd=tree)
    run_logged([*MAKE, "olddefconfig"], log, cwd=tree)
    check_config(tree / ".config", variant)
