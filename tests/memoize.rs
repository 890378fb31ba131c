//! `#[tiered::memoize]`: which arguments make the key, the generated helpers, the options, and
//! methods and generics. Every function counts its runs, so each test sees what was computed.
//! Code-aware invalidation across builds is in `memoize_rebuild.rs`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tiered::{Cache, ManualClock};

/// The cache of most functions here; each function has its own entries and figures in it.
static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

fn bump(runs: &AtomicU32) {
    runs.fetch_add(1, SeqCst);
}

fn runs(counter: &AtomicU32) -> u32 {
    counter.load(SeqCst)
}

static DOUBLE: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn double(x: u64, _note: &str) -> u64 {
    bump(&DOUBLE);
    x * 2
}

#[test]
fn underscore_arguments_are_left_out_and_others_make_the_key() {
    assert_eq!(double(2, "first"), 4);
    assert_eq!(double(2, "other note, same key"), 4);
    assert_eq!(runs(&DOUBLE), 1);
    assert_eq!(double(3, "first"), 6);
    assert_eq!(runs(&DOUBLE), 2);
    assert_eq!(double(2, "x"), 4);
    assert_eq!(double(3, "x"), 6);
    assert_eq!(runs(&DOUBLE), 2);
    let s = double::stats();
    assert_eq!((s.hits, s.misses), (3, 2));
}

static GREET: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn greet(name: &str, times: u32, mut suffix: String) -> String {
    bump(&GREET);
    suffix.push('!');
    if times == 0 {
        return String::new();
    }
    format!("{}{suffix}", name.repeat(times as usize))
}

#[test]
fn remove_drops_one_call_and_clear_drops_all() {
    assert_eq!(greet("ab", 2, "?".into()), "abab?!");
    assert_eq!(greet("ab", 0, "?".into()), "");
    assert_eq!(greet("cd", 1, "".into()), "cd!");
    assert_eq!(runs(&GREET), 3);

    // `remove` takes `&str` as declared, and owned arguments by reference.
    assert!(greet::remove("ab", &2, &"?".to_string()).unwrap());
    assert!(!greet::remove("ab", &2, &"?".to_string()).unwrap());
    assert_eq!(greet("ab", 0, "?".into()), "");
    assert_eq!(runs(&GREET), 3, "other entries stay");
    assert_eq!(greet("ab", 2, "?".into()), "abab?!");
    assert_eq!(runs(&GREET), 4, "the removed entry is computed again");

    greet::clear().unwrap();
    assert_eq!(greet("ab", 0, "?".into()), "");
    assert_eq!(greet("cd", 1, "".into()), "cd!");
    assert_eq!(runs(&GREET), 6);
}

static FALLIBLE: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn parse_number(text: String) -> Result<u32, std::num::ParseIntError> {
    bump(&FALLIBLE);
    let n: u32 = text.trim().parse()?;
    Ok(n + 1)
}

#[test]
fn a_result_caches_ok_only() {
    assert!(parse_number("x".into()).is_err());
    assert!(parse_number("x".into()).is_err());
    assert_eq!(runs(&FALLIBLE), 2, "an Err is never cached");
    assert_eq!(parse_number("41".into()), Ok(42));
    assert_eq!(parse_number("41".into()), Ok(42));
    assert_eq!(runs(&FALLIBLE), 3);
}

