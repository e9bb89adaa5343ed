//! The pipeline: read → decode → track → hand each frame's verdict to a [`Sink`], in frame order,
//! on one thread or, sharded by flow, on several (`engine::parallel`).
//!
//! The engine also decides the *vantage*: which hook each packet meets conntrack at. A firewall
//! in the path sees everything at PRE_ROUTING; on the capturing host itself, its own packets
//! meet conntrack at LOCAL_OUT, where checksums are not verified — which matters, because such
//! captures show the unfinished checksums of transmit offload.

use crate::capture::{CaptureError, CaptureFile, CaptureSet, Frame, LinkDirection, LinkType, Timestamp};
use crate::conntrack::profile::Profile;
use crate::conntrack::sysctl::Sysctls;
use crate::conntrack::{Conntrack, Detail, FlowKey, Hook, Keyed, Packet, Snapshot, Tracked};
use crate::decode::{ChecksumStatus, Decoded, Decoder, Segment, Skip, Tuple};
use crate::history::EntryLog;
use crate::verdict::{Action, CtState, FrameRef, KernelVerdict, ReasonId, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use tally::{QuietCounts, Tally};

mod parallel;
mod tally;

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
    /// Tracker threads. 1 runs everything on the calling thread; with more, the calling thread
    /// reads, decodes and shards flows over that many tracker threads, and merges their
    /// verdicts back into frame order. Verdicts are the same either
    /// way, except near `nf_conntrack_max` (each shard holds its share of the table).
    pub threads: usize,
    /// Hand each frame's captured bytes to the sink ([`Observation::data`]; empty otherwise).
    /// Only writers of frames need them, and on several threads they are copied between
    /// threads: a tenth of the reading thread's work on small packets.
    pub frame_bytes: bool,
    /// Other kernels that judge every packet too, in lockstep, so that a report can say where a
    /// verdict differs ("INVALID on 5.14, ignored since 6.1"). Each costs a tracker's work.
    pub compare: Vec<OtherKernel>,
}

/// A kernel profile, with its sysctls, that judges a capture alongside the main one.
#[derive(Clone, Debug)]
pub struct OtherKernel {
    pub profile: Profile,
    pub sysctls: Sysctls,
}

impl Settings {
    /// Every other built-in profile, newest first, with these sysctls, where its kernel has
    /// them all (a box of that kernel could not be set up this way otherwise).
    pub fn other_kernels(&self) -> Vec<OtherKernel> {
        Profile::all()
            .into_iter()
            .filter(|p| p.name != self.profile.name)
            .filter_map(|profile| Some(OtherKernel { sysctls: self.sysctls.carried_to(&profile)?, profile }))
            .collect()
    }

    /// Compares with [`Settings::other_kernels`].
    pub fn compare_with_other_kernels(&mut self) {
        self.compare = self.other_kernels();
    }
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
            threads: 1,
            frame_bytes: true,
            compare: Vec::new(),
        }
    }
}

/// One frame and what became of it.
pub struct Observation<'a> {
    pub frame: FrameRef,
    pub ts: Timestamp,
    /// The time conntrack judged the frame at: `ts`, or the first frame's time with
    /// [`Timing::BackToBack`]. [`Verdict::expires`] is on this clock.
    pub ct_ts: Timestamp,
    pub linktype: LinkType,
    /// The captured bytes, for writing the frame back out (`--write-invalid`); empty unless
    /// [`Settings::frame_bytes`].
    pub data: &'a [u8],
    pub orig_len: u32,
    pub segment: Option<&'a Segment>,
    pub hook: Option<Hook>,
    pub verdict: &'a Verdict,
    /// Why conntrack never saw the frame.
    pub skip: Option<&'a Skip>,
    /// The entry after the packet, when [`Settings::snapshots`] asks for it.
    pub after: Option<Snapshot>,
    /// When a kernel of [`Settings::compare`] judges the packet differently: every kernel's
    /// verdict, this run's first, then the others newest first. Empty when all agree.
    pub kernels: &'a [KernelVerdict],
    /// The frame's position in the capture, from 0 (capture order, across merged files).
    pub seq: u64,
    /// For a notable packet that met an entry: the entry's log before the packet, so that a
    /// report can start following its flow here and still tell it from the start.
    pub entry_log: Option<&'a EntryLog>,
}

