#!/bin/sh
# The NVMe storage workload run-nvme.sh runs in the guest (busybox sh, as root), on
# every controller in $SWIFT_VFIO_NVME (PCI addresses) that the guest's own nvme driver
# has taken, one after the other:
#   1. identify: the controller's sysfs entry, `nvme id-ctrl`, `nvme id-ns`, `nvme list`
#      (their JSON to the results), namespace size checked against the block device;
#   2. partition (sfdisk, DOS label): p1 half the namespace for ext4, p2 the rest, raw;
#   3. ext4 on p1: mkfs.ext4, mount, write files (4 KiB to 24 MiB and 200 small ones,
#      from /dev/urandom), sha256sum, sync, unmount, mount again, compare checksums;
#   4. fio with --verify=crc32c on p2: 4 KiB random writes (QD16) and 128 KiB sequential
#      writes (QD8), each read back and checked;
#   5. a controller reset (`nvme reset`) while a verifying fio job writes, once the
#      block device shows writes in flight; the job must finish with its data intact;
#   6. p2 written end to end (so reads read data);
#   then, after steps 1-6 on every controller, the fio performance jobs on each p2
#   (direct I/O, io_uring if the kernel has it, else libaio), $SWIFT_VFIO_NVME_RUNTIME
#   seconds each after 1 s ramp: 4 KiB randread QD1 and QD32, 4 KiB randwrite QD1 and
#   QD32, 128 KiB sequential read and write QD8; each job on every controller in turn,
#   the whole set $SWIFT_VFIO_NVME_ROUNDS times (default 1); then on each controller:
#   7. e2fsck -f -n p1 must find it clean, and the checksums still match (p2's writes
#      stayed inside p2).
# Results go to $SWIFT_VFIO_RESULTS (a serial port the host keeps as a file): lines
# `CTRL.KEY=VALUE` and each fio run's JSON between `@fio CTRL JOB` and `@end` lines
# (nvme/summary.py reads them). Exit status 0 when every step passed, else 1 with
# "workload: FAIL: ..." naming the step.
# shellcheck disable=SC3043  # (busybox ash has local)
set -u
# The Debian tools run-nvme.sh copied (fio, nvme, sfdisk, mke2fs, e2fsck) sit in
# /usr/bin and /usr/sbin. Debian's static busybox runs its own applets before looking
# at PATH, and it has a mke2fs (without -t): e2fsprogs' is called by its path.
export PATH="/usr/sbin:/usr/bin:$PATH"
mke2fs=/usr/sbin/mke2fs

results=${SWIFT_VFIO_RESULTS:-/dev/null}
runtime=${SWIFT_VFIO_NVME_RUNTIME:-8}
rounds=${SWIFT_VFIO_NVME_ROUNDS:-1}
[ -c "$results" ] && stty -F "$results" raw -echo 2>/dev/null
out() { echo "$*" >>"$results"; }
uptime_cs() { local u; u=$(cut -d' ' -f1 /proc/uptime); echo "${u%.*}${u#*.}"; }
seconds_since() { local d; d=$(($(uptime_cs) - $1)); echo "$((d / 100)).$((d / 10 % 10))"; }
fail() { echo "workload: FAIL: $ctrl: $*" >&2; out "$ctrl.fail=$*"; exit 1; }
step() { echo "== $ctrl: $*"; step_start=$(uptime_cs); }
done_step() { local s; s=$(seconds_since "$step_start"); out "$ctrl.time.$1=$s"; echo "   ok ($s s)"; }

