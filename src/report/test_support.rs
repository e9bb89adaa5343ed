//! Hand-built frames and verdicts for the tests of the reports and of `check`: what a report
//! prints depends only on the [`Observation`] it is handed, so no capture, decoder or tracker
//! is needed to test it.

use crate::capture::{LinkType, Timestamp};
use crate::conntrack::Hook;
use crate::conntrack::state::{Dir, TcpState};
use crate::decode::{ChecksumStatus, Segment, Skip, TcpFlags, TcpOptions, Tuple};
use crate::engine::{Observation, RunInfo};
use crate::history::{self, EntryLog};
use crate::verdict::{Action, CreatedBy, CtState, EntryInfo, Evidence, FrameRef, KernelVerdict, Reason, ReasonId, Verdict};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// What a run of ctreplay on `captures` tells its sinks first: defaults, nothing compared.
pub fn run_info(captures: &[&str]) -> RunInfo {
    RunInfo {
        tool: "ctreplay",
        version: "0.1.0",
        kernel_profile: "latest",
        sysctls: vec![],
        vantage: "auto".into(),
        captures: captures.iter().map(|c| c.to_string()).collect(),
        compared_kernels: vec![],
    }
}

/// Capture time of frame 0; frame `n` is `n` seconds later.
pub const T0: i64 = 1_700_000_000;

/// Everything an [`Observation`] borrows, owned.
#[derive(Clone)]
pub struct TestFrame {
    pub frame: FrameRef,
    pub ts: Timestamp,
    pub linktype: LinkType,
    pub data: Vec<u8>,
    pub orig_len: u32,
    pub segment: Option<Segment>,
    pub hook: Option<Hook>,
    pub verdict: Verdict,
    pub skip: Option<Skip>,
    /// Every kernel's verdict, when compared kernels disagree ([`Observation::kernels`]).
    pub kernels: Vec<KernelVerdict>,
    /// The entry's log before the frame ([`Observation::entry_log`]).
    pub entry_log: Option<EntryLog>,
}

fn flags(s: &str) -> TcpFlags {
    s.parse().expect("tcpdump-style flags")
}

impl TestFrame {
    /// Frame `n` of file 0: an accepted, unremarkable TCP segment 10.0.0.1:40000>10.0.0.2:80
    /// with tcpdump-style `flags`, on a raw-IP link; its bytes say which frame it is.
    pub fn tcp(n: u64, flag_text: &str) -> TestFrame {
        let data = format!("frame {n}").into_bytes();
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        TestFrame {
            frame: FrameRef { file: 0, number: n },
            ts: Timestamp(Timestamp::from_secs(T0 + n as i64).0 + 250_000),
            linktype: LinkType::RAW,
            orig_len: data.len() as u32 + 1000,
            data,
            segment: Some(Segment {
                tuple: Tuple { src: c, dst: s, sport: 40000, dport: 80 },
                seq: 1000 + n as u32,
                ack: 5000,
                window: 64240,
                flags: flags(flag_text),
                doff: 5,
                l4_len: 20,
                options: TcpOptions { complete: true, ..TcpOptions::default() },
                checksum: ChecksumStatus::Good,
                ttl: 64,
                fragments: 1,
                truncated: false,
                link_direction: None,
            }),
            hook: Some(Hook::PreRouting),
            verdict: Verdict {
                ct_state: CtState::Established,
                action: Action::Accept,
                dir: Some(Dir::Original),
                state_before: Some(TcpState::Established),
                state_after: Some(TcpState::Established),
                reason: None,
                entry: None,
                replaced: None,
                expires: None,
            },
            skip: None,
            kernels: Vec::new(),
            entry_log: None,
        }
    }

    /// The frame's position in the capture: its number, files one after another (a test
    /// capture has fewer than a million frames a file).
    fn seq(&self) -> u64 {
        u64::from(self.frame.file) * 1_000_000 + self.frame.number
    }

    /// Frame `n`, which conntrack never saw.
    pub fn skipped(n: u64, skip: Skip) -> TestFrame {
        let mut f = TestFrame::tcp(n, ".");
        f.segment = None;
        f.hook = None;
        f.verdict = Verdict::skipped();
        f.skip = Some(skip);
        f
    }

