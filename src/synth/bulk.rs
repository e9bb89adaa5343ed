//! Streaming generator of large captures of many short, healthy TCP connections, for
//! benchmarks.
//!
//! Each connection is a Linux-like exchange: handshake with MSS / SACK-permitted / timestamps /
//! window scale 7, a request from the client, a response from the server in MSS-sized segments
//! that the client acknowledges every second segment, then a FIN close from either side or an RST
//! from the client. Sequence numbers, ACKs and windows are consistent, so a conntrack-exact
//! tracker finds nothing INVALID. `concurrency` connections are open at once and their packets
//! interleave at random; every connection uses its own client address:port, so no tuple is
//! reused.
//!
//! Output streams to any `Write`: only the open connections are in memory, and a packet costs no
//! allocation.

use super::rng::Rng;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::capture::Timestamp;
use crate::capture::writer::{DEFAULT_SNAPLEN, TsResolution};
use crate::decode::TcpFlags;

use super::packet::{Link, Payload, TcpOptions, TcpPacket};
use super::{DEFAULT_START_SECS, Format, FrameSink};

/// Maximum segment size with timestamps (1500 − 20 − 20 − 12).
const MSS: u32 = 1448;
/// Mean response size when only the number of flows is given.
const DEFAULT_RESPONSE_BYTES: u64 = 24_000;
/// Client ports cycle through Linux's default ephemeral range.
const PORT_BASE: u32 = 32768;
const PORTS: u32 = 60999 - 32768 + 1;
const SERVERS: u32 = 16;

/// What to generate.
#[derive(Clone, Debug)]
pub struct BulkConfig {
    /// Number of connections; 0 derives it from `target_bytes`.
    pub flows: u64,
    /// Connections open at the same time (their packets interleave).
    pub concurrency: usize,
    /// Approximate size of the capture file; `None` gives responses of about 24 kB.
    pub target_bytes: Option<u64>,
    /// Share of IPv6 connections, in percent.
    pub ipv6_percent: u32,
    /// Share of connections the client ends with an RST instead of a FIN, in percent.
    pub rst_percent: u32,
    pub seed: u64,
    pub link: Link,
    pub start: Timestamp,
    /// Packets are 1 to this many microseconds apart (uniformly). The default, 20, gives about
    /// 100k packets per second; larger values spread the connections over more capture time, so
    /// that fewer are alive in conntrack at once.
    pub max_gap_us: u32,
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig {
            flows: 10_000,
            concurrency: 256,
            target_bytes: None,
            ipv6_percent: 20,
            rst_percent: 5,
            seed: 1,
            link: Link::default(),
            start: Timestamp::from_secs(DEFAULT_START_SECS),
            max_gap_us: 20,
        }
    }
}

/// What was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BulkStats {
    pub flows: u64,
    pub packets: u64,
    /// Bytes of frames (without file headers).
    pub frame_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    ClientFin,
    ServerFin,
    ClientRst,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Syn,
    SynAck,
    HandshakeAck,
    Request,
    Response,
    /// The n-th packet of the close sequence.
    Close(u8),
    Done,
}

/// One side's sending state.
#[derive(Clone, Copy)]
struct Side {
    addr: SocketAddr,
    /// Sequence number of the next byte to send.
    next: u32,
    /// Our TSval clock.
    tsval: u32,
    /// Raw window once scaling is on.
    window: u16,
}

struct Conn {
    client: Side,
    server: Side,
    request_left: u32,
    response_left: u32,
    /// Server segments not yet acknowledged by the client.
    unacked: u8,
    step: Step,
    ending: Ending,
}

fn syn_options(tsval: u32, tsecr: u32) -> TcpOptions {
    // Linux's SYN layout: MSS, SACK-permitted, timestamps, NOP, window scale 7.
    let mut b = [2, 4, 0, 0, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7];
    b[2..4].copy_from_slice(&(MSS as u16 + 12).to_be_bytes());
    b[8..12].copy_from_slice(&tsval.to_be_bytes());
    b[12..16].copy_from_slice(&tsecr.to_be_bytes());
    TcpOptions::from_bytes(&b).expect("20 bytes fit")
}

