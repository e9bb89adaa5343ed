//! The scenario text format (documented in `docs/scenario-format.md`).
//!
//! Parsing happens in two passes: `repeat N … end` blocks are expanded first (keeping every
//! line's own number for errors), then the flat list of directives and packet lines is read in
//! order, carrying the state that makes lines short: the current time, each direction's next
//! sequence number and each sender's last window.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::capture::writer::TsResolution;
use crate::capture::{LinkDirection, Timestamp};
use crate::decode::TcpFlags;

use super::packet::{Checksum, Fragmentation, Link, Payload, TcpOption, TcpOptions, TcpPacket};
use super::{Event, Scenario};

/// A problem in a scenario file, with the (1-based) line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Time 0 of a scenario unless `start` says otherwise: 2023-11-14 22:13:20 UTC.
pub const DEFAULT_START_SECS: i64 = 1_700_000_000;
/// The gap before a packet line that gives no time.
const DEFAULT_GAP_NS: i64 = 1_000_000;
/// The window of a sender's first packet when the line does not say.
pub const DEFAULT_WINDOW: u16 = 64240;
/// Upper bound for the lines a file may expand to, so a typo in a repeat count fails fast.
const MAX_EXPANDED_LINES: usize = 10_000_000;

type Line<'a> = (usize, &'a str);

/// The part of a line before its comment, split into tokens. Double quotes group a token (for
/// `data="…"`) and protect `#`.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut started = false;
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                started = true;
                cur.push(c);
            }
            '#' if !in_quotes => break,
            c if c.is_whitespace() && !in_quotes => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if in_quotes {
        return Err("unterminated \"".into());
    }
    if started {
        out.push(cur);
    }
    Ok(out)
}

fn first_word(text: &str) -> Option<&str> {
    text.split('#')
        .next()
        .and_then(|t| t.split_whitespace().next())
}

/// Expands `repeat N … end` blocks (which may nest).
fn expand<'a>(lines: &[Line<'a>], out: &mut Vec<Line<'a>>) -> Result<(), ParseError> {
    let mut i = 0;
    while i < lines.len() {
        let (no, text) = lines[i];
        match first_word(text) {
            Some("end") => {
                return Err(ParseError {
                    line: no,
                    message: "`end` without `repeat`".into(),
                });
            }
            Some("repeat") => {
                let err = |message: String| ParseError { line: no, message };
                let toks = tokens(text).map_err(err)?;
                let count: usize = match toks.as_slice() {
                    [_, n] => n
                        .parse()
                        .map_err(|_| err(format!("repeat count `{n}` is not a number")))?,
                    _ => return Err(err("expected `repeat COUNT`".into())),
                };
                let mut depth = 1;
                let close = (i + 1..lines.len()).find(|&j| {
                    match first_word(lines[j].1) {
                        Some("repeat") => depth += 1,
                        Some("end") => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                });
                let close = close.ok_or_else(|| err("`repeat` without `end`".into()))?;
                let mut body = Vec::new();
                expand(&lines[i + 1..close], &mut body)?;
                if out.len() + body.len().saturating_mul(count) > MAX_EXPANDED_LINES {
                    return Err(err(format!(
                        "repeat expands to more than {MAX_EXPANDED_LINES} lines"
                    )));
                }
                for _ in 0..count {
                    out.extend_from_slice(&body);
                }
                i = close + 1;
            }
            _ => {
                out.push((no, text));
                i += 1;
            }
        }
    }
    Ok(())
}

/// Reading state carried from line to line.
struct Reader {
    scenario: Scenario,
    hosts: HashMap<String, (IpAddr, Option<u16>)>,
    start_ns: i64,
    /// Time of the previous packet, relative to `start`.
    last_ns: Option<i64>,
    /// (sender, receiver) → the sequence number following the sender's last segment.
    next_seq: HashMap<(SocketAddr, SocketAddr), u32>,
    /// sender → its last window.
    last_win: HashMap<SocketAddr, u16>,
}

