//! The conntrack table: entries found by either of their tuples, expiring on capture time,
//! bounded by `nf_conntrack_max`.

use super::entry::Entry;
use super::state::Dir;
use crate::capture::Timestamp;
use crate::decode::Tuple;
use foldhash::fast::FixedState;
use std::collections::{HashMap, VecDeque};

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
}

/// How often (in capture time) expired entries are swept out, so memory follows the number of
/// live connections rather than the number of connections ever seen.
const SWEEP_INTERVAL_NS: i64 = 10 * 1_000_000_000;

impl Table {
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
        self.sweep(now);
        if (self.entries.len() as u64) < max as u64 {
            return true;
        }
        let victim = self
            .by_age
            .iter()
            .position(|t| self.entries.get(t).is_some_and(|e| !e.assured));
        match victim {
            Some(i) => {
                let t = self.by_age.remove(i).expect("index from position");
                self.entries.remove(&t);
                true
            }
            None => false,
        }
    }

    /// Drops expired entries, at most once per [`SWEEP_INTERVAL_NS`] of capture time.
    pub fn maybe_sweep(&mut self, now: Timestamp) {
        if now.0.saturating_sub(self.last_sweep.0) >= SWEEP_INTERVAL_NS {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        self.last_sweep = now;
        self.entries.retain(|_, e| !e.is_expired(now));
        let entries = &self.entries;
        // Keep the age queue in step: drop tuples whose entry is gone. A tuple whose entry was
        // replaced by a newer one keeps its place; at worst it is evicted a little early.
        self.by_age.retain(|t| entries.contains_key(t));
    }
}
