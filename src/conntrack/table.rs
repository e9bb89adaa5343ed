//! The conntrack table: entries found by either of their tuples, expiring on capture time,
//! bounded by `nf_conntrack_max`.
//!
//! Every operation costs amortised O(1) per packet, whatever the size of the table:
//!
//! * one hash lookup finds an entry from either direction ([`FlowKey`] is direction-free);
//! * expired entries are swept from a timing wheel of one-second buckets. An entry is filed
//!   under its expiry once, and filed again only when that deadline passes (it was refreshed
//!   since) or its expiry is lowered, not on every refresh;
//! * eviction candidates wait in two queues (unassured entries by age, closing entries by when
//!   they began to close), so finding a victim never scans the table.
//!
//! The wheel and the queues are lazy: they may hold references to entries that are gone, were
//! replaced, or no longer qualify. Such references are skipped when met, and each structure is
//! compacted when it holds more than twice as many references as there are entries, so memory
//! follows the number of entries, never the number of packets or connections seen.

use super::entry::Entry;
use super::state::Dir;
use crate::capture::Timestamp;
use crate::decode::Tuple;
use crate::history::EntryLog;
use crate::wheel::Wheel;
use crate::slot_index::SlotIndex;
use std::collections::VecDeque;
use std::net::IpAddr;

/// A connection's identity regardless of direction: its two endpoints in a fixed order.
///
/// Without NAT an entry's REPLY tuple is its ORIGINAL tuple reversed, so both directions of a
/// connection share one key, one hash and one lookup. (The kernel cannot have two entries whose
/// tuples are each other's reverse: the second would clash with the first on insertion.) The
/// engine shards by this key too, so both directions of a flow go to the same tracker thread.
#[derive(Clone, Copy, Debug, Eq)]
pub struct FlowKey {
    /// Lower endpoint's address (high and low 64 bits), higher endpoint's address, then both
    /// ports and the address family. IPv4 addresses are zero-extended; the family bit keeps
    /// `10.0.0.1` apart from `::a00:1`.
    words: [u64; 5],
}

impl FlowKey {
    pub fn of(t: &Tuple) -> FlowKey {
        let src = (wide(t.src), t.sport);
        let dst = (wide(t.dst), t.dport);
        let src_is_lower = src <= dst;
        let (lo, hi) = if src_is_lower { (src, dst) } else { (dst, src) };
        let v6 = t.src.is_ipv6() || t.dst.is_ipv6();
        let words = [
            (lo.0 >> 64) as u64,
            lo.0 as u64,
            (hi.0 >> 64) as u64,
            hi.0 as u64,
            (u64::from(lo.1) << 32) | (u64::from(hi.1) << 16) | u64::from(v6),
        ];
        FlowKey { words }
    }

    /// The table's hash of the key, folded to 32 bits (all the index keeps of it).
    pub fn hash32(&self) -> u32 {
        let [lo_high, lo_low, hi_high, hi_low, ports] = self.words;
        let v6 = ports & 1 == 1;
        let lo = endpoint_hash((u128::from(lo_high) << 64) | u128::from(lo_low), (ports >> 32) as u16, v6);
        let hi = endpoint_hash((u128::from(hi_high) << 64) | u128::from(hi_low), (ports >> 16) as u16, v6);
        fold32(lo.wrapping_add(hi))
    }

    /// [`FlowKey::hash32`] of a tuple's key, without building the key: every packet needs its
    /// hash (to pick a tracker and to probe the table), few need the key itself.
    pub fn hash_of(t: &Tuple) -> u32 {
        // The sum of the two endpoints' hashes does not depend on which end is which.
        let sum = match (t.src, t.dst) {
            // Spelled out for IPv4, where the compiler then drops the high halves.
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let (src, dst) = (u128::from(u32::from(src)), u128::from(u32::from(dst)));
                endpoint_hash(src, t.sport, false).wrapping_add(endpoint_hash(dst, t.dport, false))
            }
            _ => endpoint_hash(wide(t.src), t.sport, true).wrapping_add(endpoint_hash(wide(t.dst), t.dport, true)),
        };
        fold32(sum)
    }
}

