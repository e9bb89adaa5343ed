//! Capture input: legacy pcap and pcapng, plain or gzip-compressed, from files or stdin.
//!
//! Several inputs are merged into one capture in time order (tcpdump `-C`/`-G` rotation), so
//! conntrack state carries across files. Frame numbers stay 1-based *per file*, equal to
//! Wireshark's `frame.number`. Memory does not grow with the size of the input.
//!
//! This module knows nothing of IP, TCP or conntrack.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io::Read;

mod input;
mod legacy;
mod pcapng;
mod source;
#[cfg(test)]
mod test_builder;
#[cfg(test)]
mod tests;

use input::Input;

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
    /// Byte offset of the frame's record (pcapng: block) in the (decompressed) input, so a
    /// message about a frame can point into the file.
    pub offset: u64,
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
///
/// The merge is a k-way merge on each input's head frame, keyed by (timestamp, input index): ties
/// go to the earlier input, and since an input has one head at a time, frames of one file keep
/// their file order even when timestamps go backwards. The head stays in its input's buffer until
/// the next call, so no frame is ever copied.
pub struct CaptureSet {
    files: Vec<CaptureFile>,
    /// One reader per input; `None` once the input has ended or failed.
    inputs: Vec<Option<Input>>,
    /// Inputs whose head must be (re)read before the next choice: at first all of them, later
    /// the one whose frame was handed out last. Popped from the back, lowest index first.
    stale: Vec<usize>,
    /// The head of every live input, smallest first.
    heads: BinaryHeap<Reverse<(Timestamp, usize)>>,
}

impl CaptureSet {
    /// Opens every input (`-` is stdin) and sniffs its format (pcap / pcapng, gzip or not) by
    /// content. Fails if any input cannot be opened or is not a capture.
    pub fn open<S: AsRef<str>>(inputs: &[S]) -> Result<CaptureSet, CaptureError> {
        let mut readers = Vec::with_capacity(inputs.len());
        for path in inputs {
            let path = path.as_ref();
            let reader = source::open_path(path).map_err(|e| CaptureError {
                file: path.to_string(),
                frame: None,
                offset: None,
                kind: CaptureErrorKind::Open(e),
            })?;
            readers.push((path.to_string(), reader));
        }
        Self::from_readers(readers)
    }

    /// Like [`CaptureSet::open`], for inputs that are already open (each with the name to use in
    /// messages): in-memory captures in tests, sockets, decompressors of other kinds.
    pub fn from_readers<I>(inputs: I) -> Result<CaptureSet, CaptureError>
    where
        I: IntoIterator<Item = (String, Box<dyn Read + Send>)>,
    {
        let mut files = Vec::new();
        let mut readers = Vec::new();
        for (name, reader) in inputs {
            let (input, file) = Input::open(name, reader)?;
            readers.push(Some(input));
            files.push(file);
        }
        let stale = (0..readers.len()).rev().collect();
        Ok(CaptureSet {
            files,
            inputs: readers,
            stale,
            heads: BinaryHeap::new(),
        })
    }

    /// The next frame in time order over all inputs; frames of one file keep their file order.
    /// After an error in one input, that input is closed and the others go on; `None` once every
    /// input is exhausted.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        if let [only] = self.inputs.as_mut_slice() {
            // One input, nothing to merge: skip the bookkeeping (a tenth of the reading time).
            let input = only.as_mut()?;
            return match input.advance(&mut self.files[0]) {
                Ok(Some(_)) => self.inputs[0].as_ref()?.frame(0).map(Ok),
                Ok(None) => {
                    self.inputs[0] = None;
                    None
                }
                Err(e) => {
                    self.inputs[0] = None;
                    Some(Err(e))
                }
            };
        }
        while let Some(i) = self.stale.pop() {
            let Some(input) = self.inputs[i].as_mut() else {
                continue;
            };
            match input.advance(&mut self.files[i]) {
                Ok(Some(ts)) => self.heads.push(Reverse((ts, i))),
                Ok(None) => self.inputs[i] = None,
                Err(e) => {
                    self.inputs[i] = None;
                    return Some(Err(e));
                }
            }
        }
        let Reverse((_, i)) = self.heads.pop()?;
        self.stale.push(i);
        self.inputs[i].as_ref()?.frame(i).map(Ok)
    }

    pub fn files(&self) -> &[CaptureFile] {
        &self.files
    }
}
