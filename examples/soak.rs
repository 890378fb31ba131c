//! Soak: 64 threads of mixed operations on one cache for a while, checking as it goes that
//! nothing hangs, that memory stays within its bounds, and that the counters add up.
//!
//! ```text
//! cargo run --example soak -- [SECONDS]        # default 10 (or TIERED_SOAK_SECS)
//! ```
//!
//! Each thread inserts small and large (100 KB) values, reads, removes, reads through
//! (`get_or_insert_with`), invalidates tags and clears namespaces, at random. Checked:
//! - no deadlock: a watchdog aborts the process, with a message, if no operation completed
//!   for `TIERED_SOAK_STALL_SECS` (default 30) seconds;
//! - `stats().memory_bytes` never above `memory_capacity` (sampled every 50 ms), and the
//!   process's resident memory within a sensible bound (printed);
//! - the counters: every `get` and read-through counted as a hit or a miss (a read-through
//!   that missed and then found another caller's value counts both), every insert and stored
//!   computation counted, every invalidation counted;
//! - every value read is one written for its key, whole.
//!
//! Exits non-zero with a message on the first failed check.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tiered::{Cache, Durability, Options};

const THREADS: u64 = 64;
const KEYS: u64 = 512;
const LARGE: usize = 100_000;
const MEMORY_CAPACITY: u64 = 4 << 20;

/// What the threads did, counted by them.
#[derive(Default)]
struct Made {
    gets: AtomicU64,
    through: AtomicU64,
    computed: AtomicU64,
    inserts: AtomicU64,
    removes: AtomicU64,
    invalidations: AtomicU64,
    /// Operations completed, for the watchdog.
    progress: AtomicU64,
}

/// A value for `key`: its first 8 bytes say the key, the rest follow from it.
fn value(key: u64, len: usize) -> Vec<u8> {
    let mut v = vec![(key % 251) as u8; len.max(8)];
    v[..8].copy_from_slice(&key.to_le_bytes());
    v
}

