#!/usr/bin/env bash
# Run one program inside a throwaway Linux guest (qemu-system-x86_64, TCG) whose QEMU
# `edu` PCI device (1234:11e8) sits behind an emulated Intel IOMMU and is bound to
# vfio-pci, and exit with the program's exit status.
#
# Usage: Tests/Guest/run.sh [--cache DIR] [--kernel debian|custom] [--mtty N]
#            [--timeout SECONDS] [--copy PATH]... -- PROGRAM [ARGS...]
#   --cache DIR      what prepare.sh (and build-kernel.sh) made (default:
#                    /var/cache/swift-vfio-guest, or $SWIFT_VFIO_GUEST_CACHE)
#   --kernel KIND    debian (default): Debian's 6.1 kernel and its vfio modules, from
#                    prepare.sh; container/group path only.
#                    custom: the 6.12 kernel build-kernel.sh built (everything built
#                    in): also /dev/iommu (iommufd), /dev/vfio/devices/vfioN (device
#                    cdev), no-IOMMU mode and the mdev sample mtty.
#   --mtty N         (custom only) create N mtty mdevs (type mtty-1, one port each;
#                    at most 24) before running PROGRAM
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
#
# The guest console (kernel messages are quiet; the program's stdout and stderr) is
# streamed to stdout. Exit status: PROGRAM's; or, when the guest never reported one,
#   124  timeout
#   125  harness failure (cache not prepared, guest setup failed, guest died)
# with a message on stderr starting "run.sh:".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}
timeout=180
kernel_kind=debian
mtty=0
copies=()

log() { echo "run.sh: $*" >&2; }
fail() { log "$*"; exit 125; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 125; }

while (($#)); do
    case $1 in
        --cache) cache=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --kernel) kernel_kind=$2; shift 2 ;;
        --mtty) mtty=$2; shift 2 ;;
        --copy) copies+=("$2"); shift 2 ;;
        --) shift; break ;;
        -h | --help) usage ;;
        *) log "unknown option $1"; usage ;;
    esac
done
(($#)) || usage
[[ $mtty =~ ^[0-9]+$ ]] && ((mtty <= 24)) || fail "--mtty wants a number from 0 to 24, not $mtty"
case $kernel_kind in
    debian)
        guest=$cache/guest
        [ -f "$guest/READY" ] || fail "$guest is not prepared; run: $here/prepare.sh $cache"
        kernel=$guest/kernel
        ((mtty == 0)) || fail "--mtty needs --kernel custom (Debian's kernels lack the mtty sample)"
        ;;
    custom)
        # (busybox and qemu come from prepare.sh; the kernel from build-kernel.sh.)
        kernel=$cache/kernel-6.12/current/vmlinux
        [ -f "$kernel" ] || fail "no custom kernel in $cache/kernel-6.12; run: $here/build-kernel.sh $cache"
        ;;
    *) fail "--kernel wants debian or custom, not $kernel_kind" ;;
esac
program=$(command -v -- "$1") || fail "no such program: $1"
program=$(realpath -- "$program")
{ [ -f "$program" ] && [ -x "$program" ]; } || fail "not an executable file: $program"
shift

# Everything below happens in a temp dir that goes away on every path; the trap also
# stops QEMU if we are interrupted while it runs.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/swift-vfio-guest.XXXXXX")
qemu_pid=
cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
root=$tmp/root

# --- The initramfs tree ------------------------------------------------------------

# Copy one host file into the tree at the same absolute path (following symlinks),
# once; it replaces a busybox applet link of the same name.
put() {
    local dst=$root$1
    [ -f "$dst" ] && [ ! -L "$dst" ] && return 0
    mkdir -p "$(dirname "$dst")"
    cp -L --remove-destination --preserve=mode -- "$1" "$dst"
}

