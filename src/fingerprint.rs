//! Fingerprints of a value type's shape, so that a record written by a build whose type had
//! another shape reads as a miss instead of as garbage (postcard is positional).
//!
//! The shape is traced once per type with `serde-reflection`, which drives the type's
//! `Deserialize` and records every container's name, field names and field types. Types whose
//! `Deserialize` cannot be traced (`deserialize_any`, untagged enums, validating impls) fall back to
//! `std::any::type_name`; see `docs/format.md` for the limits.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use serde::de::DeserializeOwned;
use serde_reflection::{Tracer, TracerConfig};
use xxhash_rust::xxh3::xxh3_64;

/// Bumped when the way fingerprints are computed changes: old records then read as misses.
const SCHEME: &[u8] = b"tiered-fp-1";

fn table() -> &'static RwLock<HashMap<TypeId, u64>> {
    static TABLE: OnceLock<RwLock<HashMap<TypeId, u64>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// The fingerprint of `V`'s shape, computed on first use and remembered.
pub(crate) fn of<V: DeserializeOwned + 'static>() -> u64 {
    let id = TypeId::of::<V>();
    if let Some(fp) = table().read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return *fp;
    }
    let fp = compute::<V>();
    table()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, fp);
    fp
}

fn compute<V: DeserializeOwned + 'static>() -> u64 {
    let mut text = Vec::from(SCHEME);
    match trace::<V>() {
        Some(shape) => {
            text.extend_from_slice(b"shape:");
            text.extend_from_slice(shape.as_bytes());
        }
        None => {
            tracing::debug!(
                ty = std::any::type_name::<V>(),
                "shape of type could not be traced; its fingerprint falls back to the type name"
            );
            text.extend_from_slice(b"name:");
            text.extend_from_slice(std::any::type_name::<V>().as_bytes());
        }
    }
    xxh3_64(&text)
}

/// The traced shape as text, or `None` when the type's `Deserialize` cannot be traced.
fn trace<V: DeserializeOwned>() -> Option<String> {
    // A hand-written Deserialize may panic on the tracer's made-up input: that is a fallback too.
    std::panic::catch_unwind(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        let (format, _) = tracer.trace_simple_type::<V>().ok()?;
        let registry = tracer.registry().ok()?;
        Some(format!("{format:?}|{registry:?}"))
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    mod v1 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Row {
            pub a: u32,
            pub b: String,
        }
    }
    mod v2 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Row {
            pub b: String,
            pub a: u32,
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        A(u32),
        B(String),
    }

    #[test]
    fn reordered_fields_change_the_fingerprint() {
        assert_ne!(of::<v1::Row>(), of::<v2::Row>());
        assert_eq!(of::<v1::Row>(), of::<v1::Row>());
    }

    #[test]
    fn primitives_differ() {
        assert_ne!(of::<u64>(), of::<i64>());
        assert_ne!(of::<String>(), of::<Vec<u8>>());
    }

    #[test]
    fn untraceable_types_fall_back_to_their_name() {
        assert!(trace::<Untagged>().is_none());
        assert_ne!(of::<Untagged>(), of::<u32>());
    }
}
