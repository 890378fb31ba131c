#![allow(dead_code)]

#[tiered::memoize(ttl = "5 minutes")]
fn spelled_out() -> u32 {
    1
}

#[tiered::memoize(idle = "90")]
fn no_unit() -> u32 {
    1
}

#[tiered::memoize(at = "25:00")]
fn past_midnight() -> u32 {
    1
}

#[tiered::memoize(ttl_secs = 5)]
fn unknown() -> u32 {
    1
}

#[tiered::memoize(ttl = "1m", ttl = "2m")]
fn twice() -> u32 {
    1
}

#[tiered::memoize(at = "16:00", expires_at = std::time::SystemTime::now())]
fn two_deadlines() -> u32 {
    1
}

#[tiered::memoize(memory_only = true)]
fn flag_with_value() -> u32 {
    1
}

#[tiered::memoize(cache_none = false)]
fn not_an_option() -> u32 {
    1
}

#[tiered::memoize(skip_self)]
fn no_self() -> u32 {
    1
}

#[tiered::memoize(tags = "prices")]
fn tags_not_a_list() -> u32 {
    1
}

#[tiered::memoize(deps = [helper()])]
fn deps_not_paths() -> u32 {
    1
}

#[tiered::fingerprint(ttl = "5m")]
fn fingerprint_options() -> u32 {
    1
}

fn main() {}