impl Observation<'_> {
    /// Whether a report without `--all` shows this frame: this run's verdict is notable, or a
    /// compared kernel judges it otherwise. (Only this run's verdict decides the exit code.)
    pub fn is_notable(&self) -> bool {
        self.verdict.is_notable() || !self.kernels.is_empty()
    }
}

/// Receives a run's results as they happen. Reports implement it; a sink that only looks at
/// packets (a test, a counter) implements [`Sink::packet`] alone.
pub trait Sink {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        let _ = run;
        Ok(())
    }
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()>;
    /// Whether every frame must reach [`Sink::packet`]. A sink that shows only notable packets
    /// and the flows they belong to answers no: then a frame that cannot change what it shows
    /// (see [`Sink::quiet`]) reaches it as a call to `quiet` instead, and the engine need not
    /// build an observation for most packets of a capture.
    fn every_frame(&self) -> bool {
        true
    }
    /// `frames` *quiet* frames went by, frames that [`Sink::every_frame`] lets the engine hold
    /// back: packets conntrack accepted without a word on an entry no notable packet has met.
    /// Only the capture's conntrack clock after them comes (the latest conntrack time of any
    /// frame so far), so that flows can still end on time.
    ///
    /// The engine tells quiet frames in runs: before the next frame or error it hands over,
    /// before the end, and at least every [`PROGRESS_EVERY`] frames (so that a live capture's
    /// flows end without waiting for its next notable packet). A sink that only moves a clock
    /// forward to each frame's time sees what it would have seen frame by frame.
    fn quiet(&mut self, frames: u64, clock: Timestamp) -> io::Result<()> {
        let _ = (frames, clock);
        Ok(())
    }
    /// An input could not be read (further); what came before has been delivered. (The
    /// summary lists every error too.)
    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        let _ = err;
        Ok(())
    }
    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        let _ = summary;
        Ok(())
    }
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
    /// The kernels every packet is also judged by ([`Settings::compare`]).
    pub compared_kernels: Vec<&'static str>,
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
    /// The counts under each compared kernel ([`Settings::compare`]), newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_kernels: Vec<KernelCounts>,
    /// The link type of the run's first frame, `None` if it had none: the header of an output
    /// capture that gets no frames (`--write-invalid`). Not part of the JSON summary.
    #[serde(skip)]
    pub first_link_type: Option<LinkType>,
}

/// How a compared kernel would have judged the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelCounts {
    pub kernel: &'static str,
    pub invalid: u64,
    pub ignored: u64,
    pub dropped: u64,
    /// Packets whose verdict differs from this run's.
    pub differ: u64,
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

/// Addresses `--vantage auto` learns as the capturing host's, at most. A host has a few; a
/// capture that shows thousands is not one host's (e.g. forwarded traffic marked outbound), and
/// the set must not grow with a hostile capture.
pub const MAX_LOCAL_ADDRESSES: usize = 4096;

/// Decides the hook of each packet.
struct VantageState {
    mode: Vantage,
    local: BTreeSet<IpAddr>,
}

impl VantageState {
    fn hook(&mut self, seg: &Segment) -> Hook {
        // Borrowed: a copy read the just-decoded address back 16 bytes at a time, which the
        // CPU cannot forward from its store buffer (see `tcp::read_options`).
        let src = &seg.tuple.src;
        match &self.mode {
            Vantage::Forward => Hook::PreRouting,
            Vantage::Host(addrs) => {
                if addrs.contains(src) { Hook::LocalOut } else { Hook::PreRouting }
            }
            Vantage::Auto => {
                let looks_local = seg.link_direction == Some(LinkDirection::Outbound) || seg.checksum == ChecksumStatus::Partial;
                if looks_local && self.local.len() < MAX_LOCAL_ADDRESSES {
                    self.local.insert(*src);
                }
                if self.local.contains(src) { Hook::LocalOut } else { Hook::PreRouting }
            }
        }
    }
}

/// The part of the pipeline that must see every frame in capture order: decoding (which holds
/// the defragmentation state), the vantage decision, and conntrack's clocks.
struct Front {
    decoder: Decoder,
    vantage: VantageState,
    timing: Timing,
    truncated: TruncatedFrames,
    first_ts: Option<Timestamp>,
    /// The latest conntrack time so far: entries expired by then are swept out.
    clock: Timestamp,
    /// Frames prepared so far.
    frames: u64,
    /// The first frame's link type: an output capture that gets no frames is headed with it.
    first_link_type: Option<LinkType>,
}

