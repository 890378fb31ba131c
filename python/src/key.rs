//! Keys from Python objects: a canonical, type-tagged tree ([`Part`]) that the core encodes
//! with its injective key encoding.
//!
//! Built-in values map to the serde data model one to one (`1`, `1.0` and `True` are an
//! integer, a float and a bool: three keys); a list, a set and a frozenset carry their type's
//! name so that `[1]` and `(1,)` differ; a dict and a set are written sorted by the core, so
//! their order does not matter. Anything else goes through `hash_funcs` (by the type or one of
//! its bases) or `tiered._keys.reduce`, which turns frames, arrays, dates, dataclasses and the
//! like into a type tag and a reduced value, by content and in full.

use pyo3::exceptions::{PyRecursionError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple, PyType,
};
use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

/// One canonical key value.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    None,
    Bool(bool),
    Int(i64),
    Big(i128),
    /// An integer beyond 128 bits, in decimal.
    Huge(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Part>),
    List(Vec<Part>),
    Set(Vec<Part>),
    FrozenSet(Vec<Part>),
    Dict(Vec<(Part, Part)>),
    /// A value of another type: its tag (such as `datetime` or `dataclass:app.Point`) and
    /// what it reduced to.
    Tagged(String, Box<Part>),
}

/// Written sorted by the core's encoding (a map's entries are).
struct Members<'a>(&'a [Part]);

impl Serialize for Members<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for p in self.0 {
            map.serialize_entry(p, &())?;
        }
        map.end()
    }
}

struct Seq<'a>(&'a [Part]);

impl Serialize for Seq<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(p)?;
        }
        seq.end()
    }
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Part::None => s.serialize_none(),
            Part::Bool(b) => s.serialize_bool(*b),
            Part::Int(i) => s.serialize_i64(*i),
            Part::Big(i) => s.serialize_i128(*i),
            Part::Huge(digits) => s.serialize_newtype_struct("int", digits),
            Part::Float(f) => s.serialize_f64(*f),
            Part::Str(t) => s.serialize_str(t),
            Part::Bytes(b) => s.serialize_bytes(b),
            Part::Tuple(items) => {
                let mut t = s.serialize_tuple(items.len())?;
                for p in items {
                    t.serialize_element(p)?;
                }
                t.end()
            }
            Part::List(items) => s.serialize_newtype_struct("list", &Seq(items)),
            Part::Set(items) => s.serialize_newtype_struct("set", &Members(items)),
            Part::FrozenSet(items) => s.serialize_newtype_struct("frozenset", &Members(items)),
            Part::Dict(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Part::Tagged(tag, inner) => s.serialize_newtype_struct("py", &(tag, inner)),
        }
    }
}

/// How deep a key may nest: deeper is almost surely a structure that contains itself.
const MAX_DEPTH: usize = 100;

/// What a conversion needs besides the object: the user's `hash_funcs` and the reducer.
pub struct Keyer<'py> {
    pub hash_funcs: Option<Bound<'py, PyDict>>,
    pub reduce: Bound<'py, PyAny>,
}

impl<'py> Keyer<'py> {
    /// The key part of `obj`; an error names what could not be hashed.
    pub fn part(&self, obj: &Bound<'py, PyAny>) -> PyResult<Part> {
        self.convert(obj, 0)
    }

