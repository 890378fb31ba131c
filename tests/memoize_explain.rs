//! The `explain` that `#[tiered::memoize]` generates: why a call of the function would not be
//! answered from its cache, one test per reason, each on functions memoized by the macro.
//! Every test has a cache of its own, so that no test's clock, tag or clear reaches another.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tiered::{Cache, Explanation, Invalidation, ManualClock};

static NEVER: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[tiered::memoize(cache = NEVER)]
fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn a_call_never_made_was_never_written() {
    assert_eq!(square::explain(&3).unwrap(), Explanation::NeverWritten);
    assert_eq!(square(4), 16);
    assert_eq!(
        square::explain(&3).unwrap(),
        Explanation::NeverWritten,
        "another call's entry says nothing of this one"
    );
}

static HITS: LazyLock<Cache> = LazyLock::new(Cache::in_memory);
static CUBE_RUNS: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = HITS)]
fn cube(x: u64, _note: &str) -> u64 {
    CUBE_RUNS.fetch_add(1, SeqCst);
    x * x * x
}

#[test]
fn a_cached_call_is_a_hit_and_explaining_it_counts_nothing() {
    assert_eq!(cube(2, "a"), 8);
    assert_eq!(cube::explain(&2).unwrap(), Explanation::Hit);
    let s = cube::stats();
    assert_eq!((s.hits, s.misses), (0, 1), "explain is not a call");
    assert_eq!(cube(2, "b"), 8);
    assert_eq!(CUBE_RUNS.load(SeqCst), 1);
}

static START: LazyLock<SystemTime> =
    LazyLock::new(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
static CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(|| Arc::new(ManualClock::new(*START)));
static TIMED: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder().clock(CLOCK.clone()).open().unwrap());

#[tiered::memoize(cache = TIMED, ttl = "1m")]
fn quote(symbol: String) -> f64 {
    symbol.len() as f64
}

#[test]
fn an_expired_call_says_when_it_expired() {
    assert_eq!(quote("ACME".into()), 4.0);
    CLOCK.advance(Duration::from_secs(30));
    assert_eq!(quote::explain(&"ACME".into()).unwrap(), Explanation::Hit);
    CLOCK.advance(Duration::from_secs(31));
    assert_eq!(
        quote::explain(&"ACME".into()).unwrap(),
        Explanation::Expired {
            at: *START + Duration::from_secs(60)
        }
    );
}

static TAGGED: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[tiered::memoize(cache = TAGGED, tags = ["prices", format!("day-{day}")])]
fn prices(day: u32) -> Vec<f64> {
    vec![f64::from(day)]
}

#[test]
fn a_call_invalidated_by_a_tag_names_the_tag() {
    prices(1);
    prices(2);
    TAGGED.invalidate_tag("day-2").unwrap();
    assert_eq!(prices::explain(&1).unwrap(), Explanation::Hit);
    assert_eq!(
        prices::explain(&2).unwrap(),
        Explanation::Invalidated {
            by: Invalidation::Tag("day-2".into())
        }
    );
    TAGGED.invalidate_tag("prices").unwrap();
    assert_eq!(
        prices::explain(&1).unwrap(),
        Explanation::Invalidated {
            by: Invalidation::Tag("prices".into())
        }
    );
}

static EDITED: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[test]
fn a_call_stored_by_another_version_of_the_code_says_the_code_changed() {
    // Two functions of one name in one module share a path, as the same function does before
    // and after an edit: the second block is the first one's code edited.
    {
        #[tiered::memoize(cache = EDITED)]
        fn price(region: String) -> u32 {
            region.len() as u32
        }
        assert_eq!(price("eu".into()), 2);
        assert_eq!(price::explain(&"eu".into()).unwrap(), Explanation::Hit);
    }
    {
        #[tiered::memoize(cache = EDITED)]
        fn price(region: String) -> u32 {
            region.len() as u32 * 100
        }
        assert_eq!(
            price::explain(&"eu".into()).unwrap(),
            Explanation::CodeChanged
        );
        assert_eq!(
            price::explain(&"us".into()).unwrap(),
            Explanation::NeverWritten,
            "the older code never stored this call"
        );
        // The new version's first call drops the older entries; explain still says why.
        assert_eq!(price("us".into()), 200);
        assert_eq!(
            price::explain(&"eu".into()).unwrap(),
            Explanation::CodeChanged
        );
        assert_eq!(price::explain(&"us".into()).unwrap(), Explanation::Hit);
    }
}

// A memory tier of 16 KiB, nothing else: most of 200 calls are let go.
static SMALL: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder().memory_capacity(16 << 10).open().unwrap());

#[tiered::memoize(cache = SMALL, memory_only)]
fn label(i: u32) -> String {
    format!("label {i}")
}

#[test]
fn a_call_let_go_for_capacity_was_evicted() {
    for i in 0..200u32 {
        label(i);
    }
    let _ = SMALL.stats(); // lets the memory tier finish its evictions
    let evicted = (0..200u32)
        .filter(|i| label::explain(i).unwrap() == Explanation::Evicted)
        .count();
    assert!(evicted > 100, "{evicted} of 200 explained as evicted");
}

