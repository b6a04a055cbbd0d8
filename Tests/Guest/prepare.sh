#!/usr/bin/env bash
# Prepare everything the guest harness (run.sh) needs, once, into a cache folder:
#   - host tools from apt: qemu-system-x86, busybox-static, cpio, kmod, xz-utils, binutils;
#   - Debian's stock kernel (linux-image-amd64, 6.1), downloaded and unpacked, never
#     installed;
#   - an uncompressed, PVH-bootable vmlinux extracted from its bzImage (booting it
#     skips ~3 s of in-guest decompression under TCG), or the bzImage if that fails;
#   - the vfio modules, uncompressed, in insmod order.
#
# Usage: Tests/Guest/prepare.sh [CACHE_DIR]     (default: /var/cache/swift-vfio-guest,
#        or $SWIFT_VFIO_GUEST_CACHE)
#
# Result (what run.sh reads):
#   CACHE_DIR/guest/kernel         vmlinux (PVH) or bzImage
#   CACHE_DIR/guest/modules/*.ko   the modules
#   CACHE_DIR/guest/modules.order  their file names, one a line, in insmod order
#   CACHE_DIR/guest/READY          stamp: kernel release and kernel kind
# A second run finds READY and the tools and does nothing expensive. To refresh the
# kernel, delete CACHE_DIR (or CACHE_DIR/guest).
set -euo pipefail

cache=${1:-${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}}
packages=(qemu-system-x86 busybox-static cpio kmod xz-utils binutils)
# insmod order for Debian's 6.1 kernel (each module after the ones it depends on;
# vfio_iommu_type1 is no one's dependency but must be loaded for VFIO_SET_IOMMU).
modules=(vfio vfio_iommu_type1 vfio_virqfd irqbypass vfio_pci_core vfio_pci)

log() { echo "prepare.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$cache"
# Serialise concurrent runs (parallel test jobs) on the cache (and on apt).
# (Opened read-only: flock needs no write access, so a user without root can
# still take the lock on a cache root made.)
[ -e "$cache/.lock" ] || : >"$cache/.lock"
exec 9<"$cache/.lock"
flock 9

# 1. Host packages: install only what is missing, so a second run needs no root and no
#    network.
missing=()
for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run once as root"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f "$cache/guest/READY" ]; then
    log "cached: $(cat "$cache/guest/READY") in $cache/guest"
    exit 0
fi

# 2. The kernel package. linux-image-amd64 is a metapackage; its first dependency
#    names the real one (linux-image-6.1.0-NN-amd64). Download and unpack it only.
debs=$cache/debs
mkdir -p "$debs"
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "apt knows no linux-image-amd64; run once as root"
    apt-get update -qq
fi
image_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ && !n++ {print $2}')
[ -n "$image_pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
if ! ls "$debs/${image_pkg}_"*.deb >/dev/null 2>&1; then
    log "downloading $image_pkg"
    # apt-get download writes into the current directory. As root, apt would drop to
    # the _apt user, who cannot write here: say so explicitly to avoid the warning.
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$image_pkg" >/dev/null)
fi
deb=$(ls "$debs/${image_pkg}_"*.deb | head -n1)

# Build the result in a scratch folder inside the cache and move it into place at the
# end, so an interrupted run leaves no half-made guest/ behind.
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$work/root"
release=$(ls "$work/root/lib/modules" | head -n1)
[ -n "$release" ] || die "no /lib/modules in $deb"
bzimage=$work/root/boot/vmlinuz-$release
[ -f "$bzimage" ] || die "no $bzimage in $deb"
mkdir -p "$work/guest/modules"

# 3. vmlinux from the bzImage (as the kernel's scripts/extract-vmlinux does): find
#    the xz stream magic FD 37 7A 58 5A 00, decompress that one stream, keep it if it
#    is an ELF with the PVH entry note (type 0x12, owner "Xen"), which QEMU's -kernel
#    needs to boot an ELF directly.
kind=bzImage
for off in $(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$bzimage" | cut -d: -f1); do
    # (Fed through <(...): xz stops reading after the stream, and in a plain pipe the
    # SIGPIPE that tail then gets would fail the pipeline under pipefail.)
    xz -dc --single-stream <(tail -c +$((off + 1)) "$bzimage") >"$work/vmlinux" 2>/dev/null || continue
    # (readelf's output is captured first: grep -q closing the pipe early would make
    # readelf die of SIGPIPE, which pipefail reports as failure.)
    notes=$(readelf -n "$work/vmlinux" 2>/dev/null) || continue
    if grep -Eq '^ *Xen .*\(0x00000012\)' <<<"$notes"; then
        kind=vmlinux
        break
    fi
done
if [ "$kind" = vmlinux ]; then
    mv "$work/vmlinux" "$work/guest/kernel"
else
    log "warning: no PVH vmlinux in $(basename "$bzimage"); booting the bzImage (slower)"
    cp "$bzimage" "$work/guest/kernel"
fi

# 4. The vfio modules, decompressed if packaged as .ko.xz, in insmod order. Check the
#    order against each module's declared dependencies (modinfo, from kmod).
loaded=" "
for m in "${modules[@]}"; do
    glob=${m//_/[-_]}
    src=$(find "$work/root/lib/modules/$release" -name "$glob.ko" -o -name "$glob.ko.xz" | head -n1)
    [ -n "$src" ] || die "module $m not in $release"
    case $src in
        *.xz) xz -dc "$src" >"$work/guest/modules/$m.ko" ;;
        *) cp "$src" "$work/guest/modules/$m.ko" ;;
    esac
    for dep in $(modinfo -F depends "$work/guest/modules/$m.ko" | tr ',' ' '); do
        dep=${dep//-/_}
        [[ $loaded == *" $dep "* ]] || die "$m depends on $dep, which is not loaded before it"
    done
    loaded+="$m "
    echo "$m.ko" >>"$work/guest/modules.order"
done

echo "$release $kind" >"$work/guest/READY"
rm -rf "$cache/guest"
mv "$work/guest" "$cache/guest"
log "ready: $release $kind in $cache/guest"
