//! IP defragmentation as `nf_defrag_ipv4` / `nf_defrag_ipv6` do it before conntrack (priority
//! −400 at PRE_ROUTING): conntrack sees only the completed datagram, with the verdict going to
//! the fragment that completes it. The queueing rules follow `ip_frag_queue`,
//! `nf_ct_frag6_queue` and `inet_frag_queue_insert`.
//!
//! Everything is bounded: the number of datagrams, the bytes held, a datagram's size, and its
//! age on capture time. Fragments the capture cut short are still queued by their IP lengths,
//! so the datagram completes when the kernel's would; only the bytes up to the first cut are
//! then known.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::FixedState;

use super::ip::{Addrs, Datagram, Fragment};
use crate::capture::Timestamp;

/// Datagrams being reassembled at once; the oldest is dropped to make room.
pub(super) const MAX_DATAGRAMS: usize = 4096;
/// Bytes held for them. Linux bounds fragment memory too (`ipfrag_high_thresh`); its
/// accounting (skb truesize) cannot be reproduced from a capture, so this is our own figure.
pub(super) const MAX_BUFFERED: usize = 64 << 20;
/// `net.ipv4.ipfrag_time` (30 s) and `net.netfilter.nf_conntrack_frag6_timeout` (60 s): the
/// timer starts with the first fragment and is not renewed by later ones.
const TIMEOUT_V4_NS: i64 = 30_000_000_000;
const TIMEOUT_V6_NS: i64 = 60_000_000_000;
/// Emptied buffers kept for the next datagrams.
const SPARE_BUFFERS: usize = 8;

/// What identifies a datagram: addresses, identification, and for IPv4 the protocol
/// (`ip4_frag_match`); IPv6 fragments do not key on the next header (`ip6frag_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    addrs: Addrs,
    id: u32,
    protocol: u8,
}

/// One datagram being reassembled (the kernel's `inet_frag_queue`).
struct Queue {
    serial: u64,
    expires: i64,
    /// Length of the fragmentable part, as far as known (`q.len`).
    len: u32,
    first_in: bool,
    last_in: bool,
    /// Data bytes queued (`q.meat`); the datagram is whole when it reaches `len`.
    meat: u32,
    /// End of the fragment with the highest offset (`q.fragments_tail`).
    tail_end: u32,
    /// Runs of fragments, disjoint and sorted by start. As in the kernel, a fragment joins the
    /// last run only when it lands exactly at the tail; others start runs of their own.
    runs: Vec<(u32, u32)>,
    fragments: u16,
    /// First offset whose byte the capture lacks (`u32::MAX`: none so far).
    missing_from: u32,
    /// TTL / hop limit and protocol (next header) of the fragment at offset 0.
    head: Option<(u8, u8)>,
    data: Vec<u8>,
}

