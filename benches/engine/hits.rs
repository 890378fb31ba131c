//! Reads: memory hits, disk hits, and first reads after a reopen.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rand::seq::SliceRandom;
use redb::ReadableDatabase;
use tiered::Cache;

use crate::{digest, keys, row, Row, KEYS, RAW};

pub fn memory_hit(c: &mut Criterion) {
    if !crate::wanted("memory_hit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(KEYS);
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

/// Stores `row(i)` under each key, postcard-encoded, in one raw redb transaction.
fn raw_table(path: &Path, keys: &[String]) -> redb::Database {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(RAW).unwrap();
        for (i, k) in keys.iter().enumerate() {
            let bytes = postcard::to_allocvec(&row(i as u64)).unwrap();
            t.insert(digest(k.as_bytes()), bytes.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    db
}

fn raw_get(db: &redb::Database, digest: u128) -> Row {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(RAW).unwrap();
    let v = t.get(digest).unwrap().unwrap();
    postcard::from_bytes::<Row>(v.value()).unwrap()
}

pub fn disk_hit(c: &mut Criterion) {
    if !crate::wanted("disk_hit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(KEYS);
    let cache = Cache::builder()
        .path(dir.path().join("tiered"))
        .memory_capacity(1) // admits nothing: every hit is a disk hit
        .open()
        .unwrap();
    for (i, k) in keys.iter().enumerate() {
        cache.insert(k.as_str(), row(i as u64)).unwrap();
    }
    cache.flush().unwrap();
    let db = raw_table(&dir.path().join("raw.redb"), &keys);

    let mut g = c.benchmark_group("disk_hit");
    g.bench_function("tiered", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap())
        })
    });
    let digests: Vec<u128> = keys.iter().map(|k| digest(k.as_bytes())).collect();
    g.bench_function("redb_read_postcard_decode", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(raw_get(&db, digests[i]))
        })
    });
    g.finish();
    let s = cache.stats();
    assert!(
        s.memory_hits * 100 <= s.disk_hits,
        "disk_hit measured memory hits: {s:?}"
    );
}

/// Times `iters` first reads: opens a fresh handle with `open` (not timed), reads keys in a
/// random order once each with `read` (timed), and starts over when every key was read.
fn first_reads<H>(
    iters: u64,
    n: usize,
    mut open: impl FnMut() -> H,
    mut read: impl FnMut(&H, usize),
) -> Duration {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand::rng();
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        order.shuffle(&mut rng);
        let handle = open();
        let take = (iters - done).min(n as u64) as usize;
        let start = Instant::now();
        for &i in &order[..take] {
            read(&handle, i);
        }
        total += start.elapsed();
        drop(handle);
        done += take as u64;
    }
    total
}

pub fn disk_hit_after_reopen(c: &mut Criterion) {
    if !crate::wanted("disk_hit_after_reopen") {
        return;
    }
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(N);
    let path = dir.path().join("tiered");
    {
        let cache = Cache::open(&path).unwrap();
        for (i, k) in keys.iter().enumerate() {
            cache.insert(k.as_str(), row(i as u64)).unwrap();
        }
        cache.flush().unwrap();
    }
    let raw_path = dir.path().join("raw.redb");
    drop(raw_table(&raw_path, &keys));
    let digests: Vec<u128> = keys.iter().map(|k| digest(k.as_bytes())).collect();

    let mut g = c.benchmark_group("disk_hit_after_reopen");
    g.sample_size(10);
    g.bench_function("tiered", |b| {
        b.iter_custom(|iters| {
            first_reads(
                iters,
                N,
                // Without the warm restart: the first reads are to be disk hits.
                || Cache::builder().path(&path).warm_restart(0).open().unwrap(),
                |cache, i| {
                    black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap());
                },
            )
        })
    });
    g.bench_function("tiered_no_promotion", |b| {
        b.iter_custom(|iters| {
            first_reads(
                iters,
                N,
                || {
                    Cache::builder()
                        .path(&path)
                        .memory_capacity(1)
                        .open()
                        .unwrap()
                },
                |cache, i| {
                    black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap());
                },
            )
        })
    });
    g.bench_function("redb_fresh_handle", |b| {
        b.iter_custom(|iters| {
            first_reads(
                iters,
                N,
                || redb::Database::open(&raw_path).unwrap(),
                |db, i| {
                    black_box(raw_get(db, digests[i]));
                },
            )
        })
    });
    g.bench_function("moka_redb_promoting", |b| {
        b.iter_custom(|iters| {
            first_reads(
                iters,
                N,
                || {
                    let db = redb::Database::open(&raw_path).unwrap();
                    let memory: moka::sync::Cache<u128, Arc<Row>> =
                        moka::sync::Cache::new(N as u64);
                    (db, memory)
                },
                |(db, memory), i| {
                    let d = digests[i];
                    let v = match memory.get(&d) {
                        Some(v) => v,
                        None => {
                            let v = Arc::new(raw_get(db, d));
                            memory.insert(d, v.clone());
                            v
                        }
                    };
                    black_box(v);
                },
            )
        })
    });
    g.finish();
}
