#!/usr/bin/env bash
# Regenerates fuzz/corpus/<target>/ (the committed seeds) from the fixtures and a few small
# captures of ../shared/corpus (provenance and licences: fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
shared=../../shared/corpus
captures=(../fixtures/example/centos5-reverse-proxy.pcap)
for f in ../fixtures/spec/*.pcap; do
    # t11 is 86 KB of retransmissions: it would slow every execution for little new coverage.
    [[ $f == *t11-* ]] || captures+=("$f")
done
corpus_files=(
    zeek/ip-discarder-truncated-tcp-oob.pcapng
    zeek/ip6-hoa-tcp-good-chksum.pcap
    zeek/ip6-route0-tcp-good-chksum.pcap
    zeek/fragmented-syn.pcap
    zeek/fragmented-4.pcap
    zeek/retransmit-timeout.pcapng
    zeek/vlan-pcp-dei.pcapng
    zeek/issue-32.pcapng
    zeek/ipv6-http-atomic-frag.pcap
    zeek/window-scale-range.pcap
    zeek/option-sack.pcap
    suricata-verify/bug-6887-defrag-ipv4-tcp-syn__frag-ip-tcp-syn.pcap
    suricata-verify/bug-6887-defrag-eth-vlan-ipv4-tcp-syn__frag-eth-vlan-ip-tcp-syn.pcap
    suricata-verify/bug-6887-defrag-ipv6-tcp__frag-ip-tcp.pcap
    suricata-verify/bug-6887-defrag-eth-vlan-ipv6-tcp__frag-eth-vlan-ipv6-tcp.pcap
    suricata-verify/tcp-session-ipv6-decode-malformed__input.pcap
    suricata-verify/ipv6-malformed-fragments-22__frag-22.pcap
    suricata-verify/decode-sll2-01__input.pcap
    tcpdump/bgp-orf.pcapng
    tcpdump/tcp-handshake-nano.pcap
    tcpdump/pptp.pcap
    tcpdump/tcp_rst_diag_payload.pcap
    tcpdump/mptcp-tcprst.pcap
    tcpdump/beep-oobr.pcap
)
if [[ -d $shared ]]; then
    for f in "${corpus_files[@]}"; do captures+=("$shared/$f"); done
else
    echo "warning: $shared not found; seeds from the fixtures only" >&2
fi
rm -rf corpus
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-../target} cargo run --quiet --example make_seeds -- corpus "${captures[@]}"
