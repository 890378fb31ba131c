//! A scheduled job that pre-warms a cache while the app that uses it is running.
//!
//! ```text
//! cargo run --example prewarm -- ./.cache/app 10000
//! ```
//!
//! It opens the app's cache folder like the app does. If the app holds the folder, this
//! process becomes its client at once (see `docs/processes.md`): every entry it writes goes
//! through the app's process, and the app serves it at its next read, without a restart. If
//! no app runs, the job holds the folder itself and the app finds the entries when it starts.
//!
//! Run it from cron, a systemd timer or a CI schedule:
//!
//! ```text
//! */15 * * * *  cd /srv/app && ./prewarm ./.cache/app 10000
//! ```

use std::time::{Duration, Instant};

use tiered::{Cache, Options};

/// Stands in for the nightly export the app would otherwise query at its first request.
fn price(day: u32) -> Vec<f64> {
    (0..4)
        .map(|i| f64::from(day) + f64::from(i) * 0.25)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "./.cache/app".into());
    let count: u32 = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|e| format!("COUNT must be a number: {e}"))?,
        None => 10_000,
    };
    let started = Instant::now();
    let cache = Cache::builder()
        .path(&dir)
        // A commit per batch of writes, not per write: the job flushes once at the end.
        .durability(tiered::Durability::Batched(Duration::from_millis(50)))
        .open()?;
    match cache.owner_pid() {
        Some(pid) => println!("the app (process {pid}) holds {dir}: writing through it"),
        None => println!("no app holds {dir}: writing to it directly"),
    }
    // The app reads these as `cache.namespace("prices").get(&day)`; the tag lets a script
    // drop them all at once (`tiered clear DIR --tag prices`).
    let prices = cache.namespace("prices");
    let opts = Options::new()
        .ttl(Duration::from_secs(24 * 3600))
        .tags(["prices"]);
    for day in 0..count {
        prices.insert_with(&day, price(day), &opts)?;
    }
    // Durable, and every process of the folder sees them, before the job reports success.
    cache.flush()?;
    println!(
        "pre-warmed {count} entries in {:.1?}; the folder holds {} entries",
        started.elapsed(),
        cache.stats().entries
    );
    Ok(())
}