# fio_bounded OUTPUT JOB ARGS...: fio in the background, JSON to OUTPUT, bounded in
# time: a job not over after $SWIFT_VFIO_NVME_RUNTIME + 90 s (the nvme driver's own
# I/O timeout is 30 s, then it aborts and resets) fails the workload with the end of
# the kernel log, instead of hanging until the host's timeout. Sets fio_pid.
fio_bounded() {
    local output=$1 job=$2
    shift 2
    fio --thread --eta=never --output-format=json --output="$output" --name="$job" "$@" &
    fio_pid=$!
    fio_deadline=$(($(uptime_cs) + (runtime + 90) * 100))
}
# fio_wait JOB: wait for fio_bounded's job; status 0 if it succeeded.
fio_wait() {
    while kill -0 "$fio_pid" 2>/dev/null; do
        if [ "$(uptime_cs)" -gt "$fio_deadline" ]; then
            echo "workload: fio $1 still running after $((runtime + 90)) s; the kernel log's end:" >&2
            dmesg | tail -n 40 >&2
            fail "fio $1 hung (no end after $((runtime + 90)) s)"
        fi
        sleep 0.2
    done
    wait "$fio_pid"
}

# fio_json JOB ARGS...: one fio run with JSON output to the results; fails the step on
# a fio error (a verify mismatch is one).
fio_json() {
    local job=$1
    shift
    fio_bounded /tmp/fio.json "$job" "$@"
    fio_wait "$job" || { cat /tmp/fio.json >&2; fail "fio $job"; }
    { echo "@fio $ctrl $job"; cat /tmp/fio.json; echo "@end"; } >>"$results"
    # One line for the console: the job's read and write IOPS (the first two "iops" of
    # the JSON: the job's read, then write side).
    echo "   $job: read, write IOPS: $(grep -m2 -E '"iops" :' /tmp/fio.json | sed 's/.*: *//; s/\..*//' | tr '\n' ' ')"
}

# A partition's block device, once devtmpfs shows it.
wait_block() {
    local i
    for i in $(seq 100); do [ -b "$1" ] && return 0; sleep 0.1; done
    return 1
}