pub(super) fn parse(text: &str) -> Result<Scenario, ParseError> {
    let numbered: Vec<Line> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let mut lines = Vec::with_capacity(numbered.len());
    expand(&numbered, &mut lines)?;
    let mut r = Reader {
        scenario: Scenario::new(Link::default()),
        hosts: HashMap::new(),
        start_ns: DEFAULT_START_SECS * 1_000_000_000,
        last_ns: None,
        next_seq: HashMap::new(),
        last_win: HashMap::new(),
    };
    for (no, text) in lines {
        r.line(text)
            .map_err(|message| ParseError { line: no, message })?;
    }
    Ok(r.scenario)
}

impl Reader {
    fn line(&mut self, text: &str) -> Result<(), String> {
        let toks = tokens(text)?;
        let Some(first) = toks.first() else {
            return Ok(());
        };
        let args = &toks[1..];
        match first.as_str() {
            "hosts" | "host" => self.hosts(args),
            "link" => self.file_setting(first).and_then(|_| self.link(args)),
            "snaplen" => {
                self.file_setting(first)?;
                self.scenario.snaplen = parse_int(one(first, args)?, "snaplen")?;
                Ok(())
            }
            "resolution" => {
                self.file_setting(first)?;
                self.scenario.resolution = Some(match one(first, args)? {
                    "us" => TsResolution::Micro,
                    "ns" => TsResolution::Nano,
                    other => return Err(format!("resolution `{other}`: expected us or ns")),
                });
                Ok(())
            }
            "start" => {
                self.file_setting(first)?;
                self.start_ns = parse_time(one(first, args)?)?;
                Ok(())
            }
            _ => self.packet(&toks),
        }
    }

