#!/bin/sh
# rebuilder backend "archlinux": rebuild an Arch Linux package the way rebuilderd's
# rebuilder-archlinux.sh does, with archlinux-repro (https://gitlab.archlinux.org/archlinux/archlinux-repro).
#
# Usage:   REBUILDERD_OUTDIR=<dir> rebuilder-archlinux.sh <name>-<ver>-<arch>.pkg.tar.zst
# Runs:    NOCHECK=1 archlinux-repro -o "$REBUILDERD_OUTDIR" -- <package>
#          (the command is called "repro" in older releases; either name is found on PATH)
#
# repro reads the package's .BUILDINFO, fetches the matching PKGBUILD and every installed= package
# from archive.archlinux.org and builds in a systemd-nspawn container. It needs an Arch Linux host
# (pacman -S archlinux-repro), root, and network access. Without an Arch host use "archlinux-local".
#
# Exit status (rebuilder's backend contract, jobs/work/backends/__init__.py): 0 when the rebuild
# ran to the end, matching or not. repro itself exits 1 for "not reproducible", so a non-zero exit
# counts as a finished build when the package was written to $REBUILDERD_OUTDIR. Otherwise the
# exit status is non-zero and the last line is "rebuilder-backend: FAIL: <reason>".
set -u

fail() {
    echo "rebuilder-backend: FAIL: $*" >&2
    exit 1
}

setup() {  # this host cannot build anything as it is set up: exit 78, the worker reports no verdict
    echo "rebuilder-backend: FAIL: $*" >&2
    exit 78
}

[ "$#" -eq 1 ] || fail "usage: rebuilder-archlinux.sh <package file> (with REBUILDERD_OUTDIR set)"
[ -n "${REBUILDERD_OUTDIR:-}" ] || setup "REBUILDERD_OUTDIR is not set"
[ -f "$1" ] || fail "input package not found: $1"

if command -v archlinux-repro >/dev/null 2>&1; then
    repro=archlinux-repro
elif command -v repro >/dev/null 2>&1; then
    repro=repro
else
    setup "archlinux-repro not found: the archlinux backend needs an Arch Linux host with archlinux-repro" \
        "(pacman -S archlinux-repro); elsewhere use the archlinux-local backend"
fi

echo "rebuilder-backend: rebuilding $1 with $repro"
set -x
NOCHECK=1 "$repro" -o "$REBUILDERD_OUTDIR" -- "$1"
status=$?
{ set +x; } 2>/dev/null

if [ "$status" -ne 0 ]; then
    name=${1##*/}
    [ -f "$REBUILDERD_OUTDIR/$name" ] ||
        fail "$repro exited with status $status without writing $name"
    echo "rebuilder-backend: $repro exited with status $status (not reproducible); the worker compares"
fi
exit 0
