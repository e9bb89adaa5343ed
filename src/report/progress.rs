//! A progress bar on stderr for long runs. Only the CLI creates it, and only when stderr is a
//! terminal, so pipes, logs and tests never see it.
//!
//! It appears once a run has taken [`DELAY`]: short runs, the common case, stay silent. It
//! measures bytes when the total is known (every input a plain, uncompressed file), and shows
//! frames and bytes read with a spinner otherwise (stdin, gzip: the decompressed size of a gzip
//! stream is not known before reading it).

use crate::capture::CaptureFile;
use crate::engine::{Observation, Progress, RunInfo, Sink, Summary};
use indicatif::{ProgressDrawTarget, ProgressFinish, ProgressStyle};
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

/// How long a run goes before the bar appears.
pub const DELAY: Duration = Duration::from_secs(1);

pub struct ProgressBar {
    target: Option<ProgressDrawTarget>,
    delay: Duration,
    started: Instant,
    captures: Vec<String>,
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    /// A bar on stderr, or `None` when stderr is not a terminal.
    pub fn for_stderr() -> Option<ProgressBar> {
        io::stderr().is_terminal().then(|| ProgressBar::new(ProgressDrawTarget::stderr(), DELAY))
    }

    fn new(target: ProgressDrawTarget, delay: Duration) -> ProgressBar {
        ProgressBar { target: Some(target), delay, started: Instant::now(), captures: Vec::new(), bar: None }
    }

    /// The bar, once the run has been going long enough.
    fn bar(&mut self, p: &Progress<'_>) -> Option<&indicatif::ProgressBar> {
        let files = p.files;
        if self.bar.is_none() && self.started.elapsed() >= self.delay {
            let target = self.target.take()?;
            // wide_bar takes what the terminal has left, so the line never wraps
            let (len, template) = match total_bytes(&self.captures, files) {
                Some(total) => (Some(total), "{wide_bar} {bytes}/{total_bytes}, {msg}, {eta} left"),
                None => (None, "{spinner} {bytes} read, {msg}"),
            };
            let style = ProgressStyle::with_template(template).expect("a valid template");
            let bar = indicatif::ProgressBar::with_draw_target(len, target)
                .with_style(style)
                // a run that fails must not leave a bar behind its error message
                .with_finish(ProgressFinish::AndClear)
                .with_message(frames(p.frames));
            // The bar appears with the run well under way: start the rate estimate from here,
            // or the first jump reads as an enormous rate and the ETA as zero for a long while.
            bar.set_position(files.iter().map(|f| f.bytes).sum());
            bar.reset_eta();
            self.bar = Some(bar);
        }
        self.bar.as_ref()
    }
}

fn frames(n: u64) -> String {
    format!("{n} frames")
}

/// The bytes the run will read, if known: the sizes of the input files, when every input is a
/// regular file and none is gzip-compressed (the capture reader counts decompressed bytes).
fn total_bytes(paths: &[String], files: &[CaptureFile]) -> Option<u64> {
    if files.len() != paths.len() || files.iter().any(|f| f.gzip) {
        return None;
    }
    paths.iter().try_fold(0u64, |sum, p| {
        let meta = (p != "-").then(|| std::fs::metadata(p).ok()).flatten()?;
        meta.is_file().then(|| sum + meta.len())
    })
}

impl Sink for ProgressBar {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.captures = run.captures.clone();
        self.started = Instant::now();
        Ok(())
    }

    fn packet(&mut self, _: &Observation<'_>) -> io::Result<()> {
        Ok(())
    }

    fn every_frame(&self) -> bool {
        false
    }

    fn progress(&mut self, p: &Progress<'_>) -> io::Result<()> {
        if let Some(bar) = self.bar(p) {
            bar.set_message(frames(p.frames));
            bar.set_position(p.files.iter().map(|f| f.bytes).sum());
        }
        Ok(())
    }

    fn end(&mut self, _: &Summary) -> io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: u64, gzip: bool) -> CaptureFile {
        CaptureFile { path: path.into(), format: None, nanosecond: false, big_endian: false, gzip, frames: 10, bytes }
    }

    fn run_info(captures: &[String]) -> RunInfo {
        let names: Vec<&str> = captures.iter().map(String::as_str).collect();
        crate::report::test_support::run_info(&names)
    }

    #[test]
    fn total_is_known_only_for_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pcap");
        let b = dir.path().join("b.pcap");
        std::fs::write(&a, [0u8; 100]).unwrap();
        std::fs::write(&b, [0u8; 50]).unwrap();
        let paths = vec![a.display().to_string(), b.display().to_string()];
        let plain = [file("a", 0, false), file("b", 0, false)];
        assert_eq!(total_bytes(&paths, &plain), Some(150));
        assert_eq!(total_bytes(&paths, &[file("a", 0, false), file("b", 0, true)]), None, "gzip");
        assert_eq!(total_bytes(&["-".into()], &[file("-", 0, false)]), None, "stdin");
        assert_eq!(total_bytes(&[dir.path().display().to_string()], &[file("d", 0, false)]), None, "not a file");
    }

    #[test]
    fn appears_after_the_delay_and_follows_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pcap");
        std::fs::write(&a, [0u8; 1000]).unwrap();
        let files = [file("a", 400, false)];

        let mut slow = ProgressBar::new(ProgressDrawTarget::hidden(), Duration::from_secs(3600));
        slow.begin(&run_info(&[a.display().to_string()])).unwrap();
        slow.progress(&Progress { frames: 10, files: &files }).unwrap();
        assert!(slow.bar.is_none(), "a short run shows nothing");

        let mut p = ProgressBar::new(ProgressDrawTarget::hidden(), Duration::ZERO);
        p.begin(&run_info(&[a.display().to_string()])).unwrap();
        p.progress(&Progress { frames: 10, files: &files }).unwrap();
        let bar = p.bar.as_ref().expect("shown");
        assert_eq!((bar.position(), bar.length(), bar.message().as_str()), (400, Some(1000), "10 frames"));
        p.end(&Summary::default()).unwrap();
        assert!(p.bar.is_none());
    }
}
