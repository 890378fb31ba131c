//! Namespaces isolate equal keys; clearing one leaves the others alone.

mod common;

use tiered::Options;

#[test]
fn equal_keys_in_two_namespaces_are_two_entries() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        let (a, b) = (cache.namespace("a"), cache.namespace("b"));
        a.insert("k", 1u32).unwrap();
        b.insert("k", 2u32).unwrap();
        cache.insert("k", 3u32).unwrap();
        // Prefix tricks cannot collide: ("a", "bk") vs ("ab", "k").
        cache.namespace("ab").insert("k", 4u32).unwrap();
        a.insert("bk", 5u32).unwrap();
        assert_eq!(a.get::<_, u32>("k").unwrap().as_deref(), Some(&1));
        assert_eq!(b.get::<_, u32>("k").unwrap().as_deref(), Some(&2));
        assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&3));
        assert!(!b.contains_key("bk").unwrap());
    }
    let cache = common::open(dir.path(), &clock);
    assert_eq!(
        cache.namespace("a").get::<_, u32>("k").unwrap().as_deref(),
        Some(&1)
    );
    assert_eq!(
        cache.namespace("ab").get::<_, u32>("k").unwrap().as_deref(),
        Some(&4)
    );
    assert_eq!(
        cache.namespace("a").get::<_, u32>("bk").unwrap().as_deref(),
        Some(&5)
    );
}

#[test]
fn clear_drops_only_its_namespace_in_both_tiers() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        let user1 = cache.namespace(format!("user/{}", 1));
        let user2 = cache.namespace(format!("user/{}", 2));
        for i in 0..10u32 {
            user1.insert(&i, i).unwrap();
            user2.insert(&i, i).unwrap();
        }
        user1
            .insert_with("tagged", 1u32, &Options::new().tags(["x"]))
            .unwrap();
        user1.clear().unwrap();
        assert!(user1.get::<_, u32>(&0u32).unwrap().is_none());
        assert!(!user1.contains_key("tagged").unwrap());
        assert_eq!(user2.get::<_, u32>(&0u32).unwrap().as_deref(), Some(&0));
        user1.insert("after", 7u32).unwrap();
    }
    let cache = common::open(dir.path(), &clock);
    let (user1, user2) = (cache.namespace("user/1"), cache.namespace("user/2"));
    for i in 0..10u32 {
        assert!(user1.get::<_, u32>(&i).unwrap().is_none());
        assert_eq!(user2.get::<_, u32>(&i).unwrap().as_deref(), Some(&i));
    }
    assert_eq!(user1.get::<_, u32>("after").unwrap().as_deref(), Some(&7));
}

#[test]
fn namespaces_have_the_whole_api() {
    let cache = tiered::Cache::in_memory();
    let ns = cache.namespace("reports");
    assert_eq!(ns.name(), "reports");
    let v = ns
        .get_or_insert_with("q1", &Options::new(), || 11u32)
        .unwrap();
    assert_eq!(*v, 11);
    let r: Result<std::sync::Arc<u32>, tiered::Error> =
        ns.try_get_or_insert_with("q2", &Options::new(), || Ok(12u32));
    assert_eq!(*r.unwrap(), 12);
    assert!(ns.remove("q1").unwrap());
    assert!(!ns.contains_key("q1").unwrap());
    assert!(
        cache.get::<_, u32>("q2").unwrap().is_none(),
        "the root namespace is another"
    );
}
