#!/bin/sh
# mmdebstrap customize hook: $1 is the finished root, $2 its multiarch triplet
# (i386-linux-gnu, x86_64-linux-gnu), $3 `kdump` for the kdump rootfs. Makes room for our
# /usr/sbin/kexec and trims what a test guest never reads, so that the whole
# guest (gzip initrd + its unpacked copy at once) still boots with -m 128.
# Keeps the .pyc caches: without them every python3 start-up under TCG
# recompiles.
set -eu
root="$1"
multiarch="$2"
flavour="${3:-}"

# kexec-tools stays as a binary for side-by-side runs, not as a package: our
# .deb conflicts with it (both ship /usr/sbin/kexec) and guest/init installs it.
# The kdump rootfs keeps the package, which kdump-tools depends on: there guest/init's
# dpkg -i of our .deb (Provides: kexec-tools) replaces it, as on a user's machine.
cp "$root/usr/sbin/kexec" "$root/usr/sbin/kexec-tools"
if [ "$flavour" != kdump ]; then
    chroot "$root" dpkg --purge kexec-tools
fi

# documentation, translations, caches (dpkg's database stays: /init runs dpkg -i)
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/usr/share/i18n "$root"/usr/share/lintian \
       "$root"/usr/share/common-licenses "$root"/usr/share/zoneinfo \
       "$root"/usr/share/bash-completion "$root"/usr/lib/$multiarch/gconv \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/* \
       "$root"/var/log/*
# perl only ran maintainer scripts (debconf), all done now
rm -rf "$root"/usr/bin/perl "$root"/usr/bin/perl5.* "$root"/usr/lib/$multiarch/perl-base \
       "$root"/usr/share/perl5
# python test suites and test/CJK extension modules, pydoc's topic data
find "$root"/usr/lib/python3* -depth -type d \( -name test -o -name tests \) -exec rm -rf {} +
rm -rf "$root"/usr/lib/python3.11/pydoc_data \
       "$root"/usr/lib/python3.11/lib-dynload/_test*.so \
       "$root"/usr/lib/python3.11/lib-dynload/_codecs_[a-z][a-z].*.so
