//! The conntrack table: entries found by either of their tuples, expiring on capture time,
//! bounded by `nf_conntrack_max`.
//!
//! Every operation costs amortised O(1) per packet, whatever the size of the table:
//!
//! * one hash lookup finds an entry from either direction ([`FlowKey`] is direction-free);
//! * expired entries are swept in deadline order from a heap (an entry is filed once and
//!   re-filed only when its filed deadline passes, not on every refresh);
//! * eviction candidates wait in two queues (unassured entries by age, closing entries by when
//!   they began to close), so finding a victim never scans the table.
//!
//! The heap and the queues are lazy: they may hold references to entries that are gone, were
//! replaced, or no longer qualify. Such references are skipped when met, and each structure is
//! compacted when stale references make up more than half of it, so memory follows the number
//! of entries, never the number of packets or connections seen.

use super::entry::Entry;
use super::state::Dir;
use crate::capture::Timestamp;
use crate::decode::Tuple;
use foldhash::fast::FixedState;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// A connection's identity regardless of direction: its two endpoints in a fixed order.
///
/// Without NAT an entry's REPLY tuple is its ORIGINAL tuple reversed, so both directions of a
/// connection share one key, one hash and one lookup. (The kernel cannot have two entries whose
/// tuples are each other's reverse: the second would clash with the first on insertion.) The
/// engine shards by this key too, so both directions of a flow go to the same tracker thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// Lower endpoint's address (high and low 64 bits), higher endpoint's address, then both
    /// ports and the address family. IPv4 addresses are zero-extended; the family bit keeps
    /// `10.0.0.1` apart from `::a00:1`.
    words: [u64; 5],
}

impl FlowKey {
    pub fn of(t: &Tuple) -> FlowKey {
        fn wide(a: IpAddr) -> u128 {
            match a {
                IpAddr::V4(v4) => u32::from(v4).into(),
                IpAddr::V6(v6) => v6.into(),
            }
        }
        let src = (wide(t.src), t.sport);
        let dst = (wide(t.dst), t.dport);
        let (lo, hi) = if src <= dst { (src, dst) } else { (dst, src) };
        let v6 = t.src.is_ipv6() || t.dst.is_ipv6();
        FlowKey {
            words: [
                (lo.0 >> 64) as u64,
                lo.0 as u64,
                (hi.0 >> 64) as u64,
                hi.0 as u64,
                (u64::from(lo.1) << 32) | (u64::from(hi.1) << 16) | u64::from(v6),
            ],
        }
    }
}

impl Hash for FlowKey {
    // Five fixed-size words; the derived impl would hash the array as a length-prefixed slice.
    fn hash<H: Hasher>(&self, state: &mut H) {
        for w in self.words {
            state.write_u64(w);
        }
    }
}

/// Where an entry lives in [`Table::slots`]; valid until the table is changed.
pub type Handle = u32;

/// A reference to an entry that may outlive it: a slot and the serial of the entry that was in
/// it. A later entry in the same slot has another serial, so the reference is then stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ref {
    serial: u64,
    slot: Handle,
}

struct Slot {
    entry: Option<Entry>,
    serial: u64,
    /// The deadline this entry is filed under in [`Table::deadlines`]. Never later than
    /// `entry.expires`, so an entry is always swept by the time it has expired.
    filed: Timestamp,
}

/// All entries, live or expired but not yet swept.
#[derive(Default)]
pub struct Table {
    index: HashMap<FlowKey, Handle, FixedState>,
    slots: Vec<Slot>,
    /// Empty slots, reused before the vector grows.
    free: Vec<Handle>,
    next_serial: u64,
    /// Filed deadlines, earliest first.
    deadlines: BinaryHeap<Reverse<(Timestamp, Ref)>>,
    /// Entries in creation order; those not ASSURED are candidates for early drop.
    unassured: VecDeque<Ref>,
    /// Entries in the order they entered a closing state (FIN_WAIT … CLOSE): candidates for the
    /// garbage collector's eviction of ASSURED entries.
    closing: VecDeque<Ref>,
}

/// A lazy structure is compacted once it holds more than twice the number of entries plus this.
const COMPACT_SLACK: usize = 64;

impl Table {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Finds the live entry for a packet's tuple and the packet's direction relative to it.
    /// An expired entry is removed and not returned: for the kernel it no longer exists.
    pub fn lookup(&mut self, tuple: &Tuple, now: Timestamp) -> Option<(Handle, Dir)> {
        let h = *self.index.get(&FlowKey::of(tuple))?;
        let e = self.entry(h);
        if e.is_expired(now) {
            self.remove(h);
            return None;
        }
        // A tuple that is its own reverse (same address and port on both ends) is ORIGINAL.
        let dir = if e.tuple == *tuple { Dir::Original } else { Dir::Reply };
        Some((h, dir))
    }

