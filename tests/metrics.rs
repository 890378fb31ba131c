//! The `metrics` feature: a recorder installed before a cache opens sees its counters, labelled
//! with the cache's folder, and counts only the user's operations.

mod common;

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tiered::{Cache, Memoized, Options};

/// The counters the recorder holds labelled `cache` = `label`, by name. (A snapshot takes
/// the counts since the last one: one snapshot per check.)
fn counters(snapshotter: &Snapshotter, label: &str) -> HashMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let labelled = key
                .labels()
                .any(|l| l.key() == "cache" && l.value() == label);
            match value {
                DebugValue::Counter(n) if labelled => Some((key.name().to_string(), n)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn a_recorder_sees_the_counters_of_stats() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = common::tempdir();
    // The usual setup installs a global recorder at startup; a local one keeps this test
    // apart from the others of this binary.
    let cache = metrics::with_local_recorder(&recorder, || Cache::open(dir.path()).unwrap());
    // Counted after the recorder's scope: the handles registered at open keep counting.
    cache.insert("a", 1u32).unwrap();
    assert!(cache.get::<_, u32>("a").unwrap().is_some());
    assert!(cache.get::<_, u32>("missing").unwrap().is_none());
    cache.invalidate_tag("none").unwrap();
    const PRICE: Memoized = Memoized::new("app::price", 1);
    PRICE.call(&cache, &Options::new(), PRICE.key(&("eu",)), || 2u32);

    let folder = std::fs::canonicalize(dir.path()).unwrap();
    let label = folder.to_string_lossy();
    let stats = cache.stats();
    let published = counters(&snapshotter, &label);
    for (name, expected) in [
        ("tiered_memory_hits_total", stats.memory_hits),
        ("tiered_disk_hits_total", stats.disk_hits),
        ("tiered_misses_total", stats.misses),
        ("tiered_inserts_total", stats.inserts),
        ("tiered_invalidations_total", stats.invalidations),
    ] {
        assert_eq!(
            published.get(name),
            Some(&expected),
            "{name}, as Stats has it: {stats:?}"
        );
    }
    // The user's operations only: the memoized call's version note is not counted.
    assert_eq!(
        (
            stats.memory_hits,
            stats.misses,
            stats.inserts,
            stats.invalidations
        ),
        (1, 2, 2, 1)
    );
}

#[test]
fn a_cache_in_memory_is_labelled_memory() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = metrics::with_local_recorder(&recorder, Cache::in_memory);
    cache.insert("k", 1u8).unwrap();
    assert_eq!(
        counters(&snapshotter, "memory").get("tiered_inserts_total"),
        Some(&1)
    );
}
