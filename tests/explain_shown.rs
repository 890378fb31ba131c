//! `Cache::explain_shown`: `explain` of a key written as `tiered ls` shows it, or of a
//! memoized call written as a call, for tools that have no key types (the `tiered` command).

mod common;

use std::time::Duration;

use serde::Serialize;
use tiered::{Cache, Error, Explanation, Invalidation, Memoized, Options};

#[test]
fn a_key_as_the_listing_shows_it_explains_that_key_whatever_its_value_type() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    cache.insert(&("prices", 3u32), 1.5f64).unwrap();
    cache.insert("motd", "hello".to_string()).unwrap();
    let shown = &cache.entries(&tiered::EntryFilter::new()).unwrap();
    for entry in shown {
        assert_eq!(
            cache.explain_shown(&entry.key).unwrap(),
            Explanation::Hit,
            "{}",
            entry.key
        );
    }
    // Spacing is free; a number without a width matches any width, with one only that one.
    assert_eq!(
        cache.explain_shown("(\"prices\",3)").unwrap(),
        Explanation::Hit
    );
    assert_eq!(
        cache.explain_shown("(\"prices\", 3u32)").unwrap(),
        Explanation::Hit
    );
    assert_eq!(
        cache.explain_shown("(\"prices\", 3u64)").unwrap(),
        Explanation::NeverWritten
    );
    assert_eq!(
        cache.explain_shown("(\"prices\", 4)").unwrap(),
        Explanation::NeverWritten
    );
    // The same key in a namespace is another key.
    assert_eq!(
        cache.namespace("ns").explain_shown("\"motd\"").unwrap(),
        Explanation::NeverWritten
    );
}

#[test]
fn expired_invalidated_and_removed_keys_say_so_by_their_text() {
    let dir = common::tempdir();
    let clock = common::clock();
    let cache = common::open(dir.path(), &clock);
    let ns = cache.namespace("cities");
    ns.insert_with("paris", 1u32, &Options::new().ttl(Duration::from_secs(60)))
        .unwrap();
    cache
        .insert_with(&7u16, 1u8, &Options::new().tags(["prices"]))
        .unwrap();
    cache.insert(&-3i64, 1u8).unwrap();
    clock.advance(Duration::from_secs(61));
    cache.invalidate_tag("prices").unwrap();
    cache.remove(&-3i64).unwrap();

    assert!(matches!(
        ns.explain_shown("\"paris\"").unwrap(),
        Explanation::Expired { .. }
    ));
    assert_eq!(
        cache.explain_shown("7").unwrap(),
        Explanation::Invalidated {
            by: Invalidation::Tag("prices".into())
        }
    );
    assert_eq!(cache.explain_shown("-3").unwrap(), Explanation::Removed);
}

#[derive(Serialize)]
enum Period {
    #[allow(dead_code)]
    Daily,
    Weekly(u8),
}

#[test]
fn an_enum_variant_is_found_whatever_its_index() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    cache.insert(&("report", Period::Weekly(2)), 1u8).unwrap();
    assert_eq!(
        cache
            .explain_shown("(\"report\", Period::Weekly(2))")
            .unwrap(),
        Explanation::Hit
    );
    assert_eq!(
        cache
            .explain_shown("(\"report\", Period::Weekly(3))")
            .unwrap(),
        Explanation::NeverWritten
    );
}

#[tiered::memoize(cache = _cache)]
fn load_prices(_cache: &Cache, region: String, day: u32) -> Vec<f64> {
    vec![f64::from(day); region.len()]
}

