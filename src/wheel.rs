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
    /// The first instant of the second after the cursor's, from which on there are seconds to
    /// take (`i64::MIN` before the first sweep): asked on every packet, a comparison where
    /// working out the second of `now` was a division.
    next_second: i64,
    /// Filings held.
    len: usize,
}

impl<R> Default for Wheel<R> {
    fn default() -> Wheel<R> {
        Wheel { buckets: (0..WHEEL_SECONDS).map(|_| Vec::new()).collect(), cursor: None, next_second: i64::MIN, len: 0 }
    }
}

fn second_of(t: Timestamp) -> i64 {
    t.0.div_euclid(NS_PER_SEC)
}

/// Whether the second `t` falls in is over by `now`: the grain at which a wheel is swept
/// ([`Wheel::take_past_seconds`] takes the filings of exactly those seconds).
pub fn second_is_over(t: Timestamp, now: Timestamp) -> bool {
    second_of(t) < second_of(now)
}

impl<R> Wheel<R> {
    /// Filings held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

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
        now.0 >= self.next_second
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
        // Saturated at the end of time, where it may say yes once too often (the last second
        // has no successor); taking then finds nothing to do.
        self.next_second = (target + 1).saturating_mul(NS_PER_SEC);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, ms: i64) -> Timestamp {
        Timestamp(secs * NS_PER_SEC + ms * 1_000_000)
    }

    #[test]
    fn past_seconds_come_out_in_order_and_later_rounds_wait() {
        let mut w = Wheel::default();
        w.file(at(10, 500), 'a');
        w.file(at(11, 0), 'b');
        w.file(at(10 + WHEEL_SECONDS, 0), 'c'); // same bucket as 'a', a round later
        w.file(at(12, 0), 'd');
        assert_eq!(w.len(), 4);
        let mut out = Vec::new();
        // nothing before second 10 … then the whole of second 10 and 11 once 12 has begun
        w.take_past_seconds(at(10, 900), &mut out);
        assert!(out.is_empty());
        w.take_past_seconds(at(12, 1), &mut out);
        let taken: Vec<char> = out.iter().map(|f| f.1).collect();
        assert_eq!(taken, ['a', 'b']);
        assert!(!w.has_past_seconds(at(12, 999)));
        // a deadline filed in a second already taken waits in the current one, and comes out
        // with the current second's deadlines that are due
        w.file(at(5, 0), 'e');
        w.file(at(12, 500), 'f');
        out.clear();
        w.take_this_second(at(12, 2), &mut out);
        assert_eq!(out.iter().map(|f| f.1).collect::<Vec<_>>(), ['d', 'e']);
        // a jump of more than a round: one pass over every bucket takes all that is due
        out.clear();
        w.take_past_seconds(at(20 + WHEEL_SECONDS, 0), &mut out);
        let mut taken: Vec<char> = out.iter().map(|f| f.1).collect();
        taken.sort();
        assert_eq!(taken, ['c', 'f']);
        assert!(w.is_empty());
    }

    #[test]
    fn past_seconds_are_there_exactly_when_a_second_has_passed() {
        let mut w: Wheel<u32> = Wheel::default();
        let mut out = Vec::new();
        assert!(w.has_past_seconds(Timestamp(i64::MIN)), "before the first sweep");
        for cursor in [-3 * NS_PER_SEC - 1, -1, 0, 7 * NS_PER_SEC + 999_999_999, 8 * NS_PER_SEC] {
            w.take_past_seconds(Timestamp(cursor), &mut out);
            let swept = second_of(Timestamp(cursor));
            for delta in [-NS_PER_SEC, -1, 0, 1, NS_PER_SEC - 1, NS_PER_SEC, 2 * NS_PER_SEC] {
                let now = Timestamp(cursor + delta);
                assert_eq!(w.has_past_seconds(now), second_of(now) > swept, "swept to {cursor}, now {}", now.0);
            }
        }
        // The last second of time has none after it.
        w.take_past_seconds(Timestamp(i64::MAX - 1), &mut out);
        assert!(!w.has_past_seconds(Timestamp(i64::MAX - 1)));
    }

    #[test]
    fn retain_keeps_the_count() {
        let mut w = Wheel::default();
        for s in 0..10 {
            w.file(at(s, 0), s);
        }
        w.retain(|f| f.1 % 2 == 0);
        assert_eq!(w.len(), 5);
    }
}
