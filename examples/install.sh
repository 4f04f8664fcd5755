#!/bin/sh
# Install one example deployment (examples/archlinux or examples/debian) on this host.
#
# Usage:   examples/install.sh EXAMPLE ROLE...
#   EXAMPLE  archlinux | debian
#   ROLE     control: sync and publish (configs with freshly generated secrets, the sync and
#                     publish units, the rebuilder user)
#            worker:  a build host (worker config, the backend script, the worker unit and the
#                     example's drop-in for it)
# Environment:
#   DESTDIR        install below this directory instead of / (no ownership is changed then)
#   SIGNUP_SECRET  the control host's [worker] signup_secret, needed by "worker" on a host
#                  without "control" (on the control host: grep signup_secret /etc/rebuilderd.conf)
#
# Files that exist are never overwritten (remove one to install it again). Nothing is enabled
# or started: the script ends with the commands for that. Secrets are 256 random bits, hex.
set -eu

here=$(cd -- "$(dirname -- "$0")" && pwd)
repo=$(dirname -- "$here")
DESTDIR=${DESTDIR:-}

die() {
    echo "install.sh: $*" >&2
    exit 2
}

[ "$#" -ge 2 ] || die "usage: install.sh archlinux|debian control|worker..."
example=$1
shift
case $example in
    archlinux) script=rebuilder-archlinux.sh ;;
    debian) script=rebuilder-debian.sh ;;
    *) die "unknown example '$example' (archlinux, debian)" ;;
esac
src=$here/$example
control=no
worker=no
for role in "$@"; do
    case $role in
        control) control=yes ;;
        worker) worker=yes ;;
        *) die "unknown role '$role' (control, worker)" ;;
    esac
done

secret() {
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# put MODE SOURCE DEST: install SOURCE as DEST unless DEST exists.
put() {
    if [ -e "$DESTDIR$3" ]; then
        echo "kept      $DESTDIR$3 (exists)"
    else
        install -D -m "$1" "$2" "$DESTDIR$3"
        echo "installed $DESTDIR$3"
    fi
}

# put_config MODE GROUP NAME [KEY=SECRET]...: install the example's NAME as /etc/NAME with each
# commented `#KEY = ""` line set to SECRET; GROUP (if not empty) may read it.
put_config() {
    mode=$1 group=$2 name=$3
    shift 3
    dest=/etc/$name
    if [ -e "$DESTDIR$dest" ]; then
        echo "kept      $DESTDIR$dest (exists)"
        return
    fi
    tmp=$(mktemp)
    cp -- "$src/$name" "$tmp"
    for pair in "$@"; do
        key=${pair%%=*} value=${pair#*=}
        case $value in "" | *[!0-9a-f]*) rm -f -- "$tmp"; die "the secret for $key must be hex" ;; esac
        grep -q "^#$key = \"\"\$" "$tmp" || { rm -f -- "$tmp"; die "$src/$name has no '#$key = \"\"' line"; }
        sed -e "s/^#$key = \"\"\$/$key = \"$value\"/" "$tmp" > "$tmp.new" && mv -- "$tmp.new" "$tmp"
    done
    install -D -m "$mode" "$tmp" "$DESTDIR$dest"
    rm -f -- "$tmp"
    if [ -n "$group" ] && [ -z "$DESTDIR" ]; then
        chgrp "$group" "$dest"
    fi
    echo "installed $DESTDIR$dest${1:+ (with generated secrets)}"
}

umask 022
units=$repo/infra/systemd
enable=""

if [ "$control" = yes ]; then
    put 0644 "$units/rebuilder.sysusers.conf" /usr/lib/sysusers.d/rebuilder.conf
    [ -n "$DESTDIR" ] || systemd-sysusers /usr/lib/sysusers.d/rebuilder.conf
    SIGNUP_SECRET=${SIGNUP_SECRET:-$(secret)}
    put_config 0640 rebuilder rebuilderd.conf "cookie=$(secret)" "signup_secret=$SIGNUP_SECRET"
    put 0644 "$src/rebuilderd-sync.conf" /etc/rebuilderd-sync.conf
    for unit in rebuilder-sync@.service rebuilder-sync@.timer rebuilder-publish.service rebuilder-publish.timer; do
        put 0644 "$units/$unit" "/etc/systemd/system/$unit"
    done
    profiles=$(sed -n -e 's/^\[profile\."\([A-Za-z0-9_.-]*\)"\]$/\1/p' "$src/rebuilderd-sync.conf")
    for profile in $profiles; do
        enable="$enable rebuilder-sync@$profile.timer"
    done
    enable="$enable rebuilder-publish.timer"
fi

if [ "$worker" = yes ]; then
    if [ -z "${SIGNUP_SECRET:-}" ] && [ -r "$DESTDIR/etc/rebuilderd.conf" ]; then
        SIGNUP_SECRET=$(sed -n -e 's/^signup_secret = "\([0-9a-f]*\)"$/\1/p' "$DESTDIR/etc/rebuilderd.conf")
    fi
    [ -n "${SIGNUP_SECRET:-}" ] ||
        die "worker: set SIGNUP_SECRET to [worker] signup_secret of the control host's /etc/rebuilderd.conf"
    put 0644 "$src/rebuilderd.conf" /etc/rebuilderd.conf
    group=""
    if [ -e "$src/rebuilder-worker.sysusers.conf" ]; then
        put 0644 "$src/rebuilder-worker.sysusers.conf" /usr/lib/sysusers.d/rebuilder-worker.conf
        [ -n "$DESTDIR" ] || systemd-sysusers /usr/lib/sysusers.d/rebuilder-worker.conf
        group=rebuilder-worker
    fi
    put_config "$([ -n "$group" ] && echo 0640 || echo 0600)" "$group" rebuilderd-worker.conf \
        "signup_secret=$SIGNUP_SECRET"
    put 0755 "$repo/jobs/work/backends/$script" "/usr/local/libexec/rebuilder/$script"
    put 0644 "$units/rebuilder-worker@.service" /etc/systemd/system/rebuilder-worker@.service
    for dropin in "$src"/systemd/rebuilder-worker@.service.d/*.conf; do
        put 0644 "$dropin" "/etc/systemd/system/rebuilder-worker@.service.d/${dropin##*/}"
    done
    enable="$enable rebuilder-worker@one.service"
    if [ "$control" = yes ] && [ -n "$group" ]; then
        echo "note: the worker runs as $group and must read /etc/rebuilderd.conf (mode 0640, group rebuilder):"
        echo "      usermod -a -G rebuilder $group   (it can then read the admin cookie; separate hosts avoid that)"
    fi
fi

put 0600 "$src/rebuilder.default" /etc/default/rebuilder

echo
echo "Next: fill in /etc/default/rebuilder, check, then enable:"
echo "  rebuilder check-config${DESTDIR:+ --root $DESTDIR}"
if [ "$control" = yes ]; then
    echo "  install -d -o rebuilder -g rebuilder -m 0750 /var/lib/rebuilderd   # the signing key, once:"
    echo "  runuser -u rebuilder -- rebuilder keygen /var/lib/rebuilderd/rebuilderd.sign.key"
fi
echo "  systemctl daemon-reload"
echo "  systemctl enable --now$enable"
