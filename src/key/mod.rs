//! Key composition: a scope prefix, then the key in an injective encoding of the serde data
//! model, digested to 128 bits.
//!
//! The full key is `scope ++ key`:
//! - `scope` is the byte `0` for the root (the [`Cache`](crate::Cache)'s own methods) and `1`,
//!   the name's length as a varint and the name for a [`Namespace`](crate::Namespace), so the root
//!   and `namespace("")` never meet, and `("a", "bc")` and `("ab", "c")` differ in their second
//!   byte;
//! - `key` is written by [`serializer`]: every serde primitive with a tag byte of its own, so two
//!   keys are equal exactly when they serialize to the same serde data. `"a"` and
//!   `String::from("a")` are one key, as are `&[1u8, 2][..]` and `vec![1u8, 2]`; `1u8`, `1u32`,
//!   `1u64` and `true` are four keys. A tuple is written as a sequence, so `[1u8, 2]` and
//!   `(1u8, 2u8)` are that same key too.
//!
//! The layout is described in `docs/format.md`. It changed from `postcard(namespace) ++
//! postcard(key)`: every key written by an older build is unreachable, and is reclaimed.

pub(crate) mod serializer;

use std::sync::Arc;

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use serializer::{Discard, Encoder, KeyError, Sink};

/// Keys up to this many encoded bytes are built on the stack, without allocating.
const INLINE: usize = 96;

/// The scope prefix of the root.
pub(crate) const ROOT: u8 = 0;
/// The scope prefix of a named namespace, followed by its length-prefixed name.
pub(crate) const NAMED: u8 = 1;

/// A key's full encoding: inline when short.
#[derive(Clone)]
pub(crate) enum KeyBytes {
    Inline([u8; INLINE], u8),
    Heap(Vec<u8>),
}

impl KeyBytes {
    fn empty() -> Self {
        KeyBytes::Inline([0; INLINE], 0)
    }
}

impl Sink for KeyBytes {
    /// Appends in place while the key fits inline, then moves it to the heap once.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        match self {
            KeyBytes::Inline(buf, len) => {
                let at = usize::from(*len);
                let end = at + bytes.len();
                if end <= INLINE {
                    buf[at..end].copy_from_slice(bytes);
                    // INLINE < 256, so the length fits in a u8.
                    *len = end as u8;
                } else {
                    let mut v = Vec::with_capacity(end.max(2 * INLINE));
                    v.extend_from_slice(&buf[..at]);
                    v.extend_from_slice(bytes);
                    *self = KeyBytes::Heap(v);
                }
            }
            KeyBytes::Heap(v) => v.extend_from_slice(bytes),
        }
    }
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            KeyBytes::Inline(buf, len) => &buf[..usize::from(*len)],
            KeyBytes::Heap(v) => v,
        }
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for KeyBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for KeyBytes {}

/// Where a key lives: the root (the [`Cache`](crate::Cache)'s own methods) or a named
/// namespace. `namespace("")` is a namespace like any other, not the root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScopeName(Option<Arc<str>>);

impl ScopeName {
    pub fn root() -> Self {
        ScopeName(None)
    }

    pub fn named(name: &str) -> Self {
        ScopeName(Some(name.into()))
    }

    /// The namespace's name; `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The name, or `(root)` for the root: for logs.
impl std::fmt::Display for ScopeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name().unwrap_or("(root)"))
    }
}

/// A key ready for both tiers: its full encoding (compared on every hit) and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedKey {
    pub bytes: KeyBytes,
    pub digest: u128,
}

/// The full key of `key` in `scope`, built without allocating when it fits in [`INLINE`] bytes.
///
/// # Errors
/// [`Error::Encode`] with the message of the error `key`'s `Serialize` impl returned.
pub(crate) fn encode_key<K: Serialize + ?Sized>(scope: &ScopeName, key: &K) -> Result<EncodedKey> {
    encode_key_in(scope.name(), key)
}

/// [`encode_key`] in the root (`None`) or the namespace of that name.
///
/// # Errors
/// As [`encode_key`].
pub(crate) fn encode_key_in<K: Serialize + ?Sized>(
    scope: Option<&str>,
    key: &K,
) -> Result<EncodedKey> {
    let mut bytes = KeyBytes::empty();
    match scope {
        None => bytes.put_byte(ROOT),
        Some(name) => {
            bytes.put_byte(NAMED);
            bytes.put_name(name);
        }
    }
    key.serialize(&mut Encoder { out: &mut bytes })
        .map_err(key_error)?;
    let digest = xxh3_128(&bytes);
    Ok(EncodedKey { bytes, digest })
}

impl EncodedKey {
    /// The key whose full encoding is `bytes`.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        let mut out = KeyBytes::empty();
        out.put(bytes);
        let digest = xxh3_128(&out);
        EncodedKey { bytes: out, digest }
    }
}

/// The message of the error `value`'s `Serialize` impl returns, if it fails; for formats such
/// as postcard that drop it. Writes nothing anywhere.
#[cfg_attr(not(test), allow(dead_code))] // For the value path, which recovers lost messages.
pub(crate) fn serialize_error_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    value
        .serialize(&mut Encoder { out: &mut Discard })
        .err()
        .map(|KeyError(message)| message)
}

