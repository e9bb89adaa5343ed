//! Flow summaries: one record per conntrack entry (a connection as conntrack saw it), built from
//! the verdicts alone — the report side cannot look into the table, so how an entry ended is
//! inferred from the packets of its tuple (see [`Ended`]).
//!
//! A flow is identified by its ORIGINAL tuple and the frame that created the entry. Packets of a
//! tuple that met no entry at all (INVALID new, orphan RSTs…) are grouped into an entry-less
//! flow, so that they are not lost from the flow view.
//!
//! Which flows are followed: with `--all` every one, from its first packet. Otherwise a report
//! shows only the flows with a notable packet, so a flow is followed from its first notable
//! one, and what came before comes from the log its conntrack entry kept
//! ([`Observation::entry_log`], `crate::history`): the same record, without a lookup per
//! packet in a table of every open flow.
//!
//! Memory is bounded: only the flows still open are kept, one per tuple; a flow is emitted as
//! soon as its end is known, and when more than a cap are followed the least recently seen are
//! emitted early, marked [`Ended::Evicted`] (`docs/limits.md`).

use crate::capture::Timestamp;
use crate::conntrack::state::{Dir, TcpState};
use crate::conntrack::FlowKey;
use crate::decode::{Segment, Tuple};
use crate::engine::Observation;
use crate::history::{self, EntryLog};
use crate::slot_index::SlotIndex;
use crate::verdict::{Action, CreatedBy, FrameRef, ReasonId};
use serde::{Serialize, Serializer};
use crate::wheel::{Wheel, second_is_over};
use std::collections::BTreeMap;

/// Followed flows kept open before the least recently seen are emitted early.
pub const MAX_ACTIVE_FLOWS: usize = 100_000;
pub use crate::history::MAX_STATES;
/// Characters of history kept per flow; a longer history ends with `…`.
pub const MAX_HISTORY: usize = 64;
// A flow counts its states and history characters in a byte.
const _: () = assert!(MAX_STATES <= 255 && MAX_HISTORY <= 255);

/// How an entry ended, as far as the packets tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// An RST was accepted while no reply had been seen: conntrack deletes such an entry at once.
    Rst,
    /// 2.6.18's out-of-sync kill: conntrack destroyed the entry and dropped the packet.
    Killed,
    /// A SYN met it in TIME_WAIT or CLOSE and reopened the tuple as a new entry.
    Reopened,
    /// The timeout ran out: the capture's clock passed the entry's expiry (by
    /// [`EXPIRY_GRACE`]), or a later packet of the tuple found no entry (or a new one).
    Expired,
    /// Still alive at the capture's last frame.
    Open,
    /// The report stopped following it ([`MAX_ACTIVE_FLOWS`]); it may have gone on.
    Evicted,
}

impl Ended {
    /// For people: `deleted by an RST`, `expired`, …
    pub fn words(self) -> &'static str {
        match self {
            Ended::Rst => "deleted by an RST",
            Ended::Killed => "killed (out of sync)",
            Ended::Reopened => "replaced by a reopen",
            Ended::Expired => "expired",
            Ended::Open => "open at the end",
            Ended::Evicted => "not followed further (memory bound)",
        }
    }
}

/// One flow, as the reports print it. Field names are a contract (`docs/output.md`).
#[derive(Clone, Debug, Serialize)]
pub struct FlowRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The ORIGINAL tuple (for an entry-less flow, the tuple of its first packet).
    #[serde(serialize_with = "display")]
    pub flow: Tuple,
    /// The frame that created the entry; `None` for an entry-less flow.
    pub created_frame: Option<FrameRef>,
    pub created_by: Option<CreatedBy>,
    /// The creation was not seen by this report (the flow was evicted earlier and came back):
    /// counts cover only the packets since.
    pub partial: bool,
    pub first_frame: FrameRef,
    pub last_frame: FrameRef,
    #[serde(serialize_with = "secs")]
    pub first_ts: Timestamp,
    #[serde(serialize_with = "secs")]
    pub last_ts: Timestamp,
    pub frames: u64,
    /// The TCP states the entry passed through, in order (at most [`MAX_STATES`]).
    pub states: Vec<TcpState>,
    pub invalid: u64,
    pub ignored: u64,
    pub dropped: u64,
    /// Packets per reason id.
    pub reasons: BTreeMap<ReasonId, u64>,
    /// `None` for an entry-less flow.
    pub ended: Option<Ended>,
    pub history: String,
}

fn display<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn secs<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ts.as_secs_f64())
}

/// The history string: one letter per packet, uppercase from the originator, lowercase from the
/// responder; see `docs/output.md` for the alphabet and the collapsing rules. Kept as ASCII in
/// place (no allocation while a flow is followed); the `…` of a full history is only added when
/// the record is built.
///
/// Split in two for the cache (see [`Flow`]): this part decides whether a packet writes anything
/// and is read by every packet; the text itself ([`HistoryText`]) is only touched when a token is
/// written, which collapsing makes rare.
#[derive(Clone, Copy, Debug)]
struct History {
    len: u8,
    /// Unmarked letters already written since the last marked one, one bit per (letter, dir).
    seen: u16,
    /// The last marked token written (letter and mark), to collapse runs of it.
    last_marked: Option<(u8, u8)>,
    /// Whether the last token written was that marked one (a run is only a run if unbroken).
    marked_last: bool,
    /// A token did not fit: nothing more is written.
    full: bool,
}

/// The letters of a [`History`], its first `len` bytes.
type HistoryText = [u8; MAX_HISTORY];

impl History {
    const EMPTY: History = History { len: 0, seen: 0, last_marked: None, marked_last: false, full: false };

    /// `mark`: the packet's [`history::mark`].
    fn push(&mut self, text: &mut HistoryText, letter: u8, dir: Dir, mark: Option<u8>) {
        if self.full {
            return;
        }
        let c = if dir == Dir::Original { letter } else { letter.to_ascii_lowercase() };
        match mark {
            Some(m) => {
                // A run of the same trouble says no more than its first: the counts are elsewhere.
                if self.marked_last && self.last_marked == Some((c, m)) {
                    return;
                }
                self.last_marked = Some((c, m));
                self.marked_last = true;
                // What follows trouble is worth seeing again, so letters start over.
                self.seen = 0;
                self.write(text, &[c, m]);
            }
            None => {
                // Zeek's rule: a letter once per direction, so a long healthy transfer stays short.
                if !history::first_time(&mut self.seen, letter, dir) {
                    return;
                }
                self.marked_last = false;
                self.write(text, &[c]);
            }
        }
    }

