"""Guest kernels: Debian's linux-source package of the arch (6.1 for i386, 6.12 for x86_64),
tinyconfig + the arch's fragment, the arch's patches.

All variants of one arch share one extracted tree and are built incrementally in it;
each variant's bzImage is cached under a key of everything that went into it.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .arch import I386, GuestArch, guest_arch
from .build import BuildError, cache_root, digest, locked, progress, publish, run_logged
from .stock import SHIM_MODULE, SHIM_SOURCE, compile_shim

JOBS = f"-j{(os.cpu_count() or 1) + 1}"


def make(arch: GuestArch) -> list[str]:
    return ["make", f"ARCH={arch.kernel_arch}", JOBS]


class Variant(str, enum.Enum):
    # the kernel the tests use: with the arch's patches (i386), or plain where the
    # kernel needs none (x86_64: 6.12.117 has the upstream fix)
    PATCHED = "patched"
    UNPATCHED = "unpatched"    # i386 only: proves the 32-bit return bug (resets on the first return)
    NOJUMP = "nojump"          # KEXEC_JUMP off: preserve-context loads must get EINVAL
    # patched, with loadable modules and the kexec_jump module built against it: the shim
    # and the kernel's own KEXEC_JUMP on one kernel (the bench's shim comparison)
    MODULES = "modules"

    @property
    def applies_patches(self) -> bool:
        return self in (Variant.PATCHED, Variant.MODULES)

    @property
    def config_override(self) -> str:
        return {Variant.NOJUMP: "# CONFIG_KEXEC_JUMP is not set\n",
                Variant.MODULES: "CONFIG_MODULES=y\nCONFIG_MODULE_UNLOAD=y\n"}.get(self, "")

    @property
    def builds_shim(self) -> bool:
        return self is Variant.MODULES


def variants(arch: GuestArch) -> list[Variant]:
    """`unpatched` exists only where `patched` differs from the plain kernel."""
    return [v for v in Variant if v is not Variant.UNPATCHED or arch.patches()]


@dataclass(frozen=True)
class Kernel:
    arch: GuestArch
    variant: Variant
    bzimage: Path
    vmlinux: Path  # the same kernel as a plain ELF, for kexec --args-linux
    config: Path
    shim: Path | None = None  # kexec_jump.ko built against this kernel (Variant.builds_shim)

    @property
    def built(self) -> bool:
        return self.bzimage.exists() and self.vmlinux.exists() and (self.shim is None or self.shim.exists())


@dataclass(frozen=True)
class KernelSource:
    version: str
    tarball: Path


def find_source(cache: Path, arch: GuestArch) -> KernelSource:
    """The installed linux-source package, else the same package unpacked into the cache."""
    package = arch.source_package
    query = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                           capture_output=True, text=True)
    tarball = Path(f"/usr/src/{package}.tar.xz")
    if query.returncode == 0 and query.stdout.startswith("install ok installed") and tarball.exists():
        return KernelSource(query.stdout.split("\t")[1], tarball)

    deb_dir = cache / "deb"
    unpacked = deb_dir / "root" / "usr" / "src" / f"{package}.tar.xz"
    debs = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not debs:
        progress(f"{package} is not installed: downloading it into {deb_dir}")
        deb_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=deb_dir, check=True)
        debs = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not unpacked.exists():
        subprocess.run(["dpkg-deb", "-x", debs[-1], deb_dir / "root"], check=True)
    version = subprocess.run(["dpkg-deb", "-f", debs[-1], "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    return KernelSource(version, unpacked)


def cache_key(source: KernelSource, variant: Variant, arch: GuestArch) -> str:
    # make's ARCH= is not a part of its own: each arch has its own fragment and source
    # package (so i386 keys stay what they were before x86_64 came)
    parts: list[str | bytes] = [source.version, arch.fragment.read_bytes(), variant.value]
    for patch in arch.patches():
        parts += [patch.name, patch.read_bytes()]
    if variant.builds_shim:  # the module is built in the kernel's tree, with it
        for path in sorted(p for p in SHIM_SOURCE.rglob("*") if p.is_file()):
            parts += [str(path.relative_to(SHIM_SOURCE)), path.read_bytes()]
    return digest(*parts)


def required_settings(variant: Variant, arch: GuestArch) -> dict[str, str]:
    """Symbol -> 'y' or 'n' for every line of the fragment and the variant's override."""
    wanted: dict[str, str] = {}
    for line in (arch.fragment.read_text() + variant.config_override).splitlines():
        if m := re.fullmatch(r"(CONFIG_\w+)=y", line):
            wanted[m[1]] = "y"
        elif m := re.fullmatch(r"# (CONFIG_\w+) is not set", line):
            wanted[m[1]] = "n"
    return wanted


