//! `tiered` against other Rust disk-backed caches: the same workloads, the same keys, the same
//! values, in one run. Each criterion group is one workload; each bench function in it is one
//! contender, so the ratios are read side by side.
//!
//! Contenders (configurations in README.md beside Cargo.toml):
//! - `tiered`: the crate under test, default settings.
//! - `moka_redb`: the "do it yourself" two tiers: a moka sync cache of `Arc<V>` in front of a
//!   redb table keyed by the key's xxh3-128 digest, postcard values, promoted into moka on a redb
//!   hit.
//! - `cached_redb`: the `cached` crate's `RedbCache`, disk only (no memory tier).
//! - `foyer`: foyer's `HybridCache` (memory + block-engine disk cache), driven from a tokio
//!   runtime: reads and writes run inside one `block_on` per timed batch.
//! - `foyer_plus_fsync` (write groups only): foyer, then an fsync of its files, which foyer
//!   itself never does: the price of the durable point the other contenders reach.
//! - `fs_floor` (large values only): `std::fs::write` + fsync and `std::fs::read` of the bytes.
//!
//! Run: `cd benches/peers && cargo bench`.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use redb::{ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Keys read by `memory_hit` (a hot set, as in engine.rs).
const HOT_KEYS: usize = 1_000;
/// Keys stored for `disk_hit_after_reopen` and inserted per iteration by `insert_batched`.
const KEYS: usize = 10_000;
/// Rows per redb transaction in the raw baseline's write path.
const RAW_TXN_ROWS: usize = 1_000;
/// Bytes the memory tiers may hold: tiered's default, given to every contender with one.
const MEMORY_BYTES: u64 = 256 << 20;
/// The large value.
const LARGE: usize = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Keys and values: the same for every contender.

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    id: u64,
    name: String,
    values: Vec<f64>,
}

/// A row of `n` floats: 8 floats is the ~100 B row of engine.rs, 2048 the 16 KiB one.
fn row(i: u64, n: u64) -> Row {
    Row {
        id: i,
        name: format!("instrument-{i}"),
        values: (0..n).map(|j| (i * j) as f64 * 0.5).collect(),
    }
}

const SMALL_ROW: u64 = 8;
const BIG_ROW: u64 = 2048;

fn key(i: usize) -> String {
    format!("key-{i}")
}

/// 64 MiB of incompressible bytes (xorshift), as a `serde_bytes` buffer so that every codec
/// (postcard, MessagePack, bincode) writes it as one byte string.
fn large_value() -> ByteBuf {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut v = Vec::with_capacity(LARGE);
    while v.len() < LARGE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    ByteBuf::from(v)
}

/// A value every contender can store; `weight` is what byte-weighed memory tiers charge.
trait Val: Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static {
    fn weight(&self) -> usize;
}

impl Val for Row {
    fn weight(&self) -> usize {
        16 + self.name.len() + 8 * self.values.len()
    }
}

impl Val for ByteBuf {
    fn weight(&self) -> usize {
        8 + self.len()
    }
}

/// What a workload needs from a contender's configuration.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Rows of up to 16 KiB.
    Rows,
    /// One 64 MiB value.
    Large,
}

/// One contender: opened on a folder, closed by `close` (or drop), reopened on the same folder.
trait Contender<V: Val>: Sized {
    fn open(dir: &Path, shape: Shape) -> Self;
    /// Inserts `keys[i]` → `value(i)` for every `i`, then waits for the contender's durable point.
    fn insert_durably(&self, keys: &[String], value: &dyn Fn(usize) -> V);
    /// Times `iters` gets of `keys[i % keys.len()]`; every one must be a hit.
    fn time_gets(&self, keys: &[String], iters: u64) -> Duration;
    /// Untimed, right after a reopen: none of `keys` is answered by a memory tier yet.
    fn assert_cold(&self, _keys: &[String]) {}
    /// Untimed, after `time_gets` on a fresh handle: those `reads` went to the disk tier.
    fn assert_disk_reads(&self, _reads: u64) {}
    /// Untimed, after `memory_hit`: no get went to the disk tier (where that can be counted).
    fn assert_no_disk_reads(&self) {}
    fn close(self) {}
}

// ---------------------------------------------------------------------------------------------
// tiered

struct Tiered(tiered::Cache);

impl<V: Val> Contender<V> for Tiered {
    fn open(dir: &Path, _shape: Shape) -> Self {
        // Default settings (256 MiB memory tier, Batched(50 ms) durability), but no warm
        // restart: the reads after a reopen are to be disk reads, as for the other contenders.
        Tiered(
            tiered::Cache::builder()
                .path(dir)
                .warm_restart(0)
                .open()
                .unwrap(),
        )
    }

