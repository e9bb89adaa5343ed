//! Differential test: the scenario fixtures (`fixtures/spec`, `fixtures/example`) against what
//! the live kernel said about them (`*.oracle*.jsonl`, produced by ct-oracle; kernel version in
//! `fixtures/oracle-environment.txt`). Every packet's ct state and log line, and the entry after
//! it: TCP state, status bits, window scales, per-direction flags and, back to back, the timeout.

mod common;

use common::{compare_one, oracle_settings, Comparison, Replay};
use ctreplay::engine::Timing;
use std::path::Path;

/// The sysctl each oracle variant file was made with.
fn variant_sysctls(variant: &str) -> Option<&'static [&'static str]> {
    Some(match variant {
        "" => &[],
        "be-liberal-1" => &["nf_conntrack_tcp_be_liberal=1"],
        "loose-0" => &["nf_conntrack_tcp_loose=0"],
        "ignore-invalid-rst-1" => &["nf_conntrack_tcp_ignore_invalid_rst=1"],
        "checksum-0" => &["nf_conntrack_checksum=0"],
        "max-retrans-1" => &["nf_conntrack_tcp_max_retrans=1"],
        _ => return None,
    })
}

/// The SCALE of a scenario's timed oracle run (`#oracle: --timed SCALE` in its description).
fn timed_scale(scn: &Path) -> u32 {
    let text = std::fs::read_to_string(scn).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("#oracle: --timed "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{} has a timed oracle run but no `#oracle: --timed SCALE` line", scn.display()))
}

#[test]
fn spec_fixtures_match_the_live_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Comparison::default();
    for dir in ["spec", "example"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        for oracle in files {
            let name = oracle.file_name().unwrap().to_string_lossy().into_owned();
            let Some((stem, rest)) = name.split_once(".oracle") else { continue };
            let variant = rest.trim_start_matches('-').trim_end_matches(".jsonl");
            let capture = root.join(dir).join(format!("{stem}.pcap"));
            let (settings, replay) = if variant == "timed" {
                // Replayed in (scaled) real time: our clock is the capture's.
                let mut s = oracle_settings(&[]);
                s.timing = Timing::Capture;
                (s, Replay::Timed { scale: timed_scale(&root.join(dir).join(format!("{stem}.scn"))) })
            } else {
                let sysctls = variant_sysctls(variant).unwrap_or_else(|| panic!("unknown oracle variant in {name}"));
                (oracle_settings(sysctls), Replay::BackToBack)
            };
            out.files += 1;
            compare_one(&capture, &oracle, &format!("{dir}/{name}"), &settings, replay, &mut out);
        }
    }
    eprintln!("{}", out.summary());
    assert!(out.files >= 200, "expected the ~220 oracle runs of the fixtures, found {}", out.files);
    assert!(out.mismatches.is_empty(), "{}", out.describe_mismatches(60));
}
