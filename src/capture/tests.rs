//! Behaviour of the capture module through its public face, on hand-built byte streams.

use crate::synth::rng::Rng;
use std::io::{self, Cursor, Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::source::ByteOrder::{self, Big, Little};
use super::test_builder::{Built, Opt, Pcap, Pcapng};
use super::*;

/// An owned copy of a [`Frame`], so tests can collect them.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    file: usize,
    number: u64,
    ts: i64,
    linktype: LinkType,
    data: Vec<u8>,
    orig_len: u32,
    direction: Option<LinkDirection>,
    offset: u64,
}

/// Everything one pass over a set yields, in order.
struct Run {
    frames: Vec<Got>,
    errors: Vec<CaptureError>,
}

/// Far more steps than any test capture has frames: reaching it means a loop that does not end.
const MAX_STEPS: usize = 100_000;

fn boxed(bytes: Vec<u8>) -> Box<dyn Read + Send> {
    Box::new(Cursor::new(bytes))
}

fn open(inputs: Vec<(&str, Vec<u8>)>) -> Result<CaptureSet, CaptureError> {
    CaptureSet::from_readers(inputs.into_iter().map(|(n, b)| (n.to_string(), boxed(b))))
}

fn drain(set: &mut CaptureSet) -> Run {
    let mut run = Run {
        frames: Vec::new(),
        errors: Vec::new(),
    };
    for _ in 0..MAX_STEPS {
        match set.next_frame() {
            None => return run,
            Some(Ok(f)) => run.frames.push(Got {
                file: f.file,
                number: f.number,
                ts: f.ts.0,
                linktype: f.linktype,
                data: f.data.to_vec(),
                orig_len: f.orig_len,
                direction: f.direction,
                offset: f.offset,
            }),
            Some(Err(e)) => run.errors.push(e),
        }
    }
    panic!("next_frame did not end within {MAX_STEPS} steps");
}

fn read_one(name: &str, bytes: Vec<u8>) -> (Run, CaptureFile) {
    let mut set = open(vec![(name, bytes)]).expect("opens");
    let run = drain(&mut set);
    (run, set.files()[0].clone())
}

fn open_error(bytes: Vec<u8>) -> CaptureError {
    match open(vec![("bad.pcap", bytes)]) {
        Ok(_) => panic!("opened a broken capture"),
        Err(e) => e,
    }
}

