//! The lines conntrack logs (with `nf_conntrack_log_invalid`), in each era's words.
//!
//! Only the text is produced here; deciding *whether* something is logged is the tracker's job.

use super::profile::LogStyle;
use super::state::{Dir, Index, TcpState};
use super::window::Bound;

/// Something conntrack logs about a packet.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// Fewer than 20 bytes of TCP header (logged only by 2.6.18 and 3.x).
    ShortPacket,
    TruncatedPacket,
    BadChecksum,
    InvalidFlags,
    InvalidNew,
    StateInvalid { index: Index, dir: Dir, state: TcpState },
    StateIgnored { index: Index, dir: Dir, state: TcpState },
    ChallengeAckIgnored,
    InvalidRst,
    /// A failed window bound; `value` is the number current kernels print.
    Window { bound: Bound, value: u32 },
    LowerTimeout { index: Index, dir: Dir, last_index: Index, jiffies: u64 },
    /// 2.6.18: a SYN may not reopen a TIME_WAIT/CLOSE entry.
    InvalidSyn,
    /// 2.6.18: a SYN/ACK answered an ignored SYN; the entry is destroyed.
    KillingOutOfSync,
}

/// The line for `event` in `style`, or `None` if that era logs nothing for it.
pub fn line(style: LogStyle, event: Event) -> Option<String> {
    use Event::*;
    use LogStyle::*;
    let prefix = match style {
        IpCtTcp => "ip_ct_tcp: ",
        NfCtTcp => "nf_ct_tcp: ",
        ProtoShort | ProtoDetailed => "nf_ct_proto_6: ",
    };
    let old = matches!(style, IpCtTcp | NfCtTcp);
    let text = match event {
        ShortPacket if old => "short packet".to_string(),
        ShortPacket => return None,
        TruncatedPacket if old => "truncated/malformed packet".into(),
        TruncatedPacket => "truncated packet".into(),
        BadChecksum if old => "bad TCP checksum".into(),
        BadChecksum => "bad checksum".into(),
        InvalidFlags if old => "invalid TCP flag combination".into(),
        InvalidFlags => "invalid tcp flag combination".into(),
        InvalidNew => "invalid new".into(),
        StateInvalid { index, dir, state } if style == ProtoDetailed => {
            format!("packet (index {}) in dir {} invalid, state {}", index as u8, dir as u8, state)
        }
        StateInvalid { .. } => "invalid state".into(),
        StateIgnored { index, dir, state } if style == ProtoDetailed => {
            format!("packet (index {}) in dir {} ignored, state {}", index as u8, dir as u8, state)
        }
        StateIgnored { .. } if style == IpCtTcp => "invalid packet ignored".into(),
        StateIgnored { state, .. } => format!("invalid packet ignored in state {state}"),
        ChallengeAckIgnored => "challenge-ack ignored".into(),
        InvalidRst if old => "invalid RST".into(),
        InvalidRst => "invalid rst".into(),
        Window { bound, value } if style == ProtoDetailed => detailed_window_text(bound, value),
        Window { bound, .. } => short_window_text(bound).into(),
        LowerTimeout { index, dir, last_index, jiffies } => format!(
            "packet (index {}, dir {}) response for index {} lower timeout to {}",
            index as u8, dir as u8, last_index as u8, jiffies
        ),
        InvalidSyn => "invalid SYN".into(),
        KillingOutOfSync => "killing out of sync session".into(),
    };
    Some(format!("{prefix}{text}"))
}

/// 6.1 and later: one message per bound, with the number that failed.
fn detailed_window_text(bound: Bound, v: u32) -> String {
    match bound {
        Bound::SeqOvershoot => format!("{v} bytes more than expected"),
        Bound::SeqOverUpper => format!("SEQ is over upper bound {v} (over the window of the receiver)"),
        Bound::AckOverUpper => format!("ACK is over upper bound {v} (ACKed data not seen yet)"),
        Bound::SeqUnderLower => format!("SEQ is under lower bound {v} (already ACKed data retransmitted)"),
        Bound::AckUnderLower => format!("ignored ACK under lower bound {v} (possible overly delayed)"),
    }
}

/// Before 6.1: one message naming the first bound that failed, without numbers.
fn short_window_text(bound: Bound) -> &'static str {
    match bound {
        Bound::SeqOverUpper | Bound::SeqOvershoot => "SEQ is over the upper bound (over the window of the receiver)",
        Bound::SeqUnderLower => "SEQ is under the lower bound (already ACKed data retransmitted)",
        Bound::AckOverUpper => "ACK is over the upper bound (ACKed data not seen yet)",
        Bound::AckUnderLower => "ACK is under the lower bound (possible overly delayed ACK)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_word_the_same_event_differently() {
        let ev = Event::StateInvalid { index: Index::Syn, dir: Dir::Reply, state: TcpState::Established };
        assert_eq!(line(LogStyle::ProtoDetailed, ev).unwrap(), "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED");
        assert_eq!(line(LogStyle::ProtoShort, ev).unwrap(), "nf_ct_proto_6: invalid state");
        assert_eq!(line(LogStyle::IpCtTcp, ev).unwrap(), "ip_ct_tcp: invalid state");
        assert_eq!(line(LogStyle::IpCtTcp, Event::InvalidSyn).unwrap(), "ip_ct_tcp: invalid SYN");
        assert_eq!(line(LogStyle::ProtoDetailed, Event::ShortPacket), None);
        let w = Event::Window { bound: Bound::AckOverUpper, value: 5002 };
        assert_eq!(line(LogStyle::NfCtTcp, w).unwrap(), "nf_ct_tcp: ACK is over the upper bound (ACKed data not seen yet)");
    }
}
