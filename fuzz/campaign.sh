#!/usr/bin/env bash
# Runs the fuzz targets one after the other, each for SECONDS (default 720), at the lowest CPU
# priority, from the committed seeds plus what earlier campaigns found (fuzz/work/<target>).
# Build first: RUSTC_BOOTSTRAP=1 cargo fuzz build -s none   (stable toolchain; see README.md)
# Logs: fuzz/work/logs/<target>.log; crashers: fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"
secs=${SECONDS_PER_TARGET:-720}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(tracker analyze decode capture)
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p work/logs
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    extra=()
    case $t in
        capture | analyze) extra=(-dict=capture.dict -max_len=65536) ;;
        *) extra=(-max_len=8192) ;;
    esac
    nice -n 19 "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" "work/$t" "corpus/$t" \
        >"work/logs/$t.log" 2>&1
    echo "$t: exit $?" >>work/logs/summary.txt
done