    pub fn obs(&self) -> Observation<'_> {
        Observation {
            frame: self.frame,
            ts: self.ts,
            ct_ts: self.ts,
            linktype: self.linktype,
            data: &self.data,
            orig_len: self.orig_len,
            segment: self.segment.as_ref(),
            hook: self.hook,
            verdict: &self.verdict,
            skip: self.skip.as_ref(),
            after: None,
            kernels: &self.kernels,
            seq: self.seq(),
            entry_log: self.entry_log.as_ref(),
        }
    }

    /// Sent the other way: 10.0.0.2:80>10.0.0.1:40000.
    pub fn reversed(mut self) -> Self {
        let s = self.segment.as_mut().expect("a TCP frame");
        s.tuple = s.tuple.reversed();
        self
    }

    pub fn file(mut self, file: u32) -> Self {
        self.frame.file = file;
        self
    }

    pub fn linktype(mut self, l: LinkType) -> Self {
        self.linktype = l;
        self
    }

    pub fn states(mut self, before: TcpState, after: TcpState) -> Self {
        self.verdict.state_before = Some(before);
        self.verdict.state_after = Some(after);
        self
    }

    /// Gives the verdict a reason with these kernel log lines (none: not logged).
    pub fn reason(mut self, ct_state: CtState, action: Action, id: ReasonId, log: &[&str]) -> Self {
        self.verdict.ct_state = ct_state;
        self.verdict.action = action;
        self.verdict.reason = Some(Box::new(Reason {
            id,
            kernel_log: log.iter().map(|l| l.to_string()).collect(),
            evidence: Evidence::None,
        }));
        self
    }

    /// `ct state invalid` for `id`.
    pub fn invalid(self, id: ReasonId, log: &[&str]) -> Self {
        self.reason(CtState::Invalid, Action::Invalid, id, log)
    }

    /// Accepted but ignored for `id`.
    pub fn ignored(self, id: ReasonId, log: &[&str]) -> Self {
        self.reason(CtState::Established, Action::Ignore, id, log)
    }

    /// The packet created an entry, now in `state`.
    pub fn creates(mut self, state: TcpState) -> Self {
        self.verdict.ct_state = CtState::New;
        self.verdict.state_before = None;
        self.verdict.state_after = Some(state);
        self.verdict.entry = None;
        self
    }

    /// The packet met an entry created at frame `created` (file 0).
    pub fn entry(mut self, created: u64, by: CreatedBy, orientation: Dir, state: TcpState) -> Self {
        let at = FrameRef { file: 0, number: created };
        self.verdict.dir = Some(orientation);
        self.verdict.entry = Some(EntryInfo {
            created_frame: at,
            created_ts: Timestamp::from_secs(T0 + created as i64),
            created_by: by,
            last_change_frame: at,
            orientation,
            state,
            assured: false,
            seen_reply: false,
            expires: Timestamp::from_secs(T0 + created as i64 + 300),
        });
        self
    }
}

/// Gives each notable frame that met an entry the log the entry kept before it, as the engine
/// does with a tracker that keeps logs (`Conntrack::keep_logs`): every frame counts for the
/// entry it met or created.
pub fn with_entry_logs(mut frames: Vec<TestFrame>) -> Vec<TestFrame> {
    let mut logs: HashMap<FrameRef, EntryLog> = HashMap::new();
    for f in &mut frames {
        let (Some(seg), v) = (f.segment, &f.verdict) else { continue };
        let created = match &v.entry {
            Some(met) => met.created_frame,
            None if v.created_entry() => {
                logs.insert(f.frame, EntryLog::new(f.seq(), f.ts));
                f.frame
            }
            None => continue,
        };
        let Some(log) = logs.get_mut(&created) else { continue };
        if v.entry.is_some() && (v.is_notable() || !f.kernels.is_empty()) {
            f.entry_log = Some(*log);
        }
        log.add(&seg, v.dir.unwrap_or(Dir::Original), v.state_after, history::mark(v.action).is_some());
    }
    frames
}
