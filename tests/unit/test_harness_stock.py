"""The pure parts of the harness's stock Debian kernels (qemu-harness/vmharness/stock.py):
apt-cache output, package names, the headers' Makefile, modules.dep closures, build logs."""

from pathlib import Path

import pytest

from vmharness.build import BuildError
from vmharness.stock import (
    DebianPackage,
    control_field,
    depends_names,
    header_packages,
    is_versioned_image,
    metapackage_target,
    module_closure,
    module_name,
    release_from_boot,
    rewrite_common_include,
    warning_lines,
)

# `apt-cache depends` as bookworm prints it (trimmed)
META_AMD64 = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n"
META_686_PAE = "linux-image-686-pae:i386\n  Depends: linux-image-6.1.0-50-686-pae:i386\n"
IMAGE = """linux-image-6.1.0-57-amd64
  Depends: kmod
  Depends: linux-base
 |Depends: initramfs-tools
  Depends: <linux-initramfs-tool>
    dracut
    initramfs-tools
  Conflicts: linux-image-6.1.0-57-amd64-unsigned
  Recommends: firmware-linux-free
 |Suggests: grub-pc
"""
HEADERS_AMD64 = """linux-headers-6.1.0-57-amd64
  Depends: linux-headers-6.1.0-57-common
  Depends: linux-kbuild-6.1
  Depends: linux-compiler-gcc-12-x86
    linux-compiler-gcc-12-x86:i386
"""
HEADERS_RT = """linux-headers-6.1.0-57-rt-amd64
  Depends: linux-headers-6.1.0-57-common-rt
  Depends: linux-kbuild-6.1
  Depends: linux-compiler-gcc-12-x86
"""
HEADERS_686_PAE = """linux-headers-6.1.0-50-686-pae:i386
  Depends: <linux-headers-6.1.0-50-common:i386>
    linux-headers-6.1.0-50-common
  Depends: linux-kbuild-6.1:i386
    linux-kbuild-6.1
  Depends: linux-compiler-gcc-12-x86:i386
    linux-compiler-gcc-12-x86
"""


@pytest.mark.parametrize("output, names", [
    (META_AMD64, ["linux-image-6.1.0-57-amd64"]),
    (META_686_PAE, ["linux-image-6.1.0-50-686-pae"]),
    (IMAGE, ["kmod", "linux-base", "initramfs-tools", "linux-initramfs-tool"]),
    (HEADERS_686_PAE, ["linux-headers-6.1.0-50-common", "linux-kbuild-6.1", "linux-compiler-gcc-12-x86"]),
    ("", []),
], ids=["meta-amd64", "meta-686-pae", "image", "headers-686-pae", "empty"])
def test_depends_names(output: str, names: list[str]) -> None:
    assert depends_names(output) == names


@pytest.mark.parametrize("output, target", [
    (META_AMD64, "linux-image-6.1.0-57-amd64"),
    (META_686_PAE, "linux-image-6.1.0-50-686-pae"),
    ("linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n",
     "linux-image-6.1.0-57-cloud-amd64"),
    (IMAGE, None),
], ids=["amd64", "686-pae", "cloud", "versioned-image"])
def test_metapackage_target(output: str, target: str | None) -> None:
    assert metapackage_target(output) == target


@pytest.mark.parametrize("name, versioned", [
    ("linux-image-amd64", False),
    ("linux-image-cloud-amd64", False),
    ("linux-image-rt-amd64", False),
    ("linux-image-686-pae", False),
    ("linux-image-6.1.0-57-amd64", True),
    ("linux-image-6.1.0-57-amd64-unsigned", True),
    ("linux-image-6.1.0-50-686-pae", True),
])
def test_is_versioned_image(name: str, versioned: bool) -> None:
    assert is_versioned_image(name) is versioned


@pytest.mark.parametrize("output, packages", [
    (HEADERS_AMD64, ["linux-headers-6.1.0-57-common", "linux-kbuild-6.1"]),
    (HEADERS_RT, ["linux-headers-6.1.0-57-common-rt", "linux-kbuild-6.1"]),
    (HEADERS_686_PAE, ["linux-headers-6.1.0-50-common", "linux-kbuild-6.1"]),
], ids=["amd64", "rt", "686-pae"])
def test_header_packages(output: str, packages: list[str]) -> None:
    assert header_packages(output) == packages


@pytest.mark.parametrize("package, spec, key", [
    (DebianPackage("linux-image-6.1.0-57-amd64", "6.1.192-3", "amd64"),
     "linux-image-6.1.0-57-amd64:amd64=6.1.192-3", "linux-image-6.1.0-57-amd64_6.1.192-3_amd64"),
    (DebianPackage("linux-kbuild-6.1", "6.1.176-1", None),
     "linux-kbuild-6.1=6.1.176-1", "linux-kbuild-6.1_6.1.176-1_host"),
    (DebianPackage("p", "1:2.0-1", "i386"), "p:i386=1:2.0-1", "p_1%3a2.0-1_i386"),
], ids=["image", "host-arch", "epoch"])
def test_debian_package_spec_and_key(package: DebianPackage, spec: str, key: str) -> None:
    assert package.apt_spec == spec
    assert package.key == key