fn ts_options(tsval: u32, tsecr: u32) -> TcpOptions {
    let mut b = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    b[4..8].copy_from_slice(&tsval.to_be_bytes());
    b[8..12].copy_from_slice(&tsecr.to_be_bytes());
    TcpOptions::from_bytes(&b).expect("12 bytes fit")
}

impl Conn {
    /// A segment from the client (`from_client`) or the server, advancing that side's state.
    fn send(&mut self, from_client: bool, flags: u8, len: u32) -> TcpPacket {
        let (me, peer) = if from_client {
            (&mut self.client, &self.server)
        } else {
            (&mut self.server, &self.client)
        };
        let ack = if flags & TcpFlags::ACK != 0 {
            peer.next
        } else {
            0
        };
        let mut p = TcpPacket::new(me.addr, peer.addr, flags, me.next, ack);
        me.tsval = me.tsval.wrapping_add(1);
        if flags & TcpFlags::SYN != 0 {
            // SYN windows are never scaled: the largest unscaled window Linux offers
            p.window = if from_client { 64240 } else { 65160 };
            p.options = syn_options(me.tsval, if from_client { 0 } else { peer.tsval });
        } else {
            p.window = me.window;
            p.options = ts_options(me.tsval, peer.tsval);
        }
        p.payload = Payload::Zeros(len);
        me.next = me.next.wrapping_add(p.seq_len());
        p
    }

    /// The connection's next packet, or `None` once it is closed.
    fn next(&mut self) -> Option<TcpPacket> {
        const ACK: u8 = TcpFlags::ACK;
        const PSH_ACK: u8 = TcpFlags::PSH | TcpFlags::ACK;
        const FIN_ACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
        let p = match self.step {
            Step::Syn => {
                self.step = Step::SynAck;
                self.send(true, TcpFlags::SYN, 0)
            }
            Step::SynAck => {
                self.step = Step::HandshakeAck;
                self.send(false, TcpFlags::SYN | ACK, 0)
            }
            Step::HandshakeAck => {
                self.step = Step::Request;
                self.send(true, ACK, 0)
            }
            Step::Request => {
                let n = self.request_left.min(MSS);
                self.request_left -= n;
                if self.request_left == 0 {
                    self.step = Step::Response;
                }
                self.send(true, if self.request_left == 0 { PSH_ACK } else { ACK }, n)
            }
            Step::Response => {
                // delayed ACK: every second full segment, and at the end of the response
                if self.unacked >= 2 || (self.response_left == 0 && self.unacked > 0) {
                    self.unacked = 0;
                    return Some(self.send(true, ACK, 0));
                }
                if self.response_left == 0 {
                    self.step = Step::Close(0);
                    return self.next();
                }
                let n = self.response_left.min(MSS);
                self.response_left -= n;
                self.unacked += 1;
                self.send(
                    false,
                    if self.response_left == 0 {
                        PSH_ACK
                    } else {
                        ACK
                    },
                    n,
                )
            }
            Step::Close(i) => {
                // the closer's FIN, the peer's FIN/ACK, the closer's last ACK; or one RST
                let client_closes = self.ending != Ending::ServerFin;
                let (from_client, flags) = match (self.ending, i) {
                    (Ending::ClientRst, _) => (true, TcpFlags::RST | ACK),
                    (_, 0) => (client_closes, FIN_ACK),
                    (_, 1) => (!client_closes, FIN_ACK),
                    _ => (client_closes, ACK),
                };
                let last = self.ending == Ending::ClientRst || i == 2;
                self.step = if last { Step::Done } else { Step::Close(i + 1) };
                self.send(from_client, flags, 0)
            }
            Step::Done => return None,
        };
        Some(p)
    }
}

/// Produces the packets of a [`BulkConfig`] in capture order.
pub struct BulkGenerator {
    cfg: BulkConfig,
    rng: Rng,
    active: Vec<Conn>,
    started: u64,
    mean_response: u64,
    now: Timestamp,
}

