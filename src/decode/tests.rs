//! Frame-to-segment tests over every layer. Packets come from etherparse's `PacketBuilder`
//! (independent checksums) and are edited by hand where a case needs malformed bytes.

use crate::synth::rng::Rng;
use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader, TcpOptionElement};

use super::*;
use crate::capture::LinkType;

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

// ---- builders -------------------------------------------------------------------------------

fn write(step: PacketBuilderStep<TcpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(step.size(payload.len()));
    step.write(&mut out, payload).expect("packet builds");
    out
}

/// Raw IPv4: 10.0.0.1:40000 > 10.0.0.2:80, ACK, seq 1000, ack 2000, window 512, TTL 64.
fn v4(payload: &[u8]) -> Vec<u8> {
    write(
        PacketBuilder::ipv4(SRC4, DST4, 64)
            .tcp(40000, 80, 1000, 512)
            .ack(2000),
        payload,
    )
}

/// Raw IPv6, same segment, hop limit 64.
fn v6(payload: &[u8]) -> Vec<u8> {
    write(
        PacketBuilder::ipv6(SRC6, DST6, 64)
            .tcp(40000, 80, 1000, 512)
            .ack(2000),
        payload,
    )
}

fn ether(ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(inner);
    f
}

fn set_ipv4_checksum(ip: &mut [u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = !checksum::fold(checksum::sum(&ip[..ihl]));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes the TCP checksum of a raw IPv4 (any IHL) or IPv6 (no extension headers) packet.
fn set_tcp_checksum(ip: &mut [u8]) {
    let (addrs, start) = match ip[0] >> 4 {
        4 => (ip::Addrs::V4(SRC4, DST4), usize::from(ip[0] & 0x0f) * 4),
        _ => (ip::Addrs::V6(SRC6, DST6), 40),
    };
    ip[start + 16..start + 18].copy_from_slice(&[0, 0]);
    let len = (ip.len() - start) as u32;
    let c = !checksum::fold(addrs.pseudo_header_sum(len) + checksum::sum(&ip[start..]));
    ip[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
}

fn frame(linktype: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        file: 0,
        number: 1,
        ts: Timestamp(0),
        linktype,
        data,
        orig_len: data.len() as u32,
        direction: None,
        offset: 0,
    }
}

fn decode(linktype: LinkType, data: &[u8]) -> Decoded {
    Decoder::new().decode(&frame(linktype, data))
}

/// Decodes `data` as if the capture kept only `snaplen` bytes of it.
fn decode_cut(linktype: LinkType, data: &[u8], snaplen: usize) -> Decoded {
    let f = Frame {
        orig_len: data.len() as u32,
        ..frame(linktype, &data[..snaplen.min(data.len())])
    };
    Decoder::new().decode(&f)
}

#[track_caller]
fn seg(d: Decoded) -> Segment {
    match d {
        Decoded::Tcp(s) => s,
        other => panic!("expected a segment, got {other:?}"),
    }
}

#[track_caller]
fn skip(d: Decoded) -> Skip {
    match d {
        Decoded::Skipped(s) => s,
        other => panic!("expected a skip, got {other:?}"),
    }
}

fn tuple4() -> Tuple {
    Tuple {
        src: Ipv4Addr::from(SRC4).into(),
        dst: Ipv4Addr::from(DST4).into(),
        sport: 40000,
        dport: 80,
    }
}

fn tuple6() -> Tuple {
    Tuple {
        src: Ipv6Addr::from(SRC6).into(),
        dst: Ipv6Addr::from(DST6).into(),
        sport: 40000,
        dport: 80,
    }
}

use std::net::{Ipv4Addr, Ipv6Addr};

// ---- link layers ----------------------------------------------------------------------------

#[test]
fn ethernet_ipv4_syn_with_options() {
    let step = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(SRC4, DST4, 63)
        .tcp(40000, 80, 0xfffffff0, 64240)
        .syn()
        .ece()
        .cwr()
        .options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(7, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
    let s = seg(decode(LinkType::ETHERNET, &write(step, b"")));
    assert_eq!(s.tuple, tuple4());
    assert_eq!(s.tuple.to_string(), "10.0.0.1:40000>10.0.0.2:80");
    assert_eq!((s.seq, s.ack, s.window, s.ttl), (0xfffffff0, 0, 64240, 63));
    assert_eq!(s.flags.to_string(), "SEW");
    assert_eq!((s.doff, s.l4_len, s.payload_len()), (10, 40, 0));
    assert_eq!(s.checksum, ChecksumStatus::Good);
    assert_eq!(
        (s.fragments, s.truncated, s.link_direction),
        (1, false, None)
    );
    let o = s.options;
    assert_eq!((o.area_len, o.complete), (20, true));
    assert_eq!(
        (o.mss, o.sack_perm, o.wscale),
        (Some(1460), true, Some(7))
    );
}

#[test]
fn ethernet_padding_and_fcs_are_ignored() {
    let mut f = ether(0x0800, &v4(b""));
    f.resize(60, 0); // minimum frame padding
    f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // FCS
    let s = seg(decode(LinkType::ETHERNET, &f));
    assert_eq!(
        (s.l4_len, s.checksum, s.truncated),
        (20, ChecksumStatus::Good, false)
    );
}

#[test]
fn every_link_type_reaches_the_segment() {
    let ip4 = v4(b"data");
    let ip6 = v6(b"data");
    let with = |head: &[u8], ip: &[u8]| [head, ip].concat();
    let sll = |pkttype: u8, proto: [u8; 2]| {
        let mut h = vec![0, pkttype, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        h.extend_from_slice(&proto);
        h
    };
    let sll2 = |pkttype: u8, proto: [u8; 2]| {
        [
            &proto[..],
            &[0, 0, 0, 0, 0, 3, 0, 1, pkttype, 6, 2, 0, 0, 0, 0, 1, 0, 0],
        ]
        .concat()
    };
    let vlan100 = {
        let mut tags = Vec::new();
        for i in 0..100u16 {
            tags.extend_from_slice(&[0x81, 0x00]);
            tags.extend_from_slice(&i.to_be_bytes());
        }
        tags.extend_from_slice(&[0x86, 0xdd]);
        [&[0u8; 12][..], &tags, &ip6].concat()
    };
    let qinq = [
        &[0u8; 12][..],
        &[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00],
        &ip4,
    ]
    .concat();
    let pppoe6 = ether(0x8864, &with(&[0x11, 0, 0, 1, 0, 0, 0x00, 0x57], &ip6));
    let cases: Vec<(LinkType, Vec<u8>, Tuple, Option<LinkDirection>)> = vec![
        (LinkType::ETHERNET, ether(0x0800, &ip4), tuple4(), None),
        (LinkType::ETHERNET, ether(0x86dd, &ip6), tuple6(), None),
        (LinkType::ETHERNET, vlan100, tuple6(), None),
        (LinkType::ETHERNET, qinq, tuple4(), None),
        (LinkType::ETHERNET, pppoe6, tuple6(), None),
        (
            LinkType::LINUX_SLL,
            with(&sll(4, [0x08, 0]), &ip4),
            tuple4(),
            Some(LinkDirection::Outbound),
        ),
        (
            LinkType::LINUX_SLL,
            with(&sll(0, [0x86, 0xdd]), &ip6),
            tuple6(),
            Some(LinkDirection::Inbound),
        ),
        (
            LinkType::LINUX_SLL2,
            with(&sll2(4, [0x86, 0xdd]), &ip6),
            tuple6(),
            Some(LinkDirection::Outbound),
        ),
        (
            LinkType::LINUX_SLL2,
            with(&sll2(0, [0x08, 0]), &ip4),
            tuple4(),
            Some(LinkDirection::Inbound),
        ),
        (LinkType::RAW, ip4.clone(), tuple4(), None),
        (LinkType::RAW, ip6.clone(), tuple6(), None),
        (LinkType::RAW_OLD_12, ip4.clone(), tuple4(), None),
        (LinkType::RAW_OLD_14, ip6.clone(), tuple6(), None),
        (LinkType::IPV4, ip4.clone(), tuple4(), None),
        (LinkType::IPV6, ip6.clone(), tuple6(), None),
        (LinkType::NULL, with(&[2, 0, 0, 0], &ip4), tuple4(), None),
        (LinkType::NULL, with(&[0, 0, 0, 2], &ip4), tuple4(), None),
        (LinkType::NULL, with(&[30, 0, 0, 0], &ip6), tuple6(), None),
        (LinkType::NULL, with(&[0, 0, 0, 24], &ip6), tuple6(), None),
        (LinkType::LOOP, with(&[0, 0, 0, 2], &ip4), tuple4(), None),
        (LinkType::LOOP, with(&[0, 0, 0, 28], &ip6), tuple6(), None),
    ];
    for (lt, data, tuple, dir) in cases {
        let s = seg(decode(lt, &data));
        assert_eq!(s.tuple, tuple, "{lt}");
        assert_eq!(
            (s.l4_len, s.payload_len(), s.checksum),
            (24, 4, ChecksumStatus::Good),
            "{lt}"
        );
        assert_eq!(s.link_direction, dir, "{lt}");
    }
    let unsupported = LinkType(105); // 802.11
    assert_eq!(
        skip(decode(unsupported, &ip4)),
        Skip::UnsupportedLinkType(unsupported)
    );
    assert_eq!(
        skip(decode(LinkType::ETHERNET, &ether(0x0806, &[0; 28]))),
        Skip::NotIp { ethertype: 0x0806 }
    );
}

#[test]
fn the_frames_own_direction_wins_over_the_sll_packet_type() {
    let data = [
        &[0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00][..],
        &v4(b""),
    ]
    .concat();
    let f = Frame {
        direction: Some(LinkDirection::Inbound),
        ..frame(LinkType::LINUX_SLL, &data)
    };
    assert_eq!(
        seg(Decoder::new().decode(&f)).link_direction,
        Some(LinkDirection::Inbound)
    );
    let f = Frame {
        direction: Some(LinkDirection::Outbound),
        ..frame(LinkType::RAW, &data[16..])
    };
    assert_eq!(
        seg(Decoder::new().decode(&f)).link_direction,
        Some(LinkDirection::Outbound)
    );
}

#[test]
fn ip_version_must_match_the_link() {
    let mismatch = Skip::DroppedBeforeConntrack("IP version does not match the link layer");
    assert_eq!(skip(decode(LinkType::IPV4, &v6(b""))), mismatch);
    assert_eq!(skip(decode(LinkType::IPV6, &v4(b""))), mismatch);
    assert_eq!(
        skip(decode(LinkType::ETHERNET, &ether(0x86dd, &v4(b"")))),
        mismatch
    );
    assert_eq!(
        skip(decode(
            LinkType::NULL,
            &[&[2, 0, 0, 0][..], &v6(b"")].concat()
        )),
        mismatch
    );
    let mut v5 = v4(b"");
    v5[0] = 0x55;
    assert_eq!(
        skip(decode(LinkType::RAW, &v5)),
        Skip::Malformed("raw IP frame is neither IPv4 nor IPv6")
    );
    assert_eq!(
        skip(decode(LinkType::RAW, &[])),
        Skip::DroppedBeforeConntrack("frame shorter than the IP header")
    );
}

// ---- IPv4 -----------------------------------------------------------------------------------

/// Inserts IPv4 options after the base header, fixing IHL, total length and header checksum.
fn with_ip_options(ip: &[u8], options: &[u8]) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4));
    let mut out = [&ip[..20], options, &ip[20..]].concat();
    out[0] = 0x40 | ((20 + options.len()) / 4) as u8;
    let total = out.len() as u16;
    out[2..4].copy_from_slice(&total.to_be_bytes());
    set_ipv4_checksum(&mut out);
    out
}

#[test]
fn ipv4_options_are_skipped_by_ihl() {
    // Record route (7) with room for two addresses, then NOP, EOL padding.
    let ip = with_ip_options(&v4(b"hello"), &[7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let s = seg(decode(LinkType::RAW, &ip));
    assert_eq!(
        (s.l4_len, s.payload_len(), s.checksum),
        (25, 5, ChecksumStatus::Good)
    );
    assert_eq!(s.tuple, tuple4());
}

#[test]
fn ipv4_input_path_drops() {
    let good = v4(b"abc");
    let edit = |f: fn(&mut Vec<u8>)| {
        let mut ip = good.clone();
        f(&mut ip);
        skip(decode(LinkType::RAW, &ip))
    };
    let dropped = Skip::DroppedBeforeConntrack;
    assert_eq!(edit(|ip| ip[8] ^= 1), dropped("bad IPv4 header checksum"));
    assert_eq!(
        edit(|ip| {
            ip[0] = 0x44;
            set_ipv4_checksum(ip);
        }),
        dropped("IPv4 header length below 20 bytes")
    );
    assert_eq!(
        edit(|ip| {
            ip[2..4].copy_from_slice(&[0, 0]);
            set_ipv4_checksum(ip);
        }),
        dropped("IPv4 total length below the header length (0 in TSO captures)")
    );
    assert_eq!(
        edit(|ip| {
            ip[2..4].copy_from_slice(&[0, 19]);
            set_ipv4_checksum(ip);
        }),
        dropped("IPv4 total length below the header length (0 in TSO captures)")
    );
    assert_eq!(
        edit(|ip| {
            ip[2..4].copy_from_slice(&100u16.to_be_bytes());
            set_ipv4_checksum(ip);
        }),
        dropped("IPv4 total length beyond the end of the frame")
    );
    // A frame that is really shorter than an IPv4 header (not a snaplen cut).
    assert_eq!(
        skip(decode(LinkType::RAW, &good[..12])),
        dropped("frame shorter than the IP header")
    );
}

#[test]
fn ipv4_total_length_against_the_original_frame_length() {
    // Ethernet: the wire length is orig_len minus the 14-byte header; the capture holds less.
    let f = ether(0x0800, &v4(&[0u8; 100]));
    let cut = |orig_len: u32| {
        let fr = Frame {
            orig_len,
            ..frame(LinkType::ETHERNET, &f[..60])
        };
        Decoder::new().decode(&fr)
    };
    assert_eq!(seg(cut(f.len() as u32)).l4_len, 120);
    assert_eq!(
        skip(cut(f.len() as u32 - 1)),
        Skip::DroppedBeforeConntrack("IPv4 total length beyond the end of the frame")
    );
}

#[test]
fn snaplen_cuts() {
    let ip = v4(&[7u8; 1000]);
    let s = seg(decode_cut(LinkType::RAW, &ip, 54));
    assert_eq!((s.l4_len, s.payload_len(), s.truncated), (1020, 1000, true));
    assert_eq!(s.checksum, ChecksumStatus::Unverifiable);
    assert_eq!((s.seq, s.ack, s.tuple), (1000, 2000, tuple4()));

    let s = seg(decode_cut(LinkType::RAW, &ip, 40));
    assert!(s.truncated && s.options.complete && s.options.area_len == 0);

    assert_eq!(
        skip(decode_cut(LinkType::RAW, &ip, 39)),
        Skip::Truncated("TCP header")
    );
    assert_eq!(
        skip(decode_cut(LinkType::RAW, &ip, 19)),
        Skip::Truncated("IPv4 header")
    );
    let opts = with_ip_options(&ip, &[1, 1, 1, 0]);
    assert_eq!(
        skip(decode_cut(LinkType::RAW, &opts, 22)),
        Skip::Truncated("IPv4 options")
    );
    let ip6 = v6(&[7u8; 1000]);
    let s = seg(decode_cut(LinkType::RAW, &ip6, 70));
    assert_eq!(
        (s.l4_len, s.truncated, s.checksum),
        (1020, true, ChecksumStatus::Unverifiable)
    );
    assert_eq!(
        skip(decode_cut(LinkType::RAW, &ip6, 39)),
        Skip::Truncated("IPv6 header")
    );
    assert_eq!(
        skip(decode_cut(LinkType::ETHERNET, &ether(0x0800, &ip), 10)),
        Skip::Truncated("Ethernet header")
    );
}

// ---- TCP header -----------------------------------------------------------------------------

#[test]
fn tcp_checksums_v4_and_v6() {
    for mut ip in [v4(b"payload!x"), v6(b"payload!x")] {
        assert_eq!(
            seg(decode(LinkType::RAW, &ip)).checksum,
            ChecksumStatus::Good
        );
        let last = ip.len() - 1;
        ip[last] ^= 0x40;
        assert_eq!(
            seg(decode(LinkType::RAW, &ip)).checksum,
            ChecksumStatus::Bad
        );
    }
}

#[test]
fn tcp_shorter_than_its_base_header() {
    // The IP length leaves 10 bytes of TCP: ports readable, header not.
    let mut ip = v4(b"")[..30].to_vec();
    ip[2..4].copy_from_slice(&30u16.to_be_bytes());
    set_ipv4_checksum(&mut ip);
    match decode(LinkType::RAW, &ip) {
        Decoded::TcpUnreadable { tuple, .. } => assert_eq!(tuple, Some(tuple4())),
        other => panic!("{other:?}"),
    }
    // 3 bytes: not even the ports.
    let mut ip = v4(b"")[..23].to_vec();
    ip[2..4].copy_from_slice(&23u16.to_be_bytes());
    set_ipv4_checksum(&mut ip);
    assert!(matches!(
        decode(LinkType::RAW, &ip),
        Decoded::TcpUnreadable { tuple: None, .. }
    ));
    // Ports within the IP length but not captured.
    let mut ip = v4(b"")[..30].to_vec();
    ip[2..4].copy_from_slice(&30u16.to_be_bytes());
    set_ipv4_checksum(&mut ip);
    assert!(matches!(
        decode_cut(LinkType::RAW, &ip, 22),
        Decoded::TcpUnreadable { tuple: None, .. }
    ));
    // IPv6 with a 12-byte TCP part.
    let mut ip = v6(b"")[..52].to_vec();
    ip[4..6].copy_from_slice(&12u16.to_be_bytes());
    assert!(matches!(
        decode(LinkType::RAW, &ip),
        Decoded::TcpUnreadable { tuple: Some(_), .. }
    ));
}

#[test]
fn data_offset_below_five_or_beyond_the_segment_still_yields_a_segment() {
    let mut ip = v4(b"0123456789ab");
    ip[32] = 3 << 4;
    set_tcp_checksum(&mut ip);
    let s = seg(decode(LinkType::RAW, &ip));
    assert_eq!(
        (s.doff, s.options.area_len, s.payload_len(), s.checksum),
        (3, 0, 20, ChecksumStatus::Good)
    );

    ip[32] = 15 << 4;
    set_tcp_checksum(&mut ip);
    let s = seg(decode(LinkType::RAW, &ip));
    assert_eq!((s.doff, s.l4_len, s.payload_len()), (15, 32, 0));
    assert_eq!((s.options.area_len, s.options.complete), (40, false));
}

#[test]
fn options_through_the_decoder() {
    let raw = |opts: &[u8]| {
        let step = PacketBuilder::ipv6(SRC6, DST6, 64)
            .tcp(40000, 80, 1, 100)
            .syn()
            .options_raw(opts)
            .unwrap();
        seg(decode(LinkType::RAW, &write(step, b""))).options
    };
    // MPTCP (30) before the window scale: etherparse's own iterator would stop there.
    let o = raw(&[
        30, 12, 0, 0x81, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 14, 4, 2, 1, 1,
    ]);
    assert_eq!((o.wscale, o.sack_perm, o.complete), (Some(14), true, true));
    // A length running past the area stops the walk before the window scale.
    assert_eq!(raw(&[1, 1, 254, 30, 3, 3, 7, 0]).wscale, None);

    let step = PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1, 100)
        .ack(500)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgement((600, 700), [Some((800, 900)), None, None]),
        ])
        .unwrap();
    let o = seg(decode(LinkType::RAW, &write(step, b""))).options;
    assert_eq!((o.sack_blocks, o.sack_right_edges), (2, [700, 900, 0, 0]));

    // Option area cut by the snaplen.
    let step = PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1, 100)
        .syn()
        .options(&[
            TcpOptionElement::MaximumSegmentSize(1400),
            TcpOptionElement::WindowScale(3),
        ])
        .unwrap();
    let s = seg(decode_cut(LinkType::RAW, &write(step, b""), 20 + 20 + 5));
    assert_eq!(
        (s.options.complete, s.options.mss, s.options.wscale),
        (false, Some(1400), None)
    );
    assert_eq!(s.checksum, ChecksumStatus::Unverifiable);
}