/// A frame made ready for conntrack.
struct Prepared {
    decoded: Decoded,
    /// The time conntrack judges the frame at.
    ct_ts: Timestamp,
    /// The latest conntrack time of the capture up to and including this frame. Sweeping on it,
    /// rather than on each table's own packets, keeps several tables in step with one.
    clock: Timestamp,
    /// Where conntrack meets the packet, when it is tracked.
    hook: Option<Hook>,
    /// A TCP segment the capture cut short, skipped as `--truncated skip` asks.
    cut_short: bool,
    /// The frame's position in the capture, from 0 ([`Observation::seq`]).
    seq: u64,
    /// [`FlowKey::hash32`] of the frame's tuple, when it has one (else 0): worked out once, it
    /// both picks the tracker of a parallel run and starts the table's lookup.
    key_hash: u32,
}

impl Front {
    fn new(settings: &Settings) -> Front {
        Front {
            decoder: Decoder::new(),
            vantage: VantageState { mode: settings.vantage.clone(), local: BTreeSet::new() },
            timing: settings.timing,
            truncated: settings.truncated,
            first_ts: None,
            clock: Timestamp(i64::MIN),
            frames: 0,
            first_link_type: None,
        }
    }

    fn prepare(&mut self, frame: &Frame<'_>) -> Prepared {
        let ct_ts = match self.timing {
            Timing::Capture => frame.ts,
            Timing::BackToBack => *self.first_ts.get_or_insert(frame.ts),
        };
        self.clock = self.clock.max(ct_ts);
        let decoded = self.decoder.decode(frame);
        let cut_short = matches!(&decoded, Decoded::Tcp(seg) if seg.truncated && self.truncated == TruncatedFrames::Skip);
        let hook = match &decoded {
            Decoded::Tcp(seg) if !cut_short => Some(self.vantage.hook(seg)),
            _ => None,
        };
        let seq = self.frames;
        if seq == 0 {
            self.first_link_type = Some(frame.linktype);
        }
        self.frames += 1;
        let key_hash = match &decoded {
            Decoded::Tcp(Segment { tuple, .. }) | Decoded::TcpUnreadable { tuple: Some(tuple), .. } => FlowKey::hash_of(tuple),
            _ => 0,
        };
        Prepared { decoded, ct_ts, clock: self.clock, hook, cut_short, seq, key_hash }
    }

    fn local_addresses(&self) -> Vec<String> {
        self.vantage.local.iter().map(|a| a.to_string()).collect()
    }

    /// What the reading loops return once the inputs are read.
    fn outcome(&self, captures: &CaptureSet) -> ReadOutcome {
        ReadOutcome { files: captures.files().to_vec(), local_addresses: self.local_addresses(), first_link_type: self.first_link_type }
    }
}

impl Prepared {
    /// The tuple that decides which conntrack table sees the frame: `Some(None)` for a TCP
    /// datagram without one (conntrack still sees it), `None` when conntrack never does.
    fn tuple(&self) -> Option<Option<&Tuple>> {
        match &self.decoded {
            Decoded::Tcp(seg) => Some(Some(&seg.tuple)),
            Decoded::TcpUnreadable { tuple, .. } => Some(tuple.as_ref()),
            Decoded::Skipped(_) => None,
        }
    }

    /// Why conntrack never sees the frame, if it does not.
    fn skip(&self) -> Option<&Skip> {
        /// Batch items carry a flag for this rather than the reason itself.
        static CUT_SHORT: Skip = Skip::Truncated("frame cut short by the snaplen (--truncated skip)");
        match &self.decoded {
            Decoded::Skipped(s) => Some(s),
            Decoded::Tcp(_) if self.cut_short => Some(&CUT_SHORT),
            _ => None,
        }
    }

    fn segment(&self) -> Option<&Segment> {
        match &self.decoded {
            Decoded::Tcp(seg) => Some(seg),
            _ => None,
        }
    }
}

/// What conntrack made of a frame.
struct Judged {
    verdict: Verdict,
    /// Boxed: snapshots are rare (tests, timelines), and this travels between threads.
    after: Option<Box<Snapshot>>,
    /// Every kernel's verdict, when the compared kernels disagree ([`Observation::kernels`]).
    kernels: Option<Box<[KernelVerdict]>>,
    /// The log of the entry the packet met, before it, when the packet is notable
    /// ([`Observation::entry_log`]). Boxed: rare.
    log: Option<Box<EntryLog>>,
}

