#!/usr/bin/env bash
# Run an NVMe storage workload (or any program) in a throwaway Linux guest (QEMU 11.1,
# TCG) with one or more NVMe controllers: QEMU's own emulated NVMe on a raw file, and/or
# a vfio-user NVMe controller (e.g. `vfio serve nvme --socket SOCK`) through QEMU's
# vfio-user-pci. By default the guest's own `nvme` driver takes every controller and
# nvme/workload.sh runs on each (identify, partition, ext4 with checksums, fio with
# --verify=crc32c, a controller reset under I/O, fio performance jobs, fsck); with
# --vfio-pci the controllers are bound to vfio-pci instead, behind the emulated Intel
# IOMMU, for a userspace driver.
#
# Usage: Tests/Guest/run-nvme.sh [--cache DIR] [--kernel debian|custom] [--timeout SECS]
#            [--device qemu|vfio-user]... [--socket SOCK] [--backing FILE] [--size MIB]
#            [--iommu] [--vfio-pci] [--results FILE] [--runtime SECS] [--rounds N]
#            [--copy PATH]... [--qemu-arg ARG]... [-- PROGRAM [ARGS...]]
#   --cache DIR      what prepare.sh and prepare-qemu11.sh (and build-kernel.sh) made
#                    (default: /var/cache/swift-vfio-guest, or $SWIFT_VFIO_GUEST_CACHE)
#   --kernel KIND    debian (default): Debian's 6.1 with its nvme, nvme-core and ext4
#                    modules (prepare.sh's guest-storage); custom: the 6.12 kernel of
#                    build-kernel.sh (nvme and ext4 built in)
#   --timeout SECS   kill the guest after this long (default 600)
#   --device KIND    qemu: QEMU's `-device nvme` (serial qemu-nvme, qemu-nvme-2, ...) on
#                    a raw file;
#                    vfio-user: `vfio-user-pci` connected to --socket. Repeatable, one
#                    controller each, in this order on the PCI bus (each behind its own
#                    PCIe root port); default: qemu
#   --socket SOCK    the vfio-user server's UNIX socket (with --device vfio-user); waited
#                    for up to 10 s. The server is not started here.
#   --backing FILE   the raw file behind QEMU's nvme (one --device qemu only; default:
#                    a new sparse file of --size MiB each, in the temp dir, removed at
#                    exit)
#   --size MIB       size of that new file (default 512)
#   --iommu          put the emulated Intel IOMMU (translation on, as run.sh) in front of
#                    the controllers even without --vfio-pci (default: no IOMMU, so the
#                    guest's nvme driver needs no map/unmap per I/O)
#   --vfio-pci       bind every NVMe controller (PCI class 010802) to vfio-pci (implies
#                    --iommu; nvme is not loaded on the debian kernel, and unbound on the
#                    custom one) and export SWIFT_VFIO_NVME (their addresses) and, on the
#                    custom kernel, SWIFT_VFIO_NVME_CDEV. Default PROGRAM then:
#                    a C check that opens each through its VFIO group and reads CAP, VS
#                    and CSTS from BAR0 (smoke/nvme_vfio_smoke.c)
#   --results FILE   copy what the program wrote to $SWIFT_VFIO_RESULTS (a third serial
#                    port) to FILE; for the workload: key=value lines and fio's JSON, which
#                    nvme/summary.py turns into a table (printed at the end) and JSON
#   --runtime SECS   seconds per fio performance job of the workload (default 8)
#   --rounds N       run the workload's set of performance jobs N times (default 1),
#                    each job on every controller in turn; the summary gives medians
#   --copy PATH      also put PATH into the guest at the same absolute path; repeatable
#   --qemu-arg ARG   one more argument for QEMU; repeatable
#   PROGRAM          as for run.sh (default: nvme/workload.sh, or with --vfio-pci the C
#                    check). Its environment: as run.sh's, plus SWIFT_VFIO_NVME_MODE
#                    (kernel or vfio-pci), SWIFT_VFIO_NVME (controller addresses, in PCI
#                    order), SWIFT_VFIO_RESULTS (/dev/ttyS2: what is written there reaches
#                    the host), SWIFT_VFIO_NVME_RUNTIME, SWIFT_VFIO_NVME_ROUNDS.
#
# QEMU 11.1 for every mode (prepare-qemu11.sh), started as run-vfio-user.sh starts it,
# guest RAM 1 GiB in a shared memfd (vfio-user needs it), `-smp 1,maxcpus=2` (with one
# possible CPU TCG elides memory barriers and NVMe I/O stalls, kvm-guest.md).
# Exit status: PROGRAM's; 124 timeout; 125 harness failure (also: the program exited 0
# but the vfio-user connection broke or QEMU failed) with a message on stderr starting
# "run-nvme.sh:".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cache=${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}
timeout=600
kernel_kind=debian
mtty=0
devices=()
socket=
backing=
size=512
iommu=0
vfio_pci=0
results=
runtime=8
rounds=1
copies=()
qemu_args=()