    fn insert_durably(&self, keys: &[String], value: &dyn Fn(usize) -> V) {
        for (i, k) in keys.iter().enumerate() {
            self.0.insert(k.as_str(), value(i)).unwrap();
        }
        self.0.flush().unwrap();
    }

    fn time_gets(&self, keys: &[String], iters: u64) -> Duration {
        let start = Instant::now();
        for i in 0..iters as usize {
            let k = &keys[i % keys.len()];
            black_box(self.0.get::<_, V>(k.as_str()).unwrap().unwrap());
        }
        start.elapsed()
    }

    fn assert_cold(&self, _keys: &[String]) {
        // A fresh handle has answered nothing: a reopen that handed back the old, warm cache
        // would show its earlier hits here.
        let s = self.0.stats();
        assert_eq!(
            (s.memory_hits, s.disk_hits),
            (0, 0),
            "tiered reopen is not fresh"
        );
    }

    fn assert_disk_reads(&self, reads: u64) {
        let s = self.0.stats();
        assert_eq!(
            (s.memory_hits, s.disk_hits),
            (0, reads),
            "tiered: not first reads"
        );
    }

    fn assert_no_disk_reads(&self) {
        assert_eq!(
            self.0.stats().disk_hits,
            0,
            "tiered: memory_hit read the disk"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// moka + redb, by hand

const RAW: TableDefinition<u128, &[u8]> = TableDefinition::new("raw");

struct MokaRedb<V> {
    memory: moka::sync::Cache<u128, Arc<V>>,
    db: redb::Database,
    disk_reads: AtomicU64,
}

fn digest(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

impl<V: Val> MokaRedb<V> {
    fn get(&self, key: &str) -> Option<Arc<V>> {
        let d = digest(key);
        if let Some(v) = self.memory.get(&d) {
            return Some(v);
        }
        let txn = self.db.begin_read().unwrap();
        let table = txn.open_table(RAW).unwrap();
        let bytes = table.get(d).unwrap()?;
        let v = Arc::new(postcard::from_bytes::<V>(bytes.value()).unwrap());
        self.disk_reads.fetch_add(1, Ordering::Relaxed);
        self.memory.insert(d, v.clone());
        Some(v)
    }
}

impl<V: Val> Contender<V> for MokaRedb<V> {
    fn open(dir: &Path, _shape: Shape) -> Self {
        let memory = moka::sync::Cache::builder()
            .max_capacity(MEMORY_BYTES)
            .weigher(|_: &u128, v: &Arc<V>| v.weight().try_into().unwrap_or(u32::MAX))
            .build();
        // redb's defaults (its own page cache included), as a user writing this by hand has.
        let db = redb::Database::create(dir.join("raw.redb")).unwrap();
        MokaRedb {
            memory,
            db,
            disk_reads: AtomicU64::new(0),
        }
    }

    fn insert_durably(&self, keys: &[String], value: &dyn Fn(usize) -> V) {
        // RAW_TXN_ROWS rows per transaction, each commit durable (redb's default, fsync).
        for (c, chunk) in keys.chunks(RAW_TXN_ROWS).enumerate() {
            let txn = self.db.begin_write().unwrap();
            {
                let mut t = txn.open_table(RAW).unwrap();
                for (j, k) in chunk.iter().enumerate() {
                    let v = value(c * RAW_TXN_ROWS + j);
                    let d = digest(k);
                    t.insert(d, postcard::to_allocvec(&v).unwrap().as_slice())
                        .unwrap();
                    self.memory.insert(d, Arc::new(v));
                }
            }
            txn.commit().unwrap();
        }
    }

    fn time_gets(&self, keys: &[String], iters: u64) -> Duration {
        let start = Instant::now();
        for i in 0..iters as usize {
            black_box(self.get(&keys[i % keys.len()]).unwrap());
        }
        start.elapsed()
    }

    fn assert_cold(&self, keys: &[String]) {
        assert!(keys.iter().all(|k| !self.memory.contains_key(&digest(k))));
    }

    fn assert_disk_reads(&self, reads: u64) {
        assert_eq!(
            self.disk_reads.load(Ordering::Relaxed),
            reads,
            "moka_redb: not first reads"
        );
    }

    fn assert_no_disk_reads(&self) {
        assert_eq!(
            self.disk_reads.load(Ordering::Relaxed),
            0,
            "moka_redb: memory_hit read the disk"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// cached::RedbCache (disk only)

use cached::{ConcurrentCached, SerializeCached};

struct CachedRedb<V>(cached::RedbCache<String, V>);

impl<V: Val> Contender<V> for CachedRedb<V> {
    fn open(dir: &Path, _shape: Shape) -> Self {
        // durable(false) + flush(): the crate's documented "cheap writes, then one durable
        // commit" path. With the default durable(true) every set is its own fsync'd commit,
        // 10,000 fsyncs per insert_batched iteration. Reads do not depend on it.
        let c = cached::RedbCache::builder("peers")
            .disk_dir(dir)
            .durable(false)
            .build()
            .unwrap();
        CachedRedb(c)
    }

    fn insert_durably(&self, keys: &[String], value: &dyn Fn(usize) -> V) {
        // One redb transaction per set (the store's only write path), then one durable commit.
        for (i, k) in keys.iter().enumerate() {
            self.0.cache_set_ref(k, &value(i)).unwrap();
        }
        self.0.flush().unwrap();
    }

    fn time_gets(&self, keys: &[String], iters: u64) -> Duration {
        let start = Instant::now();
        for i in 0..iters as usize {
            black_box(self.0.cache_get(&keys[i % keys.len()]).unwrap().unwrap());
        }
        start.elapsed()
    }
}

// ---------------------------------------------------------------------------------------------
// foyer::HybridCache

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy,
};

struct Foyer<V: Val> {
    rt: Arc<tokio::runtime::Runtime>,
    cache: HybridCache<String, V>,
}

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

impl<V: Val> Contender<V> for Foyer<V> {
    fn open(dir: &Path, shape: Shape) -> Self {
        let rt = runtime();
        // foyer's block engine writes every entry page-aligned (4 KiB at least, so 10,000 rows of
        // 100 B are 40 MiB of writes), and it drops entries, silently, when its submit queue
        // passes a threshold (default 16 MiB) or when its write buffer (default 16 MiB) is full
        // while a write is in flight: a cache may shed writes under pressure. Here every write
        // must land (the reads after a reopen check it), so both are raised well above what a
        // workload inserts in one go. An entry must also fit in one block: 128 MiB blocks for
        // the 64 MiB value, foyer's default 16 MiB otherwise.
        let block = match shape {
            Shape::Rows => 16usize << 20,
            Shape::Large => 128usize << 20,
        };
        let device = FsDeviceBuilder::new(dir)
            .with_capacity(1 << 30)
            .build()
            .unwrap();
        let engine_config = BlockEngineConfig::new(device)
            .with_block_size(block)
            .with_buffer_pool_size(256 << 20)
            .with_submit_queue_size_threshold(1 << 30);
        let cache = rt
            .block_on(
                HybridCacheBuilder::new()
                    // Write-through, like tiered and the raw baseline: every insert goes to the
                    // disk cache too. (The default, WriteOnEviction, writes only what the memory
                    // tier evicts, so nothing small would reach the disk before close.)
                    .with_policy(HybridCachePolicy::WriteOnInsertion)
                    .memory(MEMORY_BYTES as usize)
                    // Weighed in bytes, like tiered's and the raw baseline's memory tiers (the
                    // default weighs every entry 1).
                    .with_weighter(|k: &String, v: &V| k.len() + v.weight())
                    .storage()
                    .with_engine_config(engine_config)
                    .build(),
            )
            .unwrap();
        Foyer { rt, cache }
    }

    fn insert_durably(&self, keys: &[String], value: &dyn Fn(usize) -> V) {
        self.rt.block_on(async {
            for (i, k) in keys.iter().enumerate() {
                self.cache.insert(k.clone(), value(i));
            }
            // foyer's only "written" point: the flushers have written the queued entries to its
            // files (pwrite). foyer never fsyncs: it is a cache, not a store.
            self.cache.storage().wait().await;
        });
    }

    fn time_gets(&self, keys: &[String], iters: u64) -> Duration {
        self.rt.block_on(async {
            let start = Instant::now();
            for i in 0..iters as usize {
                let k = &keys[i % keys.len()];
                black_box(self.cache.get(k.as_str()).await.unwrap().unwrap());
            }
            start.elapsed()
        })
    }

    fn assert_cold(&self, keys: &[String]) {
        assert!(keys
            .iter()
            .all(|k| !self.cache.memory().contains(k.as_str())));
    }

    fn close(self) {
        self.rt.block_on(self.cache.close()).unwrap();
        drop(self.cache);
    }
}

/// foyer, plus an fsync of each of its device files after `storage().wait()`: what a durable
/// point would add to foyer's write path (foyer itself never fsyncs). Used by the write groups only.
struct FoyerFsync<V: Val>(Foyer<V>, std::path::PathBuf);

impl<V: Val> Contender<V> for FoyerFsync<V> {
    fn open(dir: &Path, shape: Shape) -> Self {
        FoyerFsync(Foyer::open(dir, shape), dir.to_path_buf())
    }

    fn insert_durably(&self, keys: &[String], value: &dyn Fn(usize) -> V) {
        self.0.insert_durably(keys, value);
        for entry in std::fs::read_dir(&self.1).unwrap() {
            std::fs::File::open(entry.unwrap().path())
                .unwrap()
                .sync_all()
                .unwrap();
        }
    }

    fn time_gets(&self, keys: &[String], iters: u64) -> Duration {
        self.0.time_gets(keys, iters)
    }

    fn close(self) {
        self.0.close()
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tiered-peers-")
        .tempdir()
        .unwrap()
}

/// `memory_hit`: gets cycling over a hot set of 1,000 keys already inserted (and so in memory,
/// for the contenders that have a memory tier).
fn memory_hit_one<C: Contender<V>, V: Val>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    value: impl Fn(usize) -> V,
) {
    let dir = tempdir();
    let c = C::open(dir.path(), Shape::Rows);
    let keys: Vec<String> = (0..HOT_KEYS).map(key).collect();
    c.insert_durably(&keys, &value);
    c.time_gets(&keys, keys.len() as u64); // every key read once before timing
    g.bench_function(name, |b| b.iter_custom(|iters| c.time_gets(&keys, iters)));
    c.assert_no_disk_reads();
    c.close();
}

fn memory_hit(c: &mut Criterion, group: &str, floats: u64) {
    let mut g = c.benchmark_group(group);
    let v = move |i: usize| row(i as u64, floats);
    memory_hit_one::<Tiered, Row>(&mut g, "tiered", v);
    memory_hit_one::<MokaRedb<Row>, Row>(&mut g, "moka_redb", v);
    // No memory tier: every get is a redb read (from redb's page cache) and a decode.
    memory_hit_one::<CachedRedb<Row>, Row>(&mut g, "cached_redb", v);
    memory_hit_one::<Foyer<Row>, Row>(&mut g, "foyer", v);
    g.finish();
}

fn memory_hit_100b(c: &mut Criterion) {
    memory_hit(c, "memory_hit_100B", SMALL_ROW);
}

fn memory_hit_16kib(c: &mut Criterion) {
    memory_hit(c, "memory_hit_16KiB", BIG_ROW);
}

/// `disk_hit_after_reopen`: 10,000 keys stored, the handle closed; then, repeatedly: a fresh
/// handle is opened (untimed), and gets of distinct keys in a random order are timed, each the
/// first read of its key since the reopen (promotion into memory included). A batch reads at
/// most all 10,000 keys; the next batch reopens again.
fn disk_hit_one<C: Contender<V>, V: Val>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    value: impl Fn(usize) -> V,
) {
    let dir = tempdir();
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    {
        let c = C::open(dir.path(), Shape::Rows);
        c.insert_durably(&keys, &value);
        c.close();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut order = keys.clone();
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(KEYS);
                order.shuffle(&mut rng);
                let batch = &order[..n];
                let c = C::open(dir.path(), Shape::Rows);
                c.assert_cold(batch);
                total += c.time_gets(batch, n as u64);
                c.assert_disk_reads(n as u64);
                c.close();
                left -= n;
            }
            total
        })
    });
}

fn disk_hit(c: &mut Criterion, group: &str, floats: u64) {
    let mut g = c.benchmark_group(group);
    let v = move |i: usize| row(i as u64, floats);
    disk_hit_one::<Tiered, Row>(&mut g, "tiered", v);
    disk_hit_one::<MokaRedb<Row>, Row>(&mut g, "moka_redb", v);
    disk_hit_one::<CachedRedb<Row>, Row>(&mut g, "cached_redb", v);
    disk_hit_one::<Foyer<Row>, Row>(&mut g, "foyer", v);
    g.finish();
}

fn disk_hit_100b(c: &mut Criterion) {
    disk_hit(c, "disk_hit_after_reopen_100B", SMALL_ROW);
}

fn disk_hit_16kib(c: &mut Criterion) {
    disk_hit(c, "disk_hit_after_reopen_16KiB", BIG_ROW);
}

/// `insert_batched`: 10,000 ~100 B rows under fresh keys, then the contender's durable point
/// (tiered: `flush`; moka_redb: a durable commit every 1,000 rows; cached: `flush`; foyer:
/// `storage().wait()`, no fsync). Keys go on counting across iterations, so every insert is new.
fn insert_one<C: Contender<Row>>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let dir = tempdir();
    let c = C::open(dir.path(), Shape::Rows);
    let mut next = 0usize;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let keys: Vec<String> = (next..next + KEYS).map(key).collect();
                let base = next;
                let start = Instant::now();
                c.insert_durably(&keys, &|i| row((base + i) as u64, SMALL_ROW));
                total += start.elapsed();
                next += KEYS;
            }
            total
        })
    });
    c.close();
    // Untimed: the last batch is all there after a reopen (no contender may shed writes).
    let last: Vec<String> = (next - KEYS..next).map(key).collect();
    let c = C::open(dir.path(), Shape::Rows);
    c.time_gets(&last, KEYS as u64);
    c.close();
}

