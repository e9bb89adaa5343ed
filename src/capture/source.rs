//! Getting bytes: opening a path or stdin, undoing gzip, and one refillable buffer per input.
//!
//! The buffer is ours rather than pcap-parser's streaming reader so that a parsed frame can stay
//! parked in it, unconsumed, while the merge looks at the other inputs: a frame is then handed out
//! by reference, never copied. Owning the buffer also keeps the `io::Error` (pcap-parser's reader
//! drops it), the byte offset of every record, and full control over how far it may grow.

use std::fs::File;
use std::io::{self, Cursor, Read};

use flate2::read::MultiGzDecoder;

use super::CaptureErrorKind;

/// What every input reader must be: `Send`, so a [`super::CaptureSet`] can move to another thread.
pub type BoxedRead = Box<dyn Read + Send>;

/// Starting size of a buffer. Small, because a rotated capture may come as hundreds of files that
/// are all open at once; it grows (up to the largest record we accept) only when a record needs it.
const INITIAL_BUFFER: usize = 64 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens a path for reading; `-` is stdin.
///
/// A directory opens fine on Linux and only fails at the first read, so it is refused here, where
/// the error is still an `Open` error.
pub fn open_path(path: &str) -> io::Result<BoxedRead> {
    if path == "-" {
        // `Stdin`, not `StdinLock`: the lock is not `Send`.
        return Ok(Box::new(io::stdin()));
    }
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::ErrorKind::IsADirectory.into());
    }
    Ok(Box::new(file))
}

/// Wraps `reader` in a gzip decoder if its content starts with the gzip magic. Returns whether it
/// did. Sniffing by content, not by name, handles `-` and files renamed by rotation scripts.
///
/// `MultiGzDecoder` because `gzip` of concatenated files (or `cat a.gz b.gz`) gives several members,
/// and the single-member decoder would silently stop after the first.
pub fn decompress_if_gzip(mut reader: BoxedRead) -> io::Result<(BoxedRead, bool)> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Put the sniffed bytes back in front of the rest.
    let whole = Cursor::new(magic[..got].to_vec()).chain(reader);
    if magic[..got] == GZIP_MAGIC {
        Ok((Box::new(MultiGzDecoder::new(whole)), true))
    } else {
        Ok((Box::new(whole), false))
    }
}

/// A byte stream read through a buffer that keeps the unconsumed bytes contiguous.
pub struct Source {
    reader: BoxedRead,
    gzip: bool,
    buf: Vec<u8>,
    /// `buf[start..end]` are the bytes read but not consumed yet.
    start: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl Source {
    pub fn new(reader: BoxedRead, gzip: bool) -> Source {
        Source {
            reader,
            gzip,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
        }
    }

    /// The bytes read but not yet consumed.
    // Inlined: every record's header is read through it, and as a call (~15 instructions a
    // record) it was not inlined into `Legacy::next_record`.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Stream offset of the first byte of [`Self::data`].
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start = (self.start + n).min(self.end);
    }

    /// Reads until at least `need` bytes are available. `Ok(false)` if the stream ends first.
    ///
    /// Terminates for any reader: every round either adds bytes or meets the end of the stream.
    /// The caller bounds `need` (record lengths are checked before they are requested), so the
    /// buffer never grows beyond the largest record we accept.
    #[inline]
    pub fn fill(&mut self, need: usize) -> Result<bool, CaptureErrorKind> {
        // The common case, a record already in the buffer, stays out of a call.
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.fill_slow(need)
    }

    fn fill_slow(&mut self, need: usize) -> Result<bool, CaptureErrorKind> {
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            self.make_room(need);
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        Ok(true)
    }

    /// Makes a record of `need` bytes starting at [`Self::offset`] available. `Ok(false)` if the
    /// stream ended cleanly before the record; an error if it ends inside it.
    #[inline]
    pub fn fill_record(&mut self, need: usize) -> Result<bool, CaptureErrorKind> {
        if !self.fill(1)? {
            return Ok(false);
        }
        self.require(need)?;
        Ok(true)
    }

    /// Makes `need` bytes available, or reports the record as truncated.
    #[inline]
    pub fn require(&mut self, need: usize) -> Result<(), CaptureErrorKind> {
        if self.fill(need)? {
            Ok(())
        } else {
            Err(CaptureErrorKind::TruncatedRecord)
        }
    }

    /// Moves the unconsumed bytes to the front (one record at most, so cheap) and grows the
    /// buffer if `need` bytes would not fit.
    fn make_room(&mut self, need: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < need {
            self.buf.resize(need.next_power_of_two(), 0);
        }
    }

    /// flate2 reports a damaged stream as `InvalidInput`/`InvalidData`, and a cut one as
    /// `UnexpectedEof`; anything else is the file system's doing.
    fn read_error(&self, e: io::Error) -> CaptureErrorKind {
        use io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
        if self.gzip && matches!(e.kind(), InvalidInput | InvalidData | UnexpectedEof) {
            CaptureErrorKind::Gzip(e)
        } else {
            CaptureErrorKind::Io(e)
        }
    }
}

/// Byte order of a legacy pcap file or of one pcapng section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    // The readers below take offsets the caller has checked against `bytes.len()`.

    pub fn u16(self, bytes: &[u8], at: usize) -> u16 {
        let b = array(bytes, at);
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    pub fn u32(self, bytes: &[u8], at: usize) -> u32 {
        let b = array(bytes, at);
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    pub fn i64(self, bytes: &[u8], at: usize) -> i64 {
        let b = array(bytes, at);
        match self {
            ByteOrder::Little => i64::from_le_bytes(b),
            ByteOrder::Big => i64::from_be_bytes(b),
        }
    }
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&bytes[at..at + N]);
    a
}
