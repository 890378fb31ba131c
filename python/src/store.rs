//! `tiered._tiered.Store`: one cache (or a namespace of one), opened on first use.
//!
//! Opening starts the core's threads; doing it on first use rather than at construction lets
//! an app build its cache at import and fork (gunicorn `--preload`, multiprocessing) before
//! any thread exists. Memory hits keep the GIL; anything that may touch the disk, wait for
//! another process or for another caller's computation releases it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use tiered::{Cache, DamagedFile, Durability, Namespace, Options};

use crate::errors::{cache_error, Fail};
use crate::key::{Keyer, Part};
use crate::memo::{warn, Failure};
use crate::opts::Given;
use crate::value::PyValue;

/// How to open the cache.
struct Settings {
    path: Option<String>,
    memory: u64,
    disk: u64,
    durability: Durability,
    defaults: Options,
    request_timeout: Option<Duration>,
    on_damaged_file: DamagedFile,
}

/// What every handle on one cache shares.
pub struct Shared {
    settings: Settings,
    cache: OnceLock<Cache>,
    opening: Mutex<()>,
    /// `tiered._values.encode`, `decode` (or the data-only `decode_safe`) and
    /// `tiered._keys.reduce`.
    pub encode: Py<PyAny>,
    pub decode: Py<PyAny>,
    pub reduce: Py<PyAny>,
    /// Called (holding the GIL) just before the folder is opened: raises to refuse it (a
    /// folder others can write, for a cache that loads pickles). The engine makes a folder
    /// private as it opens it, so this is the last moment the folder's mode says anything.
    before_open: Option<Py<PyAny>>,
}

impl Shared {
    /// The cache, opened now if this is its first use. Releases the GIL while opening.
    pub fn cache(&self, py: Python<'_>) -> PyResult<&Cache> {
        if let Some(c) = self.cache.get() {
            return Ok(c);
        }
        if let Some(check) = &self.before_open {
            check.bind(py).call0()?;
        }
        py.detach(|| {
            let _held = self.opening.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = self.cache.get() {
                return Ok(c);
            }
            let s = &self.settings;
            let mut b = Cache::builder()
                .memory_capacity(s.memory)
                .disk_capacity(s.disk)
                .durability(s.durability)
                .default_options(s.defaults.clone());
            if let Some(t) = s.request_timeout {
                b = b.request_timeout(t);
            }
            b = b.on_damaged_file(s.on_damaged_file);
            if let Some(p) = &s.path {
                b = b.path(p);
            }
            let cache = b.open()?;
            Ok(self.cache.get_or_init(|| cache))
        })
        .map_err(|e: tiered::Error| cache_error(&e))
    }

    pub fn keyer<'py>(
        &self,
        py: Python<'py>,
        hash_funcs: Option<Bound<'py, PyDict>>,
    ) -> Keyer<'py> {
        Keyer {
            hash_funcs,
            reduce: self.reduce.bind(py).clone(),
        }
    }

    /// Encodes `obj` for a persisted entry, or keeps it as it is for a memory-only one.
    pub fn value(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        memory_only: bool,
    ) -> PyResult<PyValue> {
        if memory_only {
            static SIZE_OF: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let weight: u64 = SIZE_OF
                .import(py, "tiered._values", "size_of")?
                .call1((obj,))?
                .extract()?;
            return Ok(PyValue::memory_only(py, obj.clone().unbind(), weight));
        }
        let encoded = self.encode.bind(py).call1((obj,))?;
        let (format, data): (u8, Vec<u8>) = encoded.extract()?;
        Ok(PyValue::encoded(py, format, data, obj.clone().unbind()))
    }
}

/// The root of a cache or one of its namespaces.
enum Scoped<'a> {
    Root(&'a Cache),
    Ns(Namespace),
}

