//! pcapng: blocks of `type, length, body, length`, grouped in sections. Each section starts with
//! a Section Header Block (SHB) that sets the byte order and forgets the interfaces (IDBs) of the
//! section before; packets refer to an interface by its index within the section.
//!
//! We frame every block ourselves (checking both length fields before anything is parsed, so a
//! garbage length can neither allocate nor make a streaming parser wait for bytes that will never
//! come), skip the blocks we have no use for, and hand the rest to pcap-parser, except the obsolete
//! Packet Block, which pcap-parser 0.17 does not know.

use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{
    Block, EPB_MAGIC, EnhancedPacketBlock, IDB_MAGIC, InterfaceDescriptionBlock, PcapNGOption,
    SHB_MAGIC, SPB_MAGIC, SimplePacketBlock, parse_block_be, parse_block_le,
};

use super::input::{Record, describe_parse_error};
use super::source::{ByteOrder, Source};
use super::{CaptureErrorKind, CaptureFile, LinkDirection, LinkType, Timestamp};

/// The obsolete Packet Block (PB) of pcapng drafts before 2011, still written by old tools.
const PB_MAGIC: u32 = 2;

/// Wireshark's limit. A larger block length is garbage, and believing it would allocate that much.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

/// Far beyond any real capture; it only bounds what a corrupt file can make us remember.
const MAX_INTERFACES: usize = 1 << 16;

/// type + length before the body, length after it.
const BLOCK_OVERHEAD: usize = 12;

/// Where the packet bytes start in an EPB and a PB (8-byte block header + 20 bytes of fields)
/// and in an SPB (block header + original length).
const EPB_DATA_AT: usize = 28;
const PB_DATA_AT: usize = 28;
const SPB_DATA_AT: usize = 12;

const OPT_ENDOFOPT: u16 = 0;
/// `epb_flags` in an EPB, `pack_flags` in a PB: bits 0-1 are the direction.
const OPT_FLAGS: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Microseconds, the resolution when an IDB has no `if_tsresol`.
const DEFAULT_TSRESOL: u8 = 6;

struct Interface {
    linktype: LinkType,
    /// 0 means no limit.
    snaplen: u32,
    /// Raw `if_tsresol`: 10^-n seconds per tick, or 2^-n with the top bit set.
    tsresol: u8,
    /// `if_tsoffset`: seconds to add to every timestamp.
    tsoffset: i64,
}

/// Reading state of a pcapng file: the current section's byte order and interfaces.
pub struct Pcapng {
    order: ByteOrder,
    interfaces: Vec<Interface>,
}

impl Pcapng {
    /// The SHB block type: a palindrome, so it reads the same in either byte order.
    pub const MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

    pub fn new() -> Pcapng {
        // The first block is an SHB, which sets the real byte order.
        Pcapng {
            order: ByteOrder::Little,
            interfaces: Vec::new(),
        }
    }

    /// Frames the next packet block without consuming it, consuming the blocks before it;
    /// `None` at a clean end. (Not inlined: in the caller, which also reads legacy pcap, its
    /// block handling made every legacy record pay for a kilobyte of stack frame.)
    #[inline(never)]
    pub fn next_record(
        &mut self,
        src: &mut Source,
        file: &mut CaptureFile,
    ) -> Result<Option<Record>, CaptureErrorKind> {
        loop {
            if !src.fill_record(BLOCK_OVERHEAD)? {
                return Ok(None);
            }
            let (block_type, len) = self.frame_block(src)?;
            if let Some(record) = self.read_block(block_type, &src.data()[..len], file)? {
                return Ok(Some(record));
            }
            src.consume(len);
        }
    }

