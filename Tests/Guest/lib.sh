# shellcheck shell=bash disable=SC2034,SC2154  # (sourced: variables cross the boundary)
# Shared by run.sh and run-vfio-user.sh (sourced, not run): the guest kernel (Debian's
# 6.1 from prepare.sh, or the custom 6.12 from build-kernel.sh) and its command line,
# the temp dir and its cleanup, the initramfs (busybox, the vfio modules, PROGRAM with
# its libraries, /init that binds every 1234:11e8 device to vfio-pci, finds their device
# cdevs and creates mtty mdevs on the custom kernel, and reports through the second
# serial port), running QEMU under a timeout, and turning what the guest reported into
# the exit status.
#
# The sourcing script sets `cache`, `kernel_kind` (debian|custom) and `mtty` (a count)
# (and may set `noiommu=1`: the custom kernel in VFIO's no-IOMMU mode, for a guest
# without an IOMMU; run.sh --no-iommu; and `mdpy` and `mbochs`, counts of mediated
# displays) before guest_kernel, `timeout` before guest_run, and runs under `set -euo pipefail`.
# Optional, before guest_initramfs: `guest_need_edu=0` (a guest without an edu device
# is fine; default 1: /init fails without one) and `guest_init_hook` (lines of sh that
# /init runs after the vfio modules and device binding, before PROGRAM; what they
# export reaches PROGRAM; they call setup_failed "WHY" to fail the run as a harness
# failure).
# Messages start with the script's own name.

