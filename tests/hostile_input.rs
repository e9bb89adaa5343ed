//! Hostile input against the real binary: truncated, damaged and lying captures, odd paths, and a
//! flood that fills the conntrack table. Whatever the input, `ctreplay` ends with exit 0, 1 or 2,
//! never a panic or a signal; exit 2 always comes with a message naming the file; a report that
//! was started is finished; `--output` never leaves half a file.
//!
//! Runtime budget: under a minute in a debug build on two cores. Truncations are batched (one
//! process reads a couple of hundred truncated files as one capture: each file that fails is
//! named), damaged variants run one process each.

use ctreplay::synth::rng::Rng;
use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

// ---- running the binary -------------------------------------------------------------------------

fn ctreplay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctreplay"))
}

/// Runs `ctreplay analyze ARGS...` and checks what every run must satisfy; returns the exit code.
fn analyze(args: &[&str], stdin: Option<&[u8]>) -> (i32, Output) {
    let mut cmd = ctreplay();
    cmd.arg("analyze").args(args);
    if let Some(bytes) = stdin {
        cmd.write_stdin(bytes.to_vec());
    }
    let out = cmd.output().expect("run ctreplay");
    let code = check_outcome(&out, args);
    (code, out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 0, 1 or 2 and no panic; on exit 2, a message on stderr (naming the file, checked by the
/// callers that know which file failed).
fn check_outcome(out: &Output, args: &[&str]) -> i32 {
    let err = stderr(out);
    let Some(code) = out.status.code() else {
        panic!("ctreplay {args:?} was killed by a signal ({:?}); stderr:\n{err}", out.status);
    };
    assert!(!err.contains("panicked"), "ctreplay {args:?} panicked:\n{err}");
    assert!((0..=2).contains(&code), "ctreplay {args:?} exited {code}:\n{err}");
    if code == 2 {
        assert!(err.contains("ctreplay: "), "exit 2 without a message: {args:?}\n{err}");
    }
    code
}

/// Analyses one file; on exit 2 the message must name it.
fn analyze_file(path: &Path, extra: &[&str]) -> (i32, Output) {
    let p = path.to_str().unwrap();
    let mut args = extra.to_vec();
    args.push(p);
    let (code, out) = analyze(&args, None);
    if code == 2 {
        assert!(stderr(&out).contains(p), "exit 2 does not name {p}:\n{}", stderr(&out));
    }
    (code, out)
}

fn jsonl(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

// ---- inputs -------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/corpus/NAME`, if the corpus is there.
fn corpus_file(name: &str) -> Option<PathBuf> {
    let p = root().join("../shared/corpus").join(name);
    p.exists().then_some(p)
}

/// Small real captures: the spec fixtures (but the 86 KB t11), the example, and a few of the
/// shared corpus covering pcapng (several sections and interfaces), big-endian and nanosecond
/// files, SLL, VLAN, IPv6 and fragments.
fn small_captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("fixtures/spec"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap") && !p.to_string_lossy().contains("t11-"))
        .collect();
    v.sort();
    v.push(root().join("fixtures/example/centos5-reverse-proxy.pcap"));
    for name in [
        "zeek/issue-32.pcapng",
        "zeek/vlan-pcp-dei.pcapng",
        "zeek/retransmit-timeout.pcapng",
        "tcpdump/bgp-orf.pcapng",
        "tcpdump/pptp.pcap",
        "tcpdump/tcp-handshake-nano.pcap",
        "suricata-verify/bug-6887-defrag-ipv6-tcp__frag-ip-tcp.pcap",
        "suricata-verify/decode-sll2-01__input.pcap",
    ] {
        v.extend(corpus_file(name));
    }
    v
}


/// Byte offsets of the record (legacy pcap) or block (pcapng) headers of a capture.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offs = Vec::new();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let big = bytes.get(8..12) == Some(&[0x1a, 0x2b, 0x3c, 0x4d]);
        let mut at = 0;
        while at + 8 <= bytes.len() {
            offs.push(at);
            let raw = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
            let len = if big { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) } as usize;
            if len < 12 {
                break;
            }
            at += len;
        }
    } else {
        let big = bytes.starts_with(&[0xa1, 0xb2]);
        let mut at = 24;
        while at + 16 <= bytes.len() {
            offs.push(at);
            let raw = [bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]];
            let caplen = if big { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) } as usize;
            at += 16 + caplen;
        }
    }
    offs
}

