//! Writes: batched inserts against raw redb, and inserts from many threads.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use tiered::{Cache, Durability};

use crate::{row, wide_row, Row, KEYS, RAW};

/// Stores `n` rows in one redb transaction, as the baseline does.
fn raw_insert(
    db: &redb::Database,
    next: &mut u64,
    n: usize,
    quick_repair: bool,
    make: fn(u64) -> Row,
) {
    let mut txn = db.begin_write().unwrap();
    txn.set_quick_repair(quick_repair);
    {
        let mut t = txn.open_table(RAW).unwrap();
        for _ in 0..n {
            *next += 1;
            let bytes = postcard::to_allocvec(&make(*next)).unwrap();
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

/// 10,000 batched inserts and a flush vs raw redb at 1,000 rows per durable transaction (with
/// and without redb's quick-repair, which `tiered` turns on for every commit).
fn insert_10k_of(c: &mut Criterion, group: &str, make: fn(u64) -> Row) {
    if !crate::wanted(group) {
        return;
    }
    const N: usize = 10 * KEYS;
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .path(dir.path().join("tiered"))
        .memory_capacity(64 << 20)
        .durability(Durability::Batched(Duration::from_millis(50)))
        .open()
        .unwrap();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let mut next = 0u64;
    g.bench_function("tiered_batched", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..N {
                    next += 1;
                    cache.insert(&next, make(next)).unwrap();
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
                        raw_insert(&db, &mut next, KEYS, quick_repair, make);
                    }
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

pub fn insert_10k(c: &mut Criterion) {
    insert_10k_of(c, "insert_10k", row);
}

pub fn insert_10k_16k(c: &mut Criterion) {
    insert_10k_of(c, "insert_10k_16k", wide_row);
}

/// 1,600 inserts of 100 B rows shared among 1, 4 and 16 threads, each durable as its
/// durability says (Batched: one flush at the end; Immediate: every insert waits for its
/// commit, which threads share).
pub fn insert_threads(c: &mut Criterion) {
    if !crate::wanted("insert_threads") {
        return;
    }
    const N: u64 = 1_600;
    let mut g = c.benchmark_group("insert_threads");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    for (name, durability) in [
        ("batched", Durability::Batched(Duration::from_millis(50))),
        ("immediate", Durability::Immediate),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::builder()
            .path(dir.path())
            .durability(durability)
            .open()
            .unwrap();
        let mut next = 0u64;
        for threads in [1u64, 4, 16] {
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let base = next;
                        next += N;
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let cache = &cache;
                                s.spawn(move || {
                                    for i in (t..N).step_by(threads as usize) {
                                        cache.insert(&(base + i), row(base + i)).unwrap();
                                    }
                                });
                            }
                        });
                        cache.flush().unwrap();
                    }
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}
