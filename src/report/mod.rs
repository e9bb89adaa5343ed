//! Printing verdicts for people and programs: a terminal table, JSON Lines, …
//!
//! Every format is a [`crate::engine::Sink`]; none of them decides anything about a packet.

pub mod jsonl;
pub mod reasons;
pub mod record;
pub mod table;
