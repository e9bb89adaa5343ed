//! Scenario tests for the tracker, written in the spec's notation (section 14). The numbers
//! asserted here are the kernel's, as computed in the spec and confirmed by the live-kernel
//! fixtures in `fixtures/spec/`.

use super::*;
use crate::decode::{ChecksumStatus, TcpFlags, TcpOptions};
use crate::verdict::{Action, CtState, ReasonId};
use state::TcpState;
use std::net::{IpAddr, Ipv4Addr};

const C: (IpAddr, u16) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
const S: (IpAddr, u16) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);

/// A segment from `from` to `to`, tcpdump-style flags ("S", "S.", ".", "P.", "F.", "R", "R.").
fn seg(from: (IpAddr, u16), to: (IpAddr, u16), flags: &str, seq: u32, ack: u32, win: u16, len: u32) -> Segment {
    let flags: TcpFlags = flags.parse().expect("tcpdump-style flags");
    Segment {
        tuple: Tuple { src: from.0, dst: to.0, sport: from.1, dport: to.1 },
        seq,
        ack,
        window: win,
        flags,
        doff: 5,
        l4_len: 20 + len,
        options: TcpOptions { complete: true, ..TcpOptions::default() },
        checksum: ChecksumStatus::Good,
        ttl: 64,
        fragments: 1,
        truncated: false,
        link_direction: None,
    }
}

struct Run {
    ct: Conntrack,
    frame: u64,
    now: Timestamp,
}

impl Run {
    fn new() -> Run {
        Run::with(Sysctls::default())
    }
    /// A run with one sysctl changed from the defaults.
    fn with_sysctl(assignment: &str) -> Run {
        let mut s = Sysctls::default();
        s.set(assignment).unwrap();
        Run::with(s)
    }
    /// A run emulating another kernel era.
    fn kernel(name: &str) -> Run {
        let profile = Profile::by_name(name).expect("known profile");
        Run { ct: Conntrack::new(profile, Sysctls::default()), frame: 0, now: Timestamp::from_secs(1_000) }
    }
    fn with(sysctls: Sysctls) -> Run {
        Run { ct: Conntrack::new(Profile::latest(), sysctls), frame: 0, now: Timestamp::from_secs(1_000) }
    }
    /// Advances capture time by `secs`.
    fn wait(&mut self, secs: i64) {
        self.now = Timestamp(self.now.0 + secs * 1_000_000_000);
    }
    fn send(&mut self, s: Segment) -> Verdict {
        self.send_detailed(s, Detail::Full).into_full()
    }
    fn send_detailed(&mut self, s: Segment, detail: Detail) -> Tracked {
        self.frame += 1;
        let frame = FrameRef { file: 0, number: self.frame };
        let packet = Packet { seg: &s, ts: self.now, frame, hook: Hook::PreRouting, seq: self.frame, capture_ts: self.now };
        self.ct.track_detailed(&packet, &Keyed::of(&s.tuple), detail)
    }
    fn c(&mut self, flags: &str, seq: u32, ack: u32) -> Verdict {
        self.send(seg(C, S, flags, seq, ack, 64240, 0))
    }
    fn s(&mut self, flags: &str, seq: u32, ack: u32) -> Verdict {
        self.send(seg(S, C, flags, seq, ack, 65160, 0))
    }
    /// The baseline handshake H of the spec.
    fn handshake(&mut self) {
        assert_eq!(self.c("S", 1000, 0).ct_state, CtState::New);
        assert_eq!(self.s("S.", 5000, 1001).ct_state, CtState::Established);
        let v = self.c(".", 1001, 5001);
        assert_eq!((v.ct_state, v.state_after), (CtState::Established, Some(TcpState::Established)));
    }
    fn entry(&self) -> &Entry {
        self.ct.table.entry(self.handle())
    }

    /// The entry's log (logs kept: [`Conntrack::keep_logs`]).
    fn log(&self) -> EntryLog {
        *self.ct.table.log(self.handle()).expect("logs are kept")
    }

    fn handle(&self) -> table::Handle {
        let key = Tuple { src: C.0, dst: S.0, sport: C.1, dport: S.1 };
        self.ct.table.handle_of(&key).expect("entry")
    }
}

fn log(v: &Verdict) -> String {
    v.kernel_log().unwrap_or_default()
}

#[test]
fn baseline_handshake_internal_state() {
    let mut r = Run::new();
    r.handshake();
    let e = r.entry();
    let [o, rp] = e.tcp.seen;
    assert_eq!((o.td_end, o.td_maxend, o.td_maxwin, o.td_maxack), (1001, 66161, 64240, 5001));
    assert_eq!((rp.td_end, rp.td_maxend, rp.td_maxwin, rp.td_maxack), (5001, 69241, 65160, 1001));
    assert!(o.has(window::flag::MAXACK_SET) && rp.has(window::flag::MAXACK_SET));
    assert_eq!((e.tcp.last_index, e.tcp.last_dir, e.tcp.last_seq, e.tcp.last_end), (Index::Ack, Dir::Original, 1001, 1001));
    assert!(e.assured && e.seen_reply);
    assert_eq!(e.expires.0 - r.now.0, 432_000 * 1_000_000_000);
}

use state::Index;

