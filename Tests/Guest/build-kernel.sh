#!/usr/bin/env bash
# Build the custom guest kernel for run.sh --kernel custom: Debian's own kernel source
# (the linux-source-6.12 package from bookworm-backports), configured with
# `make allnoconfig` plus the fragment kernel-6.12.config next to this script, all
# built in: iommufd (/dev/iommu), the VFIO device cdev (/dev/vfio/devices/vfioN),
# no-IOMMU mode, the container/group path, vfio-pci, and the mdev sample mtty. No
# Debian kernel binary package enables iommufd or the cdev.
#
# Usage: Tests/Guest/build-kernel.sh [--update] [CACHE_DIR]
#   CACHE_DIR   default /var/cache/swift-vfio-guest, or $SWIFT_VFIO_GUEST_CACHE
#               (the same folder prepare.sh fills)
#   --update    refresh the private bookworm-backports package list first (without
#               it the list is fetched only once, so a cached kernel stays valid and
#               a second run needs no network)
#   $SWIFT_VFIO_KERNEL_JOBS   make -j (default: nproc)
#
# bookworm-backports is reached without touching the system's apt configuration: apt
# runs with a private sources list (the machine's own bookworm mirror, suite
# bookworm-backports), a private lists folder and a private cache folder, all under
# CACHE_DIR/apt (the list is kept; the ~150 MB source package is deleted once the
# kernel is built). Build dependencies (build-essential bc flex bison libelf-dev
# libssl-dev xz-utils binutils) are installed with apt-get if missing (needs root
# only then).
#
# Result, keyed by the first 16 hex digits of a SHA-256 over the package version, the
# config fragment and this script:
#   CACHE_DIR/kernel-6.12/KEY/vmlinux     PVH-bootable ELF, boots with QEMU -kernel
#   CACHE_DIR/kernel-6.12/KEY/config      its .config
#   CACHE_DIR/kernel-6.12/KEY/include/    its uapi headers (make headers): linux/vfio.h,
#                                         linux/iommufd.h, ... for compiling tests
#   CACHE_DIR/kernel-6.12/KEY/READY       stamp: package version, release, key, time
#   CACHE_DIR/kernel-6.12/current         symlink to KEY (what run.sh boots)
# A run that finds KEY/READY does nothing else (well under a second). The build runs
# in a scratch folder in CACHE_DIR and is moved into place at the end; concurrent runs
# wait on a lock. The build takes 6.5-9 minutes on 2 cores (8.5 measured on a busy
# machine).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
fragment=$here/kernel-6.12.config
package=linux-source-6.12
suite=bookworm-backports
build_packages=(build-essential bc flex bison libelf-dev libssl-dev xz-utils binutils)

update=0
cache=
while (($#)); do
    case $1 in
        --update) update=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
        -*) echo "build-kernel.sh: unknown option $1" >&2; exit 2 ;;
        *) cache=$1; shift ;;
    esac
done
cache=${cache:-${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}}
jobs=${SWIFT_VFIO_KERNEL_JOBS:-$(nproc)}

t0=$(date +%s)
log() { echo "build-kernel.sh: [$(($(date +%s) - t0))s] $*" >&2; }
die() { echo "build-kernel.sh: error: $*" >&2; exit 1; }

[ -f "$fragment" ] || die "no config fragment $fragment"
mkdir -p "$cache/kernel-6.12" "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
cache=$(cd "$cache" && pwd)
out_root=$cache/kernel-6.12

# Serialise concurrent runs (a separate lock from prepare.sh's: a 7-minute build must
# not hold up the Debian-kernel harness).
exec 9>"$out_root/.lock"
if ! flock -n 9; then
    log "another build-kernel.sh holds $out_root/.lock; waiting"
    flock 9
fi

# --- 1. The package version, from a private apt list of bookworm-backports ----------

# The private sources list: the machine's own Debian mirror (the URL of its bookworm
# main entry), suite bookworm-backports. Written once (asking the system's apt takes a
# second), and again with --update.
sources=$cache/apt/sources.list
if ((update)) || [ ! -s "$sources" ]; then
    mirror=$(apt-cache policy 2>/dev/null | awk '$3 == "bookworm/main" && $4 == "amd64" {print $2; exit}')
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$sources"
    update=1
fi
apt_private=(-o "Dir::Etc::SourceList=$sources" -o Dir::Etc::SourceParts=/nonexistent
             -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache"
             -o APT::Sandbox::User=root)
if ((update)) || ! ls "$cache/apt/lists/"*_Packages* >/dev/null 2>&1; then
    log "apt-get update (private list: $(cat "$sources"))"
    update=1
    apt-get "${apt_private[@]}" -q update >/dev/null || die "apt-get update of $suite failed"
fi
version=$(apt-cache "${apt_private[@]}" policy "$package" | awk '$1 == "Candidate:" {print $2}')
[ -n "$version" ] && [ "$version" != "(none)" ] || die "$package not found in $suite ($(cat "$sources"))"

key=$( { echo "$package=$version"; cat "$fragment" "$self"; } | sha256sum | cut -c1-16)
result=$out_root/$key

set_current() {
    ln -sfn "$key" "$out_root/.current.new"
    mv -T "$out_root/.current.new" "$out_root/current"
}

if [ -f "$result/READY" ]; then
    set_current
    log "cached: $(head -n1 "$result/READY") in $result"
    exit 0
fi
log "building $package $version (key $key) into $result"

# --- 2. Build dependencies -----------------------------------------------------------

missing=()
for p in "${build_packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run once as root"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get -o DPkg::Lock::Timeout=600 update -qq \
             && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
        || die "could not install ${missing[*]}"
fi

