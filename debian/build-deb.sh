#!/bin/sh
# Build the kexec-py and kexec-py-dkms .debs from this tree without writing
# into it.
#
#   debian/build-deb.sh [OUTDIR]        (OUTDIR defaults to ./dist)
#
# Copies the tree to a temporary directory (in a git checkout: the tracked
# and the untracked-but-not-ignored files, as they are now, so no build
# output of the working tree leaks in), runs `dpkg-buildpackage -us -uc -b`
# there with Debian's /usr/bin/python3 first on PATH, moves the .debs,
# .changes and .buildinfo to OUTDIR, and prints the absolute paths of the
# .debs on standard output, one a line: kexec-py's first, then
# kexec-py-dkms's (the build log goes to standard error).
#
# Needs the Build-Depends of debian/control (./bootstrap installs them);
# DEB_BUILD_OPTIONS and SOURCE_DATE_EPOCH are passed through.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-"$SRC/dist"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kexec-py-deb.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
TREE="$TMP/kexec-py"
mkdir "$TREE" "$TMP/home"

if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Files deleted in the work tree are still "cached": keep only those that exist.
    git -C "$SRC" ls-files -z --cached --others --exclude-standard \
        | (cd "$SRC" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done; exit 0' sh) \
        | tar -C "$SRC" --null -T - -cf - | tar -C "$TREE" -xf -
else
    tar -C "$SRC" --exclude=.git --exclude=./build --exclude=./dist --exclude=./csrc/build \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pybuild -cf - . | tar -C "$TREE" -xf -
fi

(
    cd "$TREE"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$TMP/home" LC_ALL=C.UTF-8 \
        ${DEB_BUILD_OPTIONS+DEB_BUILD_OPTIONS="$DEB_BUILD_OPTIONS"} \
        ${SOURCE_DATE_EPOCH+SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH"} \
        dpkg-buildpackage -us -uc -b
) >&2

set -- "$TMP"/kexec-py_*.deb "$TMP"/kexec-py-dkms_*.deb
for deb; do
    [ -f "$deb" ] || { echo "build-deb.sh: dpkg-buildpackage made no $(basename "$deb")" >&2; exit 1; }
done
mv "$@" "$TMP"/kexec-py_*.changes "$TMP"/kexec-py_*.buildinfo "$OUT"/
for deb; do
    echo "$OUT/$(basename "$deb")"
done
