//! The TCP header as conntrack reads it: tuple, fixed fields, options (walked like the kernel's
//! `tcp_options` / `tcp_sack`) and the checksum over the whole segment.

use super::ip::Addrs;
use super::{
    ChecksumStatus, Decoded, Segment, Skip, TcpFlags, TcpOptions, Tuple, be16, be32, checksum,
};
use crate::capture::LinkDirection;

/// The layer-4 part of a (reassembled) datagram.
pub(super) struct Part<'a> {
    pub addrs: Addrs,
    pub ttl: u8,
    /// Captured bytes, at most `len` of them.
    pub bytes: &'a [u8],
    /// TCP header + payload length from the IP header(s).
    pub len: u32,
    pub fragments: u16,
    pub link_direction: Option<LinkDirection>,
}

const HEADER: usize = 20;

// Inlined into its two callers (most frames come through `Decoder::decode`): as a call, the
// segment's fields went through memory twice, into the part and out of it (~27 instructions).
#[inline(always)]
pub(super) fn decode(part: &Part<'_>) -> Decoded {
    let bytes = part.bytes;
    // tcp_error: skb_header_pointer(.., sizeof(struct tcphdr)) fails on the datagram itself,
    // and conntrack classes it INVALID without a log line.
    if (part.len as usize) < HEADER {
        return unreadable(part, "TCP header shorter than 20 bytes");
    }
    let (Some(header), Some(tuple)) = (bytes.first_chunk::<HEADER>(), tuple(part)) else {
        return Decoded::Skipped(Skip::Truncated("TCP header"));
    };
    let doff = header[12] >> 4;
    let captured_all = bytes.len() == part.len as usize;
    let checksum = if !captured_all {
        ChecksumStatus::Unverifiable
    } else if checksum::verifies(part.addrs.pseudo_header_sum(part.len) + checksum::sum(bytes)) {
        ChecksumStatus::Good
    } else if be16(header, 16) == Some(checksum::fold(part.addrs.pseudo_header_sum(part.len))) {
        // With transmit checksum offload, Linux leaves the folded pseudo-header sum in the field
        // for the NIC to finish; a capture on the sending host sees it before the NIC does.
        ChecksumStatus::Partial
    } else {
        ChecksumStatus::Bad
    };
    let mut decoded = Decoded::Tcp(Segment {
        tuple,
        seq: be32(header, 4).unwrap_or(0),
        ack: be32(header, 8).unwrap_or(0),
        window: be16(header, 14).unwrap_or(0),
        flags: TcpFlags(header[13]),
        doff,
        l4_len: part.len,
        options: TcpOptions::default(),
        checksum,
        ttl: part.ttl,
        fragments: part.fragments,
        truncated: !captured_all,
        link_direction: part.link_direction,
    });
    // The options are read into the segment where it lies (see `read_options`).
    if let Decoded::Tcp(seg) = &mut decoded {
        read_options(bytes, doff, &mut seg.options);
    }
    decoded
}

/// A TCP datagram conntrack cannot read a header from; it still has a tuple when the ports
/// (the first 4 bytes, all `nf_ct_get_tuple` reads) are within the IP length and captured.
pub(super) fn unreadable(part: &Part<'_>, why: &'static str) -> Decoded {
    let tuple = if part.len >= 4 { tuple(part) } else { None };
    Decoded::TcpUnreadable { tuple, why }
}

fn tuple(part: &Part<'_>) -> Option<Tuple> {
    let (src, dst) = part.addrs.ip_addrs();
    Some(Tuple {
        src,
        dst,
        sport: be16(part.bytes, 0)?,
        dport: be16(part.bytes, 2)?,
    })
}

const TCPOPT_EOL: u8 = 0;
const TCPOPT_NOP: u8 = 1;
const TCPOPT_MSS: u8 = 2;
const TCPOPT_WINDOW: u8 = 3;
const TCPOPT_SACK_PERM: u8 = 4;
const TCPOPT_SACK: u8 = 5;
/// Conntrack does not read timestamps; the kind is named for the shortcut in [`read_options`].
const TCPOPT_TIMESTAMP: u8 = 8;

/// Reads the options of a segment whose captured bytes are `segment` into `found` (which holds
/// none yet). The walk covers the option area `doff` announces, cut to what was captured (and
/// thus to the IP length).
// Inlined (the check for the usual NOP, NOP, timestamp is a few compares; as a call it cost
// ~17 instructions a packet more); the walk for the other option areas is not. The options are
// written into the segment in place: returned by value, they were copied twice through the
// stack, each copy reading 16 bytes just written a few at a time, which the CPU cannot forward
// from its store buffer (a stall of ~12 % of `Front::prepare`'s samples).
#[inline(always)]
fn read_options(segment: &[u8], doff: u8, found: &mut TcpOptions) {
    let area = option_area(segment, doff, found);
    // After the handshake, a Linux sender's segments carry exactly NOP, NOP and a timestamp,
    // which conntrack does not read: nothing to walk for (a test holds this to the walk).
    if !is_timestamp_only(area) {
        walk_options(area, found);
    }
}

