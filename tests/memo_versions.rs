//! The runtime of memoized functions (`tiered::Memoized`): older versions' entries are
//! reclaimed in both tiers, side files included, whatever happened to the cache meanwhile.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tiered::{Cache, Memoized, Options};

fn blobs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .count()
        })
        .unwrap_or(0)
}

fn big(i: u64) -> Vec<u8> {
    vec![i as u8; 100_000]
}

// M1: a new version's first use reclaims the old version's entries, side files included.
#[test]
fn a_new_version_reclaims_the_older_versions_side_files() {
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        let v1 = Memoized::new("memo_versions::m1", 1);
        for i in 0..10u64 {
            let _ = v1.call(&cache, &Options::new(), v1.key(&(i,)), || big(i));
        }
        cache.flush().unwrap();
    }
    let before = blobs(dir.path());
    let cache = Cache::open(dir.path()).unwrap();
    let v2 = Memoized::new("memo_versions::m1", 2);
    let _ = v2.call(&cache, &Options::new(), v2.key(&(0u64,)), || big(0));
    cache.compact().unwrap();
    let after = blobs(dir.path());
    assert_eq!(before, 10);
    assert!(after <= 1, "old version's side files left: {after}");
}

// M2: cache.clear() (which also clears the version records), then more calls of the same
// version; the next version must still reclaim them.
#[test]
fn entries_written_after_a_cache_clear_are_reclaimed_by_the_next_version() {
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        let v1 = Memoized::new("memo_versions::m2", 1);
        let _ = v1.call(&cache, &Options::new(), v1.key(&(999u64,)), || vec![0u8]);
        cache.clear().unwrap();
        for i in 0..10u64 {
            let _ = v1.call(&cache, &Options::new(), v1.key(&(i,)), || big(i));
        }
        cache.flush().unwrap();
    }
    assert_eq!(blobs(dir.path()), 10);
    let cache = Cache::open(dir.path()).unwrap();
    let v2 = Memoized::new("memo_versions::m2", 2);
    let _ = v2.call(&cache, &Options::new(), v2.key(&(0u64,)), || big(0));
    cache.compact().unwrap();
    let after = blobs(dir.path());
    assert!(
        after <= 1,
        "old version's side files left after a clear: {after}"
    );
}

// M2b: a third process with v1 again (alternating versions) after M2-like history.
#[test]
fn alternating_versions_leave_only_the_current_ones_entries() {
    let dir = common::tempdir();
    for (round, ver) in [1u64, 2, 1, 2].into_iter().enumerate() {
        let cache = Cache::open(dir.path()).unwrap();
        let m = Memoized::new("memo_versions::m2b", ver);
        for i in 0..5u64 {
            let _ = m.call(&cache, &Options::new(), m.key(&(i, round)), || big(i));
        }
        cache.compact().unwrap();
    }
    assert!(blobs(dir.path()) <= 5);
}

// M3: a panic in the memoized function: the follower takes over.
#[test]
fn a_panic_in_a_memoized_function_lets_a_waiting_caller_run_it() {
    let cache = Cache::in_memory();
    let m = Memoized::new("memo_versions::m3", 1);
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        std::thread::spawn(move || {
            m.call(&cache, &Options::new(), m.key(&(1u8,)), || {
                runs.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(200));
                panic!("boom");
                #[allow(unreachable_code)]
                0u32
            })
        })
    };
    rx.recv().unwrap();
    let v = m.call(&cache, &Options::new(), m.key(&(1u8,)), || 5u32);
    assert!(leader.join().is_err());
    assert_eq!(v, 5);
    // call_option: None not cached.
    let n = AtomicUsize::new(0);
    for _ in 0..2 {
        let r: Option<u8> = m.call_option(&cache, &Options::new(), m.key(&(2u8,)), || {
            n.fetch_add(1, Ordering::SeqCst);
            None
        });
        assert_eq!(r, None);
    }
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