/// Damaged variants of a capture: cut, overwritten with random bytes, a record or block length
/// (or pcap origlen) inflated or shrunk, bytes flipped here and there.
fn damaged(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let records = record_offsets(bytes);
    match rng.index(5) {
        0 => b.truncate(rng.index(b.len())),
        1 => {
            let at = rng.index(b.len());
            let len = 1 + rng.index(64);
            for i in at..(at + len).min(b.len()) {
                b[i] = rng.next_u64() as u8;
            }
        }
        2 | 3 if !records.is_empty() => {
            let rec = records[rng.index(records.len())];
            // pcap: caplen at +8 or origlen at +12; pcapng: the length at +4 (or the EPB's
            // caplen at +20 / interface id at +8).
            let field = rec + [4, 8, 12, 20][rng.index(4)];
            let value: u32 = match rng.index(4) {
                0 => u32::MAX,
                1 => 0x0100_0000 + rng.index(1 << 20) as u32,
                2 => rng.index(64) as u32,
                _ => rng.next_u64() as u32,
            };
            if field + 4 <= b.len() {
                b[field..field + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        _ => {
            for _ in 0..1 + rng.index(8) {
                let at = rng.index(b.len());
                b[at] ^= 1 << rng.index(8);
            }
        }
    }
    b
}

// ---- truncation and damage ----------------------------------------------------------------------

/// Every truncation of every small capture. Truncations past the file header are analysed as one
/// multi-file capture per batch: a file that fails must be reported incomplete in the summary
/// and named on stderr, the others read whole. Cuts inside the 24-byte file header fail when the
/// file is opened, so they run one process each, for two captures (one pcap, one pcapng).
#[test]
fn truncation_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut variants = Vec::new();
    for (i, capture) in small_captures().iter().enumerate() {
        let bytes = fs::read(capture).unwrap();
        // Every offset of a small file; for the larger ones (the example, 9 KB) a stride, still
        // cutting inside every record's header and data somewhere.
        let stride = if bytes.len() <= 4096 { 1 } else { 7 };
        for cut in (24..bytes.len()).step_by(stride) {
            let p = dir.path().join(format!("c{i}-{cut}.pcap"));
            fs::write(&p, &bytes[..cut]).unwrap();
            variants.push(p);
        }
    }
    let mut runs = 0;
    for batch in variants.chunks(200) {
        let mut args = vec!["--format", "jsonl"];
        args.extend(batch.iter().map(|p| p.to_str().unwrap()));
        let (code, out) = analyze(&args, None);
        runs += 1;
        let lines = jsonl(&out);
        let summary = lines.last().expect("a summary line");
        assert_eq!(summary["type"], "summary", "the report does not end with its summary");
        let err = stderr(&out);
        let incomplete: Vec<&str> = summary["captures"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["complete"] == false)
            .map(|c| c["path"].as_str().unwrap())
            .collect();
        for path in &incomplete {
            assert!(err.contains(path), "{path} is incomplete but stderr does not name it:\n{err}");
        }
        assert_eq!(code == 2, !incomplete.is_empty(), "exit {code} with {} incomplete inputs", incomplete.len());
    }
    assert!(runs > 0);

    let baseline = fs::read(root().join("fixtures/spec/h-baseline.pcap")).unwrap();
    let mut header_cuts = cut_header(&baseline, dir.path(), "pcap");
    if let Some(p) = corpus_file("tcpdump/bgp-orf.pcapng") {
        header_cuts += cut_header(&fs::read(p).unwrap(), dir.path(), "pcapng");
    }
    assert!(header_cuts >= 24);
}

/// Cuts inside the first 24 bytes (the pcap file header; most of a pcapng section header), one
/// process each: never a panic, and a cut that fails names the file.
fn cut_header(bytes: &[u8], dir: &Path, ext: &str) -> usize {
    for cut in 0..24.min(bytes.len()) {
        let p = dir.join(format!("header-{cut}.{ext}"));
        fs::write(&p, &bytes[..cut]).unwrap();
        let (code, out) = analyze_file(&p, &[]);
        if cut < 24 && ext == "pcap" {
            assert_eq!(code, 2, "a pcap cut at {cut} bytes was accepted:\n{}", stderr(&out));
        }
    }
    24.min(bytes.len())
}

/// Hundreds of damaged variants of real captures, one process each, with fixed seeds.
#[test]
fn damaged_variants_of_real_captures() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources: Vec<PathBuf> = small_captures();
    // A few larger corpus captures too: more records to damage.
    for name in ["arkime/arkime_synthetic.pcap", "zeek/get-to-ssh-server.pcap", "ndpi/http2.pcapng"] {
        sources.extend(corpus_file(name));
    }
    let mut rng = Rng(0x5eed_c0ff_ee00_0001);
    let per_source = (400 / sources.len()).max(8);
    let mut exits = [0usize; 3];
    for (i, src) in sources.iter().enumerate() {
        let bytes = fs::read(src).unwrap();
        for k in 0..per_source {
            let p = dir.path().join(format!("d{i}-{k}.cap"));
            fs::write(&p, damaged(&bytes, &mut rng)).unwrap();
            let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all"]);
            exits[code as usize] += 1;
            if !out.stdout.is_empty() {
                let lines = jsonl(&out);
                assert_eq!(lines.last().unwrap()["type"], "summary", "{}: report not finished", p.display());
            }
        }
    }
    // The damage must actually break something, and not everything.
    assert!(exits[2] > 20 && exits[0] + exits[1] > 20, "exit codes 0/1/2: {exits:?}");
}

// ---- hand-made lies -----------------------------------------------------------------------------

/// Raw IPv4/TCP packets with correct checksums.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&p[20..]);
    let c = checksum(&pseudo);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// A legacy pcap (little-endian, microseconds) of `linktype` with one record per frame, each with
/// the given caplen and origlen fields whatever the data.
fn pcap(linktype: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&262_144u32.to_le_bytes());
    f.extend_from_slice(&linktype.to_le_bytes());
    for (i, (caplen, origlen, data)) in records.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&caplen.to_le_bytes());
        f.extend_from_slice(&origlen.to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

fn handshake() -> [Vec<u8>; 3] {
    [
        tcp4(CLIENT, SERVER, 40000, 80, SYN, 1000, 0),
        tcp4(SERVER, CLIENT, 80, 40000, SYN | ACK, 5000, 1001),
        tcp4(CLIENT, SERVER, 40000, 80, ACK, 1001, 5001),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// An error mid-file: what came before is reported, the report is finished, and both the JSON
/// error line and stderr say where reading stopped.
#[test]
fn caplen_and_origlen_that_lie() {
    let dir = tempfile::tempdir().unwrap();
    let [syn, synack, ack] = handshake();
    let n = |v: &Vec<u8>| v.len() as u32;

    // origlen below caplen, origlen of 4 GB, caplen 0: all analysable, never a panic.
    let lies = pcap(101, &[(n(&syn), 10, &syn), (n(&synack), u32::MAX, &synack), (0, 60, &[]), (n(&ack), n(&ack), &ack)]);
    let (code, out) = analyze_file(&write(dir.path(), "origlen.pcap", &lies), &["--format", "jsonl", "--all"]);
    assert!(code <= 1, "{}", stderr(&out));
    assert_eq!(jsonl(&out).last().unwrap()["frames"], 4);

    // caplen far beyond any real frame, on the third record.
    let absurd = pcap(101, &[(n(&syn), n(&syn), &syn), (n(&synack), n(&synack), &synack), (0x7fff_ffff, 60, &ack)]);
    let p = write(dir.path(), "caplen.pcap", &absurd);
    let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all"]);
    assert_eq!(code, 2);
    let lines = jsonl(&out);
    let packets: Vec<_> = lines.iter().filter(|l| l["type"] == "packet").collect();
    assert_eq!(packets.len(), 2, "the frames before the bad record are reported");
    let error = lines.iter().find(|l| l["type"] == "error").expect("an error line");
    assert_eq!(error["frame"], 3);
    assert_eq!(error["offset"], 24 + 2 * 16 + 80);
    assert_eq!(lines.last().unwrap()["type"], "summary");
    let err = stderr(&out);
    assert!(err.contains("frame 3 (byte offset 136)") && err.contains("larger than any real frame"), "{err}");

    // caplen a little more than what is left: a truncated record.
    let short = pcap(101, &[(n(&syn), n(&syn), &syn), (100, 100, &synack)]);
    let (code, out) = analyze_file(&write(dir.path(), "short.pcap", &short), &[]);
    assert_eq!(code, 2);
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}

/// A little-endian pcapng block.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len().next_multiple_of(4)) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + body.len().next_multiple_of(4), 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    body.extend_from_slice(&[1, 0, 0, 0]);
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &body)
}

fn idb(linktype: u16) -> Vec<u8> {
    let mut body = linktype.to_le_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&0u32.to_le_bytes());
    block(1, &body)
}

