//! The two sides of a fixture check: what the expectation file says of its frames, and what
//! ctreplay says now ([`Got`], collected by a sink), compared frame by frame and printed for a
//! person.

use super::expect::{FrameExpectation, quote};
use crate::capture::CaptureError;
use crate::engine::{Observation, Sink};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;

/// What ctreplay says now about the frames that matter to a fixture: every notable frame, and
/// every frame the expectation lists (so a listed frame that stopped being notable is seen).
#[derive(Debug, Default)]
pub struct Got {
    /// By frame number: the outcome, and the flow for messages.
    pub frames: BTreeMap<u64, (FrameExpectation, Option<String>)>,
    /// Frames in the capture.
    pub total_frames: u64,
    /// Input errors: the capture could not be read whole.
    pub errors: Vec<String>,
}

/// The sink that fills a [`Got`].
pub struct Collect<'a> {
    listed: &'a BTreeSet<u64>,
    pub got: Got,
}

impl<'a> Collect<'a> {
    /// `listed`: the frames the expectation names.
    pub fn new(listed: &'a BTreeSet<u64>) -> Self {
        Collect { listed, got: Got::default() }
    }
}

impl Sink for Collect<'_> {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        let v = &obs.verdict;
        let n = obs.frame.number;
        self.got.total_frames = self.got.total_frames.max(n);
        if v.is_notable() || self.listed.contains(&n) {
            let outcome = FrameExpectation {
                frame: n,
                ct_state: v.ct_state,
                verdict: v.action,
                reason: v.reason.as_ref().map(|r| r.id),
                kernel_log: v.kernel_log(),
            };
            self.got.frames.insert(n, (outcome, obs.segment.map(|s| s.tuple.to_string())));
        }
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.got.errors.push(err.to_string());
        Ok(())
    }
}

/// One frame on which expectation and result disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameDiff {
    /// Listed, and ctreplay now says something else (perhaps no longer notable).
    Changed { expected: FrameExpectation, got: FrameExpectation, flow: Option<String> },
    /// Notable now, not listed.
    New { got: FrameExpectation, flow: Option<String> },
    /// Listed, but the capture has no such frame.
    Missing { expected: FrameExpectation },
}

impl FrameDiff {
    pub fn frame(&self) -> u64 {
        match self {
            FrameDiff::Changed { expected, .. } | FrameDiff::Missing { expected } => expected.frame,
            FrameDiff::New { got, .. } => got.frame,
        }
    }
}

/// The frames that differ, in frame order.
pub fn compare(expected: &[FrameExpectation], got: &Got) -> Vec<FrameDiff> {
    let listed: BTreeMap<u64, &FrameExpectation> = expected.iter().map(|e| (e.frame, e)).collect();
    let frames: BTreeSet<u64> = listed.keys().chain(got.frames.keys()).copied().collect();
    frames
        .into_iter()
        .filter_map(|n| match (listed.get(&n), got.frames.get(&n)) {
            (Some(e), Some((g, _))) if *e == g => None,
            (Some(e), Some((g, flow))) => Some(FrameDiff::Changed { expected: (*e).clone(), got: g.clone(), flow: flow.clone() }),
            (Some(e), None) => Some(FrameDiff::Missing { expected: (*e).clone() }),
            (None, Some((g, flow))) => Some(FrameDiff::New { got: g.clone(), flow: flow.clone() }),
            (None, None) => None,
        })
        .collect()
}

/// The new list of frames for `--bless`: every notable frame, and every frame the old
/// expectation listed that the capture still has (a file that lists every frame keeps doing so).
pub fn blessed_frames(expected: &[FrameExpectation], got: &Got) -> Vec<FrameExpectation> {
    let listed: BTreeSet<u64> = expected.iter().map(|e| e.frame).collect();
    got.frames.values().filter(|(g, _)| g.is_notable() || listed.contains(&g.frame)).map(|(g, _)| g.clone()).collect()
}

/// Frames printed per fixture; a change that breaks one thing usually breaks it everywhere.
pub const MAX_FRAMES_SHOWN: usize = 50;

/// The differences for a person, indented under the fixture's name:
///
/// ```text
///   frame 12 (10.0.0.1:40000>10.0.0.2:80)
///     ct_state    expected invalid, got established
///     reason      expected syn-meets-reversed-entry, got none
///   frame 15 (10.0.0.2:80>10.0.0.1:40000): notable now, not in the expectation
///     got invalid/invalid invalid-rst "nf_ct_proto_6: invalid rst"
/// ```
pub fn render(diffs: &[FrameDiff], total_frames: u64) -> String {
    let mut s = String::new();
    for d in diffs.iter().take(MAX_FRAMES_SHOWN) {
        let head = |flow: &Option<String>| match flow {
            Some(f) => format!("  frame {} ({f})", d.frame()),
            None => format!("  frame {}", d.frame()),
        };
        match d {
            FrameDiff::Changed { expected, got, flow } => {
                let note = if got.is_notable() { "" } else { ": no longer notable" };
                let _ = writeln!(s, "{}{note}", head(flow));
                field(&mut s, "ct_state", expected.ct_state.as_str(), got.ct_state.as_str());
                field(&mut s, "verdict", expected.verdict.as_str(), got.verdict.as_str());
                let reason = |f: &FrameExpectation| f.reason.map_or("none", |r| r.as_str());
                field(&mut s, "reason", reason(expected), reason(got));
                let log = |f: &FrameExpectation| f.kernel_log.as_deref().map_or("none".into(), quote);
                field(&mut s, "kernel_log", &log(expected), &log(got));
            }
            FrameDiff::New { got, flow } => {
                let _ = writeln!(s, "{}: notable now, not in the expectation", head(flow));
                let _ = writeln!(s, "    got {}", got.describe());
            }
            FrameDiff::Missing { expected } => {
                let _ = writeln!(s, "{}: in the expectation, but the capture has only {total_frames} frames", head(&None));
                let _ = writeln!(s, "    expected {}", expected.describe());
            }
        }
    }
    if diffs.len() > MAX_FRAMES_SHOWN {
        let _ = writeln!(s, "  … and {} more frames", diffs.len() - MAX_FRAMES_SHOWN);
    }
    s
}

