//! Both tiers stay within their capacities; the disk tier drops its least recently used records.

mod common;

use std::time::Duration;

use tiered::{Cache, Durability};

/// About 17.5 KB (redb keeps each in 32 KiB of pages): some forty of them fill a 2 MiB disk
/// tier, which bounds its folder, not only its records' bytes (see `disk_space.rs`).
fn value(i: u32) -> String {
    format!("{i:04}-{}", "x".repeat(17_400))
}

#[test]
fn the_disk_tier_evicts_least_recently_used_records_past_capacity() {
    let dir = common::tempdir();
    let clock = common::clock();
    let capacity = 2 << 20; // about forty records
    let cache = Cache::builder()
        .path(dir.path())
        .clock(clock.clone())
        .durability(Durability::Immediate)
        .memory_capacity(1) // admits nothing: every read below comes from disk
        .disk_capacity(capacity)
        .open()
        .unwrap();
    for i in 0..30u32 {
        clock.advance(Duration::from_secs(1));
        cache.insert(&i, value(i)).unwrap();
    }
    assert_eq!(cache.stats().evictions, 0, "thirty records fit");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        cache.get::<_, String>(&0u32).unwrap().as_deref(),
        Some(&value(0))
    );
    cache.flush().unwrap(); // writes the read time of record 0
    for i in 30..60u32 {
        clock.advance(Duration::from_secs(1));
        cache.insert(&i, value(i)).unwrap();
    }
    cache.flush().unwrap();
    let s = cache.stats();
    assert!(s.disk_bytes <= capacity, "{s:?}");
    assert!(s.disk_file_bytes <= capacity / 2 * 3, "{s:?}");
    assert!(s.evictions > 0 && s.entries < 60, "{s:?}");
    assert!(
        cache.contains_key(&0u32).unwrap(),
        "recently read record was evicted"
    );
    assert!(
        !cache.contains_key(&1u32).unwrap(),
        "least recently used record kept: {s:?}"
    );
    assert!(cache.contains_key(&59u32).unwrap(), "newest record evicted");
}

/// Read times wait for a commit of writes (or a close) to ride along with: they must still
/// reach the file, so that a record read before a restart outlives older unread ones.
#[test]
fn read_times_reach_the_file_at_close_and_steer_eviction_after_a_restart() {
    let dir = common::tempdir();
    let clock = common::clock();
    let capacity = 2 << 20; // about forty records
    let open = || {
        Cache::builder()
            .path(dir.path())
            .clock(clock.clone())
            .memory_capacity(1)
            .disk_capacity(capacity)
            .open()
            .unwrap()
    };
    let cache = open();
    for i in 0..30u32 {
        clock.advance(Duration::from_secs(1));
        cache.insert(&i, value(i)).unwrap();
    }
    cache.flush().unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(cache.get::<_, String>(&0u32).unwrap().is_some());
    drop(cache); // no write after the read: only the close can write its read time
    let cache = open();
    for i in 30..60u32 {
        clock.advance(Duration::from_secs(1));
        cache.insert(&i, value(i)).unwrap();
    }
    cache.flush().unwrap();
    let s = cache.stats();
    assert!(s.evictions > 0, "{s:?}");
    assert!(
        cache.contains_key(&0u32).unwrap(),
        "a record read before the restart was evicted as if never read: {s:?}"
    );
    assert!(!cache.contains_key(&1u32).unwrap(), "{s:?}");
}

#[test]
fn the_memory_tier_stays_within_capacity_and_counts_evictions() {
    let cache = Cache::builder().memory_capacity(64 << 10).open().unwrap();
    for i in 0..1_000u32 {
        cache.insert(&i, value(i)).unwrap();
    }
    let s = cache.stats();
    assert!(s.memory_bytes <= 64 << 10, "{s:?}");
    assert!(s.evictions > 0, "{s:?}");
}

#[test]
fn settings_that_cannot_work_are_refused_with_what_to_do() {
    let dir = common::tempdir();
    let err = Cache::builder()
        .path(dir.path())
        .disk_capacity(0)
        .open()
        .unwrap_err();
    assert!(
        matches!(&err, tiered::Error::Config(m) if m.contains("disk_capacity") && m.contains("1 MiB")),
        "{err}"
    );
    // A value whose record exceeds the disk tier is refused at insert, naming the sizes,
    // instead of being evicted by its own commit.
    let cache = Cache::builder()
        .path(dir.path())
        .disk_capacity(1 << 20)
        .open()
        .unwrap();
    let err = cache.insert("big", vec![7u8; 2 << 20]).unwrap_err();
    assert!(
        matches!(&err, tiered::Error::TooLarge { capacity, .. } if *capacity == 1 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("memory_only"), "{err}");
    // Kept in memory only, it is fine.
    cache
        .insert_with(
            "big",
            vec![7u8; 2 << 20],
            &tiered::Options::new().memory_only(),
        )
        .unwrap();
}

/// The child: fills an in-memory cache far past its capacity with small entries and prints
/// how much its resident memory grew.
#[test]
#[ignore = "child process of memory_capacity_bounds_the_real_footprint"]
fn child_fills_a_small_memory_tier() {
    let Some(_) = common::child_dir() else {
        return;
    };
    let cache = Cache::builder().memory_capacity(16 << 20).open().unwrap();
    let before = common::rss_kib();
    for i in 0..200_000u64 {
        cache.insert(&i, i).unwrap();
    }
    let grown = common::rss_kib().saturating_sub(before);
    println!("grown_kib={grown} entries={}", cache.stats().entries);
}

/// `memory_capacity` bounds what the memory tier really holds, not only the encoded bytes:
/// 200,000 small entries (about 115 MB without the bound) in a 16 MiB tier.
#[test]
fn memory_capacity_bounds_the_real_footprint() {
    let dir = common::tempdir();
    let child = common::spawn_child("child_fills_a_small_memory_tier", dir.path(), &[]);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let grown: u64 = stdout
        .split("grown_kib=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the child printed no measure: {stdout}"));
    // Allocator slack and moka's pending work allow some excess; 5x was the old behaviour.
    assert!(
        grown < 2 * (16 << 10),
        "a 16 MiB memory tier grew the process by {grown} KiB: {stdout}"
    );
}
