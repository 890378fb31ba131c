//! Values: a Python object and, for a persisted entry, its encoding.
//!
//! The core stores one Rust type for every Python value, [`PyValue`]: on disk a format byte
//! and the bytes `tiered._values` made (pickle 5, Arrow IPC, a raw array); in memory the same
//! plus the Python object, decoded at most once per process and then shared by every hit.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyByteArray;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The format of an entry kept in memory only: it has no bytes.
pub const MEMORY_ONLY: u8 = 0xFF;

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u8,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// [`Stored`] borrowed, to serialize without a copy.
#[derive(Serialize)]
#[serde(rename = "Stored")]
struct StoredRef<'a> {
    format: u8,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

struct Inner {
    format: u8,
    data: Vec<u8>,
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
            data,
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
    /// The decoder gets a `bytearray` of its own (a copy of the stored bytes, as a `bytes`
    /// would be): arrays it decodes may be views into it, writable like the arrays that were
    /// stored, and nothing else shares it.
    pub fn object<'py>(
        &self,
        py: Python<'py>,
        decode: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let obj = self.0.object.get_or_try_init(py, || {
            let data = PyByteArray::new(py, &self.0.data);
            decode.call1((self.0.format, data)).map(Bound::unbind)
        })?;
        Ok(obj.bind(py).clone())
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
        let data = PyByteArray::new(py, &self.0.data);
        decode.call1((self.0.format, data)).map(Some)
    }
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
            data: &self.0.data,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Stored { format, data } = Stored::deserialize(d)?;
        Ok(PyValue(Arc::new(Inner {
            format,
            data,
            weight: 0,
            object: PyOnceLock::new(),
        })))
    }
}
