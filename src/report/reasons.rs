//! The reason catalogue: for every reason id, what it means, why it usually happens and what
//! fixes it. The one place these texts live; `docs/reasons.md` is generated from it
//! (`cargo run --example gen-docs`), and a test fails when the two drift apart.

use crate::verdict::ReasonId;
use serde::Serialize;

/// Which part of conntrack decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Header sanity checks (`tcp_error`), before any state is consulted.
    Header,
    Checksum,
    /// The first packet of a tuple may not create an entry (`tcp_new`).
    NewRefused,
    /// The state transition table.
    StateTable,
    /// A new SYN met an entry a previous connection left behind.
    StaleTuple,
    /// Window tracking, sequence-number bounds.
    WindowSeq,
    /// Window tracking, acknowledgement bounds.
    WindowAck,
    Rst,
    Table,
}

impl Category {
    /// The part of conntrack that decides verdicts of this category, in words.
    pub fn decided_by(self) -> &'static str {
        match self {
            Category::Header => "the header checks",
            Category::Checksum => "the checksum check",
            Category::NewRefused => "entry creation",
            Category::StateTable | Category::StaleTuple => "the state transition table",
            Category::WindowSeq | Category::WindowAck => "the window checks",
            Category::Rst => "the RST sequence check",
            Category::Table => "the table size limit",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Header => "header",
            Category::Checksum => "checksum",
            Category::NewRefused => "new-refused",
            Category::StateTable => "state-table",
            Category::StaleTuple => "stale-tuple",
            Category::WindowSeq => "window-seq",
            Category::WindowAck => "window-ack",
            Category::Rst => "rst",
            Category::Table => "table",
        }
    }
}

/// What happens to the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Invalid,
    /// Accepted and tracked, but the entry is not updated.
    Ignored,
    Dropped,
}

/// One catalogue entry.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ReasonInfo {
    pub id: ReasonId,
    pub category: Category,
    pub outcome: Outcome,
    /// The kernel's log text (latest kernels; `%u`/`%d`/`%s` where numbers go), or "" if none.
    pub kernel_log: &'static str,
    /// One or two sentences: what the kernel concluded.
    pub explanation: &'static str,
    pub causes: &'static [&'static str],
    pub fixes: &'static [&'static str],
    /// Whether `nf_conntrack_tcp_be_liberal=1` changes the outcome.
    pub be_liberal_helps: bool,
}