def test_control_field() -> None:
    stanza = "Package: linux-image-6.1.0-57-amd64\nSource: linux-signed-amd64 (6.1.192+3)\nVersion: 6.1.192-3\n"
    assert control_field(stanza, "Version") == "6.1.192-3"
    assert control_field(stanza, "Source") == "linux-signed-amd64 (6.1.192+3)"
    with pytest.raises(KeyError):
        control_field(stanza, "Architecture")


@pytest.mark.parametrize("names, release", [
    (["System.map-6.1.0-57-amd64", "config-6.1.0-57-amd64", "vmlinuz-6.1.0-57-amd64"], "6.1.0-57-amd64"),
    (["vmlinuz-6.1.0-50-686-pae"], "6.1.0-50-686-pae"),
    (["vmlinuz-6.1.0-57-rt-amd64", "config-6.1.0-57-rt-amd64"], "6.1.0-57-rt-amd64"),
])
def test_release_from_boot(names: list[str], release: str) -> None:
    assert release_from_boot(names) == release


@pytest.mark.parametrize("names", [[], ["config-6.1.0-57-amd64"], ["vmlinuz-a", "vmlinuz-b"]])
def test_release_from_boot_needs_one_vmlinuz(names: list[str]) -> None:
    with pytest.raises(BuildError):
        release_from_boot(names)


@pytest.mark.parametrize("makefile, expected", [
    ("include /usr/src/linux-headers-6.1.0-57-common/Makefile\n",
     "include /cache/h/root/usr/src/linux-headers-6.1.0-57-common/Makefile\n"),
    ("include /usr/src/linux-headers-6.1.0-57-common-rt/Makefile\n",
     "include /cache/h/root/usr/src/linux-headers-6.1.0-57-common-rt/Makefile\n"),
    ("# comment\ninclude /usr/src/linux-headers-6.1.0-50-common/Makefile\n",
     "# comment\ninclude /cache/h/root/usr/src/linux-headers-6.1.0-50-common/Makefile\n"),
], ids=["amd64", "rt", "with-comment"])
def test_rewrite_common_include(makefile: str, expected: str) -> None:
    assert rewrite_common_include(makefile, Path("/cache/h/root")) == expected


@pytest.mark.parametrize("makefile", [
    "include /cache/h/root/usr/src/linux-headers-6.1.0-57-common/Makefile\n",  # already done
    "obj-m := x.o\n",
], ids=["rewritten", "no-include"])
def test_rewrite_common_include_refuses_an_unknown_makefile(makefile: str) -> None:
    with pytest.raises(BuildError):
        rewrite_common_include(makefile, Path("/cache/h/root"))


MODULES_DEP = """kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/a/dash-name.ko: kernel/drivers/b/indirect.ko
kernel/drivers/b/indirect.ko: kernel/drivers/c/leaf.ko
kernel/drivers/c/leaf.ko:
"""


@pytest.mark.parametrize("names, paths", [
    ((), []),
    (("e1000",), ["kernel/drivers/net/ethernet/intel/e1000/e1000.ko"]),
    (("ext4",), ["kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko",
                 "kernel/lib/crc16.ko"]),
    (("virtio_blk", "virtio_net"), [
        "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/net_failover.ko",
        "kernel/drivers/net/virtio_net.ko", "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko", "kernel/net/core/failover.ko"]),
    # dependencies of dependencies even where a line does not list them; - and _ alike
    (("dash_name",), ["kernel/drivers/a/dash-name.ko", "kernel/drivers/b/indirect.ko",
                      "kernel/drivers/c/leaf.ko"]),
], ids=["none", "no-deps", "ext4", "virtio-shared-deps", "transitive"])
def test_module_closure(names: tuple[str, ...], paths: list[str]) -> None:
    assert module_closure(MODULES_DEP, names) == paths


def test_module_closure_refuses_an_unknown_module() -> None:
    with pytest.raises(BuildError, match="'no_such'"):
        module_closure(MODULES_DEP, ["no_such"])


@pytest.mark.parametrize("path, name", [
    ("kernel/drivers/net/virtio_net.ko", "virtio_net"),
    ("kernel/drivers/a/dash-name.ko", "dash_name"),
    ("updates/kexec_jump.ko", "kexec_jump"),
    ("kernel/fs/ext4/ext4.ko.xz", "ext4"),
])
def test_module_name(path: str, name: str) -> None:
    assert module_name(path) == name


@pytest.mark.parametrize("log, warnings", [
    ("  CC [M]  /b/kj_main.o\n  LD [M]  /b/kexec_jump.ko\n"
     "Skipping BTF generation for /b/kexec_jump.ko due to unavailability of vmlinux\n", []),
    ("/b/kj_main.c:3:42: warning: unused variable 'x' [-Wunused-variable]\n  CC [M]  /b/x.o\n",
     ["/b/kj_main.c:3:42: warning: unused variable 'x' [-Wunused-variable]"]),
    ("WARNING: modpost: missing MODULE_LICENSE() in /b/kexec_jump.o\n",
     ["WARNING: modpost: missing MODULE_LICENSE() in /b/kexec_jump.o"]),
    ("/b/kj_relocate_64.o: warning: objtool: relocate()+0x3: unsupported instruction\n",
     ["/b/kj_relocate_64.o: warning: objtool: relocate()+0x3: unsupported instruction"]),
], ids=["clean", "compiler", "modpost", "objtool"])
def test_warning_lines(log: str, warnings: list[str]) -> None:
    assert warning_lines(log) == warnings
