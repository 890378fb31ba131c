//! A value stored as one type and read as another, or written by a build whose type had another
//! shape, reads as a miss, is dropped and is counted; it never decodes into wrong data.

mod common;

use serde::{Deserialize, Serialize};
use tiered::Cache;

// Four "builds" of one struct named `Row`.
mod v1 {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Row {
        pub id: u32,
        pub name: String,
        pub score: u32,
    }
}
mod reordered {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Row {
        pub score: u32,
        pub id: u32,
        pub name: String,
    }
}
mod added {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Row {
        pub id: u32,
        pub name: String,
        pub score: u32,
        pub extra: u8,
    }
}
mod removed {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Row {
        pub id: u32,
        pub name: String,
    }
}
mod retyped {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Row {
        pub id: u32,
        pub name: String,
        pub score: u64,
    }
}

fn row() -> v1::Row {
    v1::Row {
        id: 7,
        name: "seven".into(),
        score: 70,
    }
}

/// Writes a v1 row, restarts (so the read comes from disk), reads it as `T`.
fn read_back_as<T>() -> (Option<std::sync::Arc<T>>, tiered::Stats, bool)
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("row", row()).unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    let got = cache.get::<_, T>("row").unwrap();
    let still_there = cache.contains_key("row").unwrap();
    (got, cache.stats(), still_there)
}

#[test]
fn the_same_shape_reads_back() {
    let (got, stats, _) = read_back_as::<v1::Row>();
    assert_eq!(got.as_deref(), Some(&row()));
    assert_eq!(stats.type_mismatches, 0);
}

#[test]
fn reordered_added_removed_or_retyped_fields_are_misses() {
    fn check<T>(what: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
    {
        let (got, stats, still_there) = read_back_as::<T>();
        assert!(got.is_none(), "{what}: decoded a record of another shape");
        assert_eq!(stats.type_mismatches, 1, "{what}");
        assert!(
            !still_there,
            "{what}: the mismatched record was not dropped"
        );
    }
    check::<reordered::Row>("reordered");
    check::<added::Row>("added");
    check::<removed::Row>("removed");
    check::<retyped::Row>("retyped");
}

#[test]
fn another_type_in_memory_is_a_miss_too() {
    let cache = Cache::in_memory();
    cache.insert("k", 5u32).unwrap();
    assert!(cache.get::<_, String>("k").unwrap().is_none());
    assert_eq!(cache.stats().type_mismatches, 1);
    assert_eq!(
        cache.get::<_, u32>("k").unwrap().as_deref(),
        Some(&5),
        "a read as another type leaves the entry alone"
    );
}

#[test]
fn primitive_types_of_equal_width_do_not_mix() {
    let (got, stats, _) = {
        let dir = common::tempdir();
        {
            let cache = Cache::open(dir.path()).unwrap();
            cache.insert("n", 5u64).unwrap();
        }
        let cache = Cache::open(dir.path()).unwrap();
        (cache.get::<_, i64>("n").unwrap(), cache.stats(), ())
    };
    assert!(got.is_none());
    assert_eq!(stats.type_mismatches, 1);
}
