//! `#[tiered::memoize(refresh = "1m")]`: a call that finds a value older than that (not
//! expired) returns it at once and recomputes it once in the background. Each test has its
//! own cache and manual clock; waits are bounds, never timing goals.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use tiered::{Cache, ManualClock};

const SEC: Duration = Duration::from_secs(1);

/// What a memoized function reads: the value it returns, its runs (started and finished) and,
/// once `hold` was called, a gate each run waits at until it is let through.
struct Source {
    value: AtomicU64,
    started: AtomicUsize,
    finished: AtomicUsize,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Source {
    const fn new(value: u64) -> Source {
        Source {
            value: AtomicU64::new(value),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            gate: Mutex::new(None),
        }
    }

    /// From now on, a run waits (at most 10 s) for the sender's word.
    fn hold(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        *self.gate.lock().unwrap() = Some(rx);
        tx
    }

    fn read(&self) -> u64 {
        self.started.fetch_add(1, SeqCst);
        if let Some(gate) = self.gate.lock().unwrap().as_ref() {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        }
        self.finished.fetch_add(1, SeqCst);
        self.value.load(SeqCst)
    }

    fn started(&self) -> usize {
        self.started.load(SeqCst)
    }
}

fn timed_cache(clock: &LazyLock<Arc<ManualClock>>) -> Cache {
    Cache::builder()
        .clock(LazyLock::force(clock).clone())
        .open()
        .unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemTime::now()))
}

static PRICE_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);
static PRICE_CACHE: LazyLock<Cache> = LazyLock::new(|| timed_cache(&PRICE_CLOCK));
static PRICE: Source = Source::new(1);

#[tiered::memoize(cache = PRICE_CACHE, ttl = "10m", refresh = "1m")]
fn price(region: String) -> u64 {
    let _ = region;
    PRICE.read()
}

#[test]
fn a_due_call_returns_the_old_value_at_once_and_the_new_one_once_recomputed() {
    assert_eq!(price("eu".into()), 1);
    PRICE.value.store(2, SeqCst);
    PRICE_CLOCK.advance(30 * SEC);
    assert_eq!(price("eu".into()), 1, "fresh: from the cache");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(PRICE.started(), 1, "a fresh value was recomputed");

    PRICE_CLOCK.advance(31 * SEC); // 61 s old: due
    let release = PRICE.hold();
    assert_eq!(price("eu".into()), 1, "the old value");
    // The call returned while its recomputation waits at the gate: it did not wait for it.
    assert!(
        common::eventually(10, || PRICE.started() == 2),
        "no recomputation"
    );
    assert_eq!(PRICE.finished.load(SeqCst), 1);
    release.send(()).unwrap();
    assert!(
        common::eventually(10, || price("eu".into()) == 2),
        "the recomputed value never replaced the old one"
    );
    assert!(common::eventually(10, || PRICE_CACHE.stats().refreshes == 1));
    // The background run is neither the function's hit nor its miss.
    let s = price::stats();
    assert_eq!(s.misses, 1);
    assert!(s.hits >= 3, "{s:?}");
    // The new value's age counts from its own write.
    PRICE_CLOCK.advance(30 * SEC);
    assert_eq!(price("eu".into()), 2);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(PRICE.started(), 2);
}

static BUSY_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);
static BUSY_CACHE: LazyLock<Cache> = LazyLock::new(|| timed_cache(&BUSY_CLOCK));
static BUSY: Source = Source::new(10);

#[tiered::memoize(cache = BUSY_CACHE, ttl = "10m", refresh = "1m")]
fn quote(symbol: String, _client: Arc<String>) -> u64 {
    let _ = (symbol, _client);
    BUSY.read()
}

#[test]
fn eight_threads_reading_a_due_call_start_one_recomputation() {
    let client = Arc::new("client".to_string());
    assert_eq!(quote("ACME".into(), client.clone()), 10);
    BUSY.value.store(11, SeqCst);
    BUSY_CLOCK.advance(61 * SEC);
    let release = BUSY.hold();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let client = client.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    assert_eq!(
                        quote("ACME".into(), client.clone()),
                        10,
                        "not the old value"
                    );
                }
            });
        }
    });
    assert!(common::eventually(10, || BUSY.started() >= 2));
    assert_eq!(BUSY.started(), 2, "one recomputation for the call");
    release.send(()).unwrap();
    assert!(common::eventually(10, || quote(
        "ACME".into(),
        client.clone()
    ) == 11));
    assert_eq!(BUSY.started(), 2);
    assert_eq!(BUSY_CACHE.stats().refreshes, 1);
}

static RATE_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);
static RATE_CACHE: LazyLock<Cache> = LazyLock::new(|| timed_cache(&RATE_CLOCK));
static RATE_DOWN: AtomicBool = AtomicBool::new(false);
static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[tiered::memoize(cache = RATE_CACHE, ttl = "10m", refresh = "1m")]
fn rate(pair: String) -> Result<f64, String> {
    RATE_RUNS.fetch_add(1, SeqCst);
    if RATE_DOWN.load(SeqCst) {
        return Err(format!("no rate for {pair}: the source is down"));
    }
    Ok(1.25)
}

