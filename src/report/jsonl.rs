//! JSON Lines: one message per line, each with a `type` (`begin`, `packet`, `flow`, `error`,
//! `summary`), written as the run goes, so memory stays flat and a pipeline sees results
//! immediately. A `flow` message comes as soon as the flow's end is known (before the packet that
//! revealed it), the flows still open at the end just before the summary.

use super::flows::{FlowRecord, FlowTracker, MAX_ACTIVE_FLOWS};
use super::record::{ErrorRecord, PacketRecord};
use crate::capture::{CaptureError, Timestamp};
use crate::engine::{Observation, RunInfo, Sink, Summary};
use serde::Serialize;
use std::io::{self, Write};

pub struct JsonLines<W: Write> {
    out: W,
    /// Report every frame, not only the notable ones.
    all: bool,
    several_files: bool,
    flows: FlowTracker,
    /// Flows that ended, between the tracker and the output (kept to reuse its allocation).
    ended: Vec<FlowRecord>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W, all: bool) -> Self {
        JsonLines { out, all, several_files: false, flows: FlowTracker::new(MAX_ACTIVE_FLOWS, all), ended: Vec::new() }
    }

    /// Writes the flows that ended with the last frame.
    fn write_ended(&mut self) -> io::Result<()> {
        if self.ended.is_empty() {
            return Ok(());
        }
        let ended = std::mem::take(&mut self.ended);
        self.flow_lines(ended)
    }

    fn flow_lines(&mut self, flows: Vec<FlowRecord>) -> io::Result<()> {
        for f in &flows {
            self.line(f)?;
        }
        Ok(())
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

    fn every_frame(&self) -> bool {
        self.all
    }

    fn quiet(&mut self, _frames: u64, clock: Timestamp) -> io::Result<()> {
        self.flows.clock(clock, &mut self.ended);
        self.write_ended()
    }

    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        self.flows.packet(obs, &mut self.ended);
        self.write_ended()?;
        if self.all || obs.is_notable() {
            let rec = PacketRecord::new(obs, self.several_files);
            self.line(&rec)?;
        }
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.line(&Tagged { kind: "error", body: &ErrorRecord::new(err) })
    }

    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        let open = self.flows.finish();
        self.flow_lines(open)?;
        self.line(&Tagged { kind: "summary", body: summary })?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::state::{Dir, TcpState};
    use crate::report::test_support::{with_entry_logs, TestFrame};
    use crate::verdict::{CreatedBy, ReasonId};
    use serde_json::Value;

    #[test]
    fn flows_come_when_they_end_and_before_the_summary() {
        let mut out = Vec::new();
        let mut s = JsonLines::new(&mut out, false);
        let run = crate::report::test_support::run_info(&[]);
        s.begin(&run).unwrap();
        let frames = with_entry_logs(vec![
            TestFrame::tcp(1, "S").creates(TcpState::SynSent),
            TestFrame::tcp(2, "S")
                .entry(1, CreatedBy::Syn, Dir::Original, TcpState::SynSent)
                .ignored(ReasonId::StateTableIgnored, &[]),
            // the entry of frame 1 is gone: a new one starts
            TestFrame::tcp(3, "S").creates(TcpState::SynSent),
            TestFrame::tcp(4, "S.")
                .reversed()
                .entry(3, CreatedBy::Syn, Dir::Reply, TcpState::SynSent)
                .invalid(ReasonId::StateTableInvalid, &[]),
        ]);
        for f in &frames {
            s.packet(&f.obs()).unwrap();
        }
        s.end(&Summary::default()).unwrap();
        let lines: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let seen: Vec<String> = lines
            .iter()
            .map(|l| match l["type"].as_str().unwrap() {
                "packet" => format!("packet {}", l["frame"]),
                "flow" => format!("flow {} {}", l["created_frame"]["number"], l["ended"].as_str().unwrap()),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(seen, ["begin", "packet 2", "flow 1 expired", "packet 4", "flow 3 open", "summary"]);
        assert_eq!(lines[2]["history"], "SS~");
        assert_eq!(lines[4]["history"], "Sh!");
    }
}
