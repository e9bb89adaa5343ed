//! A timing wheel: deadlines filed by the second they fall in, taken out as capture time
//! passes. The conntrack table expires its entries with one, and the flow summaries end their
//! flows with another.

use crate::capture::Timestamp;

/// Seconds the timing wheel spans; a deadline further ahead waits in its bucket for later
/// rounds, and is looked at (and kept) once per round.
pub const WHEEL_SECONDS: i64 = 4096;
const NS_PER_SEC: i64 = 1_000_000_000;

/// Deadlines by the second they fall in: a hashed timing wheel of one-second buckets, each
/// holding the deadlines of every second congruent to it modulo [`WHEEL_SECONDS`].
///
/// Filing is a push; the seconds that have passed are taken out in order, one bucket each.
/// Capture time only matters in that order, so a capture that jumps ahead by hours costs at
/// most one pass over the buckets.
pub struct Wheel<R> {
    buckets: Vec<Vec<(Timestamp, R)>>,
    /// Every second before this one has been taken out (`None` before the first sweep). A
    /// deadline filed in a second already taken waits in this one.
    cursor: Option<i64>,
    /// Filings held.
    pub len: usize,
}

impl<R> Default for Wheel<R> {
    fn default() -> Wheel<R> {
        Wheel { buckets: (0..WHEEL_SECONDS).map(|_| Vec::new()).collect(), cursor: None, len: 0 }
    }
}

fn second_of(t: Timestamp) -> i64 {
    t.0.div_euclid(NS_PER_SEC)
}

impl<R> Wheel<R> {
    fn bucket(&mut self, second: i64) -> &mut Vec<(Timestamp, R)> {
        &mut self.buckets[second.rem_euclid(WHEEL_SECONDS) as usize]
    }

    pub fn file(&mut self, deadline: Timestamp, r: R) {
        let second = second_of(deadline).max(self.cursor.unwrap_or(i64::MIN));
        self.bucket(second).push((deadline, r));
        self.len += 1;
    }

    /// Whether [`Wheel::take_past_seconds`] has anything to do.
    #[inline]
    pub fn has_past_seconds(&self, now: Timestamp) -> bool {
        self.cursor.is_none_or(|cursor| second_of(now) > cursor)
    }

    /// Moves the filings of every second before `now`'s into `out`.
    pub fn take_past_seconds(&mut self, now: Timestamp, out: &mut Vec<(Timestamp, R)>) {
        let target = second_of(now);
        match self.cursor {
            Some(cursor) if target <= cursor => return,
            Some(cursor) if target - cursor < WHEEL_SECONDS => {
                for second in cursor..target {
                    self.take(second, Timestamp((second + 1) * NS_PER_SEC), out);
                }
            }
            // A jump of a whole round or more, or the first sweep: one pass over every bucket.
            _ => {
                for second in 0..WHEEL_SECONDS {
                    self.take(second, Timestamp(target * NS_PER_SEC), out);
                }
            }
        }
        self.cursor = Some(target);
    }

    /// Moves the filings of `now`'s own second that are due by `now` into `out`. (Sweeping
    /// whole seconds only keeps the common path from looking at this bucket on every packet.)
    pub fn take_this_second(&mut self, now: Timestamp, out: &mut Vec<(Timestamp, R)>) {
        self.take(second_of(now), Timestamp(now.0.saturating_add(1)), out);
    }

    /// Moves the filings of one bucket with a deadline before `until` into `out`; the others
    /// belong to later rounds.
    fn take(&mut self, second: i64, until: Timestamp, out: &mut Vec<(Timestamp, R)>) {
        let bucket = self.bucket(second);
        let before = out.len();
        let mut i = 0;
        while i < bucket.len() {
            if bucket[i].0 < until {
                out.push(bucket.swap_remove(i));
            } else {
                i += 1;
            }
        }
        // A burst once filed here must not pin its memory for the rest of the run.
        if bucket.capacity() > 64 && bucket.len() < bucket.capacity() / 4 {
            bucket.shrink_to(bucket.len() * 2);
        }
        self.len -= out.len() - before;
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&(Timestamp, R)) -> bool) {
        for bucket in &mut self.buckets {
            bucket.retain(&mut keep);
        }
        self.len = self.buckets.iter().map(Vec::len).sum();
    }
}
