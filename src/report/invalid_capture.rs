//! `--write-invalid FILE`: a capture of exactly the INVALID frames (ct state invalid, or dropped
//! by conntrack), with their original timestamps (nanosecond file), link type, bytes and
//! `orig_len`, to open in Wireshark or hand to whoever owns the misbehaving host.
//!
//! The file is a legacy pcap, which every tool reads, as long as all INVALID frames share a link
//! type. A pcap holds only one, so when a frame of a second link type turns up (pcapng inputs,
//! or rotated files from different interfaces), what was written so far is read back and
//! rewritten as pcapng, with one interface per link type, and writing goes on there. Either
//! way frames are streamed, never held. pcapng `epb_flags` (direction) are not carried over:
//! Linux SLL/SLL2 frames hold their direction in their own bytes.
//!
//! Like `--output`, the file is written under a temporary name beside FILE and renamed over it
//! at the end: FILE never holds half a capture. A run without INVALID frames writes a capture
//! with no frames (so scripts can count on the file), with the link type of the run's first
//! frame ([`Summary::first_link_type`]).
//!
//! Only INVALID frames matter here, and an INVALID frame is never quiet ([`Sink::quiet`]): the
//! sink lets the engine hold back the rest, which then costs no verdict and no observation
//! (half the time of a run on a healthy capture).

use crate::capture::writer::{DEFAULT_SNAPLEN, PcapNgWriter, PcapWriter, TsResolution};
use crate::capture::{CaptureSet, LinkType, Timestamp};
use crate::engine::{Observation, Sink, Summary};
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

type Out = BufWriter<NamedTempFile>;

/// The file being written.
enum Writer {
    /// No INVALID frame yet: the file header needs a link type.
    NotStarted(NamedTempFile),
    Pcap { w: PcapWriter<Out>, linktype: LinkType },
    /// `interfaces[id]` is the link type of interface `id`.
    PcapNg { w: PcapNgWriter<Out>, interfaces: Vec<LinkType> },
}

/// The frames' resolution: nanoseconds always, so no timestamp loses digits.
const RES: TsResolution = TsResolution::Nano;
/// Reader's frames are never longer than this (see `capture`), so nothing is ever cut.
const SNAPLEN: u32 = DEFAULT_SNAPLEN;

pub struct InvalidCapture {
    dest: PathBuf,
    /// `None` only while being replaced, or after `end`.
    writer: Option<Writer>,
    frames: u64,
    pcapng: bool,
}

impl InvalidCapture {
    /// Creates the temporary file beside `dest` at once, so an unwritable place is known before
    /// the run, not after it.
    pub fn create(dest: &Path) -> io::Result<InvalidCapture> {
        Ok(InvalidCapture {
            dest: dest.to_path_buf(),
            writer: Some(Writer::NotStarted(temp_beside(dest)?)),
            frames: 0,
            pcapng: false,
        })
    }

    /// INVALID frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Whether the INVALID frames had several link types, so the file is pcapng, not pcap.
    pub fn is_pcapng(&self) -> bool {
        self.pcapng
    }

    fn write(&mut self, linktype: LinkType, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let writer = match self.writer.take().expect("writer present until end") {
            Writer::NotStarted(tmp) => {
                let w = PcapWriter::new(BufWriter::new(tmp), linktype, SNAPLEN, RES)?;
                Writer::Pcap { w, linktype }
            }
            Writer::Pcap { w, linktype: first } if first != linktype => {
                self.pcapng = true;
                self.to_pcapng(w)?
            }
            other => other,
        };
        self.writer = Some(writer);
        match self.writer.as_mut().expect("just set") {
            Writer::Pcap { w, .. } => w.write_frame(ts, data, orig_len)?,
            Writer::PcapNg { w, interfaces } => {
                let id = interface(w, interfaces, linktype)?;
                w.write_packet(id, ts, data, orig_len, None)?;
            }
            Writer::NotStarted(_) => unreachable!("started above"),
        }
        self.frames += 1;
        Ok(())
    }

