//! Reads every capture of the shared real-world corpus (`../shared/corpus`, outside the crate)
//! and checks the frame count against `MANIFEST.tsv`, whose `packets` column is what tshark and
//! capinfos count. Frame numbers are meant to equal Wireshark's `frame.number`, so any difference
//! in count is a bug in one of the readers.

use std::path::Path;
use std::time::Instant;

use ctreplay::capture::{CaptureErrorKind, CaptureSet};

/// The one deliberately corrupt file. tshark counts 2 frames: its reader guesses, from how odd
/// the second record looks, that the file uses another (patched libpcap) record layout, and
/// reads one more bogus frame before failing. We trust the standard layout: 1 frame, then a
/// record length beyond any real frame.
const CORRUPT: &str = "suricata-verify/bug-6875-01__fuzz.pcap";
const CORRUPT_GOOD_FRAMES: u64 = 1;

#[test]
fn corpus_frame_counts_match_tshark() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let manifest = corpus.join("MANIFEST.tsv");
    if !corpus.exists() {
        eprintln!("note: no corpus at {}; nothing to check", corpus.display());
        return;
    }
    // From here on the corpus is present: a missing or empty manifest is a failure, not a skip.
    let text = std::fs::read_to_string(&manifest).expect("MANIFEST.tsv is readable");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("MANIFEST.tsv has a header")
        .split('\t')
        .collect();
    let column = |name: &str| header.iter().position(|&c| c == name).expect(name);
    let (file_col, packets_col, bytes_col) = (column("file"), column("packets"), column("bytes"));

    let started = Instant::now();
    let mut problems = Vec::new();
    let (mut files, mut frames) = (0, 0);
    let mut corrupt_seen = false;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let row: Vec<&str> = line.split('\t').collect();
        let name = row[file_col];
        let expected: u64 = row[packets_col].parse().expect("packets is a number");
        let size: u64 = row[bytes_col].parse().expect("bytes is a number");
        let path = corpus.join(name);
        let path = path.to_str().expect("UTF-8 path");

        let mut set = match CaptureSet::open(&[path]) {
            Ok(set) => set,
            Err(e) => {
                problems.push(format!("{name}: cannot open: {e}"));
                continue;
            }
        };
        let mut errors = Vec::new();
        let mut count = 0u64;
        while let Some(next) = set.next_frame() {
            match next {
                Ok(frame) => {
                    count += 1;
                    if frame.number != count {
                        problems.push(format!("{name}: frame {count} numbered {}", frame.number));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        files += 1;
        frames += count;
        let info = &set.files()[0];

        if name == CORRUPT {
            corrupt_seen = true;
            let [e] = &errors[..] else {
                problems.push(format!("{name}: expected one error, got {errors:?}"));
                continue;
            };
            if !matches!(e.kind, CaptureErrorKind::AbsurdRecordLength(_))
                || !e.to_string().contains(name)
                || count != CORRUPT_GOOD_FRAMES
            {
                problems.push(format!("{name}: {count} frames, then {e}"));
            }
            continue;
        }
        if !errors.is_empty() {
            let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            problems.push(format!("{name}: {}", errors.join("; ")));
        }
        if count != expected {
            problems.push(format!("{name}: {count} frames, tshark counts {expected}"));
        }
        if info.frames != count || (!info.gzip && info.bytes != size) {
            problems.push(format!(
                "{name}: counters {} frames {} bytes",
                info.frames, info.bytes
            ));
        }
    }
    let elapsed = started.elapsed();
    eprintln!("corpus: {files} files, {frames} frames in {elapsed:.2?}");
    assert!(files > 0, "MANIFEST.tsv lists no capture");
    assert!(
        corrupt_seen,
        "{CORRUPT} is no longer in the corpus: update this test"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