// ---- IPv6 extension headers -----------------------------------------------------------------

/// An extension header of `total` bytes whose length byte is `len_field`.
fn ext(kind: u8, len_field: u8, total: usize) -> (u8, Vec<u8>) {
    let mut body = vec![0u8; total];
    body[1] = len_field;
    (kind, body)
}

/// An IPv6 packet whose payload is `exts` chained in order, then `upper` (protocol `proto`).
fn v6_chain(exts: &[(u8, Vec<u8>)], proto: u8, upper: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (_, body)) in exts.iter().enumerate() {
        let mut body = body.clone();
        body[0] = exts.get(i + 1).map_or(proto, |e| e.0);
        payload.extend_from_slice(&body);
    }
    payload.extend_from_slice(upper);
    let mut ip = v6(b"")[..40].to_vec();
    ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    ip[6] = exts.first().map_or(proto, |e| e.0);
    ip.extend_from_slice(&payload);
    ip
}

fn tcp6(payload: &[u8]) -> Vec<u8> {
    v6(payload)[40..].to_vec()
}

#[test]
fn ipv6_extension_chain_to_tcp() {
    let exts = [
        ext(0, 0, 8),
        ext(43, 2, 24),
        ext(60, 1, 16),
        ext(51, 4, 24),
        ext(44, 0, 8),
    ];
    let ip = v6_chain(&exts, 6, &tcp6(b"xyz"));
    let s = seg(decode(LinkType::RAW, &ip));
    assert_eq!((s.l4_len, s.payload_len(), s.fragments), (23, 3, 1));
    assert_eq!((s.tuple, s.checksum), (tuple6(), ChecksumStatus::Good));

    let long: Vec<_> = (0..500).map(|_| ext(60, 0, 8)).collect();
    let s = seg(decode(LinkType::RAW, &v6_chain(&long, 6, &tcp6(b""))));
    assert_eq!(s.l4_len, 20);

    let ip = v6_chain(&[ext(0, 0, 8), ext(60, 0, 8)], 17, &[0; 8]);
    assert_eq!(
        skip(decode(LinkType::RAW, &ip)),
        Skip::NotTcp { protocol: 17 }
    );
    let ip = v6_chain(&[ext(60, 0, 8)], 59, &[]);
    assert_eq!(
        skip(decode(LinkType::RAW, &ip)),
        Skip::NotTcp { protocol: 59 }
    );
    let ip = v6_chain(&[ext(60, 0, 8)], 50, &[0; 16]); // ESP ends the walk
    assert_eq!(
        skip(decode(LinkType::RAW, &ip)),
        Skip::NotTcp { protocol: 50 }
    );
}