    /// Settings that apply to the whole file must come before the first packet.
    fn file_setting(&self, name: &str) -> Result<(), String> {
        if self.scenario.events.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "`{name}` applies to the whole capture; put it before the first packet"
            ))
        }
    }

    fn hosts(&mut self, args: &[String]) -> Result<(), String> {
        if args.is_empty() {
            return Err("expected `hosts NAME=ADDRESS[:PORT] …`".into());
        }
        for a in args {
            let (name, addr) = a
                .split_once('=')
                .ok_or_else(|| format!("`{a}`: expected NAME=ADDRESS[:PORT]"))?;
            if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "host name `{name}`: use letters, digits, `_` and `-`, starting with a letter"
                ));
            }
            let host = parse_address(addr)
                .ok_or_else(|| format!("`{addr}` is not an address or ADDRESS:PORT"))?;
            self.hosts.insert(name.to_string(), host);
        }
        Ok(())
    }

    fn link(&mut self, args: &[String]) -> Result<(), String> {
        let (name, rest) = args
            .split_first()
            .ok_or("expected `link TYPE [vlan=ID,…]`")?;
        let kind = Link::kind_from_name(name).ok_or_else(|| {
            format!("unknown link type `{name}` (ethernet, raw, ipv4, ipv6, sll, sll2, null, loop)")
        })?;
        let mut link = Link::new(kind);
        for a in rest {
            let Some(list) = a.strip_prefix("vlan=") else {
                return Err(format!("`{a}`: the only link option is vlan=ID[,ID…]"));
            };
            if kind != super::LinkKind::Ethernet {
                return Err("VLAN tags need `link ethernet`".into());
            }
            for id in list.split(',') {
                let vid: u16 = parse_int(id, "VLAN id")?;
                if vid > 4095 {
                    return Err(format!("VLAN id {vid} is above 4095"));
                }
                link.vlans.push(vid);
            }
        }
        self.scenario.link = link;
        Ok(())
    }

    fn endpoint(&self, tok: &str) -> Result<SocketAddr, String> {
        if let Some((ip, Some(port))) = parse_address(tok) {
            return Ok(SocketAddr::new(ip, port));
        }
        let (name, port) = match tok.split_once(':') {
            Some((n, p)) => (n, Some(parse_int::<u16>(p, "port")?)),
            None => (tok, None),
        };
        let &(ip, default_port) = self
            .hosts
            .get(name)
            .ok_or_else(|| format!("unknown host `{name}` (define it with `hosts {name}=…`)"))?;
        let port = port
            .or(default_port)
            .ok_or_else(|| format!("host `{name}` has no port; write `{name}:PORT`"))?;
        Ok(SocketAddr::new(ip, port))
    }

    fn packet(&mut self, toks: &[String]) -> Result<(), String> {
        let mut toks = toks.iter().map(String::as_str).peekable();
        // optional time, then SRC>DST
        let mut first = toks.next().unwrap_or_default();
        let time = if first.contains('>') {
            None
        } else {
            let t = first;
            first = toks.next().ok_or("expected SRC>DST after the time")?;
            Some(t)
        };
        let (src, dst) = first.split_once('>').ok_or_else(|| {
            format!("`{first}` is neither a directive (hosts, link, snaplen, resolution, start, repeat) nor SRC>DST")
        })?;
        let (src, dst) = (self.endpoint(src)?, self.endpoint(dst)?);
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(format!("{src} and {dst} are not of the same IP version"));
        }
        if !self.scenario.link.carries(src.is_ipv4()) {
            return Err(format!(
                "link {:?} cannot carry {src}",
                self.scenario.link.kind
            ));
        }
        let flags = parse_flags(toks.next().ok_or("expected [FLAGS] after SRC>DST")?)?;

        let mut p = TcpPacket::new(src, dst, flags, 0, 0);
        let (mut seq, mut ack, mut win, mut len) = (None, None, None, None);
        for kv in toks {
            let (key, value) = kv
                .split_once('=')
                .ok_or_else(|| format!("`{kv}`: expected KEY=VALUE"))?;
            match key {
                "seq" => seq = Some(parse_int(value, key)?),
                "ack" => ack = Some(parse_int(value, key)?),
                "win" => win = Some(parse_int(value, key)?),
                "len" => len = Some(parse_int(value, key)?),
                "data" => p.payload = Payload::Bytes(parse_quoted(value)?),
                "opts" => p.options = parse_options(value)?,
                "urp" => p.urgent = parse_int(value, key)?,
                "csum" => p.checksum = parse_checksum(value)?,
                "ipcsum" => p.ip_checksum = parse_checksum(value)?,
                "doff" => p.doff = Some(parse_int(value, key)?),
                "ttl" => p.ttl = parse_int(value, key)?,
                "ipid" => p.ip_id = Some(parse_int(value, key)?),
                "frag" => {
                    let count = parse_int(value, key)?;
                    p.fragments = Some(Fragmentation {
                        count,
                        drop: p.fragments.and_then(|f| f.drop),
                    });
                }
                "fragdrop" => {
                    let f = p
                        .fragments
                        .as_mut()
                        .ok_or("fragdrop= needs frag= before it")?;
                    f.drop = Some(parse_int(value, key)?);
                }
                "snap" => p.snap = Some(parse_int(value, key)?),
                "dir" => {
                    p.direction = Some(match value {
                        "in" => LinkDirection::Inbound,
                        "out" => LinkDirection::Outbound,
                        _ => return Err(format!("dir={value}: expected in or out")),
                    })
                }
                _ => {
                    return Err(format!(
                        "unknown key `{key}` (seq ack win len data opts urp csum ipcsum doff ttl ipid frag fragdrop snap dir)"
                    ));
                }
            }
        }
        if let Some(n) = len {
            match &p.payload {
                Payload::Bytes(b) if b.len() as u32 != n => {
                    return Err(format!("len={n} but data= holds {} bytes", b.len()));
                }
                Payload::Bytes(_) => {}
                Payload::Zeros(_) => p.payload = Payload::Zeros(n),
            }
        }

        p.seq = match seq {
            Some(s) => s,
            None => *self.next_seq.get(&(src, dst)).ok_or_else(|| {
                format!(
                    "seq= is needed: nothing was sent from {src} to {dst} before to continue from"
                )
            })?,
        };
        p.ack = match ack {
            Some(a) => a,
            None if p.flags.ack() => *self.next_seq.get(&(dst, src)).ok_or_else(|| {
                format!(
                    "ack= is needed: nothing was sent from {dst} to {src} before to acknowledge"
                )
            })?,
            None => 0,
        };
        p.window = win
            .or_else(|| self.last_win.get(&src).copied())
            .unwrap_or(DEFAULT_WINDOW);
        p.validate()?;

        self.next_seq
            .insert((src, dst), p.seq.wrapping_add(p.seq_len()));
        self.last_win.insert(src, p.window);
        let ns = match time {
            None => self.last_ns.map_or(0, |t| t + DEFAULT_GAP_NS),
            Some(t) => match t.strip_prefix('+') {
                Some(rel) => self.last_ns.unwrap_or(0) + parse_time(rel)?,
                None => parse_time(t)?,
            },
        };
        self.last_ns = Some(ns);
        self.scenario.events.push(Event {
            ts: Timestamp(self.start_ns + ns),
            packet: p,
        });
        Ok(())
    }
}