    /// Rewrites the pcap written so far as pcapng, by reading it back.
    fn to_pcapng(&self, pcap: PcapWriter<Out>) -> io::Result<Writer> {
        let old = pcap.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        let reader: Box<dyn Read + Send> = Box::new(BufReader::new(old.reopen()?));
        let mut frames = CaptureSet::from_readers([(old.path().display().to_string(), reader)]).map_err(io::Error::other)?;
        let mut w = PcapNgWriter::new(BufWriter::new(temp_beside(&self.dest)?))?;
        let mut interfaces = Vec::new();
        while let Some(frame) = frames.next_frame() {
            let f = frame.map_err(io::Error::other)?;
            let id = interface(&mut w, &mut interfaces, f.linktype)?;
            w.write_packet(id, f.ts, f.data, f.orig_len, None)?;
        }
        Ok(Writer::PcapNg { w, interfaces })
        // `old` is dropped here, which deletes it
    }
}

/// The pcapng interface of `linktype`, described on first use.
fn interface(w: &mut PcapNgWriter<Out>, interfaces: &mut Vec<LinkType>, linktype: LinkType) -> io::Result<u32> {
    if let Some(i) = interfaces.iter().position(|&l| l == linktype) {
        return Ok(i as u32);
    }
    let id = w.add_interface(linktype, SNAPLEN, RES)?;
    interfaces.push(linktype);
    Ok(id)
}

/// A temporary file in `dest`'s directory, so that the final rename stays on one file system.
fn temp_beside(dest: &Path) -> io::Result<NamedTempFile> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // tempfile's own message names the random temporary name, which means nothing to the user
    NamedTempFile::new_in(dir).map_err(|e| {
        // tempfile appends ` at path "…/.tmpXXXX"` (a name the user never chose) to the OS error
        let full = e.to_string();
        let cause = full.split(" at path ").next().unwrap_or(&full);
        io::Error::new(e.kind(), format!("cannot create a file in {}: {cause}", dir.display()))
    })
}

