//! Where kernel profiles disagree, in words: the note on a packet ("INVALID on 5.14, ignored
//! since 6.1") and the summary's line on each compared kernel.

use crate::conntrack::profile::Profile;
use crate::engine::{KernelCounts, Summary};
use crate::verdict::KernelVerdict;

/// The note for a packet the kernels judge differently, or `None` when they agree.
///
/// Kernels are ordered oldest to newest and runs of neighbours with the same verdict merged,
/// so the note reads as a history: each verdict with the versions that give it, the newest
/// one as "since". A verdict other than this run's names its reason when its kernels agree on
/// one (this run's reason is in the report already).
pub fn note(kernels: &[KernelVerdict]) -> Option<String> {
    let this_run = kernels.first()?.kernel;
    let mut ordered: Vec<&KernelVerdict> = kernels.iter().collect();
    // Profile::names() lists the eras newest first.
    let names = Profile::names();
    ordered.sort_by_key(|k| std::cmp::Reverse(names.iter().position(|n| *n == k.kernel).unwrap_or(0)));
    let first = ordered.first()?.outcome();
    if ordered.iter().all(|k| k.outcome() == first) {
        return None;
    }
    let groups: Vec<&[&KernelVerdict]> = ordered.chunk_by(|a, b| a.outcome() == b.outcome()).collect();
    let last = groups.len() - 1;
    let parts: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (oldest, newest) = (g[0].kernel, g[g.len() - 1].kernel);
            let versions = match (i == last, g.len()) {
                (true, 1) => format!("on {newest}"),
                (true, _) => format!("since {oldest}"),
                (false, 1) => format!("on {oldest}"),
                (false, _) => format!("on {oldest}–{newest}"),
            };
            let reason = g[0].reason.filter(|r| g.iter().all(|k| k.reason == Some(*r)) && g.iter().all(|k| k.kernel != this_run));
            match reason {
                Some(r) => format!("{} ({r}) {versions}", g[0].outcome()),
                None => format!("{} {versions}", g[0].outcome()),
            }
        })
        .collect();
    Some(parts.join(", "))
}

/// One line on the compared kernels for a summary, or `None` when none were compared.
pub fn summary_line(s: &Summary) -> Option<String> {
    if s.other_kernels.is_empty() {
        return None;
    }
    let (differ, agree): (Vec<_>, Vec<_>) = s.other_kernels.iter().partition(|k| k.differ > 0);
    // Kernels with the same counts share a clause: eras often differ from the run alike.
    let counts = |k: &KernelCounts| (k.invalid + k.dropped, k.ignored, k.differ);
    let mut parts: Vec<String> = Vec::new();
    for group in differ.chunk_by(|a, b| counts(a) == counts(b)) {
        let names: Vec<&str> = group.iter().map(|k| k.kernel).collect();
        let (invalid, ignored, differ) = counts(group[0]);
        let packets = if differ == 1 { "packet" } else { "packets" };
        parts.push(format!("{}: {invalid} INVALID, {ignored} ignored, {differ} {packets} judged otherwise", names.join(", ")));
    }
    if !agree.is_empty() {
        let names: Vec<&str> = agree.iter().map(|k| k.kernel).collect();
        parts.push(format!("same verdicts on {}", names.join(", ")));
    }
    let mut line = parts.join("; ");
    if !differ.is_empty() {
        line.push_str(" (--kernel NAME shows a kernel's packets)");
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Action, CtState, ReasonId};

    fn k(kernel: &'static str, outcome: &str) -> KernelVerdict {
        let (ct_state, verdict, reason) = match outcome {
            "INVALID" => (CtState::Invalid, Action::Invalid, Some(ReasonId::StateTableInvalid)),
            "ignored" => (CtState::Established, Action::Ignore, Some(ReasonId::StateTableIgnored)),
            "new" => (CtState::New, Action::Accept, None),
            _ => (CtState::Established, Action::Accept, None),
        };
        KernelVerdict { kernel, ct_state, verdict, reason }
    }

    /// This run's verdict first, then the other kernels newest first, as the engine gives them.
    fn kernels(outcomes: [&str; 6]) -> Vec<KernelVerdict> {
        ["latest", "6.1", "5.14", "4.18", "3.10", "2.6.18"].iter().zip(outcomes).map(|(n, o)| k(n, o)).collect()
    }

    #[test]
    fn agreeing_kernels_need_no_note() {
        assert_eq!(note(&kernels(["INVALID"; 6])), None);
        assert_eq!(note(&[]), None);
    }

    /// Outcomes of latest, 6.1, 5.14, 4.18, 3.10, 2.6.18, and the note they read as.
    #[test]
    fn notes_read_as_a_history() {
        let cases = [
            // the example
            (
                ["ignored", "ignored", "INVALID", "ignored", "ignored", "ignored"],
                "ignored (state-table-ignored) on 2.6.18–4.18, INVALID (state-table-invalid) on 5.14, ignored since 6.1",
            ),
            // only the oldest kernel differs
            (["new", "new", "new", "new", "new", "INVALID"], "INVALID (state-table-invalid) on 2.6.18, new since 3.10"),
            // only latest differs
            (["ignored", "INVALID", "INVALID", "INVALID", "INVALID", "INVALID"], "INVALID (state-table-invalid) on 2.6.18–6.1, ignored on latest"),
        ];
        for (outcomes, want) in cases {
            assert_eq!(note(&kernels(outcomes)).as_deref(), Some(want), "{outcomes:?}");
        }
    }

    #[test]
    fn a_run_on_an_older_kernel_is_placed_by_age() {
        // this run is 5.14; the others follow newest first
        let list: Vec<_> = [("5.14", "INVALID"), ("latest", "ignored"), ("6.1", "ignored"), ("4.18", "INVALID"), ("3.10", "INVALID"), ("2.6.18", "INVALID")]
            .iter()
            .map(|(n, o)| k(n, o))
            .collect();
        assert_eq!(note(&list).as_deref(), Some("INVALID on 2.6.18–5.14, ignored (state-table-ignored) since 6.1"));
    }

    #[test]
    fn summary_names_the_kernels_that_differ() {
        let mut s = Summary::default();
        assert_eq!(summary_line(&s), None);
        let counts = |kernel, invalid, differ| KernelCounts { kernel, invalid, ignored: 0, dropped: 0, differ };
        s.other_kernels = vec![counts("6.1", 3, 0), counts("3.10", 5, 2), counts("2.6.18", 5, 2)];
        assert_eq!(
            summary_line(&s).unwrap(),
            "3.10, 2.6.18: 5 INVALID, 0 ignored, 2 packets judged otherwise; same verdicts on 6.1 (--kernel NAME shows a kernel's packets)"
        );
        s.other_kernels = vec![counts("6.1", 3, 0), counts("5.14", 3, 0)];
        assert_eq!(summary_line(&s).unwrap(), "same verdicts on 6.1, 5.14");
    }
}
