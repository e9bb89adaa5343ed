//! Quiet frames: a report that shows only notable packets and their flows lets the engine hold
//! back the packets that cannot change what it shows (`Sink::every_frame`, `Sink::quiet`). Over
//! every fixture and corpus capture, which frames are held back must follow the rule exactly,
//! and holding them back must change nothing a report prints.

mod common;

use common::fixture_and_corpus_captures;
use ctreplay::capture::Timestamp;
use ctreplay::engine::{self, Observation, Settings, Sink};
use ctreplay::report::json::JsonDocument;
use ctreplay::report::jsonl::JsonLines;
use ctreplay::report::markdown::MarkdownReport;
use ctreplay::report::table::TableReport;
use ctreplay::report::tee::Tee;
use ctreplay::verdict::{Action, FrameRef};
use std::collections::HashSet;
use std::io;
use std::path::Path;

/// Needs every frame, and does nothing with it: teed with a report, it makes the engine hand
/// that report every frame too.
struct EveryFrame;

impl Sink for EveryFrame {
    fn packet(&mut self, _: &Observation<'_>) -> io::Result<()> {
        Ok(())
    }
}

/// What a run says of each frame, from a sink that sees every frame.
#[derive(Default)]
struct Frames(Vec<Frame>);

struct Frame {
    frame: FrameRef,
    notable: bool,
    accepted: bool,
    /// The frame that created the entry the packet met, if it met one.
    entry: Option<FrameRef>,
    /// The packet created an entry.
    created: bool,
    /// It replaced an older entry of its tuple (a reopen).
    replaced: bool,
}

impl Sink for Frames {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        let v = obs.verdict;
        self.0.push(Frame {
            frame: obs.frame,
            notable: obs.is_notable(),
            accepted: v.action == Action::Accept,
            entry: v.entry.map(|e| e.created_frame),
            created: v.created_entry(),
            replaced: v.replaced.is_some(),
        });
        Ok(())
    }
}

/// Lets frames be quiet; records which frames came as packets, and counts the quiet ones.
#[derive(Default)]
struct Split {
    packets: HashSet<FrameRef>,
    quiet: usize,
}

impl Sink for Split {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        self.packets.insert(obs.frame);
        Ok(())
    }
    fn every_frame(&self) -> bool {
        false
    }
    fn quiet(&mut self, frames: u64, _: Timestamp) -> io::Result<()> {
        self.quiet += frames as usize;
        Ok(())
    }
}

fn run(capture: &Path, settings: &Settings, sink: &mut dyn Sink) {
    // A capture that cannot be read whole fails the same way every time; what came before
    // still counts.
    let _ = engine::analyze(&[capture.to_string_lossy().into_owned()], settings, sink);
}

/// The run's settings on `threads` threads, with the other kernels compared or not: without them
/// the main table leaves out the verdicts of quiet frames itself (`Detail::Quiet`), with them
/// the engine decides from the whole verdicts.
fn settings(threads: usize, compared: bool) -> Settings {
    let mut s = Settings { threads, ..Settings::default() };
    if compared {
        s.compare_with_other_kernels();
    }
    s
}

/// Every combination of thread count and comparison the tests run.
const RUNS: [(usize, bool); 4] = [(1, true), (3, true), (1, false), (3, false)];

