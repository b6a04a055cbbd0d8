#!/usr/bin/env bash
# Run one program inside a throwaway Linux guest (qemu-system-x86_64, TCG) whose QEMU
# `edu` PCI device (1234:11e8) sits behind an emulated Intel IOMMU and is bound to
# vfio-pci, and exit with the program's exit status.
#
# Usage: Tests/Guest/run.sh [--cache DIR] [--kernel debian|custom] [--mtty N]
#            [--mdpy N] [--mbochs N] [--timeout SECONDS] [--copy PATH]... -- PROGRAM [ARGS...]
#   --cache DIR      what prepare.sh (and build-kernel.sh) made (default:
#                    /var/cache/swift-vfio-guest, or $SWIFT_VFIO_GUEST_CACHE)
#   --kernel KIND    debian (default): Debian's 6.1 kernel and its vfio modules, from
#                    prepare.sh; container/group path only.
#                    custom: the 6.12 kernel build-kernel.sh built (everything built
#                    in): also /dev/iommu (iommufd), /dev/vfio/devices/vfioN (device
#                    cdev), no-IOMMU mode and the mdev samples mtty, mdpy and
#                    mbochs.
#   --mtty N         (custom only) create N mtty mdevs (type mtty-1, one port each;
#                    at most 24) before running PROGRAM
#   --mdpy N         (custom only) create N mdpy mdevs (type mdpy-vga: a mediated
#                    display whose 640x480 framebuffer is a region; at most 4)
#   --mbochs N       (custom only) create N mbochs mdevs (type mbochs-small: a mediated
#                    bochs display with 4 MiB of video memory, dma-buf planes; at most 8)
#   --no-iommu       (custom only) no emulated IOMMU: the kernel boots with
#                    vfio.enable_unsafe_noiommu_mode=1, so edu (with dma_mask
#                    0xffffffff: it is given physical addresses) lands in a no-IOMMU
#                    group, /dev/vfio/noiommu-N, and the kernel taints itself. Only
#                    no-IOMMU tests belong there (the Guest* suites other than
#                    GuestNoIOMMU* skip themselves)
#   --timeout SECS   kill the guest after this long (default 180)
#   --copy PATH      also put PATH (a file or a directory, e.g. resources a test
#                    bundle reads) into the guest at the same absolute path; repeatable
#   PROGRAM          an executable file (ELF, or a script for busybox sh). It is put
#                    into the guest at the same absolute path, with every library `ldd`
#                    lists and the ELF interpreter, and run there as root with ARGS,
#                    cwd /, HOME=TMPDIR=/tmp. A SwiftPM test bundle on Linux
#                    (`.build/debug/<Package>PackageTests.xctest`) is such a file.
#
# Environment of PROGRAM in the guest:
#   SWIFT_VFIO_GUEST=1, SWIFT_VFIO_KERNEL=debian|custom
#   SWIFT_VFIO_EDU         edu devices bound to vfio-pci, space-separated addresses
#                          (e.g. 0000:01:00.0); their groups: /dev/vfio/$(basename
#                          $(readlink /sys/bus/pci/devices/BDF/iommu_group))
#   SWIFT_VFIO_EDU_CDEV    (custom) their device cdevs, same order
#                          (e.g. /dev/vfio/devices/vfio0)
#   SWIFT_VFIO_MTTY        (--mtty) the mtty mdevs' UUIDs, space-separated; each is
#                          /sys/bus/mdev/devices/UUID
#   SWIFT_VFIO_MTTY_CDEV   their device cdevs (/dev/vfio/devices/vfioN), same order
#   SWIFT_VFIO_MTTY_GROUP  their VFIO groups (/dev/vfio/N), same order
#   SWIFT_VFIO_MDPY        (--mdpy) the mdpy mdevs' UUIDs, space-separated
#   SWIFT_VFIO_MBOCHS      (--mbochs) the mbochs mdevs' UUIDs, space-separated
#   SWIFT_VFIO_NOIOMMU=1, SWIFT_VFIO_EDU_NOIOMMU_GROUP  (--no-iommu) the edu devices'
#                          no-IOMMU groups (/dev/vfio/noiommu-N), same order; no
#                          SWIFT_VFIO_EDU_CDEV then
#
# The guest console (kernel messages are quiet; the program's stdout and stderr) is
# streamed to stdout. Exit status: PROGRAM's; or, when the guest never reported one,
#   124  timeout
#   125  harness failure (cache not prepared, guest setup failed, guest died)
# with a message on stderr starting "run.sh:".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cache=${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}
timeout=180
kernel_kind=debian
mtty=0
mdpy=0
mbochs=0
noiommu=0
copies=()

while (($#)); do
    case $1 in
        --cache) cache=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --kernel) kernel_kind=$2; shift 2 ;;
        --mtty) mtty=$2; shift 2 ;;
        --mdpy) mdpy=$2; shift 2 ;;
        --mbochs) mbochs=$2; shift 2 ;;
        --no-iommu) noiommu=1; shift ;;
        --copy) copies+=("$2"); shift 2 ;;
        --) shift; break ;;
        -h | --help) usage ;;
        *) log "unknown option $1"; usage ;;
    esac
done
(($#)) || usage
guest_kernel
guest_program "$1"
shift

guest_setup
guest_initramfs "" "${copies[@]}" -- "$@"

# The command line of kvm-guest.md: TCG (no usable KVM here); q35 with an Intel IOMMU
# with interrupt remapping (VFIO_SET_IOMMU fails without it) and caching mode; edu
# behind a root port (so it gets a bus reset).
# With --no-iommu: no intel-iommu, and edu's DMA reaches 32 bits of physical address
# (its default mask is 28 bits; the guest's RAM lies below 1 GiB).
iommu=(-device intel-iommu,intremap=on,caching-mode=on) edu=edu,bus=rp1
if ((noiommu)); then iommu=() edu=edu,bus=rp1,dma_mask=0xffffffff; fi
guest_run qemu-system-x86_64 \
    -nodefaults -no-user-config -display none -no-reboot -m 1024 -smp 1 \
    -accel tcg -machine q35 "${iommu[@]}" \
    -device pcie-root-port,id=rp1,chassis=1 -device "$edu" \
    -kernel "$kernel" -initrd "$tmp/initramfs.cpio" \
    -serial stdio -serial "file:$tmp/status" \
    -append "$guest_append"
guest_exit ""  # (nothing makes a status of 0 suspect here)
