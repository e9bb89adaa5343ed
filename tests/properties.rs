//! Properties of the tracker and of the whole pipeline, over generated inputs:
//!
//! * the tracker never panics on arbitrary packet sequences, and keeps its table within
//!   `nf_conntrack_max` (the checks of the fuzz harness, which this file includes);
//! * verdicts are deterministic: the same packets give the same verdicts, and the same capture
//!   the same report, byte for byte;
//! * (to come) one thread and many give the same report.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use ctreplay::engine::{self, Settings, Timing, Vantage};
use ctreplay::report::jsonl::JsonLines;
use harness::{OP_LEN, TrackerConfig, TrackerInput, TrackerOp};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Packets in the harness's small space of tuples, sequence numbers and times (so that they meet
/// each other's entries), under any configuration.
fn tracker_input() -> impl Strategy<Value = TrackerInput> {
    (any::<[u8; 2]>(), proptest::collection::vec(any::<[u8; OP_LEN]>(), 0..120)).prop_map(|([a, b], ops)| TrackerInput {
        config: TrackerConfig::from_bytes(a, b),
        ops: ops.iter().map(TrackerOp::from_bytes).collect(),
    })
}

/// Handshake-shaped sequences: a SYN, SYN/ACK and ACK on one tuple, then arbitrary packets on it
/// in either direction with sequence numbers near the handshake's. Purely random packets rarely
/// get past the state table; these reach the window checks.
fn connection_input() -> impl Strategy<Value = TrackerInput> {
    let packet = (any::<bool>(), prop::sample::select(vec![0x02u8, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01]), 0u16..600, 0u16..600, any::<u8>(), 0u8..40, 0u8..8);
    (any::<bool>(), proptest::collection::vec(packet, 0..60)).prop_map(|(liberal, packets)| {
        let op = |reply: bool, flags: u8, seq: u16, ack: u16, window: u8, payload: u8, step: u8| TrackerOp {
            tuple: if reply { [1, 0, 0, 2] } else { [0, 1, 2, 0] },
            flags,
            seq: if reply { 3 << 14 | seq } else { seq },
            ack: if reply { ack } else { 3 << 14 | ack },
            window,
            payload,
            doff_opts: 0,
            wscale_sack: 0,
            sack: 0,
            misc: 0,
            step,
        };
        let mut ops = vec![op(false, 0x02, 100, 0, 255, 0, 0), op(true, 0x12, 100, 101, 255, 0, 1), op(false, 0x10, 101, 101, 255, 0, 1)];
        ops.extend(packets.into_iter().map(|(reply, flags, seq, ack, window, payload, step)| {
            op(reply, flags, seq, ack, window, payload, step % 3)
        }));
        let config = TrackerConfig { be_liberal: liberal, ..TrackerConfig::default() };
        TrackerInput { config, ops }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// No panic, the table within bounds, and every verdict consistent (see `run_tracker`); the
    /// same packets again give the same verdicts.
    #[test]
    fn tracker_never_panics_and_is_deterministic(input in tracker_input()) {
        let first = harness::run_tracker(&input);
        let second = harness::run_tracker(&input);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn tracker_on_real_connections_never_panics_and_is_deterministic(input in connection_input()) {
        let first = harness::run_tracker(&input);
        prop_assert_eq!(first.len(), input.ops.len());
        prop_assert_eq!(first, harness::run_tracker(&input));
    }
}

/// The JSON Lines report of `captures` (every frame, entry snapshots on).
fn report(captures: &[String], settings: &Settings) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = engine::analyze(captures, settings, &mut JsonLines::new(&mut out, true));
    out
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name).to_string_lossy().into_owned()
}

fn settings() -> Settings {
    Settings { vantage: Vantage::Auto, timing: Timing::Capture, snapshots: true, ..Settings::default() }
}

/// The same capture twice gives the same report, byte for byte: over every spec fixture and
/// the example, and over several of them as one capture (the merge).
#[test]
fn the_same_capture_gives_the_same_report() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/spec");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    all.retain(|p| p.extension().is_some_and(|e| e == "pcap"));
    all.sort();
    let mut runs: Vec<Vec<String>> = all.iter().map(|p| vec![p.to_string_lossy().into_owned()]).collect();
    runs.push(vec![fixture("fixtures/example/centos5-reverse-proxy.pcap")]);
    runs.push(all.iter().take(8).map(|p| p.to_string_lossy().into_owned()).collect());
    for captures in runs {
        let first = report(&captures, &settings());
        assert!(!first.is_empty());
        assert_eq!(first, report(&captures, &settings()), "{captures:?}");
    }
}

/// The example capture with a few bytes overwritten (`edits`: where, and the new value).
fn damaged(edits: Vec<(prop::sample::Index, u8)>) -> tempfile::NamedTempFile {
    let mut bytes = std::fs::read(fixture("fixtures/example/centos5-reverse-proxy.pcap")).unwrap();
    for (at, value) in edits {
        let i = at.index(bytes.len());
        bytes[i] = value;
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &bytes).unwrap();
    file
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Damaged captures too: whatever the damage, two runs agree byte for byte.
    #[test]
    fn a_damaged_capture_gives_the_same_report(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let file = damaged(edits);
        let captures = vec![file.path().to_string_lossy().into_owned()];
        prop_assert_eq!(report(&captures, &settings()), report(&captures, &settings()));
    }

    /// One tracker thread and four give the same report, byte for byte, whatever the damage
    /// (errors mid-file included; undamaged captures are compared in tests/threads.rs), with the
    /// older kernels compared as the command line does by default.
    #[test]
    fn one_thread_and_four_agree_on_a_damaged_capture(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let file = damaged(edits);
        let captures = vec![file.path().to_string_lossy().into_owned()];
        let mut one = settings();
        one.compare_with_other_kernels();
        let four = Settings { threads: 4, ..one.clone() };
        prop_assert_eq!(report(&captures, &one), report(&captures, &four));
    }
}
