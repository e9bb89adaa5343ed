//! `ctreplay explain` end to end, on the bundled captures: the stale-tuple story of the CentOS 5
//! reverse proxy, and a window bound's numbers.

use assert_cmd::Command;
use serde_json::Value;

const CENTOS5: &str = "fixtures/example/centos5-reverse-proxy.pcap";
const T08: &str = "fixtures/spec/t08-ack-for-unseen-data.pcap";

/// `ctreplay explain ARGS…`: (exit code, stdout, stderr).
fn explain(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("ctreplay").unwrap().arg("explain").args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// The timeline's rows: (marker, frame) of each line that shows a packet.
fn rows(text: &str) -> Vec<(bool, String)> {
    text.lines()
        .filter(|l| !l.starts_with("──") && (l.contains(" → ") || l.contains(" ← ") || l.contains(" · ")))
        .map(|l| {
            let marked = l.starts_with('▶');
            let frame = l.trim_start_matches('▶').split_whitespace().next().unwrap().to_string();
            (marked, frame)
        })
        .collect()
}

#[test]
fn centos5_syn_meets_the_entry_a_stray_segment_created() {
    let (code, out, err) = explain(&["--frame", "21", CENTOS5]);
    assert_eq!(code, 0, "{err}");
    // every frame of the tuple, both directions, both entries; frame 21 marked
    let frames: Vec<String> = rows(&out).into_iter().map(|(_, f)| f).collect();
    assert_eq!(frames, ["8", "9", "10", "11", "12", "20", "21", "22", "30"], "{out}");
    assert_eq!(rows(&out).iter().filter(|(m, _)| *m).map(|(_, f)| f.as_str()).collect::<Vec<_>>(), ["21"]);
    // where one entry ends and the next begins
    assert!(out.contains("── entry 1: created at frame 8 by a SYN · ORIGINAL 10.0.0.1:40000>10.0.0.2:80"), "{out}");
    assert!(out.contains("── entry 1 ends: expired at +10.100000 (CLOSE timeout: 10.000 s after frame 12); frame 20 found it gone"), "{out}");
    assert!(out.contains("── entry 2: created by mid-stream pickup of frame 20 · ORIGINAL 10.0.0.2:80>10.0.0.1:40000"), "{out}");
    // the client's SYN travels in the reply direction of the reversed entry
    assert!(out.lines().any(|l| l.starts_with('▶') && l.contains("← 10.0.0.1:40000") && l.contains("syn-meets-reversed-entry")));
    // frame 21 spelled out: reason, kernel log, the cell, the entry it met
    for want in [
        "Frame 21 — INVALID: syn-meets-reversed-entry (stale-tuple)",
        "kernel log  nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED",
        "table[reply][SYN][ESTABLISHED] = INVALID",
        "entry met   created by mid-stream pickup of frame 20 (a data segment [P.] from 10.0.0.2:80)",
        "this packet travels in its REPLY direction",
        "age 10.000 s, expires in 290.000 s",
        "causes      - a stray segment from the server",
        "be_liberal  nf_conntrack_tcp_be_liberal=1 does not help",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    assert!(!out.contains('\u{1b}'), "no escape codes when stdout is not a terminal");
}

#[test]
fn t08_ack_over_upper_bound_shows_its_numbers() {
    let (code, out, err) = explain(&["--frame", "4", T08]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "Frame 4 — INVALID: ack-over-upper-bound (window-ack)",
        "nf_ct_proto_6: ACK is over upper bound 5002 (ACKed data not seen yet)",
        "ack 9000 > td_end 5001 of the receiver: it acknowledges 3999 bytes the receiver never sent",
        "receiver 10.0.0.2:80 when checked: td_end 5001, td_maxend 69241, td_maxwin 65160",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    // the window columns after frame 3: td_end, td_maxend, td_maxwin, td_scale of each direction
    let row3 = out.lines().find(|l| l.trim_start().starts_with("3 ")).unwrap();
    let tail: Vec<&str> = row3.split_whitespace().rev().take(8).collect();
    assert_eq!(tail, ["0", "65160", "69241", "5001", "0", "64240", "66161", "1001"], "{row3}");
}

#[test]
fn json_has_every_row_and_number() {
    let (code, out, err) = explain(&["--frame", "21", "--format", "json", CENTOS5]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["type"], "explain");
    assert_eq!(doc["target_frame"]["number"], 21);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    let target: Vec<&Value> = rows.iter().filter(|r| r["target"] == true).collect();
    assert_eq!((target.len(), &target[0]["frame"]), (1, &Value::from(21)));
    assert_eq!(target[0]["entry"]["created_by"], "pickup");
    assert_eq!(target[0]["entry_index"], 1);
    assert_eq!(target[0]["after"]["original"]["td_end"], 8_001_201);
    assert_eq!(rows[0]["after"]["original"]["td_scale"], 7);
    assert_eq!(rows[0]["rel"], 0.0);
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((&entries[0]["ended"]["how"], &entries[0]["ended"]["next"]["number"]), (&"expired".into(), &20.into()));
    assert_eq!((&entries[1]["created_by"], &entries[1]["original"]), (&"pickup".into(), &"10.0.0.2:80>10.0.0.1:40000".into()));
    assert_eq!(entries[1]["ended"]["how"], "alive");
    assert_eq!(doc["explanation"]["reason"], "syn-meets-reversed-entry");
    assert!(doc["explanation"]["evidence_words"][0].as_str().unwrap().starts_with("table[reply][SYN][ESTABLISHED] = INVALID"));
}

#[test]
fn a_flow_in_either_direction() {
    let (code, by_frame, _) = explain(&["--frame", "21", CENTOS5]);
    assert_eq!(code, 0);
    let (code, out, err) = explain(&["--flow", "10.0.0.2:80>10.0.0.1:40000", CENTOS5]);
    assert_eq!(code, 0, "{err}");
    let frames = |t: &str| rows(t).into_iter().map(|(_, f)| f).collect::<Vec<_>>();
    assert_eq!(frames(&out), frames(&by_frame));
    assert!(out.contains("First notable frame: 21 — INVALID"), "{out}");
}

#[test]
fn tracker_options_apply() {
    // back to back, the CLOSE entry never expires: the stray data of frame 20 meets the entry of
    // frame 8 instead of creating one, and frame 21's SYN is only ignored on it
    let (code, out, err) = explain(&["--frame", "21", "--timing", "back-to-back", CENTOS5]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("pickup"), "{out}");
    assert!(out.contains("1 conntrack entry"), "{out}");
    assert!(out.contains("Frame 21 — accepted but ignored: reopen-refused"), "{out}");
    assert!(out.contains("(back-to-back timing: entries never expire)"), "{out}");
}

#[test]
fn nothing_to_explain_is_exit_2() {
    let (code, out, err) = explain(&["--frame", "99", CENTOS5]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("there is no frame 99 in fixtures/example/centos5-reverse-proxy.pcap: it has 37 frames"), "{err}");
    let (code, _, err) = explain(&["--flow", "10.9.9.9:1>10.9.9.8:2", CENTOS5]);
    assert_eq!(code, 2);
    assert!(err.contains("no TCP packet of 10.9.9.9:1>10.9.9.8:2"), "{err}");
    let (code, _, err) = explain(&["--frame", "1", "--file", "1", CENTOS5]);
    assert_eq!(code, 2);
    assert!(err.contains("--file 1: 1 capture given"), "{err}");
    let (code, _, _) = explain(&[CENTOS5]);
    assert_eq!(code, 2, "--frame or --flow is required");
}

#[test]
fn stdin_is_read_once_and_explained() {
    let bytes = std::fs::read(CENTOS5).unwrap();
    let out = Command::cargo_bin("ctreplay").unwrap().args(["explain", "--frame", "21", "-"]).write_stdin(bytes).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().contains("Frame 21 — INVALID"));
    let bytes = std::fs::read(CENTOS5).unwrap();
    let out = Command::cargo_bin("ctreplay").unwrap().args(["explain", "--frame", "21", "--format", "json", "-"]).write_stdin(bytes).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["captures"], serde_json::json!(["-"]), "named as given, not as the copy read");
}
