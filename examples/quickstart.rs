//! The quick start: a slow query (2 s) cached by `get_or_insert_with`.
//!
//! Run it twice:
//!
//! ```text
//! cargo run --example quickstart   # computes (2 s), then answers from memory
//! cargo run --example quickstart   # a new process: answers at once from disk, then memory
//! ```
//!
//! The cache lives in `./.cache/quickstart`, or in the folder named by `TIERED_DIR`.

use std::time::{Duration, Instant};

use tiered::{Cache, Options, Stats};

/// Stands in for a slow database query.
fn load_prices(day: &str) -> Vec<f64> {
    std::thread::sleep(Duration::from_secs(2));
    let seed = day.bytes().map(f64::from).sum::<f64>();
    (0..5).map(|i| seed + f64::from(i) * 0.25).collect()
}

/// Where the last read was answered, from the change in the cache's counters.
fn source(before: &Stats, after: &Stats) -> &'static str {
    if after.memory_hits > before.memory_hits {
        "memory"
    } else if after.disk_hits > before.disk_hits {
        "disk"
    } else {
        "computed"
    }
}

fn main() -> Result<(), tiered::Error> {
    let dir = std::env::var("TIERED_DIR").unwrap_or_else(|_| "./.cache/quickstart".into());
    let cache = Cache::open(&dir)?;
    let opts = Options::new()
        .ttl(Duration::from_secs(3600))
        .tags(["prices"]);
    let day = "2026-11-22";

    for read in 1..=2 {
        let before = cache.stats();
        let started = Instant::now();
        let prices = cache.get_or_insert_with(&("prices", day), &opts, || load_prices(day))?;
        let after = cache.stats();
        println!(
            "read {read}: {} prices for {day} from {:<8} in {:>8.1?}",
            prices.len(),
            source(&before, &after),
            started.elapsed()
        );
    }

    cache.flush()?; // batched writes are committed within 50 ms anyway; this waits for them
    let s = cache.stats();
    println!(
        "cache {dir}: {} entries on disk ({} bytes); memory hits {}, disk hits {}, misses {}",
        s.entries, s.disk_bytes, s.memory_hits, s.disk_hits, s.misses
    );
    println!("run it again: the next process reads from disk instead of computing");
    Ok(())
}