#[test]
fn ipv6_extension_chains_that_do_not_end_well() {
    // A chain that never reaches an upper layer: hop-by-hop headers all the way down.
    let mut endless = v6(b"")[..40].to_vec();
    endless[4..6].copy_from_slice(&800u16.to_be_bytes());
    endless[6] = 0;
    endless.resize(840, 0);
    let overrun = Skip::Malformed("IPv6 extension headers run past the payload length");
    assert_eq!(skip(decode(LinkType::RAW, &endless)), overrun);
    // The same, with the payload length at its maximum and the capture cut short.
    endless[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
    let f = Frame {
        orig_len: 40 + 65535,
        ..frame(LinkType::RAW, &endless)
    };
    assert_eq!(
        skip(Decoder::new().decode(&f)),
        Skip::Truncated("IPv6 extension header")
    );

    // A routing header claiming 2 KiB, followed by another extension header: protocol unknown.
    let ip = v6_chain(&[ext(43, 255, 16), ext(60, 0, 8)], 6, &tcp6(b""));
    assert_eq!(skip(decode(LinkType::RAW, &ip)), overrun);
    // ... followed directly by TCP: conntrack knows it is TCP but cannot read the ports.
    let ip = v6_chain(&[ext(43, 255, 16)], 6, &tcp6(b""));
    assert!(matches!(
        decode(LinkType::RAW, &ip),
        Decoded::TcpUnreadable { tuple: None, .. }
    ));
}

#[test]
fn ipv6_length_checks() {
    let mut ip = v6(b"abcd");
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6] = 0;
    assert_eq!(
        skip(decode(LinkType::RAW, &ip)),
        Skip::Malformed("IPv6 jumbogram")
    );
    let mut ip = v6(b"abcd");
    ip[4..6].copy_from_slice(&25u16.to_be_bytes());
    assert_eq!(
        skip(decode(LinkType::RAW, &ip)),
        Skip::DroppedBeforeConntrack("IPv6 payload length beyond the end of the frame")
    );
    // Payload 0 without hop-by-hop: TCP with nothing in it.
    let mut ip = v6(b"")[..40].to_vec();
    ip[4..6].copy_from_slice(&[0, 0]);
    assert!(matches!(
        decode(LinkType::RAW, &ip),
        Decoded::TcpUnreadable { tuple: None, .. }
    ));
}