/// Quiet: accepted without a word, on an entry that existed before the packet and that no
/// notable packet has met or created. Everything else comes as a packet, except that a packet
/// that creates an entry (replacing none) is quiet too until a report is shown a packet without
/// an entry or an entry a report was shown leaves the table unseen (expired or evicted); the
/// table alone knows when an entry leaves, so from the first notable packet on such a creation
/// may go either way here (the tests beside the tracker pin it, and the reports must not
/// change).
#[test]
fn quiet_frames_are_the_accepted_packets_of_entries_no_notable_packet_has_met() {
    let (mut quiet, mut after_notable, mut quiet_creations) = (0, 0, 0);
    for capture in fixture_and_corpus_captures() {
        for (threads, compared) in RUNS {
            let settings = settings(threads, compared);
            let mut every = Frames::default();
            run(&capture, &settings, &mut every);
            let mut split = Split::default();
            run(&capture, &settings, &mut split);

            let mut shown: HashSet<FrameRef> = HashSet::new();
            let mut notable_seen = false;
            let mut expected_quiet = 0;
            for f in &every.0 {
                let met_unshown = f.entry.is_some_and(|e| !shown.contains(&e));
                let plain_creation = f.created && !f.replaced && !f.notable;
                if plain_creation && notable_seen {
                    // Either way, as said above; counted as it went.
                    let was_quiet = !split.packets.contains(&f.frame);
                    expected_quiet += usize::from(was_quiet);
                    quiet_creations += usize::from(was_quiet);
                    continue;
                }
                quiet_creations += usize::from(plain_creation);
                let is_quiet = f.accepted && !f.notable && (met_unshown || plain_creation);
                if f.notable {
                    notable_seen = true;
                    shown.extend(f.entry);
                    if f.created {
                        shown.insert(f.frame);
                    }
                }
                if f.accepted && !f.notable && f.entry.is_some_and(|e| shown.contains(&e)) {
                    after_notable += 1;
                }
                expected_quiet += usize::from(is_quiet);
                assert_eq!(
                    !split.packets.contains(&f.frame),
                    is_quiet,
                    "{} ({threads} threads, compared: {compared}), frame {:?}: quiet or not against the rule",
                    capture.display(),
                    f.frame
                );
            }
            assert_eq!(split.quiet, expected_quiet, "{} ({threads} threads, compared: {compared}): quiet frames counted", capture.display());
            quiet += expected_quiet;
        }
    }
    eprintln!("{quiet} quiet frames, {quiet_creations} of them creations; {after_notable} accepted packets came as packets because their entry had a notable one");
    assert!(quiet > 10_000 && after_notable > 0 && quiet_creations > 100, "the captures do not show every side of the rule");
}

/// Every report that lets frames be quiet prints the same with every frame handed to it: the
/// same packets, the same flows ending at the same point, the same summary.
#[test]
fn frames_held_back_as_quiet_change_nothing_a_report_shows() {
    type Report = fn(&mut Vec<u8>) -> Box<dyn Sink + '_>;
    let reports: [(&str, Report); 4] = [
        ("jsonl", |out| Box::new(JsonLines::new(out, false))),
        ("json", |out| Box::new(JsonDocument::new(out, false))),
        ("table", |out| Box::new(TableReport::new(out, false, Some(200)))),
        ("markdown", |out| Box::new(MarkdownReport::new(out, false))),
    ];
    let printed = |capture: &Path, settings: &Settings, report: Report, every_frame: bool| -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut sink = report(&mut out);
            if every_frame {
                run(capture, settings, &mut Tee::new(vec![&mut *sink, &mut EveryFrame]));
            } else {
                assert!(!sink.every_frame(), "reports without --all let frames be quiet");
                run(capture, settings, &mut *sink);
            }
        }
        out
    };
    let mut reports_compared = 0;
    for capture in fixture_and_corpus_captures() {
        for ((threads, compared), (name, report)) in RUNS.into_iter().flat_map(|run| reports.iter().map(move |r| (run, r))) {
            let settings = settings(threads, compared);
            let quiet = printed(&capture, &settings, *report, false);
            let every = printed(&capture, &settings, *report, true);
            assert!(
                quiet == every,
                "{} ({name}, {threads} threads, compared: {compared}): the report differs when frames are held back:\n--- quiet\n{}\n--- every frame\n{}",
                capture.display(),
                String::from_utf8_lossy(&quiet),
                String::from_utf8_lossy(&every)
            );
            reports_compared += 1;
        }
    }
    assert!(reports_compared > 2000, "only {reports_compared} reports compared");
}
