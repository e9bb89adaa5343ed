//! The fuzz harnesses of ctreplay, one function per cargo-fuzz target.
//!
//! Each takes the fuzzer's bytes, drives one layer (or the whole pipeline) with them, and panics
//! when the code under test panics *or* when an invariant the rest of the program relies on does
//! not hold. They live in a library, not in the target files, so that the top-level
//! `tests/fuzz_regressions.rs` can include this very file and replay every saved crasher in a
//! plain `cargo test`, without libFuzzer.
//!
//! | target    | input                                                             |
//! |-----------|-------------------------------------------------------------------|
//! | `capture` | a control byte, then one or more capture files split by [`SPLIT`] |
//! | `decode`  | a link-type byte, then frames (see [`decode`])                    |
//! | `analyze` | one capture file; its length picks the settings                   |
//! | `tracker` | a configuration, then 14-byte packets (see [`TrackerInput`])      |

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};

use arbitrary::{Arbitrary, Unstructured};
use ctreplay::capture::{CaptureSet, Frame, LinkDirection, LinkType, Timestamp};
use ctreplay::conntrack::profile::Profile;
use ctreplay::conntrack::sysctl::Sysctls;
use ctreplay::conntrack::{Conntrack, Hook, Packet};
use ctreplay::decode::{ChecksumStatus, Decoded, Decoder, Segment, TcpFlags, TcpOptions, Tuple};
use ctreplay::engine::{self, Observation, Settings, Sink, Timing, TruncatedFrames, Vantage};
use ctreplay::report::{jsonl::JsonLines, table::TableReport, tee::Tee};
use ctreplay::verdict::{Action, CtState, FrameRef, ReasonId, Verdict};

// ---- capture ------------------------------------------------------------------------------------

/// Separates the inputs of one `capture` run. A libFuzzer dictionary entry (`fuzz/capture.dict`)
/// lets the fuzzer insert it, so the k-way merge of several files is exercised.
pub const SPLIT: &[u8] = b"\xffCTREPLAY-SPLIT\xff";

