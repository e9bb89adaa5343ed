//! The throughput and memory benchmark of `ctreplay analyze` (see docs/performance.md).
//!
//! ```text
//! cargo run --release --example bench                 # everything: ~5 GB of captures in bench-data/
//! cargo run --release --example bench -- --quick      # 256 MiB captures, one run each
//! cargo run --release --example bench -- --floor FILE # just iterate FILE's records (the floor)
//! cargo run --release --example bench -- --decode FILE # read and decode only (profiling)
//! cargo run --release --example bench -- --live FILE  # read, decode, track on one table; how
//!                                                     # many entries FILE keeps alive
//! cargo run --release --example bench -- --instructions # instructions per packet (valgrind)
//! cargo run --release --example bench -- --binary target/pgo/ctreplay # measure another build
//! cargo run --release --example bench -- --training DIR # 128 MiB captures of each kind, for
//!                                                     # tools/pgo-build.sh
//! ```
//!
//! It writes synthetic captures with `synth::bulk` into a scratch directory (`bench-data/`,
//! git-ignored; kept between runs), then runs the release `ctreplay` binary on them as a child
//! process, measuring wall time, CPU time and peak RSS (from `wait4`), next to the floor (this
//! program iterating the same file's records with `CaptureSet` and nothing else) and to
//! tshark's TCP analysis of a 100 MB capture of the same kind, when tshark is installed (its
//! rate is extrapolated to the full size). It prints a Markdown report with the machine and its
//! load.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ctreplay::capture::CaptureSet;
use ctreplay::conntrack::profile::Profile;
use ctreplay::conntrack::sysctl::Sysctls;
use ctreplay::conntrack::{Conntrack, Hook, Packet};
use ctreplay::decode::{Decoded, Decoder};
use ctreplay::synth::bulk::{BulkConfig, BulkGenerator};
use ctreplay::verdict::FrameRef;

#[derive(Parser)]
#[command(about = "Benchmark ctreplay analyze: packets/s, MB/s and peak RSS on synthetic captures")]
struct Args {
    /// Scratch directory for the captures (kept between runs).
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
    /// Size of the large captures.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Timed runs per measurement; the best is reported (the machine may be shared).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Thread counts to run ctreplay with (default: 1 and the number of cores).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// 256 MiB captures, one run, no RSS series: a smoke test of the benchmark itself.
    #[arg(long)]
    quick: bool,
    /// Leave tshark out.
    #[arg(long)]
    no_tshark: bool,
    /// Only iterate the records of FILE and print their count and bytes (the floor).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["live", "decode"])]
    floor: Option<PathBuf>,
    /// Only read and decode FILE (a stage of the pipeline, for profiling).
    #[arg(long, value_name = "FILE", conflicts_with = "live")]
    decode: Option<PathBuf>,
    /// Only track FILE and print how many entries the table held (peak and mean).
    #[arg(long, value_name = "FILE")]
    live: Option<PathBuf>,
    /// Instead of timing: count the instructions `ctreplay analyze` executes per packet on
    /// 32 MiB captures of each kind, one thread, under valgrind's callgrind. Exact and the same
    /// on every run, whatever else the machine is doing, so it compares two commits where wall
    /// times on a shared machine cannot (cache misses are not in it).
    #[arg(long)]
    instructions: bool,
    /// The `ctreplay` to measure, e.g. the profile-guided build of `tools/pgo-build.sh`
    /// (default: `cargo build --release`'s, built first).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Only write a 128 MiB capture of each kind into DIR, with another seed than the measured
    /// ones: the synthetic part of `tools/pgo-build.sh`'s training run.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["floor", "decode", "live", "instructions"])]
    training: Option<PathBuf>,
}