    /// The entry for a tuple in either direction, expired or not, without changing anything.
    pub fn get(&self, tuple: &Tuple) -> Option<&Entry> {
        self.index.get(&FlowKey::of(tuple)).map(|&h| self.entry(h))
    }

    /// The entry behind a handle from [`Table::lookup`].
    pub fn entry(&self, h: Handle) -> &Entry {
        self.slots[h as usize].entry.as_ref().expect("handle of a live entry")
    }

    pub fn entry_mut(&mut self, h: Handle) -> &mut Entry {
        self.slots[h as usize].entry.as_mut().expect("handle of a live entry")
    }

    pub fn remove(&mut self, h: Handle) -> Option<Entry> {
        let entry = self.slots[h as usize].entry.take()?;
        self.index.remove(&FlowKey::of(&entry.tuple));
        self.free.push(h);
        Some(entry)
    }

    /// Confirms a new entry (the kernel's `nf_conntrack_confirm`). Call [`Table::make_room`]
    /// first.
    pub fn insert(&mut self, entry: Entry) {
        let key = FlowKey::of(&entry.tuple);
        let serial = self.next_serial;
        self.next_serial += 1;
        let expires = entry.expires;
        let slot = Slot { entry: Some(entry), serial, filed: expires };
        let h = match self.free.pop() {
            Some(h) => {
                self.slots[h as usize] = slot;
                h
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as Handle
            }
        };
        if let Some(old) = self.index.insert(key, h) {
            // Callers look the tuple up first, so there is none; never leave a slot orphaned.
            self.slots[old as usize].entry = None;
            self.free.push(old);
        }
        let r = Ref { serial, slot: h };
        self.deadlines.push(Reverse((expires, r)));
        self.unassured.push_back(r);
        self.compact();
    }

    /// Tells the table that the handler has run on an entry: it may have a new expiry (earlier
    /// than filed, e.g. a lowered timeout) or have begun to close.
    pub fn touched(&mut self, h: Handle, was_closing: bool) {
        let slot = &mut self.slots[h as usize];
        let e = slot.entry.as_ref().expect("handle of a live entry");
        let (expires, closing_now) = (e.expires, e.tcp.state.is_closing());
        let r = Ref { serial: slot.serial, slot: h };
        if expires < slot.filed {
            slot.filed = expires;
            self.deadlines.push(Reverse((expires, r)));
        }
        if closing_now && !was_closing {
            self.closing.push_back(r);
        }
        if self.deadlines.len() > self.compact_limit() || self.closing.len() > self.compact_limit() {
            self.compact();
        }
    }

    /// Removes every entry that has expired by `now`. Each entry is met here about once per
    /// timeout it outlives, so the cost per packet is amortised O(1).
    pub fn sweep(&mut self, now: Timestamp) {
        while let Some(&Reverse((deadline, r))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let Some(slot) = self.live(r) else { continue };
            if slot.filed != deadline {
                continue; // re-filed since; the later filing stands
            }
            let expires = slot.entry.as_ref().expect("live").expires;
            if expires <= now {
                self.remove(r.slot);
            } else {
                // Refreshed since it was filed: file it again under its current expiry.
                self.slots[r.slot as usize].filed = expires;
                self.deadlines.push(Reverse((expires, r)));
            }
        }
    }

    /// Makes room for one more entry when the table holds `limit` (0: no limit, as in the
    /// kernel). Expired entries are gone already ([`Table::sweep`]); then, as the kernel's
    /// `early_drop` does, the oldest entry that is not ASSURED is evicted; failing that, as the
    /// kernel's garbage collector does once the table is over 95 % full, the ASSURED entry that
    /// has been closing longest (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE). Returns false
    /// if nothing could be evicted: the kernel then drops the packet ("table full").
    pub fn make_room(&mut self, limit: u32, now: Timestamp) -> bool {
        if limit == 0 || self.len() < limit as usize {
            return true;
        }
        self.sweep(now);
        if self.len() < limit as usize {
            return true;
        }
        let victim = self.pop_candidate(|t| &mut t.unassured, |e| !e.assured)
            .or_else(|| self.pop_candidate(|t| &mut t.closing, |e| e.tcp.state.is_closing()));
        match victim {
            Some(h) => {
                self.remove(h);
                true
            }
            None => false,
        }
    }

