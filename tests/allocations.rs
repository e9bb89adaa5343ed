//! No allocation per ordinary packet: a run over four times as many healthy connections makes
//! (almost) no more allocations, on one thread, and on several only a few per batch of frames.
//! Counted with a global allocator that counts; this file is its own test binary, so nothing
//! else runs in it.

use ctreplay::capture::CaptureError;
use ctreplay::engine::{self, Observation, Settings, Sink};
use ctreplay::synth::bulk::{BulkConfig, BulkGenerator};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

#[allow(unsafe_code)]
// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Looks at every frame, as a report does, and keeps nothing.
struct Null {
    packets: u64,
}

impl Sink for Null {
    fn packet(&mut self, obs: &Observation<'_>) -> io::Result<()> {
        assert!(!obs.verdict.is_notable(), "healthy connections only: {:?}", obs.verdict);
        self.packets += 1;
        Ok(())
    }
    fn error(&mut self, e: &CaptureError) -> io::Result<()> {
        panic!("{e}")
    }
}

fn capture(dir: &Path, flows: u64) -> String {
    let path = dir.join(format!("{flows}.pcap"));
    let cfg = BulkConfig { flows, concurrency: 64, target_bytes: Some(flows * 2000), ..BulkConfig::default() };
    BulkGenerator::new(cfg).write_pcap(std::fs::File::create(&path).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

/// Allocations made by one run, and the packets it saw.
fn allocations(capture: &str, threads: usize) -> (u64, u64) {
    let settings = Settings { threads, ..Settings::default() };
    let mut sink = Null { packets: 0 };
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    engine::analyze(&[capture.to_string()], &settings, &mut sink).unwrap();
    (ALLOCATIONS.load(Ordering::Relaxed) - before, sink.packets)
}

#[test]
fn ordinary_packets_cost_no_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (capture(dir.path(), 2000), capture(dir.path(), 8000));

    let (a_small, p_small) = allocations(&small, 1);
    let (a_large, p_large) = allocations(&large, 1);
    let more_packets = p_large - p_small;
    assert!(more_packets > 50_000, "{p_small} and {p_large} packets");
    // The table grows (doubling) with the connections alive at once: a handful more.
    assert!(a_large - a_small < 40, "1 thread: {a_small} allocations for {p_small} packets, {a_large} for {p_large}");

    // On several threads, frames travel in recycled batches; what remains is per batch.
    let (b_small, _) = allocations(&small, 3);
    let (b_large, _) = allocations(&large, 3);
    let per_packet = b_large.saturating_sub(b_small) as f64 / more_packets as f64;
    eprintln!(
        "{p_small} / {p_large} packets: 1 thread {a_small} / {a_large} allocations, 3 threads {b_small} / {b_large}"
    );
    assert!(per_packet < 0.01, "3 threads: {b_small} allocations for {p_small} packets, {b_large} for {p_large}");
}
