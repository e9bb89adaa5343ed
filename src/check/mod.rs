//! `ctreplay check DIR [--bless]`: regression tests over a directory of captures.
//!
//! Every capture `NAME.pcap`, `NAME.pcapng`, `NAME.pcap.gz` or `NAME.pcapng.gz` under DIR
//! (recursively; names starting with `.` are skipped) has an expectation file
//! `NAME.expect.json` beside it ([`expect`], documented in `docs/fixtures.md`). `check` replays
//! each capture with the settings its expectation names and prints, per fixture, the frames
//! whose outcome differs, then `N passed, N failed`. `--bless` rewrites the expectation files
//! that differ from the current results (keeping their settings), and creates missing ones with
//! the default settings.
//!
//! The CLI only parses arguments and maps the [`Tally`] to an exit code.

pub mod diff;
pub mod expect;

use crate::engine::{self, EngineError, Settings, Sink, Summary, TruncatedFrames};
use diff::{Collect, FrameDiff};
use expect::Expectation;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Capture file suffixes, longest first so `a.pcap.gz` is not taken for `a.pcap` + `.gz`.
const CAPTURE_SUFFIXES: [&str; 4] = [".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap"];
const EXPECT_SUFFIX: &str = ".expect.json";

/// A capture and its expectation file, as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fixture {
    /// For messages: the capture's path relative to DIR (the expectation file's, if the capture
    /// is missing).
    pub name: String,
    /// The captures of this name: exactly one, unless something is wrong.
    pub captures: Vec<PathBuf>,
    /// Where the expectation file is, or goes.
    pub expect: PathBuf,
    /// For messages: `expect` relative to DIR.
    pub expect_name: String,
    pub expect_exists: bool,
}

/// Finds the fixtures under `dir`, sorted by path. A capture `NAME.pcap` may have several
/// expectation files, one per setting it is checked under: `NAME.expect.json` and
/// `NAME@LABEL.expect.json` (for example `NAME@2.6.18.expect.json`); each is one fixture.
pub fn discover(dir: &Path) -> io::Result<Vec<Fixture>> {
    // (directory, NAME) → (captures, labels of the expectation files that exist: "" for none)
    let mut found: BTreeMap<(PathBuf, String), (Vec<PathBuf>, BTreeSet<String>)> = BTreeMap::new();
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    for path in files {
        let (Some(parent), Some(file_name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
            continue;
        };
        if let Some(stem) = file_name.strip_suffix(EXPECT_SUFFIX) {
            let (name, label) = stem.split_once('@').unwrap_or((stem, ""));
            found.entry((parent.to_path_buf(), name.to_string())).or_default().1.insert(label.to_string());
        } else if let Some(stem) = CAPTURE_SUFFIXES.iter().find_map(|s| file_name.strip_suffix(s)) {
            found.entry((parent.to_path_buf(), stem.to_string())).or_default().0.push(path.clone());
        }
    }
    let relative = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let mut out = Vec::new();
    for ((parent, stem), (mut captures, labels)) in found {
        captures.sort();
        // A capture without any expectation file is still a fixture (one to create, or an error).
        let missing = BTreeSet::from([String::new()]);
        let (labels, exist) = if labels.is_empty() { (&missing, false) } else { (&labels, true) };
        for label in labels {
            let expect_file = if label.is_empty() { format!("{stem}{EXPECT_SUFFIX}") } else { format!("{stem}@{label}{EXPECT_SUFFIX}") };
            let expect = parent.join(expect_file);
            let mut name = relative(captures.first().unwrap_or(&expect));
            if !label.is_empty() {
                name.push_str(&format!(" @{label}"));
            }
            out.push(Fixture { name, captures: captures.clone(), expect_name: relative(&expect), expect, expect_exists: exist });
        }
    }
    Ok(out)
}

/// Every file under `dir`, skipping names that start with `.` (`.git`, editors' files). Symbolic
/// links to files count; links to directories are not followed, so a loop cannot hang CI.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let read = fs::read_dir(dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for entry in read {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// What became of one fixture.
#[derive(Debug)]
pub enum Outcome {
    Pass,
    Fail { expectation: Expectation, diffs: Vec<FrameDiff>, total_frames: u64 },
    /// `--bless` wrote the expectation file: created it, or rewrote it because frames differed.
    Blessed { created: bool, changed: usize, kernel_version: Option<String> },
    /// The fixture could not be run: missing or ambiguous files, a bad expectation file, a
    /// capture that cannot be read (whole).
    Error(String),
}

/// Counts over a whole check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub blessed: usize,
    /// Fixtures that could not run (or no fixtures at all).
    pub errors: usize,
}

/// How a fixture's capture is replayed: [`engine::analyze`] on one file, except in tests.
pub type Analyze<'a> = dyn Fn(&str, &Settings, &mut dyn Sink) -> Result<Summary, EngineError> + 'a;

/// Checks (or, with `bless`, blesses) every fixture under `dir`, printing to `out`.
pub fn run(dir: &Path, bless: bool, out: &mut dyn Write) -> io::Result<Tally> {
    run_with(dir, bless, out, &|capture, settings, sink| engine::analyze(&[capture.to_string()], settings, sink))
}

