//! One TCP segment described field by field, and its encoding into an IP datagram, IP fragments
//! and link-layer frames.
//!
//! Built by hand rather than with etherparse's `PacketBuilder`: fixtures need headers that lie
//! (a data offset that disagrees with the bytes present, a wrong checksum on purpose), and the
//! benchmark generator must not allocate per packet.

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::capture::{LinkDirection, LinkType};
use crate::decode::TcpFlags;

/// One TCP option, as it is put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOption {
    Eol,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// SACK blocks (left edge, right edge), at most 4.
    Sack(Vec<(u32, u32)>),
    /// TSval, TSecr.
    Timestamp(u32, u32),
    /// A well-formed option of any kind: kind, length 2 + data, data.
    Other {
        kind: u8,
        data: Vec<u8>,
    },
    /// Bytes copied verbatim, for malformed option areas (a length byte of 1, a cut option …).
    Raw(Vec<u8>),
}

impl TcpOption {
    fn encode(&self, out: &mut Vec<u8>) {
        let kind_len_data = |out: &mut Vec<u8>, kind: u8, data: &[u8]| {
            out.extend_from_slice(&[kind, (2 + data.len()) as u8]);
            out.extend_from_slice(data);
        };
        match self {
            TcpOption::Eol => out.push(0),
            TcpOption::Nop => out.push(1),
            TcpOption::Mss(m) => kind_len_data(out, 2, &m.to_be_bytes()),
            TcpOption::WindowScale(s) => kind_len_data(out, 3, &[*s]),
            TcpOption::SackPermitted => kind_len_data(out, 4, &[]),
            TcpOption::Sack(blocks) => {
                let data: Vec<u8> = blocks
                    .iter()
                    .flat_map(|(l, r)| l.to_be_bytes().into_iter().chain(r.to_be_bytes()))
                    .collect();
                kind_len_data(out, 5, &data)
            }
            TcpOption::Timestamp(v, e) => {
                kind_len_data(out, 8, &[v.to_be_bytes(), e.to_be_bytes()].concat())
            }
            TcpOption::Other { kind, data } => kind_len_data(out, *kind, data),
            TcpOption::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// The encoded TCP option area (at most 40 bytes), kept inline so that packets of the bulk
/// generator need no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    bytes: [u8; 40],
    len: u8,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl std::fmt::Debug for TcpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpOptions({:02x?})", self.as_bytes())
    }
}

impl TcpOptions {
    /// Encodes `opts` in order. The area is later padded with zero bytes (EOL) to a multiple of
    /// four; write explicit `Nop`s to align like a real stack does.
    pub fn from_list(opts: &[TcpOption]) -> Result<TcpOptions, String> {
        let mut v = Vec::with_capacity(40);
        for o in opts {
            o.encode(&mut v);
        }
        TcpOptions::from_bytes(&v)
    }

    /// Takes already-encoded option bytes (no allocation; the bulk generator's path).
    pub fn from_bytes(bytes: &[u8]) -> Result<TcpOptions, String> {
        if bytes.len() > 40 {
            return Err(format!(
                "TCP options take {} bytes; at most 40 fit in the header",
                bytes.len()
            ));
        }
        let mut t = TcpOptions {
            len: bytes.len() as u8,
            ..Default::default()
        };
        t.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(t)
    }

    /// The option bytes as given, without padding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Bytes the options occupy in the header, padding included.
    pub fn padded_len(&self) -> usize {
        (self.len as usize).div_ceil(4) * 4
    }
}

/// The segment's data. Zero-filled payloads cost nothing to checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Zeros(u32),
    Bytes(Vec<u8>),
}