    fn convert(&self, obj: &Bound<'py, PyAny>, depth: usize) -> PyResult<Part> {
        if depth > MAX_DEPTH {
            return Err(PyRecursionError::new_err(
                "the value nests more than 100 levels deep (does it contain itself?)",
            ));
        }
        let d = depth + 1;
        if obj.is_none() {
            return Ok(Part::None);
        }
        // Exact types only: a subclass (an IntEnum, a str subclass) may mean something else.
        if obj.is_exact_instance_of::<PyBool>() {
            return Ok(Part::Bool(obj.is_truthy()?));
        }
        if obj.is_exact_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Part::Int(i));
            }
            if let Ok(i) = obj.extract::<i128>() {
                return Ok(Part::Big(i));
            }
            return Ok(Part::Huge(obj.str()?.to_string()));
        }
        if obj.is_exact_instance_of::<PyFloat>() {
            return Ok(Part::Float(obj.extract::<f64>()?));
        }
        if let Ok(s) = obj.cast_exact::<PyString>() {
            return Ok(Part::Str(s.to_str()?.to_owned()));
        }
        if let Ok(b) = obj.cast_exact::<PyBytes>() {
            return Ok(Part::Bytes(b.as_bytes().to_vec()));
        }
        if let Ok(b) = obj.cast_exact::<PyByteArray>() {
            return Ok(Part::Tagged(
                "bytearray".into(),
                Box::new(Part::Bytes(b.to_vec())),
            ));
        }
        if let Ok(t) = obj.cast_exact::<PyTuple>() {
            return Ok(Part::Tuple(self.all(t.iter(), d)?));
        }
        if let Ok(l) = obj.cast_exact::<PyList>() {
            return Ok(Part::List(self.all(l.iter(), d)?));
        }
        if let Ok(m) = obj.cast_exact::<PyDict>() {
            let mut entries = Vec::with_capacity(m.len());
            for (k, v) in m.iter() {
                entries.push((self.convert(&k, d)?, self.convert(&v, d)?));
            }
            return Ok(Part::Dict(entries));
        }
        if let Ok(s) = obj.cast_exact::<PySet>() {
            return Ok(Part::Set(self.all(s.iter(), d)?));
        }
        if let Ok(s) = obj.cast_exact::<PyFrozenSet>() {
            return Ok(Part::FrozenSet(self.all(s.iter(), d)?));
        }
        if let Some(funcs) = &self.hash_funcs {
            if let Some(f) = user_hash_func(funcs, &obj.get_type())? {
                let tag = format!("hash_funcs:{}", qualified_name(&obj.get_type()));
                let reduced = f.call1((obj,))?;
                return Ok(Part::Tagged(tag, Box::new(self.convert(&reduced, d)?)));
            }
        }
        let reduced = self.reduce.call1((obj,))?;
        let (tag, value): (String, Bound<'py, PyAny>) = reduced.extract()?;
        Ok(Part::Tagged(tag, Box::new(self.convert(&value, d)?)))
    }

    fn all(
        &self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        depth: usize,
    ) -> PyResult<Vec<Part>> {
        items.map(|item| self.convert(&item, depth)).collect()
    }
}

/// The user's function for `ty` or the nearest of its bases that has one.
fn user_hash_func<'py>(
    funcs: &Bound<'py, PyDict>,
    ty: &Bound<'py, PyType>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if funcs.is_empty() {
        return Ok(None);
    }
    let mro = ty.getattr("__mro__")?;
    for base in mro.try_iter()? {
        if let Some(f) = funcs.get_item(base?)? {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// `module.QualName` of a type; `script:QualName` for one defined in a script (`__main__`,
/// or the module `bokeh_app_<uuid>` Panel makes anew in every session), whose module name
/// means nothing to another session or process (as `tiered._keys._qualified`).
pub fn qualified_name(ty: &Bound<'_, PyType>) -> String {
    let module = ty
        .module()
        .map(|m| m.to_string())
        .unwrap_or_else(|_| "?".into());
    let name = ty
        .qualname()
        .map(|m| m.to_string())
        .unwrap_or_else(|_| "?".into());
    let imported = ty
        .py()
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.contains(&module))
        .unwrap_or(false);
    if module == "__main__" || module.starts_with("bokeh_app_") || !imported {
        format!("script:{name}")
    } else {
        format!("{module}.{name}")
    }
}

/// The error for an argument that cannot be part of a key: names it and says what to do.
pub fn unhashable(function: &str, argument: &str, cause: &PyErr, py: Python<'_>) -> PyErr {
    let err = PyTypeError::new_err(format!(
        "argument `{argument}` of `{function}` cannot be hashed for the cache key ({cause}): \
         rename it `_{argument}` to leave it out of the key, or pass \
         `hash_funcs={{TheType: lambda v: ...}}` to say what identifies it"
    ));
    err.set_cause(py, Some(cause.clone_ref(py)));
    err
}
