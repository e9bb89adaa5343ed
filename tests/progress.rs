//! How a run tells a sink of its frames: every frame once, as a packet or within a run of
//! quiet frames (`Sink::quiet`), and how far the run has got every `PROGRESS_EVERY` frames,
//! after it has told the sink of all of them — on one thread and on several.

mod common;

use common::bulk_capture;
use ctreplay::capture::Timestamp;
use ctreplay::engine::{self, Observation, Progress, Settings, Sink, Summary, PROGRESS_EVERY};
use ctreplay::synth::bulk::BulkConfig;
use std::io;

/// Counts the frames it has been told of, and what it had been told at each progress report.
#[derive(Default)]
struct Counting {
    told: u64,
    quiet_calls: u64,
    /// (frames the report says, frames told by then)
    reports: Vec<(u64, u64)>,
    frames_at_end: u64,
}

impl Sink for Counting {
    fn packet(&mut self, _: &Observation<'_>) -> io::Result<()> {
        self.told += 1;
        Ok(())
    }
    fn every_frame(&self) -> bool {
        false
    }
    fn quiet(&mut self, frames: u64, _: Timestamp) -> io::Result<()> {
        assert!(frames > 0, "a run of quiet frames is never empty");
        self.told += frames;
        self.quiet_calls += 1;
        Ok(())
    }
    fn progress(&mut self, p: &Progress<'_>) -> io::Result<()> {
        self.reports.push((p.frames, self.told));
        Ok(())
    }
    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        self.frames_at_end = self.told;
        assert_eq!(summary.frames, self.told, "every frame counted was told");
        Ok(())
    }
}

#[test]
fn every_frame_is_told_once_and_progress_follows_what_was_told() {
    // About 20 000 packets of healthy connections: mostly quiet frames.
    let (_dir, path) = bulk_capture(BulkConfig { flows: 2000, concurrency: 100, target_bytes: Some(2000 * 3000), ..BulkConfig::default() });
    let inputs = [path.to_string_lossy().into_owned()];
    for threads in [1, 3] {
        let mut sink = Counting::default();
        let settings = Settings { threads, ..Settings::default() };
        let summary = engine::analyze(&inputs, &settings, &mut sink).unwrap();
        assert!(summary.frames > 4 * PROGRESS_EVERY, "{} frames", summary.frames);
        assert_eq!(sink.frames_at_end, summary.frames);
        // Quiet frames come in runs, far fewer calls than frames.
        assert!(sink.quiet_calls > 0 && sink.quiet_calls * 4 < summary.frames, "{threads} threads: {} quiet calls", sink.quiet_calls);
        // One report each time the count passes a multiple of PROGRESS_EVERY (a run of quiet
        // frames, at most a batch of the parallel pipeline — 1024 frames — may carry it a
        // little past), each after the sink was told of every frame it counts.
        assert_eq!(sink.reports.len() as u64, summary.frames / PROGRESS_EVERY, "{threads} threads");
        for (n, &(frames, told)) in sink.reports.iter().enumerate() {
            let due = (n as u64 + 1) * PROGRESS_EVERY;
            assert!((due..due + 1024).contains(&frames), "{threads} threads: report {n} at frame {frames}");
            assert_eq!(frames, told, "{threads} threads: report {n} before the sink was told of every frame");
            if threads == 1 {
                assert_eq!(frames, due, "one thread reports at the multiples exactly");
            }
        }
    }
}