/// Hands out at most `chunk` bytes per `read`, as pipes and gzip decoders do, so the reader's
/// refill logic (records straddling reads) is exercised, not just one big read.
struct Chunked {
    data: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The capture reader over arbitrary bytes: byte 0 sets the read size (`1 << (b & 15)` bytes per
/// `read`) and, with bit 4, has every input gzip-compressed first (so the decompressing path reads
/// valid streams of fuzzed content); the rest is split by [`SPLIT`] into inputs merged by one
/// [`CaptureSet`].
///
/// Checks: reading terminates (every frame consumes at least 12 bytes of some input, and an input
/// fails at most once), frame numbers count up by one per file, errors name one of the inputs,
/// and the per-file counters agree with what was handed out.
pub fn capture(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else { return };
    let chunk = 1usize << (control & 15);
    let gzip = control & 0x10 != 0;
    let parts: Vec<&[u8]> = split(rest, SPLIT);
    let names: Vec<String> = (0..parts.len()).map(|i| format!("input-{i}")).collect();
    let readers = parts.iter().zip(&names).map(|(part, name)| {
        // The reader must be 'static and Send: it gets its own copy.
        let data = if gzip { gzip_compress(part) } else { part.to_vec() };
        let reader: Box<dyn Read + Send> = Box::new(Chunked { data, at: 0, chunk });
        (name.clone(), reader)
    });
    let mut set = match CaptureSet::from_readers(readers) {
        Ok(set) => set,
        Err(e) => {
            assert!(names.contains(&e.file), "error names an unknown input: {e}");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut numbers = vec![0u64; parts.len()];
    let mut frames = 0usize;
    let mut errors = 0usize;
    while let Some(next) = set.next_frame() {
        match next {
            Ok(frame) => {
                frames += 1;
                check_frame(&frame, &mut numbers);
            }
            Err(e) => {
                errors += 1;
                assert!(names.contains(&e.file), "error names an unknown input: {e}");
                assert!(e.to_string().starts_with(&e.file), "message does not start with the file: {e}");
            }
        }
        assert!(errors <= parts.len(), "more errors than inputs");
        assert!(frames * 12 <= rest.len(), "more frames than the bytes can hold: the reader loops");
    }
    for (file, &n) in set.files().iter().zip(&numbers) {
        assert_eq!(file.frames, n, "{}: frame counter disagrees with the frames handed out", file.path);
    }
}

fn gzip_compress(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("compressing into memory");
    gz.finish().expect("compressing into memory")
}

fn check_frame(frame: &Frame<'_>, numbers: &mut [u64]) {
    let n = &mut numbers[frame.file];
    *n += 1;
    assert_eq!(frame.number, *n, "frame numbers of file {} skip or repeat", frame.file);
    assert!(frame.data.len() <= 16 << 20, "a frame larger than any record we accept");
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

/// Prefixes a capture file with the control byte [`capture`] expects (reads of 32 KiB).
pub fn capture_input(files: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![15];
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SPLIT);
        }
        out.extend_from_slice(f);
    }
    out
}

// ---- decode -------------------------------------------------------------------------------------

/// The link types [`decode`] picks from; the last is one the decoder does not know.
pub const LINK_TYPES: [LinkType; 11] = [
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::RAW_OLD_12,
    LinkType::RAW_OLD_14,
    LinkType(147),
];

/// Time between frames, in nanoseconds: nothing, a microsecond, a millisecond, a second, around
/// the IPv4 reassembly timeout (30 s) and the IPv6 one (60 s), and a step back in time (as when
/// rotated files overlap).
const TIME_STEPS: [i64; 8] = [0, 1_000, 1_000_000, 1_000_000_000, 29_000_000_000, 31_000_000_000, 61_000_000_000, -1_000_000_000];

/// One frame of a [`decode`] input.
pub struct DecodeFrame<'a> {
    pub data: &'a [u8],
    /// Bytes the snaplen cut off (the frame's `orig_len` is `data.len()` plus this).
    pub cut: u32,
    pub direction: Option<LinkDirection>,
    /// Index into the time steps (0..8).
    pub step: u8,
}

/// The decoder over a sequence of frames sharing one [`Decoder`] (and so its defragmentation
/// state). Byte 0 picks the link type from [`LINK_TYPES`]; then each frame is a 2-byte
/// little-endian length, a byte of metadata (bits 0-2 the time step, bit 3 "cut by the snaplen",
/// bits 4-5 the direction) and the bytes.
///
/// Checks: every segment is consistent with what the decoder promises the tracker (lengths within
/// an IP datagram, payload within the segment, option counts in range, a checksum verdict only for
/// whole segments).
pub fn decode(data: &[u8]) {
    let Some((&link, mut rest)) = data.split_first() else { return };
    let linktype = LINK_TYPES[usize::from(link) % LINK_TYPES.len()];
    let mut decoder = Decoder::new();
    let mut ts = Timestamp::from_secs(1_700_000_000);
    let mut number = 0;
    while let Some((frame, after)) = next_decode_frame(rest) {
        rest = after;
        number += 1;
        ts = Timestamp(ts.0.saturating_add(TIME_STEPS[usize::from(frame.step & 7)]));
        let f = Frame {
            file: 0,
            number,
            ts,
            linktype,
            data: frame.data,
            orig_len: (frame.data.len() as u32).saturating_add(frame.cut),
            direction: frame.direction,
            offset: 0,
        };
        check_decoded(&decoder.decode(&f));
    }
}

fn next_decode_frame(data: &[u8]) -> Option<(DecodeFrame<'_>, &[u8])> {
    let (head, rest) = data.split_first_chunk::<3>()?;
    let len = usize::from(u16::from_le_bytes([head[0], head[1]])).min(rest.len());
    let meta = head[2];
    let (bytes, rest) = rest.split_at(len);
    let frame = DecodeFrame {
        data: bytes,
        // A cut frame lost up to 64 KiB on the wire.
        cut: if meta & 8 != 0 { 1 + u32::from(meta) * 257 } else { 0 },
        direction: match (meta >> 4) & 3 {
            1 => Some(LinkDirection::Inbound),
            2 => Some(LinkDirection::Outbound),
            _ => None,
        },
        step: meta & 7,
    };
    Some((frame, rest))
}

/// The inverse of [`decode`]'s framing, for seeds made from real captures.
pub fn decode_input(link_index: u8, frames: &[DecodeFrame<'_>]) -> Vec<u8> {
    let mut out = vec![link_index];
    for f in frames {
        let len = f.data.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_le_bytes());
        let dir = match f.direction {
            None => 0,
            Some(LinkDirection::Inbound) => 1,
            Some(LinkDirection::Outbound) => 2,
        };
        out.push((f.step & 7) | if f.cut > 0 { 8 } else { 0 } | (dir << 4));
        out.extend_from_slice(&f.data[..len]);
    }
    out
}

fn check_decoded(d: &Decoded) {
    let Decoded::Tcp(seg) = d else { return };
    assert!(seg.l4_len <= 65_535, "segment longer than an IP datagram: {seg:?}");
    assert!(seg.payload_len() <= seg.l4_len);
    assert!(seg.fragments >= 1);
    assert!(seg.options.area_len <= 40);
    assert!(seg.options.sack_blocks <= 4);
    assert!(seg.doff <= 15);
    if !seg.truncated {
        assert_ne!(seg.checksum, ChecksumStatus::Unverifiable, "whole segment without a checksum verdict");
    }
}

// ---- analyze ------------------------------------------------------------------------------------

/// The settings the `analyze` harness runs with, picked by the input length, so a seed file keeps
/// its meaning as a capture and the fuzzer still reaches every combination by growing or
/// shrinking it.
fn analyze_settings(len: usize) -> (Settings, bool) {
    let mut s = Settings {
        vantage: if len & 1 == 0 { Vantage::Auto } else { Vantage::Forward },
        timing: if len & 2 == 0 { Timing::Capture } else { Timing::BackToBack },
        truncated: if len & 4 == 0 { TruncatedFrames::Track } else { TruncatedFrames::Skip },
        snapshots: true,
        ..Settings::default()
    };
    if len & 32 != 0 {
        // The command line's default: every packet judged by the older kernels too.
        s.compare_with_other_kernels();
    }
    if len & 16 != 0 {
        // A tiny table: early drop and "table full" on every capture with a few flows.
        s.sysctls.max = 2;
        s.sysctls.tcp_be_liberal = true;
        s.sysctls.tcp_loose = false;
    }
    (s, len & 8 == 0)
}

/// The whole pipeline, bytes → capture → decode → conntrack → report, through
/// [`engine::analyze`] as the command line runs it (which reads files, so the bytes go to a
/// temporary file first), with the JSON Lines or the table report as the sink.
///
/// Checks: the JSON Lines report ends with a `summary` line and has one `error` line per failed
/// input; the summary's counters add up; without `--all`, the flows (followed from their first
/// notable packet, from their entry's log) are verbatim and in order those of the `--all` run,
/// and the report is the same handed every frame, and on three threads.
pub fn analyze(data: &[u8]) {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(data).expect("write the capture");
    file.flush().expect("flush the capture");
    let path = file.path().to_string_lossy().into_owned();
    let (settings, jsonl) = analyze_settings(data.len());
    let mut out = Vec::new();
    let result = if jsonl {
        engine::analyze(std::slice::from_ref(&path), &settings, &mut JsonLines::new(&mut out, true))
    } else {
        engine::analyze(std::slice::from_ref(&path), &settings, &mut TableReport::new(&mut out, true, Some(120)))
    };
    let Ok(summary) = result else {
        // The file is not a capture at all: nothing may have been written.
        assert!(out.is_empty(), "a report was started for a file that could not be opened");
        return;
    };
    let skipped: u64 = summary.skipped.values().sum();
    assert_eq!(summary.frames, summary.tcp_packets + skipped, "frames neither tracked nor skipped");
    let states: u64 = summary.ct_states.values().sum();
    assert_eq!(states, summary.tcp_packets);
    assert!(summary.invalid + summary.ignored + summary.dropped <= summary.tcp_packets);
    assert!(summary.flows <= summary.tcp_packets);
    assert!(summary.errors.len() <= 1, "one input fails at most once");
    if jsonl {
        let text = String::from_utf8(out).expect("JSON Lines are UTF-8");
        let last = text.lines().last().expect("at least a begin and a summary line");
        assert!(last.starts_with(r#"{"type":"summary""#), "the report does not end with its summary: {last}");
        let errors = text.lines().filter(|l| l.starts_with(r#"{"type":"error""#)).count();
        assert_eq!(errors, summary.errors.len());

        // Without snapshots, which no report without --all needs and which keep every frame
        // from being quiet.
        let quiet = Settings { snapshots: false, ..settings.clone() };
        let mut notable = Vec::new();
        let _ = engine::analyze(std::slice::from_ref(&path), &quiet, &mut JsonLines::new(&mut notable, false));
        // Holding back quiet frames changes nothing: the same report, handed every frame.
        let mut every_frame = Vec::new();
        let _ = engine::analyze(
            std::slice::from_ref(&path),
            &quiet,
            &mut Tee::new(vec![&mut JsonLines::new(&mut every_frame, false), &mut EveryFrame]),
        );
        assert!(notable == every_frame, "the report without --all differs when it is handed every frame");
        // Nor does sharding the flows over threads, whose merger hands quiet frames over in runs
        // (except near nf_conntrack_max, where each shard holds its share of the table).
        if quiet.sysctls.max == Settings::default().sysctls.max {
            let mut sharded = Vec::new();
            let _ = engine::analyze(std::slice::from_ref(&path), &Settings { threads: 3, ..quiet }, &mut JsonLines::new(&mut sharded, false));
            assert!(notable == sharded, "the report without --all differs on three threads");
        }
        let flows = |text: &str| -> Vec<String> { text.lines().filter(|l| l.starts_with(r#"{"type":"flow""#)).map(String::from).collect() };
        let every = flows(&text);
        let mut rest = every.iter();
        for f in flows(&String::from_utf8(notable).expect("JSON Lines are UTF-8")) {
            assert!(rest.any(|e| *e == f), "a flow without --all differs from the --all run's, or comes out of order: {f}");
        }
    }
}

/// A sink that needs every frame and does nothing with it: teed with a report, the engine
/// holds back no quiet frame from that report either.
struct EveryFrame;

impl Sink for EveryFrame {
    fn packet(&mut self, _: &Observation<'_>) -> io::Result<()> {
        Ok(())
    }
}

// ---- tracker ------------------------------------------------------------------------------------

/// Sequence numbers are an anchor plus a 14-bit offset: near 0, at the sign boundary of
/// `before()`/`after()`, just below the wrap, and an ordinary value. Two packets of one connection
/// then relate as real ones do (in, just beyond or far beyond a window) far more often than
/// random 32-bit numbers would.
pub const SEQ_ANCHORS: [u32; 4] = [0, 0x7fff_e000, 0xffff_e000, 1_000_000];
const PORTS: [u16; 4] = [80, 443, 40000, 40001];
const ADDRS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(192, 168, 1, 1),
];
/// Capture-time steps for the tracker: back to back, within and beyond the short timeouts
/// (CLOSE 10 s, LAST_ACK 30 s, SYN_RECV 60 s, TIME_WAIT / SYN_SENT 120 s, unacknowledged 300 s),
/// beyond ESTABLISHED's 5 days, and backwards.
const TRACKER_STEPS: [i64; 8] = [0, 1_000_000, 11_000_000_000, 31_000_000_000, 121_000_000_000, 301_000_000_000, 432_001_000_000_000, -5_000_000_000];

/// Sysctls and switches of one `tracker` run (the input's first two bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerConfig {
    pub be_liberal: bool,
    pub loose: bool,
    pub ignore_invalid_rst: bool,
    pub checksum: bool,
    pub max_retrans: u32,
    /// `nf_conntrack_max`: the default, or tiny, so eviction and "table full" happen.
    pub max: u32,
    /// Every timeout a few seconds, so entries expire under the packets' feet.
    pub short_timeouts: bool,
}

/// The kernel's defaults.
impl Default for TrackerConfig {
    fn default() -> TrackerConfig {
        TrackerConfig {
            be_liberal: false,
            loose: true,
            ignore_invalid_rst: false,
            checksum: true,
            max_retrans: 3,
            max: 262_144,
            short_timeouts: false,
        }
    }
}

impl TrackerConfig {
    pub fn from_bytes(a: u8, b: u8) -> TrackerConfig {
        TrackerConfig {
            be_liberal: a & 1 != 0,
            loose: a & 2 == 0,
            ignore_invalid_rst: a & 4 != 0,
            checksum: a & 8 == 0,
            max_retrans: u32::from((a >> 4) & 3),
            max: [262_144, 1, 2, 8][usize::from(a >> 6)],
            short_timeouts: b & 1 != 0,
        }
    }

    fn to_bytes(self) -> [u8; 2] {
        let max = match self.max {
            1 => 1,
            2 => 2,
            8 => 3,
            _ => 0,
        };
        let a = u8::from(self.be_liberal)
            | u8::from(!self.loose) << 1
            | u8::from(self.ignore_invalid_rst) << 2
            | u8::from(!self.checksum) << 3
            | ((self.max_retrans.min(3) as u8) << 4)
            | (max << 6);
        [a, u8::from(self.short_timeouts)]
    }

    pub fn sysctls(&self) -> Sysctls {
        let mut s = Sysctls {
            tcp_be_liberal: self.be_liberal,
            tcp_loose: self.loose,
            tcp_max_retrans: self.max_retrans,
            tcp_ignore_invalid_rst: self.ignore_invalid_rst,
            checksum: self.checksum,
            max: self.max,
            ..Sysctls::default()
        };
        if self.short_timeouts {
            let t = &mut s.timeouts;
            for (i, slot) in [
                &mut t.syn_sent,
                &mut t.syn_recv,
                &mut t.established,
                &mut t.fin_wait,
                &mut t.close_wait,
                &mut t.last_ack,
                &mut t.time_wait,
                &mut t.close,
                &mut t.syn_sent2,
                &mut t.max_retrans,
                &mut t.unacknowledged,
            ]
            .into_iter()
            .enumerate()
            {
                *slot = 1 + i as u32 % 5;
            }
        }
        s
    }
}

/// One packet of a `tracker` run, in a small space of tuples, sequence numbers and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerOp {
    /// Indexes into the source address, destination address, source port, destination port.
    pub tuple: [u8; 4],
    pub flags: u8,
    /// Anchor index (top 2 bits) and offset (low 14 bits); see [`SEQ_ANCHORS`].
    pub seq: u16,
    pub ack: u16,
    /// Raw window = this × 64.
    pub window: u8,
    /// Payload bytes = this × 8.
    pub payload: u8,
    /// Bits 0-3: a raw data offset (used when bit 7 is set, else the options decide it); bit 4
    /// window scale, bit 5 SACK-permitted, bit 6 an option area even without those (as
    /// timestamps make one, which conntrack does not read).
    pub doff_opts: u8,
    /// Bits 0-3: the window scale; bits 4-6: SACK blocks.
    pub wscale_sack: u8,
    /// Right edge of the first SACK block, like `seq`; later blocks follow 1000 bytes apart.
    pub sack: u16,
    /// Bits 0-1: checksum good/good/bad/partial; bit 2: met at OUTPUT; bits 3-4: link direction;
    /// bit 5: cut by the snaplen; bit 6: reassembled from fragments; bit 7: TCP header unreadable.
    pub misc: u8,
    /// Index into the time steps.
    pub step: u8,
}

/// Bytes per [`TrackerOp`].
pub const OP_LEN: usize = 14;

impl<'a> Arbitrary<'a> for TrackerOp {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut b = [0u8; OP_LEN];
        u.fill_buffer(&mut b)?;
        Ok(TrackerOp::from_bytes(&b))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (OP_LEN, Some(OP_LEN))
    }
}

impl TrackerOp {
    pub fn from_bytes(b: &[u8; OP_LEN]) -> TrackerOp {
        let t = b[0];
        TrackerOp {
            tuple: [t & 3, (t >> 2) & 3, (t >> 4) & 3, t >> 6],
            flags: b[1],
            seq: u16::from_le_bytes([b[2], b[3]]),
            ack: u16::from_le_bytes([b[4], b[5]]),
            window: b[6],
            payload: b[7],
            doff_opts: b[8],
            wscale_sack: b[9],
            sack: u16::from_le_bytes([b[10], b[11]]),
            misc: b[12],
            step: b[13],
        }
    }

    pub fn to_bytes(self) -> [u8; OP_LEN] {
        let t = self.tuple.map(|i| i & 3);
        let [s0, s1] = self.seq.to_le_bytes();
        let [a0, a1] = self.ack.to_le_bytes();
        let [k0, k1] = self.sack.to_le_bytes();
        [
            t[0] | t[1] << 2 | t[2] << 4 | t[3] << 6,
            self.flags,
            s0,
            s1,
            a0,
            a1,
            self.window,
            self.payload,
            self.doff_opts,
            self.wscale_sack,
            k0,
            k1,
            self.misc,
            self.step,
        ]
    }

    pub fn tuple(&self) -> Tuple {
        let [s, d, sp, dp] = self.tuple.map(|i| usize::from(i & 3));
        Tuple { src: IpAddr::V4(ADDRS[s]), dst: IpAddr::V4(ADDRS[d]), sport: PORTS[sp], dport: PORTS[dp] }
    }

    pub fn segment(&self) -> Segment {
        let o = self.doff_opts;
        let ws = self.wscale_sack;
        let blocks = ((ws >> 4) & 7).min(4);
        let mut sack_right_edges = [0u32; 4];
        for (i, edge) in sack_right_edges.iter_mut().take(usize::from(blocks)).enumerate() {
            *edge = seq_of(self.sack).wrapping_add(i as u32 * 1000);
        }
        let options = TcpOptions {
            area_len: if o & 0x70 != 0 || blocks > 0 { 20 } else { 0 },
            complete: self.misc & 0x20 == 0,
            wscale: (o & 0x10 != 0).then_some(ws & 15),
            sack_perm: o & 0x20 != 0,
            mss: None,
            sack_right_edges,
            sack_blocks: blocks,
        };
        let doff = if o & 0x80 != 0 { o & 15 } else { 5 + options.area_len / 4 };
        let payload = u32::from(self.payload) * 8;
        let m = self.misc;
        Segment {
            tuple: self.tuple(),
            seq: seq_of(self.seq),
            ack: seq_of(self.ack),
            window: u16::from(self.window) * 64,
            flags: TcpFlags(self.flags),
            doff,
            l4_len: u32::from(doff) * 4 + payload,
            options,
            checksum: [ChecksumStatus::Good, ChecksumStatus::Good, ChecksumStatus::Bad, ChecksumStatus::Partial]
                [usize::from(m & 3)],
            ttl: 64,
            fragments: if m & 0x40 != 0 { 2 } else { 1 },
            truncated: m & 0x20 != 0,
            link_direction: match (m >> 3) & 3 {
                1 => Some(LinkDirection::Inbound),
                2 => Some(LinkDirection::Outbound),
                _ => None,
            },
        }
    }

    fn hook(&self) -> Hook {
        if self.misc & 4 != 0 { Hook::LocalOut } else { Hook::PreRouting }
    }
}

fn seq_of(v: u16) -> u32 {
    SEQ_ANCHORS[usize::from(v >> 14)].wrapping_add(u32::from(v & 0x3fff))
}

/// A whole `tracker` input: configuration, then packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerInput {
    pub config: TrackerConfig,
    pub ops: Vec<TrackerOp>,
}

impl<'a> Arbitrary<'a> for TrackerInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let config = TrackerConfig::from_bytes(u.arbitrary()?, u.arbitrary()?);
        // Packets until the bytes run out (no length prefix: a seed is just packets in a row).
        let mut ops = Vec::new();
        while u.len() >= OP_LEN {
            ops.push(TrackerOp::arbitrary(u)?);
        }
        Ok(TrackerInput { config, ops })
    }
}

impl TrackerInput {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.config.to_bytes().to_vec();
        for op in &self.ops {
            out.extend_from_slice(&op.to_bytes());
        }
        out
    }
}