/// The kinds of traffic measured.
#[derive(Clone, Copy)]
enum Kind {
    /// About a million short connections per GiB (handshake, a small request and response, close):
    /// small packets, a new flow every ten packets. Packets are spread (~2200 per second, 250
    /// new connections per second) so that, with conntrack's 120 s TIME_WAIT, a realistic
    /// ~30 000 entries are alive at once.
    Short,
    /// Connections with ~24 kB responses (handshake, MSS-sized data, delayed ACKs, close).
    Mixed,
    /// Eight long bulk transfers: full-sized segments and their ACKs.
    Long,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Short => "short",
            Kind::Mixed => "mixed",
            Kind::Long => "long",
        }
    }

    fn config(self, size: u64, seed: u64) -> BulkConfig {
        let base = BulkConfig { target_bytes: Some(size), seed, ..BulkConfig::default() };
        match self {
            // ~1150 bytes of file per connection: 934 000 connections per GiB.
            Kind::Short => BulkConfig { flows: size / 1150, max_gap_us: 888, ..base },
            Kind::Mixed => BulkConfig { flows: 0, ..base },
            Kind::Long => BulkConfig { flows: 8, concurrency: 8, ..base },
        }
    }

    /// The capture, written first if it is not there yet.
    fn capture(self, dir: &Path, size: u64) -> Result<PathBuf> {
        self.capture_seeded(dir, size, BulkConfig::default().seed)
    }

    /// [`Kind::capture`] from another seed of the generator (in the file's name unless it is
    /// the default).
    fn capture_seeded(self, dir: &Path, size: u64, seed: u64) -> Result<PathBuf> {
        let seeded = if seed == BulkConfig::default().seed { String::new() } else { format!("-seed{seed}") };
        let path = dir.join(format!("{}-{}MiB{seeded}.pcap", self.name(), size >> 20));
        if !path.exists() {
            eprintln!("writing {} …", path.display());
            let tmp = path.with_extension("pcap.part");
            let out = BufWriter::new(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
            BulkGenerator::new(self.config(size, seed)).write_pcap(out)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(path)
    }
}

/// One finished child process.
struct Measured {
    wall: Duration,
    /// User and system time of all its threads: the work done, which a busy machine changes
    /// less than the wall time, and which over the wall time says how many cores were kept busy.
    cpu: Duration,
    max_rss_kib: u64,
    stdout: String,
}

/// Runs a command to completion, measuring its wall time, CPU time and peak RSS.
fn measure(cmd: &mut Command) -> Result<Measured> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("starting a child")?;
    let mut stdout = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout)?;
    let (status, cpu, max_rss_kib) = wait_with_rusage(child.id())?;
    let wall = start.elapsed();
    // ctreplay exits 1 when it finds INVALID packets; only a failure to analyse is an error.
    if !matches!(status, Some(0 | 1)) {
        bail!("{cmd:?} failed (exit status {status:?})");
    }
    Ok(Measured { wall, cpu, max_rss_kib, stdout })
}

/// `wait4`: the exit code, the CPU time (user + system) and the peak resident set size of one
/// child. std's `Child::wait` does not return resource usage, and `getrusage(RUSAGE_CHILDREN)`
/// would mix all children.
#[allow(unsafe_code)]
fn wait_with_rusage(pid: u32) -> Result<(Option<i32>, Duration, u64)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 writes it and the status for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if got != pid as libc::pid_t {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    // Linux reports ru_maxrss in KiB.
    Ok((code, time(usage.ru_utime) + time(usage.ru_stime), usage.ru_maxrss as u64))
}

/// What a series of runs tells besides its best run.
struct Series {
    /// The middle wall time (of an even number, the later of the two middle ones): on a shared
    /// machine the best run may be a lucky one, and a busy spell may spoil all but one.
    median: Duration,
    /// The load average before each run.
    loads: String,
}

