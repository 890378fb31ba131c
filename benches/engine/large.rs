//! One 64 MiB value: insert + flush, and a read from disk, against the file system.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tiered::Cache;

const SIZE: usize = 64 << 20;

/// Bytes as serde bytes (one length and the bytes, as a data frame's buffer would be).
#[derive(Serialize, Deserialize)]
struct Blob(#[serde(with = "bytes")] Vec<u8>);

mod bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

fn payload() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 31 % 251) as u8).collect()
}

pub fn large_64mib(c: &mut Criterion) {
    if !crate::wanted("large_64mib") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = payload();
    let mut g = c.benchmark_group("large_64mib");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    // The memory tier cannot hold it: reads come from disk, as after a restart.
    let cache = Cache::builder()
        .path(dir.path().join("tiered"))
        .memory_capacity(16 << 20)
        .disk_capacity(1 << 30)
        .open()
        .unwrap();
    g.bench_function("tiered_insert_flush", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let value = Blob(data.clone()); // the caller's value, not timed
                let start = Instant::now();
                cache.insert("frame", value).unwrap();
                cache.flush().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    let file = dir.path().join("plain.bin");
    g.bench_function("fs_write_fsync", |b| {
        b.iter(|| {
            let mut f = std::fs::File::create(&file).unwrap();
            f.write_all(&data).unwrap();
            f.sync_all().unwrap();
        })
    });
    g.bench_function("tiered_read", |b| {
        b.iter(|| black_box(cache.get::<_, Blob>("frame").unwrap().unwrap()))
    });
    g.bench_function("fs_read", |b| {
        b.iter(|| black_box(std::fs::read(&file).unwrap()))
    });
    g.finish();
    assert_eq!(
        cache.stats().memory_hits,
        0,
        "large_64mib measured memory hits"
    );
}