/// Replays `input` through one [`Conntrack`], returning every verdict.
///
/// Checks, after every packet: the table never holds more than `nf_conntrack_max` entries; only a
/// full table drops; a NEW packet is in the original direction; an INVALID one has a reason; the
/// entry snapshot (as `--explain` and the differential tests read it) can be taken; the log of
/// the entry a packet met (entries keep logs, as for a report) counts its creator at least, and
/// a packet has one exactly when it met an entry.
pub fn run_tracker(input: &TrackerInput) -> Vec<Verdict> {
    let mut ct = Conntrack::new(Profile::latest(), input.config.sysctls());
    ct.keep_logs();
    let mut ts = Timestamp::from_secs(1_700_000_000);
    let mut verdicts = Vec::with_capacity(input.ops.len());
    for (i, op) in input.ops.iter().enumerate() {
        ts = Timestamp(ts.0.saturating_add(TRACKER_STEPS[usize::from(op.step & 7)]));
        let seg = op.segment();
        let frame = FrameRef { file: 0, number: i as u64 + 1 };
        let v = if op.misc & 0x80 != 0 {
            ct.track_unreadable(Some(&seg.tuple), ts)
        } else {
            ct.track(&Packet { seg: &seg, ts, frame, hook: op.hook(), seq: i as u64, capture_ts: ts })
        };
        assert!(ct.entries() <= input.config.max as usize, "table above nf_conntrack_max");
        let full = v.reason.as_ref().is_some_and(|r| r.id == ReasonId::TableFull);
        assert_eq!(v.action == Action::Drop, full, "drop without a full table, or the reverse: {v:?}");
        if v.ct_state == CtState::New {
            assert_eq!(v.dir, Some(ctreplay::conntrack::state::Dir::Original));
        }
        if v.action == Action::Invalid {
            assert!(v.reason.is_some(), "INVALID without a reason");
        }
        let _ = ct.snapshot(&seg.tuple, ts);
        match ct.take_log_before() {
            Some(log) => {
                // (A reopening SYN met the old entry: its verdict tells of it as `replaced`.)
                assert!(v.entry.is_some() || v.replaced.is_some(), "a log for a packet that met no entry");
                assert!(log.packets >= 1 && log.born < i as u64 + 1, "a log that does not count its creator: {log:?}");
                assert!(log.states().count() <= ctreplay::history::MAX_STATES && log.tokens().count() <= 14);
            }
            None => assert!(v.entry.is_none() || op.misc & 0x80 != 0, "no log for a packet that met an entry"),
        }
        verdicts.push(v);
    }
    verdicts
}

