//! The first memoized call of each key after a restart: `#[tiered::memoize]` against the
//! `cached` crate's `#[concurrent_cached(disk = true)]` (and its in-memory `#[cached]` for
//! reference), on the same keys and values, side by side in one run.
//!
//! Not criterion: a key's first call after a restart happens once per process, so each repeat
//! runs in child processes of this binary (it re-executes itself with an argument):
//!
//! 1. `fill`: one child calls each memoized function for the keys `0..=N` (the function body
//!    runs and the result is stored), each contender in its own fresh folder, then makes its
//!    data durable and exits: tiered `Cache::flush` (and the exit hook that flushes every open
//!    cache), cached `RedbCache::flush` (one durable redb commit).
//! 2. One fresh child per contender: one untimed call of key `N` (opens the store, and for
//!    tiered checks the function's code version), then the first call of each key `0..N` in a
//!    random order (seeded, the same for every contender), each call timed; then a second pass
//!    over the same keys in another random order. The body must never run in these children.
//!    The OS page cache is warm, as after a process restart on the same machine.
//! 3. `REPEATS` repeats, fresh folders each, the contenders' order rotated; the table gives the
//!    median over the repeats of each pass's mean per call.
//!
//! Contenders, and what each does on the first call of a key after the restart:
//! - `tiered`: `#[tiered::memoize(cache = CACHE)] fn price(id: u64) -> Result<Row, String>`,
//!   `CACHE` a `LazyLock<tiered::Cache>` opened on the folder named by `TIERED_MR_DIR` with
//!   default settings (256 MiB memory tier, 32 MiB redb page cache, `Batched(50 ms)`) but
//!   `warm_restart(0)`, so that first calls really read the disk (the default would load the
//!   entries into memory in the background at open). A first call: encodes the key
//!   (code version + arguments) and hashes it, finds the function's state (and keeps its
//!   version note fresh), misses the memory tier (a moka get), reads the record in a redb
//!   read transaction and copies it out, checks it (xxh3 over the record, value fingerprint,
//!   generations, expiry), decodes the ~100 B row (postcard), promotes it into the memory
//!   tier (a moka insert of an `Arc`), notes the read time for the disk tier's eviction order
//!   (committed later by the writer thread), and returns a clone. A second call is a memory
//!   hit. The bench asserts that every timed first call was a disk hit and every second call
//!   a memory hit.
//! - `cached_disk`: `#[concurrent_cached(disk = true, disk_dir = "cached", durable = false,
//!   map_error = ...)] fn price(id: u64) -> Result<Row, String>`: cached 4.1's `RedbCache`.
//!   `disk_dir` is a literal in the macro, so it is relative and each child runs in the
//!   repeat's folder. `durable = false` only changes the fill (one fsync'd commit at the end
//!   instead of one per call); reads do not depend on it. No memory layer: every call, first
//!   or not, takes the `RedbCache`'s TTL mutex, formats the key with `to_string`, opens a redb
//!   read transaction and the table, copies the stored bytes into a `Vec` and decodes them
//!   (MessagePack: the value and its creation time). No TTL here, so no clock read and no
//!   write. No checksum of its own (redb's own checks apply to both), nothing promoted.
//! - `cached_memory` (reference, not a contender for the goal): `#[cached] fn price(id: u64)
//!   -> Row`, cached's in-memory `UnboundCache` behind one mutex, filled in the same process
//!   before timing (it keeps nothing across restarts). A call locks, hashes the `u64`, and
//!   clones the row.
//! - `tiered_get` (diagnostic): `Cache::get::<_, Row>(&id)` of rows stored by
//!   `Cache::insert(&id, row)` in a folder of their own, same settings: the engine's first
//!   read after a restart without the memoize layer around it.
//!
//! Each per-call time includes one `Instant::now()` (printed as `clock`), the loop and the
//! drop of the returned row. Values: the ~100 B `Row` of `peers.rs` (8 floats).
//!
//! Goal (issue 17): the first memoized call after a restart at most 1.0x the time of
//! `cached`'s `concurrent_cached(disk = true)` on the same keys.
//!
//! Run: `cd benches/peers && cargo bench --bench memoize_restart`. To profile one contender's
//! first pass, fill a folder (`TIERED_MR_DIR=$d/tiered TIERED_MR_SEED=1 <bench binary>
//! --memoize-restart-child fill`, run in `$d`), then run the child `tiered_first_only` or
//! `cached_first_only` the same way under `perf record`.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Keys timed per pass.
const N: u64 = 10_000;
/// Repeats, each with fresh folders and fresh processes.
const REPEATS: usize = 5;
/// The child's argument.
const CHILD: &str = "--memoize-restart-child";
/// Where the tiered contender's cache lives (the child's folder is the repeat's folder).
const DIR_VAR: &str = "TIERED_MR_DIR";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    id: u64,
    name: String,
    values: Vec<f64>,
}