# Copy an ELF file with its interpreter and every library ldd lists; remember the
# libraries' folders for LD_LIBRARY_PATH (the guest has no /etc/ld.so.cache).
libdirs=
put_elf() {
    put "$1"
    local line lib
    # ldd fails on static binaries ("not a dynamic executable"): nothing to add then.
    while read -r line; do
        case $line in
            *"not found"*) fail "$1 needs a library the host lacks: $line" ;;
            *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
            /*) lib=${line%% (*} ;;  # the interpreter, e.g. /lib64/ld-linux-x86-64.so.2
            *) continue ;;           # linux-vdso.so.1 and the like
        esac
        put "$lib"
        case ":$libdirs:" in *":$(dirname "$lib"):"*) ;; *) libdirs+=${libdirs:+:}$(dirname "$lib") ;; esac
    done < <(ldd "$1" 2>/dev/null || true)
}

is_elf() { [ "$(head -c4 "$1" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; }

# A file, or a whole directory with the libraries of every ELF file in it.
put_path() {
    local p f
    p=$(realpath -- "$1") || fail "no such path: $1"
    if [ -d "$p" ]; then
        mkdir -p "$root$(dirname "$p")"
        cp -a -- "$p" "$root$p"
        while IFS= read -r -d '' f; do
            if is_elf "$f"; then put_elf "$f"; fi
        done < <(find "$p" -type f -print0)
    elif is_elf "$p"; then
        put_elf "$p"
    else
        put "$p"
    fi
}

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,lib/vfio}

# busybox, static, with a link for each applet it has.
busybox=$(command -v busybox) || fail "no busybox; run prepare.sh"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

# The vfio modules, in insmod order (the custom kernel has everything built in).
if [ "$kernel_kind" = debian ]; then
    cp "$guest"/modules/*.ko "$guest/modules.order" "$root/lib/vfio/"
fi

put_path "$program"
for c in "${copies[@]}"; do put_path "$c"; done

# PROGRAM and ARGS as one line of sh, each word in single quotes ('\'' for a quote).
quote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
command_line=$(quote "$program")
for a in "$@"; do command_line+=" $(quote "$a")"; done

# /init: runs as PID 1. Everything it reports to the host goes to the second serial
# port (/dev/ttyS1, the file $tmp/status on the host), one KEY=VALUE a line.
cat >"$root/init" <<EOF
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp TMPDIR=/tmp
report() { echo "\$1" >/dev/ttyS1; }
setup_failed() { echo "init: \$1" >&2; report "SETUP_FAILED=\$1"; poweroff -f; }
# The device cdev of a VFIO device's sysfs folder, once devtmpfs shows it.
cdev_of() {
    local n i
    n=\$(ls \$1/vfio-dev 2>/dev/null | head -n1)
    [ -n "\$n" ] || return 1
    for i in 1 2 3 4 5 6 7 8 9 10; do
        [ -c /dev/vfio/devices/\$n ] && { echo /dev/vfio/devices/\$n; return 0; }
        sleep 0.1
    done
    return 1
}

# Kernel filesystems; the console as stdio (in case the kernel found no /dev/console).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# Plain \n line ends on the host's stdout (the tty would turn them into \r\n).
stty -onlcr 2>/dev/null
report BOOTED=1

# Debian kernel: vfio, then vfio_iommu_type1 (explicitly: nothing else pulls it in),
# then vfio-pci. The custom kernel has no modules.
if [ -f /lib/vfio/modules.order ]; then
    for m in \$(cat /lib/vfio/modules.order); do
        insmod /lib/vfio/\$m || setup_failed "insmod \$m"
    done
fi

# Bind every edu device (1234:11e8) to vfio-pci; their addresses go to the program
# in SWIFT_VFIO_EDU (space-separated), with SWIFT_VFIO_GUEST=1 saying "in the harness".
edu= edu_cdev=
for d in /sys/bus/pci/devices/*; do
    [ "\$(cat \$d/vendor)" = 0x1234 ] && [ "\$(cat \$d/device)" = 0x11e8 ] || continue
    bdf=\${d##*/}
    [ -e \$d/driver ] && echo \$bdf >\$d/driver/unbind
    echo vfio-pci >\$d/driver_override
    echo \$bdf >/sys/bus/pci/drivers_probe
    [ "\$(basename \$(readlink \$d/driver))" = vfio-pci ] || setup_failed "bind \$bdf to vfio-pci"
    edu="\$edu\${edu:+ }\$bdf"
    if [ $kernel_kind = custom ]; then
        # The device cdev: /sys/.../vfio-dev/vfioN is /dev/vfio/devices/vfioN (devtmpfs).
        cdev=\$(cdev_of \$d) || setup_failed "no /dev/vfio/devices/vfioN for \$bdf"
        edu_cdev="\$edu_cdev\${edu_cdev:+ }\$cdev"
    fi
