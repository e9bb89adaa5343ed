//! A connection's packets in letters (after Zeek's `history`): the alphabet, and the brief
//! record a conntrack entry keeps of its own packets ([`EntryLog`]).
//!
//! Why the entry keeps one: a report shows the flows that had a notable packet, with their
//! counts, states and history from the start. Following every flow in the report to find the
//! few it shows cost a third of a run (a cache miss per packet on a flow table as large as
//! conntrack's own). The tracker has the entry in its cache anyway, so it writes the brief
//! record there, and a report starts following a flow at its first notable packet, from what
//! the entry has kept (`report::flows`).

use crate::capture::Timestamp;
use crate::conntrack::state::{Dir, TcpState};
use crate::decode::Segment;
use crate::verdict::Action;

/// The letters, in the order of their bits in a `seen` set.
pub const LETTERS: &[u8] = b"SHAFRDN";

/// States recorded per flow; a flow flapping between states longer than this stops recording.
pub const MAX_STATES: usize = 32;

/// The letter of a packet: the class that matters most to conntrack (RST over SYN over FIN, as
/// its state table ranks them), then data, then a bare ACK, `N` for none of these.
pub fn letter(seg: &Segment) -> u8 {
    let f = seg.flags;
    if f.rst() {
        b'R'
    } else if f.syn() {
        if f.ack() { b'H' } else { b'S' }
    } else if f.fin() {
        b'F'
    } else if seg.payload_len() > 0 {
        b'D'
    } else if f.ack() {
        b'A'
    } else {
        b'N'
    }
}

/// The letters an unmarked packet writes, in order: its [`letter`], after a `D` when it is a
/// FIN carrying data (as Zeek, the history says both). A marked packet writes only its letter.
pub fn letters(seg: &Segment, marked: bool) -> impl Iterator<Item = u8> {
    let letter = letter(seg);
    let data_first = letter == b'F' && seg.payload_len() > 0 && !marked;
    // (An array rather than a chain of iterators: this runs for most packets.)
    [b'D', letter].into_iter().skip(usize::from(!data_first))
}

/// The mark a packet's letter gets: `!` when conntrack classed it INVALID or dropped it, `~`
/// when it ignored it; none when it accepted it.
pub fn mark(action: Action) -> Option<u8> {
    match action {
        Action::Invalid | Action::Drop => Some(b'!'),
        Action::Ignore => Some(b'~'),
        Action::Accept | Action::Skipped => None,
    }
}

/// The position of an unmarked (letter, direction) token in a `seen` set: one bit each.
fn token_index(letter: u8, dir: Dir) -> usize {
    usize::from(LETTER_PLACE[usize::from(letter)]) * 2 + dir.index()
}

/// Each letter's place in [`LETTERS`], by its byte (0 for any other byte), worked out once at
/// compile time: a token is indexed for most packets, and a search of the alphabet showed.
const LETTER_PLACE: [u8; 256] = {
    let mut place = [0u8; 256];
    let mut i = 0;
    while i < LETTERS.len() {
        place[LETTERS[i] as usize] = i as u8;
        i += 1;
    }
    place
};

/// Zeek's rule for an unmarked letter: it is written only the first time it occurs in its
/// direction (since the last mark). `seen` holds the tokens written so far, and learns this
/// one.
pub fn first_time(seen: &mut u16, letter: u8, dir: Dir) -> bool {
    let bit = 1 << token_index(letter, dir);
    let first = *seen & bit == 0;
    *seen |= bit;
    first
}

/// Whether a list of states that holds `count`, the last being `last`, records `s`: each
/// state differs from the one before, and at most [`MAX_STATES`] are kept.
pub fn records_state(last: Option<TcpState>, count: usize, s: TcpState) -> bool {
    count < MAX_STATES && last != Some(s)
}

/// What a conntrack entry keeps of its packets, so that a report can start following its flow
/// late and still tell it from the start: when and by which packet it was born, how many
/// packets met it, the states it passed through, and its history until a packet was marked
/// (INVALID, dropped or ignored). Until then the history holds each (letter, direction) at most
/// once (Zeek's rule), 14 tokens at most, which fit in a word. 56 bytes, no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryLog {
    /// The capture sequence number of the packet that created the entry (the order flows are
    /// listed in).
    pub born: u64,
    /// That packet's capture time.
    pub first_ts: Timestamp,
    /// Packets that met the entry, INVALID ones included, its creator first.
    pub packets: u64,
    /// The history's tokens, [`token_index`] in 4 bits each, the oldest lowest.
    tokens: u64,
    token_count: u8,
    /// The tokens written, as bits of [`token_index`].
    seen: u16,
    /// A packet was marked: the history above stopped there.
    pub marked: bool,
    /// A report has shown a packet of the entry (a notable one), so it follows the entry's flow
    /// from then on ([`crate::conntrack::Conntrack::show_entry`]).
    pub shown: bool,
    state_count: u8,
    /// The states passed through, each different from the one before, two to a byte.
    states: [u8; MAX_STATES / 2],
}

impl EntryLog {
    pub fn new(born: u64, first_ts: Timestamp) -> EntryLog {
        EntryLog {
            born,
            first_ts,
            packets: 0,
            tokens: 0,
            token_count: 0,
            seen: 0,
            marked: false,
            shown: false,
            state_count: 0,
            states: [0; MAX_STATES / 2],
        }
    }

