//! The netfilter-exact TCP connection tracker.
//!
//! [`Conntrack::track`] takes one decoded TCP segment and answers as the kernel's
//! `nf_conntrack_in` would: look the tuple up (an expired entry does not exist), run the TCP
//! handler, create or destroy the entry, and tell what `ct state` the ruleset sees.
//! The ruleset itself is assumed to accept everything (as the oracle's does), so every NEW
//! entry is confirmed.

pub mod entry;
pub mod log;
pub mod profile;
pub mod seq;
pub mod state;
pub mod sysctl;
pub mod table;
pub mod tracker;
pub mod window;

use crate::capture::Timestamp;
use crate::decode::{Segment, Tuple};
use crate::history::{self, EntryLog};
use crate::verdict::{Action, CtState, Evidence, EntryInfo, FrameRef, KernelVerdict, Reason, ReasonId, Verdict};
use entry::Entry;
use profile::{Features, Profile};
use state::{Dir, TcpState};
use sysctl::Sysctls;
use table::Table;
pub use table::{FlowKey, Keyed};
pub use tracker::Hook;
use tracker::{Config, Handled, NewEntry};

/// One packet offered to the tracker.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub seg: &'a Segment,
    /// Conntrack's time for the packet.
    pub ts: Timestamp,
    pub frame: FrameRef,
    pub hook: Hook,
    /// The frame's position in the capture and its capture time, for the entries' logs
    /// ([`EntryLog`]).
    pub seq: u64,
    pub capture_ts: Timestamp,
}

/// How much of a verdict a caller of [`Conntrack::track_detailed`] needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// The whole verdict, always.
    Full,
    /// Only the `ct state` of a quiet frame: a packet accepted without comment on an entry that
    /// existed before it and that no report has shown ([`EntryLog::shown`]), or one that created
    /// an entry (replacing none) while it can end no flow a report follows (see
    /// `Conntrack::creations_end_no_followed_flow`).
    Quiet,
    /// Only the `ct state` of a packet accepted without comment on an entry that existed before
    /// it: all that is read of a compared kernel's verdict ([`Tracked::outcome`]).
    Outcome,
}

/// A verdict as [`Conntrack::track_detailed`] gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// Accepted without comment, on an entry that existed before the packet or on one it
    /// `created`; the packet was in `dir` and left the entry in `state_after` (it may have
    /// closed and gone).
    Plain { ct_state: CtState, dir: Dir, state_after: TcpState, created: bool },
    Full(Verdict),
}

impl Tracked {
    /// The verdict in the words compared across kernels.
    pub fn outcome(&self, kernel: &'static str) -> KernelVerdict {
        match self {
            Tracked::Plain { ct_state, .. } => KernelVerdict { kernel, ct_state: *ct_state, verdict: Action::Accept, reason: None },
            Tracked::Full(v) => KernelVerdict::of(kernel, v),
        }
    }

    /// The whole verdict, which [`Detail::Full`] always gives.
    pub fn into_full(self) -> Verdict {
        match self {
            Tracked::Full(v) => v,
            Tracked::Plain { .. } => unreachable!("only a verdict in less detail than full is plain"),
        }
    }
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
    profile: Profile,
    sysctls: Sysctls,
    table: Table,
    /// Entries this table may hold: `nf_conntrack_max`, or this shard's part of it.
    limit: u32,
    /// The latest time seen: entries that expired by then are swept out.
    clock: Timestamp,
    /// The log of the entry the last tracked packet met, as it was before that packet (unless
    /// its verdict was plain).
    log_before: Option<EntryLog>,
    /// The entry the last tracked packet met or created, while it is in the table: the packet
    /// goes into its log.
    met: Option<table::Handle>,
    /// A report was shown a packet that left no entry to mark ([`Conntrack::show_entry`]): it
    /// may follow a flow of that tuple that no entry stands for.
    shown_entryless: bool,
    /// The profile's features are the newest kernel's ([`Conntrack::track_detailed`]).
    runs_latest: bool,
}

impl Conntrack {
    pub fn new(profile: Profile, sysctls: Sysctls) -> Conntrack {
        Conntrack::shard(profile, sysctls, 1)
    }