/// One line per field that differs; fields that agree are left out.
fn field(s: &mut String, name: &str, expected: &str, got: &str) {
    if expected != got {
        let _ = writeln!(s, "    {name:<11} expected {expected}, got {got}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::state::{Dir, TcpState};
    use crate::report::test_support::TestFrame;
    use crate::verdict::{Action, CreatedBy, CtState, ReasonId};

    const REVERSED: &str = "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED";

    fn collect(listed: &[u64], frames: &[TestFrame]) -> Got {
        let listed: BTreeSet<u64> = listed.iter().copied().collect();
        let mut c = Collect::new(&listed);
        for f in frames {
            c.packet(&f.obs()).unwrap();
        }
        c.got
    }

    fn expect(frame: u64, ct_state: CtState, verdict: Action, reason: Option<ReasonId>, log: Option<&str>) -> FrameExpectation {
        FrameExpectation { frame, ct_state, verdict, reason, kernel_log: log.map(String::from) }
    }

    fn capture() -> Vec<TestFrame> {
        vec![
            TestFrame::tcp(1, ".").reversed(),
            TestFrame::tcp(2, "S").invalid(ReasonId::SynMeetsReversedEntry, &[REVERSED]).entry(1, CreatedBy::Pickup, Dir::Reply, TcpState::Established),
            TestFrame::tcp(3, "S"),
            TestFrame::tcp(4, "R").reversed().invalid(ReasonId::InvalidRst, &["nf_ct_proto_6: invalid rst"]),
        ]
    }

    #[test]
    fn collects_notable_and_listed_frames() {
        let got = collect(&[3], &capture());
        assert_eq!(got.frames.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(got.total_frames, 4);
        let (f2, flow) = &got.frames[&2];
        assert_eq!(f2, &expect(2, CtState::Invalid, Action::Invalid, Some(ReasonId::SynMeetsReversedEntry), Some(REVERSED)));
        assert_eq!(flow.as_deref(), Some("10.0.0.1:40000>10.0.0.2:80"));
        assert!(!got.frames[&3].0.is_notable());
    }

    #[test]
    fn agreement_is_no_diff() {
        let got = collect(&[], &capture());
        let expected: Vec<_> = got.frames.values().map(|(f, _)| f.clone()).collect();
        assert_eq!(compare(&expected, &got), vec![]);
        assert_eq!(blessed_frames(&expected, &got), expected);
    }

    #[test]
    fn every_kind_of_difference_rendered() {
        let expected = vec![
            // frame 2 is expected accepted: the result is INVALID now (a field-wise diff)
            expect(2, CtState::New, Action::Accept, None, None),
            // frame 3 was INVALID and is not notable any more
            expect(3, CtState::Invalid, Action::Invalid, Some(ReasonId::InvalidNew), Some("nf_ct_proto_6: invalid new")),
            // frame 4 agrees
            expect(4, CtState::Invalid, Action::Invalid, Some(ReasonId::InvalidRst), Some("nf_ct_proto_6: invalid rst")),
            // frame 9 is not in the capture
            expect(9, CtState::Invalid, Action::Invalid, Some(ReasonId::PickupDisabled), None),
        ];
        let mut frames = capture();
        frames.push(TestFrame::tcp(5, "P.").ignored(ReasonId::SeqOvershootIgnored, &[]));
        let got = collect(&[2, 3, 4, 9], &frames);
        let diffs = compare(&expected, &got);
        assert_eq!(diffs.iter().map(FrameDiff::frame).collect::<Vec<_>>(), [2, 3, 5, 9]);
        assert_eq!(
            render(&diffs, got.total_frames),
            r#"  frame 2 (10.0.0.1:40000>10.0.0.2:80)
    ct_state    expected new, got invalid
    verdict     expected accept, got invalid
    reason      expected none, got syn-meets-reversed-entry
    kernel_log  expected none, got "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED"
  frame 3 (10.0.0.1:40000>10.0.0.2:80): no longer notable
    ct_state    expected invalid, got established
    verdict     expected invalid, got accept
    reason      expected invalid-new, got none
    kernel_log  expected "nf_ct_proto_6: invalid new", got none
  frame 5 (10.0.0.1:40000>10.0.0.2:80): notable now, not in the expectation
    got established/ignore seq-overshoot-ignored
  frame 9: in the expectation, but the capture has only 5 frames
    expected invalid/invalid pickup-disabled
"#
        );

        // bless: the notable frames, plus the listed frames the capture still has
        let frames: Vec<u64> = blessed_frames(&expected, &got).iter().map(|f| f.frame).collect();
        assert_eq!(frames, [2, 3, 4, 5]);
    }

    #[test]
    fn long_diffs_are_cut() {
        let frames: Vec<TestFrame> = (1..=60).map(|n| TestFrame::tcp(n, "R").invalid(ReasonId::InvalidRst, &[])).collect();
        let got = collect(&[], &frames);
        let diffs = compare(&[], &got);
        let text = render(&diffs, got.total_frames);
        assert_eq!(text.matches("notable now").count(), MAX_FRAMES_SHOWN);
        assert!(text.ends_with("  … and 10 more frames\n"), "{text}");
    }
}