static LOOKUP_ALL: AtomicU32 = AtomicU32::new(0);
static LOOKUP_SOME: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn lookup_all(id: u32) -> Option<String> {
    bump(&LOOKUP_ALL);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

#[tiered::memoize(cache = CACHE, cache_none = false)]
fn lookup_some(id: u32) -> Option<String> {
    bump(&LOOKUP_SOME);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

#[test]
fn none_is_cached_unless_cache_none_is_false() {
    for _ in 0..2 {
        assert_eq!(lookup_all(1), None);
        assert_eq!(lookup_some(1), None);
        assert_eq!(lookup_all(2).as_deref(), Some("user 2"));
        assert_eq!(lookup_some(2).as_deref(), Some("user 2"));
    }
    assert_eq!(runs(&LOOKUP_ALL), 2, "None and Some cached");
    assert_eq!(
        runs(&LOOKUP_SOME),
        3,
        "None computed each time, Some cached"
    );
}

static START: LazyLock<SystemTime> =
    LazyLock::new(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
static CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(|| Arc::new(ManualClock::new(*START)));
static TIMED: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder().clock(CLOCK.clone()).open().unwrap());

static TTL: AtomicU32 = AtomicU32::new(0);
static TTL_EXPR: AtomicU32 = AtomicU32::new(0);
static IDLE: AtomicU32 = AtomicU32::new(0);
static DEADLINE: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = TIMED, ttl = "5m")]
fn with_ttl() -> u32 {
    bump(&TTL);
    1
}

#[tiered::memoize(cache = TIMED, ttl = Duration::from_secs(90))]
fn with_ttl_expr() -> u32 {
    bump(&TTL_EXPR);
    1
}

#[tiered::memoize(cache = TIMED, idle = "1m")]
fn with_idle() -> u32 {
    bump(&IDLE);
    1
}

#[tiered::memoize(cache = TIMED, expires_at = *START + Duration::from_secs(600))]
fn with_deadline() -> u32 {
    bump(&DEADLINE);
    1
}

/// The one test that moves `CLOCK`: every function above expires by it.
#[test]
fn ttl_idle_and_expires_at_follow_the_cache_clock() {
    let all = || (with_ttl(), with_ttl_expr(), with_idle(), with_deadline());
    let counts = || (runs(&TTL), runs(&TTL_EXPR), runs(&IDLE), runs(&DEADLINE));
    all();
    assert_eq!(counts(), (1, 1, 1, 1));
    CLOCK.advance(Duration::from_secs(50)); // 50 s: all live; the idle one is read again
    all();
    assert_eq!(counts(), (1, 1, 1, 1));
    CLOCK.advance(Duration::from_secs(50)); // 100 s: past 90 s; 50 s since the idle read
    all();
    assert_eq!(counts(), (1, 2, 1, 1));
    CLOCK.advance(Duration::from_secs(70)); // 170 s: idle for 70 s
    with_idle();
    assert_eq!(counts(), (1, 2, 2, 1));
    CLOCK.advance(Duration::from_secs(140)); // 310 s: past 5 min
    with_ttl();
    assert_eq!(counts(), (2, 2, 2, 1));
    CLOCK.advance(Duration::from_secs(300)); // 610 s: past the deadline
    with_deadline();
    assert_eq!(counts(), (2, 2, 2, 2));
}

static DAILY: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE, at = "16:00")]
fn daily_report() -> u32 {
    bump(&DAILY);
    7
}

#[test]
fn at_sets_a_deadline_ahead() {
    assert_eq!((daily_report(), daily_report()), (7, 7));
    assert_eq!(runs(&DAILY), 1, "the next 16:00 is never in the past");
}

static TAGGED: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(
    cache = CACHE,
    tags = ["memoize-test-prices", String::from("memoize-test-eu"), format!("memoize-test-day-{day}")]
)]
fn tagged(day: u32) -> u32 {
    bump(&TAGGED);
    day
}

#[test]
fn tags_invalidate_a_function_entries_and_may_use_arguments() {
    tagged(1);
    tagged(1);
    assert_eq!(runs(&TAGGED), 1);
    CACHE.invalidate_tag("memoize-test-prices").unwrap();
    tagged(1);
    assert_eq!(runs(&TAGGED), 2);
    CACHE.invalidate_tag("memoize-test-eu").unwrap();
    tagged(1);
    assert_eq!(runs(&TAGGED), 3);
    // A tag made from an argument reaches that argument's entry alone.
    tagged(2);
    CACHE.invalidate_tag("memoize-test-day-2").unwrap();
    tagged(1);
    assert_eq!(runs(&TAGGED), 4);
    tagged(2);
    assert_eq!(runs(&TAGGED), 5);
}

