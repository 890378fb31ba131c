//! `#[tiered::memoize]`: keys, helpers, options, methods, generics.

use std::sync::LazyLock;

use tiered::Cache;

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[tiered::memoize(cache = CACHE)]
fn double(x: u64, _note: &str) -> u64 {
    x * 2
}

#[test]
fn smoke() {
    assert_eq!(double(2, "a"), 4);
    assert_eq!(double(2, "b"), 4);
    let s = double::stats();
    assert_eq!((s.hits, s.misses), (1, 1));
}
