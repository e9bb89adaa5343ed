//! Differential fuzzing against the live kernel: random TCP conversations of our own making —
//! valid handshakes and closes mixed with wrong sequence numbers, stale SYNs, stray RSTs, odd
//! flags, zero windows, window scaling and SACK — replayed through the running kernel's conntrack
//! by `../shared/tools/ct-oracle`, and compared packet by packet with ctreplay, entry state
//! included.
//!
//! Needs root, `nft` and `ip` (CI has them); otherwise it prints a note and passes.
//! `CTREPLAY_ORACLE_RUNS=N` and `CTREPLAY_ORACLE_SEED=S` widen the search by hand.

mod common;

use common::{compare_one, oracle_settings, Comparison, Replay};
use ctreplay::capture::Timestamp;
use ctreplay::decode::TcpFlags;
use ctreplay::synth::packet::{Checksum, Link, LinkKind, Payload, TcpOption, TcpOptions, TcpPacket};
use ctreplay::synth::rng::Rng;
use ctreplay::synth::Scenario;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Picks one of `items`.
fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

/// One endpoint's idea of its next sequence number.
#[derive(Clone, Copy)]
struct Side {
    addr: SocketAddr,
    next: u32,
}

/// A sequence or ack number near the plausible one, or far from it.
fn perturb(rng: &mut Rng, v: u32) -> u32 {
    match rng.below(20) {
        0..=13 => v,
        14 => v.wrapping_add(rng.below(3000) as u32),
        15 => v.wrapping_sub(rng.below(3000) as u32),
        16 => v.wrapping_add(60_000 + rng.below(200_000) as u32),
        17 => v.wrapping_sub(60_000 + rng.below(200_000) as u32),
        18 => rng.next_u64() as u32,
        _ => 0,
    }
}

fn syn_options(rng: &mut Rng) -> TcpOptions {
    let mut opts = vec![TcpOption::Mss(1460)];
    if rng.percent(60) {
        opts.push(TcpOption::WindowScale(pick(rng, &[0, 2, 7, 14, 15])));
    }
    if rng.percent(60) {
        opts.push(TcpOption::SackPermitted);
    }
    TcpOptions::from_list(&opts).unwrap()
}

/// A random conversation over three tuples (two client ports, and the server reusing one of
/// them as a client), `packets` long.
fn conversation(seed: u64, packets: usize) -> Scenario {
    let mut rng = Rng(seed);
    let c: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let s: std::net::IpAddr = "10.0.0.2".parse().unwrap();
    let mut pairs: Vec<[Side; 2]> = [(40000, 80), (40001, 80)]
        .iter()
        .map(|&(cp, sp)| {
            [
                Side { addr: SocketAddr::new(c, cp), next: rng.next_u64() as u32 },
                Side { addr: SocketAddr::new(s, sp), next: rng.next_u64() as u32 },
            ]
        })
        .collect();
    let mut scenario = Scenario::new(Link::new(LinkKind::Ethernet));
    let mut ts = Timestamp::from_secs(1_700_000_000);
    for _ in 0..packets {
        ts = Timestamp(ts.0 + 1_000_000);
        let pair = rng.below(pairs.len() as u64) as usize;
        // Mostly the client, sometimes the server starts (role switch, stray segments).
        let from = if rng.percent(55) { 0 } else { 1 };
        let (me, peer) = (pairs[pair][from], pairs[pair][1 - from]);
        let win = pick(&mut rng, &[0u16, 1, 512, 8192, 29200, 65535]);
        let (flags, seq, ack, len, opts) = match rng.below(100) {
            0..=14 => {
                let isn = if rng.percent(50) { me.next.wrapping_sub(1) } else { rng.next_u64() as u32 };
                (TcpFlags::SYN, isn, 0, 0, syn_options(&mut rng))
            }
            15..=24 => (TcpFlags::SYN | TcpFlags::ACK, me.next.wrapping_sub(1), perturb(&mut rng, peer.next), 0, syn_options(&mut rng)),
            25..=69 => {
                let len = pick(&mut rng, &[0u32, 0, 1, 100, 1460, 5000]);
                let mut opts = TcpOptions::default();
                if rng.percent(15) {
                    let a = peer.next;
                    opts = TcpOptions::from_list(&[TcpOption::Nop, TcpOption::Nop, TcpOption::Sack(vec![(a.wrapping_add(100), a.wrapping_add(rng.below(70_000) as u32))])]).unwrap();
                }
                let f = if len > 0 { TcpFlags::ACK | TcpFlags::PSH } else { TcpFlags::ACK };
                (f, perturb(&mut rng, me.next), perturb(&mut rng, peer.next), len, opts)
            }
            70..=79 => (TcpFlags::FIN | TcpFlags::ACK, perturb(&mut rng, me.next), perturb(&mut rng, peer.next), 0, TcpOptions::default()),
            80..=92 => {
                let f = if rng.percent(50) { TcpFlags::RST } else { TcpFlags::RST | TcpFlags::ACK };
                let ack = if rng.percent(70) { peer.next } else { 0 };
                (f, perturb(&mut rng, me.next), ack, 0, TcpOptions::default())
            }
            _ => (rng.below(256) as u8, perturb(&mut rng, me.next), perturb(&mut rng, peer.next), 0, TcpOptions::default()),
        };
        let mut p = TcpPacket::new(me.addr, peer.addr, flags, seq, ack);
        p.window = win;
        p.options = opts;
        p.payload = Payload::Zeros(len);
        if rng.percent(2) {
            p.checksum = Checksum::Bad;
        }
        let end = seq.wrapping_add(p.seq_len());
        // The sender believes what it sent; a wild number sometimes becomes its new truth.
        if seq == me.next || (flags & TcpFlags::SYN != 0) || rng.percent(20) {
            pairs[pair][from].next = end;
        }
        scenario.push(ts, p);
    }
    scenario
}

fn oracle_available(oracle: &Path) -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let tool = |t: &str| Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success());
    root && oracle.exists() && tool("nft") && tool("ip") && tool("python3")
}

#[test]
fn random_conversations_match_the_live_kernel() {
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/ct-oracle/ct-oracle");
    if !oracle_available(&oracle) {
        eprintln!("note: live-kernel oracle not available (needs root, nft, ip and ../shared); test not run");
        return;
    }
    let env_num = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let runs = env_num("CTREPLAY_ORACLE_RUNS", 12);
    let seed0 = env_num("CTREPLAY_ORACLE_SEED", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut out = Comparison::default();
    for seed in seed0..seed0 + runs {
        let pcap = dir.path().join(format!("random-{seed}.pcap"));
        let answers = dir.path().join(format!("random-{seed}.jsonl"));
        conversation(seed, 300).write_pcap(&mut std::fs::File::create(&pcap).unwrap()).unwrap();
        let status = Command::new(&oracle).arg("--out").arg(&answers).arg(&pcap).output().unwrap();
        assert!(status.status.success(), "ct-oracle failed on seed {seed}: {}", String::from_utf8_lossy(&status.stderr));
        out.files += 1;
        compare_one(&pcap, &answers, &format!("seed {seed}"), &oracle_settings(&[]), Replay::BackToBack, &mut out);
    }
    eprintln!("{}\n{}", out.summary(), out.coverage_report());
    assert!(out.mismatches.is_empty(), "{}", out.describe_mismatches(30));
}
