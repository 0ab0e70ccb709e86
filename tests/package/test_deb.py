"""The .debs users install, both built by one debian/build-deb.sh run (debhelper +
pybuild + dh_dkms), lintian-clean: kexec-py, with the tool, man page, payloads, kit
and purgatory where the tool looks for them; kexec-py-dkms, with the source of the
kernel driver shim (csrc/shim, kexec_jump.ko) and its dkms.conf in
/usr/src/kexec-py-<version>/. The VM tests install these same .debs in the guests."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from vmharness.package import BUILD_DEB, REPO_DIR, build_debs, source_files

SHIM = REPO_DIR / "csrc" / "shim"
# What Kbuild and dkms leave in a module's directory: never source.
BUILD_ARTEFACTS = ("*.o", "*.ko", "*.mod", "*.mod.c", "*.a", "*.cmd", "modules.order", "Module.symvers",
                   ".*")


@pytest.fixture(scope="module")
def debs():
    return build_debs()


@pytest.fixture(scope="module")
def deb(debs):
    return debs[0]


@pytest.fixture(scope="module")
def dkms_deb(debs):
    return debs[1]


def control(deb: Path, *fields: str) -> dict[str, str]:
    """The named fields of the .deb's control file (one dpkg-deb -f value each, absent ones left out)."""
    out = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
    found = dict(line.split(": ", 1) for line in out.splitlines() if line[:1] not in (" ", ""))
    return {name: found[name] for name in fields if name in found}


def files(deb: Path) -> dict[str, str]:
    """Path -> mode string of every regular file in the .deb."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    return {line.split()[5].lstrip("."): line.split()[0] for line in listing.splitlines()
            if line.startswith("-")}


def extract(deb: Path, dest: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


def upstream_version(deb: Path) -> str:
    return control(deb, "Version")["Version"].rsplit("-", 1)[0]


def is_artefact(relative: str) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in PurePosixPath(relative).parts
               for pattern in BUILD_ARTEFACTS)


def shim_sources() -> dict[str, Path]:
    """csrc/shim's source files as build-deb.sh copies them (tracked or untracked-not-ignored),
    relative path -> file, build artefacts of a developer's in-tree module build left out."""
    found = {str(p.relative_to(SHIM)): p for p in source_files() if p.is_relative_to(SHIM)}
    return {name: path for name, path in found.items() if not is_artefact(name)}


@pytest.mark.parametrize("package", ["kexec-py", "kexec-py-dkms"])
def test_lintian_reports_no_errors_or_warnings(debs, package):
    deb = dict(zip(("kexec-py", "kexec-py-dkms"), debs))[package]
    result = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")], result.stdout


def test_both_debs_come_from_one_build(debs):
    assert [d.name.split("_")[0] for d in debs] == ["kexec-py", "kexec-py-dkms"]
    assert debs[0].parent == debs[1].parent
    assert control(debs[0], "Version") == control(debs[1], "Version")


def test_control_fields(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Architecture", "Depends", "Conflicts",
                             "Replaces", "Provides"], check=True, capture_output=True, text=True).stdout
    assert "Package: kexec-py" in fields
    assert "Architecture: all" in fields
    for dependency in ("python3-cffi-backend", "python3-pyelftools", "python3-pyroute2"):
        assert dependency in fields
    # the drop-in replacement's three fields: kdump-tools (which depends on kexec-tools) works on
    # kexec-py, tests/vm/test_kdump_tools.py
    for field in ("Conflicts", "Replaces", "Provides"):
        assert f"{field}: kexec-tools" in fields


def test_kexec_py_recommends_the_module_of_its_own_version(deb):
    fields = control(deb, "Version", "Recommends", "Depends")
    # Recommends, not Depends: a kernel with CONFIG_KEXEC_JUMP needs no module
    assert f"kexec-py-dkms (= {fields['Version']})" in fields["Recommends"]
    assert "dkms" not in fields["Depends"]


def test_contents(deb):
    paths = set(files(deb))
    for path in ("/usr/sbin/kexec", "/usr/share/man/man8/kexec.8.gz",
                 "/usr/lib/kexec-py/i386/phy_mode", "/usr/lib/kexec-py/i386/entry_report",
                 "/usr/lib/kexec-py/x86_64/phy_mode", "/usr/lib/kexec-py/x86_64/entry_report",
                 *(f"/usr/lib/kexec-py/{arch}/{name}" for arch in ("i386", "x86_64")
                   for name in ("bios-e820", "bios-memsize", "cpuid", "edd", "vbe-info")),
                 "/usr/lib/python3/dist-packages/kexec_py/calling.py",
                 "/usr/lib/python3/dist-packages/kexec_py/cli.py",
                 "/usr/lib/python3/dist-packages/kexec_py/_kexec_ffi.py",
                 "/usr/lib/python3/dist-packages/kexec_py/data/purgatory.ro",
                 "/usr/share/kexec-py/kit/Makefile", "/usr/share/doc/kexec-py/copyright"):
        assert path in paths, f"{path} missing from the .deb"
    # dh_compress gzips documentation over 4 KiB
    assert paths & {"/usr/share/doc/kexec-py/README.Debian", "/usr/share/doc/kexec-py/README.Debian.gz"}
    # the module's source is kexec-py-dkms's, not part of the payload kit
    assert not [p for p in paths if p.startswith(("/usr/share/kexec-py/kit/shim", "/usr/src/"))]
    launcher = subprocess.run(f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./usr/sbin/kexec", shell=True,
                              check=True, capture_output=True, text=True).stdout
    # isolated, no site scan, and no console_scripts wrapper (importlib.metadata)
    assert launcher.startswith("#!/usr/bin/python3 -IS\n"), launcher
    imports = {line.strip() for line in launcher.splitlines() if line.strip().startswith(("import ", "from "))}
    assert imports == {"import sys", "import site", "from kexec_py.cli import main"}, launcher


