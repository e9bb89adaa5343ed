//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use ctreplay::capture::CaptureError;
use ctreplay::engine::{self, Observation, RunInfo, Settings, Sink, Summary, TruncatedFrames, Vantage};
use ctreplay::verdict::CtState;
use serde_json::Value;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `../shared/corpus` next to the crate, if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    dir.join("MANIFEST.tsv").exists().then_some(dir)
}

/// What the engine said about one frame, reduced to what the oracle can tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub frame: u64,
    pub ct_state: String,
    pub kernel_log: Option<String>,
    pub flow: Option<String>,
}

/// A sink that keeps, for every frame, the ct state and the kernel log.
#[derive(Default)]
pub struct Collect {
    pub frames: Vec<Seen>,
    pub errors: Vec<String>,
}

impl Sink for Collect {
    fn begin(&mut self, _: &RunInfo) -> io::Result<()> {
        Ok(())
    }
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        let state = match obs.verdict.ct_state {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
            CtState::Skipped => "skipped",
        };
        self.frames.push(Seen {
            frame: obs.frame.number,
            ct_state: state.to_string(),
            kernel_log: obs.verdict.kernel_log(),
            flow: obs.segment.map(|s| s.tuple.to_string()),
        });
        Ok(())
    }
    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(err.to_string());
        Ok(())
    }
    fn end(&mut self, _: &Summary) -> io::Result<()> {
        Ok(())
    }
}

/// The oracle's settings: a firewall in the path, frames cut by the snaplen left out.
pub fn oracle_settings(sysctls: &[&str]) -> Settings {
    let mut s = Settings { vantage: Vantage::Forward, truncated: TruncatedFrames::Skip, ..Settings::default() };
    for a in sysctls {
        s.sysctls.set(a).expect("valid sysctl");
    }
    s
}

/// Runs the engine over one capture.
pub fn run_capture(path: &Path, settings: &Settings) -> Collect {
    let mut c = Collect::default();
    let _ = engine::analyze(&[path.to_string_lossy().into_owned()], settings, &mut c);
    c
}

#[derive(Debug)]
pub struct Mismatch {
    pub file: String,
    pub frame: u64,
    pub flow: String,
    pub kernel: (String, Option<String>),
    pub ours: (String, Option<String>),
}

#[derive(Debug, Default)]
pub struct Comparison {
    pub files: usize,
    pub compared: u64,
    pub mismatches: Vec<Mismatch>,
}

impl Comparison {
    pub fn summary(&self) -> String {
        format!(
            "{} captures, {} TCP packets compared with the kernel, {} differ",
            self.files,
            self.compared,
            self.mismatches.len()
        )
    }

    pub fn describe_mismatches(&self, max: usize) -> String {
        let mut s = self.summary();
        for m in self.mismatches.iter().take(max) {
            s.push_str(&format!(
                "\n  {} frame {} {}: kernel {} {:?}, ctreplay {} {:?}",
                m.file, m.frame, m.flow, m.kernel.0, m.kernel.1, m.ours.0, m.ours.1
            ));
        }
        s
    }
}

/// The oracle's `verdict` as our `ct_state` vocabulary: frames it never injected or that never
/// reached conntrack are `skipped` for us.
fn kernel_state(v: &str) -> &str {
    match v {
        "not_seen" | "skipped" => "skipped",
        other => other,
    }
}

/// Compares every TCP packet of every capture under `captures` that has a verdict file under
/// `verdicts` (same relative path + `.jsonl`).
pub fn compare_with_oracle(captures: &Path, verdicts: &Path, sysctls: &[&str]) -> Comparison {
    let mut out = Comparison::default();
    let mut files: Vec<PathBuf> = walk(verdicts).into_iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
    files.sort();
    let settings = oracle_settings(sysctls);
    for vfile in files {
        let rel = vfile.strip_prefix(verdicts).unwrap().with_extension("");
        let capture = captures.join(&rel);
        if !capture.exists() {
            continue;
        }
        out.files += 1;
        let ours = run_capture(&capture, &settings);
        let text = fs::read_to_string(&vfile).unwrap();
        for line in text.lines() {
            let k: Value = serde_json::from_str(line).unwrap();
            if k.get("summary").is_some() || k["proto"] != "tcp" {
                continue;
            }
            let index = k["index"].as_u64().unwrap();
            let kernel = (kernel_state(k["verdict"].as_str().unwrap()).to_string(), k["reason"].as_str().map(String::from));
            let seen = ours.frames.get(index as usize);
            let mine = seen.map(|s| (s.ct_state.clone(), s.kernel_log.clone())).unwrap_or(("missing".into(), None));
            out.compared += 1;
            if mine != kernel {
                out.mismatches.push(Mismatch {
                    file: rel.display().to_string(),
                    frame: index + 1,
                    flow: k["flow"].as_str().unwrap_or("").to_string(),
                    kernel,
                    ours: mine,
                });
            }
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

/// A raw-IPv4 TCP segment (link type RAW), checksums correct, no options, no payload.
pub fn ipv4_tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8, seq: u32, ack: u32, win: u16) -> Vec<u8> {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&win.to_be_bytes());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.0);
    pseudo.extend_from_slice(&dst.0);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&tcp);
    let sum = internet_checksum(&pseudo);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());

    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.0);
    ip[16..20].copy_from_slice(&dst.0);
    let sum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    [ip.as_slice(), tcp.as_slice()].concat()
}

fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
pub const SERVER: ([u8; 4], u16) = ([10, 0, 0, 2], 80);
pub const ACK: u8 = 0x10;
pub const SYN: u8 = 0x02;

/// The README's motivating case, as a pcap at `path`: frame 1, a stray server ACK, is picked up
/// as an entry in the reverse direction (`nf_conntrack_tcp_loose=1`); frame 2, the client's SYN,
/// meets it and is INVALID (`syn-meets-reversed-entry`). Frame 2's timestamp has microseconds.
pub fn write_reversed_pickup(path: &Path) {
    use ctreplay::capture::writer::{PcapWriter, TsResolution};
    use ctreplay::capture::{LinkType, Timestamp};
    let file = io::BufWriter::new(fs::File::create(path).unwrap());
    let mut w = PcapWriter::new(file, LinkType::RAW, 65535, TsResolution::Micro).unwrap();
    let stray = ipv4_tcp(SERVER, CLIENT, ACK, 5000, 1000, 502);
    let syn = ipv4_tcp(CLIENT, SERVER, SYN, 9000, 0, 64240);
    w.write_frame(Timestamp::from_secs(1_700_000_000), &stray, 40).unwrap();
    w.write_frame(Timestamp(1_700_000_001_250_000_000), &syn, 40).unwrap();
    w.into_inner().unwrap();
}
