//! The expectation file, `NAME.expect.json`: the settings a capture is replayed with, and what
//! must become of its frames. Documented in `docs/fixtures.md`.
//!
//! Written by hand-friendly rules: one frame per line (so a change reads as a one-line diff),
//! unknown fields refused (a misspelt `sysctl` must not silently mean "defaults").

use crate::conntrack::profile::Profile;
use crate::conntrack::sysctl::Sysctls;
use crate::engine::{Settings, Timing, TruncatedFrames, Vantage};
use crate::verdict::{Action, CtState, ReasonId};
use serde::{Deserialize, Serialize};

/// The version of the file's shape.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub schema_version: u32,
    /// The ctreplay version that produced `frames` (or last blessed them).
    pub version: String,
    /// The kernel whose answers `frames` are, when produced from a live kernel (`uname -r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// The kernel profile (`--kernel`).
    pub kernel: String,
    /// `NAME=VALUE`, as `--sysctl` takes them.
    #[serde(default)]
    pub sysctls: Vec<String>,
    /// `forward`, `auto` or `host=ADDR[,ADDR]`, as `--vantage` takes it.
    pub vantage: String,
    /// `track` (the default) or `skip`, as `--truncated` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<TruncatedFrames>,
    /// `capture` (the default) or `back-to-back`, as `--timing` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// Where the expected answers come from, for a reader: the live kernel, or (for kernels
    /// that cannot be observed here) the spec sections and kernel sources they were checked
    /// against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// In frame order, each frame once.
    pub frames: Vec<FrameExpectation>,
}

/// What becomes of one frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameExpectation {
    /// 1-based, as Wireshark numbers frames.
    pub frame: u64,
    pub ct_state: CtState,
    pub verdict: Action,
    /// The reason id, `null` for a packet conntrack has nothing to say about.
    #[serde(default)]
    pub reason: Option<ReasonId>,
    /// Every line the kernel logs for the packet, joined by `; `; `null` when it logs nothing.
    #[serde(default)]
    pub kernel_log: Option<String>,
}

impl FrameExpectation {
    /// Whether a report without `--all` shows the frame (the same rule as
    /// [`crate::verdict::Verdict::is_notable`]).
    pub fn is_notable(&self) -> bool {
        matches!(self.verdict, Action::Invalid | Action::Drop) || self.reason.is_some()
    }

    /// `invalid/invalid syn-meets-reversed-entry "nf_ct_proto_6: …"`, for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{}", self.ct_state.as_str(), self.verdict.as_str());
        if let Some(r) = self.reason {
            s.push(' ');
            s.push_str(r.as_str());
        }
        if let Some(l) = &self.kernel_log {
            s.push(' ');
            s.push_str(&quote(l));
        }
        s
    }
}

impl Expectation {
    /// An expectation with `settings` and no frames yet.
    pub fn for_settings(settings: &Settings) -> Expectation {
        Expectation {
            schema_version: SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION").into(),
            kernel_version: None,
            kernel: settings.profile.name.into(),
            sysctls: settings.sysctls.changed(),
            vantage: settings.vantage.describe(),
            truncated: (settings.truncated != TruncatedFrames::Track).then_some(settings.truncated),
            timing: (settings.timing != Timing::Capture).then_some(settings.timing),
            note: None,
            frames: Vec::new(),
        }
    }

    /// Reads a file's text, checking what serde cannot: the schema version, frame numbers, and
    /// that the settings mean something.
    pub fn from_json(text: &str) -> Result<Expectation, String> {
        let e: Expectation = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if e.schema_version != SCHEMA_VERSION {
            return Err(format!("schema_version {} is not one this ctreplay reads ({SCHEMA_VERSION})", e.schema_version));
        }
        let mut last = 0;
        for f in &e.frames {
            if f.frame <= last {
                return Err(if f.frame == 0 {
                    "frame 0: frames are numbered from 1".to_string()
                } else {
                    format!("frame {}: frames must be listed once each, in order", f.frame)
                });
            }
            last = f.frame;
        }
        e.settings()?;
        Ok(e)
    }

