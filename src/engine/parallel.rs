//! The pipeline on several threads.
//!
//! ```text
//!  calling thread                        ┌──► tracker 0 ──┐
//!  reader: read, decode, ── batch ───────┼──► tracker 1 ──┤ verdicts
//!  vantage, clocks                       └──► tracker … ──┤
//!  merger: frame order ──► sink  ◄────────────────────────┘
//! ```
//!
//! * The calling thread **reads** and decodes every frame in capture order (defragmentation, the
//!   vantage decision and the clocks are in-order state), copies its bytes into a batch, and
//!   notes which tracker owns it: by the hash of the frame's [`crate::conntrack::FlowKey`],
//!   the same for both directions, so each flow's packets all go to one tracker, in capture
//!   order.
//! * Each **tracker** thread owns a [`Conntrack`](crate::conntrack::Conntrack) shard. It
//!   receives every batch (shared, read only), judges the frames routed to it, and sends back
//!   the verdicts of those the sink is shown, by position, and the counts of the quiet ones
//!   ([`super::Sink::quiet`]).
//! * Between batches, the calling thread also **merges** ([`InFlight`]; the sink need not be
//!   `Send`): once every tracker's verdicts on its oldest batch are in, it hands the sink the
//!   shown frames and the items no tracker judged, merged by position; the quiet frames between
//!   them go over as runs, without reading them. Batches are whole rounds of the capture, so
//!   this is a reorder buffer keyed by frame sequence, [`QUEUE_DEPTH`] batches deep.
//!
//! Reading and merging share a thread because on two cores a fourth thread cost more than it
//! gave: a merger thread woke for every batch and spent about half of its time being scheduled
//! (docs/performance.md, session 6).
//!
//! Spent batches and verdict vectors are reused, so a run allocates a few buffers at its start
//! and none per frame. At most [`QUEUE_DEPTH`] batches are in flight: a slow sink or tracker
//! slows the reading instead of filling memory.

use super::tally::QuietCounts;
use super::{FrameMeta, Front, Judged, Judgement, Judges, Prepared, ReadOutcome, Report, Settings};
use crate::capture::{CaptureError, CaptureSet, Frame, Timestamp};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::thread;

/// A batch is sent when it holds this many frames …
const BATCH_FRAMES: usize = 1024;
/// … or this many captured bytes (it may exceed it by one frame).
const BATCH_BYTES: usize = 256 << 10;
/// Batches in flight. With more threads than cores, the scheduler leaves a runnable tracker
/// without a core for a time slice (milliseconds) while the others run; the calling thread must
/// be able to go on reading for that long, or it waits for that tracker's verdicts while the
/// other tracker, with nothing to judge, leaves a core idle. At ~120 µs of reading a batch on
/// short flows, 8 batches lasted 1 ms: the calling thread waited ~250 ms in a 1.2 s run, and
/// 32 made two threads ~10 % faster (docs/performance.md, session 10). Batches stay small so
/// that each one's frames are still in the CPU's caches when a tracker reads them: with
/// 4096-frame batches the pipeline used more CPU time for the same work.
const QUEUE_DEPTH: usize = 32;

/// A tracker's verdicts on the frames of one batch it owns.
#[derive(Default)]
struct Verdicts {
    /// The frames the sink is shown, by their position in the batch, in order.
    shown: Vec<(u32, Judged)>,
    /// The others are quiet ([`super::Sink::quiet`]): only their counts cross threads, and the
    /// merger does not look at them one by one.
    quiet: QuietCounts,
}

impl Verdicts {
    fn clear(&mut self) {
        self.shown.clear();
        self.quiet.clear();
    }
}

/// A run of consecutive frames (and input errors) of the capture.
struct Batch {
    /// The captured bytes of every frame, back to back (for [`super::Observation::data`]).
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// For each tracker, the positions in `items` of the frames it owns, in capture order.
    routes: Vec<Vec<u32>>,
    /// The positions of the items no tracker judges (input errors, frames conntrack never
    /// sees), which the merger hands over itself.
    unrouted: Vec<u32>,
    /// The input errors, which [`Item::Error`] refers to.
    errors: Vec<CaptureError>,
}

/// A frame or an input error. Plain data, so that a spent batch is cleared without visiting
/// its items: the error, which owns its message, is kept apart.
enum Item {
    Frame { meta: FrameMeta, data: Range<usize>, prepared: Prepared },
    /// The position of the error in [`Batch::errors`].
    Error(u32),
}

