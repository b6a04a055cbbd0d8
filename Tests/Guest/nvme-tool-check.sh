#!/bin/sh
# Checks `vfio nvme` against QEMU's NVMe bound to the guest's vfio-pci (run by .ci/test-nvme):
#   Tests/Guest/run-nvme.sh --vfio-pci --copy VFIO -- Tests/Guest/nvme-tool-check.sh VFIO
# where VFIO is the tool's absolute path. Identify and a short read benchmark through the
# PCI address (container and group), and on a kernel with iommufd through the device
# cdev too. Exits non-zero on the first check that fails.
set -e
vfio=$1
nvme=${SWIFT_VFIO_NVME%% *}
cdev=${SWIFT_VFIO_NVME_CDEV%% *}
fail() { echo "nvme-tool-check: $*" >&2; exit 1; }
check() { out=$("$@" 2>&1) || fail "'$*' failed: $out"; echo "$out"; }
[ -n "$nvme" ] || fail "SWIFT_VFIO_NVME is empty: no NVMe controller on vfio-pci"

for device in "$nvme" $cdev; do
    identify=$(check "$vfio" nvme identify "$device")
    echo "$identify"
    echo "$identify" | grep -q "QEMU NVMe Ctrl" || fail "vfio nvme identify $device: no model name"
    echo "$identify" | grep -qi "serial.*qemu-nvme" || fail "vfio nvme identify $device: no serial"
    bench=$(check "$vfio" nvme bench "$device" --qd 32 --size 4k --read --seconds 2 --json)
    echo "$bench"
    # Some I/O completed: an "iops" figure that is not zero.
    echo "$bench" | grep -Eq '"iops" *: *[1-9]' || fail "vfio nvme bench $device: no I/O completed"
done
echo "nvme-tool-check: all checks passed"
