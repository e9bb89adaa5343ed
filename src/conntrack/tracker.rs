//! The packet handler: header checks (`tcp_error`), entry creation (`tcp_new`), and the state
//! machine with its special cases (`nf_conntrack_tcp_packet`), in the kernel's order. Where
//! kernel eras differ, the profile's [`Features`] decide.
//!
//! Every rejection returns a [`Reason`] value; nothing here prints.

use super::entry::{Entry, TcpCt};
use super::log::{line, Event};
use super::profile::{Features, Profile};
use super::seq::{after, before};
use super::state::{transition, Cell, Dir, Index, TcpState};
use super::sysctl::Sysctls;
use super::window::{flag, segment_end, tcp_in_window, DirState, InWindow, WindowEvidence};
use crate::capture::Timestamp;
use crate::decode::{ChecksumStatus, Segment, TcpFlags};
use crate::verdict::{CreatedBy, Evidence, Reason, ReasonId};

/// Where in the IP stack conntrack meets the packet. Checksums are verified only for packets
/// received from the wire (PRE_ROUTING), never for locally generated ones (LOCAL_OUT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    PreRouting,
    LocalOut,
}

/// What the tracker is configured with.
pub struct Config<'a> {
    pub profile: &'a Profile,
    pub sysctls: &'a Sysctls,
    /// The profile's features; where they are the newest kernel's, the constant
    /// [`Features::LATEST`] itself, so that the compiler can decide every switch in advance.
    pub features: &'a Features,
}

impl<'a> Config<'a> {
    /// The configuration of a profile with these sysctls, its features read from the profile.
    pub fn new(profile: &'a Profile, sysctls: &'a Sysctls) -> Config<'a> {
        Config { profile, sysctls, features: &profile.features }
    }

    /// A reason, with the line this kernel logs for `event` (if it logs one). Cold: the
    /// tracker's paths that build one are the rare ones, and kept out of the way of the others.
    #[cold]
    fn reason(&self, id: ReasonId, event: Option<Event>, evidence: Evidence) -> Reason {
        let kernel_log = event.and_then(|e| line(self.profile.log_style, e)).into_iter().collect();
        Reason { id, kernel_log, evidence }
    }
}

/// The valid flag combinations once PSH, ECE and CWR are masked off (`tcp_valid_flags`).
const VALID_FLAGS: [u8; 9] = [
    TcpFlags::SYN,
    TcpFlags::SYN | TcpFlags::URG,
    TcpFlags::SYN | TcpFlags::ACK,
    TcpFlags::RST,
    TcpFlags::RST | TcpFlags::ACK,
    TcpFlags::FIN | TcpFlags::ACK,
    TcpFlags::FIN | TcpFlags::ACK | TcpFlags::URG,
    TcpFlags::ACK,
    TcpFlags::ACK | TcpFlags::URG,
];

/// 2.6.18's table: only ECE and CWR masked, so PSH counts (SYN+URG and RST+PSH are INVALID).
const VALID_FLAGS_2_6_18: [u8; 15] = {
    const S: u8 = TcpFlags::SYN;
    const A: u8 = TcpFlags::ACK;
    const P: u8 = TcpFlags::PSH;
    const R: u8 = TcpFlags::RST;
    const F: u8 = TcpFlags::FIN;
    const U: u8 = TcpFlags::URG;
    [S, S | A, S | P, S | A | P, R, R | A, R | A | P, F | A, A, A | P, A | U, A | U | P, F | A | P, F | A | U, F | A | U | P]
};

/// A list of flag combinations as a set: bit `n` stands for the combination `n`. With ECE and
/// CWR masked off, a combination is below 64, so checking a packet's flags is one shift (the
/// kernel indexes a table the same way); this runs for every packet in every table.
const fn set_of(combinations: &[u8]) -> u64 {
    let mut set = 0;
    let mut i = 0;
    while i < combinations.len() {
        set |= 1 << combinations[i];
        i += 1;
    }
    set
}

const VALID_SET: u64 = set_of(&VALID_FLAGS);
const VALID_SET_2_6_18: u64 = set_of(&VALID_FLAGS_2_6_18);

fn flags_valid(flags: TcpFlags, f: &Features) -> bool {
    let (set, masked) = if f.psh_masked_in_flag_check {
        (VALID_SET, flags.0 & !(TcpFlags::PSH | TcpFlags::ECE | TcpFlags::CWR))
    } else {
        (VALID_SET_2_6_18, flags.0 & !(TcpFlags::ECE | TcpFlags::CWR))
    };
    (set >> masked) & 1 == 1
}

