#!/bin/sh
# The userspace driver beside the kernel's, in one guest, on two identical QEMU NVMe
# controllers behind the same emulated IOMMU: the first stays on vfio-pci for
# `vfio nvme bench`, the second is handed to the guest kernel's nvme driver for fio
# (io_uring, --direct=1; its DMA goes through the IOMMU as the driver's does). The jobs
# alternate between the two, ROUNDS times: 4 KiB random reads at QD1 (MSI-X and polled)
# and QD32, 128 KiB sequential reads at QD8, over the first 256 MiB of each.
#
# Usage (host; the custom kernel has nvme built in):
#   R=$(realpath .build/release/vfio)
#   Tests/Guest/run-nvme.sh --kernel custom --vfio-pci --device qemu --device qemu \
#       --copy "$R" --copy "$(command -v fio)" -- Tests/Guest/nvme/driver-vs-kernel.sh "$R" [ROUNDS] [SECONDS]
# Prints fio's IOPS and latency lines ("kernel ...") and the bench's summary ("driver ...").
set -u
vfio=$1
rounds=${2:-3}
seconds=${3:-5}
set -- $SWIFT_VFIO_NVME
[ $# -ge 2 ] || { echo "driver-vs-kernel.sh: two NVMe controllers needed, found: $*" >&2; exit 2; }
ours=$1
theirs=$2

d=/sys/bus/pci/devices/$theirs
echo "$theirs" >"$d/driver/unbind"
echo >"$d/driver_override"
echo "$theirs" >/sys/bus/pci/drivers/nvme/bind
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/nvme0n1 ] || { echo "driver-vs-kernel.sh: no /dev/nvme0n1 after binding $theirs to nvme" >&2; exit 1; }

kernel() {
    fio --name=kernel --filename=/dev/nvme0n1 --direct=1 --ioengine=io_uring --rw="$1" --bs="$2" \
        --iodepth="$3" --runtime="$seconds" --time_based --size=256M --norandommap --group_reporting 2>&1 |
        grep -E "IOPS=| lat \(usec\): min" | sed "s/^/kernel $1 $2 QD$3: /"
}
driver() {
    size=$1 qd=$2
    shift 2
    "$vfio" nvme bench "$ours" --size "$size" --qd "$qd" --seconds "$seconds" --span 256M "$@" 2>/dev/null |
        tail -2 | sed "s/^/driver $size QD$qd $*: /"
}
r=0
while [ $r -lt "$rounds" ]; do
    r=$((r + 1))
    echo "== round $r"
    kernel randread 4k 1
    driver 4k 1 --read
    driver 4k 1 --polled
    kernel randread 4k 32
    driver 4k 32 --read
    driver 4k 32 --polled
    kernel read 128k 8
    driver 128k 8 --sequential
done
