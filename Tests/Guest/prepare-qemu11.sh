#!/usr/bin/env bash
# Prepare QEMU 11.1 (the vfio-user client; Debian trixie-backports) for
# run-vfio-user.sh, once, into a cache folder. Debian packages only:
#   - runs prepare.sh first (host tools, the 6.1 guest kernel and vfio modules);
#   - installs debootstrap on the host if missing;
#   - debootstraps a minimal trixie root from the Debian mirror the machine's own apt
#     sources use, adds trixie-backports to that root's sources and installs
#     qemu-system-x86 from there inside it (chroot, with /proc and /dev bound in a
#     private mount namespace, unmounted on every path);
#   - checks that the root's qemu-system-x86_64, started from the host through the
#     root's own dynamic loader (as run-vfio-user.sh starts it), reports version 11.
# Nothing in the host's system changes except the debootstrap package.
#
# Usage: Tests/Guest/prepare-qemu11.sh [CACHE_DIR]   (default: /var/cache/swift-vfio-guest,
#        or $SWIFT_VFIO_GUEST_CACHE)
#
# Result (what run-vfio-user.sh reads):
#   CACHE_DIR/qemu11/root    the trixie root with QEMU 11 (about 500 MB)
#   CACHE_DIR/qemu11/READY   stamp: this script's sha256, then QEMU's version line
# A second run finds READY written by the same script and does nothing (no root and
# no network needed then). Editing this script invalidates the stamp; the root is then
# rebuilt in a scratch folder and swapped in at the end. Concurrent runs wait on a lock.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
cache=${1:-${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}}
suite=trixie

log() { echo "prepare-qemu11.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The guest kernel and modules (prepare.sh takes its own lock and is a no-op when done).
"$here/prepare.sh" "$cache"

mkdir -p "$cache"
cache=$(realpath -- "$cache")
# (Opened read-only: flock needs no write access, so a user without root can
# still take the lock on a cache root made.)
[ -e "$cache/.lock-qemu11" ] || : >"$cache/.lock-qemu11"
exec 9<"$cache/.lock-qemu11"
flock 9

hash=$(sha256sum "$self" | cut -d' ' -f1)
stamp=$cache/qemu11/READY
if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$hash" ]; then
    log "cached: $(sed -n 2p "$stamp") in $cache/qemu11/root"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "$cache/qemu11 is missing or stale; run once as root"

# Remove a scratch or stale tree. A run killed hard (SIGKILL) could in principle leave
# a bind mount of /dev or /proc inside it: unmount whatever is mounted below it first,
# and never let rm cross into another filesystem.
remove_tree() {
    local dir=$1 m
    [ -e "$dir" ] || return 0
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
    rm -rf --one-file-system -- "$dir"
}

# Leftovers of interrupted runs (we hold the lock: nobody else is working).
for old in "$cache"/.qemu11-work.* "$cache"/.qemu11-old.*; do
    [ -e "$old" ] && remove_tree "$old"
done

# 1. debootstrap on the host.
if [ "$(dpkg-query -W -f='${Status}' debootstrap 2>/dev/null)" != "install ok installed" ]; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# 2. The mirror: the URL of the machine's own Debian main archive entry (the one that
#    serves bookworm/main, or any <suite>/main of the "debian" archive).
mirror=$(apt-cache policy | awk '$3 ~ /^(bookworm|trixie|stable|testing|sid)\/main$/ && $2 ~ /^https?:\/\// {print $2; exit}')
[ -n "$mirror" ] || mirror=$(apt-cache policy | awk '$3 ~ /\/main$/ && $3 !~ /-security/ && $2 ~ /\/debian\/?$/ {print $2; exit}')
[ -n "$mirror" ] || die "no Debian main archive in the host's apt sources"
log "mirror: $mirror"

work=$(mktemp -d "$cache/.qemu11-work.XXXXXX")
trap 'remove_tree "$work"' EXIT
root=$work/root

# 3. The minimal trixie root.
start=$SECONDS
log "debootstrap --variant=minbase $suite (about 30-60 s)"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
fi
log "debootstrap done in $((SECONDS - start)) s"
echo "deb $mirror $suite-backports main" >"$root/etc/apt/sources.list.d/$suite-backports.list"

# 4. QEMU from trixie-backports, installed inside the root. The bind mounts live in a
#    private mount namespace: they vanish with it whatever happens (even SIGKILL), and
#    the inner trap unmounts them explicitly on every ordinary path.
start=$SECONDS
log "installing qemu-system-x86 from $suite-backports in the root"
# shellcheck disable=SC2016  # (expanded by the inner bash)
if ! unshare --mount --propagation private -- bash -euo pipefail -c '
    root=$1 suite=$2
    trap "umount \"\$root/dev\" 2>/dev/null || true; umount \"\$root/proc\" 2>/dev/null || true" EXIT
    mount --bind /proc "$root/proc"
    mount --bind /dev "$root/dev"
    export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
    chroot "$root" apt-get update -qq
    chroot "$root" apt-get install -y -qq --no-install-recommends -t "$suite-backports" qemu-system-x86
    chroot "$root" apt-get clean
' bash "$root" "$suite" >"$work/apt.log" 2>&1; then
    tail -n 20 "$work/apt.log" >&2
    die "installing qemu-system-x86 in the root failed (log above)"
fi
log "qemu-system-x86 installed in $((SECONDS - start)) s"
grep -q " $root/" /proc/mounts && die "a mount below $root survived"

# 5. The check, run the way run-vfio-user.sh runs QEMU: from the host, through the
#    root's own dynamic loader and libraries.
lib=$root/usr/lib/x86_64-linux-gnu
version=$(QEMU_MODULE_DIR=$lib/qemu "$lib/ld-linux-x86-64.so.2" --library-path "$lib" \
    "$root/usr/bin/qemu-system-x86_64" --version) || die "the root's qemu-system-x86_64 does not start"
version=${version%%$'\n'*}
[[ $version =~ ^QEMU\ emulator\ version\ 11\. ]] || die "expected QEMU 11.x, got: $version"
# (Ask about the one device: "-device help" would load every QOM module, and for a
# module the root lacks (the -gl display ones) QEMU falls back to the host's module
# folder, whose modules (another QEMU build) it refuses.)
QEMU_MODULE_DIR=$lib/qemu "$lib/ld-linux-x86-64.so.2" --library-path "$lib" \
    "$root/usr/bin/qemu-system-x86_64" -device vfio-user-pci,help >/dev/null 2>&1 \
    || die "the root's QEMU has no vfio-user-pci device"

mkdir "$work/qemu11"
mv "$root" "$work/qemu11/root"
printf '%s\n%s\n' "$hash" "$version" >"$work/qemu11/READY"
if [ -e "$cache/qemu11" ]; then
    old=$(mktemp -d "$cache/.qemu11-old.XXXXXX")
    mv "$cache/qemu11" "$old/"
    mv "$work/qemu11" "$cache/qemu11"
    remove_tree "$old"
else
    mv "$work/qemu11" "$cache/qemu11"
fi
log "ready: $version in $cache/qemu11/root ($(du -sh "$cache/qemu11/root" | cut -f1))"
