//! The admin API: listing entries, dropping expired ones now, export and import between
//! cache folders. Time is a `ManualClock`: nothing here sleeps.

mod common;

use std::time::Duration;

use tiered::{Cache, EntryFilter, EntryInfo, Error, Options};

const S: Duration = Duration::from_secs(1);

fn keys(entries: &[EntryInfo]) -> Vec<String> {
    let mut keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    keys.sort();
    keys
}

fn filled(cache: &Cache) {
    let prices = Options::new().tags(["prices"]);
    cache.insert("paris", 1u32).unwrap();
    cache.insert(&42u64, "answer".to_string()).unwrap();
    cache
        .insert_with(&("prices", 3u32), 1.5f64, &prices)
        .unwrap();
    cache
        .insert_with(&("prices", 4u32), 2.5f64, &prices.clone().ttl(60 * S))
        .unwrap();
    cache
        .namespace("reports")
        .insert_with("q1", vec![1u8, 2, 3], &Options::new().tags(["eu"]))
        .unwrap();
}

#[test]
fn lists_every_entry_with_readable_keys_and_filters() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    filled(&cache);

    let all = cache.entries(&EntryFilter::new()).unwrap();
    assert_eq!(
        keys(&all),
        [
            r#""paris""#,
            r#""q1""#,
            r#"("prices", 3)"#,
            r#"("prices", 4)"#,
            "42"
        ]
    );
    let q1 = all.iter().find(|e| e.key == r#""q1""#).unwrap();
    assert_eq!(q1.namespace.as_deref(), Some("reports"));
    assert!(q1.bytes > 0);
    assert!(!q1.expired);
    assert_eq!(q1.expires, None);
    let p4 = all.iter().find(|e| e.key == r#"("prices", 4)"#).unwrap();
    assert_eq!(p4.expires, Some(p4.created + 60 * S));
    assert_eq!(p4.type_name, "f64");

    let reports = cache
        .entries(&EntryFilter::new().namespace("reports"))
        .unwrap();
    assert_eq!(keys(&reports), [r#""q1""#]);
    let prices = cache.entries(&EntryFilter::new().tag("prices")).unwrap();
    assert_eq!(keys(&prices), [r#"("prices", 3)"#, r#"("prices", 4)"#]);
    assert!(prices.iter().all(|e| e.tags == ["prices"]));
    assert!(cache
        .entries(&EntryFilter::new().tag("prices").tag("eu"))
        .unwrap()
        .is_empty());

    assert!(cache
        .entries(&EntryFilter::new().expired_only())
        .unwrap()
        .is_empty());
    clock.advance(61 * S);
    let expired = cache.entries(&EntryFilter::new().expired_only()).unwrap();
    assert_eq!(keys(&expired), [r#"("prices", 4)"#]);
    assert!(expired[0].expired);
    // Still listed among all entries until reclaimed.
    assert_eq!(cache.entries(&EntryFilter::new()).unwrap().len(), 5);
}

#[test]
fn invalidated_and_removed_entries_are_not_listed() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    filled(&cache);
    cache.invalidate_tag("prices").unwrap();
    cache.namespace("reports").clear().unwrap();
    cache.remove("paris").unwrap();
    assert_eq!(keys(&cache.entries(&EntryFilter::new()).unwrap()), ["42"]);
    cache.clear().unwrap();
    assert!(cache.entries(&EntryFilter::new()).unwrap().is_empty());
}

#[test]
fn entries_not_yet_committed_are_listed() {
    let dir = common::tempdir();
    let cache = Cache::builder()
        .path(dir.path())
        .durability(tiered::Durability::Batched(Duration::from_secs(3600)))
        .open()
        .unwrap();
    cache.insert("a", 1u8).unwrap();
    cache.insert("b", 1u8).unwrap();
    cache.flush().unwrap();
    cache.remove("a").unwrap();
    cache.insert("c", 1u8).unwrap();
    assert_eq!(
        keys(&cache.entries(&EntryFilter::new()).unwrap()),
        [r#""b""#, r#""c""#]
    );
}

#[test]
fn tags_never_invalidated_are_named_by_a_new_process() {
    let dir = common::tempdir();
    let clock = common::clock();
    let first = common::open(dir.path(), &clock);
    first
        .insert_with("k", 1u8, &Options::new().tags(["fresh", "eu"]))
        .unwrap();
    drop(first);
    // The folder keeps the names of the tags its records carry, invalidated or not.
    let cache = common::open(dir.path(), &clock);
    let all = cache.entries(&EntryFilter::new()).unwrap();
    let mut tags = all[0].tags.clone();
    tags.sort();
    assert_eq!(tags, ["eu", "fresh"]);
    let tagged = cache.entries(&EntryFilter::new().tag("fresh")).unwrap();
    assert_eq!(tagged.len(), 1);
}

#[test]
fn a_cache_in_memory_lists_nothing() {
    let cache = Cache::in_memory();
    cache.insert("k", 1u8).unwrap();
    assert!(cache.entries(&EntryFilter::new()).unwrap().is_empty());
}

#[test]
fn clear_expired_counts_and_makes_misses_in_both_tiers() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    let ttl = Options::new().ttl(60 * S);
    for i in 0..10u32 {
        cache.insert_with(&i, i, &ttl).unwrap();
    }
    cache
        .insert_with("memory", 1u32, &ttl.clone().memory_only())
        .unwrap();
    cache.insert("kept", 1u32).unwrap();
    assert_eq!(cache.clear_expired().unwrap(), 0);
    clock.advance(60 * S);
    assert_eq!(cache.clear_expired().unwrap(), 11);
    assert_eq!(cache.clear_expired().unwrap(), 0);
    assert!(cache.get::<_, u32>(&3u32).unwrap().is_none());
    assert!(cache.get::<_, u32>("memory").unwrap().is_none());
    assert_eq!(cache.get::<_, u32>("kept").unwrap().as_deref(), Some(&1));
    assert_eq!(
        keys(&cache.entries(&EntryFilter::new()).unwrap()),
        [r#""kept""#]
    );
    assert!(matches!(
        cache.explain::<_, u32>(&3u32).unwrap(),
        tiered::Explanation::Expired { .. }
    ));
    drop(cache);
    // Gone from the file too.
    let cache = common::open(dir.path(), &clock);
    assert_eq!(cache.stats().entries, 1);
}

#[test]
fn clear_expired_in_a_cache_in_memory() {
    let clock = common::clock();
    let cache = Cache::builder().clock(clock.clone()).open().unwrap();
    cache.insert_with("t", 1u8, &Options::new().ttl(S)).unwrap();
    cache.insert("kept", 1u8).unwrap();
    clock.advance(S);
    assert_eq!(cache.clear_expired().unwrap(), 1);
    assert!(cache.contains_key("kept").unwrap());
}

#[test]
fn export_then_import_round_trips_values_and_tags() {
    let (a, b) = (common::tempdir(), common::tempdir());
    let clock = common::clock();
    let source = common::open(a.path(), &clock);
    filled(&source);
    // A large value goes through a side file.
    let big: Vec<u64> = (0..20_000).collect();
    source.insert("big", big.clone()).unwrap();
    // An expired entry is not exported.
    source
        .insert_with("gone", 1u8, &Options::new().ttl(S))
        .unwrap();
    clock.advance(S);

    let mut stream = Vec::new();
    assert_eq!(source.export(&mut stream).unwrap(), 6);
    drop(source);

    let target = common::open(b.path(), &clock);
    target.insert("paris", 99u32).unwrap();
    assert_eq!(target.import(&stream[..]).unwrap(), 6);
    assert_eq!(target.get::<_, u32>("paris").unwrap().as_deref(), Some(&1));
    assert_eq!(
        target
            .get::<_, String>(&42u64)
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("answer")
    );
    assert_eq!(
        target.get::<_, f64>(&("prices", 3u32)).unwrap().as_deref(),
        Some(&1.5)
    );
    assert_eq!(
        target
            .namespace("reports")
            .get::<_, Vec<u8>>("q1")
            .unwrap()
            .as_deref(),
        Some(&vec![1u8, 2, 3])
    );
    assert_eq!(
        target.get::<_, Vec<u64>>("big").unwrap().as_deref(),
        Some(&big)
    );
    assert!(!target.contains_key("gone").unwrap());

    // Expiry came along: the ttl entry goes when it would have in the source.
    clock.advance(59 * S);
    assert!(!target.contains_key(&("prices", 4u32)).unwrap());

    // Tags and namespaces of this cache reach imported entries, across a restart too.
    target.invalidate_tag("prices").unwrap();
    assert!(!target.contains_key(&("prices", 3u32)).unwrap());
    target.namespace("reports").clear().unwrap();
    assert!(!target.namespace("reports").contains_key("q1").unwrap());
    drop(target);
    let target = common::open(b.path(), &clock);
    assert!(!target.contains_key(&("prices", 3u32)).unwrap());
    assert!(target.contains_key("paris").unwrap());
}

/// An import keeps the names of its entries' tags: the folder lists them by name, after a
/// restart too, and a new export from it carries them on.
#[test]
fn an_import_keeps_the_tag_names_for_listings_and_exports() {
    let (a, b, c) = (common::tempdir(), common::tempdir(), common::tempdir());
    let clock = common::clock();
    let source = common::open(a.path(), &clock);
    source
        .insert_with("k", 1u8, &Options::new().tags(["t1", "t2"]))
        .unwrap();
    let mut stream = Vec::new();
    source.export(&mut stream).unwrap();
    drop(source);

    let tags = |cache: &Cache| {
        let mut tags = cache.entries(&EntryFilter::new()).unwrap()[0].tags.clone();
        tags.sort();
        tags
    };
    let copy = common::open(b.path(), &clock);
    assert_eq!(copy.import(&stream[..]).unwrap(), 1);
    assert_eq!(tags(&copy), ["t1", "t2"]);
    drop(copy);
    let copy = common::open(b.path(), &clock);
    assert_eq!(tags(&copy), ["t1", "t2"], "after a restart");
    let mut again = Vec::new();
    copy.export(&mut again).unwrap();

    let third = common::open(c.path(), &clock);
    third.import(&again[..]).unwrap();
    assert_eq!(tags(&third), ["t1", "t2"], "carried by a new export");
}

#[test]
fn import_into_a_cache_in_memory() {
    let a = common::tempdir();
    let clock = common::clock();
    let source = common::open(a.path(), &clock);
    filled(&source);
    let mut stream = Vec::new();
    source.export(&mut stream).unwrap();
    let target = Cache::builder().clock(clock.clone()).open().unwrap();
    assert_eq!(target.import(&stream[..]).unwrap(), 5);
    assert_eq!(target.get::<_, u32>("paris").unwrap().as_deref(), Some(&1));
    target.invalidate_tag("eu").unwrap();
    assert!(!target.namespace("reports").contains_key("q1").unwrap());
}

#[test]
fn a_truncated_stream_errors_and_keeps_the_entries_before_the_cut() {
    let (a, b) = (common::tempdir(), common::tempdir());
    let clock = common::clock();
    let source = common::open(a.path(), &clock);
    for i in 0..600u32 {
        source.insert(&i, i).unwrap();
    }
    let mut stream = Vec::new();
    assert_eq!(source.export(&mut stream).unwrap(), 600);
    let cut = &stream[..stream.len() * 2 / 3];

    let target = common::open(b.path(), &clock);
    let err = target.import(cut).unwrap_err();
    let Error::Import { imported, .. } = &err else {
        panic!("not an import error: {err}");
    };
    assert!(*imported > 300 && *imported < 600, "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let listed = target.entries(&EntryFilter::new()).unwrap();
    assert_eq!(listed.len() as u64, *imported);
    for e in &listed {
        let n: u32 = e.key.parse().unwrap();
        assert_eq!(target.get::<_, u32>(&n).unwrap().as_deref(), Some(&n));
    }

    let err = target.import(&b"not an export"[..]).unwrap_err();
    assert!(matches!(err, Error::Import { imported: 0, .. }), "{err}");
}

#[test]
fn an_import_of_a_foreign_file_says_nothing_was_imported() {
    let dir = common::tempdir();
    let cache = common::open(dir.path(), &common::clock());
    let err = cache.import(&b"PK\x03\x04 a zip file"[..]).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("nothing was imported"), "{message}");
    assert!(message.contains("not a tiered export"), "{message}");
    assert!(!message.contains("before that point"), "{message}");
}
