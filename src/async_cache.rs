//! [`AsyncCache`]: the async front (feature `tokio`). The same engine as [`Cache`]; the disk
//! work of each call runs on tokio's blocking pool, so that the executor never waits on it.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Cache;
use crate::engine::runner::{Runner, Tokio};
use crate::engine::{Inner, Scope};
use crate::error::{Error, Result};
use crate::key::encode_key;
use crate::options::Options;

/// The async face of a [`Cache`] (or of one of its namespaces): the same entries, the same
/// single flight, with methods that never block the executor.
///
/// Memory hits are answered on the calling task; disk reads, writes (encoding included),
/// commits and back-pressure run on tokio's blocking pool
/// ([`spawn_blocking`](https://docs.rs/tokio/latest/tokio/task/fn.spawn_blocking.html)).
/// Concurrent callers of one missing key, tasks and threads mixed, run the computation once.
/// Methods called outside a tokio runtime do their disk work on the calling thread.
///
/// Cheap to clone. Dropping the last handle of a cache flushes and closes it, which waits for
/// the disk: drop it outside the executor (or keep it for the life of the program).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// use tiered::{Cache, Options};
///
/// let cache = Cache::open(dir.path())?.to_async();
/// let report = cache
///     .get_or_insert_with(&("report", 7), &Options::new(), || async {
///         "slow query result".to_string() // an await on a database in real life
///     })
///     .await?;
/// assert_eq!(*report, "slow query result");
/// assert!(cache.get::<_, String>(&("report", 7)).await?.is_some());
/// # Ok::<(), tiered::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AsyncCache {
    cache: Cache,
    scope: Scope,
}

impl Cache {
    /// The async face of this cache (feature `tokio`): see [`AsyncCache`].
    pub fn to_async(&self) -> AsyncCache {
        AsyncCache {
            cache: self.clone(),
            scope: self.inner.root.clone(),
        }
    }
}

impl crate::Namespace {
    /// The async face of this namespace (feature `tokio`): see [`AsyncCache`].
    pub fn to_async(&self) -> AsyncCache {
        AsyncCache {
            cache: self.cache().clone(),
            scope: self.scope().clone(),
        }
    }
}

impl AsyncCache {
    /// The blocking handle of the same cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The async face of the namespace `name` of this cache (as [`Cache::namespace`]).
    pub fn namespace(&self, name: impl Into<String>) -> AsyncCache {
        self.cache.namespace(name).to_async()
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.cache.inner
    }

    /// Runs blocking engine work off the executor.
    async fn off<T, W>(&self, work: W) -> Result<T>
    where
        T: Send + 'static,
        W: FnOnce(&Inner, &Scope) -> Result<T> + Send + 'static,
    {
        let (inner, scope) = (self.inner().clone(), self.scope.clone());
        Tokio::blocking(move || work(&inner, &scope)).await?
    }

    /// See [`Cache::get`].
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn get<K, V>(&self, key: &K) -> Result<Option<Arc<V>>>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&self.scope.name, key)?;
        let found = self.inner().find::<Tokio, V>(&self.scope, &ek).await;
        if found.is_none() {
            self.inner().count_miss(&self.scope);
        }
        Ok(found)
    }

    /// See [`Cache::insert`].
    ///
    /// # Errors
    /// As [`Cache::insert`].
    pub async fn insert<K, V>(&self, key: &K, value: V) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.insert_with(key, value, &Options::new()).await
    }

    /// See [`Cache::insert_with`].
    ///
    /// # Errors
    /// As [`Cache::insert_with`].
    pub async fn insert_with<K, V>(&self, key: &K, value: V, options: &Options) -> Result<()>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let ek = encode_key(&self.scope.name, key)?;
        let options = options.clone();
        self.off(move |inner, scope| inner.insert_encoded(scope, ek, value, &options))
            .await
    }

    /// See [`Cache::contains_key`].
    ///
    /// # Errors
    /// As [`Cache::contains_key`].
    pub async fn contains_key<K>(&self, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        let ek = encode_key(&self.scope.name, key)?;
        self.off(move |inner, _| Ok(inner.contains(&ek))).await
    }

    /// See [`Cache::remove`].
    ///
    /// # Errors
    /// As [`Cache::remove`].
    pub async fn remove<K>(&self, key: &K) -> Result<bool>
    where
        K: Serialize + ?Sized,
    {
        let ek = encode_key(&self.scope.name, key)?;
        self.off(move |inner, _| inner.remove_encoded(ek)).await
    }

    /// See [`Cache::get_or_insert_with`]; `f` gives a future, which runs on the calling task.
    /// If the task is cancelled while it runs, a waiting caller runs its own.
    ///
    /// # Errors
    /// As [`Cache::get_or_insert_with`].
    pub async fn get_or_insert_with<K, V, F, Fut>(
        &self,
        key: &K,
        options: &Options,
        f: F,
    ) -> Result<Arc<V>>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.try_get_or_insert_with(key, options, || async { Ok::<V, Error>(f().await) })
            .await
    }

    /// See [`Cache::try_get_or_insert_with`]; `f` gives a future, which runs on the calling
    /// task. An `Err` is returned to the caller that ran it and never cached.
    ///
    /// # Errors
    /// `f`'s error, or a cache error converted with `E: From<tiered::Error>`.
    pub async fn try_get_or_insert_with<K, V, E, F, Fut>(
        &self,
        key: &K,
        options: &Options,
        f: F,
    ) -> std::result::Result<Arc<V>, E>
    where
        K: Serialize + ?Sized,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
    {
        let ek = encode_key(&self.scope.name, key)?;
        let inner = self.inner();
        if let Some(v) = inner.find::<Tokio, V>(&self.scope, &ek).await {
            return Ok(v);
        }
        inner
            .compute_missing::<Tokio, _, _, _, _>(&self.scope, ek, options, f)
            .await
    }

    /// See [`Cache::invalidate_tag`].
    ///
    /// # Errors
    /// As [`Cache::invalidate_tag`].
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        let tag = tag.to_string();
        self.off(move |inner, _| inner.invalidate_tag(&tag)).await
    }

    /// Clears this handle's scope: the whole cache ([`Cache::clear`]), or the namespace
    /// ([`Namespace::clear`](crate::Namespace::clear)) for a handle made by
    /// [`namespace`](AsyncCache::namespace) or `Namespace::to_async`.
    ///
    /// # Errors
    /// As [`Cache::clear`].
    pub async fn clear(&self) -> Result<()> {
        self.off(|inner, scope| match scope.name.name() {
            None => inner.clear(),
            Some(_) => inner.clear_scope(scope),
        })
        .await
    }

    /// See [`Cache::flush`].
    ///
    /// # Errors
    /// As [`Cache::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.off(|inner, _| inner.flush()).await
    }
}