pub const CATALOGUE: &[ReasonInfo] = &[
    ReasonInfo {
        id: ReasonId::TcpHeaderUnreadable,
        category: Category::Header,
        outcome: Outcome::Invalid,
        kernel_log: "",
        explanation: "The IP datagram holds fewer than 20 bytes of TCP header, so conntrack cannot even read the ports or flags. It attaches no entry and logs nothing.",
        causes: &["a corrupt or deliberately malformed packet", "an IP total length that lies"],
        fixes: &["drop it: nothing legitimate looks like this"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::TruncatedPacket,
        category: Category::Header,
        outcome: Outcome::Invalid,
        kernel_log: "truncated packet",
        explanation: "The TCP data offset is below 5 words, or claims a header longer than the segment the IP header announces.",
        causes: &["a corrupt or crafted packet", "a middlebox that mangled the TCP header"],
        fixes: &["find the device that corrupts the header; the packet is unusable as it is"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::BadChecksum,
        category: Category::Checksum,
        outcome: Outcome::Invalid,
        kernel_log: "bad checksum",
        explanation: "The TCP checksum is wrong, and the packet arrived from the network (PRE_ROUTING), where conntrack verifies checksums.",
        causes: &[
            "a capture taken on the sending host with transmit checksum offload (the checksum is filled in by the NIC after capture): not a real problem — use --vantage auto or host=ADDR",
            "corruption on the path (bad cable, NIC or driver bug)",
            "a middlebox that rewrote the packet without fixing the checksum",
        ],
        fixes: &[
            "for offload artefacts: nothing; conntrack never checks checksums of locally generated packets",
            "for real corruption: fix the path; as a stopgap, net.netfilter.nf_conntrack_checksum=0",
        ],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::InvalidTcpFlags,
        category: Category::Header,
        outcome: Outcome::Invalid,
        kernel_log: "invalid tcp flag combination",
        explanation: "With PSH, ECE and CWR ignored, the flags are none of SYN, SYN+URG, SYN+ACK, RST, RST+ACK, FIN+ACK, FIN+ACK+URG, ACK, ACK+URG.",
        causes: &["port scans (NULL, FIN, Xmas)", "a buggy stack sending FIN without ACK, SYN+FIN or SYN+RST"],
        fixes: &["drop it; if a legitimate peer sends it, fix the peer"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::InvalidNew,
        category: Category::NewRefused,
        outcome: Outcome::Invalid,
        kernel_log: "invalid new",
        explanation: "The packet matched no entry, and only a SYN (or, with loose pickup, an ACK) may create one. A SYN/ACK, FIN or RST with no entry is always INVALID.",
        causes: &[
            "asymmetric routing: this box never saw the SYN",
            "the entry expired or was removed earlier (a SYN/ACK more than 120 s after the SYN, a FIN after a long idle time)",
            "the conntrack table was flushed or the firewall restarted",
        ],
        fixes: &[
            "make both directions pass the same conntrack (or mark the traffic NOTRACK)",
            "raise the timeout that expired (see the entry's history)",
        ],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::PickupDisabled,
        category: Category::NewRefused,
        outcome: Outcome::Invalid,
        kernel_log: "",
        explanation: "An ACK or data segment matched no entry and nf_conntrack_tcp_loose=0 forbids picking up connections mid-stream. Not logged.",
        causes: &["a connection that predates the firewall (reboot, flush)", "an entry that expired while the connection idled"],
        fixes: &["net.netfilter.nf_conntrack_tcp_loose=1 (the default)", "longer established timeout or TCP keep-alives"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::SynMeetsReversedEntry,
        category: Category::StaleTuple,
        outcome: Outcome::Invalid,
        kernel_log: "packet (index 0) in dir 1 invalid, state %s",
        explanation: "This SYN matched an existing entry in the REPLY direction: conntrack already holds a connection from the destination to the source of this SYN, on the same ports. Only in SYN_SENT (simultaneous open) or TIME_WAIT (role switch) may the responder send a SYN; in any other state it is INVALID. The window check never runs, so be_liberal cannot help.",
        causes: &[
            "a stray segment from the server (late retransmission, keep-alive, TIME_WAIT ACK) arrived after the real entry was gone and was picked up as a new connection in the reverse direction (nf_conntrack_tcp_loose=1); the client's next SYN on that port meets it",
            "the two hosts really connected the other way round on these ports earlier, and that entry is still alive",
        ],
        fixes: &[
            "delete the stale entry: conntrack -D -p tcp --orig-src SERVER --orig-port-src PORT",
            "net.netfilter.nf_conntrack_tcp_loose=0 on the box, so stray segments cannot create entries",
            "reject TCP with --reject-with tcp-reset so strays are answered with an RST, which removes an unreplied entry at once",
            "upgrade: kernels since 3.x expire an unreplied picked-up entry after 300 s (2.6.18 kept it 5 days)",
        ],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::StateTableInvalid,
        category: Category::StateTable,
        outcome: Outcome::Invalid,
        kernel_log: "packet (index %d) in dir %d invalid, state %s",
        explanation: "The state table has no legal transition for this kind of packet in the entry's state (for example the client's ACK while the entry is still in SYN_SENT, or a FIN before the handshake). The window check never runs, so be_liberal cannot help.",
        causes: &[
            "asymmetric routing: this box saw the SYN but not the SYN/ACK, so the client's ACK arrives in SYN_SENT",
            "a packet of an older incarnation of the connection",
        ],
        fixes: &["route both directions through the same conntrack", "see the entry's history for which packet put it in this state"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::SynOnStaleEntry,
        category: Category::StaleTuple,
        outcome: Outcome::Ignored,
        kernel_log: "packet (index 0) in dir 0 ignored, state %s",
        explanation: "A new SYN from the client met a live entry of the same orientation (SYN_RECV to LAST_ACK): conntrack lets it through as ESTABLISHED (not NEW!) without changing the entry, and re-syncs if the server's SYN/ACK acknowledges it.",
        causes: &["the client reused a source port while conntrack still holds the previous connection (its close was not seen, or it is still closing)"],
        fixes: &[
            "nothing, if the ruleset accepts ESTABLISHED before it tests NEW",
            "a ruleset that only accepts `ct state new` SYNs drops these: accept established first",
        ],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::ReopenRefused,
        category: Category::StaleTuple,
        outcome: Outcome::Ignored,
        kernel_log: "packet (index 0) in dir %d ignored, state %s",
        explanation: "A SYN met an entry in TIME_WAIT or CLOSE that may not be reopened: nobody sent a FIN, and the last RST did not come from the side now sending the SYN. The SYN is let through as ESTABLISHED, ignored; the server's SYN/ACK re-syncs the entry.",
        causes: &["the connection was reset by the server, and the client reuses the port within 10 s"],
        fixes: &["usually harmless; accept established packets before testing NEW"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::StateTableIgnored,
        category: Category::StateTable,
        outcome: Outcome::Ignored,
        kernel_log: "packet (index %d) in dir %d ignored, state %s",
        explanation: "The state table says this packet may belong to a newer incarnation of the connection than the one conntrack tracks (a retransmitted SYN/ACK, an ACK answering a SYN). It is accepted but does not change the entry.",
        causes: &["retransmitted SYN/ACK", "a challenge ACK (RFC 5961) answering a SYN", "a half-open peer"],
        fixes: &["usually harmless"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::ChallengeAckIgnored,
        category: Category::StateTable,
        outcome: Outcome::Ignored,
        kernel_log: "challenge-ack ignored",
        explanation: "In LAST_ACK, after a SYN conntrack ignored, the server's ACK is an RFC 5961 challenge ACK, not the last ACK of the old connection: the entry stays in LAST_ACK.",
        causes: &["the client reused the port before the old connection finished closing"],
        fixes: &["harmless: the client's RST and retransmitted SYN reopen the entry"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::InvalidRst,
        category: Category::Rst,
        outcome: Outcome::Invalid,
        kernel_log: "invalid rst",
        explanation: "The RST's sequence number lies below the highest ACK the other side ever sent: it points into data already acknowledged, so it cannot belong to this connection (RFC 5961 blind-reset protection). be_liberal does not relax this check.",
        causes: &["an RST from an older incarnation of the connection", "a spoofed RST", "a middlebox generating RSTs with stale numbers"],
        fixes: &["net.netfilter.nf_conntrack_tcp_ignore_invalid_rst=1 (since 5.14) if the RSTs are legitimate"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::SeqOverUpperBound,
        category: Category::WindowSeq,
        outcome: Outcome::Invalid,
        kernel_log: "SEQ is over upper bound %u (over the window of the receiver)",
        explanation: "The segment starts beyond the right edge of the window the receiver advertised (td_maxend), by more than the receiver's largest window.",
        causes: &[
            "conntrack missed packets of this connection (asymmetric routing, capture of one path only)",
            "window scaling conntrack does not know about (the handshake was not seen)",
            "a broken or hostile sender",
        ],
        fixes: &["net.netfilter.nf_conntrack_tcp_be_liberal=1 accepts out-of-window packets", "route both directions through the same conntrack"],
        be_liberal_helps: true,
    },
    ReasonInfo {
        id: ReasonId::SeqOvershootIgnored,
        category: Category::WindowSeq,
        outcome: Outcome::Ignored,
        kernel_log: "%u bytes more than expected",
        explanation: "The segment reaches past the receiver's window by no more than its largest window: since 6.1 conntrack accepts it without updating the entry (but records the data as sent).",
        causes: &["a sender that overruns the advertised window slightly (common with TSO and zero-window probes)"],
        fixes: &["usually harmless"],
        be_liberal_helps: true,
    },
    ReasonInfo {
        id: ReasonId::AckOverUpperBound,
        category: Category::WindowAck,
        outcome: Outcome::Invalid,
        kernel_log: "ACK is over upper bound %u (ACKed data not seen yet)",
        explanation: "The segment acknowledges data the other side never sent as far as conntrack saw (above the peer's td_end).",
        causes: &[
            "conntrack did not see the other direction's data (asymmetric routing, hardware offload such as NSS/flowtable bypassing conntrack)",
            "a SYN/ACK whose ack number does not match the SYN",
            "a packet of another connection reusing the tuple",
        ],
        fixes: &["net.netfilter.nf_conntrack_tcp_be_liberal=1", "make conntrack see both directions"],
        be_liberal_helps: true,
    },
    ReasonInfo {
        id: ReasonId::SeqUnderLowerBound,
        category: Category::WindowSeq,
        outcome: Outcome::Ignored,
        kernel_log: "SEQ is under lower bound %u (already ACKed data retransmitted)",
        explanation: "The whole segment lies below what the receiver has already acknowledged. Since 6.1 it is accepted but ignored; older kernels made it INVALID (the Kubernetes \"connection reset by peer\" bug).",
        causes: &["a very late retransmission"],
        fixes: &["on kernels before 6.1: drop INVALID packets explicitly (or be_liberal=1) so they do not reach the host unNATed"],
        be_liberal_helps: true,
    },
    ReasonInfo {
        id: ReasonId::AckUnderLowerBound,
        category: Category::WindowAck,
        outcome: Outcome::Ignored,
        kernel_log: "ignored ACK under lower bound %u (possible overly delayed)",
        explanation: "The acknowledgement is more than max(66000, the sender's largest window) below what was already acknowledged. Since 6.1 accepted but ignored; INVALID before.",
        causes: &["an ACK delayed for a long time in the network"],
        fixes: &["usually harmless on current kernels"],
        be_liberal_helps: true,
    },
    ReasonInfo {
        id: ReasonId::TableFull,
        category: Category::Table,
        outcome: Outcome::Dropped,
        kernel_log: "nf_conntrack: table full, dropping packet",
        explanation: "The conntrack table held nf_conntrack_max entries and none could be evicted: only entries that are not ASSURED may be, or, once the table is over 95 % full, ASSURED ones that are closing (FIN_WAIT to CLOSE). Conntrack drops the packet itself; the ruleset never sees it.",
        causes: &["a SYN flood or port scan", "nf_conntrack_max too small for the load", "long timeouts keeping dead entries"],
        fixes: &["raise net.netfilter.nf_conntrack_max", "shorten timeouts", "NOTRACK traffic that needs no state"],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::InvalidSynReopen,
        category: Category::StaleTuple,
        outcome: Outcome::Invalid,
        kernel_log: "ip_ct_tcp: invalid SYN (2.6.18)",
        explanation: "2.6.18 only: a SYN met an entry in TIME_WAIT or CLOSE of the same orientation, but the client neither closed the old connection first nor chose an initial sequence number beyond the old connection's, so ip_conntrack refused to reopen the entry. Later kernels reopen it (or ignore the SYN).",
        causes: &[
            "the server closed first (or reset the connection) and the client reused the port with an ISN that went backwards: other OSes, NAT devices reusing ports for different inside hosts, load balancers",
        ],
        fixes: &[
            "upgrade the kernel (any modern kernel reopens such an entry)",
            "shorten ip_conntrack_tcp_timeout_time_wait / _close so stale entries go sooner",
            "let the client close first, or avoid port reuse with decreasing ISNs",
        ],
        be_liberal_helps: false,
    },
    ReasonInfo {
        id: ReasonId::OutOfSyncKilled,
        category: Category::StaleTuple,
        outcome: Outcome::Dropped,
        kernel_log: "ip_ct_tcp: killing out of sync session (2.6.18)",
        explanation: "2.6.18 only: the server's SYN/ACK acknowledged a SYN conntrack had ignored on a stale entry. ip_conntrack destroyed the stale entry and dropped the SYN/ACK, so the client must retransmit its SYN (about 3 s later), which then creates a clean entry. Later kernels re-sync instead.",
        causes: &["a client reused a port while conntrack still held the previous connection in SYN_RECV to LAST_ACK"],
        fixes: &["upgrade the kernel (modern kernels re-sync without a drop)", "expect a 3-second connect delay, not a failure"],
        be_liberal_helps: false,
    },
];

/// The catalogue entry of a reason.
pub fn info(id: ReasonId) -> &'static ReasonInfo {
    CATALOGUE.iter().find(|r| r.id == id).expect("every reason id is catalogued")
}

/// `docs/reasons.md`, generated.
pub fn markdown() -> String {
    let mut s = String::from(
        "# Reasons\n\n<!-- Generated from src/report/reasons.rs by `cargo run --example gen-docs`; do not edit. -->\n\n\
         Every packet ctreplay reports carries one of these reason ids. The kernel log texts are those of\n\
         current kernels (prefix `nf_ct_proto_6: `).\n\n\
         | id | category | outcome | kernel log | be_liberal helps |\n|---|---|---|---|---|\n",
    );
    for r in CATALOGUE {
        let log = if r.kernel_log.is_empty() { "(none)".to_string() } else { format!("`{}`", r.kernel_log) };
        s.push_str(&format!(
            "| [`{}`](#{}) | {} | {} | {} | {} |\n",
            r.id,
            r.id,
            r.category.as_str(),
            format!("{:?}", r.outcome).to_lowercase(),
            log,
            if r.be_liberal_helps { "yes" } else { "no" }
        ));
    }
    for r in CATALOGUE {
        s.push_str(&format!("\n## {}\n\n{}\n\nUsual causes:\n", r.id, r.explanation));
        for c in r.causes {
            s.push_str(&format!("- {c}\n"));
        }
        s.push_str("\nWhat helps:\n");
        for f in r.fixes {
            s.push_str(&format!("- {f}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_catalogued_once() {
        for id in ReasonId::ALL {
            assert_eq!(CATALOGUE.iter().filter(|r| r.id == id).count(), 1, "{id}");
        }
        assert_eq!(CATALOGUE.len(), ReasonId::ALL.len());
    }

    #[test]
    fn docs_are_generated_from_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reasons.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == markdown(),
            "docs/reasons.md is out of date: run `cargo run --example gen-docs`"
        );
    }
}
