//! Counting a run for its [`Summary`] without allocating per frame.
//!
//! The summary's maps are keyed by strings (they are part of the output contract). Building a
//! key string for every frame cost an allocation per packet, so frames are counted here in
//! arrays and small lists keyed by the values themselves, and turned into strings once, at the
//! end.

use super::{KernelCounts, Summary};
use crate::capture::LinkType;
use crate::decode::Skip;
use crate::verdict::{Action, CtState, KernelVerdict, ReasonId, Verdict};

#[derive(Default)]
pub(super) struct Tally {
    frames: u64,
    tcp_packets: u64,
    flows: u64,
    invalid: u64,
    ignored: u64,
    dropped: u64,
    /// By `CtState as usize`.
    ct_states: [u64; 6],
    /// By `ReasonId as usize`.
    reasons: [u64; ReasonId::ALL.len()],
    /// A capture has one or a few link types, and a few kinds of skipped frames: a list searched
    /// from the front beats a map.
    link_types: Vec<(LinkType, u64)>,
    skipped: Vec<(Skip, u64)>,
    /// Each compared kernel's counts, kept as differences from this run's: only packets on
    /// which the kernels disagree are seen here.
    kernels: Vec<KernelDelta>,
}

#[derive(Default)]
struct KernelDelta {
    kernel: &'static str,
    /// Per [`Action`] the kernel gives more (or fewer) packets than this run: by `Action as usize`.
    actions: [i64; 5],
    differ: u64,
}

fn bump<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K) {
    add(list, key, 1);
}

fn add<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K, n: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => *count += n,
        None => list.push((key, n)),
    }
}

/// What is counted of quiet frames ([`Tally::tracked`]), kept by a tracker thread for the frames
/// of a batch it judged quiet, so that the merger need not look at them one by one.
#[derive(Default)]
pub(super) struct QuietCounts {
    link_types: Vec<(LinkType, u64)>,
    /// By `CtState as usize`.
    ct_states: [u64; 6],
    /// Entries the quiet frames created.
    flows: u64,
}

impl QuietCounts {
    pub fn add(&mut self, linktype: LinkType, ct_state: CtState, created: bool) {
        bump(&mut self.link_types, linktype);
        self.ct_states[ct_state as usize] += 1;
        self.flows += u64::from(created);
    }

    pub fn frames(&self) -> u64 {
        self.ct_states.iter().sum()
    }

    pub fn clear(&mut self) {
        self.link_types.clear();
        self.ct_states = [0; 6];
        self.flows = 0;
    }
}

const CT_STATES: [CtState; 6] =
    [CtState::New, CtState::Established, CtState::Related, CtState::Invalid, CtState::Untracked, CtState::Skipped];

