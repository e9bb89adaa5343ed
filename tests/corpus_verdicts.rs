//! Differential test: every TCP packet of the shared real-capture corpus gets the same `ct state`
//! and the same kernel log line(s) as the live kernel gave it (`../shared/corpus-kernel-verdicts`,
//! kernel 6.18.44, default sysctls, every packet at PRE_ROUTING).
//!
//! Runs when `../shared` is present next to the crate; prints a note and passes otherwise.

mod common;

use common::{compare_with_oracle, corpus_dir};

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
    assert!(report.mismatches.is_empty(), "{}", report.describe_mismatches(40));
}
