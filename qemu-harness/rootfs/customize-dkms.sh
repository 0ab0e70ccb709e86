#!/bin/sh
# mmdebstrap customize hook of the dkms rootfs (rootfs.build_dkms_rootfs): $1 is the
# finished root, $2 its multiarch triplet, the rest the paths of the .debs mmdebstrap
# installed from the host (the header packages). That rootfs is a user's machine that
# builds kernel modules: apt, dkms with gcc, make and dpkg-dev, the kernel's headers.
# Trims what customize.sh trims, except what apt, dpkg and dkms still run: perl stays
# (dpkg-dev and apt's debconf hook run it), and so does debconf's database.
# /var/lib/apt/lists is emptied, as on a machine that never ran apt-get update: apt
# installs local .debs whose dependencies are installed without any list.
set -eu
root="$1"
multiarch="$2"
shift 2

# the mount points mmdebstrap's file-mirror-automount hook left for the .debs (empty
# files in directories named like the host's cache), up to the first non-empty directory
for deb; do
    rm -f "$root$deb"
    dir=$(dirname "$deb")
    while [ "$dir" != / ] && rmdir "$root$dir" 2>/dev/null; do
        dir=$(dirname "$dir")
    done
done

# documentation, translations, caches
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/usr/share/i18n "$root"/usr/share/lintian \
       "$root"/usr/share/common-licenses "$root"/usr/share/zoneinfo \
       "$root"/usr/share/bash-completion "$root"/usr/lib/$multiarch/gconv \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
       "$root"/var/cache/debconf/*-old "$root"/var/log/*
# gcc's parts that a kernel module build never runs (about 90 MB): the LTO compiler and
# its dump tool (Debian's kernels are not built with LTO), the sanitizers' user-space
# run-time libraries (the kernel's sanitizers have their own)
rm -f "$root"/usr/bin/*lto-dump* "$root"/usr/lib/gcc/*/*/lto1 \
      "$root"/usr/lib/$multiarch/lib*san.so.* "$root"/usr/lib/gcc/*/*/lib*san*.a \
      "$root"/usr/lib/gcc/*/*/lib*san*.so
# python test suites and test/CJK extension modules, pydoc's topic data
find "$root"/usr/lib/python3* -depth -type d \( -name test -o -name tests \) -exec rm -rf {} +
rm -rf "$root"/usr/lib/python3.11/pydoc_data \
       "$root"/usr/lib/python3.11/lib-dynload/_test*.so \
       "$root"/usr/lib/python3.11/lib-dynload/_codecs_[a-z][a-z].*.so
