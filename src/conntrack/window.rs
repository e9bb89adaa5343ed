//! Window tracking: the kernel's `tcp_in_window`, with its names.
//!
//! Each direction keeps what it has sent (`td_end`), how far the peer has let it send
//! (`td_maxend`), the largest window it advertised (`td_maxwin`) and the highest ACK it sent
//! (`td_maxack`). A segment is checked against four bounds:
//!
//! ```text
//!   I.   seq  <= sender.td_maxend                               (not beyond the receiver's window)
//!   II.  end  >= sender.td_end - receiver.td_maxwin             (not data the receiver already has)
//!   III. sack <= receiver.td_end                                (acknowledges nothing unsent)
//!   IV.  sack >= receiver.td_end - max(sender.td_maxwin, 66000) (not an ancient ACK)
//! ```
//!
//! Since 6.1 only I (beyond a small overshoot) and III make a packet INVALID; II and IV, and a
//! small overshoot of I, make the tracker *ignore* it (accepted, logged, entry not updated).

use super::seq::{after, before};
use super::entry::TcpCt;
use super::profile::{Features, RetransWindow};
use super::state::{Dir, Index, TcpState};
use crate::decode::{Segment, TcpOptions};
use serde::Serialize;

/// `IP_CT_TCP_FLAG_*`: per-direction flags (and two markers kept only in `last_flags`).
pub mod flag {
    pub const WINDOW_SCALE: u8 = 0x01;
    pub const SACK_PERM: u8 = 0x02;
    pub const CLOSE_INIT: u8 = 0x04;
    pub const BE_LIBERAL: u8 = 0x08;
    pub const DATA_UNACKNOWLEDGED: u8 = 0x10;
    pub const MAXACK_SET: u8 = 0x20;
    pub const EXP_CHALLENGE_ACK: u8 = 0x40;
    pub const SIMULTANEOUS_OPEN: u8 = 0x80;

    /// Flag names as `conntrack -L` / ctnetlink spell them, for reports.
    pub fn names(flags: u8) -> Vec<&'static str> {
        const NAMES: [(u8, &str); 8] = [
            (WINDOW_SCALE, "WINDOW_SCALE"),
            (SACK_PERM, "SACK_PERM"),
            (CLOSE_INIT, "CLOSE_INIT"),
            (BE_LIBERAL, "BE_LIBERAL"),
            (DATA_UNACKNOWLEDGED, "DATA_UNACKNOWLEDGED"),
            (MAXACK_SET, "MAXACK_SET"),
            (EXP_CHALLENGE_ACK, "EXP_CHALLENGE_ACK"),
            (SIMULTANEOUS_OPEN, "SIMULTANEOUS_OPEN"),
        ];
        NAMES.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect()
    }
}

/// What conntrack knows about one direction (`struct ip_ct_tcp_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirState {
    pub td_end: u32,
    pub td_maxend: u32,
    /// 0 means "this direction has not been seen yet".
    pub td_maxwin: u32,
    pub td_maxack: u32,
    pub td_scale: u8,
    pub flags: u8,
}

impl DirState {
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// `nf_ct_tcp_state_reset`: forget everything but the liberal marker.
    pub fn reset_keep_liberal(&mut self) {
        *self = DirState { flags: self.flags & flag::BE_LIBERAL, ..DirState::default() };
    }

    /// `tcp_options`: take window scale and SACK-permitted from a SYN. A SYN without options
    /// leaves the old values alone, exactly as the kernel does. Before 6.1 the flags were
    /// cleared whole, losing BE_LIBERAL.
    pub fn take_options(&mut self, opts: &TcpOptions, f: &Features) {
        if opts.area_len == 0 {
            return;
        }
        self.td_scale = 0;
        self.flags &= if f.options_keep_liberal { flag::BE_LIBERAL } else { 0 };
        if opts.sack_perm {
            self.flags |= flag::SACK_PERM;
        }
        if let Some(ws) = opts.wscale {
            self.td_scale = ws.min(14);
            self.flags |= flag::WINDOW_SCALE;
        }
    }

