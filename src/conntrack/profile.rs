//! Kernel profiles: one value per kernel era, holding everything that differs between eras —
//! behaviour switches, the transition table built from them, the log texts, and which sysctls
//! exist. `--kernel PROFILE` picks one; `--kernel-feature +NAME/-NAME` flips one switch, for
//! vendor kernels that carry backports.
//!
//! Sources: the spec's §12 (version differences), read against the kernel sources it cites;
//! 2.6.18 against CentOS 5's `ip_conntrack_proto_tcp.c` directly. Where the spec marks an era's
//! behaviour as unconfirmed, the choice is noted in `docs/kernels.md`.

use super::state::{build_table, Table};

/// Which generation of log texts a kernel prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// 2.6.18 `ip_conntrack`: "ip_ct_tcp: invalid state", short window texts.
    IpCtTcp,
    /// 3.x `nf_conntrack`: "nf_ct_tcp: invalid state", short window texts.
    NfCtTcp,
    /// 4.x–6.0: "nf_ct_proto_6: " prefix, short texts.
    ProtoShort,
    /// 6.1 and later: "packet (index %d) in dir %d invalid, state %s", window texts with numbers.
    ProtoDetailed,
}

/// How the retransmission counter compares a segment with the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetransWindow {
    /// 2.6.18: the window is not compared.
    Ignored,
    /// 3.x: the scaled window.
    Scaled,
    /// 4.x and later: the raw window field.
    Raw,
}

/// Who may answer a SYN with a SYN/ACK from the originator's side (the ORIGINAL SYN/ACK row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginalSynAck {
    /// 2.6.18: always INVALID.
    AlwaysInvalid,
    /// 3.x: ignored from SYN_RECV on, SYN_SENT2 → SYN_RECV.
    IgnoredLate,
    /// 5.x and later: SYN_RECV and SYN_SENT2 → SYN_RECV, INVALID otherwise.
    SimultaneousOnly,
}

