//! One JSON document for the whole run (`--format json`), for programs that want a single value
//! rather than a stream of lines:
//!
//! ```text
//! {"schema_version":1,"tool":…,"version":…,"kernel_profile":…,"sysctls":[…],"vantage":…,
//!  "captures":[…],"packets":[
//! {…},
//! {…}
//! ],"flows":[
//! {…}
//! ],"summary":{…},"errors":[…]}
//! ```
//!
//! The packet and flow records are JSON Lines' `packet` and `flow` records, unchanged. Packets
//! are written as they arrive, so memory does not grow with the capture; that is why `summary`
//! (known only at the end) follows `packets`. Flows end during the run too, but their array can
//! only open once `packets` is closed: they wait in a temporary file, not in memory. Only the
//! input errors, a handful at most, are kept until the end.

use super::flows::{FlowRecord, FlowTracker, MAX_ACTIVE_FLOWS};
use super::record::{ErrorRecord, PacketRecord};
use crate::capture::{CaptureError, Timestamp};
use crate::engine::{Observation, RunInfo, Sink, Summary};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

/// The version of the document's shape; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

pub struct JsonDocument<W: Write> {
    out: W,
    /// Report every frame, not only the notable ones.
    all: bool,
    several_files: bool,
    packets: u64,
    /// Each input error, serialised.
    errors: Vec<String>,
    flows: FlowTracker,
    ended: Vec<FlowRecord>,
    /// The flow records written so far, one per line, created with the first one.
    spool: Option<BufWriter<File>>,
    spooled: u64,
}

#[derive(Serialize)]
struct Header<'a> {
    schema_version: u32,
    #[serde(flatten)]
    run: &'a RunInfo,
}

impl<W: Write> JsonDocument<W> {
    pub fn new(out: W, all: bool) -> Self {
        JsonDocument {
            out,
            all,
            several_files: false,
            packets: 0,
            errors: Vec::new(),
            flows: FlowTracker::new(MAX_ACTIVE_FLOWS, all),
            ended: Vec::new(),
            spool: None,
            spooled: 0,
        }
    }

    /// Spools the flows that ended with the last frame.
    fn spool_ended(&mut self) -> io::Result<()> {
        if self.ended.is_empty() {
            return Ok(());
        }
        let ended = std::mem::take(&mut self.ended);
        self.spool(ended)
    }

    fn spool(&mut self, flows: Vec<FlowRecord>) -> io::Result<()> {
        for f in &flows {
            let spool = match &mut self.spool {
                Some(s) => s,
                None => self.spool.insert(BufWriter::new(tempfile::tempfile()?)),
            };
            spool.write_all(if self.spooled == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut *spool, f)?;
            self.spooled += 1;
        }
        Ok(())
    }
}