fn epb(interface: u32, data: &[u8]) -> Vec<u8> {
    let mut body = interface.to_le_bytes().to_vec();
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&1_000_000u32.to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    block(6, &body)
}

#[test]
fn pcapng_block_lengths_that_lie_and_interfaces_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let [syn, synack, ack] = handshake();
    let good = [shb(), idb(101), epb(0, &syn), epb(0, &synack)].concat();
    let tail = epb(0, &ack);
    let set_u32 = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut t = tail.clone();
    set_u32(&mut t, 4, 64 << 20);
    cases.push(("absurd-length", t, "larger than any real frame"));
    let mut t = tail.clone();
    set_u32(&mut t, 4, 30);
    cases.push(("unaligned-length", t, "not a multiple of 4"));
    let mut t = tail.clone();
    let end = t.len() - 4;
    set_u32(&mut t, end, 8);
    cases.push(("trailing-length-differs", t, "two length fields differ"));
    let mut t = tail.clone();
    set_u32(&mut t, 4, (tail.len() + 400) as u32);
    cases.push(("length-beyond-the-file", t, "truncated"));
    let mut t = tail.clone();
    set_u32(&mut t, 20, 4000);
    cases.push(("caplen-beyond-the-block", t, "enhanced packet block"));
    cases.push(("interface-out-of-range", epb(7, &ack), "interface 7, but the section defines only 1"));
    // A second section forgets the interfaces of the first.
    cases.push(("interface-of-an-earlier-section", [shb(), epb(0, &ack)].concat(), "interface 0, but the section defines only 0"));

    for (name, tail, message) in cases {
        let p = write(dir.path(), &format!("{name}.pcapng"), &[good.clone(), tail].concat());
        let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all"]);
        assert_eq!(code, 2, "{name}");
        let err = stderr(&out);
        assert!(err.contains(message) && err.contains("frame 3"), "{name}: {err}");
        let lines = jsonl(&out);
        assert_eq!(lines.iter().filter(|l| l["type"] == "packet").count(), 2, "{name}: frames before the error");
        assert_eq!(lines.last().unwrap()["type"], "summary", "{name}");
    }
}

