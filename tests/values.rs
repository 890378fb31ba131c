//! Every value that round-trips through serde_json round-trips through the disk tier, restarts
//! included, even where postcard cannot carry it; a value no format can carry is refused at
//! `insert` with an error naming its type. Never a silent miss.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tiered::{Cache, Error};

/// Inserts `value`, closes the cache, reopens it and reads the value back from disk.
fn survives_a_restart<V>(value: V)
where
    V: Serialize + for<'de> Deserialize<'de> + Send + Sync + PartialEq + Debug + 'static,
{
    let json: V = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
    assert_eq!(
        json, value,
        "the test value must round-trip through serde_json"
    );
    let dir = common::tempdir();
    {
        let cache = Cache::open(dir.path()).unwrap();
        cache.insert("v", value).unwrap();
    }
    let cache = common::cold(dir.path());
    let got = cache.get::<_, V>("v").unwrap();
    let stats = cache.stats();
    assert_eq!(
        got.as_deref(),
        Some(&json),
        "{}",
        std::any::type_name::<V>()
    );
    assert_eq!(stats.type_mismatches, 0);
    assert_eq!(stats.disk_hits, 1);
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
    Point { x: i64, y: i64 },
}

#[test]
fn untagged_enum() {
    survives_a_restart(Untagged::Number(7));
    survives_a_restart(Untagged::Text("seven".into()));
    survives_a_restart(Untagged::Point { x: -1, y: 2 });
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(tag = "kind")]
enum Event {
    Click { x: u32, y: u32 },
    Key { code: String },
    Idle,
}

#[test]
fn internally_tagged_enum() {
    survives_a_restart(Event::Click { x: 1, y: 2 });
    survives_a_restart(Event::Key { code: "Esc".into() });
    survives_a_restart(Event::Idle);
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct WithExtra {
    id: u64,
    name: String,
    #[serde(flatten)]
    extra: HashMap<String, String>,
}

#[test]
fn flatten() {
    let extra = [("colour".to_string(), "red".to_string())].into();
    survives_a_restart(WithExtra {
        id: 1,
        name: "one".into(),
        extra,
    });
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Sparse {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
    score: f64,
}

#[test]
fn skip_serializing_if_some_and_none() {
    survives_a_restart(Sparse {
        id: 1,
        note: Some("n".into()),
        score: 0.5,
    });
    survives_a_restart(Sparse {
        id: 2,
        note: None,
        score: 1.5,
    });
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct ApiResponse {
    status: u16,
    body: serde_json::Value,
}

/// Found by a new user's trial: a skipped field's absence made the next fields' postcard bytes
/// decode cleanly into the wrong fields (`b: Some(2), c: 7, d: []`), a wrong value after a
/// restart. A skipped field now sends the value to MessagePack, which names its fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Crafted {
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<u8>,
    c: u8,
    d: Vec<u8>,
}

#[test]
fn a_skipped_field_never_shifts_the_next_fields_after_a_restart() {
    survives_a_restart(Crafted {
        b: None,
        c: 1,
        d: vec![7, 0],
    });
    survives_a_restart(Crafted {
        b: Some(3),
        c: 1,
        d: vec![7, 0],
    });
}

#[test]
fn json_value_field() {
    survives_a_restart(ApiResponse {
        status: 200,
        body: serde_json::json!({"items": [1, 2.5, null, "x", {"ok": true}], "next": null}),
    });
}

/// Writes a string, expects a number: no format can carry it.
#[derive(Debug)]
struct Lopsided;

impl Serialize for Lopsided {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("not a number")
    }
}

impl<'de> Deserialize<'de> for Lopsided {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(|_| Lopsided)
    }
}

#[test]
fn a_value_that_cannot_round_trip_is_refused_at_insert() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    let err = cache.insert("v", Lopsided).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err:?}");
    assert!(err.to_string().contains("Lopsided"), "{err}");
    assert!(!cache.contains_key("v").unwrap());
    assert_eq!(cache.stats().inserts, 0);
}
