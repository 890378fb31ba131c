//! `tiered._tiered.Memoized`: a memoized Python function, called from Python directly.
//!
//! A call binds its arguments to the function's parameters (defaults applied; the ones
//! `tiered.memoize` marked as left out of the key skipped), builds the key in Rust, answers a
//! memory hit holding the GIL, and otherwise releases it for the core's read-through (disk,
//! other processes, one computation per key), taking it back only to run the function.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use tiered::Options;

use crate::key::{unhashable, Part};
use crate::opts;
use crate::store::{Shared, Store};
use crate::value::PyValue;

/// A parameter's kind, as `inspect.Parameter.kind` numbers them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    PositionalOnly,
    PositionalOrKeyword,
    VarPositional,
    KeywordOnly,
    VarKeyword,
}

impl Kind {
    fn from_inspect(n: u8) -> PyResult<Kind> {
        Ok(match n {
            0 => Kind::PositionalOnly,
            1 => Kind::PositionalOrKeyword,
            2 => Kind::VarPositional,
            3 => Kind::KeywordOnly,
            4 => Kind::VarKeyword,
            _ => return Err(PyTypeError::new_err(format!("unknown parameter kind {n}"))),
        })
    }
}

/// A parameter as `tiered._memoize.parameters` describes it: name, kind, whether it has a
/// default, the default, whether it is part of the key.
type ParamSpec = (Py<PyString>, u8, bool, Py<PyAny>, bool);

struct Param {
    name: Py<PyString>,
    kind: Kind,
    default: Option<Py<PyAny>>,
    /// Part of the key (not `_name`, not in `ignore=`).
    keyed: bool,
}

/// A call on its way from [`Memoized::lookup_memory`] to [`Memoized::through`].
#[pyclass(frozen, module = "tiered._tiered")]
pub struct Pending {
    key: Mutex<Option<tiered::MemoKey>>,
    options: Options,
    /// The call's arguments, to key it again if its stored value must be dropped.
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
}

/// How a call begins: see [`Memoized::start`].
enum Start<'py, 'c> {
    Uncached,
    Hit(Bound<'py, PyAny>),
    Miss {
        key: tiered::MemoKey,
        cache: &'c tiered::Cache,
        memo: tiered::Memoized,
    },
}

/// A memoized function.
#[pyclass(frozen, dict, module = "tiered._tiered")]
pub struct Memoized {
    shared: Arc<Shared>,
    /// The function's identity and, from its first use, its code version: fingerprinted then,
    /// when the module that defines it has run to its end (so that helpers and constants
    /// defined below it, and its class, exist).
    path: &'static str,
    version_of: Py<PyAny>,
    memo: PyOnceLock<tiered::Memoized>,
    func: Py<PyAny>,
    params: Vec<Param>,
    /// Options fixed at decoration; `at` is resolved at each store (its next occurrence).
    options: Options,
    at: Option<Py<PyAny>>,
    memory_only: bool,
    copy: bool,
    hash_funcs: Option<Py<PyDict>>,
    /// Called at each call: its result is part of the key (a session's id).
    scope: Option<Py<PyAny>>,
    disabled: bool,
    label: String,
    /// Whether the warning that the function runs without its cache was given.
    warned: std::sync::atomic::AtomicBool,
    /// Refresh ahead (`refresh=`): a hit goes through the core, which recomputes a due value
    /// in the background.
    refresh: bool,
}

/// Function identities live as long as the process (the core names namespaces by
/// `&'static str`); there is one per memoized function, however often its module is
/// executed again.
fn intern(path: String) -> &'static str {
    static PATHS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = PATHS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = set.get(path.as_str()) {
        return p;
    }
    let leaked: &'static str = Box::leak(path.into_boxed_str());
    set.insert(leaked);
    leaked
}

