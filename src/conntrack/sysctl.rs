//! The conntrack sysctls that change TCP verdicts, by the kernel's names.
//!
//! `--sysctl NAME=VALUE` accepts the name with or without the `net.netfilter.` prefix. Unknown
//! names and bad values are errors, never silently ignored: a typo in a what-if must not look
//! like "this sysctl changes nothing".

use super::state::TcpState;
use serde::Serialize;
use std::fmt;

/// Per-state timeout slots, as the kernel's `tcp_timeouts[]`, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    pub syn_sent: u32,
    pub syn_recv: u32,
    pub established: u32,
    pub fin_wait: u32,
    pub close_wait: u32,
    pub last_ack: u32,
    pub time_wait: u32,
    pub close: u32,
    /// SYN_SENT2 has no sysctl of its own in current kernels.
    pub syn_sent2: u32,
    /// Cap once retransmissions reach `max_retrans`, or the last window was zero.
    pub max_retrans: u32,
    /// Cap while data is unacknowledged, and for a picked-up entry with no reply yet.
    pub unacknowledged: u32,
}

impl Timeouts {
    pub const DEFAULT: Timeouts = Timeouts {
        syn_sent: 120,
        syn_recv: 60,
        established: 432_000,
        fin_wait: 120,
        close_wait: 60,
        last_ack: 30,
        time_wait: 120,
        close: 10,
        syn_sent2: 120,
        max_retrans: 300,
        unacknowledged: 300,
    };

    /// The shortest of all the timeouts, in seconds: no entry the tracker updates expires sooner.
    pub fn shortest(&self) -> u32 {
        [
            self.syn_sent,
            self.syn_recv,
            self.established,
            self.fin_wait,
            self.close_wait,
            self.last_ack,
            self.time_wait,
            self.close,
            self.syn_sent2,
            self.max_retrans,
            self.unacknowledged,
        ]
        .into_iter()
        .min()
        .unwrap_or(0)
    }

    /// The timeout of a state, in seconds.
    pub fn of(&self, state: TcpState) -> u32 {
        match state {
            // NONE never gets a timeout of its own in practice; the kernel's slot 0 is unused.
            TcpState::None => self.syn_sent,
            TcpState::SynSent => self.syn_sent,
            TcpState::SynRecv => self.syn_recv,
            TcpState::Established => self.established,
            TcpState::FinWait => self.fin_wait,
            TcpState::CloseWait => self.close_wait,
            TcpState::LastAck => self.last_ack,
            TcpState::TimeWait => self.time_wait,
            TcpState::Close => self.close,
            TcpState::SynSent2 => self.syn_sent2,
        }
    }
}

/// The sysctls in effect for a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sysctls {
    pub tcp_be_liberal: bool,
    pub tcp_loose: bool,
    pub tcp_max_retrans: u32,
    pub tcp_ignore_invalid_rst: bool,
    pub checksum: bool,
    pub timeouts: Timeouts,
    /// `nf_conntrack_max`: entries in the table at most.
    pub max: u32,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            tcp_be_liberal: false,
            tcp_loose: true,
            tcp_max_retrans: 3,
            tcp_ignore_invalid_rst: false,
            checksum: true,
            timeouts: Timeouts::DEFAULT,
            // The kernel's default on a 64-bit machine with more than 4 GiB of RAM.
            max: 262_144,
        }
    }
}