def check_config(config: Path, variant: Variant, arch: GuestArch) -> None:
    """olddefconfig silently drops symbols whose dependencies are off: refuse such a kernel."""
    text = config.read_text()
    actual = {m[1]: m[2] for m in re.finditer(r"^(CONFIG_\w+)=(.*)$", text, re.M)}
    wrong = [f"{sym} wanted {want}, got {actual.get(sym, 'n')}"
             for sym, want in required_settings(variant, arch).items() if actual.get(sym, "n") != want]
    if wrong:
        raise BuildError(f"{config}: olddefconfig did not keep the fragment:\n  " + "\n  ".join(wrong))


def build_kernel(variant: Variant, arch: GuestArch | str = I386) -> Kernel:
    arch = guest_arch(arch)
    if variant not in variants(arch):
        raise BuildError(f"no {variant.value} kernel for {arch.name}: its kernel needs no patch,"
                         f" so `{Variant.PATCHED.value}` is the plain kernel")
    cache = cache_root() / "kernel"
    source = find_source(cache, arch)
    final = cache / cache_key(source, variant, arch)
    kernel = Kernel(arch, variant, final / "bzImage", final / "vmlinux", final / "config",
                    final / f"{SHIM_MODULE}.ko" if variant.builds_shim else None)
    if kernel.built:
        return kernel
    with locked(cache / ".lock"):
        if kernel.built:
            return kernel
        staging = final.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = staging / "build.log"
        tree = _extracted_tree(cache, source, arch, log)
        progress(f"building the {arch.name} {variant.value} kernel in {tree} (log {log}; a first "
                 "build takes 5-15 minutes, later variants rebuild little)")
        _set_patches(tree, arch.patches() if variant.applies_patches else [], log)
        _configure(tree, variant, arch, log)
        run_logged([*make(arch), "bzImage", *(["modules"] if variant.builds_shim else [])], log, cwd=tree)
        check_config(tree / ".config", variant, arch)
        if variant.builds_shim:
            _build_shim(tree, arch, staging, log)
        shutil.copy2(tree / "arch/x86/boot/bzImage", staging / "bzImage")
        shutil.copy2(tree / "vmlinux", staging / "vmlinux")
        shutil.copy2(tree / ".config", staging / "config")
        publish(staging, final)
    return kernel


def _build_shim(tree: Path, arch: GuestArch, staging: Path, log: Path) -> None:
    """kexec_jump.ko from a copy of the shim's source, against the configured and built tree."""
    source = staging / "shim-src"
    shutil.copy2(compile_shim(tree, arch, SHIM_SOURCE, source, log, (JOBS,)), staging / f"{SHIM_MODULE}.ko")
    shutil.rmtree(source)


def _extracted_tree(cache: Path, source: KernelSource, arch: GuestArch, log: Path) -> Path:
    root = cache / "src" / source.version
    tree = root / arch.source_package
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


def _configure(tree: Path, variant: Variant, arch: GuestArch, log: Path) -> None:
    """tinyconfig + fragment (+ variant override) + olddefconfig.

    Regenerating .config from scratch every time keeps variants independent; Kconfig only
    touches the headers of symbols that changed, so make rebuilds little.
    """
    override = tree / ".vmharness-override.config"
    override.write_text(variant.config_override)
    run_logged([*make(arch), "tinyconfig"], log, cwd=tree)
    run_logged(["scripts/kconfig/merge_config.sh", "-m", "-O", ".", ".config", arch.fragment,
                override], log, cwd=tree)
    run_logged([*make(arch), "olddefconfig"], log, cwd=tree)
    check_config(tree / ".config", variant, arch)