    /// Appends a token whole, or, when it does not fit, ends the history.
    fn write(&mut self, text: &mut HistoryText, token: &[u8]) {
        let len = usize::from(self.len);
        match text.get_mut(len..len + token.len()) {
            Some(room) => {
                room.copy_from_slice(token);
                self.len += token.len() as u8; // within MAX_HISTORY
            }
            None => self.full = true,
        }
    }

    fn text(&self, text: &HistoryText) -> String {
        let ascii = &text[..usize::from(self.len)];
        let mut s: String = ascii.iter().map(|&b| char::from(b)).collect();
        if self.full {
            s.push('…');
        }
        s
    }
}

/// The states an entry passed through, in order, in place: each different from the one before,
/// at most [`MAX_STATES`]. Split as [`History`] is: the length and a copy of the last state
/// decide whether a packet adds one; the list ([`StateList`]) is only written when it does.
#[derive(Clone, Copy, Debug)]
struct States {
    len: u8,
    /// The list's last state (`None` while it is empty).
    last: Option<TcpState>,
}

/// The states of a [`States`], its first `len`.
type StateList = [TcpState; MAX_STATES];

impl States {
    const EMPTY: States = States { len: 0, last: None };

    fn as_slice<'a>(&self, list: &'a StateList) -> &'a [TcpState] {
        &list[..usize::from(self.len)]
    }

    fn push(&mut self, list: &mut StateList, s: TcpState) {
        let len = usize::from(self.len);
        if history::records_state(self.last, len, s) {
            list[len] = s;
            self.len += 1;
            self.last = Some(s);
        }
    }
}

/// A [`FrameRef`] in 12 bytes rather than 16 (its padding packed away), so that the two a
/// packet reads fit [`Hot`]. Its fields are only ever copied, never borrowed.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
struct Frame {
    number: u64,
    file: u32,
}

impl From<FrameRef> for Frame {
    fn from(f: FrameRef) -> Frame {
        Frame { number: f.number, file: f.file }
    }
}

impl From<Frame> for FrameRef {
    fn from(f: Frame) -> FrameRef {
        FrameRef { number: f.number, file: f.file }
    }
}

/// What an ordinary packet of a flow reads and writes, in one cache line (see [`Flow`]).
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Hot {
    /// The capture position ([`Observation::seq`]) of the flow's last packet followed: for
    /// eviction. (Each packet meets one flow, so no two flows share a value.)
    touched: u64,
    frames: u64,
    last_ts: Timestamp,
    last_frame: Frame,
    /// The frame that created the entry; `None` for an entry-less flow. Read by every packet
    /// ([`Flow::goes_on`]).
    created_frame: Option<Frame>,
    created_by: Option<CreatedBy>,
    /// At least one packet was notable (INVALID, dropped, ignored or logged): the reports show
    /// only such flows unless asked for all.
    notable: bool,
    history: History,
    states: States,
}

const _: () = assert!(std::mem::size_of::<Hot>() == 64, "a flow's hot part is one cache line");

/// The rest of a flow: written when it starts, when a packet is INVALID, ignored or dropped, or
/// when its history or states get a new entry.
struct Cold {
    /// The ORIGINAL tuple (for an entry-less flow, the tuple of its first packet).
    tuple: Tuple,
    partial: bool,
    first_frame: FrameRef,
    first_ts: Timestamp,
    invalid: u64,
    ignored: u64,
    dropped: u64,
    reasons: BTreeMap<ReasonId, u64>,
    history: HistoryText,
    states: StateList,
    /// The capture position of the flow's first packet (its entry's creator, when the entry's
    /// log told it): its identity, and the final order.
    born: u64,
}

/// A flow being followed: what its [`FlowRecord`] will say, in place. Nothing here allocates
/// (but `reasons`, which only notable packets fill), so following a flow costs no allocation;
/// the record is built only if the flow is shown when it ends.
///
/// Layout: the open flows (up to [`MAX_ACTIVE_FLOWS`], ~30 MB) are far more than the caches
/// hold, and packets come to them at random, so each line of a flow a packet touches is
/// likely a miss. An ordinary packet only counts itself and finds that its history and states
/// do not change; all it reads and writes is in [`Hot`], the first cache line of the flow
/// (the struct is aligned to a line). The key the index compares comes next, in the second
/// line; everything else is in [`Cold`], after it.
#[repr(C)]
struct Flow {
    hot: Hot,
    /// The key of `cold.tuple`, both directions one key.
    key: FlowKey,
    /// When the flow's entry expires if no packet refreshes it ([`Verdict::expires`] of its
    /// last packet); `None` for an entry-less flow. Next to the key, which every packet reads.
    ///
    /// [`Verdict::expires`]: crate::verdict::Verdict::expires
    expires: Option<Timestamp>,
    /// The deadline the flow is filed under in [`FlowTracker::deadlines`]: never later than
    /// `expires`.
    filed: Timestamp,
    cold: Cold,
}

impl Flow {
    /// The flow a packet starts (before it is counted, see [`Flow::add`]). When the packet's
    /// entry was created before this report followed it, the flow resumes from the entry's log;
    /// without one (or when its history stopped at a mark this report did not follow), it is
    /// `partial`.
    fn start(obs: &Observation<'_>, seg: &Segment, b: Belongs, clock: u64) -> Flow {
        let (tuple, created_frame, created_by, new) = match b {
            Belongs::Entry { created, by, orig, new } => (orig, Some(created), Some(by), new),
            Belongs::None => (seg.tuple, None, None, true),
        };
        let mut flow = Flow {
            key: FlowKey::of(&seg.tuple),
            expires: None,
            filed: Timestamp(i64::MAX),
            hot: Hot {
                touched: clock,
                frames: 0,
                last_ts: obs.ts,
                last_frame: obs.frame.into(),
                created_frame: created_frame.map(Frame::from),
                created_by,
                notable: false,
                history: History::EMPTY,
                states: States::EMPTY,
            },
            cold: Cold {
                tuple,
                partial: false,
                first_frame: obs.frame,
                first_ts: obs.ts,
                invalid: 0,
                ignored: 0,
                dropped: 0,
                reasons: BTreeMap::new(),
                history: [0; MAX_HISTORY],
                states: [TcpState::None; MAX_STATES],
                born: clock,
            },
        };
        if !new {
            match (obs.entry_log, created_frame) {
                (Some(log), Some(created)) if !log.marked => flow.resume(created, log),
                _ => flow.begin_partial(obs),
            }
        }
        flow
    }

