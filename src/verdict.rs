//! What the tracker says about one packet: the `ct state` the ruleset sees, what conntrack did
//! with it, why, and the entry it met. How it is printed is [`crate::report`]'s business.

use crate::capture::Timestamp;
use crate::conntrack::state::{Dir, Index, TcpState};
use crate::conntrack::window::{Bound, WindowEvidence};
use serde::{Deserialize, Serialize};

/// Where a frame is: its input file and its 1-based number in that file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FrameRef {
    pub file: u32,
    pub number: u64,
}

/// What an nftables `ct state` match (or iptables `--ctstate`) sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
    /// Conntrack never saw the frame (not TCP, held by defragmentation, dropped before the hook).
    Skipped,
}

impl CtState {
    /// The name as serialised (`new`, `invalid`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
            CtState::Skipped => "skipped",
        }
    }
}

/// What conntrack did with the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Tracked; the entry was created or updated.
    Accept,
    /// Tracked (not INVALID), but the entry was deliberately left unchanged.
    Ignore,
    /// No conntrack attached: `ct state invalid`.
    Invalid,
    /// Conntrack dropped the packet itself (table full); the ruleset never sees it.
    Drop,
    Skipped,
}

impl Action {
    /// The name as serialised (`accept`, `invalid`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Ignore => "ignore",
            Action::Invalid => "invalid",
            Action::Drop => "drop",
            Action::Skipped => "skipped",
        }
    }
}

/// A stable identifier for every INVALID, ignore and drop path, used by reports, `--fail-on`,
/// and fixture expectations. The catalogue of explanations lives in [`crate::report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonId {
    /// Fewer than 20 bytes of TCP header in the datagram; no log line.
    TcpHeaderUnreadable,
    /// Data offset below 5 or beyond the segment: "truncated packet".
    TruncatedPacket,
    BadChecksum,
    InvalidTcpFlags,
    /// A packet other than SYN (or ACK with loose pickup) matched no entry: "invalid new".
    InvalidNew,
    /// An ACK matched no entry and `nf_conntrack_tcp_loose=0`; no log line.
    PickupDisabled,
    /// A SYN met an entry in the other orientation (the state table says INVALID).
    SynMeetsReversedEntry,
    /// Any other INVALID cell of the state table.
    StateTableInvalid,
    /// An originator SYN met a live entry of the same orientation: accepted, ignored.
    SynOnStaleEntry,
    /// A SYN on a TIME_WAIT/CLOSE entry that may not be reopened: accepted, ignored.
    ReopenRefused,
    /// Any other ignore cell of the state table.
    StateTableIgnored,
    ChallengeAckIgnored,
    InvalidRst,
    SeqOverUpperBound,
    SeqOvershootIgnored,
    AckOverUpperBound,
    SeqUnderLowerBound,
    AckUnderLowerBound,
    /// Conntrack's table was full and nothing could be evicted.
    TableFull,
    /// 2.6.18: a SYN may not reopen a TIME_WAIT/CLOSE entry ("invalid SYN").
    InvalidSynReopen,
    /// 2.6.18: a SYN/ACK answered an ignored SYN; the entry is destroyed and the SYN/ACK dropped.
    OutOfSyncKilled,
}

impl ReasonId {
    pub const ALL: [ReasonId; 21] = [
        ReasonId::TcpHeaderUnreadable,
        ReasonId::TruncatedPacket,
        ReasonId::BadChecksum,
        ReasonId::InvalidTcpFlags,
        ReasonId::InvalidNew,
        ReasonId::PickupDisabled,
        ReasonId::SynMeetsReversedEntry,
        ReasonId::StateTableInvalid,
        ReasonId::SynOnStaleEntry,
        ReasonId::ReopenRefused,
        ReasonId::StateTableIgnored,
        ReasonId::ChallengeAckIgnored,
        ReasonId::InvalidRst,
        ReasonId::SeqOverUpperBound,
        ReasonId::SeqOvershootIgnored,
        ReasonId::AckOverUpperBound,
        ReasonId::SeqUnderLowerBound,
        ReasonId::AckUnderLowerBound,
        ReasonId::TableFull,
        ReasonId::InvalidSynReopen,
        ReasonId::OutOfSyncKilled,
    ];

