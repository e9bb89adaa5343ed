//! IPv4 and IPv6: the checks of the kernel's input path (`ip_rcv_core`, `ip6_rcv_core`), the
//! IPv6 extension-header walk, and the layer-4 part as lengths in the IP header describe it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::link::Net;
use super::{Skip, be32, checksum};

pub(super) const PROTO_TCP: u8 = 6;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_DEST: u8 = 60;

/// Largest IP datagram (IPv4 total length, IPv6 payload length).
pub(super) const MAX_DATAGRAM: u32 = 65535;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Addrs {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl Addrs {
    pub fn ip_addrs(self) -> (IpAddr, IpAddr) {
        match self {
            Addrs::V4(s, d) => (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into()),
            Addrs::V6(s, d) => (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into()),
        }
    }

    /// The [`checksum::sum`] of the TCP pseudo-header for a segment of `len` bytes.
    // Inlined, for the same reason as `checksum::sum` (~15 instructions a segment).
    #[inline(always)]
    pub fn pseudo_header_sum(self, len: u32) -> u64 {
        let addrs = match self {
            Addrs::V4(s, d) => checksum::sum(&s) + checksum::sum(&d),
            Addrs::V6(s, d) => checksum::sum(&s) + checksum::sum(&d),
        };
        addrs + checksum::word(PROTO_TCP.into()) + checksum::word((len >> 16) as u16) + checksum::word(len as u16)
    }

    pub fn is_v6(self) -> bool {
        matches!(self, Addrs::V6(..))
    }
}

/// Where a fragment sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fragment {
    pub id: u32,
    /// Byte offset of this fragment's data in the fragmentable part.
    pub offset: u32,
    pub more: bool,
    /// The most the fragmentable part may hold once reassembled (65535 minus the headers that
    /// are not fragmented).
    pub max_len: u32,
}

/// An IP datagram as the input path leaves it: headers checked, layer-4 part located.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Datagram<'a> {
    pub addrs: Addrs,
    pub ttl: u8,
    /// The upper-layer protocol; for an IPv6 fragment, the fragment header's next header, which
    /// may still be an extension header of the fragmentable part.
    pub protocol: u8,
    /// The captured bytes of the layer-4 part (of this fragment), never past the IP length.
    pub payload: &'a [u8],
    /// The length of that part according to the IP header.
    pub len: u32,
    pub fragment: Option<Fragment>,
}

/// `data` starts at the IP header; `wire_len` is what the frame held there on the wire (the
/// kernel's `skb->len` before trimming).
pub(super) fn parse(net: Net, data: &[u8], wire_len: usize) -> Result<Datagram<'_>, Skip> {
    let Some(&first) = data.first() else {
        return Err(too_short(wire_len, 1, "IP header"));
    };
    match (net, first >> 4) {
        (Net::Ipv4 | Net::Either, 4) => ipv4(data, wire_len),
        (Net::Ipv6 | Net::Either, 6) => ipv6(data, wire_len),
        (Net::Either, _) => Err(Skip::Malformed("raw IP frame is neither IPv4 nor IPv6")),
        // ip_rcv_core / ip6_rcv_core: "iph->version != 4" / "hdr->version != 6" → drop
        _ => Err(Skip::DroppedBeforeConntrack(
            "IP version does not match the link layer",
        )),
    }
}

/// A header the capture cuts short: the kernel dropped it only if the frame itself was short
/// (`pskb_may_pull` fails); otherwise the snaplen hides it from us.
fn too_short(wire_len: usize, need: usize, what: &'static str) -> Skip {
    if wire_len < need {
        Skip::DroppedBeforeConntrack("frame shorter than the IP header")
    } else {
        Skip::Truncated(what)
    }
}

/// IPv4 in the order of `ip_rcv_core`: header length and version, header checksum, then the
/// total length against the frame. Options are left for conntrack, which sees them.
fn ipv4(data: &[u8], wire_len: usize) -> Result<Datagram<'_>, Skip> {
    let Some(base) = data.first_chunk::<20>() else {
        return Err(too_short(wire_len, 20, "IPv4 header"));
    };
    let ihl = usize::from(base[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Skip::DroppedBeforeConntrack(
            "IPv4 header length below 20 bytes",
        ));
    }
    let Some(header) = data.get(..ihl) else {
        return Err(too_short(wire_len, ihl, "IPv4 options"));
    };
    if !checksum::verifies(checksum::sum(header)) {
        return Err(Skip::DroppedBeforeConntrack("bad IPv4 header checksum"));
    }
    let total = usize::from(u16::from_be_bytes([base[2], base[3]]));
    if total > wire_len {
        return Err(Skip::DroppedBeforeConntrack(
            "IPv4 total length beyond the end of the frame",
        ));
    }
    if total < ihl {
        return Err(Skip::DroppedBeforeConntrack(
            "IPv4 total length below the header length (0 in TSO captures)",
        ));
    }
    let frag = u16::from_be_bytes([base[6], base[7]]);
    let (offset, more) = (u32::from(frag & 0x1fff) * 8, frag & 0x2000 != 0);
    Ok(Datagram {
        addrs: Addrs::V4(sub4(base, 12), sub4(base, 16)),
        ttl: base[8],
        protocol: base[9],
        payload: &data[ihl..data.len().min(total)],
        len: (total - ihl) as u32,
        fragment: (offset != 0 || more).then(|| Fragment {
            id: u32::from(u16::from_be_bytes([base[4], base[5]])),
            offset,
            more,
            max_len: MAX_DATAGRAM - ihl as u32,
        }),
    })
}