#[test]
fn a_failing_recomputation_keeps_the_old_value_until_its_ttl() {
    assert_eq!(rate("EURUSD".into()), Ok(1.25));
    RATE_DOWN.store(true, SeqCst);
    RATE_CLOCK.advance(61 * SEC);
    assert_eq!(rate("EURUSD".into()), Ok(1.25), "the old value, at once");
    assert!(common::eventually(10, || RATE_CACHE
        .stats()
        .refresh_failures
        == 1));
    assert_eq!(RATE_RUNS.load(SeqCst), 2);
    // Still served, and tried again, until its deadline.
    RATE_CLOCK.advance(300 * SEC);
    assert_eq!(rate("EURUSD".into()), Ok(1.25));
    assert!(common::eventually(10, || RATE_CACHE
        .stats()
        .refresh_failures
        == 2));
    assert_eq!(RATE_CACHE.stats().refreshes, 0);
    // Past it (600 s after the write): gone, and the call's own run fails.
    RATE_CLOCK.advance(240 * SEC);
    assert!(
        rate("EURUSD".into()).is_err(),
        "an expired value was served"
    );
    assert_eq!(RATE_RUNS.load(SeqCst), 4);
}

static FIND_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);
static FIND_CACHE: LazyLock<Cache> = LazyLock::new(|| timed_cache(&FIND_CLOCK));
static FIND_GONE: AtomicBool = AtomicBool::new(false);

#[tiered::memoize(cache = FIND_CACHE, ttl = "10m", refresh = "1m", cache_none = false)]
fn find(id: u32) -> Option<String> {
    (!FIND_GONE.load(SeqCst)).then(|| format!("user {id}"))
}

#[test]
fn a_recomputation_giving_none_keeps_the_old_value_when_none_is_not_cached() {
    assert_eq!(find(7), Some("user 7".into()));
    FIND_GONE.store(true, SeqCst);
    FIND_CLOCK.advance(61 * SEC);
    assert_eq!(find(7), Some("user 7".into()));
    assert!(common::eventually(10, || FIND_CACHE
        .stats()
        .refresh_failures
        == 1));
    assert_eq!(find(7), Some("user 7".into()));
}

#[derive(Clone)]
struct Ctx {
    cache: Cache,
    base: u64,
}

static CTX_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);

#[tiered::memoize(cache = _ctx.cache, ttl = "10m", refresh = "1m")]
fn total(n: u64, _ctx: Ctx) -> u64 {
    _ctx.base + n
}

#[test]
fn arguments_move_into_the_recomputation_with_a_cache_they_name() {
    let mut ctx = Ctx {
        cache: timed_cache(&CTX_CLOCK),
        base: 100,
    };
    assert_eq!(total(1, ctx.clone()), 101);
    ctx.base = 200;
    CTX_CLOCK.advance(61 * SEC);
    assert_eq!(total(1, ctx.clone()), 101);
    assert!(common::eventually(10, || total(1, ctx.clone()) == 201));
}

static FEED_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);
static FEED_CACHE: LazyLock<Cache> = LazyLock::new(|| timed_cache(&FEED_CLOCK));
static FEED: Source = Source::new(1);

#[derive(serde::Serialize)]
struct Feed {
    url: String,
}

impl Feed {
    // `self` by value moves into the recomputation like any argument.
    #[tiered::memoize(cache = FEED_CACHE, ttl = "10m", refresh = "1m")]
    fn latest(self) -> u64 {
        let _ = self.url;
        FEED.read()
    }
}

#[test]
fn a_method_taking_self_by_value_is_refreshed_too() {
    let feed = || Feed {
        url: "https://example.com/feed".into(),
    };
    assert_eq!(feed().latest(), 1);
    FEED.value.store(2, SeqCst);
    FEED_CLOCK.advance(61 * SEC);
    assert_eq!(feed().latest(), 1);
    assert!(common::eventually(10, || feed().latest() == 2));
    assert_eq!(FEED.started(), 2);
}

static EARLY_CLOCK: LazyLock<Arc<ManualClock>> = LazyLock::new(clock);
static EARLY_CACHE: LazyLock<Cache> = LazyLock::new(|| timed_cache(&EARLY_CLOCK));
static EARLY: Source = Source::new(1);

#[tiered::memoize(cache = EARLY_CACHE, ttl = "1h", refresh = "5m", refresh_early = "1m")]
fn fx_rate(pair: u32) -> u64 {
    let _ = pair;
    EARLY.read()
}

#[test]
fn refresh_early_starts_some_refreshes_before_the_refresh_age() {
    for pair in 0..100 {
        fx_rate(pair);
    }
    assert_eq!(EARLY.started(), 100);
    // Four minutes and a half: within the window, before the refresh age (about 22 %).
    EARLY_CLOCK.advance(270 * SEC);
    for pair in 0..100 {
        assert_eq!(fx_rate(pair), 1, "the value at hand, at once");
    }
    assert!(
        common::eventually(10, || EARLY_CACHE.stats().refreshes as usize
            == EARLY.started() - 100
            && EARLY.started() > 100),
        "no refresh started early"
    );
    assert!(
        EARLY.started() < 200,
        "all refreshed early: {}",
        EARLY.started()
    );
}
