//! An index from hashes to slots: how a table that keeps its records in slots (conntrack's
//! entries, the reports' flows) finds a record by the hash of its key.
//!
//! Open addressing with linear probing over 8-byte buckets, each a slot and its key's 32-bit
//! hash, at most half full: a lookup starts at the bucket the hash's low bits pick and reads on
//! until it meets the record or an empty bucket, comparing hashes first, so that the caller's
//! own test (which reads the slot) runs about once per lookup. Removal shifts the records after
//! the hole back (no tombstones), so a lookup never walks past records that are gone.
//!
//! Every packet costs one lookup in every table that judges it. A general-purpose hash table
//! (`hashbrown`, used here before) hands the comparison to its probe loop as a `dyn FnMut`, a
//! call per probe; this index inlines it (docs/performance.md, session 8: ~15 instructions a
//! packet and table fewer).

/// What a bucket holds: a slot and the hash of its record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Indexed {
    slot: u32,
    hash: u32,
}

/// The slot an empty bucket holds: no table has 2^32 − 1 records.
const EMPTY: Indexed = Indexed { slot: u32::MAX, hash: 0 };

/// Buckets in an index that holds anything.
const MIN_BUCKETS: usize = 16;

#[derive(Debug, Default)]
pub struct SlotIndex {
    /// A power of two of them, or none.
    buckets: Vec<Indexed>,
    len: usize,
}

impl SlotIndex {
    pub fn new() -> SlotIndex {
        SlotIndex::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of the first record filed under `hash` that `is` accepts (given its slot).
    #[inline]
    pub fn find(&self, hash: u32, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, |b| b.hash == hash && is(b.slot)).map(|at| self.buckets[at].slot)
    }

    /// Files `slot` under `hash`. The caller makes sure its key is not indexed already.
    pub fn insert(&mut self, hash: u32, slot: u32) {
        assert_ne!(slot, EMPTY.slot, "slot numbers stay below 2^32 - 1");
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        self.place(Indexed { slot, hash });
        self.len += 1;
    }

    /// Takes out `slot`, filed under `hash`; false if it is not there.
    pub fn remove(&mut self, hash: u32, slot: u32) -> bool {
        let Some(mut hole) = self.position(hash, |b| b == Indexed { slot, hash }) else {
            return false;
        };
        let mask = self.buckets.len() - 1;
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let b = self.buckets[at];
            if b.slot == EMPTY.slot {
                break;
            }
            // A record may fill the hole if the hole lies between its own bucket and where it
            // is (cyclically): a lookup for it, starting at its own bucket, still reaches it.
            let home = b.hash as usize & mask;
            if (at.wrapping_sub(home) & mask) >= (at.wrapping_sub(hole) & mask) {
                self.buckets[hole] = b;
                hole = at;
            }
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// The bucket of the first record under `hash`'s run that `matches` accepts.
    #[inline]
    fn position(&self, hash: u32, mut matches: impl FnMut(Indexed) -> bool) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let b = self.buckets[at];
            if b.slot == EMPTY.slot {
                return None;
            }
            if matches(b) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// Puts a record in the first empty bucket from its own on (there is one: at most half
    /// are full).
    fn place(&mut self, record: Indexed) {
        let mask = self.buckets.len() - 1;
        let mut at = record.hash as usize & mask;
        while self.buckets[at].slot != EMPTY.slot {
            at = (at + 1) & mask;
        }
        self.buckets[at] = record;
    }

    /// Doubles the buckets and files every record again, from the hashes they hold.
    fn grow(&mut self) {
        let buckets = (self.buckets.len() * 2).max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        for record in old.into_iter().filter(|b| b.slot != EMPTY.slot) {
            self.place(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A tiny deterministic generator (xorshift), so that a failure replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Random inserts and removals against a map, with hashes drawn from a small set so that
    /// runs of colliding records form, grow across the end of the buckets, and break up.
    #[test]
    fn finds_what_a_map_holds_through_inserts_removals_and_growth() {
        for (seed, distinct_hashes) in [(1, 4), (2, 64), (3, 100_000), (4, 1 << 20)] {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
            let mut index = SlotIndex::new();
            let mut model: HashMap<u32, u32> = HashMap::new();
            let mut next_slot = 0u32;
            for step in 0..20_000 {
                if model.is_empty() || rng.below(100) < 55 {
                    // Hashes with the low bits all set crowd the last buckets and wrap around.
                    let hash = (rng.below(distinct_hashes) as u32) | if step % 3 == 0 { 0xf } else { 0 };
                    index.insert(hash, next_slot);
                    model.insert(next_slot, hash);
                    next_slot += 1;
                } else {
                    let slots: Vec<u32> = model.keys().copied().collect();
                    let slot = slots[rng.below(slots.len() as u64) as usize];
                    assert!(index.remove(model[&slot], slot), "seed {seed} step {step}: slot {slot} is indexed");
                    model.remove(&slot);
                }
                assert_eq!(index.len(), model.len());
                if step % 97 == 0 {
                    for (&slot, &hash) in &model {
                        assert_eq!(index.find(hash, |s| s == slot), Some(slot), "seed {seed} step {step}");
                    }
                    assert_eq!(index.find(0xdead_beef, |_| true), None, "an unused hash");
                }
            }
            assert!(index.buckets.len() >= 2 * index.len(), "at most half full");
        }
    }

    #[test]
    fn find_asks_only_about_records_with_the_hash() {
        let mut index = SlotIndex::new();
        for slot in 0..8 {
            // Two hashes with the same low bits share a run.
            index.insert(if slot % 2 == 0 { 5 } else { 5 + 1024 }, slot);
        }
        let mut asked = Vec::new();
        assert_eq!(index.find(5 + 1024, |s| { asked.push(s); s == 7 }), Some(7));
        assert_eq!(asked, [1, 3, 5, 7]);
        assert!(!index.remove(5, 1), "slot 1 is filed under another hash");
        assert!(index.remove(5 + 1024, 1));
        assert_eq!(index.find(5 + 1024, |s| s == 1), None);
    }

    #[test]
    fn an_empty_index_finds_nothing_and_removes_nothing() {
        let mut index = SlotIndex::new();
        assert_eq!(index.find(0, |_| true), None);
        assert!(!index.remove(0, 0));
        assert!(index.is_empty());
    }
}