fn sub4(b: &[u8; 20], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

fn ipv6(data: &[u8], wire_len: usize) -> Result<Datagram<'_>, Skip> {
    let Some(base) = data.first_chunk::<40>() else {
        return Err(too_short(wire_len, 40, "IPv6 header"));
    };
    let payload_len = usize::from(u16::from_be_bytes([base[4], base[5]]));
    let next = base[6];
    if payload_len == 0 && next == NEXTHDR_HOP {
        return Err(Skip::Malformed("IPv6 jumbogram"));
    }
    if 40 + payload_len > wire_len {
        return Err(Skip::DroppedBeforeConntrack(
            "IPv6 payload length beyond the end of the frame",
        ));
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&base[8..24]);
    dst.copy_from_slice(&base[24..40]);
    let payload = &data[40..data.len().min(40 + payload_len)];
    let located = |protocol, offset: usize, fragment| Datagram {
        addrs: Addrs::V6(src, dst),
        ttl: base[7],
        protocol,
        payload: payload.get(offset..).unwrap_or(&[]),
        len: payload_len.saturating_sub(offset) as u32,
        fragment,
    };
    Ok(
        match walk_extensions(next, payload, payload_len, Stage::BeforeDefrag)? {
            ExtEnd::Upper { protocol, offset } => located(protocol, offset, None),
            ExtEnd::Fragment {
                next,
                offset,
                id,
                frag_offset,
                more,
            } => {
                // RFC 8200 §4.5: what precedes the fragment header is the unfragmentable part.
                let unfragmentable = offset as u32 - 8;
                let fragment = Fragment {
                    id,
                    offset: frag_offset,
                    more,
                    max_len: MAX_DATAGRAM - unfragmentable,
                };
                located(next, offset, Some(fragment))
            }
        },
    )
}

/// Whether a walk runs on an arriving packet (a fragment header sends it to defragmentation) or
/// on a reassembled one (as conntrack's `ipv6_skip_exthdr` sees it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    BeforeDefrag,
    AfterDefrag,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExtEnd {
    /// The header chain ends at `protocol`, starting `offset` bytes in (possibly past the IP
    /// length, when the last extension header claims more than there is).
    Upper { protocol: u8, offset: usize },
    /// A real fragment (offset or more-fragments set); `offset` is where its data starts.
    Fragment {
        next: u8,
        offset: usize,
        id: u32,
        frag_offset: u32,
        more: bool,
    },
}

/// Walks the extension headers `ipv6_skip_exthdr` knows (hop-by-hop, routing, fragment, AH,
/// destination options) from `next`, over `bytes` (captured) of a part `len` bytes long.
///
/// Every header is at least 8 bytes long and the walk stops once a header would start past
/// `len`, so a chain that never ends costs at most `len / 8` steps.
pub(super) fn walk_extensions(
    mut next: u8,
    bytes: &[u8],
    len: usize,
    stage: Stage,
) -> Result<ExtEnd, Skip> {
    let mut pos = 0usize;
    loop {
        let fixed = match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_AUTH => 2,
            NEXTHDR_FRAGMENT => 8,
            protocol => {
                return Ok(ExtEnd::Upper {
                    protocol,
                    offset: pos,
                });
            }
        };
        // Kernel: skb_header_pointer fails, ipv6_skip_exthdr returns -1, and conntrack cannot
        // even tell the protocol (nf_conntrack_in counts the packet invalid).
        if pos + fixed > len {
            return Err(Skip::Malformed(
                "IPv6 extension headers run past the payload length",
            ));
        }
        let Some(header) = bytes.get(pos..pos + fixed) else {
            return Err(Skip::Truncated("IPv6 extension header"));
        };
        let header_len = match next {
            NEXTHDR_FRAGMENT => {
                let field = u16::from_be_bytes([header[2], header[3]]);
                let (frag_offset, more) = (u32::from(field & !7), field & 1 != 0);
                match stage {
                    Stage::BeforeDefrag if frag_offset != 0 || more => {
                        return Ok(ExtEnd::Fragment {
                            next: header[0],
                            offset: pos + 8,
                            id: be32(header, 4).unwrap_or(0),
                            frag_offset,
                            more,
                        });
                    }
                    // ipv6_skip_exthdr stops at a non-first fragment and reports the fragment
                    // header itself as the protocol.
                    Stage::AfterDefrag if frag_offset != 0 => {
                        return Ok(ExtEnd::Upper {
                            protocol: NEXTHDR_FRAGMENT,
                            offset: pos,
                        });
                    }
                    // An atomic fragment (RFC 6946) or a first fragment: look through it.
                    _ => 8,
                }
            }
            NEXTHDR_AUTH => (usize::from(header[1]) + 2) * 4,
            _ => (usize::from(header[1]) + 1) * 8,
        };
        next = header[0];
        pos += header_len;
    }
}

/// Whether an IPv6 next-header value still belongs to the extension-header chain.
pub(super) fn is_extension(next: u8) -> bool {
    matches!(
        next,
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_FRAGMENT | NEXTHDR_AUTH | NEXTHDR_DEST
    )
}