/// A `--sysctl` that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    #[error("expected NAME=VALUE, got {0:?}")]
    Syntax(String),
    #[error("unknown sysctl {name:?}; known: {known}")]
    Unknown { name: String, known: String },
    #[error("{name} does not exist in kernel {kernel}")]
    NotInKernel { name: String, kernel: &'static str },
    #[error("{name}: {value:?} is not a valid value ({expected})")]
    BadValue { name: String, value: String, expected: &'static str },
}

/// How a value is read and where it goes.
enum Slot {
    Bool(fn(&mut Sysctls) -> &mut bool),
    Seconds(fn(&mut Sysctls) -> &mut u32),
    Count(fn(&mut Sysctls) -> &mut u32),
}

/// Every sysctl we model, by its name under `net.netfilter.`.
const KNOWN: &[(&str, Slot)] = &[
    ("nf_conntrack_tcp_be_liberal", Slot::Bool(|s| &mut s.tcp_be_liberal)),
    ("nf_conntrack_tcp_loose", Slot::Bool(|s| &mut s.tcp_loose)),
    ("nf_conntrack_tcp_max_retrans", Slot::Count(|s| &mut s.tcp_max_retrans)),
    ("nf_conntrack_tcp_ignore_invalid_rst", Slot::Bool(|s| &mut s.tcp_ignore_invalid_rst)),
    ("nf_conntrack_checksum", Slot::Bool(|s| &mut s.checksum)),
    ("nf_conntrack_max", Slot::Count(|s| &mut s.max)),
    ("nf_conntrack_tcp_timeout_syn_sent", Slot::Seconds(|s| &mut s.timeouts.syn_sent)),
    ("nf_conntrack_tcp_timeout_syn_recv", Slot::Seconds(|s| &mut s.timeouts.syn_recv)),
    ("nf_conntrack_tcp_timeout_established", Slot::Seconds(|s| &mut s.timeouts.established)),
    ("nf_conntrack_tcp_timeout_fin_wait", Slot::Seconds(|s| &mut s.timeouts.fin_wait)),
    ("nf_conntrack_tcp_timeout_close_wait", Slot::Seconds(|s| &mut s.timeouts.close_wait)),
    ("nf_conntrack_tcp_timeout_last_ack", Slot::Seconds(|s| &mut s.timeouts.last_ack)),
    ("nf_conntrack_tcp_timeout_time_wait", Slot::Seconds(|s| &mut s.timeouts.time_wait)),
    ("nf_conntrack_tcp_timeout_close", Slot::Seconds(|s| &mut s.timeouts.close)),
    ("nf_conntrack_tcp_timeout_max_retrans", Slot::Seconds(|s| &mut s.timeouts.max_retrans)),
    ("nf_conntrack_tcp_timeout_unacknowledged", Slot::Seconds(|s| &mut s.timeouts.unacknowledged)),
];

/// A sysctl's name as we store it: without the `net.netfilter.` (or 2.6.18's
/// `net.ipv4.netfilter.`) prefix, and with 2.6.18's `ip_conntrack_` spelled `nf_conntrack_`.
fn canonical_name(name: &str) -> String {
    let short = name
        .strip_prefix("net.netfilter.")
        .or_else(|| name.strip_prefix("net.ipv4.netfilter."))
        .unwrap_or(name);
    match short.strip_prefix("ip_conntrack_") {
        Some(rest) => format!("nf_conntrack_{rest}"),
        None => short.to_string(),
    }
}

impl Sysctls {
    /// The names `--sysctl` accepts (without the `net.netfilter.` prefix).
    pub fn names() -> impl Iterator<Item = &'static str> {
        KNOWN.iter().map(|(n, _)| *n)
    }

    /// Applies one `NAME=VALUE`.
    pub fn set(&mut self, assignment: &str) -> Result<(), SysctlError> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| SysctlError::Syntax(assignment.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        let short = canonical_name(name);
        let short = short.as_str();
        let slot = KNOWN.iter().find(|(n, _)| *n == short).map(|(_, s)| s).ok_or_else(|| {
            SysctlError::Unknown { name: name.to_string(), known: Self::names().collect::<Vec<_>>().join(", ") }
        })?;
        let bad = |expected| SysctlError::BadValue { name: short.to_string(), value: value.to_string(), expected };
        match slot {
            Slot::Bool(field) => {
                // The kernel takes any integer and treats non-zero as on.
                let n: i64 = value.parse().map_err(|_| bad("an integer, 0 or 1"))?;
                *field(self) = n != 0;
            }
            Slot::Seconds(field) => {
                let n: u32 = value.parse().map_err(|_| bad("whole seconds"))?;
                *field(self) = n;
            }
            Slot::Count(field) => {
                let n: u32 = value.parse().map_err(|_| bad("a non-negative integer"))?;
                *field(self) = n;
            }
        }
        Ok(())
    }

    /// Applies one `NAME=VALUE`, refusing sysctls the profile's kernel does not have.
    pub fn set_for(&mut self, assignment: &str, profile: &super::profile::Profile) -> Result<(), SysctlError> {
        let name = canonical_name(assignment.split_once('=').map_or(assignment, |(n, _)| n).trim());
        let missing = (name == "nf_conntrack_tcp_ignore_invalid_rst" && !profile.has_ignore_invalid_rst)
            || (name == "nf_conntrack_tcp_timeout_unacknowledged" && !profile.has_unacknowledged_timeout);
        if missing {
            return Err(SysctlError::NotInKernel { name, kernel: profile.name });
        }
        self.set(assignment)
    }

    /// These settings on another kernel: `None` when that kernel lacks one of the sysctls
    /// changed here, since then no box of that kernel could be set up this way.
    pub fn carried_to(&self, profile: &super::profile::Profile) -> Option<Sysctls> {
        let mut carried = Sysctls::default();
        self.changed().iter().all(|s| carried.set_for(s, profile).is_ok()).then_some(carried)
    }

    /// The settings that differ from the kernel defaults, as `name=value` (for reports).
    pub fn changed(&self) -> Vec<String> {
        let default = Sysctls::default();
        let mut out = Vec::new();
        for (name, slot) in KNOWN {
            let (mut a, mut b) = (self.clone(), default.clone());
            let (mine, theirs) = match slot {
                Slot::Bool(f) => (*f(&mut a) as u32, *f(&mut b) as u32),
                Slot::Seconds(f) | Slot::Count(f) => (*f(&mut a), *f(&mut b)),
            };
            if mine != theirs {
                out.push(format!("{name}={mine}"));
            }
        }
        out
    }
}

