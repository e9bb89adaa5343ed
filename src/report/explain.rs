//! `ctreplay explain`: the timeline of one connection, packet by packet, for a person — every
//! frame of one tuple (both directions) with its verdict and the entry's window data after it,
//! where one conntrack entry ends and the next begins, and one frame's reason spelled out.
//!
//! Conntrack state of one tuple does not depend on other tuples, so the whole capture is
//! analysed as usual (with snapshots) and this sink keeps only the tuple's frames. Which tuple
//! `--frame N` means is known only at frame N, so the CLI first runs [`FindFrame`] to learn it.

use super::cells;
use super::flows::{belongs, Belongs};
use super::reasons;
use super::record::{ErrorRecord, PacketRecord};
use crate::capture::{CaptureError, LinkType, Timestamp};
use crate::conntrack::state::{Dir, Index, TcpState};
use crate::conntrack::window::{flag, Bound, DirState};
use crate::conntrack::{Hook, Snapshot};
use crate::decode::{Segment, Tuple};
use crate::engine::{EngineError, Observation, RunInfo, Sink, Summary, Timing};
use crate::verdict::{Action, CreatedBy, EntryInfo, Evidence, FrameRef, Reason, Verdict};
use serde::{Serialize, Serializer};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// Frames of the flow kept before the target (older ones are dropped, and counted), and after it.
pub const MAX_ROWS: usize = 10_000;

/// `10.0.0.1:40000>10.0.0.2:80` or `[2001:db8::1]:40000>[2001:db8::2]:80` (the form the
/// reports print flows in), spaces around `>` allowed.
pub fn parse_flow(s: &str) -> Result<Tuple, String> {
    let (a, b) = s.split_once('>').ok_or_else(|| format!("{s:?}: expected SRC:PORT>DST:PORT"))?;
    let side = |x: &str| x.trim().parse::<SocketAddr>().map_err(|e| format!("{:?}: {e} (expected ADDR:PORT, [IPv6]:PORT)", x.trim()));
    let (src, dst) = (side(a)?, side(b)?);
    Ok(Tuple { src: src.ip(), dst: dst.ip(), sport: src.port(), dport: dst.port() })
}

/// `10.0.0.1:40000`, `[2001:db8::1]:40000`.
fn endpoint(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

// ---------------------------------------------------------------------------------------------
// Pass 1: which tuple is frame N?

/// What frame N turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Tcp(Tuple),
    /// Conntrack's TCP tracker never saw it as a segment of a flow; why, in words.
    NotTcp(String),
}

/// The error a sink returns to end a run early: the engine passes it back as
/// [`EngineError::Output`], and [`is_stop`] tells it from a real one.
#[derive(Debug)]
struct StopRun;

impl std::fmt::Display for StopRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("run stopped: the frame was found")
    }
}

impl std::error::Error for StopRun {}

/// Whether a run ended because [`FindFrame`] had what it wanted.
pub fn is_stop(e: &EngineError) -> bool {
    matches!(e, EngineError::Output(io) if io.get_ref().is_some_and(|inner| inner.is::<StopRun>()))
}

/// Finds frame `want` and stops the run there, so that finding a frame early in a large capture
/// costs only what comes before it.
pub struct FindFrame {
    want: FrameRef,
    pub found: Option<Found>,
}

impl FindFrame {
    pub fn new(want: FrameRef) -> Self {
        FindFrame { want, found: None }
    }
}

impl Sink for FindFrame {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        if obs.frame != self.want {
            return Ok(());
        }
        self.found = Some(match (obs.segment, &obs.skip, &obs.verdict.reason) {
            (Some(s), _, _) => Found::Tcp(s.tuple),
            (None, Some(skip), _) => Found::NotTcp(skip.to_string()),
            (None, None, Some(r)) => Found::NotTcp(format!(
                "its TCP header cannot be read, so it belongs to no flow; conntrack classes it INVALID ({})",
                r.id
            )),
            (None, None, None) => Found::NotTcp("conntrack never saw it".into()),
        });
        Err(io::Error::other(StopRun))
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 2: the flow's frames.

/// One frame of the flow, owned (an [`Observation`] borrows the reader's buffer).
#[derive(Clone, Debug)]
pub struct Row {
    pub frame: FrameRef,
    pub ts: Timestamp,
    ct_ts: Timestamp,
    linktype: LinkType,
    orig_len: u32,
    pub seg: Segment,
    hook: Option<Hook>,
    pub verdict: Verdict,
    skip: Option<crate::decode::Skip>,
    /// The entry after the packet (none: no entry, or it was deleted).
    pub after: Option<Snapshot>,
    seq: u64,
}

impl Row {
    fn obs(&self) -> Observation<'_> {
        Observation {
            frame: self.frame,
            ts: self.ts,
            ct_ts: self.ct_ts,
            linktype: self.linktype,
            data: &[],
            orig_len: self.orig_len,
            segment: Some(&self.seg),
            hook: self.hook,
            verdict: &self.verdict,
            skip: self.skip.as_ref(),
            after: self.after,
            kernels: &[],
            seq: self.seq,
            entry_log: None,
        }
    }

    /// Conntrack never saw it (`--truncated skip`).
    fn skipped(&self) -> bool {
        self.skip.is_some()
    }
}

/// Output format of `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// What `explain` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One frame, and the flow it belongs to.
    Frame(FrameRef, Tuple),
    /// One flow, either direction.
    Flow(Tuple),
}

impl Target {
    pub fn tuple(&self) -> Tuple {
        match *self {
            Target::Frame(_, t) | Target::Flow(t) => t,
        }
    }
    fn frame(&self) -> Option<FrameRef> {
        match *self {
            Target::Frame(f, _) => Some(f),
            Target::Flow(_) => None,
        }
    }
}

/// Collects one flow's frames during a run, and writes its timeline at the end. The run must
/// have `snapshots: true`: without the entry after each packet, every entry looks deleted.
pub struct Explain<W: Write> {
    out: W,
    format: Format,
    /// Bold the target's row (a terminal).
    bold: bool,
    target: Target,
    timing: Timing,
    /// [`MAX_ROWS`], but tests need less.
    max_rows: usize,
    rows: VecDeque<Row>,
    /// Rows dropped before the target, not kept after it.
    omitted_before: u64,
    omitted_after: u64,
    kept_after: usize,
    target_seen: bool,
    /// The flow's first frame, even if its row was dropped: times are relative to it.
    first_ts: Option<Timestamp>,
    /// The capture's last frame, of any flow: whether an entry outlived the capture.
    last_capture_ts: Option<Timestamp>,
    run: Option<RunInfo>,
    /// The captures as the user named them (stdin is read from a copy).
    names: Option<Vec<String>>,
    errors: Vec<String>,
    error_records: Vec<serde_json::Value>,
}