impl Tally {
    /// A tally that also counts the verdicts of the `compared` kernels.
    pub fn new(compared: &[&'static str]) -> Tally {
        let kernels = compared.iter().map(|&kernel| KernelDelta { kernel, ..KernelDelta::default() }).collect();
        Tally { kernels, ..Tally::default() }
    }

    /// Counts a packet the kernels disagree on: `kernels` holds this run's verdict, then each
    /// compared kernel's, in the order given to [`Tally::new`].
    pub fn kernels_differ(&mut self, kernels: &[KernelVerdict]) {
        let (main, others) = kernels.split_first().expect("this run's verdict comes first");
        for (delta, other) in self.kernels.iter_mut().zip(others) {
            if !other.same_outcome(main) {
                delta.differ += 1;
                delta.actions[other.verdict as usize] += 1;
                delta.actions[main.verdict as usize] -= 1;
            }
        }
    }

    pub fn frame(&mut self, linktype: LinkType, v: &Verdict, skip: Option<&Skip>) {
        if let Some(s) = skip {
            self.frames += 1;
            bump(&mut self.link_types, linktype);
            bump(&mut self.skipped, skip_class(s));
            return;
        }
        self.tracked(linktype, v.ct_state);
        if v.created_entry() {
            self.created();
        }
        match v.action {
            Action::Invalid => self.invalid += 1,
            Action::Ignore => self.ignored += 1,
            Action::Drop => self.dropped += 1,
            Action::Accept | Action::Skipped => {}
        }
        if let Some(r) = &v.reason {
            self.reasons[r.id as usize] += 1;
        }
    }

    /// Counts a frame conntrack saw, by its `ct state`: all there is to count of a quiet frame
    /// (accepted without a word on an entry that existed before).
    pub fn tracked(&mut self, linktype: LinkType, ct_state: CtState) {
        self.frames += 1;
        bump(&mut self.link_types, linktype);
        self.tcp_packets += 1;
        self.ct_states[ct_state as usize] += 1;
    }

    /// Counts an entry created (a flow), by a packet counted apart.
    pub fn created(&mut self) {
        self.flows += 1;
    }

    /// Counts quiet frames counted elsewhere, as [`Tally::tracked`] and [`Tally::created`] count
    /// each.
    pub fn add_quiet(&mut self, quiet: &QuietCounts) {
        let frames = quiet.frames();
        self.frames += frames;
        self.tcp_packets += frames;
        self.flows += quiet.flows;
        for &(linktype, n) in &quiet.link_types {
            add(&mut self.link_types, linktype, n);
        }
        for (count, n) in self.ct_states.iter_mut().zip(quiet.ct_states) {
            *count += n;
        }
    }

    /// Writes the counts into `summary`'s fields.
    pub fn fill(&self, summary: &mut Summary) {
        summary.frames = self.frames;
        summary.tcp_packets = self.tcp_packets;
        summary.flows = self.flows;
        summary.invalid = self.invalid;
        summary.ignored = self.ignored;
        summary.dropped = self.dropped;
        for (state, &n) in CT_STATES.iter().zip(&self.ct_states) {
            if n > 0 {
                summary.ct_states.insert(state.as_str().into(), n);
            }
        }
        for (id, &n) in ReasonId::ALL.iter().zip(&self.reasons) {
            if n > 0 {
                summary.reasons.insert(id.as_str().into(), n);
            }
        }
        for (l, n) in &self.link_types {
            *summary.link_types.entry(l.to_string()).or_default() += n;
        }
        for (s, n) in &self.skipped {
            *summary.skipped.entry(skip_text(s)).or_default() += n;
        }
        let shifted = |base: u64, delta: i64| base.saturating_add_signed(delta);
        summary.other_kernels = self
            .kernels
            .iter()
            .map(|k| KernelCounts {
                kernel: k.kernel,
                invalid: shifted(self.invalid, k.actions[Action::Invalid as usize]),
                ignored: shifted(self.ignored, k.actions[Action::Ignore as usize]),
                dropped: shifted(self.dropped, k.actions[Action::Drop as usize]),
                differ: k.differ,
            })
            .collect();
    }
}

/// Groups skip reasons for the summary (without per-frame numbers such as the ethertype).
fn skip_class(s: &Skip) -> Skip {
    match s {
        Skip::NotIp { .. } => Skip::NotIp { ethertype: 0 },
        other => other.clone(),
    }
}

fn skip_text(s: &Skip) -> String {
    match s {
        Skip::UnsupportedLinkType(l) => format!("unsupported link type {l}"),
        Skip::NotIp { .. } => "not IP".into(),
        Skip::NotTcp { protocol } => format!("not TCP (IP protocol {protocol})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_reason_arrays_follow_the_enums() {
        for (i, s) in CT_STATES.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        for (i, r) in ReasonId::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn quiet_frames_counted_apart_count_as_one_by_one() {
        let frames = [
            (LinkType::ETHERNET, CtState::Established, false),
            (LinkType::RAW, CtState::New, true),
            (LinkType::ETHERNET, CtState::Established, false),
        ];
        let (mut one_by_one, mut apart, mut quiet) = (Tally::default(), Tally::default(), QuietCounts::default());
        apart.tracked(LinkType::RAW, CtState::Invalid);
        one_by_one.tracked(LinkType::RAW, CtState::Invalid);
        for (linktype, ct_state, created) in frames {
            one_by_one.tracked(linktype, ct_state);
            if created {
                one_by_one.created();
            }
            quiet.add(linktype, ct_state, created);
        }
        assert_eq!(quiet.frames(), 3);
        apart.add_quiet(&quiet);
        let (mut a, mut b) = (Summary::default(), Summary::default());
        one_by_one.fill(&mut a);
        apart.fill(&mut b);
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!((b.frames, b.tcp_packets, b.flows, b.link_types["EN10MB (1)"]), (4, 4, 1, 2));
        quiet.clear();
        assert_eq!(quiet.frames(), 0);
        apart.add_quiet(&quiet);
        apart.fill(&mut b);
        assert_eq!(b.flows, 1, "cleared counts add no flow");
    }

    #[test]
    fn skips_are_grouped_as_before() {
        let mut t = Tally::default();
        let v = Verdict::skipped();
        t.frame(LinkType::ETHERNET, &v, Some(&Skip::NotIp { ethertype: 0x0806 }));
        t.frame(LinkType::ETHERNET, &v, Some(&Skip::NotIp { ethertype: 0x88cc }));
        t.frame(LinkType::RAW, &v, Some(&Skip::NotTcp { protocol: 17 }));
        let mut s = Summary::default();
        t.fill(&mut s);
        assert_eq!(s.skipped["not IP"], 2);
        assert_eq!(s.skipped["not TCP (IP protocol 17)"], 1);
        assert_eq!(s.link_types["EN10MB (1)"], 2);
        assert_eq!((s.frames, s.tcp_packets), (3, 0));
        assert!(s.ct_states.is_empty());
    }
}
