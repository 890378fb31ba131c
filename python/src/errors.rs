//! Errors: the core's as `tiered.CacheError`, and a computation's own exception kept as it is.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    tiered,
    CacheError,
    PyException,
    "The cache could not do what was asked; the message says why and what to do."
);

/// The core's error as a Python exception.
pub fn cache_error(e: &tiered::Error) -> PyErr {
    CacheError::new_err(e.to_string())
}

/// Why a read-through gave no value: the user's computation raised, or the cache failed.
pub enum Fail {
    Py(PyErr),
    Cache(tiered::Error),
}

impl From<tiered::Error> for Fail {
    fn from(e: tiered::Error) -> Self {
        Fail::Cache(e)
    }
}

impl Fail {
    pub fn into_py_err(self) -> PyErr {
        match self {
            Fail::Py(e) => e,
            Fail::Cache(e) => cache_error(&e),
        }
    }
}