/// Whether an option area is exactly NOP, NOP and a well-formed timestamp option.
fn is_timestamp_only(area: &[u8]) -> bool {
    matches!(area, [TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, 10, _, _, _, _, _, _, _, _])
}

/// The option area `doff` announces, cut to what was captured; notes its length and whether it
/// was captured whole in `found`.
fn option_area<'a>(segment: &'a [u8], doff: u8, found: &mut TcpOptions) -> &'a [u8] {
    let area_len = (usize::from(doff) * 4).saturating_sub(HEADER);
    let end = (HEADER + area_len).min(segment.len());
    found.area_len = area_len as u8;
    found.complete = HEADER + area_len <= segment.len();
    segment.get(HEADER..end).unwrap_or(&[])
}

/// The options of an option area, walked like the kernel's `tcp_options` and `tcp_sack`.
#[inline(never)]
fn walk_options(area: &[u8], found: &mut TcpOptions) {
    walk(
        area,
        |kind, data| match (kind, data.len()) {
            // Later duplicates overwrite earlier ones, as tcp_options() keeps walking.
            (TCPOPT_WINDOW, 1) => found.wscale = Some(data[0]),
            (TCPOPT_SACK_PERM, 0) => found.sack_perm = true,
            (TCPOPT_MSS, 2) => found.mss = be16(data, 0),
            // tcp_sack() reads only the first well-formed SACK option, then returns.
            (TCPOPT_SACK, n) if found.sack_blocks == 0 && n >= 8 && n.is_multiple_of(8) => {
                for (i, block) in data.chunks_exact(8).take(4).enumerate() {
                    found.sack_right_edges[i] = be32(block, 4).unwrap_or(0);
                    found.sack_blocks += 1;
                }
            }
            _ => {}
        },
    );
}

