//! Decoding: link layer → IPv4 / IPv6 (extension headers, defragmentation) → a TCP segment.
//!
//! Lengths come from the IP header, never from the captured bytes: captures cut by the snaplen
//! are the norm, and the kernel's conntrack saw the whole datagram. This module knows nothing of
//! conntrack or output.

use std::net::IpAddr;

/// The addresses and ports of a segment, as sent (source first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

impl Tuple {
    /// The same connection seen from the other side.
    pub fn reversed(&self) -> Tuple {
        Tuple { src: self.dst, dst: self.src, sport: self.dport, dport: self.sport }
    }
}

impl std::fmt::Display for Tuple {
    /// `10.0.0.1:40000>10.0.0.2:80`, `[2001:db8::1]:40000>[2001:db8::2]:80` (the oracle's form).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => write!(f, "{}:{}>{}:{}", s, self.sport, d, self.dport),
            _ => write!(f, "[{}]:{}>[{}]:{}", self.src, self.sport, self.dst, self.dport),
        }
    }
}

/// The TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn fin(self) -> bool { self.0 & Self::FIN != 0 }
    pub fn syn(self) -> bool { self.0 & Self::SYN != 0 }
    pub fn rst(self) -> bool { self.0 & Self::RST != 0 }
    pub fn psh(self) -> bool { self.0 & Self::PSH != 0 }
    pub fn ack(self) -> bool { self.0 & Self::ACK != 0 }
    pub fn urg(self) -> bool { self.0 & Self::URG != 0 }
    pub fn ece(self) -> bool { self.0 & Self::ECE != 0 }
    pub fn cwr(self) -> bool { self.0 & Self::CWR != 0 }
}

impl std::fmt::Display for TcpFlags {
    /// tcpdump style: `S`, `S.`, `P.`, `F.`, `R`, `.`, `none`; ECE/CWR as `E`/`W`, URG as `U`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        for (bit, c) in [(Self::FIN, 'F'), (Self::SYN, 'S'), (Self::RST, 'R'), (Self::PSH, 'P'),
                         (Self::URG, 'U'), (Self::ECE, 'E'), (Self::CWR, 'W'), (Self::ACK, '.')] {
            if self.0 & bit != 0 { s.push(c); }
        }
        if s.is_empty() { s.push_str("none"); }
        f.write_str(&s)
    }
}

/// Whether the TCP checksum could be verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumStatus {
    Good,
    Bad,
    /// Wrong, but holding exactly the pseudo-header sum a sender using transmit checksum offload
    /// leaves for the NIC to finish: the frame was captured on its sending host.
    Partial,
    /// Not all of the segment was captured, so the checksum cannot be computed.
    Unverifiable,
}

/// What the kernel's option walkers would find in the TCP options (§7.1 of the spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Length of the option area, `doff*4 - 20` (0 means "no options": the kernel then leaves
    /// the sender's scale and flags untouched on a SYN).
    pub area_len: u8,
    /// False when the option area was cut by the snaplen (what follows is then partial).
    pub complete: bool,
    /// Window scale shift as sent (not clamped; the tracker clamps to 14).
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub mss: Option<u16>,
    pub timestamp: Option<(u32, u32)>,
    /// Right edges of the blocks of the *first* well-formed SACK option (kind 5), in order.
    pub sack_right_edges: [u32; 4],
    pub sack_blocks: u8,
}

/// A TCP segment as conntrack sees it, after defragmentation.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub tuple: Tuple,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub flags: TcpFlags,
    /// Data offset in 32-bit words, as on the wire (may be < 5 in a malformed header).
    pub doff: u8,
    /// TCP header + payload length according to the IP length fields (the kernel's view).
    pub l4_len: u32,
    pub options: TcpOptions,
    pub checksum: ChecksumStatus,
    /// IPv4 header checksum status is handled before this point; this is the TTL / hop limit.
    pub ttl: u8,
    /// Number of IP fragments this segment was reassembled from (1 = not fragmented).
    pub fragments: u16,
    /// The captured bytes did not hold the whole IP datagram (snaplen).
    pub truncated: bool,
    /// Direction relative to the capturing host, when the capture says so (pcapng `epb_flags`,
    /// Linux SLL / SLL2 packet type `PACKET_OUTGOING` / `PACKET_HOST`).
    pub link_direction: Option<crate::capture::LinkDirection>,
}

impl Segment {
    /// Payload length: `l4_len - doff*4` (0 when the header claims more than there is).
    pub fn payload_len(&self) -> u32 {
        self.l4_len.saturating_sub(self.doff as u32 * 4)
    }
}

/// Why a frame yields no TCP segment for the tracker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The capture's link type is not one we decode.
    UnsupportedLinkType(crate::capture::LinkType),
    /// Not IPv4/IPv6 (ARP, MPLS, LLDP, …): the ethertype or address family found.
    NotIp { ethertype: u16 },
    /// IP, but not TCP: the (final) IP protocol number.
    NotTcp { protocol: u8 },
    /// The Linux IP input path drops this datagram before any netfilter hook
    /// (bad IPv4 header checksum, header length < 20, total length < header length, …).
    DroppedBeforeConntrack(&'static str),
    /// A fragment held by defragmentation until its datagram is complete (or never completed).
    FragmentHeld,
    /// The capture holds too little of the frame to read the link, IP or TCP base header.
    Truncated(&'static str),
    /// The datagram is malformed in a way conntrack never sees (reason for humans).
    Malformed(&'static str),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::UnsupportedLinkType(l) => write!(f, "unsupported link type {l}"),
            Skip::NotIp { ethertype } => write!(f, "not IP (ethertype 0x{ethertype:04x})"),
            Skip::NotTcp { protocol } => write!(f, "not TCP (IP protocol {protocol})"),
            Skip::DroppedBeforeConntrack(why) => write!(f, "dropped by the IP input path before conntrack: {why}"),
            Skip::FragmentHeld => f.write_str("IP fragment held by defragmentation"),
            Skip::Truncated(why) => write!(f, "truncated capture: {why}"),
            Skip::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

/// The result of decoding one frame.
#[derive(Clone, Debug)]
pub enum Decoded {
    /// A TCP segment whose 20-byte base header is readable.
    Tcp(Segment),
    /// A TCP datagram the kernel cannot even build a tuple or read a header for: conntrack
    /// classes it INVALID without a log line. `tuple` is known when the ports were readable.
    TcpUnreadable { tuple: Option<Tuple>, why: &'static str },
    /// Nothing for the tracker.
    Skipped(Skip),
}

/// Turns frames into segments. Holds the defragmentation state (bounded), so one decoder is
/// used for a whole capture, frames in capture order.
pub struct Decoder {
    // filled in by the decode implementation
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {}
    }

    /// Decodes one frame. Never panics, whatever the bytes.
    pub fn decode(&mut self, frame: &crate::capture::Frame<'_>) -> Decoded {
        let _ = frame;
        todo!("decode")
    }
}