/// What `tcp_error` finds wrong with a packet's header.
#[derive(Clone, Copy)]
enum HeaderError {
    Truncated,
    BadChecksum,
    InvalidFlags,
}

/// `tcp_error`: checks made on every packet before any state is consulted.
#[inline]
pub fn header_error(cfg: &Config, seg: &Segment, hook: Hook) -> Option<Reason> {
    // The checks, apart from the wording of what they find: every packet is checked, by every
    // table, and building a reason is rare.
    let header_len = seg.doff as u32 * 4;
    let found = if header_len < 20 || seg.l4_len < header_len {
        HeaderError::Truncated
    } else if cfg.sysctls.checksum && hook == Hook::PreRouting && matches!(seg.checksum, ChecksumStatus::Bad | ChecksumStatus::Partial) {
        HeaderError::BadChecksum
    } else if !flags_valid(seg.flags, cfg.features) {
        HeaderError::InvalidFlags
    } else {
        return None;
    };
    Some(header_reason(cfg, seg, found))
}

/// The reason for what `tcp_error` found, in the kernel's words.
#[cold]
fn header_reason(cfg: &Config, seg: &Segment, found: HeaderError) -> Reason {
    match found {
        HeaderError::Truncated => {
            let ev = Evidence::Length { doff: seg.doff, l4_len: seg.l4_len };
            cfg.reason(ReasonId::TruncatedPacket, Some(Event::TruncatedPacket), ev)
        }
        HeaderError::BadChecksum => cfg.reason(ReasonId::BadChecksum, Some(Event::BadChecksum), Evidence::None),
        HeaderError::InvalidFlags => {
            let ev = Evidence::Flags { flags: seg.flags.0 };
            cfg.reason(ReasonId::InvalidTcpFlags, Some(Event::InvalidFlags), ev)
        }
    }
}

/// The reason for a datagram too short to hold a TCP header (old kernels log "short packet").
pub fn unreadable_header(cfg: &Config) -> Reason {
    cfg.reason(ReasonId::TcpHeaderUnreadable, Some(Event::ShortPacket), Evidence::None)
}

/// How a new entry starts, decided by `tcp_new`.
pub enum NewEntry {
    Created(TcpCt, CreatedBy),
    Refused(Reason),
}

/// `tcp_new`: may this packet, which matched no entry, create one?
pub fn tcp_new(cfg: &Config, seg: &Segment) -> NewEntry {
    let f = cfg.features;
    let index = Index::of(seg.flags);
    let mut ct = TcpCt::zeroed();
    let end = segment_end(seg);
    let initial = DirState { td_end: end, td_maxwin: (seg.window as u32).max(1), ..DirState::default() };
    let created = match transition(&cfg.profile.table, Dir::Original, index, TcpState::None) {
        Cell::To(TcpState::SynSent) => {
            ct.seen[0] = DirState { td_maxend: end, ..initial };
            ct.seen[0].take_options(&seg.options, f);
            CreatedBy::Syn
        }
        Cell::To(_) if !cfg.sysctls.tcp_loose => {
            return NewEntry::Refused(cfg.reason(ReasonId::PickupDisabled, None, Evidence::None));
        }
        Cell::To(_) => {
            // Mid-stream pickup: without the handshake, window scaling is unknown, so both
            // directions are checked liberally from now on.
            ct.seen[0] = DirState { td_maxend: end.wrapping_add(initial.td_maxwin), ..initial };
            ct.seen[0].flags = flag::SACK_PERM | flag::BE_LIBERAL;
            ct.seen[1].flags = flag::SACK_PERM | flag::BE_LIBERAL;
            CreatedBy::Pickup
        }
        Cell::Invalid | Cell::Ignore => {
            let ev = Evidence::Cell { dir: Dir::Original, index, state: TcpState::None, result: "invalid" };
            let event = f.log_invalid_new.then_some(Event::InvalidNew);
            return NewEntry::Refused(cfg.reason(ReasonId::InvalidNew, event, ev));
        }
    };
    if f.reply_maxwin_starts_at_one {
        // 2.6.18 starts the unseen reply side with a window of 1.
        ct.seen[1].td_maxwin = 1;
    }
    NewEntry::Created(ct, created)
}

