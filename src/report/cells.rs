//! The texts a human-facing report shows for one packet (frame, time, packet, states, reason),
//! shared by the terminal table and the markdown report so that both say the same thing.

use crate::capture::Timestamp;
use crate::conntrack::state::Dir;
use crate::engine::Observation;
use crate::report::flows::FlowRecord;
use crate::verdict::{Action, CreatedBy, EntryInfo, FrameRef, Verdict};

/// `12`, or `1:12` for a frame of the second input file (the first file's frames keep the plain
/// number, which is Wireshark's `frame.number`).
pub fn frame(f: FrameRef) -> String {
    if f.file > 0 { format!("{}:{}", f.file, f.number) } else { f.number.to_string() }
}

/// The packet's addresses and ports, or "" for a frame that is not TCP.
pub fn flow(obs: &Observation<'_>) -> String {
    obs.segment.map(|s| s.tuple.to_string()).unwrap_or_default()
}

/// `[S.] seq=… ack=… len=… win=…`, or why conntrack never saw the frame.
pub fn packet(obs: &Observation<'_>) -> String {
    match obs.segment {
        Some(s) => format!("[{}] seq={} ack={} len={} win={}", s.flags, s.seq, s.ack, s.payload_len(), s.window),
        None => obs.skip.as_ref().map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// The entry's TCP state around the packet: `SYN_SENT → ESTABLISHED`, one name when it did not
/// change, `-` when there was no entry.
pub fn states(v: &Verdict) -> String {
    match (v.state_before, v.state_after) {
        (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
        (Some(a), _) | (None, Some(a)) => a.to_string(),
        (None, None) => "-".into(),
    }
}

/// What conntrack did, and on a second line, where other kernels would do otherwise.
pub fn verdict(obs: &Observation<'_>) -> String {
    let action = obs.verdict.action.as_str();
    match super::kernels::note(obs.kernels) {
        Some(note) => format!("{action}\n({note})"),
        None => action.to_string(),
    }
}

/// The reason id and the kernel's log line(s); `(not logged)` when the kernel is silent about a
/// reported packet (the silence is itself a clue), both empty for an unremarkable packet.
pub fn reason_and_log(v: &Verdict) -> (String, String) {
    match &v.reason {
        Some(r) => (r.id.to_string(), v.kernel_log().unwrap_or_else(|| "(not logged)".into())),
        None => (String::new(), String::new()),
    }
}

/// `original` / `reply`, as the JSON formats spell a direction.
pub fn orientation(d: Dir) -> &'static str {
    match d {
        Dir::Original => "original",
        Dir::Reply => "reply",
    }
}

/// `syn@1`, `pickup@3`: how and where an entry was created, in the fewest characters, because
/// a stale entry's origin is what a reader of an INVALID row needs first.
pub fn created_at(by: CreatedBy, frame_ref: FrameRef) -> String {
    let how = match by {
        CreatedBy::Syn => "syn",
        CreatedBy::Pickup => "pickup",
    };
    format!("{how}@{}", frame(frame_ref))
}

/// `created at frame 3 by a SYN`, `created by mid-stream pickup of frame 3`.
pub fn created_words(by: CreatedBy, frame_ref: FrameRef) -> String {
    match by {
        CreatedBy::Syn => format!("created at frame {} by a SYN", frame(frame_ref)),
        CreatedBy::Pickup => format!("created by mid-stream pickup of frame {}", frame(frame_ref)),
    }
}

/// The entry an INVALID or ignored packet met, for a table cell: `pickup@3 ESTABLISHED reply`,
/// `syn@1 SYN_SENT`. The orientation is named only when the packet travels in the entry's reply
/// direction, the case that surprises (a SYN meeting a reversed entry); "" when there is nothing
/// to say (the packet was accepted, or met no entry).
pub fn entry_brief(v: &Verdict) -> String {
    let reported = v.is_invalid() || v.action == Action::Ignore;
    match (&v.entry, reported) {
        (Some(e), true) => {
            let mut s = format!("{} {}", created_at(e.created_by, e.created_frame), e.state);
            if e.orientation == Dir::Reply {
                s.push_str(" reply");
            }
            s
        }
        _ => String::new(),
    }
}

/// `created by mid-stream pickup of frame 3, state ESTABLISHED, orientation reply`: where the
/// entry a packet met came from, which is usually the answer to "why INVALID?".
pub fn entry_line(e: &EntryInfo) -> String {
    format!("{}, state {}, orientation {}", created_words(e.created_by, e.created_frame), e.state, orientation(e.orientation))
}

/// `1.500 s`, `250 ms`, `432000.000 s (5.0 days)`: a duration for people, from nanoseconds.
/// Seconds stay exact, because they are compared with sysctl timeouts, given in seconds.
pub fn duration(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    match ns.abs() {
        0 => "0.000 s".into(),
        n if n < 1_000_000_000 => format!("{:.0} ms", s * 1e3),
        n if n >= 86_400_000_000_000 => format!("{s:.3} s ({:.1} days)", s / 86_400.0),
        n if n >= 3_600_000_000_000 => format!("{s:.3} s ({:.1} h)", s / 3_600.0),
        _ => format!("{s:.3} s"),
    }
}

/// The columns of a flow row, shared by the terminal table and the markdown report.
pub const FLOW_HEADER: [&str; 10] =
    ["flow (original)", "entry", "frames", "start (UTC)", "duration", "states", "history", "INVALID", "ignored", "ended"];

/// A flow's cells, in [`FLOW_HEADER`]'s order: `pickup@20`, `20…30 (3)`, `SYN_SENT>SYN_RECV`, …
pub fn flow_row(f: &FlowRecord) -> [String; 10] {
    let entry = match (f.created_by, f.created_frame) {
        (Some(by), Some(at)) if f.partial => format!("{} (seen from {})", created_at(by, at), frame(f.first_frame)),
        (Some(by), Some(at)) => created_at(by, at),
        _ => "none".into(),
    };
    let frames = if f.frames == 1 {
        format!("{} (1)", frame(f.first_frame))
    } else {
        format!("{}…{} ({})", frame(f.first_frame), frame(f.last_frame), f.frames)
    };
    let states = if f.states.is_empty() {
        "-".into()
    } else {
        f.states.iter().map(|s| s.name()).collect::<Vec<_>>().join(">")
    };
    [
        f.flow.to_string(),
        entry,
        frames,
        utc(f.first_ts),
        duration(f.last_ts.0 - f.first_ts.0),
        states,
        f.history.clone(),
        (f.invalid + f.dropped).to_string(),
        f.ignored.to_string(),
        f.ended.map_or("-", |e| e.words()).to_string(),
    ]
}

/// `1 frame`, `2 frames`.
pub fn plural(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Capture time in UTC, `2023-11-14 22:13:20.000001`: microseconds, or nanoseconds when the
/// capture has them. Computed here because the crate has no calendar dependency, and a ticket
/// wants a wall-clock time, not seconds since 1970.
pub fn utc(ts: Timestamp) -> String {
    let secs = ts.0.div_euclid(1_000_000_000);
    let ns = ts.0.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let frac = if ns % 1_000 == 0 { format!("{:06}", ns / 1_000) } else { format!("{ns:09}") };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac}", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// (year, month, day) of a day number since 1970-01-01, proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00.000000");
        assert_eq!(utc(Timestamp::from_secs(1_700_000_000)), "2023-11-14 22:13:20.000000");
        assert_eq!(utc(Timestamp(1_700_000_000_123_456_000)), "2023-11-14 22:13:20.123456");
        assert_eq!(utc(Timestamp(1_700_000_000_123_456_789)), "2023-11-14 22:13:20.123456789");
        // a leap day, and the last second of a century year that is a leap year
        assert_eq!(utc(Timestamp::from_secs(951_782_400)), "2000-02-29 00:00:00.000000");
        assert_eq!(utc(Timestamp::from_secs(978_307_199)), "2000-12-31 23:59:59.000000");
        assert_eq!(utc(Timestamp(-1_000)), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn entry_cells() {
        use crate::conntrack::state::TcpState;
        use crate::report::test_support::TestFrame;
        use crate::verdict::ReasonId;
        let stale = TestFrame::tcp(12, "S")
            .invalid(ReasonId::SynMeetsReversedEntry, &[])
            .entry(3, CreatedBy::Pickup, Dir::Reply, TcpState::Established);
        assert_eq!(entry_brief(&stale.verdict), "pickup@3 ESTABLISHED reply");
        let retrans = TestFrame::tcp(2, "S").ignored(ReasonId::StateTableIgnored, &[]).entry(1, CreatedBy::Syn, Dir::Original, TcpState::SynSent);
        assert_eq!(entry_brief(&retrans.verdict), "syn@1 SYN_SENT");
        let accepted = TestFrame::tcp(4, ".").entry(1, CreatedBy::Syn, Dir::Original, TcpState::Established);
        assert_eq!(entry_brief(&accepted.verdict), "", "accepted rows need no entry cell");
        assert_eq!(entry_brief(&TestFrame::tcp(5, ".").invalid(ReasonId::InvalidNew, &[]).verdict), "");
        assert_eq!(
            entry_line(stale.verdict.entry.as_ref().unwrap()),
            "created by mid-stream pickup of frame 3, state ESTABLISHED, orientation reply"
        );
        assert_eq!(created_words(CreatedBy::Syn, FrameRef { file: 1, number: 9 }), "created at frame 1:9 by a SYN");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0.000 s");
        assert_eq!(duration(250_000_000), "250 ms");
        assert_eq!(duration(10_600_000_000), "10.600 s");
        assert_eq!(duration(7_200_000_000_000), "7200.000 s (2.0 h)");
        assert_eq!(duration(431_999_999_000_000), "431999.999 s (5.0 days)");
    }

    #[test]
    fn frame_labels() {
        assert_eq!(frame(FrameRef { file: 0, number: 7 }), "7");
        assert_eq!(frame(FrameRef { file: 2, number: 7 }), "2:7");
    }
}