    /// Takes over what the entry's log kept of the packets before this report followed it.
    fn resume(&mut self, created: FrameRef, log: &EntryLog) {
        let Flow { hot, cold, .. } = self;
        log.states().for_each(|s| hot.states.push(&mut cold.states, s));
        log.tokens().for_each(|(letter, dir)| hot.history.push(&mut cold.history, letter, dir, None));
        hot.frames = log.packets;
        (cold.first_frame, cold.first_ts, cold.born) = (created, log.first_ts, log.born);
    }

    /// Nothing tells what came before: the flow starts with the state its entry is in now.
    fn begin_partial(&mut self, obs: &Observation<'_>) {
        self.cold.partial = true;
        if let Some(e) = &obs.verdict.entry {
            self.hot.states.push(&mut self.cold.states, e.state);
        }
    }

    /// Whether a packet of the flow's tuple belongs to this flow rather than starting another.
    fn goes_on(&self, b: Belongs) -> bool {
        match b {
            Belongs::Entry { created, new, .. } => !new && self.hot.created_frame == Some(created.into()),
            Belongs::None => self.hot.created_frame.is_none(),
        }
    }

    /// Counts a packet of the flow.
    fn add(&mut self, obs: &Observation<'_>, seg: &Segment, b: Belongs, clock: u64) {
        let v = &obs.verdict;
        let Flow { hot, cold, expires, .. } = self;
        hot.touched = clock;
        // The creator of an entry knows better than the guess made from flags.
        if let (Some(e), Belongs::Entry { .. }) = (&v.entry, b) {
            hot.created_by = Some(e.created_by);
        }
        hot.frames += 1;
        hot.last_frame = obs.frame.into();
        hot.last_ts = obs.ts;
        hot.notable |= obs.is_notable();
        if let (Some(s), Belongs::Entry { .. }) = (v.state_after, b) {
            hot.states.push(&mut cold.states, s);
        }
        match v.action {
            Action::Invalid => cold.invalid += 1,
            Action::Drop => cold.dropped += 1,
            Action::Ignore => cold.ignored += 1,
            Action::Accept | Action::Skipped => {}
        }
        let mark = history::mark(v.action);
        if let Some(reason) = &v.reason {
            *cold.reasons.entry(reason.id).or_default() += 1;
        }
        let dir = match b {
            Belongs::Entry { .. } => v.dir.unwrap_or(Dir::Original),
            Belongs::None if seg.tuple == cold.tuple => Dir::Original,
            Belongs::None => Dir::Reply,
        };
        if let Belongs::Entry { .. } = b {
            *expires = v.expires;
        }
        // (A marked packet writes one letter, so the mark goes to it.)
        for letter in history::letters(seg, mark.is_some()) {
            hot.history.push(&mut cold.history, letter, dir, mark);
        }
    }

    /// Whether a report shows the flow: a notable one always, any with `all`.
    fn shown(&self, all: bool) -> bool {
        all || self.hot.notable
    }

    /// Appends the flow's record to `done` if a report shows it.
    fn emit(self, ended: Ended, all: bool, done: &mut Vec<FlowRecord>) {
        if self.shown(all) {
            done.push(self.record(ended));
        }
    }

    fn record(self, ended: Ended) -> FlowRecord {
        let Flow { hot, cold, .. } = self;
        FlowRecord {
            kind: "flow",
            flow: cold.tuple,
            created_frame: hot.created_frame.map(FrameRef::from),
            created_by: hot.created_by,
            partial: cold.partial,
            first_frame: cold.first_frame,
            last_frame: hot.last_frame.into(),
            first_ts: cold.first_ts,
            last_ts: hot.last_ts,
            frames: hot.frames,
            states: hot.states.as_slice(&cold.states).to_vec(),
            invalid: cold.invalid,
            ignored: cold.ignored,
            dropped: cold.dropped,
            reasons: cold.reasons,
            // Entry-less flows have no entry to end.
            ended: hot.created_frame.map(|_| ended),
            history: hot.history.text(&cold.history),
        }
    }
}

/// The entry a packet belongs to, as its verdict tells.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Belongs {
    /// `created`: the entry's creating frame; `orig`: its ORIGINAL tuple; `new`: this packet
    /// created it.
    Entry { created: FrameRef, by: CreatedBy, orig: Tuple, new: bool },
    None,
}

pub(crate) fn belongs(obs: &Observation<'_>, seg: &Segment) -> Belongs {
    let v = &obs.verdict;
    if let Some(e) = &v.entry {
        let orig = if e.orientation == Dir::Original { seg.tuple } else { seg.tuple.reversed() };
        Belongs::Entry { created: e.created_frame, by: e.created_by, orig, new: false }
    } else if v.created_entry() {
        // Only a SYN creates an entry as SYN_SENT; anything else that may is mid-stream pickup.
        let by = if seg.flags.syn() && !seg.flags.ack() { CreatedBy::Syn } else { CreatedBy::Pickup };
        Belongs::Entry { created: obs.frame, by, orig: seg.tuple, new: true }
    } else {
        Belongs::None
    }
}

/// How the entry a packet met ended with that packet, if it did: conntrack deletes an entry
/// whose only answer was an RST (the tracker's `!seen_reply` rule), and 2.6.18 kills an
/// out-of-sync one.
fn deleted_by(obs: &Observation<'_>, seg: &Segment) -> Option<Ended> {
    match (obs.verdict.action, &obs.verdict.entry) {
        (Action::Drop, Some(_)) => Some(Ended::Killed),
        (Action::Accept, Some(e)) if seg.flags.rst() && !e.seen_reply => Some(Ended::Rst),
        _ => None,
    }
}

/// The open flows, each in a slot that stays put while it is followed.
///
/// Why not whole flows in the map: a map that churns (inserts and removes) at around 100 000
/// entries ends up with 262 144 buckets, as its tombstones make it grow rather than rehash in
/// place; with ~300-byte flows in its buckets that is 88 MB (and 132 MB while it grows). The
/// map holds slot numbers instead, and the slots only as many flows as are open.
#[derive(Default)]
struct Slots {
    flows: Vec<Option<Flow>>,
    /// Empty slots, reused before the vector grows.
    free: Vec<u32>,
}