impl Memoized {
    /// The function's `tiered::Memoized`, its version computed at the first call.
    fn memo(&self, py: Python<'_>) -> PyResult<tiered::Memoized> {
        self.memo
            .get_or_try_init(py, || {
                let version: u64 = self.version_of.bind(py).call0()?.extract()?;
                Ok::<_, PyErr>(tiered::Memoized::new(self.path, version))
            })
            .copied()
    }

    /// The key parts of a call, or `None` if the arguments do not fit the signature (the
    /// function then runs, to raise its own `TypeError`).
    fn bind(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<Vec<Part>>> {
        let Some(mut parts) = self.bind_arguments(py, args, kwargs)? else {
            return Ok(None);
        };

        if let Some(scope) = &self.scope {
            let id = scope.bind(py).call0()?.str()?.to_string();
            parts.push(Part::Tagged("scope".into(), Box::new(Part::Str(id))));
        }
        Ok(Some(parts))
    }

    /// The tag of the scope this call runs in (a session's entries carry it, so that the end
    /// of the session drops them all at once).
    fn scope_tag(&self, py: Python<'_>) -> PyResult<Option<String>> {
        match &self.scope {
            None => Ok(None),
            Some(scope) => Ok(Some(format!(
                "tiered/scope/{}",
                scope.bind(py).call0()?.str()?.to_str()?
            ))),
        }
    }

    fn bind_arguments(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<Vec<Part>>> {
        let n = self.params.len();
        let mut values: Vec<Option<Bound<'_, PyAny>>> = vec![None; n];
        let mut extra_pos: Vec<Bound<'_, PyAny>> = Vec::new();
        let mut extra_kw: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = Vec::new();
        let mut slot = 0;
        for arg in args.iter() {
            while slot < n
                && !matches!(
                    self.params[slot].kind,
                    Kind::PositionalOnly | Kind::PositionalOrKeyword
                )
            {
                if self.params[slot].kind == Kind::VarPositional {
                    break;
                }
                slot += 1;
            }
            if slot < n
                && matches!(
                    self.params[slot].kind,
                    Kind::PositionalOnly | Kind::PositionalOrKeyword
                )
            {
                values[slot] = Some(arg);
                slot += 1;
            } else if self.params.iter().any(|p| p.kind == Kind::VarPositional) {
                extra_pos.push(arg);
            } else {
                return Ok(None);
            }
        }
        if let Some(kwargs) = kwargs {
            for (k, v) in kwargs.iter() {
                let name = k.cast::<PyString>()?.to_str()?;
                let found = self.params.iter().position(|p| {
                    matches!(p.kind, Kind::PositionalOrKeyword | Kind::KeywordOnly)
                        && p.name.bind(py).to_str().is_ok_and(|s| s == name)
                });
                match found {
                    Some(i) if values[i].is_some() => return Ok(None),
                    Some(i) => values[i] = Some(v),
                    None if self.params.iter().any(|p| p.kind == Kind::VarKeyword) => {
                        extra_kw.push((k, v))
                    }
                    None => return Ok(None),
                }
            }
        }
        let keyer = self
            .shared
            .keyer(py, self.hash_funcs.as_ref().map(|h| h.bind(py).clone()));
        let mut parts = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let part = match p.kind {
                Kind::VarPositional => {
                    if !p.keyed {
                        continue;
                    }
                    let items: PyResult<Vec<Part>> =
                        extra_pos.iter().map(|a| keyer.part(a)).collect();
                    items.map(Part::Tuple)
                }
                Kind::VarKeyword => {
                    if !p.keyed {
                        continue;
                    }
                    let mut entries = Vec::with_capacity(extra_kw.len());
                    let mut failed = None;
                    for (k, v) in &extra_kw {
                        match (keyer.part(k), keyer.part(v)) {
                            (Ok(k), Ok(v)) => entries.push((k, v)),
                            (Err(e), _) | (_, Err(e)) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    match failed {
                        Some(e) => Err(e),
                        None => Ok(Part::Dict(entries)),
                    }
                }
                _ => {
                    let value = match values[i].take() {
                        Some(v) => v,
                        None => match &p.default {
                            Some(d) => d.bind(py).clone(),
                            None => return Ok(None),
                        },
                    };
                    if !p.keyed {
                        continue;
                    }
                    keyer.part(&value)
                }
            };
            match part {
                Ok(part) => parts.push(part),
                Err(e) => {
                    let name = p.name.bind(py).to_string();
                    return Err(unhashable(&self.label, &name, &e, py));
                }
            }
        }
        Ok(Some(parts))
    }

    fn deliver<'py>(&self, py: Python<'py>, v: &PyValue) -> PyResult<Bound<'py, PyAny>> {
        let decode = self.shared.decode.bind(py);
        if self.copy {
            if let Some(fresh) = v.fresh(py, decode)? {
                return Ok(fresh);
            }
            let obj = v.object(py, decode)?;
            return py.import("copy")?.getattr("deepcopy")?.call1((obj,));
        }
        v.object(py, decode)
    }

    fn options(&self, py: Python<'_>) -> PyResult<Options> {
        let mut o = self.options.clone();
        if let Some(at) = &self.at {
            o = o.expires_at(opts::instant(at.bind(py))?);
        }
        if let Some(tag) = self.scope_tag(py)? {
            o = o.tags([tag]);
        }
        Ok(o)
    }

    /// How a call begins, for blocking and async callers alike: not through the cache (caching
    /// disabled, arguments that do not fit the signature, a cache that cannot be opened: the
    /// function just runs, the last said once), answered from this process's memory, or on its
    /// way to the rest (the disk, other processes, one computation per key).
    fn start<'py, 's>(
        &'s self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> Result<Start<'py, 's>, Failure> {
        if self.disabled {
            return Ok(Start::Uncached);
        }
        let Some(key) = self.key(py, args, kwargs)? else {
            return Ok(Start::Uncached);
        };
        let cache = match self.shared.cache(py) {
            Ok(cache) => cache,
            Err(e) => {
                // A memoized function works without its cache (a damaged file, a folder that
                // is refused): it computes, and says so once.
                if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    warn(
                        py,
                        &format!("tiered: `{}` runs without its cache: {e}", self.label),
                    )?;
                }
                return Ok(Start::Uncached);
            }
        };
        let memo = self.memo(py)?;
        // With refresh ahead, a hit goes through the core, which checks the value's age.
        if self.refresh {
            return Ok(Start::Miss { key, cache, memo });
        }
        if let Some(v) = memo.get_from_memory::<PyValue>(cache, &key) {
            return self
                .deliver(py, &v)
                .map(Start::Hit)
                .map_err(|e| Failure::of_decode(py, e));
        }
        Ok(Start::Miss { key, cache, memo })
    }