/// An address as a 128-bit number; IPv4 zero-extended.
fn wide(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

/// One end of a connection, hashed to 64 well-mixed bits: its address's two halves and its
/// port go through one 64×64→128-bit multiply, whose halves are folded together (the mixing
/// step of foldhash). Summed over both ends, the hash is the same for a tuple and its reverse
/// without putting the ends in order first, which costs more than the hash on every packet.
#[inline(always)]
fn endpoint_hash(addr: u128, port: u16, v6: bool) -> u64 {
    /// Odd 64-bit constants with mixed bits (from the fractional part of pi).
    const SEED: u64 = 0x243f_6a88_85a3_08d3;
    const MULTIPLIER: u64 = 0x1319_8a2e_0370_7345;
    const FAMILY: u64 = 0xa409_3822_299f_31d0;
    // An IPv4 address and its port fit in 48 bits whole; an IPv6 address is folded to 64.
    let value = (addr as u64) ^ ((addr >> 64) as u64).rotate_left(17) ^ (u64::from(port) << 32) ^ if v6 { FAMILY } else { 0 };
    let product = u128::from(value ^ SEED) * u128::from(MULTIPLIER);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A 64-bit hash folded to the 32 bits a [`SlotIndex`] keeps.
fn fold32(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

impl PartialEq for FlowKey {
    // Branch-free: the derived comparison of the array calls memcmp.
    fn eq(&self, other: &FlowKey) -> bool {
        self.words.iter().zip(&other.words).fold(0, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

/// A packet's tuple with the hash of its key: what a lookup computes first. Computed once per
/// packet when several tables judge it (the compared kernels).
///
/// The tuple is borrowed: a copy of the packet's tuple, just decoded a few bytes at a time, was
/// read back 16 bytes at a time, a load the CPU cannot forward from its store buffer (a fifth
/// of the one-thread loop's own samples).
#[derive(Clone, Copy, Debug)]
pub struct Keyed<'a> {
    tuple: &'a Tuple,
    hash: u32,
}

impl Keyed<'_> {
    pub fn of(tuple: &Tuple) -> Keyed<'_> {
        Keyed { tuple, hash: FlowKey::hash_of(tuple) }
    }

    /// [`Keyed::of`] with the hash worked out already ([`FlowKey::hash32`] of the tuple's key).
    pub fn with_hash(tuple: &Tuple, hash: u32) -> Keyed<'_> {
        debug_assert_eq!(hash, FlowKey::hash_of(tuple), "the hash of the tuple's key");
        Keyed { tuple, hash }
    }
}

/// Where an entry lives in the table; valid until the table is changed.
pub type Handle = u32;

/// A reference to an entry that may outlive it: a slot and the serial of the entry that was in
/// it. A later entry in the same slot has another serial, so the reference is then stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ref {
    serial: u64,
    slot: Handle,
}

/// What the table's upkeep needs to know of a slot, kept apart from the slots in a dense array
/// (32 bytes a slot against 152). Sweeping deadlines and trimming the eviction queues mostly
/// meet entries that no packet has touched for minutes: read from the slots, each of those was a
/// cache miss; here many share a cache line. Mirrors the entry's fields as of the last
/// [`Table::insert_keyed`] or [`Table::touched`].
#[derive(Clone, Copy, Debug)]
struct Upkeep {
    serial: u64,
    /// The deadline this entry is filed under in the wheel. Never later than its expiry, so an
    /// entry is always swept by the time it has expired.
    filed: Timestamp,
    expires: Timestamp,
    hash: u32,
    live: bool,
    assured: bool,
    closing: bool,
    /// A report has shown the entry ([`Table::show`]): the [`EntryLog::shown`] mark, here so
    /// that a sweep can tell without reading the log.
    shown: bool,
}

impl Upkeep {
    fn of(entry: &Entry, serial: u64, hash: u32) -> Upkeep {
        Upkeep {
            serial,
            filed: entry.expires,
            expires: entry.expires,
            hash,
            live: true,
            assured: entry.assured,
            closing: entry.tcp.state.is_closing(),
            shown: false,
        }
    }
}

/// All entries, live or expired but not yet swept.
pub struct Table {
    /// Each live entry's slot, by its key's [`FlowKey::hash32`].
    index: SlotIndex,
    /// The entries, each live while its [`Upkeep::live`]; a free slot keeps what was left of
    /// its last entry. An entry's key is not stored: it is its ORIGINAL tuple's, computed again
    /// where it is needed (a few instructions), which keeps the slots 40 bytes smaller — with
    /// six tables judging every packet, they are what fills the CPU's caches.
    slots: Vec<Entry>,
    /// One for each slot.
    upkeep: Vec<Upkeep>,
    /// One for each slot when the table keeps its entries' logs ([`Table::keep_logs`]), else
    /// none: of the six tables of a default run only one does, and 56 bytes less a slot keeps
    /// more of the others in the CPU's caches.
    logs: Vec<EntryLog>,
    keeps_logs: bool,
    /// Empty slots, reused before the vector grows.
    free: Vec<Handle>,
    next_serial: u64,
    deadlines: Wheel<Ref>,
    /// Entries that are not ASSURED, by creation: what the kernel's `early_drop` may evict.
    unassured: Candidates,
    /// Entries in a closing state (FIN_WAIT … CLOSE), by when they began to close: what the
    /// kernel's garbage collector also evicts once the table is over 95 % full.
    closing: Candidates,
    /// Filings taken from the wheel, reused between sweeps.
    due: Vec<Filing>,
    /// An entry a report has shown ([`EntryLog::shown`]) has left the table with no packet of
    /// its own to tell the report: it expired, or was evicted ([`Table::shown_ended_unseen`]).
    shown_ended_unseen: bool,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            index: SlotIndex::new(),
            slots: Vec::new(),
            upkeep: Vec::new(),
            logs: Vec::new(),
            keeps_logs: false,
            free: Vec::new(),
            next_serial: 0,
            deadlines: Wheel::default(),
            unassured: Candidates::new(|u| !u.assured),
            closing: Candidates::new(|u| u.closing),
            due: Vec::new(),
            shown_ended_unseen: false,
        }
    }
}

