//! `tiered._tiered`: the Rust half of the Python package `tiered` (see `tiered/__init__.py`).
//!
//! One engine for both languages: this crate binds the `tiered` crate's cache, keys Python
//! arguments canonically ([`key`]), carries Python values through the core ([`value`]) and
//! runs memoized calls ([`memo`]). Formats, fingerprints and framework glue are Python.

mod errors;
mod key;
mod memo;
mod opts;
mod store;
mod value;

use pyo3::prelude::*;

/// The key of `obj` as the cache encodes it (for tests and `explain`): its canonical parts'
/// debug form. Raises what building the key raises.
#[pyfunction]
fn key_repr(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let reduce = py.import("tiered._keys")?.getattr("reduce")?;
    let keyer = key::Keyer {
        hash_funcs: None,
        reduce,
    };
    Ok(format!("{:?}", keyer.part(obj)?))
}

#[pymodule]
fn _tiered(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<memo::Memoized>()?;
    m.add_class::<memo::Pending>()?;
    m.add("CacheError", m.py().get_type::<errors::CacheError>())?;
    m.add_function(wrap_pyfunction!(key_repr, m)?)?;
    Ok(())
}
