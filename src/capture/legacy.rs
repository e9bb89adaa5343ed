//! Legacy pcap: a 24-byte file header, then records of a 16-byte header (24 bytes in the
//! "modified" format of Kuznetsov's patched libpcap) followed by the captured bytes.

use pcap_parser::PcapHeader;

use super::input::Record;
use super::source::{ByteOrder, Source};
use super::{CaptureErrorKind, LinkType, Timestamp};

/// The largest caplen we accept. It is Wireshark's limit for ordinary link types (and tcpdump's
/// default snaplen), so our frame counts agree with tshark's. A larger value means the record
/// header is garbage, and believing it would swallow the rest of the file as one frame.
pub const MAX_CAPLEN: u32 = 262_144;

/// The fields of a record header, in every variant: ts_sec, ts_usec (or nanoseconds), caplen,
/// origlen. The modified format adds 8 bytes we have no use for.
const TS_SEC_AT: usize = 0;
const TS_FRAC_AT: usize = 4;
const CAPLEN_AT: usize = 8;
const ORIGLEN_AT: usize = 12;

/// What the file header says about every record.
pub struct Legacy {
    order: ByteOrder,
    /// With the nanosecond magic, the field pcap-parser calls `ts_usec` holds nanoseconds.
    nanosecond: bool,
    record_header_len: usize,
    linktype: LinkType,
}

impl Legacy {
    pub const HEADER_LEN: usize = 24;

    pub fn new(header: &PcapHeader) -> Legacy {
        // The modified format is little-endian only, like libpcap in practice (and pcap-parser).
        let (order, record_header_len) = if header.is_modified_format() {
            (ByteOrder::Little, 24)
        } else if header.is_bigendian() {
            (ByteOrder::Big, 16)
        } else {
            (ByteOrder::Little, 16)
        };
        Legacy {
            order,
            nanosecond: header.is_nanosecond_precision(),
            record_header_len,
            // The upper bits of the field carry FCS information, as libpcap's LT_LINKTYPE() knows.
            linktype: LinkType(header.network.0 as u32 & 0xffff),
        }
    }

    pub fn nanosecond(&self) -> bool {
        self.nanosecond
    }

    pub fn big_endian(&self) -> bool {
        self.order == ByteOrder::Big
    }

    /// Frames the record at the front of `src` into `head` (empty before) without consuming it;
    /// leaves `head` empty at a clean end.
    // Written in place and inlined into `Input::advance`: a record returned by value went
    // through the stack and was read back 16 bytes at a time just after being written 8 bytes
    // at a time, a load the CPU cannot forward from its store buffer (a fifth of
    // `CaptureSet::next_frame`'s samples).
    #[inline(always)]
    pub fn next_record(&self, src: &mut Source, head: &mut Option<Record>) -> Result<(), CaptureErrorKind> {
        let header_len = self.record_header_len;
        if !src.fill_record(header_len)? {
            return Ok(());
        }
        // Check caplen before asking for that many bytes: a garbage length must not make us
        // allocate or read to the end of the file.
        let caplen = self.order.u32(src.data(), CAPLEN_AT);
        if caplen > MAX_CAPLEN {
            return Err(CaptureErrorKind::AbsurdRecordLength(caplen.into()));
        }
        let len = header_len + caplen as usize;
        src.require(len)?;
        // The header's fields, read in place: the record is all there now.
        let bytes = src.data();
        let field = |at| self.order.u32(bytes, at);
        *head = Some(Record {
            ts: self.timestamp(field(TS_SEC_AT), field(TS_FRAC_AT)),
            linktype: self.linktype,
            orig_len: field(ORIGLEN_AT),
            direction: None,
            data: header_len..len,
            len,
        });
        Ok(())
    }

    /// Seconds are unsigned in the file format, so no date before 1970 and none overflows i64.
    fn timestamp(&self, secs: u32, frac: u32) -> Timestamp {
        let frac_ns = if self.nanosecond {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        Timestamp(i64::from(secs) * 1_000_000_000 + frac_ns)
    }
}
