#!/usr/bin/env bash
# Prepare everything the guest harness (run.sh) needs, once, into a cache folder:
#   - host tools from apt: qemu-system-x86, busybox-static, cpio, kmod, xz-utils, binutils,
#     and what the NVMe storage test (run-nvme.sh) copies into its guest or uses to read
#     the results: fio, nvme-cli, e2fsprogs, fdisk (sfdisk), python3;
#   - Debian's stock kernel (linux-image-amd64, 6.1), downloaded and unpacked, never
#     installed;
#   - an uncompressed, PVH-bootable vmlinux extracted from its bzImage (booting it
#     skips ~3 s of in-guest decompression under TCG), or the bzImage if that fails;
#   - the vfio modules, uncompressed, in insmod order;
#   - the storage modules of the same kernel (nvme, nvme-core, ext4 and what they
#     need), uncompressed, in insmod order, for run-nvme.sh.
#
# Usage: Tests/Guest/prepare.sh [CACHE_DIR]     (default: /var/cache/swift-vfio-guest,
#        or $SWIFT_VFIO_GUEST_CACHE)
#
# Result (what run.sh reads):
#   CACHE_DIR/guest/kernel         vmlinux (PVH) or bzImage
#   CACHE_DIR/guest/modules/*.ko   the modules
#   CACHE_DIR/guest/modules.order  their file names, one a line, in insmod order
#   CACHE_DIR/guest/READY          stamp: kernel release and kernel kind
#   CACHE_DIR/guest-storage/modules/*.ko, modules.order   the storage modules, likewise
#   CACHE_DIR/guest-storage/READY  stamp: kernel release, then the module list (a
#                                  different list here rebuilds this folder only)
# A second run finds both stamps and the tools and does nothing expensive. To refresh
# the kernel, delete CACHE_DIR (or CACHE_DIR/guest and CACHE_DIR/guest-storage).
set -euo pipefail

cache=${1:-${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}}
packages=(qemu-system-x86 busybox-static cpio kmod xz-utils binutils fio nvme-cli e2fsprogs fdisk python3)
# insmod order for Debian's 6.1 kernel (each module after the ones it depends on;
# vfio_iommu_type1 is no one's dependency but must be loaded for VFIO_SET_IOMMU).
modules=(vfio vfio_iommu_type1 vfio_virqfd irqbypass vfio_pci_core vfio_pci)
# insmod order of the storage modules (Debian's 6.1 builds them as modules): the nvme
# driver (nvme-core needs t10-pi for end-to-end protection, which needs the CRC-T10DIF
# and CRC64-Rocksoft helpers with their generic crypto implementations), ext4 (jbd2,
# mbcache, crc16) and crc32c_generic, which ext4 and jbd2 ask the crypto API for at
# mount (there is no modprobe in the guest to load it on demand).
storage_modules=(crct10dif_common crct10dif_generic crc_t10dif crc64 crc64_rocksoft_generic
                 crc64_rocksoft t10_pi nvme_core nvme crc16 mbcache jbd2 crc32c_generic ext4)

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

storage_stamp() { echo "$1 ${storage_modules[*]}"; }
guest_ready=0
if [ -f "$cache/guest/READY" ]; then
    guest_ready=1
    guest_release=$(cut -d' ' -f1 "$cache/guest/READY")
    if [ "$(cat "$cache/guest-storage/READY" 2>/dev/null)" = "$(storage_stamp "$guest_release")" ]; then
        log "cached: $(cat "$cache/guest/READY") in $cache/guest (and its storage modules)"
        exit 0
    fi
fi

# 2. The kernel package. linux-image-amd64 is a metapackage; its first dependency
#    names the real one (linux-image-6.1.0-NN-amd64). Download and unpack it only.
#    When the guest is ready and only the storage modules are missing, it is the
#    package of the guest's own release.
debs=$cache/debs
mkdir -p "$debs"
if ((guest_ready)); then
    image_pkg=linux-image-$guest_release
else
    if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "apt knows no linux-image-amd64; run once as root"
        apt-get update -qq
    fi
    image_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ && !n++ {print $2}')
    [ -n "$image_pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
fi
if ! ls "$debs/${image_pkg}_"*.deb >/dev/null 2>&1; then
    log "downloading $image_pkg"
    # apt-get download writes into the current directory. As root, apt would drop to
    # the _apt user, who cannot write here: say so explicitly to avoid the warning.
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$image_pkg" >/dev/null) \
        || die "apt-get download $image_pkg failed$( ((guest_ready)) && echo " (to move to a newer kernel, delete $cache/guest)")"
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

# collect_modules DEST NAME...: the named modules of the package, decompressed if
# packaged as .ko.xz, into DEST/modules, their file names in insmod order in
# DEST/modules.order. Checks the order against each module's declared dependencies
# (modinfo, from kmod).
collect_modules() {
    local dest=$1 m glob src dep loaded=" "
    shift
    mkdir -p "$dest/modules"
    for m in "$@"; do
        glob=${m//_/[-_]}
        src=$(find "$work/root/lib/modules/$release" -name "$glob.ko" -o -name "$glob.ko.xz" | head -n1)
        [ -n "$src" ] || die "module $m not in $release"
        case $src in
            *.xz) xz -dc "$src" >"$dest/modules/$m.ko" ;;
            *) cp "$src" "$dest/modules/$m.ko" ;;
        esac
        for dep in $(modinfo -F depends "$dest/modules/$m.ko" | tr ',' ' '); do
            dep=${dep//-/_}
            [[ $loaded == *" $dep "* ]] || die "$m depends on $dep, which is not loaded before it"
        done
        loaded+="$m "
        echo "$m.ko" >>"$dest/modules.order"
    done
}

if ((!guest_ready)); then
    mkdir -p "$work/guest"
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

    # 4. The vfio modules.
    collect_modules "$work/guest" "${modules[@]}"
    echo "$release $kind" >"$work/guest/READY"
    rm -rf "$cache/guest"
    mv "$work/guest" "$cache/guest"
    log "ready: $release $kind in $cache/guest"
fi

# 5. The storage modules (run-nvme.sh).
collect_modules "$work/guest-storage" "${storage_modules[@]}"
storage_stamp "$release" >"$work/guest-storage/READY"
rm -rf "$cache/guest-storage"
mv "$work/guest-storage" "$cache/guest-storage"
log "ready: storage modules of $release in $cache/guest-storage"
