//! Link layers: where the IP header starts, which IP version the link announces, and what the
//! link says about the frame's direction.

use super::{Skip, be16};
use crate::capture::{LinkDirection, LinkType};

/// The network protocol the link layer announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Net {
    Ipv4,
    Ipv6,
    /// Raw IP without a type field: the version nibble decides.
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub net: Net,
    /// Offset of the IP header in the frame (never beyond the captured bytes).
    pub offset: usize,
    pub direction: Option<LinkDirection>,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

pub(super) fn parse(linktype: LinkType, data: &[u8]) -> Result<Link, Skip> {
    let raw = |net| {
        Ok(Link {
            net,
            offset: 0,
            direction: None,
        })
    };
    match linktype {
        LinkType::ETHERNET => {
            let ethertype = be16(data, 12).ok_or(Skip::Truncated("Ethernet header"))?;
            ether_payload(ethertype, data, 14, None)
        }
        LinkType::LINUX_SLL => {
            // struct sll_header: pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
            let (Some(pkttype), Some(protocol)) = (be16(data, 0), be16(data, 14)) else {
                return Err(Skip::Truncated("Linux cooked (SLL) header"));
            };
            ether_payload(protocol, data, 16, direction(pkttype))
        }
        LinkType::LINUX_SLL2 => {
            // struct sll2_header: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
            let (Some(protocol), Some(&pkttype)) = (be16(data, 0), data.get(10)) else {
                return Err(Skip::Truncated("Linux cooked (SLL2) header"));
            };
            if data.len() < 20 {
                return Err(Skip::Truncated("Linux cooked (SLL2) header"));
            }
            ether_payload(protocol, data, 20, direction(pkttype.into()))
        }
        LinkType::RAW | LinkType::RAW_OLD_12 | LinkType::RAW_OLD_14 => raw(Net::Either),
        LinkType::IPV4 => raw(Net::Ipv4),
        LinkType::IPV6 => raw(Net::Ipv6),
        LinkType::NULL => {
            // The writer's host byte order, which the frame does not tell us. Address families
            // are small, so a value with high bits set was written the other way round.
            let af = le32(data).ok_or(Skip::Truncated("BSD loopback header"))?;
            address_family(if af > 0xffff { af.swap_bytes() } else { af })
        }
        LinkType::LOOP => {
            let af = le32(data).ok_or(Skip::Truncated("OpenBSD loopback header"))?;
            address_family(af.swap_bytes())
        }
        other => Err(Skip::UnsupportedLinkType(other)),
    }
}

/// Linux `PACKET_*` types. Broadcast and multicast frames were received too, so they traverse
/// PRE_ROUTING like `PACKET_HOST`; `PACKET_OTHERHOST` (promiscuous capture) tells us nothing.
fn direction(pkttype: u16) -> Option<LinkDirection> {
    match pkttype {
        0..=2 => Some(LinkDirection::Inbound),
        4 => Some(LinkDirection::Outbound),
        _ => None,
    }
}

fn le32(data: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(*data.first_chunk::<4>()?))
}

fn address_family(af: u32) -> Result<Link, Skip> {
    let net = match af {
        2 => Net::Ipv4,
        // AF_INET6 differs per OS: Linux 10, OpenBSD/NetBSD 24, FreeBSD 28, macOS 30.
        10 | 24 | 28 | 30 => Net::Ipv6,
        _ => {
            return Err(Skip::NotIp {
                ethertype: af as u16,
            });
        }
    };
    Ok(Link {
        net,
        offset: 4,
        direction: None,
    })
}