    /// Checks the block at the front of `src` (at least 12 bytes there) and makes all of it
    /// available. Returns its type, in the section's byte order, and its length.
    fn frame_block(&mut self, src: &mut Source) -> Result<(u32, usize), CaptureErrorKind> {
        let head = src.data();
        if head[..4] == Self::MAGIC {
            // A new section may switch byte order; its byte-order magic says which.
            self.order = section_order(head).ok_or_else(|| {
                CaptureErrorKind::CorruptBlock(
                    "section header with an unknown byte-order magic".into(),
                )
            })?;
        }
        let block_type = self.order.u32(head, 0);
        let len = self.order.u32(head, 4);
        if len > MAX_BLOCK_LEN {
            return Err(CaptureErrorKind::AbsurdRecordLength(len.into()));
        }
        if (len as usize) < BLOCK_OVERHEAD || !len.is_multiple_of(4) {
            return Err(CaptureErrorKind::CorruptBlock(format!(
                "block length {len} is not a multiple of 4 of at least {BLOCK_OVERHEAD}"
            )));
        }
        let len = len as usize;
        src.require(len)?;
        let trailing_len = self.order.u32(src.data(), len - 4);
        if trailing_len as usize != len {
            return Err(CaptureErrorKind::CorruptBlock(format!(
                "the block's two length fields differ ({len} and {trailing_len})"
            )));
        }
        Ok((block_type, len))
    }

    /// Takes in one complete block; returns the frame if it is a packet block.
    fn read_block(
        &mut self,
        block_type: u32,
        bytes: &[u8],
        file: &mut CaptureFile,
    ) -> Result<Option<Record>, CaptureErrorKind> {
        match block_type {
            SHB_MAGIC | IDB_MAGIC | EPB_MAGIC | SPB_MAGIC => {}
            PB_MAGIC => return self.packet_block(bytes).map(Some),
            // Name resolution, statistics, secrets, custom blocks…: nothing a frame needs.
            _ => return Ok(None),
        }
        let parsed = match self.order {
            ByteOrder::Little => parse_block_le(bytes),
            ByteOrder::Big => parse_block_be(bytes),
        };
        let (_, block) = parsed.map_err(|e| {
            CaptureErrorKind::CorruptBlock(describe_parse_error(block_name(block_type), &e))
        })?;
        match block {
            Block::SectionHeader(_) => {
                self.interfaces.clear();
                file.big_endian |= self.order == ByteOrder::Big;
                Ok(None)
            }
            Block::InterfaceDescription(idb) => {
                self.add_interface(&idb, file)?;
                Ok(None)
            }
            Block::EnhancedPacket(epb) => self.enhanced_packet(&epb).map(Some),
            Block::SimplePacket(spb) => self.simple_packet(&spb).map(Some),
            _ => Ok(None),
        }
    }

