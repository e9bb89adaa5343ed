//! The conntrack table: entries found by either of their tuples, expiring on capture time,
//! bounded by `nf_conntrack_max`.

use super::entry::Entry;
use super::state::Dir;
use crate::capture::Timestamp;
use crate::decode::Tuple;
use foldhash::fast::FixedState;
use std::collections::{HashMap, HashSet, VecDeque};

/// All live entries. Without NAT an entry's REPLY tuple is its ORIGINAL tuple reversed, so one
/// map keyed by the ORIGINAL tuple answers both lookups.
#[derive(Default)]
pub struct Table {
    entries: HashMap<Tuple, Entry, FixedState>,
    /// ORIGINAL tuples in creation order: candidates for early drop and for the expiry sweep.
    /// May hold tuples whose entry is gone or was replaced; those are skipped when met.
    by_age: VecDeque<Tuple>,
    /// Capture time of the last full sweep of expired entries.
    last_sweep: Timestamp,
    /// No entry expires before this: a lower bound on every entry's `expires`, so that a full
    /// table is swept only when the sweep can free something (see [`Table::make_room`]).
    no_expiry_before: Timestamp,
    /// The shortest timeout the tracker can give an entry it updates (the smallest timeout
    /// sysctl), which keeps `no_expiry_before` useful while packets update entries.
    min_timeout_ns: i64,
}

/// How often (in capture time) expired entries are swept out, so memory follows the number of
/// live connections rather than the number of connections ever seen.
const SWEEP_INTERVAL_NS: i64 = 10 * 1_000_000_000;

impl Table {
    /// An empty table whose entries, when a packet updates them at time `t`, get an expiry of
    /// at least `t + min_timeout_ns` (as every timeout comes from the timeout sysctls).
    pub fn with_min_timeout(min_timeout_ns: i64) -> Table {
        Table { min_timeout_ns: min_timeout_ns.max(0), ..Table::default() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the live entry for a packet's tuple and the packet's direction relative to it.
    /// An expired entry is removed and not returned: for the kernel it no longer exists.
    pub fn lookup(&mut self, tuple: &Tuple, now: Timestamp) -> Option<(Tuple, Dir)> {
        let found = if self.entries.contains_key(tuple) {
            (*tuple, Dir::Original)
        } else {
            let reversed = tuple.reversed();
            if !self.entries.contains_key(&reversed) {
                return None;
            }
            (reversed, Dir::Reply)
        };
        if self.entries[&found.0].is_expired(now) {
            self.entries.remove(&found.0);
            return None;
        }
        // The caller may now update the entry, giving it an expiry of at least this.
        let earliest_update = Timestamp(now.0.saturating_add(self.min_timeout_ns));
        self.no_expiry_before = self.no_expiry_before.min(earliest_update);
        Some(found)
    }

    pub fn get(&self, key: &Tuple) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &Tuple) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    pub fn remove(&mut self, key: &Tuple) -> Option<Entry> {
        self.entries.remove(key)
    }

    /// Confirms a new entry (the kernel's `nf_conntrack_confirm`).
    pub fn insert(&mut self, entry: Entry) {
        self.no_expiry_before = self.no_expiry_before.min(entry.expires);
        // The queue keeps the tuples of removed entries until a sweep, and sweeps follow capture
        // time: with the clock standing still (`--timing back-to-back`, or a capture whose
        // timestamps do not move) a churn of short-lived entries (SYN then RST, reopened tuples)
        // grew it with every packet. Compacting it at twice the table keeps it O(live entries),
        // at an amortised O(1) per insert.
        if self.by_age.len() >= 2 * self.entries.len() + 1024 {
            self.compact_age_queue();
        }
        self.by_age.push_back(entry.tuple);
        self.entries.insert(entry.tuple, entry);
    }

    /// Makes room for one more entry if the table is at `max`, as the kernel's `early_drop` does:
    /// only an entry that is not ASSURED may be evicted. Returns false if nothing could be.
    ///
    /// The kernel scans a few hash buckets near the new tuple; offline we take the oldest
    /// unassured entry, which is the one the kernel's GC would also pick first.
    pub fn make_room(&mut self, max: u32, now: Timestamp) -> bool {
        if (self.entries.len() as u64) < max as u64 {
            return true;
        }
        // A sweep visits the whole table. Once the table is full, every packet of a new tuple
        // comes here, so sweeping unconditionally made a flood of new tuples (a SYN flood, a
        // scan) cost O(nf_conntrack_max) per packet: minutes for a million SYNs. Skip it when no
        // entry can have expired yet; the outcome is the same.
        if now >= self.no_expiry_before {
            self.sweep(now);
            if (self.entries.len() as u64) < max as u64 {
                return true;
            }
        } else {
            debug_assert!(
                self.entries.len() > 4096 || self.entries.values().all(|e| !e.is_expired(now)),
                "no_expiry_before is not a lower bound of the entries' expiry"
            );
        }
        // The victim is the oldest entry that is not ASSURED. The tuples in front of it belong
        // to entries that are gone, or ASSURED, which an entry never stops being: none of them
        // can ever be chosen, so they leave the queue for good. (Searching from the front on
        // every call cost O(table) per packet once a full table held mostly ASSURED entries.)
        while let Some(t) = self.by_age.pop_front() {
            if self.entries.get(&t).is_some_and(|e| !e.assured) {
                self.entries.remove(&t);
                return true;
            }
        }
        false
    }

    /// Drops expired entries, at most once per [`SWEEP_INTERVAL_NS`] of capture time.
    pub fn maybe_sweep(&mut self, now: Timestamp) {
        if now.0.saturating_sub(self.last_sweep.0) >= SWEEP_INTERVAL_NS {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        self.last_sweep = now;
        let mut earliest = Timestamp(i64::MAX);
        self.entries.retain(|_, e| {
            let live = !e.is_expired(now);
            if live {
                earliest = earliest.min(e.expires);
            }
            live
        });
        self.no_expiry_before = earliest;
        let entries = &self.entries;
        // Keep the age queue in step: drop tuples whose entry is gone. A tuple whose entry was
        // replaced by a newer one keeps its place; at worst it is evicted a little early.
        self.by_age.retain(|t| entries.contains_key(t));
    }

    /// Like the sweep's pass over the age queue, and also drops later copies of a tuple queued
    /// more than once (its entry was removed and created again), so that afterwards the queue is
    /// no longer than the table even when the same tuples churn.
    fn compact_age_queue(&mut self) {
        let entries = &self.entries;
        let mut seen = HashSet::with_capacity_and_hasher(entries.len(), FixedState::default());
        self.by_age.retain(|t| entries.contains_key(t) && seen.insert(*t));
    }

    /// Tuples in the age queue (for tests of its bound).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.by_age.len()
    }
}
