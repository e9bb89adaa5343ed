//! Every input a fuzz campaign ever crashed, hung or ran out of memory on, replayed through the
//! same harness that found it, in a plain `cargo test` (no libFuzzer, no nightly flags), so CI
//! keeps them fixed.
//!
//! The harnesses are `fuzz/src/lib.rs`, included here as a module; the inputs are
//! `fuzz/regressions/<target>/*`. To add one: copy the artifact libFuzzer wrote
//! (`fuzz/artifacts/<target>/crash-…`) into `fuzz/regressions/<target>/` under a name that says
//! what it was, fix the bug, and see this test pass.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::fs;
use std::path::Path;

/// A fuzz target's harness.
type Harness = fn(&[u8]);

/// Replays every file of `fuzz/regressions/<target>/` through `run`; a panic names the file.
fn replay(target: &str, run: Harness) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    for path in &files {
        let data = fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} regression {} fails again", path.display());
    }
    files.len()
}

/// Every fuzz target with its harness.
const TARGETS: [(&str, Harness); 4] = [
    ("capture", harness::capture),
    ("decode", harness::decode),
    ("analyze", harness::analyze),
    ("tracker", harness::tracker),
];

/// Every target's regressions (a target that never failed has none yet).
#[test]
fn regressions_stay_fixed() {
    let replayed: usize = TARGETS.iter().map(|&(target, run)| replay(target, run)).sum();
    assert!(replayed > 0, "no regression input found under fuzz/regressions");
}

/// The committed seeds too: they are real captures in each target's framing, so this is a quick
/// end-to-end check that the harnesses still accept what the campaigns start from.
#[test]
fn seeds_run_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, run) in TARGETS {
        let seeds: Vec<_> = fs::read_dir(root.join(target)).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(!seeds.is_empty(), "no seeds for {target} under fuzz/corpus");
        for path in seeds {
            run(&fs::read(&path).unwrap());
        }
    }
}

#[test]
fn tracker_input_round_trips() {
    use arbitrary::{Arbitrary, Unstructured};
    let bytes: Vec<u8> = (0..2 + 5 * harness::OP_LEN).map(|i| (i * 37 + 11) as u8).collect();
    let input = harness::TrackerInput::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
    assert_eq!(input.ops.len(), 5);
    let again = harness::TrackerInput::arbitrary(&mut Unstructured::new(&input.to_bytes())).unwrap();
    assert_eq!(input, again, "the seed encoder and the harness disagree");
}