impl<W: Write> Explain<W> {
    pub fn new(out: W, format: Format, bold: bool, target: Target, timing: Timing) -> Self {
        Explain {
            out,
            format,
            bold,
            target,
            timing,
            max_rows: MAX_ROWS,
            rows: VecDeque::new(),
            omitted_before: 0,
            omitted_after: 0,
            kept_after: 0,
            target_seen: false,
            first_ts: None,
            last_capture_ts: None,
            run: None,
            names: None,
            errors: Vec::new(),
            error_records: Vec::new(),
        }
    }

    /// Names the captures as the user gave them, when the run reads copies.
    pub fn named(mut self, captures: Vec<String>) -> Self {
        self.names = Some(captures);
        self
    }

    #[cfg(test)]
    fn with_max_rows(mut self, n: usize) -> Self {
        self.max_rows = n;
        self
    }

    /// Whether there was something to explain: the target frame, or any frame of the flow.
    pub fn explained(&self) -> bool {
        match self.target {
            Target::Frame(..) => self.target_seen,
            Target::Flow(_) => !self.rows.is_empty(),
        }
    }
}

impl<W: Write> Sink for Explain<W> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        let mut run = run.clone();
        if let Some(names) = &self.names {
            run.captures = names.clone();
        }
        self.run = Some(run);
        Ok(())
    }

    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        self.last_capture_ts = Some(obs.ts);
        let Some(seg) = obs.segment else { return Ok(()) };
        let t = self.target.tuple();
        if seg.tuple != t && seg.tuple != t.reversed() {
            return Ok(());
        }
        self.first_ts.get_or_insert(obs.ts);
        let is_target = self.target.frame() == Some(obs.frame);
        match self.target.frame() {
            // After the target: a bounded tail.
            Some(_) if self.target_seen => {
                if self.kept_after >= self.max_rows {
                    self.omitted_after += 1;
                    return Ok(());
                }
                self.kept_after += 1;
            }
            // Before it: the latest frames, which lead up to it.
            Some(_) => {
                if self.rows.len() >= self.max_rows {
                    self.rows.pop_front();
                    self.omitted_before += 1;
                }
            }
            None => {
                if self.rows.len() >= self.max_rows {
                    self.omitted_after += 1;
                    return Ok(());
                }
            }
        }
        self.target_seen |= is_target;
        self.rows.push_back(Row {
            frame: obs.frame,
            ts: obs.ts,
            ct_ts: obs.ct_ts,
            linktype: obs.linktype,
            orig_len: obs.orig_len,
            seg: *seg,
            hook: obs.hook,
            verdict: obs.verdict.clone(),
            skip: obs.skip.cloned(),
            after: obs.after,
            seq: obs.seq,
        });
        Ok(())
    }

    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(err.to_string());
        self.error_records.push(serde_json::to_value(ErrorRecord::new(err))?);
        Ok(())
    }

    fn end(&mut self, _: &Summary) -> io::Result<()> {
        if !self.explained() {
            return Ok(());
        }
        self.rows.make_contiguous();
        let bold = self.bold;
        // Rendered whole before writing: the timeline borrows the rows.
        let output = {
            let timeline = Timeline::new(self);
            match self.format {
                Format::Table => timeline.text(bold).into_bytes(),
                Format::Json => {
                    let mut v = timeline.json()?;
                    v.push(b'\n');
                    v
                }
            }
        };
        self.out.write_all(&output)?;
        self.out.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Entries: where one ends and the next begins.

/// A run of consecutive rows that met (or created) the same entry, or met none.
#[derive(Clone, Debug, PartialEq)]
struct Span {
    first: usize,
    last: usize,
    /// `None`: these packets met no entry.
    entry: Option<SpanEntry>,
    end: Option<SpanEnd>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
struct SpanEntry {
    created_frame: FrameRef,
    created_by: CreatedBy,
    /// The entry's ORIGINAL tuple.
    #[serde(serialize_with = "display")]
    original: Tuple,
}

/// How an entry ended, as the flow's own frames and snapshots show it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
enum SpanEnd {
    /// A SYN met it in TIME_WAIT or CLOSE and started a new entry.
    Reopened { frame: FrameRef, state: TcpState },
    /// Conntrack destroyed it and dropped the packet (2.6.18's out-of-sync kill).
    Killed { frame: FrameRef },
    /// Gone right after this packet: an RST while no reply had been seen.
    Deleted { frame: FrameRef, rst: bool },
    /// Its timeout ran out; `next` is the frame that found it gone (none: before the capture ended).
    Expired {
        last: FrameRef,
        state: TcpState,
        #[serde(serialize_with = "secs")]
        at: Timestamp,
        timeout: f64,
        next: Option<FrameRef>,
    },
    /// Gone before its timeout ran out, with no packet of the flow to say why (a full table
    /// evicts entries that are not assured).
    Vanished { last: FrameRef, next: FrameRef },
    /// Alive when the capture ends; `expires_in` counts from the capture's last frame (none:
    /// back-to-back timing, where nothing expires).
    Alive { state: TcpState, expires_in: Option<f64> },
}

fn display<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn secs<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ts.as_secs_f64())
}

/// Which entry a row belongs to (a skipped row belongs to none of its own).
fn row_entry(r: &Row) -> Option<SpanEntry> {
    match belongs(&r.obs(), &r.seg) {
        Belongs::Entry { created, by, orig, .. } => {
            Some(SpanEntry { created_frame: created, created_by: by, original: orig })
        }
        Belongs::None => None,
    }
}

/// Cuts the rows into spans, one per entry, and says how each entry ended.
fn spans(rows: &[Row], timing: Timing, last_capture_ts: Option<Timestamp>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        // A frame conntrack never saw does not interrupt an entry.
        let entry = if r.skipped() { out.last().and_then(|s| s.entry) } else { row_entry(r) };
        match out.last_mut() {
            Some(s) if s.entry == entry => s.last = i,
            _ => out.push(Span { first: i, last: i, entry, end: None }),
        }
    }
    for k in 0..out.len() {
        if out[k].entry.is_some() {
            let next = out.get(k + 1).map(|n| &rows[n.first]);
            out[k].end = Some(span_end(&rows[out[k].first..=out[k].last], out[k].entry.unwrap(), next, timing, last_capture_ts));
        }
    }
    out
}