static KEPT: AtomicU32 = AtomicU32::new(0);
static MEMORY_ONLY: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = _cache)]
fn kept(_cache: &Cache, x: u32) -> u32 {
    bump(&KEPT);
    x
}

#[tiered::memoize(cache = _cache, memory_only)]
fn memory_only(_cache: &Cache, x: u32) -> u32 {
    bump(&MEMORY_ONLY);
    x
}

#[test]
fn memory_only_entries_do_not_survive_a_restart_and_helpers_take_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!((kept(&cache, 1), memory_only(&cache, 1)), (1, 1));
        assert_eq!((kept(&cache, 1), memory_only(&cache, 1)), (1, 1));
        assert_eq!((runs(&KEPT), runs(&MEMORY_ONLY)), (1, 1));
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!((kept(&cache, 1), memory_only(&cache, 1)), (1, 1));
    assert_eq!((runs(&KEPT), runs(&MEMORY_ONLY)), (1, 2));
    // The cache names an argument, so the helpers take the cache.
    assert_eq!(kept::stats(&cache).hits, 1);
    assert!(kept::remove(&cache, &1).unwrap());
    memory_only::clear(&cache).unwrap();
    assert_eq!((kept(&cache, 1), memory_only(&cache, 1)), (1, 1));
    assert_eq!((runs(&KEPT), runs(&MEMORY_ONLY)), (2, 3));
}

#[tiered::memoize(cache = CACHE)]
fn type_of<T: Serialize>(_value: T, shown: T) -> String {
    let _ = shown;
    std::any::type_name::<T>().to_string()
}

#[tiered::memoize(cache = CACHE)]
fn type_of_impl(value: impl Serialize, _shown: &impl Serialize) -> String {
    fn name<T>(_: &T) -> &'static str {
        std::any::type_name::<T>()
    }
    name(&value).to_string()
}

#[tiered::memoize(cache = CACHE)]
fn padded<const N: usize>(text: String) -> String {
    format!("{text:>N$}")
}

#[test]
fn generic_instantiations_do_not_share_entries() {
    // `&str` and `String` serialize alike: only the type parameter's name tells them apart.
    assert_eq!(type_of("a", "a"), "&str");
    assert_eq!(
        type_of(String::new(), "a".to_string()),
        "alloc::string::String"
    );
    assert_eq!(type_of("b", "a"), "&str");
    assert!(type_of::remove::<&str>(&"a").unwrap());
    assert!(!type_of::remove::<&str>(&"a").unwrap());
    assert!(type_of::remove::<String>(&"a".to_string()).unwrap());
    assert_eq!(type_of_impl("a", &1u8), "&str");
    assert_eq!(
        type_of_impl(String::from("a"), &1u8),
        "alloc::string::String"
    );
    // `_shown`'s type is in the key too.
    assert!(!type_of_impl::remove(&"a", &1u16).unwrap());
    assert!(type_of_impl::remove(&"a", &1u8).unwrap());
    assert_eq!(padded::<3>("x".into()), "  x");
    assert_eq!(padded::<2>("x".into()), " x");
}

#[derive(Clone, Serialize, serde::Deserialize)]
struct Repo {
    id: u32,
}

static NAMED: AtomicU32 = AtomicU32::new(0);
static SHARED: AtomicU32 = AtomicU32::new(0);

impl Repo {
    #[tiered::memoize(cache = CACHE)]
    fn name(&self, n: u32) -> String {
        bump(&NAMED);
        format!("repo {} #{n}", self.id)
    }

    #[tiered::memoize(cache = CACHE, skip_self)]
    fn shared(&self, n: u32) -> String {
        bump(&SHARED);
        format!("repo {} #{n}", self.id)
    }