    /// The kebab-case id, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonId::TcpHeaderUnreadable => "tcp-header-unreadable",
            ReasonId::TruncatedPacket => "truncated-packet",
            ReasonId::BadChecksum => "bad-checksum",
            ReasonId::InvalidTcpFlags => "invalid-tcp-flags",
            ReasonId::InvalidNew => "invalid-new",
            ReasonId::PickupDisabled => "pickup-disabled",
            ReasonId::SynMeetsReversedEntry => "syn-meets-reversed-entry",
            ReasonId::StateTableInvalid => "state-table-invalid",
            ReasonId::SynOnStaleEntry => "syn-on-stale-entry",
            ReasonId::ReopenRefused => "reopen-refused",
            ReasonId::StateTableIgnored => "state-table-ignored",
            ReasonId::ChallengeAckIgnored => "challenge-ack-ignored",
            ReasonId::InvalidRst => "invalid-rst",
            ReasonId::SeqOverUpperBound => "seq-over-upper-bound",
            ReasonId::SeqOvershootIgnored => "seq-overshoot-ignored",
            ReasonId::AckOverUpperBound => "ack-over-upper-bound",
            ReasonId::SeqUnderLowerBound => "seq-under-lower-bound",
            ReasonId::AckUnderLowerBound => "ack-under-lower-bound",
            ReasonId::TableFull => "table-full",
            ReasonId::InvalidSynReopen => "invalid-syn-reopen",
            ReasonId::OutOfSyncKilled => "out-of-sync-killed",
        }
    }


    /// The reason a failed window bound gives.
    pub fn of_bound(bound: Bound) -> ReasonId {
        match bound {
            Bound::SeqOvershoot => ReasonId::SeqOvershootIgnored,
            Bound::SeqOverUpper => ReasonId::SeqOverUpperBound,
            Bound::AckOverUpper => ReasonId::AckOverUpperBound,
            Bound::SeqUnderLower => ReasonId::SeqUnderLowerBound,
            Bound::AckUnderLower => ReasonId::AckUnderLowerBound,
        }
    }
}

impl std::str::FromStr for ReasonId {
    type Err = ();
    fn from_str(s: &str) -> Result<ReasonId, ()> {
        ReasonId::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl std::fmt::Display for ReasonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The numbers behind a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    None,
    /// The state-table cell that decided: `table[dir][index][state] → result`.
    Cell { dir: Dir, index: Index, state: TcpState, result: &'static str },
    Window(WindowEvidence),
    /// The RST's sequence number lies below the highest ACK the peer sent.
    Rst { seq: u32, td_maxack: u32 },
    Flags { flags: u8 },
    Length { doff: u8, l4_len: u32 },
    TableFull { max: u32 },
}

/// Why a packet was reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub id: ReasonId,
    /// Every line this kernel logs for the packet (with its prefix), in order.
    pub kernel_log: Vec<String>,
    pub evidence: Evidence,
}

/// How the entry was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CreatedBy {
    Syn,
    /// Mid-stream pickup of an ACK or data segment (`nf_conntrack_tcp_loose=1`).
    Pickup,
}

/// The conntrack entry a packet met, as it was when the packet arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    pub created_frame: FrameRef,
    #[serde(skip)]
    pub created_ts: Timestamp,
    pub created_by: CreatedBy,
    /// The frame that last moved the entry to another state (or created it).
    pub last_change_frame: FrameRef,
    /// The packet's direction relative to the entry.
    pub orientation: Dir,
    pub state: TcpState,
    pub assured: bool,
    pub seen_reply: bool,
    /// When the entry would expire if nothing refreshed it.
    #[serde(skip)]
    pub expires: Timestamp,
}