#[test]
fn t01_invalid_flag_combinations() {
    for flags in ["SF", "", "FPU", "SR", "S.U"] {
        let mut r = Run::new();
        let v = r.c(flags, 1000, 0);
        assert_eq!(v.action, Action::Invalid, "{flags}");
        assert_eq!(log(&v), "nf_ct_proto_6: invalid tcp flag combination");
        assert_eq!(r.ct.entries(), 0);
    }
    let mut r = Run::new();
    assert_eq!(r.c("SEW", 1000, 0).ct_state, CtState::New);
}

#[test]
fn t03_truncated_header() {
    let mut r = Run::new();
    let mut s = seg(C, S, "S", 1000, 0, 1000, 0);
    s.doff = 4;
    s.l4_len = 20;
    assert_eq!(log(&r.send(s)), "nf_ct_proto_6: truncated packet");
    let mut s = seg(C, S, "S", 1000, 0, 1000, 0);
    s.doff = 15;
    assert_eq!(log(&r.send(s)), "nf_ct_proto_6: truncated packet");
}

#[test]
fn t04_checksum_only_checked_at_prerouting() {
    let mut bad = seg(C, S, "S", 1000, 0, 1000, 0);
    bad.checksum = ChecksumStatus::Bad;
    let mut r = Run::new();
    assert_eq!(log(&r.send(bad)), "nf_ct_proto_6: bad checksum");
    let mut r = Run::new();
    let v = r.ct.track(&Packet { seg: &bad, ts: r.now, frame: FrameRef::default(), hook: Hook::LocalOut, seq: 0, capture_ts: r.now });
    assert_eq!(v.ct_state, CtState::New);
    let mut r = Run::with_sysctl("nf_conntrack_checksum=0");
    assert_eq!(r.send(bad).ct_state, CtState::New);
}

#[test]
fn t05_pickup_and_loose() {
    let mut r = Run::new();
    let v = r.send(seg(C, S, ".", 1001, 5001, 1000, 0));
    assert_eq!((v.ct_state, v.state_after), (CtState::New, Some(TcpState::Established)));
    assert_eq!(r.entry().expires.0 - r.now.0, 300 * 1_000_000_000);
    let mut r = Run::with_sysctl("nf_conntrack_tcp_loose=0");
    let v = r.send(seg(C, S, ".", 1001, 5001, 1000, 0));
    assert_eq!(v.action, Action::Invalid);
    assert_eq!(v.reason.as_ref().unwrap().id, ReasonId::PickupDisabled);
    assert_eq!(v.kernel_log(), None, "loose=0 refusals are not logged");
}

#[test]
fn t06_orphans_are_invalid_new() {
    for flags in ["S.", "F.", "R", "R."] {
        let mut r = Run::new();
        let v = r.s(flags, 5000, 1001);
        assert_eq!(log(&v), "nf_ct_proto_6: invalid new", "{flags}");
    }
}

#[test]
fn t08_ack_for_unseen_data() {
    let mut r = Run::new();
    r.handshake();
    let v = r.c(".", 1001, 9000);
    assert_eq!(v.action, Action::Invalid);
    assert_eq!(log(&v), "nf_ct_proto_6: ACK is over upper bound 5002 (ACKed data not seen yet)");
    let mut r = Run::with_sysctl("nf_conntrack_tcp_be_liberal=1");
    r.handshake();
    let v = r.c(".", 1001, 9000);
    assert_eq!((v.action, v.reason.is_none()), (Action::Accept, true));
}

#[test]
fn t09_sequence_beyond_the_window() {
    let mut r = Run::new();
    r.handshake();
    let v = r.send(seg(C, S, "P.", 66200, 5001, 64240, 100));
    assert_eq!(v.action, Action::Ignore);
    assert_eq!(log(&v), "nf_ct_proto_6: 140 bytes more than expected");
    assert_eq!(r.entry().tcp.seen[0].td_end, 66300);

    let mut r = Run::new();
    r.handshake();
    let v = r.send(seg(C, S, "P.", 200000, 5001, 64240, 100));
    assert_eq!(log(&v), "nf_ct_proto_6: SEQ is over upper bound 66162 (over the window of the receiver)");
    assert_eq!(v.action, Action::Invalid);

    let mut r = Run::new();
    r.handshake();
    let v = r.send(seg(C, S, "P.", 66000, 5001, 64240, 1000));
    assert_eq!(v.action, Action::Accept);
    assert_eq!(r.entry().tcp.seen[1].td_maxwin, 65999);
}

#[test]
fn t15_rst_below_max_ack() {
    let mut r = Run::new();
    r.handshake();
    let v = r.s("R", 4000, 0);
    assert_eq!(log(&v), "nf_ct_proto_6: invalid rst");
    let mut r = Run::with_sysctl("nf_conntrack_tcp_ignore_invalid_rst=1");
    r.handshake();
    let v = r.s("R", 4000, 0);
    assert_eq!((v.action, v.state_after), (Action::Accept, Some(TcpState::Established)));
    assert_eq!(r.entry().expires.0 - r.now.0, 10 * 1_000_000_000);
}