impl Slots {
    fn insert(&mut self, flow: Flow) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.flows[i as usize] = Some(flow);
                i
            }
            None => {
                self.flows.push(Some(flow));
                u32::try_from(self.flows.len() - 1).expect("fewer than 2^32 open flows")
            }
        }
    }

    fn get(&self, i: u32) -> &Flow {
        self.flows[i as usize].as_ref().expect("a slot of an open flow")
    }

    fn get_mut(&mut self, i: u32) -> &mut Flow {
        self.flows[i as usize].as_mut().expect("a slot of an open flow")
    }

    /// The flow in slot `i` if it is the one born at `born` and still open.
    fn get_live(&mut self, i: u32, born: u64) -> Option<&mut Flow> {
        self.flows.get_mut(i as usize)?.as_mut().filter(|f| f.cold.born == born)
    }

    fn live(&self, i: u32, born: u64) -> Option<&Flow> {
        self.flows.get(i as usize)?.as_ref().filter(|f| f.cold.born == born)
    }

    fn remove(&mut self, i: u32) -> Flow {
        let flow = self.flows[i as usize].take().expect("a slot of an open flow");
        self.free.push(i);
        flow
    }

    /// The open flows and their slots.
    fn iter(&self) -> impl Iterator<Item = (u32, &Flow)> {
        // (Slot numbers fit: `insert` checked.)
        self.flows.iter().enumerate().filter_map(|(i, f)| Some((i as u32, f.as_ref()?)))
    }
}

/// Follows every tuple's entries through a run, and emits the flows a report shows.
pub struct FlowTracker {
    /// The slot of each open flow by connection, both directions one key: a lookup per packet.
    /// In 8-byte buckets at most half full, the index of [`MAX_ACTIVE_FLOWS`] flows is 2 MB and
    /// mostly stays in the caches; the key is compared in the slot ([`Flow::key`]), whose hot
    /// line the packet then touches anyway.
    /// (Nothing depends on the index's order: eviction and the final flush sort.)
    index: SlotIndex,
    slots: Slots,
    cap: usize,
    /// Emit every flow, not only the notable ones (`--all`).
    all: bool,
    /// Open flows by when their entry expires, each as the flow's `born` and slot. Lazy, as
    /// the conntrack table's: a flow is filed once, and again only when that deadline passes
    /// while its entry was refreshed since, or its expiry is lowered; filings of flows that
    /// ended otherwise are skipped when met (`born` tells), and the wheel is compacted when it
    /// holds more than twice as many filings as there are open flows.
    deadlines: Wheel<(u64, u32)>,
    /// Filings taken from the wheel, reused between sweeps.
    due: Vec<(Timestamp, (u64, u32))>,
    /// The latest conntrack time so far.
    now: Timestamp,
}

/// How long after its entry's expiry a flow is taken to have ended. Conntrack judges expiry
/// to the nanosecond at the packet's own time; a capture's timestamps may go back a little
/// (merged files, several interfaces), and a packet that late could still find the entry.
pub const EXPIRY_GRACE: Timestamp = Timestamp::from_secs(1);

impl FlowTracker {
    /// `cap`: open flows kept before the least recently seen are emitted early. `all`: emit
    /// every flow; otherwise only those with a notable packet become records.
    pub fn new(cap: usize, all: bool) -> Self {
        FlowTracker {
            index: SlotIndex::new(),
            slots: Slots::default(),
            cap: cap.max(1),
            all,
            deadlines: Wheel::default(),
            due: Vec::new(),
            now: Timestamp(i64::MIN),
        }
    }

    /// Follows one frame. The flows it shows to have ended (or that had to be evicted) are
    /// appended to `done`, in the order their end became known.
    pub fn packet(&mut self, obs: &Observation<'_>, done: &mut Vec<FlowRecord>) {
        self.clock(obs.ct_ts, done);
        let Some(seg) = obs.segment else { return };
        if obs.skip.is_some() {
            return; // conntrack never saw it (--truncated skip)
        }
        let b = belongs(obs, seg);
        let (clock, all) = (obs.seq, self.all);
        // Without `--all`, only flows with a notable packet are shown, so a flow is followed
        // from its first one: the entry's log tells what came before (`crate::history`).
        // Entry-less flows have no log, and are followed from their first packet.
        let follow = all || obs.is_notable() || b == Belongs::None;
        if !follow && self.index.is_empty() {
            return; // the common case: no flow followed yet, none to start
        }

        let key = FlowKey::of(&seg.tuple);
        let hash = key.hash32();
        let slots = &self.slots;
        let slot = match self.index.find(hash, |slot| slots.get(slot).key == key) {
            Some(slot) => {
                let flow = self.slots.get_mut(slot);
                if !flow.goes_on(b) {
                    // The tuple has another entry now: the one followed so far is over.
                    let reopened = obs.verdict.replaced.as_ref().is_some_and(|r| Some(r.created_frame.into()) == flow.hot.created_frame);
                    let ended = if reopened { Ended::Reopened } else { Ended::Expired };
                    if !follow {
                        self.index.remove(hash, slot);
                        self.slots.remove(slot).emit(ended, all, done);
                        return;
                    }
                    std::mem::replace(flow, Flow::start(obs, seg, b, clock)).emit(ended, all, done);
                }
                slot
            }
            None if !follow => return,
            None => {
                let slot = self.slots.insert(Flow::start(obs, seg, b, clock));
                self.index.insert(hash, slot);
                slot
            }
        };
        let flow = self.slots.get_mut(slot);
        flow.add(obs, seg, b, clock);
        let lowered = flow.expires.filter(|&e| e < flow.filed);
        if let Some(expires) = lowered {
            flow.filed = expires;
            self.deadlines.file(expires, (flow.cold.born, slot));
        }

        if let Some(ended) = deleted_by(obs, seg) {
            // Nothing can belong to a deleted entry any more: emit it now rather than hold it.
            self.index.remove(hash, slot);
            self.slots.remove(slot).emit(ended, all, done);
        } else if self.index.len() > self.cap {
            self.evict(done);
        }
        if lowered.is_some() {
            self.compact();
        }
    }

    /// Moves the clock to a frame's conntrack time: a frame went by that cannot belong to a
    /// followed flow (a quiet one, [`crate::engine::Sink::quiet`]), or before a packet.
    pub fn clock(&mut self, ct_ts: Timestamp, done: &mut Vec<FlowRecord>) {
        if ct_ts > self.now {
            self.now = ct_ts;
            self.expire(done);
        }
    }