/// The ~100 B row of `peers.rs` (8 floats, about 80 B in postcard).
fn row(i: u64) -> Row {
    Row {
        id: i,
        name: format!("instrument-{i}"),
        values: (0..8).map(|j| (i * j) as f64 * 0.5).collect(),
    }
}

/// How many times a function body ran in this process: the read children must show 0.
static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

fn compute(id: u64) -> Row {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    row(id)
}

mod with_tiered {
    use std::sync::LazyLock;

    use super::{compute, Row, DIR_VAR};

    pub static CACHE: LazyLock<tiered::Cache> = LazyLock::new(|| open("memo"));

    /// The plain cache of the `tiered_get` diagnostic.
    pub static PLAIN: LazyLock<tiered::Cache> = LazyLock::new(|| open("plain"));

    fn open(sub: &str) -> tiered::Cache {
        let dir =
            std::path::Path::new(&std::env::var_os(DIR_VAR).expect("set by the parent")).join(sub);
        tiered::Cache::builder()
            .path(dir)
            .warm_restart(0)
            .open()
            .expect("tiered cache opens")
    }

    #[tiered::memoize(cache = CACHE)]
    pub fn price(id: u64) -> Result<Row, String> {
        Ok(compute(id))
    }
}

mod with_cached {
    use cached::macros::concurrent_cached;

    use super::{compute, Row};

    #[concurrent_cached(
        disk = true,
        disk_dir = "cached",
        durable = false,
        map_error = |e| format!("{e:?}")
    )]
    pub fn price(id: u64) -> Result<Row, String> {
        Ok(compute(id))
    }
}

mod with_cached_memory {
    use cached::macros::cached;

    use super::{compute, Row};

    #[cached]
    pub fn price(id: u64) -> Row {
        compute(id)
    }
}

// ---------------------------------------------------------------------------------------------
// Children

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == CHILD) {
        Some(i) => child(&args[i + 1]),
        None => parent(),
    }
}

