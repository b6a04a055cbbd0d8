#!/usr/bin/env bash
# Run one program inside a throwaway Linux guest (QEMU 11.1, TCG) whose PCI device is
# served over vfio-user: QEMU's vfio-user-pci client connects to the server listening
# on SOCKET, the device sits behind an emulated Intel IOMMU, and every 1234:11e8 device
# (the ids the project's edu model presents) is bound to vfio-pci in the guest. Exit
# with the program's exit status. The server is not started here: start it first.
#
# Usage: Tests/Guest/run-vfio-user.sh [--cache DIR] [--kernel debian|custom] [--mtty N] \
#            [--timeout SECONDS] [--copy PATH]... --socket SOCKET -- PROGRAM [ARGS...]
#   --cache DIR       what prepare.sh and prepare-qemu11.sh (and build-kernel.sh) made
#                     (default: /var/cache/swift-vfio-guest, or $SWIFT_VFIO_GUEST_CACHE)
#   --kernel KIND     the guest kernel, as for run.sh: debian (default) or custom (the
#                     6.12 kernel of build-kernel.sh: iommufd, device cdev, mtty)
#   --mtty N          (custom only) create N mtty mdevs before PROGRAM, as for run.sh
#   --timeout SECS    kill the guest after this long (default 180)
#   --socket SOCKET   the vfio-user server's UNIX socket; waited for (up to 10 s, or the
#                     timeout if shorter) if it does not exist yet
#   --copy PATH       also put PATH into the guest at the same absolute path; repeatable
#   --qemu-arg ARG    one more argument for QEMU (e.g. -trace, vfio_user*); repeatable
#   PROGRAM           as for run.sh: an executable file, put into the guest at the same
#                     absolute path with its libraries, run as root with ARGS, cwd /,
#                     HOME=TMPDIR=/tmp; SWIFT_VFIO_GUEST=1, SWIFT_VFIO_USER=1,
#                     SWIFT_VFIO_KERNEL and SWIFT_VFIO_EDU (the bound devices'
#                     addresses) in its environment, and with --kernel custom (--mtty)
#                     the other variables run.sh lists.
#
# The guest console is streamed to stdout, QEMU's own messages (vfio-user errors) go
# to stderr. Exit status: PROGRAM's; or, when the guest never reported one,
#   124  timeout
#   125  harness failure (cache not prepared, no socket, guest setup failed (e.g. no
#        1234:11e8 device), QEMU or the guest died, the server closed the connection)
# with a message on stderr starting "run-vfio-user.sh:".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cache=${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}
timeout=180
kernel_kind=debian
mtty=0
socket=
copies=()
qemu_args=()

while (($#)); do
    case $1 in
        --cache) cache=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --kernel) kernel_kind=$2; shift 2 ;;
        --mtty) mtty=$2; shift 2 ;;
        --socket) socket=$2; shift 2 ;;
        --copy) copies+=("$2"); shift 2 ;;
        --qemu-arg) qemu_args+=("$2"); shift 2 ;;
        --) shift; break ;;
        -h | --help) usage ;;
        *) log "unknown option $1"; usage ;;
    esac
done
if ! (($#)) || [ -z "$socket" ]; then usage; fi
guest_kernel
q=$cache/qemu11
[ -f "$q/READY" ] || fail "$q is not prepared; run (as root): $here/prepare-qemu11.sh $cache"
qroot=$q/root
qlib=$qroot/usr/lib/x86_64-linux-gnu
guest_program "$1"
shift

# The socket, as an absolute path in JSON (QEMU takes vfio-user-pci's socket only in
# the JSON form of -device).
case $socket in /*) ;; *) socket=$PWD/$socket ;; esac
[[ $socket != *[[:cntrl:]]* ]] || fail "control characters in the socket path"
wait_ms=$((timeout < 10 ? timeout * 1000 : 10000))
for ((waited = 0; ; waited += 100)); do
    [ -S "$socket" ] && break
    ((waited < wait_ms)) || fail "no socket at $socket (is the server running?)"
    sleep 0.1
done
json_socket=${socket//\\/\\\\}
json_socket=${json_socket//\"/\\\"}

guest_setup
guest_initramfs "SWIFT_VFIO_USER=1" "${copies[@]}" -- "$@"

# QEMU 11.1 from the trixie root, started from the host through that root's own
# dynamic loader and libraries. QEMU_MODULE_DIR: its own modules, never the host's
# (another QEMU build, refused). -L: its own firmware (SeaBIOS, PVH and linuxboot option
# ROMs) before the host's.
# Guest RAM is a shared memfd: the only way the server gets it (DMA_MAP carries the
# memfd). intel-iommu comes before the vfio-user device so that the device joins the
# vIOMMU's address space; as in run.sh it has interrupt remapping (VFIO_SET_IOMMU
# fails without it) and caching mode. The device sits behind a PCIe root port, as edu
# does in run.sh. QEMU waits x-msg-timeout (default 5000 ms) for each reply; change it
# with --qemu-arg -global --qemu-arg vfio-user-pci.x-msg-timeout=MS.
guest_stderr=$tmp/qemu.err
guest_run QEMU_MODULE_DIR="$qlib/qemu" \
    "$qlib/ld-linux-x86-64.so.2" --library-path "$qlib" "$qroot/usr/bin/qemu-system-x86_64" \
    -L "$qroot/usr/share/seabios" -L "$qroot/usr/share/qemu" \
    -nodefaults -no-user-config -display none -no-reboot -smp 1 -accel tcg \
    -m 512M -object memory-backend-memfd,id=mem,size=512M,share=on \
    -machine q35,memory-backend=mem \
    -device intel-iommu,intremap=on,caching-mode=on \
    -device pcie-root-port,id=rp1,chassis=1 \
    -device "{\"driver\":\"vfio-user-pci\",\"bus\":\"rp1\",\"socket\":{\"type\":\"unix\",\"path\":\"$json_socket\"}}" \
    -kernel "$kernel" -initrd "$tmp/initramfs.cpio" \
    -serial stdio -serial "file:$tmp/status" \
    -append "$guest_append" \
    "${qemu_args[@]}"

# A server that closed the connection or stopped answering does not stop QEMU: the
# guest reads all ones from the device and QEMU complains on stderr (every such message
# mentions the socket or the reply it waited for), and may abort at power-off. Do not
# let the program's 0 hide that. QEMU's warning that it cannot enable error recovery
# names the socket too, but only says the device has no ERR interrupt (edu is plain PCI,
# as QEMU's own edu is), so it does not count.
suspect=
broken=$(grep -v 'Could not enable error recovery' "$guest_stderr" \
    | grep -m1 -E 'socket|waiting for reply|failed to read header' || true)
if [ -n "$broken" ]; then
    suspect="the vfio-user connection broke: $broken"
elif [ "$qemu_status" != 0 ] && [ "$qemu_status" != 124 ]; then
    suspect="QEMU exited with $qemu_status"
fi
guest_exit "$suspect"
