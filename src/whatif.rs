//! What-if: the same capture under other kernels and other sysctls, compared with a baseline.
//!
//! Each variant changes one thing (a kernel profile, or one sysctl) and is analysed in full, in
//! parallel; the answer is which INVALID packets each change removes or adds, and the smallest
//! single change that removes them all — or why no knob can.

use crate::engine::{self, EngineError, Observation, OtherKernel, Settings, Sink};
use crate::verdict::{Action, FrameRef, ReasonId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

/// One change from the baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    /// How a user would write the change: `--kernel 2.6.18`, `nf_conntrack_tcp_be_liberal=1`.
    pub change: String,
    #[serde(skip)]
    pub settings: Settings,
}

/// The packets a run found INVALID or dropped, with their reasons.
pub type Failures = BTreeMap<FrameRef, ReasonId>;

/// One variant's outcome compared with the baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub change: String,
    /// Baseline failures this change removes.
    pub removes: Vec<(FrameRef, ReasonId)>,
    /// Failures this change adds.
    pub adds: Vec<(FrameRef, ReasonId)>,
    pub failures: usize,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct WhatIf {
    pub baseline: String,
    pub failures: Vec<(FrameRef, ReasonId)>,
    pub outcomes: Vec<Outcome>,
}

impl WhatIf {
    /// The single changes that remove every baseline failure, fewest additions first.
    pub fn complete_fixes(&self) -> Vec<&Outcome> {
        let mut v: Vec<&Outcome> = self
            .outcomes
            .iter()
            .filter(|o| !self.failures.is_empty() && o.removes.len() == self.failures.len())
            .collect();
        v.sort_by_key(|o| o.adds.len());
        v
    }

    /// Baseline failures per reason id.
    pub fn by_reason(&self) -> BTreeMap<ReasonId, usize> {
        let mut m = BTreeMap::new();
        for (_, r) in &self.failures {
            *m.entry(*r).or_default() += 1;
        }
        m
    }
}

/// The variants tried against `base`: every other kernel profile, then each sysctl that can
/// change a verdict, then each timeout ten times longer and ten times shorter.
pub fn variants(base: &Settings) -> Vec<Variant> {
    let mut out = Vec::new();
    for OtherKernel { profile, sysctls } in base.other_kernels() {
        let change = format!("--kernel {}", profile.name);
        out.push(Variant { change, settings: Settings { profile, sysctls, ..base.clone() } });
    }
    let mut sysctl = |assignment: String| {
        let mut s = base.sysctls.clone();
        if s.set_for(&assignment, &base.profile).is_ok() && s != base.sysctls {
            out.push(Variant { change: assignment, settings: Settings { sysctls: s, ..base.clone() } });
        }
    };
    sysctl("nf_conntrack_tcp_be_liberal=1".into());
    sysctl("nf_conntrack_tcp_loose=0".into());
    sysctl("nf_conntrack_tcp_loose=1".into());
    sysctl("nf_conntrack_tcp_ignore_invalid_rst=1".into());
    sysctl("nf_conntrack_checksum=0".into());
    sysctl("nf_conntrack_tcp_max_retrans=1".into());
    let t = &base.sysctls.timeouts;
    let timeouts: [(&str, u32); 9] = [
        ("syn_sent", t.syn_sent),
        ("syn_recv", t.syn_recv),
        ("established", t.established),
        ("fin_wait", t.fin_wait),
        ("close_wait", t.close_wait),
        ("last_ack", t.last_ack),
        ("time_wait", t.time_wait),
        ("close", t.close),
        ("unacknowledged", t.unacknowledged),
    ];
    for (name, secs) in timeouts {
        sysctl(format!("nf_conntrack_tcp_timeout_{name}={}", secs.saturating_mul(10)));
        sysctl(format!("nf_conntrack_tcp_timeout_{name}={}", (secs / 10).max(1)));
    }
    out
}

/// Collects a run's failures.
#[derive(Default)]
struct Collect {
    failures: Failures,
}

impl Sink for Collect {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        let v = &obs.verdict;
        if matches!(v.action, Action::Invalid | Action::Drop) {
            let id = v.reason.as_ref().map_or(ReasonId::TcpHeaderUnreadable, |r| r.id);
            self.failures.insert(obs.frame, id);
        }
        Ok(())
    }

    /// Only INVALID and dropped packets are collected, and those are never quiet.
    fn every_frame(&self) -> bool {
        false
    }
}

fn failures(inputs: &[String], settings: &Settings) -> Result<Failures, EngineError> {
    let mut c = Collect::default();
    let summary = engine::analyze(inputs, settings, &mut c)?;
    if let Some(e) = summary.errors.first() {
        return Err(EngineError::Output(io::Error::other(format!("the capture could not be read whole: {e}"))));
    }
    Ok(c.failures)
}

/// Runs the baseline and every variant (in parallel) and compares them.
pub fn run(inputs: &[String], base: &Settings) -> Result<WhatIf, EngineError> {
    if inputs.iter().any(|i| i == "-") {
        return Err(EngineError::Output(io::Error::other("whatif reads the capture many times: give files, not stdin")));
    }
    let baseline = failures(inputs, base)?;
    let variants = variants(base);
    let results: Result<Vec<(String, Failures)>, EngineError> =
        variants.par_iter().map(|v| failures(inputs, &v.settings).map(|f| (v.change.clone(), f))).collect();
    let outcomes = results?
        .into_iter()
        .map(|(change, f)| Outcome {
            removes: baseline.iter().filter(|(k, _)| !f.contains_key(k)).map(|(k, r)| (*k, *r)).collect(),
            adds: f.iter().filter(|(k, _)| !baseline.contains_key(k)).map(|(k, r)| (*k, *r)).collect(),
            failures: f.len(),
            change,
        })
        .collect();
    let mut name = format!("--kernel {}", base.profile.name);
    for s in base.sysctls.changed() {
        name.push_str(&format!(" --sysctl {s}"));
    }
    Ok(WhatIf { baseline: name, failures: baseline.into_iter().collect(), outcomes })
}
