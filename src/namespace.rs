//! [`Namespace`]: a scope of keys inside a cache.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Cache;
use crate::engine::Scope;
use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::options::Options;

/// A scope of keys: equal keys in two namespaces name two entries, and
/// [`clear`](Namespace::clear) drops only this namespace's entries. Made by
/// [`Cache::namespace`]; cheap to make and to clone.
///
/// Every method behaves as the [`Cache`] method of the same name.
#[derive(Clone, Debug)]
pub struct Namespace {
    cache: Cache,
    scope: Scope,
}

impl Namespace {
    pub(crate) fn new(cache: Cache, name: &str) -> Self {
        Namespace {
            cache,
            scope: Scope::new(name),
        }
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        // A `Namespace` is always named; the root scope belongs to the `Cache` alone.
        self.scope.name.name().unwrap_or_default()
    }

    /// See [`Cache::get`].
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub fn get<K, V>(&self, key: &K) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.cache.inner.get(&self.scope, key)
    }

    /// See [`Cache::get_waiting`].
    ///
    /// # Errors
    /// As [`Cache::get_waiting`].
    pub fn get_waiting<K, V>(
        &self,
        key: &K,
        wait: impl FnOnce(&(dyn Fn() -> Option<Arc<V>> + Sync)) -> Option<Arc<V>>,
    ) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.cache.inner.get_waiting(&self.scope, key, wait)
    }

    /// See [`Cache::get_from_memory`].
    ///
    /// # Errors
    /// As [`Cache::get_from_memory`].
    pub fn get_from_memory<K, V>(&self, key: &K) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.cache.inner.get_from_memory(&self.scope, key)
    }

    /// See [`Cache::insert`].
    ///
    /// # Errors
    /// As [`Cache::insert`].
    pub fn insert<K, V>(&self, key: &K, value: V) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.cache
            .inner
            .insert(&self.scope, key, value, &Options::new())
    }

    /// See [`Cache::insert_with`].
    ///
    /// # Errors
    /// As [`Cache::insert`].
    pub fn insert_with<K, V>(&self, key: &K, value: V, options: &Options) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.cache.inner.insert(&self.scope, key, value, options)
    }

    /// See [`Cache::contains_key`].
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub fn contains_key<K>(&self, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        self.cache.inner.contains_key(&self.scope, key)
    }

    /// See [`Cache::remove`].
    ///
    /// # Errors
    /// As [`Cache::insert`].
    pub fn remove<K>(&self, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        self.cache.inner.remove(&self.scope, key)
    }

    /// See [`Cache::get_or_insert_with`].
    ///
    /// # Errors
    /// As [`Cache::get_or_insert_with`].
    pub fn get_or_insert_with<K, V, F>(&self, key: &K, options: &Options, f: F) -> Result<Arc<V>>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> V,
    {
        self.cache
            .inner
            .get_or_try_insert(&self.scope, key, options, || Ok::<V, Error>(f()))
    }

    /// See [`Cache::try_get_or_insert_with`].
    ///
    /// # Errors
    /// As [`Cache::try_get_or_insert_with`].
    pub fn try_get_or_insert_with<K, V, E, F>(
        &self,
        key: &K,
        options: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Result<V, E>,
    {
        self.cache
            .inner
            .get_or_try_insert(&self.scope, key, options, f)
    }

    /// See [`Cache::get_or_refresh_with`].
    ///
    /// # Errors
    /// As [`Cache::get_or_refresh_with`].
    pub fn get_or_refresh_with<K, V, F>(&self, key: &K, options: &Options, f: F) -> Result<Arc<V>>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> V + Send + 'static,
    {
        self.try_get_or_refresh_with(key, options, move || Ok::<V, Error>(f()))
    }

    /// See [`Cache::try_get_or_refresh_with`].
    ///
    /// # Errors
    /// As [`Cache::try_get_or_refresh_with`].
    pub fn try_get_or_refresh_with<K, V, E, F>(
        &self,
        key: &K,
        options: &Options,
        f: F,
    ) -> Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error> + std::fmt::Display + Send + 'static,
        F: FnOnce() -> Result<V, E> + Send + 'static,
    {
        let ek = crate::key::encode_key(&self.scope.name, key)?;
        self.cache
            .inner
            .get_or_try_refresh(&self.scope, ek, options, f)
    }

    /// Drops every entry of this namespace, in both tiers, persistently; other namespaces keep
    /// theirs. Costs the same whatever the number of entries.
    ///
    /// # Errors
    /// As [`Cache::invalidate_tag`].
    pub fn clear(&self) -> Result<()> {
        self.cache.inner.clear_scope(&self.scope)
    }

    /// See [`Cache::explain`].
    ///
    /// # Errors
    /// As [`Cache::explain`].
    pub fn explain<K, V>(&self, key: &K) -> Result<Explanation>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.cache.inner.explain::<K, V>(&self.scope, key)
    }

    /// See [`Cache::explain_shown`]: the key as `tiered ls` shows it, in this namespace.
    ///
    /// # Errors
    /// As [`Cache::explain_shown`].
    pub fn explain_shown(&self, key: &str) -> Result<Explanation> {
        self.cache.inner.explain_shown(Some(self.name()), key)
    }

    /// The cache this namespace belongs to.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}
