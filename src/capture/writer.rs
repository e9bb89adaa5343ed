//! Capture output: legacy pcap and a minimal pcapng, both little-endian.
//!
//! Used by `synth` to write fixture and benchmark captures, and for "the INVALID packets as a
//! pcap". The writers do no buffering of their own: hand them a `BufWriter` when writing to a
//! file (each frame is two `write_all` calls: a record header and the data).
//!
//! Like the reader, this module knows nothing of IP, TCP or conntrack.

use std::io::{self, Write};

use super::{LinkDirection, LinkType, Timestamp};

/// The resolution of the timestamps a file stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TsResolution {
    /// Microseconds: the classic `0xa1b2c3d4` pcap magic, and pcapng's default `if_tsresol`.
    #[default]
    Micro,
    /// Nanoseconds: the `0xa1b23c4d` pcap magic, `if_tsresol = 9` in pcapng.
    Nano,
}

impl TsResolution {
    /// Nanoseconds per tick.
    fn tick_ns(self) -> i64 {
        match self {
            TsResolution::Micro => 1_000,
            TsResolution::Nano => 1,
        }
    }

    /// The coarsest resolution that represents `ts` exactly.
    pub fn needed_for(ts: Timestamp) -> TsResolution {
        if ts.0 % 1_000 == 0 { TsResolution::Micro } else { TsResolution::Nano }
    }
}

/// The snaplen written when the caller has no better value (tcpdump's default since 4.99).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `ts` as whole ticks since the epoch. Captures cannot store times before 1970.
fn ticks(ts: Timestamp, res: TsResolution) -> io::Result<u64> {
    u64::try_from(ts.0)
        .map(|ns| ns / res.tick_ns() as u64) // truncates, as tcpdump does
        .map_err(|_| invalid_input(format!("timestamp {} ns is before 1970", ts.0)))
}

/// How many bytes of a frame go into the file: the snaplen cuts (0 means "no limit", as in
/// pcapng), and the original length is never below what is stored.
fn stored_lengths(data: &[u8], orig_len: u32, snaplen: u32) -> (usize, u32) {
    let incl = if snaplen == 0 { data.len() } else { data.len().min(snaplen as usize) };
    (incl, orig_len.max(incl as u32))
}

