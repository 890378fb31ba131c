//! `Cache::explain`: why a key is not a hit, for each reason the cache can tell.

mod common;

use std::time::{Duration, SystemTime};

use tiered::{Cache, Durability, Explanation, Invalidation, Options};

const S: Duration = Duration::from_secs(1);

#[test]
fn a_live_value_is_a_hit_and_an_unknown_key_was_never_written() {
    let cache = Cache::in_memory();
    cache.insert("k", 1u32).unwrap();
    assert_eq!(cache.explain::<_, u32>("k").unwrap(), Explanation::Hit);
    assert_eq!(
        cache.explain::<_, u32>("other").unwrap(),
        Explanation::NeverWritten
    );
    assert_eq!(
        Explanation::NeverWritten.to_string(),
        "never written, as far as the cache can tell"
    );
}

#[test]
fn expiry_says_when_in_memory_on_disk_and_after_the_sweep() {
    let dir = common::tempdir();
    let clock = common::clock();
    let start = SystemTime::UNIX_EPOCH + Duration::from_millis(clock_ms(&clock));
    let expected = Explanation::Expired { at: start + 60 * S };
    {
        let cache = common::open(dir.path(), &clock);
        let opts = Options::new().ttl(60 * S);
        cache.insert_with("read", 1u32, &opts).unwrap();
        cache.insert_with("unread", 1u32, &opts).unwrap();
        clock.advance(61 * S);
        assert_eq!(
            cache.explain::<_, u32>("read").unwrap(),
            expected,
            "in memory"
        );
        assert!(cache.get::<_, u32>("read").unwrap().is_none()); // dropped now
        assert_eq!(
            cache.explain::<_, u32>("read").unwrap(),
            expected,
            "remembered"
        );
    }
    let cache = common::open(dir.path(), &clock);
    // Still on disk after the restart, or swept by this process's first pass (which remembers
    // what it deleted): explained either way.
    assert_eq!(cache.explain::<_, u32>("unread").unwrap(), expected);
    // Dropped by the previous process, which kept its memory of it in the folder.
    assert_eq!(cache.explain::<_, u32>("read").unwrap(), expected);
}

fn clock_ms(clock: &tiered::ManualClock) -> u64 {
    use tiered::Clock;
    clock.now_ms()
}

#[test]
fn invalidations_name_the_tag_the_namespace_or_the_clear() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    cache
        .insert_with("t", 1u8, &Options::new().tags(["prices", "eu"]))
        .unwrap();
    cache.invalidate_tag("eu").unwrap();
    assert_eq!(
        cache.explain::<_, u8>("t").unwrap(),
        Explanation::Invalidated {
            by: Invalidation::Tag("eu".into())
        }
    );
    let ns = cache.namespace("reports");
    ns.insert("q1", 1u8).unwrap();
    ns.clear().unwrap();
    let why = ns.explain::<_, u8>("q1").unwrap();
    assert_eq!(
        why,
        Explanation::Invalidated {
            by: Invalidation::Namespace("reports".into())
        }
    );
    assert!(why.to_string().contains("reports"), "{why}");
    cache.insert("c", 1u8).unwrap();
    cache.clear().unwrap();
    assert_eq!(
        cache.explain::<_, u8>("c").unwrap(),
        Explanation::Invalidated {
            by: Invalidation::Clear
        }
    );
}

#[test]
fn another_type_is_named_and_a_removal_remembered() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    cache.insert("n", 5u64).unwrap();
    let why = cache.explain::<_, String>("n").unwrap();
    assert_eq!(
        why,
        Explanation::OtherType {
            stored: "u64".into()
        }
    );
    drop(cache);
    let cache = common::open(dir.path(), &clock);
    assert!(
        matches!(cache.explain::<_, String>("n").unwrap(), Explanation::OtherType { stored } if stored == "u64"),
        "from disk too"
    );
    assert!(cache.remove("n").unwrap());
    assert_eq!(cache.explain::<_, u64>("n").unwrap(), Explanation::Removed);
}

#[test]
fn eviction_for_capacity_is_remembered_in_both_tiers() {
    // Memory only: the memory tier lets it go.
    let cache = Cache::builder().memory_capacity(16 << 10).open().unwrap();
    for i in 0..200u32 {
        cache.insert(&i, i).unwrap();
    }
    let _ = cache.stats(); // lets the memory tier finish its evictions
    let evicted = (0..200u32)
        .filter(|i| cache.explain::<_, u32>(i).unwrap() == Explanation::Evicted)
        .count();
    assert!(evicted > 100, "{evicted} of 200 explained as evicted");

    // The disk tier past disk_capacity.
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .memory_capacity(1)
        .disk_capacity(1 << 20)
        .open()
        .unwrap();
    for i in 0..120u32 {
        cache.insert(&i, "x".repeat(17_000)).unwrap();
    }
    let evicted = (0..120u32)
        .filter(|i| cache.explain::<_, String>(i).unwrap() == Explanation::Evicted)
        .count();
    assert!(
        evicted > 0,
        "nothing explained as evicted: {:?}",
        cache.stats()
    );
}

#[test]
fn the_fate_of_a_dropped_key_survives_a_restart() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert("gone", 1u32).unwrap();
        cache
            .insert_with("tagged", 1u32, &Options::new().tags(["prices"]))
            .unwrap();
        assert!(cache.remove("gone").unwrap());
        cache.invalidate_tag("prices").unwrap();
        // The sweeper reclaims the invalidated record (its fate is buried first).
        cache.clear_expired().unwrap();
    }
    let cache = common::open(dir.path(), &clock);
    assert_eq!(
        cache.explain::<_, u32>("gone").unwrap(),
        Explanation::Removed
    );
    let tagged = cache.explain::<_, u32>("tagged").unwrap();
    assert_eq!(
        tagged,
        Explanation::Invalidated {
            by: Invalidation::Tag("prices".into())
        }
    );
    assert_eq!(
        cache.explain::<_, u32>("never").unwrap(),
        Explanation::NeverWritten
    );
    // Written again, the key is live: the old fate does not hide it.
    cache.insert("gone", 2u32).unwrap();
    assert_eq!(cache.explain::<_, u32>("gone").unwrap(), Explanation::Hit);
}

#[test]
fn a_damaged_fates_file_is_ignored() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert("gone", 1u32).unwrap();
        cache.remove("gone").unwrap();
    }
    let fates = dir.path().join("fates");
    assert!(fates.exists(), "the close saved the fates");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&fates).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(&fates, b"\x01\xff\xff\xff garbage").unwrap();
    let cache = common::open(dir.path(), &clock);
    assert_eq!(
        cache.explain::<_, u32>("gone").unwrap(),
        Explanation::NeverWritten
    );
    cache.insert("k", 1u8).unwrap();
    cache.remove("k").unwrap();
    drop(cache);
    // Replaced whole by the next save.
    let cache = common::open(dir.path(), &clock);
    assert_eq!(cache.explain::<_, u8>("k").unwrap(), Explanation::Removed);
}
