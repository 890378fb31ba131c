//! This crate's postcard against postcard: the same bytes for every serde shape, each reading
//! the other's, and the same refusals.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use super::*;
use crate::Bytes;

/// `v`'s bytes here are postcard's, and each side reads the other's back into `v`.
fn same<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let ours = to_vec(v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    let theirs = postcard::to_allocvec(v).unwrap();
    assert_eq!(ours, theirs, "{v:?}");
    let (back, rest) = take_from_bytes::<T>(&theirs).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    assert_eq!(&back, v);
    assert!(rest.is_empty(), "{v:?}: {} bytes left", rest.len());
    assert_eq!(&postcard::from_bytes::<T>(&ours).unwrap(), v);
    // A truncated payload is refused by both.
    if !theirs.is_empty() {
        let cut = &theirs[..theirs.len() - 1];
        assert_eq!(
            take_from_bytes::<T>(cut).is_ok(),
            postcard::from_bytes::<T>(cut).is_ok(),
            "{v:?} truncated"
        );
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Unit;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Newtype(u32);

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Pair(i16, String);

#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum Shape {
    Unit,
    Newtype(Vec<f64>),
    Tuple(u8, Vec<u8>),
    Struct { name: String, data: Vec<i64> },
}

/// Every bulk type as a field, and around it the shapes that reach a field some other way.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Doc {
    name: String,
    data: Vec<f64>,
    raw: Vec<u8>,
    bytes: Bytes,
    f32s: Vec<f32>,
    u16s: Vec<u16>,
    u32s: Vec<u32>,
    u64s: Vec<u64>,
    i16s: Vec<i16>,
    i32s: Vec<i32>,
    i64s: Vec<i64>,
    maybe: Option<Vec<f64>>,
    nested: Vec<Vec<u8>>,
    shapes: Vec<Shape>,
    map: BTreeMap<String, Vec<f32>>,
    pair: (Pair, Newtype, Unit, ()),
    embedding: Embedding,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Embedding(Vec<f32>);

fn doc(n: usize) -> Doc {
    let w = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Doc {
        name: "é€𝄞".repeat(n),
        data: (0..n).map(|i| i as f64 / 3.0).collect(),
        raw: (0..n).map(|i| w(i) as u8).collect(),
        bytes: Bytes::from((0..n).map(|i| i as u8).collect::<Vec<u8>>()),
        f32s: (0..n).map(|i| -(i as f32) / 7.0).collect(),
        u16s: (0..n).map(|i| w(i) as u16).collect(),
        u32s: (0..n).map(|i| w(i) as u32).collect(),
        u64s: (0..n).map(w).collect(),
        i16s: (0..n).map(|i| w(i) as i16).collect(),
        i32s: (0..n).map(|i| w(i) as i32).collect(),
        i64s: (0..n).map(|i| w(i) as i64).collect(),
        maybe: (n % 2 == 1).then(|| vec![1.5; n]),
        nested: vec![vec![7; n], vec![], vec![1]],
        shapes: vec![
            Shape::Unit,
            Shape::Newtype(vec![2.5; n]),
            Shape::Tuple(9, vec![3; n]),
            Shape::Struct {
                name: "s".repeat(n),
                data: vec![-1; n],
            },
        ],
        map: (0..n.min(5))
            .map(|i| (i.to_string(), vec![i as f32; n]))
            .collect(),
        pair: (Pair(-5, "p".into()), Newtype(n as u32), Unit, ()),
        embedding: Embedding(vec![0.25; n]),
    }
}

#[test]
fn structs_of_bulk_fields_are_postcards_bytes() {
    for n in [0, 1, 3, 127, 128, 129, 1000] {
        same(&doc(n));
    }
}

#[test]
fn primitives_at_their_edges_are_postcards_bytes() {
    same(&(true, false, 0u8, 255u8, -128i8, 127i8));
    for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
        same(&(v as u16, v as u32, v));
    }
    for v in [
        0i64,
        -1,
        1,
        -64,
        64,
        -65,
        i32::MIN as i64,
        i64::MIN,
        i64::MAX,
    ] {
        same(&(v as i16, v as i32, v));
    }
    same(&(u128::MAX, 0u128, i128::MIN, i128::MAX, -1i128));
    same(&(1.5f32, -0.0f64, f64::INFINITY, f64::MIN_POSITIVE));
    same(&('a', 'é', '€', '𝄞', String::new(), String::from("x")));
    same(&(Some(3u8), None::<u8>, Some(Some(())), Some(None::<u8>)));
    same(&Duration::new(5, 7));
    same(&std::net::Ipv4Addr::new(10, 0, 0, 1));
    let mut hm = HashMap::new();
    hm.insert(1u8, "a".to_string());
    hm.insert(2u8, "b".to_string());
    same(&hm);
    // NaN keeps its bits.
    let nan = to_vec(&f64::NAN).unwrap();
    assert_eq!(nan, postcard::to_allocvec(&f64::NAN).unwrap());
}

