//! Fan-out: one run feeding several sinks at once (a report, the exit-code counter, the INVALID
//! frames' capture, a progress bar), each unaware of the others.

use crate::capture::{CaptureError, Timestamp};
use crate::engine::{Observation, Progress, RunInfo, Sink, Summary};
use std::io;

/// Hands every event to each sink in turn, in the order given. The first error stops the event
/// there and ends the run: a report that cannot be written is not worth finishing.
pub struct Tee<'a> {
    sinks: Vec<&'a mut dyn Sink>,
}

impl<'a> Tee<'a> {
    pub fn new(sinks: Vec<&'a mut dyn Sink>) -> Self {
        Tee { sinks }
    }

    fn each(&mut self, mut f: impl FnMut(&mut dyn Sink) -> io::Result<()>) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| f(&mut **s))
    }
}

impl Sink for Tee<'_> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.each(|s| s.begin(run))
    }
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        self.each(|s| s.packet(obs))
    }
    fn every_frame(&self) -> bool {
        self.sinks.iter().any(|s| s.every_frame())
    }
    fn quiet(&mut self, frames: u64, clock: Timestamp) -> io::Result<()> {
        self.each(|s| s.quiet(frames, clock))
    }
    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.each(|s| s.error(err))
    }
    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        self.each(|s| s.end(summary))
    }
    fn progress(&mut self, progress: &Progress<'_>) -> io::Result<()> {
        self.each(|s| s.progress(progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::TestFrame;

    /// Writes one letter per event it sees, so the test can tell who saw what, in which order.
    struct Trace<'a>(&'a std::cell::RefCell<String>, char, bool);

    impl Sink for Trace<'_> {
        fn begin(&mut self, _: &RunInfo) -> io::Result<()> {
            self.0.borrow_mut().push(self.1);
            Ok(())
        }
        fn packet(&mut self, _: &Observation<'_>) -> io::Result<()> {
            self.0.borrow_mut().push(self.1);
            if self.2 { Err(io::Error::other("disk full")) } else { Ok(()) }
        }
        fn end(&mut self, _: &Summary) -> io::Result<()> {
            self.0.borrow_mut().push(self.1.to_ascii_uppercase());
            Ok(())
        }
        fn progress(&mut self, _: &Progress<'_>) -> io::Result<()> {
            self.0.borrow_mut().push('+');
            Ok(())
        }
    }

    fn run_info() -> RunInfo {
        crate::report::test_support::run_info(&[])
    }

    #[test]
    fn every_sink_sees_every_event_in_order() {
        let log = std::cell::RefCell::new(String::new());
        let (mut a, mut b) = (Trace(&log, 'a', false), Trace(&log, 'b', false));
        let mut tee = Tee::new(vec![&mut a, &mut b]);
        tee.begin(&run_info()).unwrap();
        tee.packet(&TestFrame::tcp(1, "S").obs()).unwrap();
        tee.progress(&Progress { frames: 1, files: &[] }).unwrap();
        tee.end(&Summary::default()).unwrap();
        assert_eq!(log.into_inner(), "abab++AB");
    }

    #[test]
    fn the_first_error_stops_the_event() {
        let log = std::cell::RefCell::new(String::new());
        let (mut a, mut b) = (Trace(&log, 'a', true), Trace(&log, 'b', false));
        let mut tee = Tee::new(vec![&mut a, &mut b]);
        let err = tee.packet(&TestFrame::tcp(1, "S").obs()).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(log.into_inner(), "a");
    }
}