    /// Initialises the sender from a SYN or SYN/ACK (`tcp_init_sender`).
    fn init_sender(&mut self, receiver: &mut DirState, seg: &Segment, end: u32, dir: Dir, f: &Features) {
        self.td_end = end;
        self.td_maxend = end;
        self.td_maxwin = (seg.window as u32).max(1);
        self.take_options(&seg.options, f);
        // Window scaling is on only if both ends offered it (RFC 7323); decided when the
        // responder's SYN/ACK is seen (before 6.1: whichever side initialised).
        let decide = dir == Dir::Reply || !f.wscale_reset_on_reply_only;
        if decide && !(self.has(flag::WINDOW_SCALE) && receiver.has(flag::WINDOW_SCALE)) {
            self.td_scale = 0;
            receiver.td_scale = 0;
        }
    }
}

/// `end`: the sequence number just after this segment (SYN and FIN count as one byte each).
pub fn segment_end(seg: &Segment) -> u32 {
    seg.seq
        .wrapping_add(seg.payload_len())
        .wrapping_add(seg.flags.syn() as u32)
        .wrapping_add(seg.flags.fin() as u32)
}

/// `tcp_sack`: the highest SACK right edge of the first SACK option, or `ack` if none is after it.
fn highest_sack(seg: &Segment, ack: u32) -> u32 {
    let o = &seg.options;
    o.sack_right_edges[..o.sack_blocks.min(4) as usize]
        .iter()
        .fold(ack, |sack, &edge| if after(edge, sack) { edge } else { sack })
}

/// The largest ACK window conntrack tolerates for bound IV.
fn max_ack_window(sender: &DirState) -> u32 {
    sender.td_maxwin.max(66_000)
}

/// Which bound a segment failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// I failed, but by no more than the receiver's largest window: "bytes more than expected".
    SeqOvershoot,
    /// I: beyond the receiver's window.
    SeqOverUpper,
    /// III: acknowledges data not seen yet.
    AckOverUpper,
    /// II: entirely below the receiver's window (old retransmission).
    SeqUnderLower,
    /// IV: an ACK far below what was already acknowledged (overly delayed).
    AckUnderLower,
}

/// The numbers behind a window-check failure, as they were when the check ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WindowEvidence {
    pub bound: Bound,
    /// The number the kernel prints in its log line (the bound ± 1, or the overshoot in bytes).
    pub logged_value: u32,
    pub seq: u32,
    pub end: u32,
    pub ack: u32,
    pub sack: u32,
    /// The raw window field of the segment.
    pub win: u16,
    pub sender: DirState,
    pub receiver: DirState,
    /// For I: how many bytes the segment reaches past `sender.td_maxend` (+1, as the kernel counts).
    pub overshoot: Option<u32>,
}

/// The outcome of the window check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InWindow {
    Accept,
    /// A bound failed, but the sender is liberal (picked-up entry, or `be_liberal`): accepted
    /// silently, without updating the window data.
    AcceptLiberal(WindowEvidence),
    /// Accepted but ignored for tracking (logged).
    Ignore(WindowEvidence),
    Invalid(WindowEvidence),
}

