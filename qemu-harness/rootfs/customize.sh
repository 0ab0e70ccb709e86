#!/bin/sh
# mmdebstrap customize hook: $1 is the finished root. Makes room for our
# /usr/sbin/kexec and trims what a test guest never reads. Keeps the .pyc
# caches: without them every python3 start-up under TCG recompiles.
set -eu
root="$1"

mv "$root/usr/sbin/kexec" "$root/usr/sbin/kexec-tools"

rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/usr/share/i18n "$root"/usr/share/lintian \
       "$root"/usr/share/common-licenses "$root"/usr/share/zoneinfo \
       "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/var/log/* "$root"/usr/lib/i386-linux-gnu/gconv
find "$root"/usr/lib/python3* -depth -type d \( -name test -o -name tests \) -exec rm -rf {} +
