#!/bin/sh
# Checks the `vfio` tool against the real kernel inside the guest (run by .ci/test):
#   Tests/Guest/run.sh --copy VFIO -- Tests/Guest/vfio-tool-check.sh VFIO
# where VFIO is the tool's absolute path (realpath .build/debug/vfio). Exits non-zero
# on the first check that fails.
set -e
vfio=$1
edu=${SWIFT_VFIO_EDU%% *}
fail() { echo "vfio-tool-check: $*" >&2; exit 1; }
check() { out=$("$@" 2>&1) || fail "'$*' failed: $out"; echo "$out"; }

check "$vfio" list | grep -q "^  $edu  1234:11e8  class 00ff00  vfio-pci" || fail "vfio list does not show $edu on vfio-pci"
check "$vfio" list --json | grep -q "\"address\": \"$edu\"" || fail "vfio list --json lacks $edu"
info=$(check "$vfio" info "$edu")
echo "$info"
echo "$info" | grep -q "Flags: RESET PCI" || fail "vfio info: flags"
echo "$info" | grep -q "0 BAR0: size 0x100000 (1 MiB) offset 0x0 \[READ WRITE MMAP\]" || fail "vfio info: BAR0"
echo "$info" | grep -q "1 MSI: count 1" || fail "vfio info: MSI"
echo "$info" | grep -q "MIGRATION: no (ENOTTY" || fail "vfio info: migration feature"
echo "$info" | grep -q "Hot reset affects: $edu" || fail "vfio info: hot reset"
echo "$info" | grep -q "GFX planes: none (ENOTTY from VFIO_DEVICE_QUERY_GFX_PLANE)" || fail "vfio info: GFX planes of edu"
# The mediated displays (run.sh --kernel custom --mdpy 1 --mbochs 1): mdpy's region
# plane; mbochs offers dma-buf planes, its primary disabled until a mode is set.
if [ -n "${SWIFT_VFIO_MDPY:-}" ]; then
    display=$(check "$vfio" info "mdev:${SWIFT_VFIO_MDPY%% *}")
    echo "$display"
    echo "$display" | grep -q "region: primary XR24 (0x34325258) 640x480 stride 2560 size 0x200000, region 16" || fail "vfio info: mdpy plane"
    echo "$display" | grep -q "dmabuf: not offered" || fail "vfio info: mdpy dmabuf"
    check "$vfio" info --json "mdev:${SWIFT_VFIO_MDPY%% *}" | grep -q '"region_index": 16' || fail "vfio info --json: mdpy plane"
fi
if [ -n "${SWIFT_VFIO_MBOCHS:-}" ]; then
    display=$(check "$vfio" info "mdev:${SWIFT_VFIO_MBOCHS%% *}")
    echo "$display"
    echo "$display" | grep -q "region: not offered" || fail "vfio info: mbochs region"
    echo "$display" | grep -q "dmabuf: primary disabled" || fail "vfio info: mbochs plane"
fi
group=$(basename "$(readlink /sys/bus/pci/devices/$edu/iommu_group)")
check "$vfio" info --json --access container "/dev/vfio/$group" | grep -q '"num_regions": 9' || fail "vfio info --json /dev/vfio/$group"
if [ -e /dev/iommu ]; then  # the custom kernel: the iommufd lines (IOMMU_GET_HW_INFO of QEMU's VT-d)
    info=$(check "$vfio" info --access iommufd "$edu")
    echo "$info" | grep -q "^  iommufd: device id [0-9]*, IOAS [0-9]*, HWPT [0-9]*$" || fail "vfio info: iommufd ids"
    echo "$info" | grep -q "^  IOMMU: Intel VT-d, capabilities: none$" || fail "vfio info: IOMMU hw info"
    echo "$info" | grep -q "^  VT-d cap 0x[0-9a-f]*: .*CM.*; MGAW 39," || fail "vfio info: VT-d cap"
    echo "$info" | grep -q "^  VT-d ecap 0x[0-9a-f]*: QI IR PT; nesting parent no" || fail "vfio info: VT-d ecap"
    check "$vfio" info --json --access iommufd "$edu" | grep -q '"dirty_tracking": false' || fail "vfio info --json: iommufd"
fi
if "$vfio" info model:edu >/dev/null 2>&1; then :; fi
check "$vfio" unbind "$edu" | grep -q "$edu: no driver" || fail "vfio unbind"
check "$vfio" bind "$edu" | grep -q "$edu: vfio-pci (was no driver)" || fail "vfio bind"
check "$vfio" info "$edu" >/dev/null
echo "vfio-tool-check: all checks passed"
