//! The command line: argument definitions, building a run from them, exit codes.
//! Nothing here decides anything about packets.

use crate::check;
use crate::conntrack::profile::Profile;
use crate::conntrack::sysctl::Sysctls;
use crate::engine::{self, FailPolicy, Observation, Settings, Sink, Timing, TruncatedFrames, Vantage};
use crate::decode::Tuple;
use crate::report::explain::{self, Explain, FindFrame, Found, Target};
use crate::report::{
    invalid_capture::InvalidCapture, json::JsonDocument, jsonl::JsonLines, markdown::MarkdownReport, progress::ProgressBar,
    table::TableReport, tee::Tee,
};
use crate::verdict::{FrameRef, ReasonId};
use anyhow::Context;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code: the capture was analysed and nothing counted as a failure.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: INVALID (or dropped) packets were found.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: the capture could not be analysed, or not whole; or the command line was wrong.
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "ctreplay", version, about = "Replay tcpdump captures through a Linux-conntrack-exact TCP tracker \
and explain every packet the kernel would class INVALID.",
    after_help = "Exit status: 0 no INVALID packet, 1 INVALID packets found, 2 the capture could not be analysed. \
`explain`: 0 explained, 2 no such frame or flow. `check`: 0 every fixture passes, 1 some differ, 2 some cannot run.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse captures: report every packet conntrack would class INVALID, ignore, or log.
    // (boxed: the tracker options make the argument structs large, and clippy rightly objects
    // to an enum as large as its largest variant)
    Analyze(Box<AnalyzeArgs>),
    /// The timeline of one connection, packet by packet: every frame of the tuple of frame N (or
    /// of --flow) with its verdict and the entry's window data after it, where entries begin and
    /// end, and frame N's reason spelled out. Exit 0 explained, 2 no such frame or flow.
    Explain(Box<ExplainArgs>),
    /// Replay every fixture capture under DIR and compare with its NAME.expect.json (CI
    /// regression; see docs/fixtures.md). Exit 0 all pass, 1 some differ, 2 some cannot run.
    Check(CheckArgs),
    /// Replay captures under other kernel profiles and sysctls (in parallel) and show which
    /// INVALID packets each change removes or adds, and the smallest change that removes them.
    Whatif(Box<WhatifArgs>),
}

#[derive(Args, Debug)]
pub struct WhatifArgs {
    /// Capture files (not stdin: each variant reads them again).
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,

    /// The baseline: the kernel and sysctls of the box in question.
    #[command(flatten)]
    pub tracker: TrackerArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = WhatifFormat::Table)]
    pub format: WhatifFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhatifFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The fixtures directory (searched recursively).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Rewrite the expectation files that differ from the current results (keeping their
    /// settings), and create missing ones with the default settings.
    #[arg(long)]
    pub bless: bool,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed); `-` reads stdin. Several files
    /// (tcpdump -C/-G rotation) are analysed as one capture, in time order.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,

    #[command(flatten)]
    pub tracker: TrackerArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Report every frame, not only INVALID, ignored and logged packets.
    #[arg(long)]
    pub all: bool,

    /// Write the report to FILE instead of stdout (written whole, or not at all).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the INVALID (and conntrack-dropped) frames to FILE, with their original
    /// timestamps, link type and lengths: a pcap, or pcapng when they have several link types.
    #[arg(long = "write-invalid", value_name = "FILE")]
    pub write_invalid: Option<PathBuf>,

    /// Only these reason ids make the exit code 1 (repeatable).
    #[arg(long = "fail-on", value_name = "ID", value_parser = parse_reason)]
    pub fail_on: Vec<ReasonId>,

    /// These reason ids never make the exit code 1 (repeatable).
    #[arg(long = "allow", value_name = "ID", value_parser = parse_reason)]
    pub allow: Vec<ReasonId>,

    /// Tracker threads; 1 runs everything on one thread. More shard flows over N tracker
    /// threads while the calling thread reads and reports (same verdicts, except near
    /// nf_conntrack_max, which is split between them). Default: the number of cores; 1 when
    /// reading stdin (frames are batched, which would hold back the results of a live capture)
    /// or when nf_conntrack_max is set (table-full verdicts are exact only on one table).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

impl AnalyzeArgs {
    /// `--threads`, or its default.
    fn threads(&self) -> usize {
        match self.threads {
            Some(n) => n.into(),
            None if self.captures.iter().any(|c| c == "-") => 1,
            None if self.tracker.sets_table_size() => 1,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["frame", "flow"])))]
