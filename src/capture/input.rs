//! One input: its byte source, its format, and the frame parked at the front of its buffer.

use std::ops::Range;

use pcap_parser::{PcapError, nom, parse_pcap_header};

use super::legacy::Legacy;
use super::pcapng::{Pcapng, section_order};
use super::source::{BoxedRead, Source, decompress_if_gzip};
use super::{
    CaptureError, CaptureErrorKind, CaptureFile, FileFormat, Frame, LinkDirection, LinkType,
    Timestamp,
};

/// A packet record framed by a format reader, still lying unconsumed in the [`Source`] buffer.
pub struct Record {
    pub ts: Timestamp,
    pub linktype: LinkType,
    pub orig_len: u32,
    pub direction: Option<LinkDirection>,
    /// The captured bytes, as a range of `Source::data()`.
    pub data: Range<usize>,
    /// Length of the whole record or block, consumed once the frame has been handed out.
    pub len: usize,
}

enum Format {
    Legacy(Legacy),
    Pcapng(Pcapng),
}

pub struct Input {
    src: Source,
    format: Format,
    /// The frame read last. It stays in the buffer until the next [`Input::advance`], so the
    /// caller can borrow it in place, for as long as the merge keeps the other inputs waiting.
    head: Option<Record>,
    /// Frames read so far, which is the number of the head.
    frames: u64,
}

impl Input {
    /// Undoes gzip and recognises the format from the first bytes (and reads the legacy file
    /// header), so that a file that is no capture fails at open, before any frame is merged.
    pub fn open(path: String, reader: BoxedRead) -> Result<(Input, CaptureFile), CaptureError> {
        let fail = |kind, offset| CaptureError {
            file: path.clone(),
            frame: None,
            offset,
            kind,
        };
        let (reader, gzip) =
            decompress_if_gzip(reader).map_err(|e| fail(CaptureErrorKind::Io(e), None))?;
        let mut src = Source::new(reader, gzip);
        // Enough for either header; a shorter file is judged on what there is.
        src.fill(Legacy::HEADER_LEN)
            .map_err(|kind| fail(kind, Some(0)))?;
        let format = sniff(src.data()).map_err(|kind| fail(kind, Some(0)))?;
        let mut file = CaptureFile {
            path: path.clone(),
            format: None,
            nanosecond: false,
            big_endian: false,
            gzip,
            frames: 0,
            bytes: 0,
        };
        match &format {
            Format::Legacy(legacy) => {
                file.format = Some(FileFormat::Pcap);
                file.nanosecond = legacy.nanosecond();
                file.big_endian = legacy.big_endian();
                src.consume(Legacy::HEADER_LEN);
                file.bytes = src.offset();
            }
            Format::Pcapng(_) => file.format = Some(FileFormat::Pcapng),
        }
        Ok((
            Input {
                src,
                format,
                head: None,
                frames: 0,
            },
            file,
        ))
    }

    /// Drops the head frame and reads the next one, returning its timestamp; `None` at the end.
    /// Updates the counters in `file`.
    // Inlined into `CaptureSet::next_frame` (~9 instructions a frame).
    #[inline(always)]
    pub fn advance(&mut self, file: &mut CaptureFile) -> Result<Option<Timestamp>, CaptureError> {
        if let Some(head) = self.head.take() {
            self.src.consume(head.len);
        }
        let read = match &mut self.format {
            Format::Legacy(legacy) => legacy.next_record(&mut self.src, &mut self.head),
            Format::Pcapng(pcapng) => pcapng.next_record(&mut self.src, file).map(|record| self.head = record),
        };
        file.bytes = self.src.offset();
        match (read, &self.head) {
            (Ok(()), Some(record)) => {
                self.frames += 1;
                file.frames = self.frames;
                file.bytes += record.len as u64;
                Ok(Some(record.ts))
            }
            (Ok(()), None) => Ok(None),
            (Err(kind), _) => Err(CaptureError {
                file: file.path.clone(),
                frame: Some(self.frames + 1),
                offset: Some(self.src.offset()),
                kind,
            }),
        }
    }

    /// The head frame, borrowed from the buffer.
    pub fn frame(&self, file: usize) -> Option<Frame<'_>> {
        let head = self.head.as_ref()?;
        Some(Frame {
            file,
            number: self.frames,
            ts: head.ts,
            linktype: head.linktype,
            data: self.src.data().get(head.data.clone())?,
            orig_len: head.orig_len,
            direction: head.direction,
            offset: self.src.offset(),
        })
    }
}

/// Recognises the format from the first (up to 24) bytes.
fn sniff(head: &[u8]) -> Result<Format, CaptureErrorKind> {
    if head.is_empty() {
        return Err(CaptureErrorKind::Empty);
    }
    let not_a_capture = || {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        CaptureErrorKind::NotACapture(shown.join(" "))
    };
    if head.len() < 4 {
        return Err(not_a_capture());
    }
    if head[..4] == Pcapng::MAGIC {
        return match section_order(head) {
            Some(_) => Ok(Format::Pcapng(Pcapng::new())),
            None if head.len() < 12 => Err(CaptureErrorKind::TruncatedRecord),
            None => Err(not_a_capture()),
        };
    }
    match parse_pcap_header(head) {
        Ok((_, header)) => Ok(Format::Legacy(Legacy::new(&header))),
        // A pcap magic, but the file ends inside the header.
        Err(nom::Err::Incomplete(_)) => Err(CaptureErrorKind::TruncatedRecord),
        Err(_) => Err(not_a_capture()),
    }
}

/// A pcap-parser error in a few words: its `Debug`/`Display` would print the whole borrowed input.
pub fn describe_parse_error(what: &str, e: &nom::Err<PcapError<&[u8]>>) -> String {
    let why = match e {
        nom::Err::Incomplete(_) => "its fields run past its end".to_string(),
        nom::Err::Error(PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind))
        | nom::Err::Failure(PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind)) => {
            format!("parser check {kind:?} failed")
        }
        nom::Err::Error(other) | nom::Err::Failure(other) => other.to_string(),
    };
    format!("{what}: {why}")
}