/// Everything the tracker says about one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ct_state: CtState,
    pub action: Action,
    pub dir: Option<Dir>,
    pub state_before: Option<TcpState>,
    pub state_after: Option<TcpState>,
    /// Set for every INVALID, ignored, dropped or logged packet.
    pub reason: Option<Box<Reason>>,
    /// The entry the packet met (before it was processed), if any.
    pub entry: Option<EntryInfo>,
    /// The packet replaced an old entry (reopen from TIME_WAIT/CLOSE); the old one's facts.
    /// (Boxed: rare, and a verdict crosses threads for every packet.)
    pub replaced: Option<Box<EntryInfo>>,
    /// When the entry the packet met or created expires, as it is after the packet; `None`
    /// when no entry is left. (Only a later packet of the connection can change it.)
    pub expires: Option<Timestamp>,
}

impl Verdict {
    /// Whether a report without `--all` shows this packet: INVALID, dropped, or logged.
    pub fn is_notable(&self) -> bool {
        self.is_invalid() || self.reason.is_some()
    }

    /// The packet created an entry: it met none and was accepted (the entry may have closed at
    /// once, or replaced an older one of its tuple: see [`Verdict::replaced`]).
    pub fn created_entry(&self) -> bool {
        self.action == Action::Accept && self.state_before.is_none()
    }

    /// INVALID as the reports mean it: no entry attached (`ct state invalid`), or dropped by
    /// conntrack itself. Either way the packet does not get through as tracked traffic.
    pub fn is_invalid(&self) -> bool {
        matches!(self.action, Action::Invalid | Action::Drop)
    }

    /// The joined kernel log lines, or `None` when conntrack logs nothing.
    pub fn kernel_log(&self) -> Option<String> {
        let r = self.reason.as_ref()?;
        if r.kernel_log.is_empty() { None } else { Some(r.kernel_log.join("; ")) }
    }
}

/// What one kernel profile makes of a packet, for comparing profiles on the same capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KernelVerdict {
    /// The profile's `--kernel` name.
    pub kernel: &'static str,
    pub ct_state: CtState,
    pub verdict: Action,
    pub reason: Option<ReasonId>,
}

impl KernelVerdict {
    pub fn of(kernel: &'static str, v: &Verdict) -> KernelVerdict {
        KernelVerdict { kernel, ct_state: v.ct_state, verdict: v.action, reason: v.reason.as_ref().map(|r| r.id) }
    }

    /// The verdict in a word. Profiles are said to differ on a packet when their words differ:
    /// another reason for the same INVALID is not a different verdict.
    pub fn outcome(&self) -> &'static str {
        match self.verdict {
            Action::Invalid => "INVALID",
            Action::Ignore => "ignored",
            Action::Drop => "dropped",
            Action::Skipped => "skipped",
            Action::Accept => self.ct_state.as_str(),
        }
    }

    /// Whether two verdicts are the same in a word ([`KernelVerdict::outcome`]), without
    /// comparing the words: a default run asks this of six kernels for every packet.
    pub fn same_outcome(&self, other: &KernelVerdict) -> bool {
        self.outcome_key() == other.outcome_key()
    }

    /// The outcome as a value equal exactly when the words are: an accepted packet's word is
    /// its `ct state`'s, and "skipped" is the word of both a skipped frame and the state.
    fn outcome_key(&self) -> (Action, CtState) {
        match self.verdict {
            Action::Accept => (Action::Accept, self.ct_state),
            Action::Skipped => (Action::Accept, CtState::Skipped),
            other => (other, CtState::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_outcome_is_the_same_word() {
        let actions = [Action::Accept, Action::Ignore, Action::Invalid, Action::Drop, Action::Skipped];
        let states = [CtState::New, CtState::Established, CtState::Related, CtState::Invalid, CtState::Untracked, CtState::Skipped];
        let verdicts: Vec<KernelVerdict> = actions
            .iter()
            .flat_map(|&verdict| states.iter().map(move |&ct_state| KernelVerdict { kernel: "k", ct_state, verdict, reason: None }))
            .collect();
        for a in &verdicts {
            for b in &verdicts {
                assert_eq!(a.same_outcome(b), a.outcome() == b.outcome(), "{a:?} / {b:?}");
            }
        }
    }
}