impl Judged {
    fn skipped() -> Judged {
        Judged { verdict: Verdict::skipped(), after: None, kernels: None, log: None }
    }
}

/// What conntrack made of a frame, as the report needs it.
enum Judgement {
    Shown(Judged),
    /// A quiet frame ([`Sink::quiet`]): only its `ct state` is counted, and the entry it
    /// `created`, if it did.
    Quiet { ct_state: CtState, created: bool },
}

/// The conntrack table that judges frames, and those of the kernels it is compared with
/// (all for the same flows: a whole capture, or one shard of it).
struct Judges {
    main: Conntrack,
    others: Vec<Conntrack>,
    snapshots: bool,
    /// Reused for every frame, so agreeing kernels cost no allocation.
    scratch: Vec<KernelVerdict>,
    /// Whether the sink lets frames be quiet ([`Sink::every_frame`]).
    quiet: bool,
}

impl Judges {
    fn new(settings: &Settings, shards: usize, quiet: bool) -> Judges {
        let mut main = Conntrack::shard(settings.profile.clone(), settings.sysctls.clone(), shards);
        main.keep_logs();
        Judges {
            main,
            others: settings.compare.iter().map(|k| Conntrack::shard(k.profile.clone(), k.sysctls.clone(), shards)).collect(),
            snapshots: settings.snapshots,
            scratch: Vec::with_capacity(settings.compare.len() + 1),
            quiet: quiet && !settings.snapshots,
        }
    }

    /// Runs one prepared frame through every table (any frame whose [`Prepared::tuple`] is
    /// `Some`).
    // Inlined into the two loops that judge frames, one thread's and each tracker's (~20
    // instructions a frame).
    #[inline(always)]
    fn judge(&mut self, p: &Prepared, meta: FrameMeta) -> Judgement {
        let question = Question::of(p, meta);
        // A packet the compared kernels judge differently is shown in full, so the main table
        // can leave out its verdict only when it is the only one.
        let detail = if self.quiet && self.others.is_empty() { Detail::Quiet } else { Detail::Full };
        let verdict = match question.ask(&mut self.main, p.clock, detail) {
            // Accepted on an entry that existed before and that no report follows, or one that
            // created an entry whose tuple no report can be following (`Detail::Quiet`).
            Tracked::Plain { ct_state, created, .. } => return Judgement::Quiet { ct_state, created },
            Tracked::Full(verdict) => verdict,
        };
        let after = match &p.decoded {
            Decoded::Tcp(seg) if self.snapshots => self.main.snapshot(&seg.tuple, p.ct_ts).map(Box::new),
            _ => None,
        };
        let kernels = self.compare(&verdict, &question, p.clock);
        let notable = verdict.is_notable() || kernels.is_some();
        let log_before = self.main.take_log_before();
        if notable {
            // A report follows the flow from here on, starting from the entry's log.
            self.main.show_entry();
            let log = log_before.map(Box::new);
            return Judgement::Shown(Judged { kernels, verdict, after, log });
        }
        // The same frames are quiet when compared kernels agree on them (the main table gave
        // its whole verdict, since it could not know they would).
        if self.quiet && self.main.is_quiet(&verdict, log_before.as_ref()) {
            return Judgement::Quiet { ct_state: verdict.ct_state, created: verdict.created_entry() };
        }
        Judgement::Shown(Judged { kernels, verdict, after, log: None })
    }

    /// Every kernel's verdict on the frame, when one differs from `main`'s.
    fn compare(&mut self, main: &Verdict, question: &Question<'_>, clock: Timestamp) -> Option<Box<[KernelVerdict]>> {
        if self.others.is_empty() {
            return None;
        }
        self.scratch.clear();
        self.scratch.push(KernelVerdict::of(self.main.profile().name, main));
        for other in &mut self.others {
            let tracked = question.ask(other, clock, Detail::Outcome);
            self.scratch.push(tracked.outcome(other.profile().name));
        }
        let first = self.scratch[0];
        self.scratch.iter().any(|k| !k.same_outcome(&first)).then(|| self.scratch.as_slice().into())
    }
}