/// The best of `runs` measurements, and the series they made.
fn best_of(runs: usize, mut make: impl FnMut() -> Command) -> Result<(Measured, Series)> {
    let mut best: Option<Measured> = None;
    let mut walls = Vec::new();
    let mut loads = Vec::new();
    for _ in 0..runs.max(1) {
        loads.push(load_average());
        let m = measure(&mut make())?;
        walls.push(m.wall);
        if best.as_ref().is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    walls.sort();
    let series = Series { median: walls[walls.len() / 2], loads: loads.join(" / ") };
    Ok((best.expect("at least one run"), series))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_string())
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// `--training`: the synthetic captures `tools/pgo-build.sh` trains the profile-guided build on.
/// From another seed than the measured captures, so that the build is not tuned to the very
/// packets it is measured on; large enough that their counts outweigh the fixtures'.
fn training(dir: &Path) -> Result<()> {
    const TRAINING_SEED: u64 = 2;
    std::fs::create_dir_all(dir)?;
    for kind in [Kind::Short, Kind::Mixed, Kind::Long] {
        println!("{}", kind.capture_seeded(dir, 128 << 20, TRAINING_SEED)?.display());
    }
    Ok(())
}

/// `--floor`: read every record and touch its bytes, nothing else.
fn floor(path: &Path) -> Result<()> {
    let mut captures = CaptureSet::open(&[path.to_string_lossy()])?;
    let (mut frames, mut bytes, mut check) = (0u64, 0u64, 0u64);
    while let Some(frame) = captures.next_frame() {
        let frame = frame?;
        frames += 1;
        bytes += frame.data.len() as u64;
        check = check.wrapping_add(frame.data.first().copied().unwrap_or(0).into());
    }
    println!("{frames} frames {bytes} bytes (check {check})");
    Ok(())
}

/// `--decode`: reading and decoding, nothing else.
fn decode(path: &Path) -> Result<()> {
    let mut captures = CaptureSet::open(&[path.to_string_lossy()])?;
    let mut decoder = Decoder::new();
    let (mut frames, mut tcp) = (0u64, 0u64);
    while let Some(frame) = captures.next_frame() {
        frames += 1;
        tcp += matches!(decoder.decode(&frame?), Decoded::Tcp(_)) as u64;
    }
    println!("{frames} frames, {tcp} TCP segments");
    Ok(())
}

/// `--live`: tracks the file on one table and reports how many entries it held.
fn live(path: &Path) -> Result<()> {
    let mut captures = CaptureSet::open(&[path.to_string_lossy()])?;
    let mut decoder = Decoder::new();
    let mut ct = Conntrack::new(Profile::latest(), Sysctls::default());
    let (mut packets, mut peak, mut sum, mut samples) = (0u64, 0, 0, 0u64);
    while let Some(frame) = captures.next_frame() {
        let frame = frame?;
        if let Decoded::Tcp(seg) = decoder.decode(&frame) {
            let fref = FrameRef { file: 0, number: frame.number };
            ct.track(&Packet { seg: &seg, ts: frame.ts, frame: fref, hook: Hook::PreRouting, seq: packets, capture_ts: frame.ts });
            packets += 1;
            if packets.is_multiple_of(10_000) {
                peak = peak.max(ct.entries());
                sum += ct.entries() as u64;
                samples += 1;
            }
        }
    }
    println!("{packets} packets; entries alive (sampled every 10 000 packets): peak {peak}, mean {}", sum / samples.max(1));
    Ok(())
}

/// The `ctreplay` to measure: `--binary`, or the release build next to this example's binary,
/// built if needed.
fn ctreplay_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        if !path.is_file() {
            bail!("--binary {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(["build", "--release", "--quiet", "--bin", "ctreplay"]).status()?;
    if !status.success() {
        bail!("cargo build --release --bin ctreplay failed");
    }
    let exe = std::env::current_exe()?;
    // target/release/examples/bench → target/release/ctreplay
    let bin = exe.parent().and_then(Path::parent).context("locating target/release")?.join("ctreplay");
    if !bin.exists() {
        bail!("{} not found", bin.display());
    }
    Ok(bin)
}

fn tshark_available() -> bool {
    Command::new("tshark").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Reads a file once, untimed, so that the measurements find it in the page cache. (Some
/// kernels page out file cache that has not been used for a minute, e.g. with DAMON.)
fn warm(path: &Path) -> Result<()> {
    std::io::copy(&mut File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

/// The frame count a `--floor` child printed.
fn count_of(m: &Measured) -> Result<u64> {
    Ok(m.stdout.split_whitespace().next().unwrap_or("0").parse()?)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn run(args: Args) -> Result<()> {
    if let Some(path) = &args.floor {
        return floor(path);
    }
    if let Some(path) = &args.decode {
        return decode(path);
    }
    if let Some(path) = &args.live {
        return live(path);
    }
    if let Some(dir) = &args.training {
        return training(dir);
    }
    std::fs::create_dir_all(&args.dir)?;
    let ctreplay = ctreplay_binary(args.binary.as_deref())?;
    if args.instructions {
        return instructions(&args.dir, &ctreplay);
    }
    let me = std::env::current_exe()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = args.threads.clone();
    if threads.is_empty() {
        threads = vec![1, cores];
        threads.dedup();
    }
    let (size, runs) = if args.quick { (256 << 20, 1) } else { (args.size, args.runs) };

    println!("# ctreplay benchmark\n");
    println!("machine: {cores} cores ({}), load average at start {}", cpu_model(), load_average());
    println!("binary: {}", ctreplay.display());
    println!("best of {runs} run(s), and their median wall time; the load average (1 min) before each run is listed\n");
    println!("| capture | MB | packets | what | threads | wall s | median s | CPU s | cores busy | Mpkt/s | MB/s | peak RSS MiB | % of floor | load |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let row = |cap: &Path, bytes: u64, packets: u64, what: &str, threads: &str, m: &Measured, floor: Option<f64>, series: &Series| {
        let secs = m.wall.as_secs_f64();
        let cpu = m.cpu.as_secs_f64();
        let pct = floor.map_or("".into(), |f| format!("{:.0} %", 100.0 * f / secs));
        println!(
            "| {} | {:.0} | {} | {what} | {threads} | {secs:.3} | {:.3} | {cpu:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {pct} | {} |",
            cap.file_name().unwrap().to_string_lossy(),
            bytes as f64 / 1e6,
            packets,
            series.median.as_secs_f64(),
            cpu / secs,
            packets as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6,
            mib(m.max_rss_kib),
            series.loads,
        );
    };

    let mut series = vec![(Kind::Short, size), (Kind::Mixed, size), (Kind::Long, size)];
    if !args.quick {
        // RSS must stay flat as the capture grows: the same traffic, a quarter and half as long.
        series.splice(0..0, [(Kind::Short, size / 4), (Kind::Short, size / 2)]);
    }
    // The best ctreplay packet rate on each kind's full-size capture, for the tshark comparison.
    let mut best_rate = Vec::new();
    for (kind, size) in series {
        let cap = kind.capture(&args.dir, size)?;
        let bytes = std::fs::metadata(&cap)?.len();
        warm(&cap)?;
        // The floor: this program, iterating the records.
        let (fl, series) = best_of(runs, || {
            let mut c = Command::new(&me);
            c.arg("--floor").arg(&cap);
            c
        })?;
        let packets = count_of(&fl)?;
        let floor_secs = fl.wall.as_secs_f64();
        row(&cap, bytes, packets, "floor: read + iterate records", "1", &fl, None, &series);
        let analyze = |options: &[&str], threads: usize| {
            let mut c = Command::new(&ctreplay);
            c.arg("analyze").args(options).args(["--threads", &threads.to_string()]).arg(&cap);
            c
        };
        let mut fastest = f64::INFINITY;
        // One kernel profile, as a user who knows the box's kernel runs it …
        for &t in &threads {
            let (m, series) = best_of(runs, || analyze(&["--kernel", "latest"], t))?;
            row(&cap, bytes, packets, "ctreplay analyze --kernel latest", &t.to_string(), &m, Some(floor_secs), &series);
            fastest = fastest.min(m.wall.as_secs_f64());
        }
        // … and the default, which also judges every packet on the five older profiles.
        let t = threads.iter().max().copied().unwrap_or(1);
        let (m, series) = best_of(runs, || analyze(&[], t))?;
        row(&cap, bytes, packets, "ctreplay analyze (default: 5 older kernels compared)", &t.to_string(), &m, Some(floor_secs), &series);
        best_rate.retain(|(k, _): &(&str, f64)| *k != kind.name());
        best_rate.push((kind.name(), packets as f64 / fastest));
    }

    if !args.no_tshark && tshark_available() {
        // tshark is ~100 times slower: it reads a 100 MB capture of each kind, and its rate is
        // set against ctreplay's best rate on the full-size capture (startup costs would
        // otherwise dominate ctreplay's time on the small file).
        println!("
tshark (`-o tcp.analyze_sequence_numbers:TRUE -q -z io,stat,0`) on 100 MB captures of the same kinds; its rate extrapolated to the full size, against ctreplay's best rate there:
");
        println!("| capture | packets | tshark s | median s | tshark kpkt/s | ctreplay Mpkt/s (full size) | ratio | load |");
        println!("|---|---|---|---|---|---|---|---|");
        for kind in [Kind::Short, Kind::Mixed, Kind::Long] {
            let Some(&(_, ours)) = best_rate.iter().find(|(k, _)| *k == kind.name()) else { continue };
            let cap = kind.capture(&args.dir, 100 << 20)?;
            warm(&cap)?;
            let mut count = Command::new(&me);
            count.arg("--floor").arg(&cap);
            let packets = count_of(&measure(&mut count)?)?;
            // The best of as many runs as ctreplay had: tshark's rate swings with the load
            // as much as ours (57–121 k packets/s here), and one run against a best of three
            // would flatter the ratio.
            let (ts, series) = best_of(runs, || {
                let mut c = Command::new("tshark");
                c.arg("-r").arg(&cap).args(["-o", "tcp.analyze_sequence_numbers:TRUE", "-q", "-z", "io,stat,0"]);
                c
            })?;
            let theirs = packets as f64 / ts.wall.as_secs_f64();
            println!(
                "| {} | {packets} | {:.2} | {:.2} | {:.0} | {:.2} | {:.0}× | {} |",
                cap.file_name().unwrap().to_string_lossy(),
                ts.wall.as_secs_f64(),
                series.median.as_secs_f64(),
                theirs / 1e3,
                ours / 1e6,
                ours / theirs,
                series.loads
            );
        }
    }
    println!("\nload average at the end: {}", load_average());
    Ok(())
}

/// `--instructions`: instructions per packet of `ctreplay analyze` with one kernel profile (on one
/// thread and on two, where the count is all threads' together) and with the default comparison,
/// on a 32 MiB capture of each kind.
fn instructions(dir: &Path, ctreplay: &Path) -> Result<()> {
    let valgrind_there = Command::new("valgrind").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !valgrind_there {
        bail!("--instructions needs valgrind (apt-get install valgrind)");
    }
    println!("# ctreplay: instructions per packet (valgrind --tool=callgrind)\n");
    println!("| capture | packets | what | instructions | per packet |");
    println!("|---|---|---|---|---|");
    for kind in [Kind::Short, Kind::Mixed, Kind::Long] {
        let cap = kind.capture(dir, 32 << 20)?;
        let mut count = Command::new(std::env::current_exe()?);
        count.arg("--floor").arg(&cap);
        let packets = count_of(&measure(&mut count)?)?;
        let runs: [(&str, &[&str]); 3] = [
            ("--kernel latest", &["--threads", "1", "--kernel", "latest"]),
            ("--kernel latest, two threads (all threads together)", &["--threads", "2", "--kernel", "latest"]),
            ("default: 5 older kernels compared", &["--threads", "1"]),
        ];
        for (what, options) in runs {
            let out = Command::new("valgrind")
                .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                .arg(ctreplay)
                .arg("analyze")
                .args(options)
                .arg(&cap)
                .stdout(Stdio::null())
                .output()?;
            let log = String::from_utf8_lossy(&out.stderr);
            // "==PID== Collected : N" is callgrind's count of instructions executed.
            let collected = log
                .lines()
                .find_map(|l| l.split_once("Collected :").map(|(_, n)| n.trim().parse::<u64>()))
                .with_context(|| format!("no instruction count from valgrind:\n{log}"))??;
            println!(
                "| {} | {packets} | {what} | {collected} | {:.0} |",
                cap.file_name().unwrap().to_string_lossy(),
                collected as f64 / packets.max(1) as f64
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