[ -n "${SWIFT_VFIO_NVME:-}" ] || { echo "workload: FAIL: no SWIFT_VFIO_NVME" >&2; exit 1; }
total_start=$(uptime_cs)
for bdf in $SWIFT_VFIO_NVME; do
    ctrl=$(ls "/sys/bus/pci/devices/$bdf/nvme" 2>/dev/null | head -n1)
    [ -n "$ctrl" ] || { ctrl=$bdf; fail "no nvme controller on $bdf (driver: $(basename "$(readlink "/sys/bus/pci/devices/$bdf/driver")"))"; }
    c=/sys/class/nvme/$ctrl
    ns=$(basename "$(ls -d "$c"/nvme*n1 | head -n1)")
    # With native multipath (Debian's 6.1) the controller's entry is nvme0c0n1 and the
    # block device is the head, nvme0n1.
    case $ns in *c*n1) ns=${ctrl}n1 ;; esac
    dev=/dev/$ns
    [ -b "$dev" ] || fail "no block device $dev"
    model=$(sed 's/ *$//' "$c/model")
    serial=$(sed 's/ *$//' "$c/serial")
    out "$ctrl.address=$bdf"
    out "$ctrl.model=$model"
    out "$ctrl.serial=$serial"
    out "$ctrl.device=$dev"
    out "$ctrl.pci_id=$(cat "/sys/bus/pci/devices/$bdf/vendor"):$(cat "/sys/bus/pci/devices/$bdf/device")"
    out "$ctrl.queues=$(cat "$c/queue_count")"

    step "identify ($bdf, $model, serial $serial, $dev)"
    nvme id-ctrl "/dev/$ctrl" | grep -E '^(vid|ssvid|sn|mn|fr|mdts|cntlid|ver|oacs|sqes|cqes|nn|oncs|vwc|sgls) ' \
        || fail "nvme id-ctrl /dev/$ctrl"
    { echo "@json $ctrl id-ctrl"; nvme id-ctrl "/dev/$ctrl" -o json; echo "@end"; } >>"$results" \
        || fail "nvme id-ctrl -o json"
    nvme id-ns "$dev" | grep -E '^(nsze|ncap|nuse|nsfeat|nlbaf|flbas|lbaf)' || fail "nvme id-ns $dev"
    { echo "@json $ctrl id-ns"; nvme id-ns "$dev" -o json; echo "@end"; } >>"$results" \
        || fail "nvme id-ns -o json"
    nvme list || fail "nvme list"
    { echo "@json $ctrl list"; nvme list -o json; echo "@end"; } >>"$results" || fail "nvme list -o json"
    # The namespace's size in bytes, by Identify Namespace (NSZE times the LBA size of the
    # format in use) and by the block device: they must agree.
    nsze=$(nvme id-ns "$dev" | sed -n 's/^nsze *: *//p')
    lba_shift=$(nvme id-ns "$dev" | sed -n 's/.*lbads:\([0-9]*\).*(in use).*/\1/p')
    [ -n "$nsze" ] && [ -n "$lba_shift" ] || fail "no nsze or in-use LBA format in id-ns"
    bytes=$((nsze * (1 << lba_shift)))
    blockdev_bytes=$(($(cat "/sys/block/$ns/size") * 512))
    [ "$bytes" = "$blockdev_bytes" ] || fail "id-ns says $bytes bytes, the block device $blockdev_bytes"
    out "$ctrl.bytes=$bytes"
    out "$ctrl.lba_size=$((1 << lba_shift))"
    done_step identify

    step "partition: p1 ext4 (half), p2 raw"
    half_mib=$((bytes / 2 / 1048576))
    printf 'label: dos\n,%sMiB,L\n,,L\n' "$half_mib" | sfdisk -q "$dev" || fail "sfdisk $dev"
    p1=${dev}p1 p2=${dev}p2
    wait_block "$p1" && wait_block "$p2" || fail "no $p1 and $p2 after partitioning"
    out "$ctrl.p2_bytes=$(($(cat "/sys/block/$ns/${ns}p2/size") * 512))"
    done_step partition

    step "ext4 on $p1: write files, checksums across unmount and mount"
    [ -x $mke2fs ] && [ ! -L $mke2fs ] || fail "no e2fsprogs mke2fs at $mke2fs"
    $mke2fs -q -F -t ext4 "$p1" || fail "mke2fs -t ext4 $p1"
    mkdir -p /mnt
    mount -t ext4 "$p1" /mnt || fail "mount $p1"
    dd if=/dev/urandom of=/mnt/4k bs=4096 count=1 2>/dev/null &&
        dd if=/dev/urandom of=/mnt/1m bs=1M count=1 2>/dev/null &&
        dd if=/dev/urandom of=/mnt/24m bs=1M count=24 2>/dev/null &&
        dd if=/dev/urandom of=/mnt/odd bs=1 count=12345 2>/dev/null || fail "write files to $p1"
    mkdir /mnt/small
    for i in $(seq 200); do head -c $((i * 37)) /dev/urandom >"/mnt/small/$i" || fail "write /mnt/small/$i"; done
    (cd /mnt && find . -type f | sort | xargs sha256sum) >"/tmp/sums-$ctrl" || fail "sha256sum"
    sync || fail "sync"
    umount /mnt || fail "umount $p1"
    mount -t ext4 "$p1" /mnt || fail "mount $p1 again"
    (cd /mnt && sha256sum -c -s "/tmp/sums-$ctrl") || fail "checksums differ after unmount and mount"
    out "$ctrl.files=$(wc -l <"/tmp/sums-$ctrl")"
    umount /mnt || fail "umount $p1"
    done_step ext4

    # The I/O engine: io_uring if this kernel has it (a 4 KiB read through it works).
    engine=libaio
    fio --thread --name=probe --filename="$p2" --ioengine=io_uring --rw=read --bs=4k \
        --size=4k --direct=1 >/dev/null 2>&1 && engine=io_uring
    out "$ctrl.engine=$engine"
    common="--filename=$p2 --ioengine=$engine --direct=1"

    step "fio --verify=crc32c on $p2 ($engine)"
    # shellcheck disable=SC2086  # ($common is several options)
    fio_json verify-randwrite-4k $common --rw=randwrite --bs=4k --iodepth=16 --size=32M \
        --verify=crc32c --do_verify=1 --verify_fatal=1
    # shellcheck disable=SC2086
    fio_json verify-write-128k $common --rw=write --bs=128k --iodepth=8 --size=64M \
        --offset=64M --verify=crc32c --do_verify=1 --verify_fatal=1
    done_step verify

    step "nvme reset /dev/$ctrl under a verifying fio job"
    writes_before=$(awk '{print $5}' "/sys/block/$ns/stat")
    # shellcheck disable=SC2086
    fio_bounded /tmp/fio-reset.json reset-randwrite-4k $common --rw=randwrite --bs=4k \
        --iodepth=16 --size=64M --offset=128M --verify=crc32c --do_verify=1 --verify_fatal=1
    # The event: 64 writes completed on the namespace since the job started (write
    # I/Os, field 5 of the block device's stat file); give up if the job ends first.
    started=
    for i in $(seq 600); do
        if [ "$(awk '{print $5}' "/sys/block/$ns/stat")" -gt "$((writes_before + 64))" ]; then started=1; break; fi
        kill -0 $fio_pid 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$started" ] || fail "the fio job wrote nothing before the reset (or ended first)"
    nvme reset "/dev/$ctrl" || fail "nvme reset /dev/$ctrl"
    fio_wait reset-randwrite-4k || { cat /tmp/fio-reset.json >&2; fail "fio across nvme reset"; }
    { echo "@fio $ctrl reset-randwrite-4k"; cat /tmp/fio-reset.json; echo "@end"; } >>"$results"
    [ "$(cat "$c/state")" = live ] || fail "controller state $(cat "$c/state") after reset"
    done_step reset

    step "precondition $p2: written end to end, so every read reads data"
    # shellcheck disable=SC2086
    fio_json precondition $common --rw=write --bs=128k --iodepth=8
    done_step precondition
    echo "common='$common' p1=$p1 c=$c" >"/tmp/state-$ctrl"
    ctrls="${ctrls:-}${ctrls:+ }$ctrl"
