//! The engine against the raw libraries doing the same work, in one run.
//!
//! - `memory_hit`: `Cache::get` answered by the memory tier vs a raw moka get of an `Arc` value.
//! - `disk_hit`: `Cache::get` answered by the disk tier (the memory tier is too small to admit
//!   anything) vs a raw redb read plus postcard decode of the same value.
//! - `insert_10k`: 10,000 batched inserts and a flush vs raw redb storing the same rows,
//!   postcard-encoded, under 128-bit digest keys as tiered does, 1,000 per durable transaction (with and without redb's quick-repair,
//!   which `tiered` turns on for every commit).
//! - `invalidate_tag_1m`: invalidating a tag carried by 1,000,000 entries, with batched and with
//!   immediate durability (the latter waits for one commit).
//!
//! Run: `cargo bench --bench engine`; compare each `tiered` line with its baseline beside it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use tiered::{Cache, Durability, Options};

const KEYS: usize = 1_000;
const RAW: TableDefinition<u128, &[u8]> = TableDefinition::new("raw");

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    id: u64,
    name: String,
    values: Vec<f64>,
}

fn row(i: u64) -> Row {
    Row {
        id: i,
        name: format!("instrument-{i}"),
        values: (0..8).map(|j| (i * j) as f64 * 0.5).collect(),
    }
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key-{i}")).collect()
}

fn digest(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

fn memory_hit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let cache = Cache::open(dir.path()).unwrap();
    let raw: moka::sync::Cache<String, Arc<Row>> = moka::sync::Cache::new(10 * KEYS as u64);
    for (i, k) in keys.iter().enumerate() {
        cache.insert(k.as_str(), row(i as u64)).unwrap();
        raw.insert(k.clone(), Arc::new(row(i as u64)));
    }
    let mut g = c.benchmark_group("memory_hit");
    g.bench_function("tiered", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap())
        })
    });
    g.bench_function("moka_arc", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(raw.get(keys[i].as_str()).unwrap())
        })
    });
    g.finish();
    let s = cache.stats();
    assert_eq!(s.disk_hits, 0, "memory_hit measured disk reads");
}

fn disk_hit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let cache = Cache::builder()
        .path(dir.path().join("tiered"))
        .memory_capacity(1) // admits nothing: every hit is a disk hit
        .open()
        .unwrap();
    let db = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(RAW).unwrap();
        for (i, k) in keys.iter().enumerate() {
            cache.insert(k.as_str(), row(i as u64)).unwrap();
            let bytes = postcard::to_allocvec(&row(i as u64)).unwrap();
            t.insert(digest(k), bytes.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    cache.flush().unwrap();

    let mut g = c.benchmark_group("disk_hit");
    g.bench_function("tiered", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap())
        })
    });
    let digests: Vec<u128> = keys.iter().map(|k| digest(k)).collect();
    g.bench_function("redb_read_postcard_decode", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            let txn = db.begin_read().unwrap();
            let t = txn.open_table(RAW).unwrap();
            let v = t.get(digests[i]).unwrap().unwrap();
            black_box(postcard::from_bytes::<Row>(v.value()).unwrap())
        })
    });
    g.finish();
    let s = cache.stats();
    assert!(
        s.memory_hits * 100 <= s.disk_hits,
        "disk_hit measured memory hits: {s:?}"
    );
}

/// Stores `n` rows in one redb transaction, as the baseline does.
fn raw_insert(db: &redb::Database, next: &mut u64, n: usize, quick_repair: bool) {
    let mut txn = db.begin_write().unwrap();
    txn.set_quick_repair(quick_repair);
    {
        let mut t = txn.open_table(RAW).unwrap();
        for _ in 0..n {
            *next += 1;
            let bytes = postcard::to_allocvec(&row(*next)).unwrap();
            // Keyed as tiered keys its records: by a digest, so inserts land all over the tree.
            t.insert(
                xxhash_rust::xxh3::xxh3_128(&next.to_le_bytes()),
                bytes.as_slice(),
            )
            .unwrap();
        }
    }
    txn.commit().unwrap();
}

fn insert_10k(c: &mut Criterion) {
    const N: usize = 10 * KEYS;
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .path(dir.path().join("tiered"))
        .durability(Durability::Batched(Duration::from_millis(50)))
        .open()
        .unwrap();
    let mut g = c.benchmark_group("insert_10k");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    let mut next = 0u64;
    g.bench_function("tiered_batched", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..N {
                    next += 1;
                    cache.insert(&next, row(next)).unwrap();
                }
                cache.flush().unwrap(); // durable, like the baseline's commits
            }
            start.elapsed()
        })
    });
    for (name, quick_repair) in [
        ("redb_1000_per_txn", false),
        ("redb_1000_per_txn_quick_repair", true),
    ] {
        let db = redb::Database::create(dir.path().join(format!("{name}.redb"))).unwrap();
        let mut next = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..N / KEYS {
                        raw_insert(&db, &mut next, KEYS, quick_repair);
                    }
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn invalidate_tag_1m(c: &mut Criterion) {
    const ENTRIES: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::builder()
            .path(dir.path())
            .memory_capacity(16 << 20)
            .open()
            .unwrap();
        let opts = Options::new().tags(["big"]);
        for i in 0..ENTRIES {
            cache.insert_with(&i, i, &opts).unwrap();
        }
        cache.flush().unwrap();
        assert_eq!(cache.stats().entries, ENTRIES);
    }
    let mut g = c.benchmark_group("invalidate_tag_1m");
    g.sample_size(10);
    {
        let cache = Cache::builder()
            .path(dir.path())
            .durability(Durability::Immediate)
            .open()
            .unwrap();
        g.bench_function("immediate", |b| {
            b.iter(|| cache.invalidate_tag("big").unwrap())
        });
    }
    let cache = Cache::open(dir.path()).unwrap();
    g.bench_function("batched", |b| {
        b.iter(|| cache.invalidate_tag("big").unwrap())
    });
    g.finish();
}

criterion_group! {
    name = engine;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = memory_hit, disk_hit, insert_10k, invalidate_tag_1m
}
criterion_main!(engine);
