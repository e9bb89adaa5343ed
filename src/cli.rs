//! The command line: argument definitions, building a run from them, exit codes.
//! Nothing here decides anything about packets.

use crate::conntrack::profile::Profile;
use crate::conntrack::sysctl::Sysctls;
use crate::engine::{self, FailPolicy, Observation, RunInfo, Settings, Sink, Summary, Timing, TruncatedFrames, Vantage};
use crate::report::{jsonl::JsonLines, table::TableReport};
use crate::verdict::ReasonId;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{self, Write};
use std::net::IpAddr;
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
    after_help = "Exit status: 0 no INVALID packet, 1 INVALID packets found, 2 the capture could not be analysed.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse captures: report every packet conntrack would class INVALID, ignore, or log.
    Analyze(AnalyzeArgs),
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

    /// Only these reason ids make the exit code 1 (repeatable).
    #[arg(long = "fail-on", value_name = "ID", value_parser = parse_reason)]
    pub fail_on: Vec<ReasonId>,

    /// These reason ids never make the exit code 1 (repeatable).
    #[arg(long = "allow", value_name = "ID", value_parser = parse_reason)]
    pub allow: Vec<ReasonId>,

    /// Tracker threads; 1 runs everything on one thread. More add a reader thread and shard
    /// flows over N trackers (same verdicts; nf_conntrack_max is split between them). Default:
    /// the number of cores, or 1 when reading stdin (frames are batched, which would hold back
    /// the results of a live capture).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

impl AnalyzeArgs {
    /// `--threads`, or its default.
    fn threads(&self) -> usize {
        match self.threads {
            Some(n) => n.into(),
            None if self.captures.iter().any(|c| c == "-") => 1,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Options that change verdicts.
#[derive(Args, Debug, Clone)]
pub struct TrackerArgs {
    /// Kernel behaviour to emulate.
    #[arg(long, default_value = "latest", value_parser = parse_profile)]
    pub kernel: &'static Profile,

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
    Table,
    Jsonl,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncated {
    Track,
    Skip,
}

fn parse_profile(s: &str) -> Result<&'static Profile, String> {
    Profile::by_name(s).ok_or_else(|| format!("unknown kernel profile {s:?}; known: latest"))
}

fn parse_reason(s: &str) -> Result<ReasonId, String> {
    s.parse::<ReasonId>().map_err(|_| {
        let known: Vec<_> = ReasonId::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown reason id {s:?}; known: {}", known.join(", "))
    })
}

fn parse_vantage(s: &str) -> Result<Vantage, String> {
    match s {
        "forward" => Ok(Vantage::Forward),
        "auto" => Ok(Vantage::Auto),
        _ => {
            let addrs = s.strip_prefix("host=").ok_or("expected forward, auto or host=ADDR[,ADDR]")?;
            let parsed: Result<Vec<IpAddr>, _> = addrs.split(',').map(|a| a.trim().parse::<IpAddr>()).collect();
            parsed.map(Vantage::Host).map_err(|e| format!("{addrs:?}: {e}"))
        }
    }
}

impl TrackerArgs {
    pub fn settings(&self) -> Result<Settings, String> {
        let mut sysctls = Sysctls::default();
        for s in &self.sysctls {
            sysctls.set(s).map_err(|e| e.to_string())?;
        }
        Ok(Settings {
            profile: self.kernel,
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
        })
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
        Command::Analyze(args) => analyze(args),
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<u8> {
    let mut settings = args.tracker.settings().map_err(anyhow::Error::msg)?;
    settings.threads = args.threads();
    let policy = FailPolicy { fail_on: args.fail_on.clone(), allow: args.allow.clone() };
    let summary = with_output(args.output.as_deref(), |out| {
        let mut report: Box<dyn Sink> = match args.format {
            Format::Table => Box::new(TableReport::new(out, args.all, None)),
            Format::Jsonl => Box::new(JsonLines::new(out, args.all)),
        };
        let mut counting = FailureCounter { inner: report.as_mut(), policy: &policy, failures: 0 };
        let summary = engine::analyze(&args.captures, &settings, &mut counting)?;
        Ok((summary, counting.failures))
    })?;
    let (summary, failures) = summary;
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

/// Passes everything on, counting the packets the fail policy counts.
struct FailureCounter<'a> {
    inner: &'a mut dyn Sink,
    policy: &'a FailPolicy,
    failures: u64,
}

impl Sink for FailureCounter<'_> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        self.inner.begin(run)
    }
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        if self.policy.counts(&obs.verdict) {
            self.failures += 1;
        }
        self.inner.packet(obs)
    }
    fn error(&mut self, err: &crate::capture::CaptureError) -> io::Result<()> {
        self.inner.error(err)
    }
    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        self.inner.end(summary)
    }
}