    /// [`start`](Memoized::start), and once more after dropping a stored value that cannot be
    /// loaded (a miss).
    fn start_or_forget<'py, 's>(
        &'s self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Start<'py, 's>> {
        match self.start(py, args, kwargs) {
            Err(Failure::Undecodable(e)) => {
                self.forget_undecodable(py, args, kwargs, &e)?;
                self.start(py, args, kwargs).map_err(Failure::into_err)
            }
            other => other.map_err(Failure::into_err),
        }
    }

    /// A call through the cache; a stored value that cannot be loaded is told apart. `slf`
    /// is this function, which a background refresh holds while it runs.
    fn call_cached<'py>(
        &self,
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> Result<Bound<'py, PyAny>, Failure> {
        let py = slf.py();
        let (key, cache, memo) = match self.start(py, args, kwargs)? {
            Start::Uncached => return Ok(self.func.bind(py).call(args, kwargs)?),
            Start::Hit(obj) => return Ok(obj),
            Start::Miss { key, cache, memo } => (key, cache, memo),
        };
        let options = self.options(py)?;
        let (a, k) = (args.clone().unbind(), kwargs.map(|k| k.clone().unbind()));
        let got = if self.refresh {
            // The computation may run later, on a thread of the core's: it holds what it needs.
            let this = slf.clone().unbind();
            py.detach(|| {
                memo.call_result_refresh(cache, &options, key, move || {
                    Python::attach(|py| this.get().compute(py, &a, k.as_ref()))
                })
            })?
        } else {
            py.detach(|| {
                memo.call_result(cache, &options, key, || {
                    Python::attach(|py| self.compute(py, &a, k.as_ref()))
                })
            })?
        };
        self.deliver(py, &got)
            .map_err(|e| Failure::of_decode(py, e))
    }

    /// Drops the entry of a call whose stored value could not be loaded, with a warning.
    fn forget_undecodable(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        e: &PyErr,
    ) -> PyResult<()> {
        warn(
            py,
            &format!(
                "tiered: a stored result of `{}` could not be loaded ({e}); computing it again",
                self.label
            ),
        )?;
        if let Some(key) = self.key(py, args, kwargs)? {
            let (cache, memo) = (self.shared.cache(py)?, self.memo(py)?);
            py.detach(|| memo.remove(cache, key))
                .map_err(|e| crate::errors::cache_error(&e))?;
        }
        Ok(())
    }

    /// Runs the function and makes the value to store.
    fn compute(
        &self,
        py: Python<'_>,
        args: &Py<PyTuple>,
        kwargs: Option<&Py<PyDict>>,
    ) -> PyResult<PyValue> {
        let obj = self
            .func
            .bind(py)
            .call(args.bind(py), kwargs.map(|k| k.bind(py)))?;
        self.shared.value(py, &obj, self.memory_only)
    }

    fn key(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<tiered::MemoKey>> {
        self.bind(py, args, kwargs)?
            .map(|parts| self.memo(py).map(|m| m.key(&parts)))
            .transpose()
    }
}

