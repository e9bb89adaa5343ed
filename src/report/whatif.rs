//! Printing a what-if comparison for people.

use super::reasons;
use crate::whatif::WhatIf;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use std::io::{self, Write};

/// The what-if report: the baseline's INVALID packets, which changes remove or add some, the
/// smallest change that removes them all, and why the usual knobs cannot help.
pub fn write_table(out: &mut dyn Write, w: &WhatIf, captures: &[String]) -> io::Result<()> {
    let by_reason = w.by_reason();
    writeln!(out, "What if … on {} (baseline: {}): {} INVALID or dropped packets", captures.join(", "), w.baseline, w.failures.len())?;
    for (id, n) in &by_reason {
        let info = reasons::info(*id);
        writeln!(out, "  {id}: {n} ({})", info.category.as_str())?;
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED.with_rounded_corners());
    t.set_content_arrangement(ContentArrangement::Dynamic);
    if !io::IsTerminal::is_terminal(&io::stdout()) {
        t.force_no_tty().set_width(140);
    }
    t.set_header(vec!["change", "removes", "adds", "INVALID after", "frames removed", "frames added"]);
    let frames = |v: &[(crate::verdict::FrameRef, crate::verdict::ReasonId)]| {
        let mut s: Vec<String> = v.iter().take(8).map(|(f, _)| f.number.to_string()).collect();
        if v.len() > 8 {
            s.push(format!("… +{}", v.len() - 8));
        }
        s.join(" ")
    };
    let mut unchanged = Vec::new();
    for o in &w.outcomes {
        if o.removes.is_empty() && o.adds.is_empty() {
            unchanged.push(o.change.as_str());
            continue;
        }
        t.add_row(vec![
            o.change.clone(),
            o.removes.len().to_string(),
            o.adds.len().to_string(),
            o.failures.to_string(),
            frames(&o.removes),
            frames(&o.adds),
        ]);
    }
    if t.row_count() > 0 {
        writeln!(out, "{t}")?;
    }
    if !unchanged.is_empty() {
        writeln!(out, "No difference: {}", unchanged.join(", "))?;
    }
    if w.failures.is_empty() {
        return Ok(());
    }
    match w.complete_fixes().first() {
        Some(best) => writeln!(
            out,
            "Smallest change that removes them all: {} (removes {}, adds {})",
            best.change,
            best.removes.len(),
            best.adds.len()
        )?,
        None => writeln!(out, "No single change removes them all.")?,
    }
    // Say plainly why the knob everyone tries first does not help.
    if let Some(liberal) = w.outcomes.iter().find(|o| o.change == "nf_conntrack_tcp_be_liberal=1") {
        let untouched: Vec<_> = by_reason.keys().filter(|id| !reasons::info(**id).be_liberal_helps).collect();
        if !untouched.is_empty() && liberal.removes.len() < w.failures.len() {
            let names: Vec<String> = untouched.iter().map(|id| id.to_string()).collect();
            writeln!(
                out,
                "nf_conntrack_tcp_be_liberal=1 cannot help with {}: be_liberal only relaxes the window (sequence/ACK) \
                 checks, and these verdicts come from {}, which decides before any window check runs.",
                names.join(", "),
                untouched
                    .iter()
                    .map(|id| reasons::info(**id).category.decided_by())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
    }
    Ok(())
}
