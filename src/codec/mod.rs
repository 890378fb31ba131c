//! How a value becomes a record's payload: postcard, or MessagePack where postcard cannot carry
//! the value; either way verified at insert, so that what `insert` accepts reads back after a
//! restart.
//!
//! postcard is compact and fast but not self-describing: a `Deserialize` that calls
//! `deserialize_any` (untagged and internally tagged enums, `#[serde(flatten)]`,
//! `serde_json::Value`) cannot read it, and a value-dependent `Serialize` such as
//! `skip_serializing_if` writes bytes that decode into something else or not at all. Such values
//! are stored as MessagePack with named struct fields (`rmp-serde`), flagged in the record
//! header. The format was chosen by the evaluation in this module's tests; see `docs/format.md`.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) mod bulk;
pub(crate) mod format;

use crate::error::{Error, Result};
use crate::fingerprint;

/// A value's payload and how to read it.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub payload: Vec<u8>,
    /// The payload is MessagePack (self-describing), not postcard.
    pub self_describing: bool,
}

/// Encodes `value` in a format it round-trips through, or says why there is none.
///
/// postcard first, unless `V`'s shape could not be traced (it then needs a self-describing
/// format, which is remembered per type); the bytes are decoded back into a `V` before they
/// are accepted. The check is that they decode, with nothing left over, not that the result
/// equals `value` (`V` need not be `PartialEq`).
///
/// # Errors
/// [`Error::Encode`] naming the type when neither format round-trips it, or when its
/// `Serialize` fails (with the impl's own message).
pub(crate) fn encode<V: Serialize + DeserializeOwned + 'static>(value: &V) -> Result<Encoded> {
    // Byte strings, strings and vectors of numbers: postcard's bytes, written by non-generic
    // code (fast in a user's debug build), with a round trip known without a check.
    if let Some(kind) = bulk::kind::<V>() {
        return Ok(Encoded {
            payload: bulk::encode(kind, value),
            self_describing: false,
        });
    }
    let postcard_failure = if fingerprint::traceable::<V>() {
        match format::to_vec(value) {
            Ok(payload) => match decode_postcard::<V>(&payload) {
                Ok(_) => {
                    return Ok(Encoded {
                        payload,
                        self_describing: false,
                    })
                }
                Err(e) => format!("its postcard bytes do not decode back ({e})"),
            },
            // postcard drops custom messages ("Serde Error"); MessagePack below keeps them.
            Err(e) => format!("postcard cannot encode it ({e})"),
        }
    } else {
        "its Deserialize needs a self-describing format".to_string()
    };
    let payload = rmp_serde::to_vec_named(value).map_err(|e| Error::Encode {
        what: std::any::type_name::<V>().to_string(),
        detail: format!("its Serialize failed: {e}"),
    })?;
    match decode_self_describing::<V>(&payload) {
        Ok(_) => Ok(Encoded {
            payload,
            self_describing: true,
        }),
        Err(e) => Err(Error::Encode {
            what: std::any::type_name::<V>().to_string(),
            detail: format!(
                "it does not read back as it was written, so it would be lost after a restart: \
                 {postcard_failure}, and its MessagePack bytes do not decode back ({e}). Make its \
                 Serialize and Deserialize agree (a value that round-trips through serde_json \
                 round-trips here)"
            ),
        }),
    }
}

/// The encoded size of a value kept in memory only, to weigh it: postcard's size, without
/// writing the bytes; a value postcard cannot size weighs its in-memory size.
pub(crate) fn weigh<V: Serialize + 'static>(value: &V) -> usize {
    if let Some(kind) = bulk::kind::<V>() {
        return bulk::size(kind, value);
    }
    postcard::experimental::serialized_size(value).unwrap_or(std::mem::size_of::<V>())
}

/// Decodes a payload written by [`encode`]: `None` on any failure or bytes left over.
pub(crate) fn decode<V: DeserializeOwned + 'static>(
    payload: &[u8],
    self_describing: bool,
) -> Option<V> {
    if let (false, Some(kind)) = (self_describing, bulk::kind::<V>()) {
        return bulk::decode(kind, payload)?
            .downcast::<V>()
            .ok()
            .map(|v| *v);
    }
    if self_describing {
        decode_self_describing(payload).ok()
    } else {
        decode_postcard(payload).ok()
    }
}

