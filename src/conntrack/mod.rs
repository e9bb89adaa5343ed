//! The netfilter-exact TCP connection tracker.
//!
//! [`Conntrack::track`] takes one decoded TCP segment and answers as the kernel's
//! `nf_conntrack_in` would: look the tuple up (an expired entry does not exist), run the TCP
//! handler, create or destroy the entry, and tell what `ct state` the ruleset sees.
//! The ruleset itself is assumed to accept everything (as the oracle's does), so every NEW
//! entry is confirmed.

pub mod entry;
pub mod profile;
pub mod seq;
pub mod state;
pub mod sysctl;
pub mod table;
pub mod tracker;
pub mod window;

use crate::capture::Timestamp;
use crate::decode::{Segment, Tuple};
use crate::verdict::{Action, CtState, Evidence, EntryInfo, FrameRef, Reason, ReasonId, Verdict};
use entry::Entry;
use profile::Profile;
use state::Dir;
use sysctl::Sysctls;
use table::Table;
pub use tracker::Hook;
use tracker::{Config, Handled, NewEntry};

/// One packet offered to the tracker.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub seg: &'a Segment,
    pub ts: Timestamp,
    pub frame: FrameRef,
    pub hook: Hook,
}

/// An entry as it is at some moment: for timelines (`explain`) and differential tests.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub info: EntryInfo,
    pub tcp: entry::TcpCt,
    /// Nanoseconds until the entry expires.
    pub remaining_ns: i64,
}

/// The conntrack table with its TCP tracker, for one kernel profile and set of sysctls.
pub struct Conntrack {
    profile: &'static Profile,
    sysctls: Sysctls,
    table: Table,
}

impl Conntrack {
    pub fn new(profile: &'static Profile, sysctls: Sysctls) -> Conntrack {
        // Every expiry the tracker sets is `now` plus one of the timeout sysctls.
        let min_timeout_ns = i64::from(sysctls.timeouts.shortest()) * 1_000_000_000;
        Conntrack { profile, sysctls, table: Table::with_min_timeout(min_timeout_ns) }
    }