    /// One of `shards` tables that together track a capture, each seeing the flows that hash to
    /// it. `nf_conntrack_max` is a global limit; each shard gets an equal part of it, rounded up,
    /// so a table-full decision may differ from a single table's near the limit.
    pub fn shard(profile: Profile, sysctls: Sysctls, shards: usize) -> Conntrack {
        let limit = sysctls.max.div_ceil(shards.max(1) as u32);
        let runs_latest = profile.features == Features::LATEST;
        Conntrack {
            profile,
            sysctls,
            table: Table::default(),
            limit,
            clock: Timestamp(i64::MIN),
            log_before: None,
            met: None,
            shown_entryless: false,
            runs_latest,
        }
    }

    /// Has every entry keep an [`EntryLog`] of the packets that meet it. A few nanoseconds a
    /// packet: the entry is in the cache already.
    pub fn keep_logs(&mut self) {
        self.table.keep_logs();
    }

    /// Takes the log of the entry the last packet [`Conntrack::track`]ed met, as it was before
    /// that packet; `None` when it met none, logs are not kept, its verdict was
    /// [`Tracked::Plain`] (nothing to report), or it was taken already (so a caller that takes it
    /// after every packet never gets an earlier packet's).
    pub fn take_log_before(&mut self) -> Option<EntryLog> {
        self.log_before.take()
    }

    /// Marks the entry the last tracked packet met or created (if it is still there) as shown
    /// by a report ([`EntryLog::shown`]).
    pub fn show_entry(&mut self) {
        // It met no entry, or ended the one it met: a report may now follow a flow of its tuple
        // that no entry in the table stands for.
        if !self.met.is_some_and(|h| self.table.show(h)) {
            self.shown_entryless = true;
        }
    }

    /// Whether a packet that creates an entry (replacing none) can end no flow a report
    /// follows, so that it may be quiet ([`Detail::Quiet`]): true until a report is shown a
    /// packet without an entry, or an entry a report was shown leaves the table unseen
    /// ([`table::Table::shown_ended_unseen`]). A report follows only the flows of shown entries
    /// and of shown packets that had none; until then, the former are all still in the table
    /// or were ended by a packet the report saw, and there are none of the latter.
    fn creations_end_no_followed_flow(&self) -> bool {
        !self.shown_entryless && !self.table.shown_ended_unseen()
    }