/// Follows an ethertype through any stack of VLAN tags and a PPPoE session header.
fn ether_payload(
    mut ethertype: u16,
    data: &[u8],
    mut offset: usize,
    direction: Option<LinkDirection>,
) -> Result<Link, Skip> {
    // Every tag consumes 4 captured bytes, so the loop ends within data.len() / 4 rounds.
    loop {
        let net = match ethertype {
            ETHERTYPE_IPV4 => Net::Ipv4,
            ETHERTYPE_IPV6 => Net::Ipv6,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                ethertype = be16(data, offset + 2).ok_or(Skip::Truncated("VLAN tag"))?;
                offset += 4;
                continue;
            }
            ETHERTYPE_PPPOE_SESSION => {
                // ver/type(1) code(1) session(2) length(2), then the PPP protocol (2).
                let protocol = be16(data, offset + 6).ok_or(Skip::Truncated("PPPoE header"))?;
                offset += 8;
                match protocol {
                    PPP_IPV4 => Net::Ipv4,
                    PPP_IPV6 => Net::Ipv6,
                    _ => return Err(Skip::NotIp { ethertype }),
                }
            }
            _ => return Err(Skip::NotIp { ethertype }),
        };
        return Ok(Link {
            net,
            offset,
            direction,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(linktype: LinkType, data: &[u8]) -> Result<Link, Skip> {
        parse(linktype, data)
    }

    fn ok(net: Net, offset: usize, direction: Option<LinkDirection>) -> Result<Link, Skip> {
        Ok(Link {
            net,
            offset,
            direction,
        })
    }

    fn ethernet(ethertype_and_rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(ethertype_and_rest);
        f
    }

    #[test]
    fn ethernet_plain_and_not_ip() {
        assert_eq!(
            link(LinkType::ETHERNET, &ethernet(&[0x08, 0x00, 0x45])),
            ok(Net::Ipv4, 14, None)
        );
        assert_eq!(
            link(LinkType::ETHERNET, &ethernet(&[0x86, 0xdd])),
            ok(Net::Ipv6, 14, None)
        );
        assert_eq!(
            link(LinkType::ETHERNET, &ethernet(&[0x08, 0x06])),
            Err(Skip::NotIp { ethertype: 0x0806 })
        );
        assert_eq!(
            link(LinkType::ETHERNET, &[0; 13]),
            Err(Skip::Truncated("Ethernet header"))
        );
    }

    #[test]
    fn vlan_tags_of_every_kind_and_depth() {
        let f = ethernet(&[
            0x88, 0xa8, 0, 1, 0x91, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x86, 0xdd,
        ]);
        assert_eq!(link(LinkType::ETHERNET, &f), ok(Net::Ipv6, 26, None));

        let mut deep = ethernet(&[]);
        for _ in 0..100 {
            deep.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        deep.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(
            link(LinkType::ETHERNET, &deep),
            ok(Net::Ipv4, 14 + 400, None)
        );

        // A stack that only ends with the capture.
        deep.truncate(14 + 4 * 60 + 1);
        assert_eq!(
            link(LinkType::ETHERNET, &deep),
            Err(Skip::Truncated("VLAN tag"))
        );
    }

    #[test]
    fn pppoe_session() {
        let pppoe = |proto: [u8; 2]| {
            ethernet(&[0x88, 0x64, 0x11, 0, 0x12, 0x34, 0, 40, proto[0], proto[1]])
        };
        assert_eq!(
            link(LinkType::ETHERNET, &pppoe([0x00, 0x21])),
            ok(Net::Ipv4, 22, None)
        );
        assert_eq!(
            link(LinkType::ETHERNET, &pppoe([0x00, 0x57])),
            ok(Net::Ipv6, 22, None)
        );
        // LCP
        assert_eq!(
            link(LinkType::ETHERNET, &pppoe([0xc0, 0x21])),
            Err(Skip::NotIp { ethertype: 0x8864 })
        );
        assert_eq!(
            link(LinkType::ETHERNET, &pppoe([0x00, 0x21])[..21]),
            Err(Skip::Truncated("PPPoE header"))
        );
        // VLAN-tagged PPPoE, as on many DSL uplinks.
        let tagged = ethernet(&[
            0x81, 0x00, 0, 7, 0x88, 0x64, 0x11, 0, 0, 1, 0, 40, 0x00, 0x21,
        ]);
        assert_eq!(link(LinkType::ETHERNET, &tagged), ok(Net::Ipv4, 26, None));
    }

    #[test]
    fn sll_and_sll2_packet_types() {
        let sll = |pkttype: u8, proto: [u8; 2]| {
            let mut h = vec![0, pkttype, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
            h.extend_from_slice(&proto);
            h
        };
        let out = Some(LinkDirection::Outbound);
        let inb = Some(LinkDirection::Inbound);
        assert_eq!(
            link(LinkType::LINUX_SLL, &sll(0, [0x08, 0])),
            ok(Net::Ipv4, 16, inb)
        );
        assert_eq!(
            link(LinkType::LINUX_SLL, &sll(4, [0x86, 0xdd])),
            ok(Net::Ipv6, 16, out)
        );
        assert_eq!(
            link(LinkType::LINUX_SLL, &sll(3, [0x08, 0])),
            ok(Net::Ipv4, 16, None)
        );
        assert_eq!(
            link(LinkType::LINUX_SLL, &sll(0, [0x08, 0])[..15]),
            Err(Skip::Truncated("Linux cooked (SLL) header"))
        );

        let sll2 = |pkttype: u8, proto: [u8; 2]| {
            let mut h = vec![proto[0], proto[1], 0, 0, 0, 0, 0, 2, 0, 1, pkttype, 6];
            h.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
            h
        };
        assert_eq!(
            link(LinkType::LINUX_SLL2, &sll2(4, [0x08, 0])),
            ok(Net::Ipv4, 20, out)
        );
        assert_eq!(
            link(LinkType::LINUX_SLL2, &sll2(0, [0x86, 0xdd])),
            ok(Net::Ipv6, 20, inb)
        );
        assert_eq!(
            link(LinkType::LINUX_SLL2, &sll2(0, [0x08, 0x06])),
            Err(Skip::NotIp { ethertype: 0x0806 })
        );
        assert_eq!(
            link(LinkType::LINUX_SLL2, &sll2(0, [0x08, 0])[..19]),
            Err(Skip::Truncated("Linux cooked (SLL2) header"))
        );
        // A tag the kernel left in the payload.
        let mut tagged = sll2(0, [0x81, 0x00]);
        tagged.extend_from_slice(&[0, 5, 0x08, 0x00]);
        assert_eq!(link(LinkType::LINUX_SLL2, &tagged), ok(Net::Ipv4, 24, inb));
    }

    #[test]
    fn raw_ip_link_types() {
        for lt in [LinkType::RAW, LinkType::RAW_OLD_12, LinkType::RAW_OLD_14] {
            assert_eq!(link(lt, &[]), ok(Net::Either, 0, None));
        }
        assert_eq!(link(LinkType::IPV4, &[]), ok(Net::Ipv4, 0, None));
        assert_eq!(link(LinkType::IPV6, &[]), ok(Net::Ipv6, 0, None));
        assert_eq!(
            link(LinkType(147), &[]),
            Err(Skip::UnsupportedLinkType(LinkType(147)))
        );
    }

    #[test]
    fn null_in_both_byte_orders_and_loop_in_network_order() {
        assert_eq!(link(LinkType::NULL, &[2, 0, 0, 0]), ok(Net::Ipv4, 4, None));
        assert_eq!(link(LinkType::NULL, &[0, 0, 0, 2]), ok(Net::Ipv4, 4, None));
        for af in [10u8, 24, 28, 30] {
            assert_eq!(link(LinkType::NULL, &[af, 0, 0, 0]), ok(Net::Ipv6, 4, None));
            assert_eq!(link(LinkType::NULL, &[0, 0, 0, af]), ok(Net::Ipv6, 4, None));
            assert_eq!(link(LinkType::LOOP, &[0, 0, 0, af]), ok(Net::Ipv6, 4, None));
        }
        assert_eq!(link(LinkType::LOOP, &[0, 0, 0, 2]), ok(Net::Ipv4, 4, None));
        assert_eq!(
            link(LinkType::NULL, &[7, 0, 0, 0]),
            Err(Skip::NotIp { ethertype: 7 })
        );
        assert_eq!(
            link(LinkType::NULL, &[2, 0, 0]),
            Err(Skip::Truncated("BSD loopback header"))
        );
    }
}
