#!/usr/bin/env bash
# Replays the shared corpus through the live kernel (ct-oracle) under one sysctl variant and
# writes the kernel's answer for every TCP packet, compactly, to
# fixtures/corpus-oracle/<variant>.tsv.gz (columns: capture, 0-based index, verdict, reason).
#
# Usage (root, nftables, iproute2):  tools/oracle-corpus.sh VARIANT ORACLE-OPTIONS...
#   tools/oracle-corpus.sh be_liberal --be-liberal 1
set -euo pipefail
cd "$(dirname "$0")/.."
variant=$1; shift
oracle=../shared/tools/ct-oracle/ct-oracle
corpus=../shared/corpus
out=fixtures/corpus-oracle/$variant.tsv
mkdir -p fixtures/corpus-oracle
: > "$out.tmp"
tail -n +2 "$corpus/MANIFEST.tsv" | cut -f1 | while read -r f; do
    "$oracle" --tcp-only --no-ct-state "$@" "$corpus/$f" 2>/dev/null | python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    d = json.loads(line)
    if d.get("summary"):
        if d.get("kernel"): print("#kernel\t" + d["kernel"])
        continue
    if d.get("proto") != "tcp": continue
    print("%s\t%d\t%s\t%s" % (name, d["index"], d["verdict"], d.get("reason") or ""))
' "$f" >> "$out.tmp" || true
done
# One kernel line at the top, then the answers.
{ grep -m1 '^#kernel' "$out.tmp" || true; grep -v '^#kernel' "$out.tmp"; } | gzip -9n > "$out.gz"
rm -f "$out.tmp"
echo "wrote $out.gz ($(zcat "$out.gz" | wc -l) lines)"
