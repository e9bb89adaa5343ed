//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use ctreplay::capture::CaptureError;
use ctreplay::engine::{self, Observation, Settings, Sink, Timing, TruncatedFrames, Vantage};
use ctreplay::synth::bulk::{BulkConfig, BulkGenerator};
use serde_json::Value;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A synthetic capture of many connections (`synth::bulk`), written into a new temporary
/// directory that lives as long as the returned guard.
pub fn bulk_capture(cfg: BulkConfig) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.pcap");
    BulkGenerator::new(cfg).write_pcap(fs::File::create(&path).unwrap()).unwrap();
    (dir, path)
}

/// `../shared/corpus` next to the crate, if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    dir.join("MANIFEST.tsv").exists().then_some(dir)
}

/// Every `.pcap` / `.pcapng` under `dir`, appended to `out`.
pub fn captures_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

/// Every fixture capture, and every corpus capture when `../shared` is present, sorted.
pub fn fixture_and_corpus_captures() -> Vec<PathBuf> {
    let mut captures = Vec::new();
    captures_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"), &mut captures);
    match corpus_dir() {
        Some(dir) => captures_under(&dir, &mut captures),
        None => eprintln!("note: ../shared/corpus not found; only the fixtures are used"),
    }
    captures.sort();
    captures
}

/// What the engine said about one frame, reduced to what the oracle can tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub frame: u64,
    pub ct_state: String,
    pub kernel_log: Option<String>,
    pub flow: Option<String>,
    /// The entry after the packet, in the oracle's terms (see [`entry_facts`]).
    pub entry_after: Option<EntryFacts>,
}

/// What the oracle reports of an entry after a packet (ctnetlink), in comparable form.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryFacts {
    pub tcp_state: String,
    pub seen_reply: bool,
    pub assured: bool,
    pub wscale: [u8; 2],
    pub flags: [Vec<String>; 2],
    /// Whole seconds left, rounded down (compared with a tolerance of a second).
    pub timeout: i64,
}

fn entry_facts(s: &ctreplay::conntrack::Snapshot) -> EntryFacts {
    use ctreplay::conntrack::window::flag;
    let names = |f: u8| flag::names(f & !(flag::EXP_CHALLENGE_ACK | flag::SIMULTANEOUS_OPEN)).into_iter().map(String::from).collect();
    EntryFacts {
        tcp_state: s.tcp.state.name().to_string(),
        seen_reply: s.info.seen_reply,
        assured: s.info.assured,
        wscale: [s.tcp.seen[0].td_scale, s.tcp.seen[1].td_scale],
        flags: [names(s.tcp.seen[0].flags), names(s.tcp.seen[1].flags)],
        timeout: s.remaining_ns.div_euclid(1_000_000_000),
    }
}

fn oracle_entry_facts(ct: &Value) -> Option<EntryFacts> {
    let ct = ct.as_object()?;
    let status: Vec<&str> = ct["status"].as_array()?.iter().filter_map(|v| v.as_str()).collect();
    let list = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let ws = ct["wscale"].as_array()?;
    Some(EntryFacts {
        tcp_state: ct["tcp_state"].as_str()?.to_string(),
        seen_reply: status.contains(&"SEEN_REPLY"),
        assured: status.contains(&"ASSURED"),
        wscale: [ws[0].as_u64()? as u8, ws[1].as_u64()? as u8],
        flags: [list(&ct["tcp_flags"]["original"]), list(&ct["tcp_flags"]["reply"])],
        timeout: ct["timeout"].as_i64()?,
    })
}

/// A sink that keeps, for every frame, the ct state and the kernel log.
#[derive(Default)]
pub struct Collect {
    pub frames: Vec<Seen>,
    pub errors: Vec<String>,
}

impl Sink for Collect {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        let state = obs.verdict.ct_state.as_str();
        self.frames.push(Seen {
            frame: obs.frame.number,
            ct_state: state.to_string(),
            kernel_log: obs.verdict.kernel_log(),
            flow: obs.segment.map(|s| s.tuple.to_string()),
            entry_after: obs.after.as_ref().map(entry_facts),
        });
        Ok(())
    }
    fn error(&mut self, err: &CaptureError) -> io::Result<()> {
        self.errors.push(err.to_string());
        Ok(())
    }
}

/// The oracle's settings: a firewall in the path, frames cut by the snaplen left out, replayed
/// back to back (no timeouts).
pub fn oracle_settings(sysctls: &[&str]) -> Settings {
    let mut s = Settings {
        vantage: Vantage::Forward,
        truncated: TruncatedFrames::Skip,
        timing: Timing::BackToBack,
        snapshots: true,
        ..Settings::default()
    };
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
    /// Set when the verdicts agree but the entry after the packet does not.
    pub detail: Option<String>,
}

#[derive(Debug, Default)]
pub struct Comparison {
    pub files: usize,
    pub compared: u64,
    pub mismatches: Vec<Mismatch>,
    /// How often each kind of kernel verdict and log line was met (numbers elided), to show
    /// what a comparison covered.
    pub coverage: std::collections::BTreeMap<String, u64>,
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

    /// The coverage tally, one kind per line.
    pub fn coverage_report(&self) -> String {
        self.coverage.iter().map(|(k, n)| format!("{n:>7}  {k}\n")).collect()
    }