/// The handler's decision for one packet on one entry.
#[derive(Debug)]
pub enum Handled {
    /// Tracked and applied (also when a window bound failed but the liberal rule, for a
    /// picked-up entry or `be_liberal`, let the packet pass silently, as the kernel does).
    Accepted { delete_entry: bool },
    /// Tracked, but the entry was left unchanged (sIG, window IGNORE, challenge ACK).
    Ignored(Reason),
    /// INVALID: no conntrack attached to the packet.
    Invalid(Reason),
    /// The old entry must be destroyed and the packet looked up again (reopen).
    Repeat,
    /// Conntrack drops the packet and destroys the entry (2.6.18's out-of-sync kill).
    DropAndKill(Reason),
}

/// `nf_conntrack_tcp_packet` after the header checks and `tcp_new`.
// Inlined into its three callers in the table's judging (~22 instructions a packet, ~5 kB of code).
#[inline(always)]
pub fn tcp_packet(cfg: &Config, e: &mut Entry, seg: &Segment, dir: Dir, now: Timestamp) -> Handled {
    let f = cfg.features;
    let index = Index::of(seg.flags);
    let old = e.tcp.state;
    // The re-sync path below pretends the entry was in SYN_SENT; the stored state stays as it is.
    let mut old_local = old;
    let mut new_state;
    let mut skip_window = false;

    match transition(&cfg.profile.table, dir, index, old) {
        Cell::Invalid => {
            let id = if index == Index::Syn && dir == Dir::Reply {
                ReasonId::SynMeetsReversedEntry
            } else {
                ReasonId::StateTableInvalid
            };
            let ev = Evidence::Cell { dir, index, state: old, result: "invalid" };
            return Handled::Invalid(cfg.reason(id, Some(Event::StateInvalid { index, dir, state: old }), ev));
        }
        Cell::Ignore => {
            if !is_resync(&e.tcp, index, dir, seg) {
                return ignore(cfg, &mut e.tcp, seg, dir, index, ReasonId::StateTableIgnored);
            }
            if !f.resync_on_synack {
                // 2.6.18: the firewall is out of sync; it kills the entry and drops the SYN/ACK
                // so that the client retransmits its SYN and starts a clean entry.
                let ev = Evidence::Cell { dir, index, state: old, result: "ignore" };
                return Handled::DropAndKill(cfg.reason(ReasonId::OutOfSyncKilled, Some(Event::KillingOutOfSync), ev));
            }
            resync(&mut e.tcp, dir);
            old_local = TcpState::SynSent;
            new_state = TcpState::SynRecv;
        }
        Cell::To(to) => {
            new_state = to;
            match to {
                // A SYN on a TIME_WAIT or CLOSE entry.
                TcpState::SynSent if old >= TcpState::TimeWait => {
                    return reopen(cfg, e, seg, dir, index);
                }
                TcpState::TimeWait if f.challenge_ack_in_last_ack => {
                    // An RFC 5961 challenge ACK answering a SYN ignored in LAST_ACK does not
                    // acknowledge the last FIN.
                    let ct = &mut e.tcp;
                    if old == TcpState::LastAck
                        && index == Index::Ack
                        && ct.last_dir != dir
                        && ct.last_index == Index::Syn
                        && ct.last_flags & flag::EXP_CHALLENGE_ACK != 0
                    {
                        ct.last_flags &= !flag::EXP_CHALLENGE_ACK;
                        let ev = Evidence::Cell { dir, index, state: old, result: "TIME_WAIT" };
                        let r = cfg.reason(ReasonId::ChallengeAckIgnored, Some(Event::ChallengeAckIgnored), ev);
                        return Handled::Ignored(r);
                    }
                }
                TcpState::SynSent2 => e.tcp.last_flags |= flag::SIMULTANEOUS_OPEN,
                // The table keeps a reply ACK in SYN_RECV; after a simultaneous open it completes it.
                TcpState::SynRecv
                    if f.simultaneous_open_flag
                        && dir == Dir::Reply
                        && index == Index::Ack
                        && e.tcp.last_flags & flag::SIMULTANEOUS_OPEN != 0 =>
                {
                    new_state = TcpState::Established;
                }
                TcpState::Close if index == Index::Rst => match check_rst(cfg, e, seg, dir, old) {
                    RstCheck::Invalid(r) => return Handled::Invalid(r),
                    RstCheck::WindowCheck => {}
                    RstCheck::SkipWindowCheck => skip_window = true,
                    RstCheck::KeepState => new_state = old,
                    RstCheck::KeepStateSkipWindowCheck => {
                        new_state = old;
                        skip_window = true;
                    }
                },
                _ => {}
            }
        }
    }

    if !skip_window {
        match tcp_in_window(&mut e.tcp, dir, index, seg, cfg.sysctls.tcp_be_liberal, f) {
            InWindow::Accept | InWindow::AcceptLiberal(_) => {}
            InWindow::Ignore(ev) => return Handled::Ignored(window_reason(cfg, &ev)),
            InWindow::Invalid(ev) => {
                let mut r = window_reason(cfg, &ev);
                if let Some(line) = lower_timeout_on_invalid(cfg, e, dir, index, now) {
                    r.kernel_log.push(line);
                }
                return Handled::Invalid(r);
            }
        }
    }

    // From here on the packet is in window.
    let ct = &mut e.tcp;
    ct.last_index = index;
    if f.resync_on_synack {
        // (2.6.18 left last_dir to the ignore and retransmission paths.)
        ct.last_dir = dir;
    }
    ct.state = new_state;
    let closer = new_state == TcpState::FinWait || (f.close_init_on_close && new_state == TcpState::Close);
    if old_local != new_state && closer {
        ct.seen[dir.index()].flags |= flag::CLOSE_INIT;
    }

    let t = &cfg.sysctls.timeouts;
    let state_timeout = t.of(new_state);
    let unacked = (ct.seen[0].flags | ct.seen[1].flags) & flag::DATA_UNACKNOWLEDGED != 0;
    let mut timeout = if ct.retrans as u32 >= cfg.sysctls.tcp_max_retrans && state_timeout > t.max_retrans {
        t.max_retrans
    } else if f.rst_close_timeout && index == Index::Rst {
        t.close
    } else if f.unacknowledged_data && unacked && state_timeout > t.unacknowledged {
        t.unacknowledged
    } else if f.zero_window_retrans_cap && ct.last_win == 0 && state_timeout > t.max_retrans {
        t.max_retrans
    } else {
        state_timeout
    };

    if !e.seen_reply {
        if seg.flags.rst() {
            // The only answer was an RST: there is no connection, forget the entry now.
            return Handled::Accepted { delete_entry: true };
        }
        if f.syn_retransmit_no_refresh && index == Index::Syn && old_local == TcpState::SynSent {
            // A SYN retransmission must not keep a dead entry alive forever.
            return Handled::Accepted { delete_entry: false };
        }
        if f.unreplied_pickup_capped && new_state == TcpState::Established && timeout > t.unacknowledged {
            // A picked-up connection nobody answered gets the short timeout.
            timeout = t.unacknowledged;
        }
    } else if !e.assured
        && matches!(old_local, TcpState::SynRecv | TcpState::Established)
        && new_state == TcpState::Established
    {
        e.assured = true;
    }
    e.expires = Timestamp(now.0.saturating_add(timeout as i64 * 1_000_000_000));
    Handled::Accepted { delete_entry: false }
}