/// Ethernet with a stack of VLAN tags filling the frame, then IPv4/TCP; and a stack that only
/// ends with the capture.
#[test]
fn deep_vlan_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let [syn, ..] = handshake();
    let mut frames = Vec::new();
    for depth in [1usize, 64, 1000, 60_000] {
        let mut f = vec![0u8; 12];
        for _ in 0..depth {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&syn);
        frames.push(f);
    }
    let mut endless = vec![0u8; 12];
    while endless.len() < 262_140 {
        endless.extend_from_slice(&[0x88, 0xa8, 0x00, 0x01]);
    }
    frames.push(endless);
    let records: Vec<(u32, u32, &[u8])> = frames.iter().map(|f| (f.len() as u32, f.len() as u32, f.as_slice())).collect();
    let p = write(dir.path(), "vlan.pcap", &pcap(1, &records));
    let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all"]);
    assert!(code <= 1, "{}", stderr(&out));
    let lines = jsonl(&out);
    let packets: Vec<&Value> = lines.iter().filter(|l| l["type"] == "packet").collect();
    assert_eq!(packets.len(), 5);
    // Every depth reaches TCP: the tracker sees a SYN (new the first time, then the same tuple).
    for p in &packets[..4] {
        assert!(p["tcp"].is_object(), "{p}");
    }
    assert_eq!(packets[4]["ct_state"], "skipped");
}