    pub fn describe_mismatches(&self, max: usize) -> String {
        let mut s = self.summary();
        for m in self.mismatches.iter().take(max) {
            s.push_str(&format!(
                "\n  {} frame {} {}: kernel {} {:?}, ctreplay {} {:?}",
                m.file, m.frame, m.flow, m.kernel.0, m.kernel.1, m.ours.0, m.ours.1
            ));
            if let Some(d) = &m.detail {
                s.push_str(&format!("\n      {d}"));
            }
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
        compare_one(&capture, &vfile, &rel.display().to_string(), &settings, Replay::BackToBack, &mut out);
    }
    out
}

/// How an oracle run was replayed.
#[derive(Clone, Copy)]
pub enum Replay {
    /// Back to back: the oracle's clock barely moves, so remaining timeouts are comparable.
    BackToBack,
    /// `--timed SCALE`: real time and every conntrack timeout divided by SCALE. Timeouts then
    /// differ by that factor, also the jiffies in "lower timeout to %u" log lines.
    Timed { scale: u32 },
}

/// Compares one capture with one oracle output.
pub fn compare_one(capture: &Path, oracle: &Path, name: &str, settings: &Settings, replay: Replay, out: &mut Comparison) {
    let check_timeouts = matches!(replay, Replay::BackToBack);
    let mut ours = run_capture(capture, settings);
    if let Replay::Timed { scale } = replay {
        for f in &mut ours.frames {
            f.kernel_log = f.kernel_log.take().map(|l| rescale_lowered_timeout(&l, scale));
        }
    }
    let text = fs::read_to_string(oracle).unwrap();
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
        let kind = elide_numbers(&format!("{} {}", kernel.0, kernel.1.as_deref().unwrap_or("")));
        *out.coverage.entry(kind).or_default() += 1;
        let mut detail = None;
        // Entries are compared for packets conntrack judged; for a frame it never saw, the oracle
        // still reports the tuple's entry, which says nothing about that frame.
        if mine == kernel && kernel.0 != "skipped" && k.get("ct").is_some() {
            let theirs = oracle_entry_facts(&k["ct"]);
            let mut mine_e = seen.and_then(|s| s.entry_after.clone());
            if let (Some(t), Some(m)) = (&theirs, &mut mine_e)
                && (!check_timeouts || (m.timeout - t.timeout).abs() <= 1)
            {
                m.timeout = t.timeout;
            }
            if theirs != mine_e {
                detail = Some(format!("entry after: kernel {theirs:?}, ctreplay {mine_e:?}"));
            }
        }
        if mine != kernel || detail.is_some() {
            out.mismatches.push(Mismatch {
                file: name.to_string(),
                frame: index + 1,
                flow: k["flow"].as_str().unwrap_or("").to_string(),
                kernel,
                ours: mine,
                detail,
            });
        }
    }
}

/// Every run of digits becomes one `N`.
fn elide_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

/// "… lower timeout to 75000" → "… lower timeout to 2500" for a replay scaled by 30.
fn rescale_lowered_timeout(log: &str, scale: u32) -> String {
    const MARK: &str = "lower timeout to ";
    match log.find(MARK) {
        None => log.to_string(),
        Some(at) => {
            let start = at + MARK.len();
            let digits: String = log[start..].chars().take_while(|c| c.is_ascii_digit()).collect();
            let value: u64 = digits.parse().unwrap_or(0);
            format!("{}{}{}", &log[..start], value / scale as u64, &log[start + digits.len()..])
        }
    }
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

/// Compares the corpus with a compact oracle answer file (`fixtures/corpus-oracle/*.tsv.gz`:
/// `capture<TAB>index<TAB>verdict<TAB>reason`, made by `tools/oracle-corpus.sh`).
pub fn compare_with_compact_answers(corpus: &Path, answers: &Path, sysctls: &[&str]) -> Comparison {
    use std::collections::BTreeMap;
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(answers).unwrap()).read_to_string(&mut text).unwrap();
    /// Frame index, verdict, reason.
    type Answer<'a> = (u64, &'a str, Option<&'a str>);
    let mut by_capture: BTreeMap<&str, Vec<Answer>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.splitn(4, '\t');
        let (Some(cap), Some(idx), Some(verdict)) = (f.next(), f.next(), f.next()) else { continue };
        let reason = f.next().filter(|r| !r.is_empty());
        by_capture.entry(cap).or_default().push((idx.parse().unwrap(), verdict, reason));
    }
    let settings = oracle_settings(sysctls);
    let mut out = Comparison::default();
    for (cap, answers) in by_capture {
        out.files += 1;
        let ours = run_capture(&corpus.join(cap), &settings);
        for (index, verdict, reason) in answers {
            let kernel = (kernel_state(verdict).to_string(), reason.map(String::from));
            let mine = ours
                .frames
                .get(index as usize)
                .map(|s| (s.ct_state.clone(), s.kernel_log.clone()))
                .unwrap_or(("missing".into(), None));
            out.compared += 1;
            if mine != kernel {
                out.mismatches.push(Mismatch {
                    file: cap.to_string(),
                    frame: index + 1,
                    flow: String::new(),
                    kernel,
                    ours: mine,
                    detail: None,
                });
            }
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
