//! What a `tracker` corpus reaches, in the tracker's own terms: how often each verdict reason
//! and each state transition occurs over every input of the given directories.
//!
//! ```sh
//! cd fuzz && cargo run --example tracker_coverage -- corpus/tracker work/tracker
//! ```

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use ctreplay::verdict::ReasonId;
use ctreplay_fuzz::{TrackerInput, run_tracker};

fn main() -> std::io::Result<()> {
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut transitions: BTreeMap<String, u64> = BTreeMap::new();
    let (mut inputs, mut packets) = (0u64, 0u64);
    for dir in std::env::args().skip(1) {
        for entry in std::fs::read_dir(dir)? {
            let data = std::fs::read(entry?.path())?;
            let Ok(input) = TrackerInput::arbitrary(&mut Unstructured::new(&data)) else { continue };
            inputs += 1;
            for v in run_tracker(&input) {
                packets += 1;
                let reason = v.reason.map_or("(accepted)".to_string(), |r| r.id.as_str().to_string());
                *reasons.entry(reason).or_default() += 1;
                if let (Some(a), Some(b)) = (v.state_before, v.state_after)
                    && a != b
                {
                    *transitions.entry(format!("{a} -> {b}")).or_default() += 1;
                }
            }
        }
    }
    println!("{inputs} inputs, {packets} packets");
    println!("\nreasons ({} of {}):", reasons.len() - usize::from(reasons.contains_key("(accepted)")), ReasonId::ALL.len());
    for (k, n) in &reasons {
        println!("{n:>9}  {k}");
    }
    let missing: Vec<&str> = ReasonId::ALL.iter().map(|r| r.as_str()).filter(|r| !reasons.contains_key(*r)).collect();
    println!("never reached: {missing:?}");
    println!("\nstate changes ({}):", transitions.len());
    for (k, n) in &transitions {
        println!("{n:>9}  {k}");
    }
    Ok(())
}
