//! TCP conntrack states, packet classes, and the transition table.
//!
//! The table is data, laid out like the kernel's `tcp_conntracks[dir][index][state]`, so a
//! reviewer can hold it beside `nf_conntrack_proto_tcp.c`. Kernel eras that changed cells carry
//! their own table (see [`super::profile`]).

use serde::Serialize;
use std::fmt;

/// A conntrack TCP state, in the kernel's enum order (the order matters: it indexes the table,
/// and the kernel compares states numerically, e.g. "old state ≥ TIME_WAIT").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    SynSent2 = 9,
}

impl TcpState {
    pub const ALL: [TcpState; 10] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::SynSent2,
    ];

    /// The kernel's name, as printed in log lines and by `conntrack -L`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }

    /// The state a shutdown is in progress in: the kernel lets these be evicted early and skips
    /// RST validation in them, since the tuple may already have been reused (`tcp_can_early_drop`).
    pub fn is_closing(self) -> bool {
        matches!(
            self,
            TcpState::FinWait | TcpState::CloseWait | TcpState::LastAck | TcpState::TimeWait | TcpState::Close
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Direction of a packet relative to the entry: ORIGINAL is the way the first packet went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Original = 0,
    Reply = 1,
}

impl Dir {
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn other(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
}

/// The packet class that selects the table row (the kernel's `get_conntrack_index`).
/// Numbered as the kernel numbers them, because log lines print the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Index {
    Syn = 0,
    SynAck = 1,
    Fin = 2,
    Ack = 3,
    Rst = 4,
    None = 5,
}

impl Index {
    /// RST wins over SYN, SYN over FIN, FIN over ACK. Flag combinations where this order would
    /// matter (SYN+FIN, SYN+RST) were already refused by the header checks.
    pub fn of(flags: crate::decode::TcpFlags) -> Index {
        if flags.rst() {
            Index::Rst
        } else if flags.syn() {
            if flags.ack() { Index::SynAck } else { Index::Syn }
        } else if flags.fin() {
            Index::Fin
        } else if flags.ack() {
            Index::Ack
        } else {
            Index::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Index::Syn => "SYN",
            Index::SynAck => "SYN/ACK",
            Index::Fin => "FIN",
            Index::Ack => "ACK",
            Index::Rst => "RST",
            Index::None => "NONE",
        }
    }
}

/// One cell of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// Move to this state (subject to the special cases and the window check).
    To(TcpState),
    /// `sIG`: accept the packet but do not let it change the entry; it may belong to a newer
    /// incarnation of the connection that conntrack is out of sync with.
    Ignore,
    /// `sIV`: the packet is INVALID; the window check is never consulted.
    Invalid,
}

/// `table[dir][index][old state]`.
pub type Table = [[[Cell; 10]; 6]; 2];

// Two-letter aliases, as in the kernel source, so each row reads like the C table.
const SS: Cell = Cell::To(TcpState::SynSent);
const SR: Cell = Cell::To(TcpState::SynRecv);
const ES: Cell = Cell::To(TcpState::Established);
const FW: Cell = Cell::To(TcpState::FinWait);
const CW: Cell = Cell::To(TcpState::CloseWait);
const LA: Cell = Cell::To(TcpState::LastAck);
const TW: Cell = Cell::To(TcpState::TimeWait);
const CL: Cell = Cell::To(TcpState::Close);
const S2: Cell = Cell::To(TcpState::SynSent2);
const IV: Cell = Cell::Invalid;
const IG: Cell = Cell::Ignore;

