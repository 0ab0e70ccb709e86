"""Stock Debian bookworm kernels for the guests: any `linux-image-*` package from the host's
apt sources, the part of its modules tree a guest needs, its headers, and the kexec_jump
shim module (csrc/shim) built against those headers.

Each step is cached under cache_root()/stock and published atomically:
  image/<package>_<version>_<arch>/root/    the package, `dpkg-deb -x` + depmod of its tree
  headers/<release>_<version>/root/         linux-headers-<release>, -common, linux-kbuild
  shim/<key>/kexec_jump.ko                  key: headers, arch, every file of the source
  modules/<key>/modules.cpio                the guest's /lib/modules/<release> (key: its inputs)
  header-debs/<release>_<version>_<arch>/   the headers' .deb files, for a guest's own rootfs
apt-cache answers from the local indexes: a cached kernel needs no network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .arch import GuestArch
from .build import REPO_DIR, BuildError, cache_root, digest, locked, progress, publish, run_logged
from .rootfs import pack_cpio

DEBIAN_PREFIX = "debian:"   # run-vm --kernel debian:PACKAGE
SHIM_SOURCE = REPO_DIR / "csrc" / "shim"
SHIM_MODULE = "kexec_jump"
# Modules a guest gets (by name) besides the shim, with everything they depend on: the
# drivers of run-vm --disk and --nic and the disk's filesystem, all modules on Debian's
# amd64, 686 and 686-pae kernels (guest/init loads them for the devices it finds). ext4 and
# jbd2 want the crc32c hash by a soft dependency (`crypto-crc32c`), which modules.dep lacks.
EXTRA_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_blk", "virtio_net", "e1000", "ext4",
                                  "crc32c_generic")
# The Debian packages of the headers a module build needs (linux-compiler-gcc-12-x86 only
# pulls in gcc-12, which the host has)
HEADER_PACKAGE_PREFIXES = ("linux-headers-", "linux-kbuild-")
# What a guest that builds modules itself installs besides linux-headers-<release>: every
# package of the same source it depends on (-common, linux-kbuild-X.Y, linux-compiler-gcc-*)
GUEST_HEADER_PACKAGE_PREFIX = "linux-"
# the files of a package's /lib/modules/<release> a guest always gets (depmod makes the rest)
MODULES_METADATA = ("modules.builtin", "modules.builtin.modinfo", "modules.order")
DEFAULT_SMP = 2


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    arch: str | None   # Debian architecture; None: apt's choice (the host's, or `all`)

    @property
    def apt_spec(self) -> str:
        """As `apt-get download` takes it: exactly this version and architecture."""
        return self.name + (f":{self.arch}" if self.arch else "") + f"={self.version}"

    @property
    def key(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch or 'host'}"


@dataclass(frozen=True)
class StockKernel:
    package: DebianPackage
    release: str   # uname -r, e.g. 6.1.0-57-amd64
    root: Path     # the extracted package; depmod has indexed its whole modules tree

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.release


@dataclass(frozen=True)
class KernelHeaders:
    release: str
    version: str
    root: Path     # the extracted header packages: usr/src/..., usr/lib/linux-kbuild-*

    @property
    def build_dir(self) -> Path:
        """What `make -C` takes (/lib/modules/<release>/build on an installed system)."""
        return self.root / "usr" / "src" / f"linux-headers-{self.release}"


# ---- pure helpers (unit-tested) ----

def depends_names(apt_cache_depends: str) -> list[str]:
    """The package names of the `Depends:` lines of `apt-cache depends` output, in order,
    without `<virtual>` brackets or `:arch` qualifiers."""
    names = []
    for line in apt_cache_depends.splitlines():
        if m := re.fullmatch(r"\s*\|?Depends:\s*<?([^\s<>:]+)(?::\S+?)?>?\s*", line):
            names.append(m[1])
    return names


def is_versioned_image(name: str) -> bool:
    """linux-image-6.1.0-57-amd64(-unsigned) carries a kernel; linux-image-amd64 only depends on one."""
    return re.fullmatch(r"linux-image-\d+\.\d+.*", name) is not None


def metapackage_target(apt_cache_depends: str) -> str | None:
    """The versioned image a metapackage depends on; None if it depends on none."""
    return next((n for n in depends_names(apt_cache_depends) if is_versioned_image(n)), None)


def header_packages(apt_cache_depends: str) -> list[str]:
    """What a linux-headers-<release> package needs for module builds, from its `apt-cache
    depends`: the -common headers (-common-rt for rt) and linux-kbuild."""
    return [n for n in depends_names(apt_cache_depends) if n.startswith(HEADER_PACKAGE_PREFIXES)]


def guest_header_packages(apt_cache_depends: str) -> list[str]:
    """What a machine running the kernel installs with its linux-headers-<release>, from the
    latter's `apt-cache depends`: the packages of the kernel's source it depends on (-common,
    linux-kbuild, linux-compiler-gcc-*), which carry the image's version."""
    return [n for n in depends_names(apt_cache_depends) if n.startswith(GUEST_HEADER_PACKAGE_PREFIX)]


