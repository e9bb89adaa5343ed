//! Decoding: link layer → IPv4 / IPv6 (extension headers, defragmentation) → a TCP segment.
//!
//! Lengths come from the IP header, never from the captured bytes: captures cut by the snaplen
//! are the norm, and the kernel's conntrack saw the whole datagram. This module knows nothing of
//! conntrack or output.

mod checksum;
mod defrag;
mod ip;
mod link;
mod tcp;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::capture::{Frame, LinkDirection, Timestamp};
use ip::{Datagram, ExtEnd, Fragment, PROTO_TCP, Stage};

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

    /// Whether `other` is this tuple seen from the other side ([`Tuple::reversed`]).
    pub fn is_reverse_of(&self, other: &Tuple) -> bool {
        self.reversed() == *other
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

impl std::str::FromStr for TcpFlags {
    type Err = String;

    /// tcpdump's letters, in any order: `S`, `S.`, `P.`, `FPU`, `SEW`; `none` for no flag.
    fn from_str(s: &str) -> Result<TcpFlags, String> {
        if s == "none" {
            return Ok(TcpFlags(0));
        }
        let mut flags = 0u8;
        for c in s.chars() {
            let bit = match c {
                'F' => Self::FIN,
                'S' => Self::SYN,
                'R' => Self::RST,
                'P' => Self::PSH,
                '.' => Self::ACK,
                'U' => Self::URG,
                'E' => Self::ECE,
                'W' => Self::CWR,
                _ => return Err(format!("unknown flag `{c}` (S . P F R U E W, or none)")),
            };
            if flags & bit != 0 {
                return Err(format!("flag `{c}` given twice"));
            }
            flags |= bit;
        }
        Ok(TcpFlags(flags))
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
    /// Right edges of the blocks of the *first* well-formed SACK option (kind 5), in order.
    pub sack_right_edges: [u32; 4],
    pub sack_blocks: u8,
}

/// A TCP segment as conntrack sees it, after defragmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    defrag: defrag::Defrag,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder { defrag: defrag::Defrag::default() }
    }

    /// Decodes one frame. Never panics, whatever the bytes.
    pub fn decode(&mut self, frame: &Frame<'_>) -> Decoded {
        // The segment is built straight into the return value: wrapping it in a Result first
        // cost a copy of the whole struct per packet (a third of the decode time).
        let (dg, link_direction) = match network(frame) {
            Ok(found) => found,
            Err(skip) => return Decoded::Skipped(skip),
        };
        match dg.fragment {
            None if dg.protocol == PROTO_TCP => tcp::decode(&tcp::Part {
                addrs: dg.addrs,
                ttl: dg.ttl,
                bytes: dg.payload,
                len: dg.len,
                fragments: 1,
                link_direction,
            }),
            None => Decoded::Skipped(Skip::NotTcp { protocol: dg.protocol }),
            Some(fragment) => self.reassemble(frame.ts, &dg, fragment, link_direction),
        }
    }

    /// Defragmentation runs before conntrack: a fragment yields a segment only when it
    /// completes its datagram.
    fn reassemble(
        &mut self,
        now: Timestamp,
        dg: &Datagram<'_>,
        fragment: Fragment,
        link_direction: Option<LinkDirection>,
    ) -> Decoded {
        let skip = Decoded::Skipped;
        let v6 = dg.addrs.is_v6();
        // The fragmentable part of an IPv6 datagram may start with more extension headers, so
        // only the reassembled datagram tells whether it is TCP.
        if dg.protocol != PROTO_TCP && !(v6 && ip::is_extension(dg.protocol)) {
            return skip(Skip::NotTcp { protocol: dg.protocol });
        }
        if v6
            && fragment.offset == 0
            && let Some(unreadable) = first_fragment_without_tcp_header(dg, link_direction)
        {
            return unreadable;
        }
        let whole = match self.defrag.push(now, dg, fragment) {
            defrag::Outcome::Held => return skip(Skip::FragmentHeld),
            defrag::Outcome::Dropped(why) => return skip(Skip::Malformed(why)),
            defrag::Outcome::Complete(whole) => whole,
        };
        let (protocol, start) = if v6 {
            let len = whole.len as usize;
            match ip::walk_extensions(whole.protocol, whole.bytes, len, Stage::AfterDefrag) {
                Ok(ExtEnd::Upper { protocol, offset }) => (protocol, offset),
                // Not produced after defragmentation; conntrack would not look through it.
                Ok(ExtEnd::Fragment { .. }) => return skip(Skip::NotTcp { protocol: 44 }),
                Err(why) => return skip(why),
            }
        } else {
            (whole.protocol, 0)
        };
        if protocol != PROTO_TCP {
            return skip(Skip::NotTcp { protocol });
        }
        tcp::decode(&tcp::Part {
            addrs: dg.addrs,
            ttl: whole.ttl,
            bytes: whole.bytes.get(start..).unwrap_or_default(),
            len: whole.len.saturating_sub(start as u32),
            fragments: whole.fragments,
            link_direction,
        })
    }
}

/// The link and IP layers of a frame, and its direction (the frame's own, else the link's).
fn network<'a>(frame: &Frame<'a>) -> Result<(Datagram<'a>, Option<LinkDirection>), Skip> {
    let link = link::parse(frame.linktype, frame.data)?;
    let ip = frame.data.get(link.offset..).unwrap_or_default();
    // ip_rcv sees the frame as it was on the wire, whatever the snaplen kept.
    let wire_len = (frame.orig_len as usize).max(frame.data.len()) - link.offset;
    let dg = ip::parse(link.net, ip, wire_len)?;
    Ok((dg, frame.direction.or(link.direction)))
}

/// RFC 8200 §4.5: a first fragment must hold all headers up to the upper-layer one.
/// `nf_ct_frag6_gather` does not queue one that lacks them (`ipv6frag_thdr_truncated`) and lets
/// it through to conntrack unreassembled, where the TCP header cannot be read.
fn first_fragment_without_tcp_header(
    dg: &Datagram<'_>,
    link_direction: Option<LinkDirection>,
) -> Option<Decoded> {
    let len = dg.len as usize;
    let ExtEnd::Upper { protocol: PROTO_TCP, offset } =
        ip::walk_extensions(dg.protocol, dg.payload, len, Stage::AfterDefrag).ok()?
    else {
        return None;
    };
    (offset + 20 > len).then(|| {
        tcp::unreadable(
            &tcp::Part {
                addrs: dg.addrs,
                ttl: dg.ttl,
                bytes: dg.payload.get(offset..).unwrap_or_default(),
                len: len.saturating_sub(offset) as u32,
                fragments: 1,
                link_direction,
            },
            "IPv6 first fragment without the whole TCP header",
        )
    })
}

/// The big-endian 16-bit word at `at`, if the bytes are there.
#[inline]
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*bytes.get(at..)?.first_chunk::<2>()?))
}

/// The big-endian 32-bit word at `at`, if the bytes are there.
#[inline]
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*bytes.get(at..)?.first_chunk::<4>()?))
}