/// A legacy pcap writer (little-endian, version 2.4).
pub struct PcapWriter<W: Write> {
    out: W,
    res: TsResolution,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. Frames longer than `snaplen` are cut, like `tcpdump -s`.
    pub fn new(mut out: W, linktype: LinkType, snaplen: u32, res: TsResolution) -> io::Result<Self> {
        let magic: u32 = match res {
            TsResolution::Micro => 0xa1b2_c3d4,
            TsResolution::Nano => 0xa1b2_3c4d,
        };
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // 8..16: thiszone and sigfigs, always 0
        hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&linktype.0.to_le_bytes());
        out.write_all(&hdr)?;
        Ok(PcapWriter { out, res, snaplen })
    }

    /// Appends one record. `data` is what was captured, `orig_len` the length on the wire.
    /// A timestamp finer than the file's resolution is truncated; one after 2106 is an error.
    pub fn write_frame(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let t = ticks(ts, self.res)?;
        let per_sec = 1_000_000_000 / self.res.tick_ns() as u64;
        let secs = u32::try_from(t / per_sec)
            .map_err(|_| invalid_input(format!("timestamp {} ns is beyond 2106", ts.0)))?;
        let (incl, orig) = stored_lengths(data, orig_len, self.snaplen);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&((t % per_sec) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&orig.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&data[..incl])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

// pcapng block types and option codes (draft-ietf-opsawg-pcapng).
const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_EPB_FLAGS: u16 = 2;

/// The `epb_flags` value that records a frame's direction (bits 0–1: 1 inbound, 2 outbound).
pub fn epb_flags_for(direction: LinkDirection) -> u32 {
    match direction {
        LinkDirection::Inbound => 1,
        LinkDirection::Outbound => 2,
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A minimal pcapng writer: one section header, interface descriptions with a link type, snaplen
/// and `if_tsresol`, and enhanced packet blocks with an optional `epb_flags`.
pub struct PcapNgWriter<W: Write> {
    out: W,
    /// Per interface: (timestamp resolution, snaplen).
    interfaces: Vec<(TsResolution, u32)>,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the section header block (section length "unknown", so the file can be streamed).
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut b = [0u8; 28];
        b[0..4].copy_from_slice(&BT_SHB.to_le_bytes());
        b[4..8].copy_from_slice(&28u32.to_le_bytes());
        b[8..12].copy_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        b[12..14].copy_from_slice(&1u16.to_le_bytes());
        b[14..16].copy_from_slice(&0u16.to_le_bytes());
        b[16..24].copy_from_slice(&(-1i64).to_le_bytes());
        b[24..28].copy_from_slice(&28u32.to_le_bytes());
        out.write_all(&b)?;
        Ok(PcapNgWriter { out, interfaces: Vec::new() })
    }

    /// Describes an interface and returns its id for [`write_packet`](Self::write_packet).
    /// `if_tsresol` is written only for nanoseconds: microseconds are the format's default, and
    /// leaving it out keeps readers' default path exercised.
    pub fn add_interface(&mut self, linktype: LinkType, snaplen: u32, res: TsResolution) -> io::Result<u32> {
        let link16 = u16::try_from(linktype.0)
            .map_err(|_| invalid_input(format!("link type {} does not fit pcapng's 16 bits", linktype.0)))?;
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&BT_IDB.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // total length, patched below
        b.extend_from_slice(&link16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&snaplen.to_le_bytes());
        if res == TsResolution::Nano {
            b.extend_from_slice(&OPT_IF_TSRESOL.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&[9, 0, 0, 0]);
            b.extend_from_slice(&OPT_ENDOFOPT.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
        }
        let total = (b.len() + 4) as u32;
        b[4..8].copy_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&total.to_le_bytes());
        self.out.write_all(&b)?;
        self.interfaces.push((res, snaplen));
        Ok((self.interfaces.len() - 1) as u32)
    }

    /// Appends an enhanced packet block on `interface`; `flags` becomes `epb_flags` when given.
    pub fn write_packet(
        &mut self,
        interface: u32,
        ts: Timestamp,
        data: &[u8],
        orig_len: u32,
        flags: Option<u32>,
    ) -> io::Result<()> {
        let &(res, snaplen) = self.interfaces.get(interface as usize).ok_or_else(|| {
            invalid_input(format!("interface {interface} was not added (have {})", self.interfaces.len()))
        })?;
        let t = ticks(ts, res)?;
        let (incl, orig) = stored_lengths(data, orig_len, snaplen);
        let opts_len = if flags.is_some() { 8 + 4 } else { 0 };
        let total = (28 + incl + pad4(incl) + opts_len + 4) as u32;
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&BT_EPB.to_le_bytes());
        h[4..8].copy_from_slice(&total.to_le_bytes());
        h[8..12].copy_from_slice(&interface.to_le_bytes());
        h[12..16].copy_from_slice(&((t >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(t as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(incl as u32).to_le_bytes());
        h[24..28].copy_from_slice(&orig.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..incl])?;
        self.out.write_all(&[0u8; 3][..pad4(incl)])?;
        if let Some(f) = flags {
            let mut o = [0u8; 12];
            o[0..2].copy_from_slice(&OPT_EPB_FLAGS.to_le_bytes());
            o[2..4].copy_from_slice(&4u16.to_le_bytes());
            o[4..8].copy_from_slice(&f.to_le_bytes());
            // 8..12: opt_endofopt
            self.out.write_all(&o)?;
        }
        self.out.write_all(&total.to_le_bytes())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_parser::traits::PcapNGPacketBlock;
    use pcap_parser::{Block, LegacyPcapBlock, PcapBlockOwned, PcapHeader, PcapNGSlice};

    const TS: Timestamp = Timestamp(1_700_000_000_123_456_789);

    /// A legacy capture as pcap-parser (an independent implementation) reads it.
    fn read_pcap(bytes: &[u8]) -> (PcapHeader, Vec<LegacyPcapBlock<'_>>) {
        let (rest, cap) = pcap_parser::parse_pcap(bytes).expect("a pcap file");
        assert!(rest.is_empty(), "{} trailing bytes", rest.len());
        (cap.header, cap.blocks)
    }

    /// The blocks of a pcapng capture, as pcap-parser reads them.
    fn read_pcapng(bytes: &[u8]) -> Vec<Block<'_>> {
        PcapNGSlice::from_slice(bytes)
            .expect("a pcapng file")
            .map(|b| match b.expect("a well-formed block") {
                PcapBlockOwned::NG(b) => b,
                _ => panic!("not a pcapng block"),
            })
            .collect()
    }

    fn pcap_bytes(res: TsResolution, snaplen: u32, frames: &[(Timestamp, &[u8], u32)]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), LinkType::RAW, snaplen, res).unwrap();
        for &(ts, d, o) in frames {
            w.write_frame(ts, d, o).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn pcap_header_and_records_microseconds() {
        let data = [0x45u8, 1, 2, 3, 4];
        let bytes = pcap_bytes(TsResolution::Micro, 65535, &[(TS, &data, 5)]);
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(bytes.len(), 24 + 16 + 5);
        let (h, recs) = read_pcap(&bytes);
        assert_eq!((h.version_major, h.version_minor, h.snaplen, h.network.0), (2, 4, 65535, 101));
        assert!(!h.is_nanosecond_precision());
        let p = &recs[0];
        assert_eq!((p.ts_sec, p.ts_usec), (1_700_000_000, 123_456)); // truncated, not rounded
        assert_eq!((p.caplen, p.origlen), (5, 5));
        assert_eq!(p.data, &data);
    }

    #[test]
    fn pcap_nanoseconds_magic_and_fraction() {
        let bytes = pcap_bytes(TsResolution::Nano, 100, &[(TS, &[0x45], 1)]);
        assert_eq!(&bytes[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let (h, recs) = read_pcap(&bytes);
        assert!(h.is_nanosecond_precision());
        // pcap-parser keeps the field's historical name; it holds nanoseconds here
        assert_eq!((recs[0].ts_sec, recs[0].ts_usec), (1_700_000_000, 123_456_789));
    }

    #[test]
    fn pcap_snaplen_cuts_and_orig_len_is_kept() {
        let data = [7u8; 100];
        let bytes = pcap_bytes(TsResolution::Micro, 60, &[(TS, &data, 1500), (TS, &data[..10], 3)]);
        let (_, recs) = read_pcap(&bytes);
        assert_eq!((recs[0].caplen, recs[0].origlen, recs[0].data.len()), (60, 1500, 60));
        // an original length below the stored bytes is raised to them
        assert_eq!((recs[1].caplen, recs[1].origlen), (10, 10));
    }

    #[test]
    fn pcap_rejects_unrepresentable_times() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::RAW, 0, TsResolution::Micro).unwrap();
        assert!(w.write_frame(Timestamp(-1), &[1], 1).is_err());
        assert!(w.write_frame(Timestamp::from_secs(1 << 33), &[1], 1).is_err());
        assert!(w.write_frame(Timestamp(0), &[1], 1).is_ok());
    }

    #[test]
    fn resolution_needed() {
        assert_eq!(TsResolution::needed_for(Timestamp(1_000)), TsResolution::Micro);
        assert_eq!(TsResolution::needed_for(TS), TsResolution::Nano);
    }

    #[test]
    fn pcapng_blocks_round_trip() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let eth = w.add_interface(LinkType::ETHERNET, 0, TsResolution::Micro).unwrap();
        let sll = w.add_interface(LinkType::LINUX_SLL2, 96, TsResolution::Nano).unwrap();
        assert_eq!((eth, sll), (0, 1));
        w.write_packet(eth, TS, &[1, 2, 3], 3, None).unwrap();
        w.write_packet(sll, TS, &[9u8; 200], 1000, Some(epb_flags_for(LinkDirection::Outbound))).unwrap();
        assert!(w.write_packet(2, TS, &[1], 1, None).is_err());
        let bytes = w.into_inner().unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let ng = read_pcapng(&bytes);
        assert_eq!(ng.len(), 5);
        let Block::SectionHeader(s) = &ng[0] else { panic!() };
        assert_eq!((s.major_version, s.minor_version, s.section_len), (1, 0, -1));
        let Block::InterfaceDescription(i0) = &ng[1] else { panic!() };
        assert_eq!((i0.linktype.0, i0.snaplen, i0.if_tsresol), (1, 0, 6));
        let Block::InterfaceDescription(i1) = &ng[2] else { panic!() };
        assert_eq!((i1.linktype.0, i1.snaplen, i1.if_tsresol), (276, 96, 9));

        let Block::EnhancedPacket(p0) = &ng[3] else { panic!() };
        assert_eq!((p0.if_id, p0.caplen, p0.origlen), (0, 3, 3));
        assert_eq!(p0.packet_data(), &[1, 2, 3]);
        assert_eq!(((p0.ts_high as u64) << 32 | p0.ts_low as u64), 1_700_000_000_123_456);
        assert!(p0.options.is_empty());

        let Block::EnhancedPacket(p1) = &ng[4] else { panic!() };
        assert_eq!((p1.if_id, p1.caplen, p1.origlen), (1, 96, 1000));
        assert_eq!(((p1.ts_high as u64) << 32 | p1.ts_low as u64), 1_700_000_000_123_456_789);
        let flags = p1.options.iter().find(|o| o.code.0 == OPT_EPB_FLAGS).expect("epb_flags");
        assert_eq!(flags.value(), &2u32.to_le_bytes());
    }
}