    pub fn profile(&self) -> &'static Profile {
        self.profile
    }

    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// Live entries (expired ones may linger until the next sweep).
    pub fn entries(&self) -> usize {
        self.table.len()
    }

    /// The entry a tuple maps to now, with its full TCP data, without changing anything.
    /// `None` when there is none or it has expired by `now`.
    pub fn snapshot(&self, tuple: &Tuple, now: Timestamp) -> Option<Snapshot> {
        let (e, dir) = match self.table.get(tuple) {
            Some(e) => (e, Dir::Original),
            None => (self.table.get(&tuple.reversed())?, Dir::Reply),
        };
        if e.is_expired(now) {
            return None;
        }
        // Saturating: `now` may lie far before the entry's creation (timestamps at both ends of
        // the i64 range, from pcapng `if_tsoffset`), and the difference overflowed there.
        Some(Snapshot { info: e.info(dir), tcp: e.tcp, remaining_ns: e.expires.0.saturating_sub(now.0) })
    }

    /// The verdict for one TCP segment.
    pub fn track(&mut self, p: &Packet) -> Verdict {
        self.table.maybe_sweep(p.ts);
        let cfg = Config { profile: self.profile, sysctls: &self.sysctls };
        match self.table.lookup(&p.seg.tuple, p.ts) {
            None => self.track_new(p, None),
            Some((key, dir)) => {
                let e = self.table.get_mut(&key).expect("lookup returned a live key");
                let before = e.info(dir);
                if let Some(r) = tracker::header_error(&cfg, p.seg, p.hook) {
                    return invalid(r, Some(dir), Some(before));
                }
                // ctinfo is decided at lookup time, before the handler runs.
                let ct_state = if dir == Dir::Reply || e.seen_reply { CtState::Established } else { CtState::New };
                let old_state = e.tcp.state;
                match tracker::tcp_packet(&cfg, e, p.seg, dir, p.ts) {
                    Handled::Repeat => {
                        // Reopen: the old entry goes, the packet is looked up again from scratch.
                        self.table.remove(&key);
                        self.track_new(p, Some(before))
                    }
                    Handled::Invalid(r) => invalid(r, Some(dir), Some(before)),
                    Handled::Ignored(r) => {
                        if dir == Dir::Reply {
                            e.seen_reply = true;
                        }
                        Verdict {
                            ct_state,
                            action: Action::Ignore,
                            dir: Some(dir),
                            state_before: Some(old_state),
                            state_after: Some(e.tcp.state),
                            reason: Some(Box::new(r)),
                            entry: Some(before),
                            replaced: None,
                        }
                    }
                    Handled::Accepted { delete_entry, .. } => {
                        if dir == Dir::Reply {
                            e.seen_reply = true;
                        }
                        let state_after = e.tcp.state;
                        if state_after != old_state {
                            e.last_change_frame = p.frame;
                        }
                        if delete_entry {
                            self.table.remove(&key);
                        }
                        Verdict {
                            ct_state,
                            action: Action::Accept,
                            dir: Some(dir),
                            state_before: Some(old_state),
                            state_after: Some(state_after),
                            reason: None,
                            entry: Some(before),
                            replaced: None,
                        }
                    }
                }
            }
        }
    }

    /// A TCP datagram too short to hold a TCP header: conntrack cannot track it and says nothing.
    pub fn track_unreadable(&mut self, tuple: Option<&Tuple>, ts: Timestamp) -> Verdict {
        let found = tuple.and_then(|t| self.table.lookup(t, ts));
        let entry = found.and_then(|(k, d)| self.table.get(&k).map(|e| e.info(d)));
        let reason = Reason { id: ReasonId::TcpHeaderUnreadable, kernel_log: Vec::new(), evidence: Evidence::None };
        invalid(reason, found.map(|(_, d)| d), entry)
    }

    /// A packet that matched no entry: may it create one?
    fn track_new(&mut self, p: &Packet, replaced: Option<EntryInfo>) -> Verdict {
        let cfg = Config { profile: self.profile, sysctls: &self.sysctls };
        if !self.table.make_room(self.sysctls.max, p.ts) {
            let reason = Reason {
                id: ReasonId::TableFull,
                kernel_log: vec!["nf_conntrack: table full, dropping packet".to_string()],
                evidence: Evidence::TableFull { max: self.sysctls.max },
            };
            return Verdict {
                ct_state: CtState::Invalid,
                action: Action::Drop,
                dir: None,
                state_before: None,
                state_after: None,
                reason: Some(Box::new(reason)),
                entry: None,
                replaced,
            };
        }
        if let Some(r) = tracker::header_error(&cfg, p.seg, p.hook) {
            return invalid(r, None, None);
        }
        let (tcp, created_by) = match tracker::tcp_new(&cfg, p.seg) {
            NewEntry::Created(tcp, by) => (tcp, by),
            NewEntry::Refused(r) => return invalid(r, None, None),
        };
        let mut e = Entry {
            tuple: p.seg.tuple,
            tcp,
            seen_reply: false,
            assured: false,
            expires: p.ts,
            created_frame: p.frame,
            created_ts: p.ts,
            created_by,
            last_change_frame: p.frame,
        };
        match tracker::tcp_packet(&cfg, &mut e, p.seg, Dir::Original, p.ts) {
            Handled::Accepted { delete_entry, .. } => {
                let state_after = e.tcp.state;
                if !delete_entry {
                    self.table.insert(e);
                }
                Verdict {
                    ct_state: CtState::New,
                    action: Action::Accept,
                    dir: Some(Dir::Original),
                    state_before: None,
                    state_after: Some(state_after),
                    reason: None,
                    entry: None,
                    replaced,
                }
            }
            // A first packet the handler does not accept leaves no entry behind.
            Handled::Invalid(r) => invalid(r, None, None),
            Handled::Ignored(r) => Verdict {
                ct_state: CtState::New,
                action: Action::Ignore,
                dir: Some(Dir::Original),
                state_before: None,
                state_after: None,
                reason: Some(Box::new(r)),
                entry: None,
                replaced,
            },
            Handled::Repeat => unreachable!("a new entry is never in TIME_WAIT or CLOSE"),
        }
    }
}

fn invalid(reason: Reason, dir: Option<Dir>, entry: Option<EntryInfo>) -> Verdict {
    Verdict {
        ct_state: CtState::Invalid,
        action: Action::Invalid,
        dir,
        state_before: entry.map(|e| e.state),
        state_after: entry.map(|e| e.state),
        reason: Some(Box::new(reason)),
        entry,
        replaced: None,
    }
}

#[cfg(test)]
mod tests;