fn span_end(rows: &[Row], entry: SpanEntry, next: Option<&Row>, timing: Timing, last_capture_ts: Option<Timestamp>) -> SpanEnd {
    // The last frame conntrack saw decides; a span always has one (it starts with one).
    let last = rows.iter().rev().find(|r| !r.skipped()).unwrap_or(&rows[rows.len() - 1]);
    if let Some(n) = next
        && n.verdict.replaced.as_ref().is_some_and(|r| r.created_frame == entry.created_frame)
    {
        let state = n.verdict.replaced.as_ref().map_or(TcpState::None, |r| r.state);
        return SpanEnd::Reopened { frame: n.frame, state };
    }
    if last.verdict.action == Action::Drop && last.verdict.entry.is_some() {
        return SpanEnd::Killed { frame: last.frame };
    }
    let Some(after) = last.after else {
        return SpanEnd::Deleted { frame: last.frame, rst: last.seg.flags.rst() };
    };
    let state = after.tcp.state;
    // Under back-to-back timing the tracker's clock stands still: nothing expires.
    let expiry = (timing == Timing::Capture).then(|| Timestamp(last.ts.0.saturating_add(after.remaining_ns)));
    let timeout = after.remaining_ns as f64 / 1e9;
    match (next, expiry) {
        (Some(n), Some(at)) if n.ts >= at => SpanEnd::Expired { last: last.frame, state, at, timeout, next: Some(n.frame) },
        (Some(n), _) => SpanEnd::Vanished { last: last.frame, next: n.frame },
        (None, Some(at)) if last_capture_ts.is_some_and(|end| end >= at) => {
            SpanEnd::Expired { last: last.frame, state, at, timeout, next: None }
        }
        (None, Some(at)) => {
            let end = last_capture_ts.unwrap_or(last.ts);
            SpanEnd::Alive { state, expires_in: Some((at.0 - end.0) as f64 / 1e9) }
        }
        (None, None) => SpanEnd::Alive { state, expires_in: None },
    }
}

// ---------------------------------------------------------------------------------------------
// Words.

/// `table[reply][SYN][ESTABLISHED] = INVALID`, `seq 66200 > td_maxend 66161 of the sender: …`:
/// the numbers behind a reason, in sentences. `sender` / `receiver` name the two ends.
pub fn evidence_words(r: &Reason, sender: &str, receiver: &str) -> Vec<String> {
    match &r.evidence {
        Evidence::None => Vec::new(),
        Evidence::Cell { dir, index, state, result } => {
            let what = match *result {
                "invalid" => "INVALID: the state table has no transition for it".to_string(),
                "ignore" => "IGNORE: the packet passes, but may not change the entry".to_string(),
                to => format!("{}: the table would move the entry to {to}, but the handler overrules it here", to.to_uppercase()),
            };
            vec![format!(
                "table[{}][{}][{state}] = {what} (a {} travelling in the entry's {} direction, entry in {state})",
                cells::orientation(*dir),
                index.name(),
                index.name(),
                cells::orientation(*dir).to_uppercase()
            )]
        }
        Evidence::Window(w) => {
            let (s, rcv) = (&w.sender, &w.receiver);
            let first = match w.bound {
                Bound::SeqOverUpper => format!(
                    "seq {} > td_maxend {} of the sender: the segment starts {} bytes beyond the window the receiver advertised",
                    w.seq,
                    s.td_maxend,
                    w.seq.wrapping_sub(s.td_maxend)
                ),
                Bound::SeqOvershoot => format!(
                    "end {} > td_maxend {} of the sender: the segment reaches {} bytes past the window the receiver advertised, \
                     no more than its largest window (td_maxwin {}), so it is accepted but ignored",
                    w.end,
                    s.td_maxend,
                    w.overshoot.unwrap_or(0),
                    rcv.td_maxwin
                ),
                Bound::AckOverUpper => format!(
                    "ack {} > td_end {} of the receiver: it acknowledges {} bytes the receiver never sent, as far as conntrack saw",
                    w.sack,
                    rcv.td_end,
                    w.sack.wrapping_sub(rcv.td_end)
                ),
                Bound::SeqUnderLower => {
                    let lower = s.td_end.wrapping_sub(rcv.td_maxwin);
                    format!(
                        "end {} < td_end {} of the sender − td_maxwin {} of the receiver = {lower}: the whole segment lies {} bytes \
                         below what the receiver can still want (data already acknowledged)",
                        w.end,
                        s.td_end,
                        rcv.td_maxwin,
                        lower.wrapping_sub(w.end)
                    )
                }
                Bound::AckUnderLower => {
                    let lower = rcv.td_end.wrapping_sub(s.td_maxwin.max(66_000));
                    format!(
                        "ack {} < td_end {} of the receiver − max(td_maxwin {} of the sender, 66000) = {lower}: an acknowledgement \
                         {} bytes older than the oldest conntrack tolerates",
                        w.ack,
                        rcv.td_end,
                        s.td_maxwin,
                        lower.wrapping_sub(w.ack)
                    )
                }
            };
            let mut v = vec![first];
            if w.sack != w.ack {
                v.push(format!("(ack {} with SACK up to {})", w.ack, w.sack));
            }
            v.push(format!("the kernel's log number is {}", w.logged_value));
            v.push(format!("sender {sender} when checked: {}", dir_words(s)));
            v.push(format!("receiver {receiver} when checked: {}", dir_words(rcv)));
            v
        }
        Evidence::Rst { seq, td_maxack } => vec![format!(
            "RST seq {seq} < td_maxack {td_maxack} (the highest ACK {receiver} sent): it points {} bytes into data already acknowledged",
            td_maxack.wrapping_sub(*seq)
        )],
        Evidence::Flags { flags } => vec![format!(
            "TCP flags 0x{flags:02x} ({}): a combination no TCP stack sends",
            crate::decode::TcpFlags(*flags)
        )],
        Evidence::Length { doff, l4_len } => vec![format!(
            "data offset {doff} ({} bytes of TCP header) in a TCP segment of {l4_len} bytes",
            *doff as u32 * 4
        )],
        Evidence::TableFull { max } => {
            vec![format!("the table held nf_conntrack_max = {max} entries, none of them evictable (all assured)")]
        }
    }
}

