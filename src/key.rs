//! Key composition: `postcard(namespace) ++ postcard(key)`, digested to 128 bits.
//!
//! The namespace is written length-first, so no two (namespace, key) pairs share an encoding:
//! `("a", "bc")` and `("ab", "c")` differ in their first byte.

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};

/// Keys up to this many encoded bytes are built on the stack, without allocating.
const INLINE: usize = 96;

/// A key's full encoding: inline when short.
#[derive(Clone)]
pub(crate) enum KeyBytes {
    Inline([u8; INLINE], u8),
    Heap(Vec<u8>),
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

/// A key ready for both tiers: its full encoding (compared on every hit) and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedKey {
    pub bytes: KeyBytes,
    pub digest: u128,
}

pub(crate) fn encode_key<K: Serialize + ?Sized>(namespace: &str, key: &K) -> Result<EncodedKey> {
    let bytes = match encode_inline(namespace, key) {
        Ok(inline) => inline,
        Err(postcard::Error::SerializeBufferFull) => {
            let mut v = Vec::with_capacity(namespace.len() + 2 * INLINE);
            v = postcard::to_extend(namespace, v).map_err(key_error)?;
            KeyBytes::Heap(postcard::to_extend(key, v).map_err(key_error)?)
        }
        Err(e) => return Err(key_error(e)),
    };
    let digest = xxh3_128(&bytes);
    Ok(EncodedKey { bytes, digest })
}

fn encode_inline<K: Serialize + ?Sized>(namespace: &str, key: &K) -> postcard::Result<KeyBytes> {
    let mut buf = [0u8; INLINE];
    let ns_len = postcard::to_slice(namespace, &mut buf)?.len();
    let key_len = postcard::to_slice(key, &mut buf[ns_len..])?.len();
    // INLINE < 256, so the total fits in a u8.
    Ok(KeyBytes::Inline(buf, (ns_len + key_len) as u8))
}

/// The namespace a stored full key belongs to (for the sweeper and tools).
#[cfg(test)]
pub(crate) fn namespace_of(full_key: &[u8]) -> Option<&str> {
    postcard::take_from_bytes::<&str>(full_key)
        .ok()
        .map(|(ns, _)| ns)
}

fn key_error(e: postcard::Error) -> Error {
    Error::Encode {
        what: "key".into(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_encodings_name_the_same_entry() {
        let a = encode_key("", "a").unwrap();
        let b = encode_key("", &String::from("a")).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn namespaces_cannot_collide_by_concatenation() {
        let a = encode_key("a", "bc").unwrap();
        let b = encode_key("ab", "c").unwrap();
        assert_ne!(a.bytes, b.bytes);
        assert_ne!(a.digest, b.digest);
        assert_eq!(namespace_of(&a.bytes), Some("a"));
        assert_eq!(namespace_of(&b.bytes), Some("ab"));
    }

    #[test]
    fn long_keys_encode_like_short_ones() {
        let long = "x".repeat(500);
        let k = encode_key("ns", long.as_str()).unwrap();
        assert!(matches!(k.bytes, KeyBytes::Heap(_)));
        let mut expected = postcard::to_allocvec("ns").unwrap();
        expected.extend(postcard::to_allocvec(long.as_str()).unwrap());
        assert_eq!(&*k.bytes, &expected[..]);
        let short = encode_key("ns", "x").unwrap();
        assert!(matches!(short.bytes, KeyBytes::Inline(..)));
        assert_eq!(&*short.bytes, &[2, b'n', b's', 1, b'x']);
    }

    #[test]
    fn tuples_and_numbers_are_keys() {
        let k = encode_key("ns", &("prices", 2026u32)).unwrap();
        assert_ne!(
            k.digest,
            encode_key("ns", &("prices", 2027u32)).unwrap().digest
        );
    }
}