/// A SYN on a closed entry (TIME_WAIT or CLOSE): reopen it, or not.
#[cold]
fn reopen(cfg: &Config, e: &mut Entry, seg: &Segment, dir: Dir, index: Index) -> Handled {
    let ct = &e.tcp;
    if cfg.features.reopen_by_own_close_or_higher_isn {
        // 2.6.18: only if this side closed first, or its new ISN is beyond what it sent before;
        // otherwise the SYN is INVALID.
        let own = &ct.seen[dir.index()];
        if own.has(flag::CLOSE_INIT) || after(seg.seq, own.td_end) {
            return Handled::Repeat;
        }
        let ev = Evidence::Cell { dir, index, state: ct.state, result: "SYN_SENT" };
        return Handled::Invalid(cfg.reason(ReasonId::InvalidSynReopen, Some(Event::InvalidSyn), ev));
    }
    // Reopen if somebody closed it with a FIN, or if the last packet was an RST from the side
    // now sending the SYN; otherwise the endpoints may still think the old connection is alive.
    let closed_by_fin = (ct.seen[0].flags | ct.seen[1].flags) & flag::CLOSE_INIT != 0;
    let own_rst = ct.last_dir == dir && ct.last_index == Index::Rst;
    if closed_by_fin || own_rst {
        return Handled::Repeat;
    }
    ignore(cfg, &mut e.tcp, seg, dir, index, ReasonId::ReopenRefused)
}

