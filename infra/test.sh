#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install what the tests need (Debian packages,
# the unprivileged 'builder' user makepkg rebuilds run as, a .venv in this checkout with the
# test extras, which bring the SeaweedFS S3 test server), then run pytest on two cores. Runs as
# root (apt-get; rebuilds run in mount namespaces). Steps already done are skipped, so a second
# run goes straight to pytest.
#
#   infra/test.sh [--fast] [PYTEST ARGS...]      (not root: sudo infra/test.sh ...)
#
#   (default)     the full tier: everything CI runs (pytest --full)
#   --fast        the fast tier: unit and local-store integration tests (a few minutes)
#   --setup-only  install what is missing, run nothing (.ci/run lints in between)
#   PYTEST ARGS   passed on, e.g. tests/sync -x, or -n 0 to run in one process
#   REBUILDER_VENV  use this existing virtual environment as it is, instead of .venv
set -euo pipefail
cd "$(dirname "$0")/.."
tier=(--full) setup_only=
args=()
for arg in "$@"; do
    case $arg in
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        --fast) tier=() ;;
        --setup-only) setup_only=1 ;;
        *) args+=("$arg") ;;
    esac
done
ARGS_TEXT="$*"
# shellcheck source=infra/setup.sh
. infra/setup.sh

# What the jobs need at run time (infra/apt-packages.txt: makepkg, pacman, bsdtar, zstd,
# fakeroot, gcc, diffoscope-minimal, gpgv, mmdebstrap, dpkg-dev), plus for the tests: gnupg
# (signing Debian InRelease fixtures), chromium + chromium-driver (the site checked in a real
# browser), systemd (systemd-analyze verify for infra/systemd), git (the fresh-clone test), rsync
# (a copied local store keeps its metadata), debootstrap (a trixie root for upstream's
# rebuildctl) and npm (fetches the pinned axe-core the browser tests check accessibility with;
# only when no npm is installed: a Node.js from another source, e.g. NodeSource, brings its own
# npm and conflicts with Debian's package).
npm_package=npm
! command -v npm >/dev/null 2>&1 || npm_package=
# shellcheck disable=SC2086
ensure_packages infra/test.sh @infra/apt-packages.txt $BOOTSTRAP_PACKAGES gnupg chromium chromium-driver systemd git rsync debootstrap $npm_package
# makepkg refuses to run as root: rebuild tests use this unprivileged user; pacman's database.
if ! id builder >/dev/null 2>&1 || [ ! -d /var/lib/pacman/local ]; then
    require_root infra/test.sh "(to create the user 'builder' and /var/lib/pacman/local)"
    id builder >/dev/null 2>&1 || useradd -m builder
    mkdir -p /var/lib/pacman/local
fi
ensure_venv '.[test]'
# axe-core, pinned and checked by its SHA-256, cached under /var/cache/rebuilder-tests: the
# tests run offline (without it the accessibility checks skip, or fail under CI).
"$VENV/bin/python" -m tests.publish.axe >/dev/null || echo "infra/test.sh: axe-core was not fetched" >&2
[ -z "$setup_only" ] || exit 0
command=("$VENV/bin/python" -m pytest -n 2 "${tier[@]}" "${args[@]}")
echo "== ${command[*]}"
exec "${command[@]}"
