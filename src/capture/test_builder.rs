//! Hand-built pcap and pcapng byte streams for the tests, including broken ones.
//!
//! Deliberately tiny and independent of the real writer, so a bug there cannot hide a bug here.
//! Every builder remembers where each block ends, so truncation tests know which cuts are clean.

use super::source::ByteOrder;

#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    big: bool,
    /// Offsets where a block or record ends (a cut there is a clean end of file).
    boundaries: Vec<usize>,
    /// Offsets where a packet record starts.
    packet_starts: Vec<usize>,
}

impl Out {
    fn u16(&mut self, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }
    fn end_block(&mut self) {
        self.boundaries.push(self.bytes.len());
    }
    fn pad4(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

/// A built capture and what the tests need to know about its layout.
pub struct Built {
    pub bytes: Vec<u8>,
    pub boundaries: Vec<usize>,
    pub packet_starts: Vec<usize>,
}

impl Built {
    /// How many packets end at or before `cut`.
    pub fn packets_before(&self, cut: usize) -> usize {
        self.packet_starts
            .iter()
            .filter(|&&start| self.boundaries.iter().any(|&end| end > start && end <= cut))
            .count()
    }
}

impl From<Out> for Built {
    fn from(o: Out) -> Built {
        Built {
            bytes: o.bytes,
            boundaries: o.boundaries,
            packet_starts: o.packet_starts,
        }
    }
}

/// Legacy pcap.
pub struct Pcap {
    out: Out,
    nanosecond: bool,
    modified: bool,
}

impl Pcap {
    pub fn new(linktype: u32, nanosecond: bool, order: ByteOrder) -> Pcap {
        let magic = if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        Self::with_magic(magic, linktype, order, nanosecond, false)
    }

    /// The "modified" format (Kuznetsov's patched libpcap): 24-byte record headers.
    pub fn modified(linktype: u32) -> Pcap {
        Self::with_magic(0xa1b2_cd34, linktype, ByteOrder::Little, false, true)
    }

    fn with_magic(
        magic: u32,
        linktype: u32,
        order: ByteOrder,
        nanosecond: bool,
        modified: bool,
    ) -> Pcap {
        let mut out = Out {
            big: order == ByteOrder::Big,
            ..Out::default()
        };
        out.u32(magic);
        out.u16(2);
        out.u16(4);
        out.u32(0); // thiszone
        out.u32(0); // sigfigs
        out.u32(262_144);
        out.u32(linktype);
        out.end_block();
        Pcap {
            out,
            nanosecond,
            modified,
        }
    }

    /// A record with timestamp `ts_ns` (cut to µs unless the file is in ns) and all of `data`.
    pub fn packet(self, ts_ns: i64, data: &[u8]) -> Pcap {
        let secs = (ts_ns / 1_000_000_000) as u32;
        let ns = (ts_ns % 1_000_000_000) as u32;
        let frac = if self.nanosecond { ns } else { ns / 1000 };
        self.record(secs, frac, data.len() as u32, data.len() as u32 + 10, data)
    }

    /// A record with every header field given, so it can lie.
    pub fn record(mut self, secs: u32, frac: u32, caplen: u32, orig_len: u32, data: &[u8]) -> Pcap {
        let o = &mut self.out;
        o.packet_starts.push(o.bytes.len());
        o.u32(secs);
        o.u32(frac);
        o.u32(caplen);
        o.u32(orig_len);
        if self.modified {
            o.bytes.extend_from_slice(&[0; 8]); // ifindex, protocol, pkt_type, pad
        }
        o.bytes.extend_from_slice(data);
        o.end_block();
        self
    }

    pub fn build(self) -> Built {
        self.out.into()
    }
}

/// A pcapng option, encoded in the section's byte order.
pub enum Opt {
    TsResol(u8),
    TsOffset(i64),
    Flags(u32),
}

/// pcapng.
pub struct Pcapng {
    out: Out,
}

impl Pcapng {
    pub fn new() -> Pcapng {
        Pcapng {
            out: Out::default(),
        }
    }

    /// Starts a section (SHB) in the given byte order.
    pub fn section(mut self, order: ByteOrder) -> Pcapng {
        self.out.big = order == ByteOrder::Big;
        let mut body = Out {
            big: self.out.big,
            ..Out::default()
        };
        body.u32(0x1a2b_3c4d);
        body.u16(1);
        body.u16(0);
        body.bytes.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
        self.block(0x0a0d_0d0a, &body.bytes)
    }

    pub fn interface(self, linktype: u16, snaplen: u32, options: &[Opt]) -> Pcapng {
        let mut body = self.sub();
        body.u16(linktype);
        body.u16(0);
        body.u32(snaplen);
        let body = self.with_options(body, options);
        self.block(1, &body)
    }

    pub fn epb(mut self, if_id: u32, ticks: u64, data: &[u8], options: &[Opt]) -> Pcapng {
        let mut body = self.sub();
        body.u32(if_id);
        body.u32((ticks >> 32) as u32);
        body.u32(ticks as u32);
        body.u32(data.len() as u32);
        body.u32(data.len() as u32 + 10);
        body.bytes.extend_from_slice(data);
        body.pad4();
        let body = self.with_options(body, options);
        self.out.packet_starts.push(self.out.bytes.len());
        self.block(6, &body)
    }

    pub fn spb(mut self, orig_len: u32, data: &[u8]) -> Pcapng {
        let mut body = self.sub();
        body.u32(orig_len);
        body.bytes.extend_from_slice(data);
        self.out.packet_starts.push(self.out.bytes.len());
        self.block(3, &body.bytes)
    }

    /// The obsolete Packet Block.
    pub fn pb(mut self, if_id: u16, ticks: u64, data: &[u8], options: &[Opt]) -> Pcapng {
        let mut body = self.sub();
        body.u16(if_id);
        body.u16(0); // drops
        body.u32((ticks >> 32) as u32);
        body.u32(ticks as u32);
        body.u32(data.len() as u32);
        body.u32(data.len() as u32 + 10);
        body.bytes.extend_from_slice(data);
        body.pad4();
        let body = self.with_options(body, options);
        self.out.packet_starts.push(self.out.bytes.len());
        self.block(2, &body)
    }

    /// Any block: type, length, body padded to 4, length.
    pub fn block(mut self, block_type: u32, body: &[u8]) -> Pcapng {
        let padded = body.len().next_multiple_of(4);
        let len = (padded + 12) as u32;
        let o = &mut self.out;
        o.u32(block_type);
        o.u32(len);
        o.bytes.extend_from_slice(body);
        o.pad4();
        o.u32(len);
        o.end_block();
        self
    }

    /// Raw bytes, for blocks no well-formed builder would write.
    pub fn raw(mut self, bytes: &[u8]) -> Pcapng {
        self.out.bytes.extend_from_slice(bytes);
        self
    }

    pub fn build(self) -> Built {
        self.out.into()
    }

    fn sub(&self) -> Out {
        Out {
            big: self.out.big,
            ..Out::default()
        }
    }

    fn with_options(&self, mut body: Out, options: &[Opt]) -> Vec<u8> {
        for opt in options {
            match *opt {
                Opt::TsResol(v) => {
                    body.u16(9);
                    body.u16(1);
                    body.bytes.push(v);
                    body.pad4();
                }
                Opt::TsOffset(v) => {
                    body.u16(14);
                    body.u16(8);
                    let b = if body.big {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    };
                    body.bytes.extend_from_slice(&b);
                }
                Opt::Flags(v) => {
                    body.u16(2);
                    body.u16(4);
                    body.u32(v);
                }
            }
        }
        if !options.is_empty() {
            body.u32(0); // opt_endofopt
        }
        body.bytes
    }
}