    #[tiered::memoize(cache = CACHE)]
    fn open(id: u32) -> Self {
        Repo { id: id + 100 }
    }
}

#[test]
fn methods_key_on_self_unless_skip_self() {
    let (one, two) = (Repo { id: 1 }, Repo { id: 2 });
    assert_eq!(one.name(5), "repo 1 #5");
    assert_eq!(two.name(5), "repo 2 #5");
    assert_eq!(one.name(5), "repo 1 #5");
    assert_eq!(runs(&NAMED), 2);

    assert_eq!(one.shared(5), "repo 1 #5");
    assert_eq!(two.shared(5), "repo 1 #5", "self is not in the key");
    assert_eq!(runs(&SHARED), 1);

    assert_eq!(Repo::open(1).id, 101);
    let memo = Repo::name_memo();
    assert_eq!(memo.path(), "memoize::Repo::name");
    assert_eq!(memo.stats(&CACHE).misses, 2);
    memo.clear(&CACHE).unwrap();
    one.name(5);
    assert_eq!(runs(&NAMED), 3);
}

#[derive(Serialize)]
struct Typed<T>(PhantomData<T>);

impl<T> Typed<T> {
    #[tiered::memoize(cache = CACHE, skip_self)]
    fn name(&self) -> String {
        std::any::type_name::<T>().to_string()
    }
}

#[test]
fn generic_impl_instantiations_do_not_share_entries() {
    assert_eq!(Typed::<u8>(PhantomData).name(), "u8");
    assert_eq!(Typed::<u16>(PhantomData).name(), "u16");
    assert_eq!(Typed::<u8>(PhantomData).name(), "u8");
    assert_eq!(Typed::<u8>::name_memo(), Typed::<u16>::name_memo());
    assert_eq!(Typed::<u8>::name_memo().path(), "memoize::Typed::name");
}

/// The same function, in modules that differ in what the version sees.
mod versions {
    #[tiered::fingerprint]
    pub fn helper() -> u32 {
        1
    }

    pub mod plain {
        #[tiered::memoize]
        pub fn f() -> u32 {
            1
        }
    }

    pub mod commented {
        /// A doc comment, a comment and other spacing: the same tokens.
        #[tiered::memoize]
        pub fn f() -> u32 {
            // one
            1
        }
    }

    pub mod edited {
        #[tiered::memoize]
        pub fn f() -> u32 {
            2
        }
    }

    pub mod with_version {
        #[tiered::memoize(version = 2)]
        pub fn f() -> u32 {
            1
        }
    }

    pub mod with_deps {
        #[tiered::memoize(deps = [super::helper])]
        pub fn f() -> u32 {
            1
        }
    }

    pub mod with_both {
        #[tiered::memoize(version = 2, deps = [super::helper, super::plain::f])]
        pub fn f() -> u32 {
            1
        }
    }
}

#[test]
fn versions_follow_the_code_version_and_deps() {
    use tiered::combine_versions as combine;
    use versions::*;
    assert_eq!(helper(), 1);
    let base = plain::f::VERSION;
    assert_eq!(commented::f::VERSION, base);
    assert_ne!(edited::f::VERSION, base);
    assert_eq!(with_version::f::VERSION, combine(&[base, 2]));
    assert_eq!(with_deps::f::VERSION, combine(&[base, helper::VERSION]));
    assert_eq!(
        with_both::f::VERSION,
        combine(&[base, 2, helper::VERSION, base])
    );
    assert_eq!(plain::f::memo().version(), base);
    assert_eq!(plain::f::memo().path(), "memoize::versions::plain::f");
}