# --- 3. The source ------------------------------------------------------------------

debs=$cache/apt/debs
mkdir -p "$debs"
deb=$debs/${package}_${version//:/%3a}_all.deb
if [ ! -f "$deb" ]; then
    log "downloading $package $version (~150 MB)"
    rm -f "$debs/${package}_"*.deb
    if ! (cd "$debs" && apt-get "${apt_private[@]}" -q download "$package=$version" >/dev/null); then
        # The mirror keeps only the newest backport: with a stale list, fetch the list
        # again and start over (which may mean a newer version and another key).
        if ((update == 0)); then
            log "download failed; refreshing the package list and starting over"
            exec 9>&-
            exec "$self" --update "$cache"
        fi
        die "apt-get download $package=$version failed"
    fi
    [ -f "$deb" ] || deb=$(ls "$debs/${package}_"*.deb | head -n1)
fi

work=$(mktemp -d "$cache/.kernel-build.XXXXXX")
make_pid=
cleanup() {
    if [ -n "$make_pid" ]; then kill -- "-$make_pid" 2>/dev/null || kill "$make_pid" 2>/dev/null || true; wait "$make_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "extracting /usr/src/$package.tar.xz"
dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$package.tar.xz" | tar -xJ -C "$work"
src=$work/$package
[ -f "$src/Makefile" ] || die "no kernel tree in $deb"

# --- 4. Configure and check ---------------------------------------------------------

# Every option the fragment sets to y must be y in .config, and every one it says
# "is not set" must not be y or m; otherwise Kconfig dropped it (a missing dependency,
# a renamed option) and the guest would silently lack it.
check_config() {
    local config=$1 bad=() name
    while read -r name; do
        if ! grep -qx "$name=y" "$config"; then
            bad+=("$name (wanted y, got: $(grep -E "^$name=|^# $name is not set" "$config" || echo absent))")
        fi
    done < <(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=y$/\1/p' "$fragment")
    while read -r name; do
        if grep -Eq "^$name=[ym]$" "$config"; then
            bad+=("$name (wanted off, got: $(grep "^$name=" "$config"))")
        fi
    done < <(sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p' "$fragment")
    if ((${#bad[@]})); then
        printf 'build-kernel.sh: error: option not as kernel-6.12.config wants: %s\n' "${bad[@]}" >&2
        exit 1
    fi
}

log "make allnoconfig KCONFIG_ALLCONFIG=$(basename "$fragment")"
make -C "$src" -s KCONFIG_ALLCONFIG="$fragment" allnoconfig >"$work/config.log" 2>&1 \
    || { cat "$work/config.log" >&2; die "make allnoconfig failed"; }
check_config "$src/.config"
log "config ok: $(grep -c '=y$' "$src/.config") options =y, all $(grep -c '^CONFIG_[A-Za-z0-9_]*=y$' "$fragment") wanted ones among them"

# --- 5. Build -----------------------------------------------------------------------

log "make -j$jobs vmlinux (log: $work/build.log; ~7 min on 2 idle cores)"
start=$(date +%s)
setsid --wait make -C "$src" -j"$jobs" vmlinux >"$work/build.log" 2>&1 &
make_pid=$!
# Progress every 30 s: objects compiled so far and the last thing make did.
running() { kill -0 "$make_pid" 2>/dev/null; }
while running; do
    for ((i = 0; i < 30; i++)); do
        if running; then sleep 1; else break; fi
    done
    running || break
    # make deletes its .tmp_* folders while find walks the tree: find then exits 1,
    # which under pipefail would end this script (and the build) for a progress line.
    objs=$({ find "$src" -name '*.o' 2>/dev/null || true; } | wc -l)
    log "  building: $objs of ~1150 objects, last: $(grep -E '^  [A-Z]' "$work/build.log" | tail -n1 | sed 's/^ *//')"
done
status=0
wait "$make_pid" || status=$?
make_pid=
if [ "$status" != 0 ]; then
    tail -n 40 "$work/build.log" >&2
    die "make vmlinux failed (status $status)"
fi
build_seconds=$(($(date +%s) - start))
log "vmlinux built in ${build_seconds}s"
check_config "$src/.config"

# QEMU's -kernel boots an ELF only through its PVH entry note (type 0x12, owner Xen).
notes=$(readelf -n "$src/vmlinux") || die "readelf failed on vmlinux"
grep -Eq '^ *Xen .*\(0x00000012\)' <<<"$notes" || die "vmlinux has no PVH entry note (CONFIG_PVH?)"

log "make headers"
make -C "$src" -s headers >>"$work/build.log" 2>&1 || { tail -n 20 "$work/build.log" >&2; die "make headers failed"; }

release=$(make -C "$src" -s --no-print-directory kernelrelease)
mkdir -p "$work/out"
mv "$src/vmlinux" "$work/out/vmlinux"
cp "$src/.config" "$work/out/config"
(cd "$src/usr" && find include -name '*.h' -exec cp --parents -t "$work/out" {} +)
{
    echo "$package $version, Linux $release, key $key"
    echo "built $(date -u +%FT%TZ) in ${build_seconds}s with make -j$jobs"
} >"$work/out/READY"

# Into place: the key folder by rename, then the current link. Older builds and the
# source package go (a new key means a new package or new inputs: build afresh).
rm -rf "$result"
mv "$work/out" "$result"
set_current
for old in "$out_root"/*; do
    if [ -d "$old" ] && [ ! -L "$old" ] && [ "$old" != "$result" ]; then rm -rf "$old"; fi
done
rm -f "$deb"
log "ready: $(head -n1 "$result/READY") in $result (vmlinux $(($(stat -c %s "$result/vmlinux") / 1048576)) MiB)"