/// IPv6 whose extension headers (hop-by-hop, then destination options, over and over) fill a
/// 65535-byte payload and never reach an upper-layer header; and one whose last header claims
/// more than the payload holds.
#[test]
fn ipv6_extension_header_chains_that_never_end() {
    let dir = tempfile::tempdir().unwrap();
    let ipv6 = |payload: &[u8], first: u8| {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.push(first);
        p.push(64);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    };
    // 8-byte destination-options headers, each naming another one next.
    let mut chain = Vec::new();
    while chain.len() + 8 <= 65_535 {
        chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    let endless = ipv6(&chain, 0);
    // A single header claiming 2 KB of a 16-byte payload: the TCP header after it is beyond the
    // datagram, which conntrack classes INVALID (it cannot read the header).
    let overlong = ipv6(&[6, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 60);
    let records = [(endless.len() as u32, endless.len() as u32, endless.as_slice()), (overlong.len() as u32, overlong.len() as u32, overlong.as_slice())];
    let p = write(dir.path(), "v6.pcap", &pcap(229, &records));
    let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all"]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let lines = jsonl(&out);
    let packets: Vec<_> = lines.iter().filter(|l| l["type"] == "packet").collect();
    assert_eq!(packets.len(), 2);
    assert!(packets[0]["skip"].as_str().unwrap().contains("extension headers run past"), "{}", packets[0]);
    assert_eq!(packets[1]["reason"]["id"], "tcp-header-unreadable", "{}", packets[1]);
}

#[test]
fn empty_files_directories_missing_and_unreadable_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.pcap", b"");
    let (code, out) = analyze_file(&empty, &[]);
    assert_eq!(code, 2);
    assert!(stderr(&out).contains("empty file"));

    let (code, out) = analyze_file(dir.path(), &[]);
    assert_eq!(code, 2);
    assert!(stderr(&out).to_lowercase().contains("directory"), "{}", stderr(&out));

    let (code, _) = analyze_file(&dir.path().join("missing.pcap"), &[]);
    assert_eq!(code, 2);

    // Open succeeds, every read fails (EIO): a read error, named.
    if Path::new("/proc/self/mem").exists() {
        let (code, out) = analyze_file(Path::new("/proc/self/mem"), &[]);
        assert_eq!(code, 2, "{}", stderr(&out));
    }

    // Without permission (root reads it anyway: then it must simply be analysed).
    let locked = write(dir.path(), "locked.pcap", &fs::read(root().join("fixtures/spec/h-baseline.pcap")).unwrap());
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let readable = fs::File::open(&locked).is_ok();
    let (code, out) = analyze_file(&locked, &[]);
    if readable {
        assert!(code <= 1);
    } else {
        assert!(code == 2 && stderr(&out).contains("cannot open"), "{}", stderr(&out));
    }
    // A good file after a bad one: the run does not start, and says which file.
    let good = root().join("fixtures/spec/h-baseline.pcap");
    let (code, out) = analyze(&[empty.to_str().unwrap(), good.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert!(stderr(&out).contains(empty.to_str().unwrap()));
}

#[test]
fn stdin() {
    let capture = fs::read(root().join("fixtures/example/centos5-reverse-proxy.pcap")).unwrap();
    let path = root().join("fixtures/example/centos5-reverse-proxy.pcap");
    let (file_code, from_file) = analyze(&["--format", "jsonl", path.to_str().unwrap()], None);
    let (code, from_stdin) = analyze(&["--format", "jsonl", "-"], Some(&capture));
    assert_eq!(code, file_code);
    // Same packets and summary; only the begin line names the input differently.
    let strip = |o: &Output| jsonl(o).into_iter().skip(1).map(|mut v| {
        v.as_object_mut().unwrap().remove("captures");
        v
    }).collect::<Vec<_>>();
    assert_eq!(strip(&from_stdin), strip(&from_file));

    let (code, out) = analyze(&["-"], Some(b""));
    assert_eq!(code, 2);
    assert!(stderr(&out).contains("-: ") && stderr(&out).contains("empty file"), "{}", stderr(&out));

    // Cut mid-record on stdin.
    let (code, out) = analyze(&["--format", "jsonl", "-"], Some(&capture[..capture.len() - 10]));
    assert_eq!(code, 2);
    assert_eq!(jsonl(&out).last().unwrap()["type"], "summary");
}

/// `--output FILE` is written whole or not at all: a run that cannot start leaves a missing
/// target missing and an existing one untouched, and no temporary file behind; a run that fails
/// mid-capture still writes its (finished) report.
#[test]
fn output_file_is_never_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("report.jsonl");
    let missing = dir.path().join("missing.pcap");
    let empty = write(dir.path(), "empty.pcap", b"");
    let listing = || {
        let mut v: Vec<_> = fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.file_name()).collect();
        v.sort();
        v
    };

    for bad in [&missing, &empty] {
        let (code, _) = analyze(&["--format", "jsonl", "-o", target.to_str().unwrap(), bad.to_str().unwrap()], None);
        assert_eq!(code, 2);
        assert!(!target.exists(), "a failed run created {}", target.display());
        assert!(listing().is_empty(), "a failed run left {:?}", listing());
    }

    fs::write(&target, "previous report\n").unwrap();
    let (code, _) = analyze(&["-o", target.to_str().unwrap(), missing.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert_eq!(fs::read_to_string(&target).unwrap(), "previous report\n");
    assert_eq!(listing().len(), 1);

    // Corrupt mid-file: the report is written, whole, and ends with the summary.
    let capture = fs::read(root().join("fixtures/example/centos5-reverse-proxy.pcap")).unwrap();
    let cut = write(dir.path(), "cut.pcap", &capture[..capture.len() / 2]);
    let (code, out) = analyze(&["--format", "jsonl", "--all", "-o", target.to_str().unwrap(), cut.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert!(out.stdout.is_empty());
    let text = fs::read_to_string(&target).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert!(text.lines().any(|l| l.contains(r#""type":"error""#)));
    assert_eq!(listing().len(), 1);

    // The table report too.
    let (code, _) = analyze(&["-o", target.to_str().unwrap(), cut.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert!(fs::read_to_string(&target).unwrap().contains("ERROR"));
}

/// A JSON Lines report of a capture corrupt mid-file: every frame before the damage, an `error`
/// line saying where it stopped, and the `summary` last.
#[test]
fn jsonl_ends_with_summary_after_an_error_mid_file() {
    let dir = tempfile::tempdir().unwrap();
    let capture = fs::read(root().join("fixtures/spec/t07-orderly-close.pcap")).unwrap();
    let records = record_offsets(&capture);
    let mut bad = capture.clone();
    // Record 4's caplen becomes absurd.
    let at = records[3] + 8;
    bad[at..at + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let p = write(dir.path(), "mid.pcap", &bad);
    let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all"]);
    assert_eq!(code, 2);
    // Flow summaries come before the summary too; they are not what this test is about.
    let lines: Vec<Value> = jsonl(&out).into_iter().filter(|l| l["type"] != "flow").collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["begin", "packet", "packet", "packet", "error", "summary"]);
    assert_eq!(lines[4]["frame"], 4);
    assert_eq!(lines[4]["offset"], records[3] as u64);
    let summary = &lines[5];
    assert_eq!(summary["frames"], 3);
    assert_eq!(summary["captures"][0]["complete"], false);
}

// ---- a flood of new tuples against a small table -----------------------------------------------

/// `ASSURED` connections fill a small table, then SYNs from that many distinct tuples arrive,
/// generated on the fly: each must be dropped as "table full" and counted, the table must stay at
/// its size (flows created = the connections), and the run must stay fast (it used to cost a
/// sweep of the table per SYN).
///
/// 100,000 SYNs rather than a million keep this to about five seconds of a debug build (most of
/// it spent writing the 100,000 `drop` lines); a release build does the million in 4.5 s
/// (docs/limits.md).
#[test]
fn a_flood_of_syns_against_a_full_table() {
    const MAX: u32 = 500;
    const SYNS: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flood.pcap");
    let mut f = std::io::BufWriter::new(fs::File::create(&p).unwrap());
    f.write_all(&pcap(101, &[])).unwrap();
    let mut record = |ts: u32, data: &[u8]| {
        f.write_all(&ts.to_le_bytes()).unwrap();
        f.write_all(&0u32.to_le_bytes()).unwrap();
        f.write_all(&(data.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&(data.len() as u32).to_le_bytes()).unwrap();
        f.write_all(data).unwrap();
    };
    let t0 = 1_700_000_000;
    for i in 0..MAX {
        let port = 1024 + i as u16;
        record(t0, &tcp4(CLIENT, SERVER, port, 80, SYN, 1000, 0));
        record(t0, &tcp4(SERVER, CLIENT, 80, port, SYN | ACK, 5000, 1001));
        record(t0, &tcp4(CLIENT, SERVER, port, 80, ACK, 1001, 5001));
    }
    for i in 0..SYNS {
        // A new source address per SYN, so every one is a new tuple.
        let src = (0x0b00_0000 + i).to_be_bytes();
        record(t0 + 1 + i / 100_000, &tcp4(src, SERVER, 40000, 80, SYN, 1, 0));
    }
    f.flush().unwrap();
    drop(f);

    let max = format!("nf_conntrack_max={MAX}");
    // One tracker thread: with several, each shard holds its share of the table, and which SYN
    // meets a full shard depends on the hash (docs/performance.md).
    let (code, out) = analyze_file(&p, &["--format", "jsonl", "--threads", "1", "--sysctl", &max]);
    assert_eq!(code, 1, "{}", stderr(&out));
    // Parse the summary only: the drop lines are counted as text.
    let text = String::from_utf8(out.stdout).unwrap();
    let s: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(s["type"], "summary");
    assert_eq!(s["frames"], u64::from(3 * MAX + SYNS));
    assert_eq!(s["flows"], u64::from(MAX), "more entries than nf_conntrack_max");
    assert_eq!(s["dropped"], u64::from(SYNS));
    assert_eq!(s["reasons"]["table-full"], u64::from(SYNS));
    // Every drop is a notable packet, reported with the kernel's line.
    assert_eq!(text.matches(r#""verdict":"drop""#).count(), SYNS as usize);
    assert_eq!(text.matches("nf_conntrack: table full, dropping packet").count(), SYNS as usize);
}

/// Timestamps at both ends of time: `if_tsoffset` moves one interface's packets to the largest
/// time a capture can express and the other's to the smallest, so a packet meets an entry created
/// "after" it. Ages and remaining times must saturate, not overflow.
#[test]
fn timestamps_at_both_ends_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let idb_with_offset = |secs: i64| {
        let mut body = 101u16.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&14u16.to_le_bytes());
        body.extend_from_slice(&8u16.to_le_bytes());
        body.extend_from_slice(&secs.to_le_bytes());
        body.extend_from_slice(&[0, 0, 0, 0]);
        block(1, &body)
    };
    let [syn, synack, ack] = handshake();
    let file = [shb(), idb_with_offset(i64::MAX / 2), idb_with_offset(i64::MIN / 2), epb(0, &syn), epb(1, &synack), epb(0, &ack), epb(1, &ack)].concat();
    let p = write(dir.path(), "ends-of-time.pcapng", &file);
    for timing in ["capture", "back-to-back"] {
        let (code, out) = analyze_file(&p, &["--format", "jsonl", "--all", "--timing", timing]);
        assert!(code <= 1, "{}", stderr(&out));
        assert_eq!(jsonl(&out).last().unwrap()["frames"], 4);
    }
}

/// Gzip-compressed captures, cut and damaged (in the compressed bytes): a corrupt stream ends the
/// input with a message naming the file, never a panic or a hang.
#[test]
fn damaged_gzip_captures() {
    use flate2::{Compression, write::GzEncoder};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_0000_0000_0042);
    let mut exits = [0usize; 3];
    for name in ["fixtures/example/centos5-reverse-proxy.pcap", "fixtures/spec/t07-orderly-close.pcap"] {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&fs::read(root().join(name)).unwrap()).unwrap();
        let compressed = gz.finish().unwrap();
        let whole = write(dir.path(), "whole.pcap.gz", &compressed);
        assert!(analyze_file(&whole, &[]).0 <= 1, "the intact gzip capture is analysed");
        for k in 0..30 {
            let mut bytes = compressed.clone();
            if k % 2 == 0 {
                // Keep the gzip magic, so the damage is found while decompressing.
                bytes.truncate(2 + rng.index(bytes.len() - 2));
            } else {
                for _ in 0..1 + rng.index(4) {
                    let at = 10 + rng.index(bytes.len() - 10);
                    bytes[at] ^= 1 << rng.index(8);
                }
            }
            let p = write(dir.path(), &format!("damaged-{k}.pcap.gz"), &bytes);
            let (code, out) = analyze_file(&p, &["--format", "jsonl"]);
            exits[code as usize] += 1;
            if !out.stdout.is_empty() {
                assert_eq!(jsonl(&out).last().unwrap()["type"], "summary");
            }
        }
    }
    assert!(exits[2] >= 30, "exit codes 0/1/2: {exits:?}");
}