static FIB: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn fib(n: u64) -> u64 {
    bump(&FIB);
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[test]
fn a_recursive_function_computes_each_argument_once() {
    assert_eq!(fib(40), 102_334_155);
    assert_eq!(runs(&FIB), 41);
}

#[allow(clippy::too_many_arguments)]
#[tiered::memoize(cache = CACHE)]
fn seventeen(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    e: u8,
    f: u8,
    g: u8,
    h: u8,
    i: u8,
    j: u8,
    k: u8,
    l: u8,
    m: u8,
    n: u8,
    o: u8,
    p: u8,
    q: u8,
) -> u32 {
    [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]
        .iter()
        .map(|x| *x as u32)
        .sum()
}

#[test]
fn more_arguments_than_serde_has_tuples_for() {
    assert_eq!(
        seventeen(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        17
    );
    assert_eq!(
        seventeen(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2),
        18
    );
    assert!(
        seventeen::remove(&1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &1, &2)
            .unwrap()
    );
    assert_eq!(seventeen::stats().misses, 2);
}

// ---- found by a reviewer: shapes of valid Rust the macro must accept ----

struct Counter {
    cache: Cache,
    calls: u32,
}

impl Counter {
    /// `&mut self` with the cache taken from `self`: the body may still change `self`.
    #[tiered::memoize(cache = self.cache, skip_self)]
    fn load(&mut self, n: u32) -> u32 {
        self.calls += 1;
        n * 10
    }
}

#[test]
fn a_mut_self_method_may_take_its_cache_from_self() {
    let mut c = Counter {
        cache: Cache::in_memory(),
        calls: 0,
    };
    assert_eq!((c.load(1), c.load(1), c.load(2)), (10, 10, 20));
    assert_eq!(c.calls, 2, "the hit did not run the body");
}

struct Ctx {
    cache: Cache,
}

static OWNED_CTX: AtomicU32 = AtomicU32::new(0);

/// An owned argument that carries the cache moves into the computation.
#[tiered::memoize(cache = _ctx.cache)]
fn with_owned_ctx(x: u32, _ctx: Ctx) -> u32 {
    bump(&OWNED_CTX);
    drop(_ctx);
    x + 1
}

#[test]
fn the_cache_may_come_from_an_owned_argument() {
    let cache = Cache::in_memory();
    let ctx = || Ctx {
        cache: cache.clone(),
    };
    assert_eq!(with_owned_ctx(1, ctx()), 2);
    assert_eq!(with_owned_ctx(1, ctx()), 2);
    assert_eq!(runs(&OWNED_CTX), 1);
}

#[tiered::memoize(cache = CACHE)]
fn show(x: impl Serialize + std::fmt::Display) -> String {
    format!("<{x}>")
}

#[test]
fn an_argument_of_several_bounds_works_and_removes() {
    assert_eq!(show(1u8), "<1>");
    assert!(show::remove(&1u8).unwrap());
}

/// A constant of the user's named like the macro's own.
const VERSION: u64 = 3;

struct Versioned;

impl Versioned {
    #[tiered::memoize(cache = CACHE, skip_self, version = VERSION)]
    fn get(&self, n: u32) -> u32 {
        n
    }
}

#[test]
fn version_may_name_a_constant_called_version() {
    assert_eq!(Versioned.get(4), 4);
    let plain = Versioned::get_memo().version();
    assert_ne!(plain, 0);
}

fn plus1(x: u32) -> u32 {
    x + 1
}

fn times10(x: u32) -> u32 {
    x * 10
}

static ANON: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn anon(x: u32, _f: impl Fn(u32) -> u32) -> u32 {
    bump(&ANON);
    _f(x)
}

#[test]
fn an_unused_impl_trait_argument_counts_in_the_key() {
    assert_eq!(anon(5, plus1), 6);
    assert_eq!(anon(5, times10), 50);
    assert_eq!(anon(5, plus1), 6);
    assert_eq!(runs(&ANON), 2, "the second call of each function hits");
    // `remove` takes the `impl Trait` argument too: its type is in the key.
    assert!(anon::remove(&5, &plus1).unwrap());
    assert!(!anon::remove(&5, &plus1).unwrap());
    assert_eq!(anon(5, times10), 50);
    assert_eq!(runs(&ANON), 2);
}

static WILD: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn wild(x: u32, _: impl Fn(u32) -> u32) -> u32 {
    bump(&WILD);
    x
}

#[test]
fn an_impl_trait_argument_named_underscore_counts_in_the_key() {
    let (a, b) = (|x: u32| x + 1, |x: u32| x + 2);
    for _ in 0..2 {
        assert_eq!((wild(1, a), wild(1, b)), (1, 1));
    }
    assert_eq!(runs(&WILD), 2, "one entry per closure");
}

static APPLY: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn apply<F: Fn(u32) -> u32>(x: u32, _f: F) -> u32 {
    bump(&APPLY);
    _f(x)
}

#[test]
fn two_closures_of_one_body_never_share_an_entry() {
    let before = runs(&APPLY);
    assert_eq!(apply(2, |x| x + 1), 3);
    assert_eq!(apply(2, |x| x * 10), 20);
    // One closure called again (the same type, each time round the loop) hits.
    for _ in 0..3 {
        assert_eq!(apply(3, |x| x * 100), 300);
    }
    assert_eq!(runs(&APPLY) - before, 3);
}

#[test]
fn function_items_never_share_an_entry_and_function_pointers_are_not_cached() {
    assert_eq!(apply(4, plus1), 5);
    assert_eq!(apply(4, times10), 40);
    let before = runs(&APPLY);
    assert_eq!((apply(4, plus1), apply(4, times10)), (5, 40));
    assert_eq!(runs(&APPLY), before, "each function item has its entry");
    // A function pointer's type is the same for every function: never cached.
    let pointers: [fn(u32) -> u32; 2] = [plus1, times10];
    assert_eq!((apply(6, pointers[0]), apply(6, pointers[1])), (7, 60));
    assert_eq!((apply(6, pointers[0]), apply(6, pointers[1])), (7, 60));
    assert_eq!(runs(&APPLY), before + 4);
}

static APPLY_IN: AtomicU32 = AtomicU32::new(0);
static TYPED_IN: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = _cache)]
fn apply_in(_cache: &Cache, x: u32, _f: impl Fn(u32) -> u32) -> u32 {
    bump(&APPLY_IN);
    _f(x)
}