fn insert_batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert_batched_10k_100B");
    g.sampling_mode(SamplingMode::Flat);
    insert_one::<Tiered>(&mut g, "tiered");
    insert_one::<MokaRedb<Row>>(&mut g, "moka_redb");
    insert_one::<CachedRedb<Row>>(&mut g, "cached_redb");
    insert_one::<Foyer<Row>>(&mut g, "foyer");
    insert_one::<FoyerFsync<Row>>(&mut g, "foyer_plus_fsync");
    g.finish();
}

/// `large_64mib`: one 64 MiB byte string under one key: insert + durable point (the same key
/// overwritten every iteration), and read back on a fresh handle (reopen untimed), against a
/// plain file written with `std::fs::write` + fsync and read with `std::fs::read`.
fn large_insert_one<C: Contender<ByteBuf>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    value: &ByteBuf,
) {
    let dir = tempdir();
    let c = C::open(dir.path(), Shape::Large);
    let keys = [String::from("large")];
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                c.insert_durably(&keys, &|_| value.clone());
            }
            start.elapsed()
        })
    });
    c.close();
    // Untimed: the value is there after a reopen.
    let c = C::open(dir.path(), Shape::Large);
    c.time_gets(&keys, 1);
    c.close();
}

fn large_read_one<C: Contender<ByteBuf>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    value: &ByteBuf,
) {
    let dir = tempdir();
    let keys = [String::from("large")];
    {
        let c = C::open(dir.path(), Shape::Large);
        c.insert_durably(&keys, &|_| value.clone());
        c.close();
    }
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let c = C::open(dir.path(), Shape::Large);
                c.assert_cold(&keys);
                total += c.time_gets(&keys, 1);
                c.assert_disk_reads(1);
                c.close();
            }
            total
        })
    });
}

