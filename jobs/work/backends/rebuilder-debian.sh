#!/bin/sh
# rebuilder backend "debian": rebuild Debian binary packages from a .buildinfo with debrebuild,
# the way rebuilderd's rebuilder-debian.sh does (docs/design.md#build-execution-and-the-backend-contract).
#
# Usage:   REBUILDERD_OUTDIR=<dir> rebuilder-debian.sh <source>_<version>_<arch>.buildinfo
# Steps:   1. SOURCE and VERSION come from the .buildinfo: "Source: name (version)" for a binNMU,
#             else Source plus Version without its +bN suffix.
#          2. A private apt configuration in the input's directory (deb-src for trixie and its
#             security/updates/proposed-updates/backports suites, forky, sid and experimental)
#             downloads that exact source: apt-get -o Dir=. source --download-only SOURCE=VERSION
#          3. nice debrebuild --buildresult="$REBUILDERD_OUTDIR" --builder=sbuild+unshare
#                 --cache="$REBUILDERD_CACHE_DIR" -- <buildinfo>
#             debrebuild installs exactly the recorded Installed-Build-Depends from
#             snapshot.debian.org and runs dpkg-buildpackage with the recorded Environment.
# Needs:   devscripts (debrebuild, dcmd), apt, sbuild, mmdebstrap, uidmap (subuid/subgid ranges for
#          the unshare builder), debian-archive-keyring, and network access to deb.debian.org and
#          snapshot.debian.org.
# Environment:
#   REBUILDERD_OUTDIR            required: where the rebuilt .deb files go
#   REBUILDERD_CACHE_DIR         debrebuild's --cache (default: ./debian-cache beside the input)
#   REBUILDER_DEBIAN_BUILDER     debrebuild's --builder (default sbuild+unshare, as rebuilderd)
#   REBUILDER_DEBIAN_SOURCES_LIST  a sources.list (deb-src lines) to use instead of the default
#
# Exit status (rebuilder's backend contract, jobs/work/backends/__init__.py): 0 when the rebuild ran
# to the end, matching or not; debrebuild also exits non-zero when the checksums differ, so that
# counts as finished when .deb files were written. Otherwise non-zero, and the last line is
# "rebuilder-backend: FAIL: <reason>".
set -u

fail() {
    echo "rebuilder-backend: FAIL: $*" >&2
    exit 1
}

setup() {  # this host cannot build anything as it is set up: exit 78, the worker reports no verdict
    echo "rebuilder-backend: FAIL: $*" >&2
    exit 78
}

need() {  # need TOOL DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 ||
        setup "$1 not found: the debian backend needs a Debian host with debrebuild and access to" \
            "snapshot.debian.org (apt-get install $2)"
}

[ "$#" -eq 1 ] || fail "usage: rebuilder-debian.sh <file.buildinfo> (with REBUILDERD_OUTDIR set)"
[ -n "${REBUILDERD_OUTDIR:-}" ] || setup "REBUILDERD_OUTDIR is not set"
[ -f "$1" ] || fail "input .buildinfo not found: $1"

need debrebuild devscripts
builder=${REBUILDER_DEBIAN_BUILDER:-sbuild+unshare}
case $builder in
    sbuild | sbuild+unshare) need sbuild "sbuild mmdebstrap uidmap" ;;
    mmdebstrap) need mmdebstrap mmdebstrap ;;
    dpkg | none) need dpkg-buildpackage dpkg-dev ;;
    *) fail "unknown REBUILDER_DEBIAN_BUILDER '$builder' (sbuild+unshare, sbuild, mmdebstrap, dpkg, none)" ;;
esac
need dcmd devscripts
need apt-get apt
need sed sed

dir=$(cd -- "$(dirname -- "$1")" && pwd) || fail "cannot enter the directory of $1"
buildinfo="$dir/$(basename -- "$1")"
source_field=$(sed -n -e 's/^Source:[[:space:]]*//p' -- "$buildinfo" | sed -n -e 1p)
SOURCE=${source_field%% *}
case $source_field in
    *"("*")"*)  # binNMU: "Source: name (source version)"
        VERSION=${source_field#*(}
        VERSION=${VERSION%%)*} ;;
    *)
        VERSION=$(sed -n -e 's/^Version:[[:space:]]*//p' -- "$buildinfo" | sed -n -e 1p |
            sed -e 's/+b[0-9][0-9]*$//') ;;
esac
# Both come from an untrusted file and are passed to apt: refuse anything but Debian's characters.
case $SOURCE in '' | *[!a-z0-9+.-]*) fail "no valid Source in $1: '$SOURCE'" ;; esac
case $VERSION in '' | *[!A-Za-z0-9.+~:-]*) fail "no valid Version in $1: '$VERSION'" ;; esac
echo "rebuilder-backend: rebuilding source $SOURCE $VERSION from $buildinfo"

cd "$dir" || fail "cannot enter $dir"
mkdir -p etc/apt var/lib/apt/lists || fail "cannot create the private apt directories in $dir"
# Disk-backed temporary files: debrebuild's chroot tarballs do not fit in a tmpfs /tmp.
TMPDIR=/var/tmp
export TMPDIR
if [ -n "${REBUILDER_DEBIAN_SOURCES_LIST:-}" ]; then
    cp -- "$REBUILDER_DEBIAN_SOURCES_LIST" etc/apt/sources.list || fail "cannot read $REBUILDER_DEBIAN_SOURCES_LIST"
else
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    security=/usr/share/keyrings/debian-archive-trixie-security-automatic.gpg
    {
        echo "deb-src [signed-by=$keyring] https://deb.debian.org/debian trixie main non-free-firmware"
        echo "deb-src [signed-by=$security] https://deb.debian.org/debian-security trixie-security main non-free-firmware"
        for suite in trixie-updates trixie-proposed-updates trixie-backports forky sid experimental; do
            echo "deb-src [signed-by=$keyring] https://deb.debian.org/debian $suite main non-free-firmware"
        done
    } >etc/apt/sources.list
fi
apt-get -o Dir=. update -q ||
    fail "apt-get update failed: cannot read the deb-src indexes of $dir/etc/apt/sources.list"
apt-get -o Dir=. source -qq --download-only "$SOURCE=$VERSION" ||
    fail "cannot download the source package $SOURCE=$VERSION (deb-src)"
dcmd sha256sum ./*.dsc || true

cache=${REBUILDERD_CACHE_DIR:-$PWD/debian-cache}
set -x
nice debrebuild --buildresult="$REBUILDERD_OUTDIR" --builder="$builder" --cache="$cache" -- "$buildinfo"
status=$?
{ set +x; } 2>/dev/null

if [ "$status" -ne 0 ]; then
    for deb in "$REBUILDERD_OUTDIR"/*.deb; do
        if [ -f "$deb" ]; then
            echo "rebuilder-backend: debrebuild exited with status $status after building; the worker compares"
            exit 0
        fi
    done
    fail "debrebuild exited with status $status without building $SOURCE $VERSION" \
        "(it needs snapshot.debian.org for the Installed-Build-Depends)"
fi
exit 0
