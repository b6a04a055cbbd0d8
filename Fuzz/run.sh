#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 30) from the seed corpus in
# Fuzz/corpus/<target>/ (new inputs go to .build-fuzz/corpus/<target>/, not into the
# repository). Fails when a target crashes, leaks or times out; the input that did it is
# left as .build-fuzz/artifacts/<target>/crash-* (replay: .build-fuzz/<target> FILE).
#
#   Fuzz/run.sh [SECONDS] [TARGET...]
#
# FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS="-seed=1 -runs=100000" for a run that
# repeats exactly (CI uses that, so that it tests what was checked before landing).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
if [ $# -eq 0 ]; then targets=(ServerMessages CapabilityChain NVMeController); else targets=("$@"); fi
out=${FUZZ_BUILD:-$(pwd)/.build-fuzz}

Fuzz/build.sh "${targets[@]}"
status=0
for target in "${targets[@]}"; do
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
    echo "== fuzz $target for ${seconds}s"
    # -timeout: one input may not take more than 10 s; -rss_limit_mb: nor 2 GiB.
    if ! "$out/$target" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$out/artifacts/$target/" ${FUZZ_ARGS:-} \
            "$out/corpus/$target" "Fuzz/corpus/$target" 2>"$out/$target.log"; then
        status=1
        echo "!! $target failed; log: $out/$target.log"
        tail -40 "$out/$target.log"
    else
        grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$out/$target.log" || true
    fi
done
exit $status