impl Sink for InvalidCapture {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        if obs.verdict.is_invalid() {
            self.write(obs.linktype, obs.ts, obs.data, obs.orig_len)?;
        }
        Ok(())
    }

    fn every_frame(&self) -> bool {
        false
    }

    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        let tmp = match self.writer.take().expect("end is called once") {
            Writer::NotStarted(tmp) => {
                let linktype = summary.first_link_type.unwrap_or(LinkType::RAW);
                PcapWriter::new(BufWriter::new(tmp), linktype, SNAPLEN, RES)?.into_inner()?
            }
            Writer::Pcap { w, .. } => w.into_inner()?,
            Writer::PcapNg { w, .. } => w.into_inner()?,
        };
        let tmp = tmp.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(&self.dest).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::FileFormat;
    use crate::report::test_support::TestFrame;
    use crate::verdict::ReasonId;

    /// Frame number, link type, timestamp, bytes and orig_len.
    type Written = (u64, LinkType, Timestamp, Vec<u8>, u32);

    /// Every frame of a capture file, and the file's format and resolution.
    fn read_back(path: &Path) -> (FileFormat, bool, Vec<Written>) {
        let mut set = CaptureSet::open(&[path.to_str().unwrap()]).expect("a capture");
        let mut frames = Vec::new();
        while let Some(f) = set.next_frame() {
            let f = f.expect("readable");
            frames.push((f.number, f.linktype, f.ts, f.data.to_vec(), f.orig_len));
        }
        let file = &set.files()[0];
        (file.format.unwrap(), file.nanosecond, frames)
    }

    fn run(dest: &Path, frames: &[TestFrame]) {
        let mut sink = InvalidCapture::create(dest).unwrap();
        for f in frames {
            sink.packet(&f.obs()).unwrap();
        }
        assert_eq!(sink.frames(), frames.iter().filter(|f| f.verdict.is_invalid()).count() as u64);
        assert!(!dest.exists(), "nothing at FILE before the end");
        // As the engine sums up a run: the first frame's link type, whether the sink saw it or not.
        sink.end(&Summary { first_link_type: frames.first().map(|f| f.linktype), ..Summary::default() }).unwrap();
    }

    fn invalid(n: u64) -> TestFrame {
        TestFrame::tcp(n, "R").invalid(ReasonId::InvalidRst, &[])
    }

    #[test]
    fn exactly_the_invalid_frames_as_a_nanosecond_pcap() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("invalid.pcap");
        let mut dropped = TestFrame::tcp(4, "S").reason(crate::verdict::CtState::Invalid, crate::verdict::Action::Drop, ReasonId::TableFull, &[]);
        dropped.ts = Timestamp(1_700_000_004_123_456_789);
        let ignored = TestFrame::tcp(3, "P.").ignored(ReasonId::SeqOvershootIgnored, &[]);
        run(&dest, &[TestFrame::tcp(1, "S"), invalid(2), ignored, dropped, TestFrame::tcp(5, ".")]);

        let (format, ns, frames) = read_back(&dest);
        assert_eq!((format, ns), (FileFormat::Pcap, true));
        let f2 = invalid(2);
        assert_eq!(frames, vec![
            (1, LinkType::RAW, f2.ts, b"frame 2".to_vec(), f2.orig_len),
            (2, LinkType::RAW, Timestamp(1_700_000_004_123_456_789), b"frame 4".to_vec(), 1007),
        ]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_second_link_type_turns_the_file_into_pcapng() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("invalid.pcap");
        let frames = [
            invalid(1),
            invalid(2),
            invalid(3).linktype(LinkType::ETHERNET),
            invalid(4),
            TestFrame::tcp(5, ".").linktype(LinkType::LINUX_SLL2),
            invalid(6).linktype(LinkType::LINUX_SLL2),
        ];
        let mut sink = InvalidCapture::create(&dest).unwrap();
        for (i, f) in frames.iter().enumerate() {
            sink.packet(&f.obs()).unwrap();
            assert_eq!(sink.is_pcapng(), i >= 2);
        }
        sink.end(&Summary::default()).unwrap();
        let (format, _, got) = read_back(&dest);
        assert_eq!(format, FileFormat::Pcapng);
        let want: Vec<_> = frames
            .iter()
            .filter(|f| f.verdict.is_invalid())
            .enumerate()
            .map(|(i, f)| (i as u64 + 1, f.linktype, f.ts, f.data.clone(), f.orig_len))
            .collect();
        assert_eq!(got, want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the pcap that was rewritten is gone");
    }

    #[test]
    fn no_invalid_frame_still_writes_a_capture() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("none.pcap");
        run(&dest, &[TestFrame::tcp(1, "S").linktype(LinkType::ETHERNET)]);
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(bytes.len(), 24, "a header, no frames");
        assert_eq!(&bytes[20..24], &1u32.to_le_bytes(), "the capture's link type");
    }

    #[test]
    fn nothing_read_gives_a_raw_capture() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("none.pcap");
        run(&dest, &[]);
        assert_eq!(&std::fs::read(&dest).unwrap()[20..24], &101u32.to_le_bytes(), "LINKTYPE_RAW");
    }

    /// Only INVALID frames are written, and those are never quiet: the engine may hold back
    /// the others (a run on a healthy capture then takes half the time).
    #[test]
    fn lets_healthy_frames_be_quiet() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!InvalidCapture::create(&dir.path().join("x.pcap")).unwrap().every_frame());
    }

    #[test]
    fn an_unfinished_run_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("invalid.pcap");
        let mut sink = InvalidCapture::create(&dest).unwrap();
        sink.packet(&invalid(1).obs()).unwrap();
        drop(sink);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_unwritable_place_fails_at_once() {
        let err = InvalidCapture::create(Path::new("/nonexistent-dir/invalid.pcap")).err().unwrap();
        assert_eq!(err.to_string(), "cannot create a file in /nonexistent-dir: No such file or directory (os error 2)");
    }
}
