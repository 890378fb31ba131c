//! `Stats` count each event once, and a snapshot agrees with itself.

mod common;

use std::time::Duration;

use tiered::{Cache, Options};

#[test]
fn an_expired_persisted_entry_counts_once() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache
            .insert_with("m", 1u8, &Options::new().ttl(Duration::from_secs(1)))
            .unwrap();
        cache
            .insert_with("d", 1u8, &Options::new().ttl(Duration::from_secs(1)))
            .unwrap();
        assert!(cache.get::<_, u8>("m").unwrap().is_some());
        clock.advance(Duration::from_secs(2));
        assert!(cache.get::<_, u8>("m").unwrap().is_none());
        assert!(cache.get::<_, u8>("m").unwrap().is_none());
        assert_eq!(cache.stats().expirations, 1, "one entry, one expiration");
    }
    // "d" is found dead on disk after a restart: one more, once.
    let cache = common::open(dir.path(), &clock);
    assert!(cache.get::<_, u8>("d").unwrap().is_none());
    assert!(cache.get::<_, u8>("d").unwrap().is_none());
    // The sweeper that runs after the open may be the one that drops it: it counts once its
    // commit is done, which a loaded machine can delay past the reads.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().expirations == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn an_entry_expired_by_the_memory_tier_itself_counts_once() {
    // The system clock this time, so that moka's own timer expires the memory entry too.
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    cache
        .insert_with("k", 1u8, &Options::new().ttl(Duration::from_millis(20)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(60)); // past the ttl
    assert!(cache.get::<_, u8>("k").unwrap().is_none());
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn a_snapshot_counts_the_evictions_behind_its_sizes() {
    let capacity = 64 << 10;
    let cache = Cache::builder().memory_capacity(capacity).open().unwrap();
    for i in 0..2_000u32 {
        cache.insert(&i, vec![0u8; 100]).unwrap();
    }
    let s = cache.stats();
    assert!(s.memory_bytes <= capacity, "{s:?}");
    assert!(s.evictions > 0, "{s:?}");
    // Every insert either stays or was counted as evicted.
    assert_eq!(s.entries + s.evictions, s.inserts, "{s:?}");
}

#[test]
fn a_value_larger_than_the_memory_tier_is_served_from_disk_and_counted() {
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .memory_capacity(64 << 10)
        .durability(tiered::Durability::Immediate)
        .open()
        .unwrap();
    let big = vec![7u8; 100 << 10];
    cache.insert("big", big.clone()).unwrap();
    assert_eq!(cache.stats().too_large_for_memory, 1, "the insert");
    for _ in 0..2 {
        let got = cache.get::<_, Vec<u8>>("big").unwrap();
        assert_eq!(got.as_deref(), Some(&big));
    }
    let s = cache.stats();
    assert_eq!(
        (s.disk_hits, s.memory_hits, s.too_large_for_memory),
        (2, 0, 3),
        "each read is a disk hit, counted: {s:?}"
    );

    // Kept in memory only, it is not kept at all: counted too.
    let opts = Options::new().memory_only();
    cache.insert_with("big-memory-only", big, &opts).unwrap();
    assert_eq!(cache.get::<_, Vec<u8>>("big-memory-only").unwrap(), None);
    assert_eq!(cache.stats().too_large_for_memory, 4);

    // A value that fits is not counted.
    cache.insert("small", 1u8).unwrap();
    assert!(cache.get::<_, u8>("small").unwrap().is_some());
    assert_eq!(cache.stats().too_large_for_memory, 4);
}
