//! One conntrack entry: its TCP tracking data (`struct ip_ct_tcp`) and the conntrack-level
//! facts around it (status bits, expiry, where it came from).

use super::state::{Dir, Index, TcpState};
use super::window::DirState;
use crate::capture::Timestamp;
use crate::decode::Tuple;
use crate::verdict::{CreatedBy, EntryInfo, FrameRef};

/// The kernel's `struct ip_ct_tcp`, field for field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpCt {
    /// `seen[0]`: the originator's side; `seen[1]`: the responder's.
    pub seen: [DirState; 2],
    pub state: TcpState,
    /// Direction and class of the last packet that passed the window check (or was ignored).
    pub last_dir: Dir,
    pub last_index: Index,
    /// Identical ACK-class retransmissions in a row (wraps at 256 like the kernel's u8).
    pub retrans: u8,
    pub last_seq: u32,
    pub last_ack: u32,
    pub last_end: u32,
    /// Raw window of the last ACK-class or ignored packet.
    pub last_win: u16,
    /// Options of an ignored SYN, kept in case a SYN/ACK proves it right (re-sync).
    pub last_wscale: u8,
    pub last_flags: u8,
}

impl TcpCt {
    /// The zeroed state `tcp_new` starts from.
    pub fn zeroed() -> TcpCt {
        TcpCt {
            seen: [DirState::default(); 2],
            state: TcpState::None,
            last_dir: Dir::Original,
            last_index: Index::None,
            retrans: 0,
            last_seq: 0,
            last_ack: 0,
            last_end: 0,
            last_win: 0,
            last_wscale: 0,
            last_flags: 0,
        }
    }
}

/// A conntrack entry in the table.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The ORIGINAL tuple: the direction of the packet that created the entry.
    pub tuple: Tuple,
    pub tcp: TcpCt,
    /// `IPS_SEEN_REPLY`: a reply-direction packet was accepted.
    pub seen_reply: bool,
    /// `IPS_ASSURED`: the connection was seen established in both directions.
    pub assured: bool,
    /// The entry no longer exists from this time on (`nf_ct_is_expired`).
    pub expires: Timestamp,
    pub created_frame: FrameRef,
    pub created_ts: Timestamp,
    pub created_by: CreatedBy,
    pub last_change_frame: FrameRef,
}

impl Entry {
    /// A snapshot for a verdict, seen from a packet travelling in `orientation`.
    pub fn info(&self, orientation: Dir) -> EntryInfo {
        EntryInfo {
            created_frame: self.created_frame,
            created_ts: self.created_ts,
            created_by: self.created_by,
            last_change_frame: self.last_change_frame,
            orientation,
            state: self.tcp.state,
            assured: self.assured,
            seen_reply: self.seen_reply,
            expires: self.expires,
        }
    }

    /// `nf_conntrack_tcp_established`: ESTABLISHED and ASSURED.
    pub fn established_and_assured(&self) -> bool {
        self.tcp.state == TcpState::Established && self.assured
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires <= now
    }
}
