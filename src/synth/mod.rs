//! Synthetic captures from a compact, readable scenario description (fixtures, benchmarks).
//!
//! * [`Scenario::parse`] reads the text format of `docs/scenario-format.md` — one line per
//!   packet, close to the notation of the conntrack spec (`0.001 S>C [S.] seq=5000 ack=1001`).
//! * [`Scenario::write_pcap`] / [`Scenario::write_pcapng`] turn it into a capture;
//!   [`Scenario::frames`] gives the frames in memory, for tests.
//! * [`TcpPacket`] is one segment with every field and override a fixture may need; a
//!   [`Scenario`] can also be built in code with [`Scenario::push`].
//! * [`bulk`] streams large captures of many realistic connections for benchmarks, without
//!   holding them in memory.
//!
//! This module only writes packets; it never decides what conntrack would make of them.

pub mod bulk;
pub mod rng;
pub mod packet;
mod parse;

use std::io::{self, Write};

use crate::capture::writer::{
    DEFAULT_SNAPLEN, PcapNgWriter, PcapWriter, TsResolution, epb_flags_for,
};
use crate::capture::{LinkDirection, Timestamp};

pub use packet::{
    Checksum, Fragmentation, Link, LinkKind, Payload, TcpOption, TcpOptions, TcpPacket,
};
pub use parse::{DEFAULT_START_SECS, DEFAULT_WINDOW, ParseError};

/// Which file format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// One packet of a scenario at its capture time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub ts: Timestamp,
    pub packet: TcpPacket,
}

/// A frame as it will appear in the capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthFrame {
    pub ts: Timestamp,
    /// Captured bytes (cut by the packet's `snap`, not by the file snaplen).
    pub data: Vec<u8>,
    pub orig_len: u32,
    pub direction: Option<LinkDirection>,
    /// Index of the [`Event`] it came from (fragments share one).
    pub event: usize,
}

/// A capture described packet by packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub link: Link,
    /// The file's snaplen; longer frames are cut when written.
    pub snaplen: u32,
    /// Timestamp resolution of the file; `None` picks microseconds unless a time needs more.
    pub resolution: Option<TsResolution>,
    pub events: Vec<Event>,
}

impl Scenario {
    pub fn new(link: Link) -> Scenario {
        Scenario {
            link,
            snaplen: DEFAULT_SNAPLEN,
            resolution: None,
            events: Vec::new(),
        }
    }

    /// Reads the text format; errors name the line.
    pub fn parse(text: &str) -> Result<Scenario, ParseError> {
        parse::parse(text)
    }

    pub fn push(&mut self, ts: Timestamp, packet: TcpPacket) {
        self.events.push(Event { ts, packet });
    }

    /// The resolution the file will be written with.
    pub fn resolution(&self) -> TsResolution {
        self.resolution.unwrap_or_else(|| {
            if self
                .events
                .iter()
                .any(|e| TsResolution::needed_for(e.ts) == TsResolution::Nano)
            {
                TsResolution::Nano
            } else {
                TsResolution::Micro
            }
        })
    }

    /// Calls `emit` for every frame in order. Packets are numbered for the IPv4 ID (event index
    /// + 1) unless they set their own, so fragments of different packets never mix.
    fn for_each_frame(
        &self,
        mut emit: impl FnMut(usize, &Event, &[u8], u32) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut scratch = Vec::with_capacity(2048);
        for (i, e) in self.events.iter().enumerate() {
            e.packet.validate().map_err(|m| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("packet {}: {m}", i + 1),
                )
            })?;
            if !self.link.carries(e.packet.src.is_ipv4()) {
                let m = format!(
                    "packet {}: link {:?} cannot carry {}",
                    i + 1,
                    self.link.kind,
                    e.packet.src
                );
                return Err(io::Error::new(io::ErrorKind::InvalidInput, m));
            }
            let ip_id = e.packet.ip_id.unwrap_or((i + 1) as u16);
            e.packet
                .for_each_frame(&self.link, ip_id, &mut scratch, |d, o| emit(i, e, d, o))?;
        }
        Ok(())
    }

    /// All frames, in capture order.
    pub fn frames(&self) -> io::Result<Vec<SynthFrame>> {
        let mut out = Vec::with_capacity(self.events.len());
        self.for_each_frame(|i, e, data, orig_len| {
            out.push(SynthFrame {
                ts: e.ts,
                data: data.to_vec(),
                orig_len,
                direction: e.packet.direction,
                event: i,
            });
            Ok(())
        })?;
        Ok(out)
    }

    pub fn write<W: Write>(&self, out: &mut W, format: Format) -> io::Result<()> {
        let mut sink = FrameSink::new(out, format, &self.link, self.snaplen, self.resolution())?;
        self.for_each_frame(|_, e, d, o| sink.write(e.ts, d, o, e.packet.direction))?;
        sink.flush()
    }

    /// Writes a legacy pcap (little-endian; microsecond magic unless nanoseconds are needed).
    pub fn write_pcap<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write(out, Format::Pcap)
    }

    /// Writes a pcapng with one interface; packets with a direction get `epb_flags`.
    pub fn write_pcapng<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write(out, Format::PcapNg)
    }
}

