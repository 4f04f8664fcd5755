# shellcheck shell=bash
# Sourced by infra/demo.sh and infra/test.sh (from the top of the checkout): install, once, what
# a stock Debian machine lacks. Every step checks first and does nothing when it is already done.
#
# Environment:
#   REBUILDER_VENV  use this existing virtual environment as it is (nothing is installed into
#                   it); without it the checkout's .venv is created and kept up to date.

# A Python that can make a venv (pip downloads over HTTPS), on top of infra/apt-packages.txt.
BOOTSTRAP_PACKAGES="python3 python3-venv ca-certificates"

# The packages of `$@` (and of the files named with @FILE) that are not installed.
missing_packages() {
    local p list=()
    for p in "$@"; do
        if [ "${p#@}" != "$p" ]; then
            # shellcheck disable=SC2207
            list+=($(grep -v '^#' "${p#@}"))
        else
            list+=("$p")
        fi
    done
    for p in "${list[@]}"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || printf '%s\n' "$p"
    done
}

# Install the given packages with apt-get unless all are installed already. $1: this script's name.
ensure_packages() {
    local self=$1 missing
    shift
    missing=$(missing_packages "$@" | tr '\n' ' ')
    missing=${missing% }
    [ -n "$missing" ] || return 0
    require_root "$self" "(to install the Debian packages $missing)"
    echo "== installing Debian packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Exit 1 with one line saying to run as root unless we are root. $1: script name, $2: why.
require_root() {
    [ "$(id -u)" = 0 ] && return 0
    echo "$1: must run as root $2: sudo $1${ARGS_TEXT:+ $ARGS_TEXT}" >&2
    exit 1
}

# The venv to use: REBUILDER_VENV as it is, else .venv, created and given `pip install -e SPEC`
# when it lacks this checkout's package (editable) or any requirement of SPEC. $1: SPEC.
# Sets VENV.
ensure_venv() {
    local spec=$1
    if [ -n "${REBUILDER_VENV:-}" ]; then
        VENV=$REBUILDER_VENV
        [ -x "$VENV/bin/python" ] || { echo "REBUILDER_VENV=$VENV: no $VENV/bin/python" >&2; exit 1; }
        return 0
    fi
    VENV=$PWD/.venv
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
        echo "== creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        quietly "$VENV/pip.log" "$VENV/bin/python" -m pip install --upgrade pip
    fi
    if ! venv_has "$spec"; then
        echo "== pip install -e '$spec' into $VENV (a few minutes the first time; log: $VENV/pip.log)"
        quietly "$VENV/pip.log" "$VENV/bin/python" -m pip install -e "$spec"
    fi
}

# Run a command with its output in LOG ($1), shown (the end of it) only when it fails.
quietly() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "failed: $* (whole output: $log)" >&2
        exit 1
    fi
}

# True when $VENV has this checkout installed editable and every requirement (by name) of SPEC.
venv_has() {
    "$VENV/bin/python" -I - "$PWD" "$1" <<'EOF'
import json, re, sys
from pathlib import Path
from importlib import metadata
root, spec = sys.argv[1], sys.argv[2]
extras = set(re.findall(r"\[(.*)\]", spec)[0].split(",")) if "[" in spec else set()
try:
    dist = metadata.distribution("rebuilder")
    url = json.loads(dist.read_text("direct_url.json") or "{}")
except (metadata.PackageNotFoundError, ValueError):
    sys.exit(1)
if not url.get("dir_info", {}).get("editable") or url.get("url") != Path(root).as_uri():
    sys.exit(1)
for req in dist.requires or []:
    name, _, marker = req.partition(";")
    wanted = re.findall(r'extra\s*==\s*"([^"]+)"', marker)
    if wanted and not set(wanted) & extras:
        continue
    try:
        metadata.distribution(re.match(r"[A-Za-z0-9._-]+", name.strip()).group(0))
    except metadata.PackageNotFoundError:
        sys.exit(1)
EOF
}
