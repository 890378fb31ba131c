//! Values: a Python object and, for a persisted entry, its encoding.
//!
//! The core stores one Rust type for every Python value, [`PyValue`]: on disk a format byte
//! and the bytes `tiered._values` made (pickle 5, Arrow IPC, a raw array); in memory the same
//! plus the Python object, decoded at most once per process and then shared by every hit.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tiered::Bytes;

/// A plain pickle: `tiered._formats.PICKLE`.
const PICKLE: u8 = 0;

/// The format of an entry kept in memory only: it has no bytes.
pub const MEMORY_ONLY: u8 = 0xFF;

/// A value as stored: its format, padding, and its bytes. `data` has the shape of serde bytes:
/// a large value read from its side file shares the file's mapping instead of a copy (see
/// `tiered::Bytes`). The padding puts `data` at a multiple of [`ALIGN`] bytes from the start of
/// the payload (postcard writes `format` as one byte, each length as a varint), so that arrays
/// decoded in place from a mapped file are aligned.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u8,
    pad: Bytes,
    data: Bytes,
}

/// [`Stored`] borrowed, to serialize without a copy.
#[derive(Serialize)]
#[serde(rename = "Stored")]
struct StoredRef<'a> {
    format: u8,
    pad: Pad,
    data: &'a Bytes,
}

/// Where `data` starts in a payload, at the latest (a side file is mapped at a page boundary).
const ALIGN: usize = 64;

/// `n` zero bytes, serialized as serde bytes.
struct Pad(usize);

impl Serialize for Pad {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&[0u8; ALIGN][..self.0])
    }
}

/// Data shorter than this is never read in place (only side files are mapped, and they hold
/// payloads of 64 KiB or more): no padding, so small entries stay small.
const PAD_FROM: usize = 16 * 1024;

/// The padding that puts `len` bytes of data at a multiple of [`ALIGN`]: after the format byte,
/// the padding's length (one byte: it is under 128) and the data's length as a varint.
fn padding_for(len: usize) -> usize {
    if len < PAD_FROM {
        return 0;
    }
    let varint = (usize::BITS - len.leading_zeros()).max(1).div_ceil(7) as usize;
    (ALIGN - (2 + varint) % ALIGN) % ALIGN
}

struct Inner {
    format: u8,
    data: Bytes,
    /// For a memory-only value: the bytes its object holds, as far as `tiered._values.size_of`
    /// can tell.
    weight: u64,
    object: PyOnceLock<Py<PyAny>>,
}

/// The core weighs a memory-only value by the length of its serialization (postcard's size
/// count, which reads no bytes); such a value serializes as its format and `weight` bytes of
/// padding, slices of this zeroed static (never touched, so it takes no memory). It is never
/// written anywhere: a memory-only entry is not persisted.
static PADDING: [u8; 1 << 24] = [0; 1 << 24];

/// How a memory-only value serializes (only ever to be weighed).
#[derive(Serialize)]
struct Weighed {
    format: u8,
    padding: Vec<Padding>,
}

struct Padding(usize);

impl Serialize for Padding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&PADDING[..self.0])
    }
}

/// A cached Python value: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct PyValue(Arc<Inner>);

impl PyValue {
    /// A value to persist: its encoding, and the object it came from (so that this process's
    /// hits share it without decoding).
    pub fn encoded(py: Python<'_>, format: u8, data: Vec<u8>, object: Py<PyAny>) -> Self {
        Self::new(py, format, data, 0, object)
    }

    /// A value kept in memory only, that holds about `weight` bytes.
    pub fn memory_only(py: Python<'_>, object: Py<PyAny>, weight: u64) -> Self {
        Self::new(py, MEMORY_ONLY, Vec::new(), weight, object)
    }

    fn new(py: Python<'_>, format: u8, data: Vec<u8>, weight: u64, object: Py<PyAny>) -> Self {
        let cell = PyOnceLock::new();
        let _ = cell.set(py, object);
        PyValue(Arc::new(Inner {
            format,
            data: Bytes::from(data),
            weight,
            object: cell,
        }))
    }

    pub fn format(&self) -> u8 {
        self.0.format
    }