/// Declares [`Features`] from one list: each switch's doc comment, field and
/// `--kernel-feature` name, so the documentation, the struct and the names cannot drift apart.
macro_rules! features {
    ($( $(#[doc = $doc:literal])* $field:ident => $name:literal, )*) => {
        /// Every behaviour that changed between the kernels we model. `docs/kernels.md` is
        /// generated from these declarations.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Features {
            $( $(#[doc = $doc])* pub $field: bool, )*
            /// Who may answer a SYN from the originator's side (the ORIGINAL SYN/ACK row).
            pub original_synack: OriginalSynAck,
            /// What the retransmission counter compares.
            pub retrans_window: RetransWindow,
        }

        impl Features {
            /// Every switchable (boolean) feature's name.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Every switch: its name, what it does, and whether it is on here.
            pub fn describe(&self) -> Vec<(&'static str, String, bool)> {
                vec![$(($name, [$($doc),*].iter().map(|d| d.trim()).collect::<Vec<_>>().join(" "), self.$field)),*]
            }

            /// Switches a feature by name; false if there is no such feature.
            pub fn set(&mut self, name: &str, on: bool) -> bool {
                match name {
                    $($name => self.$field = on,)*
                    _ => return false,
                }
                true
            }

            /// The names of the features that are on.
            pub fn enabled(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $(if self.$field { v.push($name); })*
                v
            }
        }
    };
}

// Every behaviour that changed between the kernels we model: the on/off switches (named for
// `--kernel-feature`) and, in the macro, two multi-valued ones.
features! {
    // --- header checks ---
    /// PSH is masked off before the flag check (SYN+URG, RST+PSH valid). 2.6.18: PSH counts.
    psh_masked_in_flag_check => "psh-masked-in-flag-check",
    // --- the state table ---
    /// A REPLY SYN in SYN_SENT is a simultaneous open (SYN_SENT2). 2.6.18: INVALID.
    simultaneous_open => "simultaneous-open",
    /// A REPLY ACK in SYN_RECV completes a simultaneous open.
    simultaneous_open_flag => "simultaneous-open-flag",
    /// A REPLY SYN may reopen a TIME_WAIT entry (the server became a client).
    reply_syn_reopens_time_wait => "reply-syn-reopens-time-wait",
    /// A retransmitted REPLY SYN/ACK in SYN_RECV is ignored (2.6.18: window-checked, SYN_RECV).
    reply_synack_in_syn_recv_ignored => "reply-synack-in-syn-recv-ignored",
    // --- reopening and re-syncing ---
    /// 2.6.18's reopen rule: only the SYN sender's own close, or a higher ISN, reopens
    /// TIME_WAIT/CLOSE; otherwise the SYN is INVALID ("invalid SYN").
    reopen_by_own_close_or_higher_isn => "reopen-by-own-close-or-higher-isn",
    /// 2.6.18: an RST also marks its sender as the closer (CLOSE_INIT).
    close_init_on_close => "close-init-on-close",
    /// A SYN/ACK answering an ignored SYN re-syncs the entry. 2.6.18: the entry is destroyed and
    /// the SYN/ACK dropped ("killing out of sync session").
    resync_on_synack => "resync-on-synack",
    /// A SYN ignored in LAST_ACK expects an RFC 5961 challenge ACK, which does not close it.
    challenge_ack_in_last_ack => "challenge-ack-in-last-ack",
    // --- window tracking ---
    /// 2.6.18: a direction is unseen while `td_end == 0`; the reply direction starts with
    /// `td_maxwin = 1`, and the receiver's window grows without checking it is known.
    reply_maxwin_starts_at_one => "reply-maxwin-starts-at-one",
    /// ≤ 3.6 and 2.6.18: segments without data skip the sequence checks I and II.
    zero_length_skips_seq_checks => "zero-length-skips-seq-checks",
    /// Since 3.11: check II passes while the receiver's window is unknown.
    unknown_receiver_window_passes_ii => "unknown-receiver-window-passes-ii",
    /// Since 6.1: old retransmissions and overly delayed ACKs are ignored, not INVALID.
    tristate_window => "tristate-window",
    /// Since 6.1: a segment slightly beyond the window is ignored ("bytes more than expected").
    overshoot_workaround => "overshoot-workaround",
    /// Since 5.17 / 6.1 (and RHEL 8): a SYN or SYN/ACK with a higher sequence number
    /// re-initialises its direction in SYN_SENT or SYN_RECV whichever side sends it (and only
    /// SYNs do). Before: only the originator in SYN_SENT or the responder in SYN_RECV, any packet.
    reinit_on_any_higher_syn => "reinit-on-any-higher-syn",
    /// Since 6.1: the "both sides must offer window scaling" reset runs only for the reply.
    wscale_reset_on_reply_only => "wscale-reset-on-reply-only",
    /// Since 6.1: option parsing keeps a direction's BE_LIBERAL flag.
    options_keep_liberal => "options-keep-liberal",
    /// Since 4.x: the mid-stream initialisation also sets up an unseen receiver, and adjusts for
    /// a keep-alive reply.
    midstream_receiver_init => "midstream-receiver-init",
    /// Since 3.x: bound IV tests the SACK edge with `>=`; 2.6.18 tests the ACK with `>`.
    ack_lower_bound_uses_sack => "ack-lower-bound-uses-sack",
    /// Since 3.x: DATA_UNACKNOWLEDGED bookkeeping and the UNACK timeout.
    unacknowledged_data => "unacknowledged-data",
    // --- RST ---
    /// Since 3.x: td_maxack is kept, and an RST below the peer's highest ACK is INVALID.
    rst_maxack_check => "rst-maxack-check",
    /// Since 5.x: an in-window but inexact RST keeps an established connection established.
    rst_inexact_keeps_state => "rst-inexact-keeps-state",
    /// Since 5.14: RSTs in closing states, after a SYN, or with sequence 0 skip the max-ack check.
    rst_reuse_exceptions => "rst-reuse-exceptions",
    /// Since 5.14: every accepted RST gets the CLOSE timeout.
    rst_close_timeout => "rst-close-timeout",
    /// Since 6.2 (6.1 stable): an RST answering a challenge ACK in SYN_SENT is accepted.
    rst_after_challenge_ack => "rst-after-challenge-ack",
    /// Since 2026: the "RST answers an ignored SYN" shortcut needs the RST from the other side.
    rst_ignored_syn_other_direction => "rst-ignored-syn-other-direction",
    // --- timeouts ---
    /// Since 3.x: an unanswered picked-up entry lives 300 s, not the ESTABLISHED 5 days.
    unreplied_pickup_capped => "unreplied-pickup-capped",
    /// Since 5.14: a retransmitted SYN does not refresh a SYN_SENT entry.
    syn_retransmit_no_refresh => "syn-retransmit-no-refresh",
    /// Since 5.x: a zero window caps the timeout at the RETRANS timeout.
    zero_window_retrans_cap => "zero-window-retrans-cap",
    /// Since 6.1: out-of-window FIN/RST from both sides lower an assured entry's timeout.
    lower_timeout_on_invalid_fin_rst => "lower-timeout-on-invalid-fin-rst",
    // --- logging ---
    /// Latest: a refused first packet logs "invalid new".
    log_invalid_new => "log-invalid-new",
}



impl Features {
    /// Current mainline, as the live kernel here (6.18) shows it.
    pub const LATEST: Features = Features {
        psh_masked_in_flag_check: true,
        simultaneous_open: true,
        simultaneous_open_flag: true,
        reply_syn_reopens_time_wait: true,
        original_synack: OriginalSynAck::SimultaneousOnly,
        reply_synack_in_syn_recv_ignored: true,
        reopen_by_own_close_or_higher_isn: false,
        close_init_on_close: false,
        resync_on_synack: true,
        challenge_ack_in_last_ack: true,
        reply_maxwin_starts_at_one: false,
        zero_length_skips_seq_checks: false,
        unknown_receiver_window_passes_ii: true,
        tristate_window: true,
        overshoot_workaround: true,
        reinit_on_any_higher_syn: true,
        wscale_reset_on_reply_only: true,
        options_keep_liberal: true,
        midstream_receiver_init: true,
        ack_lower_bound_uses_sack: true,
        retrans_window: RetransWindow::Raw,
        unacknowledged_data: true,
        rst_maxack_check: true,
        rst_inexact_keeps_state: true,
        rst_reuse_exceptions: true,
        rst_close_timeout: true,
        rst_after_challenge_ack: true,
        rst_ignored_syn_other_direction: true,
        unreplied_pickup_capped: true,
        syn_retransmit_no_refresh: true,
        zero_window_retrans_cap: true,
        lower_timeout_on_invalid_fin_rst: true,
        log_invalid_new: true,
    };

    /// 6.1 as released (the tristate window checks; no "invalid new" log, no 2026 RST fix).
    pub const V6_1: Features = Features {
        rst_ignored_syn_other_direction: false,
        log_invalid_new: false,
        ..Features::LATEST
    };

    /// 5.14 (RHEL 9's base): boolean window checks, the 5.14 RST rework.
    pub const V5_14: Features = Features {
        tristate_window: false,
        overshoot_workaround: false,
        reinit_on_any_higher_syn: false,
        wscale_reset_on_reply_only: false,
        options_keep_liberal: false,
        rst_after_challenge_ack: false,
        lower_timeout_on_invalid_fin_rst: false,
        ..Features::V6_1
    };

    /// 4.18 (RHEL 8's base; RHEL 8 carries the 2022 SYN re-init backport).
    pub const V4_18: Features = Features {
        reinit_on_any_higher_syn: true,
        rst_inexact_keeps_state: false,
        rst_reuse_exceptions: false,
        rst_close_timeout: false,
        syn_retransmit_no_refresh: false,
        zero_window_retrans_cap: false,
        ..Features::V5_14
    };

    /// 3.10 (RHEL 7's base, upstream; RHEL 7 kernels carry many later backports).
    pub const V3_10: Features = Features {
        simultaneous_open_flag: false,
        reply_syn_reopens_time_wait: false,
        original_synack: OriginalSynAck::IgnoredLate,
        challenge_ack_in_last_ack: false,
        unknown_receiver_window_passes_ii: false,
        reinit_on_any_higher_syn: false,
        midstream_receiver_init: false,
        retrans_window: RetransWindow::Scaled,
        ..Features::V4_18
    };

    /// 2.6.18 (CentOS / RHEL 5, `ip_conntrack`).
    pub const V2_6_18: Features = Features {
        psh_masked_in_flag_check: false,
        simultaneous_open: false,
        original_synack: OriginalSynAck::AlwaysInvalid,
        reply_synack_in_syn_recv_ignored: false,
        reopen_by_own_close_or_higher_isn: true,
        close_init_on_close: true,
        resync_on_synack: false,
        reply_maxwin_starts_at_one: true,
        zero_length_skips_seq_checks: true,
        ack_lower_bound_uses_sack: false,
        retrans_window: RetransWindow::Ignored,
        unacknowledged_data: false,
        rst_maxack_check: false,
        unreplied_pickup_capped: false,
        ..Features::V3_10
    };
}

/// The behaviour of one kernel era.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The name users pass to `--kernel`.
    pub name: &'static str,
    pub description: &'static str,
    pub features: Features,
    /// Built from `features`.
    pub table: Table,
    pub log_style: LogStyle,
    /// `CONFIG_HZ`: the "lower timeout to %u" log line prints jiffies.
    pub hz: u32,
    /// Whether `nf_conntrack_tcp_ignore_invalid_rst` exists (5.14+).
    pub has_ignore_invalid_rst: bool,
    /// Whether `nf_conntrack_tcp_timeout_unacknowledged` exists (3.x+).
    pub has_unacknowledged_timeout: bool,
}

/// The profiles `--kernel` knows, newest first: (name, description, features, log style, HZ).
const ERAS: &[(&str, &str, Features, LogStyle, u32)] = &[
    ("latest", "current mainline, as the live kernel oracle shows it (6.18)", Features::LATEST, LogStyle::ProtoDetailed, 250),
    ("6.1", "Linux 6.1 as released (tristate window checks)", Features::V6_1, LogStyle::ProtoDetailed, 250),
    ("5.14", "Linux 5.14 (RHEL 9 base): boolean window checks, the RST rework", Features::V5_14, LogStyle::ProtoShort, 1000),
    ("4.18", "Linux 4.18 (RHEL 8 base, with its SYN re-init backport)", Features::V4_18, LogStyle::ProtoShort, 1000),
    ("3.10", "Linux 3.10 (RHEL 7 base, upstream behaviour)", Features::V3_10, LogStyle::NfCtTcp, 1000),
    ("2.6.18", "Linux 2.6.18 (CentOS / RHEL 5, ip_conntrack)", Features::V2_6_18, LogStyle::IpCtTcp, 1000),
];

/// Vendor names for the eras. Vendor kernels carry backports: see `docs/kernels.md`.
const ALIASES: &[(&str, &str)] = &[
    ("rhel5", "2.6.18"),
    ("centos5", "2.6.18"),
    ("rhel6", "3.10"),
    ("rhel7", "3.10"),
    ("rhel8", "4.18"),
    ("rhel9", "5.14"),
];

impl Profile {
    fn from_era(&(name, description, features, log_style, hz): &(&'static str, &'static str, Features, LogStyle, u32)) -> Profile {
        Profile {
            name,
            description,
            features,
            table: build_table(&features),
            log_style,
            hz,
            has_ignore_invalid_rst: features.rst_reuse_exceptions,
            has_unacknowledged_timeout: features.unacknowledged_data,
        }
    }

    /// The default profile.
    pub fn latest() -> Profile {
        Profile::from_era(&ERAS[0])
    }

    /// Looks a profile up by its `--kernel` name or a vendor alias.
    pub fn by_name(name: &str) -> Option<Profile> {
        let name = ALIASES.iter().find(|(a, _)| *a == name).map_or(name, |(_, n)| *n);
        ERAS.iter().find(|e| e.0 == name).map(Profile::from_era)
    }

    /// Every era's profile, newest first.
    pub fn all() -> Vec<Profile> {
        ERAS.iter().map(Profile::from_era).collect()
    }

    /// Every name `--kernel` accepts.
    pub fn names() -> Vec<&'static str> {
        ERAS.iter().map(|e| e.0).chain(ALIASES.iter().map(|a| a.0)).collect()
    }

    /// Applies `+NAME` / `-NAME` (a vendor backport, or its absence).
    pub fn apply_feature(&mut self, change: &str) -> Result<(), String> {
        let (on, name) = match change.split_at_checked(1) {
            Some(("+", n)) => (true, n),
            Some(("-", n)) => (false, n),
            _ => return Err(format!("expected +NAME or -NAME, got {change:?}")),
        };
        if !self.features.set(name, on) {
            return Err(format!("unknown kernel feature {name:?}; known: {}", Features::NAMES.join(", ")));
        }
        self.table = build_table(&self.features);
        Ok(())
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::latest()
    }
}

/// The table of switches per era, in markdown (the generated part of `docs/kernels.md`).
pub fn features_markdown() -> String {
    let eras = Profile::all();
    let mut s = String::from("| feature |");
    for p in &eras {
        s.push_str(&format!(" {} |", p.name));
    }
    s.push_str(" behaviour |\n|---|");
    s.push_str(&"---|".repeat(eras.len() + 1));
    s.push('\n');
    let described: Vec<_> = eras.iter().map(|p| p.features.describe()).collect();
    for (i, (name, doc, _)) in described[0].iter().enumerate() {
        s.push_str(&format!("| `{name}` |"));
        for d in &described {
            s.push_str(if d[i].2 { " ✔ |" } else { " ✘ |" });
        }
        s.push_str(&format!(" {doc} |\n"));
    }
    let row = |label: &str, value: &dyn Fn(&Features) -> String, doc: &str| {
        let mut r = format!("| {label} |");
        for p in &eras {
            r.push_str(&format!(" {} |", value(&p.features)));
        }
        r.push_str(&format!(" {doc} |\n"));
        r
    };
    s.push_str(&row("(ORIGINAL SYN/ACK row)", &|f| format!("{:?}", f.original_synack), "AlwaysInvalid: 2.6.18; IgnoredLate: ignored from SYN_RECV on (3.x); SimultaneousOnly: only SYN_RECV/SYN_SENT2 → SYN_RECV"));
    s.push_str(&row("(retransmission window)", &|f| format!("{:?}", f.retrans_window), "what the retransmission counter compares: nothing, the scaled or the raw window"));
    s
}

/// Replaces the generated part of `docs/kernels.md` (between its markers) in `doc`.
pub fn update_kernels_doc(doc: &str) -> Option<String> {
    const START: &str = "<!-- generated: features (cargo run --example gen-docs) -->\n";
    const END: &str = "<!-- end generated -->";
    let a = doc.find(START)? + START.len();
    let b = doc[a..].find(END)? + a;
    Some(format!("{}{}{}", &doc[..a], features_markdown(), &doc[b..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_doc_is_generated_from_the_features() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/kernels.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let fresh = update_kernels_doc(&doc).expect("docs/kernels.md has the generated-section markers");
        assert!(doc == fresh, "docs/kernels.md is out of date: run `cargo run --example gen-docs`");
    }

    #[test]
    fn every_name_resolves() {
        for n in Profile::names() {
            assert!(Profile::by_name(n).is_some(), "{n}");
        }
        assert_eq!(Profile::by_name("rhel5").unwrap().name, "2.6.18");
        assert!(Profile::by_name("2.4").is_none());
    }

    #[test]
    fn feature_switches_round_trip() {
        let mut p = Profile::by_name("5.14").unwrap();
        assert!(!p.features.tristate_window);
        p.apply_feature("+tristate-window").unwrap();
        assert!(p.features.tristate_window);
        assert!(p.apply_feature("+no-such-thing").is_err());
        assert!(p.apply_feature("tristate-window").is_err());
        for name in Features::NAMES {
            let mut f = Features::LATEST;
            assert!(f.set(name, false), "{name}");
        }
    }

    #[test]
    fn eras_differ_where_the_spec_says() {
        let old = Profile::by_name("2.6.18").unwrap().features;
        assert!(!old.simultaneous_open && !old.resync_on_synack && !old.unreplied_pickup_capped);
        let (latest, v5_14) = (Profile::latest().features, Profile::by_name("5.14").unwrap().features);
        assert!(latest.tristate_window && !v5_14.tristate_window);
    }
}