#[tiered::memoize(cache = _cache)]
fn typed_in<T: Serialize>(_cache: &Cache, value: T) -> String {
    bump(&TYPED_IN);
    let _ = value;
    std::any::type_name::<T>().to_string()
}

#[test]
fn calls_with_a_closure_stay_in_memory_and_named_type_parameters_persist() {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = |cache: &Cache, path: &str| {
        cache.flush().unwrap();
        let filter = tiered::EntryFilter::new().namespace(path);
        cache.entries(&filter).unwrap().len()
    };
    {
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(apply_in(&cache, 1, |x| x + 1), 2);
        assert_eq!(apply_in(&cache, 1, plus1), 2);
        assert_eq!(typed_in(&cache, "a"), "&str");
        assert_eq!(runs(&APPLY_IN), 2);
        assert_eq!(on_disk(&cache, apply_in::memo().path()), 0);
        assert_eq!(on_disk(&cache, typed_in::memo().path()), 1);
    }
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(typed_in(&cache, "a"), "&str");
    assert_eq!(typed_in(&cache, String::from("a")), "alloc::string::String");
    assert_eq!(runs(&TYPED_IN), 2, "`&str`'s entry came back from disk");
    assert_eq!(apply_in(&cache, 1, plus1), 2);
    assert_eq!(runs(&APPLY_IN), 3);
}

static BUILD: AtomicU32 = AtomicU32::new(0);

#[tiered::memoize(cache = CACHE)]
fn build_dependent(x: u32) -> u32 {
    bump(&BUILD);
    if cfg!(feature = "tokio") {
        x * 1000
    } else {
        x
    }
}