#[test]
fn a_memoized_call_is_explained_by_the_call_as_listed() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(
        cache.explain_shown("load_prices(\"eu\", 5)").unwrap(),
        Explanation::NeverWritten,
        "no such function in the cache yet: a plain key, never written"
    );
    load_prices(&cache, "eu".into(), 5);
    let listed = cache.entries(&tiered::EntryFilter::new()).unwrap();
    let call = listed.iter().find_map(|e| e.call.clone()).unwrap();
    assert_eq!(call, "load_prices(\"eu\", 5)");
    assert_eq!(cache.explain_shown(&call).unwrap(), Explanation::Hit);
    // By the path's last segments, or the whole path, too.
    let path = concat!(module_path!(), "::load_prices");
    assert_eq!(
        cache.explain_shown(&format!("{path}(\"eu\", 5)")).unwrap(),
        Explanation::Hit
    );
    assert_eq!(
        cache.explain_shown("load_prices(\"eu\", 6)").unwrap(),
        Explanation::NeverWritten
    );
    // A removed call, while another entry of the function shows how its keys are made.
    load_prices(&cache, "eu".into(), 6);
    assert!(load_prices::remove(&cache, &"eu".to_string(), &5).unwrap());
    assert_eq!(
        cache.explain_shown("load_prices(\"eu\", 5)").unwrap(),
        Explanation::Removed
    );
}

#[test]
fn a_call_stored_by_another_version_of_the_code_says_the_code_changed() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    let v1 = Memoized::new("app::daily_report", 1);
    let v2 = Memoized::new("app::daily_report", 2);
    v1.call(&cache, &Options::new(), v1.key(&("eu", 3u8)), || 1u32);
    assert_eq!(
        cache.explain_shown("daily_report(\"eu\", 3)").unwrap(),
        Explanation::Hit
    );
    // The new build's first call (of other arguments) notes version 2.
    v2.call(&cache, &Options::new(), v2.key(&("us", 1u8)), || 2u32);
    assert_eq!(
        cache.explain_shown("daily_report(\"eu\", 3)").unwrap(),
        Explanation::CodeChanged
    );
    assert_eq!(
        cache.explain_shown("daily_report(\"us\", 1)").unwrap(),
        Explanation::Hit
    );
}

#[test]
fn a_text_that_is_not_a_key_says_where_and_how_to_write_it() {
    let cache = Cache::in_memory();
    for text in ["(\"a\", ", "5x", "{1: }"] {
        match cache.explain_shown(text) {
            Err(Error::Encode { detail, .. }) => {
                assert!(detail.contains("as `tiered ls` shows them"), "{detail}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    match cache.explain_shown("(1, 2, 3, 4)") {
        Err(Error::Encode { detail, .. }) => assert!(detail.contains("5u32"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tiered::memoize(cache = _cache)]
fn load_rates(_cache: &Cache, region: String) -> u32 {
    region.len() as u32
}

#[test]
fn a_memoized_call_whose_function_has_no_entry_left_is_still_explained() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    load_rates(&cache, "eu".into());
    assert!(load_rates::remove(&cache, &"eu".to_string()).unwrap());
    // No entry of the function is left to show how its keys are made: its note does.
    assert_eq!(
        cache.explain_shown("load_rates(\"eu\")").unwrap(),
        Explanation::Removed
    );
}

#[test]
fn a_call_dropped_by_a_code_change_says_so_in_later_processes() {
    let dir = common::tempdir();
    let v1 = Memoized::new("app::weekly_report", 1);
    let v2 = Memoized::new("app::weekly_report", 2);
    {
        let cache = Cache::open(dir.path()).unwrap();
        v1.call(&cache, &Options::new(), v1.key(&("eu", 3u8)), || 1u32);
    }
    {
        // The new build's first call drops version 1's entries (swept at the latest at close).
        let cache = Cache::open(dir.path()).unwrap();
        v2.call(&cache, &Options::new(), v2.key(&("us", 1u8)), || 2u32);
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(
        v2.explain::<u32>(&cache, &v2.key(&("eu", 3u8))).unwrap(),
        Explanation::CodeChanged
    );
    assert_eq!(
        cache.explain_shown("weekly_report(\"eu\", 3)").unwrap(),
        Explanation::CodeChanged
    );
    assert_eq!(
        cache.explain_shown("weekly_report(\"eu\", 4)").unwrap(),
        Explanation::NeverWritten
    );
}