done

# The performance jobs, interleaved: each job on every controller in turn, $rounds
# times, so that a change in the host's load falls on all controllers alike.
perf_start=$(uptime_cs)
for round in $(seq "$rounds"); do
    for job in randread-4k-qd1:randread:4k:1 randread-4k-qd32:randread:4k:32 \
               randwrite-4k-qd1:randwrite:4k:1 randwrite-4k-qd32:randwrite:4k:32 \
               read-128k-qd8:read:128k:8 write-128k-qd8:write:128k:8; do
        IFS=: read -r name rw bs qd <<EOF
$job
EOF
        for ctrl in $ctrls; do
            # shellcheck disable=SC1090  # (written above)
            . "/tmp/state-$ctrl"
            echo "== $ctrl: fio $name, round $round of $rounds ($runtime s)"
            # shellcheck disable=SC2086
            fio_json "$name" $common --rw="$rw" --bs="$bs" --iodepth="$qd" \
                --time_based --runtime="$runtime" --ramp_time=1 --norandommap --randrepeat=0
        done
    done
done
ctrl=all
out "all.time.perf=$(seconds_since "$perf_start")"

for ctrl in $ctrls; do
    # shellcheck disable=SC1090  # (written above)
    . "/tmp/state-$ctrl"
    step "e2fsck -f -n $p1 and the checksums once more"
    e2fsck -f -n "$p1" || fail "e2fsck -f -n $p1 found errors (status $?)"
    mount -t ext4 -o ro "$p1" /mnt || fail "mount $p1 read-only"
    (cd /mnt && sha256sum -c -s "/tmp/sums-$ctrl") || fail "checksums differ after the raw I/O on p2"
    umount /mnt || fail "umount $p1"
    done_step fsck
    out "$ctrl.ok=1"
done
ctrl=all
out "all.time.total=$(seconds_since "$total_start")"
echo "workload: PASS ($SWIFT_VFIO_NVME, $(seconds_since "$total_start") s)"
