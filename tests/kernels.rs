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
    let (new, code) = analyze(&["--kernel", "latest", &cap]);
    assert_eq!((new.len(), code), (0, 0), "latest reopens cleanly: {new:?}");
}

/// Without `--kernel`, the run is latest's, and a packet another profile judges otherwise is
/// shown with a note saying where; the exit code stays latest's.
#[test]
fn default_run_notes_where_older_kernels_differ() {
    let cap = fixture("spec/t19-reuse-in-time-wait-server-closed.pcap");
    let (records, code) = analyze(&[&cap]);
    assert_eq!(code, 0, "latest reopens cleanly, so the run is clean");
    let [syn] = records.as_slice() else { panic!("only the reopening SYN differs: {records:?}") };
    assert_eq!((&syn["tcp"]["flags"], &syn["ct_state"]), (&Value::from("S"), &Value::from("new")));
    assert_eq!(syn["other_kernels"]["note"], "INVALID (invalid-syn-reopen) on 2.6.18, new since 3.10");
    let kernels: Vec<&str> = syn["other_kernels"]["verdicts"].as_array().unwrap().iter().map(|k| k["kernel"].as_str().unwrap()).collect();
    assert_eq!(kernels, ["latest", "6.1", "5.14", "4.18", "3.10", "2.6.18"]);

    // the CentOS 5 retry 400 s later: NEW on latest, INVALID on 2.6.18, as a ticket says it
    let out = Command::cargo_bin("ctreplay")
        .unwrap()
        .args(["analyze", "--format", "markdown", &fixture("example/centos5-proxy-retry-400s.pcap")])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("| accept (INVALID (syn-meets-reversed-entry) on 2.6.18, new since 3.10) |"), "{text}");
    assert!(text.contains("2.6.18: 2 INVALID, 0 ignored, 2 packets judged otherwise; same verdicts on 6.1, 5.14, 4.18, 3.10"), "{text}");
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

/// What a packet's note says about a kernel is what a run on that kernel alone says: the
/// comparison tables are the same trackers, fed the same packets.
#[test]
fn compared_verdicts_equal_each_kernel_run_alone() {
    
    use ctreplay::engine::{self, Observation, Settings, Sink};
    use ctreplay::verdict::KernelVerdict;

    /// Per frame: every kernel's verdict word when they differ, else this run's.
    #[derive(Default)]
    struct Outcomes(Vec<(Vec<KernelVerdict>, &'static str)>);
    impl Sink for Outcomes {
        fn packet(&mut self, obs: &Observation<'_>) -> std::io::Result<()> {
            let own = KernelVerdict::of("this run", obs.verdict).outcome();
            self.0.push((obs.kernels.to_vec(), own));
            Ok(())
        }
    }
    let run = |captures: &[String], settings: &Settings| {
        let mut sink = Outcomes::default();
        engine::analyze(captures, settings, &mut sink).unwrap();
        sink.0
    };

    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/spec");
    let mut captures: Vec<String> = std::fs::read_dir(&spec)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    captures.sort();
    let (mut packets, mut differing) = (0, 0);
    for capture in &captures {
        let mut compared = Settings::default();
        compared.compare_with_other_kernels();
        let together = run(std::slice::from_ref(capture), &compared);
        for (i, other) in compared.compare.iter().enumerate() {
            let alone = Settings { profile: other.profile.clone(), sysctls: other.sysctls.clone(), ..Settings::default() };
            let alone = run(std::slice::from_ref(capture), &alone);
            assert_eq!(alone.len(), together.len());
            for (frame, ((kernels, latest), (_, own))) in together.iter().zip(&alone).enumerate() {
                let noted = kernels.get(i + 1).map_or(*latest, |k| k.outcome());
                assert_eq!(noted, *own, "{capture} frame {}: {} alone", frame + 1, other.profile.name);
            }
        }
        packets += together.len();
        differing += together.iter().filter(|(k, _)| !k.is_empty()).count();
    }
    assert!(captures.len() > 30 && differing > 20, "{} captures, {differing} of {packets} packets judged otherwise", captures.len());
}