/// The single error of a one-input run, after checking how many frames came before it.
fn single_error(name: &str, bytes: Vec<u8>, good_frames: usize) -> CaptureError {
    let (mut run, _) = read_one(name, bytes);
    assert_eq!(run.frames.len(), good_frames, "frames before the error");
    assert_eq!(run.errors.len(), 1, "exactly one error");
    run.errors.pop().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const T0: i64 = 1_700_000_000_123_456_789;

fn three_packet_pcap(nanosecond: bool, order: ByteOrder) -> Built {
    Pcap::new(1, nanosecond, order)
        .packet(T0, &[1, 2, 3])
        .packet(T0 + 1_000_000_000, &[4; 60])
        .packet(T0 + 2_000_000_000, &[])
        .build()
}

/// Two sections in opposite byte orders, three interfaces with different link types and
/// resolutions, every packet block kind, and blocks to skip in between.
fn mixed_pcapng() -> Built {
    Pcapng::new()
        .section(Little)
        .interface(1, 0, &[])
        .interface(101, 0, &[Opt::TsResol(9), Opt::TsOffset(100)])
        .epb(0, 1_500_000, &[0xaa; 5], &[Opt::Flags(1)])
        .block(4, &[0; 8]) // name resolution: skipped
        .epb(1, 7, &[0xbb; 8], &[])
        .spb(20, &[0xcc; 20])
        .block(0x8000_0001, &[1, 2, 3]) // local-use block type: skipped
        .section(Big)
        .interface(113, 4, &[Opt::TsResol(0x80 | 10), Opt::TsOffset(-1)])
        .pb(0, 3 * 1024, &[0xdd; 3], &[Opt::Flags(2)])
        .epb(0, 1024, &[0xee; 9], &[Opt::Flags(0b10)])
        .block(5, &[0; 4]) // interface statistics: skipped
        .build()
}

// ---------------------------------------------------------------------------------------------
// Formats

#[test]
fn legacy_pcap_in_both_resolutions_and_byte_orders() {
    for nanosecond in [false, true] {
        for order in [Little, Big] {
            let (run, file) = read_one("a.pcap", three_packet_pcap(nanosecond, order).bytes);
            assert!(run.errors.is_empty(), "{:?}", run.errors);
            let ts0 = if nanosecond { T0 } else { T0 - 789 };
            let got: Vec<_> = run
                .frames
                .iter()
                .map(|f| (f.number, f.ts, f.data.len()))
                .collect();
            assert_eq!(
                got,
                [
                    (1, ts0, 3),
                    (2, ts0 + 1_000_000_000, 60),
                    (3, ts0 + 2_000_000_000, 0)
                ],
                "nanosecond={nanosecond} {order:?}"
            );
            let first = &run.frames[0];
            assert_eq!(
                (first.linktype, first.orig_len, first.offset),
                (LinkType::ETHERNET, 13, 24)
            );
            assert_eq!(first.data, [1, 2, 3]);
            assert_eq!(first.direction, None);
            assert_eq!(file.format, Some(FileFormat::Pcap));
            assert_eq!(
                (file.nanosecond, file.big_endian, file.gzip),
                (nanosecond, order == Big, false)
            );
            assert_eq!((file.frames, file.bytes), (3, 24 + 3 * 16 + 63));
        }
    }
}

#[test]
fn legacy_modified_format_has_longer_record_headers() {
    let built = Pcap::modified(101)
        .packet(T0, &[9, 8, 7])
        .packet(T0, &[6])
        .build();
    let (run, _) = read_one("kuznetsov.pcap", built.bytes);
    assert!(run.errors.is_empty());
    let data: Vec<_> = run.frames.iter().map(|f| f.data.clone()).collect();
    assert_eq!(data, [vec![9, 8, 7], vec![6]]);
    assert_eq!(run.frames[1].offset, 24 + 24 + 3);
    assert_eq!(run.frames[0].linktype, LinkType::RAW);
}

#[test]
fn legacy_linktype_drops_the_fcs_bits() {
    let built = Pcap::new(0x1400_0071, false, Little)
        .packet(T0, &[1])
        .build();
    let (run, _) = read_one("sll.pcap", built.bytes);
    assert_eq!(run.frames[0].linktype, LinkType::LINUX_SLL);
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_block_kinds() {
    let built = mixed_pcapng();
    let (run, file) = read_one("mixed.pcapng", built.bytes.clone());
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let got: Vec<_> = run
        .frames
        .iter()
        .map(|f| {
            (
                f.number,
                f.ts,
                f.linktype.0,
                f.data.clone(),
                f.orig_len,
                f.direction,
            )
        })
        .collect();
    let s = 1_000_000_000;
    assert_eq!(
        got,
        [
            // µs by default
            (
                1,
                1_500_000_000,
                1,
                vec![0xaa; 5],
                15,
                Some(LinkDirection::Inbound)
            ),
            // ns with a 100 s offset
            (2, 100 * s + 7, 101, vec![0xbb; 8], 18, None),
            // SPB: interface 0 of its section, no timestamp
            (3, 0, 1, vec![0xcc; 20], 20, None),
            // second section, big-endian, 2^-10 s ticks, -1 s offset, snaplen 4 does not cut a PB
            (
                4,
                2 * s,
                113,
                vec![0xdd; 3],
                13,
                Some(LinkDirection::Outbound)
            ),
            (5, 0, 113, vec![0xee; 9], 19, Some(LinkDirection::Outbound)),
        ]
    );
    let offsets: Vec<u64> = run.frames.iter().map(|f| f.offset).collect();
    let starts: Vec<u64> = built.packet_starts.iter().map(|&s| s as u64).collect();
    assert_eq!(offsets, starts);
    assert_eq!(file.format, Some(FileFormat::Pcapng));
    assert!(file.nanosecond && file.big_endian);
    assert_eq!((file.frames, file.bytes), (5, built.bytes.len() as u64));
}

#[test]
fn pcapng_simple_packet_caplen_is_orig_len_cut_to_snaplen() {
    let built = Pcapng::new()
        .section(Little)
        .interface(1, 4, &[])
        .spb(6, &[1, 2, 3, 4, 5, 6])
        .spb(2, &[7, 8])
        // The block holds less than orig_len: never read past it.
        .spb(100, &[9; 3])
        .build();
    let (run, _) = read_one("spb.pcapng", built.bytes);
    assert!(run.errors.is_empty());
    let got: Vec<_> = run
        .frames
        .iter()
        .map(|f| (f.data.clone(), f.orig_len))
        .collect();
    assert_eq!(
        got,
        [
            (vec![1, 2, 3, 4], 6),
            (vec![7, 8], 2),
            (vec![9, 9, 9, 0], 100)
        ]
    );
}

#[test]
fn pcapng_epb_flags_give_the_direction() {
    let mut b = Pcapng::new().section(Big).interface(1, 0, &[]);
    for flags in [0, 1, 2, 3, 0xffff_fff1] {
        b = b.epb(0, 0, &[0], &[Opt::Flags(flags)]);
    }
    let (run, _) = read_one("flags.pcapng", b.epb(0, 0, &[0], &[]).build().bytes);
    let got: Vec<_> = run.frames.iter().map(|f| f.direction).collect();
    use LinkDirection::{Inbound, Outbound};
    assert_eq!(
        got,
        [
            None,
            Some(Inbound),
            Some(Outbound),
            None,
            Some(Inbound),
            None
        ]
    );
}

#[test]
fn gzip_input_is_recognised_by_content_including_several_members() {
    let plain = three_packet_pcap(true, Big).bytes;
    let expected = read_one("plain", plain.clone()).0.frames;

    let (run, file) = read_one("no-gz-suffix", gzip(&plain));
    assert!(run.errors.is_empty());
    assert_eq!(run.frames, expected);
    assert!(file.gzip && file.nanosecond && file.big_endian);
    assert_eq!(
        file.bytes,
        plain.len() as u64,
        "bytes count the decompressed input"
    );

    // `cat a.gz b.gz`: the second member continues the stream, even mid-record.
    let mut members = gzip(&plain[..30]);
    members.extend(gzip(&plain[30..]));
    let (run, _) = read_one("members", members);
    assert!(run.errors.is_empty());
    assert_eq!(run.frames, expected);
}

#[test]
fn tiny_and_interrupted_reads_change_nothing() {
    /// Hands out one byte per call, with an `Interrupted` before each, like a slow pipe.
    struct Trickle(Cursor<Vec<u8>>, bool);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }
    for bytes in [
        mixed_pcapng().bytes,
        gzip(&three_packet_pcap(false, Little).bytes),
    ] {
        let expected = read_one("whole", bytes.clone()).0.frames;
        let reader: Box<dyn Read + Send> = Box::new(Trickle(Cursor::new(bytes), false));
        let mut set = CaptureSet::from_readers([("trickle".to_string(), reader)]).unwrap();
        let run = drain(&mut set);
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        assert_eq!(run.frames, expected);
    }
}

#[test]
fn records_up_to_the_limits_are_read() {
    let big = vec![0x55; legacy::MAX_CAPLEN as usize];
    let (run, _) = read_one(
        "big.pcap",
        Pcap::new(1, false, Little)
            .packet(T0, &big)
            .packet(T0, &[1])
            .build()
            .bytes,
    );
    assert!(run.errors.is_empty());
    assert_eq!(run.frames[0].data.len(), big.len());
    assert_eq!(run.frames[1].data, [1]);

    let huge = vec![0x66; 3 << 20];
    let built = Pcapng::new()
        .section(Little)
        .interface(1, 0, &[])
        .epb(0, 0, &huge, &[])
        .build();
    let (run, _) = read_one("huge.pcapng", built.bytes);
    assert!(run.errors.is_empty());
    assert_eq!(run.frames[0].data.len(), huge.len());
}

// ---------------------------------------------------------------------------------------------
// Merging

fn pcap_at(secs: &[i64]) -> Vec<u8> {
    secs.iter()
        .fold(Pcap::new(1, false, Little), |p, &s| {
            p.packet(s * 1_000_000_000, &[s as u8])
        })
        .build()
        .bytes
}

#[test]
fn merge_orders_by_time_then_input_and_keeps_file_order() {
    let mut set = open(vec![
        ("a", pcap_at(&[1, 3, 5])),
        ("b", pcap_at(&[2, 3, 4])),
        ("c", pcap_at(&[9, 0])), // backwards in time: stays in file order
        ("d", pcap_at(&[])),
    ])
    .unwrap();
    let run = drain(&mut set);
    assert!(run.errors.is_empty());
    let got: Vec<_> = run
        .frames
        .iter()
        .map(|f| (f.file, f.number, f.ts / 1_000_000_000))
        .collect();
    assert_eq!(
        got,
        [
            (0, 1, 1),
            (1, 1, 2),
            (0, 2, 3),
            (1, 2, 3),
            (1, 3, 4),
            (0, 3, 5),
            (2, 1, 9),
            (2, 2, 0)
        ]
    );
    let counts: Vec<_> = set.files().iter().map(|f| f.frames).collect();
    assert_eq!(counts, [3, 3, 2, 0]);
}

#[test]
fn an_error_closes_one_input_and_the_others_go_on() {
    let mut broken = pcap_at(&[1, 2, 3]);
    broken.truncate(broken.len() - 1);
    let mut set = open(vec![("good", pcap_at(&[1, 2, 3, 4])), ("broken", broken)]).unwrap();
    let mut order = Vec::new();
    for _ in 0..MAX_STEPS {
        match set.next_frame() {
            Some(Ok(f)) => order.push(format!("{}:{}", f.file, f.number)),
            Some(Err(e)) => order.push(format!("error in {} at frame {:?}", e.file, e.frame)),
            None => break,
        }
    }
    assert_eq!(
        order,
        [
            "0:1",
            "1:1",
            "0:2",
            "1:2",
            "error in broken at frame Some(3)",
            "0:3",
            "0:4"
        ]
    );
    assert_eq!(set.next_frame().map(|r| r.is_ok()), None, "stays exhausted");
}

// ---------------------------------------------------------------------------------------------
// Errors

fn assert_message(e: &CaptureError, parts: &[&str]) {
    let msg = e.to_string();
    for part in parts {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

#[test]
fn truncated_last_record() {
    let mut bytes = three_packet_pcap(false, Little).bytes;
    bytes.truncate(bytes.len() - 1); // the third record has no data: this cuts its header
    let e = single_error("cut.pcap", bytes, 2);
    assert!(matches!(e.kind, CaptureErrorKind::TruncatedRecord), "{e:?}");
    let third = 24 + 16 + 3 + 16 + 60;
    assert_eq!((e.frame, e.offset), (Some(3), Some(third)));
    assert_message(
        &e,
        &[
            "cut.pcap",
            "frame 3",
            &format!("byte offset {third}"),
            "truncated",
        ],
    );
}

#[test]
fn absurd_legacy_caplen() {
    let bytes = Pcap::new(1, false, Little)
        .packet(T0, &[1])
        .record(0, 0, 0xffff_ffff, 0, &[0; 40])
        .build()
        .bytes;
    let e = single_error("huge.pcap", bytes, 1);
    assert!(
        matches!(e.kind, CaptureErrorKind::AbsurdRecordLength(0xffff_ffff)),
        "{e:?}"
    );
    assert_eq!((e.frame, e.offset), (Some(2), Some(24 + 17)));
    assert_message(
        &e,
        &["huge.pcap", "frame 2", "byte offset 41", "4294967295"],
    );
}

fn one_interface() -> Pcapng {
    Pcapng::new()
        .section(Little)
        .interface(1, 0, &[])
        .epb(0, 0, &[1], &[])
}

#[test]
fn absurd_pcapng_block_length() {
    let b = one_interface();
    let at = b.build().bytes.len() as u64;
    let bytes = one_interface()
        .raw(&[6, 0, 0, 0, 0, 0, 0, 0x40])
        .raw(&[0; 64])
        .build()
        .bytes;
    let e = single_error("huge.pcapng", bytes, 1);
    assert!(
        matches!(e.kind, CaptureErrorKind::AbsurdRecordLength(0x4000_0000)),
        "{e:?}"
    );
    assert_eq!((e.frame, e.offset), (Some(2), Some(at)));
    assert_message(
        &e,
        &["huge.pcapng", "frame 2", &format!("byte offset {at}")],
    );
}

#[test]
fn pcapng_block_whose_two_lengths_differ() {
    let mut bytes = one_interface().epb(0, 0, &[2], &[]).build().bytes;
    let n = bytes.len();
    bytes[n - 4] ^= 0x08; // the trailing length of the last EPB
    let e = single_error("lengths.pcapng", bytes, 1);
    assert!(
        matches!(e.kind, CaptureErrorKind::CorruptBlock(ref s) if s.contains("differ")),
        "{e:?}"
    );
    assert_message(&e, &["lengths.pcapng", "frame 2", "36 and 44"]);
}

#[test]
fn pcapng_block_length_not_a_multiple_of_four() {
    let bytes = one_interface()
        .raw(&[6, 0, 0, 0, 13, 0, 0, 0])
        .raw(&[0; 16])
        .build()
        .bytes;
    let e = single_error("odd.pcapng", bytes, 1);
    assert!(matches!(e.kind, CaptureErrorKind::CorruptBlock(_)), "{e:?}");
}

#[test]
fn epb_caplen_beyond_its_block() {
    // An EPB of 32 bytes whose caplen says 100.
    let mut body = vec![0u8; 20];
    body[12] = 100;
    let bytes = one_interface().block(6, &body).build().bytes;
    let e = single_error("caplen.pcapng", bytes, 1);
    assert!(matches!(e.kind, CaptureErrorKind::CorruptBlock(_)), "{e:?}");
    assert_message(&e, &["caplen.pcapng", "frame 2", "enhanced packet block"]);
}

#[test]
fn pb_caplen_beyond_its_block() {
    let mut body = vec![0u8; 20];
    body[12] = 100;
    let bytes = one_interface().block(2, &body).build().bytes;
    let e = single_error("caplen.pcapng", bytes, 1);
    assert!(matches!(e.kind, CaptureErrorKind::CorruptBlock(_)), "{e:?}");
}

#[test]
fn interface_ids_are_per_section() {
    let bytes = Pcapng::new()
        .section(Little)
        .interface(1, 0, &[])
        .interface(1, 0, &[])
        .epb(1, 0, &[1], &[])
        .section(Little)
        .interface(1, 0, &[])
        .epb(1, 0, &[2], &[])
        .build()
        .bytes;
    let e = single_error("iface.pcapng", bytes, 1);
    assert!(
        matches!(e.kind, CaptureErrorKind::InterfaceOutOfRange(1, 1)),
        "{e:?}"
    );
    assert_message(
        &e,
        &["iface.pcapng", "frame 2", "interface 1", "defines only 1"],
    );
}

#[test]
fn packet_before_any_interface() {
    let bytes = Pcapng::new()
        .section(Big)
        .spb(4, &[1, 2, 3, 4])
        .build()
        .bytes;
    let e = single_error("noiface.pcapng", bytes, 0);
    assert!(
        matches!(e.kind, CaptureErrorKind::InterfaceOutOfRange(0, 0)),
        "{e:?}"
    );
    assert_eq!(e.frame, Some(1));
}

#[test]
fn not_a_capture_empty_or_short() {
    let e = open_error(b"GIF89a\x01\x00\x01\x00garbage".to_vec());
    assert!(
        matches!(e.kind, CaptureErrorKind::NotACapture(ref s) if s == "47 49 46 38 39 61 01 00")
    );
    assert_message(&e, &["bad.pcap", "byte offset 0", "not a pcap"]);
    assert!(matches!(open_error(vec![]).kind, CaptureErrorKind::Empty));
    assert!(matches!(
        open_error(vec![0xd4, 0xc3]).kind,
        CaptureErrorKind::NotACapture(_)
    ));
    // A pcap magic, but the file ends in its header.
    let header = three_packet_pcap(false, Little).bytes[..10].to_vec();
    assert!(matches!(
        open_error(header).kind,
        CaptureErrorKind::TruncatedRecord
    ));
    // A pcapng SHB with a byte-order magic that is neither.
    let mut shb = mixed_pcapng().bytes;
    shb[8] = 0;
    assert!(matches!(
        open_error(shb).kind,
        CaptureErrorKind::NotACapture(_)
    ));
    // Gzip of nothing is empty too.
    assert!(matches!(
        open_error(gzip(&[])).kind,
        CaptureErrorKind::Empty
    ));
}

#[test]
fn files_that_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let e = CaptureSet::open(&[path])
        .err()
        .expect("a directory is no capture");
    assert!(matches!(e.kind, CaptureErrorKind::Open(_)), "{e:?}");
    assert_message(&e, &[path, "cannot open"]);

    let missing = dir.path().join("missing.pcap");
    let e = CaptureSet::open(&[missing.to_str().unwrap()])
        .err()
        .unwrap();
    assert!(matches!(e.kind, CaptureErrorKind::Open(_)));

    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let e = CaptureSet::open(&[empty.to_str().unwrap()]).err().unwrap();
    assert!(matches!(e.kind, CaptureErrorKind::Empty));
    assert_message(&e, &["empty.pcap", "empty file"]);

    // And a real file that works, gzipped, found by content despite its name.
    let good = dir.path().join("capture.txt");
    std::fs::write(&good, gzip(&mixed_pcapng().bytes)).unwrap();
    let mut set = CaptureSet::open(&[good.to_str().unwrap()]).unwrap();
    assert_eq!(drain(&mut set).frames.len(), 5);
    assert_eq!(set.files()[0].path, good.to_str().unwrap());
}

#[test]
fn corrupt_gzip() {
    let plain = three_packet_pcap(false, Little).bytes;
    let mut gz = gzip(&plain);
    let n = gz.len();
    gz[n - 6] ^= 0xff; // the CRC32 of the member
    let (run, _) = read_one("crc.pcap.gz", gz);
    assert_eq!(run.errors.len(), 1);
    assert!(
        matches!(run.errors[0].kind, CaptureErrorKind::Gzip(_)),
        "{:?}",
        run.errors[0]
    );
    assert_message(&run.errors[0], &["crc.pcap.gz", "gzip"]);

    let mut garbage = gzip(&plain);
    garbage[12..].fill(0xff); // the deflate data
    let result = open(vec![("deflate.gz", garbage)]);
    let e = match result {
        Err(e) => e,
        Ok(mut set) => drain(&mut set).errors.pop().expect("an error"),
    };
    assert!(matches!(e.kind, CaptureErrorKind::Gzip(_)), "{e:?}");
}

#[test]
fn read_errors_keep_the_os_error() {
    struct Failing(usize, Cursor<Vec<u8>>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1.position() as usize >= self.0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0 - self.1.position() as usize);
            self.1.read(&mut buf[..n])
        }
    }
    let bytes = three_packet_pcap(false, Little).bytes;
    let reader: Box<dyn Read + Send> = Box::new(Failing(50, Cursor::new(bytes)));
    let mut set = CaptureSet::from_readers([("flaky".to_string(), reader)]).unwrap();
    let run = drain(&mut set);
    assert_eq!(run.frames.len(), 1);
    assert!(matches!(run.errors[0].kind, CaptureErrorKind::Io(_)));
    assert_message(&run.errors[0], &["flaky", "frame 2", "disk on fire"]);
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// Cuts `built` at every offset: frames wholly before the cut come out, then a clean end if the
/// cut falls between blocks, or else one error. Never a panic, never an endless loop.
fn check_every_truncation(built: &Built, header_len: usize) {
    for cut in 0..=built.bytes.len() {
        let bytes = built.bytes[..cut].to_vec();
        let mut set = match open(vec![("cut", bytes)]) {
            Ok(set) => set,
            Err(e) => {
                assert!(cut < header_len, "cut {cut}: open failed: {e}");
                continue;
            }
        };
        let run = drain(&mut set);
        assert_eq!(run.frames.len(), built.packets_before(cut), "cut {cut}");
        let clean = built.boundaries.contains(&cut);
        assert_eq!(
            run.errors.len(),
            usize::from(!clean),
            "cut {cut}: {:?}",
            run.errors
        );
        if let Some(e) = run.errors.first() {
            assert!(
                matches!(e.kind, CaptureErrorKind::TruncatedRecord),
                "cut {cut}: {e}"
            );
            assert_eq!(e.frame, Some(run.frames.len() as u64 + 1));
        }
    }
}

#[test]
fn truncation_at_every_offset_of_a_pcap() {
    for order in [Little, Big] {
        check_every_truncation(&three_packet_pcap(true, order), 24);
    }
    check_every_truncation(
        &Pcap::modified(1)
            .packet(T0, &[1, 2])
            .packet(T0, &[3])
            .build(),
        24,
    );
}

#[test]
fn truncation_at_every_offset_of_a_pcapng() {
    check_every_truncation(&mixed_pcapng(), 12);
}

#[test]
fn truncation_at_every_offset_of_a_gzip_stream() {
    let plain = mixed_pcapng().bytes;
    let full = read_one("full", plain.clone()).0.frames;
    let gz = gzip(&plain);
    for cut in 0..gz.len() {
        if let Ok(mut set) = open(vec![("cut.gz", gz[..cut].to_vec())]) {
            let run = drain(&mut set);
            assert!(run.frames.len() <= full.len(), "cut {cut}");
            assert_eq!(run.frames[..], full[..run.frames.len()], "cut {cut}");
            assert_eq!(
                run.errors.len(),
                1,
                "cut {cut}: a cut gzip stream is an error"
            );
        }
    }
}


#[test]
fn random_byte_flips_never_panic_or_hang() {
    let seeds = [
        three_packet_pcap(false, Little).bytes,
        three_packet_pcap(true, Big).bytes,
        Pcap::modified(1).packet(T0, &[1, 2]).build().bytes,
        mixed_pcapng().bytes,
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for round in 0..4000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.index(4) {
            let at = rng.index(bytes.len());
            bytes[at] ^= 1 << rng.index(8);
        }
        if round % 5 == 0 {
            bytes.truncate(rng.index(bytes.len() + 1));
        }
        if round % 7 == 0 {
            bytes = gzip(&bytes);
        }
        if let Ok(mut set) = open(vec![("fuzz", bytes)]) {
            let run = drain(&mut set);
            assert!(run.errors.len() <= 1, "round {round}");
            let most = set.files()[0].bytes as usize / 12;
            assert!(
                run.frames.len() <= most,
                "round {round}: frames out of nowhere"
            );
        }
    }
}