#[test]
fn t16_exact_rst_then_reuse_is_ignored_then_resynced() {
    let mut r = Run::new();
    r.handshake();
    assert_eq!(r.s("R", 5001, 0).state_after, Some(TcpState::Close));
    r.wait(2);
    let v = r.c("S", 90000, 0);
    assert_eq!((v.ct_state, v.action), (CtState::Established, Action::Ignore));
    assert_eq!(log(&v), "nf_ct_proto_6: packet (index 0) in dir 0 ignored, state CLOSE");
    assert_eq!(v.reason.as_ref().unwrap().id, ReasonId::ReopenRefused);
    let v = r.s("S.", 20000, 90001);
    assert_eq!((v.action, v.state_after), (Action::Accept, Some(TcpState::SynRecv)));
    let v = r.c(".", 90001, 20001);
    assert_eq!(v.state_after, Some(TcpState::Established));
}

#[test]
fn t18_reopen_after_fin_close() {
    let mut r = Run::new();
    r.handshake();
    r.c("F.", 1001, 5001);
    r.s(".", 5001, 1002);
    r.s("F.", 5001, 1002);
    assert_eq!(r.c(".", 1002, 5002).state_after, Some(TcpState::TimeWait));
    let v = r.c("S", 500000, 0);
    assert_eq!((v.ct_state, v.state_after), (CtState::New, Some(TcpState::SynSent)));
    assert!(v.replaced.is_some());
}

#[test]
fn t20_server_syn_on_established_is_invalid_even_when_liberal() {
    let mut r = Run::with_sysctl("nf_conntrack_tcp_be_liberal=1");
    r.handshake();
    let v = r.s("S", 7000, 0);
    assert_eq!(log(&v), "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED");
    assert_eq!(v.reason.as_ref().unwrap().id, ReasonId::SynMeetsReversedEntry);
}

#[test]
fn t22_stale_established_entry_resyncs() {
    let mut r = Run::new();
    r.handshake();
    let v = r.c("S", 700000, 0);
    assert_eq!((v.ct_state, v.action), (CtState::Established, Action::Ignore));
    assert_eq!(v.reason.as_ref().unwrap().id, ReasonId::SynOnStaleEntry);
    assert_eq!(r.s("S.", 9000, 700001).state_after, Some(TcpState::SynRecv));
    assert_eq!(r.c(".", 700001, 9001).state_after, Some(TcpState::Established));
}

#[test]
fn t23_poisoned_reversed_entry_expires_after_300s() {
    let mut r = Run::new();
    let v = r.s(".", 7000, 3000);
    assert_eq!((v.ct_state, v.state_after), (CtState::New, Some(TcpState::Established)));
    r.wait(10);
    let v = r.c("S", 9000, 0);
    assert_eq!(v.action, Action::Invalid);
    assert_eq!(log(&v), "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED");
    let entry = v.entry.unwrap();
    assert_eq!((entry.created_frame.number, entry.created_by), (1, crate::verdict::CreatedBy::Pickup));
    assert_eq!(entry.orientation, Dir::Reply);
    r.wait(300);
    assert_eq!(r.c("S", 9000, 0).ct_state, CtState::New);
}

#[test]
fn t23_variant_rst_from_client_deletes_unreplied_pickup() {
    let mut r = Run::new();
    r.s(".", 7000, 3000);
    let v = r.c("R", 3000, 0);
    assert_eq!(v.ct_state, CtState::Established);
    assert_eq!(r.ct.entries(), 0);
    assert_eq!(r.c("S", 9000, 0).ct_state, CtState::New);
}

#[test]
fn t24_simultaneous_open() {
    let mut r = Run::new();
    assert_eq!(r.c("S", 1000, 0).ct_state, CtState::New);
    assert_eq!(r.s("S", 5000, 0).state_after, Some(TcpState::SynSent2));
    assert_eq!(r.c("S.", 1000, 5001).state_after, Some(TcpState::SynRecv));
    assert_eq!(r.s("S.", 5000, 1001).action, Action::Ignore);
    assert_eq!(r.c(".", 1001, 5001).state_after, Some(TcpState::Established));
}

#[test]
fn t28_two_out_of_window_fins_lower_the_timeout() {
    let mut r = Run::new();
    r.handshake();
    let v = r.s("F.", 5001, 999999);
    assert_eq!(log(&v), "nf_ct_proto_6: ACK is over upper bound 1002 (ACKed data not seen yet)");
    let v = r.c("F.", 1001, 888888);
    assert_eq!(
        log(&v),
        "nf_ct_proto_6: ACK is over upper bound 5002 (ACKed data not seen yet); \
         nf_ct_proto_6: packet (index 2, dir 0) response for index 2 lower timeout to 75000"
    );
    assert_eq!(r.entry().expires.0 - r.now.0, 300 * 1_000_000_000);
}

#[test]
fn t29_syn_retransmissions_do_not_refresh() {
    let mut r = Run::new();
    r.c("S", 1000, 0);
    for wait in [1, 2, 4, 8, 16, 32] {
        r.wait(wait);
        assert_eq!(r.c("S", 1000, 0).ct_state, CtState::New);
    }
    r.wait(150 - 63);
    assert_eq!(log(&r.s("S.", 5000, 1001)), "nf_ct_proto_6: invalid new");
}

