//! [`Bytes`]: immutable bytes that a read of a large value shares with its side file.
//!
//! A large value's payload lives in a side file (`disk/blobs.rs`). Its read maps the file
//! instead of copying it into a buffer, and decodes the payload with the mapping installed as
//! this thread's *source* (see [`decoding_from`]): a `Bytes` field deserialized from a slice of
//! the source keeps a reference to the mapping and an offset, with no copy. Anything else (a
//! small record, another format's buffer) is copied, once, as it would be into a `Vec<u8>`.
//!
//! Side files are written whole under a temporary name, then renamed, and never modified
//! afterwards; a deletion (the entry replaced, dropped or swept) leaves an existing mapping
//! valid. So a mapped `Bytes` stays what was read for as long as it lives.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// Immutable bytes, cheap to clone, stored as serde bytes (a `Vec<u8>` with
/// `#[serde(with = "serde_bytes")]` has the same shape on disk).
///
/// As a value, or a field of one, it lets a large value's read skip the copy: when the cache
/// reads it from a side file, the bytes stay in the file's read-only memory mapping.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use tiered::{Bytes, Cache};
///
/// let cache = Cache::open(dir.path())?;
/// cache.insert("frame", Bytes::from(vec![7u8; 1 << 20]))?;
/// drop(cache);
/// let cache = Cache::open(dir.path())?;
/// let frame = cache.get::<_, Bytes>("frame")?.unwrap();
/// assert_eq!(frame.len(), 1 << 20);
/// assert!(frame.side_file().is_some()); // read from its side file, without a copy
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Arc<Vec<u8>>),
    Shared {
        source: Arc<Source>,
        offset: usize,
        len: usize,
    },
}

/// A side file's contents, mapped (or, where mapping is not possible, read).
pub(crate) struct Source {
    data: SourceData,
    path: PathBuf,
}

enum SourceData {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Source {
    /// Maps `file` (at `path`), read-only; reads it if it cannot be mapped.
    pub(crate) fn open(file: &std::fs::File, path: &Path) -> std::io::Result<Source> {
        // SAFETY: a side file is never modified once it has its name (it is written whole
        // under a temporary one, then renamed), so the mapped bytes cannot change under us;
        // a deletion leaves the mapping valid. A file damaged on disk by something else reads
        // as damaged bytes, which the caller's checksum catches.
        let data = match unsafe { memmap2::Mmap::map(file) } {
            Ok(map) => SourceData::Mapped(map),
            Err(_) => {
                use std::io::Read;
                let mut buf = Vec::new();
                let mut f = file;
                f.read_to_end(&mut buf)?;
                SourceData::Read(buf)
            }
        };
        Ok(Source {
            data,
            path: path.to_path_buf(),
        })
    }

    /// Wraps bytes already in memory.
    #[cfg(test)]
    pub(crate) fn from_vec(bytes: Vec<u8>, path: &Path) -> Source {
        Source {
            data: SourceData::Read(bytes),
            path: path.to_path_buf(),
        }
    }

    fn is_mapped(&self) -> bool {
        matches!(self.data, SourceData::Mapped(_))
    }
}

impl Deref for Source {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.data {
            SourceData::Mapped(m) => m,
            SourceData::Read(v) => v,
        }
    }
}

thread_local! {
    /// The source the payload being decoded on this thread is a slice of.
    static DECODING: RefCell<Option<Arc<Source>>> = const { RefCell::new(None) };
}

/// Runs `decode` with `source` as this thread's source: `Bytes` deserialized from slices of it
/// share it instead of copying. Restores the previous source afterwards, panic or not.
pub(crate) fn decoding_from<R>(source: &Arc<Source>, decode: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<Source>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            let _ = DECODING.try_with(|d| *d.borrow_mut() = previous);
        }
    }
    let previous = DECODING.with(|d| d.borrow_mut().replace(source.clone()));
    let _restore = Restore(previous);
    decode()
}

