//! invalidate_tag drops every entry with the tag, in both tiers and after a restart, and
//! nothing else.

mod common;

use std::time::Duration;

use tiered::Options;

fn get(cache: &tiered::Cache, key: &str) -> Option<u32> {
    cache.get::<_, u32>(key).unwrap().map(|v| *v)
}

#[test]
fn invalidate_tag_reaches_both_tiers_every_namespace_and_restarts() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache
            .insert_with("a", 1u32, &Options::new().tags(["prices"]))
            .unwrap();
        cache
            .insert_with("b", 2u32, &Options::new().tags(["eu", "prices"]))
            .unwrap();
        cache
            .insert_with("c", 3u32, &Options::new().tags(["eu"]))
            .unwrap();
        cache.insert("d", 4u32).unwrap();
        let ns = cache.namespace("reports");
        ns.insert_with("e", 5u32, &Options::new().tags(["prices"]))
            .unwrap();
        assert_eq!(get(&cache, "a"), Some(1), "memory hit before invalidation");

        cache.invalidate_tag("prices").unwrap();
        assert_eq!(get(&cache, "a"), None);
        assert_eq!(get(&cache, "b"), None);
        assert_eq!(ns.get::<_, u32>("e").unwrap(), None);
        assert_eq!(get(&cache, "c"), Some(3));
        assert_eq!(get(&cache, "d"), Some(4));
        assert_eq!(cache.stats().invalidations, 1);

        // Written after the invalidation: a new generation, live.
        cache
            .insert_with("a", 10u32, &Options::new().tags(["prices"]))
            .unwrap();
        assert_eq!(get(&cache, "a"), Some(10));
    }
    let cache = common::open(dir.path(), &clock);
    assert_eq!(get(&cache, "a"), Some(10));
    assert_eq!(get(&cache, "b"), None);
    assert_eq!(cache.namespace("reports").get::<_, u32>("e").unwrap(), None);
    assert_eq!(get(&cache, "c"), Some(3));
    assert_eq!(get(&cache, "d"), Some(4));
}

#[test]
fn invalidated_records_are_swept_from_disk() {
    let dir = common::tempdir();
    // Batched: one commit for all inserts (the default durability).
    let cache = tiered::Cache::open(dir.path()).unwrap();
    for i in 0..3_000u32 {
        let tag = if i % 3 == 0 { "keep" } else { "drop" };
        cache
            .insert_with(&i, i, &Options::new().tags([tag]))
            .unwrap();
    }
    cache.flush().unwrap();
    let before = cache.stats();
    assert_eq!(before.entries, 3_000);
    cache.invalidate_tag("drop").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cache.stats().entries > 1_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = cache.stats();
    assert_eq!(after.entries, 1_000, "stale records were not swept");
    assert!(after.disk_bytes < before.disk_bytes / 2);
    assert_eq!(cache.get::<_, u32>(&3u32).unwrap().as_deref(), Some(&3));
}

#[test]
fn clear_drops_everything_persistently() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert("a", 1u32).unwrap();
        cache.namespace("n").insert("b", 2u32).unwrap();
        cache.clear().unwrap();
        assert_eq!(get(&cache, "a"), None);
        assert_eq!(cache.namespace("n").get::<_, u32>("b").unwrap(), None);
        cache.insert("c", 3u32).unwrap();
    }
    let cache = common::open(dir.path(), &clock);
    assert_eq!(get(&cache, "a"), None);
    assert_eq!(get(&cache, "c"), Some(3));
}

#[test]
fn invalidation_during_a_computation_makes_its_result_stale() {
    let cache = tiered::Cache::in_memory();
    let opts = Options::new().tags(["t"]);
    let v = cache
        .get_or_insert_with("k", &opts, || {
            cache.invalidate_tag("t").unwrap();
            1u32
        })
        .unwrap();
    assert_eq!(*v, 1, "the caller still gets what it computed");
    assert_eq!(
        get(&cache, "k"),
        None,
        "but it was computed from invalidated data"
    );
}