impl Scoped<'_> {
    fn get_from_memory(&self, k: &Part) -> tiered::Result<Option<Arc<PyValue>>> {
        match self {
            Scoped::Root(c) => c.get_from_memory(k),
            Scoped::Ns(n) => n.get_from_memory(k),
        }
    }
    /// `get`, with the GIL released only for what may wait (a disk read, the owner's answer).
    fn get_detached(&self, py: Python<'_>, k: &Part) -> tiered::Result<Option<Arc<PyValue>>> {
        let wait = |io: &(dyn Fn() -> Option<Arc<PyValue>> + Sync)| py.detach(io);
        match self {
            Scoped::Root(c) => c.get_waiting(k, wait),
            Scoped::Ns(n) => n.get_waiting(k, wait),
        }
    }
    fn insert_with(&self, k: &Part, v: PyValue, o: &Options) -> tiered::Result<()> {
        match self {
            Scoped::Root(c) => c.insert_with(k, v, o),
            Scoped::Ns(n) => n.insert_with(k, v, o),
        }
    }
    fn remove(&self, k: &Part) -> tiered::Result<bool> {
        match self {
            Scoped::Root(c) => c.remove(k),
            Scoped::Ns(n) => n.remove(k),
        }
    }
    fn contains_key(&self, k: &Part) -> tiered::Result<bool> {
        match self {
            Scoped::Root(c) => c.contains_key(k),
            Scoped::Ns(n) => n.contains_key(k),
        }
    }
    fn get_or_compute<F>(&self, k: &Part, o: &Options, f: F) -> Result<Arc<PyValue>, Fail>
    where
        F: FnOnce() -> Result<PyValue, Fail>,
    {
        match self {
            Scoped::Root(c) => c.try_get_or_insert_with(k, o, f),
            Scoped::Ns(n) => n.try_get_or_insert_with(k, o, f),
        }
    }
    fn clear(&self) -> tiered::Result<()> {
        match self {
            Scoped::Root(c) => c.clear(),
            Scoped::Ns(n) => n.clear(),
        }
    }
}

/// A cache, or one namespace of it (see `tiered.Cache` for the documented API).
#[pyclass(frozen, weakref, module = "tiered._tiered")]
pub struct Store {
    pub shared: Arc<Shared>,
    namespace: Option<String>,
}

/// A size: bytes as an int, or text such as `"512MB"`, `"8GB"`, `"1.5 GiB"`.
fn size(what: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(n) = v.extract::<u64>() {
        return Ok(n);
    }
    let text: String = v.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be bytes (an int) or text such as \"512MB\""
        ))
    })?;
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "{what}={text:?}: write bytes or text such as \"512MB\""
        ))
    })?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(PyValueError::new_err(format!(
                "{what}={text:?}: unknown unit {other:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB)"
            )))
        }
    };
    Ok((num * mult) as u64)
}

impl Store {
    fn scoped<'a>(&'a self, py: Python<'_>) -> PyResult<Scoped<'a>> {
        let cache = self.shared.cache(py)?;
        Ok(match &self.namespace {
            None => Scoped::Root(cache),
            Some(n) => Scoped::Ns(cache.namespace(n.clone())),
        })
    }

    fn key(&self, key: &Bound<'_, PyAny>) -> PyResult<Part> {
        self.shared.keyer(key.py(), None).part(key).map_err(|e| {
            let err = PyTypeError::new_err(format!(
                "this key cannot be used in a cache ({e}): use str, int, float, bytes, tuples \
                 of them, or a value tiered hashes by content (see docs/python.md)"
            ));
            err.set_cause(key.py(), Some(e));
            err
        })
    }