impl Payload {
    pub fn len(&self) -> u32 {
        match self {
            Payload::Zeros(n) => *n,
            Payload::Bytes(b) => b.len() as u32,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A checksum field: computed, deliberately wrong, or a fixed value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    #[default]
    Correct,
    /// The correct value with its lowest bit flipped. (Adding 1 would not do: 0xffff + 1 = 0x0000
    /// is the same number in ones' complement, so the checksum would still verify.)
    Bad,
    Value(u16),
}

impl Checksum {
    fn apply(self, correct: u16) -> u16 {
        match self {
            Checksum::Correct => correct,
            Checksum::Bad => correct ^ 1,
            Checksum::Value(v) => v,
        }
    }
}

/// Split the IP datagram into `count` fragments; `drop` (1-based) leaves one out of the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragmentation {
    pub count: u16,
    pub drop: Option<u16>,
}

/// One TCP segment with everything a fixture may want to get wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpPacket {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    /// The raw (unscaled) window field.
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: Payload,
    pub checksum: Checksum,
    /// Data offset field (in 32-bit words) when it should disagree with the bytes present.
    pub doff: Option<u8>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification (or IPv6 fragment id); by default the writer numbers packets.
    pub ip_id: Option<u16>,
    /// IPv4 header checksum (IPv6 has none).
    pub ip_checksum: Checksum,
    pub fragments: Option<Fragmentation>,
    /// Capture only the first `snap` bytes of each frame (a per-packet snaplen).
    pub snap: Option<u32>,
    /// Direction recorded by the link layer (pcapng `epb_flags`, SLL packet type).
    pub direction: Option<LinkDirection>,
}

impl TcpPacket {
    /// A segment with no options or data, window 64240, TTL 64 and correct checksums.
    pub fn new(src: SocketAddr, dst: SocketAddr, flags: u8, seq: u32, ack: u32) -> TcpPacket {
        TcpPacket {
            src,
            dst,
            flags: TcpFlags(flags),
            seq,
            ack,
            window: 64240,
            urgent: 0,
            options: TcpOptions::default(),
            payload: Payload::Zeros(0),
            checksum: Checksum::Correct,
            doff: None,
            ttl: 64,
            ip_id: None,
            ip_checksum: Checksum::Correct,
            fragments: None,
            snap: None,
            direction: None,
        }
    }