fn large_64mib(c: &mut Criterion) {
    let value = large_value();

    let mut g = c.benchmark_group("large_64mib_insert_flush");
    g.sampling_mode(SamplingMode::Flat);
    large_insert_one::<Tiered>(&mut g, "tiered", &value);
    large_insert_one::<MokaRedb<ByteBuf>>(&mut g, "moka_redb", &value);
    large_insert_one::<CachedRedb<ByteBuf>>(&mut g, "cached_redb", &value);
    large_insert_one::<Foyer<ByteBuf>>(&mut g, "foyer", &value);
    large_insert_one::<FoyerFsync<ByteBuf>>(&mut g, "foyer_plus_fsync", &value);
    {
        let dir = tempdir();
        let path = dir.path().join("large.bin");
        g.bench_function("fs_floor", |b| {
            b.iter(|| {
                // std::fs::write, plus the fsync it leaves out.
                let mut f = std::fs::File::create(&path).unwrap();
                f.write_all(value.as_slice()).unwrap();
                f.sync_all().unwrap();
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("large_64mib_read_after_reopen");
    g.sampling_mode(SamplingMode::Flat);
    large_read_one::<Tiered>(&mut g, "tiered", &value);
    large_read_one::<MokaRedb<ByteBuf>>(&mut g, "moka_redb", &value);
    large_read_one::<CachedRedb<ByteBuf>>(&mut g, "cached_redb", &value);
    large_read_one::<Foyer<ByteBuf>>(&mut g, "foyer", &value);
    {
        let dir = tempdir();
        let path = dir.path().join("large.bin");
        std::fs::write(&path, value.as_slice()).unwrap();
        g.bench_function("fs_floor", |b| {
            b.iter(|| {
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(bytes.len(), LARGE);
                black_box(bytes)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = peers;
    config = config();
    targets = memory_hit_100b, memory_hit_16kib, disk_hit_100b, disk_hit_16kib, insert_batched,
        large_64mib
}
criterion_main!(peers);