// ---- fragments ------------------------------------------------------------------------------

/// Splits a raw IPv4 packet with a 20-byte header at the given offsets of its payload.
fn fragment_v4(packet: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let data = &packet[20..];
    let bounds: Vec<usize> = [0]
        .into_iter()
        .chain(cuts.iter().copied())
        .chain([data.len()])
        .collect();
    bounds
        .windows(2)
        .map(|w| {
            let mut f = [&packet[..20], &data[w[0]..w[1]]].concat();
            let total = f.len() as u16;
            f[2..4].copy_from_slice(&total.to_be_bytes());
            f[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
            let more = if w[1] < data.len() { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&((w[0] / 8) as u16 | more).to_be_bytes());
            set_ipv4_checksum(&mut f);
            f
        })
        .collect()
}

/// Splits the part of a raw IPv6 packet after `unfragmentable` bytes of extension headers.
fn fragment_v6(packet: &[u8], unfragmentable: usize, cuts: &[usize]) -> Vec<Vec<u8>> {
    let split = 40 + unfragmentable;
    // The next header of what the fragment header replaces.
    let next = if unfragmentable == 0 {
        packet[6]
    } else {
        packet[40 + unfragmentable - 8]
    };
    let data = &packet[split..];
    let bounds: Vec<usize> = [0]
        .into_iter()
        .chain(cuts.iter().copied())
        .chain([data.len()])
        .collect();
    bounds
        .windows(2)
        .map(|w| {
            let mut head = packet[..split].to_vec();
            if unfragmentable == 0 {
                head[6] = 44;
            } else {
                head[40 + unfragmentable - 8] = 44;
            }
            let more = u16::from(w[1] < data.len());
            let field = (w[0] as u16) | more;
            let fh = [
                &[next, 0][..],
                &field.to_be_bytes(),
                &0xcafe_f00du32.to_be_bytes(),
            ]
            .concat();
            let mut f = [&head[..], &fh, &data[w[0]..w[1]]].concat();
            let payload_len = (f.len() - 40) as u16;
            f[4..6].copy_from_slice(&payload_len.to_be_bytes());
            f
        })
        .collect()
}

/// Feeds frames to one decoder at the given capture times (seconds).
fn feed(dec: &mut Decoder, frames: &[(i64, &[u8])]) -> Vec<Decoded> {
    frames
        .iter()
        .map(|&(t, data)| {
            dec.decode(&Frame {
                ts: Timestamp::from_secs(t),
                ..frame(LinkType::RAW, data)
            })
        })
        .collect()
}

#[track_caller]
fn held(d: &Decoded) {
    assert!(
        matches!(d, Decoded::Skipped(Skip::FragmentHeld)),
        "expected held, got {d:?}"
    );
}

#[test]
fn ipv4_fragments_in_order() {
    let whole = v4(&[0x5a; 60]);
    let frags = fragment_v4(&whole, &[8, 40]);
    let mut dec = Decoder::new();
    let out = feed(&mut dec, &[(0, &frags[0]), (0, &frags[1]), (1, &frags[2])]);
    held(&out[0]);
    held(&out[1]);
    let s = seg(out[2].clone());
    assert_eq!((s.fragments, s.l4_len, s.payload_len()), (3, 80, 60));
    assert_eq!(
        (s.checksum, s.truncated, s.tuple, s.seq),
        (ChecksumStatus::Good, false, tuple4(), 1000)
    );
    assert_eq!(dec.defrag.pending(), 0);
}

#[test]
fn ipv4_fragments_out_of_order_and_duplicated() {
    let whole = v4(&[1u8; 100]);
    let f = fragment_v4(&whole, &[16, 48, 80]);
    let mut dec = Decoder::new();
    let out = feed(
        &mut dec,
        &[(0, &f[3]), (0, &f[1]), (0, &f[1]), (0, &f[2]), (0, &f[0])],
    );
    out[..4].iter().for_each(held);
    let s = seg(out[4].clone());
    assert_eq!(
        (s.fragments, s.l4_len, s.checksum),
        (4, 120, ChecksumStatus::Good)
    );
}

/// The fragment at payload offset 16 with 16 bytes, cut from `whole`.
fn straddling(whole: &[u8]) -> Vec<u8> {
    let mut f = fragment_v4(whole, &[16, 32])[1].clone();
    f[6..8].copy_from_slice(&(2u16 | 0x2000).to_be_bytes());
    set_ipv4_checksum(&mut f);
    f
}

#[test]
fn ipv4_overlapping_fragments_drop_the_datagram() {
    let whole = v4(&[9u8; 64]);
    let f = fragment_v4(&whole, &[24, 48]);
    let overlap = Decoded::Skipped(Skip::Malformed("overlapping IP fragments"));
    // [16,32) runs past the tail fragment [0,24).
    let mut dec = Decoder::new();
    let out = feed(
        &mut dec,
        &[(0, &f[0]), (0, &straddling(&whole)), (0, &f[1]), (0, &f[2])],
    );
    held(&out[0]);
    assert_eq!(out[1], overlap);
    // The rest starts a new datagram that never completes.
    held(&out[2]);
    held(&out[3]);
    assert_eq!(dec.defrag.pending(), 1);

    // Out of order, [24,48) then [0,24) form two runs, and [16,32) straddles them: unlike the
    // in-order case below, the kernel sees an overlap.
    let out = feed(
        &mut Decoder::new(),
        &[(0, &f[1]), (0, &f[0]), (0, &straddling(&whole))],
    );
    assert_eq!(out[2], overlap);
}

#[test]
fn ipv4_fragment_contained_in_an_in_order_run_is_a_duplicate() {
    // [0,24) and [24,48) arrive in order and form one run; [16,32) lies inside it.
    let whole = v4(&[3u8; 64]);
    let f = fragment_v4(&whole, &[24, 48]);
    let mut dec = Decoder::new();
    let out = feed(
        &mut dec,
        &[(0, &f[0]), (0, &f[1]), (0, &straddling(&whole)), (0, &f[2])],
    );
    out[..3].iter().for_each(held);
    assert_eq!(seg(out[3].clone()).fragments, 3);
}

#[test]
fn ipv4_missing_last_fragment_and_timeout() {
    let whole = v4(&[4u8; 40]);
    let f = fragment_v4(&whole, &[16]);
    let mut dec = Decoder::new();
    held(&feed(&mut dec, &[(0, &f[0])])[0]);
    assert_eq!(dec.defrag.pending(), 1);
    // 30 s later the kernel's timer has fired: the last fragment starts a new datagram.
    held(&feed(&mut dec, &[(30, &f[1])])[0]);
    assert_eq!(dec.defrag.pending(), 1);
    // Within the timeout it completes.
    let mut dec = Decoder::new();
    let out = feed(&mut dec, &[(0, &f[0]), (29, &f[1])]);
    assert_eq!(seg(out[1].clone()).fragments, 2);
}

#[test]
fn ipv4_inconsistent_and_oversized_fragments() {
    let whole = v4(&[5u8; 40]);
    let f = fragment_v4(&whole, &[16]);
    // Two different "last" fragments.
    let mut short_last = f[1].clone();
    short_last.truncate(short_last.len() - 8);
    let total = short_last.len() as u16;
    short_last[2..4].copy_from_slice(&total.to_be_bytes());
    set_ipv4_checksum(&mut short_last);
    let mut dec = Decoder::new();
    let out = feed(&mut dec, &[(0, &f[1]), (0, &short_last)]);
    held(&out[0]);
    assert!(
        matches!(out[1], Decoded::Skipped(Skip::Malformed(_))),
        "{:?}",
        out[1]
    );
    assert_eq!(dec.defrag.pending(), 0);

    // A last fragment at offset 65528 with 40 bytes: the datagram would exceed 65535 bytes.
    let mut far = f[1].clone();
    far[6..8].copy_from_slice(&(65528u16 / 8).to_be_bytes());
    set_ipv4_checksum(&mut far);
    let out = feed(&mut dec, &[(0, &far)]);
    assert_eq!(
        out[0].clone(),
        Decoded::Skipped(Skip::Malformed(
            "IP fragments add up to more than 65535 bytes"
        ))
    );
}

#[test]
fn ipv4_tiny_and_unaligned_fragments() {
    // A first fragment carrying only 8 bytes of TCP: fine once reassembled.
    let whole = v4(b"0123456789");
    let f = fragment_v4(&whole, &[8]);
    let out = feed(&mut Decoder::new(), &[(0, &f[0]), (0, &f[1])]);
    let s = seg(out[1].clone());
    assert_eq!(
        (s.fragments, s.l4_len, s.checksum),
        (2, 30, ChecksumStatus::Good)
    );
    // A non-final fragment whose length is not a multiple of 8 is trimmed: [0,13) keeps 8 bytes
    // and the datagram completes with a fragment from 8.
    let mut odd = fragment_v4(&whole, &[13])[0].clone();
    odd[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
    set_ipv4_checksum(&mut odd);
    let out = feed(&mut Decoder::new(), &[(0, &odd), (0, &f[1])]);
    assert_eq!(seg(out[1].clone()).checksum, ChecksumStatus::Good);
}

#[test]
fn ipv4_fragments_cut_by_the_snaplen_still_complete() {
    let whole = v4(&[6u8; 200]);
    let f = fragment_v4(&whole, &[64, 144]);
    let mut dec = Decoder::new();
    let cut = Frame {
        orig_len: f[1].len() as u32,
        ..frame(LinkType::RAW, &f[1][..50])
    };
    held(&dec.decode(&cut));
    held(&dec.decode(&frame(LinkType::RAW, &f[0])));
    let s = seg(dec.decode(&frame(LinkType::RAW, &f[2])));
    assert_eq!((s.fragments, s.l4_len, s.truncated), (3, 220, true));
    assert_eq!(
        (s.checksum, s.tuple),
        (ChecksumStatus::Unverifiable, tuple4())
    );
    // The first fragment itself cut inside the TCP header: no header to read.
    let mut dec = Decoder::new();
    let cut_first = Frame {
        orig_len: f[0].len() as u32,
        ..frame(LinkType::RAW, &f[0][..30])
    };
    held(&dec.decode(&cut_first));
    held(&dec.decode(&frame(LinkType::RAW, &f[1])));
    assert_eq!(
        skip(dec.decode(&frame(LinkType::RAW, &f[2]))),
        Skip::Truncated("TCP header")
    );
}

#[test]
fn non_tcp_fragments_are_not_held() {
    let mut udp = fragment_v4(&v4(&[0u8; 40]), &[16]);
    for f in &mut udp {
        f[9] = 17;
        set_ipv4_checksum(f);
    }
    let mut dec = Decoder::new();
    assert_eq!(
        skip(dec.decode(&frame(LinkType::RAW, &udp[1]))),
        Skip::NotTcp { protocol: 17 }
    );
    assert_eq!(dec.defrag.pending(), 0);
}

#[test]
fn ipv6_fragments() {
    let whole = v6(&[8u8; 100]);
    let f = fragment_v6(&whole, 0, &[32, 64]);
    let mut dec = Decoder::new();
    let out = feed(&mut dec, &[(0, &f[2]), (10, &f[0]), (59, &f[1])]);
    held(&out[0]);
    held(&out[1]);
    let s = seg(out[2].clone());
    assert_eq!((s.fragments, s.l4_len, s.payload_len()), (3, 120, 100));
    assert_eq!((s.checksum, s.tuple), (ChecksumStatus::Good, tuple6()));

    // The IPv6 timeout is 60 s.
    let out = feed(&mut dec, &[(100, &f[0]), (160, &f[1]), (160, &f[2])]);
    out.iter().for_each(held);
}

#[test]
fn ipv6_fragments_with_extension_headers_on_both_sides() {
    // Hop-by-hop before the fragment header (unfragmentable), destination options after it.
    let ip = v6_chain(&[ext(0, 0, 8), ext(60, 1, 16)], 6, &tcp6(&[1u8; 50]));
    let f = fragment_v6(&ip, 8, &[40]);
    let out = feed(&mut Decoder::new(), &[(0, &f[1]), (0, &f[0])]);
    held(&out[0]);
    let s = seg(out[1].clone());
    assert_eq!(
        (s.fragments, s.l4_len, s.payload_len(), s.checksum),
        (2, 70, 50, ChecksumStatus::Good)
    );
}

#[test]
fn ipv6_first_fragment_must_hold_the_tcp_header() {
    let whole = v6(&[8u8; 40]);
    let f = fragment_v6(&whole, 0, &[16]);
    let out = feed(&mut Decoder::new(), &[(0, &f[0])]);
    assert!(
        matches!(out[0], Decoded::TcpUnreadable { tuple: Some(t), .. } if t == tuple6()),
        "{:?}",
        out[0]
    );
}

#[test]
fn ipv6_atomic_fragment_and_unaligned_fragment() {
    let whole = v6(b"atomic");
    let atomic = fragment_v6(&whole, 0, &[]);
    let s = seg(decode(LinkType::RAW, &atomic[0]));
    assert_eq!(
        (s.fragments, s.l4_len, s.checksum),
        (1, 26, ChecksumStatus::Good)
    );

    let whole = v6(&[0u8; 40]);
    let f = fragment_v6(&whole, 0, &[28]);
    let out = feed(&mut Decoder::new(), &[(0, &f[0])]);
    assert_eq!(
        out[0].clone(),
        Decoded::Skipped(Skip::Malformed("IPv6 fragment length not a multiple of 8"))
    );
}

#[test]
fn defragmentation_state_is_bounded() {
    let whole = v4(&[0u8; 40]);
    let first = fragment_v4(&whole, &[16])[0].clone();
    let mut dec = Decoder::new();
    for id in 0..(defrag::MAX_DATAGRAMS as u16 + 500) {
        let mut f = first.clone();
        f[4..6].copy_from_slice(&id.to_be_bytes());
        set_ipv4_checksum(&mut f);
        held(&dec.decode(&frame(LinkType::RAW, &f)));
    }
    assert_eq!(dec.defrag.pending(), defrag::MAX_DATAGRAMS);
    // The oldest went first: id 0 is gone, the newest is still there.
    let mut last = fragment_v4(&whole, &[16])[1].clone();
    last[4..6].copy_from_slice(&0u16.to_be_bytes());
    set_ipv4_checksum(&mut last);
    held(&dec.decode(&frame(LinkType::RAW, &last)));
    last[4..6].copy_from_slice(&(defrag::MAX_DATAGRAMS as u16 + 499).to_be_bytes());
    set_ipv4_checksum(&mut last);
    assert_eq!(seg(dec.decode(&frame(LinkType::RAW, &last))).fragments, 2);
}

// ---- robustness -----------------------------------------------------------------------------

const LINK_TYPES: [LinkType; 11] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_OLD_12,
    LinkType::RAW_OLD_14,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
    LinkType(147),
];

/// Valid frames of many kinds, to mutate.
fn corpus() -> Vec<(LinkType, Vec<u8>)> {
    let syn = write(
        PacketBuilder::ipv4(SRC4, DST4, 64)
            .tcp(1, 2, 3, 4)
            .syn()
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap(),
        b"",
    );
    let chain = v6_chain(
        &[ext(0, 0, 8), ext(43, 0, 8), ext(51, 1, 12)],
        6,
        &tcp6(b"abc"),
    );
    let mut out = vec![
        (LinkType::RAW, syn.clone()),
        (LinkType::RAW, chain.clone()),
        (
            LinkType::ETHERNET,
            ether(0x8100, &[&[0, 1, 0x86, 0xdd][..], &v6(b"x")].concat()),
        ),
        (
            LinkType::LINUX_SLL2,
            [&[0x08, 0, 0, 0, 0, 0, 0, 1, 0, 1, 4, 6][..], &[0; 8], &syn].concat(),
        ),
        (
            LinkType::NULL,
            [&[2, 0, 0, 0][..], &with_ip_options(&syn, &[1, 1, 1, 0])].concat(),
        ),
    ];
    for f in fragment_v4(&v4(&[7u8; 64]), &[8, 40]) {
        out.push((LinkType::RAW, f));
    }
    for f in fragment_v6(&chain, 24, &[8, 16]) {
        out.push((LinkType::IPV6, f));
    }
    out
}


#[test]
fn mutated_frames_never_panic_with_shared_state() {
    let corpus = corpus();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut dec = Decoder::new();
    // Segments, reassembled segments, unreadable TCP, held fragments, other skips.
    let mut seen = [0u32; 5];
    for i in 0..100_000u32 {
        let (lt, base) = &corpus[rng.index(corpus.len())];
        let mut data = base.clone();
        for _ in 0..=rng.index(4) {
            let at = rng.index(data.len());
            data[at] = rng.next_u64() as u8;
        }
        // Most IPv4 mutations die at the header checksum; let some of them past it.
        if rng.index(3) == 0 && *lt == LinkType::RAW && data[0] >> 4 == 4 {
            let ihl = usize::from(data[0] & 0x0f) * 4;
            if ihl >= 20 && data.len() >= ihl {
                set_ipv4_checksum(&mut data);
            }
        }
        let cut = if rng.index(4) == 0 {
            rng.index(data.len() + 1)
        } else {
            data.len()
        };
        let orig_len = (data.len() as u32).saturating_add(if rng.index(8) == 0 {
            rng.next_u64() as u32 % 70000
        } else {
            0
        });
        let f = Frame {
            ts: Timestamp(
                i64::from(i) * 1_000_000
                    - if rng.index(50) == 0 {
                        40_000_000_000
                    } else {
                        0
                    },
            ),
            orig_len,
            ..frame(*lt, &data[..cut])
        };
        seen[match dec.decode(&f) {
            Decoded::Tcp(s) if s.fragments > 1 => 1,
            Decoded::Tcp(_) => 0,
            Decoded::TcpUnreadable { .. } => 2,
            Decoded::Skipped(Skip::FragmentHeld) => 3,
            Decoded::Skipped(_) => 4,
        }] += 1;
    }
    assert!(
        seen.iter().all(|&n| n > 100),
        "the mutations should reach every outcome: {seen:?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        lt in 0usize..LINK_TYPES.len(),
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        extra in 0u32..100_000,
        dir in 0u8..3,
    ) {
        let f = Frame {
            orig_len: data.len() as u32 + extra,
            direction: [None, Some(LinkDirection::Inbound), Some(LinkDirection::Outbound)][usize::from(dir)],
            ..frame(LINK_TYPES[lt], &data)
        };
        let _ = Decoder::new().decode(&f);
    }

    #[test]
    fn raw_ip_with_plausible_headers_never_panics(
        v6 in proptest::prelude::any::<bool>(),
        header in proptest::collection::vec(proptest::prelude::any::<u8>(), 40..41),
        rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        len in 0u16..200,
    ) {
        let mut data = [header, rest].concat();
        if v6 {
            data[0] = 0x60;
            data[4..6].copy_from_slice(&len.to_be_bytes());
        } else {
            data[0] = 0x45;
            data[2..4].copy_from_slice(&len.to_be_bytes());
            set_ipv4_checksum(&mut data);
        }
        let _ = decode(LinkType::RAW, &data);
    }
}

// ---- throughput (by hand) -------------------------------------------------------------------

/// Decodes one 66-byte Ethernet/IPv4/TCP frame over and over (both checksums verified).
/// Optimised without a full release build (dependencies are already at opt-level 2):
///
/// ```text
/// CARGO_PROFILE_TEST_OPT_LEVEL=3 CARGO_PROFILE_TEST_DEBUG_ASSERTIONS=false \
/// CARGO_PROFILE_TEST_OVERFLOW_CHECKS=false CARGO_INCREMENTAL=0 \
/// cargo test --config 'profile.test.package.ctreplay.codegen-units=1' \
///     --lib decode::tests::throughput -- --ignored --nocapture
/// ```
///
/// Measured ~28 ns per frame (~35 Mpkt/s) on one core of the 2-core build machine.
#[test]
#[ignore = "measurement, run by hand with optimisations"]
fn throughput() {
    let frame_data = ether(0x0800, &v4(&[0u8; 12]));
    let f = frame(LinkType::ETHERNET, &frame_data);
    let mut dec = Decoder::new();
    let n = 20_000_000u32;
    let start = std::time::Instant::now();
    let mut good = 0u32;
    for _ in 0..n {
        if let Decoded::Tcp(s) = dec.decode(std::hint::black_box(&f)) {
            good += u32::from(s.checksum == ChecksumStatus::Good);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(good, n);
    println!(
        "{} Mpkt/s ({:.1} ns per 66-byte frame)",
        f64::from(n) / secs / 1e6,
        secs * 1e9 / f64::from(n)
    );
}