    /// Sequence space the segment occupies: data, plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() + self.flags.syn() as u32 + self.flags.fin() as u32
    }

    fn tcp_len(&self) -> usize {
        20 + self.options.padded_len() + self.payload.len() as usize
    }

    fn ip_header_len(&self) -> usize {
        if self.src.is_ipv4() { 20 } else { 40 }
    }

    /// Everything that would make the packet unencodable, as a sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(format!(
                "{} and {} are not of the same IP version",
                self.src, self.dst
            ));
        }
        let ip_payload = self.tcp_len();
        // IPv4 counts its header in the total length, IPv6 does not
        let limited = if self.src.is_ipv4() {
            20 + ip_payload
        } else {
            ip_payload
        };
        if limited > 65535 {
            return Err(format!(
                "segment of {ip_payload} bytes does not fit one IP datagram"
            ));
        }
        if let Some(d) = self.doff.filter(|&d| d > 15) {
            return Err(format!("doff={d} does not fit the 4-bit field"));
        }
        if self.src.is_ipv6() && self.ip_checksum != Checksum::Correct {
            return Err("IPv6 has no header checksum".into());
        }
        if let Some(f) = self.fragments {
            if f.count < 2 {
                return Err(format!(
                    "frag={} makes no fragments (need at least 2)",
                    f.count
                ));
            }
            if let Some(d) = f.drop.filter(|&d| d == 0 || d > f.count) {
                return Err(format!(
                    "fragdrop={d} is not one of fragments 1..{}",
                    f.count
                ));
            }
            if fragment_size(ip_payload, f.count).is_none() {
                return Err(format!(
                    "{ip_payload} bytes of IP payload cannot be split into {} fragments of 8-byte multiples",
                    f.count
                ));
            }
        }
        Ok(())
    }

    /// Appends the IP datagram (IPv4 or IPv6 header, then the segment) to `out`.
    pub fn write_datagram(&self, ip_id: u16, out: &mut Vec<u8>) {
        let ip_start = out.len();
        let tcp_len = self.tcp_len();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = (20 + tcp_len) as u16;
                out.extend_from_slice(&[0x45, 0]);
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&ip_id.to_be_bytes());
                out.extend_from_slice(&[0x40, 0, self.ttl, 6, 0, 0]); // DF, as Linux sends TCP
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                set_ipv4_checksum(&mut out[ip_start..ip_start + 20], self.ip_checksum);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                out.extend_from_slice(&[0x60, 0, 0, 0]);
                out.extend_from_slice(&(tcp_len as u16).to_be_bytes());
                out.extend_from_slice(&[6, self.ttl]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed IP versions; call validate() first"),
        }
        let tcp_start = out.len();
        let doff = self
            .doff
            .unwrap_or(((20 + self.options.padded_len()) / 4) as u8);
        out.extend_from_slice(&self.src.port().to_be_bytes());
        out.extend_from_slice(&self.dst.port().to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ack.to_be_bytes());
        out.extend_from_slice(&[doff << 4, self.flags.0]);
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.urgent.to_be_bytes());
        out.extend_from_slice(self.options.as_bytes());
        out.resize(tcp_start + 20 + self.options.padded_len(), 0);
        let header_end = out.len();
        match &self.payload {
            Payload::Zeros(n) => out.resize(header_end + *n as usize, 0),
            Payload::Bytes(b) => out.extend_from_slice(b),
        }
        // Zero payload bytes add nothing to the sum, so only a real payload is summed.
        let mut sum = pseudo_header_sum(self.src.ip(), self.dst.ip(), tcp_len as u32);
        sum += ones_sum(&out[tcp_start..header_end]);
        if let Payload::Bytes(_) = self.payload {
            sum += ones_sum(&out[header_end..]);
        }
        let csum = self.checksum.apply(!fold(sum));
        out[tcp_start + 16..tcp_start + 18].copy_from_slice(&csum.to_be_bytes());
    }

    /// Calls `emit(frame, orig_len)` for each frame this packet becomes on `link`: one, or one per
    /// fragment not dropped. `scratch` is reused between calls so steady state needs no
    /// allocation.
    pub fn for_each_frame(
        &self,
        link: &Link,
        ip_id: u16,
        scratch: &mut Vec<u8>,
        mut emit: impl FnMut(&[u8], u32) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut emit_frame = |frame: &[u8]| {
            let cut = self
                .snap
                .map_or(frame.len(), |s| frame.len().min(s as usize));
            emit(&frame[..cut], frame.len() as u32)
        };
        scratch.clear();
        let Some(frag) = self.fragments else {
            link.write_header(scratch, self.src.ip(), self.dst.ip(), self.direction);
            self.write_datagram(ip_id, scratch);
            link.pad(scratch);
            return emit_frame(scratch);
        };
        self.write_datagram(ip_id, scratch);
        let mut frame = Vec::with_capacity(scratch.len() + 64);
        for (i, piece) in fragment(
            scratch,
            self.ip_header_len(),
            frag.count,
            ip_id,
            self.ip_checksum,
        )
        .into_iter()
        .enumerate()
        {
            if frag.drop == Some(i as u16 + 1) {
                continue;
            }
            frame.clear();
            link.write_header(&mut frame, self.src.ip(), self.dst.ip(), self.direction);
            frame.extend_from_slice(&piece);
            link.pad(&mut frame);
            emit_frame(&frame)?;
        }
        Ok(())
    }
}

/// Bytes per fragment (a multiple of 8) so that `count` fragments carry `len` bytes, each
/// non-empty; `None` if impossible.
fn fragment_size(len: usize, count: u16) -> Option<usize> {
    let size = len.div_ceil(count as usize).div_ceil(8) * 8;
    (size * (count as usize - 1) < len).then_some(size)
}

