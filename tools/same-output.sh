#!/usr/bin/env bash
# Runs two ctreplay binaries over every fixture capture and every capture of the shared corpus
# with several option sets, and lists the runs whose output (stdout and exit code) differs.
# For changes that must not change any output (speed work): run it with the binary of the
# commit before and the new one.
#
#   tools/same-output.sh OLD_BINARY NEW_BINARY [CORPUS_DIR]
#
# Exit status: 0 every run printed the same, 1 some differ (listed), 2 usage.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    echo "usage: $0 OLD_BINARY NEW_BINARY [CORPUS_DIR]" >&2
    exit 2
fi
old=$1
new=$2
corpus=${3:-../shared/corpus}

# Each line is one option set, split on spaces.
option_sets=(
    "--format jsonl"
    "--format jsonl --all"
    "--format markdown --kernel 2.6.18 --timing back-to-back"
    "--format table --threads 3 --sysctl nf_conntrack_max=5"
    "--format json --kernel latest --threads 2 --sysctl nf_conntrack_tcp_be_liberal=1"
    "--format jsonl --vantage forward --truncated skip --threads 2"
)

captures=()
while IFS= read -r -d '' f; do captures+=("$f"); done < <(
    find fixtures "$corpus" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' -o -name '*.pcap.gz' \) -print0 2>/dev/null | sort -z)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
runs=0
differ=0
for capture in "${captures[@]}"; do
    for options in "${option_sets[@]}"; do
        # shellcheck disable=SC2086 # the option set is split on purpose
        "$old" analyze $options "$capture" >"$out/old" 2>"$out/old.err"
        old_rc=$?
        # shellcheck disable=SC2086
        "$new" analyze $options "$capture" >"$out/new" 2>"$out/new.err"
        new_rc=$?
        runs=$((runs + 1))
        if [ "$old_rc" != "$new_rc" ] || ! cmp -s "$out/old" "$out/new"; then
            differ=$((differ + 1))
            echo "differs: $capture ($options): exit $old_rc -> $new_rc"
        fi
    done
done
echo "${#captures[@]} captures x ${#option_sets[@]} option sets: $runs runs, $differ differ"
[ "$differ" = 0 ]