while (($#)); do
    case $1 in
        --cache) cache=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --kernel) kernel_kind=$2; shift 2 ;;
        --device) devices+=("$2"); shift 2 ;;
        --socket) socket=$2; shift 2 ;;
        --backing) backing=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --iommu) iommu=1; shift ;;
        --vfio-pci) vfio_pci=1; iommu=1; shift ;;
        --results) results=$2; shift 2 ;;
        --runtime) runtime=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --copy) copies+=("$2"); shift 2 ;;
        --qemu-arg) qemu_args+=("$2"); shift 2 ;;
        --) shift; break ;;
        -h | --help) usage ;;
        *) log "unknown option $1"; usage ;;
    esac
done
((${#devices[@]})) || devices=(qemu)
guest_kernel
q=$cache/qemu11
[ -f "$q/READY" ] || fail "$q is not prepared; run (as root): $here/prepare-qemu11.sh $cache"
qroot=$q/root
qlib=$qroot/usr/lib/x86_64-linux-gnu
storage=$cache/guest-storage
if [ "$kernel_kind" = debian ]; then
    [ -f "$storage/READY" ] || fail "$storage is not prepared; run: $here/prepare.sh $cache"
elif ((vfio_pci == 0)); then
    grep -q '^CONFIG_BLK_DEV_NVME=y' "$(dirname "$kernel")/config" \
        || fail "the custom kernel has no built-in nvme driver (needed unless --vfio-pci); rebuild it: $here/build-kernel.sh $cache"
fi
[[ $size =~ ^[1-9][0-9]*$ ]] || fail "--size wants MiB, not $size"
[[ $runtime =~ ^[1-9][0-9]*$ ]] || fail "--runtime wants seconds, not $runtime"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || fail "--rounds wants a count, not $rounds"

# The program: the workload (the guest's nvme driver) or the vfio-pci check.
guest_setup
tools=()
workload=0
if (($#)); then
    guest_program "$1"
    shift
elif ((vfio_pci)); then
    gcc -O2 -Wall -Wextra -o "$tmp/nvme_vfio_smoke" "$here/smoke/nvme_vfio_smoke.c" \
        || fail "cannot compile smoke/nvme_vfio_smoke.c"
    guest_program "$tmp/nvme_vfio_smoke"
else
    guest_program "$here/nvme/workload.sh"
    workload=1
    # What the workload runs, with their libraries (ldd), from the host's Debian
    # packages (prepare.sh installs them).
    # (mkfs.ext4 is a link to mke2fs, which the copy resolves: the workload calls
    # mke2fs -t ext4, with Debian's /etc/mke2fs.conf.)
    for t in fio nvme sfdisk mke2fs e2fsck /etc/mke2fs.conf; do
        if [ -f "$t" ]; then p=$t; else p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$t") || p=; fi
        [ -n "$p" ] || fail "no $t on the host; run (as root): $here/prepare.sh $cache"
        tools+=("$p")
    done
fi

# The controllers, each behind its own root port (rp1, rp2, ...).
qemu_devices=()
vfio_user=0
n=0
for d in "${devices[@]}"; do
    n=$((n + 1))
    qemu_devices+=(-device "pcie-root-port,id=rp$n,chassis=$n")
    case $d in
        qemu)
            # The file: --backing for the first (only) one, else a new sparse one each.
            qemu_count=$((${qemu_count:-0} + 1))
            file=$backing
            if [ -z "$file" ]; then
                file=$tmp/nvme$n.raw
                truncate -s "${size}M" "$file"
            else
                ((qemu_count == 1)) || fail "--backing serves one --device qemu only"
            fi
            [ -f "$file" ] || [ -b "$file" ] || fail "no backing file $file"
            file=$(realpath -- "$file")
            [[ $file != *,* ]] || fail "a comma in the backing file's path (QEMU's option syntax)"
            serial=qemu-nvme
            ((qemu_count == 1)) || serial=qemu-nvme-$qemu_count
            qemu_devices+=(-drive "file=$file,if=none,id=nvm$n,format=raw"
                           -device "nvme,serial=$serial,drive=nvm$n,bus=rp$n")
            ;;
        vfio-user)
            ((vfio_user == 0)) || fail "one --device vfio-user only (one --socket)"
            vfio_user=1
            [ -n "$socket" ] || fail "--device vfio-user needs --socket"
            case $socket in /*) ;; *) socket=$PWD/$socket ;; esac
            [[ $socket != *[[:cntrl:]]* ]] || fail "control characters in the socket path"
            for ((waited = 0; ; waited += 100)); do
                [ -S "$socket" ] && break
                ((waited < 10000)) || fail "no socket at $socket (is the server running?)"
                sleep 0.1
            done
            json_socket=${socket//\\/\\\\}
            json_socket=${json_socket//\"/\\\"}
            qemu_devices+=(-device "{\"driver\":\"vfio-user-pci\",\"bus\":\"rp$n\",\"socket\":{\"type\":\"unix\",\"path\":\"$json_socket\"}}")
            ;;
        *) fail "--device wants qemu or vfio-user, not $d" ;;
    esac
done
iommu_devices=()
# shellcheck disable=SC2054  # (QEMU's commas)
((iommu == 0)) || iommu_devices=(-device intel-iommu,intremap=on,caching-mode=on)

# /init, after the vfio modules: the storage modules (Debian's kernel), then every NVMe
# controller either bound to vfio-pci or, with the nvme driver, waited for until its
# first namespace's block device exists.
mode=kernel
((vfio_pci == 0)) || mode=vfio-pci
guest_need_edu=0
guest_init_hook=$(cat <<EOF
# --- run-nvme.sh: NVMe controllers ($mode) ---
if [ $kernel_kind = debian ]; then
    for m in \$(cat $storage/modules.order); do
        [ $mode = vfio-pci ] && { [ \$m = nvme.ko ] || [ \$m = nvme_core.ko ]; } && continue
        insmod $storage/modules/\$m || setup_failed "insmod \$m"
    done
fi
nvme_bdfs= nvme_cdev=
for d in /sys/bus/pci/devices/*; do
    [ "\$(cat \$d/class)" = 0x010802 ] || continue
    bdf=\${d##*/}
    nvme_bdfs="\$nvme_bdfs\${nvme_bdfs:+ }\$bdf"
    if [ $mode = vfio-pci ]; then
        [ -e \$d/driver ] && echo \$bdf >\$d/driver/unbind
        echo vfio-pci >\$d/driver_override
        echo \$bdf >/sys/bus/pci/drivers_probe
        [ "\$(basename \$(readlink \$d/driver))" = vfio-pci ] || setup_failed "bind NVMe \$bdf to vfio-pci"
        if [ $kernel_kind = custom ]; then
            cdev=\$(cdev_of \$d) || setup_failed "no /dev/vfio/devices/vfioN for \$bdf"
            nvme_cdev="\$nvme_cdev\${nvme_cdev:+ }\$cdev"
        fi
    else
        # The driver probes asynchronously: wait (up to 60 s under TCG) for the
        # controller and its first namespace's block device.
        ok=
        for i in \$(seq 600); do
            c=\$(ls \$d/nvme 2>/dev/null | head -n1)
            if [ -n "\$c" ] && [ -n "\$(ls -d /sys/class/nvme/\$c/nvme*n1 2>/dev/null)" ]; then ok=1; break; fi
            sleep 0.1
        done
        [ -n "\$ok" ] || setup_failed "no NVMe block device for \$bdf"
    fi
done
[ -n "\$nvme_bdfs" ] || setup_failed "no NVMe controller (class 010802)"
export SWIFT_VFIO_NVME_MODE=$mode SWIFT_VFIO_NVME="\$nvme_bdfs" SWIFT_VFIO_RESULTS=/dev/ttyS2 SWIFT_VFIO_NVME_RUNTIME=$runtime SWIFT_VFIO_NVME_ROUNDS=$rounds
[ $kernel_kind = custom ] && [ $mode = vfio-pci ] && export SWIFT_VFIO_NVME_CDEV="\$nvme_cdev"
EOF
)
copies+=("${tools[@]}")
[ "$kernel_kind" = debian ] && copies+=("$storage")
guest_initramfs "" "${copies[@]}" -- "$@"

# QEMU 11.1 from the trixie root, as run-vfio-user.sh starts it (its own loader,
# libraries, modules and firmware). A third serial port carries the results.
: >"$tmp/results"
guest_stderr=$tmp/qemu.err
start_ms=$(date +%s%3N)
guest_run QEMU_MODULE_DIR="$qlib/qemu" \
    "$qlib/ld-linux-x86-64.so.2" --library-path "$qlib" "$qroot/usr/bin/qemu-system-x86_64" \
    -L "$qroot/usr/share/seabios" -L "$qroot/usr/share/qemu" \
    -nodefaults -no-user-config -display none -no-reboot -smp 1,maxcpus=2 -accel tcg \
    -m 1G -object memory-backend-memfd,id=mem,size=1G,share=on \
    -machine q35,memory-backend=mem \
    "${iommu_devices[@]}" "${qemu_devices[@]}" \
    -kernel "$kernel" -initrd "$tmp/initramfs.cpio" \
    -serial stdio -serial "file:$tmp/status" -serial "file:$tmp/results" \
    -append "$guest_append" \
    "${qemu_args[@]}"
ms=$(($(date +%s%3N) - start_ms))
log "guest run $((ms / 1000)).$(printf %03d $((ms % 1000))) s (QEMU start to exit)"

if [ -n "$results" ]; then cp "$tmp/results" "$results"; fi
if ((workload)) && [ -s "$tmp/results" ]; then
    "$(command -v /usr/bin/python3 python3 | head -n1)" "$here/nvme/summary.py" "$tmp/results" >&2 || true
fi

# As run-vfio-user.sh: a broken vfio-user connection must not pass as success.
suspect=
if ((vfio_user)); then
    broken=$(grep -v 'Could not enable error recovery' "$guest_stderr" \
        | grep -m1 -E 'socket|waiting for reply|failed to read header' || true)
    [ -z "$broken" ] || suspect="the vfio-user connection broke: $broken"
fi
if [ -z "$suspect" ] && [ "$qemu_status" != 0 ] && [ "$qemu_status" != 124 ]; then
    suspect="QEMU exited with $qemu_status"
fi
guest_exit "$suspect"