/// `tcp_in_window`. It reads the entry's *stored* state, not the handler's local `old`, which the
/// re-sync path may have changed. `f` selects the kernel era's variant of each step.
// Inlined with `tcp_packet`: as a call it passed the segment's numbers and returned the outcome
// through memory (~35 instructions a packet).
#[inline(always)]
pub fn tcp_in_window(
    ct: &mut TcpCt,
    dir: Dir,
    index: Index,
    seg: &Segment,
    be_liberal_sysctl: bool,
    f: &Features,
) -> InWindow {
    let stored_state = ct.state;
    let [s0, s1] = &mut ct.seen;
    let (sender, receiver) = match dir {
        Dir::Original => (s0, s1),
        Dir::Reply => (s1, s0),
    };
    let flags = seg.flags;
    let mut seq = seg.seq;
    let mut ack = seg.ack;
    let mut sack = ack;
    let win_raw = seg.window;
    let mut win = win_raw as u32;
    let mut end = segment_end(seg);

    if receiver.has(flag::SACK_PERM) {
        sack = highest_sack(seg, ack);
    }

    // 2.6.18 marks an unseen direction by td_end == 0 (its reply side starts with td_maxwin 1).
    let unseen = if f.reply_maxwin_starts_at_one { sender.td_end == 0 } else { sender.td_maxwin == 0 };
    if unseen {
        // First packet seen from this direction.
        if flags.syn() && (flags.ack() || f.simultaneous_open) {
            sender.init_sender(receiver, seg, end, dir, f);
            if !flags.ack() {
                // A SYN from the reply side: simultaneous open.
                return InWindow::Accept;
            }
        } else {
            // Mid-stream: the history is lost, start from what this packet shows.
            sender.td_end = end;
            let swin = if f.reply_maxwin_starts_at_one { win } else { win << sender.td_scale };
            sender.td_maxwin = swin.max(1);
            sender.td_maxend = end.wrapping_add(sender.td_maxwin);
            if f.midstream_receiver_init {
                if receiver.td_maxwin == 0 {
                    // Nothing seen the other way yet either: make III and IV pass until it is.
                    receiver.td_end = sack;
                    receiver.td_maxend = sack;
                } else if sack == receiver.td_end.wrapping_add(1) {
                    // Most likely the answer to a keep-alive probe.
                    receiver.td_end = receiver.td_end.wrapping_add(1);
                }
            }
        }
    } else if f.reinit_on_any_higher_syn {
        if flags.syn()
            && after(end, sender.td_end)
            && matches!(stored_state, TcpState::SynSent | TcpState::SynRecv)
        {
            // A SYN or SYN/ACK retransmitted with a higher sequence number (RFC 793: a
            // reinitialised TCP uses larger numbers): start this direction over.
            sender.init_sender(receiver, seg, end, dir, f);
            if dir == Dir::Reply && !flags.ack() {
                return InWindow::Accept;
            }
        }
    } else if ((stored_state == TcpState::SynSent && dir == Dir::Original)
        || (stored_state == TcpState::SynRecv && dir == Dir::Reply))
        && after(end, sender.td_end)
    {
        // Older kernels: the handshake side still opening may move its numbers forward.
        sender.td_end = end;
        sender.td_maxend = end;
        sender.td_maxwin = win.max(1);
        sender.take_options(&seg.options, f);
    }

    if !flags.ack() {
        // No ACK: pretend it acknowledged exactly what was sent.
        ack = receiver.td_end;
        sack = ack;
    } else if flags.rst() && ack == 0 {
        // Some stacks set ACK on an RST with a zero ack number.
        ack = receiver.td_end;
        sack = ack;
    }

    let answers_syn = flags.rst() && seq == 0 && stored_state == TcpState::SynSent;
    if f.zero_length_skips_seq_checks {
        // Old kernels: a segment without data is assumed in window and only its ACK is checked;
        // RSTs are always checked by sequence, except one answering a SYN.
        if seq == end && (!flags.rst() || answers_syn) {
            seq = sender.td_end;
            end = seq;
        }
    } else if answers_syn {
        // An RST answering a SYN.
        seq = sender.td_end;
        end = seq;
    }

    let liberal = sender.has(flag::BE_LIBERAL) || be_liberal_sysctl;
    let evidence = |bound, logged_value, overshoot, sender: &DirState, receiver: &DirState| WindowEvidence {
        bound,
        logged_value,
        seq,
        end,
        ack,
        sack,
        win: win_raw,
        sender: *sender,
        receiver: *receiver,
        overshoot,
    };
    let fail = |result: fn(WindowEvidence) -> InWindow, ev: WindowEvidence| {
        if liberal { InWindow::AcceptLiberal(ev) } else { result(ev) }
    };

    let seq_ok = before(seq, sender.td_maxend.wrapping_add(1));
    let ack_ok = before(sack, receiver.td_end.wrapping_add(1));
    let in_recv_win = (f.unknown_receiver_window_passes_ii && receiver.td_maxwin == 0)
        || after(end, sender.td_end.wrapping_sub(receiver.td_maxwin).wrapping_sub(1));
    let ack_lower = receiver.td_end.wrapping_sub(max_ack_window(sender));
    let ack_not_ancient = if f.ack_lower_bound_uses_sack {
        after(sack, ack_lower.wrapping_sub(1))
    } else {
        after(ack, ack_lower)
    };

    if f.tristate_window {
        // I: not beyond the right edge of the receiver's window.
        if !seq_ok {
            let overshot = end.wrapping_sub(sender.td_maxend).wrapping_add(1);
            let in_known_win = receiver.td_maxwin != 0 && in_recv_win;
            if f.overshoot_workaround && in_known_win && ack_not_ancient && overshot <= receiver.td_maxwin && ack_ok {
                // Some stacks send a little more than the window allows. Remember the data was
                // sent, so that the ACK for it will not look like "ACK over upper bound" later.
                let ev = evidence(Bound::SeqOvershoot, overshot, Some(overshot), sender, receiver);
                sender.td_end = end;
                sender.flags |= flag::DATA_UNACKNOWLEDGED;
                return fail(InWindow::Ignore, ev);
            }
            let ev = evidence(Bound::SeqOverUpper, sender.td_maxend.wrapping_add(1), Some(overshot), sender, receiver);
            return fail(InWindow::Invalid, ev);
        }
        // III: acknowledges nothing that was not sent.
        if !ack_ok {
            let ev = evidence(Bound::AckOverUpper, receiver.td_end.wrapping_add(1), None, sender, receiver);
            return fail(InWindow::Invalid, ev);
        }
        // II: some of the segment is still inside the receiver's window (if it is known).
        if !in_recv_win {
            let bound = sender.td_end.wrapping_sub(receiver.td_maxwin).wrapping_sub(1);
            return fail(InWindow::Ignore, evidence(Bound::SeqUnderLower, bound, None, sender, receiver));
        }
        // IV: not an ACK from long ago.
        if !ack_not_ancient {
            let bound = ack_lower.wrapping_sub(1);
            return fail(InWindow::Ignore, evidence(Bound::AckUnderLower, bound, None, sender, receiver));
        }
    } else {
        // Before 6.1 every failed bound is INVALID, and the log names the first of I, II, III, IV.
        let failed = [
            (seq_ok, Bound::SeqOverUpper, sender.td_maxend.wrapping_add(1)),
            (in_recv_win, Bound::SeqUnderLower, sender.td_end.wrapping_sub(receiver.td_maxwin).wrapping_sub(1)),
            (ack_ok, Bound::AckOverUpper, receiver.td_end.wrapping_add(1)),
            (ack_not_ancient, Bound::AckUnderLower, ack_lower.wrapping_sub(1)),
        ]
        .into_iter()
        .find(|(ok, ..)| !ok);
        if let Some((_, bound, value)) = failed {
            let overshoot = (bound == Bound::SeqOverUpper).then(|| end.wrapping_sub(sender.td_maxend).wrapping_add(1));
            return fail(InWindow::Invalid, evidence(bound, value, overshoot, sender, receiver));
        }
    }

    // All bounds hold: learn from the segment.
    if !flags.syn() {
        win <<= sender.td_scale;
    }
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    if sender.td_maxwin < swin {
        sender.td_maxwin = swin;
    }
    if after(end, sender.td_end) {
        sender.td_end = end;
        if f.unacknowledged_data {
            sender.flags |= flag::DATA_UNACKNOWLEDGED;
        }
    }
    if flags.ack() && f.rst_maxack_check {
        if !sender.has(flag::MAXACK_SET) {
            sender.td_maxack = ack;
            sender.flags |= flag::MAXACK_SET;
        } else if after(ack, sender.td_maxack) {
            sender.td_maxack = ack;
        }
    }

    if (receiver.td_maxwin != 0 || f.reply_maxwin_starts_at_one) && after(end, sender.td_maxend) {
        receiver.td_maxwin = receiver.td_maxwin.wrapping_add(end.wrapping_sub(sender.td_maxend));
    }
    if after(sack.wrapping_add(win), receiver.td_maxend.wrapping_sub(1)) {
        receiver.td_maxend = sack.wrapping_add(win);
        if win == 0 {
            receiver.td_maxend = receiver.td_maxend.wrapping_add(1);
        }
    }
    if ack == receiver.td_end && f.unacknowledged_data {
        receiver.flags &= !flag::DATA_UNACKNOWLEDGED;
    }

    // Count identical retransmissions of ACK-class segments.
    if index == Index::Ack {
        // The window the kernel of this era compares and remembers (3.x: scaled, and cut to the
        // 16 bits of its `last_win` field).
        let compared_win = match f.retrans_window {
            RetransWindow::Raw => win_raw,
            RetransWindow::Scaled => win as u16,
            RetransWindow::Ignored => ct.last_win,
        };
        if ct.last_dir == dir && ct.last_seq == seq && ct.last_ack == ack && ct.last_end == end && ct.last_win == compared_win {
            ct.retrans = ct.retrans.wrapping_add(1);
        } else {
            ct.last_dir = dir;
            ct.last_seq = seq;
            ct.last_ack = ack;
            ct.last_end = end;
            ct.last_win = compared_win;
            ct.retrans = 0;
        }
    }
    InWindow::Accept
}

