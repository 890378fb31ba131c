//! The Redis tier against the raw parts, in one run (feature `redis`; needs `redis-server`,
//! started here on a free loopback port). Read the groups as ratios: the machine is shared.
//!
//! - `redis_memory_hit`: `Cache::get` answered by the memory tier of a cache with Redis below
//!   it vs of a cache in memory only (goal: within 1.1x).
//! - `redis_hit`: `Cache::get` answered by Redis (the memory tier admits nothing) vs a plain
//!   `GET` of the same record bytes with the same `redis` crate, and vs a `GET` of the row
//!   postcard-encoded plus its decode (goal: within 1.3x of the plain `GET`).
//! - Invalidation seen by another cache (printed, not timed by criterion): from the start of
//!   one cache's `insert` to the moment another cache, reading the key in a loop from its
//!   memory tier, reads the new value (goal: p50 <= 1 ms, p99 <= 10 ms on loopback).
//!
//! Run: `cargo bench --features redis --bench redis`.

use std::hint::black_box;
use std::process::Child;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};

#[path = "../tests/common/redis_server.rs"]
mod redis_server;
use serde::{Deserialize, Serialize};
use tiered::Cache;

const KEYS: usize = 1_000;

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

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key-{i}")).collect()
}

/// A `redis-server` of the run's own, stopped at the end.
struct Server {
    port: u16,
    child: std::sync::Mutex<Child>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        assert!(
            redis_server::available(),
            "redis-server must be installed for this benchmark (apt-get install redis-server)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = redis_server::free_port();
        let child = redis_server::spawn(port, dir.path(), &["--port", &port.to_string()]);
        Server {
            port,
            child: std::sync::Mutex::new(child),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }
}

impl Server {
    fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The run's server, started at first use and stopped at the end of `main` (a `static` is
/// never dropped).
static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(Server::start)
}

fn memory_hit(c: &mut Criterion) {
    let server = server();
    let keys = keys();
    let with_redis = Cache::builder()
        .redis(server.url())
        .redis_prefix("bench-memory:")
        .open()
        .unwrap();
    let memory_only = Cache::in_memory();
    for (i, k) in keys.iter().enumerate() {
        with_redis.insert(k.as_str(), row(i as u64)).unwrap();
        memory_only.insert(k.as_str(), row(i as u64)).unwrap();
    }
    with_redis.flush().unwrap();
    // Until every key is held in memory (the cache drops what it read from Redis once its
    // listener is confirmed): a whole pass with no Redis read.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = with_redis.stats().disk_hits;
        for k in &keys {
            with_redis.get::<_, Row>(k.as_str()).unwrap().unwrap();
        }
        if with_redis.stats().disk_hits == before {
            break;
        }
        assert!(Instant::now() < until, "the keys never stayed in memory");
        std::thread::sleep(Duration::from_millis(50));
    }
    let redis_reads = with_redis.stats().disk_hits;
    let mut g = c.benchmark_group("redis_memory_hit");
    for (name, cache) in [("with_redis", &with_redis), ("memory_only", &memory_only)] {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap())
            })
        });
    }
    g.finish();
    assert_eq!(
        with_redis.stats().disk_hits,
        redis_reads,
        "memory hits measured Redis reads"
    );
}

fn redis_hit(c: &mut Criterion) {
    let server = server();
    let keys = keys();
    let cache = Cache::builder()
        .redis(server.url())
        .redis_prefix("bench-hit:")
        .memory_capacity(1) // admits nothing: every hit is a Redis hit
        .open()
        .unwrap();
    for (i, k) in keys.iter().enumerate() {
        cache.insert(k.as_str(), row(i as u64)).unwrap();
    }
    cache.flush().unwrap();
    let mut con = server.connection().unwrap();
    // Every record key, read in turn as the cache reads its keys in turn.
    let mut records: Vec<String> = redis::cmd("KEYS")
        .arg("bench-hit:r:*")
        .query(&mut con)
        .unwrap();
    records.sort();
    assert_eq!(records.len(), KEYS);
    let rows: Vec<String> = (0..KEYS).map(|i| format!("bench-row:{i}")).collect();
    for (i, k) in rows.iter().enumerate() {
        let bytes = postcard::to_allocvec(&row(i as u64)).unwrap();
        redis::cmd("SET")
            .arg(k)
            .arg(bytes)
            .query::<()>(&mut con)
            .unwrap();
    }
    let mut g = c.benchmark_group("redis_hit");
    g.bench_function("tiered", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<_, Row>(keys[i].as_str()).unwrap().unwrap())
        })
    });
    g.bench_function("plain_get_of_the_record", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            let bytes: Vec<u8> = redis::cmd("GET").arg(&records[i]).query(&mut con).unwrap();
            black_box(bytes)
        })
    });
    g.bench_function("get_postcard_decode", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            let bytes: Vec<u8> = redis::cmd("GET").arg(&rows[i]).query(&mut con).unwrap();
            black_box(postcard::from_bytes::<Row>(&bytes).unwrap())
        })
    });
    g.finish();
}

/// Prints how long another cache takes to see a write: p50, p99 and the worst of 1,000.
fn invalidation_seen(_c: &mut Criterion) {
    let server = server();
    let open = || {
        Cache::builder()
            .redis(server.url())
            .redis_prefix("bench-seen:")
            .open()
            .unwrap()
    };
    let (writer, reader) = (open(), open());
    writer.insert("k", 0u64).unwrap();
    writer.flush().unwrap();
    // Both listen (tracking confirmed) once the reader keeps a value in memory.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = reader.stats().memory_hits;
        if reader.get::<_, u64>("k").unwrap().as_deref() == Some(&0)
            && reader.stats().memory_hits > before
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "the reader never kept the value in memory"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut seen = Vec::with_capacity(1000);
    for i in 1..=1000u64 {
        // The reader holds the previous value in memory.
        while reader.get::<_, u64>("k").unwrap().as_deref() != Some(&(i - 1)) {}
        let start = Instant::now();
        writer.insert("k", i).unwrap();
        let deadline = start + Duration::from_secs(5);
        while reader.get::<_, u64>("k").unwrap().as_deref() != Some(&i) {
            assert!(Instant::now() < deadline, "write {i} never seen");
        }
        seen.push(start.elapsed());
    }
    seen.sort();
    println!(
        "invalidation_seen: p50 {:?}, p99 {:?}, max {:?} (1,000 writes; goal p50 <= 1 ms, p99 <= 10 ms)",
        seen[499], seen[989], seen[999]
    );
}

criterion_group! {
    name = redis_tier;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = memory_hit, redis_hit, invalidation_seen
}

fn main() {
    redis_tier();
    Criterion::default().configure_from_args().final_summary();
    if let Some(server) = SERVER.get() {
        server.stop();
    }
}