/// The table of current kernels (identical from 5.10 to the latest mainline). Older eras are
/// this table with a few cells changed: see [`build_table`].
#[rustfmt::skip]
const MODERN: Table = [
    // ORIGINAL
    [
        //        NONE SYN_SENT SYN_RECV ESTAB FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2
        /* SYN */    [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // A SYN in SYN_RECV..LAST_ACK: the endpoints may have restarted the connection behind our
        // back, so it is let through unrecorded. TIME_WAIT/CLOSE may reopen (see the handler).
        /* SYN/ACK */[IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // The originator answers a SYN only in a simultaneous open (SYN_SENT2, or its
        // retransmission in SYN_RECV).
        /* FIN */    [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ACK */    [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // An ACK from the originator before any SYN/ACK was seen cannot be right.
        /* RST */    [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* NONE */   [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    // REPLY
    [
        /* SYN */    [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // Only a simultaneous open, or a role switch on a TIME_WAIT entry, lets the responder
        // send a SYN; on any other live entry it is INVALID.
        /* SYN/ACK */[IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // A late SYN/ACK may answer a SYN conntrack ignored: keep it, the handler may re-sync.
        /* FIN */    [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ACK */    [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // An ACK answering a SYN may be a half-open peer's challenge ACK: ignore, don't reject.
        /* RST */    [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* NONE */   [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

/// The table of a kernel era, from its behaviour switches.
pub fn build_table(f: &super::profile::Features) -> Table {
    use super::profile::OriginalSynAck;
    use TcpState::*;
    let mut t = MODERN;
    let mut set = |dir: Dir, index: Index, old: TcpState, cell: Cell| t[dir.index()][index as usize][old as usize] = cell;
    if !f.simultaneous_open {
        // 2.6.18 did not support simultaneous open: a SYN from the responder is always INVALID.
        set(Dir::Reply, Index::Syn, SynSent, IV);
        set(Dir::Reply, Index::Syn, SynSent2, IV);
    }
    if !f.reply_syn_reopens_time_wait {
        set(Dir::Reply, Index::Syn, TimeWait, IV);
    }
    let original_synack: [Cell; 10] = match f.original_synack {
        OriginalSynAck::AlwaysInvalid => [IV; 10],
        OriginalSynAck::IgnoredLate => [IV, IV, IG, IG, IG, IG, IG, IG, IG, SR],
        OriginalSynAck::SimultaneousOnly => MODERN[0][Index::SynAck as usize],
    };
    for (old, cell) in TcpState::ALL.into_iter().zip(original_synack) {
        set(Dir::Original, Index::SynAck, old, cell);
    }
    if !f.reply_synack_in_syn_recv_ignored {
        // 2.6.18 window-checked a retransmitted SYN/ACK and stayed in SYN_RECV.
        set(Dir::Reply, Index::SynAck, SynRecv, SR);
    }
    t
}

/// Looks a transition up.
pub fn transition(table: &Table, dir: Dir, index: Index, old: TcpState) -> Cell {
    table[dir.index()][index as usize][old as usize]
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    fn t(dir: Dir, index: Index, old: TcpState) -> Cell {
        transition(&MODERN, dir, index, old)
    }

    #[test]
    fn latest_features_build_the_modern_table() {
        assert_eq!(build_table(&crate::conntrack::profile::Features::LATEST), MODERN);
    }

    /// The 2.6.18 table, as `ip_conntrack_proto_tcp.c` of CentOS 5 has it (its tenth column is
    /// the unused LISTEN state, unreachable here).
    #[test]
    fn the_2_6_18_table() {
        let t = build_table(&crate::conntrack::profile::Features::V2_6_18);
        let row = |dir: Dir, index: Index| -> Vec<Cell> { t[dir.index()][index as usize][..9].to_vec() };
        assert_eq!(row(Dir::Original, Index::Syn), vec![SS, SS, IG, IG, IG, IG, IG, SS, SS]);
        assert_eq!(row(Dir::Original, Index::SynAck), vec![IV; 9]);
        assert_eq!(row(Dir::Original, Index::Fin), vec![IV, IV, FW, FW, LA, LA, LA, TW, CL]);
        assert_eq!(row(Dir::Original, Index::Ack), vec![ES, IV, ES, ES, CW, CW, TW, TW, CL]);
        assert_eq!(row(Dir::Reply, Index::Syn), vec![IV; 9]);
        assert_eq!(row(Dir::Reply, Index::SynAck), vec![IV, SR, SR, IG, IG, IG, IG, IG, IG]);
        assert_eq!(row(Dir::Reply, Index::Ack), vec![IV, IG, SR, ES, CW, CW, TW, TW, CL]);
        assert_eq!(row(Dir::Reply, Index::Rst), vec![IV, CL, CL, CL, CL, CL, CL, CL, CL]);
    }

    #[test]
    fn the_3_x_table() {
        let t = build_table(&crate::conntrack::profile::Features::V3_10);
        assert_eq!(t[0][Index::SynAck as usize], [IV, IV, IG, IG, IG, IG, IG, IG, IG, SR]);
        assert_eq!(t[1][Index::Syn as usize][TcpState::TimeWait as usize], IV);
        assert_eq!(t[1][Index::Syn as usize][TcpState::SynSent as usize], S2);
    }

    #[test]
    fn index_precedence() {
        assert_eq!(Index::of(TcpFlags(TcpFlags::RST | TcpFlags::ACK)), Index::Rst);
        assert_eq!(Index::of(TcpFlags(TcpFlags::SYN | TcpFlags::ACK)), Index::SynAck);
        assert_eq!(Index::of(TcpFlags(TcpFlags::SYN)), Index::Syn);
        assert_eq!(Index::of(TcpFlags(TcpFlags::FIN | TcpFlags::ACK)), Index::Fin);
        assert_eq!(Index::of(TcpFlags(TcpFlags::PSH | TcpFlags::ACK)), Index::Ack);
        assert_eq!(Index::of(TcpFlags(TcpFlags::PSH)), Index::None);
    }

    #[test]
    fn handshake_path() {
        assert_eq!(t(Dir::Original, Index::Syn, TcpState::None), SS);
        assert_eq!(t(Dir::Reply, Index::SynAck, TcpState::SynSent), SR);
        assert_eq!(t(Dir::Original, Index::Ack, TcpState::SynRecv), ES);
    }

    #[test]
    fn orderly_close_path() {
        assert_eq!(t(Dir::Original, Index::Fin, TcpState::Established), FW);
        assert_eq!(t(Dir::Reply, Index::Ack, TcpState::FinWait), CW);
        assert_eq!(t(Dir::Reply, Index::Fin, TcpState::CloseWait), LA);
        assert_eq!(t(Dir::Original, Index::Ack, TcpState::LastAck), TW);
    }

    #[test]
    fn reply_syn_on_live_entry_is_invalid() {
        // The CentOS 5 reverse-proxy mechanism: a SYN meeting a reversed entry.
        for old in [TcpState::SynRecv, TcpState::Established, TcpState::FinWait, TcpState::Close] {
            assert_eq!(t(Dir::Reply, Index::Syn, old), IV, "{old}");
        }
        assert_eq!(t(Dir::Reply, Index::Syn, TcpState::SynSent), S2);
        assert_eq!(t(Dir::Reply, Index::Syn, TcpState::TimeWait), SS);
    }

    #[test]
    fn original_syn_on_stale_entry_is_ignored() {
        for old in [TcpState::SynRecv, TcpState::Established, TcpState::LastAck] {
            assert_eq!(t(Dir::Original, Index::Syn, old), IG, "{old}");
        }
    }

    #[test]
    fn first_packet_row() {
        // What may create an entry: a SYN, or (loose pickup) an ACK.
        let row: Vec<Cell> = [Index::Syn, Index::SynAck, Index::Fin, Index::Ack, Index::Rst, Index::None]
            .iter()
            .map(|&i| t(Dir::Original, i, TcpState::None))
            .collect();
        assert_eq!(row, vec![SS, IV, IV, ES, IV, IV]);
    }

    #[test]
    fn none_row_is_all_invalid() {
        for dir in [Dir::Original, Dir::Reply] {
            for old in TcpState::ALL {
                assert_eq!(t(dir, Index::None, old), IV);
            }
        }
    }

    #[test]
    fn closing_states() {
        assert!(TcpState::TimeWait.is_closing());
        assert!(!TcpState::Established.is_closing());
        assert!(!TcpState::SynSent2.is_closing());
    }
}