guest_me=${0##*/}

log() { echo "$guest_me: $*" >&2; }
fail() { log "$*"; exit 125; }
# The comment block at the top of the sourcing script, as help text.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 125; }

# guest_check_cache: the kernel and modules prepare.sh made; sets `guest`.
guest_check_cache() {
    guest=$cache/guest
    [ -f "$guest/READY" ] || fail "$guest is not prepared; run: $(dirname "$0")/prepare.sh $cache"
}

# guest_kernel: check `kernel_kind` and `mtty` (as the options gave them) against the
# cache; set `kernel` (the image QEMU boots) and `guest_append` (its command line).
#   debian: Debian's 6.1 kernel and its vfio modules (prepare.sh; sets `guest`);
#           container/group path only.
#   custom: the 6.12 kernel build-kernel.sh built, everything built in: also iommufd,
#           the device cdev, no-IOMMU mode and the mdev sample mtty. (busybox and QEMU
#           still come from prepare.sh.)
guest_kernel() {
    if ! [[ $mtty =~ ^[0-9]+$ ]] || ((10#$mtty > 24)); then
        fail "--mtty wants a number from 0 to 24, not $mtty"
    fi
    mtty=$((10#$mtty))  # (08 is 8, not an octal error)
    mdpy=${mdpy:-0} mbochs=${mbochs:-0}
    if ! [[ $mdpy =~ ^[0-9]+$ ]] || ((10#$mdpy > 4)); then
        fail "--mdpy wants a number from 0 to 4 (mdpy's limit), not $mdpy"
    fi
    if ! [[ $mbochs =~ ^[0-9]+$ ]] || ((10#$mbochs > 8)); then
        fail "--mbochs wants a number from 0 to 8, not $mbochs"
    fi
    mdpy=$((10#$mdpy)) mbochs=$((10#$mbochs))
    case $kernel_kind in
        debian)
            guest_check_cache
            kernel=$guest/kernel
            ((mtty == 0)) || fail "--mtty needs --kernel custom (Debian's kernels lack the mtty sample)"
            ((mdpy == 0 && mbochs == 0)) || fail "--mdpy and --mbochs need --kernel custom (Debian's kernels lack the samples)"
            ;;
        custom)
            kernel=$cache/kernel-6.12/current/vmlinux
            [ -f "$kernel" ] || fail "no custom kernel in $cache/kernel-6.12; run: $(dirname "$0")/build-kernel.sh $cache"
            ;;
        *) fail "--kernel wants debian or custom, not $kernel_kind" ;;
    esac
    # The kernel command line (kvm-guest.md): intel_iommu=on (Debian leaves the IOMMU
    # off), no_timer_check against spurious "timer doesn't work" panics on a loaded
    # host. The custom kernel is built without CPU mitigations and would print a
    # warning about mitigations=off; it has the Intel IOMMU on by default, so
    # intel_iommu=on is harmless there.
    local mitigations=' mitigations=off'
    [ "$kernel_kind" = debian ] || mitigations=
    guest_append="console=ttyS0 panic=-1 rdinit=/init$mitigations no_timer_check quiet intel_iommu=on"
    # No-IOMMU mode (noiommu=1): the custom kernel (CONFIG_VFIO_NOIOMMU) with vfio's
    # enable_unsafe_noiommu_mode on from boot, so vfio-pci puts a device without an IOMMU
    # into a no-IOMMU group (/dev/vfio/noiommu-N; the kernel taints itself). The caller
    # boots it without the emulated IOMMU.
    if [ "${noiommu:-0}" = 1 ]; then
        [ "$kernel_kind" = custom ] || fail "--no-iommu needs --kernel custom (Debian's kernels lack CONFIG_VFIO_NOIOMMU)"
        guest_append="console=ttyS0 panic=-1 rdinit=/init no_timer_check quiet vfio.enable_unsafe_noiommu_mode=1"
    fi
}

# guest_program PROGRAM: the absolute path of an executable file; sets `program`.
guest_program() {
    program=$(command -v -- "$1") || fail "no such program: $1"
    program=$(realpath -- "$program")
    { [ -f "$program" ] && [ -x "$program" ]; } || fail "not an executable file: $program"
}

# guest_setup: the temp dir `tmp` (initramfs tree in `root`), removed on every path;
# the trap also stops QEMU if we are interrupted while it runs.
guest_setup() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/swift-vfio-guest.XXXXXX")
    qemu_pid=
    trap guest_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    root=$tmp/root
    libdirs=
}
guest_cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}

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

# PROGRAM and ARGS as one line of sh, each word in single quotes ('\'' for a quote).
quote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

# guest_initramfs EXPORTS [COPY]... -- ARGS...: build $tmp/initramfs.cpio holding
# busybox, the modules (Debian's kernel), $program and each COPY (with their
# libraries), and an /init that binds every 1234:11e8 device to vfio-pci, on the custom
# kernel finds their cdevs and creates $mtty mtty mdevs, exports EXPORTS (a line of sh,
# e.g. "FOO=1"; may be empty) and runs $program with ARGS. Call guest_kernel first.
guest_initramfs() {
    local exports=$1 applet busybox a command_line
    shift
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
    while (($#)) && [ "$1" != -- ]; do put_path "$1"; shift; done
    (($#)) && shift

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
edu= edu_cdev= edu_group=
for d in /sys/bus/pci/devices/*; do
    [ "\$(cat \$d/vendor)" = 0x1234 ] && [ "\$(cat \$d/device)" = 0x11e8 ] || continue
    bdf=\${d##*/}
    [ -e \$d/driver ] && echo \$bdf >\$d/driver/unbind
    echo vfio-pci >\$d/driver_override
    echo \$bdf >/sys/bus/pci/drivers_probe
    [ "\$(basename \$(readlink \$d/driver))" = vfio-pci ] || setup_failed "bind \$bdf to vfio-pci"
    edu="\$edu\${edu:+ }\$bdf"
    if [ ${noiommu:-0} = 1 ]; then
        # No IOMMU: vfio-pci made a no-IOMMU group (and, in 6.12, no device cdev).
        group=\$(basename \$(readlink \$d/iommu_group))
        [ -c /dev/vfio/noiommu-\$group ] || setup_failed "no /dev/vfio/noiommu-\$group for \$bdf"
        edu_group="\$edu_group\${edu_group:+ }/dev/vfio/noiommu-\$group"
    elif [ $kernel_kind = custom ]; then
        # The device cdev: /sys/.../vfio-dev/vfioN is /dev/vfio/devices/vfioN (devtmpfs).
        cdev=\$(cdev_of \$d) || setup_failed "no /dev/vfio/devices/vfioN for \$bdf"
        edu_cdev="\$edu_cdev\${edu_cdev:+ }\$cdev"
    fi
done
[ -n "\$edu" ] || [ ${guest_need_edu:-1} = 0 ] || setup_failed "no edu device (1234:11e8)"
export SWIFT_VFIO_GUEST=1 SWIFT_VFIO_KERNEL=$kernel_kind SWIFT_VFIO_EDU="\$edu"${exports:+ $exports}
if [ ${noiommu:-0} = 1 ]; then
    [ "\$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode)" = Y ] || setup_failed "no-IOMMU mode is off"
    export SWIFT_VFIO_NOIOMMU=1 SWIFT_VFIO_EDU_NOIOMMU_GROUP="\$edu_group"
elif [ $kernel_kind = custom ]; then
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

# Mediated displays: mdpy (type mdpy-vga: a 640x480 XRGB8888 framebuffer region) and
# mbochs (type mbochs-small: 4 MiB of video memory, dma-buf planes) mdevs, made as the
# mtty ones; their UUIDs go to SWIFT_VFIO_MDPY and SWIFT_VFIO_MBOCHS.
make_mdevs() {
    local types=/sys/class/mdev_bus/\$1/mdev_supported_types list= uuid i
    [ -d \$types/\$2 ] || setup_failed "no \$types/\$2 (\$1 sample not in this kernel)"
    for i in \$(seq \$3); do
        uuid=\$(cat /proc/sys/kernel/random/uuid)
        echo \$uuid >\$types/\$2/create || setup_failed "create \$1 \$i"
        cdev_of /sys/bus/mdev/devices/\$uuid >/dev/null || setup_failed "no /dev/vfio/devices/vfioN for \$1 \$uuid"
        list="\$list\${list:+ }\$uuid"
    done
    echo "\$list"
}
if [ $mdpy -gt 0 ]; then
    SWIFT_VFIO_MDPY=\$(make_mdevs mdpy mdpy-vga $mdpy) || setup_failed "mdpy mdevs"
    export SWIFT_VFIO_MDPY
fi
if [ $mbochs -gt 0 ]; then
    SWIFT_VFIO_MBOCHS=\$(make_mdevs mbochs mbochs-small $mbochs) || setup_failed "mbochs mdevs"
    export SWIFT_VFIO_MBOCHS
fi

${guest_init_hook:-}

# The program. Its status goes to the host; then power off (panic=-1 and -no-reboot
# make QEMU exit even if poweroff failed and init died).
export LD_LIBRARY_PATH='$libdirs'
$command_line
report "EXIT_STATUS=\$?"
poweroff -f
EOF
    chmod +x "$root/init"

    (cd "$root" && find . -print0 | cpio --quiet -o -0 -H newc -R 0:0) >"$tmp/initramfs.cpio"
}

# --- Boot and result ---------------------------------------------------------------

# guest_run [ENV=VALUE]... QEMU ARGS...: run QEMU (through env, so the assignments
# apply to it) under the timeout, with the second serial port in $tmp/status; sets
# qemu_status. With guest_stderr set to a file, QEMU's stderr also goes there.
guest_run() {
    local tee_pid=
    : >"$tmp/status"
    if [ -n "${guest_stderr:-}" ]; then
        exec 4> >(tee "$guest_stderr" >&2)
        tee_pid=$!
    else
        exec 4>&2
    fi
    timeout -k 5 "$timeout" env "$@" </dev/null 2>&4 &
    qemu_pid=$!
    qemu_status=0
    wait "$qemu_pid" || qemu_status=$?
    qemu_pid=
    # Close our end of tee's pipe and let it finish writing the file.
    exec 4>&-
    if [ -n "$tee_pid" ]; then wait "$tee_pid" 2>/dev/null || true; fi
}

# guest_exit [SUSPECT]: exit with the program's status, or 124 (timeout) / 125 (harness
# failure). SUSPECT, when not empty, is a reason not to trust a status of 0 (e.g. a
# broken device connection the program may not have noticed): 125 instead.
guest_exit() {
    local status suspect=${1:-}
    status=$(tr -d '\r' <"$tmp/status")
    value() { sed -n "s/^$1=//p" <<<"$status" | tail -n1; }
    if [ -n "$(value EXIT_STATUS)" ]; then
        if [ -n "$suspect" ]; then
            [ "$(value EXIT_STATUS)" = 0 ] && fail "the program exited with 0, but $suspect"
            log "(also: $suspect)"
        fi
        exit "$(value EXIT_STATUS)"
    elif [ -n "$(value SETUP_FAILED)" ]; then
        fail "guest setup failed: $(value SETUP_FAILED)"
    elif [ "$qemu_status" = 124 ]; then
        log "timeout: no exit status after ${timeout}s ($( [ -n "$(value BOOTED)" ] && echo "guest booted, program still running" || echo "guest never reached /init"))"
        exit 124
    else
        fail "guest reported no exit status (qemu exited with $qemu_status; $( [ -n "$(value BOOTED)" ] && echo "guest booted" || echo "guest never reached /init"))"
    fi
}