/// What every table of [`Judges`] is asked about one prepared frame, worked out once: the
/// packet and its tuple's key, or the unreadable datagram, or nothing.
enum Question<'a> {
    Track(Packet<'a>, Keyed<'a>),
    Unreadable { tuple: Option<&'a Tuple>, ts: Timestamp },
    Skipped,
}

impl<'a> Question<'a> {
    fn of(p: &'a Prepared, meta: FrameMeta) -> Question<'a> {
        match &p.decoded {
            Decoded::Tcp(seg) => match p.hook {
                Some(hook) if !p.cut_short => {
                    let packet = Packet { seg, ts: p.ct_ts, frame: meta.frame, hook, seq: p.seq, capture_ts: meta.ts };
                    Question::Track(packet, Keyed::with_hash(&seg.tuple, p.key_hash))
                }
                _ => Question::Skipped,
            },
            Decoded::TcpUnreadable { tuple, .. } => Question::Unreadable { tuple: tuple.as_ref(), ts: p.ct_ts },
            Decoded::Skipped(_) => Question::Skipped,
        }
    }

    /// One table's verdict, in as much `detail` as the caller needs, its sweeping clock first
    /// moved to `clock` (the capture's latest conntrack time, [`Prepared::clock`]).
    fn ask(&self, conntrack: &mut Conntrack, clock: Timestamp, detail: Detail) -> Tracked {
        conntrack.advance_clock(clock);
        match self {
            Question::Track(packet, keyed) => conntrack.track_detailed(packet, keyed, detail),
            Question::Unreadable { tuple, ts } => Tracked::Full(conntrack.track_unreadable(*tuple, *ts)),
            Question::Skipped => Tracked::Full(Verdict::skipped()),
        }
    }
}

/// The facts of a frame that outlive the capture reader's buffer.
#[derive(Clone, Copy)]
struct FrameMeta {
    frame: FrameRef,
    ts: Timestamp,
    linktype: LinkType,
    orig_len: u32,
}

impl FrameMeta {
    fn of(f: &Frame<'_>) -> FrameMeta {
        FrameMeta { frame: FrameRef { file: f.file as u32, number: f.number }, ts: f.ts, linktype: f.linktype, orig_len: f.orig_len }
    }
}

/// The end of the pipeline: hands frames and errors to the sink, in capture order, and counts.
struct Report<'s> {
    sink: &'s mut dyn Sink,
    tally: Tally,
    /// Frames handed to the sink, for progress reports.
    frames: u64,
    /// When `frames` reaches this, the sink hears how far the run has got.
    next_progress: u64,
    /// Quiet frames not yet told to the sink ([`Sink::quiet`]).
    quiet: QuietRun,
    errors: Vec<String>,
    failed_files: BTreeSet<String>,
}

/// A run of quiet frames: how many, and the capture's conntrack clock after them. Telling the
/// sink once per run instead of once per frame saves a call through every sink for most
/// packets of a healthy capture.
#[derive(Clone, Copy)]
struct QuietRun {
    frames: u64,
    clock: Timestamp,
}

impl QuietRun {
    const NONE: QuietRun = QuietRun { frames: 0, clock: Timestamp(i64::MIN) };
}

