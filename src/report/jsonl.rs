//! JSON Lines: one message per line, each with a `type` (`begin`, `packet`, `error`, `summary`),
//! written as the run goes, so memory stays flat and a pipeline sees results immediately.

use super::record::{ErrorRecord, PacketRecord};
use crate::capture::CaptureError;
use crate::engine::{Observation, RunInfo, Sink, Summary};
use serde::Serialize;
use std::io::{self, Write};

pub struct JsonLines<W: Write> {
    out: W,
    /// Report every frame, not only the notable ones.
    all: bool,
    several_files: bool,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W, all: bool) -> Self {
        JsonLines { out, all, several_files: false }
    }

    fn line<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl<W: Write> Sink for JsonLines<W> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.several_files = run.captures.len() > 1;
        self.line(&Tagged { kind: "begin", body: run })
    }

    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        if self.all || obs.verdict.is_notable() {
            let rec = PacketRecord::new(obs, self.several_files);
            self.line(&rec)?;
        }
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.line(&Tagged { kind: "error", body: &ErrorRecord::new(err) })
    }

    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        self.line(&Tagged { kind: "summary", body: summary })?;
        self.out.flush()
    }
}