#[pymethods]
impl Memoized {
    #[new]
    #[pyo3(signature = (store, func, path, version, params, ttl=None, at=None, idle=None, tags=None, memory_only=false, copy=false, hash_funcs=None, scope=None, disabled=false, label=String::new(), refresh=None, refresh_early=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        store: &Bound<'_, Store>,
        func: Py<PyAny>,
        path: String,
        version: Py<PyAny>,
        params: Vec<ParamSpec>,
        ttl: Option<Bound<'_, PyAny>>,
        at: Option<Py<PyAny>>,
        idle: Option<Bound<'_, PyAny>>,
        tags: Option<Vec<String>>,
        memory_only: bool,
        copy: bool,
        hash_funcs: Option<Py<PyDict>>,
        scope: Option<Py<PyAny>>,
        disabled: bool,
        label: String,
        refresh: Option<Bound<'_, PyAny>>,
        refresh_early: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let given = opts::Given {
            ttl,
            at: None,
            idle,
            tags,
            memory_only,
        };
        let mut options = given.options()?;
        let refresh = refresh.filter(|r| !r.is_none());
        let refresh_early = refresh_early.filter(|r| !r.is_none());
        if let Some(after) = &refresh {
            let after = opts::duration("refresh", after)?;
            if after.is_zero() {
                return Err(PyValueError::new_err(
                    "refresh=0 would recompute at every hit: give the age after which a value \
                     is due, such as \"5m\"",
                ));
            }
            options = options.refresh_after(after);
        }
        match (&refresh, &refresh_early) {
            (Some(_), Some(window)) => {
                options = options.refresh_early(opts::duration("refresh_early", window)?);
            }
            (None, Some(_)) => {
                return Err(PyValueError::new_err(
                    "refresh_early= goes with refresh=: it starts the refresh of a value before \
                     its refresh age",
                ))
            }
            _ => {}
        }
        if let Some(at) = &at {
            // Checked now, so that a typo fails at decoration, not at the first miss.
            opts::instant(at.bind(py))?;
        }
        let params = params
            .into_iter()
            .map(|(name, kind, has_default, default, keyed)| {
                Ok(Param {
                    name,
                    kind: Kind::from_inspect(kind)?,
                    default: has_default.then_some(default),
                    keyed,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Memoized {
            shared: store.get().shared.clone(),
            path: intern(path),
            version_of: version,
            memo: PyOnceLock::new(),
            func,
            params,
            options,
            at,
            memory_only,
            copy,
            hash_funcs,
            scope,
            disabled,
            label,
            warned: std::sync::atomic::AtomicBool::new(false),
            refresh: refresh.is_some(),
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (this, py) = (slf.get(), slf.py());
        match this.call_cached(slf, args, kwargs) {
            Err(Failure::Undecodable(e)) => {
                // Stored by another build or script (a class that no longer exists, a module
                // of another session): a miss. Dropped, then computed once more.
                this.forget_undecodable(py, args, kwargs, &e)?;
                this.call_cached(slf, args, kwargs)
                    .map_err(Failure::into_err)
            }
            other => other.map_err(Failure::into_err),
        }
    }

    /// For an async caller, on the event loop's thread: the call's value if this process's
    /// memory holds it (`(True, value)`), else `(False, pending)` where `pending` is what
    /// [`through`](Memoized::through) needs, or `(False, None)` when the call cannot be cached
    /// (caching disabled, arguments that do not fit the signature): then just run it.
    /// The key, options and scope are taken here, on the caller's thread, where a framework's
    /// session is known.
    #[pyo3(signature = (args, kwargs=None))]
    fn lookup_memory<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let none = py.None().into_bound(py);
        let key = match self.start_or_forget(py, args, kwargs)? {
            Start::Uncached => return Ok((false, none)),
            Start::Hit(obj) => return Ok((true, obj)),
            Start::Miss { key, .. } => key,
        };
        let pending = Pending {
            key: Mutex::new(Some(key)),
            options: self.options(py)?,
            args: args.clone().unbind(),
            kwargs: kwargs.map(|k| k.clone().unbind()),
        };
        Ok((false, Bound::new(py, pending)?.into_any()))
    }

    /// The rest of a call that [`lookup_memory`](Memoized::lookup_memory) did not answer:
    /// the disk, other processes, and `compute()` (a callable returning the value) at most
    /// once per key. Blocks: an async caller runs it on a worker thread.
    fn through<'py>(
        &self,
        py: Python<'py>,
        pending: &Bound<'py, Pending>,
        compute: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = pending
            .get()
            .key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| PyTypeError::new_err("this pending call was already run"))?;
        let p = pending.get();
        let (args, kwargs) = (p.args.bind(py), p.kwargs.as_ref().map(|k| k.bind(py)));
        let (cache, memo) = (self.shared.cache(py)?, self.memo(py)?);
        let run = |key| {
            py.detach(|| {
                memo.call_result(cache, &p.options, key, || {
                    Python::attach(|py| {
                        let obj = compute.bind(py).call0()?;
                        self.shared.value(py, &obj, self.memory_only)
                    })
                })
            })
        };
        let got = run(key)?;
        match self
            .deliver(py, &got)
            .map_err(|e| Failure::of_decode(py, e))
        {
            Err(Failure::Undecodable(e)) => {
                // As for a blocking call: a miss, dropped, then computed once more.
                self.forget_undecodable(py, args, kwargs, &e)?;
                match self.key(py, args, kwargs)? {
                    Some(key) => self.deliver(py, &run(key)?),
                    None => compute.bind(py).call0(),
                }
            }
            other => other.map_err(Failure::into_err),
        }
    }

    /// Binds `obj` as the first argument (a method).
    fn __get__<'py>(
        slf: Bound<'py, Self>,
        obj: Option<Bound<'py, PyAny>>,
        _owner: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match obj {
            None => Ok(slf.into_any()),
            Some(obj) if obj.is_none() => Ok(slf.into_any()),
            Some(obj) => {
                let py = slf.py();
                py.import("types")?.getattr("MethodType")?.call1((slf, obj))
            }
        }
    }

