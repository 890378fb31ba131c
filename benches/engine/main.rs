//! The engine against the raw libraries doing the same work, in one run. Each group holds a
//! `tiered` line and its baselines: read them as ratios (this machine is shared and noisy).
//!
//! - `memory_hit`: `Cache::get` answered by the memory tier vs a raw moka get of an `Arc`.
//! - `memoize_hit`: a memoized function's hit vs `Cache::get_or_insert_with`'s vs raw moka.
//! - `disk_hit`: `Cache::get` answered by the disk tier (the memory tier admits nothing) vs a
//!   raw redb read plus postcard decode of the same bytes under the same keys.
//! - `disk_hit_after_reopen`: the first read of each key after a reopen, promotion into the
//!   memory tier included (a user pays for it), vs raw redb on a fresh handle, with and without
//!   a moka promotion of its own.
//! - `insert_10k` (100 B) and `insert_10k_16k` (16 KiB): batched inserts and a flush vs raw
//!   redb storing the same rows under 128-bit digest keys, 1,000 per durable transaction.
//! - `insert_threads`: 1,600 inserts from 1, 4 and 16 threads, Batched and Immediate.
//! - `invalidate_tag`: invalidating a tag carried by 1,000 and by 1,000,000 entries.
//! - `open_1m`: opening a 1,000,000-entry cache after a clean close and after a SIGKILL.
//! - `large_64mib`: one 64 MiB value inserted and flushed, and read back from disk, vs
//!   `std::fs::write` + fsync and `std::fs::read` of the same bytes.
//! - `client_read`: a client process's read through the folder's owner (not in its memory
//!   tier) vs the owner's own disk hit of the same entry.
//! - Bytes per entry (printed, not timed): the folder per 100 B entry vs raw redb.
//!
//! Run: `cargo bench --bench engine` (a group alone: `cargo bench --bench engine -- open_1m`).

use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

mod hits;
mod inserts;
mod invalidate;
mod large;
mod memoize;
mod open;
mod processes;

const KEYS: usize = 1_000;
const RAW: TableDefinition<u128, &[u8]> = TableDefinition::new("raw");

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    id: u64,
    name: String,
    values: Vec<f64>,
}

/// A ~100 B row (postcard).
fn row(i: u64) -> Row {
    Row {
        id: i,
        name: format!("instrument-{i}"),
        values: (0..8).map(|j| (i * j) as f64 * 0.5).collect(),
    }
}

/// A ~16 KiB row.
fn wide_row(i: u64) -> Row {
    Row {
        id: i,
        name: format!("instrument-{i}"),
        values: (0..2048).map(|j| (i * j) as f64 * 0.5).collect(),
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// The digest raw baselines key their rows by, as tiered keys its records.
fn digest(key: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key)
}

/// A folder holding a cache of 1,000,000 small entries tagged `big`, built once per run.
fn million() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cache = tiered::Cache::builder()
            .path(dir.path())
            .memory_capacity(16 << 20)
            .open()
            .unwrap();
        let opts = tiered::Options::new().tags(["big"]);
        for i in 0..1_000_000u64 {
            cache.insert_with(&i, i, &opts).unwrap();
        }
        cache.flush().unwrap();
        assert_eq!(cache.stats().entries, 1_000_000);
        dir
    })
    .path()
}

/// Whether the command line's filter (if any) selects `group`: a group skips its setup when
/// it is not wanted (criterion filters only the timed functions).
fn wanted(group: &str) -> bool {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .all(|filter| group.contains(&filter) || filter.contains(group))
}

/// Total bytes of every file under `dir`.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                folder_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

criterion_group! {
    name = engine;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    // invalidate_tag last: it invalidates the 1,000,000 entries open_1m opens.
    targets = hits::memory_hit, memoize::memoize_hit, hits::disk_hit, hits::disk_hit_after_reopen,
        processes::client_read,
        inserts::insert_10k, inserts::insert_10k_16k, inserts::insert_threads,
        large::large_64mib, open::open_1m, open::bytes_per_entry,
        invalidate::invalidate_tag
}

fn main() {
    // A child of `open_1m`: writes into the cache, then kills itself mid-batch.
    if let Ok(dir) = std::env::var(open::CHILD_ENV) {
        open::child_killed_mid_batch(std::path::Path::new(&dir));
    }
    // The owner of `client_read`'s folder.
    if let Ok(dir) = std::env::var(processes::OWNER_ENV) {
        processes::owner_child(std::path::Path::new(&dir));
    }
    engine();
    Criterion::default().configure_from_args().final_summary();
}