    fn deliver<'py>(&self, py: Python<'py>, v: &PyValue) -> PyResult<Bound<'py, PyAny>> {
        v.object(py, self.shared.decode.bind(py))
    }
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (path, memory, disk, durability, ttl, encode, decode, reduce, request_timeout=None, before_open=None, on_damaged_file="set_aside"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: Option<String>,
        memory: &Bound<'_, PyAny>,
        disk: &Bound<'_, PyAny>,
        durability: &str,
        ttl: Option<Bound<'_, PyAny>>,
        encode: Py<PyAny>,
        decode: Py<PyAny>,
        reduce: Py<PyAny>,
        request_timeout: Option<f64>,
        before_open: Option<Py<PyAny>>,
        on_damaged_file: &str,
    ) -> PyResult<Self> {
        let on_damaged_file = match on_damaged_file {
            "set_aside" => DamagedFile::SetAside,
            "fail" => DamagedFile::Fail,
            other => {
                return Err(PyValueError::new_err(format!(
                    "on_damaged_file={other:?}: use \"set_aside\" (rename a damaged file beside \
                     it and start empty) or \"fail\" (raise CacheError, delete nothing)"
                )))
            }
        };
        let durability = match durability {
            "batched" => Durability::default(),
            "immediate" => Durability::Immediate,
            other => {
                return Err(PyValueError::new_err(format!(
                    "durability={other:?}: use \"batched\" (fast; a crash may lose the last \
                     fraction of a second) or \"immediate\" (each write on disk before it returns)"
                )))
            }
        };
        let defaults = Given {
            ttl,
            ..Given::default()
        }
        .options()?;
        let settings = Settings {
            path,
            memory: size("memory", memory)?,
            disk: size("disk", disk)?,
            durability,
            defaults,
            request_timeout: request_timeout.map(Duration::from_secs_f64),
            on_damaged_file,
        };
        Ok(Store {
            shared: Arc::new(Shared {
                settings,
                cache: OnceLock::new(),
                opening: Mutex::new(()),
                encode,
                decode,
                reduce,
                before_open,
            }),
            namespace: None,
        })
    }

    /// A handle on the namespace `name` of the same cache.
    fn namespace(&self, name: String) -> PyResult<Store> {
        if name.is_empty() {
            return Err(PyValueError::new_err("a namespace needs a name"));
        }
        let full = match &self.namespace {
            Some(parent) => format!("{parent}/{name}"),
            None => name,
        };
        Ok(Store {
            shared: self.shared.clone(),
            namespace: Some(full),
        })
    }

    /// The namespace's name, or `None` for the cache itself.
    #[getter]
    fn name(&self) -> Option<String> {
        self.namespace.clone()
    }

    /// The cache's folder, or `None` in memory.
    #[getter]
    fn path(&self) -> Option<String> {
        self.shared.settings.path.clone()
    }

    /// Opens the cache now, if no use has yet (blocking: an async caller runs it on a worker
    /// thread).
    fn open(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.cache(py).map(|_| ())
    }

    /// Whether the cache has been opened (by a first use).
    #[getter]
    fn is_open(&self) -> bool {
        self.shared.cache.get().is_some()
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup(py, key)? {
            Some(v) => Ok(v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// `(True, value)` if this process's memory holds `key`, else `(False, None)`: no I/O,
    /// for an async caller on its event loop.
    fn get_from_memory<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let part = self.key(key)?;
        let scoped = self.scoped(py)?;
        match scoped.get_from_memory(&part).map_err(|e| cache_error(&e))? {
            Some(v) => Ok((true, self.deliver(py, &v)?)),
            None => Ok((false, py.None().into_bound(py))),
        }
    }

    /// `cache[key]`: the value, or `KeyError`.
    fn getitem<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lookup(py, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    #[pyo3(signature = (key, value, ttl=None, at=None, idle=None, tags=None, memory_only=false))]
    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<Bound<'_, PyAny>>,
        at: Option<Bound<'_, PyAny>>,
        idle: Option<Bound<'_, PyAny>>,
        tags: Option<Vec<String>>,
        memory_only: bool,
    ) -> PyResult<()> {
        let part = self.key(key)?;
        let given = Given {
            ttl,
            at,
            idle,
            tags,
            memory_only,
        };
        let options = given.options()?;
        let v = self.shared.value(py, value, memory_only)?;
        let scoped = self.scoped(py)?;
        py.detach(|| scoped.insert_with(&part, v, &options))
            .map_err(|e| cache_error(&e))
    }

    /// Removes `key`; returns whether there was an entry.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let part = self.key(key)?;
        let scoped = self.scoped(py)?;
        py.detach(|| scoped.remove(&part))
            .map_err(|e| cache_error(&e))
    }

    fn contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let part = self.key(key)?;
        let scoped = self.scoped(py)?;
        py.detach(|| scoped.contains_key(&part))
            .map_err(|e| cache_error(&e))
    }

    #[pyo3(signature = (key, compute, ttl=None, at=None, idle=None, tags=None, memory_only=false))]
    #[allow(clippy::too_many_arguments)]
    fn get_or_set<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        compute: Py<PyAny>,
        ttl: Option<Bound<'py, PyAny>>,
        at: Option<Bound<'py, PyAny>>,
        idle: Option<Bound<'py, PyAny>>,
        tags: Option<Vec<String>>,
        memory_only: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let part = self.key(key)?;
        let options = Given {
            ttl,
            at,
            idle,
            tags,
            memory_only,
        }
        .options()?;
        let scoped = self.scoped(py)?;
        let shared = &self.shared;
        // A stored value this build cannot load is a miss: dropped, then computed (once).
        let mut retried = false;
        loop {
            let got = match scoped.get_from_memory(&part).map_err(|e| cache_error(&e))? {
                Some(v) => Ok(v),
                None => py.detach(|| {
                    scoped.get_or_compute(&part, &options, || {
                        Python::attach(|py| {
                            let obj = compute.bind(py).call0()?;
                            shared.value(py, &obj, memory_only)
                        })
                        .map_err(Fail::Py)
                    })
                }),
            };
            let v = got.map_err(|f| f.into_py_err())?;
            match self.deliver(py, &v).map_err(|e| Failure::of_decode(py, e)) {
                Ok(obj) => return Ok(obj),
                Err(Failure::Undecodable(e)) if !retried => {
                    retried = true;
                    warn(
                        py,
                        &format!(
                            "tiered: a stored value could not be loaded ({e}); computing it again"
                        ),
                    )?;
                    py.detach(|| scoped.remove(&part))
                        .map_err(|e| cache_error(&e))?;
                }
                Err(f) => return Err(f.into_err()),
            }
        }
    }

    fn invalidate_tag(&self, py: Python<'_>, tag: &str) -> PyResult<()> {
        let cache = self.shared.cache(py)?;
        py.detach(|| {
            cache.invalidate_tag(tag)?;
            // The invalidated memory-only objects (a session's plots) go now, not when evicted.
            cache.free_invalidated();
            Ok(())
        })
        .map_err(|e: tiered::Error| cache_error(&e))
    }

    /// Drops every entry of this cache (or namespace).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let scoped = self.scoped(py)?;
        let cache = self.shared.cache(py)?;
        py.detach(|| {
            scoped.clear()?;
            cache.free_invalidated();
            Ok(())
        })
        .map_err(|e: tiered::Error| cache_error(&e))
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let cache = self.shared.cache(py)?;
        py.detach(|| cache.flush()).map_err(|e| cache_error(&e))
    }

    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        let cache = self.shared.cache(py)?;
        py.detach(|| cache.compact()).map_err(|e| cache_error(&e))
    }

    /// The cache's figures since it was opened, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cache = self.shared.cache(py)?;
        let s = py.detach(|| cache.stats());
        stats_dict(py, &s)
    }

    /// Each process's figures (this one's, and every other process's that has the folder
    /// open), as dicts: `pid`, `holds_folder`, `this_process` and the counters of `stats`.
    fn stats_by_process<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let cache = self.shared.cache(py)?;
        let all = py
            .detach(|| cache.stats_by_process())
            .map_err(|e| cache_error(&e))?;
        all.iter()
            .map(|p| {
                let d = stats_dict(py, &p.stats)?;
                d.set_item("pid", p.pid)?;
                d.set_item("holds_folder", p.holds_folder)?;
                d.set_item("this_process", p.this_process)?;
                Ok(d)
            })
            .collect()
    }

    /// The cache's health in one line: `"healthy"` or what is wrong.
    fn health(&self, py: Python<'_>) -> PyResult<String> {
        let cache = match self.shared.cache(py) {
            Ok(cache) => cache,
            // What keeps the cache from opening is its health.
            Err(e) => return Ok(format!("cannot open: {e}")),
        };
        let h = py.detach(|| cache.health());
        Ok(if h.is_healthy() {
            "healthy".to_string()
        } else {
            format!("{h:?}")
        })
    }

    /// The process that holds the folder, when it is another one.
    fn owner_pid(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        Ok(self.shared.cache(py)?.owner_pid())
    }

    fn __repr__(&self) -> String {
        match (&self.shared.settings.path, &self.namespace) {
            (Some(p), None) => format!("Store({p:?})"),
            (Some(p), Some(n)) => format!("Store({p:?}, namespace={n:?})"),
            (None, None) => "Store(in memory)".into(),
            (None, Some(n)) => format!("Store(in memory, namespace={n:?})"),
        }
    }
}