def control_field(control: str, field: str) -> str:
    """One field of a Debian control stanza (`apt-cache show`, `dpkg-deb -f`)."""
    for line in control.splitlines():
        name, sep, value = line.partition(":")
        if sep and name == field:
            return value.strip()
    raise KeyError(field)


def release_from_boot(names: Iterable[str]) -> str:
    """The kernel release from a package's /boot file names (vmlinuz-<release>)."""
    releases = sorted({n[len("vmlinuz-"):] for n in names if n.startswith("vmlinuz-")})
    if len(releases) != 1:
        raise BuildError(f"expected one /boot/vmlinuz-* in the package, found {releases or 'none'}")
    return releases[0]


def rewrite_common_include(makefile: str, root: Path) -> str:
    """The flavour's top Makefile includes the -common one by an absolute /usr/src path;
    point it into `root`, where the packages were extracted."""
    text, count = re.subn(r"^include /usr/src/", f"include {root}/usr/src/", makefile, flags=re.M)
    if count != 1:
        raise BuildError(f"expected one `include /usr/src/...` line in the headers' Makefile:\n{makefile}")
    return text


def module_name(path: str) -> str:
    """kernel/drivers/net/virtio_net.ko -> virtio_net (modprobe treats - and _ alike)."""
    return re.sub(r"\.ko(\.\w+)?$", "", path.rsplit("/", 1)[-1]).replace("-", "_")


def module_closure(modules_dep: str, names: Iterable[str]) -> list[str]:
    """The modules.dep paths of the named modules and of everything they depend on, sorted."""
    deps: dict[str, list[str]] = {}
    for line in modules_dep.splitlines():
        if ":" in line:
            path, rest = line.split(":", 1)
            deps[path.strip()] = rest.split()
    by_name = {module_name(path): path for path in deps}
    wanted: set[str] = set()
    todo = []
    for name in names:
        try:
            todo.append(by_name[name.replace("-", "_")])
        except KeyError:
            raise BuildError(f"module {name!r} is not in modules.dep (built in, or not built?)") from None
    while todo:
        path = todo.pop()
        if path not in wanted:
            wanted.add(path)
            todo += deps.get(path, [])
    return sorted(wanted)


def warning_lines(build_log: str) -> list[str]:
    """Compiler (`warning:`) and modpost (`WARNING:`) warnings in a build's output."""
    return [line for line in build_log.splitlines() if re.search(r"warning:", line, re.I)]


# ---- apt ----

