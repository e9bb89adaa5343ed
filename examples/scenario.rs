//! Writes a capture from a scenario description, or a large benchmark capture.
//!
//! ```text
//! cargo run --example scenario -- fixtures/spec/t08.scn -o t08.pcap [--pcapng]
//! cargo run --release --example scenario -- --bulk --flows 50000 --size 1GiB -o big.pcap
//! cargo run --release --example scenario -- --bulk --long-flows --size 1GiB -o long.pcap
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ctreplay::synth::bulk::{BulkConfig, BulkGenerator};
use ctreplay::synth::{Format, Link, Scenario};

#[derive(Parser)]
#[command(
    about = "Write a pcap/pcapng from a scenario description (docs/scenario-format.md), or a bulk benchmark capture"
)]
struct Args {
    /// Scenario file (`-` for stdin); not used with --bulk.
    scenario: Option<String>,
    /// Output file (`-` for stdout).
    #[arg(short, long)]
    out: String,
    /// Write pcapng instead of legacy pcap.
    #[arg(long)]
    pcapng: bool,

    /// Generate many healthy connections instead of reading a scenario.
    #[arg(long)]
    bulk: bool,
    /// Number of connections (bulk); default 10000, or derived from --size.
    #[arg(long)]
    flows: Option<u64>,
    /// Approximate file size (bulk), e.g. 500MB, 1GiB.
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Connections open at once (bulk).
    #[arg(long)]
    concurrency: Option<usize>,
    /// A few long connections: 8 flows, all open at once, unless --flows / --concurrency say
    /// otherwise (bulk).
    #[arg(long)]
    long_flows: bool,
    /// Share of IPv6 connections in percent (bulk).
    #[arg(long, default_value_t = 20)]
    ipv6_percent: u32,
    /// Share of connections ended by an RST in percent (bulk).
    #[arg(long, default_value_t = 5)]
    rst_percent: u32,
    /// Random seed (bulk); the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Packets are 1 to this many microseconds apart (bulk); larger spreads the connections
    /// over more capture time.
    #[arg(long, default_value_t = 20)]
    max_gap_us: u32,
    /// Link type (bulk): ethernet, raw, sll, sll2, null, loop.
    #[arg(long, default_value = "ethernet")]
    link: String,
}

/// `1GiB`, `500MB`, `64k`, `12345`: binary units for KiB/MiB/GiB (and bare K/M/G), decimal for
/// KB/MB/GB.
fn parse_size(s: &str) -> Result<u64, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a size like 1GiB or 500MB"))?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`")),
    };
    Ok((num * mult) as u64)
}

fn output(path: &str) -> Result<Box<dyn Write>> {
    Ok(if path == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::create(path).with_context(|| format!("cannot create {path}"))?)
    })
}

fn run(args: Args) -> Result<()> {
    let format = if args.pcapng {
        Format::PcapNg
    } else {
        Format::Pcap
    };
    if args.bulk {
        let kind = Link::kind_from_name(&args.link)
            .with_context(|| format!("unknown link type {}", args.link))?;
        let defaults = BulkConfig::default();
        let (flows, concurrency) = if args.long_flows {
            (8, 8)
        } else {
            (0, defaults.concurrency)
        };
        let cfg = BulkConfig {
            flows: args.flows.unwrap_or(flows),
            concurrency: args.concurrency.unwrap_or(concurrency),
            target_bytes: args.size,
            ipv6_percent: args.ipv6_percent,
            rst_percent: args.rst_percent,
            seed: args.seed,
            link: Link::new(kind),
            max_gap_us: args.max_gap_us,
            ..defaults
        };
        let generator = BulkGenerator::new(cfg);
        let flows = generator.flows();
        let started = Instant::now();
        let stats = generator.write(output(&args.out)?, format)?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} flows, {} packets, {:.1} MB of frames in {:.2} s ({:.0} MB/s)",
            args.out,
            flows,
            stats.packets,
            stats.frame_bytes as f64 / 1e6,
            secs,
            stats.frame_bytes as f64 / 1e6 / secs
        );
        return Ok(());
    }
    let Some(path) = args.scenario else {
        bail!("give a scenario file, or --bulk")
    };
    let text = if path == "-" {
        io::read_to_string(io::stdin())?
    } else {
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?
    };
    let scenario = Scenario::parse(&text).with_context(|| path.clone())?;
    let mut out = BufWriter::new(output(&args.out)?);
    scenario
        .write(&mut out, format)
        .with_context(|| format!("{path}: writing {}", args.out))?;
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scenario: {e:#}");
            ExitCode::FAILURE
        }
    }
}
