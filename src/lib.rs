//! ctreplay: offline Linux conntrack INVALID diagnosis.
//!
//! A packet's journey reads in one direction:
//!
//! ```text
//!  capture ──► decode ──► engine ──► conntrack ──► verdict ──► report
//! ```
//!
//! * [`capture`] reads pcap / pcapng (plain or gzip, files or stdin) into [`capture::Frame`]s.
//! * [`decode`] turns a frame into a TCP [`decode::Segment`] (or says why it is skipped).
//! * [`conntrack`] is the netfilter-exact TCP tracker: the table, the state machine, the window
//!   checks, the sysctls and the kernel profiles.
//! * [`verdict`] is what the tracker says about one packet.
//! * [`history`] is a connection's packets in letters, which an entry keeps in brief and the
//!   flow summaries in full.
//! * [`engine`] runs the pipeline over a whole capture.
//! * [`report`] prints verdicts for people and programs.
//! * [`check`] replays a directory of fixture captures against their expectation files (CI).
//! * [`synth`] writes scenario captures from a compact text description (fixtures, benchmarks).
#![deny(unsafe_code)]

pub mod capture;
pub mod check;
pub mod cli;
pub mod conntrack;
pub mod decode;
pub mod engine;
pub mod history;
pub mod report;
pub mod slot_index;
pub mod synth;
pub mod verdict;
pub mod whatif;
pub mod wheel;
