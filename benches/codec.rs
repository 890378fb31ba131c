//! What verifying a value at insert costs: encode alone vs encode plus decoding the bytes back
//! (what `codec::encode` does before accepting a payload), for postcard (ordinary types) and
//! MessagePack (the self-describing fallback), on a ~100-byte struct and a 1M-element `Vec<f64>`.
//!
//! `codec` is private, so this replays its two steps with the same calls; `insert_in_memory`
//! adds the whole insert path of an in-memory cache (encode, verify, memory tier) for scale.
//!
//! Run: `cargo bench --bench codec`; compare each `encode+verify` line with its `encode` line.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// About 100 bytes of postcard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Quote {
    id: u64,
    symbol: String,
    venue: String,
    bid: f64,
    ask: f64,
    sizes: Vec<u32>,
    at_ms: u64,
    note: Option<String>,
}

fn quote() -> Quote {
    Quote {
        id: 1_234_567,
        symbol: "ACME.EXAMPLE".into(),
        venue: "an exchange somewhere".into(),
        bid: 101.25,
        ask: 101.5,
        sizes: vec![100, 200, 300, 400, 500, 600, 700, 800],
        at_ms: 1_767_000_000_000,
        note: Some("opening auction, indicative".into()),
    }
}

fn postcard_verify<V: DeserializeOwned>(bytes: &[u8]) {
    let (v, rest) = postcard::take_from_bytes::<V>(bytes).unwrap();
    assert!(rest.is_empty());
    black_box(v);
}

fn msgpack_verify<V: DeserializeOwned>(bytes: &[u8]) {
    let mut rest = bytes;
    let v = V::deserialize(&mut rmp_serde::Deserializer::new(&mut rest)).unwrap();
    assert!(rest.is_empty());
    black_box(v);
}

fn bench_value<V>(c: &mut Criterion, name: &str, value: &V)
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let mut g = c.benchmark_group(format!("codec/{name}"));
    g.bench_function(BenchmarkId::new("postcard", "encode"), |b| {
        b.iter(|| black_box(postcard::to_allocvec(black_box(value)).unwrap()))
    });
    g.bench_function(BenchmarkId::new("postcard", "encode+verify"), |b| {
        b.iter(|| {
            let bytes = postcard::to_allocvec(black_box(value)).unwrap();
            postcard_verify::<V>(&bytes);
            black_box(bytes)
        })
    });
    g.bench_function(BenchmarkId::new("msgpack", "encode"), |b| {
        b.iter(|| black_box(rmp_serde::to_vec_named(black_box(value)).unwrap()))
    });
    g.bench_function(BenchmarkId::new("msgpack", "encode+verify"), |b| {
        b.iter(|| {
            let bytes = rmp_serde::to_vec_named(black_box(value)).unwrap();
            msgpack_verify::<V>(&bytes);
            black_box(bytes)
        })
    });
    let cache = tiered::Cache::in_memory();
    g.bench_function("insert_in_memory", |b| {
        b.iter(|| cache.insert("k", black_box(value.clone())).unwrap())
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let q = quote();
    assert!((90..=110).contains(&postcard::to_allocvec(&q).unwrap().len()));
    bench_value(c, "struct_100b", &q);
    let big: Vec<f64> = (0..1_000_000).map(|i| i as f64 * 0.25).collect();
    bench_value(c, "vec_f64_1m", &big);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = codec
}
criterion_main!(benches);