#[test]
fn refusals_are_postcards() {
    // A bool or an option tag out of range, a char of more than 4 bytes, bad UTF-8.
    for (bytes, what) in [
        (&[2u8][..], "bool"),
        (&[2u8, 0][..], "option"),
        (&[5u8, b'a', b'b', b'c', b'd', b'e'][..], "char"),
        (&[1u8, 0xFF][..], "str"),
    ] {
        let ours = match what {
            "bool" => take_from_bytes::<bool>(bytes).is_ok(),
            "option" => take_from_bytes::<Option<u8>>(bytes).is_ok(),
            "char" => take_from_bytes::<char>(bytes).is_ok(),
            _ => take_from_bytes::<String>(bytes).is_ok(),
        };
        assert!(!ours, "{what}");
    }
    // A varint longer than its type.
    let long = [0xFFu8, 0xFF, 0xFF, 0x7F];
    assert_eq!(
        take_from_bytes::<u16>(&long).is_ok(),
        postcard::from_bytes::<u16>(&long).is_ok()
    );
    // A length past the end, for a bulk field and for another.
    assert!(take_from_bytes::<Vec<f64>>(&[3, 0, 0]).is_err());
    assert!(take_from_bytes::<(u8, Vec<f64>)>(&[1, 3, 0, 0]).is_err());
    assert!(take_from_bytes::<Vec<(u8, u8)>>(&[3, 0, 0]).is_err());
    // What postcard cannot carry: deserialize_any, a sequence of unknown length.
    assert!(take_from_bytes::<serde_json::Value>(&[0]).is_err());
    struct Unknown;
    impl Serialize for Unknown {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            seq.serialize_element(&1u8)?;
            seq.end()
        }
    }
    assert!(to_vec(&Unknown).is_err());
    assert!(postcard::to_allocvec(&Unknown).is_err());
}

#[test]
fn collect_str_writes_a_string() {
    struct Shown;
    impl Serialize for Shown {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{}-{}", 12, "ab"))
        }
    }
    assert_eq!(
        to_vec(&Shown).unwrap(),
        postcard::to_allocvec(&Shown).unwrap()
    );
}

#[test]
fn bytes_fields_read_from_a_side_file_share_it() {
    #[derive(Serialize, Deserialize)]
    struct Frame {
        id: u32,
        pixels: Bytes,
    }
    let payload = to_vec(&Frame {
        id: 1,
        pixels: Bytes::from(vec![9u8; 1000]),
    })
    .unwrap();
    let source = std::sync::Arc::new(crate::bytes::Source::from_vec(
        payload,
        std::path::Path::new("/x"),
    ));
    let frame: Frame = crate::bytes::decoding_from(&source, || take_from_bytes(&source).unwrap().0);
    assert_eq!(frame.id, 1);
    assert_eq!(&*frame.pixels, &[9u8; 1000][..]);
    assert!(frame.pixels.shares(&source));
}

#[test]
fn serdes_visitor_of_each_bulk_vec_is_known() {
    use serde::de::Visitor;
    // The visitor `Vec<f64>::deserialize` hands over is found, and no other: a visitor of
    // ours that also makes a `Vec<f64>` is not taken for it.
    struct Mine;
    impl<'de> Visitor<'de> for Mine {
        type Value = Vec<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("mine")
        }
    }
    assert_eq!(seq_visitor_kind(typeid::of::<Mine>()), None);
    let mut found = Vec::new();
    Probe::learn::<Vec<f64>>(&mut found);
    Probe::learn::<Vec<u128>>(&mut found); // not a bulk type
    assert_eq!(found.len(), 1);
    assert_eq!(seq_visitor_kind(found[0].0), Some(bulk::Kind::VecF64));
}

