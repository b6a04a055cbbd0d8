#!/usr/bin/env bash
# Builds the libFuzzer targets (Docs/Testing.md, "Fuzzing") into .build-fuzz/: the Sources/ modules
# they need, compiled with swiftc directly (SwiftPM would add its own main to executables
# and instrument the test targets too), each with -sanitize=fuzzer,address; CVFIO with
# clang -fsanitize=fuzzer-no-link,address.
#
#   Fuzz/build.sh            # every target
#   Fuzz/build.sh CapabilityChain
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${FUZZ_BUILD:-$root/.build-fuzz}
mkdir -p "$out/obj" "$out/modules" "$out/CVFIO"
if [ $# -eq 0 ]; then targets=(ServerMessages CapabilityChain NVMeController); else targets=("$@"); fi

export PATH="/opt/swift/usr/bin:$PATH"
swiftc=${SWIFTC:-swiftc}
clang=${CLANG:-clang}
opt=${FUZZ_OPT:--O}
swiftflags=(-sanitize=fuzzer,address -parse-as-library -g "$opt" -swift-version 6 -package-name swift_vfio
            -module-cache-path "$out/module-cache" -I "$out/modules" -I "$out/CVFIO")

# swift-log (VFIOUserServer's Logging): the checkout SwiftPM resolved.
logging=.build/checkouts/swift-log/Sources/Logging
if [[ " ${targets[*]} " == *" ServerMessages "* && ! -d "$logging" ]]; then
    swift package resolve >/dev/null
fi

# Rebuilds a module only when one of its sources is newer than its object.
stale() {   # stale OBJECT SOURCE...
    local object=$1; shift
    [ -f "$object" ] || return 0
    [ -n "$(find "$@" -newer "$object" -print -quit)" ]
}

swift_module() {   # swift_module NAME [-enable-testing] -- SOURCES...
    local name=$1; shift
    local extra=()
    while [ "$1" != "--" ]; do extra+=("$1"); shift; done
    shift
    if stale "$out/obj/$name.o" "$@" "$0"; then
        echo "== swiftc $name"
        "$swiftc" "${swiftflags[@]}" "${extra[@]}" -wmo -module-name "$name" \
            -emit-module -emit-module-path "$out/modules/$name.swiftmodule" \
            -c -o "$out/obj/$name.o" "$@"
    fi
}

# CVFIO: C, with a module map for Swift.
cat >"$out/CVFIO/module.modulemap" <<MAP
module CVFIO {
    header "$root/Sources/CVFIO/include/cvfio.h"
    export *
}
MAP
cvfio_objects=()
for c in Sources/CVFIO/*.c; do
    o="$out/obj/CVFIO-$(basename "$c" .c).o"
    if stale "$o" "$c" Sources/CVFIO/include Sources/CVFIO/*.h; then
        echo "== clang $c"
        "$clang" -fsanitize=fuzzer-no-link,address -g -O1 -I Sources/CVFIO/include -c "$c" -o "$o"
    fi
    cvfio_objects+=("$o")
done

sources() { find "$1" -name '*.swift' | sort; }

mapfile -t vfio < <(sources Sources/VFIO)
swift_module VFIO -- "${vfio[@]}"

for target in "${targets[@]}"; do
    case $target in
    CapabilityChain)
        objects=("$out/obj/VFIO.o")
        ;;
    ServerMessages)
        mapfile -t system < <(sources Sources/VFIOSystem)
        mapfile -t kit < <(sources Sources/VFIODeviceKit)
        mapfile -t log < <(sources "$logging")
        mapfile -t wire < <(sources Sources/VFIOUserWire)
        mapfile -t server < <(sources Sources/VFIOUserServer)
        swift_module VFIOSystem -- "${system[@]}"
        swift_module VFIODeviceKit -- "${kit[@]}"
        swift_module Logging -package-name swift_log -swift-version 5 -- "${log[@]}"
        swift_module VFIOUserWire -- "${wire[@]}"
        # -enable-testing: the target drives the server's internal message handling directly.
        swift_module VFIOUserServer -enable-testing -- "${server[@]}"
        objects=("$out/obj/VFIO.o" "$out/obj/VFIOSystem.o" "$out/obj/VFIODeviceKit.o"
                 "$out/obj/Logging.o" "$out/obj/VFIOUserWire.o" "$out/obj/VFIOUserServer.o" "${cvfio_objects[@]}")
        ;;
    NVMeController)
        mapfile -t system < <(sources Sources/VFIOSystem)
        mapfile -t kit < <(sources Sources/VFIODeviceKit)
        mapfile -t nvme < <(sources Sources/NVMe)
        mapfile -t controller < <(sources Sources/NVMeController)
        swift_module VFIOSystem -- "${system[@]}"
        swift_module VFIODeviceKit -- "${kit[@]}"
        swift_module NVMe -- "${nvme[@]}"
        swift_module NVMeController -- "${controller[@]}"
        objects=("$out/obj/VFIO.o" "$out/obj/VFIOSystem.o" "$out/obj/VFIODeviceKit.o"
                 "$out/obj/NVMe.o" "$out/obj/NVMeController.o" "${cvfio_objects[@]}")
        ;;
    *)
        echo "unknown fuzz target $target" >&2; exit 2 ;;
    esac
    mapfile -t main < <(sources "Fuzz/$target")
    if stale "$out/$target" "${main[@]}" "${objects[@]}" "$0"; then
        echo "== link $target"
        # (gold warns about every ASan helper symbol it cannot export: noise.)
        "$swiftc" "${swiftflags[@]}" -module-name "${target}Fuzz" "${main[@]}" "${objects[@]}" -o "$out/$target" \
            2> >(grep -v "Cannot export local symbol" >&2)
    fi
    echo "built $out/$target"
done