    /// Drops every entry of this function, or with arguments the entry of that one call.
    #[pyo3(signature = (*args, **kwargs))]
    fn clear(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let cache = self.shared.cache(py)?;
        if args.is_empty() && kwargs.is_none_or(|k| k.is_empty()) {
            let memo = self.memo(py)?;
            py.detach(|| {
                memo.clear(cache)?;
                cache.free_invalidated();
                Ok(())
            })
            .map_err(|e| crate::errors::cache_error(&e))?;
            return Ok(true);
        }
        let Some(key) = self.key(py, args, kwargs)? else {
            return Err(PyTypeError::new_err(format!(
                "these arguments do not fit the signature of `{}`",
                self.label
            )));
        };
        let memo = self.memo(py)?;
        py.detach(|| memo.remove(cache, key))
            .map_err(|e| crate::errors::cache_error(&e))
    }

    /// Runs the call again and stores its value, whatever the cache held.
    #[pyo3(signature = (*args, **kwargs))]
    fn refresh<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (this, py) = (slf.get(), slf.py());
        if let Some(key) = this.key(py, args, kwargs)? {
            let cache = this.shared.cache(py)?;
            let memo = this.memo(py)?;
            py.detach(|| memo.remove(cache, key))
                .map_err(|e| crate::errors::cache_error(&e))?;
        }
        Self::__call__(slf, args, kwargs)
    }

    /// Why this call would run the function, or that it would not (`"a live value: a read
    /// hits"`); changes nothing.
    #[pyo3(signature = (*args, **kwargs))]
    fn explain(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        if self.disabled {
            return Ok("never cached: TIERED_DISABLE is set".into());
        }
        let Some(key) = self.key(py, args, kwargs)? else {
            return Err(PyTypeError::new_err(format!(
                "these arguments do not fit the signature of `{}`",
                self.label
            )));
        };
        let cache = self.shared.cache(py)?;
        let memo = self.memo(py)?;
        let why = py
            .detach(|| memo.explain::<PyValue>(cache, &key))
            .map_err(|e| crate::errors::cache_error(&e))?;
        Ok(why.to_string())
    }

    /// This function's hits and misses in its cache since the cache was opened.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cache = self.shared.cache(py)?;
        let s = self.memo(py)?.stats(cache);
        let d = PyDict::new(py);
        d.set_item("hits", s.hits)?;
        d.set_item("misses", s.misses)?;
        Ok(d)
    }

    /// The function's identity: the namespace of its entries.
    #[getter]
    fn identity(&self) -> &'static str {
        self.path
    }

    /// The function's code version (a fingerprint of its bytecode and what it calls).
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.memo(py)?.version())
    }
}

/// Why a cached call gave no value.
pub enum Failure {
    /// An exception: the function's own, the cache's, or a refusal to load (unsafe).
    Py(PyErr),
    /// The stored value could not be loaded: it is a miss.
    Undecodable(PyErr),
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Py(e)
    }
}

impl Failure {
    /// A failure to load a stored value: a refusal (`UnsafeValueError`) stays an error; any
    /// other is a value this build cannot read, a miss.
    pub fn of_decode(py: Python<'_>, e: PyErr) -> Failure {
        static UNSAFE: PyOnceLock<Py<pyo3::types::PyType>> = PyOnceLock::new();
        match UNSAFE.import(py, "tiered._values", "UnsafeValueError") {
            Ok(unsafe_error) if e.is_instance(py, unsafe_error) => Failure::Py(e),
            _ => Failure::Undecodable(e),
        }
    }

    pub fn into_err(self) -> PyErr {
        match self {
            Failure::Py(e) | Failure::Undecodable(e) => e,
        }
    }
}

/// A Python `warnings.warn`.
pub fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    py.import("warnings")?.call_method1(
        "warn",
        (
            message,
            py.get_type::<pyo3::exceptions::PyRuntimeWarning>(),
            2,
        ),
    )?;
    Ok(())
}
