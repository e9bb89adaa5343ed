//! `check` end to end over a fixtures directory, with the replay faked by hand-built frames (the
//! real replay is tested in `tests/check.rs`).

use super::*;
use crate::capture::{CaptureError, CaptureErrorKind};
use crate::conntrack::state::{Dir, TcpState};
use crate::engine::RunInfo;
use crate::report::test_support::TestFrame;
use crate::verdict::{CreatedBy, ReasonId};
use std::cell::RefCell;

const REVERSED: &str = "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED";

/// What the fake replay says of each capture, by file name: a stray server ACK picked up, then a
/// SYN that meets it. `broken.pcap` cannot be read past frame 2.
fn frames_of(name: &str) -> Vec<TestFrame> {
    let mut frames = vec![
        TestFrame::tcp(1, ".").reversed(),
        TestFrame::tcp(2, "S").invalid(ReasonId::SynMeetsReversedEntry, &[REVERSED]).entry(1, CreatedBy::Pickup, Dir::Reply, TcpState::Established),
        TestFrame::tcp(3, "S"),
    ];
    if name == "new.pcap" {
        frames.truncate(1);
    }
    frames
}

/// Replays by [`frames_of`], and notes the settings each capture was replayed with.
fn fake<'a>(seen: &'a RefCell<Vec<String>>) -> impl Fn(&str, &Settings, &mut dyn Sink) -> Result<Summary, EngineError> + 'a {
    move |capture, settings, sink| {
        let name = Path::new(capture).file_name().unwrap().to_str().unwrap().to_string();
        seen.borrow_mut().push(format!("{name}: {} {} {}", settings.profile.name, settings.vantage.describe(), settings.sysctls));
        sink.begin(&RunInfo { tool: "ctreplay", version: "0", kernel_profile: "latest", sysctls: vec![], vantage: String::new(), captures: vec![capture.into()], compared_kernels: vec![] })?;
        for f in frames_of(&name) {
            sink.packet(&f.obs())?;
        }
        if name == "broken.pcap" {
            sink.error(&CaptureError { file: capture.into(), frame: Some(4), offset: Some(120), kind: CaptureErrorKind::TruncatedRecord })?;
        }
        sink.end(&Summary::default())?;
        Ok(Summary::default())
    }
}

/// The expectation `frames_of` meets, with some settings that are not the defaults.
const GOOD: &str = r#"{
  "schema_version": 1,
  "version": "0.0.9",
  "kernel_version": "6.18.44",
  "kernel": "latest",
  "sysctls": ["nf_conntrack_tcp_be_liberal=1"],
  "vantage": "forward",
  "frames": [
    {"frame":2,"ct_state":"invalid","verdict":"invalid","reason":"syn-meets-reversed-entry","kernel_log":"nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED"}
  ]
}
"#;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// good passes, differs fails; the rest cannot run, each for its own reason.
fn fixtures_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "good.pcap", "");
    write(d, "good.expect.json", GOOD);
    write(d, "sub/differs.pcap.gz", "");
    write(d, "sub/differs.expect.json", &GOOD.replace(r#""frame":2"#, r#""frame":3"#));
    write(d, "new.pcap", "");
    write(d, "orphan.expect.json", GOOD);
    write(d, "broken.pcap", "");
    write(d, "broken.expect.json", GOOD);
    write(d, "badjson.pcapng", "");
    write(d, "badjson.expect.json", &GOOD.replace("\"vantage\"", "\"vantgae\""));
    write(d, "twice.pcap", "");
    write(d, "twice.pcapng", "");
    write(d, "notes.txt", "not a fixture");
    write(d, ".git/hidden.pcap", "");
    dir
}

fn check(dir: &Path, bless: bool) -> (Tally, String, Vec<String>) {
    let seen = RefCell::new(Vec::new());
    let mut out = Vec::new();
    let tally = run_with(dir, bless, &mut out, &fake(&seen)).unwrap();
    let text = String::from_utf8(out).unwrap().replace(&dir.display().to_string(), "DIR");
    (tally, text, seen.into_inner())
}

#[test]
fn discovery() {
    let dir = fixtures_dir();
    let found = discover(dir.path()).unwrap();
    let summary: Vec<(String, usize, bool)> = found.iter().map(|f| (f.name.clone(), f.captures.len(), f.expect_exists)).collect();
    assert_eq!(summary, [
        ("badjson.pcapng".to_string(), 1, true),
        ("broken.pcap".to_string(), 1, true),
        ("good.pcap".to_string(), 1, true),
        ("new.pcap".to_string(), 1, false),
        ("orphan.expect.json".to_string(), 0, true),
        ("twice.pcap".to_string(), 2, false),
        ("sub/differs.pcap.gz".to_string(), 1, true),
    ]);
    assert_eq!(found[6].expect, dir.path().join("sub/differs.expect.json"));
    assert_eq!(found[6].expect_name, "sub/differs.expect.json");
}

#[test]
fn one_capture_several_expectations() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["t19.pcap", "t19.expect.json", "t19@2.6.18.expect.json", "t19@5.14.expect.json"] {
        std::fs::write(dir.path().join(f), b"").unwrap();
    }
    let found = discover(dir.path()).unwrap();
    let names: Vec<(&str, &str)> = found.iter().map(|f| (f.name.as_str(), f.expect_name.as_str())).collect();
    assert_eq!(names, [
        ("t19.pcap", "t19.expect.json"),
        ("t19.pcap @2.6.18", "t19@2.6.18.expect.json"),
        ("t19.pcap @5.14", "t19@5.14.expect.json"),
    ]);
    assert!(found.iter().all(|f| f.captures == [dir.path().join("t19.pcap")] && f.expect_exists));
}

