//! Fingerprints of a value type's shape, so that a record written by a build whose type had
//! another shape reads as a miss instead of as garbage (postcard is positional), and the name id
//! that tells "another type" from "an outdated shape of this type".
//!
//! The shape is traced once per type with `serde-reflection`, which drives the type's
//! `Deserialize` and records every container's name, field names and field types. Types whose
//! `Deserialize` cannot be traced (`deserialize_any`, untagged enums, validating impls) fall back to
//! `std::any::type_name`, and their values are stored in a self-describing format (see
//! `codec.rs`); see `docs/format.md` for the limits.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{OnceLock, RwLock};

use serde::de::DeserializeOwned;
use serde_reflection::{Tracer, TracerConfig};
use xxhash_rust::xxh3::xxh3_64;

use crate::record::Meta;

/// Bumped when the way fingerprints are computed changes: old records then read as misses.
const SCHEME: &[u8] = b"tiered-fp-1";

/// What is remembered of a type, computed once per process.
#[derive(Clone, Copy, Debug)]
struct TypeInfo {
    fingerprint: u64,
    traceable: bool,
    name: &'static str,
    name_id: u64,
}

/// `TypeId`s are already hashes: the digest hasher of the memory tier folds them cheaply (this
/// table is read on every disk hit and insert).
type Table = HashMap<TypeId, TypeInfo, BuildHasherDefault<crate::memory::DigestHasher>>;

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Name id → type name, for the types whose fingerprint this process has computed.
fn names() -> &'static RwLock<HashMap<u64, &'static str>> {
    static NAMES: OnceLock<RwLock<HashMap<u64, &'static str>>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

fn info<V: DeserializeOwned + 'static>() -> TypeInfo {
    let id = TypeId::of::<V>();
    if let Some(info) = table().read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return *info;
    }
    let info = compute::<V>();
    names()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name_id::<V>(), info.name);
    table()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, info);
    info
}

/// The fingerprint of `V`'s shape, computed on first use and remembered.
pub(crate) fn of<V: DeserializeOwned + 'static>() -> u64 {
    info::<V>().fingerprint
}

/// Whether serde-reflection could trace `V`'s `Deserialize`; when it could not, the type needs
/// a self-describing format (postcard cannot drive `deserialize_any`). Remembered per type.
pub(crate) fn traceable<V: DeserializeOwned + 'static>() -> bool {
    info::<V>().traceable
}

/// The id of `V`'s name: xxh3-64 of `std::any::type_name::<V>()`. Two builds of one type share
/// it; two types do not (short of a 64-bit collision).
pub(crate) fn name_id<V: 'static>() -> u64 {
    // 32 bits, as records store it: it only tells "another type" from "another shape of this
    // type" (the 64-bit shape fingerprint guards decoding), so a rare collision costs little.
    xxh3_64(std::any::type_name::<V>().as_bytes()) & u64::from(u32::MAX)
}

/// The type name behind a name id, if this process has used that type.
pub(crate) fn name_of(id: u64) -> Option<&'static str> {
    names()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .copied()
}

/// A stored type's name for messages: the name, or "unknown type (id 0x…)" when this process
/// has not used the type.
pub(crate) fn describe(id: u64) -> Cow<'static, str> {
    match name_of(id) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("unknown type (id {id:#018x})")),
    }
}

/// How a stored record's type relates to the type a reader asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeCheck {
    /// Same name, same shape: decode it.
    Same,
    /// Another type: a miss that must leave the record alone (its owner may read it next).
    OtherType,
    /// The same type as written by a build where it had another shape: the record can never
    /// be read again and is reclaimed.
    OutdatedShape,
}

impl TypeCheck {
    /// Classifies the record described by `meta` for a reader of `V`.
    pub(crate) fn of<V: DeserializeOwned + 'static>(meta: &Meta) -> TypeCheck {
        let info = info::<V>();
        if meta.type_name_id != info.name_id {
            TypeCheck::OtherType
        } else if meta.fingerprint != info.fingerprint {
            TypeCheck::OutdatedShape
        } else {
            TypeCheck::Same
        }
    }
}

fn compute<V: DeserializeOwned + 'static>() -> TypeInfo {
    let name = std::any::type_name::<V>();
    let mut text = Vec::from(SCHEME);
    let shape = trace::<V>();
    match &shape {
        Some(shape) => {
            text.extend_from_slice(b"shape:");
            text.extend_from_slice(shape.as_bytes());
        }
        None => {
            tracing::debug!(
                ty = name,
                "shape of type could not be traced; its fingerprint falls back to the type name \
                 and its values are stored self-describing"
            );
            text.extend_from_slice(b"name:");
            text.extend_from_slice(name.as_bytes());
        }
    }
    TypeInfo {
        fingerprint: xxh3_64(&text),
        traceable: shape.is_some(),
        name,
        name_id: name_id::<V>(),
    }
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

    #[test]
    fn traceable_is_remembered_per_type() {
        assert!(!traceable::<Untagged>());
        assert!(traceable::<v1::Row>());
        assert!(traceable::<Vec<u64>>());
    }

    #[test]
    fn name_ids_name_types_this_process_used() {
        assert_ne!(
            name_id::<v1::Row>(),
            name_id::<v2::Row>(),
            "module paths differ"
        );
        assert_eq!(name_id::<u32>(), name_id::<u32>());
        of::<v1::Row>();
        assert_eq!(
            name_of(name_id::<v1::Row>()),
            Some(std::any::type_name::<v1::Row>())
        );
        assert_eq!(name_of(0x1234), None);
        assert_eq!(describe(0x1234), "unknown type (id 0x0000000000001234)");
    }

    #[test]
    fn type_check_tells_another_type_from_an_outdated_shape() {
        let meta = |fingerprint, type_name_id| Meta {
            fingerprint,
            type_name_id,
            self_describing: false,
            in_blob: false,
            expiry: Default::default(),
            created_ms: 0,
        };
        let name = name_id::<v1::Row>();
        let fp = of::<v1::Row>();
        assert_eq!(TypeCheck::of::<v1::Row>(&meta(fp, name)), TypeCheck::Same);
        assert_eq!(
            TypeCheck::of::<v1::Row>(&meta(fp ^ 1, name)),
            TypeCheck::OutdatedShape
        );
        assert_eq!(
            TypeCheck::of::<v2::Row>(&meta(fp, name)),
            TypeCheck::OtherType
        );
        assert_eq!(
            TypeCheck::of::<u64>(&meta(of::<u64>(), name_id::<i64>())),
            TypeCheck::OtherType
        );
    }
}