/// Reads postcard's bytes: with this crate's reader in a debug build, whose bulk fields are
/// read by optimized code (`format.rs`); with postcard's own in a release build, where the
/// caller's generic code is optimized too and postcard is faster per field (about 50 ns against
/// 95 ns on a ~100 B row: `format::tests::speed_on_a_small_row`). `debug_assertions` tells the
/// two apart: Cargo's dev profile sets it for every crate, whatever its opt-level. Both accept
/// the same bytes into the same value (`format::tests`).
fn decode_postcard<V: DeserializeOwned>(payload: &[u8]) -> Result<V, String> {
    let taken = if cfg!(debug_assertions) {
        format::take_from_bytes::<V>(payload).map_err(|e| e.to_string())
    } else {
        postcard::take_from_bytes::<V>(payload).map_err(|e| e.to_string())
    };
    match taken {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(format!("{} bytes left over", rest.len())),
        Err(e) => Err(e),
    }
}

fn decode_self_describing<V: DeserializeOwned>(payload: &[u8]) -> Result<V, String> {
    let mut rest = payload;
    let v =
        V::deserialize(&mut rmp_serde::Deserializer::new(&mut rest)).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(format!("{} bytes left over", rest.len()))
    }
}

#[cfg(test)]
mod tests {
    //! The evaluation that chose the self-describing format (MessagePack via `rmp-serde` over
    //! CBOR via `ciborium`; both passed the same cases, see `docs/format.md`), kept as the
    //! codec's tests: each case round-trips through `encode` and `decode`.

    use std::collections::HashMap;
    use std::fmt::Debug;

    use serde::{Deserialize, Serialize};

    use super::*;

    /// Encodes and decodes `v`, checks it reads back equal, and checks the self-describing
    /// format alone carries it too whatever `encode` chose; returns whether it went
    /// self-describing.
    fn round_trip<V>(v: &V) -> bool
    where
        V: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
    {
        let sd = rmp_serde::to_vec_named(v).unwrap();
        assert_eq!(decode::<V>(&sd, true).as_ref(), Some(v), "MessagePack");
        encoded_round_trip(v)
    }