/// A lazy structure is compacted once it holds more than twice the number of entries plus this.
pub(crate) const COMPACT_SLACK: usize = 64;

impl Table {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Keeps a log for each entry from now on; call before the first insertion.
    pub fn keep_logs(&mut self) {
        debug_assert!(self.slots.is_empty(), "logs are kept from the start");
        self.keeps_logs = true;
    }

    pub fn keeps_logs(&self) -> bool {
        self.keeps_logs
    }

    /// The log of a live entry, when the table keeps logs.
    pub fn log(&self, h: Handle) -> Option<&EntryLog> {
        self.logs.get(h as usize)
    }

    pub fn log_mut(&mut self, h: Handle) -> Option<&mut EntryLog> {
        self.logs.get_mut(h as usize)
    }

    /// Finds the live entry for a packet's tuple and the packet's direction relative to it.
    /// An expired entry is removed and not returned: for the kernel it no longer exists.
    pub fn lookup(&mut self, tuple: &Tuple, now: Timestamp) -> Option<(Handle, Dir)> {
        self.lookup_keyed(&Keyed::of(tuple), now)
    }

    /// [`Table::lookup`] with the key computed already.
    // Inlined where every packet is judged (~10 instructions a packet and table).
    #[inline(always)]
    pub fn lookup_keyed(&mut self, k: &Keyed<'_>, now: Timestamp) -> Option<(Handle, Dir)> {
        let (h, dir) = self.find(k)?;
        if self.slots[h as usize].is_expired(now) {
            self.end_unseen(h);
            return None;
        }
        Some((h, dir))
    }

    /// The entry whose ORIGINAL tuple is the packet's tuple or its reverse, and the packet's
    /// direction. The entries' tuples are compared as they are: cheaper than working out their
    /// keys, and the same test (one key stands for a tuple and its reverse, nothing else).
    #[inline]
    fn find(&self, k: &Keyed<'_>) -> Option<(Handle, Dir)> {
        let slots = &self.slots;
        let mut dir = Dir::Original;
        let found = self.index.find(k.hash, |slot| {
            let original = &slots[slot as usize].tuple;
            // A tuple that is its own reverse (same address and port at both ends) is ORIGINAL.
            if original == k.tuple {
                dir = Dir::Original;
            } else if original.is_reverse_of(k.tuple) {
                dir = Dir::Reply;
            } else {
                return false;
            }
            true
        })?;
        Some((found, dir))
    }

    /// The entry for a tuple in either direction, expired or not, without changing anything.
    pub fn get(&self, tuple: &Tuple) -> Option<&Entry> {
        self.handle_of(tuple).map(|h| self.entry(h))
    }

    /// [`Table::get`]'s handle.
    pub fn handle_of(&self, tuple: &Tuple) -> Option<Handle> {
        self.find(&Keyed::of(tuple)).map(|(h, _)| h)
    }

    /// The entry behind a handle from [`Table::lookup`].
    pub fn entry(&self, h: Handle) -> &Entry {
        debug_assert!(self.upkeep[h as usize].live, "handle of a live entry");
        &self.slots[h as usize]
    }