/// Splits an unfragmented datagram (`hlen` bytes of header) into IP fragments.
fn fragment(
    datagram: &[u8],
    hlen: usize,
    count: u16,
    ip_id: u16,
    ip_csum: Checksum,
) -> Vec<Vec<u8>> {
    let (hdr, payload) = datagram.split_at(hlen);
    let size = fragment_size(payload.len(), count).expect("validated");
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, piece)| {
            let offset = i * size;
            let more = offset + piece.len() < payload.len();
            let mut f = Vec::with_capacity(hlen + 8 + piece.len());
            f.extend_from_slice(hdr);
            if hlen == 20 {
                f[2..4].copy_from_slice(&((20 + piece.len()) as u16).to_be_bytes());
                let frag_field = (offset / 8) as u16 | if more { 0x2000 } else { 0 }; // no DF
                f[6..8].copy_from_slice(&frag_field.to_be_bytes());
                set_ipv4_checksum(&mut f[..20], ip_csum);
            } else {
                // IPv6: a fragment header (next header 44) between the base header and the data
                f[4..6].copy_from_slice(&((8 + piece.len()) as u16).to_be_bytes());
                let next = f[6];
                f[6] = 44;
                f.extend_from_slice(&[next, 0]);
                f.extend_from_slice(&((offset as u16) | more as u16).to_be_bytes());
                f.extend_from_slice(&(ip_id as u32).to_be_bytes());
            }
            f.extend_from_slice(piece);
            f
        })
        .collect()
}

fn set_ipv4_checksum(hdr: &mut [u8], csum: Checksum) {
    hdr[10..12].copy_from_slice(&[0, 0]);
    let c = csum.apply(!fold(ones_sum(hdr)));
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Ones' complement sum of big-endian 16-bit words (an odd last byte is padded with zero),
/// not yet folded.
fn ones_sum(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u64 = chunks
        .by_ref()
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u64)
        .sum();
    if let [last] = chunks.remainder() {
        sum += (*last as u64) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, tcp_len: u32) -> u64 {
    let addrs = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ones_sum(&s.octets()) + ones_sum(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => ones_sum(&s.octets()) + ones_sum(&d.octets()),
        _ => unreachable!("validated"),
    };
    addrs + ones_sum(&tcp_len.to_be_bytes()) + 6
}

/// The link layer a scenario's frames are wrapped in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Ethernet,
    /// Raw IP, `LINKTYPE_RAW` (101).
    Raw,
    /// `LINKTYPE_IPV4` (228): raw IPv4 only.
    Ipv4,
    /// `LINKTYPE_IPV6` (229): raw IPv6 only.
    Ipv6,
    Sll,
    Sll2,
    /// BSD loopback, address family in the writer's (here little-endian) byte order.
    Null,
    /// OpenBSD loopback, address family in network byte order.
    Loop,
}

/// A link type plus, for Ethernet, the VLAN tags every frame carries (outermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    pub vlans: Vec<u16>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            kind: LinkKind::Ethernet,
            vlans: Vec::new(),
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Address families in NULL/LOOP headers: IPv4 is 2 everywhere; IPv6 differs by OS. NULL uses
/// macOS's 30 (lo0 captures are the usual source), LOOP OpenBSD's 24 (where DLT_LOOP lives).
const AF_INET: u32 = 2;
const AF_INET6_NULL: u32 = 30;
const AF_INET6_LOOP: u32 = 24;

impl Link {
    pub fn new(kind: LinkKind) -> Link {
        Link {
            kind,
            vlans: Vec::new(),
        }
    }

