//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use ctreplay::capture::CaptureError;
use ctreplay::engine::{self, Observation, RunInfo, Settings, Sink, Summary, Timing, TruncatedFrames, Vantage};
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

/// The oracle's settings: a firewall in the path, frames cut by the snaplen left out, replayed
/// back to back (no timeouts).
pub fn oracle_settings(sysctls: &[&str]) -> Settings {
    let mut s = Settings {
        vantage: Vantage::Forward,
        truncated: TruncatedFrames::Skip,
        timing: Timing::BackToBack,
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