/// `td_end 1001, td_maxend 66161, td_maxwin 64240, td_maxack 5001, td_scale 0, flags MAXACK_SET`.
fn dir_words(d: &DirState) -> String {
    let names = flag::names(d.flags);
    format!(
        "td_end {}, td_maxend {}, td_maxwin {}, td_maxack {}, td_scale {}, flags {}",
        d.td_end,
        d.td_maxend,
        d.td_maxwin,
        d.td_maxack,
        d.td_scale,
        if names.is_empty() { "none".to_string() } else { names.join("|") }
    )
}

/// The entry a frame met: how it was created, its orientation, age and time left.
fn entry_words(e: &EntryInfo, at: Timestamp, creator: Option<&Row>) -> String {
    let mut s = cells::created_words(e.created_by, e.created_frame);
    if let Some(c) = creator {
        let what = match e.created_by {
            CreatedBy::Syn => "",
            CreatedBy::Pickup if c.seg.payload_len() > 0 => "a data segment ",
            CreatedBy::Pickup => "a segment ",
        };
        s.push_str(&format!(" ({what}[{}] from {})", c.seg.flags, endpoint(c.seg.tuple.src, c.seg.tuple.sport)));
    }
    let orig = match e.orientation {
        Dir::Original => "this packet travels in its ORIGINAL direction".to_string(),
        Dir::Reply => "this packet travels in its REPLY direction: the entry was created the other way round".to_string(),
    };
    format!(
        "{s}; {orig}; state {}, {}, {}; age {}, expires in {}",
        e.state,
        if e.assured { "assured" } else { "not assured" },
        if e.seen_reply { "reply seen" } else { "no reply seen" },
        cells::duration(at.0 - e.created_ts.0),
        cells::duration(e.expires.0 - at.0)
    )
}