impl Report<'_> {
    /// Whether the sink lets frames be quiet ([`Sink::every_frame`]).
    fn quiet_allowed(&self) -> bool {
        !self.sink.every_frame()
    }

    fn error(&mut self, e: &CaptureError) -> io::Result<()> {
        self.tell_quiet()?;
        self.errors.push(e.to_string());
        self.failed_files.insert(e.file.clone());
        self.sink.error(e)
    }

    /// Tells the sink how far the run has got, every [`PROGRESS_EVERY`] frames. `files` are the
    /// inputs with their bytes read so far, when the caller can see them (the reading thread
    /// owns them in a parallel run).
    fn progress(&mut self, files: &[CaptureFile]) -> io::Result<()> {
        if self.frames >= self.next_progress {
            self.next_progress = (self.frames / PROGRESS_EVERY + 1) * PROGRESS_EVERY;
            self.tell_quiet()?;
            self.sink.progress(&Progress { frames: self.frames, files })?;
        }
        Ok(())
    }

    /// Hands a judged frame to the sink: in full, or as a quiet one.
    fn judged(&mut self, meta: FrameMeta, data: &[u8], p: &Prepared, judgement: Judgement) -> io::Result<()> {
        match judgement {
            Judgement::Shown(judged) => self.frame(meta, data, p, judged),
            Judgement::Quiet { ct_state, created } => {
                self.tally.tracked(meta.linktype, ct_state);
                if created {
                    self.tally.created();
                }
                self.quiet_frames(1, p.clock);
                Ok(())
            }
        }
    }

    /// `frames` quiet frames went by (counted in the tally apart), after which the capture's
    /// conntrack clock stood at `clock`: the sink hears of them before it hears anything else.
    /// (The clock only moves forward, so the run's is its last frame's.)
    fn quiet_frames(&mut self, frames: u64, clock: Timestamp) {
        self.frames += frames;
        self.quiet.frames += frames;
        self.quiet.clock = clock;
    }

    /// Counts quiet frames a tracker thread counted (one of [`Report::quiet_frames`]' runs, or
    /// several).
    fn count_quiet(&mut self, counts: &QuietCounts) {
        self.tally.add_quiet(counts);
    }

    /// Tells the sink of the quiet frames held since the last call, if any.
    fn tell_quiet(&mut self) -> io::Result<()> {
        let run = std::mem::replace(&mut self.quiet, QuietRun::NONE);
        if run.frames == 0 {
            return Ok(());
        }
        self.sink.quiet(run.frames, run.clock)
    }

    /// Hands the sink the summary, after the quiet frames still held.
    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        self.tell_quiet()?;
        self.sink.end(summary)
    }

    fn frame(&mut self, meta: FrameMeta, data: &[u8], p: &Prepared, judged: Judged) -> io::Result<()> {
        self.tell_quiet()?;
        self.frames += 1;
        self.tally.frame(meta.linktype, &judged.verdict, p.skip());
        if let Some(kernels) = &judged.kernels {
            self.tally.kernels_differ(kernels);
        }
        self.sink.packet(&Observation {
            frame: meta.frame,
            ts: meta.ts,
            ct_ts: p.ct_ts,
            linktype: meta.linktype,
            data,
            orig_len: meta.orig_len,
            segment: p.segment(),
            hook: p.hook,
            verdict: &judged.verdict,
            skip: p.skip(),
            after: judged.after.map(|a| *a),
            kernels: judged.kernels.as_deref().unwrap_or_default(),
            seq: p.seq,
            entry_log: judged.log.as_deref(),
        })
    }
}

/// What the reading end knows once every input is exhausted.
struct ReadOutcome {
    files: Vec<CaptureFile>,
    local_addresses: Vec<String>,
    first_link_type: Option<LinkType>,
}

/// Analyses every input as one capture, handing each frame to `sink`. Input errors are reported
/// to the sink and recorded in the summary; the run goes on with what can still be read.
///
/// With [`Settings::threads`] above 1, frames are tracked on that many threads (see
/// `engine::parallel`); the sink still sees every frame in capture order, from the calling thread.
pub fn analyze(inputs: &[String], settings: &Settings, sink: &mut dyn Sink) -> Result<Summary, EngineError> {
    let captures = CaptureSet::open(inputs)?;
    let run = RunInfo {
        tool: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        kernel_profile: settings.profile.name,
        sysctls: settings.sysctls.changed(),
        vantage: settings.vantage.describe(),
        captures: inputs.to_vec(),
        compared_kernels: settings.compare.iter().map(|k| k.profile.name).collect(),
    };
    sink.begin(&run)?;
    let mut report = Report {
        sink,
        tally: Tally::new(&run.compared_kernels),
        frames: 0,
        next_progress: PROGRESS_EVERY,
        quiet: QuietRun::NONE,
        errors: Vec::new(),
        failed_files: BTreeSet::new(),
    };
    let front = Front::new(settings);
    let read = if settings.threads > 1 {
        parallel::run(captures, front, settings, &mut report)?
    } else {
        sequential(captures, front, settings, &mut report)?
    };

    let mut summary = Summary::default();
    report.tally.fill(&mut summary);
    summary.errors = std::mem::take(&mut report.errors);
    summary.local_addresses = read.local_addresses;
    summary.first_link_type = read.first_link_type;
    summary.captures = read
        .files
        .iter()
        .map(|f| CaptureSummary { path: f.path.clone(), frames: f.frames, complete: !report.failed_files.contains(&f.path) })
        .collect();
    report.end(&summary)?;
    Ok(summary)
}