def _apt_cache(*args: str) -> str:
    result = subprocess.run(["apt-cache", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"apt-cache {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def resolve_image(package: str, arch: GuestArch) -> DebianPackage:
    """A linux-image metapackage or versioned image -> the versioned image apt would install."""
    if ":" in package or not package.startswith("linux-image-"):
        raise BuildError(f"{DEBIAN_PREFIX}{package}: expected a linux-image-* package name "
                         "(no :arch; --arch chooses it)")
    qualified = f"{package}:{arch.debian_arch}"
    try:
        if not is_versioned_image(package):
            target = metapackage_target(_apt_cache("depends", qualified))
            if target is None:
                raise BuildError(f"{qualified} depends on no versioned linux-image package")
            package, qualified = target, f"{target}:{arch.debian_arch}"
        version = control_field(_apt_cache("show", "--no-all-versions", qualified), "Version")
    except BuildError as error:
        raise BuildError(f"{error} (i386 flavours such as 686-pae need --arch i386 and "
                         "`dpkg --add-architecture i386 && apt-get update`)") from None
    return DebianPackage(package, version, arch.debian_arch)


def _download(packages: Iterable[DebianPackage], dest: Path, log: Path) -> list[Path]:
    """apt-get download exactly these versions into dest; the .deb files, in order."""
    packages = list(packages)
    run_logged(["apt-get", "-q", "download", *(p.apt_spec for p in packages)], log, cwd=dest)
    debs = []
    for package in packages:
        found = sorted(dest.glob(f"{package.name}_*.deb"))
        if len(found) != 1:
            raise BuildError(f"apt-get download {package.apt_spec}: expected one .deb in {dest}, "
                             f"found {[p.name for p in found]}")
        debs.append(found[0])
    return debs


# ---- cached steps ----

def _staging(final: Path) -> Path:
    """An empty directory beside `final` to build in (not with_suffix: names have dots)."""
    staging = final.parent / f"{final.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def fetch_kernel(package: str, arch: GuestArch) -> StockKernel:
    """The resolved image package, downloaded and extracted (cached by name+version+arch)."""
    deb = resolve_image(package, arch)
    cache = cache_root() / "stock" / "image"
    final = cache / deb.key
    done = final / "release"
    if not done.exists():
        with locked(cache / ".lock"):
            if not done.exists():
                _extract_image(deb, final)
    return StockKernel(deb, done.read_text().strip(), final / "root")


def _extract_image(deb: DebianPackage, final: Path) -> None:
    staging = _staging(final)
    log = staging / "build.log"
    progress(f"downloading and extracting {deb.apt_spec} (log {log})")
    [path] = _download([deb], staging, log)
    root = staging / "root"
    run_logged(["dpkg-deb", "-x", path, root], log)
    path.unlink()   # the extracted tree is the cache entry
    release = release_from_boot(p.name for p in (root / "boot").iterdir())
    # the package ships no modules.dep (its postinst runs depmod): index the whole tree once
    # so that the guest's modules are picked with their dependencies
    run_logged(["depmod", "-b", root, release], log)
    (staging / "release").write_text(release + "\n")
    publish(staging, final)


def fetch_headers(kernel: StockKernel) -> KernelHeaders:
    """linux-headers-<release> (the image's arch) + its -common and linux-kbuild packages (the
    host's arch: they hold host tools), the same version as the image, extracted into one root."""
    flavour = DebianPackage(f"linux-headers-{kernel.release}", kernel.package.version,
                            kernel.package.arch)
    cache = cache_root() / "stock" / "headers"
    final = cache / f"{kernel.release}_{flavour.version.replace(':', '%3a')}"
    headers = KernelHeaders(kernel.release, flavour.version, final / "root")
    done = final / ".extracted"
    if done.exists():
        return headers
    with locked(cache / ".lock"):
        if done.exists():
            return headers
        staging = _staging(final)
        log = staging / "build.log"
        progress(f"downloading and extracting the headers of {kernel.release} (log {log})")
        needed = header_packages(_apt_cache("depends", f"{flavour.name}:{flavour.arch}"))
        packages = [flavour, *(DebianPackage(n, flavour.version, None) for n in needed)]
        for path in _download(packages, staging, log):
            run_logged(["dpkg-deb", "-x", path, staging / "root"], log)
            path.unlink()
        makefile = staging / "root" / headers.build_dir.relative_to(headers.root) / "Makefile"
        makefile.write_text(rewrite_common_include(makefile.read_text(), headers.root))
        (staging / ".extracted").touch()
        publish(staging, final)
    return headers


def fetch_header_debs(kernel: StockKernel) -> list[Path]:
    """The .deb files of linux-headers-<release> and of the packages of its source it depends
    on, all of the image's version and arch (they run in the guest), for a rootfs that builds
    modules itself (rootfs.build_dkms_rootfs): downloaded from the host's apt sources, as
    the image was, so that they match it exactly even when it came from bookworm-security."""
    arch = kernel.package.arch
    flavour = DebianPackage(f"linux-headers-{kernel.release}", kernel.package.version, arch)
    cache = cache_root() / "stock" / "header-debs"
    final = cache / f"{kernel.release}_{flavour.version.replace(':', '%3a')}_{arch or 'host'}"
    done = final / "debs"
    if not done.exists():
        with locked(cache / ".lock"):
            if not done.exists():
                staging = _staging(final)
                log = staging / "build.log"
                progress(f"downloading the header packages of {kernel.release} (log {log})")
                qualified = flavour.name + (f":{arch}" if arch else "")
                needed = guest_header_packages(_apt_cache("depends", qualified))
                packages = [flavour, *(DebianPackage(n, flavour.version, _arch_of(n, arch))
                                       for n in needed)]
                debs = _download(packages, staging, log)
                (staging / "debs").write_text("".join(f"{deb.name}\n" for deb in debs))
                publish(staging, final)
    return [final / name for name in done.read_text().split()]


def _arch_of(name: str, arch: str | None) -> str | None:
    """`arch` for an arch-specific package; None for an `Architecture: all` one (apt finds
    no `name:i386` of those)."""
    if arch and control_field(_apt_cache("show", "--no-all-versions", name), "Architecture") == "all":
        return None
    return arch


def shim_key(headers: KernelHeaders, arch: GuestArch, source: Path) -> str:
    parts: list[str | bytes] = [headers.release, headers.version, arch.kernel_arch]
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(source)), path.read_bytes()]
    return digest(*parts)