#[test]
fn check_reports_per_fixture_and_counts() {
    let dir = fixtures_dir();
    let (tally, text, seen) = check(dir.path(), false);
    assert_eq!(tally, Tally { passed: 1, failed: 1, blessed: 0, errors: 5 });
    assert_eq!(
        text,
        r#"ERROR   badjson.pcapng: badjson.expect.json: unknown field `vantgae`, expected one of `schema_version`, `version`, `kernel_version`, `kernel`, `sysctls`, `vantage`, `truncated`, `timing`, `note`, `frames` at line 7 column 11
ERROR   broken.pcap: the capture could not be read whole: DIR/broken.pcap: frame 4 (byte offset 120): capture ends inside a record (truncated file)
ok      good.pcap
ERROR   new.pcap: no expectation file new.expect.json (`ctreplay check --bless` creates one with the default settings)
ERROR   orphan.expect.json: no capture for this expectation file (NAME{.pcapng.gz,.pcap.gz,.pcapng,.pcap})
ERROR   twice.pcap: several captures share the name: twice.pcap, twice.pcapng
FAILED  sub/differs.pcap.gz: 2 frames differ (expected → got)
  frame 2 (10.0.0.1:40000>10.0.0.2:80): notable now, not in the expectation
    got invalid/invalid syn-meets-reversed-entry "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED"
  frame 3 (10.0.0.1:40000>10.0.0.2:80): no longer notable
    ct_state    expected invalid, got established
    verdict     expected invalid, got accept
    reason      expected syn-meets-reversed-entry, got none
    kernel_log  expected "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED", got none
  reproduce: ctreplay analyze --all --kernel latest --vantage forward --sysctl nf_conntrack_tcp_be_liberal=1 DIR/sub/differs.pcap.gz
1 passed, 1 failed, 5 could not run
"#
    );
    // each capture was replayed with its own expectation's settings
    assert!(seen.contains(&"good.pcap: latest forward nf_conntrack_tcp_be_liberal=1".to_string()), "{seen:?}");
    assert_eq!(seen.len(), 3, "only fixtures with a readable expectation run: {seen:?}");
}

#[test]
fn bless_rewrites_what_differs_and_creates_what_is_missing() {
    let dir = fixtures_dir();
    let d = dir.path();
    let good_before = fs::read_to_string(d.join("good.expect.json")).unwrap();
    let (tally, text, _) = check(d, true);
    assert_eq!(tally, Tally { passed: 1, failed: 0, blessed: 2, errors: 4 });
    assert!(text.contains("created new.expect.json (default settings)\n"), "{text}");
    assert!(text.contains(
        "blessed sub/differs.pcap.gz: 2 frame(s) changed\n  \
         note: these frames came from kernel 6.18.44; they are ctreplay's answers now (kernel_version is kept)\n"
    ), "{text}");
    assert!(text.ends_with("1 passed, 0 failed, 2 blessed, 4 could not run\n"), "{text}");
    assert_eq!(fs::read_to_string(d.join("good.expect.json")).unwrap(), good_before, "a passing fixture is left alone");

    // settings and kernel_version kept; frames and version are the current ones; frame 3 was
    // listed, so it stays listed (with what ctreplay says of it now)
    let blessed = Expectation::from_json(&fs::read_to_string(d.join("sub/differs.expect.json")).unwrap()).unwrap();
    assert_eq!((blessed.kernel_version.as_deref(), blessed.sysctls.as_slice(), blessed.vantage.as_str()),
        (Some("6.18.44"), ["nf_conntrack_tcp_be_liberal=1".to_string()].as_slice(), "forward"));
    assert_eq!(blessed.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(blessed.frames.iter().map(|f| (f.frame, f.verdict.as_str())).collect::<Vec<_>>(), [(2, "invalid"), (3, "accept")]);

    let created = fs::read_to_string(d.join("new.expect.json")).unwrap();
    assert_eq!(created, Expectation::for_settings(&Settings::default()).to_json(), "defaults, and no notable frame");

    // the blessed and created fixtures pass now
    for f in ["orphan.expect.json", "broken.pcap", "broken.expect.json", "badjson.pcapng", "badjson.expect.json", "twice.pcap", "twice.pcapng"] {
        fs::remove_file(d.join(f)).unwrap();
    }
    let (tally, text, _) = check(d, false);
    assert_eq!(tally, Tally { passed: 3, failed: 0, blessed: 0, errors: 0 }, "{text}");
    assert!(text.ends_with("3 passed, 0 failed\n"));
}

#[test]
fn an_empty_directory_cannot_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (tally, text, _) = check(dir.path(), false);
    assert_eq!(tally.errors, 1);
    assert!(text.starts_with("no fixtures under DIR"), "{text}");
    let missing = dir.path().join("nope");
    let mut out = Vec::new();
    let err = run_with(&missing, false, &mut out, &fake(&RefCell::new(vec![]))).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn shell_words() {
    assert_eq!(shell_word("a/b-c.pcap"), "a/b-c.pcap");
    assert_eq!(shell_word("my capture.pcap"), "'my capture.pcap'");
    assert_eq!(shell_word("it's"), r"'it'\''s'");
    assert_eq!(shell_word(""), "''");
}
