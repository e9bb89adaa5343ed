//! The sharded pipeline says exactly what the single-threaded one says: every capture of the
//! shared corpus (when `../shared` is present), every fixture capture, and a synthetic capture
//! with thousands of interleaved flows (many batches, every shard busy) are analysed with 1 and
//! with 4 tracker threads, and the JSON Lines output of every frame (`--all`) must be identical,
//! byte for byte: verdicts, reasons, entries, errors, order and summary. The frames' captured
//! bytes handed to the sink must be identical too.

mod common;

use common::{bulk_capture, fixture_and_corpus_captures};
use ctreplay::engine::{self, Observation, Settings, Sink, Timing, Vantage};
use ctreplay::report::jsonl::JsonLines;
use ctreplay::synth::bulk::BulkConfig;
use std::path::{Path, PathBuf};

fn jsonl(capture: &Path, settings: &Settings, threads: usize) -> String {
    let mut out = Vec::new();
    let settings = Settings { threads, ..settings.clone() };
    // Captures that cannot be opened fail the same way at any thread count; the output then
    // stays empty for both.
    let _ = engine::analyze(&[capture.to_string_lossy().into_owned()], &settings, &mut JsonLines::new(&mut out, true));
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// The captured bytes of every frame as the sink sees them (`Observation::data`, what
/// `--write-invalid` writes out), which on several threads come from the batches' arenas.
#[derive(Default)]
struct Bytes(Vec<(u32, u64, Vec<u8>)>);

impl Sink for Bytes {
    fn packet(&mut self, obs: &Observation<'_>) -> std::io::Result<()> {
        self.0.push((obs.frame.file, obs.frame.number, obs.data.to_vec()));
        Ok(())
    }
}

fn frame_bytes(capture: &Path, threads: usize) -> Vec<(u32, u64, Vec<u8>)> {
    let mut sink = Bytes::default();
    let settings = Settings { threads, ..Settings::default() };
    engine::analyze(&[capture.to_string_lossy().into_owned()], &settings, &mut sink).unwrap();
    sink.0
}

/// The first line where two outputs differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    let (n, (x, y)) = a.lines().zip(b.lines()).enumerate().find(|(_, (x, y))| x != y).unwrap_or((0, ("(length)", "(length)")));
    format!("line {}:\n  1 thread:  {x}\n  4 threads: {y}", n + 1)
}

/// Returns the frames compared, and how many of them carry a note on other kernels.
fn assert_same_with_4_threads(captures: &[PathBuf], settings: &Settings) -> (usize, usize) {
    let (mut frames, mut noted) = (0, 0);
    for capture in captures {
        let one = jsonl(capture, settings, 1);
        let four = jsonl(capture, settings, 4);
        assert!(one == four, "{}: outputs differ at {}", capture.display(), first_difference(&one, &four));
        let packets = one.lines().filter(|l| l.starts_with(r#"{"type":"packet""#));
        for p in packets {
            frames += 1;
            noted += usize::from(p.contains(r#""other_kernels":"#));
        }
    }
    (frames, noted)
}

#[test]
fn corpus_and_fixtures_give_the_same_output_on_1_and_4_threads() {
    let captures = fixture_and_corpus_captures();
    // The CLI's defaults: capture timing (entries expire), vantage detection, and every packet
    // judged by the older kernels too.
    let mut cli = Settings::default();
    cli.compare_with_other_kernels();
    let (frames, noted) = assert_same_with_4_threads(&captures, &cli);
    assert!(noted > 100, "only {noted} frames judged otherwise by older kernels");
    // The oracle's view: back to back, every packet at PRE_ROUTING.
    let oracle = Settings { timing: Timing::BackToBack, vantage: Vantage::Forward, ..Settings::default() };
    let (_, noted) = assert_same_with_4_threads(&captures, &oracle);
    assert_eq!(noted, 0, "nothing compared, nothing noted");
    eprintln!("{} captures, {frames} frames: same output on 1 and 4 threads", captures.len());
    assert!(frames > 1000, "too few frames compared: {frames}");
}

#[test]
fn many_interleaved_flows_give_the_same_output_on_1_and_4_threads() {
    // About 30 000 packets, 1 ms apart on average: half a minute of capture time.
    let cfg = BulkConfig {
        flows: 3000,
        concurrency: 300,
        target_bytes: Some(3000 * 3000),
        max_gap_us: 2000,
        ..BulkConfig::default()
    };
    let (_dir, path) = bulk_capture(cfg);
    // Short timeouts make entries expire and be swept while the capture runs, some of them in
    // the middle of their connection (which is then picked up again, or refused).
    let mut settings = Settings::default();
    settings.sysctls.set("nf_conntrack_tcp_timeout_time_wait=1").unwrap();
    settings.sysctls.set("nf_conntrack_tcp_timeout_established=2").unwrap();
    let (frames, _) = assert_same_with_4_threads(std::slice::from_ref(&path), &settings);
    assert!(frames > 20_000, "{frames} frames: fewer than a few batches");
    let bytes = frame_bytes(&path, 1);
    assert!(bytes == frame_bytes(&path, 4), "frame bytes differ on 4 threads");
    assert_eq!(bytes.len(), frames);
    // Entries that expired mid-connection were picked up again: more entries than connections.
    let out = jsonl(&path, &settings, 1);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(summary["flows"].as_u64().unwrap() > 3000, "no entry expired mid-connection: {summary}");
}

/// A sink whose output is closed after a number of frames, like `ctreplay … | head`.
struct ClosesAfter(usize);

impl Sink for ClosesAfter {
    fn packet(&mut self, _: &Observation<'_>) -> std::io::Result<()> {
        match self.0.checked_sub(1) {
            Some(left) => {
                self.0 = left;
                Ok(())
            }
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// The calling thread both reads and merges: when the sink fails while the trackers still hold
/// many batches, and the capture holds many more, the run must stop and say why, not wait for
/// trackers that wait for it. (A deadlock here hangs the test.)
#[test]
fn sink_failing_mid_run_on_several_threads_stops_the_run_with_its_error() {
    let (_dir, path) = bulk_capture(BulkConfig { flows: 3000, concurrency: 300, target_bytes: Some(3000 * 3000), ..BulkConfig::default() });
    let input = [path.to_string_lossy().into_owned()];
    for (threads, shown) in [(2, 0), (3, 5000), (4, 20_000)] {
        let settings = Settings { threads, ..Settings::default() };
        let result = engine::analyze(&input, &settings, &mut ClosesAfter(shown));
        match result {
            Err(engine::EngineError::Output(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
            other => panic!("{threads} threads, closed after {shown} frames: {:?}", other.map(|s| s.frames)),
        }
    }
}