#[test]
fn t32_liberal_pickup_still_rejects_by_table_and_rst() {
    let mut r = Run::new();
    r.send(seg(C, S, ".", 1001, 5001, 1000, 0));
    r.send(seg(S, C, ".", 5001, 1001, 1000, 0));
    let v = r.send(seg(C, S, ".", 1001, 5001, 1000, 0));
    assert!(r.entry().assured, "{v:?}");
    let v = r.send(seg(S, C, ".", 99999999, 1001, 1000, 0));
    assert_eq!((v.action, v.reason.is_none()), (Action::Accept, true));
    assert_eq!(r.s("S", 5, 0).action, Action::Invalid);
    assert_eq!(log(&r.s("R", 10, 0)), "nf_ct_proto_6: invalid rst");
}

#[test]
fn t33_table_full_drops_when_nothing_can_be_evicted() {
    let mut r = Run::with_sysctl("nf_conntrack_max=1");
    r.handshake();
    let other = (C.0, 40001);
    let v = r.send(seg(other, S, "S", 1, 0, 1000, 0));
    assert_eq!(v.action, Action::Drop);
    assert_eq!(v.reason.unwrap().id, ReasonId::TableFull);
}

// ---- older kernels (the spec's §14 columns "≤6.0" and "C5"; 2.6.18 read against CentOS 5's
// ip_conntrack_proto_tcp.c) ----

#[test]
fn c5_t02_psh_counts_in_the_flag_check() {
    let mut r = Run::kernel("2.6.18");
    assert_eq!(log(&r.c("SU", 1000, 0)), "ip_ct_tcp: invalid TCP flag combination");
    let mut r = Run::kernel("2.6.18");
    r.handshake();
    assert_eq!(log(&r.s("RP", 5001, 0)), "ip_ct_tcp: invalid TCP flag combination");
    let mut r = Run::kernel("2.6.18");
    assert_eq!(r.c("SP", 1000, 0).ct_state, CtState::New, "SYN+PSH is valid in 2.6.18");
}

#[test]
fn c5_t19_backwards_isn_in_time_wait_is_an_invalid_syn() {
    for (kernel, isn, expect) in [("2.6.18", 500, CtState::Invalid), ("2.6.18", 600_000, CtState::New), ("latest", 500, CtState::New)] {
        let mut r = Run::kernel(kernel);
        r.handshake();
        r.s("F.", 5001, 1001);
        r.c(".", 1001, 5002);
        r.c("F.", 1001, 5002);
        assert_eq!(r.s(".", 5002, 1002).state_after, Some(TcpState::TimeWait));
        let v = r.c("S", isn, 0);
        assert_eq!(v.ct_state, expect, "{kernel} isn {isn}");
        if expect == CtState::Invalid {
            assert_eq!(log(&v), "ip_ct_tcp: invalid SYN");
            assert_eq!(v.reason.unwrap().id, ReasonId::InvalidSynReopen);
        }
    }
}

#[test]
fn c5_t22_synack_answering_an_ignored_syn_kills_the_entry() {
    let mut r = Run::kernel("2.6.18");
    r.handshake();
    let v = r.c("S", 700000, 0);
    assert_eq!((v.ct_state, v.action), (CtState::Established, Action::Ignore));
    assert_eq!(log(&v), "ip_ct_tcp: invalid packet ignored");
    let v = r.s("S.", 9000, 700001);
    assert_eq!(v.action, Action::Drop);
    assert_eq!(log(&v), "ip_ct_tcp: killing out of sync session");
    assert_eq!(r.ct.entries(), 0);
    r.wait(3);
    assert_eq!(r.c("S", 700000, 0).ct_state, CtState::New);
}

#[test]
fn c5_t23_reversed_pickup_lives_five_days() {
    let mut r = Run::kernel("2.6.18");
    assert_eq!(r.s(".", 7000, 3000).ct_state, CtState::New);
    r.wait(10);
    let v = r.c("S", 9000, 0);
    assert_eq!(log(&v), "ip_ct_tcp: invalid state");
    r.wait(400);
    let v = r.c("S", 9000, 0);
    assert_eq!((v.action, log(&v).as_str()), (Action::Invalid, "ip_ct_tcp: invalid state"), "still there 410 s later");
    assert_eq!(r.entry().expires.0 - r.now.0, 432_000 * 1_000_000_000 - 410 * 1_000_000_000);
}

#[test]
fn c5_t24_no_simultaneous_open() {
    let mut r = Run::kernel("2.6.18");
    r.c("S", 1000, 0);
    assert_eq!(log(&r.s("S", 5000, 0)), "ip_ct_tcp: invalid state");
}

#[test]
fn c5_t35_lower_syn_retransmission_is_below_the_window() {
    let mut r = Run::kernel("2.6.18");
    r.c("S", 1000, 0);
    r.wait(5);
    let v = r.c("S", 500, 0);
    assert_eq!(log(&v), "ip_ct_tcp: SEQ is under the lower bound (already ACKed data retransmitted)");
    let mut r = Run::new();
    r.c("S", 1000, 0);
    assert_eq!(r.c("S", 500, 0).action, Action::Accept);
}

#[test]
fn c5_t15_rst_below_max_ack_closes() {
    let mut r = Run::kernel("2.6.18");
    r.handshake();
    let v = r.s("R", 4000, 0);
    assert_eq!((v.action, v.state_after), (Action::Accept, Some(TcpState::Close)));
}

