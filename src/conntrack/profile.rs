//! Kernel profiles: one value per kernel era, holding what differs between eras.
//!
//! Today only the latest mainline behaviour (what the oracle shows on this machine) is
//! modelled; older eras add their tables, switches and log texts here.

use super::state::{Table, LATEST};

/// The behaviour of one kernel era.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The name users pass to `--kernel`.
    pub name: &'static str,
    /// A one-line description for reports.
    pub description: &'static str,
    /// The transition table.
    pub table: &'static Table,
    /// Prefix of every conntrack TCP log line.
    pub log_prefix: &'static str,
    /// `CONFIG_HZ`: the "lower timeout to %u" log line prints jiffies.
    pub hz: u32,
}

impl Profile {
    pub const LATEST: Profile = Profile {
        name: "latest",
        description: "current mainline (as the live kernel oracle shows, 6.18)",
        table: &LATEST,
        log_prefix: "nf_ct_proto_6: ",
        hz: 250,
    };

    /// Looks a profile up by its `--kernel` name.
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        [&Self::LATEST].into_iter().find(|p| p.name == name)
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::LATEST
    }
}