impl Batch {
    fn new(trackers: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(BATCH_BYTES + (64 << 10)),
            items: Vec::with_capacity(BATCH_FRAMES),
            routes: vec![Vec::with_capacity(BATCH_FRAMES); trackers],
            unrouted: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
        self.routes.iter_mut().for_each(Vec::clear);
        self.unrouted.clear();
        self.errors.clear();
    }

    /// The capture's conntrack clock after the frame at `at`.
    fn clock_after(&self, at: usize) -> Timestamp {
        match &self.items[at] {
            Item::Frame { prepared, .. } => prepared.clock,
            Item::Error(_) => unreachable!("only frames are quiet"),
        }
    }

    fn is_full(&self) -> bool {
        self.items.len() >= BATCH_FRAMES || self.bytes.len() >= BATCH_BYTES
    }

    /// Adds the next frame of the capture, prepared for conntrack, and notes which tracker owns
    /// it.
    fn push_frame(&mut self, frame: &Frame<'_>, front: &mut Front, frame_bytes: bool) {
        let at = self.items.len() as u32;
        let prepared = front.prepare(frame);
        match tracker_of(&prepared, self.routes.len()) {
            Some(t) => self.routes[t as usize].push(at),
            None => self.unrouted.push(at),
        }
        let start = self.bytes.len();
        if frame_bytes {
            self.bytes.extend_from_slice(frame.data);
        }
        let data = start..self.bytes.len();
        self.items.push(Item::Frame { meta: FrameMeta::of(frame), data, prepared });
    }

    /// Adds an input error, which the merger hands over in its place.
    fn push_error(&mut self, e: CaptureError) {
        self.unrouted.push(self.items.len() as u32);
        self.items.push(Item::Error(self.errors.len() as u32));
        self.errors.push(e);
    }
}

/// Which tracker owns a frame conntrack sees.
fn tracker_of(p: &Prepared, trackers: usize) -> Option<u32> {
    // A datagram without a tuple touches no entry; any tracker can judge it.
    p.tuple().map(|t| t.map_or(0, |_| shard_of(p.key_hash, trackers)))
}

/// The tracker of a key's hash ([`crate::conntrack::FlowKey::hash32`], the tables' own). Its
/// bits are mixed by an odd multiplier first: keys that shared some of the hash's bits would
/// crowd their shard's index, whose low bits pick a bucket and whose top seven bits are the tag
/// compared before a key. The product's top bits, which depend on all of the hash's, are
/// scaled to 0..trackers.
fn shard_of(hash: u32, trackers: usize) -> u32 {
    let mixed = hash.wrapping_mul(0x9e37_79b9);
    ((u64::from(mixed) * trackers as u64) >> 32) as u32
}

/// Runs the pipeline with `settings.threads` trackers; returns once every frame has been
/// handed to `report` (or the sink failed).
pub(super) fn run(mut captures: CaptureSet, mut front: Front, settings: &Settings, report: &mut Report<'_>) -> io::Result<ReadOutcome> {
    let trackers = settings.threads;
    thread::scope(|scope| {
        let mut to_trackers = Vec::with_capacity(trackers);
        let mut from_trackers = Vec::with_capacity(trackers);
        let mut spare_verdicts = Vec::with_capacity(trackers);
        for shard in 0..trackers {
            let (to_tracker, batches) = bounded::<Arc<Batch>>(QUEUE_DEPTH);
            let (verdicts, from_tracker) = bounded::<Verdicts>(QUEUE_DEPTH);
            let (spare, spares) = bounded::<Verdicts>(QUEUE_DEPTH + 2);
            let judges = Judges::new(settings, trackers, report.quiet_allowed());
            thread::Builder::new()
                .name(format!("ctreplay-track{shard}"))
                .spawn_scoped(scope, move || track(shard, judges, batches, verdicts, spares))?;
            to_trackers.push(to_tracker);
            from_trackers.push(from_tracker);
            spare_verdicts.push(spare);
        }
        let mut in_flight = InFlight::new(from_trackers, spare_verdicts);
        let mut batch = Batch::new(trackers);
        loop {
            // The frame is borrowed where the call left it, as in the one-thread loop.
            match captures.next_frame() {
                None => break,
                Some(Ok(ref frame)) => batch.push_frame(frame, &mut front, settings.frame_bytes),
                Some(Err(e)) => batch.push_error(e),
            }
            if batch.is_full() {
                let next = in_flight.spare_batch();
                in_flight.send(std::mem::replace(&mut batch, next), &to_trackers, report)?;
            }
        }
        if !batch.items.is_empty() {
            in_flight.send(batch, &to_trackers, report)?;
        }
        // The trackers finish the batches they hold, then see the end of their channels.
        drop(to_trackers);
        while in_flight.merge_oldest(report, Wait::Block)? {}
        Ok(front.outcome(&captures))
    })
}