#[test]
fn v5_14_window_failures_are_all_invalid() {
    let mut r = Run::kernel("5.14");
    r.handshake();
    let v = r.send(seg(C, S, "P.", 66200, 5001, 64240, 100));
    assert_eq!(v.action, Action::Invalid);
    assert_eq!(log(&v), "nf_ct_proto_6: SEQ is over the upper bound (over the window of the receiver)");
    let v = r.c(".", 1001, 9000);
    assert_eq!(log(&v), "nf_ct_proto_6: ACK is over the upper bound (ACKed data not seen yet)");
}

#[test]
fn v5_14_t20_state_invalid_text() {
    let mut r = Run::kernel("rhel9");
    r.handshake();
    assert_eq!(log(&r.s("S", 7000, 0)), "nf_ct_proto_6: invalid state");
}

#[test]
fn c5_t29_syn_retransmissions_refresh() {
    let mut r = Run::kernel("2.6.18");
    r.c("S", 1000, 0);
    for wait in [1, 2, 4, 8, 16, 32] {
        r.wait(wait);
        r.c("S", 1000, 0);
    }
    r.wait(150 - 63);
    assert_eq!(r.s("S.", 5000, 1001).state_after, Some(TcpState::SynRecv));
}

#[test]
fn kernel_feature_switch_emulates_a_backport() {
    // A 5.14 kernel with the 6.1 window changes backported ignores the overshoot.
    let mut profile = Profile::by_name("5.14").unwrap();
    profile.apply_feature("+tristate-window").unwrap();
    profile.apply_feature("+overshoot-workaround").unwrap();
    let mut r = Run { ct: Conntrack::new(profile, Sysctls::default()), frame: 0, now: Timestamp::from_secs(1_000) };
    r.handshake();
    let v = r.send(seg(C, S, "P.", 66200, 5001, 64240, 100));
    assert_eq!(v.action, Action::Ignore);
}

#[test]
fn a_switched_feature_counts_on_the_newest_kernel_too() {
    // The table whose packets go into the report judges the newest kernel with its features as
    // constants; a "latest" profile with a switch turned is another kernel, judged by its own.
    // The segment is T09's (a): the live kernel ignores it (fixtures/spec/t09-seq-beyond-window,
    // `t09_sequence_beyond_the_window`). Without the overshoot workaround it fails bound I, as
    // on the kernels before 6.1 (`v5_14_window_failures_are_all_invalid`): a modelled kernel,
    // which the oracle cannot be asked about.
    let overshoot = |profile: Profile| {
        let mut r = Run { ct: Conntrack::new(profile, Sysctls::default()), frame: 0, now: Timestamp::from_secs(1_000) };
        r.ct.keep_logs();
        r.handshake();
        r.send(seg(C, S, "P.", 66200, 5001, 64240, 100)).action
    };
    assert_eq!(overshoot(Profile::latest()), Action::Ignore);
    let mut profile = Profile::latest();
    profile.apply_feature("-overshoot-workaround").unwrap();
    assert_eq!(overshoot(profile), Action::Invalid);
}

/// A flood of new tuples against a full table (a SYN flood, a port scan). Every such packet asks
/// the table for room; that used to sweep the whole table and search it from the front each time,
/// O(nf_conntrack_max) per packet (hours for a million SYNs). Now it is amortised O(1); a
/// regression would show as this test taking hours, not as a timed assertion.
#[test]
fn flood_of_new_tuples_against_a_full_table() {
    const MAX: u16 = 10_000;
    let client = |port: u16| (C.0, port);

    // Unassured entries: every SYN evicts the oldest one; nothing is dropped.
    let mut r = Run::with_sysctl(&format!("nf_conntrack_max={MAX}"));
    for i in 0..20 * u32::from(MAX) {
        let from = (IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)), 40000);
        assert_eq!(r.send(seg(from, S, "S", i, 0, 1000, 0)).action, Action::Accept);
    }
    assert_eq!(r.ct.entries(), usize::from(MAX));

    // ASSURED entries fill the table: every SYN is dropped, and the table stays as it was.
    let mut r = Run::with_sysctl(&format!("nf_conntrack_max={MAX}"));
    for port in 1..=MAX {
        r.send(seg(client(port), S, "S", 1000, 0, 1000, 0));
        r.send(seg(S, client(port), "S.", 5000, 1001, 1000, 0));
        r.send(seg(client(port), S, ".", 1001, 5001, 1000, 0));
    }
    for i in 0..20 * u32::from(MAX) {
        let from = (IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)), 40000);
        let v = r.send(seg(from, S, "S", i, 0, 1000, 0));
        assert_eq!(v.reason.map(|r| r.id), Some(ReasonId::TableFull));
    }
    assert_eq!(r.ct.entries(), usize::from(MAX));
}