    fn add_interface(
        &mut self,
        idb: &InterfaceDescriptionBlock<'_>,
        file: &mut CaptureFile,
    ) -> Result<(), CaptureErrorKind> {
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(CaptureErrorKind::CorruptBlock(format!(
                "more than {MAX_INTERFACES} interfaces in one section"
            )));
        }
        // Read the options ourselves: pcap-parser decodes `if_tsoffset` as little-endian even in
        // a big-endian section.
        let tsresol = find_option(&idb.options, OPT_IF_TSRESOL)
            .and_then(|v| v.first().copied())
            .unwrap_or(DEFAULT_TSRESOL);
        let tsoffset = find_option(&idb.options, OPT_IF_TSOFFSET)
            .filter(|v| v.len() == 8)
            .map_or(0, |v| self.order.i64(v, 0));
        file.nanosecond |= finer_than_microseconds(tsresol);
        self.interfaces.push(Interface {
            linktype: LinkType(u32::from(idb.linktype.0 as u16)),
            snaplen: idb.snaplen,
            tsresol,
            tsoffset,
        });
        Ok(())
    }

    fn enhanced_packet(&self, epb: &EnhancedPacketBlock<'_>) -> Result<Record, CaptureErrorKind> {
        let iface = self.interface(epb.if_id)?;
        // pcap-parser has checked that caplen fits in the block.
        let caplen = epb.packet_data().len();
        Ok(Record {
            ts: timestamp(iface, epb.ts_high, epb.ts_low),
            linktype: iface.linktype,
            orig_len: epb.origlen,
            direction: direction(find_option(&epb.options, OPT_FLAGS), self.order),
            data: EPB_DATA_AT..EPB_DATA_AT + caplen,
            len: epb.block_len1 as usize,
        })
    }

    /// An SPB has no interface id, no timestamp and no caplen: it belongs to interface 0, its
    /// caplen is the original length cut to that interface's snaplen, and its time is 0, as in
    /// Wireshark (the merge still keeps it in file order).
    fn simple_packet(&self, spb: &SimplePacketBlock<'_>) -> Result<Record, CaptureErrorKind> {
        let iface = self.interface(0)?;
        let mut caplen = spb.origlen as usize;
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        // Never beyond the block, whatever the lengths claim.
        caplen = caplen.min(spb.raw_packet_data().len());
        Ok(Record {
            ts: Timestamp::default(),
            linktype: iface.linktype,
            orig_len: spb.origlen,
            direction: None,
            data: SPB_DATA_AT..SPB_DATA_AT + caplen,
            len: spb.block_len1 as usize,
        })
    }

    /// The obsolete PB is an EPB with a 16-bit interface id followed by a 16-bit drop count.
    fn packet_block(&self, bytes: &[u8]) -> Result<Record, CaptureErrorKind> {
        let corrupt = |what: &str| CaptureErrorKind::CorruptBlock(format!("packet block {what}"));
        let body_end = bytes.len() - 4;
        if body_end < PB_DATA_AT {
            return Err(corrupt("is shorter than its fixed fields"));
        }
        let o = self.order;
        let iface = self.interface(u32::from(o.u16(bytes, 8)))?;
        let (ts_high, ts_low) = (o.u32(bytes, 12), o.u32(bytes, 16));
        let (caplen, orig_len) = (o.u32(bytes, 20) as usize, o.u32(bytes, 24));
        let data_end = PB_DATA_AT + caplen;
        if data_end > body_end {
            return Err(corrupt("has a captured length beyond the end of the block"));
        }
        let options = bytes.get(align4(data_end)..body_end).unwrap_or_default();
        Ok(Record {
            ts: timestamp(iface, ts_high, ts_low),
            linktype: iface.linktype,
            orig_len,
            direction: direction(find_raw_option(options, o, OPT_FLAGS), o),
            data: PB_DATA_AT..data_end,
            len: bytes.len(),
        })
    }

    fn interface(&self, id: u32) -> Result<&Interface, CaptureErrorKind> {
        self.interfaces
            .get(id as usize)
            .ok_or(CaptureErrorKind::InterfaceOutOfRange(
                id,
                self.interfaces.len(),
            ))
    }
}

/// The byte order announced by an SHB's byte-order magic (bytes 8..12), if it is one.
pub fn section_order(shb: &[u8]) -> Option<ByteOrder> {
    match shb.get(8..12)? {
        [0x4d, 0x3c, 0x2b, 0x1a] => Some(ByteOrder::Little),
        [0x1a, 0x2b, 0x3c, 0x4d] => Some(ByteOrder::Big),
        _ => None,
    }
}

fn block_name(block_type: u32) -> &'static str {
    match block_type {
        SHB_MAGIC => "section header block",
        IDB_MAGIC => "interface description block",
        EPB_MAGIC => "enhanced packet block",
        SPB_MAGIC => "simple packet block",
        _ => "block",
    }
}

/// Computed here, in u128, because pcap-parser's `decode_ts` truncates seconds to u32, overflows
/// for resolutions finer than 2^-32 s and takes `if_tsoffset` as unsigned.
fn timestamp(iface: &Interface, ts_high: u32, ts_low: u32) -> Timestamp {
    let ticks = (u64::from(ts_high) << 32) | u64::from(ts_low);
    let ns = i64::try_from(ticks_to_ns(ticks, iface.tsresol)).unwrap_or(i64::MAX);
    Timestamp(ns.saturating_add(iface.tsoffset.saturating_mul(1_000_000_000)))
}

/// Nanoseconds in `ticks` of `if_tsresol`, rounded down like Wireshark does.
fn ticks_to_ns(ticks: u64, tsresol: u8) -> u128 {
    let ticks = u128::from(ticks);
    let exp = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 != 0 {
        // 2^-exp s per tick. ticks * 10^9 < 2^94 and exp <= 127: no overflow.
        (ticks * 1_000_000_000) >> exp
    } else if exp <= 9 {
        ticks * 10u128.pow(9 - exp)
    } else {
        // Any u64 count of ticks finer than 10^-29 s is below 1 ns; capping the exponent keeps
        // the power within u128.
        ticks / 10u128.pow((exp - 9).min(20))
    }
}

