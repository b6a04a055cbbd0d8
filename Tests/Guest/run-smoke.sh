#!/usr/bin/env bash
# Check the guest harness end to end: prepare the cache, compile smoke/vfio_smoke.c,
# run it in the guest through run.sh, and report the result and the wall time.
#
# Usage: Tests/Guest/run-smoke.sh [--cache DIR] [--timeout SECONDS] [--socket SOCKET]
#   (options are passed on to run.sh; --cache also to prepare.sh)
#   --socket SOCKET  run it through run-vfio-user.sh instead, against the vfio-user
#                    server listening on SOCKET (start the server first); prepares
#                    with prepare-qemu11.sh
# Exit status: run.sh's or run-vfio-user.sh's (0 when every VFIO step passed in the
# guest).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SWIFT_VFIO_GUEST_CACHE:-/var/cache/swift-vfio-guest}
run_args=()
runner=run.sh
preparer=prepare.sh
while (($#)); do
    case $1 in
        --cache) cache=$2; run_args+=(--cache "$2"); shift 2 ;;
        --timeout) run_args+=(--timeout "$2"); shift 2 ;;
        --socket) run_args+=(--socket "$2"); runner=run-vfio-user.sh; preparer=prepare-qemu11.sh; shift 2 ;;
        *) echo "run-smoke.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

"$here/$preparer" "$cache"

# The test program is built into a temp dir, never into the repository.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/swift-vfio-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -Wall -Wextra -o "$tmp/vfio_smoke" "$here/smoke/vfio_smoke.c"

start=$(date +%s%N)
status=0
"$here/$runner" "${run_args[@]}" -- "$tmp/vfio_smoke" || status=$?
ms=$((($(date +%s%N) - start) / 1000000))
seconds=$((ms / 1000)).$(printf %03d $((ms % 1000)))
if [ "$status" = 0 ]; then
    echo "run-smoke.sh: PASS (guest run ${seconds}s)"
else
    echo "run-smoke.sh: FAIL with status $status (guest run ${seconds}s)"
fi
exit "$status"
