//! The pipeline: read → decode → track → hand each frame's verdict to a [`Sink`], in frame order.
//!
//! The engine also decides the *vantage*: which hook each packet meets conntrack at. A firewall
//! in the path sees everything at PRE_ROUTING; on the capturing host itself, its own packets
//! meet conntrack at LOCAL_OUT, where checksums are not verified — which matters, because such
//! captures show the unfinished checksums of transmit offload.

use crate::capture::{CaptureError, CaptureFile, CaptureSet, LinkDirection, LinkType, Timestamp};
use crate::conntrack::profile::Profile;
use crate::conntrack::sysctl::Sysctls;
use crate::conntrack::{Conntrack, Hook, Packet, Snapshot};
use crate::decode::{ChecksumStatus, Decoded, Decoder, Segment, Skip};
use crate::verdict::{Action, CtState, FrameRef, ReasonId, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;

/// Where the capture was taken, as far as conntrack is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vantage {
    /// A firewall in the path: every packet meets conntrack at PRE_ROUTING.
    Forward,
    /// Detect the capturing host from transmit-offload checksums and outbound link markers;
    /// its own packets meet conntrack at LOCAL_OUT.
    Auto,
    /// The capturing host's addresses, given by the user.
    Host(Vec<IpAddr>),
}

impl Vantage {
    pub fn describe(&self) -> String {
        match self {
            Vantage::Forward => "forward".into(),
            Vantage::Auto => "auto".into(),
            Vantage::Host(a) => format!("host={}", a.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")),
        }
    }
}

/// The inverse of [`Vantage::describe`]: `forward`, `auto`, `host=ADDR[,ADDR]`.
impl std::str::FromStr for Vantage {
    type Err = String;

    fn from_str(s: &str) -> Result<Vantage, String> {
        match s {
            "forward" => Ok(Vantage::Forward),
            "auto" => Ok(Vantage::Auto),
            _ => {
                let addrs = s.strip_prefix("host=").ok_or("expected forward, auto or host=ADDR[,ADDR]")?;
                let parsed: Result<Vec<IpAddr>, _> = addrs.split(',').map(|a| a.trim().parse::<IpAddr>()).collect();
                parsed.map(Vantage::Host).map_err(|e| format!("{addrs:?}: {e}"))
            }
        }
    }
}

/// What to do with frames the capture cut short (snaplen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncatedFrames {
    /// Track them: lengths come from the IP header, which is what the kernel saw.
    Track,
    /// Skip them, as the live-kernel oracle must (it can only replay the captured bytes).
    Skip,
}

/// Which clock conntrack's timeouts run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// The capture's timestamps: entries expire as they did on the real box.
    Capture,
    /// Every packet at the time of the first one: no entry ever expires, as in a back-to-back
    /// replay through a live kernel (the oracle without `--timed`).
    BackToBack,
}

/// Everything a run is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub profile: Profile,
    pub sysctls: Sysctls,
    pub vantage: Vantage,
    pub truncated: TruncatedFrames,
    pub timing: Timing,
    /// Attach to each observation the entry as it is after the packet (timelines, tests).
    pub snapshots: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            profile: Profile::latest(),
            sysctls: Sysctls::default(),
            vantage: Vantage::Auto,
            truncated: TruncatedFrames::Track,
            timing: Timing::Capture,
            snapshots: false,
        }
    }
}

/// One frame and what became of it.
pub struct Observation<'a> {
    pub frame: FrameRef,
    pub ts: Timestamp,
    pub linktype: LinkType,
    /// The captured bytes, for writing the frame back out (`--write-invalid`).
    pub data: &'a [u8],
    pub orig_len: u32,
    pub segment: Option<&'a Segment>,
    pub hook: Option<Hook>,
    pub verdict: Verdict,
    /// Why conntrack never saw the frame.
    pub skip: Option<Skip>,
    /// The entry after the packet, when [`Settings::snapshots`] asks for it.
    pub after: Option<Snapshot>,
}

/// Receives a run's results as they happen. Reports implement it.
pub trait Sink {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()>;
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()>;
    /// An input could not be read (further); what came before has been delivered.
    fn error(&mut self, err: &CaptureError) -> io::Result<()>;
    fn end(&mut self, summary: &Summary) -> io::Result<()>;
    /// How far the run has got; called every [`PROGRESS_EVERY`] frames. Only progress displays
    /// need it, so it does nothing unless implemented.
    fn progress(&mut self, progress: &Progress<'_>) -> io::Result<()> {
        let _ = progress;
        Ok(())
    }
}