/// How the kernel deals with one fragment.
enum Step {
    Queued,
    /// A fragment already covered by one run: dropped, the datagram stays ("pretend they got
    /// queued", nf_ct_frag6_queue).
    Duplicate,
    /// This fragment is dropped; the datagram stays.
    DropFragment(&'static str),
    /// The whole datagram is discarded (`inet_frag_kill`).
    Kill(&'static str),
}

impl Queue {
    /// `ip_frag_queue` / `nf_ct_frag6_queue`, in their order of checks.
    fn add(&mut self, dg: &Datagram<'_>, frag: Fragment) -> Step {
        let v4 = !dg.addrs.is_v6();
        // IPv4 kills the queue on inconsistent lengths; IPv6 drops just the fragment.
        let inconsistent = |why| {
            if v4 {
                Step::Kill(why)
            } else {
                Step::DropFragment(why)
            }
        };
        let offset = frag.offset;
        let mut end = offset + dg.len;
        // The kernel refuses oversized datagrams at reassembly (ip_frag_reasm "out_oversize",
        // and nf_ct_frag6_reasm); refusing them here keeps every buffer within 64 KiB.
        if end > frag.max_len {
            return Step::Kill("IP fragments add up to more than 65535 bytes");
        }
        if !frag.more {
            if end < self.len || (self.last_in && end != self.len) {
                return inconsistent("IP fragment ends where an earlier one says it cannot");
            }
            self.last_in = true;
            self.len = end;
        } else {
            if !end.is_multiple_of(8) {
                if !v4 {
                    return Step::Kill("IPv6 fragment length not a multiple of 8");
                }
                // ip_frag_queue trims a non-final fragment to a multiple of 8.
                end &= !7;
            }
            if end > self.len {
                if self.last_in {
                    return inconsistent("IP fragment beyond the end of its datagram");
                }
                self.len = end;
            }
        }
        if end == offset {
            return if v4 {
                Step::Kill("empty IP fragment")
            } else {
                Step::DropFragment("empty IP fragment")
            };
        }
        match self.place(offset, end) {
            Placed::New => {}
            Placed::Duplicate => return Step::Duplicate,
            Placed::Overlap => return Step::Kill("overlapping IP fragments"),
        }

        let frag_len = (end - offset) as usize;
        let captured = &dg.payload[..dg.payload.len().min(frag_len)];
        if captured.len() < frag_len {
            self.missing_from = self.missing_from.min(offset + captured.len() as u32);
        }
        let at = offset as usize;
        if self.data.len() < at + captured.len() {
            self.data.resize(at + captured.len(), 0);
        }
        self.data[at..at + captured.len()].copy_from_slice(captured);

        self.meat += end - offset;
        self.fragments = self.fragments.saturating_add(1);
        if offset == 0 {
            self.first_in = true;
            self.head = Some((dg.ttl, dg.protocol));
        }
        Step::Queued
    }

    /// `inet_frag_queue_insert`: the tail fast path, else a search of the runs.
    fn place(&mut self, offset: u32, end: u32) -> Placed {
        if self.runs.is_empty() || end > self.tail_end {
            if offset < self.tail_end && !self.runs.is_empty() {
                return Placed::Overlap;
            }
            match self.runs.last_mut() {
                Some(last) if offset == self.tail_end => last.1 = end,
                _ => self.runs.push((offset, end)),
            }
            self.tail_end = end;
            return Placed::New;
        }
        // Runs are disjoint and sorted, so only the last one starting before `end` can meet
        // [offset, end).
        let i = self.runs.partition_point(|&(start, _)| start < end);
        if let Some(&(start, run_end)) = i.checked_sub(1).and_then(|j| self.runs.get(j))
            && run_end > offset
        {
            return if offset >= start && end <= run_end {
                Placed::Duplicate
            } else {
                Placed::Overlap
            };
        }
        self.runs.insert(i, (offset, end));
        Placed::New
    }

    fn is_complete(&self) -> bool {
        self.first_in && self.last_in && self.meat == self.len
    }
}

enum Placed {
    New,
    Duplicate,
    Overlap,
}

/// What became of a fragment.
pub(super) enum Outcome<'d> {
    /// Queued (or a duplicate): conntrack does not see it.
    Held,
    /// Dropped by defragmentation, alone or with its whole datagram.
    Dropped(&'static str),
    /// This fragment completed the datagram.
    Complete(Reassembled<'d>),
}

/// The fragmentable part of a completed datagram.
pub(super) struct Reassembled<'d> {
    /// The captured bytes: all of them, or those before the first byte the capture lacks.
    pub bytes: &'d [u8],
    pub len: u32,
    pub fragments: u16,
    /// From the fragment at offset 0, whose header the reassembled datagram carries.
    pub ttl: u8,
    pub protocol: u8,
}

/// The reassembly state of one capture.
pub(super) struct Defrag {
    queues: HashMap<Key, Queue, FixedState>,
    /// Queues in creation order, for expiry and eviction. Entries of queues that are gone stay
    /// until they reach the front or the deque is compacted.
    order: VecDeque<(u64, Key)>,
    serial: u64,
    buffered: usize,
    spare: Vec<Vec<u8>>,
    /// The last completed datagram, which [`Reassembled`] borrows.
    done: Vec<u8>,
}

impl Default for Defrag {
    fn default() -> Self {
        Defrag {
            queues: HashMap::with_hasher(FixedState::default()),
            order: VecDeque::new(),
            serial: 0,
            buffered: 0,
            spare: Vec::new(),
            done: Vec::new(),
        }
    }
}

impl Defrag {
    /// Queues one fragment received at `now`.
    pub fn push(&mut self, now: Timestamp, dg: &Datagram<'_>, frag: Fragment) -> Outcome<'_> {
        let v6 = dg.addrs.is_v6();
        let key = Key {
            addrs: dg.addrs,
            id: frag.id,
            protocol: if v6 { 0 } else { dg.protocol },
        };
        self.expire(now.0);
        // Capture time may step back across merged files; the kernel's timer would have fired.
        if self.queues.get(&key).is_some_and(|q| q.expires <= now.0) {
            self.remove(&key);
        }
        let creating = !self.queues.contains_key(&key);
        self.make_room(creating, frag.offset as usize + dg.payload.len());
        if !self.queues.contains_key(&key) {
            let timeout = if v6 { TIMEOUT_V6_NS } else { TIMEOUT_V4_NS };
            self.create(key, now.0.saturating_add(timeout));
        }
        let Some(queue) = self.queues.get_mut(&key) else {
            return Outcome::Dropped("IP fragment could not be queued");
        };

        let before = queue.data.len();
        let step = queue.add(dg, frag);
        self.buffered += queue.data.len() - before;
        match step {
            Step::Queued if queue.is_complete() => self.complete(&key),
            Step::Queued | Step::Duplicate => Outcome::Held,
            Step::DropFragment(why) => Outcome::Dropped(why),
            Step::Kill(why) => {
                self.remove(&key);
                Outcome::Dropped(why)
            }
        }
    }

    /// Number of datagrams being reassembled.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.queues.len()
    }

    fn complete(&mut self, key: &Key) -> Outcome<'_> {
        let Some(mut queue) = self.remove_queue(key) else {
            return Outcome::Dropped("IP fragment could not be queued");
        };
        let (ttl, protocol) = queue.head.unwrap_or_default();
        let known = (queue.missing_from.min(queue.len) as usize).min(queue.data.len());
        let previous = std::mem::replace(&mut self.done, std::mem::take(&mut queue.data));
        self.recycle(previous);
        Outcome::Complete(Reassembled {
            bytes: &self.done[..known],
            len: queue.len,
            fragments: queue.fragments,
            ttl,
            protocol,
        })
    }

    fn create(&mut self, key: Key, expires: i64) {
        self.serial += 1;
        let queue = Queue {
            serial: self.serial,
            expires,
            len: 0,
            first_in: false,
            last_in: false,
            meat: 0,
            tail_end: 0,
            runs: Vec::new(),
            fragments: 0,
            missing_from: u32::MAX,
            head: None,
            data: self.spare.pop().unwrap_or_default(),
        };
        self.queues.insert(key, queue);
        self.order.push_back((self.serial, key));
        if self.order.len() > 2 * MAX_DATAGRAMS {
            let queues = &self.queues;
            self.order
                .retain(|(serial, key)| queues.get(key).is_some_and(|q| q.serial == *serial));
        }
    }

    /// Drops datagrams whose time is up, oldest first.
    fn expire(&mut self, now: i64) {
        while let Some(&(serial, key)) = self.order.front() {
            match self.queues.get(&key) {
                Some(q) if q.serial == serial && q.expires > now => break,
                Some(q) if q.serial == serial => self.remove(&key),
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Evicts the oldest datagrams until a new one (if `creating`) and `incoming` more bytes fit.
    fn make_room(&mut self, creating: bool, incoming: usize) {
        while (creating && self.queues.len() >= MAX_DATAGRAMS)
            || self.buffered + incoming > MAX_BUFFERED
        {
            let Some((serial, key)) = self.order.pop_front() else {
                break;
            };
            if self.queues.get(&key).is_some_and(|q| q.serial == serial) {
                self.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(queue) = self.remove_queue(key) {
            self.recycle(queue.data);
        }
    }

    fn remove_queue(&mut self, key: &Key) -> Option<Queue> {
        let queue = self.queues.remove(key)?;
        self.buffered -= queue.data.len();
        Some(queue)
    }

    fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && buffer.capacity() > 0 {
            buffer.clear();
            self.spare.push(buffer);
        }
    }
}