impl SpanEnd {
    fn words(&self, rel: &dyn Fn(Timestamp) -> String) -> String {
        match *self {
            SpanEnd::Reopened { frame, state } => {
                format!("ends: frame {}'s SYN met it in {state} and reopened the tuple as a new entry", cells::frame(frame))
            }
            SpanEnd::Killed { frame } => {
                format!("ends: conntrack destroyed it at frame {} (out of sync) and dropped that packet", cells::frame(frame))
            }
            SpanEnd::Deleted { frame, rst: true } => format!(
                "ends: deleted by the RST of frame {} (the entry had seen no reply, so conntrack forgets it at once)",
                cells::frame(frame)
            ),
            SpanEnd::Deleted { frame, rst: false } => format!("ends: deleted after frame {}", cells::frame(frame)),
            SpanEnd::Expired { last, state, at, timeout, next } => {
                let mut s = format!(
                    "ends: expired at {} ({state} timeout: {} after frame {})",
                    rel(at),
                    cells::duration((timeout * 1e9) as i64),
                    cells::frame(last)
                );
                match next {
                    Some(n) => s.push_str(&format!("; frame {} found it gone", cells::frame(n))),
                    None => s.push_str(", before the capture ends"),
                }
                s
            }
            SpanEnd::Vanished { last, next } => format!(
                "ends: gone before its timeout ran out, after frame {} — frame {} found no entry (a full table evicts entries that are not assured)",
                cells::frame(last),
                cells::frame(next)
            ),
            SpanEnd::Alive { state, expires_in: Some(left) } => {
                format!("alive when the capture ends: {state}, expires {} later", cells::duration((left * 1e9) as i64))
            }
            SpanEnd::Alive { state, expires_in: None } => {
                format!("alive when the capture ends: {state} (back-to-back timing: entries never expire)")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// Everything the output says, computed once for both formats.
struct Timeline<'a> {
    rows: &'a [Row],
    spans: Vec<Span>,
    target: Target,
    first_ts: Timestamp,
    /// The frame spelled out below the table: the target, or a flow's first notable frame.
    focus: Option<usize>,
    omitted_before: u64,
    omitted_after: u64,
    run: Option<&'a RunInfo>,
    errors: &'a [String],
    error_records: &'a [serde_json::Value],
    several_files: bool,
}

impl<'a> Timeline<'a> {
    fn new<W: Write>(e: &'a Explain<W>) -> Timeline<'a> {
        let rows = e.rows.as_slices().0;
        let focus = match e.target {
            Target::Frame(f, _) => rows.iter().position(|r| r.frame == f),
            Target::Flow(_) => rows
                .iter()
                .position(|r| r.verdict.is_invalid())
                .or_else(|| rows.iter().position(|r| r.verdict.is_notable())),
        };
        Timeline {
            rows,
            spans: spans(rows, e.timing, e.last_capture_ts),
            target: e.target,
            first_ts: e.first_ts.unwrap_or(Timestamp(0)),
            focus,
            omitted_before: e.omitted_before,
            omitted_after: e.omitted_after,
            run: e.run.as_ref(),
            errors: &e.errors,
            error_records: &e.error_records,
            several_files: e.run.as_ref().is_some_and(|r| r.captures.len() > 1),
        }
    }

    fn rel(&self, ts: Timestamp) -> String {
        format!("+{:.6}", (ts.0 - self.first_ts.0) as f64 / 1e9)
    }

    /// 1-based, counting only the spans that have an entry.
    fn entry_number(&self, k: usize) -> usize {
        self.spans[..=k].iter().filter(|s| s.entry.is_some()).count()
    }

    fn span_header(&self, k: usize, s: &Span) -> String {
        match &s.entry {
            Some(e) => format!(
                "entry {}: {} · ORIGINAL {}",
                self.entry_number(k),
                cells::created_words(e.created_by, e.created_frame),
                e.original
            ),
            None => "no entry: these packets met no conntrack entry".to_string(),
        }
    }

    /// The flow as both ends see it, `10.0.0.1:40000 <> 10.0.0.2:80`.
    fn flow_name(&self) -> String {
        let t = self.target.tuple();
        format!("{} <> {}", endpoint(t.src, t.sport), endpoint(t.dst, t.dport))
    }

    fn text(&self, bold: bool) -> String {
        let mut s = String::new();
        let entries = self.spans.iter().filter(|s| s.entry.is_some()).count();
        let what = match self.target {
            Target::Frame(f, _) => format!("frame {} and its flow {}", cells::frame(f), self.flow_name()),
            Target::Flow(_) => format!("flow {}", self.flow_name()),
        };
        s.push_str(&format!("ctreplay explain: {what}\n"));
        let frames = self.rows.len() as u64 + self.omitted_before + self.omitted_after;
        s.push_str(&format!(
            "{} from {} UTC, {}",
            cells::plural(frames, "frame"),
            cells::utc(self.first_ts),
            if entries == 1 { "1 conntrack entry".to_string() } else { format!("{entries} conntrack entries") }
        ));
        if let Some(run) = self.run {
            let sysctls = if run.sysctls.is_empty() { "defaults".to_string() } else { run.sysctls.join(" ") };
            s.push_str(&format!("; kernel {}, sysctls {sysctls}, vantage {}", run.kernel_profile, run.vantage));
        }
        s.push_str("\no.* / r.*: the entry's ORIGINAL / REPLY direction after the packet (td_end, td_maxend, td_maxwin, td_scale)\n\n");

        let header = [
            "", "frame", "time", "dir", "flags", "seq", "ack", "len", "win", "state", "verdict", "reason", "o.end", "o.maxend",
            "o.maxwin", "o.sc", "r.end", "r.maxend", "r.maxwin", "r.sc",
        ];
        // numbers line up on the right
        let right = |c: usize| matches!(c, 1 | 5..=8 | 12..);
        let cells: Vec<Vec<String>> = self.rows.iter().enumerate().map(|(i, r)| self.row_cells(i, r)).collect();
        let mut width = header.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cols: &[String]| -> String {
            let mut l = String::new();
            for (c, (text, w)) in cols.iter().zip(width).enumerate() {
                let pad = " ".repeat(w - text.chars().count());
                if c > 0 {
                    l.push_str("  ");
                }
                if right(c) { l.push_str(&(pad + text)) } else { l.push_str(&(text.clone() + &pad)) }
            }
            l.trim_end().to_string()
        };
        s.push_str(&line(&header.map(String::from)));
        s.push('\n');
        if self.omitted_before > 0 {
            s.push_str(&format!("… {} earlier frames of the flow not shown\n", self.omitted_before));
        }
        for (k, span) in self.spans.iter().enumerate() {
            s.push_str(&format!("── {}\n", self.span_header(k, span)));
            for (i, row) in cells.iter().enumerate().take(span.last + 1).skip(span.first) {
                let l = line(row);
                if bold && Some(i) == self.focus && self.target.frame().is_some() {
                    s.push_str(&format!("\x1b[1m{l}\x1b[0m\n"));
                } else {
                    s.push_str(&l);
                    s.push('\n');
                }
            }
            if let Some(end) = &span.end {
                s.push_str(&format!("── entry {} {}\n", self.entry_number(k), end.words(&|t| self.rel(t))));
            }
        }
        if self.omitted_after > 0 {
            s.push_str(&format!("… {} later frames of the flow not shown\n", self.omitted_after));
        }
        if let Some(i) = self.focus {
            s.push('\n');
            s.push_str(&self.narrative(i));
        }
        for e in self.errors {
            s.push_str(&format!("\nThe capture could not be read whole: {e}\n"));
        }
        s
    }

    fn row_cells(&self, i: usize, r: &Row) -> Vec<String> {
        let v = &r.verdict;
        let seg = &r.seg;
        let arrow = match v.dir {
            Some(Dir::Original) => "→",
            Some(Dir::Reply) => "←",
            None => "·",
        };
        let marker = if Some(i) == self.focus && self.target.frame().is_some() { "▶" } else { "" };
        let verdict = if r.skipped() { "skipped" } else { v.action.as_str() };
        let mut c = vec![
            marker.to_string(),
            cells::frame(r.frame),
            self.rel(r.ts),
            format!("{arrow} {}", endpoint(seg.tuple.src, seg.tuple.sport)),
            seg.flags.to_string(),
            seg.seq.to_string(),
            seg.ack.to_string(),
            seg.payload_len().to_string(),
            seg.window.to_string(),
            cells::states(v),
            verdict.to_string(),
            v.reason.as_ref().map(|r| r.id.to_string()).unwrap_or_default(),
        ];
        for d in 0..2 {
            match &r.after {
                Some(a) => {
                    let s = &a.tcp.seen[d];
                    c.extend([s.td_end.to_string(), s.td_maxend.to_string(), s.td_maxwin.to_string(), s.td_scale.to_string()]);
                }
                None => c.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        c
    }

    /// The sender and the receiver of a row's packet, as addresses.
    fn ends(r: &Row) -> (String, String) {
        let t = r.seg.tuple;
        (endpoint(t.src, t.sport), endpoint(t.dst, t.dport))
    }

    fn creator(&self, e: &EntryInfo) -> Option<&Row> {
        self.rows.iter().find(|r| r.frame == e.created_frame)
    }

    fn narrative(&self, i: usize) -> String {
        let r = &self.rows[i];
        let v = &r.verdict;
        let (sender, receiver) = Self::ends(r);
        let mut s = String::new();
        let head = match (&r.skip, &v.reason) {
            (Some(skip), _) => format!("never seen by conntrack: {skip}"),
            (None, Some(reason)) => {
                let what = match v.action {
                    Action::Invalid => "INVALID",
                    Action::Drop => "dropped by conntrack",
                    Action::Ignore => "accepted but ignored",
                    Action::Accept | Action::Skipped => "accepted, logged",
                };
                format!("{what}: {} ({})", reason.id, reasons::info(reason.id).category.as_str())
            }
            (None, None) => format!("accepted, {}; conntrack logs nothing about it", cells::states(v)),
        };
        let label = if self.target.frame().is_some() { "Frame" } else { "First notable frame:" };
        s.push_str(&format!("{label} {} — {head}\n", cells::frame(r.frame)));
        let field = |s: &mut String, name: &str, text: &str| s.push_str(&format!("  {name:<12}{text}\n"));
        field(&mut s, "packet", &format!(
            "{sender} > {receiver} [{}] seq={} ack={} len={} win={}, at {} s ({} UTC)",
            r.seg.flags,
            r.seg.seq,
            r.seg.ack,
            r.seg.payload_len(),
            r.seg.window,
            self.rel(r.ts),
            cells::utc(r.ts)
        ));
        if let Some(reason) = &v.reason {
            let info = reasons::info(reason.id);
            field(&mut s, "what", info.explanation);
            field(&mut s, "kernel log", &v.kernel_log().unwrap_or_else(|| "(not logged)".into()));
            for (k, line) in evidence_words(reason, &sender, &receiver).iter().enumerate() {
                field(&mut s, if k == 0 { "evidence" } else { "" }, line);
            }
        }
        match &v.entry {
            Some(e) => field(&mut s, "entry met", &entry_words(e, r.ts, self.creator(e))),
            None if v.created_entry() => {
                field(&mut s, "entry", "none: this packet created it")
            }
            None => field(&mut s, "entry met", "none: no entry existed for this tuple"),
        }
        if let Some(old) = &v.replaced {
            field(&mut s, "replaced", &format!("the old entry ({}) ended here", cells::entry_line(old)));
        }
        if let Some(reason) = &v.reason {
            let info = reasons::info(reason.id);
            for (k, c) in info.causes.iter().enumerate() {
                field(&mut s, if k == 0 { "causes" } else { "" }, &format!("- {c}"));
            }
            for (k, f) in info.fixes.iter().enumerate() {
                field(&mut s, if k == 0 { "what helps" } else { "" }, &format!("- {f}"));
            }
            let liberal = if info.be_liberal_helps { "would let it through" } else { "does not help" };
            field(&mut s, "be_liberal", &format!("nf_conntrack_tcp_be_liberal=1 {liberal}"));
        }
        s
    }

    /// The document, serialised here: its rows borrow observations made for the purpose.
    fn json(&self) -> serde_json::Result<Vec<u8>> {
        let entry_of = |i: usize| self.spans.iter().position(|s| (s.first..=s.last).contains(&i) && s.entry.is_some());
        // (a packet record borrows its observation, so they must outlive the records)
        let observations: Vec<Observation<'_>> = self.rows.iter().map(Row::obs).collect();
        let rows: Vec<RowRecord<'_>> = self
            .rows
            .iter()
            .zip(&observations)
            .enumerate()
            .map(|(i, (r, obs))| RowRecord {
                packet: PacketRecord::new(obs, self.several_files),
                rel: (r.ts.0 - self.first_ts.0) as f64 / 1e9,
                target: Some(i) == self.focus && self.target.frame().is_some(),
                entry_index: entry_of(i).map(|k| self.entry_number(k) - 1),
                after: r.after.map(|a| AfterRecord::new(&a)),
            })
            .collect();
        let entries: Vec<EntryRecord> = self
            .spans
            .iter()
            .filter_map(|s| {
                Some(EntryRecord {
                    entry: s.entry?,
                    first_frame: self.rows[s.first].frame,
                    last_frame: self.rows[s.last].frame,
                    ended: s.end?,
                })
            })
            .collect();
        let focus = self.focus.map(|i| {
            let r = &self.rows[i];
            let (sender, receiver) = Self::ends(r);
            let v = &r.verdict;
            let info = v.reason.as_ref().map(|reason| reasons::info(reason.id));
            FocusRecord {
                frame: r.frame,
                verdict: v.action,
                reason: v.reason.as_ref().map(|r| r.id),
                evidence_words: v.reason.as_ref().map(|reason| evidence_words(reason, &sender, &receiver)).unwrap_or_default(),
                entry_words: v.entry.as_ref().map(|e| entry_words(e, r.ts, self.creator(e))),
                causes: info.map(|i| i.causes).unwrap_or_default(),
                fixes: info.map(|i| i.fixes).unwrap_or_default(),
                be_liberal_helps: info.map(|i| i.be_liberal_helps),
            }
        });
        let doc = Document {
            schema_version: super::json::SCHEMA_VERSION,
            kind: "explain",
            run: self.run,
            target_frame: self.target.frame(),
            flow: self.target.tuple(),
            rows,
            omitted_before: self.omitted_before,
            omitted_after: self.omitted_after,
            entries,
            explanation: focus,
            errors: self.error_records,
        };
        serde_json::to_vec(&doc)
    }
}

/// `explain --format json`: one document (`docs/output.md`).
#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    run: Option<&'a RunInfo>,
    target_frame: Option<FrameRef>,
    #[serde(serialize_with = "display")]
    flow: Tuple,
    rows: Vec<RowRecord<'a>>,
    omitted_before: u64,
    omitted_after: u64,
    entries: Vec<EntryRecord>,
    explanation: Option<FocusRecord>,
    errors: &'a [serde_json::Value],
}

/// The frame spelled out, in the words the table format prints.
#[derive(Serialize)]
struct FocusRecord {
    frame: FrameRef,
    verdict: Action,
    reason: Option<crate::verdict::ReasonId>,
    evidence_words: Vec<String>,
    entry_words: Option<String>,
    causes: &'static [&'static str],
    fixes: &'static [&'static str],
    be_liberal_helps: Option<bool>,
}

/// A timeline row in JSON: the JSON Lines `packet` record plus where it stands in the flow and
/// the entry after it.
#[derive(Serialize)]
struct RowRecord<'a> {
    #[serde(flatten)]
    packet: PacketRecord<'a>,
    /// Seconds since the flow's first frame.
    rel: f64,
    target: bool,
    /// Which of `entries` the packet met or created; `null` for none.
    entry_index: Option<usize>,
    after: Option<AfterRecord>,
}

#[derive(Serialize)]
struct EntryRecord {
    #[serde(flatten)]
    entry: SpanEntry,
    first_frame: FrameRef,
    last_frame: FrameRef,
    ended: SpanEnd,
}

/// The entry after a packet (`struct ip_ct_tcp` and the conntrack-level facts), every number.
#[derive(Serialize)]
struct AfterRecord {
    state: TcpState,
    assured: bool,
    seen_reply: bool,
    expires_in: f64,
    original: DirRecord,
    reply: DirRecord,
    last_dir: Dir,
    last_index: Index,
    retrans: u8,
    last_seq: u32,
    last_ack: u32,
    last_end: u32,
    last_win: u16,
    last_wscale: u8,
    last_flags: u8,
}

#[derive(Serialize)]
struct DirRecord {
    #[serde(flatten)]
    state: DirState,
    flag_names: Vec<&'static str>,
}

impl AfterRecord {
    fn new(a: &Snapshot) -> AfterRecord {
        let t = &a.tcp;
        let dir = |d: &DirState| DirRecord { state: *d, flag_names: flag::names(d.flags) };
        AfterRecord {
            state: t.state,
            assured: a.info.assured,
            seen_reply: a.info.seen_reply,
            expires_in: a.remaining_ns as f64 / 1e9,
            original: dir(&t.seen[0]),
            reply: dir(&t.seen[1]),
            last_dir: t.last_dir,
            last_index: t.last_index,
            retrans: t.retrans,
            last_seq: t.last_seq,
            last_ack: t.last_ack,
            last_end: t.last_end,
            last_win: t.last_win,
            last_wscale: t.last_wscale,
            last_flags: t.last_flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::entry::TcpCt;
    use crate::conntrack::window::WindowEvidence;
    use crate::report::test_support::{TestFrame, T0};
    use crate::verdict::ReasonId;

    #[test]
    fn flows_parse_in_the_reports_form() {
        let t = parse_flow("10.0.0.1:40000>10.0.0.2:80").unwrap();
        assert_eq!(t.to_string(), "10.0.0.1:40000>10.0.0.2:80");
        let t6 = parse_flow("[2001:db8::1]:40000 > [2001:db8::2]:80").unwrap();
        assert_eq!(t6.to_string(), "[2001:db8::1]:40000>[2001:db8::2]:80");
        assert!(parse_flow("10.0.0.1:40000").unwrap_err().contains("expected SRC:PORT>DST:PORT"));
        assert!(parse_flow("10.0.0.1>10.0.0.2:80").unwrap_err().contains("\"10.0.0.1\""));
    }

    fn window(bound: Bound, seq: u32, ack: u32, sender: DirState, receiver: DirState) -> Reason {
        let ev = WindowEvidence { bound, logged_value: 0, seq, end: seq, ack, sack: ack, win: 502, sender, receiver, overshoot: None };
        Reason { id: ReasonId::of_bound(bound), kernel_log: vec![], evidence: Evidence::Window(ev) }
    }

    #[test]
    fn window_evidence_in_words() {
        let sender = DirState { td_end: 1001, td_maxend: 66161, td_maxwin: 64240, td_maxack: 5001, td_scale: 0, flags: flag::MAXACK_SET };
        let receiver = DirState { td_end: 5001, td_maxend: 69241, td_maxwin: 65160, td_maxack: 1001, td_scale: 7, flags: 0 };
        let over = evidence_words(&window(Bound::SeqOverUpper, 66200, 5001, sender, receiver), "A", "B");
        assert_eq!(
            over[0],
            "seq 66200 > td_maxend 66161 of the sender: the segment starts 39 bytes beyond the window the receiver advertised"
        );
        assert_eq!(over[2], "sender A when checked: td_end 1001, td_maxend 66161, td_maxwin 64240, td_maxack 5001, td_scale 0, flags MAXACK_SET");
        assert_eq!(over[3], "receiver B when checked: td_end 5001, td_maxend 69241, td_maxwin 65160, td_maxack 1001, td_scale 7, flags none");
        let ack = evidence_words(&window(Bound::AckOverUpper, 1001, 9000, sender, receiver), "A", "B");
        assert!(ack[0].starts_with("ack 9000 > td_end 5001 of the receiver: it acknowledges 3999 bytes"), "{}", ack[0]);
        // II: td_end 1001 − td_maxwin 65160 wraps below zero, as the kernel's u32 does
        let old = evidence_words(&window(Bound::SeqUnderLower, 100, 5001, DirState { td_end: 70_000, ..sender }, receiver), "A", "B");
        assert!(old[0].starts_with("end 100 < td_end 70000 of the sender − td_maxwin 65160 of the receiver = 4840: the whole segment lies 4740 bytes below"), "{}", old[0]);
        let delayed = evidence_words(&window(Bound::AckUnderLower, 1001, 100, sender, DirState { td_end: 100_000, ..receiver }), "A", "B");
        assert!(delayed[0].starts_with("ack 100 < td_end 100000 of the receiver − max(td_maxwin 64240 of the sender, 66000) = 34000: an acknowledgement 33900 bytes older"), "{}", delayed[0]);
    }

    #[test]
    fn other_evidence_in_words() {
        let cell = Reason {
            id: ReasonId::SynMeetsReversedEntry,
            kernel_log: vec![],
            evidence: Evidence::Cell { dir: Dir::Reply, index: Index::Syn, state: TcpState::Established, result: "invalid" },
        };
        assert!(evidence_words(&cell, "A", "B")[0].starts_with("table[reply][SYN][ESTABLISHED] = INVALID: "));
        let rst = Reason { id: ReasonId::InvalidRst, kernel_log: vec![], evidence: Evidence::Rst { seq: 1000, td_maxack: 1500 } };
        assert_eq!(
            evidence_words(&rst, "A", "B")[0],
            "RST seq 1000 < td_maxack 1500 (the highest ACK B sent): it points 500 bytes into data already acknowledged"
        );
        let none = Reason { id: ReasonId::InvalidNew, kernel_log: vec![], evidence: Evidence::None };
        assert!(evidence_words(&none, "A", "B").is_empty());
    }

    /// A row from a test frame, with the entry after it: (state, seconds left) or deleted.
    fn row(f: TestFrame, after: Option<(TcpState, i64)>) -> Row {
        let obs = f.obs();
        let created = f.verdict.entry.map_or(f.frame, |e| e.created_frame);
        Row {
            frame: f.frame,
            ts: f.ts,
            ct_ts: f.ts,
            linktype: f.linktype,
            orig_len: f.orig_len,
            seg: f.segment.unwrap(),
            hook: f.hook,
            verdict: obs.verdict.clone(),
            skip: None,
            after: after.map(|(state, left)| {
                let mut tcp = TcpCt::zeroed();
                tcp.state = state;
                let info = TestFrame::tcp(created.number, "S").entry(created.number, CreatedBy::Syn, Dir::Original, state).verdict.entry.unwrap();
                Snapshot { info, tcp, remaining_ns: left * 1_000_000_000 }
            }),
            seq: obs.seq,
        }
    }

    fn ends(rows: &[Row], timing: Timing, capture_end: i64) -> Vec<(Option<u64>, Option<SpanEnd>)> {
        spans(rows, timing, Some(Timestamp::from_secs(T0 + capture_end)))
            .into_iter()
            .map(|s| (s.entry.map(|e| e.created_frame.number), s.end))
            .collect()
    }

    #[test]
    fn where_entries_end() {
        let at = |n: u64| FrameRef { file: 0, number: n };
        let rows = vec![
            row(TestFrame::tcp(1, "S").creates(TcpState::SynSent), Some((TcpState::SynSent, 120))),
            row(TestFrame::tcp(2, "R.").reversed().entry(1, CreatedBy::Syn, Dir::Reply, TcpState::SynSent).states(TcpState::SynSent, TcpState::Close), None),
            row(TestFrame::tcp(3, ".").invalid(ReasonId::InvalidNew, &[]), None),
            row(TestFrame::tcp(5, "S").creates(TcpState::SynSent), Some((TcpState::SynSent, 2))),
            // frame 5's entry timed out at T0+7: frame 9 creates a new one
            row(TestFrame::tcp(9, "S").creates(TcpState::SynSent), Some((TcpState::SynSent, 120))),
        ];
        let got = ends(&rows, Timing::Capture, 20);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(got[0], (Some(1), Some(SpanEnd::Deleted { frame: at(2), rst: true })));
        assert_eq!(got[1], (None, None), "packets with no entry");
        let Some(SpanEnd::Expired { last, state, at: when, timeout, next }) = got[2].1 else { panic!("{:?}", got[2]) };
        assert_eq!((last, state, next, timeout), (at(5), TcpState::SynSent, Some(at(9)), 2.0));
        assert_eq!(when.0, rows[3].ts.0 + 2_000_000_000);
        assert_eq!(got[3].1, Some(SpanEnd::Alive { state: TcpState::SynSent, expires_in: Some(109.000_25) }), "120 s from T0+9 (and a bit), capture ends at T0+20");

        // back to back, the tracker's clock stands still: nothing expires, so an entry that is
        // gone without a word vanished, and the last one lives on
        let got = ends(&rows, Timing::BackToBack, 20);
        assert_eq!(got[2].1, Some(SpanEnd::Vanished { last: at(5), next: at(9) }));
        assert_eq!(got[3].1, Some(SpanEnd::Alive { state: TcpState::SynSent, expires_in: None }));
        // the capture outlived the last entry
        let got = ends(&rows, Timing::Capture, 200);
        assert!(matches!(got[3].1, Some(SpanEnd::Expired { next: None, .. })), "{:?}", got[3]);
    }

    #[test]
    fn a_reopen_ends_the_old_entry() {
        let mut reopen = TestFrame::tcp(4, "S").creates(TcpState::SynSent);
        reopen.verdict.replaced = TestFrame::tcp(4, "S").entry(1, CreatedBy::Syn, Dir::Original, TcpState::TimeWait).verdict.entry.map(Box::new);
        let rows = vec![
            row(TestFrame::tcp(1, "S").creates(TcpState::SynSent), Some((TcpState::SynSent, 120))),
            row(TestFrame::tcp(3, "F.").entry(1, CreatedBy::Syn, Dir::Original, TcpState::Established).states(TcpState::Established, TcpState::TimeWait), Some((TcpState::TimeWait, 120))),
            row(reopen, Some((TcpState::SynSent, 120))),
        ];
        let got = ends(&rows, Timing::Capture, 10);
        assert_eq!(got[0].1, Some(SpanEnd::Reopened { frame: FrameRef { file: 0, number: 4 }, state: TcpState::TimeWait }));
    }

    #[test]
    fn find_frame_stops_the_run_there() {
        let mut find = FindFrame::new(FrameRef { file: 0, number: 2 });
        find.packet(&TestFrame::tcp(1, "S").obs()).unwrap();
        assert_eq!(find.found, None);
        let err = find.packet(&TestFrame::tcp(2, "S.").reversed().obs()).unwrap_err();
        assert!(is_stop(&EngineError::Output(err)));
        assert!(!is_stop(&EngineError::Output(io::Error::other("disk full"))));
        assert_eq!(find.found, Some(Found::Tcp(TestFrame::tcp(2, "S").reversed().segment.unwrap().tuple)));
        let mut find = FindFrame::new(FrameRef { file: 0, number: 5 });
        let _ = find.packet(&TestFrame::skipped(5, crate::decode::Skip::NotTcp { protocol: 17 }).obs());
        assert_eq!(find.found, Some(Found::NotTcp("not TCP (IP protocol 17)".into())));
    }

    fn explain(target: Target, max_rows: usize, frames: &[TestFrame], format: Format) -> (bool, String) {
        let mut out = Vec::new();
        let mut e = Explain::new(&mut out, format, false, target, Timing::Capture).with_max_rows(max_rows);
        for f in frames {
            e.packet(&f.obs()).unwrap();
        }
        e.end(&Summary::default()).unwrap();
        let explained = e.explained();
        (explained, String::from_utf8(out).unwrap())
    }

    #[test]
    fn keeps_the_flow_only_and_bounds_it_around_the_target() {
        let flow = TestFrame::tcp(1, "S").segment.unwrap().tuple;
        let mut frames: Vec<TestFrame> = (1..=10).map(|n| TestFrame::tcp(n, ".")).collect();
        let mut other = TestFrame::tcp(11, ".");
        other.segment.as_mut().unwrap().tuple.sport = 1234;
        frames.push(other);
        frames.push(TestFrame::tcp(12, "R").reversed());
        let target = Target::Frame(FrameRef { file: 0, number: 6 }, flow);
        let (ok, text) = explain(target, 3, &frames, Format::Table);
        assert!(ok);
        let shown: Vec<&str> = text.lines().filter(|l| l.contains(" → ") || l.contains(" ← ")).map(|l| l.split_whitespace().next().unwrap()).collect();
        // three rows up to the target (the latest before it), three after; frame 11 is another flow
        assert_eq!(shown, ["4", "5", "▶", "7", "8", "9"], "{text}");
        assert!(text.contains("… 3 earlier frames of the flow not shown"), "{text}");
        assert!(text.contains("… 2 later frames of the flow not shown"), "{text}");
        assert!(text.contains("11 frames from"), "frame count covers the omitted: {text}");

        let (ok, json) = explain(target, 3, &frames, Format::Json);
        assert!(ok);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!((&v["type"], &v["omitted_before"], &v["omitted_after"]), (&"explain".into(), &3.into(), &2.into()));
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[2]["frame"], 6);
        assert_eq!(rows[2]["target"], true);
        assert_eq!(v["explanation"]["frame"]["number"], 6);

        let (ok, text) = explain(Target::Flow(flow), 100, &frames[..0], Format::Table);
        assert!(!ok && text.is_empty(), "nothing to explain, nothing written");
    }
}