@pytest.mark.parametrize("name", ["purgatory.ro", "purgatory64.ro"])
def test_purgatory_ships_its_parse(deb, tmp_path, monkeypatch, name):
    """The installed purgatory links from the parse the build shipped beside it (no pyelftools
    on a load), exactly as pyelftools' parse of the same object does."""
    from kexec_py.purgatory import Purgatory

    path = str(extract(deb, tmp_path) / "usr/lib/python3/dist-packages/kexec_py/data" / name)
    parsed = Purgatory.from_bytes(Path(path).read_bytes(), path)

    def parse(*_):
        raise AssertionError(f"{name} parsed with pyelftools: its shipped parse is missing or stale")

    monkeypatch.setattr(Purgatory, "from_bytes", classmethod(parse))
    shipped = Purgatory.from_file(path)
    assert shipped == parsed
    assert bytes(shipped.link(0x9A000, {}).segment.buf) == bytes(parsed.link(0x9A000, {}).segment.buf)


def test_dkms_control_fields(dkms_deb):
    fields = control(dkms_deb, "Package", "Version", "Architecture", "Section", "Depends", "Recommends")
    assert fields["Package"] == "kexec-py-dkms"
    assert fields["Architecture"] == "all"
    assert fields["Section"] == "kernel"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert [d for d in depends if d.split()[0] == "dkms"], fields["Depends"]
    recommends = fields["Recommends"]
    assert f"kexec-py (= {fields['Version']})" in recommends
    assert "linux-headers" in recommends


def source_dkms_conf(conf: Path, kernel_source_dir: Path) -> dict[str, str]:
    """The variables dkms reads, after sourcing conf with bash as dkms does (dkms sets
    kernelver, arch, kernel_source_dir and dkms_tree first)."""
    names = ("PACKAGE_NAME", "PACKAGE_VERSION", "BUILT_MODULE_NAME[0]", "BUILT_MODULE_LOCATION[0]",
             "DEST_MODULE_NAME[0]", "DEST_MODULE_LOCATION[0]", "AUTOINSTALL", "BUILD_EXCLUSIVE_ARCH",
             "BUILD_EXCLUSIVE_KERNEL", "BUILD_EXCLUSIVE_CONFIG", "MAKE[0]", "CLEAN")
    script = ("kernelver=6.1.0-99-686-pae arch=i686 kernel_source_dir=$1 dkms_tree=/var/lib/dkms; "
              '. "$2" >/dev/null; ' + "".join(f'printf "%s\\0" "{n}=${{{n}}}"; ' for n in names))
    out = subprocess.run(["bash", "-c", script, "bash", str(kernel_source_dir), str(conf)],
                         check=True, capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if item)


@pytest.fixture(scope="module")
def dkms_root(dkms_deb, tmp_path_factory):
    return extract(dkms_deb, tmp_path_factory.mktemp("dkms-deb"))


@pytest.mark.parametrize("config, arch", [("CONFIG_X86_32=y\n", "i386"), ("CONFIG_X86_64=y\nCONFIG_64BIT=y\n",
                                                                          "x86_64"), (None, None)])
