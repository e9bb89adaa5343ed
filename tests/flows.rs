//! Flow summaries of `ctreplay analyze`, end to end on the bundled CentOS 5 capture.

mod common;

use assert_cmd::Command;
use serde_json::Value;

const CENTOS5: &str = "fixtures/example/centos5-reverse-proxy.pcap";

fn analyze(args: &[&str]) -> String {
    let out = Command::cargo_bin("ctreplay").unwrap().arg("analyze").args(args).arg(CENTOS5).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "INVALID packets found");
    String::from_utf8(out.stdout).unwrap()
}

fn jsonl(args: &[&str]) -> Vec<Value> {
    analyze(&[&["--format", "jsonl"], args].concat()).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn jsonl_flows_one_per_entry() {
    let all = jsonl(&["--all"]);
    let flows: Vec<&Value> = all.iter().filter(|m| m["type"] == "flow").collect();
    let summary = all.last().unwrap();
    assert_eq!(summary["type"], "summary", "flows come before the summary");
    assert_eq!(flows.len() as u64, summary["flows"].as_u64().unwrap(), "every entry created, and no entry-less flow here");
    let brief: Vec<(String, u64, String, String)> = flows
        .iter()
        .map(|f| {
            (
                f["flow"].as_str().unwrap().to_string(),
                f["created_frame"]["number"].as_u64().unwrap(),
                f["ended"].as_str().unwrap().to_string(),
                f["history"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        // port 40000's first entry: reset, left to expire; the stray of frame 20 revealed it
        ("10.0.0.1:40000>10.0.0.2:80", 8, "expired", "ShADR"),
        // still open at the end, in the order the run met them
        ("10.0.0.1:39998>10.0.0.2:80", 1, "open", "ShADdfFa"),
        ("10.0.0.1:40002>10.0.0.2:80", 13, "open", "ShADdfFa"),
        ("10.0.0.2:80>10.0.0.1:40000", 20, "open", "Ds!"),
        ("10.0.0.1:40004>10.0.0.2:80", 23, "open", "ShADdfFa"),
        ("10.0.0.1:40006>10.0.0.2:80", 31, "open", "ShADdfFa"),
    ];
    let want: Vec<(String, u64, String, String)> =
        want.iter().map(|(f, c, e, h)| (f.to_string(), *c, e.to_string(), h.to_string())).collect();
    assert_eq!(brief, want);
    let stray = flows[3];
    assert_eq!(stray["created_by"], "pickup");
    assert_eq!((&stray["frames"], &stray["invalid"]), (&Value::from(4), &Value::from(3)));
    assert_eq!(stray["reasons"]["syn-meets-reversed-entry"], 3);
    assert_eq!(stray["states"], serde_json::json!(["ESTABLISHED"]));
    assert_eq!(flows[1]["states"], serde_json::json!(["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "LAST_ACK", "TIME_WAIT"]));

    // without --all: only the flow with INVALID packets
    let notable: Vec<Value> = jsonl(&[]).into_iter().filter(|m| m["type"] == "flow").collect();
    assert_eq!(notable.len(), 1);
    assert_eq!(&notable[0], stray);
}

#[test]
fn json_document_carries_the_same_flows() {
    let doc: Value = serde_json::from_str(&analyze(&["--format", "json"])).unwrap();
    let from_lines: Vec<Value> = jsonl(&[]).into_iter().filter(|m| m["type"] == "flow").collect();
    assert_eq!(doc["flows"].as_array().unwrap(), &from_lines);
}

#[test]
fn table_shows_the_connection_and_the_entry_met() {
    let text = analyze(&[]);
    // packet rows name the entry each INVALID SYN met
    assert_eq!(text.matches("pickup@20 ESTABLISHED").count(), 3, "{text}");
    // and the connections table has the stray's entry
    let row = text.lines().find(|l| l.contains("10.0.0.2:80>10.0.0.1:40000") && l.contains("Ds!")).expect(&text);
    for want in ["pickup@20", "20…30 (4)", "ESTABLISHED", "open at the end"] {
        assert!(row.contains(want), "{want:?} in {row}");
    }
}

/// Without `--all`, a flow is followed from its first notable packet, and what came before
/// comes from the log its conntrack entry kept. The records must be exactly those of an `--all`
/// run, which follows every flow from its first packet: over every fixture and corpus capture,
/// the flows of a default run are, verbatim and in order, a subsequence of the `--all` run's.
#[test]
fn flows_followed_from_their_first_notable_packet_are_told_from_the_start() {
    use ctreplay::engine::{self, Settings};
    use ctreplay::report::jsonl::JsonLines;

    let flows = |capture: &std::path::Path, settings: &Settings, all: bool| -> Vec<String> {
        let mut out = Vec::new();
        let _ = engine::analyze(&[capture.to_string_lossy().into_owned()], settings, &mut JsonLines::new(&mut out, all));
        String::from_utf8(out).unwrap().lines().filter(|l| l.starts_with(r#"{"type":"flow""#)).map(String::from).collect()
    };
    let mut settings = Settings::default();
    settings.compare_with_other_kernels();
    let (mut shown, mut resumed) = (0, 0);
    for capture in common::fixture_and_corpus_captures() {
        let every = flows(&capture, &settings, true);
        let notable = flows(&capture, &settings, false);
        let mut rest = every.iter();
        for f in &notable {
            assert!(rest.any(|e| e == f), "{}: a flow differs from the --all run's, or comes out of order:\n{f}", capture.display());
        }
        shown += notable.len();
        // Flows of an entry whose first packet was not marked: followed from a later one, with
        // what came before from the entry's log.
        let first_unmarked = |f: &Value| f["created_frame"].is_object() && !matches!(f["history"].as_str().unwrap().chars().nth(1), Some('!' | '~'));
        resumed += notable.iter().map(|f| serde_json::from_str::<Value>(f).unwrap()).filter(first_unmarked).count();
    }
    eprintln!("{shown} flows shown, {resumed} of them with packets before their first marked one");
    assert!(resumed > 0, "no flow was followed from a later packet: the test shows nothing");
}