#[test]
fn what_the_build_decided_is_part_of_the_key() {
    assert_eq!(
        build_dependent(3),
        if cfg!(feature = "tokio") { 3000 } else { 3 }
    );
    // The key: the code version, then (debug_assertions, test, each cfg of the body) in the
    // part a listing leaves out, then the arguments. An entry written by a build that
    // decided otherwise is another key.
    let entries = CACHE.namespace(build_dependent::memo().path());
    type Hidden<'a> = tiered::__memoize::Hidden<(&'a [bool],)>;
    fn key(build: &[bool]) -> (u64, (Hidden<'_>, u32)) {
        (
            build_dependent::VERSION,
            (tiered::__memoize::Hidden((build,)), 3),
        )
    }
    let this_build = [cfg!(debug_assertions), true, cfg!(feature = "tokio")];
    assert!(entries.contains_key(&key(&this_build)).unwrap());
    for flipped in 0..3 {
        let mut other = this_build;
        other[flipped] = !other[flipped];
        assert!(!entries.contains_key(&key(&other)).unwrap());
    }
}

/// A cache in a folder, for the listing of memoized calls.
static LISTED_DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());
static LISTED: LazyLock<Cache> = LazyLock::new(|| Cache::open(LISTED_DIR.path()).unwrap());

#[tiered::memoize(cache = LISTED)]
fn load_prices(region: &str, day: u32, _conn: u8) -> f64 {
    if cfg!(feature = "tokio") {
        return 0.0;
    }
    f64::from(day) + region.len() as f64
}

#[tiered::memoize(cache = LISTED)]
fn no_arguments() -> u8 {
    1
}

#[tiered::memoize(cache = LISTED)]
fn generic_len<T: Serialize>(value: T) -> usize {
    std::mem::size_of_val(&value)
}

impl Repo {
    #[tiered::memoize(cache = LISTED)]
    fn listed(&self, n: u32) -> u32 {
        self.id + n
    }
}

/// Past 15 arguments the key groups them in tuples; the hidden part stays first.
#[tiered::memoize(cache = LISTED)]
#[allow(clippy::too_many_arguments)]
fn sixteen(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    e: u8,
    f: u8,
    g: u8,
    h: u8,
    i: u8,
    j: u8,
    k: u8,
    l: u8,
    m: u8,
    n: u8,
    o: u8,
    p: u8,
) -> u32 {
    [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]
        .iter()
        .map(|x| u32::from(*x))
        .sum()
}

/// Sixteen const parameters: the hidden part is grouped like the arguments.
#[tiered::memoize(cache = CACHE)]
fn consts<
    const A: u8,
    const B: u8,
    const C: u8,
    const D: u8,
    const E: u8,
    const F: u8,
    const G: u8,
    const H: u8,
    const I: u8,
    const J: u8,
    const K: u8,
    const L: u8,
    const M: u8,
    const N: u8,
    const O: u8,
    const P: u8,
>() -> u32 {
    u32::from(A) + u32::from(P)
}

#[test]
fn a_listing_shows_memoized_calls_without_what_the_key_holds_besides() {
    // The key also holds what the build decided (debug or release, `test`, the `cfg!` the
    // code names) and the types of a generic call: not arguments, not shown.
    load_prices("eu", 3, 0);
    no_arguments();
    generic_len(7u8);
    Repo { id: 4 }.listed(9);
    assert_eq!(
        sixteen(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
        136
    );
    assert_eq!(
        consts::<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16>(),
        17
    );
    LISTED.flush().unwrap();
    let mut calls: Vec<String> = LISTED
        .entries(&tiered::EntryFilter::new())
        .unwrap()
        .into_iter()
        .filter_map(|e| e.call)
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            "generic_len(7)",
            "listed(Repo { id: 4 }, 9)",
            r#"load_prices("eu", 3)"#,
            "no_arguments()",
            "sixteen((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))"
        ]
    );
}