fn one<'a>(directive: &str, args: &'a [String]) -> Result<&'a str, String> {
    match args {
        [a] => Ok(a),
        _ => Err(format!("`{directive}` takes one value")),
    }
}

/// Decimal, or hexadecimal with `0x`.
fn parse_int<T: TryFrom<u64>>(s: &str, what: &str) -> Result<T, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    v.ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{what} `{s}` is not a number in range"))
}

/// `ADDRESS`, `ADDRESS:PORT`, `[IPV6]`, `[IPV6]:PORT` or a bare IPv6 address.
fn parse_address(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

/// Seconds as a decimal (`1.5`, `310`), or with a unit (`1.5s`, `500ms`, `20us`, `7ns`), to whole
/// nanoseconds without going through floating point.
fn parse_time(s: &str) -> Result<i64, String> {
    let (num, unit_ns) = [
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
        ("s", 1_000_000_000),
    ]
    .iter()
    .find_map(|&(u, ns)| s.strip_suffix(u).map(|n| (n, ns)))
    .unwrap_or((s, 1_000_000_000i64));
    let bad = || format!("time `{s}`: expected seconds like 1.250, or a number with s/ms/us/ns");
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty()
        || !(int.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut frac_ns = 0i64;
    let mut scale = unit_ns;
    for d in frac.bytes() {
        if scale % 10 != 0 {
            return Err(format!("time `{s}` is finer than a nanosecond"));
        }
        scale /= 10;
        frac_ns += (d - b'0') as i64 * scale;
    }
    int.checked_mul(unit_ns)
        .and_then(|v| v.checked_add(frac_ns))
        .ok_or_else(bad)
}

/// tcpdump's flag letters between brackets: `[S]`, `[S.]`, `[P.]`, `[FPU]`, `[SEW]`, `[none]`.
fn parse_flags(tok: &str) -> Result<u8, String> {
    let inner = tok
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("`{tok}`: expected flags in brackets, like [S.]"))?;
    inner.parse::<TcpFlags>().map(|f| f.0).map_err(|e| format!("{e} in {tok}"))
}

fn parse_checksum(v: &str) -> Result<Checksum, String> {
    match v {
        "bad" => Ok(Checksum::Bad),
        "good" => Ok(Checksum::Correct),
        _ => parse_int(v, "checksum").map(Checksum::Value),
    }
}

/// `"text"` with `\r \n \t \\ \" \xHH` escapes.
fn parse_quoted(v: &str) -> Result<Vec<u8>, String> {
    let inner = v
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| format!("data={v}: expected a quoted string"))?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('"') => out.push(b'"'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?);
            }
            other => {
                return Err(format!(
                    "unknown escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("hex `{s}` has an odd number of digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("`{s}` is not hex")))
        .collect()
}