    /// Records a packet that met the entry (or created it): its direction, the state it left
    /// the entry in, and whether it was marked.
    // Always inlined, for the same reason as `Table::touched` (~20 instructions a packet).
    #[inline(always)]
    pub fn add(&mut self, seg: &Segment, dir: Dir, state_after: Option<TcpState>, marked: bool) {
        self.packets += 1;
        if let Some(s) = state_after {
            self.push_state(s);
        }
        if marked {
            self.marked = true;
        }
        if self.marked {
            return;
        }
        for letter in letters(seg, false) {
            if first_time(&mut self.seen, letter, dir) {
                self.tokens |= (token_index(letter, dir) as u64) << (4 * self.token_count);
                self.token_count += 1;
            }
        }
    }

    fn push_state(&mut self, s: TcpState) {
        let n = usize::from(self.state_count);
        let last = n.checked_sub(1).map(|last| self.state(last));
        if records_state(last, n, s) {
            self.states[n / 2] |= (s as u8) << (4 * (n % 2));
            self.state_count += 1;
        }
    }

    /// The `n`th state recorded.
    fn state(&self, n: usize) -> TcpState {
        TcpState::ALL[usize::from((self.states[n / 2] >> (4 * (n % 2))) & 0xf)]
    }

    /// The states the entry passed through, in order.
    pub fn states(&self) -> impl Iterator<Item = TcpState> + '_ {
        (0..usize::from(self.state_count)).map(|n| self.state(n))
    }

    /// The history's tokens, in order, as (letter, direction); complete unless [`Self::marked`].
    pub fn tokens(&self) -> impl Iterator<Item = (u8, Dir)> + '_ {
        (0..u32::from(self.token_count)).map(|n| {
            let index = ((self.tokens >> (4 * n)) & 0xf) as usize;
            let dir = if index.is_multiple_of(2) { Dir::Original } else { Dir::Reply };
            (LETTERS[index / 2], dir)
        })
    }

    /// The `seen` set of the tokens so far ([`first_time`]).
    pub fn seen(&self) -> u16 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;
    use crate::report::test_support::TestFrame;

    fn seg(flags: u8, payload: u32) -> Segment {
        let mut s = TestFrame::tcp(1, ".").segment.expect("a TCP frame");
        s.flags = TcpFlags(flags);
        s.l4_len = u32::from(s.doff) * 4 + payload;
        s
    }

    #[test]
    fn a_token_index_is_its_letters_place_in_the_alphabet() {
        for (place, &letter) in LETTERS.iter().enumerate() {
            assert_eq!(token_index(letter, Dir::Original), place * 2, "{}", letter as char);
            assert_eq!(token_index(letter, Dir::Reply), place * 2 + 1, "{}", letter as char);
        }
    }

    #[test]
    fn letters_rank_rst_over_syn_over_fin_and_add_data_before_a_fin() {
        assert_eq!(letter(&seg(TcpFlags::RST | TcpFlags::ACK, 0)), b'R');
        assert_eq!(letter(&seg(TcpFlags::SYN | TcpFlags::ACK, 0)), b'H');
        assert_eq!(letter(&seg(TcpFlags::FIN | TcpFlags::ACK, 0)), b'F');
        assert_eq!(letter(&seg(TcpFlags::ACK, 10)), b'D');
        assert_eq!(letter(&seg(TcpFlags::ACK, 0)), b'A');
        assert_eq!(letter(&seg(0, 0)), b'N');
        let fin_with_data = seg(TcpFlags::FIN | TcpFlags::ACK, 10);
        assert_eq!(letters(&fin_with_data, false).collect::<Vec<_>>(), b"DF");
        assert_eq!(letters(&fin_with_data, true).collect::<Vec<_>>(), b"F");
    }

    #[test]
    fn an_entry_log_keeps_each_token_once_and_stops_at_a_mark() {
        let mut log = EntryLog::new(7, Timestamp(0));
        log.add(&seg(TcpFlags::SYN, 0), Dir::Original, Some(TcpState::SynSent), false);
        log.add(&seg(TcpFlags::SYN | TcpFlags::ACK, 0), Dir::Reply, Some(TcpState::SynRecv), false);
        for _ in 0..3 {
            log.add(&seg(TcpFlags::ACK, 100), Dir::Original, Some(TcpState::Established), false);
        }
        assert_eq!(log.tokens().collect::<Vec<_>>(), [(b'S', Dir::Original), (b'H', Dir::Reply), (b'D', Dir::Original)]);
        assert_eq!(log.states().collect::<Vec<_>>(), [TcpState::SynSent, TcpState::SynRecv, TcpState::Established]);
        log.add(&seg(TcpFlags::RST, 0), Dir::Reply, Some(TcpState::Established), true);
        log.add(&seg(TcpFlags::ACK, 0), Dir::Reply, Some(TcpState::Established), false);
        assert!(log.marked);
        assert_eq!(log.tokens().count(), 3, "nothing written after the mark");
        assert_eq!((log.packets, log.born), (7, 7));
    }

    #[test]
    fn every_token_fits_and_states_stop_at_the_cap() {
        let mut log = EntryLog::new(1, Timestamp(0));
        let flags = [TcpFlags::SYN, TcpFlags::SYN | TcpFlags::ACK, TcpFlags::ACK, TcpFlags::FIN, TcpFlags::RST, 0];
        for dir in [Dir::Original, Dir::Reply] {
            for f in flags {
                log.add(&seg(f, 0), dir, None, false);
            }
            log.add(&seg(TcpFlags::ACK, 1), dir, None, false);
        }
        assert_eq!(log.tokens().count(), 14);
        for n in 0..100 {
            let s = if n % 2 == 0 { TcpState::Established } else { TcpState::FinWait };
            log.add(&seg(TcpFlags::ACK, 0), Dir::Original, Some(s), false);
        }
        assert_eq!(log.states().count(), MAX_STATES);
        assert_eq!(log.states().nth(31), Some(TcpState::FinWait));
    }
}