    /// The Python object, decoded by `decode(format, bytearray)` the first time this process
    /// needs it.
    ///
    /// A value read from its side file (a large one) is decoded from a read-only memory
    /// mapping of the file that Python holds (`tiered._values.map_file`): no copy of its bytes,
    /// and arrays decoded in place are read-only views of the file. Otherwise, or if the file
    /// is gone already (replaced meanwhile), the decoder gets a `bytearray` of its own (a copy
    /// of the stored bytes): arrays it decodes may be views into it, writable like the arrays
    /// that were stored, and nothing else shares it (a plain pickle, which has no out-of-band
    /// buffers, loads from a `bytes` copy: see [`decode_bytes`]).
    pub fn object<'py>(
        &self,
        py: Python<'py>,
        decode: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let obj = self.0.object.get_or_try_init(py, || {
            if let Some(view) = self.mapped(py)? {
                return decode.call1((self.0.format, view)).map(Bound::unbind);
            }
            decode_bytes(py, self.0.format, &self.0.data, decode).map(Bound::unbind)
        })?;
        Ok(obj.bind(py).clone())
    }

    /// A memoryview of the bytes in Python's own mapping of the side file they were read
    /// from, if they were and the file is still there.
    fn mapped<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        static MAP_FILE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let Some((path, offset)) = self.0.data.side_file() else {
            return Ok(None);
        };
        let map_file = MAP_FILE.import(py, "tiered._values", "map_file")?;
        let view = map_file.call1((path, offset, self.0.data.len()))?;
        Ok((!view.is_none()).then_some(view))
    }

    /// A fresh object decoded from the bytes (a copy per hit), or `None` for a value kept in
    /// memory only.
    pub fn fresh<'py>(
        &self,
        py: Python<'py>,
        decode: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.0.format == MEMORY_ONLY {
            return Ok(None);
        }
        decode_bytes(py, self.0.format, &self.0.data, decode).map(Some)
    }
}

/// `decode(format, bytearray(data))`; a plain pickle straight through `decode.plain_pickle`
/// (`pickle.loads`) once the decoder allows it (see `tiered._values.Decoder`): most small
/// values are plain pickles, and the first read of each after a restart pays for every
/// Python call on the way.
fn decode_bytes<'py>(
    py: Python<'py>,
    format: u8,
    data: &[u8],
    decode: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if format == PICKLE {
        let loads = decode.getattr(intern!(py, "plain_pickle"))?;
        if !loads.is_none() {
            return loads.call1((PyBytes::new(py, data),));
        }
    }
    decode.call1((format, PyByteArray::new(py, data)))
}

impl Serialize for PyValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.format == MEMORY_ONLY {
            let weight = usize::try_from(self.0.weight).unwrap_or(usize::MAX);
            let full = weight / PADDING.len();
            let mut padding: Vec<Padding> = (0..full).map(|_| Padding(PADDING.len())).collect();
            padding.push(Padding(weight % PADDING.len()));
            return Weighed {
                format: MEMORY_ONLY,
                padding,
            }
            .serialize(s);
        }
        StoredRef {
            format: self.0.format,
            pad: Pad(padding_for(self.0.data.len())),
            data: &self.0.data,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Stored { format, data, .. } = Stored::deserialize(d)?;
        Ok(PyValue(Arc::new(Inner {
            format,
            data,
            weight: 0,
            object: PyOnceLock::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_starts_at_a_multiple_of_align_in_the_payload() {
        for len in [
            16_384usize,
            70_000,
            2_097_151,
            2_097_152,
            268_435_455,
            268_435_456,
        ] {
            let pad = padding_for(len);
            let payload = postcard::to_allocvec(&StoredRef {
                format: 3,
                pad: Pad(pad),
                data: &Bytes::from(vec![9u8; len]),
            })
            .unwrap();
            let start = payload.len() - len;
            assert_eq!(start % ALIGN, 0, "len {len}: data at {start}");
            let back: Stored = postcard::from_bytes(&payload).unwrap();
            assert_eq!((back.format, back.data.len()), (3, len));
        }
        assert_eq!(padding_for(100), 0, "small values are not padded");
    }
}