// M4: version record under default options with a ttl: it must not expire.
#[test]
fn the_version_note_outlives_a_default_ttl() {
    let dir = common::tempdir();
    let open = || {
        Cache::builder()
            .path(dir.path())
            .default_options(Options::new().ttl(std::time::Duration::from_millis(200)))
            .open()
            .unwrap()
    };
    {
        let cache = open();
        let v1 = Memoized::new("memo_versions::m4", 1);
        for i in 0..5u64 {
            let _ = v1.call(
                &cache,
                &Options::new().ttl(std::time::Duration::from_secs(3600)),
                v1.key(&(i,)),
                || big(i),
            );
        }
        cache.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    let cache = open();
    let v2 = Memoized::new("memo_versions::m4", 2);
    let _ = v2.call(&cache, &Options::new(), v2.key(&(0u64,)), || vec![1u8]);
    cache.compact().unwrap();
    assert_eq!(blobs(dir.path()), 0);
}

// M5: the version record is an ordinary LRU entry: disk eviction can drop it, and the next
// version then reclaims nothing.
#[test]
fn a_new_version_reclaims_older_entries_even_after_its_version_note_was_evicted() {
    let dir = common::tempdir();
    let open = || {
        Cache::builder()
            .path(dir.path())
            .disk_capacity(4 << 20)
            .open()
            .unwrap()
    };
    {
        let cache = open();
        let v1 = Memoized::new("memo_versions::m5", 1);
        let other = Memoized::new("memo_versions::m5_other", 1);
        let _ = v1.call(&cache, &Options::new(), v1.key(&(0u64,)), || big(0));
        // Other work fills the disk; v1's version record is the least recently used.
        for i in 0..60u64 {
            let _ = other.call(&cache, &Options::new(), other.key(&(i,)), || big(i));
            if i % 10 == 0 {
                cache.compact().unwrap();
            }
        }
        // v1 entries written late, after the record was evicted:
        for i in 1..10u64 {
            let _ = v1.call(&cache, &Options::new(), v1.key(&(i,)), || big(i));
        }
        cache.compact().unwrap();
    }
    let cache = open();
    let v2 = Memoized::new("memo_versions::m5", 2);
    let _ = v2.call(&cache, &Options::new(), v2.key(&(0u64,)), || vec![1u8]);
    cache.compact().unwrap();
    let v1 = Memoized::new("memo_versions::m5", 1);
    // Are v1's entries still readable in the namespace? (removal returns whether one existed)
    let mut alive = 0;
    for i in 1..10u64 {
        if v1.remove(&cache, v1.key(&(i,))).unwrap() {
            alive += 1;
        }
    }
    assert_eq!(alive, 0);
}

// A short-lived program (a script, one run of a dev loop): the reclaim of the older version's
// entries must not wait for the next run (whose sweep would start over).
#[test]
fn a_short_lived_program_reclaims_the_older_versions_entries_before_it_closes() {
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        let v1 = Memoized::new("memo_versions::short", 1);
        for i in 0..10u64 {
            let _ = v1.call(&cache, &Options::new(), v1.key(&(i,)), || big(i));
        }
    }
    assert_eq!(blobs(dir.path()), 10);
    {
        let cache = Cache::open(dir.path()).unwrap();
        let v2 = Memoized::new("memo_versions::short", 2);
        let _ = v2.call(&cache, &Options::new(), v2.key(&(0u64,)), || big(0));
    }
    // No compaction, no reopening: what the closed cache left.
    assert_eq!(blobs(dir.path()), 1);
}