/// The whole pipeline on the calling thread, frame by frame.
fn sequential(mut captures: CaptureSet, mut front: Front, settings: &Settings, report: &mut Report<'_>) -> io::Result<ReadOutcome> {
    let mut judges = Judges::new(settings, 1, report.quiet_allowed());
    loop {
        // The frame is borrowed where the call left it: moved out, it was copied 16 bytes at a
        // time just after being written a few at a time, a load the CPU cannot forward from
        // its store buffer.
        match captures.next_frame() {
            None => break,
            Some(Err(e)) => report.error(&e)?,
            Some(Ok(ref frame)) => {
                let meta = FrameMeta::of(frame);
                let prepared = front.prepare(frame);
                let judgement = match prepared.tuple() {
                    Some(_) => judges.judge(&prepared, meta),
                    None => Judgement::Shown(Judged::skipped()),
                };
                let data = if settings.frame_bytes { frame.data } else { &[] };
                report.judged(meta, data, &prepared, judgement)?;
            }
        }
        report.progress(captures.files())?;
    }
    Ok(front.outcome(&captures))
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
            expires: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::TestFrame;
    use std::net::Ipv4Addr;

    /// A sink that wants nothing.
    struct Nothing;

    impl Sink for Nothing {
        fn packet(&mut self, _: &Observation<'_>) -> io::Result<()> {
            Ok(())
        }
    }

    /// The summary names the link type of the run's first frame (`--write-invalid` heads a
    /// capture with no frames with it): of the first in time over all inputs, not of the first
    /// input or the last frame, on one thread and on two.
    #[test]
    fn the_summary_has_the_first_frames_link_type() {
        use crate::capture::writer::{PcapWriter, TsResolution};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, linktype: u32, ts_ns: i64| {
            let path = dir.path().join(name);
            let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap(), LinkType(linktype), 65535, TsResolution::Micro).unwrap();
            for ts in [ts_ns, ts_ns + 2_000_000] {
                w.write_frame(Timestamp(ts), &[0; 20], 20).unwrap();
            }
            w.into_inner().unwrap();
            path.to_string_lossy().into_owned()
        };
        // Two frames each, 2 ms apart: the Linux SLL frames fall between the Ethernet ones.
        let ethernet = write("ethernet.pcap", 1, 1_700_000_000_000_000_000);
        let sll_a_little_later = write("sll.pcap", 113, 1_700_000_000_001_000_000);
        let sll2_earliest = write("sll2.pcap", 276, 1_699_999_999_000_000_000);
        for threads in [1, 2] {
            let settings = Settings { threads, ..Settings::default() };
            let first = |inputs: &[String]| analyze(inputs, &settings, &mut Nothing).unwrap().first_link_type;
            assert_eq!(first(&[ethernet.clone(), sll_a_little_later.clone()]), Some(LinkType::ETHERNET), "{threads} threads");
            assert_eq!(first(&[ethernet.clone(), sll2_earliest.clone()]), Some(LinkType(276)), "{threads} threads");
        }
        let empty = dir.path().join("empty.pcap");
        PcapWriter::new(std::fs::File::create(&empty).unwrap(), LinkType::ETHERNET, 65535, TsResolution::Micro).unwrap().into_inner().unwrap();
        assert_eq!(analyze(&[empty.to_string_lossy().into_owned()], &Settings::default(), &mut Nothing).unwrap().first_link_type, None);
    }

    #[test]
    fn auto_vantage_learns_a_bounded_set_of_local_addresses() {
        let mut v = VantageState { mode: Vantage::Auto, local: BTreeSet::new() };
        let mut seg = TestFrame::tcp(1, "S").segment.unwrap();
        seg.checksum = ChecksumStatus::Partial;
        for n in 0..(MAX_LOCAL_ADDRESSES as u32 + 10) {
            seg.tuple.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            v.hook(&seg);
        }
        assert_eq!(v.local.len(), MAX_LOCAL_ADDRESSES);
        // a learnt address is judged at OUTPUT, one past the bound at PRE_ROUTING
        seg.checksum = ChecksumStatus::Good;
        seg.tuple.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000));
        assert_eq!(v.hook(&seg), Hook::LocalOut);
        seg.tuple.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + MAX_LOCAL_ADDRESSES as u32));
        assert_eq!(v.hook(&seg), Hook::PreRouting);
    }
}