#[cfg(test)]
mod tests {
    //! The bounds one at a time, on the entry the spec's baseline handshake H leaves:
    //! originator `td_end 1001, td_maxend 66161, td_maxwin 64240`, responder
    //! `td_end 5001, td_maxend 69241, td_maxwin 65160`, ESTABLISHED.
    use super::*;
    use crate::conntrack::profile::Profile;
    use crate::decode::{ChecksumStatus, TcpFlags, Tuple};
    use std::net::{IpAddr, Ipv4Addr};

    fn established() -> TcpCt {
        let mut ct = TcpCt::zeroed();
        ct.state = TcpState::Established;
        ct.seen[0] = DirState { td_end: 1001, td_maxend: 66161, td_maxwin: 64240, td_maxack: 5001, td_scale: 0, flags: flag::MAXACK_SET };
        ct.seen[1] = DirState { td_end: 5001, td_maxend: 69241, td_maxwin: 65160, td_maxack: 1001, td_scale: 0, flags: flag::MAXACK_SET };
        ct
    }

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Segment {
            tuple: Tuple { src: ip, dst: ip, sport: 1, dport: 2 },
            seq,
            ack,
            window: 64240,
            flags: TcpFlags(flags),
            doff: 5,
            l4_len: 20 + len,
            options: TcpOptions::default(),
            checksum: ChecksumStatus::Good,
            ttl: 64,
            fragments: 1,
            truncated: false,
            link_direction: None,
        }
    }

    fn check(ct: &mut TcpCt, s: &Segment, liberal: bool) -> InWindow {
        tcp_in_window(ct, Dir::Original, Index::of(s.flags), s, liberal, &Profile::latest().features)
    }

    fn bound(r: InWindow) -> Option<(Bound, u32, &'static str)> {
        match r {
            InWindow::Accept => None,
            InWindow::AcceptLiberal(e) => Some((e.bound, e.logged_value, "liberal")),
            InWindow::Ignore(e) => Some((e.bound, e.logged_value, "ignore")),
            InWindow::Invalid(e) => Some((e.bound, e.logged_value, "invalid")),
        }
    }

    const ACK: u8 = TcpFlags::ACK;

    #[test]
    fn in_window_data_is_accepted_and_learnt() {
        let mut ct = established();
        assert_eq!(check(&mut ct, &seg(ACK | TcpFlags::PSH, 1001, 5001, 100), false), InWindow::Accept);
        assert_eq!(ct.seen[0].td_end, 1101);
        assert!(ct.seen[0].has(flag::DATA_UNACKNOWLEDGED));
    }

    #[test]
    fn bound_i_seq_beyond_the_window() {
        let mut ct = established();
        // Starts at td_maxend + 39: a small overshoot is ignored (and td_end advanced)...
        assert_eq!(bound(check(&mut ct, &seg(ACK, 66200, 5001, 100), false)), Some((Bound::SeqOvershoot, 140, "ignore")));
        assert_eq!(ct.seen[0].td_end, 66300);
        // ...a large one is INVALID, the log naming td_maxend + 1.
        let mut ct = established();
        assert_eq!(bound(check(&mut ct, &seg(ACK, 200_000, 5001, 100), false)), Some((Bound::SeqOverUpper, 66162, "invalid")));
    }

    #[test]
    fn bound_iii_ack_for_unseen_data() {
        let mut ct = established();
        assert_eq!(bound(check(&mut ct, &seg(ACK, 1001, 9000, 0), false)), Some((Bound::AckOverUpper, 5002, "invalid")));
    }

    #[test]
    fn bound_ii_old_retransmission_is_ignored() {
        let mut ct = established();
        ct.seen[1].td_maxwin = 1000;
        ct.seen[0].td_end = 4001;
        assert_eq!(bound(check(&mut ct, &seg(ACK, 1001, 5001, 1000), false)), Some((Bound::SeqUnderLower, 3000, "ignore")));
    }

    #[test]
    fn bound_iv_ancient_ack_is_ignored() {
        let mut ct = established();
        ct.seen[1].td_end = 80001;
        assert_eq!(bound(check(&mut ct, &seg(ACK, 1001, 5001, 0), false)), Some((Bound::AckUnderLower, 14000, "ignore")));
    }

    #[test]
    fn liberal_accepts_silently_without_learning() {
        let mut ct = established();
        let before = ct;
        assert_eq!(bound(check(&mut ct, &seg(ACK, 1001, 9000, 0), true)), Some((Bound::AckOverUpper, 5002, "liberal")));
        assert_eq!(ct, before, "nothing learnt from a packet that failed a bound");
    }

    #[test]
    fn bool_era_reports_the_first_failed_bound_in_i_ii_iii_iv_order() {
        // Both II and III fail; latest reports III first, 5.14 reports II.
        let mut ct = established();
        ct.seen[1].td_maxwin = 1000;
        ct.seen[0].td_end = 4001;
        let s = seg(ACK, 1001, 9000, 1000);
        assert_eq!(bound(check(&mut ct.clone(), &s, false)).unwrap().0, Bound::AckOverUpper);
        let old = Profile::by_name("5.14").unwrap().features;
        let r = tcp_in_window(&mut ct, Dir::Original, Index::Ack, &s, false, &old);
        assert_eq!(bound(r), Some((Bound::SeqUnderLower, 3000, "invalid")));
    }

    #[test]
    fn midstream_init_of_an_unseen_direction() {
        // A picked-up entry: the reply side is unseen; its first packet initialises it, and the
        // receiver's unseen end is set from the ACK so that III passes.
        let mut ct = TcpCt::zeroed();
        ct.state = TcpState::Established;
        let reply = seg(ACK, 7000, 3000, 10);
        let r = tcp_in_window(&mut ct, Dir::Reply, Index::Ack, &reply, false, &Profile::latest().features);
        assert_eq!(r, InWindow::Accept);
        assert_eq!((ct.seen[1].td_end, ct.seen[1].td_maxwin), (7010, 64240));
        assert_eq!(ct.seen[0].td_end, 3000);
    }

    #[test]
    fn syn_options_respect_an_empty_option_area() {
        let mut st = DirState { td_scale: 7, flags: flag::WINDOW_SCALE | flag::BE_LIBERAL, ..DirState::default() };
        let f = Profile::latest().features;
        st.take_options(&TcpOptions::default(), &f);
        assert_eq!((st.td_scale, st.flags), (7, flag::WINDOW_SCALE | flag::BE_LIBERAL), "no options: untouched");
        let opts = TcpOptions { area_len: 4, wscale: Some(20), ..TcpOptions::default() };
        st.take_options(&opts, &f);
        assert_eq!((st.td_scale, st.flags), (14, flag::WINDOW_SCALE | flag::BE_LIBERAL), "clamped to 14, liberal kept");
        let old = Profile::by_name("5.14").unwrap().features;
        st.take_options(&opts, &old);
        assert_eq!(st.flags, flag::WINDOW_SCALE, "before 6.1 the liberal flag was lost");
    }
}