/// [`run`], with the replay supplied.
pub fn run_with(dir: &Path, bless: bool, out: &mut dyn Write, analyze: &Analyze<'_>) -> io::Result<Tally> {
    let fixtures = discover(dir)?;
    let mut tally = Tally::default();
    if fixtures.is_empty() {
        writeln!(out, "no fixtures under {} (captures named NAME.pcap, .pcapng, .pcap.gz or .pcapng.gz)", dir.display())?;
        tally.errors += 1;
        return Ok(tally);
    }
    for fx in &fixtures {
        let outcome = check_fixture(fx, bless, analyze);
        print_outcome(out, fx, &outcome)?;
        match outcome {
            Outcome::Pass => tally.passed += 1,
            Outcome::Fail { .. } => tally.failed += 1,
            Outcome::Blessed { .. } => tally.blessed += 1,
            Outcome::Error(_) => tally.errors += 1,
        }
    }
    let mut last = format!("{} passed, {} failed", tally.passed, tally.failed);
    if bless {
        last.push_str(&format!(", {} blessed", tally.blessed));
    }
    if tally.errors > 0 {
        last.push_str(&format!(", {} could not run", tally.errors));
    }
    writeln!(out, "{last}")?;
    Ok(tally)
}

/// Runs one fixture. Every problem becomes [`Outcome::Error`] so the other fixtures still run.
pub fn check_fixture(fx: &Fixture, bless: bool, analyze: &Analyze<'_>) -> Outcome {
    match try_fixture(fx, bless, analyze) {
        Ok(o) => o,
        Err(message) => Outcome::Error(message),
    }
}

fn try_fixture(fx: &Fixture, bless: bool, analyze: &Analyze<'_>) -> Result<Outcome, String> {
    let capture = match fx.captures.as_slice() {
        [one] => one,
        [] => return Err(format!("no capture for this expectation file (NAME{{{}}})", CAPTURE_SUFFIXES.join(","))),
        several => {
            let names: Vec<String> = several.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
            return Err(format!("several captures share the name: {}", names.join(", ")));
        }
    };
    let (expectation, created) = if fx.expect_exists {
        let text = fs::read_to_string(&fx.expect).map_err(|e| format!("{}: {e}", fx.expect_name))?;
        (Expectation::from_json(&text).map_err(|e| format!("{}: {e}", fx.expect_name))?, false)
    } else if bless {
        (Expectation::for_settings(&Settings::default()), true)
    } else {
        return Err(format!("no expectation file {} (`ctreplay check --bless` creates one with the default settings)", fx.expect_name));
    };
    let settings = expectation.settings().map_err(|e| format!("{}: {e}", fx.expect_name))?;
    let path = capture.to_str().ok_or_else(|| format!("{}: the path is not UTF-8", capture.display()))?;

    let listed: BTreeSet<u64> = expectation.frames.iter().map(|f| f.frame).collect();
    let mut collect = Collect::new(&listed);
    analyze(path, &settings, &mut collect).map_err(|e| e.to_string())?;
    let got = collect.got;
    if !got.errors.is_empty() {
        return Err(format!("the capture could not be read whole: {}", got.errors.join("; ")));
    }

    let diffs = diff::compare(&expectation.frames, &got);
    if diffs.is_empty() && !created {
        return Ok(Outcome::Pass);
    }
    if !bless {
        return Ok(Outcome::Fail { expectation, diffs, total_frames: got.total_frames });
    }
    let new = expectation.blessed(diff::blessed_frames(&expectation.frames, &got));
    write_atomically(&fx.expect, &new.to_json()).map_err(|e| format!("{}: {e}", fx.expect_name))?;
    Ok(Outcome::Blessed { created, changed: diffs.len(), kernel_version: expectation.kernel_version })
}

/// Writes beside `path` and renames over it: an interrupted bless leaves the old file whole.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn print_outcome(out: &mut dyn Write, fx: &Fixture, outcome: &Outcome) -> io::Result<()> {
    let name = &fx.name;
    match outcome {
        Outcome::Pass => writeln!(out, "ok      {name}"),
        Outcome::Fail { expectation, diffs, total_frames } => {
            let frames = if diffs.len() == 1 { "frame differs" } else { "frames differ" };
            writeln!(out, "FAILED  {name}: {} {frames} (expected → got)", diffs.len())?;
            out.write_all(diff::render(diffs, *total_frames).as_bytes())?;
            let capture = fx.captures.first().map(|c| shell_word(&c.display().to_string())).unwrap_or_default();
            writeln!(out, "  reproduce: ctreplay analyze --all {} {capture}", reproduce_args(expectation).join(" "))
        }
        Outcome::Blessed { created: true, .. } => writeln!(out, "created {} (default settings)", fx.expect_name),
        Outcome::Blessed { changed, kernel_version, .. } => {
            writeln!(out, "blessed {name}: {changed} frame(s) changed")?;
            if let Some(k) = kernel_version {
                writeln!(out, "  note: these frames came from kernel {k}; they are ctreplay's answers now (kernel_version is kept)")?;
            }
            Ok(())
        }
        Outcome::Error(message) => writeln!(out, "ERROR   {name}: {message}"),
    }
}

/// The `ctreplay analyze` options that replay with the expectation's settings.
fn reproduce_args(e: &Expectation) -> Vec<String> {
    let mut args = vec![format!("--kernel {}", shell_word(&e.kernel)), format!("--vantage {}", shell_word(&e.vantage))];
    args.extend(e.sysctls.iter().map(|s| format!("--sysctl {}", shell_word(s))));
    if let Some(t) = e.truncated {
        args.push(match t {
            TruncatedFrames::Track => "--truncated track".into(),
            TruncatedFrames::Skip => "--truncated skip".into(),
        });
    }
    if e.timing == Some(crate::engine::Timing::BackToBack) {
        args.push("--timing back-to-back".into());
    }
    args
}

/// `s` as one POSIX shell word: as is when it is plainly safe, single-quoted otherwise.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests;