pub struct ExplainArgs {
    /// Capture files, as for `analyze` (`-` reads stdin).
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,

    /// The frame to explain: its number in its file (1-based, Wireshark's frame.number). Its
    /// flow's whole timeline is shown.
    #[arg(long, value_name = "N")]
    pub frame: Option<u64>,

    /// With several captures: the file frame N is in, 0 for the first (as `file` in the JSON
    /// output).
    #[arg(long, value_name = "I", requires = "frame")]
    pub file: Option<u32>,

    /// The flow to show instead: SRC:PORT>DST:PORT, either direction, e.g.
    /// `10.0.0.1:40000>10.0.0.2:80` or `[2001:db8::1]:40000>[2001:db8::2]:80`.
    #[arg(long, value_name = "TUPLE", value_parser = explain::parse_flow, conflicts_with = "frame")]
    pub flow: Option<Tuple>,

    #[command(flatten)]
    pub tracker: TrackerArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Table)]
    pub format: ExplainFormat,

    /// Write the explanation to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExplainFormat {
    /// A timeline for the terminal, and the frame's reason in words.
    Table,
    /// The timeline as one JSON document, with every number.
    Json,
}

/// Options that change verdicts.
#[derive(Args, Debug, Clone)]
pub struct TrackerArgs {
    /// Kernel behaviour to emulate: latest, 6.1, 5.14, 4.18, 3.10, 2.6.18, or a vendor alias
    /// (rhel5 … rhel9; see docs/kernels.md). Without it: latest, and every packet is also
    /// judged by the older profiles, to note where their verdicts differ.
    #[arg(long, value_parser = parse_profile)]
    pub kernel: Option<Profile>,

    /// Switch one kernel behaviour on (+NAME) or off (-NAME), e.g. for a vendor backport
    /// (repeatable; names in docs/kernels.md).
    #[arg(long = "kernel-feature", value_name = "+NAME|-NAME", allow_hyphen_values = true)]
    pub kernel_features: Vec<String>,

    /// A conntrack sysctl, NAME=VALUE, with or without the `net.netfilter.` prefix (repeatable),
    /// e.g. nf_conntrack_tcp_be_liberal=1.
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    pub sysctls: Vec<String>,

    /// Where the capture was taken: `forward` (a firewall in the path: everything at
    /// PRE_ROUTING), `auto` (find the capturing host from transmit-offload checksums), or
    /// `host=ADDR[,ADDR]` (these addresses are the capturing host; their packets are judged at
    /// OUTPUT, where checksums are not verified).
    #[arg(long, default_value = "auto", value_parser = parse_vantage)]
    pub vantage: Vantage,

    /// Frames the snaplen cut short: `track` them (lengths from the IP header, as the kernel saw
    /// them) or `skip` them (as a replay through a live kernel must).
    #[arg(long, value_enum, default_value_t = Truncated::Track)]
    pub truncated: Truncated,

    /// The clock of conntrack's timeouts: the `capture` timestamps, or `back-to-back` (no entry
    /// ever expires, as when a capture is replayed through a live kernel at full speed).
    #[arg(long, value_enum, default_value_t = TimingArg::Capture)]
    pub timing: TimingArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingArg {
    Capture,
    BackToBack,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table for the terminal.
    Table,
    /// One JSON object per line, written as the run goes (docs/output.md).
    Jsonl,
    /// One JSON document (docs/output.md).
    Json,
    /// Markdown, to paste into a ticket.
    Markdown,
}

impl Format {
    /// Whether the format writes during the run, rather than all at the end.
    fn streams(self) -> bool {
        matches!(self, Format::Jsonl | Format::Json)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncated {
    Track,
    Skip,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::by_name(s).ok_or_else(|| format!("unknown kernel profile {s:?}; known: {}", Profile::names().join(", ")))
}

fn parse_reason(s: &str) -> Result<ReasonId, String> {
    s.parse::<ReasonId>().map_err(|_| {
        let known: Vec<_> = ReasonId::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown reason id {s:?}; known: {}", known.join(", "))
    })
}

fn parse_vantage(s: &str) -> Result<Vantage, String> {
    s.parse()
}

impl TrackerArgs {
    /// Whether `--sysctl nf_conntrack_max=…` was given.
    fn sets_table_size(&self) -> bool {
        self.sysctls.iter().any(|s| s.split('=').next().is_some_and(|n| n.trim().ends_with("conntrack_max")))
    }

    pub fn settings(&self) -> Result<Settings, String> {
        let mut profile = self.kernel.clone().unwrap_or_default();
        for change in &self.kernel_features {
            profile.apply_feature(change)?;
        }
        let mut sysctls = Sysctls::default();
        for s in &self.sysctls {
            sysctls.set_for(s, &profile).map_err(|e| e.to_string())?;
        }
        let mut settings = Settings {
            profile,
            sysctls,
            vantage: self.vantage.clone(),
            truncated: match self.truncated {
                Truncated::Track => TruncatedFrames::Track,
                Truncated::Skip => TruncatedFrames::Skip,
            },
            timing: match self.timing {
                TimingArg::Capture => Timing::Capture,
                TimingArg::BackToBack => Timing::BackToBack,
            },
            snapshots: false,
            threads: 1,
            frame_bytes: true,
            compare: Vec::new(),
        };
        if self.kernel.is_none() {
            settings.compare_with_other_kernels();
        }
        Ok(settings)
    }
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { EXIT_CLEAN });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_CLEAN),
        Err(e) => {
            eprintln!("ctreplay: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<engine::EngineError>()
                .is_some_and(|ee| matches!(ee, engine::EngineError::Output(io) if io.kind() == io::ErrorKind::BrokenPipe))
    })
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Analyze(args) => analyze(*args),
        Command::Explain(args) => explain(*args),
        Command::Check(args) => check(args),
        Command::Whatif(args) => whatif(args),
    }
}

