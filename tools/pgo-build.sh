#!/usr/bin/env bash
# Builds a profile-guided (PGO) release binary of ctreplay: target/pgo/ctreplay.
#
# 1. builds ctreplay instrumented to count its branches and calls;
# 2. runs it on a training workload: every command over the bundled fixtures, and analyze on
#    128 MiB synthetic captures of each kind the benchmark measures (from another seed than the
#    measured captures: `cargo run --release --example bench -- --training`);
# 3. builds ctreplay again, letting the compiler lay out and inline the code by those counts.
#
# The binary behaves exactly as `cargo build --release`'s (same code, same tests; check with
# tools/same-output.sh); it is faster, ~10 % on the benchmark (docs/performance.md, session 10).
# It needs llvm-profdata of the LLVM that rustc uses: `rustup component add llvm-tools`, or an
# `llvm-profdata-N` on the PATH for LLVM major version N. Takes ~3 minutes on two cores.
#
#   tools/pgo-build.sh
#
# Exit status: 0 built, 1 a step failed, 2 no suitable llvm-profdata.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
    profdata=$(command -v "llvm-profdata-$llvm_major" || true)
fi
if [ -z "$profdata" ] || [ ! -x "$profdata" ]; then
    echo "pgo-build: needs llvm-profdata for LLVM $llvm_major (rustc's):" \
        "rustup component add llvm-tools" >&2
    exit 2
fi

work=$PWD/target/pgo
rm -rf "$work/profiles"
mkdir -p "$work/profiles"

echo "pgo-build: 1/3 instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$work/profiles" CARGO_TARGET_DIR="$work/instrumented" \
    cargo build --release --quiet --bin ctreplay
instrumented=$work/instrumented/release/ctreplay

echo "pgo-build: 2/3 training run" >&2
# ctreplay exits 1 on INVALID packets and 2 on the fixtures of bad input (and `explain` on a
# first frame that is not TCP): both are part of the workload. Any other status is a crash.
train() {
    local status=0
    "$instrumented" "$@" >/dev/null 2>&1 || status=$?
    if [ "$status" -gt 2 ]; then
        echo "pgo-build: ctreplay $* exited with status $status" >&2
        exit 1
    fi
}
train check fixtures
while IFS= read -r capture; do
    train analyze "$capture"
    train analyze --format json --all --threads 2 "$capture"
    train analyze --format markdown --kernel 2.6.18 "$capture"
    train explain --frame 1 "$capture"
    train whatif "$capture"
done < <(find fixtures -name '*.pcap' -o -name '*.pcapng' | sort)
# The bulk of the counts: large captures analysed with one kernel, on one and two threads, the
# runs that have to be fast. (Training the default run, six kernels, on them too was slower on
# both kinds of run; the fixtures above train its code.)
# Written afresh each time, so that they follow the generator.
rm -rf "$work/training"
while IFS= read -r capture; do
    for threads in 1 2; do
        train analyze --kernel latest --threads "$threads" "$capture"
    done
done < <(cargo run --release --quiet --example bench -- --training "$work/training")
"$profdata" merge -o "$work/ctreplay.profdata" "$work/profiles"

echo "pgo-build: 3/3 optimised build" >&2
RUSTFLAGS="-Cprofile-use=$work/ctreplay.profdata" CARGO_TARGET_DIR="$work/optimised" \
    cargo build --release --quiet --bin ctreplay
cp "$work/optimised/release/ctreplay" "$work/ctreplay"
echo "$work/ctreplay"