/// Frames between [`Sink::progress`] calls: rare enough to cost nothing, frequent enough for a
/// display to move several times a second.
pub const PROGRESS_EVERY: u64 = 4096;

/// How far a run has got.
pub struct Progress<'a> {
    /// Frames read so far, over all inputs.
    pub frames: u64,
    /// The inputs, each with the frames and (decompressed) bytes read from it so far.
    pub files: &'a [CaptureFile],
}

/// Facts about a run known before the first packet.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub tool: &'static str,
    pub version: &'static str,
    pub kernel_profile: &'static str,
    pub sysctls: Vec<String>,
    pub vantage: String,
    pub captures: Vec<String>,
}

/// Counts over a whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub frames: u64,
    pub tcp_packets: u64,
    /// Conntrack entries created.
    pub flows: u64,
    /// `ct state` counts over TCP packets.
    pub ct_states: BTreeMap<String, u64>,
    /// Packets per reason id (INVALID, ignored, logged, dropped).
    pub reasons: BTreeMap<String, u64>,
    pub invalid: u64,
    pub ignored: u64,
    pub dropped: u64,
    /// Frames per link type.
    pub link_types: BTreeMap<String, u64>,
    /// Frames conntrack never saw, by why.
    pub skipped: BTreeMap<String, u64>,
    /// Addresses treated as the capturing host (their packets meet conntrack at LOCAL_OUT).
    pub local_addresses: Vec<String>,
    /// Frames per input file, and whether each was read whole.
    pub captures: Vec<CaptureSummary>,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaptureSummary {
    pub path: String,
    pub frames: u64,
    pub complete: bool,
}