/// `mss:1460,ws:7,sackok,ts:VAL:ECR,sack:L-R[:L-R…],nop,eol,raw:KIND[:HEX],bytes:HEX`.
fn parse_options(v: &str) -> Result<TcpOptions, String> {
    let mut list = Vec::new();
    for item in v.split(',').filter(|s| !s.is_empty()) {
        let mut parts = item.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("option `{item}`: `{name}` takes {n} value(s)"))
            }
        };
        list.push(match name {
            "mss" => arity(1).and_then(|_| parse_int(args[0], "mss").map(TcpOption::Mss))?,
            "ws" | "wscale" => {
                arity(1).and_then(|_| parse_int(args[0], "ws").map(TcpOption::WindowScale))?
            }
            "sackok" => arity(0).map(|_| TcpOption::SackPermitted)?,
            "nop" => arity(0).map(|_| TcpOption::Nop)?,
            "eol" => arity(0).map(|_| TcpOption::Eol)?,
            "ts" => {
                arity(2)?;
                TcpOption::Timestamp(parse_int(args[0], "TSval")?, parse_int(args[1], "TSecr")?)
            }
            "sack" => {
                if args.is_empty() || args.len() > 4 {
                    return Err(format!("option `{item}`: sack takes 1 to 4 blocks L-R"));
                }
                let blocks = args
                    .iter()
                    .map(|b| {
                        let (l, r) = b
                            .split_once('-')
                            .ok_or_else(|| format!("sack block `{b}`: expected L-R"))?;
                        Ok((parse_int(l, "sack edge")?, parse_int(r, "sack edge")?))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                TcpOption::Sack(blocks)
            }
            "raw" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(format!("option `{item}`: expected raw:KIND[:HEX]"));
                }
                let data = args.get(1).map_or(Ok(Vec::new()), |h| parse_hex(h))?;
                TcpOption::Other {
                    kind: parse_int(args[0], "option kind")?,
                    data,
                }
            }
            "bytes" => arity(1).and_then(|_| parse_hex(args[0]).map(TcpOption::Raw))?,
            _ => {
                return Err(format!(
                    "unknown option `{name}` (mss ws sackok ts sack nop eol raw bytes)"
                ));
            }
        });
    }
    TcpOptions::from_list(&list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ParseError {
        parse(text).expect_err("should fail")
    }

    #[test]
    fn tokens_respect_quotes_and_comments() {
        assert_eq!(tokens("a b  # c d").unwrap(), vec!["a", "b"]);
        assert_eq!(
            tokens(r#"x data="a # b" y"#).unwrap(),
            vec!["x", r#"data="a # b""#, "y"]
        );
        assert!(tokens(r#"data="open"#).is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("0.001").unwrap(), 1_000_000);
        assert_eq!(parse_time("310").unwrap(), 310_000_000_000);
        assert_eq!(parse_time("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_time("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_time("0.5us").unwrap(), 500);
        assert_eq!(parse_time(".25").unwrap(), 250_000_000);
        assert_eq!(parse_time("0.123456789").unwrap(), 123_456_789);
        assert!(parse_time("0.1234567891").is_err());
        assert!(parse_time("1.5ns").is_err());
        assert!(parse_time("abc").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(parse_flags("[S]").unwrap(), TcpFlags::SYN);
        assert_eq!(parse_flags("[S.]").unwrap(), TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(
            parse_flags("[FPU]").unwrap(),
            TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG
        );
        assert_eq!(
            parse_flags("[SEW]").unwrap(),
            TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR
        );
        assert_eq!(parse_flags("[none]").unwrap(), 0);
        assert_eq!(parse_flags("[]").unwrap(), 0);
        assert!(parse_flags("[SX]").is_err());
        assert!(parse_flags("[SS]").is_err());
        assert!(parse_flags("S").is_err());
    }

    #[test]
    fn options() {
        let o = parse_options("mss:1460,sackok,ts:1:0,nop,ws:7").unwrap();
        assert_eq!(
            o.as_bytes(),
            &[
                2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7
            ]
        );
        let o = parse_options("sack:1000-2000:3000-4000").unwrap();
        assert_eq!(o.as_bytes().len(), 2 + 16);
        assert_eq!(
            parse_options("raw:30:0a0b,eol").unwrap().as_bytes(),
            &[30, 4, 10, 11, 0]
        );
        assert_eq!(parse_options("bytes:0301").unwrap().as_bytes(), &[3, 1]);
        assert!(parse_options("mss").is_err());
        assert!(parse_options("foo:1").is_err());
        assert!(parse_options("sack:1-2:3-4:5-6:7-8,ts:1:2").is_err()); // 34 + 10 bytes
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("10.0.0.1:80"),
            Some(("10.0.0.1".parse().unwrap(), Some(80)))
        );
        assert_eq!(
            parse_address("10.0.0.1"),
            Some(("10.0.0.1".parse().unwrap(), None))
        );
        assert_eq!(
            parse_address("[2001:db8::1]:443"),
            Some(("2001:db8::1".parse().unwrap(), Some(443)))
        );
        assert_eq!(
            parse_address("2001:db8::1"),
            Some(("2001:db8::1".parse().unwrap(), None))
        );
        assert_eq!(
            parse_address("[2001:db8::1]"),
            Some(("2001:db8::1".parse().unwrap(), None))
        );
        assert_eq!(parse_address("C"), None);
    }

    #[test]
    fn brief_example() {
        let s = parse(
            "# T08 – ACK for data never seen
hosts C=10.0.0.1:40000 S=10.0.0.2:80
link ethernet
0.000 C>S [S] seq=1000 win=64240 opts=mss:1460,ws:7,sackok
0.001 S>C [S.] seq=5000 ack=1001 win=65160
+0.001 C>S [.] seq=1001 ack=5001 win=64240
+0.5  C>S [P.] seq=1001 ack=5001 len=100
C>S [.] seq=1001 ack=9000            # no time: previous + 1 ms
",
        )
        .unwrap();
        let t: Vec<i64> = s
            .events
            .iter()
            .map(|e| e.ts.0 - DEFAULT_START_SECS * 1_000_000_000)
            .collect();
        assert_eq!(t, vec![0, 1_000_000, 2_000_000, 502_000_000, 503_000_000]);
        let p = &s.events[3].packet;
        assert_eq!(
            (p.seq, p.ack, p.window, p.payload.len()),
            (1001, 5001, 64240, 100)
        );
        assert_eq!(
            s.events[0].packet.options.as_bytes(),
            &[2, 4, 5, 180, 3, 3, 7, 4, 2]
        );
        assert_eq!(s.events[1].packet.flags.0, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(s.events[4].packet.ack, 9000);
    }

    #[test]
    fn automatic_seq_ack_and_window() {
        let s = parse(
            "hosts C=10.0.0.1:40000 S=10.0.0.2:80
C>S [S] seq=1000
S>C [S.] seq=5000 win=1000
C>S [.]
C>S [P.] len=100
S>C [.]
S>C [F.]
C>S [F.]
S>C [.]
C:40001>S [S] seq=7
",
        )
        .unwrap();
        let v: Vec<(u32, u32, u16)> = s
            .events
            .iter()
            .map(|e| (e.packet.seq, e.packet.ack, e.packet.window))
            .collect();
        assert_eq!(
            v,
            vec![
                (1000, 0, 64240),
                (5000, 1001, 1000),
                (1001, 5001, 64240),
                (1001, 5001, 64240),
                (5001, 1101, 1000),
                (5001, 1101, 1000),
                (1101, 5002, 64240),
                (5002, 1102, 1000),
                (7, 0, 64240),
            ]
        );
        assert_eq!(s.events[8].packet.src.port(), 40001);
    }

    #[test]
    fn ipv6_and_literal_endpoints() {
        let s = parse(
            "hosts A=[2001:db8::1] B=2001:db8::2
A:1234>B:80 [S] seq=1
[2001:db8::3]:5>[2001:db8::4]:6 [S] seq=2
10.1.1.1:5>10.2.2.2:6 [S] seq=3
",
        )
        .unwrap();
        assert_eq!(
            s.events[0].packet.src,
            "[2001:db8::1]:1234".parse().unwrap()
        );
        assert_eq!(s.events[1].packet.dst, "[2001:db8::4]:6".parse().unwrap());
        assert!(s.events[2].packet.src.is_ipv4());
    }

    #[test]
    fn overrides() {
        let s = parse(
            r#"hosts C=10.0.0.1:1 S=10.0.0.2:2
C>S [S] seq=1 csum=bad doff=15 ttl=1 ipid=7 snap=40 dir=out urp=3 ipcsum=bad
C>S [S] seq=1 csum=0x1234 frag=3 fragdrop=2 len=40
C>S [P.] seq=2 ack=3 data="GET /\r\n\x41"
"#,
        )
        .unwrap();
        let p = &s.events[0].packet;
        assert_eq!(p.checksum, Checksum::Bad);
        assert_eq!(
            (p.doff, p.ttl, p.ip_id, p.snap, p.urgent),
            (Some(15), 1, Some(7), Some(40), 3)
        );
        assert_eq!(p.direction, Some(LinkDirection::Outbound));
        assert_eq!(p.ip_checksum, Checksum::Bad);
        let p = &s.events[1].packet;
        assert_eq!(p.checksum, Checksum::Value(0x1234));
        assert_eq!(
            p.fragments,
            Some(Fragmentation {
                count: 3,
                drop: Some(2)
            })
        );
        assert_eq!(
            s.events[2].packet.payload,
            Payload::Bytes(b"GET /\r\nA".to_vec())
        );
    }

    #[test]
    fn repeat_blocks_nest() {
        let s = parse(
            "hosts C=10.0.0.1:1 S=10.0.0.2:2
C>S [S] seq=0
S>C [S.] seq=0
repeat 3
  repeat 2   # two segments, one ack
    S>C [P.] len=10
  end
  C>S [.]
end
",
        )
        .unwrap();
        assert_eq!(s.events.len(), 2 + 3 * 3);
        let last = &s.events.last().unwrap().packet;
        assert_eq!(last.ack, 1 + 60);
    }

    #[test]
    fn link_directive() {
        let s =
            parse("link ethernet vlan=100,200\nhosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1\n")
                .unwrap();
        assert_eq!(s.link.vlans, vec![100, 200]);
        let s = parse("link sll2\nsnaplen 96\nresolution ns\nstart 1000.5\nhosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1\n").unwrap();
        assert_eq!(s.link.kind, super::super::LinkKind::Sll2);
        assert_eq!(s.snaplen, 96);
        assert_eq!(s.resolution, Some(TsResolution::Nano));
        assert_eq!(s.events[0].ts, Timestamp(1_000_500_000_000));
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("hosts C=10.0.0.1:1 S=10.0.0.2:2\n\nC>S [S] seq=1\nC>S [SX] seq=1\n");
        assert_eq!(e.line, 4);
        assert!(e.message.contains("unknown flag `X`"), "{e}");
        assert_eq!(e.to_string().split(':').next(), Some("line 4"));

        assert!(err("C>S [S] seq=1").message.contains("unknown host `C`"));
        assert!(
            err("hosts C=10.0.0.1 S=10.0.0.2:2\nC>S [S] seq=1")
                .message
                .contains("has no port")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [.]")
                .message
                .contains("seq= is needed")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [.] seq=1")
                .message
                .contains("ack= is needed")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=[::1]:2\nC>S [S] seq=1")
                .message
                .contains("same IP version")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1 wnd=5")
                .message
                .contains("unknown key")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1 frag=9")
                .message
                .contains("fragments")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1\nlink raw")
                .message
                .contains("before the first packet")
        );
        assert!(err("link raw vlan=1").message.contains("ethernet"));
        assert!(
            err("link ipv6\nhosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [S] seq=1")
                .message
                .contains("cannot carry")
        );
        assert!(err("hello world").message.contains("neither a directive"));
        assert_eq!(err("x\nrepeat 2\nC>S [S]\n").line, 2);
        assert_eq!(err("end").line, 1);
        assert!(
            err("repeat 100000000\nhosts C=10.0.0.1\nend\n")
                .message
                .contains("more than")
        );
        assert!(
            err("hosts C=10.0.0.1:1 S=10.0.0.2:2\nC>S [P.] seq=1 ack=1 len=3 data=\"ab\"")
                .message
                .contains("len=3")
        );
    }
}
