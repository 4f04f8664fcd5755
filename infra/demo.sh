#!/usr/bin/env bash
# The embedded default on a fresh Debian machine with nothing but Python: install what the
# jobs need, then build a fixture Arch repository with makepkg, sync it, rebuild it with two
# workers, publish, and serve the site on 127.0.0.1:8484. Run as root (makepkg builds run in
# mount namespaces as an unprivileged 'builder' user that is created if missing).
#
#   sudo infra/demo.sh [DEMO_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-/var/tmp/rebuilder-demo}"
if [ "$(id -u)" != 0 ]; then
    echo "infra/demo.sh: run as root (apt-get, mount namespaces for makepkg)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s $(grep -v '^#' infra/apt-packages.txt) >/dev/null 2>&1; then
    apt-get update -qq
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends $(grep -v '^#' infra/apt-packages.txt) >/dev/null
fi
[ -x .venv/bin/rebuilder ] || { python3 -m venv .venv && .venv/bin/pip install -q .; }
exec .venv/bin/rebuilder demo "$dir"