def test_dkms_conf(dkms_deb, dkms_root, tmp_path, config, arch):
    version = upstream_version(dkms_deb)
    conf = dkms_root / "usr" / "src" / f"kexec-py-{version}" / "dkms.conf"
    assert conf.is_file(), f"no dkms.conf in /usr/src/kexec-py-{version}"
    # the tree's dkms.conf, dh_dkms -V having put the version in
    assert conf.read_text() == (SHIM / "dkms.conf").read_text().replace("#MODULE_VERSION#", version)
    kernel = tmp_path / "build"
    kernel.mkdir()
    if config is not None:
        (kernel / ".config").write_text("CONFIG_KEXEC=y\n# CONFIG_KEXEC_JUMP is not set\n" + config)
    values = source_dkms_conf(conf, kernel)
    assert values["PACKAGE_NAME"] == "kexec-py"  # dh_dkms's postinst: "$PACKAGE_NAME-dkms" is the package
    assert values["PACKAGE_VERSION"] == version
    assert values["BUILT_MODULE_NAME[0]"] == "kexec_jump"
    assert values["BUILT_MODULE_LOCATION[0]"] == ""  # the Kbuild builds kexec_jump.ko at the top
    assert values["DEST_MODULE_NAME[0]"] in ("", "kexec_jump")
    assert values["DEST_MODULE_LOCATION[0]"] == "/updates/dkms"
    assert values["AUTOINSTALL"] == "yes"
    assert (values["BUILD_EXCLUSIVE_KERNEL"], values["BUILD_EXCLUSIVE_CONFIG"]) == ("", "")
    # dkms compares $arch (uname -m) with [[ $arch =~ $BUILD_EXCLUSIVE_ARCH ]]
    pattern = values["BUILD_EXCLUSIVE_ARCH"]
    for machine, builds in (("i386", True), ("i586", True), ("i686", True), ("x86_64", True),
                            ("aarch64", False), ("armv7l", False), ("ppc64le", False), ("x86_64_v2", False)):
        matched = subprocess.run(["bash", "-c", '[[ $1 =~ $2 ]]', "bash", machine, pattern]).returncode == 0
        assert matched == builds, (machine, pattern)
    build = f"M=/var/lib/dkms/kexec-py/{version}/build"
    arch_arg = [f"ARCH={arch}"] if arch else []
    assert values["MAKE[0]"].split() == ["make", "-C", str(kernel), build, *arch_arg, "modules"]
    assert values["CLEAN"].split() == ["make", "-C", str(kernel), build, *arch_arg, "clean"]


def test_dkms_ships_every_source_file_of_the_shim(dkms_deb, dkms_root):
    src = f"/usr/src/kexec-py-{upstream_version(dkms_deb)}/"
    modes = files(dkms_deb)
    shipped = {p[len(src):] for p in modes if p.startswith(src)}
    expected = set(shim_sources())
    assert {"Kbuild", "Makefile", "dkms.conf", "uapi/kexec_jump.h"} <= expected  # the tree is what we think
    assert shipped == expected, (f"missing: {sorted(expected - shipped)}, "
                                 f"not in the tree: {sorted(shipped - expected)}")
    for name in shipped - {"dkms.conf"}:
        assert (dkms_root / src.lstrip("/") / name).read_bytes() == (SHIM / name).read_bytes(), name
    assert {modes[src + name] for name in shipped} == {"-rw-r--r--"}
    # nothing but the source, the package's documentation and its lintian overrides
    assert not [p for p in modes if not p.startswith((src, "/usr/share/doc/kexec-py-dkms/"))
                and p != "/usr/share/lintian/overrides/kexec-py-dkms"]


def test_dkms_sources_cover_the_kbuild_objects(dkms_deb, dkms_root):
    """Every object the Kbuild names has its .c or .S in the package: a dkms build can succeed."""
    src = dkms_root / "usr" / "src" / f"kexec-py-{upstream_version(dkms_deb)}"
    kbuild = (src / "Kbuild").read_text().replace("\\\n", " ")
    words = " ".join(line.split("#", 1)[0] for line in kbuild.splitlines()).split()
    objects = {w[:-2] for w in words if w.endswith(".o") and not w.startswith(("$", "OBJECT_FILES"))}
    objects -= {"kexec_jump"}  # the module, made of the others
    assert objects, words
    missing = [o for o in sorted(objects) if not (src / f"{o}.c").is_file() and not (src / f"{o}.S").is_file()]
    assert not missing, f"Kbuild objects without a .c or .S in the package: {missing}"


def test_dkms_leaves_out_build_artefacts(tmp_path):
    """A tree where the module was built in csrc/shim (and no git, so build-deb.sh copies
    everything): the package still holds the source only."""
    tree = tmp_path / "kexec-py"
    for path in source_files():
        target = tree / path.relative_to(REPO_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    shim = tree / "csrc" / "shim"
    artefacts = ["kexec_jump.ko", "kexec_jump.o", "kexec_jump.mod", "kexec_jump.mod.c", "kexec_jump.mod.o",
                 "kj_main.o", ".kj_main.o.cmd", ".kexec_jump.ko.cmd", "modules.order", "Module.symvers",
                 ".tmp_versions/kexec_jump.mod", "uapi/.gitignore", ".cache.mk"]
    for name in artefacts:
        (shim / name).parent.mkdir(parents=True, exist_ok=True)
        (shim / name).write_bytes(b"\x7fELF built")
    assert all(is_artefact(name) for name in artefacts)
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run([tree / BUILD_DEB.relative_to(REPO_DIR), out], capture_output=True, text=True,
                            env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    debs = [Path(line) for line in result.stdout.splitlines()]
    assert [d.name.split("_")[0] for d in debs] == ["kexec-py", "kexec-py-dkms"], result.stdout
    src = f"/usr/src/kexec-py-{upstream_version(debs[1])}/"
    shipped = {p[len(src):] for p in files(debs[1]) if p.startswith(src)}
    assert shipped == set(shim_sources())
    assert not [p for p in files(debs[0]) if p.startswith(("/usr/share/kexec-py/kit/shim", "/usr/src/"))]