impl Summary {
    /// Packets that conntrack marked INVALID or dropped whose reason `counts` selects.
    pub fn failures(&self) -> u64 {
        self.invalid + self.dropped
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing the report: {0}")]
    Output(#[from] io::Error),
}

/// Decides the hook of each packet.
struct VantageState {
    mode: Vantage,
    local: BTreeSet<IpAddr>,
}

impl VantageState {
    fn hook(&mut self, seg: &Segment) -> Hook {
        let src = seg.tuple.src;
        match &self.mode {
            Vantage::Forward => Hook::PreRouting,
            Vantage::Host(addrs) => {
                if addrs.contains(&src) { Hook::LocalOut } else { Hook::PreRouting }
            }
            Vantage::Auto => {
                if seg.link_direction == Some(LinkDirection::Outbound) || seg.checksum == ChecksumStatus::Partial {
                    self.local.insert(src);
                }
                if self.local.contains(&src) { Hook::LocalOut } else { Hook::PreRouting }
            }
        }
    }
}

/// Analyses every input as one capture, handing each frame to `sink`. Input errors are reported
/// to the sink and recorded in the summary; the run goes on with what can still be read.
pub fn analyze(inputs: &[String], settings: &Settings, sink: &mut dyn Sink) -> Result<Summary, EngineError> {
    let mut captures = CaptureSet::open(inputs)?;
    let mut decoder = Decoder::new();
    let mut conntrack = Conntrack::new(settings.profile.clone(), settings.sysctls.clone());
    let mut vantage = VantageState { mode: settings.vantage.clone(), local: BTreeSet::new() };
    let mut summary = Summary::default();
    let mut failed_files = BTreeSet::new();
    let mut first_ts = None;

    sink.begin(&RunInfo {
        tool: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        kernel_profile: settings.profile.name,
        sysctls: settings.sysctls.changed(),
        vantage: settings.vantage.describe(),
        captures: inputs.to_vec(),
    })?;

    while let Some(next) = captures.next_frame() {
        let frame = match next {
            Ok(f) => f,
            Err(e) => {
                summary.errors.push(e.to_string());
                failed_files.insert(e.file.clone());
                sink.error(&e)?;
                continue;
            }
        };
        summary.frames += 1;
        *summary.link_types.entry(frame.linktype.to_string()).or_default() += 1;
        let fref = FrameRef { file: frame.file as u32, number: frame.number };
        let conntrack_ts = match settings.timing {
            Timing::Capture => frame.ts,
            Timing::BackToBack => *first_ts.get_or_insert(frame.ts),
        };
        let decoded = decoder.decode(&frame);
        let (segment, hook, verdict, skip) = match &decoded {
            Decoded::Tcp(seg) if seg.truncated && settings.truncated == TruncatedFrames::Skip => {
                let skip = Skip::Truncated("frame cut short by the snaplen (--truncated skip)");
                (Some(seg), None, Verdict::skipped(), Some(skip))
            }
            Decoded::Tcp(seg) => {
                let hook = vantage.hook(seg);
                let v = conntrack.track(&Packet { seg, ts: conntrack_ts, frame: fref, hook });
                (Some(seg), Some(hook), v, None)
            }
            Decoded::TcpUnreadable { tuple, .. } => (None, None, conntrack.track_unreadable(tuple.as_ref(), conntrack_ts), None),
            Decoded::Skipped(s) => (None, None, Verdict::skipped(), Some(s.clone())),
        };
        count(&mut summary, &verdict, skip.as_ref());
        let after = match segment {
            Some(seg) if settings.snapshots => conntrack.snapshot(&seg.tuple, conntrack_ts),
            _ => None,
        };
        sink.packet(&Observation {
            frame: fref,
            ts: frame.ts,
            linktype: frame.linktype,
            data: frame.data,
            orig_len: frame.orig_len,
            segment,
            hook,
            verdict,
            skip,
            after,
        })?;
        if summary.frames % PROGRESS_EVERY == 0 {
            sink.progress(&Progress { frames: summary.frames, files: captures.files() })?;
        }
    }

    summary.local_addresses = vantage.local.iter().map(|a| a.to_string()).collect();
    summary.captures = captures
        .files()
        .iter()
        .map(|f| CaptureSummary { path: f.path.clone(), frames: f.frames, complete: !failed_files.contains(&f.path) })
        .collect();
    sink.end(&summary)?;
    Ok(summary)
}

fn count(summary: &mut Summary, v: &Verdict, skip: Option<&Skip>) {
    if let Some(s) = skip {
        *summary.skipped.entry(skip_class(s)).or_default() += 1;
        return;
    }
    summary.tcp_packets += 1;
    *summary.ct_states.entry(v.ct_state.as_str().into()).or_default() += 1;
    // An entry was created: the packet met none (state_before is empty) and was accepted.
    if v.action == Action::Accept && v.state_before.is_none() {
        summary.flows += 1;
    }
    match v.action {
        Action::Invalid => summary.invalid += 1,
        Action::Ignore => summary.ignored += 1,
        Action::Drop => summary.dropped += 1,
        Action::Accept | Action::Skipped => {}
    }
    if let Some(r) = &v.reason {
        *summary.reasons.entry(r.id.as_str().into()).or_default() += 1;
    }
}

/// Groups skip reasons for the summary (without per-frame numbers).
fn skip_class(s: &Skip) -> String {
    match s {
        Skip::UnsupportedLinkType(l) => format!("unsupported link type {l}"),
        Skip::NotIp { .. } => "not IP".into(),
        Skip::NotTcp { protocol } => format!("not TCP (IP protocol {protocol})"),
        other => other.to_string(),
    }
}

impl Verdict {
    /// The verdict for a frame conntrack never sees.
    pub fn skipped() -> Verdict {
        Verdict {
            ct_state: CtState::Skipped,
            action: Action::Skipped,
            dir: None,
            state_before: None,
            state_after: None,
            reason: None,
            entry: None,
            replaced: None,
        }
    }
}

/// Which reason ids make the run "fail" (exit code 1).
#[derive(Clone, Debug, Default)]
pub struct FailPolicy {
    /// Only these count (`--fail-on`); empty means every INVALID or dropped packet.
    pub fail_on: Vec<ReasonId>,
    /// These never count (`--allow`).
    pub allow: Vec<ReasonId>,
}

impl FailPolicy {
    pub fn counts(&self, v: &Verdict) -> bool {
        if !v.is_invalid() {
            return false;
        }
        let id = v.reason.as_ref().map(|r| r.id);
        if id.is_some_and(|id| self.allow.contains(&id)) {
            return false;
        }
        self.fail_on.is_empty() || id.is_some_and(|id| self.fail_on.contains(&id))
    }
}