/// The tracker alone on arbitrary packet sequences (see [`TrackerInput`] and [`run_tracker`]).
pub fn tracker(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(input) = TrackerInput::arbitrary(&mut u) {
        run_tracker(&input);
    }
}

/// A [`TrackerOp`] for a decoded segment of a real capture, for seeds: addresses and ports are
/// numbered in order of appearance (modulo 4), sequence numbers are kept relative to the first one
/// seen in each direction (the first direction of a connection at anchor 0, its reverse at
/// anchor 3), times by the nearest step.
pub struct SeedMapper {
    addrs: Vec<IpAddr>,
    ports: Vec<u16>,
    bases: Vec<(Tuple, u32, u16)>,
}

impl Default for SeedMapper {
    fn default() -> Self {
        Self::new()
    }
}

impl SeedMapper {
    pub fn new() -> SeedMapper {
        SeedMapper { addrs: Vec::new(), ports: Vec::new(), bases: Vec::new() }
    }

    fn index<T: PartialEq + Copy>(list: &mut Vec<T>, v: T) -> u8 {
        let i = list.iter().position(|&x| x == v).unwrap_or_else(|| {
            list.push(v);
            list.len() - 1
        });
        (i % 4) as u8
    }

    /// The anchor and base of a direction, creating it (and its reverse) when new.
    fn base(&mut self, t: Tuple, seq: u32) -> (u32, u16) {
        if let Some(&(_, base, anchor)) = self.bases.iter().find(|(x, ..)| *x == t) {
            return (base, anchor);
        }
        let reverse_known = self.bases.iter().any(|(x, ..)| *x == t.reversed());
        let anchor = if reverse_known { 3 } else { 0 };
        self.bases.push((t, seq, anchor));
        (seq, anchor)
    }