/// One writer for either format, so scenario and bulk output share the code path.
enum FrameSink<W: Write> {
    Pcap(PcapWriter<W>),
    PcapNg(PcapNgWriter<W>),
}

impl<W: Write> FrameSink<W> {
    fn new(
        out: W,
        format: Format,
        link: &Link,
        snaplen: u32,
        res: TsResolution,
    ) -> io::Result<Self> {
        Ok(match format {
            Format::Pcap => FrameSink::Pcap(PcapWriter::new(out, link.linktype(), snaplen, res)?),
            Format::PcapNg => {
                let mut w = PcapNgWriter::new(out)?;
                w.add_interface(link.linktype(), snaplen, res)?;
                FrameSink::PcapNg(w)
            }
        })
    }

    fn write(
        &mut self,
        ts: Timestamp,
        data: &[u8],
        orig_len: u32,
        dir: Option<LinkDirection>,
    ) -> io::Result<()> {
        match self {
            FrameSink::Pcap(w) => w.write_frame(ts, data, orig_len),
            FrameSink::PcapNg(w) => w.write_packet(0, ts, data, orig_len, dir.map(epb_flags_for)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            FrameSink::Pcap(w) => w.flush(),
            FrameSink::PcapNg(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use etherparse::{SlicedPacket, TransportSlice};
    use pcap_parser::traits::PcapNGPacketBlock;
    use pcap_parser::{Block, PcapBlockOwned, PcapNGSlice};

    const HANDSHAKE: &str = "
hosts C=10.0.0.1:40000 S=10.0.0.2:80
0.000 C>S [S] seq=1000 opts=mss:1460,sackok,ts:1:0,nop,ws:7
0.001 S>C [S.] seq=5000 ack=1001 win=65160 dir=out
+0.001 C>S [.] seq=1001 ack=5001
";

    #[test]
    fn pcap_from_text_reads_back() {
        let s = Scenario::parse(HANDSHAKE).unwrap();
        let mut bytes = Vec::new();
        s.write_pcap(&mut bytes).unwrap();
        let (_, cap) = pcap_parser::parse_pcap(&bytes).unwrap();
        assert_eq!(cap.header.network.0 as u32, LinkType::ETHERNET.0);
        assert_eq!(cap.header.snaplen, DEFAULT_SNAPLEN);
        assert!(!cap.header.is_nanosecond_precision());
        assert_eq!(cap.blocks.len(), 3);
        let b = &cap.blocks[1];
        assert_eq!((b.ts_sec, b.ts_usec), (DEFAULT_START_SECS as u32, 1000));
        let p = SlicedPacket::from_ethernet(b.data).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!()
        };
        assert!(tcp.syn() && tcp.ack());
        assert_eq!(
            (
                tcp.sequence_number(),
                tcp.acknowledgment_number(),
                tcp.window_size()
            ),
            (5000, 1001, 65160)
        );
        assert_eq!((tcp.source_port(), tcp.destination_port()), (80, 40000));
    }

    #[test]
    fn pcapng_carries_direction() {
        let s = Scenario::parse(HANDSHAKE).unwrap();
        let mut bytes = Vec::new();
        s.write_pcapng(&mut bytes).unwrap();
        let blocks: Vec<Block> = PcapNGSlice::from_slice(&bytes)
            .unwrap()
            .map(|b| match b.unwrap() {
                PcapBlockOwned::NG(b) => b,
                _ => panic!(),
            })
            .collect();
        let epbs: Vec<_> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::EnhancedPacket(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(epbs.len(), 3);
        assert!(epbs[0].options.is_empty());
        assert_eq!(epbs[1].options[0].value(), &2u32.to_le_bytes());
        assert_eq!(
            epbs[2].packet_data(),
            s.frames().unwrap()[2].data.as_slice()
        );
    }

    #[test]
    fn fragments_share_the_event_and_dropped_ones_vanish() {
        let s = Scenario::parse(
            "hosts C=10.0.0.1:40000 S=10.0.0.2:80
C>S [S] seq=1000 frag=2
C:40001>S [S] seq=1000 frag=2 fragdrop=2
C:40002>S [S] seq=1000",
        )
        .unwrap();
        let f = s.frames().unwrap();
        assert_eq!(
            f.iter().map(|f| f.event).collect::<Vec<_>>(),
            vec![0, 0, 1, 2]
        );
        // fragments keep the packet's IPv4 ID, packets are numbered from 1
        let id = |f: &SynthFrame| u16::from_be_bytes([f.data[18], f.data[19]]);
        assert_eq!((id(&f[0]), id(&f[1]), id(&f[2]), id(&f[3])), (1, 1, 2, 3));
    }

    #[test]
    fn nanosecond_times_pick_nanosecond_files() {
        let mut s =
            Scenario::parse("hosts C=10.0.0.1:1 S=10.0.0.2:2\n0.0000005 C>S [S] seq=1").unwrap();
        assert_eq!(s.resolution(), TsResolution::Nano);
        let mut bytes = Vec::new();
        s.write_pcap(&mut bytes).unwrap();
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        s.resolution = Some(TsResolution::Micro);
        assert_eq!(s.resolution(), TsResolution::Micro);
    }

    #[test]
    fn file_snaplen_cuts_every_frame() {
        let s =
            Scenario::parse("snaplen 64\nhosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1 len=500")
                .unwrap();
        let mut bytes = Vec::new();
        s.write_pcap(&mut bytes).unwrap();
        let (_, cap) = pcap_parser::parse_pcap(&bytes).unwrap();
        assert_eq!(
            (cap.blocks[0].caplen, cap.blocks[0].origlen),
            (64, 14 + 20 + 20 + 500)
        );
    }

    /// The scenario examples in the format documentation parse.
    #[test]
    fn documentation_examples_parse() {
        let doc = include_str!("../../docs/scenario-format.md");
        let blocks: Vec<&str> = doc
            .split("```")
            .skip(1)
            .step_by(2)
            .filter(|b| !b.starts_with("rust") && b.contains("hosts "))
            .collect();
        assert!(blocks.len() >= 2);
        for b in blocks {
            if let Err(e) = Scenario::parse(b) {
                panic!("{e} in\n{b}");
            }
        }
    }

    /// Every fixture description still produces exactly the capture the kernel oracle judged, so
    /// the committed oracle outputs remain the expectations for these bytes.
    #[test]
    fn fixture_captures_are_reproducible() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut checked = 0;
        for dir in ["spec", "example"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "scn") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let s =
                    Scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let mut bytes = Vec::new();
                s.write_pcap(&mut bytes).unwrap();
                let committed = std::fs::read(path.with_extension("pcap")).unwrap();
                assert!(
                    bytes == committed,
                    "{} no longer matches its .pcap",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked >= 37, "only {checked} fixtures found");
    }

    #[test]
    fn programmatic_scenarios_are_validated_on_write() {
        let mut s = Scenario::new(Link::new(LinkKind::Ipv6));
        let p = TcpPacket::new(
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            2,
            1,
            0,
        );
        s.push(Timestamp::from_secs(1), p);
        let e = s.write_pcap(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("packet 1"), "{e}");
    }
}