    /// The file's text: the settings one per line, then the frames one per line.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\n");
        let mut field = |k: &str, v: String| s.push_str(&format!("  \"{k}\": {v},\n"));
        field("schema_version", j(&self.schema_version));
        field("version", j(&self.version));
        if let Some(k) = &self.kernel_version {
            field("kernel_version", j(k));
        }
        field("kernel", j(&self.kernel));
        field("sysctls", j(&self.sysctls));
        field("vantage", j(&self.vantage));
        if let Some(t) = &self.truncated {
            field("truncated", j(t));
        }
        if let Some(t) = &self.timing {
            field("timing", j(t));
        }
        if let Some(n) = &self.note {
            field("note", j(n));
        }
        s.push_str("  \"frames\": [");
        for (i, f) in self.frames.iter().enumerate() {
            s.push_str(if i == 0 { "\n    " } else { ",\n    " });
            s.push_str(&j(f));
        }
        s.push_str(if self.frames.is_empty() { "]\n}\n" } else { "\n  ]\n}\n" });
        s
    }

    /// The run settings the expectation names.
    pub fn settings(&self) -> Result<Settings, String> {
        let profile = Profile::by_name(&self.kernel).ok_or_else(|| format!("unknown kernel profile {:?}", self.kernel))?;
        let mut sysctls = Sysctls::default();
        for s in &self.sysctls {
            sysctls.set_for(s, &profile).map_err(|e| e.to_string())?;
        }
        let vantage: Vantage = self.vantage.parse().map_err(|e| format!("vantage {:?}: {e}", self.vantage))?;
        Ok(Settings {
            profile,
            sysctls,
            vantage,
            truncated: self.truncated.unwrap_or(TruncatedFrames::Track),
            timing: self.timing.unwrap_or(Timing::Capture),
            snapshots: false,
            threads: 1,
            frame_bytes: true,
            compare: Vec::new(),
        })
    }

    /// The same settings (as written, and the kernel version it came from) with new frames, by
    /// this version of ctreplay.
    pub fn blessed(&self, frames: Vec<FrameExpectation>) -> Expectation {
        Expectation { version: env!("CARGO_PKG_VERSION").into(), frames, ..self.clone() }
    }
}

/// A kernel log line in messages: quoted as in the file, so it can be searched for there.
pub fn quote(s: &str) -> String {
    j(s)
}