    /// Emits the flows whose entry has expired by now (with [`EXPIRY_GRACE`]), as `expired`,
    /// a second of capture time at a time: a flow ends once the second of its expiry is over
    /// (by the grace), at the first frame that shows it.
    ///
    /// When that is depends on the expiry alone, not on the deadlines the flow was filed under
    /// on the way (a flow followed from its first notable packet is filed differently from one
    /// followed from its first): the flows ending at one frame come out in the order of their
    /// expiry, then of their first packet.
    fn expire(&mut self, done: &mut Vec<FlowRecord>) {
        let cutoff = Timestamp(self.now.0.saturating_sub(EXPIRY_GRACE.0));
        if !self.deadlines.has_past_seconds(cutoff) {
            return; // most packets: still in the second last swept
        }
        let mut due = std::mem::take(&mut self.due);
        self.deadlines.take_past_seconds(cutoff, &mut due);
        let mut ending = Vec::new();
        for (deadline, (born, slot)) in due.drain(..) {
            let Some(flow) = self.slots.get_live(slot, born) else { continue };
            if flow.filed != deadline {
                continue; // filed again since, under an earlier deadline
            }
            match flow.expires {
                Some(e) if second_is_over(e, cutoff) => ending.push((e, born, slot)),
                // Refreshed since it was filed: file it under its expiry now.
                Some(e) => {
                    flow.filed = e;
                    self.deadlines.file(e, (born, slot));
                }
                None => flow.filed = Timestamp(i64::MAX),
            }
        }
        self.due = due;
        // A flow may be filed twice under one deadline (its expiry lowered, then raised back to
        // the same instant, which the sweep of the lower one files again): it ends once.
        ending.sort_unstable();
        ending.dedup();
        for (_, _, slot) in ending {
            self.close(slot).emit(Ended::Expired, self.all, done);
        }
        self.compact();
    }

    /// Drops the filings that are no longer their flow's, once they are more than twice the
    /// open flows: after each sweep, and (as the conntrack table does) after a packet lowered a
    /// flow's expiry. The second matters when an expiry is lowered and then raised back to the
    /// same instant: the sweep of the lower deadline files the flow under that instant again,
    /// which makes an older filing there look current too. Right after a lowering, both are
    /// stale (neither is under `filed`) and go; otherwise such packets would pile them up, and
    /// every sweep would walk them.
    fn compact(&mut self) {
        if self.deadlines.len() > 2 * self.index.len() + 64 {
            let slots = &self.slots;
            self.deadlines.retain(|&(deadline, (born, slot))| slots.live(slot, born).is_some_and(|f| f.filed == deadline));
        }
    }

    /// Emits the least recently seen tenth of the open flows (at least one), oldest first:
    /// batches make the sort rare, and an idle flow is the one most likely to be over anyway.
    fn evict(&mut self, done: &mut Vec<FlowRecord>) {
        let n = (self.cap / 10).max(1).min(self.index.len());
        // From the slots in their order, not through the map: it would visit them at random.
        let mut by_age: Vec<(u64, u32)> = self.slots.iter().map(|(i, f)| (f.hot.touched, i)).collect();
        by_age.select_nth_unstable(n - 1);
        by_age.truncate(n);
        by_age.sort_unstable();
        for (_, i) in by_age {
            self.close(i).emit(Ended::Evicted, self.all, done);
        }
    }

    /// Takes an open flow out of its slot and the index, found by its slot (not by a packet).
    fn close(&mut self, slot: u32) -> Flow {
        let flow = self.slots.remove(slot);
        let indexed = self.index.remove(flow.key.hash32(), slot);
        assert!(indexed, "an open flow is indexed under its key");
        flow
    }

    /// The flows still open at the end of the run that a report shows, in the order the run
    /// first met them.
    pub fn finish(&mut self) -> Vec<FlowRecord> {
        let all = self.all;
        self.index = SlotIndex::new(); // freed before the records are built
        let slots = std::mem::take(&mut self.slots);
        let mut open: Vec<Flow> = slots.flows.into_iter().flatten().filter(|f| f.shown(all)).collect();
        open.sort_unstable_by_key(|f| f.cold.born);
        open.into_iter().map(|f| f.record(Ended::Open)).collect()
    }
}

/// The flows a human-facing report prints: the notable ones (every one with `all`), at most
/// `max`, in the order they are emitted; the rest are only counted.
pub struct FlowRows {
    tracker: FlowTracker,
    max: usize,
    pub rows: Vec<FlowRecord>,
    pub omitted: u64,
    done: Vec<FlowRecord>,
}

/// Flow rows a table or markdown report keeps.
pub const MAX_FLOW_ROWS: usize = 1_000;

impl FlowRows {
    pub fn new(all: bool, max: usize) -> Self {
        FlowRows { tracker: FlowTracker::new(MAX_ACTIVE_FLOWS, all), max, rows: Vec::new(), omitted: 0, done: Vec::new() }
    }

    pub fn packet(&mut self, obs: &Observation<'_>) {
        self.tracker.packet(obs, &mut self.done);
        self.keep_done();
    }

    /// [`FlowTracker::clock`].
    pub fn clock(&mut self, ct_ts: Timestamp) {
        self.tracker.clock(ct_ts, &mut self.done);
        self.keep_done();
    }

    fn keep_done(&mut self) {
        if !self.done.is_empty() {
            let done = std::mem::take(&mut self.done);
            self.keep(done);
        }
    }

    /// Call once, at the end of the run.
    pub fn finish(&mut self) {
        let open = self.tracker.finish();
        self.keep(open);
    }

