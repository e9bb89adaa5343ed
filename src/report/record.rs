//! The JSON shape of one reported frame, shared by the JSON and JSON Lines formats.
//! Documented in `docs/output.md`; field names are a contract.

use super::{kernels, reasons};
use crate::capture::CaptureError;
use crate::conntrack::state::{Dir, TcpState};
use crate::conntrack::Hook;
use crate::capture::Timestamp;
use crate::engine::Observation;
use crate::verdict::{Action, CreatedBy, CtState, Evidence, KernelVerdict, ReasonId};
use serde::Serialize;

#[derive(Serialize)]
pub struct PacketRecord<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Index of the input file; only present when several captures were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<u32>,
    pub frame: u64,
    /// Seconds since the epoch (the exact value is in `ts_ns`).
    pub ts: f64,
    pub ts_ns: i64,
    pub flow: Option<String>,
    pub dir: Option<Dir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpFields>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<&'static str>,
    pub ct_state: CtState,
    pub verdict: Action,
    pub state_before: Option<TcpState>,
    pub state_after: Option<TcpState>,
    pub reason: Option<ReasonRecord<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryRecord>,
    /// Why conntrack never saw the frame (for `skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
    /// How the compared kernels judge the packet, when one differs from this run's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_kernels: Option<KernelsRecord<'a>>,
}

#[derive(Serialize)]
pub struct KernelsRecord<'a> {
    /// In words: "INVALID on 5.14, ignored since 6.1".
    pub note: String,
    /// Every kernel's verdict, this run's first.
    pub verdicts: &'a [KernelVerdict],
}

#[derive(Serialize)]
pub struct TcpFields {
    pub flags: String,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub win: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wscale: Option<u8>,
}

#[derive(Serialize)]
pub struct ReasonRecord<'a> {
    pub id: ReasonId,
    pub category: &'static str,
    pub explanation: &'static str,
    /// Every line the kernel logs for this packet, joined by "; " (null when it logs nothing).
    pub kernel_log: Option<String>,
    pub evidence: &'a Evidence,
}

/// The entry a packet met. Frames are plain numbers in the packet's own numbering; the file
/// indices appear only when several captures were given.
#[derive(Serialize)]
pub struct EntryRecord {
    pub created_frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_file: Option<u32>,
    pub created_by: CreatedBy,
    /// The frame that last moved the entry to another state (or created it).
    pub last_change_frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_change_file: Option<u32>,
    /// The packet's direction relative to the entry.
    pub orientation: Dir,
    pub state: TcpState,
    pub assured: bool,
    pub seen_reply: bool,
    pub created_ts: f64,
    /// Seconds between the entry's creation and this packet.
    pub age: f64,
    /// Seconds the entry had left when this packet arrived.
    pub expires_in: f64,
}

impl<'a> PacketRecord<'a> {
    pub fn new(obs: &'a Observation<'a>, several_files: bool) -> PacketRecord<'a> {
        let v = &obs.verdict;
        let seg = obs.segment;
        PacketRecord {
            kind: "packet",
            file: several_files.then_some(obs.frame.file),
            frame: obs.frame.number,
            ts: obs.ts.as_secs_f64(),
            ts_ns: obs.ts.0,
            flow: seg.map(|s| s.tuple.to_string()),
            dir: v.dir,
            tcp: seg.map(|s| TcpFields {
                flags: s.flags.to_string(),
                seq: s.seq,
                ack: s.ack,
                len: s.payload_len(),
                win: s.window,
                wscale: s.options.wscale,
            }),
            hook: obs.hook.map(|h| match h {
                Hook::PreRouting => "prerouting",
                Hook::LocalOut => "output",
            }),
            ct_state: v.ct_state,
            verdict: v.action,
            state_before: v.state_before,
            state_after: v.state_after,
            reason: v.reason.as_ref().map(|r| ReasonRecord {
                id: r.id,
                category: reasons::info(r.id).category.as_str(),
                explanation: reasons::info(r.id).explanation,
                kernel_log: v.kernel_log(),
                evidence: &r.evidence,
            }),
            entry: v.entry.map(|info| EntryRecord {
                created_frame: info.created_frame.number,
                created_file: several_files.then_some(info.created_frame.file),
                created_by: info.created_by,
                last_change_frame: info.last_change_frame.number,
                last_change_file: several_files.then_some(info.last_change_frame.file),
                orientation: info.orientation,
                state: info.state,
                assured: info.assured,
                seen_reply: info.seen_reply,
                created_ts: info.created_ts.as_secs_f64(),
                age: seconds_between(info.created_ts, obs.ts),
                expires_in: seconds_between(obs.ts, info.expires),
            }),
            skip: obs.skip.as_ref().map(|s| s.to_string()),
            other_kernels: kernels::note(obs.kernels).map(|note| KernelsRecord { note, verdicts: obs.kernels }),
        }
    }
}

/// An input that could not be read (further), as the JSON formats report it.
#[derive(Serialize)]
pub struct ErrorRecord<'a> {
    pub file: &'a str,
    /// The frame that could not be read.
    pub frame: Option<u64>,
    /// Byte offset into the (decompressed) input.
    pub offset: Option<u64>,
    pub message: String,
}

impl<'a> ErrorRecord<'a> {
    pub fn new(err: &'a CaptureError) -> Self {
        ErrorRecord { file: &err.file, frame: err.frame, offset: err.offset, message: err.to_string() }
    }
}

/// Seconds from `from` to `to`. Saturating: a capture's timestamps may sit at both ends of the
/// i64 range (a pcapng `if_tsoffset` is added to them), and a packet may meet an entry created
/// "later" when merged files or interfaces disagree about the time; the plain difference
/// overflowed there (a panic in debug builds, a wrong sign in release ones).
fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.0.saturating_sub(from.0) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_between_saturates_at_both_ends_of_time() {
        let (min, max) = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        assert_eq!(seconds_between(Timestamp::from_secs(1), Timestamp::from_secs(3)), 2.0);
        assert_eq!(seconds_between(max, min), i64::MIN as f64 / 1e9);
        assert_eq!(seconds_between(min, max), i64::MAX as f64 / 1e9);
    }
}
