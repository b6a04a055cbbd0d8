#!/usr/bin/env bash
# Run one program inside a throwaway Linux guest (qemu-system-x86_64, TCG) whose QEMU
# `edu` PCI device (1234:11e8) sits behind an emulated Intel IOMMU and is bound to
# vfio-pci, and exit with the program's exit status.
#
# Usage: Tests/Guest/run.sh [--cache DIR] [--timeout SECONDS] [--copy PATH]... \
#            -- PROGRAM [ARGS...]
#   --cache DIR      what prepare.sh made (default: /var/cache/swift-vfio-guest, or
#                    $SWIFT_VFIO_GUEST_CACHE)
#   --timeout SECS   kill the guest after this long (default 180)
#   --copy PATH      also put PATH (a file or a directory, e.g. resources a test
#                    bundle reads) into the guest at the same absolute path; repeatable
#   PROGRAM          an executable file (ELF, or a script for busybox sh). It is put
#                    into the guest at the same absolute path, with every library `ldd`
#                    lists and the ELF interpreter, and run there as root with ARGS,
#                    cwd /, HOME=TMPDIR=/tmp. A SwiftPM test bundle on Linux
#                    (`.build/debug/<Package>PackageTests.xctest`) is such a file.
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
copies=()

while (($#)); do
    case $1 in
        --cache) cache=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --copy) copies+=("$2"); shift 2 ;;
        --) shift; break ;;
        -h | --help) usage ;;
        *) log "unknown option $1"; usage ;;
    esac
done
(($#)) || usage
guest_check_cache
guest_program "$1"
shift

guest_setup
guest_initramfs "" "${copies[@]}" -- "$@"

# The command line of kvm-guest.md: TCG (no usable KVM here); q35 with an Intel IOMMU
# with interrupt remapping (VFIO_SET_IOMMU fails without it) and caching mode; edu
# behind a root port (so it gets a bus reset).
guest_run qemu-system-x86_64 \
    -nodefaults -no-user-config -display none -no-reboot -m 1024 -smp 1 \
    -accel tcg -machine q35 -device intel-iommu,intremap=on,caching-mode=on \
    -device pcie-root-port,id=rp1,chassis=1 -device edu,bus=rp1 \
    -kernel "$guest/kernel" -initrd "$tmp/initramfs.cpio" \
    -serial stdio -serial "file:$tmp/status" \
    -append "$guest_append"
guest_exit
