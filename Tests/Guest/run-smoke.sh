#!/usr/bin/env bash
# Check the guest harness end to end: prepare the cache, compile the smoke test(s), run
# them in the guest through run.sh (or run-vfio-user.sh), and report the result and the
# wall time.
#
# Usage: Tests/Guest/run-smoke.sh [--cache DIR] [--kernel debian|custom] [--timeout SECONDS]
#            [--socket SOCKET]
#   --kernel debian (default): smoke/vfio_smoke.c (container/group path to edu) on
#       Debian's 6.1 kernel.
#   --kernel custom: builds the 6.12 kernel if not cached (build-kernel.sh; ~7+ min
#       the first time), then runs smoke/vfio_smoke.c and smoke/vfio_cdev_smoke.c
#       (iommufd + device cdev path to edu with DMA; mtty migration) in one guest
#       with three mtty mdevs (run.sh --mtty 3). vfio_cdev_smoke.c is compiled
#       against that kernel's own uapi headers.
#   --socket SOCKET  run it through run-vfio-user.sh instead, against the vfio-user
#       server listening on SOCKET (start the server first); prepares with
#       prepare-qemu11.sh. Combines with --kernel.
#   (--cache and --timeout are passed on to run.sh / run-vfio-user.sh; --cache also to
#   prepare.sh / prepare-qemu11.sh and build-kernel.sh)
# Exit status: run.sh's or run-vfio-user.sh's (0 when every VFIO step passed in the
# guest); 2 for a bad option.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}
kernel=debian
run_args=()
runner=run.sh
preparer=prepare.sh
while (($#)); do
    case $1 in
        --cache) cache=$2; run_args+=(--cache "$2"); shift 2 ;;
        --timeout) run_args+=(--timeout "$2"); shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --socket) run_args+=(--socket "$2"); runner=run-vfio-user.sh; preparer=prepare-qemu11.sh; shift 2 ;;
        *) echo "run-smoke.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case $kernel in
    debian | custom) ;;
    *) echo "run-smoke.sh: --kernel wants debian or custom, not $kernel" >&2; exit 2 ;;
esac

"$here/$preparer" "$cache"

# The test programs are built into a temp dir, never into the repository.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/swift-vfio-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -Wall -Wextra -o "$tmp/vfio_smoke" "$here/smoke/vfio_smoke.c"

case $kernel in
    debian)
        program=("$tmp/vfio_smoke")
        ;;
    custom)
        "$here/build-kernel.sh" "$cache"
        gcc -O2 -Wall -Wextra -I "$cache/kernel-6.12/current/include" \
            -o "$tmp/vfio_cdev_smoke" "$here/smoke/vfio_cdev_smoke.c"
        # Both programs in one guest, one after the other (the group path releases edu
        # before the cdev path opens it).
        cat >"$tmp/smoke.sh" <<SCRIPT
#!/bin/sh
echo "== vfio_smoke (container/group path)"
$tmp/vfio_smoke || exit \$?
echo "== vfio_cdev_smoke (iommufd + device cdev path, mtty migration)"
$tmp/vfio_cdev_smoke
SCRIPT
        chmod +x "$tmp/smoke.sh"
        run_args+=(--kernel custom --mtty 3 --copy "$tmp/vfio_smoke" --copy "$tmp/vfio_cdev_smoke")
        program=("$tmp/smoke.sh")
        ;;
esac

start=$(date +%s%N)
status=0
"$here/$runner" "${run_args[@]}" -- "${program[@]}" || status=$?
ms=$((($(date +%s%N) - start) / 1000000))
seconds=$((ms / 1000)).$(printf %03d $((ms % 1000)))
if [ "$status" = 0 ]; then
    echo "run-smoke.sh: PASS ($kernel kernel, guest run ${seconds}s)"
else
    echo "run-smoke.sh: FAIL with status $status ($kernel kernel, guest run ${seconds}s)"
fi
exit "$status"
