//! `#[tiered::memoize]` on `async fn` (feature `tokio`): the same keys and caching rules as a
//! blocking function, with the body awaited on the calling task.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::LazyLock;

use serde::Serialize;
use tiered::Cache;

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

static FETCH: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE, ttl = "1h")]
async fn fetch(id: u32, _client: &str) -> String {
    FETCH.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    format!("user {id}")
}

#[test]
fn an_async_fn_computes_once_per_key_and_its_future_is_send() {
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(fetch(1, "a").await, "user 1");
        assert_eq!(fetch(1, "b").await, "user 1");
        assert_eq!(fetch(2, "a").await, "user 2");
    });
    // Spawned: the future must be `Send`.
    let spawned = rt.block_on(rt.spawn(fetch(2, "c"))).unwrap();
    assert_eq!(spawned, "user 2");
    assert_eq!(FETCH.load(SeqCst), 2);
    let s = fetch::stats();
    assert_eq!((s.hits, s.misses), (2, 2));
    assert!(fetch::remove(&1).unwrap());
    rt.block_on(fetch(1, "a"));
    assert_eq!(FETCH.load(SeqCst), 3);
}

static PARSE: AtomicU32 = AtomicU32::new(0);

async fn read_text(text: String) -> String {
    tokio::task::yield_now().await;
    text
}

#[tiered::memoize(cache = CACHE)]
async fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    PARSE.fetch_add(1, SeqCst);
    let n: u32 = read_text(text).await.trim().parse()?;
    Ok(n * 10)
}

static FIND: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE, cache_none = false)]
async fn find(id: u32) -> Option<u32> {
    FIND.fetch_add(1, SeqCst);
    (id > 0).then_some(id)
}

#[test]
fn async_results_cache_ok_and_options_cache_some() {
    runtime().block_on(async {
        assert!(parse("x".into()).await.is_err());
        assert!(parse("x".into()).await.is_err());
        assert_eq!(parse("4".into()).await, Ok(40));
        assert_eq!(parse("4".into()).await, Ok(40));
        assert_eq!(PARSE.load(SeqCst), 3, "Err is never cached");

        assert_eq!(find(0).await, None);
        assert_eq!(find(0).await, None);
        assert_eq!(find(5).await, Some(5));
        assert_eq!(find(5).await, Some(5));
        assert_eq!(FIND.load(SeqCst), 3, "None is never cached");
    });
}

#[derive(Serialize)]
struct Client {
    region: String,
}

static REGION: AtomicU32 = AtomicU32::new(0);

impl Client {
    #[tiered::memoize(cache = CACHE)]
    async fn lookup(&self, id: u32) -> String {
        REGION.fetch_add(1, SeqCst);
        tokio::task::yield_now().await;
        format!("{}/{id}", self.region)
    }
}

#[test]
fn async_methods_key_on_self() {
    let (eu, us) = (
        Client {
            region: "eu".into(),
        },
        Client {
            region: "us".into(),
        },
    );
    runtime().block_on(async {
        assert_eq!(eu.lookup(1).await, "eu/1");
        assert_eq!(us.lookup(1).await, "us/1");
        assert_eq!(eu.lookup(1).await, "eu/1");
    });
    assert_eq!(REGION.load(SeqCst), 2);
    assert_eq!(Client::lookup_memo().stats(&CACHE).hits, 1);
}