    fn rel(&mut self, t: Tuple, base_seq: u32, v: u32) -> u16 {
        let (base, anchor) = self.base(t, base_seq);
        (anchor << 14) | (v.wrapping_sub(base) & 0x3fff) as u16
    }

    pub fn op(&mut self, seg: &Segment, gap_ns: i64) -> TrackerOp {
        let t = seg.tuple;
        let tuple = [
            Self::index(&mut self.addrs, t.src),
            Self::index(&mut self.addrs, t.dst),
            Self::index(&mut self.ports, t.sport),
            Self::index(&mut self.ports, t.dport),
        ];
        let seq = self.rel(t, seg.seq, seg.seq);
        // The ack is in the other direction's space; if that is not known yet, base it on the ack.
        let ack = self.rel(t.reversed(), seg.ack, seg.ack);
        let sack = if seg.options.sack_blocks > 0 {
            self.rel(t.reversed(), seg.ack, seg.options.sack_right_edges[0])
        } else {
            0
        };
        let o = &seg.options;
        let doff_opts = u8::from(o.wscale.is_some()) << 4
            | u8::from(o.sack_perm) << 5
            | u8::from(o.area_len > 0) << 6
            | if o.area_len == 0 && seg.doff != 5 { 0x80 | (seg.doff & 15) } else { 0 };
        let misc = match seg.checksum {
            ChecksumStatus::Bad => 2,
            ChecksumStatus::Partial => 3,
            _ => 0,
        } | match seg.link_direction {
            Some(LinkDirection::Inbound) => 1 << 3,
            Some(LinkDirection::Outbound) => 2 << 3,
            None => 0,
        } | u8::from(seg.truncated) << 5
            | u8::from(seg.fragments > 1) << 6;
        let step = TRACKER_STEPS[..7].iter().rposition(|&s| s <= gap_ns.max(0)).unwrap_or(0) as u8;
        TrackerOp {
            tuple,
            flags: seg.flags.0,
            seq,
            ack,
            window: (seg.window / 64) as u8,
            payload: (seg.payload_len() / 8).min(255) as u8,
            doff_opts,
            wscale_sack: o.wscale.unwrap_or(0) & 15 | (o.sack_blocks.min(4) << 4),
            sack,
            misc,
            step,
        }
    }
}