    /// Whether a packet whose whole verdict is `v` is one [`Detail::Quiet`] leaves out, given
    /// the log of the entry it met as it was before it ([`Conntrack::take_log_before`]): the
    /// same rule, for a caller that needed the whole verdict anyway (compared kernels, which
    /// then agreed on it).
    pub fn is_quiet(&self, v: &Verdict, log_before: Option<&EntryLog>) -> bool {
        let plain = v.action == Action::Accept && v.reason.is_none();
        let met_unshown = v.entry.is_some() && log_before.is_some_and(|log| !log.shown);
        let created = v.created_entry() && v.replaced.is_none() && self.creations_end_no_followed_flow();
        plain && (met_unshown || created)
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// Entries in the table (expired ones may linger until the clock passes their expiry).
    pub fn entries(&self) -> usize {
        self.table.len()
    }

    /// Moves the sweeping clock forward to `now` (never back) and sweeps out the entries that
    /// expired by then. [`Conntrack::track`] does this with each packet's time; a caller that
    /// splits one capture over several tables calls it with the latest time of the whole
    /// capture, so that every table forgets an entry at the same moment one table would.
    ///
    /// Sweeping only frees memory: a lookup judges expiry at the packet's own time anyway.
    pub fn advance_clock(&mut self, now: Timestamp) {
        // Another question begins (a packet, an unreadable datagram): the entry the last packet
        // met is no longer the one to mark, and a sweep may remove it.
        self.met = None;
        if now > self.clock {
            self.clock = now;
            self.table.sweep(now);
        }
    }

    /// The entry a tuple maps to now, with its full TCP data, without changing anything.
    /// `None` when there is none or it has expired by `now`.
    pub fn snapshot(&self, tuple: &Tuple, now: Timestamp) -> Option<Snapshot> {
        let e = self.table.get(tuple)?;
        if e.is_expired(now) {
            return None;
        }
        let dir = if e.tuple == *tuple { Dir::Original } else { Dir::Reply };
        // Saturating: `now` may lie far before the entry's creation (timestamps at both ends of
        // the i64 range, from pcapng `if_tsoffset`), and the difference overflowed there.
        Some(Snapshot { info: e.info(dir), tcp: e.tcp, remaining_ns: e.expires.0.saturating_sub(now.0) })
    }

    /// The verdict for one TCP segment.
    pub fn track(&mut self, p: &Packet) -> Verdict {
        self.track_keyed(p, &Keyed::of(&p.seg.tuple))
    }

    /// [`Conntrack::track`] with the key of the packet's tuple computed already (once for all
    /// the tables that judge it).
    pub fn track_keyed(&mut self, p: &Packet, k: &Keyed<'_>) -> Verdict {
        self.track_detailed(p, k, Detail::Full).into_full()
    }

    /// [`Conntrack::track_keyed`], giving only the `ct state` of a packet accepted without
    /// comment where `detail` says that is all the caller needs: most packets of a healthy
    /// capture, which then cost no verdict and no copy of their entry's log.
    pub fn track_detailed(&mut self, p: &Packet, k: &Keyed<'_>, detail: Detail) -> Tracked {
        if !self.table.keeps_logs() {
            return self.judge(false, p, k, detail);
        }
        self.log_before = None;
        self.met = None;
        // The same code twice for the table whose packets go into the report: once for the
        // newest kernel, whose features are then constants (the compiler drops every test of a
        // switch and the branches it rules out), and once for any other.
        let tracked = if self.runs_latest { self.judge(true, p, k, detail) } else { self.judge(false, p, k, detail) };
        if let Some(log) = self.met.and_then(|h| self.table.log_mut(h)) {
            let (dir, state_after, marked) = match &tracked {
                Tracked::Plain { dir, state_after, .. } => (*dir, Some(*state_after), false),
                Tracked::Full(v) => (v.dir.unwrap_or(Dir::Original), v.state_after, history::mark(v.action).is_some()),
            };
            log.add(p.seg, dir, state_after, marked);
        }
        tracked
    }

    // Inlined into its three calls in `track_detailed`, its only caller: a call here cost ~23
    // instructions a packet in saving and restoring registers and passing the verdict back.
    // `latest` is a constant at each call: true only where the profile's features are
    // `Features::LATEST`.
    #[inline(always)]
    fn judge(&mut self, latest: bool, p: &Packet, k: &Keyed<'_>, detail: Detail) -> Tracked {
        self.advance_clock(p.ts);
        let mut cfg = Config::new(&self.profile, &self.sysctls);
        if latest {
            cfg.features = &Features::LATEST;
        }
        let Some((h, dir)) = self.table.lookup_keyed(k, p.ts) else {
            let v = self.track_new(p, k, None);
            return match v.state_after {
                Some(state_after) if detail == Detail::Quiet && self.is_quiet(&v, None) => {
                    Tracked::Plain { ct_state: v.ct_state, dir: Dir::Original, state_after, created: true }
                }
                _ => Tracked::Full(v),
            };
        };
        // Whether a packet accepted without comment may go with its `ct state` alone.
        let plain_if_accepted = match detail {
            Detail::Full => false,
            Detail::Quiet => self.table.log(h).is_some_and(|log| !log.shown),
            Detail::Outcome => true,
        };
        if self.table.keeps_logs() {
            self.met = Some(h);
        }
        let e = self.table.entry_mut(h);
        if let Some(r) = tracker::header_error(&cfg, p.seg, p.hook) {
            let before = e.info(dir);
            self.keep_log_before(h);
            return Tracked::Full(invalid(r, Some(dir), Some(before)).expiring(Some(before.expires)));
        }
        // ctinfo is decided at lookup time, before the handler runs.
        let ct_state = if dir == Dir::Reply || e.seen_reply { CtState::Established } else { CtState::New };
        let old_state = e.tcp.state;
        // The entry as the packet met it goes only into the verdicts of packets that are not
        // plain: of what it shows, the handler changes only the state, ASSURED and the expiry.
        let (assured, expires) = (e.assured, e.expires);
        let before = |e: &Entry| EntryInfo { state: old_state, assured, expires, ..e.info(dir) };
        let handled = tracker::tcp_packet(&cfg, e, p.seg, dir, p.ts);
        let plain = plain_if_accepted && matches!(handled, Handled::Accepted { .. });
        if !plain {
            // Before the entry is removed, or this packet goes into its log.
            self.keep_log_before(h);
        }
        let (action, reason) = match handled {
            Handled::Repeat => {
                // Reopen: the old entry goes, the packet is looked up again from scratch.
                let before = before(self.table.entry(h));
                self.remove(h);
                return Tracked::Full(self.track_new(p, k, Some(before)));
            }
            Handled::Invalid(r) => {
                // The handler may have lowered the entry's timeout.
                self.table.touched(h, old_state.is_closing(), p.ts);
                let e = self.table.entry(h);
                return Tracked::Full(invalid(r, Some(dir), Some(before(e))).expiring(Some(e.expires)));
            }
            Handled::DropAndKill(r) => {
                // 2.6.18's out-of-sync kill: the entry goes and the packet is dropped.
                let before = before(self.table.entry(h));
                self.remove(h);
                let v = invalid(r, Some(dir), Some(before));
                return Tracked::Full(Verdict { action: Action::Drop, state_after: None, ..v });
            }
            Handled::Ignored(r) => (Action::Ignore, Some(Box::new(r))),
            Handled::Accepted { delete_entry } => {
                if delete_entry {
                    let e = self.table.entry(h);
                    let (state_after, before) = (e.tcp.state, before(e));
                    self.remove(h);
                    if plain {
                        return Tracked::Plain { ct_state, dir, state_after, created: false };
                    }
                    return Tracked::Full(accepted(ct_state, dir, old_state, state_after, before));
                }
                (Action::Accept, None)
            }
        };
        let e = self.table.entry_mut(h);
        // Taken before the packet's own marks below: the entry as it met it.
        let as_met = (!plain).then(|| before(e));
        if dir == Dir::Reply {
            e.seen_reply = true;
        }
        let state_after = e.tcp.state;
        if action == Action::Accept && state_after != old_state {
            e.last_change_frame = p.frame;
        }
        let expires = Some(e.expires);
        self.table.touched(h, old_state.is_closing(), p.ts);
        let Some(before) = as_met else {
            return Tracked::Plain { ct_state, dir, state_after, created: false };
        };
        Tracked::Full(Verdict { action, reason, expires, ..accepted(ct_state, dir, old_state, state_after, before) })
    }

    /// Keeps the log of the entry a packet met, as it is before the packet, for
    /// [`Conntrack::take_log_before`].
    fn keep_log_before(&mut self, h: table::Handle) {
        if self.table.keeps_logs() {
            self.log_before = self.table.log(h).copied();
        }
    }

    /// Removes an entry the packet being tracked met: it goes into no log any more.
    fn remove(&mut self, h: table::Handle) {
        self.met = None;
        self.table.remove(h);
    }

    /// A TCP datagram too short to hold a TCP header: conntrack cannot track it and says nothing.
    pub fn track_unreadable(&mut self, tuple: Option<&Tuple>, ts: Timestamp) -> Verdict {
        self.advance_clock(ts);
        let found = tuple.and_then(|t| self.table.lookup(t, ts));
        let entry = found.map(|(h, d)| self.table.entry(h).info(d));
        let cfg = Config::new(&self.profile, &self.sysctls);
        invalid(tracker::unreadable_header(&cfg), found.map(|(_, d)| d), entry).expiring(entry.map(|e| e.expires))
    }

    /// A packet that matched no entry: may it create one?
    fn track_new(&mut self, p: &Packet, k: &Keyed<'_>, replaced: Option<EntryInfo>) -> Verdict {
        let replaced = replaced.map(Box::new);
        let cfg = Config::new(&self.profile, &self.sysctls);
        if !self.table.make_room(self.limit, p.ts) {
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
                expires: None,
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
            Handled::Accepted { delete_entry } => {
                let state_after = e.tcp.state;
                let expires = (!delete_entry).then_some(e.expires);
                if !delete_entry {
                    // A new entry's ORIGINAL tuple is the packet's.
                    let h = self.table.insert_keyed(e, EntryLog::new(p.seq, p.capture_ts), k);
                    if self.table.keeps_logs() {
                        self.met = Some(h);
                    }
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
                    expires,
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
                expires: None,
            },
            Handled::Repeat | Handled::DropAndKill(_) => {
                unreachable!("a new entry is in NONE: it is neither reopened nor re-synced")
            }
        }
    }
}

/// A tracked packet the handler accepted without comment.
fn accepted(ct_state: CtState, dir: Dir, before: TcpState, after: TcpState, entry: EntryInfo) -> Verdict {
    Verdict {
        ct_state,
        action: Action::Accept,
        dir: Some(dir),
        state_before: Some(before),
        state_after: Some(after),
        reason: None,
        entry: Some(entry),
        replaced: None,
        // `track` sets it when the entry outlives the packet
        expires: None,
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
        expires: None,
    }
}

impl Verdict {
    /// The verdict with [`Verdict::expires`] set.
    fn expiring(self, expires: Option<Timestamp>) -> Verdict {
        Verdict { expires, ..self }
    }
}

#[cfg(test)]
mod tests;
