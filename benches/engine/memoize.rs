//! Memoized calls answered by the memory tier: what `#[tiered::memoize]` adds to a hit
//! (its key of `(version, arguments)` in the function's namespace, the options it builds, the
//! clone of the ~100 B value it returns by value), against `Cache::get_or_insert_with` on the same cache and a raw moka get.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};

use criterion::Criterion;
use tiered::{Cache, Options};

use crate::{row, Row, KEYS};

/// The cache of the memoized function below, opened by the bench.
static CACHE: OnceLock<Cache> = OnceLock::new();

#[tiered::memoize(cache = CACHE.get().expect("opened by the bench"))]
fn load_row(i: u64) -> Row {
    row(i)
}

pub fn memoize_hit(c: &mut Criterion) {
    if !crate::wanted("memoize_hit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = CACHE.get_or_init(|| Cache::open(dir.path()).unwrap());
    let raw: moka::sync::Cache<u64, Arc<Row>> = moka::sync::Cache::new(10 * KEYS as u64);
    let opts = Options::new();
    for i in 0..KEYS as u64 {
        load_row(i);
        cache.get_or_insert_with(&i, &opts, || row(i)).unwrap();
        raw.insert(i, Arc::new(row(i)));
    }
    let mut g = c.benchmark_group("memoize_hit");
    g.bench_function("memoized_fn", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(load_row(i))
        })
    });
    g.bench_function("get_or_insert_with", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(cache.get_or_insert_with(&i, &opts, || row(i)).unwrap())
        })
    });
    g.bench_function("moka_arc", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS as u64;
            black_box(raw.get(&i).unwrap())
        })
    });
    g.finish();
    let stats = load_row::stats();
    assert_eq!(
        stats.misses, KEYS as u64,
        "memoize_hit measured computations"
    );
}