    /// Parses the names of the scenario format: `ethernet`, `raw`, `ipv4`, `ipv6`, `sll`,
    /// `sll2`, `null`, `loop`.
    pub fn kind_from_name(name: &str) -> Option<LinkKind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "ethernet" | "eth" | "en10mb" => LinkKind::Ethernet,
            "raw" => LinkKind::Raw,
            "ipv4" => LinkKind::Ipv4,
            "ipv6" => LinkKind::Ipv6,
            "sll" | "linux_sll" => LinkKind::Sll,
            "sll2" | "linux_sll2" => LinkKind::Sll2,
            "null" => LinkKind::Null,
            "loop" => LinkKind::Loop,
            _ => return None,
        })
    }

    pub fn linktype(&self) -> LinkType {
        match self.kind {
            LinkKind::Ethernet => LinkType::ETHERNET,
            LinkKind::Raw => LinkType::RAW,
            LinkKind::Ipv4 => LinkType::IPV4,
            LinkKind::Ipv6 => LinkType::IPV6,
            LinkKind::Sll => LinkType::LINUX_SLL,
            LinkKind::Sll2 => LinkType::LINUX_SLL2,
            LinkKind::Null => LinkType::NULL,
            LinkKind::Loop => LinkType::LOOP,
        }
    }

    /// Whether this link can carry packets of the given IP version.
    pub fn carries(&self, ipv4: bool) -> bool {
        match self.kind {
            LinkKind::Ipv4 => ipv4,
            LinkKind::Ipv6 => !ipv4,
            _ => true,
        }
    }

    /// Appends the link header for an IP packet from `src` to `dst`. MAC addresses are made up
    /// from the IP addresses (02:00 + the last four bytes), so each host keeps one MAC.
    fn write_header(
        &self,
        out: &mut Vec<u8>,
        src: IpAddr,
        dst: IpAddr,
        dir: Option<LinkDirection>,
    ) {
        let ethertype = if src.is_ipv4() {
            ETHERTYPE_IPV4
        } else {
            ETHERTYPE_IPV6
        };
        // PACKET_HOST (0) unless the frame is known to be outgoing (PACKET_OUTGOING, 4)
        let pkttype: u8 = if dir == Some(LinkDirection::Outbound) {
            4
        } else {
            0
        };
        match self.kind {
            LinkKind::Ethernet => {
                out.extend_from_slice(&mac(dst));
                out.extend_from_slice(&mac(src));
                for (i, vid) in self.vlans.iter().enumerate() {
                    // outer tags of a stack are 802.1ad service tags, the innermost is 802.1Q
                    let tpid: u16 = if i == 0 && self.vlans.len() > 1 {
                        0x88a8
                    } else {
                        0x8100
                    };
                    out.extend_from_slice(&tpid.to_be_bytes());
                    out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
                }
                out.extend_from_slice(&ethertype.to_be_bytes());
            }
            LinkKind::Raw | LinkKind::Ipv4 | LinkKind::Ipv6 => {}
            LinkKind::Sll => {
                out.extend_from_slice(&[0, pkttype, 0, 1, 0, 6]); // packet type, ARPHRD_ETHER, addr len
                out.extend_from_slice(&mac(src));
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ethertype.to_be_bytes());
            }
            LinkKind::Sll2 => {
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, pkttype, 6]); // reserved, ifindex 1, ARPHRD_ETHER
                out.extend_from_slice(&mac(src));
                out.extend_from_slice(&[0, 0]);
            }
            LinkKind::Null => {
                let af = if src.is_ipv4() {
                    AF_INET
                } else {
                    AF_INET6_NULL
                };
                out.extend_from_slice(&af.to_le_bytes());
            }
            LinkKind::Loop => {
                let af = if src.is_ipv4() {
                    AF_INET
                } else {
                    AF_INET6_LOOP
                };
                out.extend_from_slice(&af.to_be_bytes());
            }
        }
    }

    /// Pads Ethernet frames to the 60-byte minimum, as a NIC does on the wire (the padding follows
    /// the IP datagram, so a decoder must trust the IP length, as the kernel does).
    fn pad(&self, frame: &mut Vec<u8>) {
        if self.kind == LinkKind::Ethernet && frame.len() < 60 {
            frame.resize(60, 0);
        }
    }
}