/// Does this SYN/ACK acknowledge exactly the SYN conntrack ignored earlier? Then both endpoints
/// are in sync on a new connection and conntrack should follow them.
fn is_resync(ct: &TcpCt, index: Index, dir: Dir, seg: &Segment) -> bool {
    index == Index::SynAck && ct.last_index == Index::Syn && ct.last_dir != dir && seg.ack == ct.last_end
}

/// Adopts the connection the ignored SYN started: its side from the annotation, the SYN/ACK
/// sender's side from scratch (the window check re-initialises it from this packet).
fn resync(ct: &mut TcpCt, dir: Dir) {
    ct.last_flags &= !flag::EXP_CHALLENGE_ACK;
    ct.seen[ct.last_dir.index()] = DirState {
        td_end: ct.last_end,
        td_maxend: ct.last_end,
        td_maxwin: (ct.last_win as u32).max(1),
        td_maxack: ct.seen[ct.last_dir.index()].td_maxack,
        td_scale: ct.last_wscale,
        flags: ct.last_flags,
    };
    ct.seen[dir.index()].reset_keep_liberal();
}

/// Accepts a packet without letting it change the entry, remembering enough of it to re-sync
/// if the other side proves it right.
#[cold]
fn ignore(cfg: &Config, ct: &mut TcpCt, seg: &Segment, dir: Dir, index: Index, id: ReasonId) -> Handled {
    let f = cfg.features;
    let old = ct.state;
    ct.last_index = index;
    ct.last_dir = dir;
    ct.last_seq = seg.seq;
    ct.last_end = segment_end(seg);
    ct.last_win = seg.window;
    if index == Index::Syn && dir == Dir::Original {
        let mut opts = DirState::default();
        opts.take_options(&seg.options, f);
        ct.last_flags = 0;
        ct.last_wscale = 0;
        if opts.has(flag::WINDOW_SCALE) {
            ct.last_flags |= flag::WINDOW_SCALE;
            ct.last_wscale = opts.td_scale;
        }
        if opts.has(flag::SACK_PERM) {
            ct.last_flags |= flag::SACK_PERM;
        }
        if old == TcpState::LastAck && f.challenge_ack_in_last_ack {
            // The peer may answer with a challenge ACK, which must not count as the last ACK.
            ct.last_flags |= flag::EXP_CHALLENGE_ACK;
        }
    }
    if f.rst_after_challenge_ack && old == TcpState::SynSent && index == Index::Ack && dir == Dir::Reply {
        // Perhaps a challenge ACK to our SYN; an RST with this sequence number may follow.
        ct.last_ack = seg.ack;
    }
    let id = if id == ReasonId::StateTableIgnored && index == Index::Syn && dir == Dir::Original {
        ReasonId::SynOnStaleEntry
    } else {
        id
    };
    let ev = Evidence::Cell { dir, index, state: old, result: "ignore" };
    Handled::Ignored(cfg.reason(id, Some(Event::StateIgnored { index, dir, state: old }), ev))
}

/// What the RST special cases decided.
enum RstCheck {
    Invalid(Reason),
    WindowCheck,
    SkipWindowCheck,
    /// An in-window but inexact RST on an established connection: keep the state (a challenge
    /// ACK may still rescue the connection), but it gets the CLOSE timeout.
    KeepState,
    KeepStateSkipWindowCheck,
}

