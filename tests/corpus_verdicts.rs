//! Differential test: every TCP packet of the shared real-capture corpus gets the same `ct state`,
//! the same kernel log line(s) and the same entry afterwards (TCP state, status bits, window
//! scales, per-direction flags, timeout) as the live kernel gave it
//! (`../shared/corpus-kernel-verdicts`: kernel 6.18.44, default sysctls, every packet at
//! PRE_ROUTING, back to back), and under five other sysctl settings (`fixtures/corpus-oracle`).
//!
//! Runs when `../shared` is present next to the crate; prints a note and passes otherwise.

mod common;

use common::{compare_with_oracle, corpus_dir, Comparison};

/// Packets where the oracle's replay, not the kernel, differs from the capture: the oracle
/// remaps addresses and patches TCP checksums incrementally, and in these cases it cannot.
/// Each is explained in `docs/oracle-differences.md`.
const ORACLE_ARTEFACTS: &[(&str, u64)] = &[
    // The TCP checksum lies in the third IPv4 fragment, which the oracle does not patch.
    ("suricata-verify/bug-6887-defrag-eth-vlan-ipv4-tcp-syn__frag-eth-vlan-ip-tcp-syn.pcap", 3),
    ("suricata-verify/bug-6887-defrag-ipv4-tcp-syn__frag-ip-tcp-syn.pcap", 3),
    // IPv6 routing header: the oracle assumes the checksum covers the final destination; this
    // one covers the header's destination, which is what Linux verifies.
    ("zeek/ip6-route0-tcp-bad-chksum.pcap", 1),
];

fn assert_only_artefacts(report: &Comparison) {
    let found: Vec<(String, u64)> = report.mismatches.iter().map(|m| (m.file.clone(), m.frame)).collect();
    let expected: Vec<(String, u64)> = ORACLE_ARTEFACTS.iter().map(|(f, n)| (f.to_string(), *n)).collect();
    assert!(found == expected, "{}", report.describe_mismatches(40));
}

#[test]
fn corpus_matches_the_live_kernel_packet_by_packet() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("note: ../shared/corpus not found; corpus differential test not run");
        return;
    };
    let verdicts = corpus.parent().unwrap().join("corpus-kernel-verdicts");
    let report = compare_with_oracle(&corpus, &verdicts, &[]);
    eprintln!("{}", report.summary());
    assert!(report.files > 300, "the corpus should hold ~350 captures, found {}", report.files);
    assert!(report.compared > 15_000, "too few TCP packets compared: {}", report.compared);
    assert_only_artefacts(&report);
}

/// The corpus under other sysctls, against the kernel's answers recorded with
/// `tools/oracle-corpus.sh` (kernel version in the first line of each file).
#[test]
fn corpus_matches_the_live_kernel_under_other_sysctls() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("note: ../shared/corpus not found; corpus differential test not run");
        return;
    };
    let answers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus-oracle");
    let variants: &[(&str, &str)] = &[
        ("be_liberal", "nf_conntrack_tcp_be_liberal=1"),
        ("loose0", "nf_conntrack_tcp_loose=0"),
        ("ignore_invalid_rst", "nf_conntrack_tcp_ignore_invalid_rst=1"),
        ("checksum0", "nf_conntrack_checksum=0"),
        ("max_retrans1", "nf_conntrack_tcp_max_retrans=1"),
    ];
    for (variant, sysctl) in variants {
        let file = answers.join(format!("{variant}.tsv.gz"));
        let report = common::compare_with_compact_answers(&corpus, &file, &[sysctl]);
        eprintln!("{variant}: {}", report.summary());
        assert!(report.compared > 15_000, "{variant}: too few TCP packets compared: {}", report.compared);
        if *variant == "checksum0" {
            // With checksums unchecked, the oracle's patching artefacts cannot show.
            assert!(report.mismatches.is_empty(), "{variant}: {}", report.describe_mismatches(40));
        } else {
            assert_only_artefacts(&report);
        }
    }
}