impl Bytes {
    /// Empty bytes.
    pub fn new() -> Self {
        Bytes(Repr::Owned(Arc::new(Vec::new())))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Shared {
                source,
                offset,
                len,
            } => &source[*offset..*offset + *len],
        }
    }

    /// The side file these bytes were read from without a copy, and their offset in it: the
    /// file is mapped read-only and never modified while it has its name. It may be deleted
    /// at any time (the entry replaced, dropped or swept), which leaves these bytes valid; a
    /// process that opens the file itself must expect it gone. `None` for bytes in memory.
    pub fn side_file(&self) -> Option<(&Path, u64)> {
        match &self.0 {
            Repr::Shared { source, offset, .. } if source.is_mapped() => {
                Some((&source.path, *offset as u64))
            }
            _ => None,
        }
    }

    /// Whether these bytes are a slice of `source`, shared, not copied.
    #[cfg(test)]
    pub(crate) fn shares(&self, source: &Arc<Source>) -> bool {
        matches!(&self.0, Repr::Shared { source: s, .. } if Arc::ptr_eq(s, source))
    }

    /// The bytes for a slice `v` being deserialized: shared with this thread's source when `v`
    /// lies in it, else copied.
    pub(crate) fn of_slice(v: &[u8]) -> Bytes {
        let shared = DECODING
            .try_with(|d| {
                let d = d.borrow();
                let source = d.as_ref()?;
                let base = source.as_ptr() as usize;
                let start = v.as_ptr() as usize;
                (start >= base && start + v.len() <= base + source.len()).then(|| Repr::Shared {
                    source: source.clone(),
                    offset: start - base,
                    len: v.len(),
                })
            })
            .ok()
            .flatten();
        Bytes(shared.unwrap_or_else(|| Repr::Owned(Arc::new(v.to_vec()))))
    }
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::new()
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(Repr::Owned(Arc::new(v)))
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes::from(v.to_vec())
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.as_slice()[..self.len().min(16)];
        write!(f, "Bytes({} bytes: {shown:02x?}", self.len())?;
        f.write_str(if self.len() > 16 { "…)" } else { ")" })
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
                Ok(Bytes::of_slice(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::of_slice(v))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Bytes::from(v))
            }
        }
        d.deserialize_bytes(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_from_a_slice_of_the_source_share_it_and_others_are_copied() {
        let source = Arc::new(Source::from_vec(vec![1, 2, 3, 4, 5], Path::new("/x")));
        let inside = decoding_from(&source, || Bytes::of_slice(&source[1..4]));
        assert!(matches!(
            inside.0,
            Repr::Shared {
                offset: 1,
                len: 3,
                ..
            }
        ));
        assert_eq!(&*inside, &[2, 3, 4]);
        let elsewhere = [9u8, 9];
        let copied = decoding_from(&source, || Bytes::of_slice(&elsewhere));
        assert!(matches!(copied.0, Repr::Owned(_)));
        // Outside `decoding_from`, nothing is shared.
        assert!(matches!(Bytes::of_slice(&source[..]).0, Repr::Owned(_)));
        // Only a mapped source names its file.
        assert_eq!(inside.side_file(), None);
    }

    #[test]
    fn bytes_round_trip_through_postcard_with_the_shape_of_serde_bytes() {
        #[derive(Serialize, serde::Deserialize)]
        struct AsVec {
            #[serde(with = "serde_bytes_shape")]
            data: Vec<u8>,
        }
        mod serde_bytes_shape {
            use serde::Deserialize;
            pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(v)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Vec<u8>, D::Error> {
                super::Bytes::deserialize(d).map(|b| b.to_vec())
            }
        }
        #[derive(Serialize, serde::Deserialize)]
        struct AsBytes {
            data: Bytes,
        }
        let a = postcard::to_allocvec(&AsVec {
            data: vec![1, 2, 3],
        })
        .unwrap();
        let b = postcard::to_allocvec(&AsBytes {
            data: Bytes::from(vec![1, 2, 3]),
        })
        .unwrap();
        assert_eq!(a, b);
        let back: AsBytes = postcard::from_bytes(&a).unwrap();
        assert_eq!(&*back.data, &[1, 2, 3]);
    }
}
