//! The kernel profiles on the CentOS 5 reverse-proxy captures, end to end through the binary:
//! what issue "would it be INVALID on my kernel?" must show.

use assert_cmd::Command;
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `analyze --format jsonl` with `args`: the packet records and the exit code.
fn analyze(args: &[&str]) -> (Vec<Value>, i32) {
    let out = Command::cargo_bin("ctreplay").unwrap().arg("analyze").args(["--format", "jsonl"]).args(args).output().unwrap();
    let records = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "packet")
        .collect();
    (records, out.status.code().unwrap())
}

#[test]
fn centos5_proxy_syn_is_invalid_state_on_2_6_18_even_400s_later() {
    let cap = fixture("example/centos5-proxy-retry-400s.pcap");
    let (old, code) = analyze(&["--kernel", "2.6.18", &cap]);
    assert_eq!(code, 1);
    let syn = old.iter().find(|p| p["tcp"]["flags"] == "S").expect("the late SYN is reported on 2.6.18");
    assert_eq!(syn["reason"]["kernel_log"], "ip_ct_tcp: invalid state");
    assert_eq!(syn["entry"]["created_by"], "pickup");
    assert!(syn["entry"]["age"].as_f64().unwrap() >= 400.0);
    // Latest: the unanswered pickup expired after 300 s; the SYN is NEW and nothing is reported.
    let (new, code) = analyze(&["--kernel", "latest", &cap]);
    assert_eq!((new.len(), code), (0, 0), "{new:?}");
}

#[test]
fn backwards_isn_time_wait_reuse_is_an_invalid_syn_on_2_6_18_only() {
    let cap = fixture("spec/t19-reuse-in-time-wait-server-closed.pcap");
    let (old, _) = analyze(&["--kernel", "rhel5", &cap]);
    assert!(old.iter().any(|p| p["reason"]["kernel_log"] == "ip_ct_tcp: invalid SYN"), "{old:?}");
    let (new, code) = analyze(&[&cap]);
    assert_eq!((new.len(), code), (0, 0), "latest reopens cleanly: {new:?}");
}

#[test]
fn whatif_shows_be_liberal_cannot_help_the_reversed_entry() {
    let out = Command::cargo_bin("ctreplay")
        .unwrap()
        .args(["whatif", "--format", "json", &fixture("example/centos5-reverse-proxy.pcap")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["failures"].as_array().unwrap().len(), 3);
    let liberal = w["outcomes"].as_array().unwrap().iter().find(|o| o["change"] == "nf_conntrack_tcp_be_liberal=1").unwrap();
    assert_eq!(liberal["removes"].as_array().unwrap().len(), 0, "be_liberal leaves the INVALID SYNs in place");
    let loose = w["outcomes"].as_array().unwrap().iter().find(|o| o["change"] == "nf_conntrack_tcp_loose=0").unwrap();
    assert_eq!(loose["removes"].as_array().unwrap().len(), 3, "without pickup there is no reversed entry");

    let table = Command::cargo_bin("ctreplay").unwrap().args(["whatif", &fixture("example/centos5-reverse-proxy.pcap")]).output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("nf_conntrack_tcp_be_liberal=1 cannot help with syn-meets-reversed-entry"), "{text}");
}