impl<W: Write> Sink for JsonDocument<W> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.several_files = run.captures.len() > 1;
        let header = serde_json::to_string(&Header { schema_version: SCHEMA_VERSION, run })?;
        // serde cannot leave an object open across calls: write the header object without its
        // closing brace, and continue the same object with the packets array.
        let open = header.strip_suffix('}').expect("a JSON object ends with '}'");
        write!(self.out, "{open},\"packets\":[")
    }

    fn every_frame(&self) -> bool {
        self.all
    }

    fn quiet(&mut self, _frames: u64, clock: Timestamp) -> io::Result<()> {
        self.flows.clock(clock, &mut self.ended);
        self.spool_ended()
    }

    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        self.flows.packet(obs, &mut self.ended);
        self.spool_ended()?;
        if !(self.all || obs.is_notable()) {
            return Ok(());
        }
        // One record per line keeps the document greppable and its diffs readable.
        self.out.write_all(if self.packets == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut self.out, &PacketRecord::new(obs, self.several_files))?;
        self.packets += 1;
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(serde_json::to_string(&ErrorRecord::new(err))?);
        Ok(())
    }

    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        let open = self.flows.finish();
        self.spool(open)?;
        let close = if self.packets == 0 { "]" } else { "\n]" };
        write!(self.out, "{close},\"flows\":[")?;
        if let Some(spool) = self.spool.take() {
            let mut file = spool.into_inner().map_err(|e| e.into_error())?;
            file.rewind()?;
            io::copy(&mut file, &mut self.out)?;
            self.out.write_all(b"\n")?;
        }
        write!(self.out, "],\"summary\":")?;
        serde_json::to_writer(&mut self.out, summary)?;
        writeln!(self.out, ",\"errors\":[{}]}}", self.errors.join(","))?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureErrorKind;
    use crate::report::jsonl::JsonLines;
    use crate::report::test_support::{self, TestFrame};
    use crate::verdict::ReasonId;
    use serde_json::Value;

    fn run_info(captures: &[&str]) -> RunInfo {
        RunInfo { sysctls: vec!["nf_conntrack_tcp_loose=0".into()], vantage: "forward".into(), ..test_support::run_info(captures) }
    }

    fn frames() -> Vec<TestFrame> {
        vec![
            TestFrame::tcp(1, "S"),
            TestFrame::tcp(2, ".").invalid(ReasonId::InvalidNew, &["nf_ct_proto_6: invalid new"]),
            TestFrame::tcp(3, "P."),
            TestFrame::tcp(4, "R").invalid(ReasonId::InvalidRst, &["nf_ct_proto_6: invalid rst"]),
            TestFrame::skipped(5, crate::decode::Skip::NotTcp { protocol: 17 }),
        ]
    }

    fn feed(sink: &mut dyn Sink, captures: &[&str], frames: &[TestFrame], error: bool) {
        sink.begin(&run_info(captures)).unwrap();
        for f in frames {
            sink.packet(&f.obs()).unwrap();
        }
        if error {
            let e = CaptureError { file: "a.pcap".into(), frame: Some(5), offset: Some(400), kind: CaptureErrorKind::TruncatedRecord };
            sink.error(&e).unwrap();
        }
        sink.end(&Summary { frames: 4, invalid: 2, ..Summary::default() }).unwrap();
    }

    fn document(all: bool, captures: &[&str], frames: &[TestFrame], error: bool) -> (String, Value) {
        let mut out = Vec::new();
        feed(&mut JsonDocument::new(&mut out, all), captures, frames, error);
        let text = String::from_utf8(out).unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (text, v)
    }

    #[test]
    fn one_document_with_header_packets_summary_errors() {
        let (text, doc) = document(false, &["a.pcap"], &frames(), true);
        assert!(text.starts_with(r#"{"schema_version":1,"tool":"ctreplay","version":"0.1.0","kernel_profile":"latest","#), "{text}");
        // (the summary has "captures" and "errors" of its own: the header's come first, the
        // document's errors last)
        let at = |k: &str| text.find(k).unwrap();
        let order =
            [at("\"captures\":"), at("\"packets\":"), at("\"flows\":"), at("\"summary\":"), text.rfind("\"errors\":").unwrap()];
        assert!(order.is_sorted(), "header, packets, flows, summary, errors: {text}");
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["vantage"], "forward");
        assert_eq!(doc["sysctls"][0], "nf_conntrack_tcp_loose=0");
        let frames: Vec<u64> = doc["packets"].as_array().unwrap().iter().map(|p| p["frame"].as_u64().unwrap()).collect();
        assert_eq!(frames, [2, 4], "notable packets only, in frame order");
        assert_eq!(doc["summary"]["invalid"], 2);
        assert_eq!(doc["errors"][0]["frame"], 5);
        assert_eq!(doc["errors"][0]["offset"], 400);
        assert!(doc["errors"][0]["message"].as_str().unwrap().contains("truncated file"));
        assert!(text.ends_with("}\n"));
        // the four frames met no entry: one entry-less flow, shown for its INVALID packets
        assert_eq!(doc["flows"].as_array().unwrap().len(), 1);
        assert_eq!(doc["flows"][0]["type"], "flow");
        assert_eq!((&doc["flows"][0]["frames"], &doc["flows"][0]["invalid"]), (&Value::from(4), &Value::from(2)));
        assert_eq!(text.lines().count(), 6, "a record per line:\n{text}");
    }

    #[test]
    fn packets_are_the_json_lines_records() {
        let captures = ["a.pcap", "b.pcap"];
        let (_, doc) = document(true, &captures, &frames(), false);
        let mut lines = Vec::new();
        feed(&mut JsonLines::new(&mut lines, true), &captures, &frames(), false);
        let from_lines: Vec<Value> = String::from_utf8(lines)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "packet")
            .collect();
        assert_eq!(from_lines.len(), 5, "--all: every frame");
        assert_eq!(from_lines[4]["ct_state"], "skipped");
        assert_eq!(from_lines[4]["skip"], "not TCP (IP protocol 17)");
        assert_eq!(doc["packets"].as_array().unwrap(), &from_lines);
        assert_eq!(from_lines[0]["file"], 0, "several captures: records name their file");
    }

    #[test]
    fn empty_run_is_still_a_document() {
        let (text, doc) = document(false, &["a.pcap"], &[TestFrame::tcp(1, "S")], false);
        assert_eq!(doc["packets"], Value::Array(vec![]));
        assert_eq!(doc["flows"], Value::Array(vec![]), "no notable flow");
        assert_eq!(doc["errors"], Value::Array(vec![]));
        assert_eq!(text.lines().count(), 1);
    }
}