fn child(mode: &str) {
    match mode {
        "fill" => fill(),
        "tiered" => read_tiered(),
        "tiered_get" => read_tiered_get(),
        "cached_disk" => read_cached(),
        "cached_memory" => read_cached_memory(),
        // By hand, for a profiler: the first pass alone (see the end of this file's header).
        "tiered_first_only" => {
            black_box(with_tiered::price(N).unwrap());
            for id in orders().0 {
                black_box(with_tiered::price(id).unwrap());
            }
        }
        "cached_first_only" => {
            black_box(with_cached::price(N).unwrap());
            for id in orders().0 {
                black_box(with_cached::price(id).unwrap());
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Calls every function for the keys `0..=N` (the body runs), then makes it durable.
fn fill() {
    let t = Instant::now();
    for id in 0..=N {
        black_box(with_tiered::price(id).unwrap());
    }
    with_tiered::CACHE.flush().unwrap();
    let tiered = t.elapsed();
    let t = Instant::now();
    for id in 0..=N {
        black_box(with_cached::price(id).unwrap());
    }
    with_cached::PRICE.flush().unwrap();
    let cached = t.elapsed();
    for id in 0..=N {
        with_tiered::PLAIN.insert(&id, row(id)).unwrap();
    }
    with_tiered::PLAIN.flush().unwrap();
    assert_eq!(BODY_RUNS.load(Ordering::Relaxed), 2 * (N + 1));
    let per = |d: std::time::Duration| d.as_nanos() as f64 / (N + 1) as f64;
    println!("FILL {:.0} {:.0}", per(tiered), per(cached));
}

/// Per-call times, in nanoseconds, of `call` over `ids` in order: one clock read per call.
fn time_each(ids: &[u64], mut call: impl FnMut(u64)) -> Vec<u64> {
    let mut samples = Vec::with_capacity(ids.len());
    let mut t0 = Instant::now();
    for &id in ids {
        call(id);
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as u64);
        t0 = t1;
    }
    samples
}

/// The order of the first pass and of the second, from the seed the parent passes.
fn orders() -> (Vec<u64>, Vec<u64>) {
    let seed: u64 = std::env::var("TIERED_MR_SEED").unwrap().parse().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut first: Vec<u64> = (0..N).collect();
    first.shuffle(&mut rng);
    let mut second = first.clone();
    second.shuffle(&mut rng);
    (first, second)
}

/// One line for the parent: the open (with the untimed first call), then both passes.
fn report(open_ns: u64, first: &[u64], second: &[u64]) {
    let clock = time_each(&orders().0, |id| {
        black_box(id);
    });
    println!(
        "RESULT {open_ns} {} {} {}",
        summary(first),
        summary(second),
        summary(&clock)
    );
}

/// mean p50 p90 p99 of per-call samples, in ns.
fn summary(samples: &[u64]) -> String {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let mean = s.iter().sum::<u64>() as f64 / s.len() as f64;
    let p = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
    format!("{mean:.1} {} {} {}", p(0.5), p(0.9), p(0.99))
}

fn read_tiered() {
    let (first, second) = orders();
    let t = Instant::now();
    // Opens the cache and checks the function's version; key N is not timed.
    black_box(with_tiered::price(N).unwrap());
    let open_ns = t.elapsed().as_nanos() as u64;
    let cache = &*with_tiered::CACHE;
    let s0 = cache.stats();
    assert_eq!(
        s0.memory_hits, 0,
        "tiered: memory hit before the first pass"
    );
    assert_eq!(s0.warm_loaded, 0, "tiered: the warm restart loaded entries");
    let a = time_each(&first, |id| {
        black_box(with_tiered::price(id).unwrap());
    });
    let s1 = cache.stats();
    assert_eq!(
        (s1.memory_hits - s0.memory_hits, s1.disk_hits - s0.disk_hits),
        (0, N),
        "tiered: first calls were not all disk hits"
    );
    let b = time_each(&second, |id| {
        black_box(with_tiered::price(id).unwrap());
    });
    let s2 = cache.stats();
    assert_eq!(
        (s2.memory_hits - s1.memory_hits, s2.disk_hits - s1.disk_hits),
        (N, 0),
        "tiered: second calls were not all memory hits"
    );
    assert_eq!(BODY_RUNS.load(Ordering::Relaxed), 0, "tiered: the body ran");
    assert_eq!(with_tiered::price::stats().misses, 0);
    report(open_ns, &a, &b);
}

fn read_tiered_get() {
    let (first, second) = orders();
    let t = Instant::now();
    let cache = &*with_tiered::PLAIN;
    black_box(cache.get::<_, Row>(&N).unwrap().unwrap());
    let open_ns = t.elapsed().as_nanos() as u64;
    let s0 = cache.stats();
    let a = time_each(&first, |id| {
        black_box(cache.get::<_, Row>(&id).unwrap().unwrap());
    });
    let s1 = cache.stats();
    assert_eq!(
        (s1.memory_hits - s0.memory_hits, s1.disk_hits - s0.disk_hits),
        (0, N),
        "tiered_get: first reads were not all disk hits"
    );
    let b = time_each(&second, |id| {
        black_box(cache.get::<_, Row>(&id).unwrap().unwrap());
    });
    let s2 = cache.stats();
    assert_eq!(
        s2.memory_hits - s1.memory_hits,
        N,
        "tiered_get: second pass"
    );
    report(open_ns, &a, &b);
}

fn read_cached() {
    let (first, second) = orders();
    let t = Instant::now();
    // Opens the redb file (the macro's LazyLock); key N is not timed.
    black_box(with_cached::price(N).unwrap());
    let open_ns = t.elapsed().as_nanos() as u64;
    let a = time_each(&first, |id| {
        black_box(with_cached::price(id).unwrap());
    });
    let b = time_each(&second, |id| {
        black_box(with_cached::price(id).unwrap());
    });
    assert_eq!(BODY_RUNS.load(Ordering::Relaxed), 0, "cached: the body ran");
    report(open_ns, &a, &b);
}

fn read_cached_memory() {
    let (first, second) = orders();
    // In memory only: filled here, untimed (the body runs N + 1 times).
    for id in 0..=N {
        black_box(with_cached_memory::price(id));
    }
    let a = time_each(&first, |id| {
        black_box(with_cached_memory::price(id));
    });
    let b = time_each(&second, |id| {
        black_box(with_cached_memory::price(id));
    });
    assert_eq!(
        BODY_RUNS.load(Ordering::Relaxed),
        N + 1,
        "cached_memory: misses"
    );
    report(0, &a, &b);
}

// ---------------------------------------------------------------------------------------------
// Parent

const CONTENDERS: [&str; 4] = ["tiered", "cached_disk", "tiered_get", "cached_memory"];

/// One contender's figures from one child, in ns.
#[derive(Clone, Copy, Default)]
struct Figures {
    open: f64,
    /// mean, p50, p90, p99
    first: [f64; 4],
    second: [f64; 4],
    clock: f64,
}

fn run_child(mode: &str, dir: &Path, seed: u64) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([CHILD, mode])
        .current_dir(dir)
        .env(DIR_VAR, dir.join("tiered"))
        .env("TIERED_MR_SEED", seed.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "child {mode} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

fn numbers(line: &str, tag: &str) -> Vec<f64> {
    line.lines()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no {tag} in {line}"))
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn us(ns: f64) -> String {
    format!("{:.3} us", ns / 1000.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn parent() {
    println!(
        "memoize_restart: {N} keys, ~100 B rows, {REPEATS} repeats; per pass: mean per call \
         [p50 p90 p99 in ns] (each time includes one clock read)"
    );
    println!("load before: {}", loadavg());
    let mut all: Vec<[Figures; 4]> = Vec::new();
    let mut fills: Vec<(f64, f64)> = Vec::new();
    for r in 0..REPEATS {
        let dir = tempfile::Builder::new()
            .prefix("tiered-memoize-restart-")
            .tempdir()
            .unwrap();
        let seed = 1000 + r as u64;
        let f = numbers(&run_child("fill", dir.path(), seed), "FILL ");
        fills.push((f[0], f[1]));
        let mut figs = [Figures::default(); 4];
        // The order rotates, so that no contender always runs first after the fill.
        for k in 0..CONTENDERS.len() {
            let c = (r + k) % CONTENDERS.len();
            let v = numbers(&run_child(CONTENDERS[c], dir.path(), seed), "RESULT ");
            figs[c] = Figures {
                open: v[0],
                first: [v[1], v[2], v[3], v[4]],
                second: [v[5], v[6], v[7], v[8]],
                clock: v[9],
            };
        }
        println!(
            "repeat {} (fill per call: tiered {}, cached_disk {}):",
            r + 1,
            us(f[0]),
            us(f[1])
        );
        for (c, name) in CONTENDERS.iter().enumerate() {
            let g = figs[c];
            println!(
                "  {name:<14} first {:>9} [{:>5.0} {:>5.0} {:>5.0}]  second {:>9} [{:>5.0} {:>5.0} {:>5.0}]  open+1st {:>9}  clock {:.0} ns",
                us(g.first[0]),
                g.first[1],
                g.first[2],
                g.first[3],
                us(g.second[0]),
                g.second[1],
                g.second[2],
                g.second[3],
                us(g.open),
                g.clock
            );
        }
        println!(
            "  ratio first-call tiered/cached_disk = {:.2}",
            figs[0].first[0] / figs[1].first[0]
        );
        all.push(figs);
    }
    println!("load after: {}", loadavg());

    let med =
        |c: usize, pick: fn(&Figures) -> f64| median(all.iter().map(|f| pick(&f[c])).collect());
    let first = |f: &Figures| f.first[0];
    let second = |f: &Figures| f.second[0];
    let first_p50 = |f: &Figures| f.first[1];
    let second_p50 = |f: &Figures| f.second[1];
    println!();
    println!("Medians over {REPEATS} repeats (mean per call; p50 per call in brackets):");
    println!("| call | tiered | cached | tiered / cached |");
    println!("|---|---|---|---|");
    let line = |what: &str,
                t: usize,
                tp: fn(&Figures) -> f64,
                tp50: fn(&Figures) -> f64,
                c: usize,
                cp: fn(&Figures) -> f64,
                cp50: fn(&Figures) -> f64| {
        let (a, b) = (med(t, tp), med(c, cp));
        println!(
            "| {what} | {} [{:.0} ns] | {} [{:.0} ns] | {:.2}x |",
            us(a),
            med(t, tp50),
            us(b),
            med(c, cp50),
            a / b
        );
    };
    line(
        "first call after a restart: memoize vs concurrent_cached(disk)",
        0,
        first,
        first_p50,
        1,
        first,
        first_p50,
    );
    line(
        "second call: memoize (memory hit) vs concurrent_cached(disk) (disk again)",
        0,
        second,
        second_p50,
        1,
        second,
        second_p50,
    );
    line(
        "memoize memory hit vs #[cached] in memory",
        0,
        second,
        second_p50,
        3,
        second,
        second_p50,
    );
    line(
        "diagnostic: first memoized call vs tiered Cache::get first read",
        0,
        first,
        first_p50,
        2,
        first,
        first_p50,
    );
    line(
        "diagnostic: Cache::get first read vs concurrent_cached(disk)",
        2,
        first,
        first_p50,
        1,
        first,
        first_p50,
    );
    // The goal's ratio: the median of each repeat's ratio (the two ran in the same minute).
    let ratios: Vec<f64> = all.iter().map(|f| f[0].first[0] / f[1].first[0]).collect();
    let ratio = median(ratios.clone());
    println!(
        "per-repeat ratios, first call tiered/cached_disk: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "fill (first call ever, body runs, stored), median per call: tiered {}, cached_disk {}",
        us(median(fills.iter().map(|f| f.0).collect())),
        us(median(fills.iter().map(|f| f.1).collect()))
    );
    println!(
        "GOAL first memoized call after a restart <= 1.0x cached's concurrent_cached(disk): {:.2}x (median of the repeats' ratios), {}",
        ratio,
        if ratio <= 1.0 { "MET" } else { "MISSED" }
    );
}
