//! Writes seed inputs for every fuzz target from real captures:
//!
//! ```sh
//! cd fuzz && cargo run --example make_seeds -- corpus CAPTURE...
//! ```
//!
//! `capture` and `analyze` get the files themselves (the capture one behind its control byte, and
//! consecutive pairs joined by the split marker, so the merge has seeds too); `decode` gets the
//! frames in its own framing; `tracker` the decoded TCP segments as packets in its small space.

use std::fs;
use std::path::Path;

use ctreplay::capture::CaptureSet;
use ctreplay::decode::{Decoded, Decoder};
use ctreplay_fuzz::{DecodeFrame, LINK_TYPES, SeedMapper, TrackerConfig, TrackerInput, capture_input, decode_input};

/// Seeds bigger than this slow every execution down for little gain.
const MAX_OPS: usize = 400;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: make_seeds OUT_DIR CAPTURE...")?;
    let captures: Vec<String> = args.collect();
    for target in ["capture", "decode", "analyze", "tracker"] {
        fs::create_dir_all(Path::new(&out).join(target))?;
    }
    let write = |target: &str, name: &str, bytes: &[u8]| fs::write(Path::new(&out).join(target).join(name), bytes);
    let mut previous: Option<Vec<u8>> = None;
    for path in &captures {
        let name = Path::new(path).file_name().ok_or("capture path without a file name")?.to_string_lossy().into_owned();
        let bytes = fs::read(path)?;
        write("analyze", &name, &bytes)?;
        write("capture", &name, &capture_input(&[&bytes]))?;
        if let Some(prev) = &previous {
            write("capture", &format!("pair-{name}"), &capture_input(&[prev, &bytes]))?;
        }
        previous = Some(bytes);

        // Frames, copied out of the reader's buffer.
        let mut set = CaptureSet::open(&[path])?;
        let mut frames = Vec::new();
        while let Some(Ok(f)) = set.next_frame() {
            frames.push((f.ts, f.linktype, f.data.to_vec(), f.orig_len, f.direction));
        }
        let Some(link) = frames.first().and_then(|f| LINK_TYPES.iter().position(|l| *l == f.1)) else {
            eprintln!("{path}: no frames of a link type the decode target picks; no decode/tracker seeds");
            continue;
        };
        let mut decode_frames = Vec::new();
        let mut decoder = Decoder::new();
        let mut mapper = SeedMapper::new();
        let mut ops = Vec::new();
        let mut last_ts = frames[0].0;
        for (ts, linktype, data, orig_len, direction) in &frames {
            let gap = ts.0 - last_ts.0;
            last_ts = *ts;
            // The nearest of decode's time steps at or below the real gap.
            let step = [0i64, 1_000, 1_000_000, 1_000_000_000, 29_000_000_000, 31_000_000_000, 61_000_000_000]
                .iter()
                .rposition(|&s| s <= gap.max(0))
                .unwrap_or(0) as u8;
            decode_frames.push(DecodeFrame {
                data,
                cut: orig_len.saturating_sub(data.len() as u32),
                direction: *direction,
                step,
            });
            let frame = ctreplay::capture::Frame {
                file: 0,
                number: 0,
                ts: *ts,
                linktype: *linktype,
                data,
                orig_len: *orig_len,
                direction: *direction,
                offset: 0,
            };
            if let Decoded::Tcp(seg) = decoder.decode(&frame)
                && ops.len() < MAX_OPS
            {
                ops.push(mapper.op(&seg, gap));
            }
        }
        write("decode", &name, &decode_input(link as u8, &decode_frames))?;
        if !ops.is_empty() {
            write("tracker", &name, &TrackerInput { config: TrackerConfig::default(), ops }.to_bytes())?;
        }
    }
    Ok(())
}
