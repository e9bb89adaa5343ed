//! A report to paste into a ticket (`--format markdown`): a heading, a paragraph of what was
//! found, a table of the notable packets, then, for every reason met, the catalogue's
//! explanation, usual causes and fixes, with the conntrack entry each INVALID packet met.
//!
//! Like the terminal table, rows are kept until the end and capped at [`MAX_ROWS`]; the counts
//! still cover every packet.

use super::{cells, kernels};
use super::flows::{FlowRows, MAX_FLOW_ROWS};
use super::reasons;
use super::table::MAX_ROWS;
use crate::capture::{CaptureError, Timestamp};
use crate::engine::{Observation, RunInfo, Sink, Summary};
use crate::verdict::{Action, ReasonId, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

pub struct MarkdownReport<W: Write> {
    out: W,
    all: bool,
    max_rows: usize,
    run: Option<RunInfo>,
    rows: Vec<String>,
    omitted: u64,
    /// Per reason met, what happened to its packets (all of them, not only the rows kept).
    counts: BTreeMap<ReasonId, Outcomes>,
    /// Per reason, one line per INVALID packet (among the rows kept) that met an entry.
    entries: BTreeMap<ReasonId, Vec<String>>,
    flows: FlowRows,
    errors: Vec<String>,
}

/// Packets of one reason by what conntrack did with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Outcomes {
    invalid: u64,
    dropped: u64,
    ignored: u64,
    /// Accepted and tracked, but the kernel logged something about them.
    logged: u64,
}

impl Outcomes {
    fn add(&mut self, action: Action) {
        match action {
            Action::Invalid => self.invalid += 1,
            Action::Drop => self.dropped += 1,
            Action::Ignore => self.ignored += 1,
            Action::Accept | Action::Skipped => self.logged += 1,
        }
    }

