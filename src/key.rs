//! Key composition: `postcard(namespace) ++ postcard(key)`, digested to 128 bits.
//!
//! The namespace is written length-first, so no two (namespace, key) pairs share an encoding:
//! `("a", "bc")` and `("ab", "c")` differ in their first byte.

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};

/// A key ready for both tiers: its full encoding (compared on every hit) and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedKey {
    pub bytes: Vec<u8>,
    pub digest: u128,
}

pub(crate) fn encode_key<K: Serialize + ?Sized>(namespace: &str, key: &K) -> Result<EncodedKey> {
    let mut bytes = Vec::with_capacity(namespace.len() + 32);
    bytes = postcard::to_extend(namespace, bytes).map_err(key_error)?;
    bytes = postcard::to_extend(key, bytes).map_err(key_error)?;
    let digest = xxh3_128(&bytes);
    Ok(EncodedKey { bytes, digest })
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
    fn tuples_and_numbers_are_keys() {
        let k = encode_key("ns", &("prices", 2026u32)).unwrap();
        assert_ne!(
            k.digest,
            encode_key("ns", &("prices", 2027u32)).unwrap().digest
        );
    }
}