fn whole(key: u64, v: &[u8]) -> bool {
    v.len() >= 8 && v[..8] == key.to_le_bytes() && v[8..].iter().all(|&b| b == (key % 251) as u8)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fail(why: String) -> ! {
    eprintln!("SOAK FAILED: {why}");
    std::process::exit(1);
}

fn main() -> ExitCode {
    let secs: u64 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TIERED_SOAK_SECS").ok())
        .map_or(10, |s| s.parse().expect("SECONDS: a whole number"));
    let stall: u64 = std::env::var("TIERED_SOAK_STALL_SECS")
        .ok()
        .map_or(30, |s| {
            s.parse().expect("TIERED_SOAK_STALL_SECS: a whole number")
        });
    let seed: u64 = std::env::var("TIERED_SOAK_SEED")
        .ok()
        .map_or_else(rand::random, |s| {
            s.parse().expect("TIERED_SOAK_SEED: a number")
        });
    let dir = tempfile::tempdir().expect("a temporary folder");
    let cache = Cache::builder()
        .path(dir.path())
        .memory_capacity(MEMORY_CAPACITY)
        .disk_capacity(1 << 30)
        .durability(Durability::Batched(Duration::from_millis(20)))
        .open()
        .expect("open the cache");
    println!("soak: {THREADS} threads for {secs} s, seed {seed} (TIERED_SOAK_SEED)");
    let rss_before = rss_kib();
    let made = Arc::new(Made::default());
    let stop = Arc::new(AtomicBool::new(false));

    // The watchdog: aborts if no operation completes for `stall` seconds.
    {
        let (made, stop) = (made.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = (made.progress.load(Relaxed), Instant::now());
            while !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = made.progress.load(Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(stall) {
                    eprintln!(
                        "SOAK FAILED: no operation completed for {stall} s after {now} \
                         operations: a deadlock; aborting"
                    );
                    std::process::abort();
                }
            }
        });
    }

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, made, stop) = (cache.clone(), made.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (t << 32));
                let spaces = [cache.namespace("a"), cache.namespace("b")];
                while !stop.load(Relaxed) {
                    let key = rng.random_range(0..KEYS);
                    let len = if rng.random_bool(0.1) { LARGE } else { 64 };
                    let ns = &spaces[(key % 2) as usize];
                    let tag = format!("t{}", key % 4);
                    let result = match rng.random_range(0..1000u32) {
                        0..=249 => {
                            made.inserts.fetch_add(1, Relaxed);
                            ns.insert_with(&key, value(key, len), &Options::new().tags([tag]))
                        }
                        250..=649 => {
                            made.gets.fetch_add(1, Relaxed);
                            ns.get::<_, Vec<u8>>(&key).map(|got| {
                                if let Some(v) = got {
                                    if !whole(key, &v) {
                                        fail(format!(
                                            "key {key} read a value of {} bytes not its own",
                                            v.len()
                                        ));
                                    }
                                }
                            })
                        }
                        650..=749 => {
                            made.removes.fetch_add(1, Relaxed);
                            ns.remove(&key).map(|_| ())
                        }
                        750..=992 => {
                            made.through.fetch_add(1, Relaxed);
                            let computed = &made.computed;
                            ns.get_or_insert_with(&key, &Options::new().tags([tag]), || {
                                computed.fetch_add(1, Relaxed);
                                value(key, len)
                            })
                            .map(|v| {
                                if !whole(key, &v) {
                                    fail(format!("key {key} read through a value not its own"));
                                }
                            })
                        }
                        993..=997 => {
                            made.invalidations.fetch_add(1, Relaxed);
                            cache.invalidate_tag(&tag)
                        }
                        _ => {
                            made.invalidations.fetch_add(1, Relaxed);
                            ns.clear()
                        }
                    };
                    if let Err(e) = result {
                        fail(format!("thread {t}: {e}"));
                    }
                    made.progress.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut peak_rss = rss_before;
    let mut peak_memory = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(50));
        let s = cache.stats();
        peak_memory = peak_memory.max(s.memory_bytes);
        if s.memory_bytes > MEMORY_CAPACITY {
            fail(format!(
                "the memory tier holds {} bytes, over its capacity of {MEMORY_CAPACITY}: {s:?}",
                s.memory_bytes
            ));
        }
        peak_rss = peak_rss.max(rss_kib());
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.join().expect("a soak thread panicked");
    }
    cache.flush().expect("the last flush");
    let s = cache.stats();
    let load = |c: &AtomicU64| c.load(Relaxed);
    let (gets, through, computed) = (load(&made.gets), load(&made.through), load(&made.computed));
    let (inserts, invalidations) = (load(&made.inserts), load(&made.invalidations));
    let reads = s.memory_hits + s.disk_hits + s.misses;
    println!(
        "soak: {} operations in {:?}: {gets} gets, {through} read-throughs ({computed} computed), \
         {inserts} inserts, {} removes, {invalidations} invalidations",
        load(&made.progress),
        started.elapsed(),
        load(&made.removes)
    );
    println!(
        "soak: memory tier peak {peak_memory} of {MEMORY_CAPACITY} bytes; resident memory {} MiB \
         at the start, peak {} MiB; {s:?}",
        rss_before >> 10,
        peak_rss >> 10
    );
    let mut bad = Vec::new();
    if !(gets + through..=gets + 2 * through).contains(&reads) {
        bad.push(format!(
            "hits + misses = {reads}, for {gets} gets and {through} read-throughs"
        ));
    }
    if s.misses < computed {
        bad.push(format!(
            "{} misses, fewer than the {computed} computations",
            s.misses
        ));
    }
    if !(inserts..=inserts + computed).contains(&s.inserts) {
        bad.push(format!(
            "{} inserts counted, for {inserts} inserts and {computed} computations",
            s.inserts
        ));
    }
    if s.invalidations != invalidations {
        bad.push(format!(
            "{} invalidations counted, {invalidations} made",
            s.invalidations
        ));
    }
    if s.memory_bytes > MEMORY_CAPACITY {
        bad.push(format!("memory tier at {} bytes", s.memory_bytes));
    }
    // Resident memory: the memory tier, the threads' values in flight (64 x 100 KB, a few
    // copies each), the database's page cache and the allocator's slack stay well within
    // this; a leak of the values written (gigabytes over a soak) does not.
    let rss_bound_kib = rss_before + 8 * (MEMORY_CAPACITY >> 10) + (256 << 10);
    if peak_rss > rss_bound_kib {
        bad.push(format!(
            "resident memory peaked at {} MiB, over {} MiB",
            peak_rss >> 10,
            rss_bound_kib >> 10
        ));
    }
    if bad.is_empty() {
        println!("soak: ok");
        ExitCode::SUCCESS
    } else {
        for b in &bad {
            eprintln!("SOAK FAILED: {b}");
        }
        ExitCode::FAILURE
    }
}