static RETYPED: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[test]
fn a_call_stored_as_another_type_names_that_type() {
    // The key holds the types of generic and `impl Trait` arguments but not the return type,
    // which the code version sees only as written: a type alias that changes its meaning
    // leaves the version and the key as they were. Between builds that is an edit of the
    // alias; here, two functions of one name, signature and body in one module, whose `Out`
    // differ.
    {
        type Out = u32;
        #[tiered::memoize(cache = RETYPED)]
        fn size(id: u32) -> Out {
            Out::from(id > 1)
        }
        assert_eq!(size(2), 1);
    }
    {
        type Out = bool;
        #[tiered::memoize(cache = RETYPED)]
        fn size(id: u32) -> Out {
            Out::from(id > 1)
        }
        assert_eq!(
            size::explain(&2).unwrap(),
            Explanation::OtherType {
                stored: "u32".into()
            }
        );
        assert_eq!(size::explain(&3).unwrap(), Explanation::NeverWritten);
    }
}

static KINDS: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[tiered::memoize(cache = KINDS)]
fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

#[tiered::memoize(cache = KINDS, cache_none = false)]
fn find(id: u32) -> Option<String> {
    (id > 0).then(|| format!("#{id}"))
}

#[tiered::memoize(cache = KINDS)]
fn show<T: Serialize + std::fmt::Display>(value: T) -> String {
    value.to_string()
}

#[test]
fn explain_asks_for_the_type_the_function_stores() {
    // `Ok` and `Some` values are what is stored: a question about the whole `Result` or
    // `Option` would be answered `OtherType`.
    assert_eq!(parse("7".into()), Ok(7));
    assert_eq!(parse::explain(&"7".into()).unwrap(), Explanation::Hit);
    assert!(parse("x".into()).is_err());
    assert_eq!(
        parse::explain(&"x".into()).unwrap(),
        Explanation::NeverWritten
    );
    assert_eq!(find(3), Some("#3".into()));
    assert_eq!(find::explain(&3).unwrap(), Explanation::Hit);
    // A generic function: its type arguments are in the key, as for `remove`.
    assert_eq!(show(5u8), "5");
    assert_eq!(show::explain::<u8>(&5).unwrap(), Explanation::Hit);
    assert_eq!(show::explain::<u64>(&5).unwrap(), Explanation::NeverWritten);
}

#[derive(Clone)]
struct Ctx {
    cache: Cache,
}

#[tiered::memoize(cache = ctx.cache)]
fn with_ctx(ctx: &Ctx, n: u32) -> u32 {
    let _ = ctx;
    n + 1
}

#[test]
fn a_cache_named_by_an_argument_is_explain_s_first_parameter() {
    let ctx = Ctx {
        cache: Cache::in_memory(),
    };
    assert_eq!(with_ctx(&ctx, 1), 2);
    // `ctx` is in the key too (it is not `_ctx`), hence `Serialize` below.
    assert_eq!(
        with_ctx::explain(&ctx.cache, &ctx, &1).unwrap(),
        Explanation::Hit
    );
    assert_eq!(
        with_ctx::explain(&ctx.cache, &ctx, &2).unwrap(),
        Explanation::NeverWritten
    );
}

impl Serialize for Ctx {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

static METHODS: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[derive(Serialize)]
struct Repo {
    id: u32,
}

impl Repo {
    #[tiered::memoize(cache = METHODS)]
    fn name(&self, n: u32) -> String {
        format!("repo {} #{n}", self.id)
    }

    #[tiered::memoize(cache = METHODS, skip_self)]
    fn motd(self, day: u32) -> String {
        format!("day {day}")
    }
}

#[test]
fn a_method_explains_through_name_explain() {
    let repo = Repo { id: 1 };
    assert_eq!(repo.name(5), "repo 1 #5");
    assert_eq!(repo.name_explain(&5).unwrap(), Explanation::Hit);
    assert_eq!(
        Repo { id: 2 }.name_explain(&5).unwrap(),
        Explanation::NeverWritten,
        "`self` is in the key"
    );
    assert_eq!(Repo { id: 3 }.motd(9), "day 9");
    // `skip_self`: no `self` to give.
    assert_eq!(Repo::motd_explain(&9).unwrap(), Explanation::Hit);
    Repo::motd_memo().clear(&METHODS).unwrap();
    assert_eq!(
        Repo::motd_explain(&9).unwrap(),
        Explanation::Invalidated {
            by: Invalidation::Namespace(Repo::motd_memo().path().into())
        }
    );
}

#[cfg(feature = "tokio")]
#[tiered::memoize(cache = KINDS)]
async fn fetch(id: u32) -> Result<String, String> {
    tokio::task::yield_now().await;
    if id == 0 {
        return Err("no user 0".into());
    }
    Ok(format!("user {id}"))
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_fn_explains_as_a_blocking_one_does() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(fetch::explain(&1).unwrap(), Explanation::NeverWritten);
    assert_eq!(rt.block_on(fetch(1)), Ok("user 1".into()));
    assert!(rt.block_on(fetch(0)).is_err());
    assert_eq!(fetch::explain(&1).unwrap(), Explanation::Hit);
    assert_eq!(fetch::explain(&0).unwrap(), Explanation::NeverWritten);
}