    /// [`round_trip`] through `encode`'s choice only.
    fn encoded_round_trip<V>(v: &V) -> bool
    where
        V: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
    {
        let enc = encode(v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let back: V = decode(&enc.payload, enc.self_describing)
            .unwrap_or_else(|| panic!("{v:?}: does not decode"));
        assert_eq!(&back, v);
        enc.self_describing
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(untagged)]
    enum Untagged {
        A(u32),
        B(String),
        C { x: i64, y: Vec<u8> },
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "type")]
    enum Internal {
        A,
        B { x: u64 },
        C(Inner),
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Inner {
        s: String,
        color: Color,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    enum Color {
        Red,
        Rgb(u8, u8, u8),
        Named { name: String },
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        A(u32),
        B { s: String },
        U,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Flat {
        id: u32,
        #[serde(flatten)]
        extra: HashMap<String, String>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Skip {
        a: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
        c: u8,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct WithJson {
        id: u32,
        v: serde_json::Value,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Unit;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Wide {
        a: u128,
        b: i128,
    }

    /// Wraps any field type in an untagged enum, so that it goes through the self-describing
    /// format and serde's buffering of untagged content.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(untagged)]
    enum Any<T> {
        A { field: T },
    }

    fn any<T>(field: T) -> Any<T> {
        Any::A { field }
    }

    #[test]
    fn untagged_enum() {
        assert!(round_trip(&Untagged::A(7)));
        assert!(round_trip(&Untagged::B("x".into())));
        assert!(round_trip(&Untagged::C {
            x: -3,
            y: vec![1, 2],
        }));
    }

    #[test]
    fn internally_tagged_enum() {
        assert!(round_trip(&Internal::A));
        assert!(round_trip(&Internal::B { x: u64::MAX }));
        for color in [
            Color::Red,
            Color::Rgb(1, 2, 3),
            Color::Named { name: "n".into() },
        ] {
            assert!(round_trip(&Internal::C(Inner {
                s: "s".into(),
                color,
            })));
        }
    }

    #[test]
    fn adjacently_tagged_enum() {
        assert!(round_trip(&Adjacent::A(1)));
        assert!(round_trip(&Adjacent::B { s: "s".into() }));
        assert!(round_trip(&Adjacent::U));
    }

    #[test]
    fn flatten_with_extra_map() {
        let extra = [("k".to_string(), "v".to_string())].into();
        assert!(round_trip(&Flat { id: 1, extra }));
    }

    #[test]
    fn skip_serializing_if() {
        let some = Skip {
            a: 1,
            b: Some("b".into()),
            c: 2,
        };
        assert!(!round_trip(&some), "Some: postcard carries it");
        let none = Skip {
            a: 1,
            b: None,
            c: 2,
        };
        assert!(round_trip(&none), "None: postcard bytes do not decode back");
    }

    #[test]
    fn json_value_in_a_struct() {
        let v = serde_json::json!({
            "a": [1, 2.5, null, "x", {"b": true}],
            "n": -4,
            "u": u64::MAX,
            "f": [0.1, -0.0, 1e300, i64::MIN],
        });
        assert!(round_trip(&WithJson { id: 1, v }));
    }

    #[test]
    fn wide_integers() {
        let wide = Wide {
            a: u128::MAX,
            b: i128::MIN,
        };
        assert!(!round_trip(&wide));
        assert!(!round_trip(&Wide { a: 5, b: -5 }));
    }

    #[test]
    fn non_string_map_keys() {
        let m: HashMap<u32, String> = [(1, "a".to_string()), (2, "b".into())].into();
        assert!(round_trip(&any(m.clone())));
        assert!(!round_trip(&m));
        let tuples: HashMap<(u32, u32), String> = [((1, 2), "a".to_string())].into();
        assert!(round_trip(&any(tuples)));
    }

    #[test]
    fn bytes() {
        assert!(round_trip(&any(vec![0u8, 1, 255])));
        assert!(round_trip(&any(Vec::<u8>::new())));
    }

    #[test]
    fn floats_nan_included() {
        assert!(round_trip(&any((
            1.5f32,
            -0.1f64,
            f64::INFINITY,
            f32::MIN_POSITIVE
        ))));
        assert!(round_trip(&any(0.1f32)));
        let enc = encode(&any((f32::NAN, f64::NAN))).unwrap();
        let back: Any<(f32, f64)> = decode(&enc.payload, enc.self_describing).unwrap();
        let Any::A { field: (a, b) } = back;
        assert!(a.is_nan() && b.is_nan());
    }

    #[test]
    fn nested_options() {
        // postcard keeps `Some(None)` apart from `None` (MessagePack does not: see below).
        assert!(!encoded_round_trip(&Some(None::<u8>)));
        assert!(!round_trip(&None::<Option<u8>>));
        assert!(round_trip(&any(Some(Some(3u8)))));
        assert!(round_trip(&any(None::<Option<u8>>)));
    }

    /// A known limit, shared with serde_json and CBOR: in the self-describing format `Some(None)`
    /// and `None` are both nil, so inside a type that needs that format `Some(None)` reads back
    /// as `None`. The verification at insert cannot see it (the bytes decode).
    #[test]
    fn known_limit_some_none_in_self_describing_reads_as_none() {
        let enc = encode(&any(Some(None::<u8>))).unwrap();
        assert!(enc.self_describing);
        let back: Any<Option<Option<u8>>> = decode(&enc.payload, true).unwrap();
        assert_eq!(back, any(None));
    }

    #[test]
    fn unit_struct_and_chars() {
        assert!(!round_trip(&Unit));
        assert!(!round_trip(&('a', 'é', '🦀')));
        assert!(round_trip(&any(('a', 'é', '🦀'))));
    }

    /// Writes a string, expects a number: no format can carry it.
    #[derive(Debug)]
    struct Asymmetric;

    impl Serialize for Asymmetric {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str("not a number")
        }
    }

    impl<'de> Deserialize<'de> for Asymmetric {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            u32::deserialize(d).map(|_| Asymmetric)
        }
    }

    #[test]
    fn a_value_that_cannot_round_trip_is_refused_with_its_type_name() {
        let err = encode(&Asymmetric).unwrap_err();
        let Error::Encode { what, detail } = &err else {
            panic!("{err:?}")
        };
        assert!(what.ends_with("Asymmetric"), "{what}");
        assert!(detail.contains("postcard"), "{detail}");
        assert!(detail.contains("MessagePack"), "{detail}");
        assert!(err.to_string().contains("Asymmetric"), "{err}");
    }

    /// A `Serialize` that fails with its own message.
    #[derive(Debug, Deserialize)]
    struct Refuses;

    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(
                "refuses to be cached: holds a socket",
            ))
        }
    }

    #[test]
    fn a_serialize_error_keeps_its_own_message() {
        let err = encode(&Refuses).unwrap_err();
        assert!(
            err.to_string()
                .contains("refuses to be cached: holds a socket"),
            "{err}"
        );
        assert!(err.to_string().contains("Refuses"), "{err}");
    }

    #[test]
    fn decode_rejects_leftovers_garbage_and_the_wrong_format() {
        let enc = encode(&7u32).unwrap();
        assert!(!enc.self_describing);
        let mut longer = enc.payload.clone();
        longer.push(0);
        assert_eq!(decode::<u32>(&longer, false), None);
        let sd = encode(&Untagged::B("hello".into())).unwrap();
        assert!(sd.self_describing);
        let mut longer = sd.payload.clone();
        longer.push(0);
        assert_eq!(decode::<Untagged>(&longer, true), None);
        assert_eq!(decode::<Untagged>(&sd.payload[..3], true), None);
        assert_eq!(
            decode::<u32>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], false),
            None
        );
        assert_eq!(decode::<String>(&[0xc1], true), None);
    }
}