/// Skipping the sweep of a full table must not keep an expired entry: one that expired (here
/// after an RST's 10 s CLOSE timeout, shorter than the SYN_SENT timeout of the entries around
/// it) still makes room without evicting a live one.
#[test]
fn a_full_table_still_reclaims_expired_entries() {
    let mut r = Run::with_sysctl("nf_conntrack_max=2");
    r.handshake();
    r.wait(1);
    let other = (C.0, 40001);
    r.send(seg(other, S, "S", 1, 0, 1000, 0));
    // The first connection is reset: CLOSE, expiring in 10 s.
    assert_eq!(r.c("R", 1001, 0).action, Action::Accept);
    r.wait(11);
    let third = (C.0, 40002);
    assert_eq!(r.send(seg(third, S, "S", 1, 0, 1000, 0)).action, Action::Accept);
    // The unassured SYN_SENT entry of the second connection survived: the expired one made room.
    let key = Tuple { src: other.0, dst: S.0, sport: other.1, dport: S.1 };
    assert!(r.ct.snapshot(&key, r.now).is_some(), "a live entry was evicted instead of the expired one");
}

/// A packet at the smallest time meeting an entry created at the largest (merged captures whose
/// clocks disagree wildly): the snapshot's remaining time saturates instead of overflowing.
#[test]
fn snapshot_at_both_ends_of_time() {
    let mut r = Run::new();
    r.now = Timestamp(i64::MAX - 1);
    r.c("S", 1000, 0);
    r.now = Timestamp(i64::MIN);
    let key = Tuple { src: C.0, dst: S.0, sport: C.1, dport: S.1 };
    assert_eq!(r.ct.snapshot(&key, r.now).map(|s| s.remaining_ns), Some(i64::MAX));
}

/// With the clock standing still no sweep ever runs; a churn of entries that live for one packet
/// (an unanswered SYN, then its RST) must not grow the age queue with every packet.
#[test]
fn churn_without_time_keeps_the_age_queue_bounded() {
    let mut r = Run::new();
    for i in 0..20_000u32 {
        // Half on one tuple over and over, half on new ones.
        let from = if i % 2 == 0 { C } else { (IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)), 40000) };
        assert_eq!(r.send(seg(from, S, "S", 1, 0, 1000, 0)).action, Action::Accept);
        assert_eq!(r.send(seg(from, S, "R", 2, 0, 1000, 0)).action, Action::Accept);
    }
    assert_eq!(r.ct.entries(), 0);
    let queued = r.ct.table.queued();
    assert!(queued <= 2 * r.ct.entries() + table::COMPACT_SLACK, "lazy queues hold {queued} references for an empty table");
}

#[test]
fn full_table_evicts_closed_connections_before_dropping() {
    // Like a busy server: every connection is ASSURED and ends in TIME_WAIT, which lasts two
    // minutes. Early drop finds nothing unassured; the GC rule evicts the longest closed.
    let mut r = Run::with_sysctl("nf_conntrack_max=2");
    for port in 40000..40010 {
        let c = (C.0, port);
        let conversation = [
            seg(c, S, "S", 1000, 0, 64240, 0),
            seg(S, c, "S.", 5000, 1001, 65160, 0),
            seg(c, S, ".", 1001, 5001, 64240, 0),
            seg(c, S, "F.", 1001, 5001, 64240, 0),
            seg(S, c, "F.", 5001, 1002, 65160, 0),
            seg(c, S, ".", 1002, 5002, 64240, 0),
        ];
        for s in conversation {
            let v = r.send(s);
            assert_eq!((v.action, v.reason.as_ref().map(|r| r.id)), (Action::Accept, None), "port {port}: {v:?}");
        }
        assert_eq!(r.ct.table.get(&Tuple { src: c.0, dst: S.0, sport: c.1, dport: S.1 }).unwrap().tcp.state, TcpState::TimeWait);
        assert!(r.ct.entries() <= 2);
        r.wait(1);
    }
}

/// With logs kept, each entry counts the packets that meet it (INVALID ones too), the states it
/// passes and its history until a marked packet; a packet is told the log as it was before it,
/// once; a reopen starts a new log.
#[test]
fn entries_keep_logs_of_their_packets() {
    let mut r = Run::new();
    r.ct.keep_logs();
    r.handshake();
    assert_eq!(r.ct.take_log_before().map(|l| l.packets), Some(2), "the third packet met an entry of two");
    assert_eq!(r.ct.take_log_before(), None, "taken once");
    let v = r.s("S", 7000, 0);
    assert_eq!(v.action, Action::Invalid);
    let before = r.ct.take_log_before().expect("the INVALID SYN met the entry");
    assert_eq!((before.packets, before.born, before.marked), (3, 1, false));
    assert_eq!(before.states().collect::<Vec<_>>(), [TcpState::SynSent, TcpState::SynRecv, TcpState::Established]);
    let history: String = before.tokens().map(|(l, d)| if d == Dir::Original { l as char } else { (l as char).to_ascii_lowercase() }).collect();
    assert_eq!(history, "ShA");
    let after = r.log();
    assert_eq!((after.packets, after.marked), (4, true));

    // Close, then reopen from TIME_WAIT: the new entry's log starts with the reopening SYN.
    r.c("F.", 1001, 5001);
    r.s(".", 5001, 1002);
    r.s("F.", 5001, 1002);
    r.c(".", 1002, 5002);
    let v = r.c("S", 500000, 0);
    assert!(v.replaced.is_some());
    assert_eq!(r.ct.take_log_before().map(|l| l.packets), Some(8), "the reopening SYN met the old entry");
    let new = r.log();
    assert_eq!((new.packets, new.born, new.marked), (1, r.frame, false));
    assert_eq!(new.states().collect::<Vec<_>>(), [TcpState::SynSent]);
}