    /// Pops references off the front of a candidate queue until one names a live entry that
    /// still `qualifies`. The others are dropped for good: an ASSURED entry never becomes
    /// unassured, and an entry that begins to close again is queued again.
    fn pop_candidate(
        &mut self,
        queue: fn(&mut Table) -> &mut VecDeque<Ref>,
        qualifies: fn(&Entry) -> bool,
    ) -> Option<Handle> {
        while let Some(r) = queue(self).pop_front() {
            if let Some(slot) = self.live(r)
                && qualifies(slot.entry.as_ref().expect("live"))
            {
                return Some(r.slot);
            }
        }
        None
    }

    /// The slot a reference names, if its entry is still there.
    fn live(&self, r: Ref) -> Option<&Slot> {
        self.slots.get(r.slot as usize).filter(|s| s.serial == r.serial && s.entry.is_some())
    }

    fn compact_limit(&self) -> usize {
        2 * self.len() + COMPACT_SLACK
    }

    /// Drops stale references from whichever lazy structure has grown past its limit. Each
    /// compaction removes at least half of what it scans, so its cost is amortised over the
    /// insertions and updates that made those references stale.
    fn compact(&mut self) {
        let limit = self.compact_limit();
        let slots = &self.slots;
        let live = |r: &Ref| slots.get(r.slot as usize).is_some_and(|s| s.serial == r.serial && s.entry.is_some());
        let entry = |r: &Ref| slots[r.slot as usize].entry.as_ref().expect("live");
        if self.deadlines.len() > limit {
            self.deadlines.retain(|Reverse((d, r))| live(r) && slots[r.slot as usize].filed == *d);
        }
        if self.unassured.len() > limit {
            self.unassured.retain(|r| live(r) && !entry(r).assured);
        }
        if self.closing.len() > limit {
            self.closing.retain(|r| live(r) && entry(r).tcp.state.is_closing());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn sweep_refiles_refreshed_entries_and_follows_lowered_expiry() {
        let mut t = Table::default();
        t.insert(entry(1, 10, true, TcpState::Established));
        t.insert(entry(2, 10, true, TcpState::Established));
        // Entry 1 is refreshed to 100 s; entry 2's expiry is lowered to 5 s.
        let (h1, _) = t.lookup(&tuple(1), Timestamp(0)).unwrap();
        t.entry_mut(h1).expires = Timestamp::from_secs(100);
        t.touched(h1, false);
        let (h2, _) = t.lookup(&tuple(2), Timestamp(0)).unwrap();
        t.entry_mut(h2).expires = Timestamp::from_secs(5);
        t.touched(h2, false);
        t.sweep(Timestamp::from_secs(6));
        assert!(t.get(&tuple(2)).is_none() && t.get(&tuple(1)).is_some());
        t.sweep(Timestamp::from_secs(50));
        assert!(t.get(&tuple(1)).is_some());
        t.sweep(Timestamp::from_secs(100));
        assert!(t.is_empty());
    }

    #[test]
    fn eviction_takes_the_oldest_unassured_then_the_longest_closing() {
        let mut t = Table::default();
        let now = Timestamp(0);
        t.insert(entry(1, 1000, true, TcpState::Established));
        t.insert(entry(2, 1000, false, TcpState::SynSent));
        t.insert(entry(3, 1000, true, TcpState::Established));
        t.insert(entry(4, 1000, false, TcpState::SynSent));
        // Entry 3 starts closing before entry 1.
        for port in [3, 1] {
            let (h, _) = t.lookup(&tuple(port), now).unwrap();
            t.entry_mut(h).tcp.state = TcpState::TimeWait;
            t.touched(h, false);
        }
        let order: Vec<u16> = (0..4)
            .map(|_| {
                let before: Vec<u16> = (1..=4).filter(|&p| t.get(&tuple(p)).is_some()).collect();
                assert!(t.make_room(t.len() as u32, now));
                let after: Vec<u16> = (1..=4).filter(|&p| t.get(&tuple(p)).is_some()).collect();
                *before.iter().find(|p| !after.contains(p)).unwrap()
            })
            .collect();
        assert_eq!(order, [2, 4, 3, 1]);
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
            t.touched(h, false);
        }
        assert_eq!(t.len(), 50);
        let bound = 2 * t.len() + COMPACT_SLACK;
        assert!(t.deadlines.len() <= bound && t.unassured.len() <= bound && t.closing.len() <= bound);
        assert!(t.slots.len() <= 51);
    }
}