impl BulkGenerator {
    pub fn new(cfg: BulkConfig) -> BulkGenerator {
        // File bytes per response byte: pcap record + headers of a 1448-byte segment, plus half
        // a client ACK (one every two segments). Fixed cost: handshake, request, close.
        const PER_BYTE: f64 =
            (MSS as f64 + 16.0 + 14.0 + 20.0 + 32.0 + (16.0 + 14.0 + 20.0 + 32.0) / 2.0)
                / MSS as f64;
        const FIXED: u64 = 3 * 100 + 400 + 3 * 100;
        let mut cfg = cfg;
        let (flows, mean_response) = match (cfg.flows, cfg.target_bytes) {
            (0, None) => (BulkConfig::default().flows, DEFAULT_RESPONSE_BYTES),
            (n, None) => (n, DEFAULT_RESPONSE_BYTES),
            (0, Some(t)) => {
                let per_flow = FIXED + (DEFAULT_RESPONSE_BYTES as f64 * PER_BYTE) as u64;
                ((t / per_flow).max(1), DEFAULT_RESPONSE_BYTES)
            }
            (n, Some(t)) => (n, ((t / n).saturating_sub(FIXED) as f64 / PER_BYTE) as u64),
        };
        cfg.flows = flows;
        cfg.concurrency = cfg.concurrency.max(1);
        let rng = Rng(cfg.seed);
        let now = cfg.start;
        BulkGenerator {
            cfg,
            rng,
            active: Vec::new(),
            started: 0,
            mean_response,
            now,
        }
    }

    /// The number of connections this generator will produce.
    pub fn flows(&self) -> u64 {
        self.cfg.flows
    }

