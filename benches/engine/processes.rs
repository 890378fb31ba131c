//! `client_read`: a read by a client process of an entry not in its memory tier, answered
//! through the folder's owner (another process) over its socket, vs the owner's own disk hit
//! of the same entry. Both caches admit nothing to memory (`memory_capacity(1)`), so every
//! read is the path measured; same keys, same values.
//!
//! Besides criterion's estimates, the group prints the median and 99th percentile of 20,000
//! single reads of each, timed one by one.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use tiered::Cache;

use crate::{keys, row, Row, KEYS};

/// Set in the owner child: the folder to hold.
pub const OWNER_ENV: &str = "TIERED_BENCH_OWNER";

fn fill(cache: &Cache, keys: &[String]) {
    for (i, k) in keys.iter().enumerate() {
        cache.insert(k.as_str(), row(i as u64)).unwrap();
    }
    cache.flush().unwrap();
}

fn open(dir: &std::path::Path) -> Cache {
    Cache::builder()
        .path(dir)
        .memory_capacity(1) // admits nothing: every read leaves the memory tier
        .open()
        .unwrap()
}

/// The owner child: holds `dir` with the bench's entries until its stdin closes.
pub fn owner_child(dir: &std::path::Path) -> ! {
    let cache = open(dir);
    fill(&cache, &keys(KEYS));
    println!("ready");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    drop(cache);
    std::process::exit(0);
}

/// Median and 99th percentile of single reads.
fn percentiles(cache: &Cache, keys: &[String]) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..20_000)
        .map(|i| {
            let started = Instant::now();
            black_box(
                cache
                    .get::<_, Row>(keys[i % keys.len()].as_str())
                    .unwrap()
                    .unwrap(),
            );
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

pub fn client_read(c: &mut Criterion) {
    if !crate::wanted("client_read") {
        return;
    }
    let keys = keys(KEYS);
    let shared = tempfile::tempdir().unwrap();
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .env(OWNER_ENV, shared.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(owner.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the owner child exited"
        );
    }
    let client = open(shared.path());
    assert!(
        client.owner_pid().is_some(),
        "the bench is the owner's client"
    );

    let alone = tempfile::tempdir().unwrap();
    let own = open(alone.path());
    fill(&own, &keys);

    let mut g = c.benchmark_group("client_read");
    for (name, cache) in [("client_through_owner", &client), ("owner_disk_hit", &own)] {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap())
            })
        });
    }
    g.finish();
    let (client_median, client_p99) = percentiles(&client, &keys);
    let (own_median, own_p99) = percentiles(&own, &keys);
    println!(
        "client_read single reads: through the owner median {client_median:?} (p99 \
         {client_p99:?}); the owner's own disk hit median {own_median:?} (p99 {own_p99:?}); \
         ratio {:.1}x",
        client_median.as_secs_f64() / own_median.as_secs_f64()
    );
    drop(client);
    drop(owner.stdin.take());
    owner.wait().unwrap();
}
