//! Capture input: legacy pcap and pcapng, plain or gzip-compressed, from files or stdin.
//!
//! Several inputs are merged into one capture in time order (tcpdump `-C`/`-G` rotation), so
//! conntrack state carries across files. Frame numbers stay 1-based *per file*, equal to
//! Wireshark's `frame.number`. Memory does not grow with the size of the input.
//!
//! This module knows nothing of IP, TCP or conntrack.

use std::fmt;

pub mod writer;

/// A link-layer header type (`LINKTYPE_*` value of pcap / pcapng).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW_OLD_12: LinkType = LinkType(12);
    pub const RAW_OLD_14: LinkType = LinkType(14);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The conventional name (as tcpdump prints it), or `None` for values we have no name for.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            12 | 14 | 101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} ({})", n, self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Capture time in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s * 1_000_000_000)
    }
    /// Seconds as a float, for JSON output.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// Which way a frame travelled relative to the capturing interface, when the capture says so
/// (pcapng `epb_flags`, Linux SLL packet type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDirection {
    Inbound,
    Outbound,
}

/// One captured frame. `data` borrows the reader's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Index of the input file in [`CaptureSet::files`].
    pub file: usize,
    /// 1-based frame number within its file (Wireshark's `frame.number`).
    pub number: u64,
    pub ts: Timestamp,
    pub linktype: LinkType,
    /// Captured bytes (possibly cut by the snaplen).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Direction from pcapng `epb_flags`, when present.
    pub direction: Option<LinkDirection>,
}

/// What kind of file an input turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Pcap,
    Pcapng,
}

/// One input of a [`CaptureSet`], with what was learnt while reading it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaptureFile {
    /// The path as given on the command line (`-` for stdin).
    pub path: String,
    pub format: Option<FileFormat>,
    /// Timestamps in the file have nanosecond resolution.
    pub nanosecond: bool,
    pub big_endian: bool,
    pub gzip: bool,
    /// Frames read so far.
    pub frames: u64,
    /// Bytes of the (decompressed) input consumed so far.
    pub bytes: u64,
}

/// A problem reading an input. Names the file, and the frame and byte offset where known.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{kind}", location(*.frame, *.offset))]
pub struct CaptureError {
    pub file: String,
    /// The 1-based number of the frame that could not be read (the one after the last good one).
    pub frame: Option<u64>,
    /// Byte offset into the (decompressed) input where the problem starts.
    pub offset: Option<u64>,
    pub kind: CaptureErrorKind,
}

fn location(frame: Option<u64>, offset: Option<u64>) -> String {
    match (frame, offset) {
        (Some(f), Some(o)) => format!("frame {f} (byte offset {o}): "),
        (Some(f), None) => format!("frame {f}: "),
        (None, Some(o)) => format!("byte offset {o}: "),
        (None, None) => String::new(),
    }
}

/// The kinds of input problems.
#[derive(Debug, thiserror::Error)]
pub enum CaptureErrorKind {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("read error: {0}")]
    Io(std::io::Error),
    #[error("not a pcap or pcapng capture (first bytes {0})")]
    NotACapture(String),
    #[error("empty file")]
    Empty,
    #[error("capture ends inside a record (truncated file)")]
    TruncatedRecord,
    #[error("record length {0} is larger than any real frame (corrupt capture)")]
    AbsurdRecordLength(u64),
    #[error("pcapng block is corrupt: {0}")]
    CorruptBlock(String),
    #[error("packet refers to interface {0}, but the section defines only {1}")]
    InterfaceOutOfRange(u32, usize),
    #[error("gzip stream is corrupt: {0}")]
    Gzip(std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// All inputs of one run, read as one capture in time order.
pub struct CaptureSet {
    // filled in by the capture implementation
    files: Vec<CaptureFile>,
}

impl CaptureSet {
    /// Opens every input (`-` is stdin) and sniffs its format (pcap / pcapng, gzip or not) by
    /// content. Fails if any input cannot be opened or is not a capture.
    pub fn open<S: AsRef<str>>(inputs: &[S]) -> Result<CaptureSet, CaptureError> {
        let _ = inputs;
        todo!("capture")
    }

    /// The next frame in time order over all inputs; frames of one file keep their file order.
    /// After an error in one input, that input is closed and the others go on; `None` once every
    /// input is exhausted.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        todo!("capture")
    }

    pub fn files(&self) -> &[CaptureFile] {
        &self.files
    }
}
