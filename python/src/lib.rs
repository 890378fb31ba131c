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

/// Commits every open cache's pending writes when SIGTERM comes, then lets it end the
/// process: see `tiered::flush_on_terminate` (installed in `multiprocessing` children).
#[pyfunction]
fn flush_on_terminate() -> PyResult<()> {
    tiered::flush_on_terminate().map_err(|e| errors::cache_error(&e))
}

/// The canonical text of `obj` as a key part (the same in every process), or the error that
/// keying it raises: how a closure's captured values become part of its identity.
#[pyfunction]
fn key_text(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let reduce = py.import("tiered._keys")?.getattr("reduce")?;
    let keyer = key::Keyer {
        hash_funcs: None,
        reduce,
    };
    Ok(format!("{:?}", keyer.part(obj)?))
}

/// What a normal exit does to every open cache (commit, stop serving, let go of folders):
/// for `multiprocessing` children, which end with `os._exit`.
#[pyfunction]
fn leave_before_exit(py: Python<'_>) {
    py.detach(tiered::leave_before_exit);
}

#[pymodule]
fn _tiered(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<memo::Memoized>()?;
    m.add_class::<memo::Pending>()?;
    m.add("CacheError", m.py().get_type::<errors::CacheError>())?;
    m.add_function(wrap_pyfunction!(flush_on_terminate, m)?)?;
    m.add_function(wrap_pyfunction!(key_text, m)?)?;
    m.add_function(wrap_pyfunction!(leave_before_exit, m)?)?;
    Ok(())
}