fn mac(ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v4_syn() -> TcpPacket {
        let mut p = TcpPacket::new(
            sa("10.0.0.1:40000"),
            sa("10.0.0.2:80"),
            TcpFlags::SYN,
            1000,
            0,
        );
        p.options = TcpOptions::from_list(&[
            TcpOption::Mss(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamp(7, 0),
            TcpOption::Nop,
            TcpOption::WindowScale(7),
        ])
        .unwrap();
        p
    }

    fn frames(p: &TcpPacket, link: &Link) -> Vec<(Vec<u8>, u32)> {
        p.validate().unwrap();
        let mut out = Vec::new();
        p.for_each_frame(link, 42, &mut Vec::new(), |d, o| {
            out.push((d.to_vec(), o));
            Ok(())
        })
        .unwrap();
        out
    }

    /// The TCP checksum verifies, according to etherparse.
    fn checksum_ok(frame: &[u8]) -> bool {
        let s = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = s.transport else {
            panic!("no tcp")
        };
        let want = match s.net.unwrap() {
            NetSlice::Ipv4(v4) => tcp
                .calc_checksum_ipv4(v4.header().source(), v4.header().destination())
                .unwrap(),
            NetSlice::Ipv6(v6) => tcp
                .calc_checksum_ipv6(v6.header().source(), v6.header().destination())
                .unwrap(),
            NetSlice::Arp(_) => unreachable!(),
        };
        want == tcp.checksum()
    }

    #[test]
    fn ipv4_syn_with_options_decodes() {
        let f = frames(&v4_syn(), &Link::default());
        assert_eq!(f.len(), 1);
        let (data, orig) = &f[0];
        assert_eq!(data.len(), 14 + 20 + 40);
        assert_eq!(*orig as usize, data.len());
        let s = SlicedPacket::from_ethernet(data).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!()
        };
        assert_eq!(ip.header().ttl(), 64);
        assert_eq!(ip.header().identification(), 42);
        assert!(ip.header().dont_fragment());
        assert_eq!(
            ip.header().header_checksum(),
            ip.header().to_header().calc_header_checksum()
        );
        let Some(TransportSlice::Tcp(tcp)) = &s.transport else {
            panic!()
        };
        assert_eq!(
            (
                tcp.source_port(),
                tcp.destination_port(),
                tcp.sequence_number()
            ),
            (40000, 80, 1000)
        );
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(tcp.window_size(), 64240);
        assert_eq!(tcp.data_offset(), 10);
        let opts: Vec<_> = tcp.options_iterator().map(|o| o.unwrap()).collect();
        use etherparse::TcpOptionElement as E;
        assert_eq!(
            opts,
            vec![
                E::MaximumSegmentSize(1460),
                E::SelectiveAcknowledgementPermitted,
                E::Timestamp(7, 0),
                E::Noop,
                E::WindowScale(7)
            ]
        );
        assert!(checksum_ok(data));
    }

    #[test]
    fn ipv6_data_segment_checksums() {
        let mut p = TcpPacket::new(
            sa("[2001:db8::1]:40000"),
            sa("[2001:db8::2]:443"),
            TcpFlags::ACK | TcpFlags::PSH,
            5,
            9,
        );
        p.payload = Payload::Bytes(b"hello, odd length".to_vec());
        let f = frames(&p, &Link::default());
        assert!(checksum_ok(&f[0].0));
        p.payload = Payload::Zeros(1001);
        let f = frames(&p, &Link::default());
        assert!(checksum_ok(&f[0].0));
        assert_eq!(f[0].0.len(), 14 + 40 + 20 + 1001);
    }

    #[test]
    fn bad_checksum_and_overrides() {
        let mut p = v4_syn();
        p.checksum = Checksum::Bad;
        p.ttl = 1;
        p.doff = Some(4);
        p.ip_checksum = Checksum::Bad;
        let (data, _) = &frames(&p, &Link::new(LinkKind::Raw))[0];
        assert_eq!(data[8], 1);
        assert_eq!(data[20 + 12] >> 4, 4);
        let hdr = etherparse::Ipv4HeaderSlice::from_slice(data).unwrap();
        assert_ne!(
            hdr.header_checksum(),
            hdr.to_header().calc_header_checksum()
        );
        // with the correct checksum in place the bytes differ only in the checksum field
        p.checksum = Checksum::Correct;
        let (good, _) = &frames(&p, &Link::new(LinkKind::Raw))[0];
        let diff: Vec<usize> = (0..data.len()).filter(|&i| data[i] != good[i]).collect();
        assert_eq!(diff, vec![20 + 17]);
    }

    #[test]
    fn bad_checksum_is_wrong_even_when_correct_is_ffff() {
        assert_ne!(Checksum::Bad.apply(0xffff), 0x0000);
        assert_ne!(Checksum::Bad.apply(0x0000), 0xffff);
    }

    #[test]
    fn doff_15_with_only_the_base_header() {
        let mut p = TcpPacket::new(sa("10.0.0.1:1"), sa("10.0.0.2:2"), TcpFlags::SYN, 1, 0);
        p.doff = Some(15);
        let (data, _) = &frames(&p, &Link::new(LinkKind::Raw))[0];
        assert_eq!(data.len(), 40);
        assert_eq!(data[32], 0xf0);
        assert_eq!(u16::from_be_bytes([data[2], data[3]]), 40);
    }

    #[test]
    fn ethernet_padding_and_snap() {
        let mut p = TcpPacket::new(sa("10.0.0.1:1"), sa("10.0.0.2:2"), TcpFlags::ACK, 1, 1);
        let (data, orig) = &frames(&p, &Link::default())[0];
        assert_eq!((data.len(), *orig), (60, 60));
        assert_eq!(u16::from_be_bytes([data[16], data[17]]), 40); // IP total length unpadded
        p.payload = Payload::Zeros(1000);
        p.snap = Some(54);
        let (data, orig) = &frames(&p, &Link::default())[0];
        assert_eq!((data.len(), *orig), (54, 1054));
        let lax = LaxSlicedPacket::from_ethernet(data).unwrap();
        assert!(lax.net.unwrap().ip_payload_ref().unwrap().incomplete);
    }

    #[test]
    fn ipv4_fragments_reassemble() {
        let mut p = v4_syn();
        p.payload = Payload::Bytes((0..=255).collect());
        p.fragments = Some(Fragmentation {
            count: 3,
            drop: None,
        });
        let f = frames(&p, &Link::new(LinkKind::Raw));
        assert_eq!(f.len(), 3);
        let mut whole = Vec::new();
        for (i, (d, _)) in f.iter().enumerate() {
            let h = etherparse::Ipv4HeaderSlice::from_slice(d).unwrap();
            assert_eq!(h.identification(), 42);
            assert_eq!(h.more_fragments(), i < 2);
            assert!(!h.dont_fragment());
            assert_eq!(h.fragments_offset().value() as usize * 8, whole.len());
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            whole.extend_from_slice(&d[20..]);
        }
        let mut unfragmented = v4_syn();
        unfragmented.payload = p.payload.clone();
        let (single, _) = &frames(&unfragmented, &Link::new(LinkKind::Raw))[0];
        assert_eq!(&single[20..], &whole[..]);

        p.fragments = Some(Fragmentation {
            count: 3,
            drop: Some(2),
        });
        assert_eq!(frames(&p, &Link::new(LinkKind::Raw)).len(), 2);
    }

    #[test]
    fn ipv6_fragments_have_fragment_headers() {
        let mut p = TcpPacket::new(
            sa("[2001:db8::1]:40000"),
            sa("[2001:db8::2]:80"),
            TcpFlags::SYN,
            1000,
            0,
        );
        p.fragments = Some(Fragmentation {
            count: 2,
            drop: None,
        });
        let f = frames(&p, &Link::new(LinkKind::Raw));
        assert_eq!(f.len(), 2);
        let (a, b) = (&f[0].0, &f[1].0);
        assert_eq!((a[6], a[40], b[40]), (44, 6, 6));
        assert_eq!(u16::from_be_bytes([a[42], a[43]]), 1); // offset 0, more
        assert_eq!(u16::from_be_bytes([b[42], b[43]]), 16); // offset 16 bytes = 2 units << 3
        assert_eq!(u16::from_be_bytes([a[4], a[5]]) as usize, a.len() - 40);
        assert_eq!(&a[44..48], &42u32.to_be_bytes());
    }

    #[test]
    fn impossible_fragmentation_is_refused() {
        let mut p = TcpPacket::new(sa("10.0.0.1:1"), sa("10.0.0.2:2"), TcpFlags::SYN, 1, 0);
        p.fragments = Some(Fragmentation {
            count: 4,
            drop: None,
        }); // 20 bytes: 8 + 8 + 4 at most
        assert!(p.validate().is_err());
        p.fragments = Some(Fragmentation {
            count: 3,
            drop: Some(4),
        });
        assert!(p.validate().is_err());
        p.fragments = Some(Fragmentation {
            count: 3,
            drop: Some(3),
        });
        assert!(p.validate().is_ok());
    }

    #[test]
    fn link_headers() {
        let p = TcpPacket::new(sa("10.0.0.1:1"), sa("10.0.0.2:2"), TcpFlags::SYN, 1, 0);
        let hdr_len = |kind, vlans: Vec<u16>| {
            let (d, _) = &frames(&p, &Link { kind, vlans })[0];
            let l = d.len() - 40;
            (l, d.clone())
        };
        let (l, d) = hdr_len(LinkKind::Ethernet, vec![100, 200]);
        assert_eq!(l, 22);
        assert_eq!(&d[12..22], &[0x88, 0xa8, 0, 100, 0x81, 0, 0, 200, 0x08, 0]);
        let (l, d) = hdr_len(LinkKind::Sll, vec![]);
        assert_eq!((l, &d[14..16]), (16, &[8u8, 0][..]));
        let (l, d) = hdr_len(LinkKind::Sll2, vec![]);
        assert_eq!((l, &d[0..2]), (20, &[8u8, 0][..]));
        let (l, d) = hdr_len(LinkKind::Null, vec![]);
        assert_eq!((l, &d[0..4]), (4, &[2u8, 0, 0, 0][..]));
        let (l, d) = hdr_len(LinkKind::Loop, vec![]);
        assert_eq!((l, &d[0..4]), (4, &[0u8, 0, 0, 2][..]));
        assert_eq!(hdr_len(LinkKind::Raw, vec![]).0, 0);
        let tagged = hdr_len(LinkKind::Ethernet, vec![7]).1;
        let s = SlicedPacket::from_ethernet(&tagged).unwrap();
        assert!(matches!(s.transport, Some(TransportSlice::Tcp(_))));
    }

    #[test]
    fn outgoing_direction_in_sll() {
        let mut p = TcpPacket::new(sa("10.0.0.1:1"), sa("10.0.0.2:2"), TcpFlags::SYN, 1, 0);
        p.direction = Some(LinkDirection::Outbound);
        assert_eq!(frames(&p, &Link::new(LinkKind::Sll))[0].0[1], 4);
        assert_eq!(frames(&p, &Link::new(LinkKind::Sll2))[0].0[10], 4);
    }

    #[test]
    fn option_area_limits_and_padding() {
        let o = TcpOptions::from_list(&[TcpOption::Mss(1460), TcpOption::WindowScale(7)]).unwrap();
        assert_eq!((o.as_bytes().len(), o.padded_len()), (7, 8));
        let sack = TcpOption::Sack(vec![(1, 2), (3, 4), (5, 6), (7, 8)]);
        assert_eq!(
            TcpOptions::from_list(std::slice::from_ref(&sack))
                .unwrap()
                .as_bytes()
                .len(),
            34
        );
        assert!(TcpOptions::from_list(&[sack, TcpOption::Timestamp(1, 2)]).is_err());
        let raw = TcpOptions::from_list(&[TcpOption::Other {
            kind: 30,
            data: vec![0xa, 0xb],
        }])
        .unwrap();
        assert_eq!(raw.as_bytes(), &[30, 4, 0xa, 0xb]);
    }
}
