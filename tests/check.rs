//! `ctreplay check DIR [--bless]` as CI uses it: exit codes, the printed diff, blessing.

mod common;

use assert_cmd::Command;
use common::write_reversed_pickup;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// `ctreplay check [--bless] DIR`: (exit code, stdout).
fn check(dir: &Path, bless: bool) -> (i32, String) {
    let mut cmd = Command::cargo_bin("ctreplay").unwrap();
    cmd.arg("check");
    if bless {
        cmd.arg("--bless");
    }
    let out = cmd.arg(dir).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

/// A legacy pcap header with no frames.
fn write_empty_pcap(path: &Path) {
    use ctreplay::capture::LinkType;
    use ctreplay::capture::writer::{PcapWriter, TsResolution};
    let w = PcapWriter::new(Vec::new(), LinkType::RAW, 65535, TsResolution::Micro).unwrap();
    fs::write(path, w.into_inner().unwrap()).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn exit_codes_without_frames() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_empty_pcap(&d.join("quiet.pcap"));

    let (code, out) = check(d, false);
    assert_eq!(code, 2, "no expectation file: cannot run\n{out}");
    assert!(out.contains("ERROR   quiet.pcap: no expectation file quiet.expect.json"), "{out}");

    let (code, out) = check(d, true);
    assert_eq!((code, out.as_str()), (0, "created quiet.expect.json (default settings)\n0 passed, 0 failed, 1 blessed\n"));
    let e = read_json(&d.join("quiet.expect.json"));
    assert_eq!((&e["kernel"], &e["vantage"], &e["frames"]), (&Value::from("latest"), &Value::from("auto"), &Value::Array(vec![])));

    let (code, out) = check(d, false);
    assert_eq!((code, out.as_str()), (0, "ok      quiet.pcap\n1 passed, 0 failed\n"));

    // a frame the capture does not have is a difference
    let text = fs::read_to_string(d.join("quiet.expect.json")).unwrap().replace(
        "\"frames\": []",
        "\"frames\": [{\"frame\":1,\"ct_state\":\"invalid\",\"verdict\":\"invalid\",\"reason\":\"invalid-new\",\"kernel_log\":null}]",
    );
    fs::write(d.join("quiet.expect.json"), text).unwrap();
    let (code, out) = check(d, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED  quiet.pcap: 1 frame differs"), "{out}");
    assert!(out.contains("  frame 1: in the expectation, but the capture has only 0 frames\n    expected invalid/invalid invalid-new\n"), "{out}");
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");

    // a file that is no capture cannot run, and outweighs the failure
    fs::write(d.join("junk.pcap"), b"not a capture at all").unwrap();
    fs::copy(d.join("quiet.expect.json"), d.join("junk.expect.json")).unwrap();
    let (code, out) = check(d, false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("ERROR   junk.pcap: "), "{out}");
    assert!(out.ends_with("0 passed, 1 failed, 1 could not run\n"), "{out}");
}

#[test]
fn a_missing_directory_cannot_run() {
    let (code, _) = check(Path::new("/nonexistent/fixtures"), false);
    assert_eq!(code, 2);
}

#[test]
fn the_scenario_capture_is_well_formed() {
    // What the test below replays, checked against an independent implementation.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.pcap");
    write_reversed_pickup(&path);
    let bytes = fs::read(&path).unwrap();
    let (_, cap) = pcap_parser::parse_pcap(&bytes).unwrap();
    assert_eq!(cap.blocks.len(), 2);
    for b in &cap.blocks {
        let h = etherparse::PacketHeaders::from_ip_slice(b.data).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip, _)) = h.net else { panic!("IPv4") };
        let Some(etherparse::TransportHeader::Tcp(tcp)) = h.transport else { panic!("TCP") };
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(&ip, &[]).unwrap());
    }
}

#[test]
fn check_and_bless_a_real_capture() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_reversed_pickup(&d.join("proxy.pcap"));

    // bless records the SYN that meets the reversed entry
    let (code, out) = check(d, true);
    assert_eq!(code, 0, "{out}");
    let e = read_json(&d.join("proxy.expect.json"));
    let frames = e["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 1, "{e}");
    assert_eq!((&frames[0]["frame"], &frames[0]["ct_state"], &frames[0]["verdict"], &frames[0]["reason"]),
        (&Value::from(2), &Value::from("invalid"), &Value::from("invalid"), &Value::from("syn-meets-reversed-entry")));
    assert!(frames[0]["kernel_log"].as_str().unwrap().contains("in dir 1 invalid, state ESTABLISHED"), "{e}");

    let (code, out) = check(d, false);
    assert_eq!((code, out.as_str()), (0, "ok      proxy.pcap\n1 passed, 0 failed\n"));

    // without pickup the stray ACK is INVALID and the SYN is a new connection: both frames differ
    let expect = d.join("proxy.expect.json");
    let text = fs::read_to_string(&expect).unwrap().replace("\"sysctls\": []", "\"sysctls\": [\"nf_conntrack_tcp_loose=0\"]");
    fs::write(&expect, text).unwrap();
    let (code, out) = check(d, false);
    assert_eq!(code, 1, "{out}");
    for want in [
        "FAILED  proxy.pcap: 2 frames differ",
        "  frame 1 (10.0.0.2:80>10.0.0.1:40000): notable now, not in the expectation\n    got invalid/invalid pickup-disabled\n",
        "  frame 2 (10.0.0.1:40000>10.0.0.2:80): no longer notable\n    ct_state    expected invalid, got new\n",
        "--sysctl nf_conntrack_tcp_loose=0",
        "0 passed, 1 failed\n",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }

    // bless takes the new answers and keeps the settings
    let (code, out) = check(d, true);
    assert_eq!(code, 0, "{out}");
    let e = read_json(&expect);
    assert_eq!(e["sysctls"][0], "nf_conntrack_tcp_loose=0");
    let got: Vec<(u64, &str)> = e["frames"].as_array().unwrap().iter().map(|f| (f["frame"].as_u64().unwrap(), f["verdict"].as_str().unwrap())).collect();
    assert_eq!(got, [(1, "invalid"), (2, "accept")], "frame 2 was listed, so it stays listed");
    assert_eq!(check(d, false).0, 0);

    // a capture cut inside a record cannot run
    let mut bytes = fs::read(d.join("proxy.pcap")).unwrap();
    bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    fs::write(d.join("proxy.pcap"), bytes).unwrap();
    let (code, out) = check(d, false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("the capture could not be read whole"), "{out}");
}

/// The project's own fixtures, under every kernel they carry expectations for (latest from the
/// live kernel; 5.14 and 2.6.18 derived from the spec and the kernel sources).
#[test]
fn the_projects_fixtures_pass_check() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ctreplay")).arg("check").arg(&fixtures).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let last = text.lines().last().unwrap_or_default();
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 110, "expected ~114 fixtures (38 captures × 3 kernels), got: {last}");
}