/// A report marks the entry a notable packet met as shown; the mark stays with that entry, and
/// the entry that replaces it on a reopen starts unshown.
#[test]
fn the_shown_mark_stays_with_its_entry() {
    let mut r = Run::new();
    r.ct.keep_logs();
    r.handshake();
    assert!(!r.log().shown);
    r.s("S", 7000, 0);
    r.ct.show_entry();
    assert!(r.log().shown, "the entry the INVALID SYN met");
    r.c(".", 1001, 5001);
    assert!(r.ct.take_log_before().is_some_and(|l| l.shown), "a later packet meets a shown entry");
    r.c("F.", 1001, 5001);
    r.s(".", 5001, 1002);
    r.s("F.", 5001, 1002);
    r.c(".", 1002, 5002);
    assert!(r.c("S", 500000, 0).replaced.is_some());
    assert!(!r.log().shown, "a new entry");
    // An unreadable datagram of the tuple comes next: marking after it marks nothing.
    let tuple = Tuple { src: C.0, dst: S.0, sport: C.1, dport: S.1 };
    r.ct.track_unreadable(Some(&tuple), r.now);
    r.ct.show_entry();
    assert!(!r.log().shown, "the entry the last packet met before the datagram");
}

/// A conversation with a bit of everything: handshake, data, an INVALID SYN, a close, a reopen
/// from TIME_WAIT, and a late retransmission of the old FIN.
fn eventful_conversation() -> Vec<Segment> {
    vec![
        seg(C, S, "S", 1000, 0, 64240, 0),
        seg(S, C, "S.", 5000, 1001, 65160, 0),
        seg(C, S, ".", 1001, 5001, 64240, 0),
        seg(C, S, "P.", 1001, 5001, 64240, 100),
        seg(S, C, "S", 7000, 0, 65160, 0),
        seg(S, C, ".", 5001, 1101, 65160, 0),
        seg(C, S, "F.", 1101, 5001, 64240, 0),
        seg(S, C, "F.", 5001, 1102, 65160, 0),
        seg(C, S, ".", 1102, 5002, 64240, 0),
        seg(C, S, "S", 900_000, 0, 64240, 0),
        seg(S, C, "F.", 5001, 1102, 65160, 0),
        seg(S, C, "S.", 9000, 900_001, 65160, 0),
    ]
}

/// A verdict shows the entry as the packet met it, as a snapshot taken just before would (state,
/// ASSURED, expiry and the rest), whatever the handler did to it then: accepted, INVALID, INVALID
/// with the timeout lowered, reopened, closed by an RST.
#[test]
fn a_verdict_shows_the_entry_as_the_packet_met_it() {
    let mut conversation = eventful_conversation();
    // The reopened connection established, then two FINs acknowledging unsent data (the second
    // lowers the timeout, as in t28), then an RST.
    conversation.extend([
        seg(C, S, ".", 900_001, 9001, 64240, 0),
        seg(S, C, "F.", 9001, 999_999, 65160, 0),
        seg(C, S, "F.", 900_001, 888_888, 64240, 0),
        seg(C, S, "R", 900_001, 0, 64240, 0),
    ]);
    let mut r = Run::new();
    let mut lowered = false;
    for (i, s) in conversation.into_iter().enumerate() {
        let before = r.ct.snapshot(&s.tuple, r.now).map(|snap| snap.info);
        let v = r.send(s);
        let shown = v.entry.or(v.replaced.as_deref().copied());
        assert_eq!(shown, before, "packet {i}: {v:?}");
        lowered |= matches!((before, v.expires), (Some(b), Some(after)) if after < b.expires && v.action == Action::Invalid);
        r.wait(1);
    }
    assert!(lowered, "an INVALID packet lowered the timeout");
}