fn whatif(args: Box<WhatifArgs>) -> anyhow::Result<u8> {
    let mut settings = args.tracker.settings().map_err(anyhow::Error::msg)?;
    // whatif replays the other kernels itself, as variants
    settings.compare.clear();
    let result = crate::whatif::run(&args.captures, &settings)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match args.format {
        WhatifFormat::Table => crate::report::whatif::write_table(&mut out, &result, &args.captures)?,
        WhatifFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &result)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(EXIT_CLEAN)
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<u8> {
    let mut settings = args.tracker.settings().map_err(anyhow::Error::msg)?;
    settings.threads = args.threads();
    // only --write-invalid writes frames out; the others need not carry their bytes
    settings.frame_bytes = args.write_invalid.is_some();
    let policy = FailPolicy { fail_on: args.fail_on.clone(), allow: args.allow.clone() };
    let mut invalid = match &args.write_invalid {
        Some(path) => Some(InvalidCapture::create(path).with_context(|| format!("--write-invalid {}", path.display()))?),
        None => None,
    };
    // A bar on stderr would garble a report streaming to the same terminal.
    let stdout_shared = args.output.is_none() && args.format.streams() && io::stdout().is_terminal();
    let mut progress = if stdout_shared { None } else { ProgressBar::for_stderr() };
    let (summary, failures) = with_output(args.output.as_deref(), |out| {
        let mut report: Box<dyn Sink> = match args.format {
            Format::Table => Box::new(TableReport::new(out, args.all, None)),
            Format::Jsonl => Box::new(JsonLines::new(out, args.all)),
            Format::Json => Box::new(JsonDocument::new(out, args.all)),
            Format::Markdown => Box::new(MarkdownReport::new(out, args.all)),
        };
        let mut counting = FailureCounter { policy: &policy, failures: 0 };
        // The bar comes first, so it is cleared before a report prints at the end.
        let mut sinks: Vec<&mut dyn Sink> = Vec::new();
        if let Some(p) = progress.as_mut() {
            sinks.push(p);
        }
        sinks.push(report.as_mut());
        sinks.push(&mut counting);
        if let Some(w) = invalid.as_mut() {
            sinks.push(w);
        }
        let summary = engine::analyze(&args.captures, &settings, &mut Tee::new(sinks))?;
        Ok((summary, counting.failures))
    })?;
    if let (Some(w), Some(path)) = (&invalid, &args.write_invalid)
        && w.is_pcapng()
    {
        eprintln!("ctreplay: the INVALID frames have several link types, so {} is pcapng, not pcap", path.display());
    }
    for e in &summary.errors {
        eprintln!("ctreplay: {e}");
    }
    Ok(if !summary.errors.is_empty() {
        EXIT_ERROR
    } else if failures > 0 {
        EXIT_INVALID
    } else {
        EXIT_CLEAN
    })
}

fn explain(args: ExplainArgs) -> anyhow::Result<u8> {
    let mut settings = args.tracker.settings().map_err(anyhow::Error::msg)?;
    settings.snapshots = true;
    // a timeline follows one kernel's entry; the notes on other kernels are analyze's
    settings.compare.clear();
    // --frame reads the capture twice, and stdin can be read only once: keep a copy.
    let mut _stdin_copy = None;
    let mut captures = args.captures.clone();
    if args.frame.is_some() && captures.iter().any(|c| c == "-") {
        let mut tmp = tempfile::NamedTempFile::new().context("keeping a copy of stdin")?;
        io::copy(&mut io::stdin().lock(), &mut tmp).context("keeping a copy of stdin")?;
        for c in captures.iter_mut().filter(|c| *c == "-") {
            *c = tmp.path().to_string_lossy().into_owned();
        }
        _stdin_copy = Some(tmp);
    }

    let target = match (args.frame, args.flow) {
        (Some(number), _) => {
            let file = args.file.unwrap_or(0);
            let Some(name) = args.captures.get(file as usize) else {
                eprintln!("ctreplay: --file {file}: {} given (the first is --file 0)", crate::report::cells::plural(args.captures.len() as u64, "capture"));
                return Ok(EXIT_ERROR);
            };
            let want = FrameRef { file, number };
            let mut find = FindFrame::new(want);
            // Pass 1 stops at frame N: finding its tuple costs only the frames before it.
            let summary = match engine::analyze(&captures, &settings, &mut find) {
                Ok(summary) => Some(summary),
                Err(e) if explain::is_stop(&e) => None,
                Err(e) => return Err(e.into()),
            };
            match find.found {
                Some(Found::Tcp(tuple)) => Target::Frame(want, tuple),
                Some(Found::NotTcp(why)) => {
                    eprintln!("ctreplay: frame {number} of {name} belongs to no TCP flow: {why}");
                    return Ok(EXIT_ERROR);
                }
                None => {
                    let s = summary.unwrap_or_default();
                    let frames = s.captures.get(file as usize).map_or(0, |c| c.frames);
                    eprintln!("ctreplay: there is no frame {number} in {name}: it has {frames} frames");
                    for e in &s.errors {
                        eprintln!("ctreplay: {e}");
                    }
                    return Ok(EXIT_ERROR);
                }
            }
        }
        (None, Some(tuple)) => Target::Flow(tuple),
        (None, None) => unreachable!("clap requires --frame or --flow"),
    };

    let format = match args.format {
        ExplainFormat::Table => explain::Format::Table,
        ExplainFormat::Json => explain::Format::Json,
    };
    let bold = args.output.is_none()
        && format == explain::Format::Table
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    with_output(args.output.as_deref(), |out| {
        let mut sink = Explain::new(out, format, bold, target, settings.timing).named(args.captures.clone());
        let summary = engine::analyze(&captures, &settings, &mut sink)?;
        for e in &summary.errors {
            eprintln!("ctreplay: {e}");
        }
        if !sink.explained() {
            // Only a flow can be missing here: frame N was found by the first pass. An error
            // also keeps -o FILE from being written with nothing in it.
            anyhow::bail!("no TCP packet of {} (either direction) in the capture", target.tuple());
        }
        Ok(())
    })?;
    // Input errors after what was explained (reported above) do not undo the explanation.
    Ok(EXIT_CLEAN)
}

fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let tally = check::run(&args.dir, args.bless, &mut out)?;
    out.flush()?;
    Ok(if tally.errors > 0 {
        EXIT_ERROR
    } else if tally.failed > 0 {
        EXIT_INVALID
    } else {
        EXIT_CLEAN
    })
}

/// Runs `f` with the report's destination: stdout, or a temporary file renamed over FILE at the
/// end, so FILE never holds half a report.
fn with_output<T>(path: Option<&Path>, f: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>) -> anyhow::Result<T> {
    match path {
        None => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let r = f(&mut out)?;
            out.flush()?;
            Ok(r)
        }
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            let mut out = io::BufWriter::new(tmp);
            let r = f(&mut out)?;
            let tmp = out.into_inner().map_err(|e| e.into_error())?;
            tmp.persist(path)?;
            Ok(r)
        }
    }
}

/// Counts the packets the fail policy counts (for the exit code).
struct FailureCounter<'a> {
    policy: &'a FailPolicy,
    failures: u64,
}

impl Sink for FailureCounter<'_> {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        if self.policy.counts(obs.verdict) {
            self.failures += 1;
        }
        Ok(())
    }

    /// Only INVALID and dropped packets count, and those are never quiet.
    fn every_frame(&self) -> bool {
        false
    }
}