    pub fn entry_mut(&mut self, h: Handle) -> &mut Entry {
        debug_assert!(self.upkeep[h as usize].live, "handle of a live entry");
        &mut self.slots[h as usize]
    }

    /// Removes a live entry. (Its slot is not read: an entry removed by a sweep has usually
    /// not been touched for minutes.)
    pub fn remove(&mut self, h: Handle) {
        let upkeep = &mut self.upkeep[h as usize];
        debug_assert!(upkeep.live, "handle of a live entry");
        upkeep.live = false;
        self.index.remove(upkeep.hash, h);
        self.free.push(h);
    }

    /// Removes an entry that no packet of its own ends (it expired, or is evicted), noting
    /// whether a report was following it.
    fn end_unseen(&mut self, h: Handle) {
        if self.upkeep[h as usize].shown {
            self.shown_ended_unseen = true;
        }
        self.remove(h);
    }

    /// Marks a live entry as shown by a report ([`EntryLog::shown`]); false, marking nothing,
    /// when the table keeps no logs.
    pub fn show(&mut self, h: Handle) -> bool {
        let Some(log) = self.logs.get_mut(h as usize) else { return false };
        log.shown = true;
        self.upkeep[h as usize].shown = true;
        true
    }

    /// Whether an entry a report has shown has ever left the table by expiry or eviction, where
    /// no packet of its own told the report. Until then, every entry a report follows is in the
    /// table or was ended by a packet the report was shown: one of the two conditions under
    /// which a packet that creates an entry may be held back (`Conntrack::creations_end_no_followed_flow`).
    pub fn shown_ended_unseen(&self) -> bool {
        self.shown_ended_unseen
    }

    /// [`Table::insert_keyed`] for tests, which keep no logs.
    #[cfg(test)]
    fn insert(&mut self, entry: Entry) -> Handle {
        let tuple = entry.tuple;
        let log = EntryLog::new(0, entry.created_ts);
        self.insert_keyed(entry, log, &Keyed::of(&tuple))
    }

    /// Confirms a new entry (the kernel's `nf_conntrack_confirm`) under the key of its ORIGINAL
    /// tuple, with the log it starts with (kept if the table keeps logs). Call
    /// [`Table::make_room`] first.
    pub fn insert_keyed(&mut self, entry: Entry, log: EntryLog, k: &Keyed<'_>) -> Handle {
        let hash = k.hash;
        debug_assert!(entry.tuple == *k.tuple, "a new entry's ORIGINAL tuple is the packet's");
        debug_assert!(self.find(k).is_none(), "callers look the tuple up first");
        let serial = self.next_serial;
        self.next_serial += 1;
        let (expires, created) = (entry.expires, entry.created_ts);
        let upkeep = Upkeep::of(&entry, serial, hash);
        let h = match self.free.pop() {
            Some(h) => {
                self.slots[h as usize] = entry;
                self.upkeep[h as usize] = upkeep;
                if let Some(l) = self.logs.get_mut(h as usize) {
                    *l = log;
                }
                h
            }
            None => {
                self.slots.push(entry);
                self.upkeep.push(upkeep);
                if self.keeps_logs {
                    self.logs.push(log);
                }
                (self.slots.len() - 1) as Handle
            }
        };
        self.index.insert(hash, h);
        let r = Ref { serial, slot: h };
        self.deadlines.file(expires, r);
        self.unassured.push(created, r, &self.upkeep);
        self.compact();
        h
    }

    /// Tells the table that the handler has run on an entry at `now`: it may have a new expiry
    /// (earlier than filed, e.g. a lowered timeout) or have begun to close.
    // Always inlined: with the tracker's code doubled for the newest kernel
    // (`Conntrack::track_detailed`), the compiler made it a call (~12 instructions a packet).
    #[inline(always)]
    pub fn touched(&mut self, h: Handle, was_closing: bool, now: Timestamp) {
        let e = self.entry(h);
        let (expires, assured, closing_now) = (e.expires, e.assured, e.tcp.state.is_closing());
        let upkeep = &mut self.upkeep[h as usize];
        upkeep.expires = expires;
        upkeep.assured = assured;
        upkeep.closing = closing_now;
        let refile = expires < upkeep.filed;
        let began_closing = closing_now && !was_closing;
        // Most packets do neither: checked where the packet is judged, the filing called for.
        if refile || began_closing {
            self.queue(h, refile, began_closing, now);
        }
    }