/// Compact JSON of plain data.
fn j<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Expectation {
        Expectation {
            schema_version: 1,
            version: "0.1.0".into(),
            kernel_version: Some("6.18.44".into()),
            kernel: "latest".into(),
            sysctls: vec!["nf_conntrack_tcp_loose=0".into()],
            vantage: "host=10.0.0.1,2001:db8::1".into(),
            truncated: Some(TruncatedFrames::Skip),
            timing: None,
            note: None,
            frames: vec![
                FrameExpectation {
                    frame: 2,
                    ct_state: CtState::Invalid,
                    verdict: Action::Invalid,
                    reason: Some(ReasonId::InvalidNew),
                    kernel_log: Some("nf_ct_proto_6: invalid new".into()),
                },
                FrameExpectation { frame: 7, ct_state: CtState::Invalid, verdict: Action::Invalid, reason: Some(ReasonId::PickupDisabled), kernel_log: None },
            ],
        }
    }

    #[test]
    fn round_trip_one_frame_per_line() {
        let e = sample();
        let text = e.to_json();
        assert_eq!(
            text,
            r#"{
  "schema_version": 1,
  "version": "0.1.0",
  "kernel_version": "6.18.44",
  "kernel": "latest",
  "sysctls": ["nf_conntrack_tcp_loose=0"],
  "vantage": "host=10.0.0.1,2001:db8::1",
  "truncated": "skip",
  "frames": [
    {"frame":2,"ct_state":"invalid","verdict":"invalid","reason":"invalid-new","kernel_log":"nf_ct_proto_6: invalid new"},
    {"frame":7,"ct_state":"invalid","verdict":"invalid","reason":"pickup-disabled","kernel_log":null}
  ]
}
"#
        );
        assert_eq!(Expectation::from_json(&text).unwrap(), e);

        let bare = Expectation { kernel_version: None, truncated: None, frames: vec![], ..e };
        let text = bare.to_json();
        assert!(!text.contains("kernel_version") && !text.contains("truncated"));
        assert!(text.ends_with("\"frames\": []\n}\n"));
        assert_eq!(Expectation::from_json(&text).unwrap(), bare);
    }

    #[test]
    fn settings_come_from_the_file() {
        let s = sample().settings().unwrap();
        assert_eq!(s.profile.name, "latest");
        assert!(!s.sysctls.tcp_loose);
        assert_eq!(s.vantage.describe(), "host=10.0.0.1,2001:db8::1");
        assert_eq!(s.truncated, TruncatedFrames::Skip);
        // and back: a new expectation records settings the way the file does
        let again = Expectation::for_settings(&s);
        assert_eq!((again.kernel, again.sysctls, again.vantage, again.truncated), ("latest".into(), sample().sysctls, sample().vantage, Some(TruncatedFrames::Skip)));
        assert_eq!(Expectation::for_settings(&Settings::default()).truncated, None);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let good = sample().to_json();
        let cases = [
            (good.replace("\"sysctls\"", "\"sysctl\""), "unknown field `sysctl`"),
            (good.replace("\"invalid-new\"", "\"invalid-neww\""), "unknown variant `invalid-neww`"),
            (good.replace("\"ct_state\":\"invalid\"", "\"ct_state\":\"bogus\""), "unknown variant `bogus`"),
            (good.replace("\"schema_version\": 1", "\"schema_version\": 2"), "schema_version 2"),
            (good.replace("\"frame\":7", "\"frame\":2"), "frame 2: frames must be listed once each, in order"),
            (good.replace("\"frame\":2", "\"frame\":0"), "frame 0: frames are numbered from 1"),
            (good.replace("\"latest\"", "\"2.4\""), "unknown kernel profile \"2.4\""),
            (good.replace("tcp_loose=0", "tcp_lose=0"), "unknown sysctl"),
            (good.replace("host=10.0.0.1", "host=10.0.0.300"), "vantage"),
            (good.replace("\"skip\"", "\"maybe\""), "unknown variant `maybe`"),
            (good.replace("\"frames\": [", "\"framez\": ["), "unknown field `framez`"),
            (good[..good.len() / 2].to_string(), "EOF"),
        ];
        for (text, want) in cases {
            let err = Expectation::from_json(&text).unwrap_err();
            assert!(err.contains(want), "{want:?} in {err:?}");
        }
    }

    #[test]
    fn bless_keeps_settings_and_kernel_version() {
        let old = Expectation { version: "0.0.1".into(), ..sample() };
        let frames = vec![sample().frames[1].clone()];
        let new = old.blessed(frames.clone());
        assert_eq!(new, Expectation { version: env!("CARGO_PKG_VERSION").into(), frames, ..sample() });
    }

    #[test]
    fn describe_and_notability() {
        let [a, b] = <[FrameExpectation; 2]>::try_from(sample().frames).unwrap();
        assert_eq!(a.describe(), r#"invalid/invalid invalid-new "nf_ct_proto_6: invalid new""#);
        assert_eq!(b.describe(), "invalid/invalid pickup-disabled");
        assert!(a.is_notable());
        let quiet = FrameExpectation { frame: 1, ct_state: CtState::Established, verdict: Action::Accept, reason: None, kernel_log: None };
        assert!(!quiet.is_notable());
        assert_eq!(quiet.describe(), "established/accept");
    }
}
