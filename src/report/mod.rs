//! Printing verdicts for people and programs: a terminal table, JSON Lines, …
//!
//! Every format is a [`crate::engine::Sink`]; none of them decides anything about a packet.

pub mod cells;
pub mod explain;
pub mod flows;
pub mod json;
pub mod invalid_capture;
pub mod jsonl;
pub mod kernels;
pub mod markdown;
pub mod progress;
pub mod reasons;
pub mod record;
pub mod table;
pub mod tee;
pub mod whatif;
#[cfg(test)]
pub(crate) mod test_support;