    fn new_conn(&mut self) -> Conn {
        let k = self.started;
        self.started += 1;
        let rng = &mut self.rng;
        // a fresh client address:port for every flow; 16 servers on 80 and 443
        let client_no = (k / PORTS as u64) as u32 + 1;
        let port = (PORT_BASE + (k % PORTS as u64) as u32) as u16;
        let server_no = (k % SERVERS as u64) as u32 + 1;
        let server_port = if k.is_multiple_of(3) { 80 } else { 443 };
        let (c, s): (IpAddr, IpAddr) = if rng.percent(self.cfg.ipv6_percent) {
            let c =
                Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0000_0000u128 | client_no as u128);
            let s =
                Ipv6Addr::from(0x2001_0db8_0200_0000_0000_0000_0000_0000u128 | server_no as u128);
            (c.into(), s.into())
        } else {
            (
                Ipv4Addr::from(0x0a01_0000 + client_no).into(),
                Ipv4Addr::from(0x0ac8_0000 + server_no).into(),
            )
        };
        let side = |addr, rng: &mut Rng, window| Side {
            addr,
            next: rng.next_u64() as u32,
            tsval: rng.next_u64() as u32,
            window,
        };
        let client = side(SocketAddr::new(c, port), rng, 502); // 502 << 7 = 64256 bytes
        let server = side(SocketAddr::new(s, server_port), rng, 509);
        let ending = match rng.below(100) {
            p if p < self.cfg.rst_percent as u64 => Ending::ClientRst,
            p if p % 2 == 0 => Ending::ClientFin,
            _ => Ending::ServerFin,
        };
        // responses vary from half to one and a half times the mean
        let response = self.mean_response / 2 + rng.below(self.mean_response.max(1));
        Conn {
            client,
            server,
            request_left: 100 + rng.below(600) as u32,
            response_left: response.clamp(1, u32::MAX as u64) as u32,
            unacked: 0,
            step: Step::Syn,
            ending,
        }
    }

    /// The next packet in capture order, or `None` when every connection has closed.
    pub fn next_packet(&mut self) -> Option<(Timestamp, TcpPacket)> {
        loop {
            while self.active.len() < self.cfg.concurrency && self.started < self.cfg.flows {
                let c = self.new_conn();
                self.active.push(c);
            }
            if self.active.is_empty() {
                return None;
            }
            let i = self.rng.below(self.active.len() as u64) as usize;
            match self.active[i].next() {
                Some(p) => {
                    let gap_us = 1 + self.rng.below(self.cfg.max_gap_us.max(1).into()) as i64;
                    self.now = Timestamp(self.now.0 + 1_000 * gap_us);
                    return Some((self.now, p));
                }
                None => {
                    self.active.swap_remove(i);
                }
            }
        }
    }

    /// Writes every packet to `out` (buffered here) and returns what was written.
    pub fn write<W: Write>(mut self, out: W, format: Format) -> io::Result<BulkStats> {
        let out = BufWriter::with_capacity(1 << 20, out);
        let mut sink = FrameSink::new(
            out,
            format,
            &self.cfg.link,
            DEFAULT_SNAPLEN,
            TsResolution::Micro,
        )?;
        let link = self.cfg.link.clone();
        let mut stats = BulkStats {
            flows: self.cfg.flows,
            ..Default::default()
        };
        let mut scratch = Vec::with_capacity(2048);
        while let Some((ts, p)) = self.next_packet() {
            stats.packets += 1;
            p.for_each_frame(&link, stats.packets as u16, &mut scratch, |d, o| {
                stats.frame_bytes += d.len() as u64;
                sink.write(ts, d, o, None)
            })?;
        }
        sink.flush()?;
        Ok(stats)
    }

    pub fn write_pcap<W: Write>(self, out: W) -> io::Result<BulkStats> {
        self.write(out, Format::Pcap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn small(flows: u64, concurrency: usize) -> BulkConfig {
        BulkConfig {
            flows,
            concurrency,
            target_bytes: Some(flows * 20_000),
            ..Default::default()
        }
    }

    /// Replays the packets per direction and checks the sequence space is used without gaps,
    /// overlaps or ACKs of unsent data, and that every connection ends with FIN/FIN or RST.
    #[test]
    fn connections_are_consistent() {
        let mut g = BulkGenerator::new(small(300, 40));
        let mut next: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
        let mut ends: HashMap<(SocketAddr, SocketAddr), u8> = HashMap::new();
        let mut last_ts = Timestamp(0);
        let mut packets = 0;
        let mut v6 = 0;
        while let Some((ts, p)) = g.next_packet() {
            packets += 1;
            assert!(ts > last_ts);
            last_ts = ts;
            p.validate().unwrap();
            let key = (p.src, p.dst);
            let rev = (p.dst, p.src);
            if p.flags.syn() {
                // each side's first segment: the tuple must be fresh
                assert!(!next.contains_key(&key), "tuple reused");
                v6 += (p.src.is_ipv6() && !p.flags.ack()) as u32;
            } else {
                assert_eq!(next.get(&key), Some(&p.seq), "gap or overlap in {key:?}");
            }
            if p.flags.ack() {
                assert_eq!(
                    next.get(&rev),
                    Some(&p.ack),
                    "ACK of unsent data or stale ACK"
                );
            }
            next.insert(key, p.seq.wrapping_add(p.seq_len()));
            if p.flags.fin() || p.flags.rst() {
                let canon = if p.src < p.dst { key } else { rev };
                *ends.entry(canon).or_default() += if p.flags.rst() { 2 } else { 1 };
            }
        }
        assert_eq!(ends.len(), 300);
        assert!(ends.values().all(|&n| n == 2));
        assert!(packets > 300 * 10);
        assert!((20..=100).contains(&v6), "{v6} IPv6 flows of 300");
    }

    #[test]
    fn size_target_is_approximate() {
        let cfg = small(200, 16);
        let mut out = Vec::new();
        let stats = BulkGenerator::new(cfg).write_pcap(&mut out).unwrap();
        let ratio = out.len() as f64 / 4_000_000.0;
        assert!(
            (0.85..1.15).contains(&ratio),
            "{} bytes for a 4 MB target",
            out.len()
        );
        assert_eq!(stats.flows, 200);
        let (_, cap) = pcap_parser::parse_pcap(&out).unwrap();
        assert_eq!(cap.blocks.len() as u64, stats.packets);
    }

    #[test]
    fn flows_derived_from_size() {
        let g = BulkGenerator::new(BulkConfig {
            flows: 0,
            target_bytes: Some(100 << 20),
            ..Default::default()
        });
        assert!((3000..6000).contains(&g.flows()), "{}", g.flows());
    }

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed| {
            let mut out = Vec::new();
            BulkGenerator::new(BulkConfig {
                seed,
                ..small(20, 4)
            })
            .write_pcap(&mut out)
            .unwrap();
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
