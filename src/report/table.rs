//! The terminal report: one row per INVALID / ignored / logged packet, then a summary.
//!
//! Rows are kept until the end (a table needs its column widths), so at most
//! [`MAX_ROWS`] are kept; the summary still counts every packet. Between the two, the flows with
//! notable packets (capped at [`MAX_FLOW_ROWS`]).

use super::{cells, kernels};
use super::flows::{FlowRows, MAX_FLOW_ROWS};
use crate::capture::{CaptureError, Timestamp};
use crate::engine::{Observation, RunInfo, Sink, Summary};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ColumnConstraint, ContentArrangement, Table};
use std::io::{self, Write};

pub const MAX_ROWS: usize = 10_000;

pub struct TableReport<W: Write> {
    out: W,
    all: bool,
    width: Option<u16>,
    rows: Vec<[String; 8]>,
    omitted: u64,
    flows: FlowRows,
    errors: Vec<String>,
    run: Option<RunInfo>,
}

impl<W: Write> TableReport<W> {
    /// `width`: a fixed table width (tests, pipes); `None` follows the terminal.
    pub fn new(out: W, all: bool, width: Option<u16>) -> Self {
        TableReport {
            out,
            all,
            width,
            rows: Vec::new(),
            omitted: 0,
            flows: FlowRows::new(all, MAX_FLOW_ROWS),
            errors: Vec::new(),
            run: None,
        }
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

/// Columns `cols` are as wide as their content: comfy-table wraps the others instead.
pub(crate) fn keep_whole(t: &mut Table, cols: &[usize]) {
    for &c in cols {
        if let Some(col) = t.column_mut(c) {
            col.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
}

impl<W: Write> Sink for TableReport<W> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.run = Some(run.clone());
        Ok(())
    }

    fn every_frame(&self) -> bool {
        self.all
    }

    fn quiet(&mut self, _frames: u64, clock: Timestamp) -> io::Result<()> {
        self.flows.clock(clock);
        Ok(())
    }

    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        self.flows.packet(obs);
        let v = &obs.verdict;
        if !(self.all || obs.is_notable()) {
            return Ok(());
        }
        if self.rows.len() >= MAX_ROWS {
            self.omitted += 1;
            return Ok(());
        }
        let (id, log) = cells::reason_and_log(v);
        let row = [
            cells::frame(obs.frame),
            cells::flow(obs),
            cells::packet(obs),
            cells::states(v),
            cells::verdict(obs),
            id,
            cells::entry_brief(v),
            log,
        ];
        self.rows.push(row);
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(err.to_string());
        Ok(())
    }

    fn end(&mut self, s: &Summary) -> io::Result<()> {
        if !self.rows.is_empty() {
            let mut t = self.table();
            t.set_header(vec!["frame", "flow", "packet", "conntrack state", "verdict", "reason", "entry", "kernel log"]);
            // Identifiers stay whole (a reader copies them, greps for them); the free text of
            // the packet and the log line is what wraps when the table is narrow.
            keep_whole(&mut t, &[0, 1, 5]);
            for row in self.rows.drain(..) {
                t.add_row(row.to_vec());
            }
            writeln!(self.out, "{t}")?;
            if self.omitted > 0 {
                writeln!(self.out, "… {} more packets not shown (use --format jsonl for all of them)", self.omitted)?;
            }
        }
        self.flows.finish();
        if !self.flows.rows.is_empty() {
            let mut t = self.table();
            t.set_header(cells::FLOW_HEADER.to_vec());
            keep_whole(&mut t, &[0, 1, 6]);
            for f in &self.flows.rows {
                t.add_row(cells::flow_row(f).to_vec());
            }
            writeln!(self.out, "{t}")?;
            if self.flows.omitted > 0 {
                writeln!(self.out, "… {} more flows not shown (use --format jsonl for all of them)", self.flows.omitted)?;
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
        if let Some(line) = kernels::summary_line(s) {
            t.add_row(vec!["other kernels".to_string(), line]);
        }
        for e in &self.errors {
            t.add_row(vec!["ERROR".to_string(), e.clone()]);
        }
        writeln!(self.out, "{t}")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::state::{Dir, TcpState};
    use crate::report::test_support::TestFrame;
    use crate::verdict::{CreatedBy, ReasonId};

    #[test]
    fn notable_rows_then_summary() {
        let mut out = Vec::new();
        let mut t = TableReport::new(&mut out, false, Some(260));
        let quiet = TestFrame::tcp(1, ".");
        let syn = TestFrame::tcp(2, "S")
            .invalid(ReasonId::SynMeetsReversedEntry, &["nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED"])
            .entry(1, CreatedBy::Pickup, Dir::Reply, TcpState::Established);
        let rst = TestFrame::tcp(3, "R").file(1).states(TcpState::Established, TcpState::Close).invalid(ReasonId::InvalidRst, &[]);
        for f in [&quiet, &syn, &rst] {
            t.packet(&f.obs()).unwrap();
        }
        t.end(&Summary::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("win=64240")).collect();
        assert_eq!(rows.len(), 2, "only the notable frames:\n{text}");
        for want in ["│ 2 ", "[S] seq=1002 ack=5000 len=0 win=64240", "syn-meets-reversed-entry", "pickup@1 ESTABLISHED reply", "nf_ct_proto_6: packet (index 0)"] {
            assert!(rows[0].contains(want), "{want:?} in {:?}", rows[0]);
        }
        for want in ["│ 1:3 ", "ESTABLISHED → CLOSE", "invalid-rst", "(not logged)"] {
            assert!(rows[1].contains(want), "{want:?} in {:?}", rows[1]);
        }
        assert!(text.contains("summary"));
        // flows: frame 2 met an entry this report never saw created, frame 1:3 met none; the
        // accepted frame 1 alone makes no notable flow
        let flow_rows: Vec<&str> = text.lines().filter(|l| l.contains("2023-11-14")).collect();
        assert_eq!(flow_rows.len(), 2, "{text}");
        for want in ["10.0.0.2:80>10.0.0.1:40000", "pickup@1 (seen from 2)", "2 (1)", "ESTABLISHED", "s!", "expired"] {
            assert!(flow_rows[0].contains(want), "{want:?} in {:?}", flow_rows[0]);
        }
        for want in ["10.0.0.1:40000>10.0.0.2:80", "none", "1:3 (1)", "R!"] {
            assert!(flow_rows[1].contains(want), "{want:?} in {:?}", flow_rows[1]);
        }
        assert!(text.find("history").unwrap() < text.find("summary").unwrap(), "flows before the summary");
    }
}