/// The loop shared by the kernel's `tcp_options()` and `tcp_sack()`: EOL ends it, NOP is one
/// byte, any other option needs a length byte with `2 <= len <= remaining`, else the walk stops
/// ("silly options", "don't parse partial options"). Unknown kinds are skipped by length.
fn walk(mut area: &[u8], mut each: impl FnMut(u8, &[u8])) {
    while let Some(&kind) = area.first() {
        match kind {
            TCPOPT_EOL => return,
            TCPOPT_NOP => area = &area[1..],
            _ => {
                let Some(&len) = area.get(1) else { return };
                let len = usize::from(len);
                if len < 2 || len > area.len() {
                    return;
                }
                each(kind, &area[2..len]);
                area = &area[len..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20-byte header followed by `opts`, with doff covering them (rounded up).
    fn with_options(opts: &[u8]) -> Vec<u8> {
        let mut seg = vec![0u8; HEADER];
        seg.extend_from_slice(opts);
        while !seg.len().is_multiple_of(4) {
            seg.push(0);
        }
        seg[12] = ((seg.len() / 4) as u8) << 4;
        seg
    }

    /// The options `read_options` finds.
    fn options(segment: &[u8], doff: u8) -> TcpOptions {
        let mut found = TcpOptions::default();
        read_options(segment, doff, &mut found);
        found
    }

    fn opts(o: &[u8]) -> TcpOptions {
        let seg = with_options(o);
        options(&seg, seg[12] >> 4)
    }

    #[test]
    fn every_known_kind() {
        let o = opts(&[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7,
        ]);
        assert_eq!(o.area_len, 20);
        assert!(o.complete);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_perm);
        assert_eq!(o.wscale, Some(7));
        assert_eq!(o.sack_blocks, 0);
    }

    #[test]
    fn no_options_and_nop_only() {
        let none = options(&[0u8; 20], 5);
        assert_eq!(
            none,
            TcpOptions {
                complete: true,
                ..TcpOptions::default()
            }
        );
        let nops = opts(&[1, 1, 1, 1]);
        assert_eq!(
            nops,
            TcpOptions {
                area_len: 4,
                complete: true,
                ..TcpOptions::default()
            }
        );
    }

    #[test]
    fn wscale_is_raw_and_last_one_wins() {
        assert_eq!(opts(&[3, 3, 200]).wscale, Some(200));
        assert_eq!(opts(&[3, 3, 2, 3, 3, 9]).wscale, Some(9));
    }

    #[test]
    fn unknown_kinds_are_skipped_by_length() {
        // MPTCP (30), TFO (34), MD5 (19) and an experimental option before the window scale.
        let o = opts(&[30, 4, 0x10, 0x01, 34, 2, 254, 4, 0xf9, 0x89, 1, 3, 3, 8]);
        assert_eq!(o.wscale, Some(8));
        let md5 = [&[19u8, 18][..], &[0xaa; 16], &[3, 3, 5]].concat();
        assert_eq!(opts(&md5).wscale, Some(5));
    }

    #[test]
    fn eol_and_malformed_lengths_stop_the_walk() {
        assert_eq!(opts(&[0, 3, 3, 7]).wscale, None, "EOL");
        assert_eq!(opts(&[30, 1, 3, 3, 7]).wscale, None, "length 1");
        assert_eq!(opts(&[30, 0, 3, 3, 7]).wscale, None, "length 0");
        assert_eq!(
            opts(&[1, 1, 30, 40, 3, 3, 7]).wscale,
            None,
            "longer than the area"
        );
        // The wrong length for a known kind is just skipped.
        let o = opts(&[3, 4, 7, 0, 4, 3, 0, 2, 3, 1, 3, 3, 6]);
        assert_eq!((o.wscale, o.sack_perm, o.mss), (Some(6), false, None));
        // A lone kind byte at the very end: no length byte.
        assert_eq!(opts(&[3, 3, 4, 1, 1, 1, 1, 30]).wscale, Some(4));
    }

    #[test]
    fn first_sack_option_only() {
        let mut o = vec![1, 1, 5, 26];
        for (l, r) in [(10u32, 20u32), (30, 40), (50, 60)] {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o.extend_from_slice(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 99]);
        let s = opts(&o);
        assert_eq!(s.sack_blocks, 3);
        assert_eq!(s.sack_right_edges, [20, 40, 60, 0]);

        let mut four = vec![5, 34];
        for r in 1..=4u32 {
            four.extend_from_slice(&0u32.to_be_bytes());
            four.extend_from_slice(&(r * 100).to_be_bytes());
        }
        let s = opts(&four);
        assert_eq!(
            (s.sack_blocks, s.sack_right_edges),
            (4, [100, 200, 300, 400])
        );

        // Not a multiple of 8 after the kind and length: skipped, the next one counts.
        let s = opts(&[
            5, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 10, 0, 0, 0, 0, 0, 0, 0, 7,
        ]);
        assert_eq!((s.sack_blocks, s.sack_right_edges[0]), (1, 7));
    }

    #[test]
    fn option_area_cut_by_the_capture() {
        let seg = with_options(&[2, 4, 5, 0xb4, 1, 3, 3, 7]);
        let cut = &seg[..HEADER + 6];
        let o = options(cut, 7);
        assert_eq!(
            (o.area_len, o.complete, o.mss, o.wscale),
            (8, false, Some(1460), None)
        );
    }

    /// The shortcut for NOP, NOP, timestamp finds what the walk finds (nothing), on that layout
    /// with any values and on areas that only look like it (other lengths, kinds, cut short).
    #[test]
    fn the_timestamp_shortcut_agrees_with_the_walk() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut byte = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        };
        let mut shortcuts = 0;
        for n in 0..20_000 {
            let mut area = vec![1, 1, 8, 10];
            area.extend((0..8).map(|_| byte()));
            // Most inputs are spoiled in one byte, or cut, or grown.
            match n % 4 {
                0 => {}
                1 => {
                    let at = usize::from(byte()) % area.len();
                    area[at] = byte() % 12;
                }
                2 => area.truncate(usize::from(byte()) % area.len()),
                _ => area.extend((0..usize::from(byte() % 9)).map(|_| byte() % 12)),
            }
            let seg = with_options(&area);
            let doff = seg[12] >> 4;
            for captured in [seg.len(), HEADER + area.len() / 2] {
                let mut walked = TcpOptions::default();
                let area = option_area(&seg[..captured], doff, &mut walked);
                shortcuts += usize::from(is_timestamp_only(area));
                walk_options(area, &mut walked);
                assert_eq!(options(&seg[..captured], doff), walked, "{area:?}");
            }
        }
        assert!(shortcuts > 5_000, "the shortcut was taken {shortcuts} times");
    }

    #[test]
    fn doff_below_five_or_beyond_the_segment() {
        let o = options(&[0u8; 20], 3);
        assert_eq!((o.area_len, o.complete), (0, true));
        let seg = with_options(&[3, 3, 7, 1]);
        let o = options(&seg, 15);
        assert_eq!((o.area_len, o.complete, o.wscale), (40, false, Some(7)));
    }
}