/// The RST rules (entered when the table says CLOSE for an RST).
fn check_rst(cfg: &Config, e: &Entry, seg: &Segment, dir: Dir, old: TcpState) -> RstCheck {
    let f = cfg.features;
    let ct = &e.tcp;
    if f.rst_reuse_exceptions && ct.state.is_closing() {
        // The tuple may already have been reused; the old numbers mean nothing now.
        return RstCheck::SkipWindowCheck;
    }
    let mut keep_state = false;
    let peer = ct.seen[dir.other().index()];
    // td_maxack is not trustworthy if the last thing let through was a SYN.
    let maxack_trusted = !f.rst_reuse_exceptions || ct.last_index != Index::Syn;
    if f.rst_maxack_check && peer.has(flag::MAXACK_SET) && maxack_trusted {
        let seq = seg.seq;
        if f.rst_reuse_exceptions && seq == 0 && !e.established_and_assured() {
            // Most likely the answer to a SYN that was let through.
            return RstCheck::WindowCheck;
        }
        if before(seq, peer.td_maxack) && !cfg.sysctls.tcp_ignore_invalid_rst {
            let ev = Evidence::Rst { seq, td_maxack: peer.td_maxack };
            return RstCheck::Invalid(cfg.reason(ReasonId::InvalidRst, Some(Event::InvalidRst), ev));
        }
        if f.rst_inexact_keeps_state {
            if !e.established_and_assured() || seq == peer.td_maxack {
                return RstCheck::WindowCheck;
            }
            if ct.last_index == Index::Ack && ct.last_dir == dir && seq == ct.last_end {
                // The RST right after this side's own data ("RST train").
                return RstCheck::WindowCheck;
            }
            keep_state = true;
        }
    }
    // An RST answering a SYN or ACK that was let through while conntrack was out of sync
    // carries an ack for that packet: skip the window check, it may acknowledge ignored data.
    let from_other_side = !f.rst_ignored_syn_other_direction || ct.last_dir != dir;
    let answers_ignored_syn = e.seen_reply && ct.last_index == Index::Syn && from_other_side;
    let answers_half_open_ack = !e.assured && ct.last_index == Index::Ack;
    let answers_challenge_ack = f.rst_after_challenge_ack
        && old == TcpState::SynSent
        && ct.last_index == Index::Ack
        && ct.last_dir == Dir::Reply
        && seg.seq == ct.last_ack;
    let skip = ((answers_ignored_syn || answers_half_open_ack) && seg.ack == ct.last_end) || answers_challenge_ack;
    match (keep_state, skip) {
        (false, false) => RstCheck::WindowCheck,
        (false, true) => RstCheck::SkipWindowCheck,
        (true, false) => RstCheck::KeepState,
        (true, true) => RstCheck::KeepStateSkipWindowCheck,
    }
}

/// The reason for a failed window bound, with the kernel's log line.
#[cold]
fn window_reason(cfg: &Config, ev: &WindowEvidence) -> Reason {
    let event = Event::Window { bound: ev.bound, value: ev.logged_value };
    cfg.reason(ReasonId::of_bound(ev.bound), Some(event), Evidence::Window(*ev))
}

/// `nf_tcp_handle_invalid` (6.1+): an out-of-window FIN or RST answering the other side's FIN or
/// RST means the endpoints are gone; shorten an assured entry's long timeout. Otherwise remember
/// the packet as the last one seen, even though it was INVALID.
#[cold]
fn lower_timeout_on_invalid(cfg: &Config, e: &mut Entry, dir: Dir, index: Index, now: Timestamp) -> Option<String> {
    if !cfg.features.lower_timeout_on_invalid_fin_rst || !e.assured || !matches!(index, Index::Fin | Index::Rst) {
        return None;
    }
    let ct = &mut e.tcp;
    if ct.last_dir != dir && matches!(ct.last_index, Index::Fin | Index::Rst) {
        let remaining_ns = e.expires.0.saturating_sub(now.0).max(0);
        if remaining_ns < 120 * 1_000_000_000 {
            return None;
        }
        let unack = cfg.sysctls.timeouts.unacknowledged;
        if remaining_ns > unack as i64 * 1_000_000_000 {
            e.expires = Timestamp(now.0 + unack as i64 * 1_000_000_000);
            let jiffies = unack as u64 * cfg.profile.hz as u64;
            return line(cfg.profile.log_style, Event::LowerTimeout { index, dir, last_index: ct.last_index, jiffies });
        }
        None
    } else {
        ct.last_index = index;
        ct.last_dir = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::profile::Profile;

    #[test]
    fn the_flag_sets_hold_exactly_the_listed_combinations() {
        let latest = Profile::latest().features;
        let old = Profile::by_name("2.6.18").expect("a 2.6.18 profile").features;
        for flags in 0..=u8::MAX {
            let listed = VALID_FLAGS.contains(&(flags & !(TcpFlags::PSH | TcpFlags::ECE | TcpFlags::CWR)));
            assert_eq!(flags_valid(TcpFlags(flags), &latest), listed, "flags {flags:#04x}, latest");
            let listed = VALID_FLAGS_2_6_18.contains(&(flags & !(TcpFlags::ECE | TcpFlags::CWR)));
            assert_eq!(flags_valid(TcpFlags(flags), &old), listed, "flags {flags:#04x}, 2.6.18");
        }
    }
}