/// Asked for less detail, a table gives the `ct state` alone exactly where the full verdict is
/// a plain acceptance on an entry that existed before (and, for [`Detail::Quiet`], that no report
/// has shown) or, for [`Detail::Quiet`], one that created an entry and replaced none; everything
/// else, the entries and their logs included, is as with full detail.
#[test]
fn less_detail_leaves_out_only_the_verdicts_of_plain_acceptances() {
    for detail in [Detail::Quiet, Detail::Outcome] {
        for shown_at in [None, Some(2), Some(4)] {
            let (mut full, mut lean) = (Run::new(), Run::new());
            if detail == Detail::Quiet {
                full.ct.keep_logs();
                lean.ct.keep_logs();
            }
            let mut plain = 0;
            for (i, s) in eventful_conversation().into_iter().enumerate() {
                let v = full.send(s);
                let what = format!("{detail:?}, shown at {shown_at:?}, packet {i}: {v:?}");
                let log_before = full.ct.take_log_before();
                let plain_acceptance = v.action == Action::Accept && v.reason.is_none();
                let plain_creation = plain_acceptance && v.created_entry() && v.replaced.is_none();
                let tracked = lean.send_detailed(s, detail);
                if detail == Detail::Quiet {
                    // The same rule, applied to the whole verdict.
                    let plain = matches!(tracked, Tracked::Plain { .. });
                    assert_eq!(full.ct.is_quiet(&v, log_before.as_ref()), plain, "{what}");
                }
                match tracked {
                    Tracked::Plain { ct_state, dir, state_after, created } => {
                        plain += 1;
                        assert!(plain_acceptance, "{what}");
                        assert_eq!(created, v.entry.is_none(), "{what}");
                        assert_eq!((Some(ct_state), Some(dir), Some(state_after)), (Some(v.ct_state), v.dir, v.state_after), "{what}");
                        if created {
                            assert!(detail == Detail::Quiet && plain_creation, "{what}");
                        } else if detail == Detail::Quiet {
                            assert!(log_before.is_some_and(|l| !l.shown), "{what}");
                        }
                    }
                    Tracked::Full(lean_v) => {
                        assert_eq!(lean_v, v, "{what}");
                        assert_eq!(lean.ct.take_log_before(), log_before, "{what}");
                        let unshown = detail == Detail::Outcome || log_before.is_some_and(|l| !l.shown);
                        assert!(!(plain_acceptance && v.entry.is_some() && unshown), "{what}: should have been plain");
                        assert!(!(plain_creation && detail == Detail::Quiet), "{what}: should have been plain");
                    }
                }
                if shown_at == Some(i) {
                    full.ct.show_entry();
                    lean.ct.show_entry();
                }
                let key = Tuple { src: C.0, dst: S.0, sport: C.1, dport: S.1 };
                let (h, lean_h) = (full.ct.table.handle_of(&key), lean.ct.table.handle_of(&key));
                assert_eq!(h.is_some(), lean_h.is_some(), "{what}");
                if let (Some(h), Some(lean_h)) = (h, lean_h) {
                    assert_eq!(full.ct.table.entry(h).tcp, lean.ct.table.entry(lean_h).tcp, "{what}");
                    assert_eq!(full.ct.table.log(h), lean.ct.table.log(lean_h), "{what}");
                }
                full.wait(1);
                lean.wait(1);
            }
            assert!(plain >= 3, "{detail:?}, shown at {shown_at:?}: only {plain} plain verdicts");
        }
    }
}

/// A packet that creates an entry may be quiet only while every entry a report has shown is
/// still in the table or was ended by a packet of its own (which the report saw), and no shown
/// packet lacked an entry: once a shown entry expires or is evicted unseen, or a report is shown
/// an entry-less packet, the report may be following a flow only the next packet of its tuple
/// ends, so creations come in full from then on.
#[test]
fn creations_are_quiet_until_a_shown_entry_leaves_unseen() {
    let quiet_syn = |r: &mut Run, port: u16| r.send_detailed(seg((C.0, port), S, "S", 1000, 0, 64240, 0), Detail::Quiet);
    let is_plain = |t: &Tracked| matches!(t, Tracked::Plain { created: true, .. });

    // An unshown entry expiring, and a shown one closed by its own packet, leave it quiet.
    let mut r = Run::new();
    r.ct.keep_logs();
    assert!(is_plain(&quiet_syn(&mut r, 40001)));
    r.wait(121); // SYN_SENT lasts 120 s
    assert!(is_plain(&quiet_syn(&mut r, 40002)));
    r.ct.show_entry();
    r.send(seg((C.0, 40002), S, "R", 1001, 0, 0, 0)); // an RST with no reply deletes the entry
    r.wait(121);
    assert!(is_plain(&quiet_syn(&mut r, 40003)));
    assert!(!r.ct.table.shown_ended_unseen());

    // A shown entry expiring: from then on, every creation comes in full.
    r.ct.show_entry();
    r.wait(121);
    let after_expiry = quiet_syn(&mut r, 40004);
    assert!(r.ct.table.shown_ended_unseen());
    assert!(matches!(after_expiry, Tracked::Full(ref v) if v.state_before.is_none()), "{after_expiry:?}");

    // A shown packet that met no entry: a report may follow an entry-less flow of its tuple.
    let mut r = Run::new();
    r.ct.keep_logs();
    assert!(is_plain(&quiet_syn(&mut r, 40001)));
    let stray = r.send(seg((C.0, 40002), S, "S.", 1000, 5000, 64240, 0));
    assert_eq!(stray.action, Action::Invalid, "a SYN/ACK with no entry");
    r.ct.show_entry();
    let after_stray = quiet_syn(&mut r, 40002);
    assert!(matches!(after_stray, Tracked::Full(_)), "{after_stray:?}");
    assert!(!r.ct.table.shown_ended_unseen());

    // A shown entry evicted to make room: the evicting packet already comes in full.
    let mut r = Run::with_sysctl("nf_conntrack_max=1");
    r.ct.keep_logs();
    assert!(is_plain(&quiet_syn(&mut r, 40001)));
    r.ct.show_entry();
    let evicting = quiet_syn(&mut r, 40002);
    assert!(matches!(evicting, Tracked::Full(_)), "{evicting:?}");
    assert!(r.ct.table.shown_ended_unseen());
}

#[test]
fn without_logs_nothing_is_logged() {
    let mut r = Run::new();
    r.handshake();
    assert_eq!(r.ct.take_log_before(), None);
    assert!(r.ct.table.log(r.handle()).is_none());
}