impl fmt::Display for Sysctls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let changed = self.changed();
        if changed.is_empty() { f.write_str("defaults") } else { f.write_str(&changed.join(" ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_name_forms() {
        let mut s = Sysctls::default();
        s.set("nf_conntrack_tcp_be_liberal=1").unwrap();
        assert!(s.tcp_be_liberal);
        s.set("net.netfilter.nf_conntrack_tcp_loose = 0").unwrap();
        assert!(!s.tcp_loose);
        s.set("nf_conntrack_tcp_timeout_established=3600").unwrap();
        assert_eq!(s.timeouts.established, 3600);
        assert_eq!(s.changed(), vec![
            "nf_conntrack_tcp_be_liberal=1",
            "nf_conntrack_tcp_loose=0",
            "nf_conntrack_tcp_timeout_established=3600"
        ]);
    }

    #[test]
    fn accepts_2_6_18_names_and_refuses_what_a_kernel_lacks() {
        let old = crate::conntrack::profile::Profile::by_name("2.6.18").unwrap();
        let mut s = Sysctls::default();
        s.set_for("net.ipv4.netfilter.ip_conntrack_tcp_be_liberal=1", &old).unwrap();
        assert!(s.tcp_be_liberal);
        assert!(matches!(
            s.set_for("nf_conntrack_tcp_ignore_invalid_rst=1", &old),
            Err(SysctlError::NotInKernel { .. })
        ));
        assert!(s.set_for("nf_conntrack_tcp_ignore_invalid_rst=1", &crate::conntrack::profile::Profile::latest()).is_ok());
    }

    #[test]
    fn rejects_unknown_names_and_bad_values() {
        let mut s = Sysctls::default();
        assert!(matches!(s.set("nf_conntrack_tcp_be_liberl=1"), Err(SysctlError::Unknown { .. })));
        assert!(matches!(s.set("nf_conntrack_tcp_loose"), Err(SysctlError::Syntax(_))));
        assert!(matches!(s.set("nf_conntrack_tcp_timeout_close=-1"), Err(SysctlError::BadValue { .. })));
        assert!(matches!(s.set("nf_conntrack_tcp_be_liberal=yes"), Err(SysctlError::BadValue { .. })));
        assert_eq!(s, Sysctls::default(), "a failed set changes nothing");
    }

    #[test]
    fn every_state_has_a_timeout() {
        for st in TcpState::ALL {
            assert!(Timeouts::DEFAULT.of(st) > 0);
        }
        assert_eq!(Timeouts::DEFAULT.of(TcpState::Established), 5 * 24 * 3600);
    }
}
