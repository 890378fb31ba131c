//! What makes two keys one: equal serde data, and nothing else (issue item 12).

mod common;

use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use tiered::{Cache, Error};

/// The `String` stored under `key` at the root.
fn text<K: Serialize + ?Sized>(cache: &Cache, key: &K) -> Option<String> {
    cache.get::<_, String>(key).unwrap().map(|v| (*v).clone())
}

#[test]
fn one_u32_u64_u8_and_true_are_four_keys() {
    let dir = common::tempdir();
    let clock = common::clock();
    let check = |cache: &Cache| {
        assert_eq!(text(cache, &1u32).as_deref(), Some("u32"));
        assert_eq!(text(cache, &1u64).as_deref(), Some("u64"));
        assert_eq!(text(cache, &1u8).as_deref(), Some("u8"));
        assert_eq!(text(cache, &true).as_deref(), Some("true"));
        assert!(!cache.contains_key(&1i32).unwrap());
    };
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert(&1u32, "u32".to_string()).unwrap();
        cache.insert(&1u64, "u64".to_string()).unwrap();
        cache.insert(&1u8, "u8".to_string()).unwrap();
        cache.insert(&true, "true".to_string()).unwrap();
        check(&cache);
    }
    check(&common::open(dir.path(), &clock));
}

#[test]
fn str_and_string_name_one_entry() {
    let cache = Cache::in_memory();
    cache.insert("a", 1u32).unwrap();
    assert_eq!(
        cache.get::<_, u32>(&String::from("a")).unwrap().as_deref(),
        Some(&1)
    );
    cache.insert(&String::from("a"), 2u32).unwrap();
    assert_eq!(cache.get::<_, u32>("a").unwrap().as_deref(), Some(&2));
    assert!(cache.remove(&String::from("a")).unwrap());
    assert!(!cache.contains_key("a").unwrap());
}

#[test]
fn slice_and_vec_name_one_entry() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        cache.insert(&[1u8, 2][..], 12u32).unwrap();
        assert_eq!(
            cache.get::<_, u32>(&vec![1u8, 2]).unwrap().as_deref(),
            Some(&12)
        );
        // An array is a tuple in serde, and a tuple is keyed as a sequence.
        assert_eq!(
            cache.get::<_, u32>(&[1u8, 2]).unwrap().as_deref(),
            Some(&12)
        );
        assert!(!cache.contains_key(&vec![1u16, 2]).unwrap());
        assert!(!cache.contains_key(&vec![1u8, 2, 0]).unwrap());
    }
    let cache = common::open(dir.path(), &clock);
    assert_eq!(
        cache.get::<_, u32>(&vec![1u8, 2]).unwrap().as_deref(),
        Some(&12)
    );
}

#[test]
fn empty_namespace_is_not_the_root() {
    let dir = common::tempdir();
    let clock = common::clock();
    {
        let cache = common::open(dir.path(), &clock);
        let empty = cache.namespace("");
        assert_eq!(empty.name(), "");
        cache.insert("k", 1u32).unwrap();
        empty.insert("k", 2u32).unwrap();
        assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&1));
        assert_eq!(empty.get::<_, u32>("k").unwrap().as_deref(), Some(&2));

        empty.clear().unwrap();
        assert!(!empty.contains_key("k").unwrap());
        assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&1));
        empty.insert("k", 3u32).unwrap();
    }
    let cache = common::open(dir.path(), &clock);
    assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&1));
    assert_eq!(
        cache.namespace("").get::<_, u32>("k").unwrap().as_deref(),
        Some(&3)
    );
    // And the other way round: removing the root's key leaves the empty namespace's.
    assert!(cache.remove("k").unwrap());
    assert_eq!(
        cache.namespace("").get::<_, u32>("k").unwrap().as_deref(),
        Some(&3)
    );
}

/// A key type whose `Serialize` fails with a message of its own.
struct Tuesday;

impl Serialize for Tuesday {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("no keys on Tuesdays"))
    }
}

#[test]
fn key_serialize_error_keeps_the_users_message() {
    let cache = Cache::in_memory();
    for result in [
        cache.insert(&Tuesday, 1u32),
        cache.get::<_, u32>(&("week", Tuesday)).map(|_| ()),
        cache.namespace("ns").contains_key(&Tuesday).map(|_| ()),
    ] {
        match result {
            Err(Error::Encode { what, detail }) => {
                assert_eq!(what, "key");
                assert!(detail.contains("no keys on Tuesdays"), "{detail}");
            }
            other => panic!("expected Error::Encode, got {other:?}"),
        }
    }
}