/// Whether [`InFlight::merge_oldest`] waits for the trackers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    IfReady,
}

/// The batches sent to the trackers and not merged yet, oldest first, on the calling thread,
/// which both reads and merges.
///
/// At most [`QUEUE_DEPTH`] batches are in flight: before sending another, the oldest is merged
/// (waiting for its verdicts if need be). So no tracker's queue of batches or of verdicts is
/// ever full, and neither the trackers nor the calling thread can block each other for good.
struct InFlight {
    batches: VecDeque<Arc<Batch>>,
    /// The verdicts on the oldest batch received so far: from the first trackers, in order.
    received: Vec<Verdicts>,
    from_trackers: Vec<Receiver<Verdicts>>,
    spare_verdicts: Vec<Sender<Verdicts>>,
    /// Merged batches, to be filled again.
    spare_batches: Vec<Batch>,
}

impl InFlight {
    fn new(from_trackers: Vec<Receiver<Verdicts>>, spare_verdicts: Vec<Sender<Verdicts>>) -> InFlight {
        InFlight {
            batches: VecDeque::with_capacity(QUEUE_DEPTH),
            received: Vec::with_capacity(from_trackers.len()),
            from_trackers,
            spare_verdicts,
            spare_batches: Vec::new(),
        }
    }

    fn spare_batch(&mut self) -> Batch {
        match self.spare_batches.pop() {
            Some(mut batch) => {
                batch.clear();
                batch
            }
            None => Batch::new(self.from_trackers.len()),
        }
    }

    /// Sends a batch to every tracker, after making room for it, and merges what is ready.
    fn send(&mut self, batch: Batch, to_trackers: &[Sender<Arc<Batch>>], report: &mut Report<'_>) -> io::Result<()> {
        if self.batches.len() == QUEUE_DEPTH {
            self.merge_oldest(report, Wait::Block)?;
        }
        let shared = Arc::new(batch);
        for to in to_trackers {
            // A tracker only stops early when its thread panicked; the scope reports that.
            let _ = to.send(Arc::clone(&shared));
        }
        self.batches.push_back(shared);
        while self.merge_oldest(report, Wait::IfReady)? {}
        Ok(())
    }

    /// Hands the oldest batch to the report once every tracker's verdicts on it are in.
    /// Returns whether it did; with [`Wait::Block`], `false` only when none is left.
    fn merge_oldest(&mut self, report: &mut Report<'_>, wait: Wait) -> io::Result<bool> {
        if self.batches.is_empty() {
            return Ok(false);
        }
        while let Some(from) = self.from_trackers.get(self.received.len()) {
            let verdicts = match wait {
                Wait::Block => from.recv().ok(),
                Wait::IfReady => from.try_recv().ok(),
            };
            match verdicts {
                Some(v) => self.received.push(v),
                None => {
                    if wait == Wait::Block {
                        // The tracker's thread panicked; the scope reports that.
                        self.batches.clear();
                    }
                    return Ok(false);
                }
            }
        }
        let batch = self.batches.pop_front().expect("checked above");
        hand_over(report, &batch, &mut self.received)?;
        for (mut v, spare) in self.received.drain(..).zip(&self.spare_verdicts) {
            v.clear();
            let _ = spare.try_send(v);
        }
        if let Ok(batch) = Arc::try_unwrap(batch) {
            self.spare_batches.push(batch);
        }
        Ok(true)
    }
}

/// A tracker thread: judges its frames of every batch, in order.
fn track(
    shard: usize,
    mut judges: Judges,
    batches: Receiver<Arc<Batch>>,
    verdicts: Sender<Verdicts>,
    spares: Receiver<Verdicts>,
) {
    for batch in batches {
        let mut out = spares.try_recv().unwrap_or_default();
        for &at in &batch.routes[shard] {
            let Item::Frame { meta, prepared, .. } = &batch.items[at as usize] else {
                unreachable!("only frames are routed")
            };
            match judges.judge(prepared, *meta) {
                Judgement::Quiet { ct_state, created } => out.quiet.add(meta.linktype, ct_state, created),
                Judgement::Shown(judged) => out.shown.push((at, judged)),
            }
        }
        // Let go of the batch before the merger can finish with it, so it can be recycled.
        drop(batch);
        if verdicts.send(out).is_err() {
            return;
        }
    }
}