fn finer_than_microseconds(tsresol: u8) -> bool {
    let exp = tsresol & 0x7f;
    if tsresol & 0x80 != 0 {
        exp >= 20
    } else {
        exp > 6
    }
}

/// The direction in `epb_flags` / `pack_flags`: bits 0-1 are 01 inbound, 10 outbound.
fn direction(flags: Option<&[u8]>, order: ByteOrder) -> Option<LinkDirection> {
    let flags = flags.filter(|v| v.len() == 4)?;
    match order.u32(flags, 0) & 0b11 {
        0b01 => Some(LinkDirection::Inbound),
        0b10 => Some(LinkDirection::Outbound),
        _ => None,
    }
}

/// The value of the first option `code` among those pcap-parser parsed.
fn find_option<'a>(options: &'a [PcapNGOption<'_>], code: u16) -> Option<&'a [u8]> {
    options
        .iter()
        .find(|o| o.code.0 == code)
        .and_then(|o| o.as_bytes().ok())
}

/// The same, walking raw option bytes (`code, length, value padded to 4`) of a block pcap-parser
/// does not parse. Every step consumes at least 4 bytes, so it ends on any input.
fn find_raw_option(mut options: &[u8], order: ByteOrder, code: u16) -> Option<&[u8]> {
    while options.len() >= 4 {
        let this = order.u16(options, 0);
        let len = usize::from(order.u16(options, 2));
        if this == OPT_ENDOFOPT {
            return None;
        }
        let value = options.get(4..4 + len)?;
        if this == code {
            return Some(value);
        }
        options = options.get(4 + align4(len)..)?;
    }
    None
}

fn align4(n: usize) -> usize {
    n.next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_to_ns_handles_every_resolution() {
        assert_eq!(ticks_to_ns(1_500_000, 6), 1_500_000_000);
        assert_eq!(ticks_to_ns(7, 9), 7);
        assert_eq!(ticks_to_ns(3, 0), 3_000_000_000);
        assert_eq!(ticks_to_ns(12_345, 12), 12);
        assert_eq!(ticks_to_ns(u64::MAX, 127), 0);
        // 2^-10 s per tick: 1024 ticks are a second, 1 tick rounds down to 976562 ns.
        assert_eq!(ticks_to_ns(1024, 0x80 | 10), 1_000_000_000);
        assert_eq!(ticks_to_ns(1, 0x80 | 10), 976_562);
        assert_eq!(ticks_to_ns(u64::MAX, 0x80 | 0x7f), 0);
        // Seconds past 2^32 (year 2106) survive, unlike with pcap-parser's decode_ts.
        assert_eq!(
            ticks_to_ns(5_000_000_000 * 1_000_000, 6),
            5_000_000_000 * 1_000_000_000
        );
    }

    #[test]
    fn tsoffset_may_be_negative_and_timestamps_saturate() {
        let iface = |tsresol, tsoffset| Interface {
            linktype: LinkType::ETHERNET,
            snaplen: 0,
            tsresol,
            tsoffset,
        };
        assert_eq!(
            timestamp(&iface(6, -10), 0, 11_000_000),
            Timestamp::from_secs(1)
        );
        assert_eq!(
            timestamp(&iface(0, 0), u32::MAX, u32::MAX),
            Timestamp(i64::MAX)
        );
        assert_eq!(timestamp(&iface(6, i64::MIN), 0, 0), Timestamp(i64::MIN));
    }

    #[test]
    fn raw_option_walk_stops_on_short_or_garbage_input() {
        let le = ByteOrder::Little;
        let opts = [
            1, 0, 3, 0, b'a', b'b', b'c', 0, 2, 0, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(find_raw_option(&opts, le, 2), Some(&[1, 0, 0, 0][..]));
        assert_eq!(find_raw_option(&opts, le, 9), None);
        assert_eq!(find_raw_option(&[2, 0, 200, 0, 1], le, 2), None);
        assert_eq!(find_raw_option(&[2, 0], le, 2), None);
    }
}