    /// Files a touched entry again under its lowered expiry, and queues it as closing since
    /// `now`, as [`Table::touched`] found it needs.
    #[inline(never)]
    fn queue(&mut self, h: Handle, refile: bool, began_closing: bool, now: Timestamp) {
        let upkeep = &mut self.upkeep[h as usize];
        let r = Ref { serial: upkeep.serial, slot: h };
        if refile {
            upkeep.filed = upkeep.expires;
            self.deadlines.file(upkeep.expires, r);
        }
        if began_closing {
            self.closing.push(now, r, &self.upkeep);
        }
        self.compact();
    }

    /// Removes the entries that expired before `now`'s second began. Each second of capture
    /// time is swept once; an entry is met here about once per timeout it outlives, so the
    /// cost per packet is amortised O(1). (Lookups judge expiry to the nanosecond anyway.)
    #[inline]
    pub fn sweep(&mut self, now: Timestamp) {
        // Most packets come within the second last swept: checked where the packet is judged,
        // since a call only to find that cost as much again as the check.
        if self.deadlines.has_past_seconds(now) {
            self.sweep_past_seconds(now);
        }
    }

    #[inline(never)]
    fn sweep_past_seconds(&mut self, now: Timestamp) {
        let mut due = std::mem::take(&mut self.due);
        self.deadlines.take_past_seconds(now, &mut due);
        self.settle(&mut due, now);
        self.due = due;
    }

    /// Removes every entry that has expired by `now`, to the nanosecond.
    fn sweep_exactly(&mut self, now: Timestamp) {
        self.sweep(now);
        let mut due = std::mem::take(&mut self.due);
        self.deadlines.take_this_second(now, &mut due);
        self.settle(&mut due, now);
        self.due = due;
    }

    /// Deals with filings whose deadline has come: expired entries go, refreshed ones are filed
    /// again under their current expiry, stale filings are dropped.
    fn settle(&mut self, due: &mut Vec<Filing>, now: Timestamp) {
        for (deadline, r) in due.drain(..) {
            let Some(upkeep) = live_mut(&mut self.upkeep, r) else { continue };
            if upkeep.filed != deadline {
                continue; // filed again since
            }
            if upkeep.expires <= now {
                self.end_unseen(r.slot);
            } else {
                upkeep.filed = upkeep.expires;
                self.deadlines.file(upkeep.expires, r);
            }
        }
    }

    /// Makes room for one more entry when the table holds `limit` (0: no limit, as in the
    /// kernel). Expired entries go first: they do not exist. Then one entry the kernel could
    /// evict is: one that is not ASSURED (`early_drop`), or an ASSURED one that is closing
    /// (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE), which the kernel's garbage collector
    /// evicts once the table is over 95 % full. Of these, the one evictable longest goes: an
    /// abandoned handshake or a long-closed connection before a handshake in progress. Returns
    /// false if nothing could be evicted: the kernel then drops the packet ("table full").
    pub fn make_room(&mut self, limit: u32, now: Timestamp) -> bool {
        if limit == 0 || self.len() < limit as usize {
            return true;
        }
        self.sweep_exactly(now);
        if self.len() < limit as usize {
            return true;
        }
        let unassured = self.unassured.front(&self.upkeep);
        let closing = self.closing.front(&self.upkeep);
        let victim = match (unassured, closing) {
            (Some((u, _)), Some((c, _))) if c < u => self.closing.pop(),
            (Some(_), _) => self.unassured.pop(),
            (None, Some(_)) => self.closing.pop(),
            (None, None) => return false,
        };
        self.end_unseen(victim.slot);
        true
    }

    /// The most references any lazy structure (deadlines, eviction queues) holds: bounded by
    /// compaction to about twice the live entries, whatever the churn.
    pub fn queued(&self) -> usize {
        self.deadlines.len().max(self.unassured.len()).max(self.closing.len())
    }

    fn compact_limit(&self) -> usize {
        2 * self.len() + COMPACT_SLACK
    }

    /// Drops stale references from whichever lazy structure has grown past its limit. Each
    /// compaction removes at least half of what it scans, so its cost is amortised over the
    /// insertions and updates that made those references stale.
    #[inline]
    fn compact(&mut self) {
        let limit = self.compact_limit();
        if self.deadlines.len() > limit || self.unassured.len() > limit || self.closing.len() > limit {
            self.compact_now(limit);
        }
    }