// A process that runs two versions of a function (an app file edited under a reloading server,
// as Python's `panel serve --dev` does): the newer version's entries must outlive a restart.
#[test]
fn a_version_first_used_after_another_in_one_process_keeps_its_entries_after_a_restart() {
    let dir = common::tempdir();
    let runs = AtomicUsize::new(0);
    let compute = |i: u64| {
        runs.fetch_add(1, Ordering::SeqCst);
        i * 3
    };
    {
        let cache = Cache::open(dir.path()).unwrap();
        let v1 = Memoized::new("memo_versions::edited", 1);
        let _ = v1.call(&cache, &Options::new(), v1.key(&(7u64,)), || 7u64 * 2);
        let v2 = Memoized::new("memo_versions::edited", 2);
        assert_eq!(
            v2.call(&cache, &Options::new(), v2.key(&(7u64,)), || compute(7)),
            21
        );
        cache.flush().unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    let v2 = Memoized::new("memo_versions::edited", 2);
    assert_eq!(
        v2.call(&cache, &Options::new(), v2.key(&(7u64,)), || compute(7)),
        21
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the restart computed the call again"
    );
}

/// A key argument whose `Serialize` fails.
struct Unencodable;

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not today"))
    }
}

#[test]
fn a_call_whose_key_cannot_be_encoded_runs_uncached_and_counts_as_a_miss() {
    let cache = Cache::in_memory();
    let m = Memoized::new("memo_versions::unencodable", 1);
    let runs = AtomicUsize::new(0);
    for _ in 0..2 {
        let v = m.call(&cache, &Options::new(), m.key(&(Unencodable,)), || {
            runs.fetch_add(1, Ordering::SeqCst);
            7u8
        });
        assert_eq!(v, 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let s = m.stats(&cache);
    assert_eq!((s.hits, s.misses), (0, 2));
}

/// `explain` of a memoized call tells a code change apart from a call never made: before the
/// new version's first call (the older entries are still there) and after it dropped them,
/// in a new process each time, and changing nothing itself.
#[test]
fn explain_says_the_code_changed_only_for_calls_the_older_version_stored() {
    use tiered::Explanation;
    let dir = common::tempdir();
    const V1: Memoized = Memoized::new("app::price", 1);
    const V2: Memoized = Memoized::new("app::price", 2);
    {
        let cache = Cache::open(dir.path()).unwrap();
        V1.call(&cache, &Options::new(), V1.key(&("eu",)), || 1u32);
        V1.call(&cache, &Options::new(), V1.key(&("us",)), || 2u32);
        assert_eq!(
            V1.explain::<u32>(&cache, &V1.key(&("eu",))).unwrap(),
            Explanation::Hit
        );
    }
    {
        let cache = Cache::open(dir.path()).unwrap();
        let before = cache.stats();
        assert_eq!(
            V2.explain::<u32>(&cache, &V2.key(&("eu",))).unwrap(),
            Explanation::CodeChanged
        );
        assert_eq!(
            V2.explain::<u32>(&cache, &V2.key(&("fr",))).unwrap(),
            Explanation::NeverWritten
        );
        let after = cache.stats();
        assert_eq!(
            (
                before.memory_hits,
                before.disk_hits,
                before.misses,
                before.invalidations
            ),
            (
                after.memory_hits,
                after.disk_hits,
                after.misses,
                after.invalidations
            ),
            "explain counts nothing and drops nothing"
        );
        // The first call of the new version drops the older entries; explain still says why.
        V2.call(&cache, &Options::new(), V2.key(&("us",)), || 20u32);
        assert_eq!(
            V2.explain::<u32>(&cache, &V2.key(&("eu",))).unwrap(),
            Explanation::CodeChanged
        );
        assert_eq!(
            V2.explain::<u32>(&cache, &V2.key(&("us",))).unwrap(),
            Explanation::Hit
        );
    }
}

#[test]
fn a_listing_shows_memoized_calls_and_hides_the_bookkeeping() {
    use tiered::EntryFilter;
    const PRICE: Memoized = Memoized::new("app::prices::load_prices", 3);
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    PRICE.call(
        &cache,
        &Options::new(),
        PRICE.key(&("eu", 1u32, 5u8)),
        || 1.5f64,
    );
    cache.insert("plain", 2u8).unwrap();
    // An entry of another code version (another build's, sharing the folder): the same call,
    // told apart by its key.
    cache
        .namespace("app::prices::load_prices")
        .insert(&(2u64, ("us", 1u32, 5u8)), 9.0f64)
        .unwrap();

    let mut listed: Vec<(Option<String>, String, Option<String>)> = cache
        .entries(&EntryFilter::new())
        .unwrap()
        .into_iter()
        .map(|e| (e.namespace, e.key, e.call))
        .collect();
    listed.sort();
    let ns = Some("app::prices::load_prices".to_string());
    assert_eq!(
        listed,
        vec![
            (None, r#""plain""#.to_string(), None),
            (
                ns.clone(),
                r#"(2, ("us", 1, 5))"#.to_string(),
                Some(r#"load_prices("us", 1, 5)"#.to_string())
            ),
            (
                ns,
                r#"(3, ("eu", 1, 5))"#.to_string(),
                Some(r#"load_prices("eu", 1, 5)"#.to_string())
            ),
        ],
        "the code version note is the cache's own, and left out"
    );

    let all = cache.entries(&EntryFilter::new().bookkeeping()).unwrap();
    assert_eq!(all.len(), 4, "asked for, the note is listed: {all:?}");
    let notes = cache
        .entries(&EntryFilter::new().namespace("tiered/memoize-versions"))
        .unwrap();
    assert_eq!(notes.len(), 1, "a filter naming its namespace lists it");
    assert_eq!(notes[0].key, r#""app::prices::load_prices""#);
    assert_eq!(notes[0].call, None);
}

#[test]
fn stats_count_only_the_users_operations_around_memoized_calls() {
    // The cache's own notes (a function's code version: read, written, and the drop of an
    // older version's entries) are not the user's reads, writes or invalidations.
    fn counts(s: &tiered::Stats) -> (u64, u64, u64, u64) {
        (
            s.misses,
            s.memory_hits + s.disk_hits,
            s.inserts,
            s.invalidations,
        )
    }
    const V1: Memoized = Memoized::new("app::rate", 1);
    const V2: Memoized = Memoized::new("app::rate", 2);
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        V1.call(&cache, &Options::new(), V1.key(&("eu",)), || 1u32);
        V1.call(&cache, &Options::new(), V1.key(&("eu",)), || 1u32);
        let s = cache.stats();
        assert_eq!(
            counts(&s),
            (1, 1, 1, 0),
            "a first run: one miss, one insert, one hit: {s:?}"
        );
    }
    let cache = Cache::open(dir.path()).unwrap();
    V2.call(&cache, &Options::new(), V2.key(&("eu",)), || 2u32);
    let s = cache.stats();
    assert_eq!(
        counts(&s),
        (1, 0, 1, 0),
        "the new version's first call: its own miss and insert only: {s:?}"
    );
}

/// Found by an attack: a process of the older build, still running beside the newer one
/// whose first call dropped its entries, explained its calls as "invalidated by a clear of
/// the namespace", which nobody called.
#[test]
fn an_older_build_explains_entries_a_newer_build_dropped_as_code_changed() {
    let cache = Cache::in_memory();
    let v1 = Memoized::new("memo_versions::two_builds", 1);
    let v2 = Memoized::new("memo_versions::two_builds", 2);
    v1.call(&cache, &Options::new(), v1.key(&(1u8,)), || 1u32);
    v2.call(&cache, &Options::new(), v2.key(&(2u8,)), || 2u32);
    assert_eq!(
        v1.explain::<u32>(&cache, &v1.key(&(1u8,))).unwrap(),
        tiered::Explanation::CodeChanged
    );
    // A clear by the build itself is a clear.
    v2.call(&cache, &Options::new(), v2.key(&(3u8,)), || 3u32);
    v2.clear(&cache).unwrap();
    assert!(matches!(
        v2.explain::<u32>(&cache, &v2.key(&(3u8,))).unwrap(),
        tiered::Explanation::Invalidated { .. }
    ));
}