/// The scope a stored full key belongs to (for the sweeper and tools): `Some(None)` for the
/// root, `None` when the bytes are not a full key.
#[cfg(test)]
pub(crate) fn scope_of(full_key: &[u8]) -> Option<Option<&str>> {
    match full_key.split_first()? {
        (&ROOT, _) => Some(None),
        (&NAMED, rest) => {
            let (len, rest) = read_varint(rest)?;
            let name = rest.get(..usize::try_from(len).ok()?)?;
            Some(Some(std::str::from_utf8(name).ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
fn read_varint(bytes: &[u8]) -> Option<(u128, &[u8])> {
    let mut n = 0u128;
    for (i, b) in bytes.iter().enumerate().take(19) {
        n |= u128::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

fn key_error(e: KeyError) -> Error {
    Error::Encode {
        what: "key".into(),
        detail: e.0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use serde::ser::Error as _;
    use serde::Serializer;

    use super::*;

    fn root<K: Serialize + ?Sized>(key: &K) -> EncodedKey {
        encode_key(&ScopeName::root(), key).unwrap()
    }

    fn bytes<K: Serialize + ?Sized>(key: &K) -> Vec<u8> {
        root(key).bytes.to_vec()
    }

    /// Every value's encoding is distinct from every other's.
    fn assert_all_distinct(encodings: Vec<Vec<u8>>) {
        let n = encodings.len();
        let set: HashSet<_> = encodings.iter().cloned().collect();
        assert_eq!(set.len(), n, "two values share an encoding: {encodings:?}");
    }

    #[derive(Serialize)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[derive(Serialize)]
    struct Other {
        x: i32,
        y: i32,
    }

    #[derive(Serialize)]
    struct Renamed {
        x: i32,
        z: i32,
    }

    #[derive(Serialize)]
    struct Skips {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<u8>,
        b: u8,
    }

    #[derive(Serialize)]
    struct Wrap(u8);

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    enum E {
        A,
        B,
        N(u8),
        T(u8, u8),
        S { x: u8 },
    }

    #[derive(Serialize)]
    enum F {
        A,
    }

    #[test]
    fn borrowed_and_owned_forms_are_one_key() {
        assert_eq!(root("a"), root(&String::from("a")));
        assert_eq!(root(&[1u8, 2][..]), root(&vec![1u8, 2]));
        assert_eq!(root(&("k", 1u32)), root(&(String::from("k"), 1u32)));
        assert_eq!(root(&Some("a")), root(&Some(String::from("a"))));
        // A tuple is a sequence: arrays, tuples and vectors of equal elements are one key.
        assert_eq!(root(&[1u8, 2]), root(&vec![1u8, 2]));
        assert_eq!(root(&(1u8, 2u8)), root(&vec![1u8, 2]));
    }

    #[test]
    fn each_primitive_kind_is_its_own_key() {
        assert_all_distinct(vec![
            bytes(&1u8),
            bytes(&1u16),
            bytes(&1u32),
            bytes(&1u64),
            bytes(&1u128),
            bytes(&1i8),
            bytes(&1i16),
            bytes(&1i32),
            bytes(&1i64),
            bytes(&1i128),
            bytes(&true),
            bytes(&false),
            bytes(&1f32),
            bytes(&1f64),
            bytes(&'\u{1}'),
            bytes("\u{1}"),
            bytes(&serde_bytes_like(&[1])),
            bytes(&()),
            bytes(&Unit),
            bytes(&Wrap(1)),
            bytes(&None::<u8>),
            bytes(&Some(1u8)),
            bytes(&E::A),
            bytes(&E::N(1)),
            bytes(&vec![1u8]),
        ]);
        assert_ne!(root(&1u32), root(&1u64));
        assert_ne!(root(&1u8), root(&true));
        assert_ne!(root(&Some(1u8)), root(&1u8));
        assert_ne!(root(&0.0f64), root(&-0.0f64));
    }

    /// `&[u8]` written with `serialize_bytes`, as `serde_bytes` would.
    fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }

    #[test]
    fn tricky_neighbours_differ() {
        assert_ne!(root(&("a", "bc")), root(&("ab", "c")));
        assert_all_distinct(vec![
            bytes(&vec![vec![1u8], vec![]]),
            bytes(&vec![vec![], vec![1u8]]),
            bytes(&vec![vec![1u8]]),
            bytes(&vec![Vec::<u8>::new()]),
            bytes(&Vec::<Vec<u8>>::new()),
            bytes(&((1u8,), 2u8)),
            bytes(&(1u8, (2u8,))),
            bytes(&(1u8, 2u8)),
            bytes(&Some(Some(1u8))),
            bytes(&Some(None::<u8>)),
            bytes(&None::<Option<u8>>),
            bytes(&vec![None, Some(())]),
            bytes(&vec![Some(()), None]),
        ]);
        assert_all_distinct(vec![
            bytes(&Point { x: 1, y: 2 }),
            bytes(&Point { x: 2, y: 1 }),
            bytes(&Other { x: 1, y: 2 }),
            bytes(&Renamed { x: 1, z: 2 }),
            bytes(&(1i32, 2i32)),
            bytes(&BTreeMap::from([("x", 1i32), ("y", 2i32)])),
            bytes(&Skips { a: None, b: 1 }),
            bytes(&Skips { a: Some(1), b: 1 }),
            bytes(&E::B),
            bytes(&F::A),
            bytes(&E::A),
            bytes(&E::T(1, 2)),
            bytes(&E::S { x: 1 }),
        ]);
        assert_all_distinct(vec![
            bytes(&i64::MIN),
            bytes(&i64::MAX),
            bytes(&-1i64),
            bytes(&1i64),
            bytes(&0i64),
            bytes(&i128::MIN),
            bytes(&u128::MAX),
            bytes(&u64::MAX),
        ]);
    }

    #[test]
    fn struct_keys_are_keys() {
        let a = root(&Point { x: 1, y: -2 });
        assert_eq!(a, root(&Point { x: 1, y: -2 }));
        assert_ne!(a.digest, root(&Point { x: 1, y: 2 }).digest);
    }

    #[test]
    fn unknown_sequence_lengths_encode_like_known_ones() {
        struct Unsized(Vec<u8>);
        impl Serialize for Unsized {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().filter(|_| true))
            }
        }
        assert_eq!(root(&Unsized(vec![1, 2])), root(&vec![1u8, 2]));
    }

    #[test]
    fn the_root_and_the_empty_namespace_differ() {
        let r = encode_key(&ScopeName::root(), "k").unwrap();
        let e = encode_key(&ScopeName::named(""), "k").unwrap();
        assert_ne!(r.bytes, e.bytes);
        assert_ne!(r.digest, e.digest);
        assert_eq!(scope_of(&r.bytes), Some(None));
        assert_eq!(scope_of(&e.bytes), Some(Some("")));
        assert_eq!(ScopeName::root().to_string(), "(root)");
        assert_eq!(ScopeName::named("a").to_string(), "a");
    }

    #[test]
    fn namespaces_cannot_collide_by_concatenation() {
        let a = encode_key(&ScopeName::named("a"), "bc").unwrap();
        let b = encode_key(&ScopeName::named("ab"), "c").unwrap();
        assert_ne!(a.bytes, b.bytes);
        assert_ne!(a.digest, b.digest);
        assert_eq!(scope_of(&a.bytes), Some(Some("a")));
        assert_eq!(scope_of(&b.bytes), Some(Some("ab")));
    }

    #[test]
    fn the_layout_is_as_documented() {
        let k = encode_key(&ScopeName::named("ns"), "x").unwrap();
        assert_eq!(&*k.bytes, &[1, 2, b'n', b's', 0x10, 1, b'x']);
        assert_eq!(
            bytes(&("a", 300u32)),
            [0, 0x19, 0x10, 1, b'a', 0x0A, 0xAC, 0x02, 0x00]
        );
        assert_eq!(bytes(&-1i32), [0, 0x05, 1]);
        assert_eq!(bytes(&true), [0, 0x02]);
        assert_eq!(k.digest, xxh3_128(&k.bytes));
    }

    #[test]
    fn short_keys_stay_inline_and_long_ones_spill_intact() {
        let short = encode_key(&ScopeName::named("ns"), "x").unwrap();
        assert!(matches!(short.bytes, KeyBytes::Inline(..)));
        // Root byte, str tag, one length byte, then the string: 3 bytes of overhead.
        let fits = "y".repeat(INLINE - 3);
        let k = root(fits.as_str());
        assert!(matches!(k.bytes, KeyBytes::Inline(..)));
        assert_eq!(k.bytes.len(), INLINE);
        let spills = "y".repeat(INLINE - 2);
        assert!(matches!(root(spills.as_str()).bytes, KeyBytes::Heap(_)));

        let long = "x".repeat(500);
        let k = encode_key(&ScopeName::named("ns"), &(7u8, long.as_str(), 9u8)).unwrap();
        assert!(matches!(k.bytes, KeyBytes::Heap(_)));
        let mut expected = vec![1, 2, b'n', b's', 0x19, 0x08, 7, 0x10, 0xF4, 0x03];
        expected.extend(long.as_bytes());
        expected.extend([0x08, 9, 0x00]);
        assert_eq!(&*k.bytes, &expected[..]);
        assert_eq!(k.digest, xxh3_128(&expected));
    }

    struct Tuesday;
    impl Serialize for Tuesday {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("no keys on Tuesdays"))
        }
    }

    #[test]
    fn serialize_errors_keep_their_message() {
        match encode_key(&ScopeName::root(), &("week", vec![Tuesday])) {
            Err(Error::Encode { what, detail }) => {
                assert_eq!(what, "key");
                assert_eq!(detail, "no keys on Tuesdays");
            }
            other => panic!("expected Error::Encode, got {other:?}"),
        }
        assert_eq!(
            serialize_error_message(&[Tuesday]).as_deref(),
            Some("no keys on Tuesdays")
        );
        assert_eq!(serialize_error_message(&"x".repeat(10_000)), None);
    }
}