    fn compact_now(&mut self, limit: usize) {
        let upkeep = &self.upkeep;
        if self.deadlines.len() > limit {
            self.deadlines.retain(|(d, r)| live(upkeep, *r).is_some_and(|u| u.filed == *d));
        }
        for queue in [&mut self.unassured, &mut self.closing] {
            if queue.len() > limit {
                queue.retain(upkeep);
            }
        }
    }
}

/// The upkeep of the entry a reference names, if the entry is still there.
fn live(upkeep: &[Upkeep], r: Ref) -> Option<&Upkeep> {
    upkeep.get(r.slot as usize).filter(|u| u.live && u.serial == r.serial)
}

fn live_mut(upkeep: &mut [Upkeep], r: Ref) -> Option<&mut Upkeep> {
    upkeep.get_mut(r.slot as usize).filter(|u| u.live && u.serial == r.serial)
}

/// Entries that may be evicted, each with the time it became evictable, in that order. A
/// reference goes stale when its entry goes, is replaced, or no longer qualifies (an ASSURED
/// entry never becomes unassured again; an entry that begins to close again is queued again).
struct Candidates {
    queue: VecDeque<(Timestamp, Ref)>,
    qualifies: fn(&Upkeep) -> bool,
}

impl Candidates {
    fn new(qualifies: fn(&Upkeep) -> bool) -> Candidates {
        Candidates { queue: VecDeque::new(), qualifies }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn push(&mut self, since: Timestamp, r: Ref, upkeep: &[Upkeep]) {
        self.queue.push_back((since, r));
        // Entries usually stop qualifying in about the order they started (handshakes
        // complete, closed connections expire): trimming the front keeps the queue short.
        self.front(upkeep);
    }

    /// The longest-waiting reference that still qualifies, dropping stale ones before it.
    fn front(&mut self, upkeep: &[Upkeep]) -> Option<(Timestamp, Ref)> {
        while let Some(&(since, r)) = self.queue.front() {
            if live(upkeep, r).is_some_and(self.qualifies) {
                return Some((since, r));
            }
            self.queue.pop_front();
        }
        None
    }

    /// Removes the front reference; call after [`Candidates::front`] found it.
    fn pop(&mut self) -> Ref {
        self.queue.pop_front().expect("front was checked").1
    }

    fn retain(&mut self, upkeep: &[Upkeep]) {
        let qualifies = self.qualifies;
        self.queue.retain(|(_, r)| live(upkeep, *r).is_some_and(qualifies));
    }
}

/// A deadline and the entry filed under it.
type Filing = (Timestamp, Ref);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wheel::WHEEL_SECONDS;
    use crate::conntrack::entry::TcpCt;
    use crate::conntrack::state::TcpState;
    use crate::verdict::{CreatedBy, FrameRef};
    use std::net::Ipv4Addr;

    fn tuple(port: u16) -> Tuple {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        Tuple { src: a, dst: b, sport: port, dport: 80 }
    }

    fn entry(port: u16, expires_s: i64, assured: bool, state: TcpState) -> Entry {
        let mut tcp = TcpCt::zeroed();
        tcp.state = state;
        Entry {
            tuple: tuple(port),
            tcp,
            seen_reply: assured,
            assured,
            expires: Timestamp::from_secs(expires_s),
            created_frame: FrameRef::default(),
            created_ts: Timestamp(0),
            created_by: CreatedBy::Syn,
            last_change_frame: FrameRef::default(),
        }
    }

    #[test]
    fn flow_key_is_the_same_both_ways_and_tells_families_apart() {
        let t = tuple(40000);
        assert_eq!(FlowKey::of(&t), FlowKey::of(&t.reversed()));
        assert_ne!(FlowKey::of(&t), FlowKey::of(&tuple(40001)));
        let mapped = Tuple { src: "::a00:1".parse().unwrap(), dst: "::a00:2".parse().unwrap(), ..t };
        assert_ne!(FlowKey::of(&t), FlowKey::of(&mapped));
        // Swapping only the ports is another connection.
        let swapped = Tuple { sport: t.dport, dport: t.sport, ..t };
        assert_ne!(FlowKey::of(&t), FlowKey::of(&swapped));
    }