done
[ -n "\$edu" ] || setup_failed "no edu device (1234:11e8)"
export SWIFT_VFIO_GUEST=1 SWIFT_VFIO_KERNEL=$kernel_kind SWIFT_VFIO_EDU="\$edu"
if [ $kernel_kind = custom ]; then
    [ -c /dev/iommu ] || setup_failed "no /dev/iommu"
    export SWIFT_VFIO_EDU_CDEV="\$edu_cdev"
fi

# mtty mdevs: write a fresh UUID to the type's create file; the mdev appears as
# /sys/bus/mdev/devices/UUID, bound to the mtty driver, in its own (emulated-IOMMU)
# VFIO group and with its own device cdev.
if [ $mtty -gt 0 ]; then
    types=/sys/class/mdev_bus/mtty/mdev_supported_types
    [ -d \$types/mtty-1 ] || setup_failed "no \$types/mtty-1 (mtty sample not in this kernel)"
    uuids= mtty_cdev= mtty_group=
    for i in \$(seq $mtty); do
        uuid=\$(cat /proc/sys/kernel/random/uuid)
        echo \$uuid >\$types/mtty-1/create || setup_failed "create mtty \$i"
        d=/sys/bus/mdev/devices/\$uuid
        cdev=\$(cdev_of \$d) || setup_failed "no /dev/vfio/devices/vfioN for mtty \$uuid"
        group=/dev/vfio/\$(basename \$(readlink \$d/iommu_group))
        [ -c \$group ] || setup_failed "no \$group for mtty \$uuid"
        uuids="\$uuids\${uuids:+ }\$uuid"
        mtty_cdev="\$mtty_cdev\${mtty_cdev:+ }\$cdev"
        mtty_group="\$mtty_group\${mtty_group:+ }\$group"
    done
    export SWIFT_VFIO_MTTY="\$uuids" SWIFT_VFIO_MTTY_CDEV="\$mtty_cdev" SWIFT_VFIO_MTTY_GROUP="\$mtty_group"
fi

# The program. Its status goes to the host; then power off (panic=-1 and -no-reboot
# make QEMU exit even if poweroff failed and init died).
export LD_LIBRARY_PATH='$libdirs'
$command_line
report "EXIT_STATUS=\$?"
poweroff -f
EOF
chmod +x "$root/init"

(cd "$root" && find . -print0 | cpio --quiet -o -0 -H newc -R 0:0) >"$tmp/initramfs.cpio"

# --- Boot --------------------------------------------------------------------------

# The command line of kvm-guest.md: TCG (no usable KVM here); q35 with an Intel IOMMU
# with interrupt remapping (VFIO_SET_IOMMU fails without it) and caching mode; edu
# behind a root port (so it gets a bus reset); no_timer_check against spurious
# "timer doesn't work" panics on a loaded host.
# (The custom kernel is built without CPU mitigations and would print a warning about
# mitigations=off; it has the Intel IOMMU on by default, intel_iommu=on is harmless.)
mitigations=' mitigations=off'
[ "$kernel_kind" = debian ] || mitigations=
append="console=ttyS0 panic=-1 rdinit=/init$mitigations no_timer_check quiet intel_iommu=on"
: >"$tmp/status"
timeout -k 5 "$timeout" qemu-system-x86_64 \
    -nodefaults -no-user-config -display none -no-reboot -m 1024 -smp 1 \
    -accel tcg -machine q35 -device intel-iommu,intremap=on,caching-mode=on \
    -device pcie-root-port,id=rp1,chassis=1 -device edu,bus=rp1 \
    -kernel "$kernel" -initrd "$tmp/initramfs.cpio" \
    -serial stdio -serial "file:$tmp/status" \
    -append "$append" \
    </dev/null &
qemu_pid=$!
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=

# --- Result ------------------------------------------------------------------------

status=$(tr -d '\r' <"$tmp/status")
value() { sed -n "s/^$1=//p" <<<"$status" | tail -n1; }
if [ -n "$(value EXIT_STATUS)" ]; then
    exit "$(value EXIT_STATUS)"
elif [ -n "$(value SETUP_FAILED)" ]; then
    fail "guest setup failed: $(value SETUP_FAILED)"
elif [ "$qemu_status" = 124 ]; then
    log "timeout: no exit status after ${timeout}s ($( [ -n "$(value BOOTED)" ] && echo "guest booted, program still running" || echo "guest never reached /init"))"
    exit 124
else
    fail "guest reported no exit status (qemu exited with $qemu_status; $( [ -n "$(value BOOTED)" ] && echo "guest booted" || echo "guest never reached /init"))"
fi