    /// `2 INVALID, 1 ignored`
    fn describe(&self) -> String {
        [(self.invalid, "INVALID"), (self.dropped, "dropped"), (self.ignored, "ignored"), (self.logged, "logged, accepted")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const HEADER: &str = "| frame | time (UTC) | flow | packet | conntrack state | verdict | reason | kernel log |\n\
                      |---:|---|---|---|---|---|---|---|\n";

impl<W: Write> MarkdownReport<W> {
    pub fn new(out: W, all: bool) -> Self {
        MarkdownReport {
            out,
            all,
            max_rows: MAX_ROWS,
            run: None,
            rows: Vec::new(),
            omitted: 0,
            counts: BTreeMap::new(),
            entries: BTreeMap::new(),
            flows: FlowRows::new(all, MAX_FLOW_ROWS),
            errors: Vec::new(),
        }
    }

    #[cfg(test)]
    fn with_max_rows(mut self, n: usize) -> Self {
        self.max_rows = n;
        self
    }

    fn row(obs: &Observation<'_>) -> String {
        let v = &obs.verdict;
        let (id, log) = cells::reason_and_log(v);
        let cells = [
            cells::frame(obs.frame),
            cells::utc(obs.ts),
            code(&cells::flow(obs)),
            cells::packet(obs),
            cells::states(v),
            cells::verdict(obs),
            code(&id),
            // "(not logged)" is our words, not the kernel's: not in code
            if v.kernel_log().is_some() { code(&log) } else { log },
        ];
        let mut row = String::from("|");
        for c in cells {
            let _ = write!(row, " {} |", cell(&c));
        }
        row
    }

    /// The paragraph under the heading: what happened to how many packets, and under which
    /// settings.
    fn findings(&self, s: &Summary) -> String {
        // Counted here, over the same packets as the per-reason lists, so a total always
        // matches its breakdown.
        let total = |pick: fn(&Outcomes) -> u64| self.counts.values().map(pick).sum::<u64>();
        let by_reason = |pick: fn(&Outcomes) -> u64| {
            let parts: Vec<String> =
                self.counts.iter().filter(|(_, o)| pick(o) > 0).map(|(id, o)| format!("`{id}` ×{}", pick(o))).collect();
            parts.join(", ")
        };
        let (invalid, dropped, ignored, logged) =
            (total(|o| o.invalid + o.dropped), total(|o| o.dropped), total(|o| o.ignored), total(|o| o.logged));
        let mut p = format!(
            "**What ctreplay found:** {} ({}, {} tracked). ",
            cells::plural(s.frames, "frame"),
            cells::plural(s.tcp_packets, "TCP packet"),
            cells::plural(s.flows, "connection")
        );
        if invalid == 0 {
            p.push_str("Conntrack classes **no packet INVALID**");
        } else {
            let _ = write!(p, "Conntrack classes **{invalid} INVALID** ({})", by_reason(|o| o.invalid + o.dropped));
            if dropped > 0 {
                let _ = write!(p, ", {dropped} of which it drops itself");
            }
        }
        if ignored > 0 {
            let _ = write!(p, "; it accepts but ignores **{ignored}** ({})", by_reason(|o| o.ignored));
        }
        if logged > 0 {
            let _ = write!(p, "; it logs {logged} more without refusing them ({})", by_reason(|o| o.logged));
        }
        p.push('.');
        if let Some(run) = &self.run {
            let sysctls = if run.sysctls.is_empty() {
                "defaults".to_string()
            } else {
                run.sysctls.iter().map(|s| code(s)).collect::<Vec<_>>().join(", ")
            };
            let _ = write!(p, "\nReplayed with kernel profile {}, sysctls {sysctls}, vantage {}.", code(run.kernel_profile), code(&run.vantage));
        }
        if !s.local_addresses.is_empty() {
            let _ = write!(p, " Taken as the capturing host (its packets are judged at OUTPUT, where checksums are not checked): {}.", s.local_addresses.join(", "));
        }
        if let Some(line) = kernels::summary_line(s) {
            let _ = write!(p, "\nOther kernel profiles: {line}.");
        }
        let skipped: u64 = s.skipped.values().sum();
        if skipped > 0 {
            let _ = write!(p, " {skipped} frames never reached conntrack (not TCP, or dropped before it).");
        }
        p
    }
}

impl<W: Write> MarkdownReport<W> {
    /// The connections the notable packets belong to, one row per conntrack entry.
    fn flows_table(&self) -> String {
        let mut md = String::from("### Connections\n\n|");
        for h in cells::FLOW_HEADER {
            let _ = write!(md, " {h} |");
        }
        md.push_str("\n|---|---|---|---|---:|---|---|---:|---:|---|\n");
        for f in &self.flows.rows {
            let mut c = cells::flow_row(f);
            // the tuple and the history are copied and grepped: code, as in the packets table
            c[0] = code(&c[0]);
            c[6] = code(&c[6]);
            md.push('|');
            for c in c {
                let _ = write!(md, " {} |", cell(&c));
            }
            md.push('\n');
        }
        if self.flows.omitted > 0 {
            let _ = writeln!(md, "\n… {} more connections not shown (use `--format jsonl` for all of them).", self.flows.omitted);
        }
        md.push_str("\nHistory: one letter per packet, uppercase from the originator, lowercase from the responder \
                     (S SYN, H SYN/ACK, A ACK, D data, F FIN, R RST, N none of these; docs/output.md); `!` INVALID, `~` ignored.\n\n");
        md
    }
}

/// A table cell: `|` would end the cell, a line break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// `s` as inline code, fenced with more backticks than it contains in a row; "" stays "".
fn code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // a code span that starts or ends with a backtick needs a space to keep it off the fence
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

impl<W: Write> Sink for MarkdownReport<W> {
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
        let v: &Verdict = obs.verdict;
        if let Some(r) = &v.reason {
            self.counts.entry(r.id).or_default().add(v.action);
        }
        if !(self.all || obs.is_notable()) {
            return Ok(());
        }
        if self.rows.len() >= self.max_rows {
            self.omitted += 1;
            return Ok(());
        }
        self.rows.push(Self::row(obs));
        if let (true, Some(r), Some(e)) = (v.is_invalid(), &v.reason, &v.entry) {
            let line = format!("frame {}: {}", cells::frame(obs.frame), cells::entry_line(e));
            self.entries.entry(r.id).or_default().push(line);
        }
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(err.to_string());
        Ok(())
    }

    fn end(&mut self, s: &Summary) -> io::Result<()> {
        let mut md = String::new();
        let captures = self.run.as_ref().map(|r| r.captures.iter().map(|c| code(c)).collect::<Vec<_>>().join(", "));
        let _ = writeln!(md, "## ctreplay: {}\n", captures.unwrap_or_default());
        let _ = writeln!(md, "{}\n", self.findings(s));
        if !self.errors.is_empty() {
            md.push_str("**The capture could not be read whole**; this report covers what was read:\n\n");
            for e in &self.errors {
                let _ = writeln!(md, "- {}", code(e));
            }
            md.push('\n');
        }
        if !self.rows.is_empty() {
            md.push_str(HEADER);
            for r in &self.rows {
                md.push_str(r);
                md.push('\n');
            }
            if self.omitted > 0 {
                let _ = writeln!(md, "\n… {} more packets not shown (use `--format jsonl` for all of them).", self.omitted);
            }
            md.push('\n');
        }
        self.flows.finish();
        if !self.flows.rows.is_empty() {
            md.push_str(&self.flows_table());
        }
        for (id, outcomes) in &self.counts {
            let info = reasons::info(*id);
            let _ = writeln!(md, "### `{id}` ({})\n\n{}\n", outcomes.describe(), info.explanation);
            md.push_str("Usual causes:\n");
            for c in info.causes {
                let _ = writeln!(md, "- {c}");
            }
            md.push_str("\nWhat helps:\n");
            for f in info.fixes {
                let _ = writeln!(md, "- {f}");
            }
            if let Some(lines) = self.entries.get(id) {
                md.push_str("\nThe conntrack entries these INVALID packets met:\n");
                for l in lines {
                    let _ = writeln!(md, "- {l}");
                }
            }
            md.push('\n');
        }
        self.out.write_all(md.trim_end().as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::state::{Dir, TcpState};
    use crate::report::test_support::{self, TestFrame};
    use crate::verdict::CreatedBy;

    fn run_info() -> RunInfo {
        test_support::run_info(&["proxy.pcap"])
    }

    fn render(mut report: MarkdownReport<&mut Vec<u8>>, frames: &[TestFrame], summary: &Summary) {
        report.begin(&run_info()).unwrap();
        for f in frames {
            report.packet(&f.obs()).unwrap();
        }
        report.end(summary).unwrap();
    }

    /// The motivating case: a back-end segment picked up as a reversed entry, then two SYNs
    /// that meet it; one overshooting segment ignored.
    fn frames() -> Vec<TestFrame> {
        const LOG: &str = "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED";
        vec![
            TestFrame::tcp(3, ".").reversed(),
            TestFrame::tcp(12, "S").invalid(ReasonId::SynMeetsReversedEntry, &[LOG]).entry(3, CreatedBy::Pickup, Dir::Reply, TcpState::Established),
            TestFrame::tcp(13, "P.").ignored(ReasonId::SeqOvershootIgnored, &["nf_ct_proto_6: seq|overshoot"]),
            TestFrame::tcp(14, "S").invalid(ReasonId::SynMeetsReversedEntry, &[LOG]).entry(1, CreatedBy::Syn, Dir::Reply, TcpState::TimeWait),
        ]
    }

    fn summary() -> Summary {
        let mut s = Summary { frames: 20, tcp_packets: 18, flows: 2, invalid: 2, ignored: 1, ..Summary::default() };
        s.skipped.insert("not IP".into(), 2);
        s
    }

    fn markdown(max_rows: usize, frames: &[TestFrame]) -> String {
        let mut out = Vec::new();
        render(MarkdownReport::new(&mut out, false).with_max_rows(max_rows), frames, &summary());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn heading_findings_table_and_explanations() {
        let md = markdown(100, &frames());
        let expected_start = "## ctreplay: `proxy.pcap`\n\n\
**What ctreplay found:** 20 frames (18 TCP packets, 2 connections tracked). \
Conntrack classes **2 INVALID** (`syn-meets-reversed-entry` ×2); \
it accepts but ignores **1** (`seq-overshoot-ignored` ×1).\n\
Replayed with kernel profile `latest`, sysctls defaults, vantage `auto`. 2 frames never reached conntrack (not TCP, or dropped before it).\n\n\
| frame | time (UTC) | flow | packet | conntrack state | verdict | reason | kernel log |\n\
|---:|---|---|---|---|---|---|---|\n\
| 12 | 2023-11-14 22:13:32.000250 | `10.0.0.1:40000>10.0.0.2:80` | [S] seq=1012 ack=5000 len=0 win=64240 | ESTABLISHED | invalid | `syn-meets-reversed-entry` | `nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED` |\n\
| 13 | 2023-11-14 22:13:33.000250 | `10.0.0.1:40000>10.0.0.2:80` | [P.] seq=1013 ack=5000 len=0 win=64240 | ESTABLISHED | ignore | `seq-overshoot-ignored` | `nf_ct_proto_6: seq\\|overshoot` |\n";
        assert!(md.starts_with(expected_start), "{md}");
        // a section per reason met, in catalogue order, with its texts from the catalogue
        let syn = md.find("### `syn-meets-reversed-entry` (2 INVALID)\n\n").expect(&md);
        let over = md.find("### `seq-overshoot-ignored` (1 ignored)\n\n").expect(&md);
        assert!(syn < over);
        let info = reasons::info(ReasonId::SynMeetsReversedEntry);
        assert!(md.contains(info.explanation));
        assert!(md.contains(&format!("- {}\n", info.causes[0])));
        assert!(md.contains(&format!("- {}\n", info.fixes[0])));
        // the entries the INVALID packets met, under their reason; none for the ignored one
        assert!(md.contains(
            "The conntrack entries these INVALID packets met:\n\
             - frame 12: created by mid-stream pickup of frame 3, state ESTABLISHED, orientation reply\n\
             - frame 14: created at frame 1 by a SYN, state TIME_WAIT, orientation reply\n"
        ), "{md}");
        assert_eq!(md.matches("entries these INVALID packets met").count(), 1);
        assert!(md.ends_with("\n") && !md.ends_with("\n\n"));
    }

    #[test]
    fn rows_are_capped_counts_are_not() {
        let md = markdown(1, &frames());
        assert_eq!(md.matches("\n| 1").count(), 1, "{md}");
        assert!(md.contains("… 2 more packets not shown"), "{md}");
        assert!(md.contains("**2 INVALID** (`syn-meets-reversed-entry` ×2)"));
        assert!(md.contains("### `seq-overshoot-ignored` (1 ignored)"), "explanations cover every reason met");
        assert!(md.contains("- frame 12: created by"), "{md}");
        assert!(!md.contains("- frame 14:"), "no entry line for a row not shown");
    }

    #[test]
    fn clean_capture() {
        let mut out = Vec::new();
        let summary = Summary { frames: 1, tcp_packets: 1, flows: 1, ..Summary::default() };
        render(MarkdownReport::new(&mut out, false), &[TestFrame::tcp(1, "S")], &summary);
        let md = String::from_utf8(out).unwrap();
        assert!(md.contains("**What ctreplay found:** 1 frame (1 TCP packet, 1 connection tracked). Conntrack classes **no packet INVALID**."), "{md}");
        assert!(!md.contains("| frame |") && !md.contains("###"), "{md}");
    }

    #[test]
    fn errors_are_said_first() {
        let mut out = Vec::new();
        let mut r = MarkdownReport::new(&mut out, false);
        r.begin(&run_info()).unwrap();
        let e = CaptureError { file: "proxy.pcap".into(), frame: Some(9), offset: None, kind: crate::capture::CaptureErrorKind::TruncatedRecord };
        r.error(&e).unwrap();
        r.end(&Summary::default()).unwrap();
        let md = String::from_utf8(out).unwrap();
        assert!(md.contains("**The capture could not be read whole**"), "{md}");
        assert!(md.contains("- `proxy.pcap: frame 9: capture ends inside a record (truncated file)`"), "{md}");
    }

    #[test]
    fn escaping() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(code("x"), "`x`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a"), "`` `a ``");
        assert_eq!(code(""), "");
    }
}