    #[test]
    fn a_tuples_hash_is_its_keys_both_ways() {
        let v4 = tuple(40000);
        let v6 = Tuple { src: "2001:db8::1".parse().unwrap(), dst: "2001:db8::2".parse().unwrap(), ..v4 };
        let mixed = Tuple { dst: "2001:db8::2".parse().unwrap(), ..v4 };
        let mapped = Tuple { src: "::a00:1".parse().unwrap(), dst: "::a00:2".parse().unwrap(), ..v4 };
        let looped = Tuple { dst: v4.src, dport: v4.sport, ..v4 };
        for t in [v4, v6, mixed, mapped, looped] {
            assert_eq!(FlowKey::hash_of(&t), FlowKey::of(&t).hash32(), "{t}");
            assert_eq!(FlowKey::hash_of(&t.reversed()), FlowKey::hash_of(&t), "{t}");
        }
        // Another port, the ports swapped, the same numbers in the other family: other hashes.
        let others = [tuple(40001), Tuple { sport: v4.dport, dport: v4.sport, ..v4 }, mapped];
        for other in others {
            assert_ne!(FlowKey::hash_of(&other), FlowKey::hash_of(&v4), "{other}");
        }
    }

    #[test]
    fn lookup_finds_both_directions_and_forgets_expired_entries() {
        let mut t = Table::default();
        t.insert(entry(1, 10, false, TcpState::SynSent));
        let now = Timestamp::from_secs(5);
        assert_eq!(t.lookup(&tuple(1), now).map(|(_, d)| d), Some(Dir::Original));
        assert_eq!(t.lookup(&tuple(1).reversed(), now).map(|(_, d)| d), Some(Dir::Reply));
        assert!(t.lookup(&tuple(1), Timestamp::from_secs(10)).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn lookup_matches_only_the_tuple_and_its_reverse() {
        let mut t = Table::default();
        t.insert(entry(1, 10, false, TcpState::SynSent));
        let now = Timestamp::from_secs(5);
        let swapped_ports = Tuple { sport: 80, dport: 1, ..tuple(1) };
        let swapped_addresses = Tuple { src: tuple(1).dst, dst: tuple(1).src, ..tuple(1) };
        assert!(t.lookup(&swapped_ports, now).is_none());
        assert!(t.lookup(&swapped_addresses, now).is_none());
        // A tuple that is its own reverse (same address and port at both ends) is ORIGINAL.
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let own_reverse = Tuple { src: a, dst: a, sport: 7, dport: 7 };
        t.insert(Entry { tuple: own_reverse, ..entry(7, 10, false, TcpState::SynSent) });
        assert_eq!(t.lookup(&own_reverse, now).map(|(_, d)| d), Some(Dir::Original));
    }

    #[test]
    fn sweep_refiles_refreshed_entries_and_follows_lowered_expiry() {
        let mut t = Table::default();
        t.insert(entry(1, 10, true, TcpState::Established));
        t.insert(entry(2, 10, true, TcpState::Established));
        // Entry 1 is refreshed to 100 s; entry 2's expiry is lowered to 5 s.
        let (h1, _) = t.lookup(&tuple(1), Timestamp(0)).unwrap();
        t.entry_mut(h1).expires = Timestamp::from_secs(100);
        t.touched(h1, false, Timestamp(0));
        let (h2, _) = t.lookup(&tuple(2), Timestamp(0)).unwrap();
        t.entry_mut(h2).expires = Timestamp::from_secs(5);
        t.touched(h2, false, Timestamp(0));
        t.sweep(Timestamp::from_secs(6));
        assert!(t.get(&tuple(2)).is_none() && t.get(&tuple(1)).is_some());
        t.sweep(Timestamp::from_secs(50));
        assert!(t.get(&tuple(1)).is_some());
        // The common sweep takes whole seconds; making room sweeps to the nanosecond.
        t.sweep(Timestamp::from_secs(100));
        assert!(t.get(&tuple(1)).is_some());
        assert!(t.make_room(1, Timestamp::from_secs(100)));
        assert!(t.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_round_of_the_wheel_and_jumps_in_time() {
        let mut t = Table::default();
        t.sweep(Timestamp(0));
        t.insert(entry(1, 432_000, true, TcpState::Established));
        t.insert(entry(2, WHEEL_SECONDS + 5, true, TcpState::Established));
        t.insert(entry(3, 30, true, TcpState::Established));
        let alive = |t: &Table| (1..=3).filter(|&p| t.get(&tuple(p)).is_some()).collect::<Vec<u16>>();
        for s in (0..WHEEL_SECONDS + 7).step_by(3) {
            t.sweep(Timestamp::from_secs(s));
            let expect: &[u16] = match s {
                ..=30 => &[1, 2, 3],
                _ if s <= WHEEL_SECONDS + 5 => &[1, 2],
                _ => &[1],
            };
            assert_eq!(alive(&t), expect, "at {s} s");
        }
        t.sweep(Timestamp::from_secs(1_000_000));
        assert!(t.is_empty() && t.deadlines.is_empty());
    }

    #[test]
    fn eviction_takes_the_entry_evictable_longest() {
        let mut t = Table::default();
        let at = Timestamp::from_secs;
        // (port, created, assured, begins closing at)
        let entries = [(1, 0, true, Some(10)), (2, 5, false, None), (3, 1, true, Some(3)), (4, 20, false, None)];
        for (port, created, assured, _) in entries {
            let mut e = entry(port, 1000, assured, TcpState::Established);
            e.created_ts = at(created);
            t.insert(e);
        }
        let mut closing: Vec<_> = entries.iter().filter_map(|&(p, _, _, c)| Some((c?, p))).collect();
        closing.sort();
        for (when, port) in closing {
            let (h, _) = t.lookup(&tuple(port), at(when)).unwrap();
            t.entry_mut(h).tcp.state = TcpState::TimeWait;
            t.touched(h, false, at(when));
        }
        let now = at(30);
        let order: Vec<u16> = (0..4)
            .map(|_| {
                let before: Vec<u16> = (1..=4).filter(|&p| t.get(&tuple(p)).is_some()).collect();
                assert!(t.make_room(t.len() as u32, now));
                let after: Vec<u16> = (1..=4).filter(|&p| t.get(&tuple(p)).is_some()).collect();
                *before.iter().find(|p| !after.contains(p)).unwrap()
            })
            .collect();
        // Closing since 3 s, unassured since 5 s, closing since 10 s, unassured since 20 s.
        assert_eq!(order, [3, 2, 1, 4]);
    }

    #[test]
    fn a_full_table_of_established_entries_evicts_nothing() {
        let mut t = Table::default();
        for port in 1..=3 {
            t.insert(entry(port, 1000, true, TcpState::Established));
        }
        assert!(!t.make_room(3, Timestamp(0)));
        assert!(t.make_room(4, Timestamp(0)), "below the limit");
        assert!(t.make_room(0, Timestamp(0)), "0 means no limit");
        // Expired entries make room first.
        assert!(t.make_room(3, Timestamp::from_secs(1000)));
    }

    /// An entry whose expiry is lowered and then raised back to the same instant, again and
    /// again (packets whose timestamps go back), while the clock moves on: each sweep of a
    /// lowered deadline files the entry under its expiry again, where the filing that went
    /// stale at the lowering looks current once more. Compacting right after each lowering,
    /// when all of those are stale, keeps them from piling up (without it: 20 000 filings).
    #[test]
    fn an_expiry_lowered_and_raised_back_again_and_again_keeps_few_filings() {
        let mut t = Table::default();
        let far = Timestamp::from_secs(400_000);
        t.insert(entry(1, 400_000, true, TcpState::Established));
        for s in 1..20_000 {
            let (h, _) = t.lookup(&tuple(1), Timestamp::from_secs(s)).unwrap();
            t.entry_mut(h).expires = Timestamp::from_secs(s + 1);
            t.touched(h, false, Timestamp::from_secs(s));
            t.entry_mut(h).expires = far;
            t.touched(h, false, Timestamp::from_secs(s));
            t.sweep(Timestamp::from_secs(s + 2));
        }
        assert_eq!(t.len(), 1);
        assert!(t.deadlines.len() <= 2 * t.len() + COMPACT_SLACK, "{} filings for one entry", t.deadlines.len());
    }

    #[test]
    fn lazy_structures_stay_proportional_to_the_table() {
        let mut t = Table::default();
        for i in 0..100_000u32 {
            let port = (i % 50) as u16;
            if let Some((h, _)) = t.lookup(&tuple(port), Timestamp(0)) {
                t.remove(h);
            }
            t.insert(entry(port, 1_000_000, false, TcpState::SynSent));
            let (h, _) = t.lookup(&tuple(port), Timestamp(0)).unwrap();
            t.entry_mut(h).tcp.state = TcpState::Close;
            t.entry_mut(h).expires = Timestamp::from_secs(500_000);
            t.touched(h, false, Timestamp(0));
        }
        assert_eq!(t.len(), 50);
        let bound = 2 * t.len() + COMPACT_SLACK;
        assert!(t.deadlines.len() <= bound && t.unassured.len() <= bound && t.closing.len() <= bound);
        assert!(t.slots.len() <= 51);
    }
}