/// Random values of many shapes at once: the same bytes as postcard, read back by both.
#[test]
fn random_values_are_postcards_bytes() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    type Value = (
        (u64, i32, i128, u16, i8, bool),
        (String, Vec<u8>, Vec<i16>, Vec<u64>),
        (Option<Vec<i32>>, Vec<(u16, char)>, BTreeMap<String, i64>),
        Vec<Option<String>>,
    );
    let strategy = (
        (
            any::<u64>(),
            any::<i32>(),
            any::<i128>(),
            any::<u16>(),
            any::<i8>(),
            any::<bool>(),
        ),
        (
            any::<String>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<i16>(), 0..300),
            proptest::collection::vec(any::<u64>(), 0..300),
        ),
        (
            proptest::option::of(proptest::collection::vec(any::<i32>(), 0..50)),
            proptest::collection::vec((any::<u16>(), any::<char>()), 0..50),
            proptest::collection::btree_map(any::<String>(), any::<i64>(), 0..10),
        ),
        proptest::collection::vec(proptest::option::of(any::<String>()), 0..20),
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |v: Value| {
            same(&v);
            Ok(())
        })
        .unwrap();
}

/// Random bytes: both readers accept the same prefixes, into the same value.
#[test]
fn random_bytes_read_as_postcard_reads_them() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    type Value = (
        u8,
        Vec<u8>,
        String,
        Vec<f64>,
        Option<Vec<u32>>,
        (Embedding, Bytes),
        char,
    );
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    // Short lengths and small bytes, so that many inputs get past the first fields.
    let bytes = proptest::collection::vec(prop_oneof![0u8..8, any::<u8>()], 0..64);
    runner
        .run(&bytes, |input| {
            let ours = take_from_bytes::<Value>(&input);
            let theirs = postcard::take_from_bytes::<Value>(&input);
            match (ours, theirs) {
                (Ok((a, rest_a)), Ok((b, rest_b))) => {
                    // Floats compared by their bytes (NaN).
                    prop_assert_eq!(
                        postcard::to_allocvec(&a).unwrap(),
                        postcard::to_allocvec(&b).unwrap()
                    );
                    prop_assert_eq!(rest_a.len(), rest_b.len());
                }
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(
                    false,
                    "{:?}: ours {:?}, postcard's {:?}",
                    input,
                    a.is_ok(),
                    b.is_ok()
                ),
            }
            Ok(())
        })
        .unwrap();
}

/// Not a test: this crate's postcard against postcard on a ~100 B row, encode and decode, in
/// one process. `cargo test --release -p tiered --lib wire::tests::speed -- --ignored --nocapture`
#[test]
#[ignore]
fn speed_on_a_small_row() {
    use std::hint::black_box;
    use std::time::Instant;
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Row {
        id: u64,
        name: String,
        values: Vec<f64>,
    }
    let row = Row {
        id: 12_345,
        name: "row-12345".into(),
        values: (0..8).map(|i| i as f64 * 1.5).collect(),
    };
    let bytes = postcard::to_allocvec(&row).unwrap();
    type Flat = (u64, u32, f64, f64, f64, f64, i64, bool);
    let flat: Flat = (12_345, 7, 1.5, 2.5, 3.5, 4.5, -9, true);
    let flat_bytes = postcard::to_allocvec(&flat).unwrap();
    let t = Instant::now();
    for _ in 0..1_000_000 {
        black_box(postcard::from_bytes::<Flat>(black_box(&flat_bytes)).unwrap());
    }
    let p = t.elapsed();
    let t = Instant::now();
    for _ in 0..1_000_000 {
        black_box(take_from_bytes::<Flat>(black_box(&flat_bytes)).unwrap());
    }
    println!(
        "primitives only: postcard {:?} ours {:?} per 1M",
        p,
        t.elapsed()
    );
    let n = 1_000_000;
    for round in 1..=3 {
        let t = Instant::now();
        for _ in 0..n {
            black_box(postcard::to_allocvec(black_box(&row)).unwrap());
        }
        let pe = t.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            black_box(to_vec(black_box(&row)).unwrap());
        }
        let we = t.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            black_box(postcard::from_bytes::<Row>(black_box(&bytes)).unwrap());
        }
        let pd = t.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            black_box(take_from_bytes::<Row>(black_box(&bytes)).unwrap());
        }
        let wd = t.elapsed();
        let ns = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
        println!(
            "round {round}: encode postcard {:.0} ns, ours {:.0} ns ({:.2}x); decode postcard {:.0} ns, ours {:.0} ns ({:.2}x)",
            ns(pe), ns(we), ns(we) / ns(pe), ns(pd), ns(wd), ns(wd) / ns(pd)
        );
    }
}