def compile_shim(kernel_build: Path, arch: GuestArch, source: Path, build: Path, log: Path,
                 jobs: tuple[str, ...] = ()) -> Path:
    """kexec_jump.ko from a copy of `source` made in `build`, against a kernel build tree (a
    headers package's, or a configured and built source tree); warnings fail it."""
    shutil.copytree(source, build)
    start = log.stat().st_size if log.exists() else 0
    run_logged(["make", "-C", kernel_build, f"M={build}", f"ARCH={arch.kernel_arch}", *jobs, "modules"], log)
    with log.open(errors="replace") as f:
        f.seek(start)
        warnings = warning_lines(f.read())
    if warnings:
        raise BuildError(f"building {SHIM_MODULE}.ko printed warnings (log {log}):\n" + "\n".join(warnings[:40]))
    built = build / f"{SHIM_MODULE}.ko"
    if not built.exists():
        raise BuildError(f"the build made no {built.name} (log {log})")
    return built


def build_shim(headers: KernelHeaders, arch: GuestArch, source: Path = SHIM_SOURCE) -> Path:
    """kexec_jump.ko built from a copy of `source` against the headers; warnings fail it."""
    if not source.is_dir():
        raise BuildError(f"{source}: no module source directory")
    cache = cache_root() / "stock" / "shim"
    final = cache / shim_key(headers, arch, source)
    module = final / f"{SHIM_MODULE}.ko"
    if module.exists():
        return module
    with locked(cache / ".lock"):
        if module.exists():
            return module
        staging = _staging(final)
        log = staging / "build.log"
        progress(f"building {SHIM_MODULE}.ko from {source} for {headers.release} (log {log})")
        built = compile_shim(headers.build_dir, arch, source, staging / "src", log)
        shutil.copy2(built, staging / built.name)
        publish(staging, final)
    return module


def guest_modules(kernel: StockKernel, extra: tuple[str, ...] = EXTRA_MODULES,
                  shim: Path | None = None) -> Path:
    """An uncompressed cpio with the guest's /lib/modules/<release>: the package's metadata
    files, the `extra` modules with their dependencies, the shim as updates/kexec_jump.ko,
    and depmod's indexes of exactly that tree."""
    cache = cache_root() / "stock" / "modules"
    key = digest(kernel.package.key, kernel.release, ",".join(extra),
                 shim.read_bytes() if shim else b"no shim", *MODULES_METADATA)
    final = cache / key
    archive = final / "modules.cpio"
    if archive.exists():
        return archive
    with locked(cache / ".lock"):
        if archive.exists():
            return archive
        staging = _staging(final)
        log = staging / "build.log"
        tree = staging / "tree"
        # merged /usr: the rootfs's /lib is a symlink to usr/lib, and the kernel would replace
        # it with a directory if the archive had one; the same link here serves depmod -b
        modules = tree / "usr" / "lib" / "modules" / kernel.release
        modules.mkdir(parents=True)
        (tree / "lib").symlink_to("usr/lib")
        for name in MODULES_METADATA:
            shutil.copy2(kernel.modules_dir / name, modules / name)
        for relative in module_closure((kernel.modules_dir / "modules.dep").read_text(), extra):
            (modules / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(kernel.modules_dir / relative, modules / relative)
        if shim:
            (modules / "updates").mkdir()
            shutil.copy2(shim, modules / "updates" / shim.name)
        run_logged(["depmod", "-b", tree, kernel.release], log)
        for directory in [tree, *(p for p in tree.rglob("*") if p.is_dir() and not p.is_symlink())]:
            directory.chmod(0o755)   # the kernel applies them to the base's /usr, /usr/lib
        pack_cpio(tree, staging / archive.name, log, owner="0:0")
        shutil.rmtree(tree)
        publish(staging, final)
    return archive


@dataclass(frozen=True)
class StockBoot:
    """What a guest on a stock kernel boots: the kernel and the cpio to append to its initramfs."""
    kernel: StockKernel
    modules_cpio: Path
    shim: Path | None


def prepare_stock(package: str, arch: GuestArch, shim: bool = True,
                  shim_source: Path = SHIM_SOURCE) -> StockBoot:
    kernel = fetch_kernel(package, arch)
    module = build_shim(fetch_headers(kernel), arch, shim_source) if shim else None
    return StockBoot(kernel, guest_modules(kernel, EXTRA_MODULES, module), module)