/// Hands one batch to the report in capture order: the items the trackers showed and those no
/// tracker judged, one by one (merged by position), and the quiet frames between them as runs,
/// without looking at them.
fn hand_over(report: &mut Report<'_>, batch: &Batch, verdicts: &mut [Verdicts]) -> io::Result<()> {
    for v in verdicts.iter() {
        report.count_quiet(&v.quiet);
    }
    let mut shown: Vec<_> = verdicts.iter_mut().map(|v| v.shown.drain(..).peekable()).collect();
    let mut unrouted = batch.unrouted.iter().copied().peekable();
    // The first item not handed over yet: every routed frame from there to the next one handed
    // over was quiet.
    let mut next = 0;
    loop {
        // The next item to hand over: a tracker's first shown frame, or the first unrouted item.
        let next_shown = shown.iter_mut().enumerate().filter_map(|(t, s)| Some((s.peek()?.0, t))).min();
        let (at, tracker) = match (next_shown, unrouted.peek().copied()) {
            (None, None) => break,
            (None, Some(u)) => (u, None),
            (Some((at, t)), None) => (at, Some(t)),
            (Some((at, t)), Some(u)) => if at < u { (at, Some(t)) } else { (u, None) },
        };
        quiet_until(report, batch, &mut next, at as usize)?;
        match (&batch.items[at as usize], tracker) {
            (Item::Frame { meta, data, prepared }, Some(t)) => {
                let (_, judged) = shown[t].next().expect("the head just looked at");
                report.judged(*meta, &batch.bytes[data.clone()], prepared, Judgement::Shown(judged))?;
            }
            (Item::Frame { meta, data, prepared }, None) => {
                unrouted.next();
                report.judged(*meta, &batch.bytes[data.clone()], prepared, Judgement::Shown(Judged::skipped()))?;
            }
            (&Item::Error(e), None) => {
                unrouted.next();
                report.error(&batch.errors[e as usize])?;
            }
            (Item::Error(_), Some(_)) => unreachable!("input errors are not routed"),
        }
        report.progress(&[])?;
        next = at as usize + 1;
    }
    quiet_until(report, batch, &mut next, batch.items.len())
}

/// The quiet frames from `*next` up to (not including) `end`, as one run.
fn quiet_until(report: &mut Report<'_>, batch: &Batch, next: &mut usize, end: usize) -> io::Result<()> {
    if end > *next {
        report.quiet_frames((end - *next) as u64, batch.clock_after(end - 1));
        *next = end;
        report.progress(&[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::FlowKey;
    use crate::decode::Tuple;
    use std::net::{IpAddr, Ipv4Addr};

    /// The shards get even parts of the flows, and each shard's keys still spread over all of
    /// its table's index buckets (which their hashes' low bits pick) and over all the tags its
    /// index compares before a key (the top seven bits).
    #[test]
    fn shards_are_even_and_keep_the_low_hash_bits_spread() {
        for trackers in [2, 3] {
            shards_of(trackers);
        }
    }

    fn shards_of(trackers: usize) {
        let mut per_shard = vec![0u32; trackers];
        let mut buckets = vec![vec![0u32; 1024]; trackers];
        let mut tags = vec![vec![0u32; 128]; trackers];
        for n in 0..300_000u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n / 1000));
            let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
            let hash = FlowKey::of(&Tuple { src: client, dst: server, sport: 1024 + (n % 1000) as u16, dport: 443 }).hash32();
            let shard = shard_of(hash, trackers) as usize;
            per_shard[shard] += 1;
            buckets[shard][(hash & 1023) as usize] += 1;
            tags[shard][(hash >> 25) as usize] += 1;
        }
        for (shard, ((&flows, buckets), tags)) in per_shard.iter().zip(&buckets).zip(&tags).enumerate() {
            let even = 300_000 / trackers as u32;
            assert!(flows.abs_diff(even) < even / 20, "shard {shard} of {trackers}: {flows} of 300 000 flows");
            let expected = flows / 1024;
            let (fewest, most) = (*buckets.iter().min().unwrap(), *buckets.iter().max().unwrap());
            assert!(fewest > expected / 2 && most < expected * 2, "shard {shard} of {trackers}: {fewest}..{most} keys a bucket, ~{expected} expected");
            let expected = flows / 128;
            let (fewest, most) = (*tags.iter().min().unwrap(), *tags.iter().max().unwrap());
            assert!(fewest > expected / 2 && most < expected * 2, "shard {shard} of {trackers}: {fewest}..{most} keys a tag, ~{expected} expected");
        }
    }
}