impl Store {
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let part = self.key(key)?;
        let scoped = self.scoped(py)?;
        let found = scoped
            .get_detached(py, &part)
            .map_err(|e| cache_error(&e))?;
        let Some(v) = found else {
            return Ok(None);
        };
        match self.deliver(py, &v).map_err(|e| Failure::of_decode(py, e)) {
            Ok(obj) => Ok(Some(obj)),
            Err(Failure::Undecodable(e)) => {
                // Stored by another build or script (a class gone, a module of another
                // session): a miss, dropped.
                warn(
                    py,
                    &format!("tiered: a stored value could not be loaded ({e}); dropped, a miss"),
                )?;
                py.detach(|| scoped.remove(&part))
                    .map_err(|e| cache_error(&e))?;
                Ok(None)
            }
            Err(f) => Err(f.into_err()),
        }
    }
}

/// A `Stats` as the dict `Cache.stats()` returns.
fn stats_dict<'py>(py: Python<'py>, s: &tiered::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hits", s.memory_hits + s.disk_hits)?;
    d.set_item("memory_hits", s.memory_hits)?;
    d.set_item("disk_hits", s.disk_hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("hit_ratio", s.hit_ratio().unwrap_or(0.0))?;
    d.set_item("inserts", s.inserts)?;
    d.set_item("evictions", s.evictions)?;
    d.set_item("expirations", s.expirations)?;
    d.set_item("invalidations", s.invalidations)?;
    d.set_item("damaged_records", s.damaged_records)?;
    d.set_item("memory_bytes", s.memory_bytes)?;
    d.set_item("disk_bytes", s.disk_bytes)?;
    d.set_item("disk_file_bytes", s.disk_file_bytes)?;
    d.set_item("entries", s.entries)?;
    d.set_item("disk_failures", s.disk_failures)?;
    d.set_item("warm_loaded", s.warm_loaded)?;
    d.set_item("refreshes", s.refreshes)?;
    d.set_item("refresh_failures", s.refresh_failures)?;
    Ok(d)
}
