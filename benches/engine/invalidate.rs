//! Invalidating a tag carried by 1,000 and by 1,000,000 entries: one generation bump, whatever
//! the number of entries (the sweeper reclaims the space later).

use criterion::{BenchmarkId, Criterion};
use tiered::{Cache, Durability, Options};

pub fn invalidate_tag(c: &mut Criterion) {
    if !crate::wanted("invalidate_tag") {
        return;
    }
    let small = tempfile::tempdir().unwrap();
    {
        let cache = Cache::open(small.path()).unwrap();
        let opts = Options::new().tags(["big"]);
        for i in 0..1_000u64 {
            cache.insert_with(&i, i, &opts).unwrap();
        }
        cache.flush().unwrap();
    }
    let mut g = c.benchmark_group("invalidate_tag");
    g.sample_size(10);
    for (entries, dir) in [(1_000u64, small.path()), (1_000_000, crate::million())] {
        for (name, durability) in [
            ("immediate", Durability::Immediate),
            (
                "batched",
                Durability::Batched(std::time::Duration::from_millis(50)),
            ),
        ] {
            let cache = Cache::builder()
                .path(dir)
                .memory_capacity(16 << 20)
                .durability(durability)
                .open()
                .unwrap();
            g.bench_with_input(BenchmarkId::new(name, entries), &entries, |b, _| {
                b.iter(|| cache.invalidate_tag("big").unwrap())
            });
        }
    }
    g.finish();
}
