#!/usr/bin/env bash
# The embedded default on a fresh Debian machine: install what the jobs need (Debian packages,
# a .venv in this checkout), then build a fixture Arch repository with makepkg, sync it, rebuild
# it with two workers, publish, and serve the site on 127.0.0.1:8484 (the next free port if
# that one is taken; it says so) until Ctrl-C. Runs as root: makepkg builds run in mount
# namespaces as an unprivileged 'builder' user, created if missing. Running it again reuses
# everything (packages, venv, the built repository and the store) and runs one more cycle.
#
#   infra/demo.sh [--bind ADDR:PORT] [--distro NAME]... [DIR]      (not root: sudo infra/demo.sh ...)
#
#   --bind ADDR:PORT  serve there instead (it must be free: a taken address is an error)
#   --distro NAME     archlinux (the default) or debian; repeat for both. Debian's fixture is built
#                     with dpkg-buildpackage in an mmdebstrap root of this host's Debian mirror
#                     (downloaded once, ~450 MB; the demo says so first) and rebuilt with debian-local
#   DIR               where the repository, configs and store live [/var/tmp/rebuilder-demo]
#   REBUILDER_VENV    use this existing virtual environment as it is, instead of .venv
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: infra/demo.sh [--bind ADDR:PORT] [--distro NAME]... [DIR]"
bind=() distros=() dir=
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        --bind) [ $# -ge 2 ] || { echo "$usage (--bind needs ADDR:PORT)" >&2; exit 2; }; bind=(--bind "$2"); shift 2 ;;
        --bind=*) bind=(--bind "${1#--bind=}"); shift ;;
        --distro) [ $# -ge 2 ] || { echo "$usage (--distro needs NAME)" >&2; exit 2; }; distros+=(--distro "$2"); shift 2 ;;
        --distro=*) distros+=(--distro "${1#--distro=}"); shift ;;
        -*) echo "$usage (unknown option $1)" >&2; exit 2 ;;
        *) [ -z "$dir" ] || { echo "$usage (one DIR only)" >&2; exit 2; }; dir=$1; shift ;;
    esac
done
ARGS_TEXT="${bind[*]} ${distros[*]} ${dir}"
ARGS_TEXT=$(echo "$ARGS_TEXT" | tr -s ' ')
ARGS_TEXT=${ARGS_TEXT# }
ARGS_TEXT=${ARGS_TEXT% }
# shellcheck source=infra/setup.sh
. infra/setup.sh
require_root infra/demo.sh "(it installs Debian packages and builds in mount namespaces)"
# shellcheck disable=SC2086
ensure_packages infra/demo.sh @infra/apt-packages.txt $BOOTSTRAP_PACKAGES
ensure_venv .
exec "$VENV/bin/rebuilder" demo "${dir:-/var/tmp/rebuilder-demo}" "${bind[@]}" "${distros[@]}"
