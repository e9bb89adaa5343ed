//! The terminal report: one row per INVALID / ignored / logged packet, then a summary.
//!
//! Rows are kept until the end (a table needs its column widths), so at most
//! [`MAX_ROWS`] are kept; the summary still counts every packet.

use crate::capture::CaptureError;
use crate::engine::{Observation, RunInfo, Sink, Summary};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use std::io::{self, Write};

pub const MAX_ROWS: usize = 10_000;

pub struct TableReport<W: Write> {
    out: W,
    all: bool,
    width: Option<u16>,
    rows: Vec<[String; 7]>,
    omitted: u64,
    errors: Vec<String>,
    run: Option<RunInfo>,
}

impl<W: Write> TableReport<W> {
    /// `width`: a fixed table width (tests, pipes); `None` follows the terminal.
    pub fn new(out: W, all: bool, width: Option<u16>) -> Self {
        TableReport { out, all, width, rows: Vec::new(), omitted: 0, errors: Vec::new(), run: None }
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED.with_rounded_corners());
        t.set_content_arrangement(ContentArrangement::Dynamic);
        match self.width {
            Some(w) => {
                t.force_no_tty().set_width(w);
            }
            None => {
                if !io::IsTerminal::is_terminal(&io::stdout()) {
                    t.force_no_tty().set_width(160);
                }
            }
        }
        t
    }
}

impl<W: Write> Sink for TableReport<W> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.run = Some(run.clone());
        Ok(())
    }

    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        let v = &obs.verdict;
        if !(self.all || v.is_notable()) {
            return Ok(());
        }
        if self.rows.len() >= MAX_ROWS {
            self.omitted += 1;
            return Ok(());
        }
        let seg = obs.segment;
        let frame = if obs.frame.file > 0 { format!("{}:{}", obs.frame.file, obs.frame.number) } else { obs.frame.number.to_string() };
        let flow = seg.map(|s| s.tuple.to_string()).unwrap_or_default();
        let packet = seg
            .map(|s| format!("[{}] seq={} ack={} len={} win={}", s.flags, s.seq, s.ack, s.payload_len(), s.window))
            .unwrap_or_else(|| obs.skip.as_ref().map(|s| s.to_string()).unwrap_or_default());
        let states = match (v.state_before, v.state_after) {
            (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
            (Some(a), _) | (None, Some(a)) => a.to_string(),
            (None, None) => "-".into(),
        };
        let verdict = format!("{:?}", v.action).to_lowercase();
        let (id, log) = match &v.reason {
            Some(r) => (r.id.to_string(), v.kernel_log().unwrap_or_else(|| "(not logged)".into())),
            None => (String::new(), String::new()),
        };
        self.rows.push([frame, flow, packet, states, verdict, id, log]);
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(err.to_string());
        Ok(())
    }

    fn end(&mut self, s: &Summary) -> io::Result<()> {
        if !self.rows.is_empty() {
            let mut t = self.table();
            t.set_header(vec!["frame", "flow", "packet", "conntrack state", "verdict", "reason", "kernel log"]);
            for row in self.rows.drain(..) {
                t.add_row(row.to_vec());
            }
            writeln!(self.out, "{t}")?;
            if self.omitted > 0 {
                writeln!(self.out, "… {} more packets not shown (use --format jsonl for all of them)", self.omitted)?;
            }
        }
        let mut t = self.table();
        t.set_header(vec!["summary", ""]);
        if let Some(run) = &self.run {
            t.add_row(vec!["captures".to_string(), run.captures.join(", ")]);
            let sysctls = if run.sysctls.is_empty() { "defaults".to_string() } else { run.sysctls.join(" ") };
            t.add_row(vec!["kernel profile".to_string(), format!("{} (sysctls: {})", run.kernel_profile, sysctls)]);
            t.add_row(vec!["vantage".to_string(), run.vantage.clone()]);
        }
        let join = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
        };
        t.add_row(vec!["frames".to_string(), s.frames.to_string()]);
        t.add_row(vec!["link types".to_string(), join(&s.link_types)]);
        t.add_row(vec!["TCP packets".to_string(), s.tcp_packets.to_string()]);
        t.add_row(vec!["flows (entries created)".to_string(), s.flows.to_string()]);
        t.add_row(vec!["ct state".to_string(), join(&s.ct_states)]);
        t.add_row(vec!["INVALID".to_string(), s.invalid.to_string()]);
        t.add_row(vec!["ignored (accepted, not tracked)".to_string(), s.ignored.to_string()]);
        if s.dropped > 0 {
            t.add_row(vec!["dropped by conntrack".to_string(), s.dropped.to_string()]);
        }
        if !s.reasons.is_empty() {
            t.add_row(vec!["reasons".to_string(), join(&s.reasons)]);
        }
        if !s.local_addresses.is_empty() {
            t.add_row(vec![
                "capturing host".to_string(),
                format!("{} (transmit checksum offload seen; their packets are judged at OUTPUT, where checksums are not checked)", s.local_addresses.join(", ")),
            ]);
        }
        if !s.skipped.is_empty() {
            t.add_row(vec!["frames skipped".to_string(), join(&s.skipped)]);
        }
        for e in &self.errors {
            t.add_row(vec!["ERROR".to_string(), e.clone()]);
        }
        writeln!(self.out, "{t}")?;
        self.out.flush()
    }
}
