//! The reports on the motivating case, end to end through the binary: a stray back-end ACK is
//! picked up as a reversed entry, and the proxy's next SYN on that port is INVALID.

use assert_cmd::Command;
use serde_json::Value;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/example/centos5-reverse-proxy.pcap");
/// Frame 20 is the stray back-end segment; 21, 22 and 30 are the proxy's SYNs on port 40000.
const STRAY: u64 = 20;
const SYNS: [u64; 3] = [21, 22, 30];

fn ctreplay(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("ctreplay").unwrap().args(args).output().unwrap()
}

#[test]
fn json_report_names_the_picked_up_entry() {
    let out = ctreplay(&["analyze", "--format", "json", DEMO]);
    assert_eq!(out.status.code(), Some(1), "INVALID packets found");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packets = doc["packets"].as_array().unwrap();
    let frames: Vec<u64> = packets.iter().map(|p| p["frame"].as_u64().unwrap()).collect();
    assert_eq!(frames, SYNS);
    let syn = &packets[0];
    assert_eq!(syn["ct_state"], "invalid");
    assert_eq!(syn["reason"]["id"], "syn-meets-reversed-entry");
    assert_eq!(syn["reason"]["kernel_log"], "nf_ct_proto_6: packet (index 0) in dir 1 invalid, state ESTABLISHED");
    assert!(syn["reason"]["explanation"].as_str().unwrap().contains("REPLY direction"));
    assert_eq!(syn["entry"]["created_frame"], STRAY);
    assert_eq!(syn["entry"]["created_by"], "pickup");
    assert_eq!(syn["entry"]["orientation"], "reply");
    assert_eq!(doc["kernel_profile"], "latest");
}

#[test]
fn markdown_report_has_a_table_for_the_ticket() {
    let out = ctreplay(&["analyze", "--format", "markdown", DEMO]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("| 21 ")), "{text}");
    assert!(text.contains("syn-meets-reversed-entry"));
    assert!(text.contains("pickup"), "names the entry's origin: {text}");
}

#[test]
fn write_invalid_writes_exactly_the_invalid_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out_pcap = dir.path().join("invalid.pcap");
    let out = ctreplay(&["analyze", "--write-invalid", out_pcap.to_str().unwrap(), DEMO]);
    assert_eq!(out.status.code(), Some(1));
    // Read it back with ctreplay itself: three frames, all SYNs from port 40000, all INVALID.
    let back = ctreplay(&["analyze", "--format", "jsonl", "--all", out_pcap.to_str().unwrap()]);
    let packets: Vec<Value> = String::from_utf8(back.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "packet")
        .collect();
    assert_eq!(packets.len(), SYNS.len());
    assert!(packets.iter().all(|p| p["tcp"]["flags"] == "S" && p["flow"] == "10.0.0.1:40000>10.0.0.2:80"));
}

/// `--write-invalid` lets healthy frames be quiet, so a clean capture's frames never reach it;
/// the empty capture it writes still has the input's link type (Ethernet, not the RAW it falls
/// back to when nothing was read), on one thread and on two.
#[test]
fn write_invalid_on_a_clean_capture_writes_no_frames_under_its_link_type() {
    let clean = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/spec/t07-orderly-close.pcap");
    for threads in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let out_pcap = dir.path().join("none.pcap");
        let out = ctreplay(&["analyze", "--threads", threads, "--write-invalid", out_pcap.to_str().unwrap(), clean]);
        assert_eq!(out.status.code(), Some(0));
        let bytes = std::fs::read(&out_pcap).unwrap();
        assert_eq!(bytes.len(), 24, "a header, no frames ({threads} threads)");
        assert_eq!(&bytes[20..24], &1u32.to_le_bytes(), "Ethernet, the capture's link type ({threads} threads)");
    }
}

#[test]
fn a_clean_capture_exits_zero() {
    let clean = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/spec/t07-orderly-close.pcap");
    assert_eq!(ctreplay(&["analyze", clean]).status.code(), Some(0));
}