    fn keep(&mut self, flows: Vec<FlowRecord>) {
        for f in flows {
            if self.rows.len() < self.max {
                self.rows.push(f);
            } else {
                self.omitted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::{with_entry_logs, TestFrame, T0};
    use crate::verdict::ReasonId;

    /// Runs frames through a tracker: the flows in the order they are emitted, open ones last
    /// (every flow with `all`, else only the notable ones).
    fn flows_shown(cap: usize, all: bool, frames: &[TestFrame]) -> Vec<FlowRecord> {
        let mut t = FlowTracker::new(cap, all);
        let mut done = Vec::new();
        for f in &with_entry_logs(frames.to_vec()) {
            t.packet(&f.obs(), &mut done);
        }
        done.extend(t.finish());
        done
    }

    fn flows(cap: usize, frames: &[TestFrame]) -> Vec<FlowRecord> {
        flows_shown(cap, true, frames)
    }

    fn creates(f: TestFrame, state: TcpState) -> TestFrame {
        f.creates(state)
    }

    fn met(f: TestFrame, created: u64, by: CreatedBy, dir: Dir, before: TcpState, after: TcpState) -> TestFrame {
        f.entry(created, by, dir, before).states(before, after)
    }

    fn seen_reply(mut f: TestFrame) -> TestFrame {
        f.verdict.entry.as_mut().unwrap().seen_reply = true;
        f
    }

    fn with_payload(mut f: TestFrame, len: u32) -> TestFrame {
        let s = f.segment.as_mut().unwrap();
        s.l4_len = 20 + len;
        f
    }

    /// The centos5 story on one tuple: a connection reset and left to expire, a stray data
    /// segment from the server picked up as a reversed entry, SYNs INVALID against it.
    fn stale_tuple() -> Vec<TestFrame> {
        use TcpState::*;
        let log = &["nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED"];
        vec![
            creates(TestFrame::tcp(8, "S"), SynSent),
            met(TestFrame::tcp(9, "S.").reversed(), 8, CreatedBy::Syn, Dir::Reply, SynSent, SynRecv),
            seen_reply(met(TestFrame::tcp(10, "."), 8, CreatedBy::Syn, Dir::Original, SynRecv, Established)),
            seen_reply(met(with_payload(TestFrame::tcp(11, "P."), 43), 8, CreatedBy::Syn, Dir::Original, Established, Established)),
            seen_reply(met(TestFrame::tcp(12, "R."), 8, CreatedBy::Syn, Dir::Original, Established, Close)),
            creates(with_payload(TestFrame::tcp(20, "P.").reversed(), 1200), Established),
            met(TestFrame::tcp(21, "S"), 20, CreatedBy::Pickup, Dir::Reply, Established, Established)
                .invalid(ReasonId::SynMeetsReversedEntry, log),
            met(TestFrame::tcp(22, "S"), 20, CreatedBy::Pickup, Dir::Reply, Established, Established)
                .invalid(ReasonId::SynMeetsReversedEntry, log),
        ]
    }

    #[test]
    fn entries_of_a_tuple_follow_each_other() {
        let f = flows(100, &stale_tuple());
        assert_eq!(f.len(), 2, "{f:#?}");
        let (old, stray) = (&f[0], &f[1]);
        assert_eq!(old.flow.to_string(), "10.0.0.1:40000>10.0.0.2:80");
        assert_eq!((old.created_frame.unwrap().number, old.created_by), (8, Some(CreatedBy::Syn)));
        assert_eq!((old.frames, old.first_frame.number, old.last_frame.number), (5, 8, 12));
        use TcpState::*;
        assert_eq!(old.states, [SynSent, SynRecv, Established, Close]);
        assert_eq!(old.history, "ShADR");
        assert_eq!(old.ended, Some(Ended::Expired), "a later packet created a new entry: the old one timed out");

        assert_eq!(stray.flow.to_string(), "10.0.0.2:80>10.0.0.1:40000", "the ORIGINAL direction is the stray's");
        assert_eq!((stray.created_frame.unwrap().number, stray.created_by), (20, Some(CreatedBy::Pickup)));
        assert_eq!((stray.frames, stray.invalid, stray.ignored), (3, 2, 0));
        assert_eq!(stray.reasons[&ReasonId::SynMeetsReversedEntry], 2);
        assert_eq!(stray.history, "Ds!", "the client's SYNs arrive in the reply direction, and collapse");
        assert_eq!(stray.ended, Some(Ended::Open));

        let json = serde_json::to_value(stray).unwrap();
        assert_eq!(json["type"], "flow");
        assert_eq!(json["flow"], "10.0.0.2:80>10.0.0.1:40000");
        assert_eq!(json["created_frame"]["number"], 20);
        assert_eq!(json["created_by"], "pickup");
        assert_eq!(json["states"][0], "ESTABLISHED");
        assert_eq!(json["reasons"]["syn-meets-reversed-entry"], 2);
        assert_eq!(json["ended"], "open");
        assert!((json["first_ts"].as_f64().unwrap() - 1_700_000_020.000_25).abs() < 1e-6);
        assert!(json.get("notable").is_none());

        let shown = flows_shown(100, false, &stale_tuple());
        assert_eq!(shown.len(), 1, "without all, only the flow with INVALID packets");
        assert_eq!(shown[0].created_frame.unwrap().number, 20);
    }

    #[test]
    fn rst_deletion_reopen_and_entryless_packets() {
        let frames = vec![
            // a SYN answered only by an RST: the entry goes at once
            creates(TestFrame::tcp(1, "S"), TcpState::SynSent),
            met(TestFrame::tcp(2, "R.").reversed(), 1, CreatedBy::Syn, Dir::Reply, TcpState::SynSent, TcpState::Close),
            // then an ACK meeting no entry (INVALID new), twice
            TestFrame::tcp(3, ".").invalid(ReasonId::InvalidNew, &["nf_ct_proto_6: invalid new"]),
            TestFrame::tcp(4, ".").invalid(ReasonId::InvalidNew, &["nf_ct_proto_6: invalid new"]),
            // a new connection, closed, and reopened by a SYN in TIME_WAIT
            creates(TestFrame::tcp(5, "S"), TcpState::SynSent),
            seen_reply(met(TestFrame::tcp(6, "F."), 5, CreatedBy::Syn, Dir::Original, TcpState::Established, TcpState::TimeWait)),
            {
                let mut f = creates(TestFrame::tcp(7, "S"), TcpState::SynSent);
                f.verdict.replaced = TestFrame::tcp(7, "S").entry(5, CreatedBy::Syn, Dir::Original, TcpState::TimeWait).verdict.entry.map(Box::new);
                f
            },
        ];
        let f = flows(100, &frames);
        let summary: Vec<(Option<u64>, u64, Option<Ended>, &str)> =
            f.iter().map(|f| (f.created_frame.map(|c| c.number), f.frames, f.ended, f.history.as_str())).collect();
        let want: [(Option<u64>, u64, Option<Ended>, &str); 4] = [
            (Some(1), 2, Some(Ended::Rst), "Sr"),
            (None, 2, None, "A!"),
            (Some(5), 2, Some(Ended::Reopened), "SF"),
            (Some(7), 1, Some(Ended::Open), "S"),
        ];
        assert_eq!(summary, want);
        assert_eq!(f[1].invalid, 2);
        assert!(f[1].states.is_empty());
    }

    #[test]
    fn history_collapses_and_starts_over_after_trouble() {
        let (mut h, mut text) = (History::EMPTY, [0; MAX_HISTORY]);
        for (l, d, m) in [
            (b'S', Dir::Original, None),
            (b'H', Dir::Reply, None),
            (b'A', Dir::Original, None),
            (b'D', Dir::Original, None),
            (b'D', Dir::Reply, None),
            (b'D', Dir::Original, None), // once per direction
            (b'A', Dir::Reply, None),
            (b'S', Dir::Original, Some(b'~')),
            (b'S', Dir::Original, Some(b'~')), // a run of the same trouble
            (b'H', Dir::Reply, None),          // seen before, but after trouble: written again
            (b'A', Dir::Original, None),
            (b'S', Dir::Original, Some(b'~')), // not a run any more
        ] {
            h.push(&mut text, l, d, m);
        }
        assert_eq!(h.text(&text), "ShADdaS~hAS~");
        let (mut long, mut text) = (History::EMPTY, [0; MAX_HISTORY]);
        for i in 0..100 {
            long.push(&mut text, b'A', if i % 2 == 0 { Dir::Original } else { Dir::Reply }, Some(b'!'));
        }
        let text = long.text(&text);
        assert!(text.ends_with('…') && text.chars().count() <= MAX_HISTORY + 1, "{text}");
    }

    /// Frame `n` of a connection from port `sport`, whose entry then expires `secs` later.
    fn expiring(f: TestFrame, sport: u16, secs: i64) -> TestFrame {
        let mut f = f;
        f.segment.as_mut().unwrap().tuple.sport = sport;
        f.verdict.expires = Some(Timestamp(f.ts.0 + secs * 1_000_000_000));
        f
    }

    #[test]
    fn a_flow_ends_when_the_clock_passes_its_entrys_expiry() {
        use TcpState::*;
        let mut t = FlowTracker::new(100, true);
        let mut done = Vec::new();
        // port 1000: created at frame 1 (1 s), expires at 11 s; port 2000: created at frame 2,
        // refreshed by frame 9 to expire at 19 s
        t.packet(&expiring(creates(TestFrame::tcp(1, "S"), SynSent), 1000, 10).obs(), &mut done);
        t.packet(&expiring(creates(TestFrame::tcp(2, "S"), SynSent), 2000, 10).obs(), &mut done);
        t.packet(&expiring(met(TestFrame::tcp(9, "."), 2, CreatedBy::Syn, Dir::Original, SynSent, SynSent), 2000, 10).obs(), &mut done);
        // at 11 s, port 1000's entry has just expired, less than the grace ago: a packet
        // stamped a little earlier could still find it
        t.packet(&expiring(creates(TestFrame::tcp(11, "S"), SynSent), 3000, 100).obs(), &mut done);
        assert!(done.is_empty(), "{done:?}");
        // at 13 s it is over; port 2000's first deadline has passed too, but it was refreshed
        t.packet(&expiring(creates(TestFrame::tcp(13, "S"), SynSent), 4000, 100).obs(), &mut done);
        let ended: Vec<(u64, Option<Ended>)> = done.iter().map(|f| (f.first_frame.number, f.ended)).collect();
        assert_eq!(ended, [(1, Some(Ended::Expired))]);
        // at 21 s port 2000 is over as well; the rest are open at the end
        t.packet(&expiring(creates(TestFrame::tcp(21, "S"), SynSent), 5000, 100).obs(), &mut done);
        assert_eq!(done.iter().map(|f| f.first_frame.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(done[1].frames, 2);
        let open: Vec<u64> = t.finish().iter().map(|f| f.first_frame.number).collect();
        assert_eq!(open, [11, 13, 21]);
    }

    #[test]
    fn flows_ending_at_one_frame_come_by_expiry_not_by_the_deadline_they_were_filed_under() {
        use TcpState::*;
        let mut t = FlowTracker::new(100, true);
        let mut done = Vec::new();
        // port 1000: filed at 1 + 120 s, then refreshed to expire in 5 days; port 2000: filed
        // and expiring at 3 + 200 s
        t.packet(&expiring(creates(TestFrame::tcp(1, "S"), SynSent), 1000, 120).obs(), &mut done);
        t.packet(&expiring(met(TestFrame::tcp(2, "."), 1, CreatedBy::Syn, Dir::Original, SynSent, Established), 1000, 432_000).obs(), &mut done);
        t.packet(&expiring(creates(TestFrame::tcp(3, "S"), SynSent), 2000, 200).obs(), &mut done);
        // the clock jumps past both: port 2000 expired first
        t.packet(&expiring(creates(TestFrame::tcp(1_000_000, "S"), SynSent), 3000, 10).obs(), &mut done);
        assert_eq!(done.iter().map(|f| f.first_frame.number).collect::<Vec<_>>(), [3, 1]);
    }

    #[test]
    fn a_flow_filed_twice_under_one_deadline_ends_once() {
        use TcpState::*;
        let mut t = FlowTracker::new(100, true);
        let mut done = Vec::new();
        // port 1000: filed under its expiry at 101 s; lowered to 52 s (filed again); raised
        // back to exactly 101 s, which the sweep at 52 s files a second time
        t.packet(&expiring(creates(TestFrame::tcp(1, "S"), SynSent), 1000, 100).obs(), &mut done);
        t.packet(&expiring(met(TestFrame::tcp(2, "."), 1, CreatedBy::Syn, Dir::Original, SynSent, Established), 1000, 50).obs(), &mut done);
        t.packet(&expiring(met(TestFrame::tcp(3, "."), 1, CreatedBy::Syn, Dir::Original, Established, Established), 1000, 98).obs(), &mut done);
        // the clock passes 52 s, then 101 s: both filings under 101 s come due at once
        t.packet(&expiring(creates(TestFrame::tcp(60, "S"), SynSent), 2000, 1000).obs(), &mut done);
        assert!(done.is_empty(), "port 1000 expires at 101 s, not 52 s");
        t.packet(&expiring(creates(TestFrame::tcp(110, "S"), SynSent), 3000, 1000).obs(), &mut done);
        assert_eq!(done.iter().map(|f| f.first_frame.number).collect::<Vec<_>>(), [1]);
    }

    /// A flow whose expiry is lowered and then raised back to the same instant, again and again
    /// (packets whose timestamps go back), while the clock moves on: each sweep of a lowered
    /// deadline files it under its expiry again, and the filings that went stale under that
    /// same instant must not pile up next to it.
    #[test]
    fn an_expiry_lowered_and_raised_back_again_and_again_keeps_few_filings() {
        use TcpState::*;
        let mut t = FlowTracker::new(100, true);
        let mut done = Vec::new();
        t.packet(&expiring(creates(TestFrame::tcp(1, "S"), SynSent), 1000, 400_000).obs(), &mut done);
        let at = |f: TestFrame, secs: i64| TestFrame { ts: Timestamp::from_secs(T0 + secs), ..f };
        let far = Timestamp(TestFrame::tcp(1, "S").ts.0 + 400_000 * 1_000_000_000);
        let pkt = |n: u64, expires: Timestamp| {
            let mut f = met(TestFrame::tcp(n, "."), 1, CreatedBy::Syn, Dir::Original, Established, Established);
            f.segment.as_mut().unwrap().tuple.sport = 1000;
            f.verdict.expires = Some(expires);
            f
        };
        for s in 2..20_000i64 {
            let n = s as u64;
            t.packet(&at(pkt(n, Timestamp::from_secs(T0 + s + 1)), s).obs(), &mut done);
            t.packet(&at(pkt(n, far), s).obs(), &mut done);
            t.clock(Timestamp::from_secs(T0 + s + 3), &mut done);
        }
        assert!(done.is_empty(), "the flow is still open");
        assert!(t.deadlines.len() <= 2 * t.index.len() + 64, "{} filings for one flow", t.deadlines.len());
    }

    #[test]
    fn deadlines_of_flows_that_ended_otherwise_do_not_pile_up() {
        // 300 connections with long-lived entries, room for 10: evicted flows leave their
        // filings behind until the wheel is compacted
        let mut t = FlowTracker::new(10, true);
        let mut done = Vec::new();
        for n in 1..=300u64 {
            let f = expiring(creates(TestFrame::tcp(n, "S"), TcpState::SynSent), 1000 + n as u16, 1000);
            t.packet(&f.obs(), &mut done);
        }
        assert!(t.index.len() <= 10);
        assert!(t.deadlines.len() <= 2 * t.index.len() + 64, "{} filings for {} flows", t.deadlines.len(), t.index.len());
    }

    #[test]
    fn eviction_is_bounded_and_marked() {
        // ten connections on ten ports, each a single SYN, with room for four
        let frames: Vec<TestFrame> = (1..=10)
            .map(|n| {
                let mut f = creates(TestFrame::tcp(n, "S"), TcpState::SynSent);
                f.segment.as_mut().unwrap().tuple.sport = 40000 + n as u16;
                f
            })
            .collect();
        let mut t = FlowTracker::new(4, true);
        let mut done = Vec::new();
        for f in &frames {
            t.packet(&f.obs(), &mut done);
            assert!(t.index.len() <= 4);
        }
        assert_eq!(done.len(), 6);
        assert!(done.iter().all(|f| f.ended == Some(Ended::Evicted)));
        let evicted: Vec<u64> = done.iter().map(|f| f.first_frame.number).collect();
        assert_eq!(evicted, [1, 2, 3, 4, 5, 6], "least recently seen first");
        let open: Vec<u64> = t.finish().iter().map(|f| f.first_frame.number).collect();
        assert_eq!(open, [7, 8, 9, 10]);
    }

    #[test]
    fn without_all_the_notable_flows_come_as_with_all() {
        // ten connections; the odd ones have an INVALID packet, after the SYN that created them
        let mut frames = Vec::new();
        for n in 1..=10 {
            let port = |mut f: TestFrame| {
                f.segment.as_mut().unwrap().tuple.sport = 40000 + n as u16;
                f
            };
            frames.push(port(creates(TestFrame::tcp(n, "S"), TcpState::SynSent)));
            if n % 2 == 1 {
                let syn = met(TestFrame::tcp(n, "S"), n, CreatedBy::Syn, Dir::Original, TcpState::SynSent, TcpState::SynSent);
                frames.push(port(syn.invalid(ReasonId::StateTableInvalid, &[])));
            }
        }
        let json = |flows: Vec<FlowRecord>| -> Vec<String> { flows.iter().map(|f| serde_json::to_string(f).unwrap()).collect() };
        let notable = json(flows_shown(100, true, &frames).into_iter().filter(|f| f.invalid > 0).collect());
        assert_eq!(notable.len(), 5);
        // Followed from the INVALID packet on, they still count their SYN (the entry's log).
        assert_eq!(json(flows_shown(100, false, &frames)), notable);
        assert!(notable.iter().all(|f| f.contains(r#""frames":2"#) && f.contains(r#""history":"SS!""#)));

        // With room for four, the bound counts the flows followed: every one with --all, only
        // the notable ones without.
        let evicted = |flows: Vec<FlowRecord>| flows.iter().filter(|f| f.invalid > 0 && f.ended == Some(Ended::Evicted)).count();
        assert_eq!(evicted(flows_shown(4, true, &frames)), 3);
        assert_eq!(evicted(flows_shown(4, false, &frames)), 1);
    }

    #[test]
    fn a_flow_seen_again_after_eviction_is_partial() {
        use TcpState::*;
        let other = |n: u64| {
            let mut f = creates(TestFrame::tcp(n, "S"), SynSent);
            f.segment.as_mut().unwrap().tuple.sport = 50000;
            f
        };
        let frames = vec![
            creates(TestFrame::tcp(1, "S"), SynSent),
            other(2),
            met(TestFrame::tcp(3, "S.").reversed(), 1, CreatedBy::Syn, Dir::Reply, SynSent, SynRecv),
        ];
        let f = flows(1, &frames);
        let last = f.iter().find(|f| f.first_frame.number == 3).expect("the connection again");
        assert!(last.partial);
        assert_eq!(last.created_frame.map(|c| c.number), Some(1));
        assert_eq!(last.states, [SynSent, SynRecv]);
        assert_eq!(last.history, "h");
    }

    #[test]
    fn rows_keep_notable_flows_up_to_the_cap() {
        let mut rows = FlowRows::new(false, 1);
        for f in stale_tuple() {
            rows.packet(&f.obs());
        }
        rows.finish();
        assert_eq!(rows.rows.len(), 1, "only the flow with INVALID packets");
        assert_eq!(rows.rows[0].created_frame.unwrap().number, 20);
        let mut all = FlowRows::new(true, 1);
        for f in stale_tuple() {
            all.packet(&f.obs());
        }
        all.finish();
        assert_eq!((all.rows.len(), all.omitted), (1, 1));
    }
}
